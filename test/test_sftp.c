/* Interop tests of the SFTP client against OpenSSH's sftp-server
 * (internal-sftp in the harness's sshd): every request kind, each
 * extension, the error text of status failures, whole-file transfers in
 * both directions (checksums equal, zero-length, resume at an offset and
 * from the destination's size, modes and times preserved, progress), many
 * transfers at once on one sftp, the pipeline's ramp and its memory cap,
 * a download driven from a foreign poll loop, and blocking calls made
 * from callbacks (refused on the same sftp, nested on another). Big transfers:
 * EVSSH_SFTP_TEST_MB each way (default 64; 1024 for the 1 GiB).
 * Skips (77) without sshd. */
#include "test_sftp_util.h"

#include <poll.h>
#include <sys/time.h>
#include <time.h>

static harness_peer peer;
static char work[256];

static void path_in(char *out, size_t outlen, const char *name) { snprintf(out, outlen, "%s/%s", work, name); }

/* ------------------------------------------------------- version, limits */

START_TEST(test_version_and_limits) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  ck_assert(evssh_sftp_ready(sftp));
  ck_assert_ptr_eq(evssh_sftp_session(sftp), s);
  ck_assert_str_eq(evssh_sftp_extension(sftp, "posix-rename@openssh.com"), "1");
  ck_assert_str_eq(evssh_sftp_extension(sftp, "statvfs@openssh.com"), "2");
  ck_assert_str_eq(evssh_sftp_extension(sftp, "limits@openssh.com"), "1");
  ck_assert_ptr_null(evssh_sftp_extension(sftp, "no-such-extension@example.com"));
  evssh_sftp_limits l;
  ck_assert_int_eq(evssh_sftp_server_limits(sftp, &l), 0);
  ck_assert_uint_eq(l.max_packet_length, 256 * 1024);
  ck_assert_uint_eq(l.max_read_length, 256 * 1024 - 1024);
  ck_assert_uint_eq(l.max_write_length, 256 * 1024 - 1024);
  ck_assert_str_eq(evssh_sftp_error(sftp), "");
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------------- request level */

static int open_file(evssh_sftp *sftp, const char *path, uint32_t flags, evssh_sftp_file **f) {
  sftp_test_wait w = {0};
  int rc = sftp_test_run(sftp, &w, evssh_sftp_open_file(sftp, path, flags, NULL, sftp_test_file_cb, &w));
  *f = w.file;
  return rc;
}

static int status_of(evssh_sftp *sftp, sftp_test_wait *w, int rc) { return sftp_test_run(sftp, w, rc); }

