/* Host-key trust against a real OpenSSH sshd (issue 3): plain, hashed and
 * wildcard known_hosts entries match; an unknown host fails under
 * StrictHostKeyChecking=yes (the default) with EVSSH_EHOSTKEY and the key's
 * fingerprint; accept-new writes a line that `ssh-keygen -F` finds (hashed
 * too, with HashKnownHosts=yes) and that a later strict connection accepts;
 * "no" accepts without writing; a changed key fails in all three modes with
 * EVSSH_EHOSTKEY_CHANGED and the file, the line and both SHA256 fingerprints
 * in the message, and the file is left alone; a @revoked key fails the same
 * way; the application's hostkey_check
 * runs after the policy and can refuse; a known_hosts that knows only the
 * server's RSA key still connects although the server (and our default
 * order) prefer ed25519, because known types are asked for first; several
 * UserKnownHostsFile entries and GlobalKnownHostsFile are all consulted; an
 * explicit ssh_config file with a Host alias resolves HostName, Port, User,
 * IdentityFile and UserKnownHostsFile (with %d and %h tokens).
 *
 * Fingerprints are computed independently with `ssh-keygen -l -E sha256`
 * from the server's .pub files; the "changed" key is a fresh ssh-keygen key.
 * The real ~/.ssh/config is never read (evssh_session_read_config "none"). */
#include "evssh.h"
#include "harness.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static harness_peer peer;
static char workdir[512];
static int file_counter;

/* A fresh path under workdir (per test fork: the pid keeps them apart). */
static void new_path(char *out, size_t len, const char *what) {
  snprintf(out, len, "%s/%s-%d-%d", workdir, what, (int)getpid(), ++file_counter);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n = getdelim(&buf, &cap, '\0', f);
  fclose(f);
  if (n < 0) {
    free(buf);
    return strdup("");
  }
  return buf;
}

/* "type base64" of one of the server's host keys (file name in peer.dir). */
static void host_pub(const char *name, char *out, size_t len) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s.pub", peer.dir, name);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  char type[64], b64[2048];
  ck_assert_int_eq(fscanf(f, "%63s %2047s", type, b64), 2);
  fclose(f);
  snprintf(out, len, "%s %s", type, b64);
}

/* SHA256 fingerprint of a .pub file, as ssh-keygen prints it. */
static void fingerprint(const char *pubfile, char *out, size_t len) {
  char cmd[800];
  snprintf(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f '%s'", pubfile);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  int bits;
  char fp[128];
  ck_assert_int_eq(fscanf(p, "%d %127s", &bits, fp), 2);
  pclose(p);
  ck_assert(strncmp(fp, "SHA256:", 7) == 0);
  snprintf(out, len, "%s", fp);
}

static void host_fingerprint(const char *name, char *out, size_t len) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s.pub", peer.dir, name);
  fingerprint(path, out, len);
}

/* ------------------------------------------------------ one connection */

typedef struct attempt {
  const char *host;               /* NULL: 127.0.0.1 */
  const char *known_hosts;        /* UserKnownHostsFile value; NULL: leave to config */
  const char *config;             /* explicit config file; NULL: "none" */
  const char *opts[12];
  bool set_check;                 /* install the hostkey_check callback */
  int check_answer;
  /* outputs */
  int rc;
  char err[600];
  int checks;
  char check_type[64], check_fp[128];
} attempt;

static int on_check(evssh_session *s, const char *keytype, const char *fp, void *ud) {
  attempt *a = ud;
  a->checks++;
  snprintf(a->check_type, sizeof a->check_type, "%s", keytype);
  snprintf(a->check_fp, sizeof a->check_fp, "%s", fp);
  return a->check_answer;
}

static void on_log(evssh_session *s, int level, const char *msg, void *ud) {
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "    log[%d] %s\n", level, msg);
}

