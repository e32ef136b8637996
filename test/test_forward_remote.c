/* Remote forwarding (ssh -R: tcpip-forward and streamlocal-forward), dynamic
 * forwarding (ssh -D: SOCKS4, SOCKS4a, SOCKS5 by IPv4, IPv6 and name, and
 * the SOCKS errors), agent forwarding (ssh-add -l run on the server lists
 * the keys of a private ssh-agent started here), the ssh_config keywords
 * (LocalForward, RemoteForward, DynamicForward, ForwardAgent,
 * ExitOnForwardFailure, GatewayPorts) set up by evssh_start, against the
 * harness's OpenSSH sshd, and local and remote forwards through the
 * embedded libssh server. Skips (77) without sshd. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

static harness_peer peer;

static evssh_session *connect_with(const harness_peer *p, const char *const *extra) {
  evssh_session *s = fs_connect(p, extra, NULL);
  ck_assert_ptr_nonnull(s);
  return s;
}

/* ------------------------------------------------------------ remote */

typedef struct remote_answer {
  atomic_int done;
  int status, port;
} remote_answer;

static void on_remote(evssh_session *s, int status, int bound_port, void *ud) {
  remote_answer *a = ud;
  a->status = status;
  a->port = bound_port;
  atomic_store(&a->done, 1);
}

static int remote_forward(evssh_session *s, const char *bind, int port, const char *host, int hostport) {
  remote_answer a = {0};
  ck_assert_int_eq(evssh_forward_remote(s, bind, port, host, hostport, on_remote, &a), EVSSH_OK);
  fs_loop_until(s, &a.done);
  return a.status == EVSSH_OK ? a.port : a.status;
}

START_TEST(test_remote_port0_64mib_both_ways) {
  evssh_session *s = connect_with(&peer, NULL);
  int tport = 0;
  fs_target *t = fs_target_start(NULL, 1, &tport);
  int rport = remote_forward(s, NULL, 0, "127.0.0.1", tport);
  ck_assert_int_gt(rport, 0);
  evssh_forward_info info;
  ck_assert_uint_eq(evssh_forward_list(s, &info, 1), 1);
  ck_assert_int_eq(info.kind, EVSSH_FORWARD_REMOTE);
  ck_assert(info.active);
  ck_assert_int_eq(info.bound_port, rport);
  fs_client c = {.port = rport, .seed = 401, .up = fs_bulk(), .down = fs_bulk()};
  fs_run(s, t, &c, 1);
  /* cancel: the server stops listening */
  ck_assert_int_eq(evssh_forward_cancel_remote(s, NULL, rport), EVSSH_OK);
  ck_assert_uint_eq(evssh_forward_list(s, NULL, 0), 0);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "true", &r), 0);   /* the cancel's answer came before this */
  evssh_result_free(&r);
  ck_assert_int_lt(fs_connect_tcp(rport), 0);
  ck_assert_int_eq(evssh_forward_cancel_remote(s, NULL, rport), EVSSH_EINVAL);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_remote_fixed_port_parallel_and_unix_target) {
  evssh_session *s = connect_with(&peer, NULL);
  char lpath[128];
  fs_tmp_path(lpath, sizeof lpath, "rt.sock");
  fs_target *t = fs_target_start(lpath, 10, NULL);
  int want = harness_free_port();
  ck_assert_int_eq(remote_forward(s, "127.0.0.1", want, lpath, 0), want);
  fs_client c[10];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 10; i++) c[i] = (fs_client){.port = want, .seed = (uint32_t)(410 + i), .up = MiB + i, .down = MiB - i, .mode = i % 3};
  fs_run(s, t, c, 10);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_remote_socket_64mib) {
  evssh_session *s = connect_with(&peer, NULL);
  char rpath[128];
  fs_tmp_path(rpath, sizeof rpath, "rs.sock");
  int tport = 0;
  fs_target *t = fs_target_start(NULL, 1, &tport);
  remote_answer a = {0};
  ck_assert_int_eq(evssh_forward_remote_socket(s, rpath, "127.0.0.1", tport, on_remote, &a), EVSSH_OK);
  fs_loop_until(s, &a.done);
  ck_assert_int_eq(a.status, EVSSH_OK);
  fs_client c = {.unix_path = rpath, .seed = 421, .up = fs_bulk(), .down = fs_bulk()};
  fs_run(s, t, &c, 1);
  ck_assert_int_eq(evssh_forward_cancel_remote(s, rpath, 0), EVSSH_OK);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
  unlink(rpath);
}
END_TEST

