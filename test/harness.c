/* harness.c: starts and stops real SSH peers (OpenSSH sshd, dropbear) for
 * the interop check tests by running test/sshd-harness.sh, and reads back the
 * `env` file it writes into a harness_peer.  Also owns the process-tree
 * signalling tests use to freeze or kill a server mid-connection, and the
 * lookup of the script and of the server binaries that decides SKIP. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>

enum { KIND_SSHD = 1, KIND_DROPBEAR = 2 };

static char script_path[PATH_MAX];
/* sshd binary for the next start (NULL: $SSHD or /usr/sbin/sshd) */
static const char *sshd_binary;

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool try_script(const char *dir, const char *suffix) {
  if (!dir || !*dir)
    return false;
  int n = snprintf(script_path, sizeof script_path, "%s%s", dir, suffix);
  return n > 0 && (size_t)n < sizeof script_path && is_file(script_path);
}

const char *harness_script_path(void) {
  if (script_path[0] && is_file(script_path))
    return script_path;
  const char *envs[] = {getenv("EVSSH_SRCDIR"), getenv("srcdir")};
  for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
    if (try_script(envs[i], "/test/sshd-harness.sh") || try_script(envs[i], "/sshd-harness.sh"))
      return script_path;
  }
  /* Beside the binary: test/ for a plain build, test/.libs for libtool. */
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      if (try_script(exe, "/sshd-harness.sh") || try_script(exe, "/test/sshd-harness.sh") ||
          try_script(exe, "/../sshd-harness.sh") || try_script(exe, "/../test/sshd-harness.sh"))
        return script_path;
    }
  }
  if (try_script(".", "/test/sshd-harness.sh") || try_script(".", "/sshd-harness.sh"))
    return script_path;
  script_path[0] = '\0';
  return NULL;
}

static bool in_path(const char *name, const char *fallback) {
  if (fallback && access(fallback, X_OK) == 0)
    return true;
  const char *path = getenv("PATH");
  if (!path)
    path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  char buf[PATH_MAX];
  while (*path) {
    size_t len = strcspn(path, ":");
    if (len > 0 && len + strlen(name) + 2 <= sizeof buf) {
      memcpy(buf, path, len);
      buf[len] = '/';
      strcpy(buf + len + 1, name);
      if (access(buf, X_OK) == 0)
        return true;
    }
    path += len;
    if (*path == ':')
      path++;
  }
  return false;
}

const char *harness_skip_reason(void) {
  if (!harness_script_path())
    return "sshd-harness.sh not found (set EVSSH_SRCDIR)";
  const char *sshd = getenv("SSHD");
  if (sshd && *sshd) {
    if (sshd[0] == '/' ? access(sshd, X_OK) != 0 : !in_path(sshd, NULL))
      return "$SSHD is not executable";
  } else if (access("/usr/sbin/sshd", X_OK) != 0) {
    return "sshd not installed (/usr/sbin/sshd)";
  }
  if (!in_path("ssh-keygen", "/usr/bin/ssh-keygen"))
    return "ssh-keygen not installed";
  if (!in_path("bash", "/bin/bash"))
    return "bash not installed";
  return NULL;
}

const char *harness_dropbear_skip_reason(void) {
  if (!harness_script_path())
    return "sshd-harness.sh not found (set EVSSH_SRCDIR)";
  if (!in_path("dropbear", "/usr/sbin/dropbear"))
    return "dropbear not installed (apt-get install dropbear-bin)";
  if (!in_path("dropbearkey", "/usr/bin/dropbearkey"))
    return "dropbearkey not installed";
  if (!in_path("ssh-keygen", "/usr/bin/ssh-keygen"))
    return "ssh-keygen not installed";
  return NULL;
}

static void require(const char *reason) {
  if (reason) {
    printf("SKIP: %s\n", reason);
    fflush(stdout);
    exit(HARNESS_SKIP);
  }
}

void harness_require_sshd(void) { require(harness_skip_reason()); }
void harness_require_dropbear(void) { require(harness_dropbear_skip_reason()); }

