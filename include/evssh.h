/* evssh: an event-driven SSH-2 client library in the shape of Ruby's Net::SSH.
 *
 * This is the one public header. Its contract is shared/API.md: names,
 * argument order and meanings below are binding. One thread, one loop,
 * callbacks per channel; nothing blocks except the functions documented as
 * blocking. */
#ifndef EVSSH_H
#define EVSSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EVSSH_API __attribute__((visibility("default")))
#else
#define EVSSH_API
#endif

/* ------------------------------------------------------------------ errors */

enum {
  EVSSH_OK = 0,
  EVSSH_EINVAL = -1,      /* bad argument or option */
  EVSSH_ENOMEM = -2,
  EVSSH_ECONNECT = -3,    /* TCP connect / resolve / proxy failed */
  EVSSH_ETIMEOUT = -4,
  EVSSH_EPROTO = -5,      /* peer broke the protocol, bad MAC, oversize packet */
  EVSSH_EHOSTKEY = -6,    /* host key unknown (strict policy) or refused by the program's check */
  EVSSH_EAUTH = -7,       /* every authentication method failed */
  EVSSH_ECLOSED = -8,     /* session or channel already closed */
  EVSSH_EDISCONNECT = -9, /* peer disconnected */
  EVSSH_EBUSY = -10,
  EVSSH_ENOALGO = -11,    /* no algorithm in common */
  EVSSH_ECHANNEL = -12,   /* channel open refused */
  /* additions (not in the original contract) */
  EVSSH_EAGAIN = -13,     /* would exceed a limit now: evssh_channel_send_data with the send
                             queue at its cap (evssh_channel_set_send_limit); try after on_drain */
  EVSSH_EHOSTKEY_CHANGED = -14, /* host key differs from known_hosts, or is revoked */
  EVSSH_ESFTP = -15,      /* the SFTP server answered with an error status */
  EVSSH_ELIMIT = -16      /* a size limit was reached (exec_wait output: evssh_session_set_exec_limit) */
};
EVSSH_API const char *evssh_strerror(int code);

/* message holds the whole text of the failure, hints at its end included;
   only a message longer than the array (none the library writes today) is
   shortened, in its middle, so the end stays. */
typedef struct evssh_error {
  int code;
  char message[2048];
} evssh_error;

/* --------------------------------------------------------------- wire data */

typedef struct evssh_reader {
  const unsigned char *p;
  size_t left;
} evssh_reader;

/* Each read is bounds-checked: a short read returns EVSSH_EPROTO and leaves
   the reader unchanged. */
EVSSH_API int evssh_read_u8(evssh_reader *r, uint8_t *v);
EVSSH_API int evssh_read_bool(evssh_reader *r, bool *v);
EVSSH_API int evssh_read_u32(evssh_reader *r, uint32_t *v);
EVSSH_API int evssh_read_u64(evssh_reader *r, uint64_t *v);
EVSSH_API int evssh_read_string(evssh_reader *r, const char **data, size_t *len); /* not NUL-terminated */

typedef struct evssh_buf evssh_buf;
EVSSH_API evssh_buf *evssh_buf_new(void);
EVSSH_API void evssh_buf_free(evssh_buf *b);
EVSSH_API int evssh_buf_put_u8(evssh_buf *b, uint8_t v);
EVSSH_API int evssh_buf_put_bool(evssh_buf *b, bool v);
EVSSH_API int evssh_buf_put_u32(evssh_buf *b, uint32_t v);
EVSSH_API int evssh_buf_put_u64(evssh_buf *b, uint64_t v);
EVSSH_API int evssh_buf_put_string(evssh_buf *b, const void *data, size_t len);
EVSSH_API int evssh_buf_put_cstring(evssh_buf *b, const char *s);
EVSSH_API const void *evssh_buf_data(const evssh_buf *b);
EVSSH_API size_t evssh_buf_len(const evssh_buf *b);

/* ---------------------------------------------------------------- sessions */

typedef struct evssh_session evssh_session;

/* Net::SSH.start: resolve options (ssh_config keywords), connect, exchange
   keys, verify the host key, authenticate. Blocking. NULL on failure, with
   err filled. options: NULL-terminated "Keyword=value" list; besides the
   ssh_config keywords it takes ConfigFile=PATH or ConfigFile=none (ssh's
   -F: read PATH, or no file, instead of ~/.ssh/config). */
