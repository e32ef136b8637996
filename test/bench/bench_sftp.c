/* bench_sftp: whole-file SFTP throughput and client CPU, evssh beside
 * OpenSSH's sftp (batch mode), AsyncSSH and net-sftp, in one run against
 * the same sshd (internal-sftp) started here, cipher aes128-gcm for all.
 * Each client downloads and uploads the same file; figures are MB/s
 * (10^6 bytes per second of the transfer) and client CPU seconds per GiB.
 * Then the same through a 50 ms round trip: this kernel has no netem qdisc,
 * so a relay process of our own on 127.0.0.1 holds every chunk 25 ms in
 * each direction (order kept, no bandwidth limit), and every client goes
 * through it alike. Not a test: it prints figures and ratios, asserts
 * nothing.
 *
 *   bench_sftp [MiB on loopback, default 1024] [MiB at 50 ms, default 1024]
 *              [MiB for net-sftp at 50 ms, default 16]
 *              [runs on loopback, default 3] [runs at 50 ms, default 1]
 *
 * A row "evssh N ch" uploads with evssh_sftp_set_upload_channels(N), N from
 * EVSSH_BENCH_CHANNELS (default 4; 1 drops the row): sshd's 2 MiB window
 * per channel caps one channel's upload at 50 ms; downloads do not use
 * extra channels, so that row has no download figure.
 *
 * EVSSH_BENCH_ONLY=evssh runs our client alone; EVSSH_BENCH_ONLY=fast
 * evssh, evssh N ch and OpenSSH (not the slow AsyncSSH and net-sftp). Timing excludes connecting: evssh, AsyncSSH and net-sftp time the
 * transfer alone; OpenSSH's sftp is timed from start to exit and the same
 * run with an empty batch (connect, authenticate, quit) is subtracted, wall
 * and CPU alike (sftp and its ssh child both count). */
#include "harness.h"

#include "evssh.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define CIPHER "aes128-gcm@openssh.com"

static harness_peer sshd;
static char work[256];
static char srcdir[1024];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

/* ------------------------------------------------------------ relay */

/* One direction of one relayed connection: chunks wait until due. */
typedef struct chunk {
  struct chunk *next;
  double due;
  size_t len, off;
  char data[];
} chunk;

typedef struct pipe_dir {
  int from, to;
  chunk *head, *tail;
  bool eof;
} pipe_dir;

static void relay_conn(int a, int b, double delay) {
  pipe_dir d[2] = {{a, b, NULL, NULL, false}, {b, a, NULL, NULL, false}};
  fcntl(a, F_SETFL, O_NONBLOCK);
  fcntl(b, F_SETFL, O_NONBLOCK);
  int one = 1;
  setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (;;) {
    double now = now_s();
    for (int i = 0; i < 2; i++) {
      while (d[i].head && d[i].head->due <= now) {
        chunk *c = d[i].head;
        ssize_t n = write(d[i].to, c->data + c->off, c->len - c->off);
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) return;
        c->off += (size_t)n;
        if (c->off < c->len) break;
        d[i].head = c->next;
        if (!d[i].head) d[i].tail = NULL;
        free(c);
      }
      if (d[i].eof && !d[i].head) {
        shutdown(d[i].to, SHUT_WR);
        d[i].eof = false;
        d[i].from = -1;
      }
    }
    if (d[0].from < 0 && d[1].from < 0 && !d[0].head && !d[1].head) return;
    struct pollfd p[4];
    int n = 0, idx[4];
    double next = -1;
    for (int i = 0; i < 2; i++) {
      if (d[i].from >= 0 && !d[i].eof) {
        p[n] = (struct pollfd){d[i].from, POLLIN, 0};
        idx[n++] = i;
      }
      if (d[i].head) {
        if (d[i].head->due <= now) {
          p[n] = (struct pollfd){d[i].to, POLLOUT, 0};
          idx[n++] = 2 + i;
        } else if (next < 0 || d[i].head->due < next) {
          next = d[i].head->due;
        }
      }
    }
    int timeout = next < 0 ? -1 : (int)((next - now) * 1000) + 1;
    if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) return;
    for (int k = 0; k < n; k++) {
      if (!p[k].revents || idx[k] >= 2) continue;
      pipe_dir *pd = &d[idx[k]];
      chunk *c = malloc(sizeof *c + 262144);
      ssize_t got = read(pd->from, c->data, 262144);
      if (got <= 0) {
        free(c);
        if (got == 0 || errno != EAGAIN) pd->eof = true;
        continue;
      }
      c->len = (size_t)got;
      c->off = 0;
      c->due = now_s() + delay;
      c->next = NULL;
      if (pd->tail) pd->tail->next = c; else pd->head = c;
      pd->tail = c;
    }
  }
}

