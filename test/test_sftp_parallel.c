/* Uploads spread over several "sftp" channels of one connection
 * (evssh_sftp_set_upload_channels) against the harness's sshd
 * (internal-sftp): a big upload over 4 channels with equal checksums and
 * every channel carrying WRITEs (the session's log says how many, and
 * evssh_sftp_upload_channels() how many are open), the channels kept for
 * the next upload, fsync and preserved times with the extra handles; the
 * connection cut in the middle (the reported prefix is in place, resuming
 * from it completes the file); a server that refuses the extra channels
 * (a second sshd with MaxSessions 2: the upload completes on fewer and the
 * log says so); a full remote disk while 4 channels write (the upload
 * fails with the server's status and the file is cut back to the prefix
 * reported; root only: a small tmpfs); and uploads over several channels
 * from sessions in one evssh_multi. Sizes: EVSSH_SFTP_TEST_MB (default 256, 64 under ASan).
 * Skips (77) without sshd. */
#include "test_sftp_util.h"

#include <sys/mount.h>
#include <time.h>

static harness_peer peer, limited;
static char work[256];

static void path_in(char *out, size_t outlen, const char *name) { snprintf(out, outlen, "%s/%s", work, name); }

static uint64_t big_size(void) {
  const char *mb = getenv("EVSSH_SFTP_TEST_MB");
#if defined(__SANITIZE_ADDRESS__)
  uint64_t dflt = 64;
#else
  uint64_t dflt = 256;
#endif
  return (uint64_t)(mb && *mb ? strtoull(mb, NULL, 10) : dflt) << 20;
}

/* ------------------------------------------------------- the log, kept */

typedef struct log_lines {
  char text[16384];
  size_t len;
} log_lines;

static void keep_log(evssh_session *s, int level, const char *message, void *ud) {
  log_lines *l = ud;
  if (level > EVSSH_LOG_INFO || strncmp(message, "sftp: ", 6)) return;
  int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", message);
  if (n > 0 && l->len + (size_t)n < sizeof l->text) l->len += (size_t)n;
}

static unsigned count_of(const char *hay, const char *needle) {
  unsigned n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

/* channels the last upload's log line says carried its WRITEs (0: none) */
static unsigned channels_used(const log_lines *l) {
  const char *last = NULL, *p = l->text;
  while ((p = strstr(p, " used "))) last = p++;
  unsigned n = 0;
  if (last) sscanf(last, " used %u channel", &n);
  return n;
}

/* --------------------------------------------------------- transfers */

typedef sftp_test_result result;

static void on_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  result *r = ud;
  ck_assert_uint_ge(done, r->last); /* a prefix: never shrinks */
  r->last = done;
}

static result upload(evssh_sftp *sftp, const char *from, const char *to, uint64_t offset, unsigned flags) {
  result r = {0};
  ck_assert_int_eq(evssh_sftp_upload_flags(sftp, from, to, offset, flags, on_progress, sftp_test_done_cb, &r), 0);
  evssh_session_loop(evssh_sftp_session(sftp), -1, sftp_test_until_done, &r);
  ck_assert(r.done);
  return r;
}

/* does path start with the first len bytes of the stream for seed? */
static bool starts_ok(const char *path, uint64_t len, uint32_t seed) {
  char head[600];
  snprintf(head, sizeof head, "%s.head", path);
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "head -c %llu '%s' > '%s'", (unsigned long long)len, path, head);
  ck_assert_int_eq(system(cmd), 0);
  bool ok = sftp_test_prefix_ok(head, len, seed);
  unlink(head);
  return ok;
}

typedef struct want_channels {
  evssh_sftp *sftp;
  unsigned n;
} want_channels;

static bool until_channels(evssh_session *s, void *ud) {
  want_channels *w = ud;
  return evssh_sftp_upload_channels(w->sftp) < w->n;
}

/* n channels open before the upload that matters: a first upload big
   enough opens them (lazily), then the loop runs until all are ready */
