/* agent.c owns the conversation with a local ssh-agent: the UNIX socket, the
 * length-prefixed message framing, and the two requests publickey
 * authentication needs (list identities, sign). Exchanges are blocking but
 * bounded by a deadline, and every reply is parsed through evssh_reader with
 * a size cap, because the agent socket is still input from outside. */
#include "agent.h"
#include "errors.h"

#include "buf.h"
#include "hostkey.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
  AGENT_FAILURE = 5,
  AGENTC_REQUEST_IDENTITIES = 11,
  AGENT_IDENTITIES_ANSWER = 12,
  AGENTC_SIGN_REQUEST = 13,
  AGENT_SIGN_RESPONSE = 14,
  AGENT_RSA_SHA2_256 = 2,
  AGENT_RSA_SHA2_512 = 4,
};

struct evssh_agent {
  int fd;
  bool broken; /* a half-done exchange leaves the stream unframed */
  int timeout_ms;
  char *path;
};

int evssh_agent_open(const char *sock, evssh_agent **out, char *err, size_t errlen) {
  if (!out) return EVSSH_EINVAL;
  const char *path = sock;
  if (sock && strcmp(sock, "none") == 0) {
    evssh_errorf(err, errlen, "ssh-agent disabled (IdentityAgent none)");
    return EVSSH_EINVAL;
  }
  if (!sock || strcmp(sock, "SSH_AUTH_SOCK") == 0 || sock[0] == '$') {
    const char *var = !sock || sock[0] != '$' ? "SSH_AUTH_SOCK" : sock + 1;
    path = getenv(var);
    if (!path || !*path) {
      evssh_errorf(err, errlen, "no ssh-agent: %s is not set", var);
      return EVSSH_EINVAL;
    }
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa.sun_path) {
    evssh_errorf(err, errlen, "ssh-agent socket path too long: %s", path);
    return EVSSH_EINVAL;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);

  evssh_agent *a = calloc(1, sizeof *a);
  if (!a) return EVSSH_ENOMEM;
  a->path = strdup(path);
  if (!a->path) {
    free(a);
    return EVSSH_ENOMEM;
  }
  a->timeout_ms = EVSSH_AGENT_TIMEOUT_MS;
  a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc;
  do rc = a->fd < 0 ? -1 : connect(a->fd, (struct sockaddr *)&sa, sizeof sa);
  while (rc < 0 && errno == EINTR);
  /* non-blocking from here on: every wait goes through poll with a deadline */
  if (rc < 0 || fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) | O_NONBLOCK) < 0) {
    evssh_errorf(err, errlen, "cannot connect to ssh-agent at %s: %s", path, strerror(errno));
    evssh_agent_close(a);
    return EVSSH_ECONNECT;
  }
  *out = a;
  return EVSSH_OK;
}

void evssh_agent_set_timeout(evssh_agent *a, int ms) {
  if (a && ms > 0) a->timeout_ms = ms;
}

const char *evssh_agent_path(const evssh_agent *a) { return a ? a->path : NULL; }

void evssh_agent_close(evssh_agent *a) {
  if (!a) return;
  if (a->fd >= 0) close(a->fd);
  free(a->path);
  free(a);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for events before the deadline. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return EVSSH_ETIMEOUT;
    struct pollfd pfd = {fd, events, 0};
    int n = poll(&pfd, 1, (int)left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return EVSSH_ECLOSED;
    if (n > 0) return EVSSH_OK; /* errors show up in the following I/O call */
  }
}

static int send_all(int fd, const unsigned char *p, size_t len, long long deadline) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(fd, POLLOUT, deadline);
      if (rc) return rc;
      continue;
    }
    if (n <= 0) return EVSSH_ECLOSED;
    p += n;
    len -= (size_t)n;
  }
  return EVSSH_OK;
}

static int recv_all(int fd, unsigned char *p, size_t len, long long deadline) {
  while (len > 0) {
    ssize_t n = recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(fd, POLLIN, deadline);
      if (rc) return rc;
      continue;
    }
    if (n <= 0) return EVSSH_ECLOSED;
    p += n;
    len -= (size_t)n;
  }
  return EVSSH_OK;
}

