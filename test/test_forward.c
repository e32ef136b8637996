/* Local forwarding (ssh -L, evssh_forward_local / _local_socket) against
 * the harness's OpenSSH sshd: 64 MiB both ways with equal SHA-256 sums over
 * TCP, a unix listener and direct-streamlocal, 50 parallel connections,
 * half-close both ways, cancel, the bounded memory of a slow consumer, a
 * port in use, forwarding refused by the server, a closed target port, a
 * client that goes away mid-transfer, a server that dies mid-transfer, 1000
 * connections without an fd leak, twenty sessions in one evssh_multi and a
 * session driven by a foreign loop. Destructive cases get their own sshd.
 * Skips (77) without sshd. */
#include "evssh.h"
#include "harness.h"
#include "test_forward_support.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

static harness_peer peer;

static evssh_session *connect_peer(const harness_peer *p) {
  evssh_session *s = fs_connect(p, NULL, NULL);
  ck_assert_ptr_nonnull(s);
  return s;
}

/* --------------------------------------------------------- bulk, TCP */

/* A session to the shared sshd with a local forward (port 0) to a fresh
   target of max connections. */
static evssh_session *local_setup(size_t max, fs_target **t, int *lport) {
  evssh_session *s = connect_peer(&peer);
  int tport = 0;
  *t = fs_target_start(NULL, max, &tport);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", tport, lport), EVSSH_OK);
  ck_assert_int_gt(*lport, 0);
  return s;
}


START_TEST(test_local_tcp_64mib_both_ways) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(1, &t, &lport);
  ck_assert_int_gt(lport, 0);
  fs_client c = {.port = lport, .seed = 1, .up = fs_bulk(), .down = fs_bulk(), .mode = FS_CONCURRENT};
  fs_run(s, t, &c, 1);
  ck_assert_uint_eq(c.result.received, fs_bulk());
  evssh_forward_info info[4];
  ck_assert_uint_eq(evssh_forward_list(s, info, 4), 1);
  ck_assert_int_eq(info[0].kind, EVSSH_FORWARD_LOCAL);
  ck_assert_int_eq(info[0].bound_port, lport);
  ck_assert_str_eq(info[0].host, "127.0.0.1");
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_local_50_parallel) {
  evssh_session *s = connect_peer(&peer);
  int tport = 0, lport = 0;
  fs_target *t = fs_target_start(NULL, 50, &tport);
  ck_assert_int_eq(evssh_forward_local(s, "127.0.0.1", 0, "127.0.0.1", tport, &lport), EVSSH_OK);
  fs_client c[50];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 50; i++)
    c[i] = (fs_client){.port = lport, .seed = (uint32_t)(100 + i), .up = (uint64_t)(i + 1) * 37 * 1024,
                       .down = (uint64_t)(50 - i) * 41 * 1024, .mode = i % 3};
  fs_run(s, t, c, 50);
  evssh_forward_info info;
  ck_assert_uint_eq(evssh_forward_list(s, &info, 1), 1);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* Half-close both ways: the target answers only after our EOF reached it
   (local EOF → channel EOF → its read ends), and the target that finished
   first sees us go on sending after its EOF reached our client (channel
   EOF → shutdown(SHUT_WR)). */
START_TEST(test_local_half_close_both_ways) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(2, &t, &lport);
  fs_client c[2] = {
    {.port = lport, .seed = 7, .up = 3 * MiB, .down = 2 * MiB, .mode = FS_AFTER_EOF, .timeout_s = 120},
    {.port = lport, .seed = 8, .up = 3 * MiB, .down = 1 * MiB, .mode = FS_SEND_FIRST, .timeout_s = 120},
  };
  fs_run(s, t, c, 2);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------- unix sockets both ends */