static void open_channels(evssh_sftp *sftp, unsigned n) {
  char warm[512], warm_up[512];
  path_in(warm, sizeof warm, "warm");
  path_in(warm_up, sizeof warm_up, "warm-up");
  sftp_test_make_file(warm, 4u << 20, 2);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, n), 0);
  result r = upload(sftp, warm, warm_up, 0, 0);
  ck_assert_msg(r.status == 0, "%s", r.error);
  want_channels w = {sftp, n};
  evssh_session *s = evssh_sftp_session(sftp);
  for (int i = 0; i < 600 && until_channels(s, &w); i++) evssh_session_process(s, 100, until_channels, &w);
  ck_assert_uint_eq(evssh_sftp_upload_channels(sftp), n);
  unlink(warm);
  unlink(warm_up);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_four_channels) {
  uint64_t size = big_size();
  evssh_session *s = sftp_test_connect(&peer, "Ciphers=aes128-gcm@openssh.com");
  log_lines log = {0};
  evssh_session_set_log(s, EVSSH_LOG_INFO, keep_log, &log);
  evssh_sftp *sftp = sftp_test_start(s);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, 0), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, EVSSH_SFTP_MAX_UPLOAD_CHANNELS + 1), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(NULL, 2), EVSSH_EINVAL);
  ck_assert_uint_eq(evssh_sftp_upload_channels(sftp), 1);
  char src[512], half[512], up[512], small[512], small_up[512];
  path_in(src, sizeof src, "par-src");
  path_in(half, sizeof half, "par-half");
  path_in(up, sizeof up, "par-up");
  path_in(small, sizeof small, "par-small");
  path_in(small_up, sizeof small_up, "par-small-up");
  sftp_test_make_file(src, size, 77);
  sftp_test_make_file(half, size / 2, 78);

  /* a small upload opens no extra channel */
  sftp_test_make_file(small, 100000, 3);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, 4), 0);
  result r = upload(sftp, small, small_up, 0, 0);
  ck_assert_msg(r.status == 0, "%s", r.error);
  ck_assert(sftp_test_prefix_ok(small_up, 100000, 3));
  ck_assert_uint_eq(evssh_sftp_upload_channels(sftp), 1);
  ck_assert_uint_eq(channels_used(&log), 1);

  /* a bigger one opens them (open_channels: one such upload, then the
     loop until they are ready, so the big upload has them from its start
     however loaded the machine is) */
  open_channels(sftp, 4);
  r = upload(sftp, src, up, 0, 0);
  ck_assert_msg(r.status == 0, "%s", r.error);
  ck_assert_uint_eq(r.transferred, size);
  ck_assert_uint_eq(r.last, size);
  ck_assert(sftp_test_same(src, up));
  ck_assert_uint_eq(evssh_sftp_upload_channels(sftp), 4);
  ck_assert_msg(channels_used(&log) == 4, "log:\n%s", log.text);

  /* the channels are kept: the next upload (synced, times kept, over the
     longer file the last one left: TRUNC) uses them, and opens none */
  unsigned before = count_of(log.text, "could not");
  struct timespec ts[2] = {{1000000000, 0}, {1234567890, 0}};
  ck_assert_int_eq(utimensat(AT_FDCWD, half, ts, 0), 0);
  r = upload(sftp, half, up, 0, EVSSH_SFTP_FSYNC | EVSSH_SFTP_PRESERVE);
  ck_assert_msg(r.status == 0, "%s", r.error);
  ck_assert(sftp_test_same(half, up));
  ck_assert_msg(channels_used(&log) == 4, "log:\n%s", log.text);
  ck_assert_uint_eq(count_of(log.text, "could not"), before);
  struct stat st;
  ck_assert_int_eq(stat(up, &st), 0);
  ck_assert_int_eq(st.st_mtime, 1234567890);

  /* fewer wanted: idle channels close */
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, 2), 0);
  ck_assert_uint_eq(evssh_sftp_upload_channels(sftp), 2);
  unlink(src);
  unlink(half);
  unlink(up);
  unlink(small);
  unlink(small_up);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
}
END_TEST

typedef struct cut_run {
  result r;
  uint64_t at;
  bool killed;
  unsigned channels;
} cut_run;

static void cut_at(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  cut_run *c = ud;
  on_progress(sftp, done, total, &c->r);
  /* only once every channel carries the upload */
  if (!c->killed && done >= c->at && evssh_sftp_upload_channels(sftp) == 4) {
    c->killed = true;
    c->channels = evssh_sftp_upload_channels(sftp);
    ck_assert_int_gt(kill_descendants(peer.pid), 0);
  }
}

static void cut_done(evssh_sftp *sftp, int status, void *ud) { sftp_test_done_cb(sftp, status, &((cut_run *)ud)->r); }

static bool until_cut_done(evssh_session *s, void *ud) { return !((cut_run *)ud)->r.done; }

