/* Internal interfaces of the forwarding service (forward.c, forward_relay.c,
 * forward_net.c, forward_config.c, agent_forward.c): the per-session state,
 * the relay that joins one local socket to one channel with bounded
 * buffers, the socket helpers, and the ssh_config setup connect.c calls.
 * Everything here runs over the public API (channels, listen_to, global
 * requests, backpressure) plus session_diag for logs and session_on_end
 * for the session's end; nothing reaches into the connection layer. */
#ifndef EVSSH_FORWARD_H
#define EVSSH_FORWARD_H

#include "evssh.h"
#include "options.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ------------------------------------------------------------- the bounds */

/* One read from a local socket. */
#define FWD_READ_CHUNK (64u * 1024u)
/* A relay stops reading its local socket while its channel has at least
   this much queued (evssh_channel_pending) and reads again once on_drain
   says it fell to FWD_SEND_LOW: socket → channel memory per connection. */
#define FWD_SEND_HIGH (512u * 1024u)
#define FWD_SEND_LOW (128u * 1024u)
/* Reads per readiness callback, so one busy socket cannot starve the rest. */
#define FWD_READS_PER_WAKEUP 16
/* Channel → socket: what the socket did not take waits in the relay, and
   the channel is paused meanwhile, so the peer can send at most the receive
   window it was granted (the connection layer's default, 4 MiB). */
/* A SOCKS request (greeting and CONNECT) is never longer than this. */
#define FWD_HANDSHAKE_MAX 1024u
/* Connections accepted per listener wakeup. */
#define FWD_ACCEPTS_PER_WAKEUP 64

/* --------------------------------------------------------- session state */

/* a socket address (TCP or unix) */
typedef struct fwd_addr {
  struct sockaddr_storage sa;
  socklen_t len;
} fwd_addr;

typedef struct fwd_listener fwd_listener;
typedef struct fwd_remote fwd_remote;
typedef struct fwd_relay fwd_relay;

typedef struct fwd_state {
  evssh_session *s;
  bool ended;                 /* the session is over: nothing new starts */
  fwd_listener *listeners;    /* local (-L) and dynamic (-D) */
  fwd_remote *remotes;        /* remote (-R) */
  fwd_relay *relays;          /* every joined connection */
  bool remote_handlers;       /* forwarded-tcpip / -streamlocal registered */
  bool gateway_ports;         /* GatewayPorts: no bind address means all */
  /* agent forwarding (agent_forward.c) */
  char *agent_sock;           /* ForwardAgent PATH / IdentityAgent; NULL: $SSH_AUTH_SOCK */
  bool agent_configured;      /* forward_config told us the session's sockets */
  bool agent_enabled;         /* a request went out: the server may open agent channels */
  bool agent_handlers;
  /* the ssh_config setup under way (forward_config.c) */
  struct fwd_setup *setup;
} fwd_state;

/* The session's forwarding state, created on first use when create is true
   (NULL: no memory, or none yet). It lives until the session is freed. */