START_TEST(test_local_unix_listener_64mib) {
  evssh_session *s = connect_peer(&peer);
  char lpath[128];
  fs_tmp_path(lpath, sizeof lpath, "listen.sock");
  int tport = 0;
  fs_target *t = fs_target_start(NULL, 1, &tport);
  ck_assert_int_eq(evssh_forward_local(s, lpath, 0, "127.0.0.1", tport, NULL), EVSSH_OK);
  fs_client c = {.unix_path = lpath, .seed = 21, .up = fs_bulk(), .down = fs_bulk()};
  fs_run(s, t, &c, 1);
  ck_assert_int_eq(evssh_forward_cancel_local(s, lpath, 0), EVSSH_OK);
  struct stat st;
  ck_assert_int_ne(stat(lpath, &st), 0);   /* the socket we made is gone with it */
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_local_socket_streamlocal_64mib) {
  evssh_session *s = connect_peer(&peer);
  char lpath[128], rpath[128];
  fs_tmp_path(lpath, sizeof lpath, "l.sock");
  fs_tmp_path(rpath, sizeof rpath, "r.sock");
  fs_target *t = fs_target_start(rpath, 1, NULL);
  ck_assert_int_eq(evssh_forward_local_socket(s, lpath, rpath), EVSSH_OK);
  fs_client c = {.unix_path = lpath, .seed = 22, .up = fs_bulk(), .down = fs_bulk()};
  fs_run(s, t, &c, 1);
  /* and TCP here, a unix socket there */
  int lport = 0;
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, rpath, 0, &lport), EVSSH_OK);
  fs_target_stop(t);
  t = fs_target_start(rpath, 1, NULL);
  fs_client c2 = {.port = lport, .seed = 23, .up = MiB, .down = 2 * MiB};
  fs_run(s, t, &c2, 1);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
  struct stat st;
  ck_assert_int_ne(stat(lpath, &st), 0);
}
END_TEST

/* ------------------------------------------------------------ cancel */

START_TEST(test_cancel_lets_connections_finish) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(1, &t, &lport);
  fs_client c = {.port = lport, .seed = 31, .up = 8 * MiB, .down = 8 * MiB};
  atomic_int done = 0;
  fs_batch *b = fs_clients_start(&c, 1, &done);
  /* wait until the connection is through, then cancel under it */
  for (int i = 0; i < 3000 && !fs_target_result(t, 31); i++) evssh_session_process(s, 10, NULL, NULL);
  ck_assert_ptr_nonnull(fs_target_result(t, 31));
  ck_assert_int_eq(evssh_forward_cancel_local(s, NULL, lport), EVSSH_OK);
  ck_assert_int_eq(evssh_forward_cancel_local(s, NULL, lport), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(evssh_session_error(s), "no local forward"));
  ck_assert_int_lt(fs_connect_tcp(lport), 0);
  ck_assert_int_eq(errno, ECONNREFUSED);
  fs_loop_until(s, &done);
  fs_clients_wait(b);
  for (int i = 0; i < 3000 && !fs_target_over(t, c.seed); i++) evssh_session_process(s, 20, NULL, NULL);
  char why[300];
  ck_assert_msg(fs_check(&c, t, why, sizeof why), "%s", why);
  ck_assert_uint_eq(evssh_forward_list(s, NULL, 0), 0);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ----------------------------------------------------- bounded memory */

/* A consumer that stops reading: the target pushes 256 MiB as fast as it
   can; what it gets rid of is bounded by the windows and socket buffers
   along the way, because the relay pauses the channel while its socket is
   full. Then the consumer reads it all and the sums match. */
