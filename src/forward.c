/* forward.c owns port forwarding as Net::SSH's session.forward and ssh's
 * -L, -R and -D do it: the per-session forwarding state (created on first
 * use, closed when the session ends, freed with it), local listeners whose
 * connections become direct-tcpip or direct-streamlocal channels, the SOCKS
 * handshake of dynamic listeners (parsed by socks.c), remote forwards
 * (tcpip-forward / streamlocal-forward global requests and the
 * forwarded-tcpip / forwarded-streamlocal channels the server opens for
 * them), cancellation, and the list of forwards. Every connection is a
 * relay (forward_relay.c), which is where memory is bounded. */
#include "forward.h"

#include "base.h"
#include "buf.h"
#include "session.h"
#include "socks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STATE_KEY "evssh.forward"
#define MAX_LISTEN_FDS 4

struct fwd_listener {
  fwd_listener *next;
  fwd_state *st;
  int kind;                    /* EVSSH_FORWARD_LOCAL or _DYNAMIC */
  char *bind_address;          /* as given; NULL: the default */
  int port, bound_port;
  char *path;                  /* a unix listener we created */
  char *host;                  /* local: the target (a path: direct-streamlocal) */
  int hostport;
  int fds[MAX_LISTEN_FDS];
  size_t nfds;
  bool listening;              /* fds are registered */
  bool cancelled;              /* no longer listed; freed with its last connection */
  size_t connections;
  char label[600];
};

struct fwd_remote {
  fwd_remote *next;
  fwd_state *st;
  char *bind_address;          /* as given */
  char *sent;                  /* what the request carried: address or socket path */
  bool is_path;
  int port, bound_port;
  char *host;                  /* the local target */
  int hostport;
  fwd_addr *addrs;
  size_t naddrs;
  evssh_forward_cb cb;
  void *ud;
  bool answered, active, cancelled;
  int refs;                    /* the list, the pending reply, each connection */
  size_t connections;
  char label[600];
};

/* ------------------------------------------------------------ state */

void fwd_log(evssh_session *s, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vlog(session_diag(s), level, fmt, ap);
  va_end(ap);
}

int fwd_error(evssh_session *s, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = base_vasprintf(fmt, ap);
  va_end(ap);
  if (msg) {
    session_note(s, "%s", msg);
    fwd_log(s, EVSSH_LOG_ERROR, "%s", msg);
  }
  free(msg);
  return code;
}

static void close_listener_fds(fwd_listener *l) {
  for (size_t i = 0; i < l->nfds; i++) {
    if (l->listening) evssh_session_stop_listening_to(l->st->s, l->fds[i]);
    close(l->fds[i]);
  }
  l->nfds = 0;
  l->listening = false;
  if (l->path) {
    unlink(l->path);
    free(l->path);
    l->path = NULL;
  }
}

static void free_listener(fwd_listener *l) {
  free(l->bind_address);
  free(l->host);
  free(l->path);
  free(l);
}

static void unlink_listener(fwd_listener *l) {
  fwd_listener **pp = &l->st->listeners;
  while (*pp && *pp != l) pp = &(*pp)->next;
  if (*pp) *pp = l->next;
}

static void remote_unref(fwd_remote *r) {
  if (--r->refs > 0) return;
  free(r->bind_address);
  free(r->sent);
  free(r->host);
  free(r->addrs);
  free(r);
}

/* Off the list; true when it was on it (the list's reference is then the
   caller's to drop). */
static bool unlist_remote(fwd_remote *r) {
  fwd_remote **pp = &r->st->remotes;
  while (*pp && *pp != r) pp = &(*pp)->next;
  if (!*pp) return false;
  *pp = r->next;
  r->next = NULL;
  return true;
}

/* The session ended (freeing false) or is being freed (true). */
static void on_session_end(evssh_session *s, bool freeing, void *ud) {
  fwd_state *st = ud;
  if (!st->ended) {
    st->ended = true;
    for (fwd_listener *l = st->listeners; l; l = l->next) close_listener_fds(l);
    for (fwd_remote *r = st->remotes; r; r = r->next) r->active = false;
    relay_end_all(st);
  }
  if (!freeing) return;
  relay_free_all(st);
  while (st->listeners) {
    fwd_listener *l = st->listeners;
    st->listeners = l->next;
    free_listener(l);
  }
  while (st->remotes) {
    fwd_remote *r = st->remotes;
    st->remotes = r->next;
    r->refs = 1;   /* replies and connections are gone with the session */
    remote_unref(r);
  }
  free(st->agent_sock);
  free(st->setup);
  free(st);
}

