/* session.c is the composition root: it owns the session struct (private to
 * this file), its options, the connect phases (byte pipe, version exchange
 * and key exchange, authentication) as one non-blocking state machine with
 * a single deadline, the inbox of received packets and their routing to
 * auth or the connection layer, the listen_to set, properties, graceful and
 * hard close, and the one loop iteration every driver runs:
 *
 *   evssh_session_handle_events(s, revents):
 *     1. I/O: connect step, or the transport's read/write; what it reads is
 *        only queued in the inbox, never handed up from inside the transport
 *     2. dispatch every packet in the inbox (auth or connection callbacks)
 *     3. each open channel's on_process, once
 *     4. flush: channel queues into the transport, the transport to the
 *        socket, on_drain callbacks
 *     5. timers: keepalive, connect and close deadlines
 *
 * Drivers (loop.c, multi.c, a foreign loop) poll evssh_session_fd/events
 * and the listen_to fds for evssh_session_timeout, run the listen_to
 * callbacks of ready fds (evssh_session_handle_listener), then call
 * handle_events. The timeout is 0 while anything could be done without new
 * I/O (inbox not empty, queued data a window allows), so no driver sleeps
 * with bytes it could send.
 *
 * Because user callbacks never run inside the transport, any callback may
 * run a nested loop (evssh_channel_wait, exec_wait, process). One guard,
 * `depth` (iterations and callbacks of this session on the stack), keeps
 * retired channels alive while anything runs: they are reaped when the loop
 * is next entered with depth 0. The layers report upward through tables:
 * transport (evssh_transport_handler), auth (auth_events), connection
 * (conn_events), trust (trust_events). */
#include "session.h"

#include "auth.h"
#include "base.h"
#include "buf.h"
#include "cache.h"
#include "connection.h"
#include "hostkey.h"
#include "registry.h"
#include "session_env.h"
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* the phases after the TCP connect are bounded even without ConnectTimeout */
#define DEFAULT_PHASE_TIMEOUT_MS 60000
/* a graceful close waits this long for the peer's CLOSEs */
#define CLOSE_GRACE_MS 3000
/* exec_wait's default output limit (evssh_session_set_exec_limit) */
#define EXEC_LIMIT_DEFAULT (64u * 1024u * 1024u)
/* received packets kept for reuse, and the largest kept */
#define INBOX_SPARES 4
#define INBOX_SPARE_MAX (64u * 1024u)

typedef enum {
  SESSION_NEW = 0,     /* options being set */
  SESSION_CONNECTING,  /* resolving / TCP connect / proxy */
  SESSION_KEX,         /* version exchange and first key exchange */
  SESSION_AUTH,        /* userauth */
  SESSION_READY,       /* connection layer open */
  SESSION_CLOSING,     /* graceful close under way */
  SESSION_CLOSED,      /* over: error or closed */
} session_state;

typedef enum {
  CONFIG_DEFAULT = 0,  /* ~/.ssh/config and /etc/ssh/ssh_config read at connect */
  CONFIG_EXPLICIT,     /* a file was given (ConfigFile / read_config) */
  CONFIG_NONE,         /* ConfigFile=none */
} config_mode;

typedef struct listener {
  int fd;
  int events;
  evssh_io_cb cb;
  void *ud;
  bool removed;        /* dropped while callbacks ran; compacted at depth 0 */
} listener;

/* A received packet waiting for dispatch: message byte first. */
typedef struct inbox_packet {
  struct inbox_packet *next;
  uint32_t seq;
  size_t len, cap;
  unsigned char data[];
} inbox_packet;

struct evssh_session {
  char *host;                   /* as given (alias) */
  session_state state;
  evssh_diag diag;
  evssh_config *config;
  config_mode config_mode;
  evssh_cache *cache;           /* shared key / known_hosts cache, held; or NULL */
  evssh_options opt;
  bool opt_resolved;

  int fd;                       /* transport fd, -1 before connect */
  int given_fd;                 /* evssh_session_set_fd's, until the connect takes it; -1 none */
  int sys_errno;                /* errno behind the last EVSSH_ECONNECT, 0 none */
  evssh_transport *transport;
  evssh_connector *connector;
  pid_t proxy_pid;              /* ProxyCommand child, 0 none */
  evssh_auth *auth;
  evssh_conn *conn;
  unsigned char *hostkey_blob;  /* the server's, for evssh_session_host_key */
  size_t hostkey_len;
  char hostkey_type[64];

  int64_t connect_deadline_ms;  /* monotonic ms, 0 none */
  evssh_session_cb on_ready; void *on_ready_ud;
  evssh_session_cb on_closed; void *on_closed_ud;
  int64_t close_deadline_ms;    /* CLOSING: give up waiting then */

  char *password;               /* wiped on free */
  evssh_prompt_cb prompt; void *prompt_ud;
  evssh_hostkey_cb hostkey_check; void *hostkey_check_ud;
  registry properties;

  listener *listeners;
  size_t nlisteners, listeners_cap;

  inbox_packet *inbox_head, *inbox_tail, *spares;
  size_t nspares;

  int depth;                    /* iterations and callbacks on the stack */
  bool again;                   /* on_process moved data: iterate without sleeping */
  size_t exec_limit;
  void *multi;
  const session_multi_hooks *multi_hooks;
  size_t multi_slot;
  struct end_hook { session_end_cb cb; void *ud; } *end_hooks;   /* services' state */
  size_t n_end_hooks;
};

/* ---------------------------------------------------------------- errors */

static void session_teardown(evssh_session *s);
static void touched(evssh_session *s);

static void run_end_hooks(evssh_session *s, bool freeing) {
  for (size_t i = 0; i < s->n_end_hooks; i++) s->end_hooks[i].cb(s, freeing, s->end_hooks[i].ud);
}

int session_on_end(evssh_session *s, session_end_cb cb, void *ud) {
  if (!s || !cb) return EVSSH_EINVAL;
  struct end_hook *v = realloc(s->end_hooks, (s->n_end_hooks + 1) * sizeof *v);
  if (!v) return EVSSH_ENOMEM;
  v[s->n_end_hooks++] = (struct end_hook){cb, ud};
  s->end_hooks = v;
  return EVSSH_OK;
}

