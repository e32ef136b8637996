/* Host-key trust policy: known_hosts lookups under StrictHostKeyChecking
 * (yes, accept-new, no), the application's extra check, and the ordering of
 * host key algorithms so the type already known for a host is asked for
 * first, as ssh does. known_hosts parsing itself is knownhosts.c. */
#ifndef EVSSH_TRUST_H
#define EVSSH_TRUST_H

#include "session.h"

/* 0 to accept; EVSSH_EHOSTKEY (or another code) with err filled to refuse. */
int trust_check_hostkey(evssh_session *s, const char *alg, const unsigned char *blob, size_t len,
                        char *err, size_t errlen);
/* *out: algs reordered with the types known for this host first (malloc'd),
   or NULL when nothing is known. */
int trust_order_hostkey_algs(evssh_session *s, const char *algs, char **out);

#endif