START_TEST(test_remote_refused) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, "AllowTcpForwarding local"), 0);
  evssh_session *s = connect_with(&p, NULL);
  fs_log log;
  fs_log_attach(s, &log);
  ck_assert_int_eq(remote_forward(s, NULL, 0, "127.0.0.1", 22), EVSSH_ECHANNEL);
  ck_assert_msg(fs_log_has(&log, "remote port forwarding failed for listen port 0"), "%s", log.text);
  ck_assert_uint_eq(evssh_forward_list(s, NULL, 0), 0);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo alive", &r), 0);
  ck_assert_str_eq(r.out, "alive\n");
  evssh_result_free(&r);
  evssh_session_close(s);
  evssh_session_free(s);
  harness_sshd_stop(&p);
}
END_TEST

typedef struct reader {
  int port;
  const char *path;
  const unsigned char *send;
  size_t send_len;
  unsigned char got[256];
  long got_len;          /* bytes until EOF; -1 connect failed, -2 timeout */
  atomic_int done;
} reader;

static void *send_then_read(void *arg) {
  reader *r = arg;
  int fd;
  if (r->path) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", r->path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) { close(fd); fd = -1; }
  } else {
    fd = fs_connect_tcp(r->port);
  }
  r->got_len = -1;
  if (fd >= 0) {
    if (r->send_len) send(fd, r->send, r->send_len, MSG_NOSIGNAL);
    r->got_len = 0;
    for (;;) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 60000) <= 0) { r->got_len = -2; break; }
      ssize_t n = recv(fd, r->got + r->got_len, sizeof r->got - (size_t)r->got_len, 0);
      if (n <= 0) break;
      r->got_len += n;
      if ((size_t)r->got_len == sizeof r->got) break;
    }
    close(fd);
  }
  atomic_store(&r->done, 1);
  return NULL;
}

static void exchange(evssh_session *s, reader *r) {
  pthread_t th;
  pthread_create(&th, NULL, send_then_read, r);
  fs_loop_until(s, &r->done);
  pthread_join(th, NULL);
}

