/* Streams through forwards for the forwarding tests (see
 * test_forward_support.h). Each stream starts with a header from the
 * client (magic, seed, bytes up, bytes down, mode); both sides generate
 * their bytes from the seed with xorshift64* and hash what they send and
 * receive, so the test compares SHA-256 sums end to end. Targets and
 * clients are plain poll loops over non-blocking sockets in threads of
 * their own, independent of the library under test. */
#include "test_forward_support.h"

#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 29
#define MAGIC 0x45564657u   /* "EVFW" */
#define CHUNK 65536

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static void put_u64(unsigned char *p, uint64_t v) { put_u32(p, (uint32_t)(v >> 32)); put_u32(p + 4, (uint32_t)v); }
static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) << 32 | get_u32(p + 4); }

/* ------------------------------------------------------------- a stream */

typedef struct gen { uint64_t x; } gen;

static void gen_init(gen *g, uint32_t seed, char dir) { g->x = ((uint64_t)seed << 8 | (uint8_t)dir) * 0x9E3779B97F4A7C15ull | 1; }

static void gen_fill(gen *g, unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    g->x ^= g->x >> 12; g->x ^= g->x << 25; g->x ^= g->x >> 27;
    uint64_t v = g->x * 0x2545F4914F6CDD1Dull;
    size_t k = n - i < 8 ? n - i : 8;
    memcpy(p + i, &v, k);
  }
}

typedef struct endpoint {
  int fd;
  bool target;               /* else client */
  bool connecting;
  /* header (client: to send; target: being read) and preamble */
  unsigned char hdr[HDR_LEN + 512];
  size_t hdr_len, hdr_done;
  size_t reply_need, reply_got;
  unsigned char *reply;
  bool started;              /* past header and preamble */
  int mode;
  uint64_t to_send;
  gen g;
  unsigned char chunk[CHUNK];
  size_t chunk_len, chunk_off;
  EVP_MD_CTX *send_sha, *recv_sha;
  bool send_done, shut;
  atomic_int *hold;
  fs_end *res;
  uint32_t seed;
  bool over;
} endpoint;

static void ep_fail(endpoint *e, const char *why) {
  if (e->over) return;
  e->res->failed = true;
  snprintf(e->res->why, sizeof e->res->why, "%s%s%s", why, errno ? ": " : "", errno ? strerror(errno) : "");
  e->over = true;
  atomic_store(&e->res->over, true);
  if (e->fd >= 0) close(e->fd);
  e->fd = -1;
}

static void ep_finish_hashes(endpoint *e) {
  unsigned int n;
  if (e->send_sha) { EVP_DigestFinal_ex(e->send_sha, e->res->sent_sha, &n); EVP_MD_CTX_free(e->send_sha); e->send_sha = NULL; }
  if (e->recv_sha) { EVP_DigestFinal_ex(e->recv_sha, e->res->received_sha, &n); EVP_MD_CTX_free(e->recv_sha); e->recv_sha = NULL; }
}

static void ep_begin(endpoint *e, uint32_t seed, uint64_t up, uint64_t down, int mode) {
  e->seed = seed;
  e->mode = mode;
  e->to_send = e->target ? down : up;
  gen_init(&e->g, seed, e->target ? 'd' : 'u');
  e->send_sha = EVP_MD_CTX_new();
  e->recv_sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(e->send_sha, EVP_sha256(), NULL);
  EVP_DigestInit_ex(e->recv_sha, EVP_sha256(), NULL);
  e->started = true;
}

/* FS_AFTER_EOF: the target answers only after the client's EOF reached it;
   FS_SEND_FIRST: the client sends only after the target's EOF reached it.
   Each proves one direction of the half-close. */
static bool may_send(const endpoint *e) {
  if (!e->started || e->send_done) return false;
  if (e->target && e->mode == FS_AFTER_EOF) return e->res->got_eof;
  if (!e->target && e->mode == FS_SEND_FIRST) return e->res->got_eof;
  return true;
}

static bool may_read(const endpoint *e) {
  if (e->res->got_eof) return false;
  if (e->hold && atomic_load(e->hold)) return false;
  if (e->target && e->mode == FS_SEND_FIRST && !e->send_done && e->started) return false;
  return true;
}

static void ep_check_over(endpoint *e) {
  if (e->over) return;
  if (e->send_done && e->res->got_eof) {
    ep_finish_hashes(e);
    e->over = true;
    atomic_store(&e->res->over, true);
    close(e->fd);
    e->fd = -1;
  }
}

