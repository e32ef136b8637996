/* jump_hop.c owns the syntax of one ProxyJump hop, "[ssh://][user@]host[:port]"
 * or "[user@][v6addr]:port": a leaf both connect.c (which makes the jump
 * session) and config.c (whose %C hashes the last hop's host, as OpenSSH
 * 10 does) parse with, so neither reaches into jump.c's pipe. */
#include "jump.h"

#include <stdlib.h>
#include <string.h>

#include "evssh.h"

/* "[ssh://][user@]host[:port]" or "[user@][v6addr]:port" */
int jump_parse_hop(const char *hop, char *user, size_t ulen, char *host, size_t hlen, int *port) {
  *user = 0;
  *port = 0;
  if (strncmp(hop, "ssh://", 6) == 0) hop += 6;
  const char *at = strrchr(hop, '@');
  if (at) {
    if ((size_t)(at - hop) >= ulen || at == hop) return EVSSH_EINVAL;
    memcpy(user, hop, (size_t)(at - hop));
    user[at - hop] = 0;
    hop = at + 1;
  }
  const char *end, *colon;
  if (*hop == '[') {
    end = strchr(hop, ']');
    if (!end) return EVSSH_EINVAL;
    hop++;
    colon = end[1] == ':' ? end + 1 : NULL;
    if (end[1] && !colon) return EVSSH_EINVAL;
  } else {
    colon = strchr(hop, ':');
    end = colon ? colon : hop + strlen(hop);
  }
  if (end == hop || (size_t)(end - hop) >= hlen) return EVSSH_EINVAL;
  memcpy(host, hop, (size_t)(end - hop));
  host[end - hop] = 0;
  if (colon) {
    char *e;
    long p = strtol(colon + 1, &e, 10);
    if (*e || p <= 0 || p > 65535) return EVSSH_EINVAL;
    *port = (int)p;
  }
  return EVSSH_OK;
}
