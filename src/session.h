/* The few internal calls into session.c that the files above it need (the
 * connect composition in connect.c, the multi's membership hook, exec's
 * note, the tests' transport access). The session struct itself is
 * private to session.c: nothing here exposes a field. */
#ifndef EVSSH_SESSION_H
#define EVSSH_SESSION_H

#include "config.h"
#include "evssh.h"
#include "io.h"
#include "options.h"
#include "transport.h"

/* ---- connect.c: the connect composition ---- */
evssh_config *session_config(evssh_session *s);
/* true unless ConfigFile / read_config chose a file or none */
bool session_default_config(const evssh_session *s);
/* Read the default config files if due, resolve the options once. On
   failure the session has failed with the message. */
int  session_resolve_options(evssh_session *s, const evssh_options **out);
/* The connect starts: on_ready will report how it ends (from here on a
   failure reaches it). EVSSH_EBUSY / EVSSH_ECLOSED unless the session is new. */
int  session_begin_connect(evssh_session *s, evssh_session_cb on_ready, void *ud);
/* The fd given with evssh_session_set_fd (the caller owns it from now on),
   or -1. */
int  session_take_fd(evssh_session *s);
/* The byte pipe the session connects over (owned from now on). */
void session_set_connector(evssh_session *s, evssh_connector *c);
/* Fail the session (first failure wins); returns code. */
int  session_fail(evssh_session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Set the message evssh_session_error shows without failing the session. */
void session_note(evssh_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Where a service's logs go (exec.c). */
struct evssh_diag *session_diag(evssh_session *s);
/* Callbacks the jump session shares with the one it carries. */
void session_callbacks(const evssh_session *s, evssh_log_cb *log, void **log_ud, int *log_level,
                       evssh_prompt_cb *prompt, void **prompt_ud, evssh_hostkey_cb *check, void **check_ud);

/* ---- services: state that lives as long as the session (forward.c) ----
   cb runs when the session ends (closed, failed, or freed while open) with
   freeing false, after every channel got its on_close; and once more when
   the session is freed, with freeing true, after every channel handle was
   freed: release what hangs off the session then and call nothing on s.
   Hooks run in the order registered. EVSSH_ENOMEM when it cannot be kept. */
typedef void (*session_end_cb)(evssh_session *s, bool freeing, void *ud);
int  session_on_end(evssh_session *s, session_end_cb cb, void *ud);

/* ---- multi.c: a session is in at most one multi; freeing the session
   tells it (detach runs with the session still valid) ---- */
/* the session's shared cache (evssh_session_set_cache), or NULL */
evssh_cache *session_cache(const evssh_session *s);
/* How the session tells its multi. detach: the session is being freed.
   touch(multi, slot): something the multi's view of the session (fd,
   interest, timeout, listen_to set, on_process, busy) depends on may have
   changed: a packet or channel data was queued, a channel's state or
   callbacks changed, the session started connecting, closed or ended, a
   listen_to entry came or went. It runs from inside the session's own
   iterations too (cheap: the multi only marks the slot), never runs user
   code, and lets the multi skip the sessions nothing happened to. slot is
   the multi's own number for the session (session_set_multi_slot when it
   moves). */
typedef struct session_multi_hooks {
  void (*detach)(void *multi, evssh_session *s);
  void (*touch)(void *multi, size_t slot);
} session_multi_hooks;
int  session_set_multi(evssh_session *s, void *multi, const session_multi_hooks *hooks, size_t slot);
void session_set_multi_slot(evssh_session *s, size_t slot);
/* The TCP connect (or proxy start) is under way: the fd may be closed and
   another opened under the same number (one socket per address tried). */
bool session_tcp_connecting(const evssh_session *s);

/* ---- tests ---- */
evssh_transport *session_transport(const evssh_session *s);

#endif
