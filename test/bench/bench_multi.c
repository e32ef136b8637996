/* bench_multi: N sessions (default 200) to one harness sshd on 127.0.0.1,
 * each connecting, authenticating with an ed25519 key, running `echo ok` and
 * closing, by evssh (one evssh_multi in one thread) and, in the same run
 * against the same sshd, by Net::SSH::Multi (Debian ruby-net-ssh-multi),
 * AsyncSSH with asyncio.gather (python3-asyncssh) and pssh (parallel-ssh,
 * one ssh process per host). Each client runs as a child process; reported
 * per client: wall time, the client's CPU time (user+sys of the process and
 * every descendant it waited for, from wait4), its peak RSS, the sshd's CPU
 * time over the same interval (listener plus every per-connection process
 * and shell it reaped, from /proc/<pid>/stat utime+stime+cutime+cstime; on
 * a 2-core machine that is the floor for wall time), how many "ok" lines
 * came back, and how busy all cores of the machine were meanwhile (near
 * 100% means the run was CPU-bound; anything else on the machine counts),
 * and the client's CPU per session split into user and system time. Then
 * the RSS growth per idle connected evssh session.
 *
 *   bench_multi [N] [clients...]
 *   clients: evssh netssh asyncssh pssh evssh-paced[W] evssh-nocache idle
 *   (evssh-nocache: the sessions do not share the multi's evssh_cache)
 *   (evssh-paced: at most W, default 32, handshakes in flight at a time)
 *   BENCH_KEX=m1,m2,...: run every client once per key exchange method
 *   (default curve25519-sha256); a peer without the method is shown n/a.
 *   The sshd is OpenSSH 10 from the harness cache when it can be had (it
 *   speaks mlkem768x25519-sha256), else the system's.
 * Per client and method: client CPU per session, and the ratio to
 * AsyncSSH's with the same method in the same run.
 *
 * Not a test: it prints figures and fails only when a client is wrong. */
#include "evssh.h"
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static harness_peer peer;
static int nsessions = 200;
static const char *kex_method = "curve25519-sha256";
static char script_dir[600];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime+stime+cutime+cstime of pid, seconds */
static double proc_cpu(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long v[20] = {0};
  /* fields after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     majflt cmajflt utime stime cutime cstime */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &v[0], &v[1], &v[2],
             &v[3]) != 4)
    return -1;
  return (double)(v[0] + v[1] + v[2] + v[3]) / (double)sysconf(_SC_CLK_TCK);
}

/* busy and total jiffies of the whole machine (/proc/stat "cpu" line) */
static void machine_jiffies(unsigned long long *busy, unsigned long long *total) {
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]) != 8) {
    if (f) fclose(f);
    *busy = *total = 0;
    return;
  }
  fclose(f);
  *total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  *busy = *total - v[3] - v[4];   /* minus idle and iowait */
}

/* number of live (non-zombie) children of pid */
static int live_children(pid_t pid) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "ps -o stat= --ppid %d 2>/dev/null | grep -vc '^Z'", (int)pid);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  int n = 0;
  if (fscanf(f, "%d", &n) != 1) n = 0;
  pclose(f);
  return n;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

/* ------------------------------------------------------------ evssh client */

typedef struct ev_job {
  evssh_session *s;
  int status;
  bool done;
  int oks;
} ev_job;

static void ev_out(evssh_channel *ch, evssh_stream st, const char *d, size_t n, void *ud) {
  ev_job *j = ud;
  if (st == EVSSH_STDOUT && n == 3 && memcmp(d, "ok\n", 3) == 0) j->oks++;
}
/* counted as they happen, so the driving loop costs nothing per session
   (as asyncio.gather's does not) */
static int ev_handshaking, ev_finished;
static void job_done(ev_job *j) {
  if (!j->done) ev_finished++;
  j->done = true;
}
/* the session closes as soon as its command is done, as the AsyncSSH
   peer's `async with connect()` does */
static void ev_closed(evssh_channel *ch, void *ud) {
  evssh_session_close_async(evssh_channel_session(ch), NULL, NULL);
  job_done(ud);
}
static void ev_ready(evssh_session *s, int status, void *ud) {
  ev_job *j = ud;
  j->status = status;
  ev_handshaking--;
  if (status) {
    fprintf(stderr, "evssh: %s\n", evssh_session_error(s));
    job_done(j);
    return;
  }
  evssh_channel *ch = evssh_session_exec(s, "echo ok", ev_out, j);
  if (ch) evssh_channel_on_close(ch, ev_closed, j);
  else job_done(j);
}