START_TEST(test_file_requests) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char p[512];
  path_in(p, sizeof p, "requests.txt");
  evssh_sftp_file *f;
  ck_assert_int_eq(open_file(sftp, p, EVSSH_SFTP_READ | EVSSH_SFTP_WRITE | EVSSH_SFTP_CREAT | EVSSH_SFTP_TRUNC, &f), 0);
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(evssh_sftp_file_path(f), p);

  sftp_test_wait w = {0};
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_write(sftp, f, 0, "hello, ", 7, sftp_test_status_cb, &w)), 0);
  /* two writes in flight at once, answered in turn */
  sftp_test_wait w1 = {0}, w2 = {0};
  ck_assert_int_eq(evssh_sftp_write(sftp, f, 7, "world", 5, sftp_test_status_cb, &w1), 0);
  ck_assert_int_eq(evssh_sftp_write(sftp, f, 12, "!\n", 2, sftp_test_status_cb, &w2), 0);
  ck_assert_uint_eq(evssh_sftp_pending(sftp), 2);
  ck_assert_int_eq(sftp_test_run(sftp, &w2, 0), 0);
  ck_assert(w1.done);

  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_read(sftp, f, 0, 100, sftp_test_data_cb, &w)), 0);
  ck_assert_uint_eq(w.len, 14);
  ck_assert(memcmp(w.text, "hello, world!\n", 14) == 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_read(sftp, f, 14, 100, sftp_test_data_cb, &w)), 0);
  ck_assert_uint_eq(w.len, 0); /* end of file */

  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_fstat(sftp, f, sftp_test_attrs_cb, &w)), 0);
  ck_assert(w.attrs.flags & EVSSH_SFTP_ATTR_SIZE);
  ck_assert_uint_eq(w.attrs.size, 14);
  ck_assert(S_ISREG(w.attrs.permissions));

  evssh_sftp_attrs a = {0};
  a.flags = EVSSH_SFTP_ATTR_ACMODTIME | EVSSH_SFTP_ATTR_PERMISSIONS;
  a.atime = 1000000000;
  a.mtime = 1234567890;
  a.permissions = 0640;
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_fsetstat(sftp, f, &a, sftp_test_status_cb, &w)), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_fsync(sftp, f, sftp_test_status_cb, &w)), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_fstatvfs(sftp, f, sftp_test_fs_cb, &w)), 0);
  ck_assert_uint_gt(w.fs.bsize, 0);
  ck_assert_uint_gt(w.fs.namemax, 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_close(sftp, f, sftp_test_status_cb, &w)), 0);

  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_int_eq(st.st_mtime, 1234567890);
  ck_assert_int_eq(st.st_atime, 1000000000);
  ck_assert_int_eq(st.st_mode & 0777, 0640);

  /* stat, setstat (size truncates), lstat */
  evssh_sftp_attrs got;
  ck_assert_int_eq(sftp_test_stat(sftp, p, &got), 0);
  ck_assert_uint_eq(got.size, 14);
  ck_assert_uint_eq(got.mtime, 1234567890);
  a.flags = EVSSH_SFTP_ATTR_SIZE;
  a.size = 5;
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_setstat(sftp, p, &a, sftp_test_status_cb, &w)), 0);
  ck_assert_uint_eq(sftp_test_size(p), 5);

  /* symlink / readlink / lstat / lsetstat */
  char link[512];
  path_in(link, sizeof link, "requests.link");
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_symlink(sftp, p, link, sftp_test_status_cb, &w)), 0);
  char target[512];
  ck_assert_int_eq(readlink(link, target, sizeof target), (ssize_t)strlen(p));
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_readlink(sftp, link, sftp_test_path_cb, &w)), 0);
  ck_assert_str_eq(w.text, p);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_lstat(sftp, link, sftp_test_attrs_cb, &w)), 0);
  ck_assert(S_ISLNK(w.attrs.permissions));
  a.flags = EVSSH_SFTP_ATTR_ACMODTIME;
  a.atime = a.mtime = 1111111111;
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_lsetstat(sftp, link, &a, sftp_test_status_cb, &w)), 0);
  ck_assert_int_eq(lstat(link, &st), 0);
  ck_assert_int_eq(st.st_mtime, 1111111111);
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_int_ne(st.st_mtime, 1111111111); /* the target is untouched */

  /* hardlink, rename (refuses to replace), posix-rename (replaces), remove */
  char hard[512], moved[512];
  path_in(hard, sizeof hard, "requests.hard");
  path_in(moved, sizeof moved, "requests.moved");
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_hardlink(sftp, p, hard, sftp_test_status_cb, &w)), 0);
  ck_assert_int_eq(stat(hard, &st), 0);
  ck_assert_int_eq(st.st_nlink, 2);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_rename(sftp, hard, moved, sftp_test_status_cb, &w)), 0);
  ck_assert_int_eq(access(moved, F_OK), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_rename(sftp, moved, link, sftp_test_status_cb, &w)), EVSSH_ESFTP);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_posix_rename(sftp, moved, link, sftp_test_status_cb, &w)), 0);
  ck_assert_int_eq(lstat(link, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_remove(sftp, link, sftp_test_status_cb, &w)), 0);
  ck_assert_int_ne(access(link, F_OK), 0);

  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

typedef struct listing {
  int entries;
  bool saw_a, saw_b, saw_dot;
  int done_status;
  bool done;
} listing;

static void list_entry(evssh_sftp *sftp, const evssh_sftp_name *e, void *ud) {
  listing *l = ud;
  l->entries++;
  if (!strcmp(e->filename, "a.txt")) {
    l->saw_a = true;
    ck_assert(e->attrs.flags & EVSSH_SFTP_ATTR_SIZE);
    ck_assert_uint_eq(e->attrs.size, 3);
    ck_assert(strstr(e->longname, "a.txt") != NULL);
  }
  if (!strcmp(e->filename, "b")) {
    l->saw_b = true;
    ck_assert(S_ISDIR(e->attrs.permissions));
  }
  if (!strcmp(e->filename, ".")) l->saw_dot = true;
}

static void list_done(evssh_sftp *sftp, int status, void *ud) {
  listing *l = ud;
  l->done = true;
  l->done_status = status;
}

static bool until_listed(evssh_session *s, void *ud) { return !((listing *)ud)->done; }

typedef struct batch_count {
  bool done;
  int status;
  size_t count;
} batch_count;

static void count_batch(evssh_sftp *sftp, int status, const evssh_sftp_name *names, size_t count, void *ud) {
  batch_count *b = ud;
  b->done = true;
  b->status = status;
  b->count = count;
}

static bool until_batch(evssh_session *s, void *ud) { return !((batch_count *)ud)->done; }

