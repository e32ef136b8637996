/* Tests of the shared cache (cache.c, issue 17): a key file or known_hosts
 * file read once for many users, read again when it changes, entries freed
 * and keys still usable after the cache is gone, one cache from two
 * threads, and the sessions of an evssh_multi sharing one against the
 * harness sshd, and ssh_config files (with an Include) read once for many
 * sessions and again when one changes. File opens are counted through the linker's --wrap for
 * open (key files) and fopen (known_hosts), so "read once" is what the
 * process did, not what the cache says it did. The %C hash is counted by
 * SHA-1 digests begun (--wrap=EVP_DigestInit_ex), agent identity lists by
 * REQUEST_IDENTITIES messages written to a UNIX socket (--wrap=send),
 * against an ssh-agent each such test starts and stops itself. Keys are
 * made at test time with ssh-keygen. The sshd cases skip without sshd;
 * the rest need none. */
#include "cache.h"

#include "buf.h"
#include "harness.h"

#include <check.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];
static char key_path[300];     /* encrypted ed25519 key, passphrase "pw" */
static char kh_path[300];

/* ------------------------------------------------------ counted opens */

static char watch_a[1024], watch_b[1024];
static int opens_a, opens_b;

static void count_open(const char *path) {
  if (watch_a[0] && strcmp(path, watch_a) == 0) __atomic_add_fetch(&opens_a, 1, __ATOMIC_SEQ_CST);
  if (watch_b[0] && strcmp(path, watch_b) == 0) __atomic_add_fetch(&opens_b, 1, __ATOMIC_SEQ_CST);
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...) {
  count_open(path);
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  return __real_open(path, flags, mode);
}

/* SHA-1 digests begun: in a test that only reads and finalizes configs,
   the %C hash is the one SHA-1 user */
static int sha1_inits;
int __real_EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
int __wrap_EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
int __wrap_EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl) {
  if (type && EVP_MD_is_a(type, "SHA1")) __atomic_add_fetch(&sha1_inits, 1, __ATOMIC_SEQ_CST);
  return __real_EVP_DigestInit_ex(ctx, type, impl);
}

/* REQUEST_IDENTITIES sent to an agent: agent.c writes each message's body
   apart from its length, and that body is the one byte 11 */
static int identity_requests;
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags) {
  struct sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  if (len == 1 && ((const unsigned char *)buf)[0] == 11 && getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 &&
      sa.ss_family == AF_UNIX)
    __atomic_add_fetch(&identity_requests, 1, __ATOMIC_SEQ_CST);
  return __real_send(fd, buf, len, flags);
}

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode) {
  count_open(path);
  return __real_fopen(path, mode);
}

/* -------------------------------------------------------------- helpers */