fwd_state *fwd_state_of(evssh_session *s, bool create) {
  if (!s) return NULL;
  fwd_state *st = evssh_session_property(s, STATE_KEY);
  if (st || !create) return st;
  st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->s = s;
  st->ended = evssh_session_closed(s);   /* then only the freeing call comes */
  if (evssh_session_set_property(s, STATE_KEY, st) != EVSSH_OK) {
    free(st);
    return NULL;
  }
  if (session_on_end(s, on_session_end, st) != EVSSH_OK) {
    evssh_session_set_property(s, STATE_KEY, NULL);
    free(st);
    return NULL;
  }
  return st;
}

static int usable_state(evssh_session *s, fwd_state **out) {
  if (!s) return EVSSH_EINVAL;
  fwd_state *st = fwd_state_of(s, true);
  if (!st) return EVSSH_ENOMEM;
  if (st->ended || evssh_session_closed(s)) return fwd_error(s, EVSSH_ECLOSED, "forwarding: the session is closed");
  *out = st;
  return EVSSH_OK;
}

/* -------------------------------------------------- local listeners */

static void listener_resume_all(fwd_state *st);

static void listener_connection_ended(fwd_listener *l) {
  l->connections--;
  if (l->cancelled && l->connections == 0 && !l->nfds) {
    unlink_listener(l);
    free_listener(l);
    return;
  }
}

static void local_ended(fwd_relay *r, void *ud) {
  fwd_listener *l = ud;
  fwd_state *st = l->st;
  listener_connection_ended(l);
  /* a listener that ran out of file descriptors tries again now */
  listener_resume_all(st);
}

static const fwd_relay_ops local_ops = {NULL, NULL, local_ended};

/* A connection on a local forward: its channel to the target. */
static void serve_local(fwd_listener *l, int fd) {
  evssh_session *s = l->st->s;
  char peer[64];
  int peer_port;
  net_peer(fd, peer, sizeof peer, &peer_port);
  char label[800];
  snprintf(label, sizeof label, "%s: connection from %s port %d", l->label, peer, peer_port);
  fwd_relay *r;
  if (relay_new(l->st, fd, label, &local_ops, l, &r) != EVSSH_OK) {
    fwd_log(s, EVSSH_LOG_ERROR, "%s: out of memory", label);
    return;
  }
  l->connections++;
  evssh_buf extra = EVSSH_BUF_INIT;
  int rc;
  const char *type;
  if (l->host[0] == '/') {
    type = "direct-streamlocal@openssh.com";
    rc = evssh_buf_put_cstring(&extra, l->host);
    if (!rc) rc = evssh_buf_put_cstring(&extra, "");
    if (!rc) rc = evssh_buf_put_u32(&extra, 0);
  } else {
    type = "direct-tcpip";
    rc = evssh_buf_put_cstring(&extra, l->host);
    if (!rc) rc = evssh_buf_put_u32(&extra, (uint32_t)l->hostport);
    if (!rc) rc = evssh_buf_put_cstring(&extra, peer);
    if (!rc) rc = evssh_buf_put_u32(&extra, (uint32_t)peer_port);
  }
  if (rc) relay_abort(r, "out of memory");
  else relay_open(r, type, buf_ptr(&extra), buf_avail(&extra));
  buf_release(&extra);
}

/* ------------------------------------------------------ dynamic (SOCKS) */

typedef struct socks_conn {
  fwd_listener *l;
  socks_state state;
  uint8_t version;
  char target[SOCKS_MAX_HOST + 16];
  char peer[64];               /* the SOCKS client: the channel's originator */
  int peer_port;
} socks_conn;

static void socks_opened(fwd_relay *r, bool ok, uint32_t reason, const char *description, void *ud) {
  socks_conn *c = ud;
  unsigned char reply[SOCKS_REPLY_MAX];
  size_t n = socks_connect_reply(c->version, ok, reason, description, reply);
  relay_write_first(r, reply, n);
}