/* A relay process: every connection to the returned port goes to
   127.0.0.1:target with each chunk held `delay` seconds each way. */
static pid_t relay_start(int target, double delay, int *port) {
  int lfd = harness_listen_loopback(port);
  if (lfd < 0) {
    perror("relay listen");
    exit(1);
  }
  pid_t pid = fork();
  if (pid) {
    close(lfd);
    return pid;
  }
  signal(SIGCHLD, SIG_IGN);
  for (;;) {
    int c = accept(lfd, NULL, NULL);
    if (c < 0) continue;
    if (fork() == 0) {
      close(lfd);
      int s = socket(AF_INET, SOCK_STREAM, 0);
      struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target)};
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) relay_conn(c, s, delay);
      _exit(0);
    }
    close(c);
  }
}

/* known_hosts lines for another port (clients reach sshd through the relay) */
static void known_hosts_for(int port, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/known_hosts-%d", work, port);
  FILE *in = fopen(sshd.known_hosts, "r"), *o = fopen(out, "w");
  char line[4096];
  while (in && o && fgets(line, sizeof line, in)) {
    char *sp = strchr(line, ' ');
    if (sp) fprintf(o, "[127.0.0.1]:%d%s", port, sp);
  }
  if (in) fclose(in);
  if (o) fclose(o);
}

/* ------------------------------------------------------------ results */

typedef struct figure {
  double wall, cpu;
  bool ok;
} figure;

static void print_row(const char *who, uint64_t bytes, figure down, figure up) {
  double gib = (double)bytes / (1u << 30);
  printf("  %-14s down %8.1f MB/s %6.2f CPU s/GiB   up %8.1f MB/s %6.2f CPU s/GiB\n", who,
         down.ok ? bytes / 1e6 / down.wall : 0, down.ok ? down.cpu / gib : 0, up.ok ? bytes / 1e6 / up.wall : 0,
         up.ok ? up.cpu / gib : 0);
  fflush(stdout);
}

/* ------------------------------------------------------------ evssh */

static figure ev_transfer(int port, const char *kh, bool down, const char *src, const char *dst, unsigned channels) {
  char p[32], k[700], id[700];
  snprintf(p, sizeof p, "Port=%d", port);
  snprintf(k, sizeof k, "UserKnownHostsFile=%s", kh);
  snprintf(id, sizeof id, "IdentityFile=%s", sshd.key_ed25519);
  const char *opts[] = {p, k, id, "Ciphers=" CIPHER, "GlobalKnownHostsFile=none", "IdentityAgent=none",
                        "IdentitiesOnly=yes", "ConfigFile=none", NULL};
  figure f = {0, 0, false};
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", sshd.user, opts, &err);
  if (!s) {
    fprintf(stderr, "evssh connect: %s\n", err.message);
    return f;
  }
  evssh_sftp *sftp = evssh_sftp_start(s, &err);
  if (!sftp) {
    fprintf(stderr, "evssh sftp: %s\n", err.message);
    evssh_session_free(s);
    return f;
  }
  if (channels > 1 && evssh_sftp_set_upload_channels(sftp, channels)) fprintf(stderr, "evssh: bad channel count\n");
  double t0 = now_s(), c0 = cpu_self();
  int rc = down ? evssh_sftp_download_wait(sftp, src, dst) : evssh_sftp_upload_wait(sftp, src, dst);
  f.wall = now_s() - t0;
  f.cpu = cpu_self() - c0;
  f.ok = rc == 0;
  if (rc) fprintf(stderr, "evssh transfer: %s\n", evssh_sftp_error(sftp));
  evssh_sftp_free(sftp);
  evssh_session_close(s);
  evssh_session_free(s);
  return f;
}