static void run(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static void make_key(const char *path, const char *pass) {
  run("rm -f '%s' '%s.pub' && ssh-keygen -q -t ed25519 -N '%s' -C test -f '%s' </dev/null >/dev/null", path, path,
      pass, path);
}

static int prompts;
static int give_pw(const char *prompt, char *buf, size_t size, void *ud) {
  __atomic_add_fetch(&prompts, 1, __ATOMIC_SEQ_CST);
  snprintf(buf, size, "pw");
  return 0;
}

static void blob_of(const evssh_key *k, unsigned char *out, size_t *len) {
  const unsigned char *b;
  size_t n;
  ck_assert_int_eq(evssh_key_public_blob(k, &b, &n), EVSSH_OK);
  ck_assert_uint_le(n, 1024);
  memcpy(out, b, n);
  *len = n;
}

static void can_sign(const evssh_key *k) {
  evssh_buf sig;
  buf_init(&sig);
  ck_assert_int_eq(evssh_key_sign(k, "ssh-ed25519", (const unsigned char *)"data", 4, &sig), EVSSH_OK);
  ck_assert_uint_gt(buf_avail(&sig), 64);
  buf_release(&sig);
}

/* a known_hosts line for example.com with the public key of path */
static void write_known_hosts(const char *key, const char *mode) {
  run("printf 'example.com ' %s '%s' && cut -d' ' -f1,2 '%s.pub' >> '%s'", mode, kh_path, key, kh_path);
}

/* bump a file's mtime by `secs` without changing its content */
static void touch_later(const char *path, int secs) {
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  struct timespec t[2] = {st.st_atim, st.st_mtim};
  t[1].tv_sec += secs;
  ck_assert_int_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/evssh-cache-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(key_path, sizeof key_path, "%s/id_ed25519", dir);
  snprintf(kh_path, sizeof kh_path, "%s/known_hosts", dir);
  make_key(key_path, "pw");
  watch_a[0] = watch_b[0] = 0;
  opens_a = opens_b = prompts = 0;
}

static void agent_stop(void);
static void teardown(void) {
  agent_stop();
  run("rm -rf '%s'", dir);
}

static evssh_cache_stats stats(evssh_cache *c) {
  evssh_cache_stats st;
  ck_assert_int_eq(evssh_cache_stats_get(c, &st), EVSSH_OK);
  return st;
}

/* ---------------------------------------------------------------- keys */

START_TEST(test_key_read_once_for_20) {
  evssh_cache *c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  snprintf(watch_a, sizeof watch_a, "%s", key_path);
  unsigned char first[1024], b[1024];
  size_t first_len = 0, n;
  char err[256];
  for (int i = 0; i < 20; i++) {
    evssh_key *k = NULL;
    ck_assert_int_eq(cache_key_load_private(c, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
    can_sign(k);
    blob_of(k, b, &n);
    if (i == 0) {
      memcpy(first, b, n);
      first_len = n;
    }
    ck_assert_uint_eq(n, first_len);
    ck_assert_mem_eq(b, first, n);
    evssh_key_free(k);
  }
  ck_assert_int_eq(opens_a, 1);
  ck_assert_int_eq(prompts, 1);   /* the decrypted key is what is kept */
  evssh_cache_stats st = stats(c);
  ck_assert_uint_eq(st.key_loads, 1);
  ck_assert_uint_eq(st.key_hits, 19);
  ck_assert_uint_eq(st.entries, 1);
  /* without a cache: every load reads and asks */
  for (int i = 0; i < 3; i++) {
    evssh_key *k = NULL;
    ck_assert_int_eq(cache_key_load_private(NULL, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
    evssh_key_free(k);
  }
  ck_assert_int_eq(opens_a, 4);
  ck_assert_int_eq(prompts, 4);
  evssh_cache_free(c);
}
END_TEST

START_TEST(test_key_reread_when_changed) {
  evssh_cache *c = evssh_cache_new();
  snprintf(watch_a, sizeof watch_a, "%s", key_path);
  char err[256];
  unsigned char b1[1024], b2[1024];
  size_t n1, n2;
  evssh_key *k = NULL;
  ck_assert_int_eq(cache_key_load_private(c, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
  blob_of(k, b1, &n1);
  evssh_key_free(k);
  /* same content, later mtime: read again */
  touch_later(key_path, 5);
  ck_assert_int_eq(cache_key_load_private(c, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
  evssh_key_free(k);
  ck_assert_int_eq(opens_a, 2);
  ck_assert_uint_eq(stats(c).invalidations, 1);
  /* a new key in the same place: the new key comes back */
  make_key(key_path, "pw");
  ck_assert_int_eq(cache_key_load_private(c, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
  blob_of(k, b2, &n2);
  evssh_key_free(k);
  ck_assert(n1 != n2 || memcmp(b1, b2, n1) != 0);
  ck_assert_int_eq(opens_a, 3);
  evssh_cache_stats st = stats(c);
  ck_assert_uint_eq(st.key_loads, 3);
  ck_assert_uint_eq(st.invalidations, 2);
  ck_assert_uint_eq(st.entries, 1);
  /* a failed load (file gone) is not cached, and drops nothing it should not */
  run("rm -f '%s'", key_path);
  ck_assert_int_ne(cache_key_load_private(c, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
  evssh_cache_free(c);
}
END_TEST

START_TEST(test_public_half_cached_apart) {
  evssh_cache *c = evssh_cache_new();
  char pub[700], err[256];
  snprintf(pub, sizeof pub, "%s.pub", key_path);
  snprintf(watch_b, sizeof watch_b, "%s", pub);
  for (int i = 0; i < 5; i++) {
    evssh_key *k = NULL;
    ck_assert_int_eq(cache_key_load_public(c, pub, &k, err, sizeof err), EVSSH_OK);
    ck_assert(!evssh_key_can_sign(k));
    evssh_key_free(k);
  }
  ck_assert_int_eq(opens_b, 1);
  ck_assert_int_eq(prompts, 0);
  evssh_cache_free(c);
}
END_TEST

/* Entries are freed by clear and by the last holder; keys handed out
   outlive the cache (their EVP_PKEY is shared by reference). ASan and
   valgrind see the rest: nothing leaks, nothing is used after free. */
START_TEST(test_lifetime_and_free) {
  evssh_cache *c = evssh_cache_new();
  char err[256];
  evssh_key *k = NULL;
  ck_assert_int_eq(cache_key_load_private(c, key_path, give_pw, NULL, &k, err, sizeof err), EVSSH_OK);
  write_known_hosts(key_path, ">");
  const char *files[] = {kh_path};
  char *types = NULL;
  ck_assert_int_eq(cache_knownhosts_types(c, files, 1, "example.com", 22, &types, err, sizeof err), EVSSH_OK);
  ck_assert_str_eq(types, "ssh-ed25519");
  free(types);
  ck_assert_uint_eq(stats(c).entries, 2);
  evssh_cache_clear(c);
  evssh_cache_stats st = stats(c);
  ck_assert_uint_eq(st.entries, 0);
  ck_assert_uint_eq(st.entries_freed, 2);
  can_sign(k);   /* the caller's copy is its own */
  /* a holder (a session) keeps the cache alive past its creator's free */
  evssh_key *k2 = NULL;
  ck_assert_int_eq(cache_key_load_private(c, key_path, give_pw, NULL, &k2, err, sizeof err), EVSSH_OK);
  evssh_key_free(k2);
  evssh_cache *held = cache_ref(c);
  evssh_cache_free(c);
  evssh_cache_free(c);   /* a second free by the creator is ignored */
  ck_assert_int_eq(cache_key_load_private(held, key_path, give_pw, NULL, &k2, err, sizeof err), EVSSH_OK);
  ck_assert_uint_eq(stats(held).key_hits, 1);
  cache_unref(held);     /* the last hold: entries and cache freed */
  can_sign(k2);
  can_sign(k);
  evssh_key_free(k2);
  evssh_key_free(k);
}
END_TEST

/* ----------------------------------------------------------- known_hosts */

START_TEST(test_known_hosts_read_once_and_reread) {
  evssh_cache *c = evssh_cache_new();
  char other[400], err[256];
  snprintf(other, sizeof other, "%s/other", dir);
  make_key(other, "");
  write_known_hosts(key_path, ">");
  snprintf(watch_a, sizeof watch_a, "%s", kh_path);
  char pub[700];
  snprintf(pub, sizeof pub, "%s.pub", key_path);
  evssh_key *k = NULL, *o = NULL;
  ck_assert_int_eq(evssh_key_load_public(pub, &k, err, sizeof err), EVSSH_OK);
  snprintf(pub, sizeof pub, "%s.pub", other);
  ck_assert_int_eq(evssh_key_load_public(pub, &o, err, sizeof err), EVSSH_OK);
  const unsigned char *kb, *ob;
  size_t kn, on;
  evssh_key_public_blob(k, &kb, &kn);
  evssh_key_public_blob(o, &ob, &on);
  const char *files[] = {kh_path, "/nonexistent/known_hosts"};
  evssh_kh_result res;
  for (int i = 0; i < 20; i++) {
    ck_assert_int_eq(cache_knownhosts_check(c, files, 2, "example.com", 22, NULL, kb, kn, &res, err, sizeof err),
                     EVSSH_OK);
    ck_assert_int_eq(res.status, EVSSH_KH_MATCH);
    ck_assert_int_eq(res.line, 1);
    char *types = NULL;
    ck_assert_int_eq(cache_knownhosts_types(c, files, 2, "example.com", 22, &types, err, sizeof err), EVSSH_OK);
    ck_assert_str_eq(types, "ssh-ed25519");
    free(types);
  }
  ck_assert_int_eq(opens_a, 1);
  evssh_cache_stats st = stats(c);
  ck_assert_uint_eq(st.known_hosts_loads, 1);
  ck_assert_uint_eq(st.known_hosts_hits, 39);
  /* another host is its own set (the same file, read for it once) */
  ck_assert_int_eq(cache_knownhosts_check(c, files, 2, "other.org", 22, NULL, kb, kn, &res, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(res.status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(opens_a, 2);
  /* the other key is a mismatch until a line for it is appended; then the
     file is read again and it matches */
  ck_assert_int_eq(cache_knownhosts_check(c, files, 2, "example.com", 22, NULL, ob, on, &res, err, sizeof err),
                   EVSSH_OK);
  ck_assert_int_eq(res.status, EVSSH_KH_MISMATCH);
  write_known_hosts(other, ">>");
  ck_assert_int_eq(cache_knownhosts_check(c, files, 2, "example.com", 22, NULL, ob, on, &res, err, sizeof err),
                   EVSSH_OK);
  ck_assert_int_eq(res.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(res.line, 2);
  ck_assert_int_eq(opens_a, 3);
  ck_assert_uint_eq(stats(c).invalidations, 1);
  /* a touch alone re-reads too */
  touch_later(kh_path, 7);
  ck_assert_int_eq(cache_knownhosts_check(c, files, 2, "example.com", 22, NULL, kb, kn, &res, err, sizeof err),
                   EVSSH_OK);
  ck_assert_int_eq(opens_a, 4);
  /* a file that appears where there was none counts as a change */
  const char *late[] = {other, kh_path};
  char late_kh[400];
  snprintf(late_kh, sizeof late_kh, "%s/late_known_hosts", dir);
  late[0] = late_kh;
  ck_assert_int_eq(cache_knownhosts_check(c, late, 2, "example.com", 22, NULL, ob, on, &res, err, sizeof err),
                   EVSSH_OK);
  ck_assert_int_eq(res.line, 2);
  run("cp '%s' '%s'", kh_path, late_kh);
  ck_assert_int_eq(cache_knownhosts_check(c, late, 2, "example.com", 22, NULL, ob, on, &res, err, sizeof err),
                   EVSSH_OK);
  ck_assert_str_eq(res.file, late_kh);
  evssh_key_free(k);
  evssh_key_free(o);
  evssh_cache_free(c);
}
END_TEST

/* The copy cache_knownhosts_load hands out is the caller's: what it adds
   (RevokedHostKeys) stays out of the shared set, and freeing it leaves the
   set alone. */
START_TEST(test_known_hosts_copy_is_private) {
  evssh_cache *c = evssh_cache_new();
  char err[256], pub[700];
  write_known_hosts(key_path, ">");
  snprintf(watch_a, sizeof watch_a, "%s", kh_path);
  snprintf(pub, sizeof pub, "%s.pub", key_path);
  evssh_key *k = NULL;
  ck_assert_int_eq(evssh_key_load_public(pub, &k, err, sizeof err), EVSSH_OK);
  const unsigned char *kb;
  size_t kn;
  evssh_key_public_blob(k, &kb, &kn);
  const char *files[] = {kh_path};
  evssh_kh_result res;
  for (int i = 0; i < 3; i++) {
    evssh_known_hosts *kh = NULL;
    ck_assert_int_eq(cache_knownhosts_load(c, files, 1, "example.com", 22, NULL, &kh, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(evssh_knownhosts_lookup(kh, kb, kn, &res, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(res.status, EVSSH_KH_MATCH);
    ck_assert_str_eq(res.file, kh_path);
    ck_assert_int_eq(evssh_knownhosts_load_revoked(kh, pub, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(evssh_knownhosts_lookup(kh, kb, kn, &res, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(res.status, EVSSH_KH_REVOKED);
    evssh_knownhosts_free(kh);
  }
  ck_assert_int_eq(opens_a, 1);
  ck_assert_int_eq(cache_knownhosts_check(c, files, 1, "example.com", 22, NULL, kb, kn, &res, err, sizeof err),
                   EVSSH_OK);
  ck_assert_int_eq(res.status, EVSSH_KH_MATCH);
  evssh_key_free(k);
  evssh_cache_free(c);
}
END_TEST

/* --------------------------------------------------------------- threads */

typedef struct worker {
  evssh_cache *c;
  int ok;
} worker;

static void *hammer(void *ud) {
  worker *w = ud;
  char err[256];
  const char *files[] = {kh_path};
  for (int i = 0; i < 200; i++) {
    evssh_key *k = NULL;
    if (cache_key_load_private(w->c, key_path, give_pw, NULL, &k, err, sizeof err) != EVSSH_OK) continue;
    const unsigned char *b;
    size_t n;
    evssh_key_public_blob(k, &b, &n);
    evssh_kh_result res;
    if (cache_knownhosts_check(w->c, files, 1, "example.com", 22, NULL, b, n, &res, err, sizeof err) == EVSSH_OK &&
        res.status == EVSSH_KH_MATCH)
      w->ok++;
    evssh_key_free(k);
  }
  return NULL;
}

START_TEST(test_two_threads_one_cache) {
  evssh_cache *c = evssh_cache_new();
  write_known_hosts(key_path, ">");
  worker w[2] = {{c, 0}, {c, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  ck_assert_int_eq(w[0].ok, 200);
  ck_assert_int_eq(w[1].ok, 200);
  evssh_cache_stats st = stats(c);
  /* both threads may miss at the very start; never more */
  ck_assert_uint_le(st.key_loads, 2);
  ck_assert_uint_eq(st.known_hosts_loads, 1);
  evssh_cache_free(c);
}
END_TEST

/* ------------------------------------------------- sessions of one multi */

static harness_peer peer;
static bool have_sshd;

typedef struct job {
  int status;
  bool done;
  int oks;
} job;

static void job_out(evssh_channel *ch, evssh_stream st, const char *d, size_t n, void *ud) {
  if (st == EVSSH_STDOUT && n == 3 && memcmp(d, "ok\n", 3) == 0) ((job *)ud)->oks++;
}
static void job_closed(evssh_channel *ch, void *ud) { ((job *)ud)->done = true; }
static void job_ready(evssh_session *s, int status, void *ud) {
  job *j = ud;
  j->status = status;
  if (status) {
    fprintf(stderr, "session: %s\n", evssh_session_error(s));
    j->done = true;
    return;
  }
  evssh_channel *ch = evssh_session_exec(s, "echo ok", job_out, j);
  if (ch) evssh_channel_on_close(ch, job_closed, j);
  else j->done = true;
}
/* ------------------------------------------------------------ ssh_config */

/* 20 sessions with one cache read a config file and the file it Includes
   once each; the values still come out; a changed included file is read
   again and the unchanged one is not; without a cache every session opens
   both (the control that shows the counting sees the parser's opens). */
/* one session's read of the test config for host alpha, through c */
static void read_alpha(evssh_cache *c, const char *cfg, const char *port) {
  evssh_config *conf = NULL;
  char err[256] = "";
  ck_assert_int_eq(evssh_config_new(&conf), EVSSH_OK);
  ck_assert_int_eq(cache_config_read_file(c, conf, cfg, "alpha", err, sizeof err), EVSSH_OK);
  ck_assert_str_eq(evssh_config_get(conf, "User"), "alice");
  ck_assert_str_eq(evssh_config_get(conf, "Port"), port);
  ck_assert_str_eq(evssh_config_get(conf, "ConnectTimeout"), "7");
  evssh_config_free(conf);
}

START_TEST(test_config_read_once_and_reread) {
  char cfg[320], inc[320];
  snprintf(cfg, sizeof cfg, "%s/config", dir);
  snprintf(inc, sizeof inc, "%s/included", dir);
  run("printf 'Host alpha\\n  User alice\\n  Include %s\\nHost *\\n  ConnectTimeout 7\\n' > '%s'", inc, cfg);
  run("printf 'Port 2222\\n' > '%s'", inc);
  snprintf(watch_a, sizeof watch_a, "%s", cfg);
  snprintf(watch_b, sizeof watch_b, "%s", inc);
  evssh_cache *c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  for (int i = 0; i < 20; i++) read_alpha(c, cfg, "2222");
  ck_assert_int_eq(opens_a, 1);
  ck_assert_int_eq(opens_b, 1);

  run("printf 'Port 2200\\n' > '%s'", inc);
  touch_later(inc, 5);   /* a new mtime even on a coarse clock */
  for (int i = 0; i < 3; i++) read_alpha(c, cfg, "2200");
  ck_assert_int_eq(opens_a, 1);
  ck_assert_int_eq(opens_b, 2);

  /* a missing explicit file is still an error, and not remembered */
  evssh_config *conf = NULL;
  char err[256] = "";
  char missing[340];
  snprintf(missing, sizeof missing, "%s/nope", dir);
  ck_assert_int_eq(evssh_config_new(&conf), EVSSH_OK);
  ck_assert_int_eq(cache_config_read_file(c, conf, missing, "alpha", err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "cannot open config file"));
  evssh_config_free(conf);
  evssh_cache_free(c);

  opens_a = opens_b = 0;
  for (int i = 0; i < 3; i++) read_alpha(NULL, cfg, "2200");
  ck_assert_int_eq(opens_a, 3);
  ck_assert_int_eq(opens_b, 3);
}
END_TEST

/* The same through the public API: sessions given the cache before
   evssh_session_read_config (as evssh_multi_add does for the default files
   read at connect) share one read of the file. */
START_TEST(test_config_sessions_share) {
  char cfg[320];
  snprintf(cfg, sizeof cfg, "%s/config", dir);
  run("printf 'Host *\\n  User bob\\n' > '%s'", cfg);
  snprintf(watch_a, sizeof watch_a, "%s", cfg);
  evssh_cache *c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  for (int i = 0; i < 20; i++) {
    evssh_session *s = evssh_session_new("example.com");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evssh_session_set_cache(s, c), EVSSH_OK);
    ck_assert_int_eq(evssh_session_read_config(s, cfg), EVSSH_OK);
    evssh_session_free(s);
  }
  ck_assert_int_eq(opens_a, 1);
  evssh_cache_free(c);
}
END_TEST

/* ------------------------------------------------------------- %C hash */

/* %C as OpenSSH 10 makes it, computed here apart from config.c: SHA-1 of
   the local host name, host, port, user and jump host */
static void expected_hash(const char *h, const char *port, const char *user, const char *jump, char out[41]) {
  char local[256], in[1024];
  ck_assert_int_eq(gethostname(local, sizeof local), 0);
  local[sizeof local - 1] = 0;
  int n = snprintf(in, sizeof in, "%s%s%s%s%s", local, h, port, user, jump);
  unsigned char md[20];
  unsigned int mdlen = 0;
  ck_assert_int_eq(EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL), 1);
  for (int i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* one session's config: read through c, finalized, IdentityAgent holds
   %C; returns the value after "agent-" */
static void finalize_hash(evssh_cache *c, const char *cfg, const char *host, char out[41]) {
  evssh_config *conf = NULL;
  char err[256] = "";
  ck_assert_int_eq(evssh_config_new(&conf), EVSSH_OK);
  ck_assert_int_eq(cache_config_read_file(c, conf, cfg, host, err, sizeof err), EVSSH_OK);
  ck_assert_msg(evssh_config_finalize(conf, host, err, sizeof err) == EVSSH_OK, "%s", err);
  const char *v = evssh_config_get(conf, "IdentityAgent");
  ck_assert_ptr_nonnull(v);
  const char *dash = strrchr(v, '-');
  ck_assert_ptr_nonnull(dash);
  ck_assert_uint_eq(strlen(dash + 1), 40);
  memcpy(out, dash + 1, 41);
  evssh_config_free(conf);
}

/* 20 sessions of one host make the %C hash once with a cache; another
   host (or another jump host) is another input; without a cache every
   finalize makes it; a config that uses no %C never makes it. The values
   are OpenSSH 10's (ProxyJump's last host in the hash). */
START_TEST(test_conn_hash_once_per_input) {
  char cfg[320], want[41], got[41];
  snprintf(cfg, sizeof cfg, "%s/config", dir);
  run("printf 'Host jumped\\n  ProxyJump ju@first:2200,ssh://u2@last.example:2201\\n"
      "Host *\\n  User carol\\n  Port 2022\\n  IdentityAgent %s/agent-%%%%C\\n' > '%s'", dir, cfg);
  evssh_cache *c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  sha1_inits = 0;
  expected_hash("alpha", "2022", "carol", "", want);
  int base = sha1_inits;
  for (int i = 0; i < 20; i++) {
    finalize_hash(c, cfg, "alpha", got);
    ck_assert_str_eq(got, want);
  }
  ck_assert_int_eq(sha1_inits - base, 1);
  expected_hash("jumped", "2022", "carol", "last.example", want);
  base = sha1_inits;
  for (int i = 0; i < 5; i++) {
    finalize_hash(c, cfg, "jumped", got);
    ck_assert_str_eq(got, want);
  }
  ck_assert_int_eq(sha1_inits - base, 1);
  evssh_cache_stats st = stats(c);
  ck_assert_uint_eq(st.conn_hashes, 2);
  ck_assert_uint_eq(st.conn_hash_hits, 23);
  /* evssh_cache_clear drops them with the rest */
  evssh_cache_clear(c);
  base = sha1_inits;
  finalize_hash(c, cfg, "jumped", got);
  ck_assert_str_eq(got, want);
  ck_assert_int_eq(sha1_inits - base, 1);
  evssh_cache_free(c);
  /* no cache: every session computes it, as before */
  base = sha1_inits;
  for (int i = 0; i < 3; i++) finalize_hash(NULL, cfg, "jumped", got);
  ck_assert_int_eq(sha1_inits - base, 3);
  /* no %C anywhere: no digest at all */
  run("printf 'Host *\\n  User carol\\n' > '%s'", cfg);
  base = sha1_inits;
  for (int i = 0; i < 3; i++) {
    evssh_config *conf = NULL;
    char err[256] = "";
    ck_assert_int_eq(evssh_config_new(&conf), EVSSH_OK);
    ck_assert_int_eq(cache_config_read_file(NULL, conf, cfg, "alpha", err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(evssh_config_finalize(conf, "alpha", err, sizeof err), EVSSH_OK);
    evssh_config_free(conf);
  }
  ck_assert_int_eq(sha1_inits - base, 0);
  /* sessions with ConfigFile none: %C in their own options goes through the
     cache too (connecting to a closed port resolves the options, then fails) */
  c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  char agent_opt[400];
  snprintf(agent_opt, sizeof agent_opt, "IdentityAgent=%s/agent-%%C", dir);
  base = sha1_inits;
  for (int i = 0; i < 5; i++) {
    const char *opts[] = {"ConfigFile=none", "Port=1", "ConnectTimeout=5", agent_opt, NULL};
    evssh_error e;
    evssh_session *sess = evssh_session_new_with("127.0.0.1", "carol", opts, &e);
    ck_assert_ptr_nonnull(sess);
    ck_assert_int_eq(evssh_session_set_cache(sess, c), EVSSH_OK);
    ck_assert_int_ne(evssh_session_connect(sess), EVSSH_OK);
    evssh_session_free(sess);
  }
  ck_assert_int_eq(sha1_inits - base, 1);
  evssh_cache_free(c);
}
END_TEST

#define NJOBS 20
static bool jobs_running(evssh_multi *m, void *ud) {
  job *j = ud;
  for (int i = 0; i < NJOBS; i++)
    if (!j[i].done) return true;
  return false;
}

START_TEST(test_multi_sessions_share) {
  if (!have_sshd) {
    fprintf(stderr, "test_multi_sessions_share skipped: %s\n", harness_skip_reason());
    return;
  }
  snprintf(watch_a, sizeof watch_a, "%s", peer.key_ed25519);
  snprintf(watch_b, sizeof watch_b, "%s", peer.known_hosts);
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  evssh_session *s[NJOBS];
  job jobs[NJOBS];
  memset(jobs, 0, sizeof jobs);
  char port[16];
  snprintf(port, sizeof port, "%d", peer.port);
  for (int i = 0; i < NJOBS; i++) {
    s[i] = evssh_session_new("127.0.0.1");
    ck_assert_ptr_nonnull(s[i]);
    evssh_session_read_config(s[i], "none");
    evssh_session_option(s[i], "User", peer.user);
    evssh_session_option(s[i], "Port", port);
    evssh_session_option(s[i], "UserKnownHostsFile", peer.known_hosts);
    evssh_session_option(s[i], "GlobalKnownHostsFile", "none");
    evssh_session_option(s[i], "IdentityFile", peer.key_ed25519);
    evssh_session_option(s[i], "IdentitiesOnly", "yes");
    evssh_session_option(s[i], "IdentityAgent", "none");
    jobs[i].status = 1;
    ck_assert_int_eq(evssh_session_connect_async(s[i], job_ready, &jobs[i]), EVSSH_OK);
    ck_assert_int_eq(evssh_multi_add(m, s[i]), EVSSH_OK);
  }
  ck_assert_int_ge(evssh_multi_loop(m, -1, jobs_running, jobs), 0);
  for (int i = 0; i < NJOBS; i++) {
    ck_assert_int_eq(jobs[i].status, 0);
    ck_assert_int_eq(jobs[i].oks, 1);
  }
  /* one read of the key file and of known_hosts for all 20 sessions */
  ck_assert_int_eq(opens_a, 1);
  ck_assert_int_eq(opens_b, 1);
  evssh_cache_stats st = stats(evssh_multi_cache(m));
  ck_assert_uint_eq(st.key_loads, 2);   /* the .pub and the private key */
  ck_assert_uint_eq(st.known_hosts_loads, 1);
  ck_assert_uint_ge(st.key_hits, NJOBS - 1);
  for (int i = 0; i < NJOBS; i++) evssh_multi_remove(m, s[i]);
  evssh_multi_free(m);   /* the sessions still hold its cache */
  for (int i = 0; i < NJOBS; i++) {
    evssh_session_close(s[i]);
    evssh_session_free(s[i]);
  }
}
END_TEST

/* ------------------------------------------------------ agent lists */

static char agent_sock[400];
static pid_t agent_pid;

/* an ssh-agent of the test's own on a socket in dir, in the foreground
   under timeout(1), so that a test that dies leaves no agent behind for
   long; stopped by that pid (timeout passes the signal on) */
static void agent_start(void) {
  char pidfile[400];
  snprintf(agent_sock, sizeof agent_sock, "%s/agent.sock", dir);
  snprintf(pidfile, sizeof pidfile, "%s/agent.pid", dir);
  run("timeout 600 ssh-agent -D -a '%s' >/dev/null 2>&1 </dev/null & echo $! > '%s'", agent_sock, pidfile);
  FILE *f = fopen(pidfile, "r");
  ck_assert_ptr_nonnull(f);
  int pid = 0;
  ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
  fclose(f);
  ck_assert_int_gt(pid, 1);
  agent_pid = (pid_t)pid;
  struct stat st;
  for (int i = 0; i < 1000 && stat(agent_sock, &st) != 0; i++) {
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  ck_assert_msg(stat(agent_sock, &st) == 0, "ssh-agent did not make %s", agent_sock);
}

static void agent_stop(void) {
  if (agent_pid > 1) {
    kill(agent_pid, SIGTERM);
    waitpid(agent_pid, NULL, 0);
  }
  agent_pid = 0;
}

static void agent_add(const char *key) { run("SSH_AUTH_SOCK='%s' ssh-add -q '%s' 2>/dev/null", agent_sock, key); }
static void agent_remove_all(void) { run("SSH_AUTH_SOCK='%s' ssh-add -D 2>/dev/null >/dev/null", agent_sock); }

/* the options of a session that logs in with the agent's keys only
   (identity_file NULL), or with them and one file */
static evssh_session *agent_session(evssh_cache *c, const char *identity_file) {
  char port[16];
  snprintf(port, sizeof port, "%d", peer.port);
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_ptr_nonnull(s);
  if (c) ck_assert_int_eq(evssh_session_set_cache(s, c), EVSSH_OK);
  evssh_session_read_config(s, "none");
  evssh_session_option(s, "User", peer.user);
  evssh_session_option(s, "Port", port);
  evssh_session_option(s, "UserKnownHostsFile", peer.known_hosts);
  evssh_session_option(s, "GlobalKnownHostsFile", "none");
  evssh_session_option(s, "IdentityFile", identity_file ? identity_file : "none");
  evssh_session_option(s, "IdentityAgent", agent_sock);
  evssh_session_option(s, "PreferredAuthentications", "publickey");
  evssh_session_option(s, "BatchMode", "yes");
  return s;
}

/* one blocking login; the session's error into why */
static int agent_login(evssh_cache *c, const char *identity_file, char *why, size_t whylen) {
  evssh_session *s = agent_session(c, identity_file);
  int rc = evssh_session_connect(s);
  snprintf(why, whylen, "%s", rc ? evssh_session_error(s) : "");
  evssh_session_close(s);
  evssh_session_free(s);
  return rc;
}

/* 20 sessions of a multi whose keys are in an agent ask it for its list
   once (without the cache: 20 times) and each still signs with its own
   connection to it */
START_TEST(test_agent_list_once_for_20) {
  if (!have_sshd) {
    fprintf(stderr, "test_agent_list_once_for_20 skipped: %s\n", harness_skip_reason());
    return;
  }
  agent_start();
  agent_add(peer.key_ed25519);
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  /* a TTL no loaded machine outruns: this is about the count */
  ck_assert_int_eq(evssh_cache_set_agent_ttl(evssh_multi_cache(m), 600000), EVSSH_OK);
  evssh_session *s[NJOBS];
  job jobs[NJOBS];
  memset(jobs, 0, sizeof jobs);
  identity_requests = 0;
  for (int i = 0; i < NJOBS; i++) {
    s[i] = agent_session(NULL, NULL);
    jobs[i].status = 1;
    ck_assert_int_eq(evssh_multi_add(m, s[i]), EVSSH_OK);
    ck_assert_int_eq(evssh_session_connect_async(s[i], job_ready, &jobs[i]), EVSSH_OK);
  }
  ck_assert_int_ge(evssh_multi_loop(m, -1, jobs_running, jobs), 0);
  for (int i = 0; i < NJOBS; i++) {
    ck_assert_int_eq(jobs[i].status, 0);
    ck_assert_int_eq(jobs[i].oks, 1);
  }
  ck_assert_int_eq(identity_requests, 1);
  evssh_cache_stats st = stats(evssh_multi_cache(m));
  ck_assert_uint_eq(st.agent_lists, 1);
  ck_assert_uint_eq(st.agent_hits, NJOBS - 1);
  for (int i = 0; i < NJOBS; i++) evssh_multi_remove(m, s[i]);
  evssh_multi_free(m);
  for (int i = 0; i < NJOBS; i++) {
    evssh_session_close(s[i]);
    evssh_session_free(s[i]);
  }
  agent_stop();
}
END_TEST

/* The lifetime rule: a kept list that went stale never costs a login.
   Keys removed (ssh-add -D) after the list was kept: a clear failure that
   says so; a key added since: found by asking again once the kept keys
   are used up; a key removed from the agent but still on disk: signed
   with from the file; evssh_cache_clear and the TTL end a list too. */
START_TEST(test_agent_list_lifetime) {
  if (!have_sshd) {
    fprintf(stderr, "test_agent_list_lifetime skipped: %s\n", harness_skip_reason());
    return;
  }
  agent_start();
  agent_add(peer.key_ed25519);
  evssh_cache *c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(evssh_cache_set_agent_ttl(c, 600000), EVSSH_OK);
  char why[1024];
  identity_requests = 0;
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_int_eq(identity_requests, 1);   /* the second from the cache */

  /* removed after it was kept: offered from the kept list, the agent
     refuses to sign, the session asks again and fails clearly */
  agent_remove_all();
  ck_assert_int_eq(agent_login(c, NULL, why, sizeof why), EVSSH_EAUTH);
  ck_assert_msg(strstr(why, "Permission denied") && strstr(why, "the agent no longer holds it"), "%s", why);
  ck_assert_int_eq(identity_requests, 2);
  ck_assert_uint_eq(stats(c).agent_drops, 1);

  /* added after an (empty) list was kept: found by asking again */
  agent_add(peer.key_ed25519);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_int_eq(identity_requests, 3);

  /* removed from the agent, still on disk: the file signs */
  agent_remove_all();
  ck_assert_msg(agent_login(c, peer.key_ed25519, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_int_eq(identity_requests, 4);

  /* evssh_cache_clear: the next session asks, the one after does not */
  agent_add(peer.key_rsa);
  evssh_cache_clear(c);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_int_eq(identity_requests, 5);

  /* past the TTL the list is asked for again */
  ck_assert_int_eq(evssh_cache_set_agent_ttl(c, 100), EVSSH_OK);
  struct timespec pause = {0, 300 * 1000 * 1000};
  nanosleep(&pause, NULL);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_int_eq(identity_requests, 6);
  /* and a TTL of 0 keeps nothing */
  ck_assert_int_eq(evssh_cache_set_agent_ttl(c, 0), EVSSH_OK);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_msg(agent_login(c, NULL, why, sizeof why) == EVSSH_OK, "%s", why);
  ck_assert_int_eq(identity_requests, 8);
  evssh_cache_free(c);
  agent_stop();
}
END_TEST

static Suite *cache_suite(void) {
  Suite *su = suite_create("cache");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_key_read_once_for_20);
  tcase_add_test(tc, test_key_reread_when_changed);
  tcase_add_test(tc, test_public_half_cached_apart);
  tcase_add_test(tc, test_lifetime_and_free);
  tcase_add_test(tc, test_known_hosts_read_once_and_reread);
  tcase_add_test(tc, test_known_hosts_copy_is_private);
  tcase_add_test(tc, test_two_threads_one_cache);
  tcase_add_test(tc, test_multi_sessions_share);
  tcase_add_test(tc, test_config_read_once_and_reread);
  tcase_add_test(tc, test_config_sessions_share);
  tcase_add_test(tc, test_conn_hash_once_per_input);
  tcase_add_test(tc, test_agent_list_once_for_20);
  tcase_add_test(tc, test_agent_list_lifetime);
  suite_add_tcase(su, tc);
  return su;
}

int main(void) {
  have_sshd = harness_skip_reason() == NULL && harness_sshd_start(&peer, "MaxStartups 100\n") == 0;
  SRunner *sr = srunner_create(cache_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (have_sshd) harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
