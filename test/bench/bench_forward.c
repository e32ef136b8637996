/* bench_forward: a local forward (ssh -L) of evssh beside OpenSSH's `ssh -L`
 * and Net::SSH's forward.local, in one run against the same sshd started
 * here, each forwarder its own process. Not a test: it prints figures and
 * ratios and asserts nothing.
 *
 *   bench_forward [MiB per throughput run, default 1024] [MiB for the slow
 *                 consumer, default 1024] [consumer MB/s, default 10]
 *
 * Throughput: a plain TCP source/sink here; the bench pushes the MiB up
 * through the forward into a sink, then pulls them down from a source, and
 * reports MB/s each way. Memory: the source pushes the MiB down to a reader
 * that takes only the given MB/s; the forwarder's peak RSS (VmHWM) is read
 * from /proc after that run, before the throughput runs. Aims (reported,
 * never asserted): evssh at least 1.2x ssh -L, peak RSS at most 16 MB
 * whatever the size. Net::SSH is skipped when ruby or net-ssh is missing. */
#include "harness.h"

#include "evssh.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static harness_peer sshd;
static int target_fd, target_port;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ----------------------------------------------- the source/sink target */

static void write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

static bool read_exact(int fd, void *p, size_t n) {
  char *c = p;
  while (n) {
    ssize_t r = recv(fd, c, n, 0);
    if (r <= 0) return false;
    c += r;
    n -= (size_t)r;
  }
  return true;
}

/* 'U' + 8 bytes: sink that many, then the count back (no half-close: Net::SSH
   has none); 'D' + 8 bytes: send that many */
static void *serve(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[CHUNK];
  char cmd;
  if (read_exact(fd, &cmd, 1)) {
    if (cmd == 'U') {
      uint64_t want = 0, n = 0;
      ssize_t r;
      if (read_exact(fd, &want, sizeof want))
        while (n < want && (r = recv(fd, buf, sizeof buf, 0)) > 0) n += (uint64_t)r;
      write_all(fd, &n, sizeof n);
    } else if (cmd == 'D') {
      uint64_t n;
      char local[CHUNK];
      memset(local, 'd', sizeof local);
      if (read_exact(fd, &n, sizeof n))
        while (n) {
          size_t k = n < sizeof local ? (size_t)n : sizeof local;
          ssize_t w = send(fd, local, k, MSG_NOSIGNAL);
          if (w <= 0) break;
          n -= (uint64_t)w;
        }
    }
  }
  close(fd);
  return NULL;
}

