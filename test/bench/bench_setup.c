/* bench_setup: the cost of one connection's set-up, for profiling. Starts a
 * harness sshd (OpenSSH 10 from the harness cache when it can be had, so
 * the post-quantum methods are there; else the system's), runs one warm-up
 * session (OpenSSL's one-time algorithm fetches and the library's first
 * allocations stay out of the figure), then SESSIONS sessions each doing
 * connect + exec "echo ok" + close with KEX, one after another, and prints
 * their client CPU (getrusage). Under callgrind only those sessions are
 * instrumented (CALLGRIND_START/STOP_INSTRUMENTATION), so
 *
 *   valgrind --tool=callgrind --instr-atstart=no test/bench/bench_setup KEX 1
 *
 * profiles exactly one warm session; test/bench/profile_setup.sh runs that
 * for each method and prints the breakdown table of docs/performance.md.
 * With a third argument "shared" the sessions share one evssh_cache.
 * Not a test: it prints figures and asserts nothing. */
#include "harness.h"

#include "evssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

static double user_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

static double sys_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long minflt(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static int one_session(const harness_peer *p, const char *kex, evssh_cache *cache) {
  char port[16];
  snprintf(port, sizeof port, "%d", p->port);
  evssh_session *s = evssh_session_new("127.0.0.1");
  if (!s) return -1;
  if (cache) evssh_session_set_cache(s, cache);
  evssh_session_read_config(s, "none");
  evssh_session_option(s, "Port", port);
  evssh_session_option(s, "User", p->user);
  evssh_session_option(s, "UserKnownHostsFile", p->known_hosts);
  evssh_session_option(s, "GlobalKnownHostsFile", "none");
  evssh_session_option(s, "IdentityFile", p->key_ed25519);
  evssh_session_option(s, "IdentitiesOnly", "yes");
  evssh_session_option(s, "IdentityAgent", "none");
  evssh_session_option(s, "KexAlgorithms", kex);
  int rc = evssh_session_connect(s);
  if (rc != EVSSH_OK) {
    fprintf(stderr, "connect %s: %s\n", kex, evssh_session_error(s));
    evssh_session_free(s);
    return -1;
  }
  evssh_result r;
  rc = evssh_session_exec_wait(s, "echo ok", &r);
  if (rc != EVSSH_OK || r.out_len != 3) fprintf(stderr, "exec %s: %s\n", kex, evssh_strerror(rc));
  evssh_result_free(&r);
  evssh_session_close(s);
  evssh_session_free(s);
  return 0;
}

int main(int argc, char **argv) {
  const char *kex = argc > 1 ? argv[1] : "curve25519-sha256";
  int n = argc > 2 ? atoi(argv[2]) : 1;
  bool shared = argc > 3 && strcmp(argv[3], "shared") == 0;
  if (n < 1) n = 1;
  harness_require_sshd();
  char root[1024], why[600], sshd[1100], extra[2600];
  harness_peer p;
  if (harness_openssh10(root, sizeof root, why, sizeof why) == 0) {
    snprintf(sshd, sizeof sshd, "%s/usr/sbin/sshd", root);
    snprintf(extra, sizeof extra,
             "SshdSessionPath %s/usr/lib/openssh/sshd-session\nSshdAuthPath %s/usr/lib/openssh/sshd-auth\n"
             "KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,curve25519-sha256\n",
             root, root);
    if (harness_sshd_start_bin(&p, sshd, extra) != 0) return 1;
    printf("server: OpenSSH 10\n");
  } else {
    printf("server: system sshd (%s)\n", why);
    if (harness_sshd_start(&p, "KexAlgorithms sntrup761x25519-sha512,curve25519-sha256\n") != 0) return 1;
  }
  evssh_cache *cache = shared ? evssh_cache_new() : NULL;
  if (one_session(&p, kex, cache) != 0) {
    harness_sshd_stop(&p);
    return 1;
  }
  double u0 = user_s(), s0 = sys_s();
  long f0 = minflt();
  CALLGRIND_START_INSTRUMENTATION;
  for (int i = 0; i < n; i++) one_session(&p, kex, cache);
  CALLGRIND_STOP_INSTRUMENTATION;
  double u1 = user_s(), s1 = sys_s();
  long f1 = minflt();
  /* user and kernel apart: the kernel's share (TCP connect, poll, the
     socket writes) is no instruction of ours but is paid all the same */
  printf("%s: %d session(s) connect + exec \"echo ok\" + close: %.3f ms client CPU per session "
         "(user %.3f, sys %.3f), %.1f minor page faults per session%s\n",
         kex, n, (u1 - u0 + s1 - s0) * 1e3 / n, (u1 - u0) * 1e3 / n, (s1 - s0) * 1e3 / n,
         (double)(f1 - f0) / n, shared ? " (shared cache)" : "");
  evssh_cache_free(cache);
  harness_sshd_stop(&p);
  return 0;
}
