/* agent_forward.c owns agent forwarding (ssh -A): which local agent socket
 * a session forwards (ForwardAgent PATH or $NAME, else IdentityAgent, else
 * $SSH_AUTH_SOCK, with ssh's "none"), the channel request that asks the
 * server for it (auth-agent-req@openssh.com; the IETF agent protocol's
 * agent-req when a server refuses that name), and the channels the server
 * opens to reach the agent (auth-agent@openssh.com, the old auth-agent, and
 * the IETF agent-connect), each joined to a fresh connection to the agent
 * socket by a relay. Channels of those types are refused unless this
 * session asked for forwarding: a server cannot reach the agent unasked. */
#include "forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define AGENT_REQUEST "auth-agent-req@openssh.com"
#define AGENT_REQUEST_IETF "agent-req"

static const char *const agent_channel_types[] = {"auth-agent@openssh.com", "auth-agent", "agent-connect"};

int agent_forward_configure(fwd_state *st, const evssh_options *o) {
  free(st->agent_sock);
  st->agent_sock = NULL;
  st->agent_configured = true;
  const char *sock = o->forward_agent_sock ? o->forward_agent_sock : o->identity_agent;
  if (sock && !(st->agent_sock = strdup(sock))) return EVSSH_ENOMEM;
  return EVSSH_OK;
}

/* The agent socket to forward to, as ssh finds it. */
static int agent_path(fwd_state *st, char *out, size_t outlen, char *err, size_t errlen) {
  const char *sock = st->agent_sock;
  const char *var = "SSH_AUTH_SOCK";
  if (sock && strcmp(sock, "none") == 0) {
    snprintf(err, errlen, "agent forwarding: no ssh-agent (IdentityAgent none)");
    return EVSSH_EINVAL;
  }
  if (sock && sock[0] == '$') var = sock + 1;
  if (!sock || strcmp(sock, "SSH_AUTH_SOCK") == 0 || sock[0] == '$') {
    sock = getenv(var);
    if (!sock || !*sock) {
      snprintf(err, errlen, "agent forwarding: no ssh-agent: %s is not set", var);
      return EVSSH_EINVAL;
    }
  }
  const char *home = sock[0] == '~' && sock[1] == '/' ? getenv("HOME") : NULL;
  int n = home ? snprintf(out, outlen, "%s%s", home, sock + 1) : snprintf(out, outlen, "%s", sock);
  if (n < 0 || (size_t)n >= outlen || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    snprintf(err, errlen, "agent forwarding: ssh-agent socket path too long: %s", sock);
    return EVSSH_EINVAL;
  }
  return EVSSH_OK;
}

static int agent_addr(fwd_state *st, fwd_addr *a, char *path, size_t pathlen, char *err, size_t errlen) {
  int rc = agent_path(st, path, pathlen, err, errlen);
  if (rc) return rc;
  memset(a, 0, sizeof *a);
  struct sockaddr_un *sun = (struct sockaddr_un *)&a->sa;
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path, strlen(path) + 1);
  a->len = sizeof *sun;
  return EVSSH_OK;
}

/* --------------------------------------------- the server's agent channels */

static const fwd_relay_ops agent_ops = {NULL, NULL, NULL};

static int on_agent_open(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  fwd_state *st = ud;
  if (!st->agent_enabled || st->ended) {
    fwd_log(s, EVSSH_LOG_ERROR, "the server opened an agent channel although agent forwarding was not "
            "requested; refused");
    return 1;   /* administratively prohibited */
  }
  fwd_addr a;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)], err[300];
  if (agent_addr(st, &a, path, sizeof path, err, sizeof err) != EVSSH_OK) {
    fwd_log(s, EVSSH_LOG_ERROR, "%s; the server's agent channel is refused", err);
    return 2;
  }
  char label[300];
  snprintf(label, sizeof label, "agent forwarding to %s", path);
  fwd_relay *r;
  if (relay_new(st, -1, label, &agent_ops, NULL, &r) != EVSSH_OK) return 4;
  int e = relay_connect(r, &a, 1);
  if (e) {
    fwd_log(s, EVSSH_LOG_ERROR, "agent forwarding: cannot connect to ssh-agent at %s: %s; the server's agent "
            "channel is refused", path, strerror(e));
    relay_abort(r, NULL);
    return 2;   /* connect failed: the remote client says it cannot reach its agent */
  }
  /* as Net::SSH marks them: agent traffic keeps no loop busy */
  evssh_channel_set_property(ch, "invisible", (void *)1);
  relay_accept(r, ch);
  return 0;
}