static void ep_send(endpoint *e) {
  while (may_send(e)) {
    if (e->chunk_off == e->chunk_len) {
      if (e->to_send == 0) {
        shutdown(e->fd, SHUT_WR);
        e->send_done = true;
        break;
      }
      size_t n = e->to_send < CHUNK ? (size_t)e->to_send : CHUNK;
      gen_fill(&e->g, e->chunk, n);
      EVP_DigestUpdate(e->send_sha, e->chunk, n);
      e->chunk_len = n;
      e->chunk_off = 0;
      e->to_send -= n;
    }
    ssize_t w = send(e->fd, e->chunk + e->chunk_off, e->chunk_len - e->chunk_off, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (w <= 0) { ep_fail(e, "send"); return; }
    e->chunk_off += (size_t)w;
    e->res->sent += (uint64_t)w;
  }
}

static void ep_read(endpoint *e) {
  unsigned char buf[CHUNK];
  for (int i = 0; i < 8 && may_read(e); i++) {
    ssize_t n = recv(e->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) { ep_fail(e, "recv"); return; }
    if (n == 0) {
      e->res->got_eof = true;
      return;
    }
    EVP_DigestUpdate(e->recv_sha, buf, (size_t)n);
    e->res->received += (uint64_t)n;
  }
}

/* Header and preamble phases; true once the stream runs. */
static bool ep_start(endpoint *e) {
  if (e->started) return true;
  if (e->target) {
    ssize_t n = recv(e->fd, e->hdr + e->hdr_done, HDR_LEN - e->hdr_done, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n <= 0) { errno = 0; ep_fail(e, "header"); return false; }
    e->hdr_done += (size_t)n;
    if (e->hdr_done < HDR_LEN) return false;
    if (get_u32(e->hdr) != MAGIC) { errno = 0; ep_fail(e, "bad header"); return false; }
    ep_begin(e, get_u32(e->hdr + 4), get_u64(e->hdr + 8), get_u64(e->hdr + 16), e->hdr[24]);
    return true;
  }
  while (e->hdr_done < e->hdr_len) {
    size_t until = e->reply_need && e->reply_got < e->reply_need ? e->hdr_len - HDR_LEN : e->hdr_len;
    if (e->hdr_done < until) {
      ssize_t w = send(e->fd, e->hdr + e->hdr_done, until - e->hdr_done, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) return false;
      if (w <= 0) { ep_fail(e, "send header"); return false; }
      e->hdr_done += (size_t)w;
      continue;
    }
    /* the preamble is out: its reply comes before the header goes */
    ssize_t n = recv(e->fd, e->reply + e->reply_got, e->reply_need - e->reply_got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n <= 0) { if (n == 0) errno = 0; ep_fail(e, "preamble reply"); return false; }
    e->reply_got += (size_t)n;
  }
  e->started = true;
  return true;
}

static short ep_events(const endpoint *e) {
  if (e->over) return 0;
  if (e->connecting) return POLLOUT;
  if (!e->started) {
    if (e->target) return POLLIN;
    return e->hdr_done < e->hdr_len - (e->reply_need && e->reply_got < e->reply_need ? HDR_LEN : 0) ? POLLOUT : POLLIN;
  }
  short ev = 0;
  if (may_send(e)) ev |= POLLOUT;
  if (may_read(e)) ev |= POLLIN;
  return ev;
}

static void ep_handle(endpoint *e, short re) {
  if (e->over) return;
  if (e->connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { errno = err; ep_fail(e, "connect"); return; }
    e->connecting = false;
  }
  if (!e->started && !ep_start(e)) return;
  if (e->over) return;
  if (re & (POLLIN | POLLHUP | POLLERR)) ep_read(e);
  if (!e->over) ep_send(e);
  ep_check_over(e);
}

/* Drive endpoints until all are over or the deadline passes. */
static void run_endpoints(endpoint **eps, size_t n, int listen_fd, size_t max_accept, pthread_mutex_t *mu,
                          void (*on_accept)(void *ctx, int fd), void *ctx, atomic_int *stop, int64_t deadline) {
  struct pollfd *pfd = calloc(n + max_accept + 1, sizeof *pfd);
  for (;;) {
    if (stop && atomic_load(stop)) break;
    if (mu) pthread_mutex_lock(mu);
    size_t count = 0, open = 0;
    for (size_t i = 0; i < n; i++) {
      if (!eps[i] || eps[i]->over) continue;
      open++;
      pfd[count].fd = eps[i]->fd;
      pfd[count].events = ep_events(eps[i]);
      pfd[count].revents = 0;
      count++;
    }
    if (mu) pthread_mutex_unlock(mu);
    size_t lslot = count;
    if (listen_fd >= 0) pfd[count++] = (struct pollfd){listen_fd, POLLIN, 0};
    if (open == 0 && listen_fd < 0) break;
    if (now_ms() > deadline) {
      for (size_t i = 0; i < n; i++)
        if (eps[i] && !eps[i]->over) { errno = 0; ep_fail(eps[i], "timed out"); }
      break;
    }
    int r = poll(pfd, count, 50);
    if (r < 0 && errno != EINTR) break;
    if (listen_fd >= 0 && (pfd[lslot].revents & POLLIN)) {
      int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) on_accept(ctx, fd);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (!eps[i] || eps[i]->over) continue;
      if (k >= lslot) break;
      short re = pfd[k].revents;
      k++;
      ep_handle(eps[i], re);
    }
  }
  free(pfd);
}

