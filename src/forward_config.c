/* forward_config.c owns the forwarding that ssh_config asks for: after
 * authentication, as ssh does, it sets up every LocalForward and
 * DynamicForward (listening at once), sends every RemoteForward, asks for
 * agent forwarding when ForwardAgent says so, and only then lets the
 * program's on_ready run: at once when nothing waits for the server, else
 * once the server answered every RemoteForward. With ExitOnForwardFailure
 * a forward that cannot be set up fails the connect with its message;
 * without it the failure is logged and the session goes on. connect.c
 * calls in here; the forwards themselves are made through the public
 * calls of forward.c and agent_forward.c. */
#include "forward.h"

#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fwd_setup {
  evssh_session_cb on_ready;
  void *ud;
  bool running, finished;
  int pending;                 /* server answers still awaited */
  bool exit_on_failure;
  int failure_code;            /* the first failure */
  char failure[700];
  void (*fail)(evssh_session *s, int code, const char *message);   /* connect.c's */
};

int forward_connect_prepare(evssh_session *s, evssh_session_cb on_ready, void *ud) {
  fwd_state *st = fwd_state_of(s, true);
  if (!st) return EVSSH_ENOMEM;
  if (!st->setup && !(st->setup = calloc(1, sizeof *st->setup))) return EVSSH_ENOMEM;
  memset(st->setup, 0, sizeof *st->setup);
  st->setup->on_ready = on_ready;
  st->setup->ud = ud;
  return EVSSH_OK;
}

bool forward_setup_pending(evssh_session *s) {
  fwd_state *st = fwd_state_of(s, false);
  return st && st->setup && st->setup->running && !st->setup->finished;
}

static void finish(evssh_session *s, struct fwd_setup *u, int status) {
  if (u->finished) return;
  u->finished = true;
  u->running = false;
  evssh_session_cb cb = u->on_ready;
  void *ud = u->ud;
  u->on_ready = NULL;
  if (cb) cb(s, status, ud);
}

/* the forward's own message (it names the forward) is the failure's */
static void failed(evssh_session *s, struct fwd_setup *u, int code, const char *what) {
  if (u->failure_code) return;
  u->failure_code = code ? code : EVSSH_ECONNECT;
  const char *msg = evssh_session_error(s);
  snprintf(u->failure, sizeof u->failure, "%s", msg[0] ? msg : what);
}

/* Every answer is in: the connect is over, one way or the other. */
static void maybe_finish(evssh_session *s, struct fwd_setup *u) {
  if (u->pending > 0 || u->finished) return;
  int status = EVSSH_OK;
  if (evssh_session_closed(s)) {
    status = EVSSH_ECLOSED;
  } else if (u->failure_code && u->exit_on_failure) {
    status = u->failure_code;
    if (u->fail) u->fail(s, status, u->failure);
  }
  finish(s, u, status);
}

static void remote_done(evssh_session *s, int status, int bound_port, void *ud) {
  fwd_state *st = fwd_state_of(s, false);
  struct fwd_setup *u = st ? st->setup : NULL;
  if (!u || u->finished) return;
  if (status != EVSSH_OK && !u->failure_code) {
    u->failure_code = status == EVSSH_ECLOSED ? EVSSH_ECLOSED : EVSSH_ECONNECT;
    snprintf(u->failure, sizeof u->failure, "%s", (const char *)ud);
  }
  free(ud);
  u->pending--;
  maybe_finish(s, u);
}

static void agent_done(evssh_session *s, bool ok, void *ud) {
  fwd_state *st = fwd_state_of(s, false);
  struct fwd_setup *u = st ? st->setup : NULL;
  if (!u || u->finished) return;
  /* ExitOnForwardFailure is about port forwards; a refused agent was logged */
  u->pending--;
  maybe_finish(s, u);
}

static void setup_one(evssh_session *s, struct fwd_setup *u, fwd_spec_kind kind, const forward_spec *f) {
  char *text = forward_spec_format(kind, f);
  char what[400];
  snprintf(what, sizeof what, "%s %s", kind == FWD_SPEC_LOCAL ? "LocalForward" : kind == FWD_SPEC_REMOTE ?
           "RemoteForward" : "DynamicForward", text ? text : "");
  free(text);
  const char *listen = f->listen_path ? f->listen_path : f->listen_host;
  const char *target = f->connect_path ? f->connect_path : f->connect_host;
  int rc;
  if (kind == FWD_SPEC_LOCAL) {
    rc = evssh_forward_local(s, listen, f->listen_port, target, f->connect_port, NULL);
  } else if (kind == FWD_SPEC_DYNAMIC) {
    rc = evssh_forward_dynamic(s, listen, f->listen_port, NULL);
  } else {
    char msg[700];
    snprintf(msg, sizeof msg, "%s: the server refused it (%s)", what,
             f->listen_path ? "remote forwarding failed for listen path" : "remote port forwarding failed");
    char *ctx = strdup(msg);
    if (!ctx) rc = EVSSH_ENOMEM;
    else {
      u->pending++;
      rc = evssh_forward_remote(s, listen, f->listen_port, target, f->connect_port, remote_done, ctx);
      if (rc) {
        u->pending--;
        free(ctx);
      }
    }
  }
  if (rc) failed(s, u, rc, what);
}

void forward_connect_ready(evssh_session *s, int status, const evssh_options *o,
                           void (*fail)(evssh_session *s, int code, const char *message)) {
  fwd_state *st = fwd_state_of(s, false);
  struct fwd_setup *u = st ? st->setup : NULL;
  if (!u) return;
  if (status != EVSSH_OK || !o) {
    finish(s, u, status ? status : EVSSH_ENOMEM);
    return;
  }
  u->fail = fail;
  u->running = true;
  u->exit_on_failure = o->exit_on_forward_failure;
  st->gateway_ports = o->gateway_ports;
  if (agent_forward_configure(st, o) != EVSSH_OK) failed(s, u, EVSSH_ENOMEM, "ForwardAgent");
  u->pending++;   /* until every request below went out */
  for (size_t i = 0; i < o->n_local_forwards && !u->finished; i++) setup_one(s, u, FWD_SPEC_LOCAL, &o->local_forwards[i]);
  for (size_t i = 0; i < o->n_dynamic_forwards && !u->finished; i++)
    setup_one(s, u, FWD_SPEC_DYNAMIC, &o->dynamic_forwards[i]);
  /* ssh gives up before it asks the server for anything more */
  bool give_up = u->failure_code && u->exit_on_failure;
  for (size_t i = 0; i < o->n_remote_forwards && !give_up && !u->finished; i++)
    setup_one(s, u, FWD_SPEC_REMOTE, &o->remote_forwards[i]);
  if (o->forward_agent && !give_up && !u->finished) {
    u->pending++;
    int rc = agent_forward_auto(s, agent_done, NULL);
    if (rc) {
      u->pending--;
      fwd_log(s, EVSSH_LOG_INFO, "ForwardAgent: %s; not forwarding the agent", evssh_session_error(s));
    }
  }
  u->pending--;
  maybe_finish(s, u);
}