/* ------------------------------------------------------------ peers */

/* Runs argv; wall and CPU of it and its children; stdout into out. */
static int run(char *const argv[], double *wall, double *cpu, char *out, size_t outlen) {
  int fds[2];
  if (pipe(fds)) return -1;
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  size_t used = 0;
  ssize_t n;
  while ((n = read(fds[0], out + used, outlen - 1 - used)) > 0) used += (size_t)n;
  out[used] = 0;
  close(fds[0]);
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  *wall = now_s() - t0;
  *cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static figure openssh_batch(int port, const char *kh, const char *batch_line) {
  char batch[600], p[16], khopt[800], idopt[700];
  snprintf(batch, sizeof batch, "%s/batch-%d", work, (int)getpid());
  FILE *b = fopen(batch, "w");
  fputs(batch_line, b);
  fclose(b);
  snprintf(p, sizeof p, "%d", port);
  snprintf(khopt, sizeof khopt, "UserKnownHostsFile=%s", kh);
  snprintf(idopt, sizeof idopt, "%s", sshd.key_ed25519);
  char user_host[128];
  snprintf(user_host, sizeof user_host, "%s@127.0.0.1", sshd.user);
  char *argv[] = {"/usr/bin/sftp", "-q", "-b", batch, "-P", p, "-i", idopt, "-o", khopt,
                  "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "Ciphers=" CIPHER,
                  "-o", "BatchMode=yes", "-F", "/dev/null", user_host, NULL};
  figure f = {0, 0, false};
  char out[4096];
  f.ok = run(argv, &f.wall, &f.cpu, out, sizeof out) == 0;
  unlink(batch);
  return f;
}

static figure openssh_transfer(int port, const char *kh, bool down, const char *src, const char *dst) {
  figure empty = openssh_batch(port, kh, "pwd\n");
  char line[1200];
  snprintf(line, sizeof line, "%s %s %s\n", down ? "get" : "put", src, dst);
  figure f = openssh_batch(port, kh, line);
  f.wall -= empty.wall;
  f.cpu -= empty.cpu;
  f.ok = f.ok && empty.ok;
  return f;
}

static figure script_transfer(const char *interp, const char *script, const char *cipher, int port,
                              const char *kh, bool down, const char *src, const char *dst) {
  char path[1200], p[16];
  snprintf(path, sizeof path, "%s/test/bench/%s", srcdir, script);
  snprintf(p, sizeof p, "%d", port);
  char *argv[] = {(char *)interp, path, "127.0.0.1", p, sshd.user, sshd.key_ed25519, (char *)kh, (char *)cipher,
                  down ? "down" : "up", (char *)src, (char *)dst, NULL};
  figure f = {0, 0, false};
  double wall, cpu;
  char out[4096];
  int rc = run(argv, &wall, &cpu, out, sizeof out);
  f.ok = rc == 0 && sscanf(out, "%lf %lf", &f.wall, &f.cpu) == 2;
  if (!f.ok) fprintf(stderr, "%s failed (%d): %s\n", script, rc, out);
  return f;
}

/* ------------------------------------------------------------ a round */

#define CLIENTS 5
#define EV_CH 4 /* the "evssh N ch" row */

typedef struct round_result {
  figure down[CLIENTS], up[CLIENTS];
  uint64_t bytes[CLIENTS];
} round_result;

static const char *names[CLIENTS] = {"evssh", "OpenSSH sftp", "AsyncSSH", "net-sftp", "evssh N ch"};

static unsigned bench_channels(void) {
  const char *v = getenv("EVSSH_BENCH_CHANNELS");
  unsigned n = v && *v ? (unsigned)atoi(v) : 4;
  return n < 1 ? 1 : n > EVSSH_SFTP_MAX_UPLOAD_CHANNELS ? EVSSH_SFTP_MAX_UPLOAD_CHANNELS : n;
}

static void make_file(const char *path, uint64_t size) {
  char cmd[2600];
  snprintf(cmd, sizeof cmd, "head -c %llu /dev/urandom > '%s' && chmod 644 '%s'", (unsigned long long)size, path,
           path);
  if (system(cmd)) {
    fprintf(stderr, "cannot make %s\n", path);
    exit(1);
  }
}

static bool same_file(const char *a, const char *b) {
  char cmd[2600];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

/* one client, one direction, checked against the source */
static figure transfer_once(int c, int port, const char *kh, bool down, const char *from, const char *to) {
  figure f;
  unlink(to);
  switch (c) {
  case 0:
    f = ev_transfer(port, kh, down, from, to, 1);
    break;
  case EV_CH:
    f = ev_transfer(port, kh, down, from, to, bench_channels());
    break;
  case 1:
    f = openssh_transfer(port, kh, down, from, to);
    break;
  case 2:
    f = script_transfer("/usr/bin/python3", "bench_sftp.py", CIPHER, port, kh, down, from, to);
    break;
  default:
    /* net-ssh 7.0.1 has no AES-GCM: its fastest AES, aes128-ctr + its default MAC */
    f = script_transfer("/usr/bin/ruby", "bench_sftp.rb", "aes128-ctr", port, kh, down, from, to);
    break;
  }
  if (f.ok && !same_file(from, to)) {
    fprintf(stderr, "%s: %s copy differs\n", names[c], down ? "downloaded" : "uploaded");
    f.ok = false;
  }
  unlink(to);
  return f;
}

/* the best of the runs: least wall time; CPU the least seen (contention on
   a shared machine only ever adds to either) */
static void keep_best(figure *best, figure f) {
  if (!f.ok) return;
  if (!best->ok) {
    *best = f;
    return;
  }
  if (f.wall < best->wall) best->wall = f.wall;
  if (f.cpu < best->cpu) best->cpu = f.cpu;
}

/* evssh and OpenSSH run `reps` times each, alternating, so load that comes
   and goes on a shared machine falls on both; the slow peers run once */
static void round_run(const char *title, int port, uint64_t size, uint64_t small_size, bool small_for_ruby,
                      int reps, round_result *r) {
  char kh[600];
  known_hosts_for(port, kh, sizeof kh);
  char src[600], small[600], to[600];
  snprintf(src, sizeof src, "%s/src", work);
  snprintf(small, sizeof small, "%s/src-small", work);
  snprintf(to, sizeof to, "%s/copy", work);
  printf("%s (evssh and OpenSSH: best of %d, alternating)\n", title, reps);
  /* EVSSH_BENCH_ONLY=evssh: our client alone (quick looks at one change);
     =fast: without the slow peers */
  const char *only = getenv("EVSSH_BENCH_ONLY");
  bool want[CLIENTS] = {true, true, true, true, bench_channels() > 1};
  if (only && !strcmp(only, "evssh")) want[1] = want[2] = want[3] = want[EV_CH] = false;
  if (only && !strcmp(only, "fast")) want[2] = want[3] = false;
  memset(r, 0, sizeof *r);
  /* the fast clients alternate, so load that comes and goes falls on all */
  const int fast[] = {0, EV_CH, 1};
  for (int rep = 0; rep < reps; rep++) {
    for (int i = 0; i < 3; i++) {
      int c = fast[i];
      if (!want[c]) continue;
      if (c != EV_CH) keep_best(&r->down[c], transfer_once(c, port, kh, true, src, to));
      keep_best(&r->up[c], transfer_once(c, port, kh, false, src, to));
    }
  }
  for (int c = 2; c < 4; c++) {
    if (!want[c]) continue;
    const char *from = small_for_ruby && c == 3 ? small : src;
    r->down[c] = transfer_once(c, port, kh, true, from, to);
    r->up[c] = transfer_once(c, port, kh, false, from, to);
  }
  for (int c = 0; c < CLIENTS; c++) {
    if (!want[c]) continue;
    bool use_small = small_for_ruby && c == 3;
    r->bytes[c] = use_small ? small_size : size;
    char who[64];
    if (c == EV_CH) snprintf(who, sizeof who, "evssh %u ch", bench_channels());
    else snprintf(who, sizeof who, "%s%s", names[c], use_small ? "*" : "");
    print_row(who, r->bytes[c], r->down[c], r->up[c]);
  }
  if (want[EV_CH]) printf("  (evssh %u ch: uploads only; downloads use one channel)\n", bench_channels());
  if (want[3]) printf("  (net-sftp with aes128-ctr: net-ssh 7.0.1 has no AES-GCM)\n");
  if (small_for_ruby && want[3]) printf("  * net-sftp moved %llu MiB here (at its speed the full size takes too long)\n",
                             (unsigned long long)(small_size >> 20));
}

static double rate(const round_result *r, int c, bool down) {
  const figure *f = down ? &r->down[c] : &r->up[c];
  return f->ok && f->wall > 0 ? r->bytes[c] / f->wall : 0;
}

static double cpu_per_gib(const round_result *r, int c, bool down) {
  const figure *f = down ? &r->down[c] : &r->up[c];
  return f->ok ? f->cpu / ((double)r->bytes[c] / (1u << 30)) : 0;
}

static void ratios(const char *title, const round_result *r) {
  for (int dir = 0; dir < 2; dir++) {
    bool down = dir == 0;
    double ev = rate(r, 0, down), os = rate(r, 1, down);
    double best = 0;
    for (int c = 1; c < 4; c++) best = rate(r, c, down) > best ? rate(r, c, down) : best;
    printf("  %s %-4s evssh/OpenSSH %.2fx, evssh/best peer %.2fx, CPU evssh/OpenSSH %.2fx\n", title,
           down ? "down" : "up", os > 0 ? ev / os : 0, best > 0 ? ev / best : 0,
           cpu_per_gib(r, 1, down) > 0 ? cpu_per_gib(r, 0, down) / cpu_per_gib(r, 1, down) : 0);
  }
  double ch = rate(r, EV_CH, false), os = rate(r, 1, false);
  if (ch > 0)
    printf("  %s up   evssh %u ch/OpenSSH %.2fx, CPU evssh %u ch/OpenSSH %.2fx\n", title, bench_channels(),
           os > 0 ? ch / os : 0, bench_channels(),
           cpu_per_gib(r, 1, false) > 0 ? cpu_per_gib(r, EV_CH, false) / cpu_per_gib(r, 1, false) : 0);
}

int main(int argc, char **argv) {
  uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 10) : 1024) << 20;
  uint64_t rtt_size = (argc > 2 ? strtoull(argv[2], NULL, 10) : 1024) << 20;
  uint64_t ruby_rtt_size = (argc > 3 ? strtoull(argv[3], NULL, 10) : 16) << 20;
  int reps = argc > 4 ? atoi(argv[4]) : 3, rtt_reps = argc > 5 ? atoi(argv[5]) : 1;
  if (reps < 1) reps = 1;
  if (rtt_reps < 1) rtt_reps = 1;
  const char *sd = getenv("EVSSH_SRCDIR");
  snprintf(srcdir, sizeof srcdir, "%s", sd && *sd ? sd : ".");
  harness_require_sshd();
  if (harness_sshd_start(&sshd, NULL)) return 1;
  snprintf(work, sizeof work, "/tmp/evssh-bench-sftp-XXXXXX");
  if (!mkdtemp(work)) return 1;
  chmod(work, 0777);
  char src[600], small[600];
  snprintf(src, sizeof src, "%s/src", work);
  snprintf(small, sizeof small, "%s/src-small", work);

  printf("bench_sftp: sshd internal-sftp on 127.0.0.1, cipher %s, user %s\n", CIPHER, sshd.user);
  make_file(src, size ? size : rtt_size);
  make_file(small, ruby_rtt_size);
  round_result lo, far;
  char title[128];
  if (size) {
    snprintf(title, sizeof title, "loopback, %llu MiB each way:", (unsigned long long)(size >> 20));
    round_run(title, sshd.port, size, size, false, reps, &lo);
    ratios("loopback", &lo);
  }

  if (rtt_size) {
    if (size && rtt_size != size) make_file(src, rtt_size);
    int rport;
    pid_t relay = relay_start(sshd.port, 0.025, &rport);
    snprintf(title, sizeof title, "50 ms RTT (userspace relay, 25 ms each way), %llu MiB each way:",
             (unsigned long long)(rtt_size >> 20));
    round_run(title, rport, rtt_size, ruby_rtt_size, true, rtt_reps, &far);
    ratios("50ms", &far);
    kill(relay, SIGKILL);
    waitpid(relay, NULL, 0);
  }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", work);
  harness_sshd_stop(&sshd);
  return 0;
}