/* The session is over: release the connection, and tell a caller still
   waiting for the connect (or the close) how it ended. */
static void session_end(evssh_session *s, int code) {
  session_state was = s->state;
  s->state = SESSION_CLOSED;
  touched(s);
  s->depth++;
  session_teardown(s);
  run_end_hooks(s, false);
  if (was < SESSION_READY && s->on_ready) {
    evssh_session_cb cb = s->on_ready;
    s->on_ready = NULL;
    cb(s, code, s->on_ready_ud);
  }
  if (s->on_closed) {
    evssh_session_cb cb = s->on_closed;
    s->on_closed = NULL;
    cb(s, code, s->on_closed_ud);
  }
  s->depth--;
}

/* The first failure is the session's (a layer may have recorded it with
   its whole message already); either way the session ends now. */
static int session_vfail(evssh_session *s, int code, const char *fmt, va_list ap) {
  if (s->diag.error_code == 0) {
    char *msg = base_vasprintf(fmt, ap);
    diag_fail(&s->diag, code, "%s", msg ? msg : evssh_strerror(code));
    free(msg);
  }
  code = s->diag.error_code;
  if (s->state != SESSION_CLOSED) session_end(s, code);
  return code;
}

int session_fail(evssh_session *s, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = session_vfail(s, code, fmt, ap);
  va_end(ap);
  return rc;
}

void session_note(evssh_session *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = base_vasprintf(fmt, ap);
  va_end(ap);
  if (msg) diag_note(&s->diag, "%s", msg);
  free(msg);
}

const char *evssh_session_error(const evssh_session *s) {
  if (!s) return "no session";
  return s->diag.error ? s->diag.error : "";
}

bool evssh_session_closed(const evssh_session *s) { return !s || s->state == SESSION_CLOSED; }
bool evssh_session_connecting(const evssh_session *s) {
  return s && (s->state == SESSION_CONNECTING || s->state == SESSION_KEX || s->state == SESSION_AUTH);
}
const char *evssh_session_host(const evssh_session *s) { return s ? s->host : NULL; }

void evssh_session_set_log(evssh_session *s, int level, evssh_log_cb cb, void *ud) {
  if (!s) return;
  s->diag.log_level = level;
  s->diag.log_cb = cb;
  s->diag.log_ud = ud;
  if (s->transport) transport_set_log_level(s->transport, level);
}

/* ---------------------------------------------------------- construction */

static const conn_events conn_handler;

evssh_session *evssh_session_new(const char *host) {
  if (!host || !*host) return NULL;
  evssh_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->host = strdup(host);
  s->fd = -1;
  s->given_fd = -1;
  s->exec_limit = EXEC_LIMIT_DEFAULT;
  s->diag.owner = s;
  s->diag.label = s->host;
  if (!s->host || evssh_config_new(&s->config) != EVSSH_OK ||
      conn_new(s, &s->diag, &conn_handler, s, &s->conn) != EVSSH_OK) {
    evssh_config_free(s->config);
    free(s->host);
    free(s);
    return NULL;
  }
  const char *dbg = getenv("EVSSH_DEBUG");
  if (dbg && *dbg >= '1' && *dbg <= '4') s->diag.log_level = *dbg - '0';
  return s;
}

int evssh_session_read_config(evssh_session *s, const char *path) {
  if (!s) return EVSSH_EINVAL;
  if (s->state != SESSION_NEW) {
    session_note(s, "ConfigFile: the session is already connecting");
    return EVSSH_EINVAL;
  }
  /* "none" turns the default ~/.ssh/config off, as ssh -F none does */
  if (path && strcmp(path, "none") == 0) {
    s->config_mode = CONFIG_NONE;
    return EVSSH_OK;
  }
  char err[700] = "";
  int rc = cache_config_read_file(s->cache, s->config, path, s->host, err, sizeof err);
  s->config_mode = CONFIG_EXPLICIT;
  if (rc) session_note(s, "%s", err[0] ? err : "cannot read config");
  return rc;
}

int evssh_session_option(evssh_session *s, const char *keyword, const char *value) {
  if (!s || !keyword || !value) return EVSSH_EINVAL;
  if (s->state != SESSION_NEW) {
    session_note(s, "option %s: the session is already connecting", keyword);
    return EVSSH_EINVAL;
  }
  /* ConfigFile is ssh's -F: a config file instead of ~/.ssh/config, or none */
  if (strcasecmp(keyword, "ConfigFile") == 0) return evssh_session_read_config(s, value);
  char err[700] = "";
  int rc = options_check(keyword, value, err, sizeof err);
  if (!rc) rc = evssh_config_set(s->config, keyword, value, err, sizeof err);
  if (rc) session_note(s, "%s", err[0] ? err : "invalid option");
  return rc;
}

int evssh_session_set_password(evssh_session *s, const char *password) {
  if (!s) return EVSSH_EINVAL;
  if (s->password) {
    OPENSSL_cleanse(s->password, strlen(s->password));
    free(s->password);
    s->password = NULL;
  }
  if (password && !(s->password = strdup(password))) return EVSSH_ENOMEM;
  return EVSSH_OK;
}

void evssh_session_set_prompt(evssh_session *s, evssh_prompt_cb cb, void *ud) {
  if (!s) return;
  s->prompt = cb;
  s->prompt_ud = ud;
}

void evssh_session_set_hostkey_check(evssh_session *s, evssh_hostkey_cb cb, void *ud) {
  if (!s) return;
  s->hostkey_check = cb;
  s->hostkey_check_ud = ud;
}

int evssh_session_set_property(evssh_session *s, const char *key, void *value) {
  if (!s || !key) return EVSSH_EINVAL;
  return registry_set(&s->properties, key, NULL, value);
}

void *evssh_session_property(const evssh_session *s, const char *key) {
  if (!s) return NULL;
  return registry_value(&s->properties, key);
}

