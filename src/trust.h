/* Host-key trust policy: known_hosts lookups under StrictHostKeyChecking
 * (yes, accept-new, no), the application's extra check, and the ordering of
 * host key algorithms so the type already known for a host is asked for
 * first, as ssh does. known_hosts parsing itself is knownhosts.c. The
 * application's check is reached through trust_events, not by name. */
#ifndef EVSSH_TRUST_H
#define EVSSH_TRUST_H

#include "base.h"
#include "options.h"

typedef struct trust_events {
  /* the application's check after the known_hosts policy: 0 accepts */
  int (*check)(void *ctx, const char *keytype, const char *sha256_fingerprint);
} trust_events;

typedef struct trust_params {
  evssh_diag *diag;
  const evssh_options *opt;
  const trust_events *ev;       /* NULL: no application check */
  void *ctx;
  evssh_cache *cache;           /* the session's shared cache, or NULL */
} trust_params;

/* 0 to accept. To refuse: EVSSH_EHOSTKEY for a key not known (strict
   policy), EVSSH_EHOSTKEY_CHANGED for a key that differs from a known one
   or is revoked; *err is then a heap message. */
int trust_check_hostkey(const trust_params *p, const unsigned char *blob, size_t len, char **err);
/* *out: algs reordered with the types known for this host first (malloc'd),
   or NULL when nothing is known. */
int trust_order_hostkey_algs(const trust_params *p, const char *algs, char **out);

#endif