static void run_attempt(attempt *a) {
  evssh_session *s = evssh_session_new(a->host ? a->host : "127.0.0.1");
  ck_assert_ptr_nonnull(s);
  if (a->config) {
    ck_assert_msg(evssh_session_read_config(s, a->config) == EVSSH_OK, "%s", evssh_session_error(s));
  } else {
    ck_assert_int_eq(evssh_session_read_config(s, "none"), EVSSH_OK);
    char port[16], id[700];
    snprintf(port, sizeof port, "%d", peer.port);
    snprintf(id, sizeof id, "%s", peer.key_ed25519);
    ck_assert_int_eq(evssh_session_option(s, "Port", port), EVSSH_OK);
    ck_assert_int_eq(evssh_session_option(s, "User", peer.user), EVSSH_OK);
    ck_assert_int_eq(evssh_session_option(s, "IdentityFile", id), EVSSH_OK);
    ck_assert_int_eq(evssh_session_option(s, "IdentitiesOnly", "yes"), EVSSH_OK);
    ck_assert_int_eq(evssh_session_option(s, "IdentityAgent", "none"), EVSSH_OK);
  }
  if (a->known_hosts) ck_assert_int_eq(evssh_session_option(s, "UserKnownHostsFile", a->known_hosts), EVSSH_OK);
  /* the machine's /etc/ssh/ssh_known_hosts must not decide anything here */
  int has_global = 0;
  for (size_t i = 0; a->opts[i]; i++) has_global |= strncmp(a->opts[i], "GlobalKnownHostsFile=", 21) == 0;
  if (!has_global) ck_assert_int_eq(evssh_session_option(s, "GlobalKnownHostsFile", "none"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "ConnectTimeout", "30"), EVSSH_OK);
  for (size_t i = 0; a->opts[i]; i++) {
    const char *eq = strchr(a->opts[i], '=');
    ck_assert_ptr_nonnull(eq);
    char kw[64];
    snprintf(kw, sizeof kw, "%.*s", (int)(eq - a->opts[i]), a->opts[i]);
    ck_assert_msg(evssh_session_option(s, kw, eq + 1) == EVSSH_OK, "option %s: %s", a->opts[i],
                  evssh_session_error(s));
  }
  if (a->set_check) evssh_session_set_hostkey_check(s, on_check, a);
  evssh_session_set_log(s, EVSSH_LOG_DEBUG, on_log, NULL);
  a->rc = evssh_session_connect(s);
  snprintf(a->err, sizeof a->err, "%s", a->rc ? evssh_session_error(s) : "");
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "  connect: %d %s\n", a->rc, a->err);
  if (a->rc == EVSSH_OK) {
    /* prove the session is really up */
    evssh_result r;
    ck_assert_int_eq(evssh_session_exec_wait(s, "echo up", &r), EVSSH_OK);
    ck_assert_str_eq(r.out, "up\n");
    evssh_result_free(&r);
  }
  evssh_session_free(s);
}

#define assert_ok(a) ck_assert_msg((a)->rc == EVSSH_OK, "connect failed: %d %s", (a)->rc, (a)->err)
#define assert_err_has(a, text) \
  ck_assert_msg(strstr((a)->err, (text)) != NULL, "error message lacks \"%s\": %s", (text), (a)->err)

/* A known_hosts file holding the given lines. */
static void make_known_hosts(char *path, size_t len, const char *lines) {
  new_path(path, len, "known_hosts");
  write_file(path, lines);
}

static void name_of_peer(char *out, size_t len) { snprintf(out, len, "[127.0.0.1]:%d", peer.port); }

/* ------------------------------------------------------------ matching */

/* ssh's default is CheckHostIP=no: connecting by name, a stale entry for
   the address (another ed25519 key here) decides nothing */
START_TEST(stale_address_entry_is_ignored) {
  char kh[700], pub[2200], other[2200], lines[5000], path[700];
  host_pub("ssh_host_ed25519_key", pub, sizeof pub);
  snprintf(path, sizeof path, "%s.pub", peer.key_ed25519);
  char *client = read_file(path);
  snprintf(other, sizeof other, "%s", client);
  free(client);
  other[strcspn(other, "\n")] = 0;
  snprintf(lines, sizeof lines, "[127.0.0.1]:%d %s\n[localhost]:%d %s\n", peer.port, other, peer.port, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt a = {.host = "localhost", .known_hosts = kh};
  run_attempt(&a);
  assert_ok(&a);
}
END_TEST

START_TEST(plain_entries_match) {
  attempt a = {.known_hosts = peer.known_hosts};
  run_attempt(&a);
  assert_ok(&a);
  /* a file with only the ed25519 line, after a comment and a blank line */
  char kh[700], name[64], pub[2200], lines[5000];
  name_of_peer(name, sizeof name);
  host_pub("ssh_host_ed25519_key", pub, sizeof pub);
  snprintf(lines, sizeof lines, "# a comment\n\nother.example,10.1.2.3 %s\n%s %s\n", pub, name, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt b = {.known_hosts = kh};
  run_attempt(&b);
  assert_ok(&b);
}
END_TEST

START_TEST(hashed_entries_match) {
  char kh[700];
  new_path(kh, sizeof kh, "known_hosts");
  ck_assert_int_eq(harness_sh("cp '%s' '%s' && ssh-keygen -q -H -f '%s' >/dev/null 2>&1", peer.known_hosts, kh, kh), 0);
  char *text = read_file(kh);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "|1|") && !strstr(text, "127.0.0.1"), "ssh-keygen -H did not hash: %s", text);
  free(text);
  attempt a = {.known_hosts = kh};
  run_attempt(&a);
  assert_ok(&a);
}
END_TEST

