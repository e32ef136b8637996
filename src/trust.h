/* Host-key trust policy, as ssh applies it: known_hosts lookups (under
 * HostKeyAlias when set) with StrictHostKeyChecking (yes, accept-new, no),
 * host certificates vouched for by @cert-authority lines, @revoked lines
 * and RevokedHostKeys, the application's extra check, and the ordering of
 * host key algorithms (certificates first when a CA covers the host, then
 * the types already known for it). known_hosts parsing itself is
 * knownhosts.c, certificate checks cert.c. The application's check is
 * reached through trust_events, not by name. */
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
} trust_params;

/* blob: the server's host key or host certificate as it sent it. 0 to
   accept. To refuse: EVSSH_EHOSTKEY for a key not known (strict policy;
   also a certificate from an unknown CA, or one that failed a check, whose
   key is not known as a plain key either), a RevokedHostKeys file that
   cannot be used, or the application's refusal; EVSSH_EHOSTKEY_CHANGED for
   a key that differs from a known one, a revoked key or CA, or a forged or
   undecodable certificate; *err is then a heap message saying which check
   failed (NULL only when memory ran out). The application's check gets the
   certificate type and the certified key's fingerprint for an accepted
   certificate, else the plain key's type and fingerprint. */
int trust_check_hostkey(const trust_params *p, const unsigned char *blob, size_t len, char **err);
/* *out: algs reordered as ssh orders them (malloc'd): with a
   @cert-authority line for the host the certificate algorithms first, then
   the types known for it, then the rest; without one the known types, the
   other plain types, and the certificate algorithms last. NULL when the
   order stays as it is. */
int trust_order_hostkey_algs(const trust_params *p, const char *algs, char **out);

#endif