EVSSH_API evssh_session *evssh_start(const char *host, const char *user,
                                     const char *const *options, evssh_error *err);

EVSSH_API evssh_session *evssh_session_new(const char *host); /* host or ssh_config alias */
/* evssh_session_new plus the options evssh_start takes (user may be NULL),
   not connected: for evssh_session_connect_async. NULL with err filled
   when an option is bad. Non-blocking. */
EVSSH_API evssh_session *evssh_session_new_with(const char *host, const char *user,
                                                const char *const *options, evssh_error *err);
/* Any keyword evssh_start takes, ConfigFile included. A keyword given twice
   keeps its first value, as `ssh -o` does (IdentityFile and SendEnv
   accumulate); a bad value, an algorithm list naming nothing we support
   included, is EVSSH_EINVAL here, not at connect. Before connect only. */
EVSSH_API int evssh_session_option(evssh_session *s, const char *keyword, const char *value);
/* NULL: ~/.ssh/config (read at connect when this is never called);
   "none": read no config file at all */
EVSSH_API int evssh_session_read_config(evssh_session *s, const char *path);
EVSSH_API int evssh_session_set_password(evssh_session *s, const char *password);
/* keyboard-interactive prompts and key passphrases; return 0 and fill answer */
typedef int (*evssh_prompt_cb)(evssh_session *s, const char *prompt, bool echo,
                               char *answer, size_t answer_size, void *ud);
EVSSH_API void evssh_session_set_prompt(evssh_session *s, evssh_prompt_cb cb, void *ud);
/* extra host key check after known_hosts policy: return 0 to accept */
typedef int (*evssh_hostkey_cb)(evssh_session *s, const char *keytype,
                                const char *sha256_fingerprint, void *ud);
EVSSH_API void evssh_session_set_hostkey_check(evssh_session *s, evssh_hostkey_cb cb, void *ud);

EVSSH_API int evssh_session_connect(evssh_session *s); /* blocking */
typedef void (*evssh_session_cb)(evssh_session *s, int status, void *ud);
EVSSH_API int evssh_session_connect_async(evssh_session *s, evssh_session_cb on_ready, void *ud);
/* graceful: closes every channel and disconnects; blocking, a few seconds
   at most. From inside a callback it runs a nested loop. */
EVSSH_API int evssh_session_close(evssh_session *s);
/* Start a graceful close and return at once (for foreign loops): CLOSE goes
   to every channel; the loop (handle_events) finishes it once every channel
   is closed or after the same few-seconds deadline, then on_closed (may be
   NULL) runs with EVSSH_OK, or EVSSH_ETIMEOUT when the deadline ended it,
   or the session's error if it failed meanwhile. A session not yet ready
   ends at once. EVSSH_EBUSY while a close is under way. */
EVSSH_API int evssh_session_close_async(evssh_session *s, evssh_session_cb on_closed, void *ud);
/* hard shutdown if needed, then free; NULL ok. Every open channel gets its
   on_close first; every channel handle, held or not, is freed with it. A
   session in an evssh_multi leaves it first. Called from one of the
   session's own callbacks it is refused (logged; nothing happens): close
   there, free after the loop. */
EVSSH_API void evssh_session_free(evssh_session *s);
EVSSH_API const char *evssh_session_error(const evssh_session *s);
EVSSH_API bool evssh_session_closed(const evssh_session *s);
EVSSH_API const char *evssh_session_host(const evssh_session *s);
/* true while the connect is under way (resolve, TCP, kex, authentication) */
EVSSH_API bool evssh_session_connecting(const evssh_session *s);
/* Negotiated algorithm names: what is "kex", "hostkey", "cipher_c2s",
   "cipher_s2c", "mac_c2s" or "mac_s2c". NULL before the first key exchange
   or for another what. The string lives as long as the session. */
EVSSH_API const char *evssh_session_algorithm(const evssh_session *s, const char *what);
/* true once the first key exchange is done and its method was a
   post-quantum hybrid (mlkem768x25519-sha256, sntrup761x25519-sha512);
   a connection that is not logs an INFO line saying so, as OpenSSH 10.1
   warns. */
