/* ProxyJump: a session's byte pipe carried by a direct-tcpip channel of
 * another evssh session (the jump host), which the pipe owns and drives.
 * Built only on the public session and channel API plus io.h's pipe hooks;
 * connect.c makes the jump session and starts its connect. */
#ifndef EVSSH_JUMP_H
#define EVSSH_JUMP_H

#include "io.h"

/* "[ssh://][user@]host[:port]" or "[user@][v6addr]:port" */
int jump_parse_hop(const char *hop, char *user, size_t ulen, char *host, size_t hlen, int *port);
/* The pipe to target:target_port through outer (not connected yet; owned by
   the pipe from here on, freed on failure too). The caller then connects
   outer with evssh_session_connect_async(outer, *on_ready, *ready_ud) and
   calls jump_started(*ready_ud). The connector drives outer for the carried
   session's whole life. EVSSH_OK, or <0 with err filled. */
int  jump_start(evssh_session *outer, const char *target, int target_port, evssh_connector **out,
                evssh_session_cb *on_ready, void **ready_ud, char *err, size_t errlen);
void jump_started(void *ready_ud);

#endif