int evssh_session_set_exec_limit(evssh_session *s, size_t bytes) {
  if (!s || bytes == 0) return EVSSH_EINVAL;
  s->exec_limit = bytes;
  return EVSSH_OK;
}

size_t evssh_session_exec_limit(const evssh_session *s) { return s ? s->exec_limit : 0; }

int evssh_session_set_max_peer_channels(evssh_session *s, size_t max) {
  if (!s) return EVSSH_EINVAL;
  conn_set_max_peer_channels(s->conn, max);
  return EVSSH_OK;
}

/* ------------------------------------------------------ internal accessors */

evssh_config *session_config(evssh_session *s) { return s->config; }
evssh_diag *session_diag(evssh_session *s) { return &s->diag; }
bool session_default_config(const evssh_session *s) { return s->config_mode == CONFIG_DEFAULT; }
evssh_transport *session_transport(const evssh_session *s) { return s ? s->transport : NULL; }

void session_callbacks(const evssh_session *s, evssh_log_cb *log, void **log_ud, int *log_level,
                       evssh_prompt_cb *prompt, void **prompt_ud, evssh_hostkey_cb *check, void **check_ud) {
  *log = s->diag.log_cb;
  *log_ud = s->diag.log_ud;
  *log_level = s->diag.log_level;
  *prompt = s->prompt;
  *prompt_ud = s->prompt_ud;
  *check = s->hostkey_check;
  *check_ud = s->hostkey_check_ud;
}

int session_set_multi(evssh_session *s, void *multi, const session_multi_hooks *hooks, size_t slot) {
  if (multi && s->multi && s->multi != multi) return EVSSH_EBUSY;
  s->multi = multi;
  s->multi_hooks = multi ? hooks : NULL;
  s->multi_slot = slot;
  return EVSSH_OK;
}

void session_set_multi_slot(evssh_session *s, size_t slot) { s->multi_slot = slot; }

bool session_tcp_connecting(const evssh_session *s) { return s && s->state == SESSION_CONNECTING; }

/* See session_multi_hooks: the multi's view of this session may be stale. */
static void touched(evssh_session *s) {
  if (s->multi_hooks && s->multi_hooks->touch) s->multi_hooks->touch(s->multi, s->multi_slot);
}
static void on_layer_wake(void *ctx) { touched(ctx); }

int session_resolve_options(evssh_session *s, const evssh_options **out) {
  if (!s->opt_resolved) {
    char err[700] = "";
    if (s->config_mode == CONFIG_DEFAULT) {
      int rc = cache_config_read_file(s->cache, s->config, NULL, s->host, err, sizeof err);
      if (rc) return session_fail(s, EVSSH_EINVAL, "%s", err);
    }
    /* with ConfigFile none no file gave the config the cache: %C in the
       program's own options goes through it too */
    if (s->cache) cache_config_use(s->config, s->cache);
    char *msg = NULL;
    int rc = options_resolve(s->config, s->host, &s->opt, &msg);
    if (rc) {
      session_fail(s, rc, "%s", msg ? msg : evssh_strerror(rc));
      free(msg);
      return rc;
    }
    s->opt_resolved = true;
    conn_set_keepalive(s->conn, s->opt.alive_interval_s, s->opt.alive_count_max);
  }
  *out = &s->opt;
  return EVSSH_OK;
}

/* ------------------------------------------------------------------ inbox */

/* The transport hands every packet for the layers above here and returns at
   once; dispatch happens in the iteration, outside the transport, which is
   what lets callbacks run nested loops. */
static int inbox_push(evssh_session *s, uint8_t msg, const evssh_reader *body) {
  size_t len = 1 + body->left;
  /* a kept packet big enough: no allocation on the data path */
  inbox_packet **pp = &s->spares;
  while (*pp && (*pp)->cap < len) pp = &(*pp)->next;
  inbox_packet *p = *pp;
  if (p) {
    *pp = p->next;
    s->nspares--;
  } else {
    size_t cap = (len + 4095) & ~(size_t)4095;   /* whole pages: one size serves a run of data packets */
    p = malloc(sizeof *p + cap);
    if (!p) return EVSSH_ENOMEM;
    p->cap = cap;
  }
  p->next = NULL;
  p->seq = transport_last_seq(s->transport);
  p->len = len;
  p->data[0] = msg;
  if (body->left) memcpy(p->data + 1, body->p, body->left);
  if (s->inbox_tail) s->inbox_tail->next = p; else s->inbox_head = p;
  s->inbox_tail = p;
  return EVSSH_OK;
}

/* Keep a few packets for reuse, the larger ones when there are too many:
   a run of data packets then allocates nothing. */
static void inbox_recycle(evssh_session *s, inbox_packet *p) {
  if (p->cap > INBOX_SPARE_MAX) {
    free(p);
    return;
  }
  if (s->nspares == INBOX_SPARES) {
    inbox_packet **smallest = &s->spares;
    for (inbox_packet **q = &s->spares; *q; q = &(*q)->next)
      if ((*q)->cap < (*smallest)->cap) smallest = q;
    if ((*smallest)->cap >= p->cap) {
      free(p);
      return;
    }
    inbox_packet *gone = *smallest;
    *smallest = gone->next;
    free(gone);
    s->nspares--;
  }
  p->next = s->spares;
  s->spares = p;
  s->nspares++;
}

static void inbox_free(evssh_session *s) {
  while (s->inbox_head) {
    inbox_packet *p = s->inbox_head;
    s->inbox_head = p->next;
    free(p);
  }
  s->inbox_tail = NULL;
  while (s->spares) {
    inbox_packet *p = s->spares;
    s->spares = p->next;
    free(p);
  }
  s->nspares = 0;
}

static int route_packet(evssh_session *s, uint8_t msg, evssh_reader *body, uint32_t seq) {
  if (s->state == SESSION_AUTH) return auth_handle_packet(s->auth, msg, body);
  if (s->state == SESSION_READY || s->state == SESSION_CLOSING) {
    /* the connection layer answers numbers it does not know (local
       extensions 128..255 included) with UNIMPLEMENTED */
    if (msg >= 80) return conn_handle_packet(s->conn, msg, body, seq);
    if (msg == SSH_MSG_USERAUTH_BANNER) return EVSSH_OK; /* allowed late, ignored */
  }
  return session_fail(s, EVSSH_EPROTO, "%s port %d: unexpected message %u from server", s->opt.hostname,
                      s->opt.port, msg);
}

