/* bench_channel: one channel's bulk cost and exec round-trip time, evssh
 * beside libssh (with SSH_OPTIONS_NODELAY, its best) and OpenSSH's ssh
 * client, in one run against the same sshd started here. Not a test: it
 * prints figures and ratios and asserts nothing.
 *
 * Bulk: the first figure is client CPU seconds per GiB read (getrusage
 * around the transfer alone, evssh and libssh in this process, ssh as a
 * child from RUSAGE_CHILDREN), the second MB/s (on loopback capped by
 * sshd's own speed, so it understates the client's difference).
 * Exec: the median of N execs of `true` on one connected session, for
 * evssh and libssh in 3 interleaved rounds (evssh, libssh, evssh, ...).
 *
 *   bench_channel [MiB to read, default 1024] [execs per round, default 100]
 *
 * The sshd login user is the harness's (evssh-test, shell /bin/sh, when run
 * as root) so shell start-up does not hide the client's cost. */
#include "harness.h"

#include "evssh.h"

#include <libssh/libssh.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static harness_peer sshd;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------- evssh */

static evssh_session *ev_connect(const char *cipher) {
  char port[32], kh[700], key[700], c[128];
  snprintf(port, sizeof port, "Port=%d", sshd.port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", sshd.known_hosts);
  snprintf(key, sizeof key, "IdentityFile=%s", sshd.key_ed25519);
  snprintf(c, sizeof c, "Ciphers=%s", cipher);
  const char *opts[] = {port, kh, key, c, "GlobalKnownHostsFile=none", "IdentityAgent=none", "IdentitiesOnly=yes", NULL};
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", sshd.user, opts, &err);
  if (!s) {
    fprintf(stderr, "evssh connect: %s\n", err.message);
    exit(1);
  }
  return s;
}

typedef struct sink {
  size_t bytes;
  bool closed;
} sink;

static void sink_data(evssh_channel *ch, const char *data, size_t len, void *ud) { ((sink *)ud)->bytes += len; }
static void sink_close(evssh_channel *ch, void *ud) { ((sink *)ud)->closed = true; }
static bool sink_open(evssh_session *s, void *ud) { return !((sink *)ud)->closed; }

static void sink_opened(evssh_channel *ch, void *ud) {
  evssh_channel_on_data(ch, sink_data, ud);
  evssh_channel_on_close(ch, sink_close, ud);
  evssh_channel_exec(ch, evssh_channel_property(ch, "cmd"), NULL, NULL);
}

typedef struct bulk {
  double mbps, cpu_per_gib;
} bulk;

static bulk ev_read(const char *cipher, size_t mib) {
  evssh_session *s = ev_connect(cipher);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "head -c %zuM /dev/zero", mib);
  sink k = {0, false};
  double c0 = cpu_s();
  double t0 = now_s();
  evssh_channel *ch = evssh_session_open_channel(s, sink_opened, &k);
  evssh_channel_set_property(ch, "cmd", cmd);
  evssh_session_loop(s, 1000, sink_open, &k);
  double dt = now_s() - t0, cpu = cpu_s() - c0;
  if (k.bytes != mib << 20) fprintf(stderr, "evssh: got %zu bytes\n", k.bytes);
  evssh_session_close(s);
  evssh_session_free(s);
  return (bulk){(double)mib * 1.048576 / dt, cpu * 1024.0 / (double)mib};
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* median ms of `calls` execs of `true` on one session */
static double ev_exec(int calls) {
  evssh_session *s = ev_connect("aes128-gcm@openssh.com");
  double *t = calloc((size_t)calls, sizeof *t);
  for (int i = 0; i < calls; i++) {
    evssh_result r;
    double t0 = now_s();
    if (evssh_session_exec_wait(s, "true", &r) != EVSSH_OK || r.exit_status != 0) fprintf(stderr, "evssh exec failed\n");
    t[i] = (now_s() - t0) * 1000;
    evssh_result_free(&r);
  }
  evssh_session_close(s);
  evssh_session_free(s);
  double m = median(t, calls);
  free(t);
  return m;
}

/* ------------------------------------------------------------ libssh */

static ssh_session lib_connect(const char *cipher) {
  ssh_session s = ssh_new();
  int port = sshd.port, yes = 1;
  ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1");
  ssh_options_set(s, SSH_OPTIONS_PORT, &port);
  ssh_options_set(s, SSH_OPTIONS_USER, sshd.user);
  ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, sshd.known_hosts);
  ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, cipher);
  ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, cipher);
  ssh_options_set(s, SSH_OPTIONS_NODELAY, &yes);
  ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &(bool){false});
  if (ssh_connect(s) != SSH_OK) {
    fprintf(stderr, "libssh connect: %s\n", ssh_get_error(s));
    exit(1);
  }
  ssh_key key = NULL;
  if (ssh_pki_import_privkey_file(sshd.key_ed25519, NULL, NULL, NULL, &key) != SSH_OK ||
      ssh_userauth_publickey(s, NULL, key) != SSH_AUTH_SUCCESS) {
    fprintf(stderr, "libssh auth: %s\n", ssh_get_error(s));
    exit(1);
  }
  ssh_key_free(key);
  return s;
}

