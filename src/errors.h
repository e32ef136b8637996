/* Internal error-message helper shared by the layers that report failures
 * through (char *err, size_t errlen) pairs. */
#ifndef EVSSH_ERRORS_H
#define EVSSH_ERRORS_H

#include <stddef.h>

/* printf into err (NULL or errlen 0: nothing) */
void evssh_errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
