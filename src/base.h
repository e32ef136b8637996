/* The base of every layer: the monotonic clock, logging and the record of
 * the first failure, per session. It is a leaf (it calls nothing of ours),
 * so every layer may call it; a layer that fails or logs does so through
 * the evssh_diag it was given, never by calling the session. */
#ifndef EVSSH_BASE_H
#define EVSSH_BASE_H

#include "evssh.h"

#include <stdarg.h>
#include <stdint.h>

/* monotonic milliseconds */
int64_t base_now_ms(void);

/* A session's diagnostics: where its logs go and its first error. The
   owner handle is what log callbacks receive. */
typedef struct evssh_diag {
  evssh_session *owner;
  const char *label;           /* "host" in stderr log lines */
  int log_level;
  evssh_log_cb log_cb;
  void *log_ud;
  int error_code;              /* first failure, 0 none */
  char *error;                 /* its whole message (heap), NULL none */
} evssh_diag;

void diag_log(const evssh_diag *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_vlog(const evssh_diag *d, int level, const char *fmt, va_list ap);
/* Record a failure unless one is recorded: the first one wins. Returns the
   recorded code. The message is kept whole. */
int  diag_fail(evssh_diag *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Replace the message (not the code): option errors on a live session. */
void diag_note(evssh_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_release(evssh_diag *d);
/* heap printf; NULL on allocation failure */
char *base_vasprintf(const char *fmt, va_list ap);
char *base_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Copy msg into out (size bytes) whole when it fits; otherwise keep its
   head and its tail (where the hints are) around " ... ". */
void base_copy_elided(char *out, size_t size, const char *msg);

#endif