EVSSH_API bool evssh_session_post_quantum(const evssh_session *s);
/* The server's host key for this connection: key type ("ssh-ed25519") and
   public key blob, both owned by the session. EVSSH_EINVAL before the key
   exchange. Any out pointer may be NULL. */
EVSSH_API int evssh_session_host_key(const evssh_session *s, const char **type,
                                     const unsigned char **blob, size_t *blob_len);
/* exec_wait keeps at most this many bytes of output (stdout and stderr
   together; default 64 MiB); past it the command is ended and exec_wait
   returns EVSSH_ELIMIT with the reason in evssh_session_error. */
EVSSH_API int evssh_session_set_exec_limit(evssh_session *s, size_t bytes);
EVSSH_API size_t evssh_session_exec_limit(const evssh_session *s);
/* At most this many channels the server opened are accepted at once
   (sshd's MaxSessions for the other direction; default 1024); beyond it an
   open gets OPEN_FAILURE (4, "too many channels open"). */
EVSSH_API int evssh_session_set_max_peer_channels(evssh_session *s, size_t max);
/* set (value NULL: remove) a property; EVSSH_ENOMEM when it cannot be stored */
EVSSH_API int evssh_session_set_property(evssh_session *s, const char *key, void *value);
EVSSH_API void *evssh_session_property(const evssh_session *s, const char *key);

/* ---------------------------------------------------------- the event loop */

typedef bool (*evssh_cond_cb)(evssh_session *s, void *ud);

EVSSH_API int evssh_session_process(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud);
EVSSH_API int evssh_session_loop(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud);
EVSSH_API bool evssh_session_busy(const evssh_session *s, bool include_invisible);

enum { EVSSH_READ = 1, EVSSH_WRITE = 2 };
typedef void (*evssh_io_cb)(evssh_session *s, int fd, int events, void *ud);
EVSSH_API int evssh_session_listen_to(evssh_session *s, int fd, int events, evssh_io_cb cb, void *ud);
EVSSH_API int evssh_session_stop_listening_to(evssh_session *s, int fd);
/* For drivers (multi, adapters): the listen_to set. Fills up to max fds and
   their EVSSH_READ/WRITE interest; returns how many there are (may be more
   than max). */
EVSSH_API size_t evssh_session_listeners(const evssh_session *s, int *fds, int *events, size_t max);
/* For drivers: a listen_to fd is ready; runs its callback now. Call it
   before evssh_session_handle_events of the same iteration, so what the
   callback queued is written in that iteration. EVSSH_EINVAL: not listened to. */
EVSSH_API int evssh_session_handle_listener(evssh_session *s, int fd, int revents);
/* true while an open channel has an on_process callback: a driver then runs
   handle_events every iteration of its loop (Net::SSH runs on_process once
   per iteration), not only when the session's fd is ready. */
EVSSH_API bool evssh_session_has_on_process(const evssh_session *s);

/* ---------------------------------------------------------------- channels */

typedef struct evssh_channel evssh_channel;
typedef void (*evssh_channel_cb)(evssh_channel *ch, void *ud);
typedef void (*evssh_data_cb)(evssh_channel *ch, const char *data, size_t len, void *ud);
typedef void (*evssh_ext_data_cb)(evssh_channel *ch, uint32_t type,
                                  const char *data, size_t len, void *ud);
typedef void (*evssh_reply_cb)(evssh_channel *ch, bool success, void *ud);
typedef void (*evssh_open_failed_cb)(evssh_channel *ch, uint32_t reason,
                                     const char *description, void *ud);
enum { EVSSH_REPLY_SUCCESS = 1, EVSSH_REPLY_FAILURE = 0, EVSSH_REPLY_SENT = 2 };
typedef int (*evssh_request_cb)(evssh_channel *ch, const char *type,
                                evssh_reader *data, bool want_reply, void *ud);

EVSSH_API evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud);
EVSSH_API evssh_channel *evssh_session_open_channel_type(evssh_session *s, const char *type,
                                                         const void *extra, size_t extra_len,
                                                         evssh_channel_cb on_open, void *ud);