static void *target_main(void *arg) {
  for (;;) {
    int fd = accept(target_fd, NULL, NULL);
    if (fd < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
    pthread_detach(t);
  }
  return NULL;
}

/* ----------------------------------------------------------- clients */

static int connect_port(int port) {
  for (int i = 0; i < 200; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return fd;
    close(fd);
    usleep(50000);   /* the forwarder may still be starting */
  }
  return -1;
}

static double push_up(int port, uint64_t bytes) {
  int fd = connect_port(port);
  if (fd < 0) return -1;
  static char buf[CHUNK];
  memset(buf, 'u', sizeof buf);
  double t0 = now_s();
  write_all(fd, "U", 1);
  write_all(fd, &bytes, sizeof bytes);
  for (uint64_t left = bytes; left;) {
    size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
    ssize_t w = send(fd, buf, k, MSG_NOSIGNAL);
    if (w <= 0) { close(fd); return -1; }
    left -= (uint64_t)w;
  }
  uint64_t got = 0;
  bool ok = read_exact(fd, &got, sizeof got) && got == bytes;
  double t = now_s() - t0;
  close(fd);
  return ok ? (double)bytes / 1e6 / t : -1;
}

/* rate 0: as fast as it comes */
static double pull_down(int port, uint64_t bytes, double rate_mb) {
  int fd = connect_port(port);
  if (fd < 0) return -1;
  static char buf[CHUNK];
  double t0 = now_s();
  write_all(fd, "D", 1);
  write_all(fd, &bytes, sizeof bytes);
  uint64_t got = 0;
  size_t want = rate_mb > 0 ? 64 * 1024 : sizeof buf;
  for (;;) {
    ssize_t r = recv(fd, buf, want, 0);
    if (r <= 0) break;
    got += (uint64_t)r;
    if (rate_mb > 0) {
      double due = t0 + (double)got / (rate_mb * 1e6);
      double now = now_s();
      if (due > now) usleep((useconds_t)((due - now) * 1e6));
    }
  }
  double t = now_s() - t0;
  close(fd);
  return got == bytes ? (double)bytes / 1e6 / t : -1;
}

/* --------------------------------------------------------- forwarders */

typedef struct forwarder {
  const char *name;
  pid_t pid;
  int port;
  long peak_kib;
  double up, down;
} forwarder;

/* evssh: a process of its own that forwards until killed */
static pid_t start_evssh(int port) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  char p[32], kh[700], key[700];
  snprintf(p, sizeof p, "Port=%d", sshd.port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", sshd.known_hosts);
  snprintf(key, sizeof key, "IdentityFile=%s", sshd.key_ed25519);
  const char *opts[] = {p, kh, key, "GlobalKnownHostsFile=none", "IdentityAgent=none", "IdentitiesOnly=yes",
                        "ConfigFile=none", NULL};
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", sshd.user, opts, &err);
  if (!s) {
    fprintf(stderr, "evssh: %s\n", err.message);
    _exit(1);
  }
  if (evssh_forward_local(s, NULL, port, "127.0.0.1", target_port, NULL) != EVSSH_OK) {
    fprintf(stderr, "evssh: %s\n", evssh_session_error(s));
    _exit(1);
  }
  while (evssh_session_process(s, -1, NULL, NULL) > 0) {
  }
  _exit(0);
}

static pid_t spawn(char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "r", stdin);
    execvp(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static pid_t start_ssh(int port) {
  char l[64], p[16], kh[700];
  snprintf(l, sizeof l, "%d:127.0.0.1:%d", port, target_port);
  snprintf(p, sizeof p, "%d", sshd.port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", sshd.known_hosts);
  char *argv[] = {"ssh", "-N", "-F", "/dev/null", "-o", kh, "-o", "GlobalKnownHostsFile=/dev/null", "-o",
                  "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", sshd.key_ed25519, "-p", p, "-L", l, "-l",
                  sshd.user, "127.0.0.1", NULL};
  return spawn(argv);
}

static pid_t start_netssh(int port) {
  if (system("ruby -e 'require \"net/ssh\"' >/dev/null 2>&1") != 0) return -1;
  char script[2048];
  snprintf(script, sizeof script,
           "require 'net/ssh'\n"
           "Net::SSH.start('127.0.0.1', '%s', port: %d, keys: ['%s'], keys_only: true,\n"
           "  verify_host_key: :never, non_interactive: true) do |ssh|\n"
           "  ssh.forward.local(%d, '127.0.0.1', %d)\n"
           "  ssh.loop(0.1) { true }\n"
           "end\n",
           sshd.user, sshd.port, sshd.key_ed25519, port, target_port);
  char *argv[] = {"ruby", "-e", script, NULL};
  return spawn(argv);
}

static long peak_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long v = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) v = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return v;
}

int main(int argc, char **argv) {
  uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
  uint64_t slow_mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024;
  double rate = argc > 3 ? atof(argv[3]) : 10;
  signal(SIGPIPE, SIG_IGN);
  harness_require_sshd();
  if (harness_sshd_start(&sshd, NULL) != 0) return 1;
  target_fd = harness_listen_loopback(&target_port);
  /* the forwarders start before any thread exists here (fork) */
  forwarder f[3] = {{"evssh", 0, 0, 0, 0, 0}, {"ssh -L", 0, 0, 0, 0, 0}, {"Net::SSH forward.local", 0, 0, 0, 0, 0}};
  for (int i = 0; i < 3; i++) f[i].port = harness_free_port();
  f[0].pid = start_evssh(f[0].port);
  f[1].pid = start_ssh(f[1].port);
  f[2].pid = start_netssh(f[2].port);
  pthread_t t;
  pthread_create(&t, NULL, target_main, NULL);
  printf("bench_forward: %llu MiB each way per forwarder; %llu MiB into a %.0f MB/s reader; sshd %s\n",
         (unsigned long long)mib, (unsigned long long)slow_mib, rate, "OpenSSH (harness)");
  fflush(stdout);
  for (int i = 0; i < 3; i++) {
    if (f[i].pid <= 0) {
      printf("%-24s skipped (not available)\n", f[i].name);
      continue;
    }
    double slow = pull_down(f[i].port, slow_mib << 20, rate);
    f[i].peak_kib = peak_kib(f[i].pid);
    f[i].up = push_up(f[i].port, mib << 20);
    f[i].down = pull_down(f[i].port, mib << 20, 0);
    printf("%-24s up %7.1f MB/s  down %7.1f MB/s  peak RSS %6.1f MB (slow reader got %.1f MB/s)\n", f[i].name, f[i].up,
           f[i].down, (double)f[i].peak_kib / 1024.0, slow);
    fflush(stdout);
  }
  if (f[1].up > 0 && f[0].up > 0)
    printf("evssh / ssh -L: up %.2fx, down %.2fx (aim >= 1.2x); peak RSS %.1f MB vs %.1f MB (aim <= 16 MB)\n",
           f[0].up / f[1].up, f[0].down / f[1].down, f[0].peak_kib / 1024.0, f[1].peak_kib / 1024.0);
  if (f[2].up > 0 && f[0].up > 0)
    printf("evssh / Net::SSH: up %.2fx, down %.2fx; peak RSS %.1f MB vs %.1f MB\n", f[0].up / f[2].up,
           f[0].down / f[2].down, f[0].peak_kib / 1024.0, f[2].peak_kib / 1024.0);
  for (int i = 0; i < 3; i++)
    if (f[i].pid > 0) {
      kill(f[i].pid, SIGTERM);
      waitpid(f[i].pid, NULL, 0);
    }
  harness_sshd_stop(&sshd);
  return 0;
}
