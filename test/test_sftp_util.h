/* test_sftp_util.h: helpers the SFTP test programs share (included by each,
 * so every function is static): sessions to a harness peer, a blocking
 * sftp start, files of known pseudo-random content, SHA-256 of a file, a
 * scratch directory the server's user (evssh-test when root) can write, and
 * small blocking wrappers over the async request calls. */
#ifndef EVSSH_TEST_SFTP_UTIL_H
#define EVSSH_TEST_SFTP_UTIL_H

#include "evssh.h"
#include "harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* paths here are short (a mkdtemp directory and fixed names): snprintf
   into fixed buffers cannot truncate them, whatever GCC fears */
#pragma GCC diagnostic ignored "-Wformat-truncation"

/* not every program uses every helper */
#define SFTP_TEST_UNUSED __attribute__((unused))

static SFTP_TEST_UNUSED evssh_session *sftp_test_connect(const harness_peer *p, const char *extra) {
  char port[32], kh[700], id[700];
  snprintf(port, sizeof port, "Port=%d", p->port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", p->known_hosts);
  snprintf(id, sizeof id, "IdentityFile=%s", p->key_ed25519);
  const char *opts[] = {port, kh, id, "IdentitiesOnly=yes", "GlobalKnownHostsFile=/dev/null",
                        "ConfigFile=none", extra, NULL};
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", p->user, opts, &err);
  if (!s) fprintf(stderr, "evssh_start: %d %s\n", err.code, err.message);
  ck_assert_ptr_nonnull(s);
  return s;
}

static SFTP_TEST_UNUSED evssh_sftp *sftp_test_start(evssh_session *s) {
  evssh_error err;
  evssh_sftp *sftp = evssh_sftp_start(s, &err);
  ck_assert_msg(sftp != NULL, "evssh_sftp_start: %d %s", err.code, err.message);
  return sftp;
}

/* A deterministic byte stream (xorshift64 per 8 bytes), so any prefix of a
   file can be checked against what it should hold. */
static SFTP_TEST_UNUSED void sftp_test_fill(unsigned char *buf, size_t len, uint64_t offset, uint32_t seed) {
  for (size_t i = 0; i < len;) {
    uint64_t block = (offset + i) / 8;
    uint64_t x = block * 0x9E3779B97F4A7C15ull + seed + 1;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    size_t in = (size_t)((offset + i) % 8);
    for (; in < 8 && i < len; in++, i++) buf[i] = (unsigned char)(x >> (8 * in));
  }
}

static SFTP_TEST_UNUSED void sftp_test_make_file(const char *path, uint64_t size, uint32_t seed) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
  fchmod(fd, 0666); /* the server's user (evssh-test when root) may rewrite it */
  size_t bs = 1u << 20;
  unsigned char *buf = malloc(bs);
  ck_assert_ptr_nonnull(buf);
  for (uint64_t off = 0; off < size; off += bs) {
    size_t n = size - off < bs ? (size_t)(size - off) : bs;
    sftp_test_fill(buf, n, off, seed);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
  }
  free(buf);
  ck_assert_int_eq(close(fd), 0);
}

/* does path hold exactly the first len bytes of the stream for seed? */
static SFTP_TEST_UNUSED bool sftp_test_prefix_ok(const char *path, uint64_t len, uint32_t seed) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == len;
  size_t bs = 1u << 20;
  unsigned char *want = malloc(bs), *got = malloc(bs);
  for (uint64_t off = 0; ok && off < len; off += bs) {
    size_t n = len - off < bs ? (size_t)(len - off) : bs;
    sftp_test_fill(want, n, off, seed);
    ok = pread(fd, got, n, (off_t)off) == (ssize_t)n && memcmp(want, got, n) == 0;
  }
  free(want);
  free(got);
  close(fd);
  return ok;
}

static SFTP_TEST_UNUSED void sftp_test_sha256(const char *path, unsigned char out[32]) {
  int fd = open(path, O_RDONLY);
  ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  size_t bs = 1u << 20;
  unsigned char *buf = malloc(bs);
  ssize_t n;
  while ((n = read(fd, buf, bs)) > 0) EVP_DigestUpdate(md, buf, (size_t)n);
  ck_assert_int_eq(n, 0);
  unsigned int olen = 32;
  EVP_DigestFinal_ex(md, out, &olen);
  EVP_MD_CTX_free(md);
  free(buf);
  close(fd);
}

static SFTP_TEST_UNUSED bool sftp_test_same(const char *a, const char *b) {
  unsigned char ha[32], hb[32];
  sftp_test_sha256(a, ha);
  sftp_test_sha256(b, hb);
  return memcmp(ha, hb, 32) == 0;
}

/* a fresh directory under /tmp the server's user may write */
static SFTP_TEST_UNUSED int sftp_test_workdir(char *out, size_t outlen) {
  snprintf(out, outlen, "/tmp/evssh-sftp-XXXXXX");
  if (!mkdtemp(out) || chmod(out, 0777)) {
    perror("work directory");
    return -1;
  }
  return 0;
}

static SFTP_TEST_UNUSED void sftp_test_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st)) return;
  if (S_ISDIR(st.st_mode)) {
    chmod(path, 0700);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      sftp_test_rm_rf(p);
    }
    if (d) closedir(d);
    /* a mount point (the disk-full test's tmpfs) goes once detached */
    if (rmdir(path) && errno == EBUSY && !umount2(path, MNT_DETACH)) rmdir(path);
  } else {
    unlink(path);
  }
}

static SFTP_TEST_UNUSED uint64_t sftp_test_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

/* SIGKILL to every process the listener forked (the connection's sshd and
   its sftp-server), leaving the listener up for the resume */
