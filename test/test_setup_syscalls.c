/* What one connection's set-up asks of the system, outside the socket
 * (issue 17): the password database and the host name only when a value
 * needs them (a default User, ~, %u %d %l %L %i %C), the former kept in
 * the shared cache while /etc/passwd is unchanged, and an identity file
 * stat()ed once per session when its key is in the shared cache (auth.c's
 * look at the file when it collects the keys stands for the cache's
 * freshness check at signing time). Counted through the linker's --wrap
 * for getpwuid_r, gethostname and stat, so the figures are what the
 * process did. The session cases run against the harness sshd and skip
 * without one; the config cases need none. */
#include "cache.h"
#include "config.h"

#include "harness.h"

#include <check.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ counters */

static int pw_calls, host_calls, key_stats;
static char watch[1024];
/* /etc/passwd as stat() reports it is this many seconds newer: a changed
   user database, without touching the real one */
static long passwd_later;

int __real_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len, struct passwd **out);
int __wrap_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len, struct passwd **out);
int __wrap_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len, struct passwd **out) {
  pw_calls++;
  return __real_getpwuid_r(uid, pw, buf, len, out);
}

int __real_gethostname(char *name, size_t len);
int __wrap_gethostname(char *name, size_t len);
int __wrap_gethostname(char *name, size_t len) {
  host_calls++;
  return __real_gethostname(name, len);
}

int __real_stat(const char *path, struct stat *st);
int __wrap_stat(const char *path, struct stat *st);
int __wrap_stat(const char *path, struct stat *st) {
  if (watch[0] && strcmp(path, watch) == 0) key_stats++;
  int rc = __real_stat(path, st);
  if (rc == 0 && passwd_later && strcmp(path, "/etc/passwd") == 0) st->st_mtim.tv_sec += passwd_later;
  return rc;
}

static void reset(void) { pw_calls = host_calls = key_stats = 0; }

/* ------------------------------------------------------ config finalize */

static evssh_config *configured(const char *const *kv) {
  evssh_config *c = NULL;
  char err[300] = "";
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  for (size_t i = 0; kv[i]; i += 2)
    ck_assert_msg(evssh_config_set(c, kv[i], kv[i + 1], err, sizeof err) == EVSSH_OK, "%s", err);
  return c;
}

static const char *const explicit_kv[] = {
  "User", "someone", "IdentityFile", "/nonexistent/id", "UserKnownHostsFile", "/nonexistent/kh",
  "GlobalKnownHostsFile", "none", "IdentityAgent", "none", NULL};

/* every value given, none with a local token: nothing to look up */
START_TEST(test_finalize_explicit_asks_nothing) {
  evssh_config *c = configured(explicit_kv);
  char err[300] = "";
  reset();
  ck_assert_msg(evssh_config_finalize(c, "example.com", err, sizeof err) == EVSSH_OK, "%s", err);
  ck_assert_int_eq(pw_calls, 0);
  ck_assert_int_eq(host_calls, 0);
  ck_assert_str_eq(evssh_config_get(c, "User"), "someone");
  const char *const *v;
  ck_assert_uint_eq(evssh_config_get_list(c, "IdentityFile", &v), 1);
  ck_assert_str_eq(v[0], "/nonexistent/id");
  evssh_config_free(c);
}
END_TEST

/* the values that need the local user or host still get them, once per
   finalize however many ask */
START_TEST(test_finalize_reads_when_needed) {
  struct passwd *pw = getpwuid(getuid());
  ck_assert_ptr_nonnull(pw);
  char host[256] = "";
  ck_assert_int_eq(gethostname(host, sizeof host - 1), 0);
  char want_id[1200], want_kh[1400];
  snprintf(want_id, sizeof want_id, "%s/.ssh/id_test", pw->pw_dir);

  /* no User: the local one is the default; ~ and the defaults expand */
  static const char *const defaults_kv[] = {"IdentityAgent", "none", NULL};
  evssh_config *c = configured(defaults_kv);
  char err[300] = "";
  reset();
  ck_assert_msg(evssh_config_finalize(c, "example.com", err, sizeof err) == EVSSH_OK, "%s", err);
  ck_assert_int_eq(pw_calls, 1);
  ck_assert_str_eq(evssh_config_get(c, "User"), pw->pw_name);
  evssh_config_free(c);

  static const char *const tokens_kv[] = {
    "User", "someone", "IdentityFile", "~/.ssh/id_test", "UserKnownHostsFile", "/tmp/%u-%l-%i", NULL};
  c = configured(tokens_kv);
  reset();
  ck_assert_msg(evssh_config_finalize(c, "example.com", err, sizeof err) == EVSSH_OK, "%s", err);
  ck_assert_int_eq(pw_calls, 1);
  ck_assert_int_eq(host_calls, 1);
  const char *const *v;
  ck_assert_uint_eq(evssh_config_get_list(c, "IdentityFile", &v), 1);
  ck_assert_str_eq(v[0], want_id);
  snprintf(want_kh, sizeof want_kh, "/tmp/%s-%s-%lu", pw->pw_name, host, (unsigned long)getuid());
  ck_assert_uint_eq(evssh_config_get_list(c, "UserKnownHostsFile", &v), 1);
  ck_assert_str_eq(v[0], want_kh);
  evssh_config_free(c);
}
END_TEST