int harness_dir_path(const harness_peer *p, const char *name, char *out, size_t outlen) {
  int n = snprintf(out, outlen, "%s/%s", p->dir, name);
  return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

int harness_listen_loopback(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int harness_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

int harness_wait_unix_listener(const char *path, int max_s, pid_t pid) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return -1;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  for (long waited_ms = 0; waited_ms <= (long)max_s * 1000; waited_ms += 20) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return -1;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (rc == 0)
      return 0;
    if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
      return -1;   /* it died: nothing will ever listen */
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

/* Runs `bash sshd-harness.sh cmd dir [arg]`, stdout discarded (the script
 * prints the port, which we read from the env file instead), stderr kept so
 * failures explain themselves in the test log. */
static int run_script(const char *cmd, const char *dir, const char *arg) {
  const char *script = harness_script_path();
  if (!script) {
    fprintf(stderr, "harness: sshd-harness.sh not found\n");
    return -1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    char owner[32];
    snprintf(owner, sizeof owner, "%d", (int)getppid());
    setenv("HARNESS_OWNER_PID", owner, 1);
    if (sshd_binary) setenv("SSHD", sshd_binary, 1);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      if (devnull > 2)
        close(devnull);
    }
    execl("/bin/bash", "bash", script, cmd, dir, arg, (char *)NULL);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -1;
}

static int copy_field(char *dst, size_t dstlen, const char *val) {
  size_t n = strlen(val);
  if (n >= dstlen)
    return -1;
  memcpy(dst, val, n + 1);
  return 0;
}

/* The env file holds lines KEY='value' written by the script. */
static int read_env(harness_peer *p) {
  char path[600];
  if (harness_dir_path(p, "env", path, sizeof path) != 0)
    return -1;
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  char line[1024];
  int rc = 0, seen = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *eq = strchr(line, '=');
    if (!eq)
      continue;
    *eq = '\0';
    char *val = eq + 1;
    size_t vl = strlen(val);
    if (vl >= 2 && val[0] == '\'' && val[vl - 1] == '\'') {
      val[vl - 1] = '\0';
      val++;
    }
    const char *key = line;
    if (strcmp(key, "HARNESS_PORT") == 0) {
      p->port = atoi(val);
      seen |= 1;
    } else if (strcmp(key, "HARNESS_PID") == 0) {
      p->pid = (pid_t)atol(val);
      seen |= 2;
    } else if (strcmp(key, "HARNESS_USER") == 0) {
      rc |= copy_field(p->user, sizeof p->user, val);
      seen |= 4;
    } else if (strcmp(key, "HARNESS_KNOWN_HOSTS") == 0) {
      rc |= copy_field(p->known_hosts, sizeof p->known_hosts, val);
    } else if (strcmp(key, "HARNESS_KEY_ED25519") == 0) {
      rc |= copy_field(p->key_ed25519, sizeof p->key_ed25519, val);
    } else if (strcmp(key, "HARNESS_KEY_RSA") == 0) {
      rc |= copy_field(p->key_rsa, sizeof p->key_rsa, val);
    } else if (strcmp(key, "HARNESS_KEY_ECDSA") == 0) {
      rc |= copy_field(p->key_ecdsa, sizeof p->key_ecdsa, val);
    } else if (strcmp(key, "HARNESS_HAVE_PASSWORD_USER") == 0) {
      p->have_password_user = strcmp(val, "1") == 0;
    } else if (strcmp(key, "HARNESS_PASSWORD_USER") == 0) {
      rc |= copy_field(p->password_user, sizeof p->password_user, val);
    } else if (strcmp(key, "HARNESS_PASSWORD") == 0) {
      rc |= copy_field(p->password, sizeof p->password, val);
    }
  }
  fclose(f);
  if (rc != 0 || seen != 7 || p->port <= 0 || p->pid <= 0)
    return -1;
  return 0;
}

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char sub[PATH_MAX];
      int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      if (n < 0 || (size_t)n >= sizeof sub)
        continue;
      struct stat st;
      if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        remove_tree(sub);
      else
        unlink(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

static int make_dir(harness_peer *p, const char *prefix) {
  memset(p, 0, sizeof *p);
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp)
    tmp = "/tmp";
  int n = snprintf(p->dir, sizeof p->dir, "%s/%s-XXXXXX", tmp, prefix);
  if (n < 0 || (size_t)n >= sizeof p->dir || !mkdtemp(p->dir)) {
    fprintf(stderr, "harness: cannot create directory under %s: %s\n", tmp, strerror(errno));
    memset(p, 0, sizeof *p);
    return -1;
  }
  return 0;
}

/* Servers still running when the process exits are stopped by an atexit
 * handler: a failing ck_assert exits the forked test without reaching the
 * test's own stop call, and a leaked sshd would outlive the whole suite. */
#define MAX_LIVE 32
static struct {
  char dir[512];
  int kind;
  pid_t owner;
} live[MAX_LIVE];
static bool atexit_done;

static void cleanup_at_exit(void) {
  for (int i = 0; i < MAX_LIVE; i++) {
    if (live[i].kind && live[i].owner == getpid()) {
      harness_peer tmp;
      memset(&tmp, 0, sizeof tmp);
      memcpy(tmp.dir, live[i].dir, sizeof tmp.dir);
      tmp.kind = live[i].kind;
      live[i].kind = 0;
      if (tmp.kind == KIND_SSHD)
        harness_sshd_stop(&tmp);
      else
        harness_dropbear_stop(&tmp);
    }
  }
}

static void track(const harness_peer *p) {
  if (!atexit_done)
    atexit_done = atexit(cleanup_at_exit) == 0;
  for (int i = 0; i < MAX_LIVE; i++) {
    if (!live[i].kind) {
      memcpy(live[i].dir, p->dir, sizeof live[i].dir);
      live[i].kind = p->kind;
      live[i].owner = getpid();
      return;
    }
  }
}

static void untrack(const char *dir) {
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i].kind && strcmp(live[i].dir, dir) == 0)
      live[i].kind = 0;
}