static long socks_handshake(fwd_relay *r, const unsigned char *data, size_t len, void *ud) {
  socks_conn *c = ud;
  evssh_session *s = c->l->st->s;
  size_t used = 0;
  for (;;) {
    size_t consumed = 0, reply_len = 0;
    unsigned char reply[SOCKS_REPLY_MAX];
    socks_request req;
    const char *why = NULL;
    socks_result res = socks_feed(&c->state, data + used, len - used, &consumed, &req, reply, &reply_len, &why);
    if (res == SOCKS_MORE) return (long)used;
    if (reply_len) relay_write_first(r, reply, reply_len);
    used += consumed;
    if (res == SOCKS_REPLY) continue;
    if (res == SOCKS_FAIL) {
      fwd_log(s, EVSSH_LOG_INFO, "%s: %s", relay_label(r), why);
      return -1;
    }
    /* SOCKS_CONNECT */
    c->version = req.version;
    net_endpoint(c->target, sizeof c->target, req.host, req.port);
    fwd_log(s, EVSSH_LOG_DEBUG, "%s: SOCKS%u CONNECT %s", relay_label(r), req.version, c->target);
    evssh_buf extra = EVSSH_BUF_INIT;
    int rc = evssh_buf_put_cstring(&extra, req.host);
    if (!rc) rc = evssh_buf_put_u32(&extra, req.port);
    if (!rc) rc = evssh_buf_put_cstring(&extra, c->peer);
    if (!rc) rc = evssh_buf_put_u32(&extra, (uint32_t)c->peer_port);
    if (rc) {
      buf_release(&extra);
      return -1;
    }
    relay_open(r, "direct-tcpip", buf_ptr(&extra), buf_avail(&extra));
    buf_release(&extra);
    return (long)used;
  }
}

static void socks_ended(fwd_relay *r, void *ud) {
  socks_conn *c = ud;
  fwd_listener *l = c->l;
  fwd_state *st = l->st;
  free(c);
  listener_connection_ended(l);
  listener_resume_all(st);
}

static const fwd_relay_ops socks_ops = {socks_opened, socks_handshake, socks_ended};

static void serve_dynamic(fwd_listener *l, int fd) {
  evssh_session *s = l->st->s;
  socks_conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    fwd_log(s, EVSSH_LOG_ERROR, "%s: out of memory", l->label);
    return;
  }
  char label[800];
  net_peer(fd, c->peer, sizeof c->peer, &c->peer_port);
  snprintf(label, sizeof label, "%s: connection from %s port %d", l->label, c->peer, c->peer_port);
  fwd_relay *r;
  if (relay_new(l->st, fd, label, &socks_ops, c, &r) != EVSSH_OK) {
    free(c);
    fwd_log(s, EVSSH_LOG_ERROR, "%s: out of memory", label);
    return;
  }
  c->l = l;
  l->connections++;
}

/* ---------------------------------------------------------- listening */

static void set_listening(fwd_listener *l, bool on);

static void on_accept(evssh_session *s, int fd, int events, void *ud) {
  fwd_listener *l = ud;
  for (int i = 0; i < FWD_ACCEPTS_PER_WAKEUP && l->listening; i++) {
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* no descriptor for it: stop accepting until a connection ends */
        fwd_log(s, EVSSH_LOG_ERROR, "%s: cannot accept: %s; waiting for a connection to end", l->label,
                strerror(errno));
        set_listening(l, false);
      }
      return;
    }
    if (l->kind == EVSSH_FORWARD_DYNAMIC) serve_dynamic(l, c);
    else serve_local(l, c);
  }
}

static void set_listening(fwd_listener *l, bool on) {
  if (on == l->listening) return;
  for (size_t i = 0; i < l->nfds; i++) {
    if (on) evssh_session_listen_to(l->st->s, l->fds[i], EVSSH_READ, on_accept, l);
    else evssh_session_stop_listening_to(l->st->s, l->fds[i]);
  }
  l->listening = on && l->nfds > 0;
}

static void listener_resume_all(fwd_state *st) {
  if (st->ended) return;
  for (fwd_listener *l = st->listeners; l; l = l->next)
    if (!l->cancelled && l->nfds && !l->listening) set_listening(l, true);
}

static bool is_path(const char *s) { return s && s[0] == '/'; }

