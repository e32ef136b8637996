/* bench_channel: one channel's throughput and exec round-trip time, evssh
 * beside libssh (with SSH_OPTIONS_NODELAY, its best) and OpenSSH's ssh
 * client, in one run against the same sshd started here. Not a test: it
 * prints figures and ratios and asserts nothing.
 *
 *   bench_channel [MiB to read, default 1024] [exec calls, default 200]
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

static double ev_read(const char *cipher, size_t mib) {
  evssh_session *s = ev_connect(cipher);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "head -c %zuM /dev/zero", mib);
  sink k = {0, false};
  double t0 = now_s();
  evssh_channel *ch = evssh_session_open_channel(s, sink_opened, &k);
  evssh_channel_set_property(ch, "cmd", cmd);
  evssh_session_loop(s, 1000, sink_open, &k);
  double dt = now_s() - t0;
  if (k.bytes != mib << 20) fprintf(stderr, "evssh: got %zu bytes\n", k.bytes);
  evssh_session_close(s);
  evssh_session_free(s);
  return (double)mib / dt;
}

static double ev_exec(int calls, double *connect_ms) {
  double t0 = now_s();
  evssh_session *s = ev_connect("aes128-gcm@openssh.com");
  *connect_ms = (now_s() - t0) * 1000;
  t0 = now_s();
  for (int i = 0; i < calls; i++) {
    evssh_result r;
    if (evssh_session_exec_wait(s, "true", &r) != EVSSH_OK || r.exit_status != 0) fprintf(stderr, "evssh exec failed\n");
    evssh_result_free(&r);
  }
  double dt = now_s() - t0;
  evssh_session_close(s);
  evssh_session_free(s);
  return dt * 1000 / calls;
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

static double lib_read(const char *cipher, size_t mib) {
  ssh_session s = lib_connect(cipher);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "head -c %zuM /dev/zero", mib);
  static char buf[65536];
  double t0 = now_s();
  ssh_channel ch = ssh_channel_new(s);
  ssh_channel_open_session(ch);
  ssh_channel_request_exec(ch, cmd);
  size_t total = 0;
  int n;
  while ((n = ssh_channel_read(ch, buf, sizeof buf, 0)) > 0) total += (size_t)n;
  double dt = now_s() - t0;
  if (total != mib << 20) fprintf(stderr, "libssh: got %zu bytes\n", total);
  ssh_channel_close(ch);
  ssh_channel_free(ch);
  ssh_disconnect(s);
  ssh_free(s);
  return (double)mib / dt;
}

static double lib_exec(int calls, double *connect_ms) {
  double t0 = now_s();
  ssh_session s = lib_connect("aes128-gcm@openssh.com");
  *connect_ms = (now_s() - t0) * 1000;
  char buf[256];
  t0 = now_s();
  for (int i = 0; i < calls; i++) {
    ssh_channel ch = ssh_channel_new(s);
    ssh_channel_open_session(ch);
    ssh_channel_request_exec(ch, "true");
    while (ssh_channel_read(ch, buf, sizeof buf, 0) > 0) {}
    ssh_channel_send_eof(ch);
    ssh_channel_close(ch);
    ssh_channel_free(ch);
  }
  double dt = now_s() - t0;
  ssh_disconnect(s);
  ssh_free(s);
  return dt * 1000 / calls;
}

/* ----------------------------------------------------- OpenSSH client */

static void ssh_cmd(char *out, size_t outlen, const char *extra, const char *cipher, const char *remote) {
  snprintf(out, outlen,
           "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none "
           "-o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=%s -i %s -c %s -p %d %s %s@127.0.0.1 '%s'",
           sshd.known_hosts, sshd.key_ed25519, cipher, sshd.port, extra, sshd.user, remote);
}

static double openssh_read(const char *cipher, size_t mib) {
  char remote[64], cmd[4096], full[4200];
  snprintf(remote, sizeof remote, "head -c %zuM /dev/zero", mib);
  ssh_cmd(cmd, sizeof cmd, "", cipher, remote);
  snprintf(full, sizeof full, "%s > /dev/null", cmd);
  /* the connect is in this time too: measure it alone and take it off */
  char conn[4096];
  ssh_cmd(conn, sizeof conn, "", cipher, "true");
  double c0 = now_s();
  if (system(conn) != 0) fprintf(stderr, "ssh connect failed\n");
  double connect = now_s() - c0;
  double t0 = now_s();
  if (system(full) != 0) fprintf(stderr, "ssh read failed\n");
  return (double)mib / (now_s() - t0 - connect);
}

static double openssh_exec(int calls, double *connect_ms) {
  char ctl[700], extra[900], cmd[4096];
  snprintf(ctl, sizeof ctl, "%s/bench-ctl", sshd.dir);
  snprintf(extra, sizeof extra, "-o ControlMaster=auto -o ControlPath=%s -o ControlPersist=60", ctl);
  ssh_cmd(cmd, sizeof cmd, extra, "aes128-gcm@openssh.com", "true");
  double t0 = now_s();
  if (system(cmd) != 0) fprintf(stderr, "ssh master failed\n");
  *connect_ms = (now_s() - t0) * 1000;
  t0 = now_s();
  for (int i = 0; i < calls; i++)
    if (system(cmd) != 0) fprintf(stderr, "ssh exec failed\n");
  double dt = now_s() - t0;
  char stop[1200];
  snprintf(stop, sizeof stop, "ssh -o ControlPath=%s -O exit x 2>/dev/null", ctl);
  (void)!system(stop);
  return dt * 1000 / calls;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
  int calls = argc > 2 ? atoi(argv[2]) : 200;
  harness_require_sshd();
  if (harness_sshd_start(&sshd, NULL) != 0) return 1;
  printf("sshd on 127.0.0.1:%d, user %s; reading %zu MiB on one channel, %d exec calls of `true`\n\n", sshd.port,
         sshd.user, mib, calls);
  const char *ciphers[] = {"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"};
  printf("%-32s %12s %12s %12s %10s\n", "throughput (MB/s)", "evssh", "libssh", "openssh", "evssh/best");
  for (int i = 0; i < 2; i++) {
    double c0 = cpu_s();
    double e = ev_read(ciphers[i], mib);
    double ecpu = cpu_s() - c0;
    double l = lib_read(ciphers[i], mib);
    double o = openssh_read(ciphers[i], mib);
    double best = l > o ? l : o;
    printf("%-32s %12.0f %12.0f %12.0f %9.2fx   (evssh CPU %.2f s)\n", ciphers[i], e, l, o, e / best, ecpu);
  }
  double ec, lc, oc;
  double e = ev_exec(calls, &ec), l = lib_exec(calls, &lc), o = openssh_exec(calls, &oc);
  printf("\n%-32s %12s %12s %12s\n", "exec `true` round trip (ms)", "evssh", "libssh", "openssh mux");
  printf("%-32s %12.2f %12.2f %12.2f   libssh/evssh %.2fx\n", "per call", e, l, o, l / e);
  printf("%-32s %12.1f %12.1f %12.1f\n", "connect + auth", ec, lc, oc);
  harness_sshd_stop(&sshd);
  return 0;
}
