/* session.c owns a session's life: options (through config.c), the connect
 * phases (resolve and TCP connect or proxy, version exchange and key
 * exchange, authentication) as one non-blocking state machine with a single
 * deadline, the routing of packets to auth or the connection layer, errors
 * and logs, properties, close and free. The loop (loop.c), a multi
 * (multi.c) or a foreign event loop all drive it through the same four
 * calls: session_fd, session_events, session_timeout_ms and
 * session_handle_events. */
#include "session.h"

#include "cipher.h"
#include "config.h"
#include "connection.h"
#include "hostkey.h"
#include "io.h"
#include "jump.h"
#include "kex.h"
#include "mac.h"
#include "trust.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_PHASE_TIMEOUT_MS 60000
#define CLOSE_GRACE_MS 3000

int64_t session_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- logs */

void session_log(evssh_session *s, int level, const char *fmt, ...) {
  if (!s || level > s->log_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (s->log_cb) {
    s->log_cb(s, level, msg, s->log_ud);
  } else {
    static const char *names[] = {"", "error", "info", "debug", "packet"};
    fprintf(stderr, "evssh[%s] %s: %s\n", s->host ? s->host : "?",
            names[level >= 1 && level <= 4 ? level : 0], msg);
  }
}

void evssh_session_set_log(evssh_session *s, int level, evssh_log_cb cb, void *ud) {
  if (!s) return;
  s->log_level = level;
  s->log_cb = cb;
  s->log_ud = ud;
}

/* -------------------------------------------------------------- errors */

static void session_teardown(evssh_session *s);

/* The session is over: release the connection, and tell a caller still
   waiting for the connect why it never became ready. */
static void session_end(evssh_session *s, int code) {
  session_state was = s->state;
  s->state = SESSION_CLOSED;
  session_teardown(s);
  if (was < SESSION_READY && s->on_ready) {
    evssh_session_cb cb = s->on_ready;
    s->on_ready = NULL;
    cb(s, code, s->on_ready_ud);
  }
}

int session_fail(evssh_session *s, int code, const char *fmt, ...) {
  if (s->error_code != 0) return s->error_code;
  s->error_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->error, sizeof s->error, fmt, ap);
  va_end(ap);
  session_log(s, EVSSH_LOG_ERROR, "%s", s->error);
  session_end(s, code);
  return code;
}

const char *evssh_session_error(const evssh_session *s) {
  if (!s) return "no session";
  return s->error[0] ? s->error : "";
}

bool evssh_session_closed(const evssh_session *s) { return !s || s->state == SESSION_CLOSED; }
const char *evssh_session_host(const evssh_session *s) { return s ? s->host : NULL; }

/* --------------------------------------------------------- construction */

evssh_session *evssh_session_new(const char *host) {
  if (!host || !*host) return NULL;
  evssh_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->host = strdup(host);
  s->fd = -1;
  s->state = SESSION_NEW;
  if (!s->host || evssh_config_new(&s->config) != EVSSH_OK) {
    free(s->host);
    free(s);
    return NULL;
  }
  const char *dbg = getenv("EVSSH_DEBUG");
  if (dbg && *dbg >= '1' && *dbg <= '4') s->log_level = *dbg - '0';
  return s;
}

int evssh_session_option(evssh_session *s, const char *keyword, const char *value) {
  if (!s || !keyword || !value) return EVSSH_EINVAL;
  if (s->state != SESSION_NEW) {
    snprintf(s->error, sizeof s->error, "option %s: the session is already connecting", keyword);
    return EVSSH_EINVAL;
  }
  char err[256] = "";
  int rc = evssh_config_set(s->config, keyword, value, err, sizeof err);
  if (rc) snprintf(s->error, sizeof s->error, "%s", err[0] ? err : "invalid option");
  return rc;
}