static evssh_session *ev_session(void) {
  evssh_session *s = evssh_session_new("127.0.0.1");
  char port[16];
  snprintf(port, sizeof port, "%d", peer.port);
  evssh_session_read_config(s, "none");
  evssh_session_option(s, "User", peer.user);
  evssh_session_option(s, "Port", port);
  evssh_session_option(s, "IdentityFile", peer.key_ed25519);
  evssh_session_option(s, "IdentitiesOnly", "yes");
  evssh_session_option(s, "UserKnownHostsFile", peer.known_hosts);
  evssh_session_option(s, "GlobalKnownHostsFile", "/dev/null");
  evssh_session_option(s, "PreferredAuthentications", "publickey");
  evssh_session_option(s, "KexAlgorithms", kex_method);
  return s;
}

/* window 0: every session starts at once. Else at most `window` sessions
   are in their handshake at a time, which keeps sshd's listen queue (128)
   and MaxStartups from dropping SYNs (each drop costs a 1 s retransmit). */
static bool share_cache = true;

static int run_evssh(int window) {
  ev_job *jobs = calloc((size_t)nsessions, sizeof *jobs);
  evssh_multi *m = evssh_multi_new();
  int started = 0;
  ev_handshaking = ev_finished = 0;
  while (ev_finished < nsessions) {
    while (started < nsessions && (window == 0 || ev_handshaking < window)) {
      ev_job *j = &jobs[started++];
      j->status = 1;
      j->s = ev_session();
      /* the multi's cache before the connect, so the first known_hosts
         read (host key ordering) is shared too */
      evssh_session_set_cache(j->s, share_cache ? evssh_multi_cache(m) : NULL);
      evssh_session_connect_async(j->s, ev_ready, j);
      evssh_multi_add(m, j->s);
      if (!share_cache) evssh_session_set_cache(j->s, NULL);
      ev_handshaking++;
    }
    if (ev_finished == nsessions) break;
    if (evssh_multi_process(m, -1, NULL, NULL) < 0) break;
  }
  int oks = 0;
  for (int i = 0; i < nsessions; i++) {
    oks += jobs[i].oks;
    evssh_multi_remove(m, jobs[i].s);
    evssh_session_close(jobs[i].s);
    evssh_session_free(jobs[i].s);
  }
  evssh_multi_free(m);
  free(jobs);
  printf("ok-lines %d\n", oks);
  return 0;
}

/* RSS growth per idle, connected (authenticated) session */
static bool all_ready(evssh_multi *m, void *ud) {
  ev_job *jobs = ud;
  for (int i = 0; i < nsessions; i++)
    if (jobs[i].status == 1) return true;
  return false;
}
static void idle_ready(evssh_session *s, int status, void *ud) {
  ((ev_job *)ud)->status = status;
  if (status) fprintf(stderr, "idle: %s\n", evssh_session_error(s));
}

/* Ping-pong of one byte through `cat` on one session of a multi: the cost
   of an iteration, first alone, then beside the idle sessions. */
typedef struct pingpong {
  evssh_channel *ch;
  int left;
  bool open;
} pingpong;

static void pp_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  pingpong *p = ud;
  if (--p->left > 0) evssh_channel_send_data(ch, "x", 1);
}
static void pp_open(evssh_channel *ch, void *ud) {
  pingpong *p = ud;
  p->open = true;
  evssh_channel_on_data(ch, pp_data, p);
  evssh_channel_exec(ch, "cat", NULL, NULL);
  evssh_channel_send_data(ch, "x", 1);
}
static bool pp_running(evssh_multi *m, void *ud) { return ((pingpong *)ud)->left > 0; }

static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void pingpong_run(evssh_multi *m, evssh_session *s, const char *label, int rounds) {
  pingpong p = {NULL, rounds, false};
  p.ch = evssh_session_open_channel(s, pp_open, &p);
  double c0 = cpu_self(), t0 = now_s();
  evssh_multi_loop(m, -1, pp_running, &p);
  double c1 = cpu_self(), t1 = now_s();
  printf("ping-pong %s: %.1f us wall, %.1f us client CPU per round trip\n", label, (t1 - t0) * 1e6 / rounds,
         (c1 - c0) * 1e6 / rounds);
  evssh_channel_close(p.ch);
  evssh_multi_loop(m, 100, NULL, NULL);
}