START_TEST(test_remote_target_closed) {
  evssh_session *s = connect_with(&peer, NULL);
  fs_log log;
  fs_log_attach(s, &log);
  int closed = harness_free_port();
  int rport = remote_forward(s, NULL, 0, "127.0.0.1", closed);
  ck_assert_int_gt(rport, 0);
  reader r = {.port = rport};
  exchange(s, &r);
  ck_assert_int_eq(r.got_len, 0);
  ck_assert_msg(fs_log_has(&log, "connect failed"), "%s", log.text);
  evssh_result res;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo alive", &res), 0);
  evssh_result_free(&res);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------------------ dynamic */

static size_t socks4(unsigned char *b, uint8_t cmd, int port, const char *ip, const char *name) {
  size_t n = 0;
  b[n++] = 4;
  b[n++] = cmd;
  b[n++] = (unsigned char)(port >> 8);
  b[n++] = (unsigned char)port;
  if (name) { b[n++] = 0; b[n++] = 0; b[n++] = 0; b[n++] = 1; }
  else { inet_pton(AF_INET, ip, b + n); n += 4; }
  memcpy(b + n, "user", 5);
  n += 5;
  if (name) { memcpy(b + n, name, strlen(name) + 1); n += strlen(name) + 1; }
  return n;
}

/* greeting (no-auth) and request in one go, as eager clients send them */
static size_t socks5(unsigned char *b, uint8_t cmd, int port, int atyp, const char *addr) {
  size_t n = 0;
  b[n++] = 5; b[n++] = 1; b[n++] = 0;
  b[n++] = 5; b[n++] = cmd; b[n++] = 0; b[n++] = (unsigned char)atyp;
  if (atyp == 1) { inet_pton(AF_INET, addr, b + n); n += 4; }
  else if (atyp == 4) { inet_pton(AF_INET6, addr, b + n); n += 16; }
  else { b[n++] = (unsigned char)strlen(addr); memcpy(b + n, addr, strlen(addr)); n += strlen(addr); }
  b[n++] = (unsigned char)(port >> 8);
  b[n++] = (unsigned char)port;
  return n;
}

START_TEST(test_dynamic_socks_all_kinds) {
  evssh_session *s = connect_with(&peer, NULL);
  int tport = 0, t6port = 0, dport = 0;
  fs_target *t = fs_target_start(NULL, 8, &tport);
  fs_target *t6 = fs_target_start6(2, &t6port);
  ck_assert_int_eq(evssh_forward_dynamic(s, NULL, 0, &dport), EVSSH_OK);
  unsigned char pre[5][300];
  size_t pl[5];
  pl[0] = socks4(pre[0], 1, tport, "127.0.0.1", NULL);
  pl[1] = socks4(pre[1], 1, tport, NULL, "localhost");
  pl[2] = socks5(pre[2], 1, tport, 1, "127.0.0.1");
  pl[3] = socks5(pre[3], 1, tport, 3, "localhost");
  fs_client c[4];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 4; i++) {
    c[i] = (fs_client){.port = dport, .seed = (uint32_t)(501 + i), .up = (i == 2 ? 64 : 2) * MiB,
                       .down = (i == 2 ? 64 : 3) * MiB, .preamble = pre[i], .preamble_len = pl[i],
                       .reply_len = i < 2 ? 8 : 12};
  }
  fs_run(s, t, c, 4);
  ck_assert_int_eq(c[0].reply[1], 0x5a);
  ck_assert_int_eq(c[1].reply[1], 0x5a);
  ck_assert_int_eq(c[2].reply[0], 5);
  ck_assert_int_eq(c[2].reply[1], 0);      /* method: no authentication */
  ck_assert_int_eq(c[2].reply[3], 0);      /* CONNECT succeeded */
  ck_assert_int_eq(c[3].reply[3], 0);
  if (t6) {
    pl[4] = socks5(pre[4], 1, t6port, 4, "::1");
    fs_client c6 = {.port = dport, .seed = 511, .up = MiB, .down = MiB, .preamble = pre[4], .preamble_len = pl[4],
                    .reply_len = 12};
    fs_run(s, t6, &c6, 1);
    ck_assert_int_eq(c6.reply[3], 0);
    fs_target_stop(t6);
  }
  ck_assert_int_eq(evssh_forward_cancel_local(s, NULL, dport), EVSSH_OK);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

static void socks_expect(evssh_session *s, int dport, const unsigned char *req, size_t len, const unsigned char *want,
                         size_t want_len) {
  reader r = {.port = dport, .send = req, .send_len = len};
  exchange(s, &r);
  ck_assert_msg(r.got_len == (long)want_len, "got %ld bytes, want %zu", r.got_len, want_len);
  ck_assert(want_len == 0 || memcmp(r.got, want, want_len) == 0);
}

START_TEST(test_dynamic_socks_errors) {
  evssh_session *s = connect_with(&peer, NULL);
  fs_log log;
  fs_log_attach(s, &log);
  int dport = 0;
  ck_assert_int_eq(evssh_forward_dynamic(s, "127.0.0.1", 0, &dport), EVSSH_OK);
  int closed = harness_free_port();
  unsigned char b[300];
  size_t n;
  /* a closed port: SOCKS5 connection refused, SOCKS4 rejected */
  n = socks5(b, 1, closed, 1, "127.0.0.1");
  socks_expect(s, dport, b, n, (const unsigned char *)"\x05\x00\x05\x05\x00\x01\0\0\0\0\0\0", 12);
  n = socks4(b, 1, closed, "127.0.0.1", NULL);
  socks_expect(s, dport, b, n, (const unsigned char *)"\x00\x5b\0\0\0\0\0\0", 8);
  /* BIND and UDP ASSOCIATE: command not supported */
  n = socks5(b, 2, 80, 1, "127.0.0.1");
  socks_expect(s, dport, b, n, (const unsigned char *)"\x05\x00\x05\x07\x00\x01\0\0\0\0\0\0", 12);
  n = socks5(b, 3, 80, 1, "127.0.0.1");
  socks_expect(s, dport, b, n, (const unsigned char *)"\x05\x00\x05\x07\x00\x01\0\0\0\0\0\0", 12);
  n = socks4(b, 2, 80, "127.0.0.1", NULL);
  socks_expect(s, dport, b, n, (const unsigned char *)"\x00\x5b\0\0\0\0\0\0", 8);
  /* an unknown address type */
  const unsigned char atyp[] = {5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80};
  socks_expect(s, dport, atyp, sizeof atyp, (const unsigned char *)"\x05\x00\x05\x08\x00\x01\0\0\0\0\0\0", 12);
  /* only username/password offered: no acceptable method */
  const unsigned char auth[] = {5, 1, 2};
  socks_expect(s, dport, auth, sizeof auth, (const unsigned char *)"\x05\xff", 2);
  /* garbage: closed without a word */
  socks_expect(s, dport, (const unsigned char *)"GET / HTTP/1.0\r\n\r\n", 18, NULL, 0);
  ck_assert_msg(fs_log_has(&log, "not a SOCKS request"), "%s", log.text);
  /* a request that never ends (SOCKS4 user id without its NUL) */
  unsigned char longreq[1100];
  memset(longreq, 'u', sizeof longreq);
  longreq[0] = 4; longreq[1] = 1; longreq[2] = 0; longreq[3] = 80;
  socks_expect(s, dport, longreq, sizeof longreq, (const unsigned char *)"\x00\x5b\0\0\0\0\0\0", 8);
  /* a name the server cannot resolve: host unreachable */
  n = socks5(b, 1, 80, 3, "no-such-host.invalid");
  socks_expect(s, dport, b, n, (const unsigned char *)"\x05\x00\x05\x04\x00\x01\0\0\0\0\0\0", 12);
  /* the proxy still works, the session too */
  int tport = 0;
  fs_target *t = fs_target_start(NULL, 1, &tport);
  n = socks5(b, 1, tport, 1, "127.0.0.1");
  fs_client c = {.port = dport, .seed = 521, .up = MiB, .down = MiB, .preamble = b, .preamble_len = n, .reply_len = 12};
  fs_run(s, t, &c, 1);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_dynamic_forwarding_refused) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, "AllowTcpForwarding no"), 0);
  evssh_session *s = connect_with(&p, NULL);
  int dport = 0;
  ck_assert_int_eq(evssh_forward_dynamic(s, NULL, 0, &dport), EVSSH_OK);
  unsigned char b[300];
  size_t n = socks5(b, 1, 22, 1, "127.0.0.1");
  socks_expect(s, dport, b, n, (const unsigned char *)"\x05\x00\x05\x02\x00\x01\0\0\0\0\0\0", 12);
  evssh_session_close(s);
  evssh_session_free(s);
  harness_sshd_stop(&p);
}
END_TEST