START_TEST(test_slow_consumer_memory_is_bounded) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(1, &t, &lport);
  fs_client c = {.port = lport, .seed = 41, .up = 1024, .down = 4 * fs_bulk(), .mode = FS_CONCURRENT};
  atomic_store(&c.hold, 1);
  atomic_int done = 0;
  long rss0 = fs_rss_kib(), peak = rss0;
  fs_batch *b = fs_clients_start(&c, 1, &done);
  /* until what the target wrote stops growing for a second (or passes
     what a bound would allow) */
  uint64_t last = 0;
  int64_t still_since = 0;
  for (int i = 0; i < 60000; i++) {
    evssh_session_process(s, 10, NULL, NULL);
    long r = fs_rss_kib();
    if (r > peak) peak = r;
    uint64_t sent = fs_target_sent(t);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (sent != last) { last = sent; still_since = now; }
    else if (sent > 0 && now - still_since > 1500) break;
    if (sent > 128 * MiB) break;
  }
  uint64_t stalled_at = fs_target_sent(t);
  fprintf(stderr, "slow consumer: the target stalled after %llu bytes; RSS grew by %ld KiB\n",
          (unsigned long long)stalled_at, peak - rss0);
  /* windows (ours 4 MiB, sshd's 2 MiB) and a few socket buffers */
  ck_assert_msg(stalled_at < 48 * MiB, "the target got rid of %llu bytes into a stalled consumer",
                (unsigned long long)stalled_at);
  if (!fs_sanitized())
    ck_assert_msg(peak - rss0 < 40 * 1024, "RSS grew by %ld KiB with a stalled consumer", peak - rss0);
  atomic_store(&c.hold, 0);
  fs_loop_until(s, &done);
  fs_clients_wait(b);
  for (int i = 0; i < 3000 && !fs_target_over(t, c.seed); i++) evssh_session_process(s, 20, NULL, NULL);
  char why[300];
  ck_assert_msg(fs_check(&c, t, why, sizeof why), "%s", why);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------------------- faults */

START_TEST(test_bind_in_use) {
  evssh_session *s = connect_peer(&peer);
  int taken = 0;
  int fd = harness_listen_loopback(&taken);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(evssh_forward_local(s, NULL, taken, "127.0.0.1", 22, NULL), EVSSH_ECONNECT);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1 port %d", taken);
  ck_assert_msg(strstr(evssh_session_error(s), want) && strstr(evssh_session_error(s), "in use"), "%s",
                evssh_session_error(s));
  ck_assert_int_eq(evssh_forward_local(s, "no.such.host.invalid", 0, "127.0.0.1", 22, NULL), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(evssh_session_error(s), "no.such.host.invalid"));
  ck_assert_int_eq(evssh_forward_local(s, NULL, 70000, "127.0.0.1", 22, NULL), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, NULL, 22, NULL), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", 0, NULL), EVSSH_EINVAL);
  ck_assert_uint_eq(evssh_forward_list(s, NULL, 0), 0);
  /* the session is fine */
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo alive", &r), 0);
  ck_assert_str_eq(r.out, "alive\n");
  evssh_result_free(&r);
  close(fd);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* Read until EOF or reset; -1 on a timeout. */
static long read_to_end(int fd, int timeout_ms) {
  long total = 0;
  char buf[65536];
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return -1;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return total;
    total += n;
  }
}

typedef struct closer {
  int port;
  long got;
  atomic_int done;
} closer;

static void *connect_and_read(void *arg) {
  closer *c = arg;
  int fd = fs_connect_tcp(c->port);
  c->got = fd < 0 ? -2 : read_to_end(fd, 60000);
  if (fd >= 0) close(fd);
  atomic_store(&c->done, 1);
  return NULL;
}

/* A connection the server cannot make (its forwarding is off, or the
   target port is closed) closes that one local connection and says why;
   the session goes on. */
static void refused_connection_closes(evssh_session *s, int target_port, const char *expect) {
  fs_log log;
  fs_log_attach(s, &log);
  int lport = 0;
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", target_port, &lport), EVSSH_OK);
  closer c = {.port = lport};
  pthread_t th;
  pthread_create(&th, NULL, connect_and_read, &c);
  fs_loop_until(s, &c.done);
  pthread_join(th, NULL);
  ck_assert_int_eq(c.got, 0);
  ck_assert_msg(fs_log_has(&log, "refused the channel") && fs_log_has(&log, expect), "log: %s", log.text);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo alive", &r), 0);
  ck_assert_str_eq(r.out, "alive\n");
  evssh_result_free(&r);
  /* the listener still serves */
  closer c2 = {.port = lport};
  pthread_create(&th, NULL, connect_and_read, &c2);
  fs_loop_until(s, &c2.done);
  pthread_join(th, NULL);
  ck_assert_int_eq(c2.got, 0);
}