static SFTP_TEST_UNUSED int pid_parent(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *close_paren = strrchr(buf, ')');
  int ppid = -1;
  if (close_paren) sscanf(close_paren + 2, "%*c %d", &ppid);
  return ppid;
}

static SFTP_TEST_UNUSED int kill_descendants(int root) {
  int killed = 0;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || pid_parent(pid) != root) continue;
    killed += kill_descendants(pid);
    if (kill(pid, SIGKILL) == 0) killed++;
  }
  if (d) closedir(d);
  return killed;
}

/* A small tmpfs at mnt (a new directory) for disk-full tests: false, with
   a SKIP line for `test`, when not root or the mount fails. A failed test
   leaves it mounted: sftp_test_rm_rf detaches it. */
static SFTP_TEST_UNUSED bool sftp_test_mount_tiny(const char *mnt, const char *size, const char *test) {
  if (geteuid() != 0) {
    fprintf(stderr, "SKIP %s: mounting a small tmpfs needs root\n", test);
    return false;
  }
  ck_assert_int_eq(mkdir(mnt, 0777), 0);
  char opts[64];
  snprintf(opts, sizeof opts, "size=%s,mode=0777", size);
  if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
    fprintf(stderr, "SKIP %s: mount tmpfs: %s\n", test, strerror(errno));
    return false;
  }
  return true;
}

/* ------------------------------------------- blocking wrappers for tests */

typedef struct sftp_test_wait {
  bool done;
  int status;
  evssh_sftp_file *file;
  evssh_sftp_attrs attrs;
  char text[4096];
  size_t len;
  evssh_sftp_fsstat fs;
} sftp_test_wait;

static SFTP_TEST_UNUSED bool sftp_test_until(evssh_session *s, void *ud) { return !((sftp_test_wait *)ud)->done; }

static SFTP_TEST_UNUSED int sftp_test_run(evssh_sftp *sftp, sftp_test_wait *w, int rc) {
  if (rc) return rc;
  evssh_session_loop(evssh_sftp_session(sftp), -1, sftp_test_until, w);
  ck_assert(w->done);
  return w->status;
}

static SFTP_TEST_UNUSED void sftp_test_status_cb(evssh_sftp *sftp, int status, void *ud) {
  sftp_test_wait *w = ud;
  w->done = true;
  w->status = status;
}

static SFTP_TEST_UNUSED void sftp_test_file_cb(evssh_sftp *sftp, int status, evssh_sftp_file *f, void *ud) {
  sftp_test_wait *w = ud;
  w->done = true;
  w->status = status;
  w->file = f;
}

static SFTP_TEST_UNUSED void sftp_test_attrs_cb(evssh_sftp *sftp, int status, const evssh_sftp_attrs *a, void *ud) {
  sftp_test_wait *w = ud;
  w->done = true;
  w->status = status;
  if (a) w->attrs = *a;
  if (a) w->attrs.extended = NULL;
}

static SFTP_TEST_UNUSED void sftp_test_path_cb(evssh_sftp *sftp, int status, const char *path, void *ud) {
  sftp_test_wait *w = ud;
  w->done = true;
  w->status = status;
  snprintf(w->text, sizeof w->text, "%s", path ? path : "");
}

static SFTP_TEST_UNUSED void sftp_test_data_cb(evssh_sftp *sftp, int status, const char *data, size_t len, void *ud) {
  sftp_test_wait *w = ud;
  w->done = true;
  w->status = status;
  w->len = len;
  if (len > sizeof w->text) len = sizeof w->text;
  if (data && len) memcpy(w->text, data, len);
}

static SFTP_TEST_UNUSED void sftp_test_fs_cb(evssh_sftp *sftp, int status, const evssh_sftp_fsstat *fs, void *ud) {
  sftp_test_wait *w = ud;
  w->done = true;
  w->status = status;
  if (fs) w->fs = *fs;
}

/* a whole-file transfer's outcome, filled by sftp_test_done_cb */
typedef struct sftp_test_result {
  bool done;
  int status;
  uint32_t fx;
  uint64_t transferred;
  uint64_t last;            /* the last progress figure, where counted */
  char error[1024];
} sftp_test_result;

static SFTP_TEST_UNUSED void sftp_test_done_cb(evssh_sftp *sftp, int status, void *ud) {
  sftp_test_result *r = ud;
  r->done = true;
  r->status = status;
  r->fx = evssh_sftp_status(sftp);
  r->transferred = evssh_sftp_transferred(sftp);
  snprintf(r->error, sizeof r->error, "%s", evssh_sftp_error(sftp));
}

static SFTP_TEST_UNUSED bool sftp_test_until_done(evssh_session *s, void *ud) {
  return !((sftp_test_result *)ud)->done;
}

/* stat through the sftp: status, attrs */
static SFTP_TEST_UNUSED int sftp_test_stat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs *a) {
  sftp_test_wait w = {0};
  int rc = sftp_test_run(sftp, &w, evssh_sftp_stat(sftp, path, sftp_test_attrs_cb, &w));
  if (a) *a = w.attrs;
  return rc;
}

/* main() of a test program: sshd with extra config, a work directory,
   the suite, clean-up. Returns the exit status. */
static SFTP_TEST_UNUSED int sftp_test_main(Suite *suite, harness_peer *peer, const char *extra, char *work,
                                           size_t worklen) {
  harness_require_sshd();
  if (harness_sshd_start(peer, extra) != 0) return 1;
  if (sftp_test_workdir(work, worklen)) return 1;
  SRunner *sr = srunner_create(suite);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  sftp_test_rm_rf(work);
  harness_sshd_stop(peer);
  return failed ? 1 : 0;
}

#endif