START_TEST(test_directory_requests) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char d[300], sub[512], f[512];
  path_in(d, sizeof d, "dir");
  snprintf(sub, sizeof sub, "%s/b", d);
  snprintf(f, sizeof f, "%s/a.txt", d);
  sftp_test_wait w = {0};
  evssh_sftp_attrs a = {0};
  a.flags = EVSSH_SFTP_ATTR_PERMISSIONS;
  a.permissions = 0750;
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_mkdir(sftp, d, &a, sftp_test_status_cb, &w)), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_mkdir(sftp, sub, NULL, sftp_test_status_cb, &w)), 0);
  struct stat st;
  ck_assert_int_eq(stat(d, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_int_eq(st.st_mode & 0777, 0750 & ~022);
  chmod(d, 0777);
  FILE *fp = fopen(f, "w");
  fputs("abc", fp);
  fclose(fp);
  for (int i = 0; i < 300; i++) { /* more than one READDIR batch */
    char n[600];
    snprintf(n, sizeof n, "%s/many-%03d", d, i);
    fclose(fopen(n, "w"));
  }

  listing l = {0};
  ck_assert_int_eq(evssh_sftp_list(sftp, d, list_entry, list_done, &l), 0);
  evssh_session_loop(s, -1, until_listed, &l);
  ck_assert_int_eq(l.done_status, 0);
  ck_assert_int_eq(l.entries, 300 + 2 + 2);
  ck_assert(l.saw_a && l.saw_b && l.saw_dot);
  ck_assert_uint_eq(evssh_sftp_pending(sftp), 0); /* the handle was closed */

  /* by hand: opendir, readdir batches to the end, close */
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_opendir(sftp, d, sftp_test_file_cb, &w)), 0);
  evssh_sftp_file *dir = w.file;
  size_t total = 0, batches = 0;
  for (;;) {
    batch_count b = {0};
    ck_assert_int_eq(evssh_sftp_readdir(sftp, dir, count_batch, &b), 0);
    evssh_session_loop(s, -1, until_batch, &b);
    ck_assert_int_eq(b.status, 0);
    if (!b.count) break;
    total += b.count;
    batches++;
  }
  ck_assert_uint_eq(total, 304);
  ck_assert_uint_gt(batches, 1);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_close(sftp, dir, sftp_test_status_cb, &w)), 0);

  /* rmdir of a non-empty directory fails with the server's text and path */
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_rmdir(sftp, d, sftp_test_status_cb, &w)), EVSSH_ESFTP);
  char want[600];
  snprintf(want, sizeof want, "(%s)", d);
  ck_assert_msg(strstr(evssh_sftp_error(sftp), want) && !strncmp(evssh_sftp_error(sftp), "remote: ", 8),
                "%s", evssh_sftp_error(sftp));
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_rmdir(sftp, sub, sftp_test_status_cb, &w)), 0);
  ck_assert_int_ne(access(sub, F_OK), 0);

  /* realpath, expand-path, home-directory */
  char messy[600];
  snprintf(messy, sizeof messy, "%s/b/../a.txt", d);
  mkdir(sub, 0777);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_realpath(sftp, messy, sftp_test_path_cb, &w)), 0);
  ck_assert_str_eq(w.text, f);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_realpath(sftp, ".", sftp_test_path_cb, &w)), 0);
  char home[sizeof w.text];
  memcpy(home, w.text, sizeof home);
  ck_assert(home[0] == '/');
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_expand_path(sftp, "~", sftp_test_path_cb, &w)), 0);
  ck_assert_str_eq(w.text, home);
  memset(&w, 0, sizeof w);
  ck_assert_msg(status_of(sftp, &w, evssh_sftp_home_directory(sftp, peer.user, sftp_test_path_cb, &w)) == 0, "%s", evssh_sftp_error(sftp));
  ck_assert_str_eq(w.text, home);

  /* statvfs */
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_statvfs(sftp, d, sftp_test_fs_cb, &w)), 0);
  ck_assert_uint_gt(w.fs.blocks, 0);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

typedef struct ids_result {
  bool done;
  int status;
  char users[2][64], groups[2][64];
  size_t nu, ng;
} ids_result;

static void ids_cb(evssh_sftp *sftp, int status, const char *const *users, size_t nu, const char *const *groups,
                   size_t ng, void *ud) {
  ids_result *r = ud;
  r->done = true;
  r->status = status;
  r->nu = nu;
  r->ng = ng;
  for (size_t i = 0; i < nu && i < 2; i++) snprintf(r->users[i], 64, "%s", users[i]);
  for (size_t i = 0; i < ng && i < 2; i++) snprintf(r->groups[i], 64, "%s", groups[i]);
}

static bool until_ids(evssh_session *s, void *ud) { return !((ids_result *)ud)->done; }

typedef struct raw_reply {
  bool done;
  int status;
  uint64_t max_packet;
} raw_reply;

static void raw_cb(evssh_sftp *sftp, int status, evssh_reader *r, void *ud) {
  raw_reply *rr = ud;
  rr->done = true;
  rr->status = status;
  if (!status) ck_assert_int_eq(evssh_read_u64(r, &rr->max_packet), 0);
}

static bool until_raw(evssh_session *s, void *ud) { return !((raw_reply *)ud)->done; }