START_TEST(test_server_refuses_forwarding) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, "AllowTcpForwarding no"), 0);
  evssh_session *s = connect_peer(&p);
  refused_connection_closes(s, 22, "administratively prohibited");
  evssh_session_close(s);
  evssh_session_free(s);
  harness_sshd_stop(&p);
}
END_TEST

START_TEST(test_target_port_closed) {
  evssh_session *s = connect_peer(&peer);
  int closed_port = harness_free_port();
  refused_connection_closes(s, closed_port, "connect failed");
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* The local client resets its connection in the middle of a download: the
   relay ends, the target sees its connection go, the session and the
   forward go on. */
START_TEST(test_client_disconnects_mid_transfer) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(2, &t, &lport);
  int base = fs_open_fds();
  int fd = fs_connect_tcp(lport);
  ck_assert_int_ge(fd, 0);
  unsigned char hdr[29] = {0x45, 0x56, 0x46, 0x57, 0, 0, 0, 51};
  hdr[16 + 4] = 0x10;   /* down: 256 MiB, big-endian u64 at 16 */
  ck_assert_int_eq(send(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
  long got = 0;
  char buf[65536];
  while (got < 4 * (long)MiB) {
    evssh_session_process(s, 10, NULL, NULL);
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got += n;
    ck_assert(n != 0);
  }
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);   /* RST with data unread */
  for (int i = 0; i < 3000 && fs_target_done(t) < 1; i++) evssh_session_process(s, 10, NULL, NULL);
  ck_assert_uint_eq(fs_target_done(t), 1);
  ck_assert(fs_target_result(t, 51)->sent < 256 * MiB);
  for (int i = 0; i < 100 && fs_open_fds() > base; i++) evssh_session_process(s, 10, NULL, NULL);
  ck_assert_int_eq(fs_open_fds(), base);
  fs_client c = {.port = lport, .seed = 52, .up = MiB, .down = MiB};
  fs_run(s, t, &c, 1);
  /* a unix socket closed by its reader: the next write gets EPIPE (no
     SIGPIPE for this process), the relay ends */
  char path[100];
  fs_tmp_path(path, sizeof path, "gone.sock");
  int tport = 0;
  fs_target *t2 = fs_target_start(NULL, 1, &tport);
  ck_assert_int_eq(evssh_forward_local(s, path, 0, "127.0.0.1", tport, NULL), EVSSH_OK);
  int u = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  ck_assert_int_eq(connect(u, (struct sockaddr *)&sun, sizeof sun), 0);
  hdr[7] = 53;
  ck_assert_int_eq(send(u, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
  for (got = 0; got < (long)MiB;) {
    evssh_session_process(s, 10, NULL, NULL);
    ssize_t n = recv(u, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got += n;
  }
  close(u);
  for (int i = 0; i < 3000 && !fs_target_over(t2, 53); i++) evssh_session_process(s, 10, NULL, NULL);
  ck_assert(fs_target_over(t2, 53));
  fs_target_stop(t2);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* sshd is killed in the middle of a transfer: every local socket closes,
   the listener closes, nothing is left open. */
START_TEST(test_server_dies_mid_transfer) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, NULL), 0);
  int base = fs_open_fds();
  evssh_session *s = connect_peer(&p);
  int tport = 0, lport = 0, lport2 = 0;
  fs_target *t = fs_target_start(NULL, 4, &tport);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", tport, &lport), EVSSH_OK);
  ck_assert_int_eq(evssh_forward_dynamic(s, NULL, 0, &lport2), EVSSH_OK);
  fs_client c[3];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 3; i++)
    c[i] = (fs_client){.port = lport, .seed = (uint32_t)(61 + i), .up = 512 * MiB, .down = 512 * MiB, .timeout_s = 120};
  atomic_int done = 0;
  fs_batch *b = fs_clients_start(c, 3, &done);
  for (int i = 0; i < 6000 && fs_target_sent(t) < 8 * MiB; i++) evssh_session_process(s, 10, NULL, NULL);
  ck_assert_uint_ge(fs_target_sent(t), 8 * MiB);
  harness_sshd_signal(&p, SIGKILL);
  int rc = fs_loop_until(s, &done);
  fs_clients_wait(b);
  ck_assert_int_lt(rc, 0);
  ck_assert(evssh_session_closed(s));
  for (int i = 0; i < 3; i++) {
    ck_assert(c[i].result.failed || c[i].result.received < 512 * MiB);
    ck_assert_msg(!strstr(c[i].result.why, "timed out"), "client %d: %s", i, c[i].result.why);
  }
  ck_assert_int_lt(fs_connect_tcp(lport), 0);
  ck_assert_int_lt(fs_connect_tcp(lport2), 0);
  ck_assert_uint_eq(evssh_forward_list(s, NULL, 0), 2);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", tport, NULL), EVSSH_ECLOSED);
  evssh_session_free(s);
  fs_target_stop(t);
  ck_assert_int_eq(fs_open_fds(), base);
  harness_sshd_stop(&p);
}
END_TEST

/* 1000 short connections through one forward: no descriptor is left. */
START_TEST(test_thousand_connections_no_leak) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(1000, &t, &lport);
  int base = fs_open_fds();
  for (int round = 0; round < 20; round++) {
    fs_client c[50];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 50; i++)
      c[i] = (fs_client){.port = lport, .seed = (uint32_t)(1000 + round * 50 + i), .up = 100 + i, .down = 200 + i,
                         .mode = i % 3};
    fs_run(s, t, c, 50);
  }
  for (int i = 0; i < 200 && fs_open_fds() > base; i++) evssh_session_process(s, 10, NULL, NULL);
  ck_assert_int_eq(fs_open_fds(), base);
  evssh_forward_info info;
  ck_assert_uint_eq(evssh_forward_list(s, &info, 1), 1);
  ck_assert_uint_eq(info.connections, 0);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ----------------------------------------------- multi and foreign loops */