/* --------------------------------------------------------------- target */

struct fs_target {
  int listen_fd;
  char path[108];
  size_t max;
  pthread_t thread;
  pthread_mutex_t mu;
  endpoint **eps;
  fs_end *results;
  size_t n;
  atomic_int stop;
};

static void target_accept(void *ctx, int fd) {
  fs_target *t = ctx;
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);   /* fails harmlessly on unix sockets */
  if (t->n >= t->max) { close(fd); return; }
  endpoint *e = calloc(1, sizeof *e);
  e->fd = fd;
  e->target = true;
  e->res = &t->results[t->n];
  pthread_mutex_lock(&t->mu);
  t->eps[t->n++] = e;
  pthread_mutex_unlock(&t->mu);
}

static void *target_main(void *arg) {
  fs_target *t = arg;
  /* the endpoints array grows under us: run over max slots */
  run_endpoints(t->eps, t->max, t->listen_fd, t->max, &t->mu, target_accept, t, &t->stop, now_ms() + 1200000);
  return NULL;
}

static fs_target *target_start(const char *unix_path, bool ipv6, size_t max, int *port);

fs_target *fs_target_start(const char *unix_path, size_t max, int *port) { return target_start(unix_path, false, max, port); }
fs_target *fs_target_start6(size_t max, int *port) { return target_start(NULL, true, max, port); }

static fs_target *target_start(const char *unix_path, bool ipv6, size_t max, int *port) {
  fs_target *t = calloc(1, sizeof *t);
  t->max = max;
  t->eps = calloc(max, sizeof *t->eps);
  t->results = calloc(max, sizeof *t->results);
  pthread_mutex_init(&t->mu, NULL);
  if (unix_path) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", unix_path);
    snprintf(t->path, sizeof t->path, "%s", unix_path);
    unlink(unix_path);
    t->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (bind(t->listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0) { perror("target bind"); abort(); }
    chmod(unix_path, 0777);
  } else if (ipv6) {
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    t->listen_fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->listen_fd < 0 || bind(t->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      if (t->listen_fd >= 0) close(t->listen_fd);
      free(t->eps);
      free(t->results);
      free(t);
      return NULL;
    }
    socklen_t len = sizeof sa;
    getsockname(t->listen_fd, (struct sockaddr *)&sa, &len);
    if (port) *port = ntohs(sa.sin6_port);
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    t->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(t->listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(t->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("target bind"); abort(); }
    socklen_t len = sizeof sa;
    getsockname(t->listen_fd, (struct sockaddr *)&sa, &len);
    if (port) *port = ntohs(sa.sin_port);
  }
  listen(t->listen_fd, 256);
  pthread_create(&t->thread, NULL, target_main, t);
  return t;
}

uint64_t fs_target_sent(fs_target *t) {
  uint64_t n = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->n; i++) n += __atomic_load_n(&t->results[i].sent, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&t->mu);
  return n;
}

size_t fs_target_done(fs_target *t) {
  size_t n = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->n; i++) n += t->eps[i]->over;
  pthread_mutex_unlock(&t->mu);
  return n;
}