/* -------------------------------------------------------------- agent */

typedef struct agent {
  pid_t pid;
  char dir[128], sock[160], key[200], fingerprint[128];
} agent;

static void agent_start(agent *a) {
  snprintf(a->dir, sizeof a->dir, "/tmp/evssh-agent-%d", (int)getpid());
  mkdir(a->dir, 0700);
  snprintf(a->sock, sizeof a->sock, "%s/agent.sock", a->dir);
  snprintf(a->key, sizeof a->key, "%s/key", a->dir);
  unlink(a->sock);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -f %s %s.pub; ssh-keygen -q -t ed25519 -N '' -C evssh-forwarded -f %s", a->key, a->key, a->key);
  ck_assert_int_eq(system(cmd), 0);
  a->pid = fork();
  if (a->pid == 0) {
    freopen("/dev/null", "w", stdout);
    execlp("ssh-agent", "ssh-agent", "-D", "-a", a->sock, (char *)NULL);
    _exit(127);
  }
  /* the socket file appears at bind(), before listen(): wait for a connect */
  ck_assert_int_eq(harness_wait_unix_listener(a->sock, 60, a->pid), 0);
  snprintf(cmd, sizeof cmd, "SSH_AUTH_SOCK=%s ssh-add %s 2>/dev/null", a->sock, a->key);
  ck_assert_int_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "ssh-keygen -lf %s.pub", a->key);
  FILE *f = popen(cmd, "r");
  char line[300] = "";
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  pclose(f);
  char *sha = strstr(line, "SHA256:");
  ck_assert_ptr_nonnull(sha);
  sha[strcspn(sha, " ")] = 0;
  snprintf(a->fingerprint, sizeof a->fingerprint, "%s", sha);
}

