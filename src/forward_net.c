/* forward_net.c owns the sockets the forwarding service listens on and
 * connects with: which addresses a bind address means (ssh's rules for
 * NULL, "*", "" and "localhost"), listening TCP and unix sockets,
 * non-blocking connects to resolved targets, and the text forms of
 * endpoints used in channel payloads and messages. */
#include "forward.h"

#include "errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 128

static void set_port(fwd_addr *a, int port) {
  if (a->sa.ss_family == AF_INET) ((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)port);
  else if (a->sa.ss_family == AF_INET6) ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)port);
}

static int get_port(const struct sockaddr_storage *sa) {
  if (sa->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

static void loopback4(fwd_addr *a, bool any) {
  memset(a, 0, sizeof *a);
  struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
  a->len = sizeof *in;
}

static void loopback6(fwd_addr *a, bool any) {
  memset(a, 0, sizeof *a);
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
  in6->sin6_family = AF_INET6;
  in6->sin6_addr = any ? in6addr_any : in6addr_loopback;
  a->len = sizeof *in6;
}

void net_endpoint(char *out, size_t outlen, const char *host, int port) {
  if (host && host[0] == '/') snprintf(out, outlen, "%s", host);
  else if (host && strchr(host, ':')) snprintf(out, outlen, "[%s]:%d", host, port);
  else snprintf(out, outlen, "%s:%d", host ? host : "127.0.0.1", port);
}

static void addr_text(const fwd_addr *a, char *out, size_t outlen) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (a->sa.ss_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, host, sizeof host);
  else if (a->sa.ss_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, host, sizeof host);
  snprintf(out, outlen, "%s", host);
}

int net_listen_addrs(const char *bind_address, bool gateway_ports, int port, fwd_addr *out, size_t max, size_t *n,
                     char *err, size_t errlen) {
  *n = 0;
  if (max < 2) return EVSSH_EINVAL;
  bool all = bind_address ? (!*bind_address || strcmp(bind_address, "*") == 0) : gateway_ports;
  if (all || !bind_address || strcmp(bind_address, "localhost") == 0) {
    loopback4(&out[0], all);
    *n = 1;
    if (all || bind_address) loopback6(&out[(*n)++], all);
    for (size_t i = 0; i < *n; i++) set_port(&out[i], port);
    return EVSSH_OK;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char ps[8];
  snprintf(ps, sizeof ps, "%d", port);
  int g = getaddrinfo(bind_address, ps, &hints, &res);
  if (g != 0) {
    evssh_errorf(err, errlen, "cannot listen on %s: %s", bind_address, gai_strerror(g));
    return EVSSH_EINVAL;
  }
  for (struct addrinfo *ai = res; ai && *n < max; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof out[*n].sa) continue;
    memset(&out[*n], 0, sizeof out[*n]);
    memcpy(&out[*n].sa, ai->ai_addr, ai->ai_addrlen);
    out[*n].len = ai->ai_addrlen;
    (*n)++;
  }
  freeaddrinfo(res);
  if (*n == 0) {
    evssh_errorf(err, errlen, "cannot listen on %s: no usable address", bind_address);
    return EVSSH_EINVAL;
  }
  return EVSSH_OK;
}

static int listen_one(const fwd_addr *a, int *fd_out) {
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  /* 0.0.0.0 and :: side by side, as ssh listens on both */
  if (a->sa.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
    int e = errno;
    close(fd);
    return e;
  }
  *fd_out = fd;
  return 0;
}

int net_listen_tcp(const fwd_addr *addrs, size_t n, int *fds, size_t *nfds, int *bound, char *err, size_t errlen) {
  *nfds = 0;
  *bound = 0;
  int first_errno = 0;
  const fwd_addr *first_failed = NULL;
  for (size_t i = 0; i < n; i++) {
    fwd_addr a = addrs[i];
    if (*bound) set_port(&a, *bound);
    int fd = -1, e = listen_one(&a, &fd);
    if (e) {
      if (!first_failed) {
        first_failed = &addrs[i];
        first_errno = e;
      }
      continue;
    }
    fds[(*nfds)++] = fd;
    if (!*bound) {
      struct sockaddr_storage got;
      socklen_t len = sizeof got;
      *bound = getsockname(fd, (struct sockaddr *)&got, &len) == 0 ? get_port(&got) : get_port(&a.sa);
    }
  }
  if (*nfds) return EVSSH_OK;
  char host[INET6_ADDRSTRLEN + 2] = "?";
  if (first_failed) addr_text(first_failed, host, sizeof host);
  evssh_errorf(err, errlen, "cannot listen on %s port %d: %s", host, first_failed ? get_port(&first_failed->sa) : 0,
               strerror(first_errno ? first_errno : EINVAL));
  return EVSSH_ECONNECT;
}

static int unix_addr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen) {
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sun->sun_path) {
    evssh_errorf(err, errlen, "unix socket path too long (%zu bytes, at most %zu): %s", strlen(path),
                 sizeof sun->sun_path - 1, path);
    return EVSSH_EINVAL;
  }
  memcpy(sun->sun_path, path, strlen(path) + 1);
  return EVSSH_OK;
}