/* Dispatch in order; a nested loop run from a callback dispatches the
   packets after ours, each level owning the packet it took. */
static int inbox_dispatch(evssh_session *s) {
  int rc = EVSSH_OK;
  while (rc >= 0 && s->inbox_head && s->state != SESSION_CLOSED) {
    inbox_packet *p = s->inbox_head;
    s->inbox_head = p->next;
    if (!s->inbox_head) s->inbox_tail = NULL;
    evssh_reader body = reader_of(p->data + 1, p->len - 1);
    rc = route_packet(s, p->data[0], &body, p->seq);
    inbox_recycle(s, p);
  }
  return rc;
}

/* ------------------------------------------------------ upward tables */

static int on_transport_packet(void *ctx, uint8_t msg, evssh_reader *body) {
  evssh_session *s = ctx;
  int rc = inbox_push(s, msg, body);
  if (rc) transport_fail(s->transport, rc, "out of memory queueing a packet");
  return rc;
}

static int on_kex_done(void *ctx, bool first) {
  evssh_session *s = ctx;
  if (!first) return EVSSH_OK;
  s->state = SESSION_AUTH;
  return EVSSH_OK;   /* auth starts in the iteration, outside the transport */
}

static int trust_check(void *ctx, const char *keytype, const char *fp) {
  evssh_session *s = ctx;
  return s->hostkey_check(s, keytype, fp, s->hostkey_check_ud);
}

static const trust_events trust_handler = {trust_check};

static int on_hostkey(void *ctx, const char *alg, const unsigned char *blob, size_t len) {
  evssh_session *s = ctx;
  if (!s->hostkey_blob) {
    s->hostkey_blob = malloc(len ? len : 1);
    if (!s->hostkey_blob) return transport_fail(s->transport, EVSSH_ENOMEM, "out of memory");
    memcpy(s->hostkey_blob, blob, len);
    s->hostkey_len = len;
    evssh_hostkey_blob_type(blob, len, s->hostkey_type, sizeof s->hostkey_type);
  }
  trust_params p = {&s->diag, &s->opt, s->hostkey_check ? &trust_handler : NULL, s, s->cache};
  char *err = NULL;
  int rc = trust_check_hostkey(&p, blob, len, &err);
  if (rc) {
    /* the whole message is the session's; the transport's copy is short */
    diag_fail(&s->diag, rc, "%s port %d: %s", s->opt.hostname, s->opt.port, err ? err : "host key refused");
    transport_fail(s->transport, rc, "%s", err ? err : "host key refused");
  }
  free(err);
  (void)alg;
  return rc;
}

static void on_transport_log(void *ctx, int level, const char *msg) {
  evssh_session *s = ctx;
  diag_log(&s->diag, level, "%s", msg);
}

static const evssh_transport_handler transport_handler = {on_transport_packet, on_kex_done, on_hostkey,
                                                          on_transport_log, on_layer_wake};

/* Authentication succeeded: the connection layer opens. */
static int on_auth_done(void *ctx) {
  evssh_session *s = ctx;
  conn_start(s->conn, s->transport);
  s->state = SESSION_READY;
  s->connect_deadline_ms = 0;
  diag_log(&s->diag, EVSSH_LOG_INFO, "authenticated to %s as %s", s->opt.hostname, s->opt.user);
  if (s->on_ready) {
    evssh_session_cb cb = s->on_ready;
    s->on_ready = NULL;
    cb(s, EVSSH_OK, s->on_ready_ud);
  }
  return EVSSH_OK;
}

static void on_auth_fail(void *ctx, int code, const char *message) {
  evssh_session *s = ctx;
  session_fail(s, code, "%s port %d: %s", s->opt.hostname, s->opt.port, message);
}

static int on_auth_prompt(void *ctx, const char *prompt, bool echo, char *answer, size_t size) {
  evssh_session *s = ctx;
  if (!s->prompt) return -1;
  return s->prompt(s, prompt, echo, answer, size, s->prompt_ud);
}

static const auth_events auth_handler = {on_auth_done, on_auth_fail, on_auth_prompt};

static int start_auth(evssh_session *s) {
  auth_params p = {s->transport, &s->diag, &s->opt, s->password, s->prompt != NULL, &auth_handler, s, s->cache};
  int rc = auth_start(&p, &s->auth);
  if (rc) return session_fail(s, rc, "%s port %d: cannot start authentication: %s", s->opt.hostname,
                              s->opt.port, evssh_strerror(rc));
  return EVSSH_OK;
}

static void on_conn_fail(void *ctx, int code, const char *message) {
  session_fail(ctx, code, "%s", message);
}

static const conn_events conn_handler = {on_conn_fail, on_layer_wake};