static int start_common(harness_peer *p, int kind, const char *cmd, const char *extra_path) {
  if (run_script(cmd, p->dir, extra_path) != 0 || read_env(p) != 0) {
    fprintf(stderr, "harness: %s failed in %s\n", cmd, p->dir);
    run_script(kind == KIND_SSHD ? "stop" : "dropbear-stop", p->dir, "--remove");
    remove_tree(p->dir);
    memset(p, 0, sizeof *p);
    return -1;
  }
  p->kind = kind;
  track(p);
  return 0;
}

int harness_sshd_start(harness_peer *p, const char *extra_config) {
  if (make_dir(p, "evssh-sshd") != 0)
    return -1;
  char extra_path[600] = "";
  if (extra_config) {
    if (harness_dir_path(p, "extra.conf", extra_path, sizeof extra_path) != 0)
      goto fail;
    FILE *f = fopen(extra_path, "w");
    if (!f)
      goto fail;
    size_t len = strlen(extra_config);
    bool ok = fwrite(extra_config, 1, len, f) == len;
    if (len > 0 && extra_config[len - 1] != '\n')
      ok = ok && fputc('\n', f) != EOF;
    if (fclose(f) != 0 || !ok)
      goto fail;
  }
  return start_common(p, KIND_SSHD, "start", extra_config ? extra_path : NULL);
fail:
  fprintf(stderr, "harness: cannot write extra config in %s\n", p->dir);
  remove_tree(p->dir);
  memset(p, 0, sizeof *p);
  return -1;
}

int harness_sshd_start_bin(harness_peer *p, const char *sshd, const char *extra_config) {
  sshd_binary = sshd;
  int rc = harness_sshd_start(p, extra_config);
  sshd_binary = NULL;
  return rc;
}

