/* Many files and many hosts for the SFTP client, against the harness's
 * sshd: a tree of 200 files in nested directories uploaded and downloaded
 * (EVSSH_SFTP_RECURSIVE), contents equal, modes and times preserved when
 * asked, symlinks skipped, resume per file, a failure inside a tree; and 20
 * sessions in one evssh_multi, each downloading and uploading at once,
 * every checksum equal. Skips (77) without sshd. */
#include "test_sftp_util.h"

#include <time.h>

static harness_peer peer;
static char work[256];

/* ------------------------------------------------------------- trees */

enum { FILES = 200 };

/* d0/ .. d3/, each with sub0/ sub1/ and its files; f0..f199 spread over
   them, sizes 0..~300 KiB; file i has seed i and mode 0600 | (i % 8) << 3 */
static void tree_path(char *out, size_t outlen, const char *root, int i) {
  int d = i % 4, sub = (i / 4) % 3;
  if (sub == 2) snprintf(out, outlen, "%s/d%d/f%03d", root, d, i);
  else snprintf(out, outlen, "%s/d%d/sub%d/f%03d", root, d, sub, i);
}

static uint64_t tree_size(int i) { return (uint64_t)(i * 1543 % 307200); }

static void make_tree(const char *root) {
  char p[1024];
  ck_assert_int_eq(mkdir(root, 0755), 0);
  for (int d = 0; d < 4; d++) {
    snprintf(p, sizeof p, "%s/d%d", root, d);
    ck_assert_int_eq(mkdir(p, 0750), 0);
    for (int s = 0; s < 2; s++) {
      snprintf(p, sizeof p, "%s/d%d/sub%d", root, d, s);
      ck_assert_int_eq(mkdir(p, 0700), 0);
    }
  }
  snprintf(p, sizeof p, "%s/empty", root);
  ck_assert_int_eq(mkdir(p, 0755), 0);
  for (int i = 0; i < FILES; i++) {
    tree_path(p, sizeof p, root, i);
    sftp_test_make_file(p, tree_size(i), (uint32_t)i);
    ck_assert_int_eq(chmod(p, 0600 | ((i % 8) << 3)), 0);
    struct timespec ts[2] = {{1500000000 + i, 0}, {1600000000 + i, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
  }
  snprintf(p, sizeof p, "%s/link", root);
  ck_assert_int_eq(symlink("d0", p), 0);
  /* directory times last: making the files touched them */
  for (int d = 0; d < 4; d++) {
    snprintf(p, sizeof p, "%s/d%d", root, d);
    struct timespec ts[2] = {{1400000000 + d, 0}, {1450000000 + d, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
  }
}

/* world-readable, for a tree the server must read as another user */
static void make_readable(const char *root) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "chmod -R a+rX '%s'", root);
  ck_assert_int_eq(system(cmd), 0);
}

static void check_tree(const char *root, bool preserved) {
  char p[1024];
  for (int i = 0; i < FILES; i++) {
    tree_path(p, sizeof p, root, i);
    ck_assert_msg(sftp_test_prefix_ok(p, tree_size(i), (uint32_t)i), "%s differs", p);
    if (preserved) {
      struct stat st;
      ck_assert_int_eq(stat(p, &st), 0);
      ck_assert_int_eq(st.st_mode & 07777, 0600 | ((i % 8) << 3));
      ck_assert_int_eq(st.st_mtime, 1600000000 + i);
    }
  }
  snprintf(p, sizeof p, "%s/empty", root);
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  snprintf(p, sizeof p, "%s/link", root);
  ck_assert_int_ne(lstat(p, &st), 0); /* symlinks are not copied */
  if (preserved) {
    for (int d = 0; d < 4; d++) {
      snprintf(p, sizeof p, "%s/d%d", root, d);
      ck_assert_int_eq(stat(p, &st), 0);
      ck_assert_int_eq(st.st_mtime, 1450000000 + d);
      ck_assert_int_eq(st.st_mode & 0777, 0750);
    }
  }
}

typedef struct tree_run {
  bool done;
  int status;
  char error[1024];
  uint64_t last, total, calls;
} tree_run;

static void tree_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  tree_run *t = ud;
  ck_assert_uint_ge(done, t->last);
  t->last = done;
  t->total = total;
  t->calls++;
}

static void tree_done(evssh_sftp *sftp, int status, void *ud) {
  tree_run *t = ud;
  t->done = true;
  t->status = status;
  snprintf(t->error, sizeof t->error, "%s", evssh_sftp_error(sftp));
}

static bool until_tree(evssh_session *s, void *ud) { return !((tree_run *)ud)->done; }

static uint64_t tree_bytes(void) {
  uint64_t n = 0;
  for (int i = 0; i < FILES; i++) n += tree_size(i);
  return n;
}

START_TEST(test_tree_200_files) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], up[512], down[512];
  snprintf(src, sizeof src, "%s/tree-src", work);
  snprintf(up, sizeof up, "%s/tree-up", work);
  snprintf(down, sizeof down, "%s/tree-down", work);
  make_tree(src);

  tree_run t = {0};
  ck_assert_int_eq(evssh_sftp_upload_flags(sftp, src, up, 0, EVSSH_SFTP_RECURSIVE | EVSSH_SFTP_PRESERVE,
                                           tree_progress, tree_done, &t),
                   0);
  evssh_session_loop(s, -1, until_tree, &t);
  ck_assert_msg(t.status == 0, "%s", t.error);
  ck_assert_uint_eq(t.total, tree_bytes());
  ck_assert_uint_eq(t.last, tree_bytes());
  ck_assert_uint_eq(evssh_sftp_transferred(sftp), tree_bytes());
  check_tree(up, true);

  t = (tree_run){0};
  ck_assert_int_eq(evssh_sftp_download_flags(sftp, up, down, 0, EVSSH_SFTP_RECURSIVE | EVSSH_SFTP_PRESERVE,
                                             tree_progress, tree_done, &t),
                   0);
  evssh_session_loop(s, -1, until_tree, &t);
  ck_assert_msg(t.status == 0, "%s", t.error);
  ck_assert_uint_eq(t.last, tree_bytes());
  check_tree(down, true);
  ck_assert_uint_eq(evssh_sftp_pending(sftp), 0);

  /* again into the existing trees, without preserving: contents equal,
     times fresh */
  ck_assert_int_eq(evssh_sftp_upload_flags_wait(sftp, src, up, 0, EVSSH_SFTP_RECURSIVE), 0);
  check_tree(up, false);
  char p[1024];
  struct stat st;
  tree_path(p, sizeof p, up, 7);
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_int_gt(st.st_mtime, 1600000007);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_tree_resume_and_failure) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], down[512], p[1024];
  snprintf(src, sizeof src, "%s/tree2-src", work);
  snprintf(down, sizeof down, "%s/tree2-down", work);
  make_tree(src);
  make_readable(src);
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, src, down, 0, EVSSH_SFTP_RECURSIVE), 0);
  /* cut some files short, remove one: resume per file completes them */
  for (int i = 0; i < FILES; i += 17) {
    tree_path(p, sizeof p, down, i);
    ck_assert_int_eq(truncate(p, (off_t)(tree_size(i) / 2)), 0);
  }
  tree_path(p, sizeof p, down, 3);
  unlink(p);
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, src, down, EVSSH_SFTP_RESUME, EVSSH_SFTP_RECURSIVE), 0);
  check_tree(down, false);
  /* a single file with the flag is just that file */
  char one[512], dst[512];
  tree_path(one, sizeof one, src, 150);
  snprintf(dst, sizeof dst, "%s/single", work);
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, one, dst, 0, EVSSH_SFTP_RECURSIVE), 0);
  ck_assert(sftp_test_prefix_ok(dst, tree_size(150), 150));
  /* an unreadable file inside: the tree fails with that file's error */
  tree_path(p, sizeof p, src, 100);
  ck_assert_int_eq(chmod(p, 0), 0);
  snprintf(dst, sizeof dst, "%s/tree2-fail", work);
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, src, dst, 0, EVSSH_SFTP_RECURSIVE), EVSSH_ESFTP);
  char want[1100];
  snprintf(want, sizeof want, "remote: Permission denied (%s)", p);
  ck_assert_str_eq(evssh_sftp_error(sftp), want);
  /* the root missing */
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, "/nonexistent-root", dst, 0, EVSSH_SFTP_RECURSIVE),
                   EVSSH_ESFTP);
  ck_assert_str_eq(evssh_sftp_error(sftp), "remote: No such file (/nonexistent-root)");
  ck_assert_int_eq(evssh_sftp_upload_flags(sftp, src, dst, 5, EVSSH_SFTP_RECURSIVE, NULL, NULL, NULL), EVSSH_EINVAL);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------------------- 20 hosts */