bool fs_target_over(fs_target *t, uint32_t seed) {
  const fs_end *r = fs_target_result(t, seed);
  return r && atomic_load(&r->over);
}

const fs_end *fs_target_result(fs_target *t, uint32_t seed) {
  const fs_end *r = NULL;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->n; i++)
    if (t->eps[i]->started && t->eps[i]->seed == seed) r = &t->results[i];
  pthread_mutex_unlock(&t->mu);
  return r;
}

void fs_target_stop(fs_target *t) {
  atomic_store(&t->stop, 1);
  pthread_join(t->thread, NULL);
  close(t->listen_fd);
  if (t->path[0]) unlink(t->path);
  for (size_t i = 0; i < t->n; i++) {
    if (t->eps[i]->fd >= 0) close(t->eps[i]->fd);
    EVP_MD_CTX_free(t->eps[i]->send_sha);
    EVP_MD_CTX_free(t->eps[i]->recv_sha);
    free(t->eps[i]);
  }
  free(t->eps);
  free(t->results);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* -------------------------------------------------------------- clients */

struct fs_batch {
  fs_client *clients;
  size_t n;
  endpoint **eps;
  atomic_int *done;
  pthread_t thread;
};

static int client_socket(const fs_client *c, bool *connecting) {
  int fd;
  int rc;
  *connecting = false;
  if (c->unix_path) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", c->unix_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  }
  if (rc < 0 && errno == EINPROGRESS) *connecting = true;
  else if (rc < 0) { close(fd); return -1; }
  return fd;
}

static void *clients_main(void *arg) {
  fs_batch *b = arg;
  int timeout = b->clients[0].timeout_s > 0 ? b->clients[0].timeout_s : 600;
  run_endpoints(b->eps, b->n, -1, 0, NULL, NULL, NULL, NULL, now_ms() + (int64_t)timeout * 1000);
  if (b->done) atomic_store(b->done, 1);
  return NULL;
}

fs_batch *fs_clients_start(fs_client *clients, size_t n, atomic_int *done) {
  fs_batch *b = calloc(1, sizeof *b);
  b->clients = clients;
  b->n = n;
  b->done = done;
  b->eps = calloc(n, sizeof *b->eps);
  for (size_t i = 0; i < n; i++) {
    fs_client *c = &clients[i];
    memset(&c->result, 0, sizeof c->result);
    endpoint *e = calloc(1, sizeof *e);
    b->eps[i] = e;
    e->res = &c->result;
    e->hold = &c->hold;
    bool connecting;
    e->fd = client_socket(c, &connecting);
    e->connecting = connecting;
    if (e->fd < 0) { ep_fail(e, "connect"); continue; }
    size_t pl = c->preamble_len < 512 ? c->preamble_len : 512;
    if (pl) memcpy(e->hdr, c->preamble, pl);
    unsigned char *h = e->hdr + pl;
    put_u32(h, MAGIC);
    put_u32(h + 4, c->seed);
    put_u64(h + 8, c->up);
    put_u64(h + 16, c->down);
    h[24] = (unsigned char)c->mode;
    memset(h + 25, 0, 4);
    e->hdr_len = pl + HDR_LEN;
    e->reply_need = c->reply_len < sizeof c->reply ? c->reply_len : sizeof c->reply;
    e->reply = c->reply;
    ep_begin(e, c->seed, c->up, c->down, c->mode);
    e->started = false;   /* header first */
  }
  pthread_create(&b->thread, NULL, clients_main, b);
  return b;
}

void fs_clients_wait(fs_batch *b) {
  pthread_join(b->thread, NULL);
  for (size_t i = 0; i < b->n; i++) {
    endpoint *e = b->eps[i];
    if (e->fd >= 0) close(e->fd);
    if (!e->over) ep_finish_hashes(e);
    EVP_MD_CTX_free(e->send_sha);
    EVP_MD_CTX_free(e->recv_sha);
    free(e);
  }
  free(b->eps);
  free(b);
}

bool fs_check(const fs_client *c, fs_target *t, char *why, size_t whylen) {
  const fs_end *te = fs_target_result(t, c->seed);
  if (c->result.failed) { snprintf(why, whylen, "client %u failed: %s", c->seed, c->result.why); return false; }
  if (!te) { snprintf(why, whylen, "client %u: the target never saw it", c->seed); return false; }
  if (te->failed) { snprintf(why, whylen, "client %u: target failed: %s", c->seed, te->why); return false; }
  if (c->result.sent != c->up || te->received != c->up || memcmp(c->result.sent_sha, te->received_sha, 32) != 0) {
    snprintf(why, whylen, "client %u up: sent %llu, target received %llu, sums %s", c->seed,
             (unsigned long long)c->result.sent, (unsigned long long)te->received,
             memcmp(c->result.sent_sha, te->received_sha, 32) ? "differ" : "equal");
    return false;
  }
  if (te->sent != c->down || c->result.received != c->down || memcmp(te->sent_sha, c->result.received_sha, 32) != 0) {
    snprintf(why, whylen, "client %u down: target sent %llu, received %llu, sums %s", c->seed,
             (unsigned long long)te->sent, (unsigned long long)c->result.received,
             memcmp(te->sent_sha, c->result.received_sha, 32) ? "differ" : "equal");
    return false;
  }
  if (!c->result.got_eof || !te->got_eof) { snprintf(why, whylen, "client %u: an EOF is missing", c->seed); return false; }
  return true;
}

/* ------------------------------------------------------------------ misc */

static bool flag_clear(evssh_session *s, void *ud) { return !atomic_load((atomic_int *)ud); }

int fs_loop_until(evssh_session *s, atomic_int *flag) {
  int rc = 1;
  while (!atomic_load(flag) && rc > 0) rc = evssh_session_process(s, 50, flag_clear, flag);
  while (!atomic_load(flag)) usleep(10000);   /* the session ended: the clients finish on their own */
  return rc;
}

int fs_open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;   /* the directory's own */
}