/* "LocalForward 127.0.0.1:8080 -> example.com:80", for logs and errors */
static void make_label(fwd_listener *l, int port) {
  char where[280], target[280] = "";
  const char *b = l->bind_address;
  net_endpoint(where, sizeof where, b ? (*b ? b : "*") : l->st->gateway_ports ? "*" : "127.0.0.1", port);
  if (l->host) net_endpoint(target, sizeof target, l->host, l->hostport);
  if (l->kind == EVSSH_FORWARD_DYNAMIC) snprintf(l->label, sizeof l->label, "DynamicForward %s", where);
  else snprintf(l->label, sizeof l->label, "LocalForward %s -> %s", where, target);
}

static int add_listener(evssh_session *s, int kind, const char *bind_address, int port, const char *host,
                        int hostport, int *bound_port) {
  fwd_state *st;
  int rc = usable_state(s, &st);
  if (rc) return rc;
  const char *what = kind == EVSSH_FORWARD_DYNAMIC ? "dynamic forward" : "local forward";
  if (!is_path(bind_address) && (port < 0 || port > 65535))
    return fwd_error(s, EVSSH_EINVAL, "%s: bad port %d", what, port);
  if (kind == EVSSH_FORWARD_LOCAL) {
    if (!host || !*host) return fwd_error(s, EVSSH_EINVAL, "local forward: no target host");
    if (!is_path(host) && (hostport <= 0 || hostport > 65535))
      return fwd_error(s, EVSSH_EINVAL, "local forward: bad target port %d", hostport);
  }
  fwd_listener *l = calloc(1, sizeof *l);
  if (!l) return EVSSH_ENOMEM;
  l->st = st;
  l->kind = kind;
  l->port = is_path(bind_address) ? 0 : port;
  l->hostport = is_path(host) ? 0 : hostport;
  if ((bind_address && !(l->bind_address = strdup(bind_address))) || (host && !(l->host = strdup(host)))) {
    free_listener(l);
    return EVSSH_ENOMEM;
  }
  char err[400] = "";
  make_label(l, port);
  if (is_path(bind_address)) {
    int fd = -1;
    rc = net_listen_unix(bind_address, &fd, err, sizeof err);
    if (!rc) {
      l->fds[l->nfds++] = fd;
      if (!(l->path = strdup(bind_address))) rc = EVSSH_ENOMEM;
    }
  } else {
    fwd_addr addrs[MAX_LISTEN_FDS];
    size_t n = 0;
    rc = net_listen_addrs(bind_address, st->gateway_ports, port, addrs, MAX_LISTEN_FDS, &n, err, sizeof err);
    if (!rc) rc = net_listen_tcp(addrs, n, l->fds, &l->nfds, &l->bound_port, err, sizeof err);
  }
  if (rc) {
    close_listener_fds(l);
    rc = fwd_error(s, rc, "%s: %s", l->label, err[0] ? err : evssh_strerror(rc));
    free_listener(l);
    return rc;
  }
  make_label(l, l->bound_port);
  set_listening(l, true);
  if (!l->listening) {
    close_listener_fds(l);
    free_listener(l);
    return EVSSH_ENOMEM;
  }
  /* in the order made */
  fwd_listener **pp = &st->listeners;
  while (*pp) pp = &(*pp)->next;
  *pp = l;
  if (bound_port) *bound_port = l->bound_port;
  fwd_log(s, EVSSH_LOG_INFO, "%s: listening", l->label);
  return EVSSH_OK;
}

int evssh_forward_local(evssh_session *s, const char *bind_address, int port, const char *host, int hostport,
                        int *bound_port) {
  return add_listener(s, EVSSH_FORWARD_LOCAL, bind_address, port, host, hostport, bound_port);
}

int evssh_forward_local_socket(evssh_session *s, const char *local_path, const char *remote_path) {
  if (!is_path(local_path) || !is_path(remote_path)) {
    if (s) fwd_error(s, EVSSH_EINVAL, "local socket forward: both paths must be absolute");
    return EVSSH_EINVAL;
  }
  return add_listener(s, EVSSH_FORWARD_LOCAL, local_path, 0, remote_path, 0, NULL);
}

int evssh_forward_dynamic(evssh_session *s, const char *bind_address, int port, int *bound_port) {
  return add_listener(s, EVSSH_FORWARD_DYNAMIC, bind_address, port, NULL, 0, bound_port);
}

