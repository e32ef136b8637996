/* io.c owns getting a byte pipe to the server without blocking the loop:
 * asynchronous name resolution, a non-blocking connect to every address the
 * name resolves to in turn, ProxyCommand children on a socketpair, and the
 * hook table through which a pipe built above (ProxyJump's channel bridge)
 * is driven without io.c calling up. The transport always gets a single
 * non-blocking fd, so it has one kind of pipe to drive. */
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* getaddrinfo_a completes on a glibc thread; that thread signals us through
   a socketpair. The request outlives the connector if the connector is freed
   first: whichever side finishes last frees it. */
enum { REQ_PENDING = 0, REQ_DONE = 1, REQ_ORPHANED = 2 };

typedef struct resolve_req {
  struct gaicb cb;
  struct gaicb *list[1];
  struct addrinfo hints;
  char host[256];
  char service[16];
  int notify_fd;        /* written by the resolver thread */
  atomic_int state;
} resolve_req;

typedef enum { C_RESOLVING, C_CONNECTING, C_DONE, C_FAILED, C_PIPE } conn_phase;

struct evssh_connector {
  conn_phase phase;
  char host[256];
  int port;
  int family;           /* AddressFamily: AF_UNSPEC, AF_INET or AF_INET6 */
  struct sockaddr_storage bind_addr;  /* BindAddress, port 0; bind_len 0: none */
  socklen_t bind_len;
  char bind_text[INET6_ADDRSTRLEN];
  int last_errno;       /* of the last failed socket call, for evssh_session_sys_errno */
  resolve_req *req;
  int wake_fd;          /* read side of the resolver's socketpair */
  struct addrinfo *addrs, *next;
  int sock;
  char last_error[160];
  pid_t child;
  bool woken;                /* the resolver's byte came: check again soon, not only on the next byte */
  const io_pipe_ops *pipe;   /* C_PIPE: a pipe from above (ProxyJump) */
  void *pipe_ctx;
  bool pipe_handed;          /* its transport end went to the caller */
};

int io_set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return EVSSH_ECONNECT;
  return EVSSH_OK;
}

static void resolve_done(union sigval sv) {
  resolve_req *req = sv.sival_ptr;
  char one = 1;
  (void)!send(req->notify_fd, &one, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (atomic_exchange(&req->state, REQ_DONE) == REQ_ORPHANED) {
    if (req->cb.ar_result) freeaddrinfo(req->cb.ar_result);
    close(req->notify_fd);
    free(req);
  }
}

static int start_resolve(evssh_connector *c, char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
    snprintf(err, errlen, "resolve %s: socketpair: %s", c->host, strerror(errno));
    return EVSSH_ECONNECT;
  }
  resolve_req *req = calloc(1, sizeof *req);
  if (!req) {
    close(sv[0]); close(sv[1]);
    return EVSSH_ENOMEM;
  }
  snprintf(req->host, sizeof req->host, "%s", c->host);
  snprintf(req->service, sizeof req->service, "%d", c->port);
  req->hints.ai_family = c->family;
  req->hints.ai_socktype = SOCK_STREAM;
  req->hints.ai_flags = AI_ADDRCONFIG;
  req->cb.ar_name = req->host;
  req->cb.ar_service = req->service;
  req->cb.ar_request = &req->hints;
  req->list[0] = &req->cb;
  req->notify_fd = sv[1];
  atomic_init(&req->state, REQ_PENDING);
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD;
  sev.sigev_notify_function = resolve_done;
  sev.sigev_value.sival_ptr = req;
  int rc = getaddrinfo_a(GAI_NOWAIT, req->list, 1, &sev);
  if (rc != 0) {
    snprintf(err, errlen, "resolve %s: %s", c->host, gai_strerror(rc));
    close(sv[0]); close(sv[1]);
    free(req);
    return EVSSH_ECONNECT;
  }
  c->req = req;
  c->wake_fd = sv[0];
  c->phase = C_RESOLVING;
  return EVSSH_OK;
}

static void release_req(evssh_connector *c) {
  if (!c->req) return;
  resolve_req *req = c->req;
  c->req = NULL;
  gai_cancel(&req->cb);
  if (atomic_exchange(&req->state, REQ_ORPHANED) == REQ_DONE) {
    if (req->cb.ar_result) freeaddrinfo(req->cb.ar_result);
    close(req->notify_fd);
    free(req);
  }
  /* else the resolver thread frees it when it finishes */
}