static bulk lib_read(const char *cipher, size_t mib) {
  ssh_session s = lib_connect(cipher);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "head -c %zuM /dev/zero", mib);
  static char buf[65536];
  double c0 = cpu_s();
  double t0 = now_s();
  ssh_channel ch = ssh_channel_new(s);
  ssh_channel_open_session(ch);
  ssh_channel_request_exec(ch, cmd);
  size_t total = 0;
  int n;
  while ((n = ssh_channel_read(ch, buf, sizeof buf, 0)) > 0) total += (size_t)n;
  double dt = now_s() - t0, cpu = cpu_s() - c0;
  if (total != mib << 20) fprintf(stderr, "libssh: got %zu bytes\n", total);
  ssh_channel_close(ch);
  ssh_channel_free(ch);
  ssh_disconnect(s);
  ssh_free(s);
  return (bulk){(double)mib * 1.048576 / dt, cpu * 1024.0 / (double)mib};
}

static double lib_exec(int calls) {
  ssh_session s = lib_connect("aes128-gcm@openssh.com");
  char buf[256];
  double *t = calloc((size_t)calls, sizeof *t);
  for (int i = 0; i < calls; i++) {
    double t0 = now_s();
    ssh_channel ch = ssh_channel_new(s);
    ssh_channel_open_session(ch);
    ssh_channel_request_exec(ch, "true");
    while (ssh_channel_read(ch, buf, sizeof buf, 0) > 0) {}
    ssh_channel_send_eof(ch);
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    t[i] = (now_s() - t0) * 1000;
  }
  ssh_disconnect(s);
  ssh_free(s);
  double m = median(t, calls);
  free(t);
  return m;
}

/* ----------------------------------------------------- OpenSSH client */

static void ssh_cmd(char *out, size_t outlen, const char *extra, const char *cipher, const char *remote) {
  snprintf(out, outlen,
           "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none "
           "-o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=%s -i %s -c %s -p %d %s %s@127.0.0.1 '%s'",
           sshd.known_hosts, sshd.key_ed25519, cipher, sshd.port, extra, sshd.user, remote);
}

static double children_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static bulk openssh_read(const char *cipher, size_t mib) {
  char remote[64], cmd[4096], full[4200];
  snprintf(remote, sizeof remote, "head -c %zuM /dev/zero", mib);
  ssh_cmd(cmd, sizeof cmd, "", cipher, remote);
  snprintf(full, sizeof full, "%s > /dev/null", cmd);
  /* the connect is in these figures too: measure it alone and take it off */
  char conn[4096];
  ssh_cmd(conn, sizeof conn, "", cipher, "true");
  double c0 = now_s(), u0 = children_cpu();
  if (system(conn) != 0) fprintf(stderr, "ssh connect failed\n");
  double connect = now_s() - c0, connect_cpu = children_cpu() - u0;
  double t0 = now_s(), u1 = children_cpu();
  if (system(full) != 0) fprintf(stderr, "ssh read failed\n");
  double dt = now_s() - t0 - connect, cpu = children_cpu() - u1 - connect_cpu;
  return (bulk){(double)mib * 1.048576 / dt, cpu * 1024.0 / (double)mib};
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
  int calls = argc > 2 ? atoi(argv[2]) : 100;
  if (calls < 1) calls = 100;
  harness_require_sshd();
  if (harness_sshd_start(&sshd, NULL) != 0) return 1;
  printf("sshd on 127.0.0.1:%d, user %s; reading %zu MiB on one channel; %d execs of `true` per round\n\n",
         sshd.port, sshd.user, mib, calls);
  const char *ciphers[] = {"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"};
  printf("%-30s %28s %28s\n", "", "client CPU s per GiB", "MB/s");
  printf("%-30s %8s %8s %8s %6s %8s %8s %8s %6s\n", "bulk read", "evssh", "libssh", "ssh", "ev/lib", "evssh",
         "libssh", "ssh", "ev/lib");
  for (int i = 0; i < 2; i++) {
    bulk e = ev_read(ciphers[i], mib);
    bulk l = lib_read(ciphers[i], mib);
    bulk o = openssh_read(ciphers[i], mib);
    printf("%-30s %8.3f %8.3f %8.3f %5.2fx %8.0f %8.0f %8.0f %5.2fx\n", ciphers[i], e.cpu_per_gib, l.cpu_per_gib,
           o.cpu_per_gib, e.cpu_per_gib / l.cpu_per_gib, e.mbps, l.mbps, o.mbps, e.mbps / l.mbps);
    fflush(stdout);
  }
  printf("\n%-30s %10s %10s %14s\n", "exec `true` round trip", "evssh ms", "libssh ms", "evssh/libssh");
  for (int round = 1; round <= 3; round++) {
    double e = ev_exec(calls), l = lib_exec(calls);
    char label[64];
    snprintf(label, sizeof label, "round %d (median of %d)", round, calls);
    printf("%-30s %10.3f %10.3f %13.2fx\n", label, e, l, e / l);
    fflush(stdout);
  }
  harness_sshd_stop(&sshd);
  return 0;
}