START_TEST(wildcard_and_comma_list_match) {
  char kh[700], pub[2200], lines[2400];
  host_pub("ssh_host_ed25519_key", pub, sizeof pub);
  snprintf(lines, sizeof lines, "nothere,[127.0.0.?]:%d %s\n", peer.port, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt a = {.known_hosts = kh};
  run_attempt(&a);
  assert_ok(&a);
  /* a negated pattern excludes the host even though * matches */
  snprintf(lines, sizeof lines, "*,![127.0.0.1]:%d %s\n", peer.port, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt b = {.known_hosts = kh};
  run_attempt(&b);
  ck_assert_int_eq(b.rc, EVSSH_EHOSTKEY);
  assert_err_has(&b, "is not known");
}
END_TEST

/* ------------------------------------------------------------- unknown */

START_TEST(unknown_host_fails_by_default) {
  char kh[700], fp[128], name[64];
  make_known_hosts(kh, sizeof kh, "");
  host_fingerprint("ssh_host_ed25519_key", fp, sizeof fp);
  name_of_peer(name, sizeof name);
  /* no StrictHostKeyChecking option: the default is yes */
  attempt a = {.known_hosts = kh, .set_check = true, .opts = {"HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&a);
  ck_assert_int_eq(a.rc, EVSSH_EHOSTKEY);
  assert_err_has(&a, name);
  assert_err_has(&a, "is not known");
  assert_err_has(&a, fp);
  assert_err_has(&a, "StrictHostKeyChecking");
  assert_err_has(&a, kh);          /* where it looked */
  ck_assert_int_eq(a.checks, 0);   /* the policy refused before the application was asked */
  char *text = read_file(kh);
  ck_assert_str_eq(text, "");
  free(text);
  /* the same with an explicit yes, and with a file that does not exist */
  char missing[700];
  new_path(missing, sizeof missing, "missing");
  attempt b = {.known_hosts = missing, .opts = {"StrictHostKeyChecking=yes", "HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&b);
  ck_assert_int_eq(b.rc, EVSSH_EHOSTKEY);
  assert_err_has(&b, fp);
  ck_assert_int_eq(access(missing, F_OK), -1);
}
END_TEST

static void accept_new(bool hashed) {
  char dir[700], kh[800], name[64];
  new_path(dir, sizeof dir, "newdir");
  snprintf(kh, sizeof kh, "%s/known_hosts", dir);   /* its directory is created too, as ssh does for ~/.ssh */
  name_of_peer(name, sizeof name);
  attempt a = {.known_hosts = kh,
               .opts = {"StrictHostKeyChecking=accept-new", hashed ? "HashKnownHosts=yes" : "HashKnownHosts=no"}};
  run_attempt(&a);
  assert_ok(&a);
  char *text = read_file(kh);
  ck_assert_ptr_nonnull(text);
  if (hashed)
    ck_assert_msg(strncmp(text, "|1|", 3) == 0 && !strstr(text, "127.0.0.1"), "not hashed: %s", text);
  else
    ck_assert_msg(strncmp(text, name, strlen(name)) == 0, "line does not start with %s: %s", name, text);
  free(text);
  /* ssh-keygen finds it, under the name ssh would look up */
  ck_assert_int_eq(harness_sh("ssh-keygen -F '%s' -f '%s' | grep -q '^[^#]'", name, kh), 0);
  /* and a strict connection now trusts it */
  attempt b = {.known_hosts = kh, .opts = {"StrictHostKeyChecking=yes"}};
  run_attempt(&b);
  assert_ok(&b);
  /* nothing more was written */
  ck_assert_int_eq(harness_sh("test $(wc -l < '%s') -eq 1", kh), 0);
}

START_TEST(accept_new_writes_a_line_ssh_keygen_finds) { accept_new(false); }
END_TEST

START_TEST(accept_new_hashed) { accept_new(true); }
END_TEST

START_TEST(strict_no_accepts_without_writing) {
  char kh[700];
  make_known_hosts(kh, sizeof kh, "");
  attempt a = {.known_hosts = kh, .set_check = true, .opts = {"StrictHostKeyChecking=no"}};
  run_attempt(&a);
  assert_ok(&a);
  ck_assert_int_eq(a.checks, 1);
  char *text = read_file(kh);
  ck_assert_str_eq(text, "");
  free(text);
}
END_TEST

/* ------------------------------------------------------ changed, revoked */

static const char *const modes[] = {"yes", "accept-new", "no"};

START_TEST(changed_key_fails_in_every_mode) {
  char other[700], other_pub[800], other_fp[128], real_fp[128], name[64];
  new_path(other, sizeof other, "otherkey");
  ck_assert_int_eq(harness_sh("ssh-keygen -q -t ed25519 -N '' -C '' -f '%s' </dev/null >/dev/null", other), 0);
  snprintf(other_pub, sizeof other_pub, "%s.pub", other);
  fingerprint(other_pub, other_fp, sizeof other_fp);
  host_fingerprint("ssh_host_ed25519_key", real_fp, sizeof real_fp);
  name_of_peer(name, sizeof name);
  char *pubtext = read_file(other_pub);
  char type[64], b64[200], lines[1200];
  ck_assert_int_eq(sscanf(pubtext, "%63s %199s", type, b64), 2);
  free(pubtext);
  /* the wrong key on line 3 */
  snprintf(lines, sizeof lines, "# known hosts\nsomewhere.example %s %s\n%s %s %s\n", type, b64, name, type, b64);
  char kh[700];
  make_known_hosts(kh, sizeof kh, lines);
  char mode[64];
  snprintf(mode, sizeof mode, "StrictHostKeyChecking=%s", modes[_i]);
  attempt a = {.known_hosts = kh, .set_check = true, .check_answer = 0, .opts = {mode}};
  run_attempt(&a);
  ck_assert_msg(a.rc == EVSSH_EHOSTKEY_CHANGED, "mode %s: %d %s", modes[_i], a.rc, a.err);
  assert_err_has(&a, kh);
  assert_err_has(&a, "line 3");
  assert_err_has(&a, other_fp);
  assert_err_has(&a, real_fp);
  char hint[100];
  snprintf(hint, sizeof hint, "ssh-keygen -R '%s'", name);
  assert_err_has(&a, hint);
  ck_assert_int_eq(a.checks, 0);
  char *after = read_file(kh);
  ck_assert_str_eq(after, lines);
  free(after);
}
END_TEST

START_TEST(revoked_key_fails) {
  char pub[2200], name[64], lines[5000], kh[700];
  host_pub("ssh_host_ed25519_key", pub, sizeof pub);
  name_of_peer(name, sizeof name);
  snprintf(lines, sizeof lines, "%s %s\n@revoked * %s\n", name, pub, pub);
  make_known_hosts(kh, sizeof kh, lines);
  char mode[64];
  snprintf(mode, sizeof mode, "StrictHostKeyChecking=%s", modes[_i]);
  attempt a = {.known_hosts = kh, .opts = {mode, "HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&a);
  ck_assert_msg(a.rc == EVSSH_EHOSTKEY_CHANGED, "mode %s: %d %s", modes[_i], a.rc, a.err);
  assert_err_has(&a, "revoked");
  assert_err_has(&a, "line 2");
}
END_TEST

/* -------------------------------------------------- application check */

START_TEST(hostkey_check_runs_after_policy) {
  char fp[128];
  host_fingerprint("ssh_host_ed25519_key", fp, sizeof fp);
  attempt a = {.known_hosts = peer.known_hosts, .set_check = true, .check_answer = -1,
               .opts = {"HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&a);
  ck_assert_int_eq(a.rc, EVSSH_EHOSTKEY);
  ck_assert_int_eq(a.checks, 1);
  ck_assert_str_eq(a.check_type, "ssh-ed25519");
  ck_assert_str_eq(a.check_fp, fp);
  assert_err_has(&a, "refused by the application");
  assert_err_has(&a, fp);

  attempt b = {.known_hosts = peer.known_hosts, .set_check = true, .check_answer = 0,
               .opts = {"HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&b);
  assert_ok(&b);
  ck_assert_int_eq(b.checks, 1);

  /* accept-new and an application that refuses: nothing is recorded */
  char kh[700];
  new_path(kh, sizeof kh, "known_hosts");
  attempt c = {.known_hosts = kh, .set_check = true, .check_answer = -1,
               .opts = {"StrictHostKeyChecking=accept-new"}};
  run_attempt(&c);
  ck_assert_int_eq(c.rc, EVSSH_EHOSTKEY);
  ck_assert_int_eq(c.checks, 1);
  ck_assert_msg(access(kh, F_OK) != 0, "a key the application refused was recorded");
}
END_TEST

/* ------------------------------------------------ host key algorithms */

/* The server has ed25519 (our first choice) but known_hosts knows only its
   RSA key: we must ask for RSA and connect. */
START_TEST(only_rsa_known_still_connects) {
  char pub[2200], name[64], lines[2400], kh[700], fp[128];
  host_pub("ssh_host_rsa3072_key", pub, sizeof pub);
  host_fingerprint("ssh_host_rsa3072_key", fp, sizeof fp);
  name_of_peer(name, sizeof name);
  snprintf(lines, sizeof lines, "%s %s\n", name, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt a = {.known_hosts = kh, .set_check = true};
  run_attempt(&a);
  assert_ok(&a);
  ck_assert_str_eq(a.check_type, "ssh-rsa");
  ck_assert_str_eq(a.check_fp, fp);
  /* the same for a known ECDSA P-384 key */
  host_pub("ssh_host_ecdsa384_key", pub, sizeof pub);
  snprintf(lines, sizeof lines, "%s %s\n", name, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt b = {.known_hosts = kh, .set_check = true};
  run_attempt(&b);
  assert_ok(&b);
  ck_assert_str_eq(b.check_type, "ecdsa-sha2-nistp384");
}
END_TEST

/* HostKeyAlgorithms forces a type known_hosts does not have for the host:
   refused (a man in the middle would simply offer another type), with a
   message that says so. */
START_TEST(other_type_than_known_is_refused) {
  char pub[2200], name[64], lines[2400], kh[700];
  host_pub("ssh_host_rsa3072_key", pub, sizeof pub);
  name_of_peer(name, sizeof name);
  snprintf(lines, sizeof lines, "%s %s\n", name, pub);
  make_known_hosts(kh, sizeof kh, lines);
  attempt a = {.known_hosts = kh, .opts = {"HostKeyAlgorithms=ssh-ed25519", "StrictHostKeyChecking=no"}};
  run_attempt(&a);
  ck_assert_int_eq(a.rc, EVSSH_EHOSTKEY_CHANGED);
  assert_err_has(&a, "only another type");
  assert_err_has(&a, "ssh-rsa");
}
END_TEST

/* ----------------------------------------------------- several files */

static const char *global_empty_opt(const char *file) {
  static char opt[800];
  snprintf(opt, sizeof opt, "GlobalKnownHostsFile=%s", file);
  return opt;
}

START_TEST(several_known_hosts_files) {
  char *text;
  char empty[700], missing[700], list[2200];
  make_known_hosts(empty, sizeof empty, "");
  new_path(missing, sizeof missing, "missing");
  snprintf(list, sizeof list, "%s %s %s", missing, empty, peer.known_hosts);
  attempt a = {.known_hosts = list};
  run_attempt(&a);
  assert_ok(&a);
  /* only the global file knows the host */
  char global[800];
  snprintf(global, sizeof global, "GlobalKnownHostsFile=%s", peer.known_hosts);
  attempt b = {.known_hosts = empty, .opts = {global}};
  run_attempt(&b);
  assert_ok(&b);
  /* accept-new never writes a global file: with no user file it fails */
  attempt d = {.known_hosts = "none", .opts = {global_empty_opt(empty), "StrictHostKeyChecking=accept-new"}};
  run_attempt(&d);
  ck_assert_int_eq(d.rc, EVSSH_EHOSTKEY);
  assert_err_has(&d, "no UserKnownHostsFile");
  text = read_file(empty);
  ck_assert_str_eq(text, "");
  free(text);
  /* accept-new writes to the first user file, not the global one */
  char fresh[700];
  new_path(fresh, sizeof fresh, "fresh");
  snprintf(list, sizeof list, "%s %s", fresh, empty);
  attempt c = {.known_hosts = list, .opts = {"StrictHostKeyChecking=accept-new"}};
  run_attempt(&c);
  assert_ok(&c);
  ck_assert_int_eq(access(fresh, R_OK), 0);
  text = read_file(empty);
  ck_assert_str_eq(text, "");
  free(text);
}
END_TEST

/* ----------------------------------------------------------- ssh_config */

START_TEST(config_file_alias) {
  char dir[700], cfg[800], kh[800], text[4000];
  new_path(dir, sizeof dir, "cfg");
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  snprintf(cfg, sizeof cfg, "%s/config", dir);
  snprintf(kh, sizeof kh, "%s/kh-127.0.0.1", dir);
  ck_assert_int_eq(harness_sh("cp '%s' '%s'", peer.known_hosts, kh), 0);
  /* %h in UserKnownHostsFile is the HostName, not the alias */
  snprintf(text, sizeof text,
           "Host other\n  Port 1\n"
           "Host testalias\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n"
           "  UserKnownHostsFile %s/kh-%%h\n  IdentitiesOnly yes\n  IdentityAgent none\n"
           "Host *\n  Port 2\n  StrictHostKeyChecking yes\n",
           peer.port, peer.user, peer.key_ed25519, dir);
  write_file(cfg, text);
  attempt a = {.host = "testalias", .config = cfg};
  run_attempt(&a);
  assert_ok(&a);
  /* the address itself is not the alias: Host * gives it port 2, where
     nothing listens */
  attempt b = {.host = "127.0.0.1", .config = cfg};
  run_attempt(&b);
  ck_assert_int_eq(b.rc, EVSSH_ECONNECT);
  assert_err_has(&b, "port 2");

  /* the same through evssh_start: ConfigFile is ssh's -F */
  char opt[900];
  snprintf(opt, sizeof opt, "ConfigFile=%s", cfg);
  const char *opts[] = {opt, "GlobalKnownHostsFile=none", NULL};
  evssh_error err;
  evssh_session *s = evssh_start("testalias", NULL, opts, &err);
  ck_assert_msg(s != NULL, "evssh_start with ConfigFile: %s", err.message);
  evssh_session_free(s);
  /* a missing explicit file is an error that names it */
  const char *missing[] = {"ConfigFile=/nonexistent/evssh-config", NULL};
  ck_assert_ptr_null(evssh_start("testalias", NULL, missing, &err));
  ck_assert_int_eq(err.code, EVSSH_EINVAL);
  ck_assert_msg(strstr(err.message, "/nonexistent/evssh-config") != NULL, "message: %s", err.message);
}
END_TEST

static Suite *trust_suite(void) {
  Suite *s = suite_create("trust");
  TCase *m = tcase_create("known_hosts matching");
  tcase_set_timeout(m, 60);
  tcase_add_test(m, plain_entries_match);
  tcase_add_test(m, stale_address_entry_is_ignored);
  tcase_add_test(m, hashed_entries_match);
  tcase_add_test(m, wildcard_and_comma_list_match);
  tcase_add_test(m, several_known_hosts_files);
  suite_add_tcase(s, m);

  TCase *p = tcase_create("StrictHostKeyChecking");
  tcase_set_timeout(p, 60);
  tcase_add_test(p, unknown_host_fails_by_default);
  tcase_add_test(p, accept_new_writes_a_line_ssh_keygen_finds);
  tcase_add_test(p, accept_new_hashed);
  tcase_add_test(p, strict_no_accepts_without_writing);
  tcase_add_loop_test(p, changed_key_fails_in_every_mode, 0, 3);
  tcase_add_loop_test(p, revoked_key_fails, 0, 3);
  suite_add_tcase(s, p);

  TCase *c = tcase_create("application check and algorithms");
  tcase_set_timeout(c, 60);
  tcase_add_test(c, hostkey_check_runs_after_policy);
  tcase_add_test(c, only_rsa_known_still_connects);
  tcase_add_test(c, other_type_than_known_is_refused);
  tcase_add_test(c, config_file_alias);
  suite_add_tcase(s, c);
  return s;
}

int main(void) {
  harness_require_sshd();
  unsetenv("SSH_AUTH_SOCK");
  const char *tmp = getenv("TMPDIR");
  snprintf(workdir, sizeof workdir, "%s/evssh-trust-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(workdir)) {
    perror("mkdtemp");
    return 1;
  }
  if (harness_sshd_start(&peer, NULL) != 0) {
    fprintf(stderr, "cannot start sshd\n");
    return 1;
  }
  SRunner *sr = srunner_create(trust_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  harness_sh("rm -rf '%s'", workdir);
  return failed ? 1 : 0;
}