static int run_idle(void) {
  /* one session first, so library and OpenSSL set-up is in the baseline */
  evssh_session *first = ev_session();
  if (evssh_session_connect(first) != EVSSH_OK) return 1;
  long before = rss_kib();
  ev_job *jobs = calloc((size_t)nsessions, sizeof *jobs);
  evssh_multi *m = evssh_multi_new();
  for (int i = 0; i < nsessions; i++) {
    jobs[i].status = 1;
    jobs[i].s = ev_session();
    evssh_session_connect_async(jobs[i].s, idle_ready, &jobs[i]);
    evssh_multi_add(m, jobs[i].s);
  }
  evssh_multi_loop(m, -1, all_ready, jobs);
  int connected = 0;
  for (int i = 0; i < nsessions; i++) connected += jobs[i].status == 0;
  /* settle: let every session finish what the server sent after auth */
  for (int k = 0; k < 5; k++) evssh_multi_process(m, 20, NULL, NULL);
  long after = rss_kib();
  printf("idle %d connected sessions: RSS %ld KiB -> %ld KiB, %.1f KiB per session\n", connected, before, after,
         connected ? (double)(after - before) / connected : 0.0);
  evssh_multi *alone = evssh_multi_new();
  evssh_multi_add(alone, first);
  pingpong_run(alone, first, "in a multi of 1 session", 2000);
  evssh_multi_remove(alone, first);
  evssh_multi_free(alone);
  evssh_multi_add(m, first);
  char label[64];
  snprintf(label, sizeof label, "beside %d idle sessions", connected);
  pingpong_run(m, first, label, 2000);
  evssh_multi_remove(m, first);
  for (int i = 0; i < nsessions; i++) {
    evssh_multi_remove(m, jobs[i].s);
    evssh_session_free(jobs[i].s);
  }
  evssh_session_free(first);
  evssh_multi_free(m);
  free(jobs);
  return connected == nsessions ? 0 : 1;
}

/* ------------------------------------------------------------------ peers */

static char hostfile[700];

static void exec_peer(const char *name) {
  char port[16], n[16];
  snprintf(port, sizeof port, "%d", peer.port);
  snprintf(n, sizeof n, "%d", nsessions);
  char script[700];
  if (strcmp(name, "netssh") == 0) {
    snprintf(script, sizeof script, "%s/bench_multi.rb", script_dir);
    execl("/usr/bin/ruby", "ruby", script, "127.0.0.1", port, peer.user, peer.key_ed25519, peer.known_hosts, n,
          kex_method, (char *)NULL);
  } else if (strcmp(name, "asyncssh") == 0) {
    snprintf(script, sizeof script, "%s/bench_multi.py", script_dir);
    execl("/usr/bin/python3", "python3", script, "127.0.0.1", port, peer.user, peer.key_ed25519,
          peer.known_hosts, n, kex_method, (char *)NULL);
  } else if (strcmp(name, "pssh") == 0) {
    char q[300];
    snprintf(q, sizeof q, "ssh -Q kex | grep -qx '%s'", kex_method);
    if (system(q) != 0) {
      printf("kex-unsupported\n");
      fflush(stdout);
      _exit(0);
    }
    char kh[700], id[700];
    snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", peer.known_hosts);
    snprintf(id, sizeof id, "IdentityFile=%s", peer.key_ed25519);
    char kexopt[200];
    snprintf(kexopt, sizeof kexopt, "KexAlgorithms=%s", kex_method);
    execl("/usr/bin/parallel-ssh", "parallel-ssh", "-i", "-h", hostfile, "-p", n, "-t", "120", "-l", peer.user,
          "-x", "-F /dev/null", "-O", kh, "-O", id, "-O", "IdentitiesOnly=yes", "-O",
          "GlobalKnownHostsFile=/dev/null", "-O", "BatchMode=yes", "-O", kexopt, "echo ok", (char *)NULL);
  }
  _exit(127);
}