int evssh_session_read_config(evssh_session *s, const char *path) {
  if (!s) return EVSSH_EINVAL;
  if (s->state != SESSION_NEW) return EVSSH_EINVAL;
  /* "none" turns the default ~/.ssh/config off, as ssh -F none does */
  if (path && strcmp(path, "none") == 0) {
    s->config_mode = CONFIG_NONE;
    return EVSSH_OK;
  }
  char err[300] = "";
  int rc = evssh_config_read_file(s->config, path, s->host, err, sizeof err);
  s->config_mode = CONFIG_EXPLICIT;
  if (rc) snprintf(s->error, sizeof s->error, "%s", err[0] ? err : "cannot read config");
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

/* ----------------------------------------------------------- properties */

void evssh_session_set_property(evssh_session *s, const char *key, void *value) {
  if (!s || !key) return;
  for (session_property **pp = &s->properties; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->key, key) == 0) {
      if (value) {
        (*pp)->value = value;
      } else {
        session_property *dead = *pp;
        *pp = dead->next;
        free(dead->key);
        free(dead);
      }
      return;
    }
  }
  if (!value) return;
  session_property *p = calloc(1, sizeof *p);
  if (!p || !(p->key = strdup(key))) {
    free(p);
    return;
  }
  p->value = value;
  p->next = s->properties;
  s->properties = p;
}

void *evssh_session_property(const evssh_session *s, const char *key) {
  if (!s || !key) return NULL;
  for (session_property *p = s->properties; p; p = p->next)
    if (strcmp(p->key, key) == 0) return p->value;
  return NULL;
}

/* ------------------------------------------------------ option resolving */

static int resolve_algorithms(evssh_session *s, const char *keyword, const char *defaults,
                              const char *supported, char **out) {
  char err[300] = "";
  int rc = evssh_config_algorithms(evssh_config_get(s->config, keyword), defaults, supported, out,
                                   err, sizeof err);
  if (rc) return session_fail(s, EVSSH_EINVAL, "%s: %s", keyword, err[0] ? err : "invalid list");
  return EVSSH_OK;
}

static int parse_int(const char *v, int dflt) {
  if (!v || strcmp(v, "none") == 0) return dflt;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 0 || n > 0x7fffffff) return dflt;
  return (int)n;
}

/* Everything the later phases need, read once from the config. */
static int resolve_options(evssh_session *s) {
  char err[300] = "";
  int rc;
  if (s->config_mode == CONFIG_DEFAULT) {
    rc = evssh_config_read_file(s->config, NULL, s->host, err, sizeof err);
    if (rc) return session_fail(s, EVSSH_EINVAL, "%s", err);
  }
  rc = evssh_config_finalize(s->config, s->host, err, sizeof err);
  if (rc) return session_fail(s, EVSSH_EINVAL, "%s", err);
  const char *hostname = evssh_config_get(s->config, "HostName");
  const char *user = evssh_config_get(s->config, "User");
  s->opt.hostname = strdup(hostname ? hostname : s->host);
  s->opt.user = user ? strdup(user) : NULL;
  if (!s->opt.user) {
    const char *u = getenv("USER");
    s->opt.user = strdup(u && *u ? u : "root");
  }
  if (!s->opt.hostname || !s->opt.user) return session_fail(s, EVSSH_ENOMEM, "out of memory");
  s->opt.port = parse_int(evssh_config_get(s->config, "Port"), 22);
  s->opt.connect_timeout_ms = parse_int(evssh_config_get(s->config, "ConnectTimeout"), 0) * 1000;
  s->opt.alive_interval_s = parse_int(evssh_config_get(s->config, "ServerAliveInterval"), 0);
  s->opt.alive_count_max = parse_int(evssh_config_get(s->config, "ServerAliveCountMax"), 3);
  const char *rekey = evssh_config_get(s->config, "RekeyLimit");
  if (rekey) {
    unsigned long long bytes = 0;
    int secs = 0;
    if (sscanf(rekey, "%llu %d", &bytes, &secs) >= 1) {
      s->opt.rekey_bytes = bytes;
      s->opt.rekey_seconds = secs;
    }
  }
  if ((rc = resolve_algorithms(s, "KexAlgorithms", evssh_kex_default_list(), evssh_kex_supported_list(),
                               &s->opt.kex)) ||
      (rc = resolve_algorithms(s, "HostKeyAlgorithms", evssh_hostkey_default_list(),
                               evssh_hostkey_supported_list(), &s->opt.hostkeys)) ||
      (rc = resolve_algorithms(s, "Ciphers", evssh_cipher_default_list(), evssh_cipher_supported_list(),
                               &s->opt.ciphers)) ||
      (rc = resolve_algorithms(s, "MACs", evssh_mac_default_list(), evssh_mac_supported_list(),
                               &s->opt.macs)) ||
      (rc = resolve_algorithms(s, "PubkeyAcceptedAlgorithms", evssh_hostkey_default_list(),
                               evssh_hostkey_supported_list(), &s->opt.pubkey_algs)))
    return rc;
  return EVSSH_OK;
}

