/* User authentication (RFC 4252, 4256, 8332) as session.c sees it: started
 * once the first key exchange is done, fed messages 50..79, reporting
 * upward only through auth_events (success, failure with the whole
 * message, and the application's prompt). */
#ifndef EVSSH_AUTH_H
#define EVSSH_AUTH_H

#include "base.h"
#include "options.h"
#include "transport.h"

typedef struct evssh_auth evssh_auth;

typedef struct auth_events {
  /* the server accepted us: the connection layer may open */
  int  (*done)(void *ctx);
  /* authentication is over without success (or the peer broke the
     protocol): code and the whole message; the session ends */
  void (*fail)(void *ctx, int code, const char *message);
  /* ask the application (password, keyboard-interactive prompt, key
     passphrase): 0 and answer filled, or -1 when it declines */
  int  (*prompt)(void *ctx, const char *prompt, bool echo, char *answer, size_t size);
} auth_events;

typedef struct auth_params {
  evssh_transport *transport;
  evssh_diag *diag;
  const evssh_options *opt;
  const char *password;      /* NULL: none set */
  bool can_prompt;           /* the application set a prompt callback */
  const auth_events *ev;
  void *ctx;
  evssh_cache *cache;        /* the session's shared cache, or NULL */
} auth_params;

int  auth_start(const auth_params *p, evssh_auth **out);
int  auth_handle_packet(evssh_auth *a, uint8_t msg, evssh_reader *body);
void auth_free(evssh_auth *a);   /* NULL ok */

#endif
