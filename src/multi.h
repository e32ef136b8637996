/* Additions to the public multi API, to be moved into include/evssh.h
 * (REQUEST-multi.md): a whole evssh_multi inside another event loop, the
 * way a single session goes through evssh_session_fd / _timeout. */
#ifndef EVSSH_MULTI_H
#define EVSSH_MULTI_H

#include "evssh.h"

/* One fd standing for every member's fd and listen_to fd: it is readable
   when any of them is ready. Poll it for reading only. */
EVSSH_API int evssh_multi_fd(const evssh_multi *m);
/* Brings the multi's interest up to date and returns how long the caller
   may wait on evssh_multi_fd before calling evssh_multi_process(m, 0, ...):
   ms, -1 no timer, 0 work to do now. Call it right before every wait. */
EVSSH_API int evssh_multi_timeout(evssh_multi *m);

#endif