typedef struct result {
  const char *name;
  const char *kex;
  double wall, cpu, sshd_cpu;
  double user, sys;          /* the client's CPU split */
  double machine_busy;       /* share of all cores busy during the run */
  long rss_kib;
  int oks;
  bool ran;
} result;

static void wait_sshd_idle(void) {
  for (int i = 0; i < 100 && live_children(peer.pid) > 0; i++) usleep(50000);
}

static result run_client(const char *name) {
  result r = {name, kex_method, 0, 0, 0, 0, 0, 0, 0, 0, false};
  wait_sshd_idle();
  int pfd[2];
  if (pipe(pfd) != 0) return r;
  double sshd0 = proc_cpu(peer.pid);
  unsigned long long busy0, total0, busy1, total1;
  machine_jiffies(&busy0, &total0);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    close(pfd[1]);
    if (strncmp(name, "evssh", 5) == 0) {
      share_cache = strcmp(name, "evssh-nocache") != 0;
      int rc = run_evssh(strncmp(name, "evssh-paced", 11) == 0 ? atoi(name + 11) ? atoi(name + 11) : 32 : 0);
      fflush(stdout);
      _exit(rc);
    }
    if (strcmp(name, "idle") == 0) {
      int rc = run_idle();
      fflush(stdout);
      _exit(rc);
    }
    exec_peer(name);
  }
  close(pfd[1]);
  char buf[65536];
  size_t got = 0;
  ssize_t n;
  while ((n = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) {
    got += (size_t)n;
    if (got == sizeof buf - 1) got = 0;   /* only the tail matters */
  }
  buf[got] = 0;
  close(pfd[0]);
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  r.wall = now_s() - t0;
  machine_jiffies(&busy1, &total1);
  r.machine_busy = total1 > total0 ? (double)(busy1 - busy0) / (double)(total1 - total0) : 0;
  wait_sshd_idle();
  r.sshd_cpu = proc_cpu(peer.pid) - sshd0;
  r.user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
  r.sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  r.cpu = r.user + r.sys;
  r.rss_kib = ru.ru_maxrss;
  if (getenv("BENCH_FAULTS")) fprintf(stderr, "%s: minflt %ld majflt %ld nvcsw %ld nivcsw %ld\n", name, ru.ru_minflt, ru.ru_majflt, ru.ru_nvcsw, ru.ru_nivcsw);
  r.ran = true;
  if (strcmp(name, "idle") == 0) {
    printf("%s", buf);
    return r;
  }
  if (strstr(buf, "kex-unsupported")) {
    r.ran = false;   /* the peer lacks the method: n/a */
    return r;
  }
  static char used[16][64];
  static int nused;
  const char *ku = strstr(buf, "kex-used ");
  if (ku) {   /* the peer ran a nearby method instead: show which */
    char *u = used[nused++ % 16];
    snprintf(u, 64, "%.*s", (int)strcspn(ku + 9, "\n"), ku + 9);
    r.kex = u;
  }
  const char *ok = strstr(buf, "ok-lines ");
  if (ok) {
    r.oks = atoi(ok + 9);
  } else {   /* pssh -i: one "ok" line per host */
    for (char *p = buf; (p = strstr(p, "\nok\n")) != NULL; p += 3) r.oks++;
    if (strncmp(buf, "ok\n", 3) == 0) r.oks++;
  }
  return r;
}