/* One request/reply exchange. req holds the message body (type byte first);
   reply receives the body of the answer. */
static int agent_call(evssh_agent *a, const evssh_buf *req, evssh_buf *reply, char *err,
                      size_t errlen) {
  if (a->broken) {
    evssh_errorf(err, errlen, "ssh-agent connection at %s is no longer usable", a->path);
    return EVSSH_ECLOSED;
  }
  long long deadline = now_ms() + a->timeout_ms;
  unsigned char hdr[4];
  put_u32(hdr, (uint32_t)buf_avail(req));
  int rc = send_all(a->fd, hdr, 4, deadline);
  if (!rc) rc = send_all(a->fd, buf_ptr(req), buf_avail(req), deadline);
  if (!rc) rc = recv_all(a->fd, hdr, 4, deadline);
  uint32_t len = 0;
  if (!rc) {
    len = get_u32(hdr);
    if (len == 0 || len > EVSSH_AGENT_MAX_MSG) rc = EVSSH_EPROTO;
  }
  if (!rc) {
    unsigned char *body = buf_extend(reply, len);
    rc = body ? recv_all(a->fd, body, len, deadline) : EVSSH_ENOMEM;
  }
  if (rc) {
    a->broken = rc != EVSSH_ENOMEM;
    if (rc == EVSSH_ETIMEOUT)
      evssh_errorf(err, errlen, "ssh-agent at %s did not answer within %d ms", a->path,
              a->timeout_ms);
    else if (rc == EVSSH_EPROTO)
      evssh_errorf(err, errlen, "ssh-agent at %s sent a reply of bad length %u", a->path,
              (unsigned)len);
    else if (rc == EVSSH_ECLOSED)
      evssh_errorf(err, errlen, "ssh-agent at %s closed the connection", a->path);
  }
  return rc;
}

void evssh_agent_identities_free(evssh_agent_identity *ids, size_t n) {
  if (!ids) return;
  for (size_t i = 0; i < n; i++) {
    free(ids[i].blob);
    free(ids[i].comment);
    evssh_cert_free(ids[i].cert);
  }
  free(ids);
}

int evssh_agent_identities(evssh_agent *a, evssh_agent_identity **ids, size_t *n,
                           char *err, size_t errlen) {
  if (!a || !ids || !n) return EVSSH_EINVAL;
  evssh_buf req = EVSSH_BUF_INIT, reply = EVSSH_BUF_INIT;
  int rc = evssh_buf_put_u8(&req, AGENTC_REQUEST_IDENTITIES);
  if (!rc) rc = agent_call(a, &req, &reply, err, errlen);
  buf_release(&req);
  if (rc) {
    buf_release(&reply);
    return rc;
  }
  evssh_reader r = reader_of(buf_ptr(&reply), buf_avail(&reply));
  uint8_t type = 0;
  uint32_t count = 0;
  evssh_agent_identity *list = NULL;
  size_t got = 0;
  rc = EVSSH_EPROTO;
  if (evssh_read_u8(&r, &type)) goto out;
  if (type == AGENT_FAILURE) {
    evssh_errorf(err, errlen, "ssh-agent at %s refused to list keys", a->path);
    rc = EVSSH_EAUTH;
    goto out;
  }
  /* each entry takes at least two length words, which bounds the count by
     the bytes actually received before anything is allocated */
  if (type != AGENT_IDENTITIES_ANSWER || evssh_read_u32(&r, &count) || count > r.left / 8)
    goto out;
  if (count > 0) {
    list = calloc(count, sizeof *list);
    if (!list) {
      rc = EVSSH_ENOMEM;
      goto out;
    }
  }
  for (got = 0; got < count; got++) {
    const char *blob, *comment;
    size_t blob_len, comment_len;
    if (evssh_read_string(&r, &blob, &blob_len) || blob_len == 0 ||
        evssh_read_string(&r, &comment, &comment_len))
      goto out;
    list[got].blob = malloc(blob_len);
    list[got].comment = strndup(comment, comment_len);
    if (!list[got].blob || !list[got].comment) {
      got++;
      rc = EVSSH_ENOMEM;
      goto out;
    }
    memcpy(list[got].blob, blob, blob_len);
    list[got].blob_len = blob_len;
    if (evssh_hostkey_blob_type(list[got].blob, blob_len, list[got].type, sizeof list[got].type) != EVSSH_OK)
      list[got].type[0] = 0;
    if (evssh_cert_is_cert_name(list[got].type)) {
      char cerr[8];
      int crc = evssh_cert_parse(list[got].blob, blob_len, &list[got].cert, cerr, sizeof cerr);
      if (crc == EVSSH_ENOMEM) {
        got++;
        rc = crc;
        goto out;
      }
    }
  }
  if (r.left != 0) goto out;
  rc = EVSSH_OK;
out:
  buf_release(&reply);
  if (rc) {
    if (rc == EVSSH_EPROTO)
      evssh_errorf(err, errlen, "ssh-agent at %s sent a malformed identity list", a->path);
    evssh_agent_identities_free(list, got);
    return rc;
  }
  *ids = list;
  *n = count;
  return EVSSH_OK;
}