static bool same_bind(const char *a, const char *b) {
  if (!a || !b) return !a && !b;
  return strcmp(a, b) == 0;
}

int evssh_forward_cancel_local(evssh_session *s, const char *bind_address, int port) {
  fwd_state *st = fwd_state_of(s, false);
  for (fwd_listener *l = st ? st->listeners : NULL; l; l = l->next) {
    if (l->cancelled || !same_bind(l->bind_address, bind_address)) continue;
    if (!is_path(bind_address) && port != l->port && port != l->bound_port) continue;
    l->cancelled = true;
    close_listener_fds(l);
    fwd_log(s, EVSSH_LOG_INFO, "%s: cancelled (%zu connections go on)", l->label, l->connections);
    if (l->connections == 0) {
      unlink_listener(l);
      free_listener(l);
    }
    return EVSSH_OK;
  }
  char where[300];
  net_endpoint(where, sizeof where, bind_address ? bind_address : "127.0.0.1", port);
  return s ? fwd_error(s, EVSSH_EINVAL, "no local forward on %s", where) : EVSSH_EINVAL;
}

/* ----------------------------------------------------------- remote */

static void remote_ended(fwd_relay *relay, void *ud) {
  fwd_remote *r = ud;
  r->connections--;
  remote_unref(r);
}

static const fwd_relay_ops remote_ops = {NULL, NULL, remote_ended};

static fwd_remote *find_remote(fwd_state *st, bool path, const char *addr, size_t addr_len, uint32_t port) {
  fwd_remote *by_port = NULL;
  for (fwd_remote *r = st->remotes; r; r = r->next) {
    if (!r->active || r->is_path != path) continue;
    bool addr_match = strlen(r->sent) == addr_len && memcmp(r->sent, addr, addr_len) == 0;
    if (path) {
      if (addr_match) return r;
      continue;
    }
    if (port != (uint32_t)r->bound_port && port != (uint32_t)r->port) continue;
    if (addr_match) return r;
    /* servers report the address in their own words ("127.0.0.1" for
       "localhost"): the port alone decides when nothing matches exactly */
    if (!by_port) by_port = r;
  }
  return by_port;
}

/* A connection the server got on one of our remote forwards. */
static int accept_forwarded(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud, bool path) {
  fwd_state *st = ud;
  const char *addr, *orig = "";
  size_t addr_len, orig_len = 0;
  uint32_t port = 0, orig_port = 0;
  int bad = evssh_read_string(data, &addr, &addr_len);
  if (!bad && !path) bad = evssh_read_u32(data, &port) || evssh_read_string(data, &orig, &orig_len) ||
                           evssh_read_u32(data, &orig_port);
  if (bad) {
    fwd_log(s, EVSSH_LOG_ERROR, "remote forward: malformed %s open from the server; refused",
            path ? "forwarded-streamlocal" : "forwarded-tcpip");
    return 1;
  }
  fwd_remote *r = st->ended ? NULL : find_remote(st, path, addr, addr_len, port);
  if (!r) {
    fwd_log(s, EVSSH_LOG_ERROR, "the server opened a forwarded connection for %.*s port %u, which we did not ask "
            "for (or cancelled); refused", (int)(addr_len > 200 ? 200 : addr_len), addr, port);
    return 1;   /* administratively prohibited */
  }
  char label[800];
  if (path) snprintf(label, sizeof label, "%s: connection", r->label);
  else snprintf(label, sizeof label, "%s: connection from %.*s port %u", r->label, (int)(orig_len > 64 ? 64 : orig_len),
                orig, orig_port);
  fwd_relay *relay;
  if (relay_new(st, -1, label, &remote_ops, r, &relay) != EVSSH_OK) return 4;
  r->connections++;
  r->refs++;
  int e = relay_connect(relay, r->addrs, r->naddrs);
  if (e) {
    fwd_log(s, EVSSH_LOG_ERROR, "%s: connect failed: %s", label, strerror(e));
    relay_abort(relay, NULL);
    return 2;   /* connect failed */
  }
  relay_accept(relay, ch);
  return 0;
}

static int on_forwarded_tcpip(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  return accept_forwarded(s, ch, data, ud, false);
}

