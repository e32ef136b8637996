/* The byte pipe under the transport. Whatever carries the SSH stream (a TCP
 * socket, a ProxyCommand child, a channel of another session for ProxyJump)
 * ends up as one non-blocking file descriptor: sockets directly, the others
 * through a socketpair. The connector gets there without blocking: name
 * resolution with getaddrinfo_a, then a non-blocking connect to each address
 * in turn. */
#ifndef EVSSH_IO_H
#define EVSSH_IO_H

#include "evssh.h"
#include <stdbool.h>
#include <sys/types.h>

typedef struct evssh_connector evssh_connector;

/* A pipe built by a layer above io.c (ProxyJump: a channel of another
   session). io.c never calls up: the builder hands these hooks down and the
   connector drives them. The pipe stays alive for the whole session, so the
   connector of a session that has one is kept after the connect. */
typedef struct io_pipe_ops {
  /* one pollable fd standing for every fd the pipe needs (an epoll fd) */
  int  (*poll_fd)(void *ctx);
  int  (*timeout_ms)(void *ctx);          /* -1 none, 0 work to do now */
  /* Advance the pipe. *transport_fd: the end the transport runs on, -1
     until the pipe is up. *transport_revents: readiness of that end.
     EVSSH_OK, or <0 with err filled: the pipe is broken. */
  int  (*handle)(void *ctx, int *transport_fd, int *transport_revents, char *err, size_t errlen);
  /* the transport now wants these events on its end */
  void (*want)(void *ctx, int transport_events);
  void (*free)(void *ctx);
} io_pipe_ops;

/* How our own TCP connection is made (ssh_config AddressFamily and
   BindAddress); a ProxyCommand makes its own and ignores these. */
typedef struct io_connect_opts {
  int family;                /* AF_UNSPEC, AF_INET or AF_INET6 */
  const char *bind_address;  /* numeric source address, NULL: the kernel's choice */
} io_connect_opts;

/* Start connecting to host:port, or start proxy_command (already
   token-expanded; run with /bin/sh -c) when it is not NULL. */
int  connector_start(const char *host, int port, const char *proxy_command,
                     evssh_connector **out, char *err, size_t errlen);
/* The same with AddressFamily and BindAddress (opts may be NULL).
   EVSSH_EINVAL for a bind address that is not a numeric one of the family. */
int  connector_start_opts(const char *host, int port, const char *proxy_command, const io_connect_opts *opts,
                          evssh_connector **out, char *err, size_t errlen);
/* A connector over a connection the program made (evssh_session_set_fd):
   the first step hands fd over. */
int  connector_start_fd(int fd, evssh_connector **out);
/* errno of the connector's last failed system call (connect, bind, socket,
   fork), 0 when its failure was not one (name resolution) */
int  connector_errno(const evssh_connector *c);
/* A connector over a pipe from above; takes ownership of ctx (ops->free). */
int  connector_start_pipe(const io_pipe_ops *ops, void *ctx, evssh_connector **out);
/* true when the connector carries a pipe and must live as long as the session */
bool connector_has_pipe(const evssh_connector *c);
/* A TCP socket the connector hands out has SO_RCVLOWAT set to this (fewer
   bytes than any server's banner + KEXINIT), so the first poll reports it
   once for both; the transport sets it back to 1 at its first read, and
   anyone else reading the socket must too. */
#define CONNECT_RCVLOWAT 64
/* after the connect: the pipe's poll fd, timeout, and one step that reports
   the transport end's readiness (pipe connectors only) */
int  connector_pipe_handle(evssh_connector *c, int *transport_revents, char *err, size_t errlen);
void connector_pipe_want(evssh_connector *c, int transport_events);

/* fd to poll and the events wanted, -1 when only a timer is pending */
int  connector_fd(const evssh_connector *c);
int  connector_events(const evssh_connector *c);
int  connector_timeout_ms(const evssh_connector *c);
/* Advance. EVSSH_EAGAIN: still in progress. EVSSH_OK: *fd is the connected
   non-blocking descriptor (ownership passes to the caller). <0: failed with
   err filled (EVSSH_ECONNECT). */
int  connector_step(evssh_connector *c, int *fd, char *err, size_t errlen);
/* The same, told what a poll of connector_fd just reported (EVSSH_WRITE
   on the connecting socket: the connect finished, no need to ask again). */
int  connector_step_events(evssh_connector *c, int revents, int *fd, char *err, size_t errlen);
/* What the connector is waiting for, for timeout messages: "name
   resolution", "TCP connect", "ProxyJump" */
const char *connector_phase(const evssh_connector *c);
/* The ProxyCommand child, if any: the caller reaps it with proxy_child_end. */
pid_t connector_child(const evssh_connector *c);
void connector_free(evssh_connector *c);
/* End a ProxyCommand child: SIGHUP then reap (bounded). */
void proxy_child_end(pid_t pid);

/* numeric address of a connected socket ("127.0.0.1"), for known_hosts */
int  io_peer_address(int fd, char *out, size_t outlen);
int  io_set_nonblocking(int fd);

#endif