int evssh_agent_sign(evssh_agent *a, const unsigned char *blob, size_t blob_len,
                     const char *alg, const unsigned char *data, size_t len,
                     evssh_buf *sig_blob, char *err, size_t errlen) {
  if (!a || !blob || !alg || !sig_blob || (!data && len)) return EVSSH_EINVAL;
  if (evssh_cert_is_cert_name(alg) && !(alg = evssh_cert_alg_sig_alg(alg))) return EVSSH_EINVAL;
  uint32_t flags = 0;
  if (strcmp(alg, "rsa-sha2-256") == 0) flags = AGENT_RSA_SHA2_256;
  else if (strcmp(alg, "rsa-sha2-512") == 0) flags = AGENT_RSA_SHA2_512;
  evssh_buf req = EVSSH_BUF_INIT, reply = EVSSH_BUF_INIT;
  int rc = evssh_buf_put_u8(&req, AGENTC_SIGN_REQUEST);
  if (!rc) rc = evssh_buf_put_string(&req, blob, blob_len);
  if (!rc) rc = evssh_buf_put_string(&req, data, len);
  if (!rc) rc = evssh_buf_put_u32(&req, flags);
  if (!rc && buf_avail(&req) > EVSSH_AGENT_MAX_MSG) rc = EVSSH_EINVAL;
  if (!rc) rc = agent_call(a, &req, &reply, err, errlen);
  buf_release(&req);
  if (rc) {
    buf_release(&reply);
    return rc;
  }
  evssh_reader r = reader_of(buf_ptr(&reply), buf_avail(&reply));
  uint8_t type = 0;
  const char *sig, *sig_alg, *raw;
  size_t sig_len, sig_alg_len, raw_len;
  rc = EVSSH_EPROTO;
  if (evssh_read_u8(&r, &type)) goto out;
  if (type == AGENT_FAILURE) {
    evssh_errorf(err, errlen, "ssh-agent at %s refused to sign with the key (%s)", a->path, alg);
    rc = EVSSH_EAUTH;
    goto out;
  }
  if (type != AGENT_SIGN_RESPONSE || evssh_read_string(&r, &sig, &sig_len) || r.left != 0)
    goto out;
  evssh_reader sr = reader_of(sig, sig_len);
  if (evssh_read_string(&sr, &sig_alg, &sig_alg_len) ||
      evssh_read_string(&sr, &raw, &raw_len) || sr.left != 0 || raw_len == 0)
    goto out;
  /* an old agent may ignore the SHA-2 flags and answer with ssh-rsa; the
     server would reject that signature for the algorithm we announced */
  if (sig_alg_len != strlen(alg) || memcmp(sig_alg, alg, sig_alg_len) != 0) {
    evssh_errorf(err, errlen, "ssh-agent at %s signed with %.*s instead of %s", a->path,
            (int)(sig_alg_len > 64 ? 64 : sig_alg_len), sig_alg, alg);
    rc = EVSSH_EAUTH;
    goto out;
  }
  rc = buf_append(sig_blob, sig, sig_len);
out:
  if (rc == EVSSH_EPROTO)
    evssh_errorf(err, errlen, "ssh-agent at %s sent a malformed signature reply", a->path);
  buf_release(&reply);
  return rc;
}