/* configs sharing a cache read the password database once, and again when
   /etc/passwd changes or the cache is cleared; without a cache, each time */
static void finalize_default_user(evssh_cache *cache) {
  static const char *const kv[] = {"IdentityFile", "~/.ssh/id_test", "IdentityAgent", "none", NULL};
  evssh_config *c = configured(kv);
  if (cache) cache_config_use(c, cache);
  char err[300] = "";
  ck_assert_msg(evssh_config_finalize(c, "example.com", err, sizeof err) == EVSSH_OK, "%s", err);
  struct passwd *pw = getpwuid(getuid());
  ck_assert_ptr_nonnull(pw);
  ck_assert_str_eq(evssh_config_get(c, "User"), pw->pw_name);
  char want[1200];
  snprintf(want, sizeof want, "%s/.ssh/id_test", pw->pw_dir);
  const char *const *v;
  ck_assert_uint_eq(evssh_config_get_list(c, "IdentityFile", &v), 1);
  ck_assert_str_eq(v[0], want);
  evssh_config_free(c);
}

START_TEST(test_local_user_cached) {
  evssh_cache *cache = evssh_cache_new();
  ck_assert_ptr_nonnull(cache);
  reset();
  for (int i = 0; i < 5; i++) finalize_default_user(cache);
  ck_assert_int_eq(pw_calls, 1);
  passwd_later = 1000;
  finalize_default_user(cache);
  finalize_default_user(cache);
  ck_assert_int_eq(pw_calls, 2);
  passwd_later = 0;
  evssh_cache_clear(cache);
  finalize_default_user(cache);
  ck_assert_int_eq(pw_calls, 3);
  evssh_cache_free(cache);
  reset();
  for (int i = 0; i < 3; i++) finalize_default_user(NULL);
  ck_assert_int_eq(pw_calls, 3);
}
END_TEST

/* ------------------------------------------------------------ sessions */

static harness_peer peer;
static bool have_sshd;

static void one_session(evssh_cache *cache) {
  char port[16];
  snprintf(port, sizeof port, "%d", peer.port);
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_ptr_nonnull(s);
  evssh_session_set_cache(s, cache);
  ck_assert_int_eq(evssh_session_read_config(s, "none"), EVSSH_OK);
  evssh_session_option(s, "Port", port);
  evssh_session_option(s, "User", peer.user);
  evssh_session_option(s, "UserKnownHostsFile", peer.known_hosts);
  evssh_session_option(s, "GlobalKnownHostsFile", "none");
  evssh_session_option(s, "IdentityFile", peer.key_ed25519);
  evssh_session_option(s, "IdentitiesOnly", "yes");
  evssh_session_option(s, "IdentityAgent", "none");
  ck_assert_msg(evssh_session_connect(s) == EVSSH_OK, "%s", evssh_session_error(s));
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo ok", &r), EVSSH_OK);
  ck_assert_uint_eq(r.out_len, 3);
  evssh_result_free(&r);
  evssh_session_close(s);
  evssh_session_free(s);
}

/* 5 sessions sharing a cache, every value explicit: no password database,
   no host name, and the identity file stat()ed once per session (twice
   before: when the keys were collected and again by the cache at signing) */
START_TEST(test_sessions_ask_once) {
  if (!have_sshd) {
    fprintf(stderr, "skipped: %s\n", harness_skip_reason() ? harness_skip_reason() : "sshd did not start");
    return;
  }
  evssh_cache *c = evssh_cache_new();
  ck_assert_ptr_nonnull(c);
  snprintf(watch, sizeof watch, "%s", peer.key_ed25519);
  one_session(c);   /* the first session fills the cache */
  reset();
  for (int i = 0; i < 5; i++) one_session(c);
  ck_assert_int_eq(pw_calls, 0);
  ck_assert_int_eq(host_calls, 0);
  ck_assert_int_eq(key_stats, 5);
  /* a changed key file is still seen: the next session reads it again */
  evssh_cache_stats before;
  evssh_cache_stats_get(c, &before);
  struct stat st;
  ck_assert_int_eq(stat(peer.key_ed25519, &st), 0);
  struct timespec times[2] = {st.st_atim, {st.st_mtim.tv_sec + 5, st.st_mtim.tv_nsec}};
  ck_assert_int_eq(utimensat(AT_FDCWD, peer.key_ed25519, times, 0), 0);
  one_session(c);
  evssh_cache_stats after;
  evssh_cache_stats_get(c, &after);
  ck_assert_uint_eq(after.key_loads, before.key_loads + 1);
  watch[0] = 0;
  evssh_cache_free(c);
}
END_TEST

static Suite *setup_suite(void) {
  Suite *su = suite_create("setup_syscalls");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_finalize_explicit_asks_nothing);
  tcase_add_test(tc, test_finalize_reads_when_needed);
  tcase_add_test(tc, test_local_user_cached);
  tcase_add_test(tc, test_sessions_ask_once);
  suite_add_tcase(su, tc);
  return su;
}

int main(void) {
  have_sshd = harness_skip_reason() == NULL && harness_sshd_start(&peer, NULL) == 0;
  SRunner *sr = srunner_create(setup_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (have_sshd) harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
