/* test_harness.c: checks the interop test harness itself against the stock
 * OpenSSH client: the servers it starts answer with the expected banner,
 * accept every generated client key under strict host key checking with the
 * generated known_hosts, honour extra config lines, can be frozen and killed
 * through harness_sshd_signal, and are really gone after stop. */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
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

static int connect_local(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads up to the first '\n' within timeout_ms; returns length or -1. */
static int read_line(int fd, char *out, size_t outlen, int timeout_ms) {
  size_t n = 0;
  while (n + 1 < outlen) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
      return -1;
    ssize_t r = read(fd, out + n, 1);
    if (r <= 0)
      return -1;
    if (out[n++] == '\n')
      break;
  }
  out[n] = '\0';
  return (int)n;
}

static void check_banner(int port, const char *prefix) {
  int fd = connect_local(port);
  ck_assert_int_ge(fd, 0);
  char line[256];
  ck_assert_int_gt(read_line(fd, line, sizeof line, 5000), 0);
  ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0, "banner '%s' lacks '%s'", line, prefix);
  close(fd);
}

/* Runs the OpenSSH client with only the options given (-F /dev/null keeps
 * the invoking user's config out) and returns its exit status; its stdout
 * goes to out.  opts come first because ssh keeps the first value of an
 * option, so they override the defaults here. */
static int run_ssh(const harness_peer *p, const char *key, const char *known_hosts,
                   const char *user, const char *opts, const char *cmd, char *out, size_t outlen) {
  char line[4096];
  snprintf(line, sizeof line,
           "ssh -F /dev/null %s -o BatchMode=yes -o ConnectTimeout=10 -o IdentitiesOnly=yes "
           "-o IdentityAgent=none -o GlobalKnownHostsFile=/dev/null "
           "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes %s%s -p %d %s@127.0.0.1 '%s' "
           "</dev/null 2>>%s/ssh-client.log",
           opts ? opts : "", known_hosts, key ? "-i " : "", key ? key : "", p->port, user, cmd,
           p->dir);
  FILE *f = popen(line, "r");
  ck_assert_ptr_nonnull(f);
  size_t n = fread(out, 1, outlen - 1, f);
  out[n] = '\0';
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void check_login(const harness_peer *p, const char *key, const char *user) {
  char out[256];
  int rc = run_ssh(p, key, p->known_hosts, user, NULL, "echo ok; id -un", out, sizeof out);
  ck_assert_msg(rc == 0, "ssh with %s as %s failed (%d), see %s/ssh-client.log", key, user, rc,
                p->dir);
  char want[128];
  snprintf(want, sizeof want, "ok\n%s\n", user);
  ck_assert_str_eq(out, want);
}

/* 'T' (stopped), 'Z' (zombie), ..., or '?' when the process is gone. */
static char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return '?';
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' ? rp[2] : '?';
}