enum { HOSTS = 20 };

typedef struct host {
  evssh_session *s;
  evssh_sftp *sftp;
  char src[512], down[512], up[512];
  uint64_t size;
  int left;
  int failures;
  char error[1024];
} host;

static void host_done(evssh_sftp *sftp, int status, void *ud) {
  host *h = ud;
  h->left--;
  if (status) {
    h->failures++;
    snprintf(h->error, sizeof h->error, "%s", evssh_sftp_error(sftp));
  }
}

static void host_sftp_ready(evssh_sftp *sftp, int status, void *ud) {
  host *h = ud;
  if (status) {
    h->failures++;
    h->left = 0;
    snprintf(h->error, sizeof h->error, "%s", evssh_sftp_error(sftp));
    return;
  }
  ck_assert_int_eq(evssh_sftp_download(sftp, h->src, h->down, 0, NULL, host_done, h), 0);
  ck_assert_int_eq(evssh_sftp_upload(sftp, h->src, h->up, 0, NULL, host_done, h), 0);
}

static void host_ready(evssh_session *s, int status, void *ud) {
  host *h = ud;
  if (status) {
    h->failures++;
    h->left = 0;
    snprintf(h->error, sizeof h->error, "connect: %s", evssh_session_error(s));
    return;
  }
  h->sftp = evssh_sftp_open(s, host_sftp_ready, h);
  ck_assert_ptr_nonnull(h->sftp);
}