static bool multi_flag(evssh_multi *m, void *ud) { return !atomic_load((atomic_int *)ud); }

START_TEST(test_twenty_sessions_in_one_multi) {
  enum { N = 20 };
  evssh_session *s[N];
  int lport[N];
  int tport = 0;
  fs_target *t = fs_target_start(NULL, N, &tport);
  evssh_multi *m = evssh_multi_new();
  for (int i = 0; i < N; i++) {
    s[i] = connect_peer(&peer);
    ck_assert_int_eq(evssh_forward_local(s[i], NULL, 0, "127.0.0.1", tport, &lport[i]), EVSSH_OK);
    ck_assert_int_eq(evssh_multi_add(m, s[i]), 0);
  }
  fs_client c[N];
  memset(c, 0, sizeof c);
  for (int i = 0; i < N; i++)
    c[i] = (fs_client){.port = lport[i], .seed = (uint32_t)(200 + i), .up = 2 * MiB, .down = 2 * MiB};
  atomic_int done = 0;
  fs_batch *b = fs_clients_start(c, N, &done);
  while (!atomic_load(&done)) evssh_multi_process(m, 50, multi_flag, &done);
  fs_clients_wait(b);
  for (int i = 0; i < 3000 && fs_target_done(t) < N; i++) evssh_multi_process(m, 20, NULL, NULL);
  for (int i = 0; i < N; i++) {
    char why[300];
    ck_assert_msg(fs_check(&c[i], t, why, sizeof why), "%s", why);
  }
  evssh_multi_free(m);
  for (int i = 0; i < N; i++) {
    evssh_session_close(s[i]);
    evssh_session_free(s[i]);
  }
  fs_target_stop(t);
}
END_TEST

/* Connections come and go through a forward in a multi, one after
   another: a closed connection's fd number comes back for the next one at
   once, and the multi must watch the new socket, not the old one. */
typedef struct churn {
  int port, n, ok;
  atomic_int done;
} churn;