static bool wait_state(pid_t pid, const char *states, int ms) {
  for (int i = 0; i < ms / 10; i++) {
    if (strchr(states, proc_state(pid)))
      return true;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return strchr(states, proc_state(pid)) != NULL;
}

static bool dir_exists(const char *d) {
  struct stat st;
  return stat(d, &st) == 0;
}

static void check_stopped(int port, const char *dir) {
  ck_assert_int_lt(connect_local(port), 0);
  ck_assert_int_eq(errno, ECONNREFUSED);
  ck_assert(!dir_exists(dir));
}

START_TEST(sshd_keys_and_banner) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, NULL), 0);
  ck_assert_int_gt(p.port, 0);
  check_banner(p.port, "SSH-2.0-OpenSSH");
  check_login(&p, p.key_ed25519, p.user);
  check_login(&p, p.key_rsa, p.user);
  check_login(&p, p.key_ecdsa, p.user);

  /* Legacy algorithms the interop tests need must really be enabled. */
  char out[256];
  ck_assert_int_eq(run_ssh(&p, p.key_rsa, p.known_hosts, p.user,
                           "-o HostKeyAlgorithms=ssh-rsa -o PubkeyAcceptedAlgorithms=ssh-rsa "
                           "-o Ciphers=aes128-cbc -o MACs=hmac-sha1 "
                           "-o KexAlgorithms=diffie-hellman-group14-sha1",
                           "echo legacy", out, sizeof out),
                   0);
  ck_assert_str_eq(out, "legacy\n");

  /* An empty known_hosts must be refused: proves the file is what counts. */
  char empty[600];
  ck_assert_int_eq(harness_dir_path(&p, "empty_known_hosts", empty, sizeof empty), 0);
  FILE *f = fopen(empty, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  ck_assert_int_ne(run_ssh(&p, p.key_ed25519, empty, p.user, NULL, "echo ok", out, sizeof out), 0);

  if (p.have_password_user) {
    check_login(&p, p.key_ed25519, p.password_user);
    /* Password auth through SSH_ASKPASS: the OpenSSH client has no other
     * non-interactive way to take a password. */
    char askpass[600], opts[1200];
    ck_assert_int_eq(harness_dir_path(&p, "askpass.sh", askpass, sizeof askpass), 0);
    f = fopen(askpass, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\necho '%s'\n", p.password);
    fclose(f);
    chmod(askpass, 0700);
    snprintf(opts, sizeof opts, "-o BatchMode=no -o PreferredAuthentications=password");
    setenv("SSH_ASKPASS", askpass, 1);
    setenv("SSH_ASKPASS_REQUIRE", "force", 1);
    ck_assert_int_eq(run_ssh(&p, NULL, p.known_hosts, p.password_user, opts, "echo pw", out,
                             sizeof out),
                     0);
    ck_assert_str_eq(out, "pw\n");
    f = fopen(askpass, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\necho wrong-password\n");
    fclose(f);
    ck_assert_int_ne(run_ssh(&p, NULL, p.known_hosts, p.password_user,
                             "-o BatchMode=no -o PreferredAuthentications=password "
                             "-o NumberOfPasswordPrompts=1",
                             "echo pw", out, sizeof out),
                     0);
    unsetenv("SSH_ASKPASS");
    unsetenv("SSH_ASKPASS_REQUIRE");
  }

  char dir[512];
  int port = p.port;
  memcpy(dir, p.dir, sizeof dir);
  ck_assert_int_eq(harness_sshd_stop(&p), 0);
  check_stopped(port, dir);
}
END_TEST

START_TEST(sshd_extra_config_overrides) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, "Ciphers aes128-ctr\nMACs hmac-sha2-256\n"), 0);
  char out[256];
  ck_assert_int_eq(
      run_ssh(&p, p.key_ed25519, p.known_hosts, p.user, "-c aes128-ctr", "echo a", out, sizeof out),
      0);
  ck_assert_str_eq(out, "a\n");
  ck_assert_int_ne(
      run_ssh(&p, p.key_ed25519, p.known_hosts, p.user, "-c aes256-ctr", "echo b", out, sizeof out),
      0);
  ck_assert_int_eq(harness_sshd_stop(&p), 0);
}
END_TEST

START_TEST(sshd_signal_tree) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, NULL), 0);
  int fd = connect_local(p.port);
  ck_assert_int_ge(fd, 0);
  char line[256];
  ck_assert_int_gt(read_line(fd, line, sizeof line, 5000), 0); /* child exists now */

  ck_assert_int_ge(harness_sshd_signal(&p, SIGSTOP), 2);
  ck_assert(wait_state(p.pid, "T", 2000));
  /* a frozen listener leaves new connections unanswered */
  int fd2 = connect_local(p.port);
  ck_assert_int_ge(fd2, 0);
  ck_assert_int_lt(read_line(fd2, line, sizeof line, 300), 0);

  ck_assert_int_ge(harness_sshd_signal(&p, SIGCONT), 2);
  ck_assert(wait_state(p.pid, "SR", 2000));
  ck_assert_int_gt(read_line(fd2, line, sizeof line, 5000), 0);
  close(fd2);

  ck_assert_int_ge(harness_sshd_signal(&p, SIGKILL), 2);
  ck_assert(wait_state(p.pid, "Z?", 2000));
  /* the per-connection child died too, so our connection sees EOF */
  ck_assert_int_lt(read_line(fd, line, sizeof line, 2000), 0);
  close(fd);

  char dir[512];
  int port = p.port;
  memcpy(dir, p.dir, sizeof dir);
  ck_assert_int_eq(harness_sshd_stop(&p), 0);
  check_stopped(port, dir);
}
END_TEST

START_TEST(harness_misc) {
  int port = harness_free_port();
  ck_assert_int_gt(port, 0);
  ck_assert_int_lt(port, 65536);
  ck_assert_ptr_nonnull(harness_script_path());
  harness_peer p;
  memset(&p, 0, sizeof p);
  strcpy(p.dir, "/tmp/x");
  char out[16];
  ck_assert_int_eq(harness_dir_path(&p, "abc", out, sizeof out), 0);
  ck_assert_str_eq(out, "/tmp/x/abc");
  ck_assert_int_ne(harness_dir_path(&p, "much-too-long-name", out, sizeof out), 0);
}
END_TEST