static bool hosts_busy(evssh_multi *m, void *ud) {
  host *hs = ud;
  for (int i = 0; i < HOSTS; i++)
    if (hs[i].left > 0) return true;
  return false;
}

START_TEST(test_twenty_sessions_one_multi) {
  static host hs[HOSTS];
  evssh_multi *m = evssh_multi_new();
  char port[32], kh[700], id[700];
  snprintf(port, sizeof port, "%d", peer.port);
  snprintf(kh, sizeof kh, "%s", peer.known_hosts);
  snprintf(id, sizeof id, "%s", peer.key_ed25519);
  for (int i = 0; i < HOSTS; i++) {
    host *h = &hs[i];
    memset(h, 0, sizeof *h);
    h->size = (uint64_t)(2 + i % 5) << 20;
    snprintf(h->src, sizeof h->src, "%s/host%d-src", work, i);
    snprintf(h->down, sizeof h->down, "%s/host%d-down", work, i);
    snprintf(h->up, sizeof h->up, "%s/host%d-up", work, i);
    sftp_test_make_file(h->src, h->size, (uint32_t)(1000 + i));
    h->left = 2;
    h->s = evssh_session_new("127.0.0.1");
    ck_assert_ptr_nonnull(h->s);
    ck_assert_int_eq(evssh_session_option(h->s, "User", peer.user), 0);
    ck_assert_int_eq(evssh_session_option(h->s, "Port", port), 0);
    ck_assert_int_eq(evssh_session_option(h->s, "UserKnownHostsFile", kh), 0);
    ck_assert_int_eq(evssh_session_option(h->s, "GlobalKnownHostsFile", "/dev/null"), 0);
    ck_assert_int_eq(evssh_session_option(h->s, "IdentityFile", id), 0);
    ck_assert_int_eq(evssh_session_option(h->s, "IdentitiesOnly", "yes"), 0);
    ck_assert_int_eq(evssh_session_read_config(h->s, "none"), 0);
    ck_assert_int_eq(evssh_session_connect_async(h->s, host_ready, h), 0);
    ck_assert_int_eq(evssh_multi_add(m, h->s), 0);
  }
  int rc;
  while ((rc = evssh_multi_process(m, 1000, hosts_busy, hs)) > 0) {
  }
  ck_assert_int_eq(rc, 0);
  for (int i = 0; i < HOSTS; i++) {
    host *h = &hs[i];
    ck_assert_msg(h->failures == 0, "host %d: %s", i, h->error);
    ck_assert(sftp_test_prefix_ok(h->down, h->size, (uint32_t)(1000 + i)));
    ck_assert(sftp_test_prefix_ok(h->up, h->size, (uint32_t)(1000 + i)));
    evssh_sftp_free(h->sftp);
    evssh_multi_remove(m, h->s);
    evssh_session_free(h->s);
  }
  evssh_multi_free(m);
}
END_TEST

static Suite *many_suite(void) {
  Suite *s = suite_create("sftp-many");
  TCase *tc = tcase_create("many");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_tree_200_files);
  tcase_add_test(tc, test_tree_resume_and_failure);
  tcase_add_test(tc, test_twenty_sessions_one_multi);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return sftp_test_main(many_suite(), &peer, NULL, work, sizeof work); }