fwd_state *fwd_state_of(evssh_session *s, bool create);
/* log through the session's diagnostics */
void fwd_log(evssh_session *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Set evssh_session_error's text (the session stays up) and return code. */
int  fwd_error(evssh_session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ----------------------------------------------------------------- relay */

/* A relay joins a connected local stream socket to one channel: socket
   bytes go out as channel data, channel data is written to the socket,
   EOF is passed on both ways (socket EOF → channel EOF, channel EOF →
   shutdown(SHUT_WR)), and the relay ends (socket closed) once both
   directions are done, either side fails, or the session ends. Memory is
   bounded: reading stops at FWD_SEND_HIGH queued; the channel is paused
   while the socket has not taken what came, so at most one receive window
   waits here. */
typedef struct fwd_relay_ops {
  /* the channel we opened was confirmed (ok) or refused (reason and the
     server's description); may call relay_write_first. NULL: nothing. */
  void (*opened)(fwd_relay *r, bool ok, uint32_t reason, const char *description, void *ud);
  /* before the channel is opened: every byte read so far that nobody took
     (at most FWD_HANDSHAKE_MAX). Returns how many it consumed, or -1 to
     end the relay; may write replies and call relay_open. NULL: no
     handshake (the socket is not read until the channel is open). */
  long (*handshake)(fwd_relay *r, const unsigned char *data, size_t len, void *ud);
  /* the relay is over: its socket is closed; r is freed after. NULL ok. */
  void (*ended)(fwd_relay *r, void *ud);
} fwd_relay_ops;

/* Takes fd (a connected non-blocking socket; closed on failure too), or -1
   for a relay that connects with relay_connect. label names it in logs. */
int  relay_new(fwd_state *st, int fd, const char *label, const fwd_relay_ops *ops, void *ud, fwd_relay **out);
/* Connect the relay's socket to the first of addrs that takes it (a
   connect still under way completes later; one that fails then moves on
   to the next address, and the relay ends after the last). 0, or the
   errno of the last immediate failure when none is even under way (the
   relay is left without a socket: abort it). */
int  relay_connect(fwd_relay *r, const fwd_addr *addrs, size_t n);
/* Open the channel (type and its extra data); the socket is read once the
   open is confirmed. EVSSH_ECLOSED / ENOMEM end the relay. */
int  relay_open(fwd_relay *r, const char *type, const void *extra, size_t extra_len);
/* Join a channel the server opened (from its on_open_channel callback). */
int  relay_accept(fwd_relay *r, evssh_channel *ch);
/* bytes for the socket ahead of any channel data (a SOCKS reply) */
int  relay_write_first(fwd_relay *r, const void *data, size_t len);
/* End the relay now: channel closed, socket closed. */
void relay_abort(fwd_relay *r, const char *why);
/* End the relay once what waits for the socket is written (a SOCKS refusal). */
void relay_finish(fwd_relay *r);
const char *relay_label(const fwd_relay *r);
/* Close every relay of a session that ended (no channel is left). */
void relay_end_all(fwd_state *st);
/* free every relay (the session is being freed; channels are gone) */
void relay_free_all(fwd_state *st);

/* ------------------------------------------------------- socket helpers */

/* The addresses to listen on for bind_address (see evssh_forward_local):
   NULL → 127.0.0.1 (all interfaces when gateway_ports), "" or "*" → all
   interfaces, "localhost" → 127.0.0.1 and ::1, else that address. At most
   max; EVSSH_EINVAL with err when it does not resolve. */
int  net_listen_addrs(const char *bind_address, bool gateway_ports, int port, fwd_addr *out, size_t max,
                      size_t *n, char *err, size_t errlen);
/* Listening sockets for those addresses (non-blocking, close-on-exec,
   SO_REUSEADDR); port 0 takes the kernel's pick for the first and the same
   port for the others. fds gets the sockets, *bound the port. Succeeds when
   at least one address could be bound. */
int  net_listen_tcp(const fwd_addr *addrs, size_t n, int *fds, size_t *nfds, int *bound, char *err, size_t errlen);
/* A listening unix socket at path (which must not exist). */
int  net_listen_unix(const char *path, int *fd, char *err, size_t errlen);
/* The addresses of a target host:port (resolved now: blocking for a name
   that is not an address), or the unix socket path when host starts with
   '/'. *out is a heap array. */
int  net_resolve(const char *host, int port, fwd_addr **out, size_t *n, char *err, size_t errlen);
/* Start a non-blocking connect to a; *in_progress when it completes later.
   0 or the errno of the failure. */
int  net_connect_addr(const fwd_addr *a, int *fd, bool *in_progress);
/* TCP_NODELAY on a TCP socket (forwarded traffic is often request/reply) */
void net_nodelay(int fd);
/* "addr" and port of a peer, for originator fields; "127.0.0.1" 65535 when
   it has none (unix sockets), as OpenSSH says it. */
void net_peer(int fd, char *host, size_t hostlen, int *port);
/* Display form of a listen/target endpoint: "[::1]:22", "host:80", "/path". */
void net_endpoint(char *out, size_t outlen, const char *host, int port);

/* ----------------------------------------------- ssh_config setup (connect.c) */

/* connect.c, at connect_async: the program's on_ready runs through here so
   the forwards of the options are set up first (after authentication, as
   ssh does). EVSSH_ENOMEM. */
int  forward_connect_prepare(evssh_session *s, evssh_session_cb on_ready, void *ud);
/* connect.c, when the session is ready (status 0) or failed: set up
   LocalForward, RemoteForward, DynamicForward and ForwardAgent from o (may
   be NULL on failure), then run the program's on_ready: with the failure,
   or with ExitOnForwardFailure's once the server answered every
   RemoteForward (fail then ends the session with the message first). */
void forward_connect_ready(evssh_session *s, int status, const evssh_options *o,
                           void (*fail)(evssh_session *s, int code, const char *message));
/* connect.c's blocking connect: true while the setup waits for replies */
bool forward_setup_pending(evssh_session *s);

/* agent_forward.c: the sockets the session's options name (connect time) */
int  agent_forward_configure(fwd_state *st, const evssh_options *o);
/* agent_forward.c: request forwarding on a session channel of our own, as
   ForwardAgent asks; done runs once the server answered. */
int  agent_forward_auto(evssh_session *s, void (*done)(evssh_session *s, bool ok, void *ud), void *ud);

#endif