static bool file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  char line[8192];
  bool found = false;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

START_TEST(dropbear_keys_and_banner) {
  harness_peer p;
  ck_assert_int_eq(harness_dropbear_start(&p), 0);
  check_banner(p.port, "SSH-2.0-dropbear");
  check_login(&p, p.key_ed25519, p.user);
  check_login(&p, p.key_rsa, p.user);
  check_login(&p, p.key_ecdsa, p.user);
  char out[256];
  ck_assert_int_eq(run_ssh(&p, p.key_ed25519, p.known_hosts, p.user,
                           "-o HostKeyAlgorithms=ecdsa-sha2-nistp256", "echo e", out, sizeof out),
                   0);
  ck_assert_int_eq(run_ssh(&p, p.key_ed25519, p.known_hosts, p.user,
                           "-o HostKeyAlgorithms=rsa-sha2-256", "echo r", out, sizeof out),
                   0);

  /* stop must take back exactly the authorized_keys lines start added */
  char ak[700], tag[600];
  struct passwd *pwent = getpwnam(p.user);
  ck_assert_ptr_nonnull(pwent);
  const char *home = pwent->pw_dir;
  snprintf(ak, sizeof ak, "%s/.ssh/authorized_keys", home);
  snprintf(tag, sizeof tag, "evssh-harness:%s", p.dir);
  ck_assert(file_contains(ak, tag));

  char dir[512];
  int port = p.port;
  memcpy(dir, p.dir, sizeof dir);
  ck_assert_int_eq(harness_dropbear_stop(&p), 0);
  check_stopped(port, dir);
  ck_assert(!file_contains(ak, tag));
}
END_TEST

/* A listener that binds, and listens only later (as ssh-agent -D does,
   with work in between a loaded machine can stretch): the wait returns once
   a connect works, not when the file appears; a listener that dies without
   listening ends the wait with -1 at once. */
START_TEST(wait_unix_listener_waits_for_listen) {
  char dir[] = "/tmp/evssh-hwait-XXXXXX", path[200];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/l.sock", dir);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int go[2];
  ck_assert_int_eq(pipe(go), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char c;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) _exit(1);
    if (read(go[0], &c, 1) != 1) _exit(2);   /* listen only when told */
    if (c == 'x') _exit(3);                  /* die without listening */
    if (listen(fd, 4) != 0) _exit(4);
    int a = accept(fd, NULL, NULL);
    _exit(a >= 0 ? 0 : 5);
  }
  struct stat st;
  for (int i = 0; i < 6000 && stat(path, &st) != 0; i++) {
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  ck_assert_int_eq(stat(path, &st), 0);
  /* the file exists, nothing listens yet: a connect is refused */
  int probe = socket(AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_ne(connect(probe, (struct sockaddr *)&sa, sizeof sa), 0);
  close(probe);
  ck_assert_int_ne(harness_wait_unix_listener(path, 1, pid), 0);
  ck_assert_int_eq(write(go[1], "l", 1), 1);
  ck_assert_int_eq(harness_wait_unix_listener(path, 60, pid), 0);
  int st2;
  ck_assert_int_eq(waitpid(pid, &st2, 0), pid);
  ck_assert(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);

  /* a second listener that dies instead: -1 without the whole minute */
  unlink(path);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char c;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) _exit(1);
    if (read(go[0], &c, 1) != 1) _exit(2);
    _exit(3);
  }
  ck_assert_int_eq(write(go[1], "x", 1), 1);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_ne(harness_wait_unix_listener(path, 600, pid), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 300);   /* not the 600 s bound */
  close(go[0]);
  close(go[1]);
  unlink(path);
  rmdir(dir);
}
END_TEST

int main(void) {
  const char *sshd_skip = harness_skip_reason();
  const char *db_skip = harness_dropbear_skip_reason();
  if (sshd_skip && db_skip) {
    printf("SKIP: %s; %s\n", sshd_skip, db_skip);
    return HARNESS_SKIP;
  }
  Suite *s = suite_create("harness");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, harness_misc);
  tcase_add_test(tc, wait_unix_listener_waits_for_listen);
  if (sshd_skip) {
    printf("SKIP (sshd parts): %s\n", sshd_skip);
  } else {
    tcase_add_test(tc, sshd_keys_and_banner);
    tcase_add_test(tc, sshd_extra_config_overrides);
    tcase_add_test(tc, sshd_signal_tree);
  }
  if (db_skip)
    printf("SKIP (dropbear parts): %s\n", db_skip);
  else
    tcase_add_test(tc, dropbear_keys_and_banner);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