/* Prefer host key types already known for this host, as ssh does, so a
   server offering several keys is checked against the one we know. Done
   when the transport starts, not in connect_async: reading known_hosts is
   the costliest part of setting a session up, and a program starting many
   sessions at once gets every connect on the wire before paying it. */
static void order_hostkey_algs(evssh_session *s) {
  if (evssh_config_is_set(s->config, "HostKeyAlgorithms")) return;
  char *ordered = NULL;
  if (trust_order_hostkey_algs(s, s->opt.hostkeys, &ordered) == EVSSH_OK && ordered) {
    free(s->opt.hostkeys);
    s->opt.hostkeys = ordered;
  }
}

/* ------------------------------------------------------ transport glue */

static int on_transport_packet(void *ctx, uint8_t msg, evssh_reader *body) {
  evssh_session *s = ctx;
  if (s->state == SESSION_AUTH) return auth_handle_packet(s, msg, body);
  if (s->state == SESSION_READY || s->state == SESSION_CLOSING) {
    /* the connection layer answers numbers it does not know (local
       extensions 128..255 included) with UNIMPLEMENTED */
    if (msg >= 80) return conn_handle_packet(s, msg, body);
    if (msg == SSH_MSG_USERAUTH_BANNER) return EVSSH_OK; /* allowed late, ignored */
  }
  transport_fail(s->transport, EVSSH_EPROTO, "unexpected message %u from server in state %d", msg, s->state);
  return EVSSH_EPROTO;
}

static int on_kex_done(void *ctx, bool first) {
  evssh_session *s = ctx;
  if (!first) return EVSSH_OK;
  s->state = SESSION_AUTH;
  return auth_start(s);
}

static int on_hostkey(void *ctx, const char *alg, const unsigned char *blob, size_t len) {
  evssh_session *s = ctx;
  char err[700] = "";
  int rc = trust_check_hostkey(s, alg, blob, len, err, sizeof err);
  if (rc) {
    transport_fail(s->transport, rc, "%s", err[0] ? err : "host key verification failed");
    return rc;
  }
  return EVSSH_OK;
}

static void on_transport_log(void *ctx, int level, const char *msg) {
  session_log(ctx, level, "%s", msg);
}

static const evssh_transport_handler transport_handler = {
    on_transport_packet, on_kex_done, on_hostkey, on_transport_log};

/* Authentication succeeded (auth.c): the connection layer opens. */
int session_auth_done(evssh_session *s) {
  int rc = conn_init(s);
  if (rc) return session_fail(s, rc, "cannot start connection layer: %s", evssh_strerror(rc));
  s->state = SESSION_READY;
  s->connect_deadline_ms = 0;
  session_log(s, EVSSH_LOG_INFO, "authenticated to %s as %s", s->opt.hostname, s->opt.user);
  if (s->on_ready) {
    evssh_session_cb cb = s->on_ready;
    s->on_ready = NULL;
    cb(s, EVSSH_OK, s->on_ready_ud);
  }
  return EVSSH_OK;
}

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

static int start_transport(evssh_session *s, int fd) {
  s->fd = fd;
  order_hostkey_algs(s);
  if (s->connect_deadline_ms == 0)
    s->connect_deadline_ms = session_now_ms() + DEFAULT_PHASE_TIMEOUT_MS;
  evssh_transport_config cfg = {s->opt.kex, s->opt.hostkeys, s->opt.ciphers, s->opt.macs,
                                s->opt.rekey_bytes, s->opt.rekey_seconds, NULL};
  int rc = transport_new(fd, &cfg, &transport_handler, s, &s->transport);
  if (rc) return session_fail(s, rc, "cannot start transport: %s", evssh_strerror(rc));
  s->state = SESSION_KEX;
  session_log(s, EVSSH_LOG_INFO, "connected to %s port %d", s->opt.hostname, s->opt.port);
  return EVSSH_OK;
}

