/* The byte pipe under the transport. Whatever carries the SSH stream (a TCP
 * socket, a ProxyCommand child, a channel of another session for ProxyJump)
 * ends up as one non-blocking file descriptor: sockets directly, the others
 * through a socketpair. The connector gets there without blocking: name
 * resolution with getaddrinfo_a, then a non-blocking connect to each address
 * in turn. */
#ifndef EVSSH_IO_H
#define EVSSH_IO_H

#include "evssh.h"
#include <sys/types.h>

typedef struct evssh_connector evssh_connector;

/* Start connecting to host:port, or start proxy_command (already
   token-expanded; run with /bin/sh -c) when it is not NULL. */
int  connector_start(const char *host, int port, const char *proxy_command,
                     evssh_connector **out, char *err, size_t errlen);
/* fd to poll and the events wanted, -1 when only a timer is pending */
int  connector_fd(const evssh_connector *c);
int  connector_events(const evssh_connector *c);
int  connector_timeout_ms(const evssh_connector *c);
/* Advance. EVSSH_EAGAIN: still in progress. EVSSH_OK: *fd is the connected
   non-blocking descriptor (ownership passes to the caller). <0: failed with
   err filled (EVSSH_ECONNECT). */
int  connector_step(evssh_connector *c, int *fd, char *err, size_t errlen);
/* The ProxyCommand child, if any: the caller reaps it with proxy_child_end. */
pid_t connector_child(const evssh_connector *c);
void connector_free(evssh_connector *c);
/* End a ProxyCommand child: SIGHUP then reap (bounded). */
void proxy_child_end(pid_t pid);

/* numeric address of a connected socket ("127.0.0.1"), for known_hosts */
int  io_peer_address(int fd, char *out, size_t outlen);
int  io_set_nonblocking(int fd);

#endif
