/* The environment a session channel gets before its command: ssh_config's
 * SendEnv (variables of this process whose names match) and SetEnv
 * (NAME=VALUE items), sent as "env" requests in that order, as ssh sends
 * them on its session channel before exec, shell or subsystem. */
#ifndef EVSSH_SESSION_ENV_H
#define EVSSH_SESSION_ENV_H

#include "base.h"
#include "evssh.h"
#include "options.h"

/* Queue the env requests for ch (a "session" channel just opened, so they
   go out right after its confirmation and before any request the program
   issues next). Requests without want-reply, as ssh sends them; the
   server's AcceptEnv decides. EVSSH_OK or EVSSH_ENOMEM. */
int session_env_send(evssh_channel *ch, const evssh_options *o, const evssh_diag *d);

#endif