/* ------------------------------------------------------------- connect */

int evssh_session_connect_async(evssh_session *s, evssh_session_cb on_ready, void *ud) {
  if (!s) return EVSSH_EINVAL;
  if (s->state != SESSION_NEW) {
    snprintf(s->error, sizeof s->error, "session already %s",
             s->state == SESSION_CLOSED ? "closed" : "connected or connecting");
    return s->state == SESSION_CLOSED ? EVSSH_ECLOSED : EVSSH_EBUSY;
  }
  s->on_ready = on_ready;
  s->on_ready_ud = ud;
  s->state = SESSION_CONNECTING;
  int rc = resolve_options(s);
  if (rc) return rc;
  if (s->opt.connect_timeout_ms > 0) s->connect_deadline_ms = session_now_ms() + s->opt.connect_timeout_ms;
  const char *jump = evssh_config_get(s->config, "ProxyJump");
  char err[300] = "";
  if (jump && *jump && strcmp(jump, "none") != 0)
    rc = jump_start(s, jump, &s->connector, err, sizeof err);
  else
    rc = connector_start(s->opt.hostname, s->opt.port, evssh_config_get(s->config, "ProxyCommand"),
                         &s->connector, err, sizeof err);
  if (rc) return session_fail(s, rc, "%s", err);
  session_log(s, EVSSH_LOG_DEBUG, "connecting to %s port %d", s->opt.hostname, s->opt.port);
  return EVSSH_OK;
}

static bool connect_done(evssh_session *s, void *ud) {
  return s->state == SESSION_NEW || s->state == SESSION_CONNECTING || s->state == SESSION_KEX ||
         s->state == SESSION_AUTH;
}

/* Drive only this session until cond says stop; no listen_to fds. Used by
   the blocking calls of this file, which must work before the loop layer
   has anything to do. */
static int pump(evssh_session *s, bool (*cond)(evssh_session *, void *), void *ud, int64_t deadline) {
  while (cond(s, ud)) {
    if (s->state == SESSION_CLOSED) return s->error_code ? s->error_code : EVSSH_ECLOSED;
    int timeout = session_timeout_ms(s);
    if (deadline) {
      int64_t left = deadline - session_now_ms();
      if (left <= 0) return EVSSH_ETIMEOUT;
      if (timeout < 0 || timeout > left) timeout = (int)left;
    }
    int fd = session_fd(s);
    int ev = session_events(s);
    int revents = 0;
    if (fd >= 0 && (ev || timeout != 0)) {
      struct pollfd pfd = {fd, (short)((ev & EVSSH_READ ? POLLIN : 0) | (ev & EVSSH_WRITE ? POLLOUT : 0)), 0};
      int n = poll(&pfd, 1, timeout);
      if (n < 0 && errno != EINTR) return session_fail(s, EVSSH_ECONNECT, "poll: %s", strerror(errno));
      if (n > 0) {
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) revents |= EVSSH_READ;
        if (pfd.revents & (POLLOUT | POLLERR)) revents |= EVSSH_WRITE;
      }
    } else if (fd < 0 && timeout > 0) {
      struct timespec ts = {timeout / 1000, (long)(timeout % 1000) * 1000000};
      nanosleep(&ts, NULL);
    }
    int rc = session_handle_events(s, revents);
    if (rc < 0) return rc;
  }
  return EVSSH_OK;
}

int evssh_session_connect(evssh_session *s) {
  if (!s) return EVSSH_EINVAL;
  int rc = evssh_session_connect_async(s, NULL, NULL);
  if (rc) return rc;
  rc = pump(s, connect_done, NULL, 0);
  if (rc) return rc;
  return s->state == SESSION_READY ? EVSSH_OK : (s->error_code ? s->error_code : EVSSH_ECLOSED);
}