int harness_openssh10(char *root, size_t rootlen, char *why, size_t whylen) {
  const char *script = harness_script_path();
  if (!script) {
    snprintf(why, whylen, "sshd-harness.sh not found");
    return -1;
  }
  char cache[PATH_MAX];
  /* outside the source and build trees, kept across builds and runs */
  const char *env = getenv("EVSSH_OPENSSH10_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (env && *env) snprintf(cache, sizeof cache, "%s", env);
  else if (xdg && *xdg) snprintf(cache, sizeof cache, "%s/evssh/openssh10", xdg);
  else if (home && *home) snprintf(cache, sizeof cache, "%s/.cache/evssh/openssh10", home);
  else snprintf(cache, sizeof cache, "/tmp/evssh-openssh10-cache");
  char cmd[PATH_MAX * 4 + 128], errpath[PATH_MAX + 16];
  snprintf(errpath, sizeof errpath, "%s/fetch.err", cache);
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' && bash '%s' fetch-openssh10 '%s' 2>'%s'", cache, script, cache, errpath);
  fflush(stdout);
  FILE *f = popen(cmd, "r");
  if (!f) {
    snprintf(why, whylen, "cannot run sshd-harness.sh: %s", strerror(errno));
    return -1;
  }
  char line[PATH_MAX] = "";
  if (!fgets(line, sizeof line, f)) line[0] = 0;
  int st = pclose(f);
  line[strcspn(line, "\n")] = 0;
  if (st != 0 || !line[0]) {
    char msg[400] = "";
    FILE *e = fopen(errpath, "r");
    if (e) {
      size_t n = fread(msg, 1, sizeof msg - 1, e);
      msg[n] = 0;
      msg[strcspn(msg, "\n")] = 0;
      fclose(e);
    }
    snprintf(why, whylen, "could not fetch OpenSSH 10 from bookworm-backports (no network?): %s", msg);
    return -1;
  }
  snprintf(root, rootlen, "%s", line);
  return 0;
}

int harness_dropbear_start(harness_peer *p) {
  if (make_dir(p, "evssh-dropbear") != 0)
    return -1;
  return start_common(p, KIND_DROPBEAR, "dropbear-start", NULL);
}

static int stop_common(harness_peer *p, const char *cmd) {
  if (!p->dir[0])
    return 0;
  untrack(p->dir);
  int rc = run_script(cmd, p->dir, "--remove");
  remove_tree(p->dir); /* in case the script could not */
  memset(p, 0, sizeof *p);
  return rc;
}

int harness_sshd_stop(harness_peer *p) { return stop_common(p, "stop"); }
int harness_dropbear_stop(harness_peer *p) { return stop_common(p, "dropbear-stop"); }

/* ---- process tree ---- */

struct proc_pair {
  pid_t pid, ppid;
};

/* Snapshot of (pid, ppid) for every process; *out is malloc'd. */
static int read_procs(struct proc_pair **out, size_t *count) {
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  size_t cap = 256, n = 0;
  struct proc_pair *v = malloc(cap * sizeof *v);
  if (!v) {
    closedir(d);
    return -1;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0)
      continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
      continue;
    buf[len] = '\0';
    /* comm may contain spaces and parens: fields resume after the last ')' */
    char *rp = strrchr(buf, ')');
    char state;
    long ppid;
    if (!rp || sscanf(rp + 1, " %c %ld", &state, &ppid) != 2)
      continue;
    if (state == 'Z' || state == 'X')
      continue;
    if (n == cap) {
      struct proc_pair *nv = realloc(v, 2 * cap * sizeof *v);
      if (!nv) {
        free(v);
        closedir(d);
        return -1;
      }
      v = nv;
      cap *= 2;
    }
    v[n].pid = (pid_t)pid;
    v[n].ppid = (pid_t)ppid;
    n++;
  }
  closedir(d);
  *out = v;
  *count = n;
  return 0;
}

/* Descendants of root in breadth-first order (root excluded); malloc'd. */
static int descendants(pid_t root, pid_t **out, size_t *count) {
  struct proc_pair *procs;
  size_t np;
  if (read_procs(&procs, &np) != 0)
    return -1;
  pid_t *list = malloc((np + 1) * sizeof *list);
  if (!list) {
    free(procs);
    return -1;
  }
  size_t n = 0;
  for (size_t head = 0;; head++) {
    pid_t parent = head == 0 ? root : list[head - 1];
    for (size_t i = 0; i < np; i++) {
      if (procs[i].ppid == parent && procs[i].pid != root && n < np)
        list[n++] = procs[i].pid;
    }
    if (head >= n)
      break;
  }
  free(procs);
  *out = list;
  *count = n;
  return 0;
}

static bool contains(const pid_t *v, size_t n, pid_t pid) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == pid)
      return true;
  return false;
}

/* Every process is frozen with SIGSTOP before the real signal: a stopped
 * listener cannot fork new children behind our back, and a stopped parent
 * cannot die and let its children be re-parented out of our sight. */