static void agent_stop(agent *a) {
  if (a->pid > 0) {
    kill(a->pid, SIGTERM);
    waitpid(a->pid, NULL, 0);
    a->pid = 0;
  }
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", a->dir);
  system(cmd);
}

START_TEST(test_forward_agent_option) {
  agent a;
  agent_start(&a);
  setenv("SSH_AUTH_SOCK", a.sock, 1);
  const char *opts[] = {"ForwardAgent=yes", NULL};
  evssh_session *s = connect_with(&peer, opts);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "ssh-add -l", &r), 0);
  ck_assert_msg(strstr(r.out, a.fingerprint), "ssh-add -l: %s%s (want %s)", r.out, r.err, a.fingerprint);
  ck_assert_int_eq(r.exit_status, 0);
  evssh_result_free(&r);
  /* many agent connections, one after another */
  ck_assert_int_eq(evssh_session_exec_wait(s, "for i in 1 2 3 4 5; do ssh-add -l >/dev/null || exit 9; done; echo ok", &r), 0);
  ck_assert_str_eq(r.out, "ok\n");
  evssh_result_free(&r);
  /* agent channels keep no loop busy */
  ck_assert(!evssh_session_busy(s, false));
  evssh_session_close(s);
  evssh_session_free(s);
  /* ForwardAgent=PATH names the socket itself */
  unsetenv("SSH_AUTH_SOCK");
  char fa[200];
  snprintf(fa, sizeof fa, "ForwardAgent=%s", a.sock);
  const char *opts2[] = {fa, NULL};
  s = connect_with(&peer, opts2);
  ck_assert_int_eq(evssh_session_exec_wait(s, "ssh-add -l", &r), 0);
  ck_assert_msg(strstr(r.out, a.fingerprint), "%s%s", r.out, r.err);
  evssh_result_free(&r);
  evssh_session_close(s);
  evssh_session_free(s);
  agent_stop(&a);
}
END_TEST

typedef struct exec_out {
  char out[4096];
  size_t len;
} exec_out;

static void collect(evssh_channel *ch, const char *data, size_t len, void *ud) {
  exec_out *o = ud;
  if (o->len + len < sizeof o->out) { memcpy(o->out + o->len, data, len); o->len += len; o->out[o->len] = 0; }
}

static bool channel_open(evssh_session *s, void *ud) { return evssh_channel_active(ud); }

/* evssh_channel_request_agent on the program's own channel, then the agent
   going away: the remote ssh-add fails at once instead of hanging. */
