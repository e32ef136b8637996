/* ProxyJump: a session's byte pipe carried by a direct-tcpip channel of
 * another evssh session (the jump host), which the pipe owns and drives. */
#ifndef EVSSH_JUMP_H
#define EVSSH_JUMP_H

#include "io.h"
#include "session.h"

/* Start the pipe for inner (its options resolved) through the jump list
   spec ("[user@]host[:port][,...]", last hop nearest the target). The
   connector returned drives the jump session(s) for the inner session's
   whole life. EVSSH_OK, or <0 with err filled. */
int jump_start(evssh_session *inner, const char *spec, evssh_connector **out, char *err, size_t errlen);

#endif