static int spawn_proxy(evssh_connector *c, const char *command, char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    snprintf(err, errlen, "ProxyCommand: socketpair: %s", strerror(errno));
    return EVSSH_ECONNECT;
  }
  pid_t pid = fork();
  if (pid < 0) {
    c->last_errno = errno;
    snprintf(err, errlen, "ProxyCommand: fork: %s", strerror(errno));
    close(sv[0]); close(sv[1]);
    return EVSSH_ECONNECT;
  }
  if (pid == 0) {
    /* child: its stdin and stdout are our pipe; stderr stays the user's */
    if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0) _exit(127);
    signal(SIGPIPE, SIG_DFL);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
  }
  close(sv[1]);
  io_set_nonblocking(sv[0]);
  c->sock = sv[0];
  c->child = pid;
  c->phase = C_DONE;
  return EVSSH_OK;
}

/* BindAddress: a numeric address (resolving a name here would block the
   loop); any port. */
static int parse_bind_address(evssh_connector *c, const char *addr, char *err, size_t errlen) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = c->family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  int rc = getaddrinfo(addr, NULL, &hints, &res);
  if (rc != 0 || !res || res->ai_addrlen > sizeof c->bind_addr) {
    snprintf(err, errlen, "BindAddress %s: %s", addr,
             rc == EAI_NONAME ? "not a numeric address of the AddressFamily (names are not resolved)" : gai_strerror(rc));
    if (res) freeaddrinfo(res);
    return EVSSH_EINVAL;
  }
  memcpy(&c->bind_addr, res->ai_addr, res->ai_addrlen);
  c->bind_len = res->ai_addrlen;
  snprintf(c->bind_text, sizeof c->bind_text, "%s", addr);
  freeaddrinfo(res);
  return EVSSH_OK;
}

static evssh_connector *connector_alloc(void) {
  evssh_connector *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->sock = -1;
  c->wake_fd = -1;
  c->child = -1;
  c->family = AF_UNSPEC;
  return c;
}