int net_listen_unix(const char *path, int *fd_out, char *err, size_t errlen) {
  struct sockaddr_un sun;
  int rc = unix_addr(path, &sun, err, errlen);
  if (rc) return rc;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
    evssh_errorf(err, errlen, "cannot listen on unix socket %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return EVSSH_ECONNECT;
  }
  *fd_out = fd;
  return EVSSH_OK;
}

int net_resolve(const char *host, int port, fwd_addr **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  if (host[0] == '/') {
    struct sockaddr_un sun;
    int rc = unix_addr(host, &sun, err, errlen);
    if (rc) return rc;
    fwd_addr *a = calloc(1, sizeof *a);
    if (!a) return EVSSH_ENOMEM;
    memcpy(&a->sa, &sun, sizeof sun);
    a->len = sizeof sun;
    *out = a;
    *n = 1;
    return EVSSH_OK;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  char ps[8];
  snprintf(ps, sizeof ps, "%d", port);
  int g = getaddrinfo(host, ps, &hints, &res);
  if (g != 0) {
    evssh_errorf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
    return EVSSH_EINVAL;
  }
  size_t count = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) count++;
  fwd_addr *v = calloc(count ? count : 1, sizeof *v);
  if (!v) {
    freeaddrinfo(res);
    return EVSSH_ENOMEM;
  }
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof v[*n].sa) continue;
    memcpy(&v[*n].sa, ai->ai_addr, ai->ai_addrlen);
    v[*n].len = ai->ai_addrlen;
    (*n)++;
  }
  freeaddrinfo(res);
  if (*n == 0) {
    free(v);
    evssh_errorf(err, errlen, "cannot resolve %s: no usable address", host);
    return EVSSH_EINVAL;
  }
  *out = v;
  return EVSSH_OK;
}

int net_connect_addr(const fwd_addr *a, int *fd_out, bool *in_progress) {
  *in_progress = false;
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  if (a->sa.ss_family != AF_UNIX) {
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  int rc;
  do rc = connect(fd, (const struct sockaddr *)&a->sa, a->len);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == EINPROGRESS) {
    *in_progress = true;
  } else if (rc < 0) {
    int e = errno;
    close(fd);
    return e;
  }
  *fd_out = fd;
  return 0;
}

void net_peer(int fd, char *host, size_t hostlen, int *port) {
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  snprintf(host, hostlen, "127.0.0.1");
  *port = 65535;
  if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0) return;
  if (sa.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, (socklen_t)hostlen);
    *port = get_port(&sa);
  } else if (sa.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, (socklen_t)hostlen);
    *port = get_port(&sa);
  }
}

void net_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);   /* fails harmlessly on unix sockets */
}
