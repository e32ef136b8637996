/* bench_kex: what each key exchange method costs the client, beside
 * OpenSSH's own ssh doing the same exchange against the same sshd.
 *   1. the KEMs alone: ML-KEM-768 and sntrup761 keygen + decapsulation (the
 *      client's share), mean microseconds of CPU;
 *   2. per method, against one sshd (OpenSSH 10 from the harness cache when
 *      it can be had, which speaks every method, else the system's): evssh
 *      connect (kex + auth) best of 20 wall ms, and client CPU per connection
 *      (connect, exec "true", close); OpenSSH's ssh running "true" with the
 *      same KexAlgorithms, best wall and CPU per run (wait4's rusage).
 * Reports ratios; asserts nothing (aims: mlkem768x25519 handshake <= 1.1x
 * curve25519's; sntrup761's extra client CPU within 2x of ssh's).
 * Run: make bench && EVSSH_SRCDIR=$PWD/.. test/bench/bench_kex [rounds] */
#include "harness.h"

#include "evssh.h"
#include "mlkem.h"
#include "sntrup761.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_of(const struct rusage *r) {
  return (double)r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
         r->ru_stime.tv_usec / 1e6;
}

static double self_cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return cpu_of(&r);
}

static void kem_costs(void) {
  unsigned char ek[MLKEM768_EK_BYTES], dk[MLKEM768_DK_BYTES], ct[MLKEM768_CT_BYTES], ss[32];
  int n = 300;
  double kg = 0, dc = 0;
  for (int i = 0; i < n; i++) {
    double c0 = self_cpu();
    mlkem768_keygen(ek, dk);
    double c1 = self_cpu();
    mlkem768_encaps(ek, ct, ss);
    double c2 = self_cpu();
    mlkem768_decaps(dk, ct, ss);
    kg += c1 - c0;
    dc += self_cpu() - c2;
  }
  printf("ML-KEM-768: keygen %.1f us, decaps %.1f us, client total %.1f us (mean of %d)\n", kg / n * 1e6,
         dc / n * 1e6, (kg + dc) / n * 1e6, n);
  unsigned char pk[SNTRUP761_PK_BYTES], sk[SNTRUP761_SK_BYTES], sct[SNTRUP761_CT_BYTES];
  n = 100;
  kg = dc = 0;
  for (int i = 0; i < n; i++) {
    double c0 = self_cpu();
    sntrup761_keygen(pk, sk, NULL, NULL);
    double c1 = self_cpu();
    sntrup761_encaps(pk, sct, ss, NULL, NULL);
    double c2 = self_cpu();
    sntrup761_decaps(sk, sct, ss);
    kg += c1 - c0;
    dc += self_cpu() - c2;
  }
  printf("sntrup761:  keygen %.1f us, decaps %.1f us, client total %.1f us (mean of %d)\n", kg / n * 1e6,
         dc / n * 1e6, (kg + dc) / n * 1e6, n);
}

typedef struct figures {
  double best_ms, cpu_ms;   /* best wall of the handshake; CPU per connection */
} figures;

static int evssh_run(const harness_peer *p, const char *kex, int rounds, figures *f) {
  f->best_ms = 1e9;
  double cpu = 0;
  char port[16];
  snprintf(port, sizeof port, "%d", p->port);
  for (int i = 0; i < rounds; i++) {
    double c0 = self_cpu();
    evssh_session *s = evssh_session_new("127.0.0.1");
    evssh_session_option(s, "Port", port);
    evssh_session_option(s, "User", p->user);
    evssh_session_option(s, "UserKnownHostsFile", p->known_hosts);
    evssh_session_option(s, "GlobalKnownHostsFile", "none");
    evssh_session_option(s, "IdentityFile", p->key_ed25519);
    evssh_session_option(s, "IdentitiesOnly", "yes");
    evssh_session_option(s, "IdentityAgent", "none");
    evssh_session_option(s, "KexAlgorithms", kex);
    double t0 = now_s();
    int rc = evssh_session_connect(s);
    double t = now_s() - t0;
    if (rc != EVSSH_OK) {
      fprintf(stderr, "evssh %s: %s\n", kex, evssh_session_error(s));
      evssh_session_free(s);
      return -1;
    }
    evssh_result r;
    evssh_session_exec_wait(s, "true", &r);
    evssh_result_free(&r);
    evssh_session_close(s);
    evssh_session_free(s);
    cpu += self_cpu() - c0;
    if (t * 1e3 < f->best_ms) f->best_ms = t * 1e3;
  }
  f->cpu_ms = cpu / rounds * 1e3;
  return 0;
}