/* The first failure of the transport becomes the session's. */
static int adopt_transport_error(evssh_session *s) {
  int code = transport_error_code(s->transport);
  if (code == 0) code = EVSSH_ECLOSED;
  const char *msg = transport_error(s->transport);
  /* a proxy that gives up before the server said a word failed to connect
     us; its exit status says more than the closed pipe does */
  if (s->proxy_pid > 0 && s->state == SESSION_KEX && !transport_server_version(s->transport)[0] &&
      (code == EVSSH_EDISCONNECT || code == EVSSH_ECLOSED)) {
    int status = 0;
    pid_t r = waitpid(s->proxy_pid, &status, WNOHANG);
    for (int i = 0; r == 0 && i < 20; i++) {   /* it closed its end: its exit is near */
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
      r = waitpid(s->proxy_pid, &status, WNOHANG);
    }
    if (r == s->proxy_pid) {
      s->proxy_pid = 0;
      if (WIFEXITED(status))
        return session_fail(s, EVSSH_ECONNECT, "ProxyCommand for %s port %d exited with status %d before the server spoke",
                            s->opt.hostname, s->opt.port, WEXITSTATUS(status));
      return session_fail(s, EVSSH_ECONNECT, "ProxyCommand for %s port %d killed by signal %d before the server spoke",
                          s->opt.hostname, s->opt.port, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    return session_fail(s, EVSSH_ECONNECT, "ProxyCommand for %s port %d closed the connection before the server spoke",
                        s->opt.hostname, s->opt.port);
  }
  /* many sessions report into one place (a multi, a pssh-like summary):
     say which one */
  return session_fail(s, code, "%s port %d: %s", s->opt.hostname, s->opt.port, msg);
}

/* Prefer host key types already known for this host, as ssh does, so a
   server offering several keys is checked against the one we know. Done
   when the transport starts: reading known_hosts is the costliest part of
   setting a session up, and a program starting many sessions at once gets
   every connect on the wire before paying it. */
static void order_hostkey_algs(evssh_session *s) {
  if (s->opt.hostkeys_configured) return;
  char *ordered = NULL;
  trust_params p = {&s->diag, &s->opt, NULL, NULL, s->cache};
  if (trust_order_hostkey_algs(&p, s->opt.hostkeys, &ordered) == EVSSH_OK && ordered) {
    free(s->opt.hostkeys);
    s->opt.hostkeys = ordered;
  }
}

static int start_transport(evssh_session *s, int fd) {
  s->fd = fd;
  order_hostkey_algs(s);
  if (s->connect_deadline_ms == 0) s->connect_deadline_ms = base_now_ms() + DEFAULT_PHASE_TIMEOUT_MS;
  evssh_transport_config cfg = {s->opt.kex, s->opt.hostkeys, s->opt.ciphers, s->opt.macs,
                                s->opt.rekey_bytes, s->opt.rekey_seconds, NULL};
  int rc = transport_new(fd, &cfg, &transport_handler, s, &s->transport);
  if (rc) return session_fail(s, rc, "cannot start transport: %s", evssh_strerror(rc));
  transport_set_log_level(s->transport, s->diag.log_level);
  /* a re-exchange that never completes is bounded like the first one */
  transport_set_kex_timeout(s->transport, s->opt.connect_timeout_ms);
  s->state = SESSION_KEX;
  diag_log(&s->diag, EVSSH_LOG_INFO, "connected to %s port %d", s->opt.hostname, s->opt.port);
  return EVSSH_OK;
}

int session_begin_connect(evssh_session *s, evssh_session_cb on_ready, void *ud) {
  if (s->state != SESSION_NEW) {
    session_note(s, "session already %s", s->state == SESSION_CLOSED ? "closed" : "connected or connecting");
    return s->state == SESSION_CLOSED ? EVSSH_ECLOSED : EVSSH_EBUSY;
  }
  s->on_ready = on_ready;
  s->on_ready_ud = ud;
  s->state = SESSION_CONNECTING;
  touched(s);
  return EVSSH_OK;
}

void session_set_connector(evssh_session *s, evssh_connector *c) {
  s->connector = c;
  touched(s);
  if (s->opt.connect_timeout_ms > 0) s->connect_deadline_ms = base_now_ms() + s->opt.connect_timeout_ms;
  diag_log(&s->diag, EVSSH_LOG_DEBUG, "connecting to %s port %d", s->opt.hostname, s->opt.port);
}

/* ------------------------------------------------- the foreign-loop interface */

/* A session over a pipe (ProxyJump) shows the pipe's one poll fd for its
   whole life, so every driver polls the jump session and the bridge
   together with this session's transport. */
static bool via_connector(const evssh_session *s) {
  return s->connector && (s->state == SESSION_CONNECTING || connector_has_pipe(s->connector));
}

int evssh_session_fd(const evssh_session *s) {
  if (!s || s->state == SESSION_CLOSED) return -1;
  if (via_connector(s)) return connector_fd(s->connector);
  return s->transport ? s->fd : -1;
}

int evssh_session_events(const evssh_session *s) {
  if (!s || s->state == SESSION_CLOSED) return 0;
  if (via_connector(s)) return connector_events(s->connector);
  return s->transport ? transport_events(s->transport) : 0;
}

static int min_timeout(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

static int ms_until(int64_t when) {
  int64_t left = when - base_now_ms();
  return left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

int evssh_session_timeout(const evssh_session *s) {
  if (!s || s->state == SESSION_CLOSED || s->state == SESSION_NEW) return -1;
  if (s->inbox_head || s->again || (s->state == SESSION_AUTH && !s->auth)) return 0;
  int t = -1;
  if (via_connector(s)) t = connector_timeout_ms(s->connector);
  if (s->transport) t = min_timeout(t, transport_timeout_ms(s->transport));
  if (s->connect_deadline_ms) t = min_timeout(t, ms_until(s->connect_deadline_ms));
  if (s->state == SESSION_CLOSING) t = min_timeout(t, conn_close_all(s->conn) ? 0 : ms_until(s->close_deadline_ms));
  if (s->state == SESSION_READY || s->state == SESSION_CLOSING) {
    if (conn_has_work(s->conn)) return 0;
    t = min_timeout(t, conn_timeout_ms(s->conn));
  }
  return t;
}

static const char *phase_name(const evssh_session *s) {
  switch (s->state) {
  case SESSION_CONNECTING: return s->connector ? connector_phase(s->connector) : "TCP connect";
  case SESSION_KEX: return "version exchange and key exchange";
  case SESSION_AUTH: return "authentication";
  default: return "connect";
  }
}

/* Step 1: the connect step or the pipe, then the transport's I/O. */
static int step_io(evssh_session *s, int revents) {
  if (s->state == SESSION_CONNECTING) {
    int fd = -1;
    char err[700] = "";
    int rc = connector_step_events(s->connector, revents, &fd, err, sizeof err);
    if (rc == EVSSH_EAGAIN) return EVSSH_OK;
    if (rc != EVSSH_OK) {
      if (rc == EVSSH_ECONNECT && s->diag.error_code == 0) s->sys_errno = connector_errno(s->connector);
      return session_fail(s, rc, "%s", err);
    }
    s->proxy_pid = connector_child(s->connector);
    if (!connector_has_pipe(s->connector)) {
      connector_free(s->connector);
      s->connector = NULL;
    }
    rc = start_transport(s, fd);
    if (rc) return rc;
    /* our banner and KEXINIT go out at once; the server's banner is
       rarely here yet, and if it is the next poll says so */
    revents = EVSSH_WRITE;
  } else if (s->transport && s->connector && connector_has_pipe(s->connector)) {
    /* revents were for the pipe's poll fd: the pipe says what its
       transport end is ready for */
    char err[700] = "";
    int rc = connector_pipe_handle(s->connector, &revents, err, sizeof err);
    if (rc < 0) return session_fail(s, rc, "%s", err);
    if (s->state == SESSION_CLOSED) return s->diag.error_code;
  }
  if (!s->transport) return EVSSH_OK;
  /* the write comes in step_flush, with whatever the layers above add */
  if (transport_pump(s->transport, revents)) return adopt_transport_error(s);
  return EVSSH_OK;
}

/* Step 4: channel queues into the transport, the transport to the socket. */
static int step_flush(evssh_session *s) {
  if (s->state == SESSION_READY || s->state == SESSION_CLOSING) {
    int rc = conn_flush(s->conn);
    if (rc < 0 && s->state != SESSION_CLOSED) {
      if (transport_error_code(s->transport)) return adopt_transport_error(s);
      return session_fail(s, rc, "connection layer failed: %s", evssh_strerror(rc));
    }
  }
  if (s->state == SESSION_CLOSED || !s->transport) return EVSSH_OK;
  if (transport_flush(s->transport)) return adopt_transport_error(s);
  if (s->connector && connector_has_pipe(s->connector))
    connector_pipe_want(s->connector, transport_events(s->transport));
  return EVSSH_OK;
}

static void finish_close(evssh_session *s, int code) {
  /* what is queued leaves with the DISCONNECT (session_teardown) */
  if (!s->diag.error_code) {
    s->diag.error_code = EVSSH_ECLOSED;
    diag_note(&s->diag, "session closed");
  }
  session_end(s, code);
}

/* Step 5: timers and deadlines. */
static int step_timers(evssh_session *s) {
  if (s->state == SESSION_READY) {
    int rc = conn_timers(s->conn);
    if (rc < 0) return rc;
  }
  if (s->state == SESSION_CLOSING) {
    if (conn_close_all(s->conn)) finish_close(s, EVSSH_OK);
    else if (base_now_ms() >= s->close_deadline_ms) finish_close(s, EVSSH_ETIMEOUT);
    return EVSSH_OK;
  }
  if (s->connect_deadline_ms && s->state < SESSION_READY && s->state != SESSION_CLOSED &&
      base_now_ms() >= s->connect_deadline_ms)
    return session_fail(s, EVSSH_ETIMEOUT, "%s port %d: timed out during %s", s->opt.hostname, s->opt.port,
                        phase_name(s));
  return EVSSH_OK;
}

static void compact_listeners(evssh_session *s) {
  size_t j = 0;
  for (size_t i = 0; i < s->nlisteners; i++)
    if (!s->listeners[i].removed) s->listeners[j++] = s->listeners[i];
  s->nlisteners = j;
}

static int session_result(const evssh_session *s) {
  return s->diag.error_code < 0 ? s->diag.error_code : EVSSH_ECLOSED;
}

static int iterate(evssh_session *s, int revents) {
  s->again = false;
  int rc = step_io(s, revents);
  if (rc >= 0 && s->state == SESSION_AUTH && !s->auth) rc = start_auth(s);
  if (rc >= 0) rc = inbox_dispatch(s);
  uint64_t moved = conn_moved(s->conn);
  if (rc >= 0 && s->state == SESSION_READY) conn_run_on_process(s->conn);
  if (rc >= 0 && s->state != SESSION_CLOSED) rc = step_flush(s);
  /* a producer in on_process (net-scp's upload) made progress toward the
     wire: it may have more, and nothing from the peer will wake us for it,
     so the next iteration comes without sleeping, as Net::SSH's select on
     its pending output does */
  if (s->state == SESSION_READY && conn_moved(s->conn) != moved && conn_has_on_process(s->conn)) s->again = true;
  if (rc >= 0 && s->state != SESSION_CLOSED) rc = step_timers(s);
  return rc;
}

int evssh_session_handle_events(evssh_session *s, int revents) {
  if (!s) return EVSSH_EINVAL;
  /* a callback the transport runs (host key check, logs) is inside the
     transport's own dispatch, which does not nest */
  if (s->transport && transport_dispatching(s->transport)) return EVSSH_EBUSY;
  if (s->depth == 0) {
    /* entered from the outermost level: the lifetime rule's moment */
    conn_reap(s->conn);
    compact_listeners(s);
  }
  if (s->state == SESSION_NEW) return EVSSH_EINVAL;   /* not connecting: nothing to drive */
  if (s->state == SESSION_CLOSED) {
    conn_abort(s->conn, session_result(s));
    return session_result(s);
  }
  s->depth++;
  int rc = iterate(s, revents);
  s->depth--;
  /* a pass changes what the multi knows (a channel opened, auth done, a
     rekey started), also when it ran in a loop of the session's own (a
     blocking call on a member, Ruby's exec!) rather than the multi's */
  touched(s);
  if (rc < 0 && s->state != SESSION_CLOSED) session_fail(s, rc, "%s", evssh_strerror(rc));
  if (s->state == SESSION_CLOSED) return session_result(s);
  return EVSSH_OK;
}

/* ------------------------------------------------------------- listen_to */

int evssh_session_listen_to(evssh_session *s, int fd, int events, evssh_io_cb cb, void *ud) {
  if (!s || fd < 0 || !cb || (events & ~(EVSSH_READ | EVSSH_WRITE))) return EVSSH_EINVAL;
  for (size_t i = 0; i < s->nlisteners; i++) {
    listener *e = &s->listeners[i];
    if (e->fd == fd && !e->removed) {
      e->events = events;
      e->cb = cb;
      e->ud = ud;
      touched(s);
      return EVSSH_OK;
    }
  }
  if (s->nlisteners == s->listeners_cap) {
    size_t cap = s->listeners_cap ? s->listeners_cap * 2 : 8;
    listener *v = realloc(s->listeners, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    s->listeners = v;
    s->listeners_cap = cap;
  }
  s->listeners[s->nlisteners++] = (listener){fd, events, cb, ud, false};
  touched(s);
  return EVSSH_OK;
}

int evssh_session_stop_listening_to(evssh_session *s, int fd) {
  if (!s) return EVSSH_EINVAL;
  for (size_t i = 0; i < s->nlisteners; i++) {
    if (s->listeners[i].fd == fd && !s->listeners[i].removed) {
      s->listeners[i].removed = true;
      touched(s);
      if (s->depth == 0) compact_listeners(s);
      return EVSSH_OK;
    }
  }
  return EVSSH_EINVAL;
}

size_t evssh_session_listeners(const evssh_session *s, int *fds, int *events, size_t max) {
  size_t n = 0;
  for (size_t i = 0; s && i < s->nlisteners; i++) {
    if (s->listeners[i].removed) continue;
    if (n < max) {
      fds[n] = s->listeners[i].fd;
      events[n] = s->listeners[i].events;
    }
    n++;
  }
  return n;
}

int evssh_session_handle_listener(evssh_session *s, int fd, int revents) {
  if (!s) return EVSSH_EINVAL;
  if (!revents) return EVSSH_OK;
  /* the array may grow under the callback: index, do not hold pointers */
  for (size_t i = 0; i < s->nlisteners; i++) {
    if (s->listeners[i].fd != fd || s->listeners[i].removed) continue;
    evssh_io_cb cb = s->listeners[i].cb;
    void *ud = s->listeners[i].ud;
    s->depth++;
    cb(s, fd, revents, ud);
    s->depth--;
    return EVSSH_OK;
  }
  return EVSSH_EINVAL;
}

/* ------------------------------------------------ channels and requests */

static bool ready(const evssh_session *s) { return s && s->state == SESSION_READY; }

/* A packet the program queued between iterations goes out now: left for the
   next iteration it would cost a poll that returns at once for POLLOUT and
   a pass that only writes (one extra wake-up per exec). Inside an iteration
   step_flush writes it in the same pass; a failed write is the transport's
   error, which the next iteration adopts. */
static void write_now(evssh_session *s) {
  if (s->depth > 0 || !s->transport || s->state != SESSION_READY) return;
  transport_flush(s->transport);
  if (s->connector && connector_has_pipe(s->connector))
    connector_pipe_want(s->connector, transport_events(s->transport));
}

evssh_channel *evssh_session_open_channel_type(evssh_session *s, const char *type, const void *extra,
                                               size_t extra_len, evssh_channel_cb on_open, void *ud) {
  if (!ready(s) || !type || (!extra && extra_len)) return NULL;
  evssh_channel *ch = conn_open_channel(s->conn, type, extra, extra_len, on_open, ud);
  /* SendEnv / SetEnv: queued now, they precede whatever the program asks
     of the channel (exec, shell, subsystem), as ssh sends them */
  if (ch && strcmp(type, "session") == 0 && session_env_send(ch, &s->opt, &s->diag) != EVSSH_OK) {
    diag_log(&s->diag, EVSSH_LOG_ERROR, "channel %u: cannot queue its SendEnv/SetEnv requests: out of memory",
             evssh_channel_id(ch));
    evssh_channel_close(ch);
    return NULL;
  }
  if (ch) write_now(s);
  return ch;
}

evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud) {
  return evssh_session_open_channel_type(s, "session", NULL, 0, on_open, ud);
}

int evssh_session_send_global_request(evssh_session *s, const char *type, const void *extra, size_t extra_len,
                                      evssh_global_reply_cb cb, void *ud) {
  if (!s || !type || (!extra && extra_len)) return EVSSH_EINVAL;
  return conn_send_global_request(s->conn, type, extra, extra_len, cb, ud);
}

int evssh_session_on_global_request(evssh_session *s, const char *type, evssh_global_request_cb cb, void *ud) {
  /* handlers may be registered before connect: OpenSSH sends
     hostkeys-00@openssh.com right after authentication */
  if (!s || !type) return EVSSH_EINVAL;
  return conn_on_global_request(s->conn, type, cb, ud);
}

int evssh_session_send_global_reply(evssh_session *s, bool success, const void *extra, size_t len) {
  if (!s || (!extra && len)) return EVSSH_EINVAL;
  return conn_send_global_reply(s->conn, success, extra, len);
}

int evssh_session_on_open_channel(evssh_session *s, const char *type, evssh_open_channel_cb cb, void *ud) {
  if (!s || !type) return EVSSH_EINVAL;
  return conn_on_open_channel(s->conn, type, cb, ud);
}

bool evssh_session_busy(const evssh_session *s, bool include_invisible) {
  return s && s->state != SESSION_CLOSED && conn_busy(s->conn, include_invisible);
}

bool evssh_session_has_on_process(const evssh_session *s) {
  return ready(s) && conn_has_on_process(s->conn);
}

/* ------------------------------------------------------------ queries */

const char *evssh_session_algorithm(const evssh_session *s, const char *what) {
  if (!s || !what || !s->transport || transport_kex_count(s->transport) == 0) return NULL;
  static const char *const names[][2] = {
    {"kex", "kex"}, {"hostkey", "hostkey"}, {"cipher_c2s", "cipher_ctos"}, {"cipher_s2c", "cipher_stoc"},
    {"mac_c2s", "mac_ctos"}, {"mac_s2c", "mac_stoc"},
  };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strcmp(what, names[i][0]) == 0) return transport_algorithm(s->transport, names[i][1]);
  return NULL;
}

bool evssh_session_post_quantum(const evssh_session *s) {
  return s && s->transport && transport_kex_post_quantum(s->transport);
}

const char *evssh_session_server_version(const evssh_session *s) {
  const char *v = s && s->transport ? transport_server_version(s->transport) : NULL;
  return v && *v ? v : NULL;
}

int evssh_session_sys_errno(const evssh_session *s) { return s ? s->sys_errno : 0; }

int evssh_session_rekey(evssh_session *s) {
  if (!s) return EVSSH_EINVAL;
  if (s->state == SESSION_CLOSED) return EVSSH_ECLOSED;
  if (s->state != SESSION_READY) {
    session_note(s, "evssh_session_rekey: the session is not connected yet");
    return EVSSH_EINVAL;
  }
  int rc = transport_rekey(s->transport);
  touched(s);
  return rc;
}

bool evssh_session_rekeying(const evssh_session *s) {
  return s && s->state != SESSION_CLOSED && s->transport && transport_ready(s->transport) &&
         transport_kex_running(s->transport);
}

int evssh_session_set_fd(evssh_session *s, int fd) {
  if (!s) return EVSSH_EINVAL;
  if (s->state != SESSION_NEW) {
    session_note(s, "evssh_session_set_fd: the session is already %s",
                 s->state == SESSION_CLOSED ? "closed" : "connecting or connected");
    return s->state == SESSION_CLOSED ? EVSSH_ECLOSED : EVSSH_EBUSY;
  }
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
    session_note(s, "evssh_session_set_fd: %d is not an open file descriptor", fd);
    return EVSSH_EINVAL;
  }
  if (io_set_nonblocking(fd) != EVSSH_OK || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    session_note(s, "evssh_session_set_fd: cannot make fd %d non-blocking: %s", fd, strerror(errno));
    return EVSSH_EINVAL;
  }
  if (s->given_fd >= 0 && s->given_fd != fd) close(s->given_fd);
  s->given_fd = fd;
  return EVSSH_OK;
}

int session_take_fd(evssh_session *s) {
  int fd = s->given_fd;
  s->given_fd = -1;
  return fd;
}

int evssh_session_host_key(const evssh_session *s, const char **type, const unsigned char **blob, size_t *blob_len) {
  if (!s || !s->hostkey_blob) return EVSSH_EINVAL;
  if (type) *type = s->hostkey_type;
  if (blob) *blob = s->hostkey_blob;
  if (blob_len) *blob_len = s->hostkey_len;
  return EVSSH_OK;
}

/* ------------------------------------------------------------------ close */

/* Release the pipe and the layers' per-connection state; the session
   object itself stays until free. */
static void session_teardown(evssh_session *s) {
  conn_abort(s->conn, s->diag.error_code ? s->diag.error_code : EVSSH_ECLOSED);
  if (s->transport && !transport_closed(s->transport)) transport_disconnect(s->transport, 11, "disconnected by user");
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  if (s->connector) {
    connector_free(s->connector);
    s->connector = NULL;
  }
  if (s->proxy_pid > 0) {
    proxy_child_end(s->proxy_pid);
    s->proxy_pid = 0;
  }
  while (s->inbox_head) {
    inbox_packet *p = s->inbox_head;
    s->inbox_head = p->next;
    inbox_recycle(s, p);
  }
  s->inbox_tail = NULL;
}

int evssh_session_close_async(evssh_session *s, evssh_session_cb on_closed, void *ud) {
  if (!s) return EVSSH_EINVAL;
  if (s->transport && transport_dispatching(s->transport)) return EVSSH_EBUSY;
  if (s->state == SESSION_CLOSED) return EVSSH_ECLOSED;
  if (s->state == SESSION_CLOSING) return EVSSH_EBUSY;
  s->on_closed = on_closed;
  s->on_closed_ud = ud;
  if (s->state != SESSION_READY) {
    /* nothing to close gracefully: over at once */
    finish_close(s, EVSSH_OK);
    return EVSSH_OK;
  }
  s->state = SESSION_CLOSING;
  s->close_deadline_ms = base_now_ms() + CLOSE_GRACE_MS;
  touched(s);
  /* no channel left to wait for: over now, not a loop pass later */
  if (conn_close_all(s->conn)) finish_close(s, EVSSH_OK);
  return EVSSH_OK;
}

int evssh_session_set_cache(evssh_session *s, evssh_cache *c) {
  if (!s) return EVSSH_EINVAL;
  evssh_cache *old = s->cache;
  s->cache = cache_ref(c);
  cache_unref(old);
  return EVSSH_OK;
}

evssh_cache *session_cache(const evssh_session *s) { return s ? s->cache : NULL; }

void evssh_session_free(evssh_session *s) {
  if (!s) return;
  if (s->depth > 0) {
    /* a callback of this session is running up the stack */
    diag_log(&s->diag, EVSSH_LOG_ERROR, "evssh_session_free called from the session's own callback: refused");
    return;
  }
  if (s->multi_hooks && s->multi_hooks->detach) s->multi_hooks->detach(s->multi, s);
  if (s->state != SESSION_CLOSED) {
    if (!s->diag.error_code) {
      s->diag.error_code = EVSSH_ECLOSED;
      diag_note(&s->diag, "session freed");
    }
    s->on_ready = NULL;   /* the program is done with it */
    s->on_closed = NULL;
    s->state = SESSION_CLOSED;
    s->depth++;
    session_teardown(s);
    run_end_hooks(s, false);
    s->depth--;
  }
  if (s->given_fd >= 0) close(s->given_fd);   /* given, never connected over */
  conn_free(s->conn);
  s->conn = NULL;
  run_end_hooks(s, true);
  free(s->end_hooks);
  auth_free(s->auth);
  transport_free(s->transport);
  inbox_free(s);
  evssh_config_free(s->config);
  options_release(&s->opt);
  evssh_session_set_password(s, NULL);
  registry_clear(&s->properties);
  free(s->listeners);
  free(s->hostkey_blob);
  cache_unref(s->cache);
  diag_release(&s->diag);
  free(s->host);
  free(s);
}