static void *churn_main(void *arg) {
  churn *c = arg;
  for (int i = 0; i < c->n; i++) {
    int fd = fs_connect_tcp(c->port);
    if (fd < 0) break;
    /* one stream: header, 1000 bytes up, 3000 down (FS_AFTER_EOF) */
    unsigned char hdr[29] = {0x45, 0x56, 0x46, 0x57};
    hdr[7] = (unsigned char)(i + 1);
    hdr[6] = (unsigned char)((i + 1) >> 8);
    hdr[14] = 0x03; hdr[15] = 0xe8;   /* up 1000 */
    hdr[22] = 0x0b; hdr[23] = 0xb8;   /* down 3000 */
    hdr[24] = FS_AFTER_EOF;
    char up[1000];
    memset(up, 0, sizeof up);
    if (send(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) { close(fd); break; }
    /* the bytes are not checked here (the target does): only their count */
    send(fd, up, sizeof up, 0);
    shutdown(fd, SHUT_WR);
    long got = 0;
    char buf[4096];
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 20000) > 0) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got += n;
    }
    close(fd);
    if (got != 3000) break;
    c->ok++;
  }
  atomic_store(&c->done, 1);
  return NULL;
}

START_TEST(test_multi_connection_churn) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(640, &t, &lport);
  evssh_multi *m = evssh_multi_new();
  ck_assert_int_eq(evssh_multi_add(m, s), 0);
  enum { THREADS = 16, EACH = 40 };
  churn c[THREADS];
  pthread_t th[THREADS];
  atomic_int all = 0;
  for (int i = 0; i < THREADS; i++) {
    c[i] = (churn){.port = lport, .n = EACH};
    pthread_create(&th[i], NULL, churn_main, &c[i]);
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!atomic_load(&all)) {
    evssh_multi_process(m, 50, multi_flag, &all);
    int d = 0;
    for (int i = 0; i < THREADS; i++) d += atomic_load(&c[i].done);
    if (d == THREADS) atomic_store(&all, 1);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int ok = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    ok += c[i].ok;
  }
  fprintf(stderr, "churn through a multi: %d connections in %.1f s\n", ok,
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  ck_assert_int_eq(ok, THREADS * EACH);
  evssh_multi_free(m);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* A listen_to fd closed and its number reused for a new socket within one
   iteration (as a forward does when a connection ends while the next is
   accepted): the multi must watch the new socket. */
typedef struct reuse {
  int a_peer, b_peer;
  int fd;
  atomic_int got;
} reuse;

static void reuse_second(evssh_session *s, int fd, int events, void *ud) {
  reuse *r = ud;
  char c;
  if (recv(fd, &c, 1, 0) == 1) atomic_store(&r->got, 1);
}

static void reuse_first(evssh_session *s, int fd, int events, void *ud) {
  reuse *r = ud;
  char c;
  if (recv(fd, &c, 1, 0) != 1) return;
  /* the same number, another socket, the same interest */
  evssh_session_stop_listening_to(s, fd);
  close(fd);
  int sp[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  ck_assert_int_eq(sp[0], fd);
  r->b_peer = sp[1];
  ck_assert_int_eq(evssh_session_listen_to(s, sp[0], EVSSH_READ, reuse_second, r), EVSSH_OK);
  ck_assert_int_eq(send(r->b_peer, "b", 1, 0), 1);
}

START_TEST(test_multi_listen_to_fd_reuse) {
  evssh_session *s = connect_peer(&peer);
  evssh_multi *m = evssh_multi_new();
  ck_assert_int_eq(evssh_multi_add(m, s), 0);
  reuse r = {0};
  int sp[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  r.fd = sp[0];
  r.a_peer = sp[1];
  ck_assert_int_eq(evssh_session_listen_to(s, sp[0], EVSSH_READ, reuse_first, &r), EVSSH_OK);
  ck_assert_int_eq(send(r.a_peer, "a", 1, 0), 1);
  for (int i = 0; i < 100 && !atomic_load(&r.got); i++) evssh_multi_process(m, 50, NULL, NULL);
  ck_assert_msg(atomic_load(&r.got), "the multi never reported the new socket under the reused number");
  evssh_session_stop_listening_to(s, r.fd);
  close(r.fd);
  close(r.a_peer);
  close(r.b_peer);
  evssh_multi_free(m);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* The session in a loop of the program's own, through the foreign-loop
   interface only (fd, events, timeout, listeners, handle_*). */
START_TEST(test_foreign_loop) {
  fs_target *t;
  int lport = 0;
  evssh_session *s = local_setup(1, &t, &lport);
  fs_client c = {.port = lport, .seed = 301, .up = 16 * MiB, .down = 16 * MiB};
  atomic_int done = 0;
  fs_batch *b = fs_clients_start(&c, 1, &done);
  while (!atomic_load(&done) || fs_target_done(t) < 1) {
    struct pollfd pfd[64];
    int lfds[63], levs[63];
    size_t nl = evssh_session_listeners(s, lfds, levs, 63);
    ck_assert_uint_le(nl, 63);
    pfd[0] = (struct pollfd){evssh_session_fd(s), (short)((evssh_session_events(s) & EVSSH_READ ? POLLIN : 0) |
                                                          (evssh_session_events(s) & EVSSH_WRITE ? POLLOUT : 0)), 0};
    for (size_t i = 0; i < nl; i++)
      pfd[i + 1] = (struct pollfd){lfds[i], (short)((levs[i] & EVSSH_READ ? POLLIN : 0) | (levs[i] & EVSSH_WRITE ? POLLOUT : 0)), 0};
    int to = evssh_session_timeout(s);
    poll(pfd, nl + 1, to < 0 || to > 50 ? 50 : to);
    for (size_t i = 0; i < nl; i++) {
      short re = pfd[i + 1].revents;
      int ev = (re & (POLLIN | POLLHUP | POLLERR) ? EVSSH_READ : 0) | (re & (POLLOUT | POLLERR) ? EVSSH_WRITE : 0);
      if (ev) evssh_session_handle_listener(s, lfds[i], ev);
    }
    short re = pfd[0].revents;
    ck_assert_int_eq(evssh_session_handle_events(s, (re & (POLLIN | POLLHUP | POLLERR) ? EVSSH_READ : 0) |
                                                        (re & POLLOUT ? EVSSH_WRITE : 0)), 0);
  }
  fs_clients_wait(b);
  char why[300];
  ck_assert_msg(fs_check(&c, t, why, sizeof why), "%s", why);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

static Suite *forward_suite(void) {
  Suite *s = suite_create("forward_local");
  TCase *tc = tcase_create("local");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_local_tcp_64mib_both_ways);
  tcase_add_test(tc, test_local_50_parallel);
  tcase_add_test(tc, test_local_half_close_both_ways);
  tcase_add_test(tc, test_local_unix_listener_64mib);
  tcase_add_test(tc, test_local_socket_streamlocal_64mib);
  tcase_add_test(tc, test_cancel_lets_connections_finish);
  tcase_add_test(tc, test_slow_consumer_memory_is_bounded);
  suite_add_tcase(s, tc);
  tc = tcase_create("faults");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_bind_in_use);
  tcase_add_test(tc, test_server_refuses_forwarding);
  tcase_add_test(tc, test_target_port_closed);
  tcase_add_test(tc, test_client_disconnects_mid_transfer);
  tcase_add_test(tc, test_server_dies_mid_transfer);
  suite_add_tcase(s, tc);
  tc = tcase_create("churn");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_thousand_connections_no_leak);
  suite_add_tcase(s, tc);
  tc = tcase_create("loops");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_twenty_sessions_in_one_multi);
  tcase_add_test(tc, test_multi_connection_churn);
  tcase_add_test(tc, test_multi_listen_to_fd_reuse);
  tcase_add_test(tc, test_foreign_loop);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&peer, NULL) != 0) return 1;
  SRunner *sr = srunner_create(forward_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