START_TEST(test_extension_requests) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  ids_result r = {0};
  uint32_t uids[2] = {0, 4000000000u}, gids[1] = {0};
  ck_assert_int_eq(evssh_sftp_users_groups_by_id(sftp, uids, 2, gids, 1, ids_cb, &r), 0);
  evssh_session_loop(s, -1, until_ids, &r);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.nu, 2);
  ck_assert_uint_eq(r.ng, 1);
  ck_assert_str_eq(r.users[0], "root");
  ck_assert_str_eq(r.users[1], ""); /* unknown id */
  ck_assert_str_eq(r.groups[0], "root");

  /* copy-data between two handles, server side */
  char src[512], dst[512];
  path_in(src, sizeof src, "copy-src");
  path_in(dst, sizeof dst, "copy-dst");
  sftp_test_make_file(src, 100000, 7);
  evssh_sftp_file *from, *to;
  ck_assert_int_eq(open_file(sftp, src, EVSSH_SFTP_READ, &from), 0);
  ck_assert_int_eq(open_file(sftp, dst, EVSSH_SFTP_WRITE | EVSSH_SFTP_CREAT | EVSSH_SFTP_TRUNC, &to), 0);
  sftp_test_wait w = {0};
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_copy_data(sftp, from, 0, 0, to, 0, sftp_test_status_cb, &w)), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_close(sftp, from, sftp_test_status_cb, &w)), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_close(sftp, to, sftp_test_status_cb, &w)), 0);
  ck_assert(sftp_test_prefix_ok(dst, 100000, 7));

  /* any extension by name, raw */
  raw_reply rr = {0};
  ck_assert_int_eq(evssh_sftp_extended(sftp, "limits@openssh.com", NULL, 0, raw_cb, &rr), 0);
  evssh_session_loop(s, -1, until_raw, &rr);
  ck_assert_int_eq(rr.status, 0);
  ck_assert_uint_eq(rr.max_packet, 256 * 1024);
  rr = (raw_reply){0};
  ck_assert_int_eq(evssh_sftp_extended(sftp, "nonsense@example.com", "x", 1, raw_cb, &rr), 0);
  evssh_session_loop(s, -1, until_raw, &rr);
  ck_assert_int_eq(rr.status, EVSSH_ESFTP);
  ck_assert_uint_eq(evssh_sftp_status(sftp), EVSSH_SFTP_FX_OP_UNSUPPORTED);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_status_errors) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char p[512], want[700];
  path_in(p, sizeof p, "no/such/file");
  ck_assert_int_eq(sftp_test_stat(sftp, p, NULL), EVSSH_ESFTP);
  snprintf(want, sizeof want, "remote: No such file (%s)", p);
  ck_assert_str_eq(evssh_sftp_error(sftp), want);
  ck_assert_uint_eq(evssh_sftp_status(sftp), EVSSH_SFTP_FX_NO_SUCH_FILE);

  /* two paths: both named */
  sftp_test_wait w = {0};
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_rename(sftp, p, "/tmp/x", sftp_test_status_cb, &w)), EVSSH_ESFTP);
  snprintf(want, sizeof want, "remote: No such file (%s -> /tmp/x)", p);
  ck_assert_str_eq(evssh_sftp_error(sftp), want);

  /* a handle's request: the path it was opened with */
  char f[512];
  path_in(f, sizeof f, "readonly.txt");
  sftp_test_make_file(f, 10, 1);
  evssh_sftp_file *h;
  ck_assert_int_eq(open_file(sftp, f, EVSSH_SFTP_READ, &h), 0);
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_write(sftp, h, 0, "x", 1, sftp_test_status_cb, &w)), EVSSH_ESFTP);
  ck_assert_msg(strstr(evssh_sftp_error(sftp), f) != NULL, "%s", evssh_sftp_error(sftp));
  memset(&w, 0, sizeof w);
  ck_assert_int_eq(status_of(sftp, &w, evssh_sftp_close(sftp, h, sftp_test_status_cb, &w)), 0);

  /* bad arguments are refused at the call, with no callback */
  ck_assert_int_eq(evssh_sftp_stat(sftp, NULL, sftp_test_attrs_cb, &w), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_sftp_read(sftp, NULL, 0, 10, sftp_test_data_cb, &w), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_sftp_upload(sftp, "/nonexistent/local/file", "/tmp/x", 0, NULL, NULL, NULL), EVSSH_EINVAL);
  ck_assert_str_eq(evssh_sftp_error(sftp), "local: /nonexistent/local/file: No such file or directory");
  ck_assert_uint_eq(evssh_sftp_pending(sftp), 0);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------------- whole files */

typedef struct progress_log {
  uint64_t last, total, calls;
  bool monotonic;
  size_t max_pending, first_pending;
  bool done;
  int status;
  char error[1024];
  uint64_t transferred;
} progress_log;

static void log_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  progress_log *p = ud;
  if (p->calls && done < p->last) p->monotonic = false;
  if (p->calls == 1) p->first_pending = evssh_sftp_pending(sftp);
  p->calls++;
  p->last = done;
  p->total = total;
  size_t pend = evssh_sftp_pending(sftp);
  if (pend > p->max_pending) p->max_pending = pend;
}