int harness_sshd_signal(const harness_peer *p, int sig) {
  if (!p || p->pid <= 0)
    return -1;
  if (sig == SIGCONT) {
    /* Wake children before the listener so none is left stopped. */
    pid_t *kids;
    size_t nk;
    int count = 0;
    if (descendants(p->pid, &kids, &nk) != 0)
      return -1;
    for (size_t i = nk; i-- > 0;)
      if (kill(kids[i], sig) == 0)
        count++;
    free(kids);
    if (kill(p->pid, sig) == 0)
      count++;
    return count;
  }
  if (kill(p->pid, SIGSTOP) != 0)
    return -1;
  pid_t *all = NULL;
  size_t nall = 0;
  for (int pass = 0; pass < 2; pass++) {
    pid_t *kids;
    size_t nk;
    if (descendants(p->pid, &kids, &nk) != 0)
      break;
    pid_t *grown = realloc(all, (nall + nk + 1) * sizeof *grown);
    if (!grown) {
      free(kids);
      break;
    }
    all = grown;
    for (size_t i = 0; i < nk; i++) {
      if (contains(all, nall, kids[i]))
        continue;
      kill(kids[i], SIGSTOP);
      all[nall++] = kids[i];
    }
    free(kids);
  }
  int count = 0;
  for (size_t i = 0; i < nall; i++)
    if (kill(all[i], sig) == 0)
      count++;
  if (kill(p->pid, sig) == 0)
    count++;
  if (sig != SIGSTOP) {
    /* A pending TERM/HUP/... only acts once the process runs again. */
    for (size_t i = 0; i < nall; i++)
      kill(all[i], SIGCONT);
    kill(p->pid, SIGCONT);
  }
  free(all);
  return count;
}

/* ------------------------------------------------ the embedded server */

static int embedded_script(char *out, size_t outlen) {
  const char *script = harness_script_path();   /* .../test/sshd-harness.sh */
  if (!script) return -1;
  const char *slash = strrchr(script, '/');
  int dirlen = slash ? (int)(slash - script) : 1;
  snprintf(out, outlen, "%.*s/server/run-server.sh", dirlen, slash ? script : ".");
  return access(out, R_OK) == 0 ? 0 : -1;
}

int harness_embedded_start(harness_peer *p) {
  memset(p, 0, sizeof *p);
  char script[600], cmd[800];
  if (embedded_script(script, sizeof script) != 0) {
    fprintf(stderr, "harness: test/server/run-server.sh not found\n");
    return -1;
  }
  snprintf(cmd, sizeof cmd, "sh '%s'", script);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *eq = strchr(line, '=');
    if (!eq) continue;
    *eq = 0;
    const char *v = eq + 1;
    if (strcmp(line, "EVSSH_SERVER_PORT") == 0) p->port = atoi(v);
    else if (strcmp(line, "EVSSH_SERVER_DIR") == 0) snprintf(p->dir, sizeof p->dir, "%s", v);
    else if (strcmp(line, "EVSSH_SERVER_KNOWN_HOSTS") == 0) snprintf(p->known_hosts, sizeof p->known_hosts, "%s", v);
    else if (strcmp(line, "EVSSH_SERVER_CLIENT_KEY") == 0) snprintf(p->key_ed25519, sizeof p->key_ed25519, "%s", v);
    else if (strcmp(line, "EVSSH_SERVER_USER") == 0) snprintf(p->user, sizeof p->user, "%s", v);
    else if (strcmp(line, "EVSSH_SERVER_PASSWORD") == 0) snprintf(p->password, sizeof p->password, "%s", v);
    else if (strcmp(line, "EVSSH_SERVER_PID") == 0) p->pid = (pid_t)atoi(v);
  }
  int st = pclose(f);
  if (st != 0 || p->port <= 0 || !p->dir[0]) {
    fprintf(stderr, "harness: embedded server did not start (status %d)\n", st);
    return -1;
  }
  p->kind = 3;
  return 0;
}

int harness_embedded_stop(harness_peer *p) {
  if (p->kind != 3 || !p->dir[0]) return 0;
  char script[600], cmd[1400];
  if (embedded_script(script, sizeof script) != 0) return -1;
  snprintf(cmd, sizeof cmd, "sh '%s' stop '%s' >/dev/null 2>&1", script, p->dir);
  int rc = system(cmd);
  p->kind = 0;
  return rc == 0 ? 0 : -1;
}

int harness_sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof cmd) return -1;   /* never run a cut command */
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