evssh_session *evssh_start(const char *host, const char *user, const char *const *options,
                           evssh_error *err) {
  if (err) {
    err->code = EVSSH_OK;
    err->message[0] = 0;
  }
  evssh_session *s = evssh_session_new(host ? host : "");
  int rc = EVSSH_OK;
  if (!s) {
    rc = host && *host ? EVSSH_ENOMEM : EVSSH_EINVAL;
    if (err) {
      err->code = rc;
      snprintf(err->message, sizeof err->message, "%s", host && *host ? "out of memory" : "no host given");
    }
    return NULL;
  }
  if (user && *user) rc = evssh_session_option(s, "User", user);
  for (size_t i = 0; rc == EVSSH_OK && options && options[i]; i++) {
    const char *eq = strchr(options[i], '=');
    if (!eq || eq == options[i]) {
      rc = EVSSH_EINVAL;
      snprintf(s->error, sizeof s->error, "option \"%s\" is not Keyword=value", options[i]);
      break;
    }
    char kw[64];
    snprintf(kw, sizeof kw, "%.*s", (int)(eq - options[i]), options[i]);
    /* ConfigFile is ssh's -F: a config file instead of ~/.ssh/config, or none */
    if (strcasecmp(kw, "ConfigFile") == 0)
      rc = evssh_session_read_config(s, eq + 1);
    else
      rc = evssh_session_option(s, kw, eq + 1);
  }
  if (rc == EVSSH_OK) rc = evssh_session_connect(s);
  if (rc != EVSSH_OK) {
    if (err) {
      err->code = rc;
      snprintf(err->message, sizeof err->message, "%.255s", s->error[0] ? s->error : evssh_strerror(rc));
    }
    evssh_session_free(s);
    return NULL;
  }
  return s;
}

/* ------------------------------------------------------- I/O plumbing */

/* A session over a pipe (ProxyJump) shows the pipe's one poll fd for its
   whole life, so every driver (loop, multi, foreign loop) polls the jump
   session and the bridge together with this session's transport. */
int session_fd(const evssh_session *s) {
  if (s->state == SESSION_CLOSED) return -1;
  if (s->connector && (s->state == SESSION_CONNECTING || connector_has_pipe(s->connector)))
    return connector_fd(s->connector);
  if (s->transport) return s->fd;
  return -1;
}

int session_events(const evssh_session *s) {
  if (s->state == SESSION_CLOSED) return 0;
  if (s->connector && (s->state == SESSION_CONNECTING || connector_has_pipe(s->connector)))
    return connector_events(s->connector);
  if (s->transport) return transport_events(s->transport);
  return 0;
}