START_TEST(test_request_agent_on_channel) {
  agent a;
  agent_start(&a);
  setenv("SSH_AUTH_SOCK", a.sock, 1);
  evssh_session *s = connect_with(&peer, NULL);
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  ck_assert_ptr_nonnull(ch);
  ck_assert_int_eq(evssh_channel_request_agent(ch, NULL, NULL), EVSSH_OK);
  exec_out o = {0};
  evssh_channel_on_data(ch, collect, &o);
  ck_assert_int_eq(evssh_channel_exec(ch, "ssh-add -l; echo rc=$?", NULL, NULL), EVSSH_OK);
  evssh_channel_hold(ch);
  evssh_session_loop(s, -1, channel_open, ch);
  evssh_channel_release(ch);
  ck_assert_msg(strstr(o.out, a.fingerprint) && strstr(o.out, "rc=0"), "%s", o.out);
  agent_stop(&a);
  /* the agent is gone: the next remote use fails quickly */
  evssh_result r;
  fs_log log;
  fs_log_attach(s, &log);
  ck_assert_int_eq(evssh_session_exec_wait(s, "timeout 30 ssh-add -l; echo rc=$?", &r), 0);
  /* 1: the agent connection failed (2 would be no agent at all); 124 a hang */
  ck_assert_msg(strstr(r.out, "rc=1") || strstr(r.out, "rc=2"), "%s %s", r.out, r.err);
  ck_assert_msg(fs_log_has(&log, "cannot connect to ssh-agent"), "%s", log.text);
  evssh_result_free(&r);
  /* no agent at all: a clear error at once */
  unsetenv("SSH_AUTH_SOCK");
  evssh_channel *ch2 = evssh_session_open_channel(s, NULL, NULL);
  ck_assert_int_eq(evssh_channel_request_agent(ch2, NULL, NULL), EVSSH_EINVAL);
  ck_assert_msg(strstr(evssh_session_error(s), "SSH_AUTH_SOCK is not set"), "%s", evssh_session_error(s));
  setenv("SSH_AUTH_SOCK", "/nonexistent/agent.sock", 1);
  ck_assert_int_eq(evssh_channel_request_agent(ch2, NULL, NULL), EVSSH_ECONNECT);
  ck_assert_msg(strstr(evssh_session_error(s), "/nonexistent/agent.sock"), "%s", evssh_session_error(s));
  evssh_channel_close(ch2);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* --------------------------------------------------------- ssh_config */

START_TEST(test_config_forwards_set_up_after_auth) {
  int tport = 0;
  fs_target *t = fs_target_start(NULL, 3, &tport);
  int lport = harness_free_port(), dport = harness_free_port(), rport = harness_free_port();
  char lf[100], df[60], rf[100];
  snprintf(lf, sizeof lf, "LocalForward=%d 127.0.0.1:%d", lport, tport);
  snprintf(df, sizeof df, "DynamicForward=127.0.0.1:%d", dport);
  snprintf(rf, sizeof rf, "RemoteForward=%d 127.0.0.1:%d", rport, tport);
  const char *opts[] = {lf, df, rf, "ExitOnForwardFailure=yes", NULL};
  evssh_session *s = connect_with(&peer, opts);
  /* all three are up when evssh_start returns: the remote one too */
  evssh_forward_info info[4];
  ck_assert_uint_eq(evssh_forward_list(s, info, 4), 3);
  ck_assert_int_eq(info[0].kind, EVSSH_FORWARD_LOCAL);
  ck_assert_int_eq(info[0].bound_port, lport);
  ck_assert_int_eq(info[1].kind, EVSSH_FORWARD_DYNAMIC);
  ck_assert_int_eq(info[2].kind, EVSSH_FORWARD_REMOTE);
  ck_assert(info[2].active);
  unsigned char b[64];
  size_t n = socks5(b, 1, tport, 1, "127.0.0.1");
  fs_client c[3] = {
    {.port = lport, .seed = 601, .up = MiB, .down = MiB},
    {.port = dport, .seed = 602, .up = MiB, .down = MiB, .preamble = b, .preamble_len = n, .reply_len = 12},
    {.port = rport, .seed = 603, .up = MiB, .down = MiB},
  };
  fs_run(s, t, c, 3);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_exit_on_forward_failure) {
  int taken = 0;
  int fd = harness_listen_loopback(&taken);
  char lf[100];
  snprintf(lf, sizeof lf, "LocalForward=%d 127.0.0.1:22", taken);
  const char *opts[] = {lf, "ExitOnForwardFailure=yes", NULL};
  evssh_error err;
  evssh_session *s = fs_connect(&peer, opts, &err);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(err.code, EVSSH_ECONNECT);
  char want[64];
  snprintf(want, sizeof want, "cannot listen on 127.0.0.1 port %d", taken);
  ck_assert_msg(strstr(err.message, want) && strstr(err.message, "LocalForward"), "%s", err.message);
  /* without it the session comes up and the failure is logged */
  const char *opts2[] = {lf, NULL};
  s = fs_connect(&peer, opts2, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(evssh_forward_list(s, NULL, 0), 0);
  evssh_session_close(s);
  evssh_session_free(s);
  close(fd);
}
END_TEST

START_TEST(test_exit_on_remote_forward_failure) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, "AllowTcpForwarding local"), 0);
  const char *opts[] = {"RemoteForward=0 127.0.0.1:22", "ExitOnForwardFailure=yes", NULL};
  evssh_error err;
  evssh_session *s = fs_connect(&p, opts, &err);
  ck_assert_ptr_null(s);
  ck_assert_msg(strstr(err.message, "RemoteForward") && strstr(err.message, "refused"), "%s", err.message);
  const char *opts2[] = {"RemoteForward=0 127.0.0.1:22", NULL};
  s = fs_connect(&p, opts2, &err);
  ck_assert_ptr_nonnull(s);
  evssh_session_close(s);
  evssh_session_free(s);
  harness_sshd_stop(&p);
}
END_TEST