START_TEST(test_cut_then_resume) {
  uint64_t size = big_size() < (64u << 20) ? big_size() : (64u << 20);
  char src[512], up[512], want[128];
  path_in(src, sizeof src, "cut-src");
  path_in(up, sizeof up, "cut-up");
  sftp_test_make_file(src, size, 8);
  evssh_session *s = sftp_test_connect(&peer, NULL);
  evssh_sftp *sftp = sftp_test_start(s);
  open_channels(sftp, 4);
  cut_run c = {{0}, size / 4, false, 0};
  ck_assert_int_eq(evssh_sftp_upload(sftp, src, up, 0, cut_at, cut_done, &c), 0);
  evssh_session_loop(s, -1, until_cut_done, &c);
  ck_assert_msg(c.killed, "the upload ended (%d: %s) before its 4 channels were open", c.r.status, c.r.error);
  ck_assert_uint_eq(c.channels, 4);
  ck_assert_int_eq(c.r.status, EVSSH_ECLOSED);
  uint64_t got = c.r.transferred;
  ck_assert_uint_ge(got, size / 4);
  ck_assert_uint_lt(got, size);
  snprintf(want, sizeof want, "stopped after %llu of %llu bytes", (unsigned long long)got, (unsigned long long)size);
  ck_assert_msg(strstr(c.r.error, want) && (strstr(c.r.error, "sftp: the session ended") ||
                                            strstr(c.r.error, "sftp: the server ended the sftp channel") ||
                                            strstr(c.r.error, "sftp: the server closed the sftp channel")),
                "%s", c.r.error);
  /* what was reported is in place (more may be, with gaps after it) */
  ck_assert_uint_ge(sftp_test_size(up), got);
  ck_assert(starts_ok(up, got, 8));
  evssh_sftp_free(sftp);
  evssh_session_free(s);

  /* a new connection resumes from the reported offset over 4 channels */
  s = sftp_test_connect(&peer, NULL);
  log_lines log = {0};
  evssh_session_set_log(s, EVSSH_LOG_INFO, keep_log, &log);
  sftp = sftp_test_start(s);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, 4), 0);
  result r = upload(sftp, src, up, got, 0);
  ck_assert_msg(r.status == 0, "%s", r.error);
  ck_assert(sftp_test_same(src, up));
  ck_assert_uint_ge(channels_used(&log), 1);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
  unlink(src);
  unlink(up);
}
END_TEST

typedef struct refusals {
  log_lines *log;
  evssh_sftp *sftp;
} refusals;

static bool until_refused(evssh_session *s, void *ud) {
  refusals *r = ud;
  return count_of(r->log->text, "could not be opened") < 2 || evssh_sftp_upload_channels(r->sftp) < 2;
}

START_TEST(test_channels_refused) {
  uint64_t size = 32u << 20;
  char src[512], up[512];
  path_in(src, sizeof src, "refused-src");
  path_in(up, sizeof up, "refused-up");
  sftp_test_make_file(src, size, 9);
  evssh_session *s = sftp_test_connect(&limited, NULL);
  log_lines log = {0};
  evssh_session_set_log(s, EVSSH_LOG_INFO, keep_log, &log);
  evssh_sftp *sftp = sftp_test_start(s);
  ck_assert_int_eq(evssh_sftp_set_upload_channels(sftp, 4), 0);
  result r = upload(sftp, src, up, 0, 0);
  ck_assert_msg(r.status == 0, "%s", r.error);
  ck_assert(sftp_test_same(src, up));
  /* the answers to the channel opens may come after the upload's end */
  refusals rf = {&log, sftp};
  for (int i = 0; i < 600 && until_refused(s, &rf); i++) evssh_session_process(s, 100, until_refused, &rf);
  /* MaxSessions 2: the sftp's own and one more; the others refused */
  ck_assert_msg(count_of(log.text, "an extra upload channel could not be opened") == 2, "log:\n%s", log.text);
  ck_assert_msg(strstr(log.text, "uploads use 2 channels"), "log:\n%s", log.text);
  ck_assert_uint_eq(evssh_sftp_upload_channels(sftp), 2);
  ck_assert_uint_le(channels_used(&log), 2);
  /* not asked again for the next upload */
  r = upload(sftp, src, up, 0, 0);
  ck_assert_msg(r.status == 0, "%s", r.error);
  ck_assert(sftp_test_same(src, up));
  ck_assert_uint_eq(count_of(log.text, "could not be opened"), 2);
  ck_assert_msg(channels_used(&log) == 2, "log:\n%s", log.text);
  evssh_sftp_free(sftp);
  evssh_session_free(s);
  unlink(src);
  unlink(up);
}
END_TEST

/* A status error on one channel stops the upload; the sftp's own channel
   still works, so the file is cut back to the prefix reported. */