static void log_done(evssh_sftp *sftp, int status, void *ud) {
  progress_log *p = ud;
  p->done = true;
  p->status = status;
  p->transferred = evssh_sftp_transferred(sftp);
  snprintf(p->error, sizeof p->error, "%s", evssh_sftp_error(sftp));
}

static bool until_logged(evssh_session *s, void *ud) { return !((progress_log *)ud)->done; }

/* 64 MiB each way by default (256 MiB made test_sftp a minute long on a
   loaded 2-core machine; the suite must stay short): EVSSH_SFTP_TEST_MB=1024
   for the 1 GiB, and test/bench/bench_sftp moves 1 GiB each way
   and compares the copies */
static uint64_t big_size(void) {
  const char *mb = getenv("EVSSH_SFTP_TEST_MB");
  return (uint64_t)(mb && *mb ? strtoull(mb, NULL, 10) : 64) << 20;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_big_each_way) {
  uint64_t size = big_size();
  evssh_session *s = sftp_test_connect(&peer, "Ciphers=aes128-gcm@openssh.com");
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], down[512], up[512];
  path_in(src, sizeof src, "big-src");
  path_in(down, sizeof down, "big-down");
  path_in(up, sizeof up, "big-up");
  sftp_test_make_file(src, size, 42);

  progress_log pl = {.monotonic = true};
  double t0 = now_s();
  ck_assert_int_eq(evssh_sftp_download(sftp, src, down, 0, log_progress, log_done, &pl), 0);
  evssh_session_loop(s, -1, until_logged, &pl);
  double t1 = now_s();
  ck_assert_msg(pl.status == 0, "%s", pl.error);
  ck_assert(pl.monotonic);
  ck_assert_uint_eq(pl.last, size);
  ck_assert_uint_eq(pl.total, size);
  ck_assert_uint_eq(pl.transferred, size);
  /* the pipeline ramps: few requests at first, 64 once it runs */
  ck_assert_uint_le(pl.first_pending, 8);
  if (size >= (64u << 20)) ck_assert_uint_ge(pl.max_pending, 60);
  ck_assert(sftp_test_same(src, down));

  progress_log pu = {.monotonic = true};
  double t2 = now_s();
  ck_assert_int_eq(evssh_sftp_upload(sftp, src, up, 0, log_progress, log_done, &pu), 0);
  evssh_session_loop(s, -1, until_logged, &pu);
  double t3 = now_s();
  ck_assert_msg(pu.status == 0, "%s", pu.error);
  ck_assert(pu.monotonic);
  ck_assert_uint_eq(pu.last, size);
  if (size >= (64u << 20)) ck_assert_uint_ge(pu.max_pending, 60);
  ck_assert(sftp_test_same(src, up));
  fprintf(stderr, "sftp %llu MiB: download %.0f MB/s, upload %.0f MB/s (informational)\n",
          (unsigned long long)(size >> 20), size / 1e6 / (t1 - t0), size / 1e6 / (t3 - t2));
  unlink(src);
  unlink(down);
  unlink(up);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_wait_forms_and_edges) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], dst[512], back[512];
  /* zero bytes, one byte, one block, a block and a byte */
  uint64_t sizes[] = {0, 1, 261120, 261121, 3u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    snprintf(src, sizeof src, "%s/edge-%zu", work, i);
    snprintf(dst, sizeof dst, "%s/edge-%zu.up", work, i);
    snprintf(back, sizeof back, "%s/edge-%zu.down", work, i);
    sftp_test_make_file(src, sizes[i], (uint32_t)i);
    ck_assert_msg(evssh_sftp_upload_wait(sftp, src, dst) == 0, "%s", evssh_sftp_error(sftp));
    ck_assert_uint_eq(evssh_sftp_transferred(sftp), sizes[i]);
    ck_assert_msg(evssh_sftp_download_wait(sftp, dst, back) == 0, "%s", evssh_sftp_error(sftp));
    ck_assert(sftp_test_prefix_ok(back, sizes[i], (uint32_t)i));
  }
  /* a download over a longer local file leaves exactly the remote bytes */
  sftp_test_make_file(back, 5u << 20, 99);
  ck_assert_int_eq(evssh_sftp_download_wait(sftp, src, back), 0);
  ck_assert(sftp_test_prefix_ok(back, 3u << 20, 4));
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

/* truncate a copy of src at `at` bytes */
static void truncated_copy(const char *src, const char *dst, uint64_t at) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "head -c %llu '%s' > '%s'", (unsigned long long)at, src, dst);
  ck_assert_int_eq(system(cmd), 0);
  chmod(dst, 0666);
}