/* GatewayPorts=yes: a forward without a bind address listens on every
   interface (0.0.0.0 in /proc/net/tcp), as ssh does. */
static bool listening_on_any(int port) {
  FILE *f = fopen("/proc/net/tcp", "r");
  char line[512], want[32];
  snprintf(want, sizeof want, "00000000:%04X", port);
  bool found = false;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, want) && strstr(line, " 0A ")) found = true;
  if (f) fclose(f);
  return found;
}

START_TEST(test_gateway_ports) {
  const char *opts[] = {"GatewayPorts=yes", NULL};
  evssh_session *s = connect_with(&peer, opts);
  int port = 0, port2 = 0;
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", 22, &port), EVSSH_OK);
  ck_assert(listening_on_any(port));
  ck_assert_int_eq(evssh_forward_local(s, "127.0.0.1", 0, "127.0.0.1", 22, &port2), EVSSH_OK);
  ck_assert(!listening_on_any(port2));
  evssh_session_close(s);
  evssh_session_free(s);
  s = connect_with(&peer, NULL);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", 22, &port), EVSSH_OK);
  ck_assert(!listening_on_any(port));
  ck_assert_int_eq(evssh_forward_local(s, "*", 0, "127.0.0.1", 22, &port), EVSSH_OK);
  ck_assert(listening_on_any(port));
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------------- embedded server */

START_TEST(test_embedded_local_and_remote_64mib) {
  harness_peer e;
  if (harness_embedded_start(&e) != 0) {
    fprintf(stderr, "SKIP: the embedded server did not start\n");
    return;
  }
  evssh_session *s = connect_with(&e, NULL);
  int tport = 0, lport = 0;
  fs_target *t = fs_target_start(NULL, 2, &tport);
  ck_assert_int_eq(evssh_forward_local(s, NULL, 0, "127.0.0.1", tport, &lport), EVSSH_OK);
  fs_client c = {.port = lport, .seed = 701, .up = fs_bulk(), .down = fs_bulk()};
  fs_run(s, t, &c, 1);
  int rport = remote_forward(s, "127.0.0.1", 0, "127.0.0.1", tport);
  ck_assert_int_gt(rport, 0);
  fs_client c2 = {.port = rport, .seed = 702, .up = fs_bulk(), .down = fs_bulk()};
  fs_run(s, t, &c2, 1);
  fs_target_stop(t);
  evssh_session_close(s);
  evssh_session_free(s);
  harness_embedded_stop(&e);
}
END_TEST

static Suite *forward_suite(void) {
  Suite *s = suite_create("forward_remote");
  TCase *tc = tcase_create("remote");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_remote_port0_64mib_both_ways);
  tcase_add_test(tc, test_remote_fixed_port_parallel_and_unix_target);
  tcase_add_test(tc, test_remote_socket_64mib);
  tcase_add_test(tc, test_remote_refused);
  tcase_add_test(tc, test_remote_target_closed);
  suite_add_tcase(s, tc);
  tc = tcase_create("dynamic");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_dynamic_socks_all_kinds);
  tcase_add_test(tc, test_dynamic_socks_errors);
  tcase_add_test(tc, test_dynamic_forwarding_refused);
  suite_add_tcase(s, tc);
  tc = tcase_create("agent");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_forward_agent_option);
  tcase_add_test(tc, test_request_agent_on_channel);
  suite_add_tcase(s, tc);
  tc = tcase_create("config");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_config_forwards_set_up_after_auth);
  tcase_add_test(tc, test_exit_on_forward_failure);
  tcase_add_test(tc, test_exit_on_remote_forward_failure);
  tcase_add_test(tc, test_gateway_ports);
  suite_add_tcase(s, tc);
  tc = tcase_create("embedded");
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_embedded_local_and_remote_64mib);
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