long fs_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) v = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return v;
}

static void log_cb(evssh_session *s, int level, const char *message, void *ud) {
  fs_log *l = ud;
  int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", message);
  if (n > 0 && l->len + (size_t)n < sizeof l->text) l->len += (size_t)n;
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "log %d: %s\n", level, message);
}

void fs_log_attach(evssh_session *s, fs_log *log) {
  memset(log, 0, sizeof *log);
  evssh_session_set_log(s, EVSSH_LOG_INFO, log_cb, log);
}

bool fs_log_has(const fs_log *log, const char *needle) { return strstr(log->text, needle) != NULL; }

evssh_session *fs_connect(const harness_peer *p, const char *const *extra, evssh_error *err) {
  char port[32], kh[700], id[700];
  snprintf(port, sizeof port, "Port=%d", p->port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", p->known_hosts);
  snprintf(id, sizeof id, "IdentityFile=%s", p->key_ed25519);
  const char *opts[32] = {port, kh, id, "IdentitiesOnly=yes", "GlobalKnownHostsFile=/dev/null", "ConfigFile=none"};
  size_t n = 6;
  for (size_t i = 0; extra && extra[i] && n < 31; i++) opts[n++] = extra[i];
  opts[n] = NULL;
  evssh_error local;
  evssh_session *s = evssh_start("127.0.0.1", p->user, opts, err ? err : &local);
  if (!s) fprintf(stderr, "evssh_start: %d %s\n", (err ? err : &local)->code, (err ? err : &local)->message);
  return s;
}

bool fs_sanitized(void) {
  const char *v = getenv("EVSSH_SANITIZERS");
  return v && *v && strcmp(v, "no") != 0;
}

uint64_t fs_bulk(void) {
  const char *v = getenv("EVSSH_TEST_FORWARD_MIB");
  long n = v ? strtol(v, NULL, 10) : 64;
  return (uint64_t)(n > 0 ? n : 64) * 1024 * 1024;
}

void fs_run(evssh_session *s, fs_target *t, fs_client *c, size_t n) {
  atomic_int done = 0;
  fs_batch *b = fs_clients_start(c, n, &done);
  fs_loop_until(s, &done);
  fs_clients_wait(b);
  /* the target's side of these streams may still be finishing */
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 3000 && !fs_target_over(t, c[i].seed); k++) evssh_session_process(s, 20, NULL, NULL);
  for (size_t i = 0; i < n; i++) {
    char why[300];
    ck_assert_msg(fs_check(&c[i], t, why, sizeof why), "%s", why);
  }
}

void fs_tmp_path(char *out, size_t len, const char *name) {
  snprintf(out, len, "/tmp/evssh-fwd-%d-%s", (int)getpid(), name);
  unlink(out);
}

int fs_connect_tcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return fd;
}