START_TEST(test_resume) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], part[512];
  uint64_t size = 10u << 20;
  path_in(src, sizeof src, "resume-src");
  path_in(part, sizeof part, "resume-part");
  sftp_test_make_file(src, size, 5);

  /* download: from the local file's size, and from a given offset */
  truncated_copy(src, part, 3333333);
  progress_log pl = {.monotonic = true};
  ck_assert_int_eq(evssh_sftp_download(sftp, src, part, EVSSH_SFTP_RESUME, log_progress, log_done, &pl), 0);
  evssh_session_loop(s, -1, until_logged, &pl);
  ck_assert_msg(pl.status == 0, "%s", pl.error);
  ck_assert(sftp_test_prefix_ok(part, size, 5));
  ck_assert_uint_eq(pl.last, size);
  truncated_copy(src, part, 1000);
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, src, part, 1000, 0), 0);
  ck_assert(sftp_test_prefix_ok(part, size, 5));
  /* resuming a complete file moves nothing and succeeds */
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, src, part, EVSSH_SFTP_RESUME, 0), 0);
  ck_assert(sftp_test_prefix_ok(part, size, 5));

  /* upload: from the remote file's size, and from a given offset */
  truncated_copy(src, part, 7777777);
  ck_assert_msg(evssh_sftp_upload_flags_wait(sftp, src, part, EVSSH_SFTP_RESUME, 0) == 0, "%s", evssh_sftp_error(sftp));
  ck_assert(sftp_test_prefix_ok(part, size, 5));
  /* a longer old remote file is cut to the new size */
  sftp_test_make_file(part, size + 12345, 5);
  ck_assert_int_eq(evssh_sftp_upload_flags_wait(sftp, src, part, 4096, 0), 0);
  ck_assert(sftp_test_prefix_ok(part, size, 5));
  /* an offset past the end is refused at once */
  ck_assert_int_eq(evssh_sftp_upload_flags(sftp, src, part, size + 1, 0, NULL, NULL, NULL), EVSSH_EINVAL);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_preserve_and_fsync) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], up[512], down[512];
  path_in(src, sizeof src, "keep-src");
  path_in(up, sizeof up, "keep-up");
  path_in(down, sizeof down, "keep-down");
  sftp_test_make_file(src, 100000, 3);
  ck_assert_int_eq(chmod(src, 0604), 0);
  struct timespec ts[2] = {{1200000000, 0}, {1300000000, 0}};
  ck_assert_int_eq(utimensat(AT_FDCWD, src, ts, 0), 0);
  ck_assert_int_eq(evssh_sftp_upload_flags_wait(sftp, src, up, 0, EVSSH_SFTP_PRESERVE | EVSSH_SFTP_FSYNC), 0);
  struct stat st;
  ck_assert_int_eq(stat(up, &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0604);
  ck_assert_int_eq(st.st_mtime, 1300000000);
  ck_assert_int_eq(st.st_atime, 1200000000);
  ck_assert_int_eq(evssh_sftp_download_flags_wait(sftp, up, down, 0, EVSSH_SFTP_PRESERVE), 0);
  ck_assert_int_eq(stat(down, &st), 0);
  ck_assert_int_eq(st.st_mode & 07777, 0604);
  ck_assert_int_eq(st.st_mtime, 1300000000);
  ck_assert(sftp_test_prefix_ok(down, 100000, 3));
  /* without the flag: fresh times */
  unlink(down);
  ck_assert_int_eq(evssh_sftp_download_wait(sftp, up, down), 0);
  ck_assert_int_eq(stat(down, &st), 0);
  ck_assert_int_gt(st.st_mtime, 1300000000);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

typedef struct many {
  int left;
  int failures;
  char error[1024];
} many;

static void many_done(evssh_sftp *sftp, int status, void *ud) {
  many *m = ud;
  m->left--;
  if (status) {
    m->failures++;
    snprintf(m->error, sizeof m->error, "%s", evssh_sftp_error(sftp));
  }
}

static bool until_many(evssh_session *s, void *ud) { return ((many *)ud)->left > 0; }

START_TEST(test_many_transfers_one_sftp) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  enum { N = 12 };
  char src[N][512], dst[N][512];
  many m = {0};
  for (int i = 0; i < N; i++) {
    snprintf(src[i], sizeof src[i], "%s/many-src-%d", work, i);
    snprintf(dst[i], sizeof dst[i], "%s/many-dst-%d", work, i);
    sftp_test_make_file(src[i], (uint64_t)(i + 1) * 700000, (uint32_t)(100 + i));
  }
  /* half down, half up, all at once */
  for (int i = 0; i < N; i++) {
    int rc = i % 2 ? evssh_sftp_upload(sftp, src[i], dst[i], 0, NULL, many_done, &m)
                   : evssh_sftp_download(sftp, src[i], dst[i], 0, NULL, many_done, &m);
    ck_assert_int_eq(rc, 0);
    m.left++;
  }
  evssh_session_loop(s, -1, until_many, &m);
  ck_assert_msg(m.failures == 0, "%s", m.error);
  for (int i = 0; i < N; i++) ck_assert(sftp_test_prefix_ok(dst[i], (uint64_t)(i + 1) * 700000, (uint32_t)(100 + i)));
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_inflight_cap) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], dst[512];
  path_in(src, sizeof src, "cap-src");
  path_in(dst, sizeof dst, "cap-dst");
  sftp_test_make_file(src, 8u << 20, 11);
  /* 32 KiB blocks under a 128 KiB cap: at most 4 (+1 when idle) in flight */
  ck_assert_int_eq(evssh_sftp_set_pipeline(sftp, 64, 32768, 128 * 1024), 0);
  progress_log pl = {.monotonic = true};
  ck_assert_int_eq(evssh_sftp_download(sftp, src, dst, 0, log_progress, log_done, &pl), 0);
  evssh_session_loop(s, -1, until_logged, &pl);
  ck_assert_int_eq(pl.status, 0);
  ck_assert_uint_le(pl.max_pending, 5);
  chmod(dst, 0666);
  ck_assert_uint_ge(pl.max_pending, 3);
  progress_log pu = {.monotonic = true};
  ck_assert_int_eq(evssh_sftp_upload(sftp, src, dst, 0, log_progress, log_done, &pu), 0);
  evssh_session_loop(s, -1, until_logged, &pu);
  ck_assert_int_eq(pu.status, 0);
  ck_assert_uint_le(pu.max_pending, 5);
  ck_assert(sftp_test_prefix_ok(dst, 8u << 20, 11));
  /* request count limit: 2 */
  ck_assert_int_eq(evssh_sftp_set_pipeline(sftp, 2, 0, 0), 0);
  progress_log p2 = {.monotonic = true};
  ck_assert_int_eq(evssh_sftp_download(sftp, src, dst, 0, log_progress, log_done, &p2), 0);
  evssh_session_loop(s, -1, until_logged, &p2);
  ck_assert_int_eq(p2.status, 0);
  ck_assert_uint_le(p2.max_pending, 2);
  ck_assert_int_eq(evssh_sftp_set_pipeline(sftp, 2000, 0, 0), EVSSH_EINVAL);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