int main(int argc, char **argv) {
  if (argc > 1) nsessions = atoi(argv[1]);
  if (nsessions <= 0) nsessions = 200;
  const char *srcdir = getenv("EVSSH_SRCDIR");
  if (srcdir) {
    snprintf(script_dir, sizeof script_dir, "%s/test/bench", srcdir);
  } else {
    snprintf(script_dir, sizeof script_dir, "%s", argv[0]);
    char *slash = strrchr(script_dir, '/');
    if (slash) *slash = 0; else snprintf(script_dir, sizeof script_dir, ".");
  }
  harness_require_sshd();
  char extra[3000], root[1024], why[600], sshd_bin[1100];
  bool ten = harness_openssh10(root, sizeof root, why, sizeof why) == 0;
  int used = snprintf(extra, sizeof extra, "MaxStartups %d\nMaxSessions 200\n", nsessions + 50);
  if (ten) {
    snprintf(sshd_bin, sizeof sshd_bin, "%s/usr/sbin/sshd", root);
    snprintf(extra + used, sizeof extra - (size_t)used,
             "SshdSessionPath %s/usr/lib/openssh/sshd-session\nSshdAuthPath %s/usr/lib/openssh/sshd-auth\n"
             "KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,curve25519-sha256,ecdh-sha2-nistp256\n"
             "PerSourcePenalties no\nPerSourceMaxStartups none\n",
             root, root);
    if (harness_sshd_start_bin(&peer, sshd_bin, extra) != 0) return 1;
  } else if (harness_sshd_start(&peer, extra) != 0) {
    return 1;
  }
  /* BENCH_KNOWN_HOSTS=ed25519: every client gets a known_hosts with only
     the ed25519 line, as ssh itself would have written it */
  const char *kh = getenv("BENCH_KNOWN_HOSTS");
  if (kh && strcmp(kh, "ed25519") == 0) {
    char path[600], cmd[1400];
    harness_dir_path(&peer, "known_hosts_ed25519", path, sizeof path);
    snprintf(cmd, sizeof cmd, "grep ' ssh-ed25519 ' '%s' > '%s'", peer.known_hosts, path);
    if (system(cmd) != 0) return 1;
    snprintf(peer.known_hosts, sizeof peer.known_hosts, "%s", path);
  }
  harness_dir_path(&peer, "pssh_hosts", hostfile, sizeof hostfile);
  FILE *hf = fopen(hostfile, "w");
  for (int i = 0; i < nsessions && hf; i++) fprintf(hf, "127.0.0.1:%d\n", peer.port);
  if (hf) fclose(hf);

  const char *all[] = {"evssh", "netssh", "asyncssh", "pssh", "evssh-paced", "idle"};
  const char *const *clients = all;
  int nclients = 6;
  if (argc > 2) {
    clients = (const char *const *)argv + 2;
    nclients = argc - 2;
  }
  printf("%d sessions to one %s on 127.0.0.1 (%ld cores), user %s, ed25519 key, known_hosts %s\n", nsessions,
         ten ? "OpenSSH 10 sshd" : "system sshd", sysconf(_SC_NPROCESSORS_ONLN), peer.user, peer.known_hosts);
  printf("%-12s %-24s %7s %10s %11s %9s %9s %8s %8s %9s %14s\n", "client", "kex", "wall s", "client CPU",
         "CPU/session", "vs async", "peak RSS", "sshd CPU", "ok", "all CPUs", "user/sys ms/s");
  char kexes[512];
  snprintf(kexes, sizeof kexes, "%s", getenv("BENCH_KEX") ? getenv("BENCH_KEX") : "curve25519-sha256");
  int bad = 0;
  char *save = NULL;
  for (char *k = strtok_r(kexes, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
    kex_method = k;
    result rs[16];
    double async_cpu = 0;
    int nr = nclients < 16 ? nclients : 16;
    /* AsyncSSH first, so every other row can show its ratio to it */
    for (int i = 0; i < nr; i++)
      if (strcmp(clients[i], "asyncssh") == 0) {
        rs[i] = run_client(clients[i]);
        if (rs[i].ran) async_cpu = rs[i].cpu;
      }
    for (int i = 0; i < nr; i++) {
      if (strcmp(clients[i], "asyncssh") != 0) rs[i] = run_client(clients[i]);
      result r = rs[i];
      if (strcmp(clients[i], "idle") == 0) continue;
      if (!r.ran) {
        printf("%-12s %-24s %7s\n", r.name, r.kex, "n/a (the client lacks this method)");
        continue;
      }
      char ratio[32] = "-";
      if (async_cpu > 0) snprintf(ratio, sizeof ratio, "%.3fx", r.cpu / async_cpu);
      printf("%-12s %-24s %7.2f %9.2fs %9.2fms %9s %6.1fMiB %7.2fs %5d/%d %8.0f%% %6.2f/%-6.2f\n", r.name, r.kex,
             r.wall, r.cpu, r.cpu * 1e3 / nsessions, ratio, (double)r.rss_kib / 1024.0, r.sshd_cpu, r.oks,
             nsessions, r.machine_busy * 100, r.user * 1e3 / nsessions, r.sys * 1e3 / nsessions);
      fflush(stdout);
      if (r.oks != nsessions) bad++;
    }
  }
  harness_sshd_stop(&peer);
  return bad ? 1 : 0;
}