/* Resolve (at once for a numeric address, else asynchronously) and connect. */
static int start_tcp(evssh_connector *c, const char *bind_address, char *err, size_t errlen) {
  if (bind_address) {
    int rc = parse_bind_address(c, bind_address, err, errlen);
    if (rc) return rc;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = c->family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  char service[16];
  snprintf(service, sizeof service, "%d", c->port);
  if (getaddrinfo(c->host, service, &hints, &res) != 0) return start_resolve(c, err, errlen);
  c->addrs = res;
  c->next = res;
  c->phase = C_CONNECTING;
  return EVSSH_OK;
}

int connector_start_opts(const char *host, int port, const char *proxy_command, const io_connect_opts *opts,
                         evssh_connector **out, char *err, size_t errlen) {
  if (!host || !*host || port <= 0 || port > 65535) {
    snprintf(err, errlen, "invalid host or port");
    return EVSSH_EINVAL;
  }
  evssh_connector *c = connector_alloc();
  if (!c) return EVSSH_ENOMEM;
  snprintf(c->host, sizeof c->host, "%s", host);
  c->port = port;
  if (opts) c->family = opts->family;
  int rc;
  if (proxy_command && *proxy_command && strcmp(proxy_command, "none") != 0)
    /* as ssh: the command makes its own connection; BindAddress and
       AddressFamily are for ours */
    rc = spawn_proxy(c, proxy_command, err, errlen);
  else
    rc = start_tcp(c, opts ? opts->bind_address : NULL, err, errlen);
  if (rc != EVSSH_OK) {
    connector_free(c);
    return rc;
  }
  *out = c;
  return EVSSH_OK;
}

int connector_start(const char *host, int port, const char *proxy_command, evssh_connector **out, char *err,
                    size_t errlen) {
  return connector_start_opts(host, port, proxy_command, NULL, out, err, errlen);
}

int connector_start_fd(int fd, evssh_connector **out) {
  evssh_connector *c = connector_alloc();
  if (!c) return EVSSH_ENOMEM;
  snprintf(c->host, sizeof c->host, "the connection given with evssh_session_set_fd");
  c->sock = fd;
  c->phase = C_DONE;
  *out = c;
  return EVSSH_OK;
}

int connector_errno(const evssh_connector *c) { return c ? c->last_errno : 0; }

int connector_start_pipe(const io_pipe_ops *ops, void *ctx, evssh_connector **out) {
  evssh_connector *c = connector_alloc();
  if (!c) {
    ops->free(ctx);
    return EVSSH_ENOMEM;
  }
  c->phase = C_PIPE;
  c->pipe = ops;
  c->pipe_ctx = ctx;
  *out = c;
  return EVSSH_OK;
}

bool connector_has_pipe(const evssh_connector *c) { return c && c->pipe; }

int connector_pipe_handle(evssh_connector *c, int *transport_revents, char *err, size_t errlen) {
  int tfd = -1;
  *transport_revents = 0;
  if (!c->pipe) return EVSSH_EINVAL;
  return c->pipe->handle(c->pipe_ctx, &tfd, transport_revents, err, errlen);
}

void connector_pipe_want(evssh_connector *c, int transport_events) {
  if (c->pipe) c->pipe->want(c->pipe_ctx, transport_events);
}

int connector_fd(const evssh_connector *c) {
  if (c->pipe) return c->pipe->poll_fd(c->pipe_ctx);
  if (c->phase == C_RESOLVING) return c->wake_fd;
  if (c->phase == C_CONNECTING) return c->sock;
  return -1;
}

int connector_events(const evssh_connector *c) {
  if (c->pipe) return EVSSH_READ;   /* an epoll fd is readable when anything inside is ready */
  if (c->phase == C_RESOLVING) return EVSSH_READ;
  if (c->phase == C_CONNECTING && c->sock >= 0) return EVSSH_WRITE;
  return 0;
}

int connector_timeout_ms(const evssh_connector *c) {
  if (c->pipe) return c->pipe->timeout_ms(c->pipe_ctx);
  /* woken but the result not visible yet: look again shortly */
  if (c->phase == C_RESOLVING && c->woken) return 1;
  /* a connecting phase with no socket yet has work to do right away */
  if (c->phase == C_CONNECTING && c->sock < 0) return 0;
  if (c->phase == C_DONE) return 0;
  return -1;
}

pid_t connector_child(const evssh_connector *c) { return c->child; }

const char *connector_phase(const evssh_connector *c) {
  switch (c->phase) {
  case C_RESOLVING: return "name resolution";
  case C_PIPE: return "the connect through the jump host";
  default: return "TCP connect";
  }
}

static void describe(const struct addrinfo *ai, char *out, size_t outlen) {
  char addr[INET6_ADDRSTRLEN] = "?";
  if (ai->ai_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, addr, sizeof addr);
  else if (ai->ai_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, addr, sizeof addr);
  snprintf(out, outlen, "%s", addr);
}

/* BindAddress: the source address of the socket, of the same family as the
   address being tried. false with last_error set when it cannot be used. */
static bool bind_source(evssh_connector *c, int s, const struct addrinfo *ai, const char *addr) {
  if (c->bind_len == 0) return true;
  if (c->bind_addr.ss_family != ai->ai_family) {
    c->last_errno = EAFNOSUPPORT;
    snprintf(c->last_error, sizeof c->last_error, "%s: BindAddress %s is of another address family", addr,
             c->bind_text);
    return false;
  }
  if (bind(s, (const struct sockaddr *)&c->bind_addr, c->bind_len) < 0) {
    c->last_errno = errno;
    snprintf(c->last_error, sizeof c->last_error, "bind to BindAddress %s: %s", c->bind_text, strerror(errno));
    return false;
  }
  return true;
}

/* Try addresses until one connect is in progress or done. */
static int try_next_address(evssh_connector *c) {
  while (c->next) {
    struct addrinfo *ai = c->next;
    c->next = ai->ai_next;
    char addr[INET6_ADDRSTRLEN];
    describe(ai, addr, sizeof addr);
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (s < 0) {
      c->last_errno = errno;
      snprintf(c->last_error, sizeof c->last_error, "%s: socket: %s", addr, strerror(errno));
      continue;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* The server's first flight is its banner and its KEXINIT, over
       CONNECT_RCVLOWAT bytes from any server (a KEXINIT alone is longer):
       the poll reports the socket once for both rather than first for the
       banner alone (a FIN is reported whatever came). The transport sets
       it back to 1 at its first read (whoever drives it must: see io.h). */
    int lowat = CONNECT_RCVLOWAT;
    setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
    if (!bind_source(c, s, ai, addr)) {
      close(s);
      continue;
    }
    if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
      c->sock = s;
      c->phase = C_DONE;
      return EVSSH_OK;
    }
    if (errno == EINPROGRESS) {
      c->sock = s;
      return EVSSH_EAGAIN;
    }
    c->last_errno = errno;
    snprintf(c->last_error, sizeof c->last_error, "%s: %s", addr, strerror(errno));
    close(s);
  }
  return EVSSH_ECONNECT;
}

int connector_step(evssh_connector *c, int *fd, char *err, size_t errlen) {
  return connector_step_events(c, 0, fd, err, errlen);
}

int connector_step_events(evssh_connector *c, int revents, int *fd, char *err, size_t errlen) {
  /* a poll's word counts only for the socket that was polled: the one in
     place when this call began */
  bool polled_writable = (revents & EVSSH_WRITE) && c->phase == C_CONNECTING && c->sock >= 0;
  for (;;) {
    switch (c->phase) {
    case C_PIPE: {
      int tfd = -1, trev = 0;
      int rc = c->pipe->handle(c->pipe_ctx, &tfd, &trev, err, errlen);
      if (rc < 0) return rc;
      if (tfd < 0 || c->pipe_handed) return EVSSH_EAGAIN;
      c->pipe_handed = true;
      *fd = tfd;
      return EVSSH_OK;
    }
    case C_RESOLVING: {
      char drain[16];
      while (read(c->wake_fd, drain, sizeof drain) > 0) c->woken = true;
      /* Completion is the request's own status, not the resolver thread's
         state flag: the thread sends its wake-up byte before it sets the
         flag, and waiting for the flag after the byte is gone would sleep
         until the deadline. Taking the result while the thread still runs
         is safe: release_req below leaves the request to it. */
      int rc = gai_error(&c->req->cb);
      if (rc == EAI_INPROGRESS) return EVSSH_EAGAIN;
      if (rc != 0) {
        snprintf(err, errlen, "could not resolve hostname %s: %s", c->host, gai_strerror(rc));
        c->phase = C_FAILED;
        return EVSSH_ECONNECT;
      }
      c->addrs = c->req->cb.ar_result;
      c->req->cb.ar_result = NULL;
      c->next = c->addrs;
      release_req(c);
      close(c->wake_fd);
      c->wake_fd = -1;
      c->phase = C_CONNECTING;
      break;
    }
    case C_CONNECTING: {
      if (c->sock >= 0) {
        struct pollfd pfd = {c->sock, POLLOUT, 0};
        if (!polled_writable && poll(&pfd, 1, 0) <= 0) return EVSSH_EAGAIN;
        polled_writable = false;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(c->sock, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr == 0) {
          c->phase = C_DONE;
          break;
        }
        c->last_errno = soerr;
        snprintf(c->last_error, sizeof c->last_error, "%s", strerror(soerr));
        close(c->sock);
        c->sock = -1;
      }
      int rc = try_next_address(c);
      if (rc == EVSSH_EAGAIN) return EVSSH_EAGAIN;
      if (rc == EVSSH_ECONNECT) {
        snprintf(err, errlen, "connect to host %s port %d: %s", c->host, c->port,
                 c->last_error[0] ? c->last_error : "no address");
        c->phase = C_FAILED;
        return EVSSH_ECONNECT;
      }
      break;
    }
    case C_DONE:
      *fd = c->sock;
      c->sock = -1;
      c->phase = C_FAILED;   /* the fd is handed over exactly once */
      return EVSSH_OK;
    case C_FAILED:
    default:
      snprintf(err, errlen, "connect to %s port %d failed", c->host, c->port);
      return EVSSH_ECONNECT;
    }
  }
}

void connector_free(evssh_connector *c) {
  if (!c) return;
  release_req(c);
  if (c->wake_fd >= 0) close(c->wake_fd);
  if (c->sock >= 0) close(c->sock);
  if (c->addrs) freeaddrinfo(c->addrs);
  if (c->pipe) c->pipe->free(c->pipe_ctx);
  free(c);
}

void proxy_child_end(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGHUP);
  /* this runs inside a loop that may carry many other sessions: a child
     that does not go at once on SIGHUP (its pipe is closed too) gets 20 ms,
     then SIGKILL, so closing one session never stalls the rest */
  for (int i = 0; i < 4; i++) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

int io_peer_address(int fd, char *out, size_t outlen) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return EVSSH_EINVAL;
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
  else
    return EVSSH_EINVAL;
  return EVSSH_OK;
}