/* a poll loop of our own, driving the session through the foreign-loop hooks */
START_TEST(test_foreign_loop) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  char src[512], dst[512];
  path_in(src, sizeof src, "foreign-src");
  path_in(dst, sizeof dst, "foreign-dst");
  sftp_test_make_file(src, 20u << 20, 21);
  progress_log pl = {.monotonic = true};
  ck_assert_int_eq(evssh_sftp_download(sftp, src, dst, 0, log_progress, log_done, &pl), 0);
  while (!pl.done) {
    int ev = evssh_session_events(s);
    struct pollfd pfd = {evssh_session_fd(s), (short)(((ev & EVSSH_READ) ? POLLIN : 0) | ((ev & EVSSH_WRITE) ? POLLOUT : 0)), 0};
    int timeout = evssh_session_timeout(s);
    ck_assert_int_ge(poll(&pfd, 1, timeout < 0 || timeout > 1000 ? 1000 : timeout), 0);
    int re = ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) ? EVSSH_READ : 0) | ((pfd.revents & POLLOUT) ? EVSSH_WRITE : 0);
    ck_assert_int_ge(evssh_session_handle_events(s, re), 0);
  }
  ck_assert_msg(pl.status == 0, "%s", pl.error);
  ck_assert(sftp_test_prefix_ok(dst, 20u << 20, 21));
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

/* free from inside a callback: the rest is silenced, nothing leaks */
static void free_in_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  if (done > (1u << 20)) {
    *(bool *)ud = true;
    evssh_sftp_free(sftp);
  }
}

static void must_not_run(evssh_sftp *sftp, int status, void *ud) { ck_abort_msg("done ran after free"); }

static bool until_flag(evssh_session *s, void *ud) { return !*(bool *)ud; }

START_TEST(test_free_from_callback_and_two_sftps) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *a = sftp_test_start(s), *b = sftp_test_start(s);
  char src[512], dst[512], dst2[512];
  path_in(src, sizeof src, "free-src");
  path_in(dst, sizeof dst, "free-dst");
  path_in(dst2, sizeof dst2, "free-dst2");
  sftp_test_make_file(src, 16u << 20, 8);
  bool freed = false;
  ck_assert_int_eq(evssh_sftp_download(a, src, dst, 0, free_in_progress, must_not_run, &freed), 0);
  ck_assert_int_eq(evssh_sftp_download(a, src, dst2, 0, NULL, must_not_run, NULL), 0);
  evssh_session_loop(s, -1, until_flag, &freed);
  /* the other sftp on the session is unaffected */
  ck_assert_int_eq(evssh_sftp_download_wait(b, src, dst), 0);
  ck_assert(sftp_test_prefix_ok(dst, 16u << 20, 8));
  evssh_sftp_free(b);
  /* freeing a sftp whose session is gone */
  evssh_sftp *c = sftp_test_start(s);
  evssh_session_free(s);
  ck_assert(!evssh_sftp_ready(c));
  ck_assert_int_eq(evssh_sftp_download(c, src, dst, 0, NULL, NULL, NULL), EVSSH_ECLOSED);
  evssh_sftp_free(c);
}
END_TEST