START_TEST(test_disk_full_cut_to_prefix) {
  char mnt[512], local[512], remote[600];
  path_in(mnt, sizeof mnt, "tiny");
  path_in(local, sizeof local, "fill.local");
  snprintf(remote, sizeof remote, "%s/fill", mnt);
  if (!sftp_test_mount_tiny(mnt, "8m", "test_disk_full_cut_to_prefix")) return;
  evssh_session *s = sftp_test_connect(&peer, NULL);
  log_lines log = {0};
  evssh_session_set_log(s, EVSSH_LOG_INFO, keep_log, &log);
  evssh_sftp *sftp = sftp_test_start(s);
  open_channels(sftp, 4);
  sftp_test_make_file(local, 32u << 20, 4);
  result r = upload(sftp, local, remote, 0, 0);
  ck_assert_int_eq(r.status, EVSSH_ESFTP);
  ck_assert_msg(strstr(r.error, "stopped after ") && strstr(r.error, "remote: Failure ("), "%s", r.error);
  ck_assert_uint_le(r.transferred, 8u << 20);
  ck_assert_msg(channels_used(&log) == 4, "log:\n%s", log.text);
  /* cut back: exactly the prefix reported, nothing after it */
  ck_assert_uint_eq(sftp_test_size(remote), r.transferred);
  ck_assert(sftp_test_prefix_ok(remote, r.transferred, 4));
  evssh_sftp_free(sftp);
  evssh_session_free(s);
  unlink(local);
  ck_assert_int_eq(umount(mnt), 0);
}
END_TEST

#define HOSTS 3

typedef struct host {
  evssh_session *s;
  evssh_sftp *sftp;
  log_lines log;
  result r;
  char src[512], up[512];
} host;

static bool hosts_busy(evssh_multi *m, void *ud) {
  host *hs = ud;
  for (int i = 0; i < HOSTS; i++)
    if (!hs[i].r.done) return true;
  return false;
}

START_TEST(test_sessions_in_one_multi) {
  static host hs[HOSTS];
  uint64_t size = 24u << 20;
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  for (int i = 0; i < HOSTS; i++) {
    host *h = &hs[i];
    memset(h, 0, sizeof *h);
    snprintf(h->src, sizeof h->src, "%s/multi%d-src", work, i);
    snprintf(h->up, sizeof h->up, "%s/multi%d-up", work, i);
    sftp_test_make_file(h->src, size, (uint32_t)(500 + i));
    h->s = sftp_test_connect(&peer, NULL);
    evssh_session_set_log(h->s, EVSSH_LOG_INFO, keep_log, &h->log);
    h->sftp = sftp_test_start(h->s);
    ck_assert_int_eq(evssh_sftp_set_upload_channels(h->sftp, 3), 0);
    ck_assert_int_eq(evssh_multi_add(m, h->s), 0);
    ck_assert_int_eq(evssh_sftp_upload(h->sftp, h->src, h->up, 0, on_progress, sftp_test_done_cb, &h->r), 0);
  }
  int rc;
  while ((rc = evssh_multi_process(m, 1000, hosts_busy, hs)) > 0) {
  }
  ck_assert_int_eq(rc, 0);
  for (int i = 0; i < HOSTS; i++) {
    host *h = &hs[i];
    ck_assert_msg(h->r.status == 0, "host %d: %s", i, h->r.error);
    ck_assert(sftp_test_prefix_ok(h->up, size, (uint32_t)(500 + i)));
    /* the extra channels opened while it ran; how many joined in time
       depends on the machine's load */
    ck_assert_msg(channels_used(&h->log) >= 1, "host %d log:\n%s", i, h->log.text);
    evssh_sftp_free(h->sftp);
    evssh_multi_remove(m, h->s);
    evssh_session_free(h->s);
    unlink(h->src);
    unlink(h->up);
  }
  evssh_multi_free(m);
}
END_TEST

static Suite *parallel_suite(void) {
  Suite *s = suite_create("sftp_parallel");
  TCase *tc = tcase_create("sshd");
  tcase_set_timeout(tc, 900); /* bulk runs slowly on a loaded 2-CPU box, and under valgrind */
  tcase_add_test(tc, test_four_channels);
  tcase_add_test(tc, test_cut_then_resume);
  tcase_add_test(tc, test_channels_refused);
  tcase_add_test(tc, test_disk_full_cut_to_prefix);
  tcase_add_test(tc, test_sessions_in_one_multi);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&limited, "MaxSessions 2") != 0) return 1;
  int rc = sftp_test_main(parallel_suite(), &peer, NULL, work, sizeof work);
  harness_sshd_stop(&limited);
  return rc;
}