static int on_forwarded_streamlocal(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  return accept_forwarded(s, ch, data, ud, true);
}

static void remote_reply(evssh_session *s, bool success, evssh_reader *response, void *ud) {
  fwd_remote *r = ud;
  fwd_state *st = r->st;
  r->answered = true;
  int status = EVSSH_OK;
  if (success) {
    uint32_t got;
    if (!r->is_path && r->port == 0 && evssh_read_u32(response, &got) == EVSSH_OK && got <= 65535) r->bound_port = (int)got;
    else r->bound_port = r->port;
    r->active = !r->cancelled && !st->ended;
    if (r->port == 0 && !r->is_path) fwd_log(s, EVSSH_LOG_INFO, "%s: the server listens on port %d", r->label, r->bound_port);
    else fwd_log(s, EVSSH_LOG_INFO, "%s: the server listens", r->label);
  } else if (evssh_session_closed(s) || st->ended) {
    status = EVSSH_ECLOSED;
  } else {
    status = EVSSH_ECHANNEL;
    if (r->is_path) fwd_log(s, EVSSH_LOG_ERROR, "%s: remote forwarding failed for listen path %s", r->label, r->sent);
    else fwd_log(s, EVSSH_LOG_ERROR, "%s: remote port forwarding failed for listen port %d", r->label, r->port);
  }
  evssh_forward_cb cb = r->cb;
  void *cb_ud = r->ud;
  int bound = status == EVSSH_OK ? r->bound_port : 0;
  /* a refused forward leaves the list; the reply's reference goes too */
  if (status != EVSSH_OK && !r->cancelled && unlist_remote(r)) r->refs--;
  remote_unref(r);
  if (cb) cb(s, status, bound, cb_ud);
}

static int add_remote(evssh_session *s, bool path, const char *bind_address, int port, const char *host, int hostport,
                      evssh_forward_cb cb, void *ud) {
  fwd_state *st;
  int rc = usable_state(s, &st);
  if (rc) return rc;
  if (!path && (port < 0 || port > 65535)) return fwd_error(s, EVSSH_EINVAL, "remote forward: bad port %d", port);
  if (path && !is_path(bind_address)) return fwd_error(s, EVSSH_EINVAL, "remote socket forward: the path must be absolute");
  if (!host || !*host) return fwd_error(s, EVSSH_EINVAL, "remote forward: no local target");
  if (!is_path(host) && (hostport <= 0 || hostport > 65535))
    return fwd_error(s, EVSSH_EINVAL, "remote forward: bad target port %d", hostport);
  fwd_remote *r = calloc(1, sizeof *r);
  if (!r) return EVSSH_ENOMEM;
  r->st = st;
  r->is_path = path;
  r->port = path ? 0 : port;
  r->hostport = is_path(host) ? 0 : hostport;
  r->cb = cb;
  r->ud = ud;
  r->refs = 1;
  /* what ssh sends: no address is "localhost", "*" is every interface */
  const char *sent = path ? bind_address : !bind_address ? "localhost" : strcmp(bind_address, "*") == 0 ? "" : bind_address;
  if ((bind_address && !(r->bind_address = strdup(bind_address))) || !(r->sent = strdup(sent)) ||
      !(r->host = strdup(host))) {
    remote_unref(r);
    return EVSSH_ENOMEM;
  }
  char where[280], target[280], err[300] = "";
  net_endpoint(where, sizeof where, path ? sent : sent[0] ? sent : "*", port);
  net_endpoint(target, sizeof target, host, hostport);
  snprintf(r->label, sizeof r->label, "RemoteForward %s -> %s", where, target);
  rc = net_resolve(host, hostport, &r->addrs, &r->naddrs, err, sizeof err);
  if (rc) {
    remote_unref(r);
    return fwd_error(s, rc, "RemoteForward %s: %s", where, err);
  }
  if (!st->remote_handlers) {
    rc = evssh_session_on_open_channel(s, "forwarded-tcpip", on_forwarded_tcpip, st);
    if (!rc) rc = evssh_session_on_open_channel(s, "forwarded-streamlocal@openssh.com", on_forwarded_streamlocal, st);
    if (rc) {
      remote_unref(r);
      return rc;
    }
    st->remote_handlers = true;
  }
  evssh_buf extra = EVSSH_BUF_INIT;
  rc = evssh_buf_put_cstring(&extra, r->sent);
  if (!rc && !path) rc = evssh_buf_put_u32(&extra, (uint32_t)port);
  r->refs++;   /* the reply's */
  if (!rc)
    rc = evssh_session_send_global_request(s, path ? "streamlocal-forward@openssh.com" : "tcpip-forward",
                                           buf_ptr(&extra), buf_avail(&extra), remote_reply, r);
  buf_release(&extra);
  if (rc) {
    r->refs = 1;
    remote_unref(r);
    return fwd_error(s, rc, "%s: cannot send the request: %s", where, evssh_strerror(rc));
  }
  fwd_remote **pp = &st->remotes;
  while (*pp) pp = &(*pp)->next;
  *pp = r;
  return EVSSH_OK;
}