/* --------------------------------------------------------------- request */

typedef struct agent_request {
  evssh_reply_cb cb;
  void *ud;
  bool tried_ietf;
} agent_request;

static void agent_reply(evssh_channel *ch, bool success, void *ud) {
  agent_request *q = ud;
  evssh_session *s = evssh_channel_session(ch);
  if (!success && !q->tried_ietf && evssh_channel_active(ch)) {
    q->tried_ietf = true;
    if (evssh_channel_send_request(ch, AGENT_REQUEST_IETF, NULL, 0, agent_reply, q) == EVSSH_OK) return;
  }
  if (success) fwd_log(s, EVSSH_LOG_DEBUG, "channel %u: agent forwarding accepted", evssh_channel_id(ch));
  else if (evssh_channel_active(ch))
    fwd_log(s, EVSSH_LOG_ERROR, "channel %u: the server refused agent forwarding", evssh_channel_id(ch));
  evssh_reply_cb cb = q->cb;
  void *cb_ud = q->ud;
  free(q);
  if (cb) cb(ch, success, cb_ud);
}

int evssh_channel_request_agent(evssh_channel *ch, evssh_reply_cb cb, void *ud) {
  if (!ch) return EVSSH_EINVAL;
  evssh_session *s = evssh_channel_session(ch);
  if (!evssh_channel_active(ch)) return EVSSH_ECLOSED;
  fwd_state *st = fwd_state_of(s, true);
  if (!st) return EVSSH_ENOMEM;
  fwd_addr a;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)], err[300];
  int rc = agent_addr(st, &a, path, sizeof path, err, sizeof err);
  if (rc) return fwd_error(s, rc, "%s", err);
  /* reachable now, or the program hears it now rather than the remote
     ssh-add later */
  int fd = -1;
  bool in_progress;
  int e = net_connect_addr(&a, &fd, &in_progress);
  if (e) return fwd_error(s, EVSSH_ECONNECT, "agent forwarding: cannot connect to ssh-agent at %s: %s", path, strerror(e));
  close(fd);
  if (!st->agent_handlers) {
    for (size_t i = 0; i < sizeof agent_channel_types / sizeof *agent_channel_types; i++) {
      rc = evssh_session_on_open_channel(s, agent_channel_types[i], on_agent_open, st);
      if (rc) return rc;
    }
    st->agent_handlers = true;
  }
  agent_request *q = calloc(1, sizeof *q);
  if (!q) return EVSSH_ENOMEM;
  q->cb = cb;
  q->ud = ud;
  rc = evssh_channel_send_request(ch, AGENT_REQUEST, NULL, 0, agent_reply, q);
  if (rc) {
    free(q);
    return rc;
  }
  st->agent_enabled = true;
  fwd_log(s, EVSSH_LOG_DEBUG, "channel %u: requesting agent forwarding to %s", evssh_channel_id(ch), path);
  return EVSSH_OK;
}

/* ---------------------------------------------------- ForwardAgent=yes */

typedef struct auto_request {
  void (*done)(evssh_session *s, bool ok, void *ud);
  void *ud;
} auto_request;

static void auto_reply(evssh_channel *ch, bool success, void *ud) {
  auto_request *a = ud;
  evssh_session *s = evssh_channel_session(ch);
  /* sshd keeps the agent for every later session once one asked for it */
  if (evssh_channel_active(ch)) evssh_channel_close(ch);
  void (*done)(evssh_session *, bool, void *) = a->done;
  void *done_ud = a->ud;
  free(a);
  if (done) done(s, success, done_ud);
}

int agent_forward_auto(evssh_session *s, void (*done)(evssh_session *s, bool ok, void *ud), void *ud) {
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  if (!ch) return evssh_session_closed(s) ? EVSSH_ECLOSED : EVSSH_ENOMEM;
  evssh_channel_set_property(ch, "invisible", (void *)1);
  auto_request *a = calloc(1, sizeof *a);
  int rc = a ? EVSSH_OK : EVSSH_ENOMEM;
  if (a) {
    a->done = done;
    a->ud = ud;
    rc = evssh_channel_request_agent(ch, auto_reply, a);
  }
  if (rc) {
    free(a);
    evssh_channel_close(ch);
  }
  return rc;
}
