/* known_hosts tests. Keys are made by ssh-keygen in a temp dir; expected
 * fingerprints come from `ssh-keygen -l`, hashed entries from
 * `ssh-keygen -H`, and lines written by evssh are looked up with
 * `ssh-keygen -F`, so OpenSSH is the reference on both sides. Covers plain,
 * hashed, [host]:port, wildcards, negation, @revoked, @cert-authority,
 * other key types, address entries, several files and malformed lines,
 * host names that must be written hashed to be found again, over-long
 * lines and many-star patterns. Certificates: test_cert.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostkey.h"
#include "knownhosts.h"

static char tmpdir[256];

typedef struct testkey {
  char type[64];
  char b64[2048];
  unsigned char blob[2048];
  size_t blob_len;
  char fp[64];   /* from ssh-keygen -l */
} testkey;

static testkey k_ed1, k_ed2, k_ec, k_rsa;

static int run(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_key(testkey *k, const char *name, const char *args) {
  char cmd[1024], path[600], line[4096];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  snprintf(cmd, sizeof(cmd), "ssh-keygen -q %s -N '' -C test -f '%s' </dev/null >/dev/null", args, path);
  ck_assert_int_eq(run(cmd), 0);
  snprintf(cmd, sizeof(cmd), "%s.pub", path);
  FILE *f = fopen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
  fclose(f);
  ck_assert_int_eq(sscanf(line, "%63s %2047s", k->type, k->b64), 2);
  ck_assert_int_eq(evssh_base64_decode(k->b64, strlen(k->b64), k->blob, sizeof(k->blob), &k->blob_len),
                   EVSSH_OK);
  snprintf(cmd, sizeof(cmd), "ssh-keygen -l -E sha256 -f '%s.pub'", path);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
  pclose(p);
  ck_assert_int_eq(sscanf(line, "%*d %63s", k->fp), 1);
}

static void setup(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/evssh_khtest.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  make_key(&k_ed1, "ed1", "-t ed25519");
  make_key(&k_ed2, "ed2", "-t ed25519");
  make_key(&k_ec, "ec", "-t ecdsa -b 256");
  make_key(&k_rsa, "rsa", "-t rsa -b 2048");
}

static void teardown(void) {
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(run(cmd), 0);
}

static const char *khfile(const char *name, const char *text) {
  static char path[8][600];
  static int next;
  char *p = path[next++ % 8];
  snprintf(p, 600, "%s/%s", tmpdir, name);
  if (text) {
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
  }
  return p;
}

/* "<prefix> <type> <b64>\n" for k */
static void entry(char *out, size_t outlen, const char *prefix, const testkey *k) {
  size_t l = strlen(out);
  snprintf(out + l, outlen - l, "%s %s %s\n", prefix, k->type, k->b64);
}

static evssh_kh_result check1(const char *file, const char *host, int port, const char *addr,
                              const testkey *k) {
  evssh_kh_result r;
  char err[256] = "";
  const char *files[] = {file};
  ck_assert_msg(evssh_knownhosts_check(files, 1, host, port, addr, k->blob, k->blob_len, &r, err,
                                       sizeof(err)) == EVSSH_OK, "%s", err);
  return r;
}

START_TEST(test_plain_and_mismatch) {
  char text[16384] = "# known hosts\n\n";
  entry(text, sizeof(text), "example.com,10.0.0.1", &k_ed1);
  entry(text, sizeof(text), "other.example", &k_ec);
  const char *f = khfile("plain", text);
  evssh_kh_result r = check1(f, "example.com", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(r.line, 3);
  ck_assert_str_eq(r.file, f);
  r = check1(f, "10.0.0.1", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  r = check1(f, "EXAMPLE.com", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  /* same type, different key: mismatch with file, line and both fingerprints */
  r = check1(f, "example.com", 22, NULL, &k_ed2);
  ck_assert_int_eq(r.status, EVSSH_KH_MISMATCH);
  ck_assert(!r.other_type);
  ck_assert_int_eq(r.line, 3);
  ck_assert_str_eq(r.file, f);
  ck_assert_str_eq(r.expected_fp, k_ed1.fp);
  ck_assert_str_eq(r.expected_type, "ssh-ed25519");
  ck_assert_str_eq(r.got_fp, k_ed2.fp);
  r = check1(f, "nowhere.example", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_UNKNOWN);
  /* a known host offering only another key type: refused, flagged */
  r = check1(f, "other.example", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MISMATCH);
  ck_assert(r.other_type);
  ck_assert_str_eq(r.expected_type, k_ec.type);
  ck_assert_str_eq(r.expected_fp, k_ec.fp);
  ck_assert_int_eq(r.line, 4);
}
END_TEST

START_TEST(test_hashed_by_ssh_keygen) {
  char text[16384] = "";
  entry(text, sizeof(text), "hashed.example", &k_ed1);
  entry(text, sizeof(text), "[hashed.example]:2222", &k_ec);
  entry(text, sizeof(text), "[127.0.0.1]:2022", &k_rsa);
  const char *f = khfile("hashed", text);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "ssh-keygen -q -H -f '%s' >/dev/null 2>&1", f);
  ck_assert_int_eq(run(cmd), 0);
  FILE *fp = fopen(f, "r");
  char line[4096];
  int hashed = 0;
  while (fgets(line, sizeof(line), fp))
    hashed += strncmp(line, "|1|", 3) == 0;
  fclose(fp);
  ck_assert_int_eq(hashed, 3);
  ck_assert_int_eq(check1(f, "hashed.example", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "hashed.example", 2222, NULL, &k_ec).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "127.0.0.1", 2022, NULL, &k_rsa).status, EVSSH_KH_MATCH);
  evssh_kh_result r = check1(f, "hashed.example", 22, NULL, &k_ed2);
  ck_assert_int_eq(r.status, EVSSH_KH_MISMATCH);
  ck_assert_int_eq(r.line, 1);
  ck_assert_int_eq(check1(f, "hashed.example2", 22, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(check1(f, "127.0.0.1", 22, NULL, &k_rsa).status, EVSSH_KH_UNKNOWN);
}
END_TEST

START_TEST(test_ports_wildcards_negation) {
  char text[16384] = "";
  entry(text, sizeof(text), "[127.0.0.1]:2222", &k_ed1);
  entry(text, sizeof(text), "host22", &k_ed1);
  entry(text, sizeof(text), "*.example.org,!bad.example.org", &k_ed1);
  entry(text, sizeof(text), "web?.net", &k_ed1);
  entry(text, sizeof(text), "[*.port.test]:*", &k_ed1);
  const char *f = khfile("patterns", text);
  ck_assert_int_eq(check1(f, "127.0.0.1", 2222, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "127.0.0.1", 22, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(check1(f, "host22", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "host22", 2200, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(check1(f, "good.example.org", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "GOOD.Example.ORG", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "bad.example.org", 22, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(check1(f, "bad.example.org", 22, NULL, &k_ed2).status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(check1(f, "web1.net", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "web12.net", 22, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
  ck_assert_int_eq(check1(f, "a.port.test", 2200, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(f, "good.example.org", 22, NULL, &k_ed2).status, EVSSH_KH_MISMATCH);
}
END_TEST

START_TEST(test_revoked_and_ca) {
  char text[16384] = "";
  entry(text, sizeof(text), "rev.host", &k_ec);
  entry(text, sizeof(text), "@revoked *.rev.host,rev.host", &k_ec);
  entry(text, sizeof(text), "@revoked elsewhere.host", &k_ed1);
  entry(text, sizeof(text), "@cert-authority *.ca.test", &k_ed1);
  entry(text, sizeof(text), "ok.host", &k_ed1);
  const char *f = khfile("revoked", text);
  evssh_kh_result r = check1(f, "rev.host", 22, NULL, &k_ec);
  ck_assert_int_eq(r.status, EVSSH_KH_REVOKED);
  ck_assert_int_eq(r.line, 2);
  ck_assert_int_eq(check1(f, "x.rev.host", 22, NULL, &k_ec).status, EVSSH_KH_REVOKED);
  /* revocation for another host pattern does not apply here */
  ck_assert_int_eq(check1(f, "ok.host", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  /* @cert-authority lines are not plain host keys */
  ck_assert_int_eq(check1(f, "x.ca.test", 22, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
}
END_TEST

START_TEST(test_address_and_files) {
  char text[16384] = "";
  entry(text, sizeof(text), "addr.host", &k_ed1);
  entry(text, sizeof(text), "10.9.9.9", &k_ed2);
  const char *a = khfile("addr", text);
  evssh_kh_result r = check1(a, "addr.host", 22, "10.9.9.9", &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MISMATCH);
  ck_assert(r.by_address);
  ck_assert_int_eq(r.line, 2);
  ck_assert_str_eq(r.expected_fp, k_ed2.fp);
  ck_assert_int_eq(check1(a, "addr.host", 22, "10.9.9.8", &k_ed1).status, EVSSH_KH_MATCH);
  /* an address-only entry does not make the name known */
  ck_assert_int_eq(check1(a, "new.host", 22, "10.9.9.9", &k_ed2).status, EVSSH_KH_UNKNOWN);

  /* several files: missing and NULL entries skipped, the line is reported
     in the file that has it; types lists what is known */
  char t2[16384] = "";
  entry(t2, sizeof(t2), "multi.host", &k_ec);
  entry(t2, sizeof(t2), "multi.host", &k_ed1);
  entry(t2, sizeof(t2), "multi.host", &k_ec);
  const char *b = khfile("second", t2);
  const char *files[] = {"/nonexistent/known_hosts", NULL, a, b};
  char err[256];
  ck_assert_int_eq(evssh_knownhosts_check(files, 4, "multi.host", 22, NULL, k_ed1.blob, k_ed1.blob_len,
                                          &r, err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_str_eq(r.file, b);
  ck_assert_int_eq(r.line, 2);
  char *types = NULL;
  ck_assert_int_eq(evssh_knownhosts_types(files, 4, "multi.host", 22, &types, err, sizeof(err)), EVSSH_OK);
  char want[200];
  snprintf(want, sizeof(want), "%s,ssh-ed25519", k_ec.type);
  ck_assert_str_eq(types, want);
  free(types);
  ck_assert_int_eq(evssh_knownhosts_types(files, 4, "none.host", 22, &types, err, sizeof(err)), EVSSH_OK);
  ck_assert_ptr_null(types);
}
END_TEST

START_TEST(test_malformed_lines_skipped) {
  char text[16384] =
    "badline\n"
    "host.only\n"
    "mal.host ssh-ed25519 !!!notbase64!!!\n"
    "@bogus mal.host ssh-ed25519 AAAA\n"
    "|1|garbage mal.host\n"
    "|1|AAAA|BBBB ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n"
    "   # indented comment\n"
    "\t\n";
  /* key type field that disagrees with the blob */
  entry(text, sizeof(text), "mal.host", &k_ed2);
  char *p = strrchr(text, '\n');
  *p = '\0';
  p = strstr(text, "mal.host ssh-ed25519 AAAAC3");
  ck_assert_ptr_nonnull(p);
  memcpy(p + 9, "ssh-rsa    ", 11);   /* keep the length, break the type */
  strcat(text, "\n");
  /* truncated blob (valid base64 of a cut key) */
  char cut[64];
  snprintf(cut, sizeof(cut), "%.20s", k_ed1.b64);
  strcat(text, "mal.host ssh-ed25519 ");
  strcat(text, cut);
  strcat(text, "\n");
  size_t l = strlen(text);
  snprintf(text + l, sizeof(text) - l, "  mal.host  %s  %s  trailing comment\r\n", k_ed1.type, k_ed1.b64);
  const char *f = khfile("malformed", text);
  evssh_kh_result r = check1(f, "mal.host", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(r.line, 11);
  /* the broken k_ed2 line did not count as a known ed25519 key */
  r = check1(f, "mal.host", 22, NULL, &k_ed2);
  ck_assert_int_eq(r.status, EVSSH_KH_MISMATCH);
  ck_assert_int_eq(r.line, 11);
}
END_TEST

static int keygen_find(const char *file, const char *name, char *out, size_t outlen) {
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "ssh-keygen -F '%s' -f '%s' 2>/dev/null", name, file);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, outlen - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_add_found_by_ssh_keygen) {
  char file[600], err[256], out[8192];
  snprintf(file, sizeof(file), "%s/newdir/known_hosts", tmpdir);
  ck_assert_int_eq(evssh_knownhosts_add(file, "127.0.0.1", 2222, k_ed1.blob, k_ed1.blob_len, false,
                                        err, sizeof(err)), EVSSH_OK);
  struct stat st;
  char dir[600];
  snprintf(dir, sizeof(dir), "%s/newdir", tmpdir);
  ck_assert_int_eq(stat(dir, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0700);
  ck_assert_int_eq(stat(file, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(keygen_find(file, "[127.0.0.1]:2222", out, sizeof(out)), 0);
  ck_assert_ptr_nonnull(strstr(out, k_ed1.b64));
  ck_assert_ptr_nonnull(strstr(out, "[127.0.0.1]:2222 ssh-ed25519 "));

  ck_assert_int_eq(evssh_knownhosts_add(file, "127.0.0.1", 2223, k_rsa.blob, k_rsa.blob_len, true,
                                        err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_knownhosts_add(file, "plain22.host", 22, k_ec.blob, k_ec.blob_len, true,
                                        err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(keygen_find(file, "[127.0.0.1]:2223", out, sizeof(out)), 0);
  ck_assert_ptr_nonnull(strstr(out, k_rsa.b64));
  ck_assert_ptr_nonnull(strstr(out, "|1|"));
  /* the name is not in the file in clear */
  FILE *kf = fopen(file, "r");
  char whole[16384];
  size_t wn = fread(whole, 1, sizeof(whole) - 1, kf);
  whole[wn] = '\0';
  fclose(kf);
  ck_assert_ptr_null(strstr(whole, "2223"));
  ck_assert_ptr_null(strstr(whole, "plain22"));
  ck_assert_int_eq(keygen_find(file, "plain22.host", out, sizeof(out)), 0);
  ck_assert_ptr_nonnull(strstr(out, k_ec.b64));
  ck_assert_int_ne(keygen_find(file, "[127.0.0.1]:2224", out, sizeof(out)), 0);
  /* and evssh reads back what it wrote */
  ck_assert_int_eq(check1(file, "127.0.0.1", 2222, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(file, "127.0.0.1", 2223, NULL, &k_rsa).status, EVSSH_KH_MATCH);
  evssh_kh_result r = check1(file, "plain22.host", 22, NULL, &k_ec);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(r.line, 3);

  /* appending to a file whose last line has no newline starts a new line */
  const char *nonl = khfile("nonl", "# no newline at end");
  ck_assert_int_eq(evssh_knownhosts_add(nonl, "x.host", 22, k_ed1.blob, k_ed1.blob_len, false, err,
                                        sizeof(err)), EVSSH_OK);
  r = check1(nonl, "x.host", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(r.line, 2);

}
END_TEST

/* Issue 15 item 9: a name that a plain host field would read as syntax is
   written so that looking up that same name finds it (hashed: the HMAC
   compares the exact name), ssh-keygen -F finds it too, and no other name
   matches it; names that cannot be written are refused with a message.
   Before, "!neg" was written as a negated pattern (never found again:
   accept-new appended it on every connect) and "star*" as a wildcard that
   also vouched for every other host it matches. */
START_TEST(test_add_then_lookup_odd_names) {
  static const struct {
    const char *name;
    const char *other;   /* a name the literal text would have matched, or NULL */
  } odd[] = {
    {"!neg.host", NULL},         {"@marker.host", NULL}, {"|1|fake|name", NULL}, {"#comment.host", NULL},
    {"star*.host", "starX.host"}, {"q?.host", "qX.host"}, {"a,b", "a"},          {"sp ace.host", NULL},
    {"*", "any.host"},
  };
  char err[256], out[8192];
  int ports[] = {22, 2222};
  for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
    for (int pi = 0; pi < 2; pi++) {
      char fname[64];
      snprintf(fname, sizeof(fname), "odd_%zu_%d", i, pi);
      const char *f = khfile(fname, "");
      ck_assert_msg(evssh_knownhosts_add(f, odd[i].name, ports[pi], k_ed1.blob, k_ed1.blob_len, false, err,
                                         sizeof(err)) == EVSSH_OK, "%s: %s", odd[i].name, err);
      evssh_kh_result r = check1(f, odd[i].name, ports[pi], NULL, &k_ed1);
      ck_assert_msg(r.status == EVSSH_KH_MATCH, "%s port %d: status %d", odd[i].name, ports[pi], r.status);
      /* a second connect finds it: nothing would be appended again */
      ck_assert_int_eq(check1(f, odd[i].name, ports[pi], NULL, &k_ed2).status, EVSSH_KH_MISMATCH);
      if (odd[i].other)
        ck_assert_msg(check1(f, odd[i].other, ports[pi], NULL, &k_ed1).status == EVSSH_KH_UNKNOWN, "%s vouches for %s",
                      odd[i].name, odd[i].other);
      char lookup[300];
      ck_assert_int_eq(evssh_knownhosts_name(odd[i].name, ports[pi], lookup, sizeof(lookup)), EVSSH_OK);
      ck_assert_msg(keygen_find(f, lookup, out, sizeof(out)) == 0, "ssh-keygen -F '%s' does not find it", lookup);
      ck_assert_ptr_nonnull(strstr(out, k_ed1.b64));
    }
  }
  /* ordinary names stay readable unless hashing was asked for */
  const char *plain = khfile("odd_plain", "");
  ck_assert_int_eq(evssh_knownhosts_add(plain, "Mixed.Case.host", 22, k_ed1.blob, k_ed1.blob_len, false, err,
                                        sizeof(err)), EVSSH_OK);
  FILE *fp = fopen(plain, "r");
  ck_assert_ptr_nonnull(fgets(out, sizeof(out), fp));
  fclose(fp);
  ck_assert(strncmp(out, "Mixed.Case.host ssh-ed25519 ", 28) == 0);
  /* hashed names are hashed in lower case and found in any case, as ssh does */
  const char *hashed = khfile("odd_hashed", "");
  ck_assert_int_eq(evssh_knownhosts_add(hashed, "Mixed.Case.host", 22, k_ed1.blob, k_ed1.blob_len, true, err,
                                        sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(check1(hashed, "mixed.case.host", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(check1(hashed, "MIXED.CASE.HOST", 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);
  ck_assert_int_eq(keygen_find(hashed, "mixed.case.host", out, sizeof(out)), 0);
  /* what cannot be written at all */
  const char *refused[] = {"", "tab\there", "new\nline", "[a]:1", "bra]cket", "del\x7f"};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    const char *name = refused[i];
    err[0] = '\0';
    ck_assert_int_eq(evssh_knownhosts_add(plain, name, 22, k_ed1.blob, k_ed1.blob_len, false, err, sizeof(err)),
                     EVSSH_EINVAL);
    ck_assert_msg(strstr(err, "cannot be recorded") || strstr(err, "missing argument") || strstr(err, "bad host"),
                  "%s", err);
  }
}
END_TEST

/* Lines longer than the 64 KiB cap are skipped whole (the next line is
   read as a line of its own), and host patterns with many stars are
   matched without backtracking exponentially: this lookup would take
   years with a matcher that retries every star. A loaded set answers the
   same as the one-shot check. */
START_TEST(test_long_lines_and_patterns) {
  size_t cap = 200 * 1024;
  char *text = malloc(cap);
  size_t n = 0;
  n += (size_t)snprintf(text + n, cap - n, "long.host ssh-ed25519 ");
  while (n < 100 * 1024) text[n++] = 'A';
  n += (size_t)snprintf(text + n, cap - n, " %s\n", k_ed2.b64);
  n += (size_t)snprintf(text + n, cap - n, "long.host %s %s\n", k_ed1.type, k_ed1.b64);
  char stars[128] = "";
  for (int i = 0; i < 24; i++) strcat(stars, "*a");
  strcat(stars, "*b");
  n += (size_t)snprintf(text + n, cap - n, "%s %s %s\n", stars, k_ed1.type, k_ed1.b64);
  const char *f = khfile("long", text);
  evssh_kh_result r = check1(f, "long.host", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(r.line, 2);
  char host[80];
  memset(host, 'a', 70);
  host[70] = '\0';
  ck_assert_int_eq(check1(f, host, 22, NULL, &k_ed1).status, EVSSH_KH_UNKNOWN);
  host[69] = 'b';
  ck_assert_int_eq(check1(f, host, 22, NULL, &k_ed1).status, EVSSH_KH_MATCH);

  evssh_known_hosts *kh = NULL;
  char err[256];
  ck_assert_int_eq(evssh_knownhosts_load_text(text, n, "mem", "long.host", 22, NULL, &kh, err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(evssh_knownhosts_lookup(kh, k_ed1.blob, k_ed1.blob_len, &r, err, sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_str_eq(r.file, "mem");
  ck_assert_int_eq(r.line, 2);
  char *types = NULL;
  ck_assert_int_eq(evssh_knownhosts_loaded_types(kh, &types), EVSSH_OK);
  ck_assert_str_eq(types, "ssh-ed25519");
  free(types);
  ck_assert(!evssh_knownhosts_has_cert_authority(kh));
  evssh_knownhosts_free(kh);
  free(text);

  /* many lines for one name (the set grows past its first allocation; an
     entry's type once pointed into the old array: ASan use-after-free,
     found by fuzz_knownhosts) */
  char many[64 * 1024] = "";
  for (int i = 0; i < 40; i++) entry(many, sizeof(many), i % 2 ? "many.host" : "*.host", i == 39 ? &k_ed1 : &k_ec);
  f = khfile("many", many);
  r = check1(f, "many.host", 22, NULL, &k_ed1);
  ck_assert_int_eq(r.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(r.line, 40);
  r = check1(f, "many.host", 22, NULL, &k_ed2);
  ck_assert_int_eq(r.status, EVSSH_KH_MISMATCH);
  ck_assert_str_eq(r.expected_type, "ssh-ed25519");
  ck_assert_int_eq(evssh_knownhosts_types(&f, 1, "many.host", 22, &types, err, sizeof(err)), EVSSH_OK);
  char want[200];
  snprintf(want, sizeof(want), "%s,ssh-ed25519", k_ec.type);
  ck_assert_str_eq(types, want);
  free(types);
}
END_TEST

START_TEST(test_bad_arguments) {
  evssh_kh_result r;
  char err[256];
  const char *files[] = {"/nonexistent"};
  unsigned char junk[8] = {0, 0, 0, 99, 1, 2, 3, 4};
  ck_assert_int_eq(evssh_knownhosts_check(files, 1, "h", 22, NULL, junk, sizeof(junk), &r, err,
                                          sizeof(err)), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_knownhosts_check(files, 1, "h", 0, NULL, k_ed1.blob, k_ed1.blob_len, &r, err,
                                          sizeof(err)), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_knownhosts_check(files, 1, "h", 22, NULL, k_ed1.blob, k_ed1.blob_len, &r, err,
                                          sizeof(err)), EVSSH_OK);
  ck_assert_int_eq(r.status, EVSSH_KH_UNKNOWN);
  char name[64];
  ck_assert_int_eq(evssh_knownhosts_name("h", 22, name, sizeof(name)), EVSSH_OK);
  ck_assert_str_eq(name, "h");
  ck_assert_int_eq(evssh_knownhosts_name("h", 2222, name, sizeof(name)), EVSSH_OK);
  ck_assert_str_eq(name, "[h]:2222");
}
END_TEST

int main(void) {
  Suite *s = suite_create("knownhosts");
  TCase *tc = tcase_create("knownhosts");
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_plain_and_mismatch);
  tcase_add_test(tc, test_hashed_by_ssh_keygen);
  tcase_add_test(tc, test_ports_wildcards_negation);
  tcase_add_test(tc, test_revoked_and_ca);
  tcase_add_test(tc, test_address_and_files);
  tcase_add_test(tc, test_malformed_lines_skipped);
  tcase_add_test(tc, test_add_found_by_ssh_keygen);
  tcase_add_test(tc, test_add_then_lookup_odd_names);
  tcase_add_test(tc, test_long_lines_and_patterns);
  tcase_add_test(tc, test_bad_arguments);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
