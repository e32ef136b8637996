/* The session object and the seams between the layers it holds. session.c
 * owns the session's life cycle (options, connect phases, error and log
 * plumbing, properties); each layer keeps its own state behind a pointer
 * here and is reached only through the functions declared below. */
#ifndef EVSSH_SESSION_H
#define EVSSH_SESSION_H

#include "evssh.h"
#include "buf.h"
#include "transport.h"

#include <stdarg.h>
#include <sys/types.h>

typedef enum {
  SESSION_NEW = 0,     /* options being set */
  SESSION_CONNECTING,  /* resolving / TCP connect / proxy */
  SESSION_KEX,         /* version exchange and first key exchange */
  SESSION_AUTH,        /* userauth */
  SESSION_READY,       /* connection layer open */
  SESSION_CLOSING,     /* graceful close under way */
  SESSION_CLOSED,      /* over: error or closed */
} session_state;

struct evssh_conn;     /* connection.c */
struct evssh_loop;     /* loop.c */
struct evssh_auth;     /* auth.c */
struct evssh_connector;/* io.c */
struct evssh_config;   /* config.c */

typedef enum {
  CONFIG_DEFAULT = 0,  /* ~/.ssh/config and /etc/ssh/ssh_config read at connect */
  CONFIG_EXPLICIT,     /* evssh_session_read_config was given a file */
  CONFIG_NONE,         /* evssh_session_read_config(s, "none") */
} config_mode;

typedef struct session_property {
  struct session_property *next;
  char *key;
  void *value;
} session_property;

struct evssh_session {
  char *host;                   /* as given (alias) */
  session_state state;
  int fd;                       /* transport fd, -1 before connect */
  evssh_transport *transport;
  struct evssh_connector *connector;
  struct evssh_auth *auth;
  struct evssh_conn *conn;
  struct evssh_loop *loop;
  struct evssh_config *config;
  config_mode config_mode;
  pid_t proxy_pid;              /* ProxyCommand child, 0 none */

  /* resolved options (session.c) */
  struct {
    char *hostname, *user;
    int port;
    int connect_timeout_ms;     /* whole connect phase; 0: default bound */
    int alive_interval_s, alive_count_max;
    char *kex, *hostkeys, *ciphers, *macs, *pubkey_algs;
    uint64_t rekey_bytes; int rekey_seconds;
  } opt;

  int64_t connect_deadline_ms;  /* monotonic ms, 0 none */
  evssh_session_cb on_ready; void *on_ready_ud;

  char *password;               /* wiped on free */
  evssh_prompt_cb prompt; void *prompt_ud;
  evssh_hostkey_cb hostkey_check; void *hostkey_check_ud;

  int error_code;
  char error[512];
  int log_level;
  evssh_log_cb log_cb; void *log_ud;
  session_property *properties;
  int blocking_depth;           /* nested blocking calls from callbacks */
};

/* errors and logs */
int  session_fail(evssh_session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void session_log(evssh_session *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int64_t session_now_ms(void);   /* monotonic */

/* session-level I/O plumbing for the loop (session.c) */
int  session_fd(const evssh_session *s);
int  session_events(const evssh_session *s);
int  session_timeout_ms(const evssh_session *s);
int  session_handle_events(evssh_session *s, int revents);
/* Dispatch what is buffered and let the connection layer make progress;
   no I/O wait. */
int  session_run_pending(evssh_session *s);

/* ----- connection layer (connection.c): messages 80..127 ----- */
int  conn_init(evssh_session *s);
void conn_free(evssh_session *s);
int  conn_handle_packet(evssh_session *s, uint8_t msg, evssh_reader *body);
/* the session is over (error or disconnect): every channel gets on_close,
   pending reply callbacks fail; code is the session's error */
void conn_abort(evssh_session *s, int code);
/* move queued channel data into the transport as windows allow; run
   on_process callbacks. Returns EVSSH_OK or a negative code. */
int  conn_process(evssh_session *s);
/* true while data is queued that the transport could take now */
bool conn_has_work(const evssh_session *s);
bool conn_busy(const evssh_session *s, bool include_invisible);
/* graceful close: send CLOSE on every channel; true once all are closed */
bool conn_close_all(evssh_session *s);

/* auth.c calls this once the server accepted us: the connection layer
   opens and on_ready runs */
int  session_auth_done(evssh_session *s);

/* ----- auth (auth.c): messages 50..79 ----- */
int  auth_start(evssh_session *s);
int  auth_handle_packet(evssh_session *s, uint8_t msg, evssh_reader *body);
void auth_free(evssh_session *s);

/* ----- loop (loop.c) ----- */
void loop_free(evssh_session *s);
/* listen_to fds of this session, for a multi's poll set */
size_t loop_listeners(const evssh_session *s, int *fds, int *events, size_t max);
void loop_dispatch_listener(evssh_session *s, int fd, int revents);
int  loop_timeout_ms(const evssh_session *s);    /* keepalive timer */
int  loop_timers(evssh_session *s);              /* run due timers */

#endif