static int min_timeout(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

int session_timeout_ms(const evssh_session *s) {
  if (s->state == SESSION_CLOSED || s->state == SESSION_NEW) return -1;
  int t = -1;
  if (s->connector && (s->state == SESSION_CONNECTING || connector_has_pipe(s->connector)))
    t = connector_timeout_ms(s->connector);
  if (s->transport) t = min_timeout(t, transport_timeout_ms(s->transport));
  if (s->connect_deadline_ms) {
    int64_t left = s->connect_deadline_ms - session_now_ms();
    t = min_timeout(t, left < 0 ? 0 : (int)left);
  }
  if (s->state == SESSION_READY && s->conn) {
    if (conn_has_work(s)) t = 0;
    t = min_timeout(t, loop_timeout_ms(s));
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

int session_handle_events(evssh_session *s, int revents) {
  if (s->state == SESSION_CLOSED) return s->error_code ? s->error_code : EVSSH_ECLOSED;
  if (s->state == SESSION_NEW) return EVSSH_OK;
  if (s->state == SESSION_CONNECTING) {
    int fd = -1;
    char err[300] = "";
    int rc = connector_step(s->connector, &fd, err, sizeof err);
    if (rc == EVSSH_OK) {
      s->proxy_pid = connector_child(s->connector);
      if (!connector_has_pipe(s->connector)) {
        connector_free(s->connector);
        s->connector = NULL;
      }
      rc = start_transport(s, fd);
      if (rc) return rc;
      revents = EVSSH_READ | EVSSH_WRITE;   /* try at once: the banner may be there */
    } else if (rc != EVSSH_EAGAIN) {
      return session_fail(s, rc, "%s", err);
    }
  }
  else if (s->transport && s->connector && connector_has_pipe(s->connector)) {
    /* revents were for the pipe's poll fd: the pipe says what its
       transport end is ready for */
    char err[300] = "";
    int rc = connector_pipe_handle(s->connector, &revents, err, sizeof err);
    if (rc < 0) return session_fail(s, rc, "%s", err);
    if (s->state == SESSION_CLOSED) return s->error_code;
  }
  if (s->transport) {
    int rc = transport_handle_io(s->transport, revents);
    if (rc) return adopt_transport_error(s);
    if (s->state == SESSION_CLOSED) return s->error_code;
    if (s->state == SESSION_READY || s->state == SESSION_CLOSING) {
      rc = conn_process(s);
      if (rc < 0) {
        if (transport_error_code(s->transport)) return adopt_transport_error(s);
        return session_fail(s, rc, "connection layer failed: %s", evssh_strerror(rc));
      }
      rc = transport_flush(s->transport);
      if (rc) return adopt_transport_error(s);
    }
    if (s->connector && connector_has_pipe(s->connector))
      connector_pipe_want(s->connector, transport_events(s->transport));
  }
  if (s->connect_deadline_ms && session_now_ms() >= s->connect_deadline_ms && s->state < SESSION_READY &&
      s->state != SESSION_CLOSED)
    return session_fail(s, EVSSH_ETIMEOUT, "%s port %d: timed out during %s", s->opt.hostname, s->opt.port,
                        phase_name(s));
  return EVSSH_OK;
}

int session_run_pending(evssh_session *s) { return session_handle_events(s, 0); }

int evssh_session_fd(const evssh_session *s) { return s ? session_fd(s) : -1; }
int evssh_session_events(const evssh_session *s) { return s ? session_events(s) : 0; }
int evssh_session_timeout(const evssh_session *s) { return s ? session_timeout_ms(s) : -1; }
int evssh_session_handle_events(evssh_session *s, int revents) {
  if (!s) return EVSSH_EINVAL;
  int rc = session_handle_events(s, revents);
  if (rc == EVSSH_OK && s->state == SESSION_READY) rc = loop_timers(s);
  return rc;
}

/* -------------------------------------------------------------- close */

/* Release the pipe and the layers' per-connection state; the session
   object itself stays until free. */
static void session_teardown(evssh_session *s) {
  if (s->conn) conn_abort(s, s->error_code ? s->error_code : EVSSH_ECLOSED);
  if (s->transport && !transport_closed(s->transport))
    transport_disconnect(s->transport, 11, "disconnected by user");
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
}

static bool closing(evssh_session *s, void *ud) { return !conn_close_all(s); }

int evssh_session_close(evssh_session *s) {
  if (!s) return EVSSH_EINVAL;
  if (s->state == SESSION_CLOSED) return EVSSH_OK;
  if ((s->transport && transport_dispatching(s->transport)) || (s->conn && conn_in_callback(s)))
    return EVSSH_EBUSY;   /* the close loop must not run inside our own callbacks */
  if (s->state == SESSION_READY) {
    s->state = SESSION_CLOSING;
    pump(s, closing, NULL, session_now_ms() + CLOSE_GRACE_MS);
    if (s->transport) transport_flush(s->transport);
  }
  if (s->state != SESSION_CLOSED) {
    s->error_code = s->error_code ? s->error_code : EVSSH_ECLOSED;
    if (!s->error[0]) snprintf(s->error, sizeof s->error, "session closed");
    session_end(s, EVSSH_ECLOSED);
  }
  return EVSSH_OK;
}

void evssh_session_free(evssh_session *s) {
  if (!s) return;
  if (s->state != SESSION_CLOSED) {
    if (!s->error_code) {
      s->error_code = EVSSH_ECLOSED;
      snprintf(s->error, sizeof s->error, "session freed");
    }
    s->state = SESSION_CLOSED;
    session_teardown(s);
  }
  conn_free(s);
  auth_free(s);
  loop_free(s);
  transport_free(s->transport);
  evssh_config_free(s->config);
  evssh_session_set_password(s, NULL);
  while (s->properties) {
    session_property *p = s->properties;
    s->properties = p->next;
    free(p->key);
    free(p);
  }
  free(s->opt.hostname);
  free(s->opt.user);
  free(s->opt.kex);
  free(s->opt.hostkeys);
  free(s->opt.ciphers);
  free(s->opt.macs);
  free(s->opt.pubkey_algs);
  free(s->host);
  free(s);
}