EVSSH_API void evssh_channel_on_data(evssh_channel *ch, evssh_data_cb cb, void *ud);
EVSSH_API void evssh_channel_on_extended_data(evssh_channel *ch, evssh_ext_data_cb cb, void *ud);
/* registration that can fail (memory) returns EVSSH_ENOMEM; cb NULL removes */
EVSSH_API int evssh_channel_on_request(evssh_channel *ch, const char *type, evssh_request_cb cb, void *ud);
EVSSH_API void evssh_channel_on_eof(evssh_channel *ch, evssh_channel_cb cb, void *ud);
EVSSH_API void evssh_channel_on_close(evssh_channel *ch, evssh_channel_cb cb, void *ud);
EVSSH_API void evssh_channel_on_process(evssh_channel *ch, evssh_channel_cb cb, void *ud);
EVSSH_API void evssh_channel_on_open_failed(evssh_channel *ch, evssh_open_failed_cb cb, void *ud);

EVSSH_API int evssh_channel_exec(evssh_channel *ch, const char *command, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_subsystem(evssh_channel *ch, const char *name, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_shell(evssh_channel *ch, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_request_pty(evssh_channel *ch, const char *term, uint32_t cols,
                                        uint32_t rows, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_env(evssh_channel *ch, const char *name, const char *value,
                                evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_signal(evssh_channel *ch, const char *signame);
EVSSH_API int evssh_channel_send_request(evssh_channel *ch, const char *type,
                                         const void *extra, size_t extra_len,
                                         evssh_reply_cb cb, void *ud);

EVSSH_API int evssh_channel_send_data(evssh_channel *ch, const void *data, size_t len);
EVSSH_API int evssh_channel_send_extended_data(evssh_channel *ch, uint32_t type,
                                               const void *data, size_t len);
EVSSH_API int evssh_channel_eof(evssh_channel *ch);
EVSSH_API int evssh_channel_close(evssh_channel *ch);
/* blocking: loop until this channel is over (closed, or its open refused);
   EVSSH_OK then, or the session's error. May be called from a callback (a
   nested loop). The handle stays readable afterwards (see hold). */
EVSSH_API int evssh_channel_wait(evssh_channel *ch);

EVSSH_API uint32_t evssh_channel_id(const evssh_channel *ch);
EVSSH_API evssh_session *evssh_channel_session(const evssh_channel *ch);
EVSSH_API bool evssh_channel_active(const evssh_channel *ch);
EVSSH_API bool evssh_channel_eof_received(const evssh_channel *ch);
EVSSH_API int evssh_channel_exit_status(const evssh_channel *ch, int *status);
EVSSH_API int evssh_channel_exit_signal(const evssh_channel *ch, const char **signame);
EVSSH_API int evssh_channel_set_property(evssh_channel *ch, const char *key, void *value);
EVSSH_API void *evssh_channel_property(const evssh_channel *ch, const char *key);
/* true once the open was confirmed (stays true after close) */
EVSSH_API bool evssh_channel_opened(const evssh_channel *ch);
/* Runs once, when the library frees the handle (after on_close, by the
   lifetime rule below): release what hangs off it; call nothing on ch but
   the property getters. */
typedef void (*evssh_channel_free_cb)(evssh_channel *ch, void *ud);
EVSSH_API void evssh_channel_on_free(evssh_channel *ch, evssh_channel_free_cb cb, void *ud);

/* ------------------------------------------------------------ backpressure */

/* Lifetime: a channel handle stays readable (state, exit status, exit
   signal, properties) after it closes until the session's loop is next
   entered from the outermost level (no callback of the session on the
   stack), or longer while held; a session frees all its channels. */

/* bytes given to send_data / send_extended_data not yet handed to the
   transport (which holds at most about 1 MiB more for the socket) */
EVSSH_API size_t evssh_channel_pending(const evssh_channel *ch);
/* cb runs once pending falls to low_water or below (0: all handed down),
   from the loop's flush step; it is armed again each time pending rises
   above low_water. Registering arms it (it runs at the next flush when
   pending is already low). cb NULL removes it. */
EVSSH_API void evssh_channel_on_drain(evssh_channel *ch, size_t low_water, evssh_channel_cb cb, void *ud);
/* Paused: our window is not topped up, so the peer stops once it used what
   it was granted; data that still arrives is delivered. Unpausing grants
   the window back. EVSSH_ECLOSED on a closed channel. */
EVSSH_API int evssh_channel_pause(evssh_channel *ch, bool paused);
EVSSH_API bool evssh_channel_paused(const evssh_channel *ch);
/* keep the handle readable after close until as many releases as holds */
EVSSH_API void evssh_channel_hold(evssh_channel *ch);
EVSSH_API void evssh_channel_release(evssh_channel *ch);
/* Our receive window for this channel (default 4 MiB): data the peer may
   send before we grant more. Before confirmation it takes effect once the
   peer confirms; growing it later sends WINDOW_ADJUST at once; shrinking
   it grants less from then on. Size it to the bandwidth-delay product. */
EVSSH_API int evssh_channel_set_receive_window(evssh_channel *ch, uint32_t bytes);
/* The send queue's cap (default 64 MiB): a send_data call that finds
   pending at or above it queues nothing and returns EVSSH_EAGAIN; one
   below it is taken whole. */
EVSSH_API int evssh_channel_set_send_limit(evssh_channel *ch, size_t bytes);
/* what the peer may still send us / we may still send it */
EVSSH_API uint32_t evssh_channel_receive_window(const evssh_channel *ch);
EVSSH_API uint32_t evssh_channel_send_window(const evssh_channel *ch);

/* ------------------------------ global requests and server-opened channels */

typedef void (*evssh_global_reply_cb)(evssh_session *s, bool success,
                                      evssh_reader *response, void *ud);
EVSSH_API int evssh_session_send_global_request(evssh_session *s, const char *type,
                                                const void *extra, size_t extra_len,
                                                evssh_global_reply_cb cb, void *ud);
typedef int (*evssh_global_request_cb)(evssh_session *s, const char *type,
                                       evssh_reader *data, bool want_reply, void *ud);
EVSSH_API int evssh_session_on_global_request(evssh_session *s, const char *type,
                                              evssh_global_request_cb cb, void *ud);
EVSSH_API int evssh_session_send_global_reply(evssh_session *s, bool success,
                                              const void *extra, size_t len);

typedef int (*evssh_open_channel_cb)(evssh_session *s, evssh_channel *ch,
                                     evssh_reader *data, void *ud);
EVSSH_API int evssh_session_on_open_channel(evssh_session *s, const char *type,
                                            evssh_open_channel_cb cb, void *ud);

/* -------------------------------------------------------------- forwarding */

/* Net::SSH's session.forward and ssh's -L, -R, -D and -A, over channels and
   listen_to: everything runs in the session's loop, in an evssh_multi and
   in a foreign loop (the listening and connected sockets are listen_to
   fds). None of these calls blocks, except that a host name given as a
   bind address or as a local target is resolved when the call is made.
   Memory per forwarded connection is bounded: the local socket is read
   only while its channel has less than 512 KiB queued (evssh_channel_pending),
   and what the local socket has not taken yet (at most the channel's
   receive window, 4 MiB) pauses the channel, so the server stops sending
   until the socket drains. Half-close is passed on both ways: EOF from the
   local socket becomes channel EOF, channel EOF becomes shutdown(SHUT_WR).
   A connection ends when both directions are done, when either side fails
   or resets, or when the session ends; every socket of a session is closed
   when it ends (closed, failed, freed). Failures of one connection (a
   refused open, a closed target port: EVSSH_LOG_ERROR; a reset: INFO) are
   logged and end that connection only. Errors of the calls: EVSSH_EINVAL (bad argument;
   the message in evssh_session_error names it), EVSSH_ECONNECT (cannot
   listen: "cannot listen on 127.0.0.1 port 8080: Address already in use"),
   EVSSH_ECLOSED (session over), EVSSH_ENOMEM.

   Addresses. A bind_address of NULL is 127.0.0.1 (every interface when the
   session has GatewayPorts=yes), "" or "*" is every interface (0.0.0.0 and
   ::), "localhost" is 127.0.0.1 and ::1, anything else that address (or
   name). A bind_address or local path starting with '/' is a unix socket
   (the port is then ignored; the file must not exist; it is removed when
   the forward ends). A target host starting with '/' is a unix socket on
   the far side (direct-streamlocal@openssh.com for local forwards) or here
   (remote forwards). */

/* ssh -L [bind_address:]port:host:hostport: listen here; each connection
   goes to host:hostport (as the server resolves it) over a direct-tcpip
   channel. port 0 picks a free port; *bound_port (may be NULL) gets the
   port listened on. Returns at once; connections are served by the loop. */
EVSSH_API int evssh_forward_local(evssh_session *s, const char *bind_address, int port,
                                  const char *host, int hostport, int *bound_port);
/* ssh -L local_path:remote_path: a unix socket here, each connection to the
   server's unix socket remote_path (direct-streamlocal@openssh.com). */
EVSSH_API int evssh_forward_local_socket(evssh_session *s, const char *local_path, const char *remote_path);
/* Stop listening (port: as requested or as bound; a path for unix ones);
   connections already open go on until they end. This also cancels a
   dynamic forward. EVSSH_EINVAL when there is no such forward. */
EVSSH_API int evssh_forward_cancel_local(evssh_session *s, const char *bind_address, int port);

/* ssh -R: ask the server to listen (tcpip-forward) on bind_address:port
   (NULL: "localhost" as ssh sends it, "" or "*": every interface; port 0:
   the server picks). Returns at once; cb (may be NULL) runs once the
   server answered: status EVSSH_OK with the port it listens on, or
   EVSSH_ECHANNEL when it refused (logged: "remote port forwarding failed
   for listen port 9000"), or EVSSH_ECLOSED when the session ended first.
   Each connection the server gets arrives as a forwarded-tcpip channel and
   is joined to a new connection to host:hostport here (host starting with
   '/': a unix socket). A connection that cannot be made closes that
   channel (and is logged). */
typedef void (*evssh_forward_cb)(evssh_session *s, int status, int bound_port, void *ud);
EVSSH_API int evssh_forward_remote(evssh_session *s, const char *bind_address, int port,
                                   const char *host, int hostport, evssh_forward_cb cb, void *ud);
/* ssh -R remote_path:host:hostport: the server listens on its unix socket
   remote_path (streamlocal-forward@openssh.com); cb as above, bound_port 0. */
EVSSH_API int evssh_forward_remote_socket(evssh_session *s, const char *remote_path,
                                          const char *host, int hostport, evssh_forward_cb cb, void *ud);
/* cancel-tcpip-forward (or cancel-streamlocal-forward@openssh.com for a
   bind_address starting with '/'); port as requested or as bound. The
   forward is gone at once: connections the server still opens for it are
   refused. EVSSH_EINVAL when there is no such forward. */
EVSSH_API int evssh_forward_cancel_remote(evssh_session *s, const char *bind_address, int port);

/* ssh -D: a SOCKS proxy here (SOCKS4, SOCKS4a, SOCKS5 without
   authentication; CONNECT to an IPv4 or IPv6 address or a domain name,
   which the server resolves). Each CONNECT opens a direct-tcpip channel;
   the SOCKS reply says whether the server could connect (a refused open
   maps to the closest SOCKS error: connection refused, host or network
   unreachable, not allowed). BIND, UDP ASSOCIATE and other auth methods
   get their SOCKS refusal; garbage closes the connection. Cancel with
   evssh_forward_cancel_local. */
EVSSH_API int evssh_forward_dynamic(evssh_session *s, const char *bind_address, int port, int *bound_port);

/* Agent forwarding on a session channel (auth-agent-req@openssh.com, and
   the IETF name agent-req when a server refuses that one), before or after
   the channel is confirmed. Afterwards the server's auth-agent@openssh.com
   (also auth-agent and agent-connect) channels are joined to the local
   agent: ForwardAgent=PATH or $NAME when set, else IdentityAgent, else
   $SSH_AUTH_SOCK. cb (may be NULL) gets the server's answer. EVSSH_EINVAL
   at once when there is no agent to forward ("agent forwarding: no
   ssh-agent: SSH_AUTH_SOCK is not set"), EVSSH_ECONNECT when its socket
   cannot be reached; an agent that goes away later refuses the server's
   channel (the remote ssh-add says it cannot connect; nothing hangs).
   Agent channels are invisible (they keep no loop busy). ForwardAgent=yes
   (or a path) in the options requests it once, after authentication, on a
   session channel of its own, which OpenSSH's sshd honours for every
   later session. */
EVSSH_API int evssh_channel_request_agent(evssh_channel *ch, evssh_reply_cb cb, void *ud);

/* The session's forwards (Net::SSH's active_locals / active_remotes), in
   the order they were made. Fills up to max entries and returns how many
   there are. The strings belong to the forwards: they live until that
   forward is cancelled (and its last connection ended), the server refuses
   it, or the session is freed. */
typedef enum { EVSSH_FORWARD_LOCAL = 1, EVSSH_FORWARD_REMOTE = 2, EVSSH_FORWARD_DYNAMIC = 3 } evssh_forward_kind;
typedef struct evssh_forward_info {
  int kind;                 /* evssh_forward_kind */
  const char *bind_address; /* as given (NULL: the default), or the socket path */
  int port;                 /* as requested (0 for a path) */
  int bound_port;           /* listened on; remote: 0 until the server answered */
  const char *host;         /* target host or path; NULL for dynamic */
  int hostport;
  bool active;              /* listening (remote: the server said yes) */
  size_t connections;       /* connections open through it now */
} evssh_forward_info;
EVSSH_API size_t evssh_forward_list(evssh_session *s, evssh_forward_info *out, size_t max);

/* --------------------------------------------------------- exec helpers */

typedef enum { EVSSH_STDOUT = 0, EVSSH_STDERR = 1 } evssh_stream;
typedef void (*evssh_exec_cb)(evssh_channel *ch, evssh_stream stream,
                              const char *data, size_t len, void *ud);
EVSSH_API evssh_channel *evssh_session_exec(evssh_session *s, const char *command,
                                            evssh_exec_cb cb, void *ud);

typedef struct evssh_result {
  char *out;  size_t out_len;  /* stdout, NUL-terminated too */
  char *err;  size_t err_len;  /* stderr, NUL-terminated too */
  int exit_status;             /* -1 if none was sent */
  char *exit_signal;           /* "TERM", or NULL */
} evssh_result;
EVSSH_API int evssh_session_exec_wait(evssh_session *s, const char *command, evssh_result *result);
EVSSH_API void evssh_result_free(evssh_result *result);

/* ------------------------------------------------- many sessions, one loop */

typedef struct evssh_multi evssh_multi;
EVSSH_API evssh_multi *evssh_multi_new(void);
EVSSH_API void evssh_multi_free(evssh_multi *m);
EVSSH_API int evssh_multi_add(evssh_multi *m, evssh_session *s);
EVSSH_API int evssh_multi_remove(evssh_multi *m, evssh_session *s);
typedef bool (*evssh_multi_cond_cb)(evssh_multi *m, void *ud);
EVSSH_API int evssh_multi_process(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud);
EVSSH_API int evssh_multi_loop(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud);
/* A whole multi inside another event loop (additions): one fd, readable
   when any member's fd or listen_to fd is ready; poll it for reading only.
   evssh_multi_timeout brings the multi's interest up to date and returns
   how long the caller may wait on that fd before calling
   evssh_multi_process(m, 0, ...): ms, -1 no timer, 0 work to do now. Call
   it right before every wait. */
EVSSH_API int evssh_multi_fd(const evssh_multi *m);
EVSSH_API int evssh_multi_timeout(evssh_multi *m);

/* ----------------------------------- running inside another event loop */

EVSSH_API int evssh_session_fd(const evssh_session *s);
EVSSH_API int evssh_session_events(const evssh_session *s);
EVSSH_API int evssh_session_timeout(const evssh_session *s);
EVSSH_API int evssh_session_handle_events(evssh_session *s, int revents);

/* ----------------------------------------------------------------- logging */

enum { EVSSH_LOG_ERROR = 1, EVSSH_LOG_INFO = 2, EVSSH_LOG_DEBUG = 3, EVSSH_LOG_PACKET = 4 };
typedef void (*evssh_log_cb)(evssh_session *s, int level, const char *message, void *ud);
EVSSH_API void evssh_session_set_log(evssh_session *s, int level, evssh_log_cb cb, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* EVSSH_H */