/* Blocking calls from callbacks: from one of the same sftp's callbacks
   refused (its replies are being dispatched further up), from another's a
   nested loop, during which the first sftp's replies keep arriving and are
   dispatched in order once the callback returns. */
typedef struct nested_ctx {
  evssh_sftp *a, *b;
  char src[512], a_dst[512], same[512], b_dst[512];
  int same_rc, other_rc;
  char same_error[1024];
  bool ran, a_done, stat_sent;
  int a_status;
  evssh_sftp *started;
} nested_ctx;

static void nested_stat_cb(evssh_sftp *sftp, int status, const evssh_sftp_attrs *attrs, void *ud) {
  nested_ctx *c = ud;
  c->ran = true;
  c->same_rc = evssh_sftp_download_wait(c->a, c->src, c->same);
  snprintf(c->same_error, sizeof c->same_error, "%s", evssh_sftp_error(c->a));
  c->other_rc = evssh_sftp_download_wait(c->b, c->src, c->b_dst);
  evssh_error err;
  c->started = evssh_sftp_start(evssh_sftp_session(sftp), &err);
}

static void nested_a_done(evssh_sftp *sftp, int status, void *ud) {
  nested_ctx *c = ud;
  c->a_done = true;
  c->a_status = status;
}

static void nested_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  nested_ctx *c = ud;
  if (done < (4u << 20) || c->stat_sent) return;
  c->stat_sent = true;
  ck_assert_int_eq(evssh_sftp_stat(c->a, c->src, nested_stat_cb, c), 0);
}

static bool until_a_done(evssh_session *s, void *ud) { return !((nested_ctx *)ud)->a_done; }

START_TEST(test_blocking_calls_from_callbacks) {
  evssh_session *s = sftp_test_connect(&peer, NULL);
  nested_ctx c = {0};
  c.a = sftp_test_start(s);
  c.b = sftp_test_start(s);
  path_in(c.src, sizeof c.src, "nested-src");
  path_in(c.a_dst, sizeof c.a_dst, "nested-a");
  path_in(c.same, sizeof c.same, "nested-same");
  path_in(c.b_dst, sizeof c.b_dst, "nested-b");
  sftp_test_make_file(c.src, 24u << 20, 21);
  /* the stat goes out once a's download is well under way, so its answer
     (which runs the nested loop) sits among READ replies, partial packets
     behind it */
  ck_assert_int_eq(evssh_sftp_download(c.a, c.src, c.a_dst, 0, nested_progress, nested_a_done, &c), 0);
  evssh_session_loop(s, -1, until_a_done, &c);
  ck_assert(c.ran);
  ck_assert_int_eq(c.same_rc, EVSSH_EBUSY);
  ck_assert_msg(strstr(c.same_error, "same sftp's callbacks"), "%s", c.same_error);
  ck_assert_int_eq(c.other_rc, 0);
  ck_assert_msg(c.a_status == 0, "%s", evssh_sftp_error(c.a));
  ck_assert(sftp_test_prefix_ok(c.a_dst, 24u << 20, 21));
  ck_assert_uint_eq(sftp_test_size(c.a_dst), 24u << 20);
  ck_assert(sftp_test_prefix_ok(c.b_dst, 24u << 20, 21));
  ck_assert_uint_eq(sftp_test_size(c.b_dst), 24u << 20);
  ck_assert_int_eq(access(c.same, F_OK), -1); /* the refused call touched nothing */
  /* evssh_sftp_start from a callback: a nested loop too */
  ck_assert(c.started && evssh_sftp_ready(c.started));
  evssh_sftp_free(c.started);
  evssh_sftp_free(c.b);
  evssh_sftp_free(c.a);
  evssh_session_free(s);
}
END_TEST

static Suite *sftp_suite(void) {
  Suite *s = suite_create("sftp");
  TCase *tc = tcase_create("sshd");
  tcase_set_timeout(tc, 600); /* bulk runs slowly on a loaded 2-CPU box, and under valgrind */
  tcase_add_test(tc, test_version_and_limits);
  tcase_add_test(tc, test_file_requests);
  tcase_add_test(tc, test_directory_requests);
  tcase_add_test(tc, test_extension_requests);
  tcase_add_test(tc, test_status_errors);
  tcase_add_test(tc, test_big_each_way);
  tcase_add_test(tc, test_wait_forms_and_edges);
  tcase_add_test(tc, test_resume);
  tcase_add_test(tc, test_preserve_and_fsync);
  tcase_add_test(tc, test_many_transfers_one_sftp);
  tcase_add_test(tc, test_inflight_cap);
  tcase_add_test(tc, test_foreign_loop);
  tcase_add_test(tc, test_free_from_callback_and_two_sftps);
  tcase_add_test(tc, test_blocking_calls_from_callbacks);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return sftp_test_main(sftp_suite(), &peer, NULL, work, sizeof work); }