int evssh_forward_remote(evssh_session *s, const char *bind_address, int port, const char *host, int hostport,
                         evssh_forward_cb cb, void *ud) {
  if (is_path(bind_address)) return add_remote(s, true, bind_address, 0, host, hostport, cb, ud);
  return add_remote(s, false, bind_address, port, host, hostport, cb, ud);
}

int evssh_forward_remote_socket(evssh_session *s, const char *remote_path, const char *host, int hostport,
                                evssh_forward_cb cb, void *ud) {
  return add_remote(s, true, remote_path, 0, host, hostport, cb, ud);
}

static void cancel_reply(evssh_session *s, bool success, evssh_reader *response, void *ud) {
  fwd_remote *r = ud;
  if (!success && !evssh_session_closed(s))
    fwd_log(s, EVSSH_LOG_ERROR, "%s: the server refused to cancel it", r->label);
  remote_unref(r);
}

int evssh_forward_cancel_remote(evssh_session *s, const char *bind_address, int port) {
  fwd_state *st = fwd_state_of(s, false);
  bool path = is_path(bind_address);
  for (fwd_remote *r = st ? st->remotes : NULL; r; r = r->next) {
    if (r->cancelled || r->is_path != path || !same_bind(r->bind_address, bind_address)) continue;
    if (!path && port != r->port && port != r->bound_port) continue;
    r->cancelled = true;
    r->active = false;
    evssh_buf extra = EVSSH_BUF_INIT;
    int rc = evssh_buf_put_cstring(&extra, r->sent);
    if (!rc && !path) rc = evssh_buf_put_u32(&extra, (uint32_t)(r->bound_port ? r->bound_port : r->port));
    r->refs++;
    if (!rc)
      rc = evssh_session_send_global_request(s, path ? "cancel-streamlocal-forward@openssh.com" : "cancel-tcpip-forward",
                                             buf_ptr(&extra), buf_avail(&extra), cancel_reply, r);
    if (rc) r->refs--;
    buf_release(&extra);
    fwd_log(s, EVSSH_LOG_INFO, "%s: cancelled", r->label);
    if (unlist_remote(r)) remote_unref(r);
    return rc;
  }
  char where[300];
  net_endpoint(where, sizeof where, bind_address ? bind_address : "localhost", port);
  return s ? fwd_error(s, EVSSH_EINVAL, "no remote forward on %s", where) : EVSSH_EINVAL;
}

/* ------------------------------------------------------------- list */

size_t evssh_forward_list(evssh_session *s, evssh_forward_info *out, size_t max) {
  fwd_state *st = fwd_state_of(s, false);
  if (!st) return 0;
  size_t n = 0;
  for (fwd_listener *l = st->listeners; l; l = l->next) n += !l->cancelled;
  for (fwd_remote *r = st->remotes; r; r = r->next) n += !r->cancelled;
  size_t i = 0;
  for (fwd_listener *l = st->listeners; l && i < max; l = l->next) {
    if (l->cancelled) continue;
    out[i++] = (evssh_forward_info){l->kind, l->bind_address, l->port, l->bound_port, l->host, l->hostport,
                                    l->nfds > 0, l->connections};
  }
  for (fwd_remote *r = st->remotes; r && i < max; r = r->next) {
    if (r->cancelled) continue;
    out[i++] = (evssh_forward_info){EVSSH_FORWARD_REMOTE, r->bind_address, r->port, r->active ? r->bound_port : 0,
                                    r->host, r->hostport, r->active, r->connections};
  }
  return n;
}