static int ssh_run(const char *ssh, const harness_peer *p, const char *kex, int rounds, figures *f) {
  f->best_ms = 1e9;
  double cpu = 0;
  char port[16], kexopt[200], kh[700];
  snprintf(port, sizeof port, "%d", p->port);
  snprintf(kexopt, sizeof kexopt, "KexAlgorithms=%s", kex);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", p->known_hosts);
  for (int i = 0; i < rounds; i++) {
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
      execl(ssh, ssh, "-F", "/dev/null", "-o", kexopt, "-o", kh, "-o", "GlobalKnownHostsFile=/dev/null", "-o",
            "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i", p->key_ed25519, "-p", port, "-l",
            p->user, "127.0.0.1", "true", (char *)NULL);
      _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "%s %s failed\n", ssh, kex);
      return -1;
    }
    double t = now_s() - t0;
    cpu += cpu_of(&ru);
    if (t * 1e3 < f->best_ms) f->best_ms = t * 1e3;
  }
  f->cpu_ms = cpu / rounds * 1e3;
  return 0;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 20;
  if (rounds < 1) rounds = 20;
  kem_costs();
  harness_require_sshd();
  char root[1024], why[600], sshd[1100], ssh[1100], extra[2600];
  bool ten = harness_openssh10(root, sizeof root, why, sizeof why) == 0;
  harness_peer p;
  const char *kexes[] = {"mlkem768x25519-sha256", "sntrup761x25519-sha512", "curve25519-sha256",
                         "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256"};
  if (ten) {
    snprintf(sshd, sizeof sshd, "%s/usr/sbin/sshd", root);
    snprintf(ssh, sizeof ssh, "%s/usr/bin/ssh", root);
    snprintf(extra, sizeof extra,
             "SshdSessionPath %s/usr/lib/openssh/sshd-session\nSshdAuthPath %s/usr/lib/openssh/sshd-auth\n"
             "KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,curve25519-sha256,ecdh-sha2-nistp256,"
             "diffie-hellman-group14-sha256\n",
             root, root);
    if (harness_sshd_start_bin(&p, sshd, extra) != 0) return 1;
    printf("server: OpenSSH 10 (%s); peer client: its ssh\n", root);
  } else {
    printf("no OpenSSH 10 (%s): system sshd, no mlkem768x25519\n", why);
    snprintf(ssh, sizeof ssh, "/usr/bin/ssh");
    if (harness_sshd_start(&p, "KexAlgorithms sntrup761x25519-sha512,curve25519-sha256,ecdh-sha2-nistp256,"
                               "diffie-hellman-group14-sha256") != 0)
      return 1;
    kexes[0] = NULL;
  }
  printf("%-32s %14s %14s %14s %14s\n", "method (best of N, CPU mean)", "evssh conn ms", "evssh CPU ms",
         "ssh run ms", "ssh CPU ms");
  figures ev[5] = {0}, os[5] = {0};
  for (int i = 0; i < 5; i++) {
    if (!kexes[i]) continue;
    if (evssh_run(&p, kexes[i], rounds, &ev[i]) || ssh_run(ssh, &p, kexes[i], rounds, &os[i])) continue;
    printf("%-32s %14.2f %14.2f %14.2f %14.2f\n", kexes[i], ev[i].best_ms, ev[i].cpu_ms, os[i].best_ms,
           os[i].cpu_ms);
  }
  if (kexes[0] && ev[0].best_ms > 0 && ev[2].best_ms > 0)
    printf("mlkem768x25519 / curve25519 handshake (evssh): %.2fx (aim <= 1.1x)\n", ev[0].best_ms / ev[2].best_ms);
  double ours = ev[1].cpu_ms - ev[2].cpu_ms, theirs = os[1].cpu_ms - os[2].cpu_ms;
  printf("sntrup761 extra client CPU over curve25519: evssh %.2f ms, ssh %.2f ms: %.2fx of ssh's (aim <= 2x)\n",
         ours, theirs, theirs > 0 ? ours / theirs : 0.0);
  printf("sntrup761x25519 client CPU per connection: evssh %.2f ms, ssh %.2f ms: %.2fx\n", ev[1].cpu_ms,
         os[1].cpu_ms, os[1].cpu_ms > 0 ? ev[1].cpu_ms / os[1].cpu_ms : 0.0);
  harness_sshd_stop(&p);
  return 0;
}
