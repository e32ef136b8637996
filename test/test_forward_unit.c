/* Unit tests of forwarding's parsers, without a server: the SOCKS request
 * parser (socks.c) on every kind of request, split at every byte, and on
 * what it must refuse; the forwarding specs of ssh_config (forward_spec.c)
 * and their canonical form, compared with what `ssh -G` prints for the
 * same options when ssh is installed; the forwarding keywords through
 * evssh_config (accumulation, repeats, bad values). */
#include "config.h"
#include "evssh.h"
#include "forward_spec.h"
#include "socks.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- SOCKS */

static socks_result feed_all(socks_state *st, const unsigned char *in, size_t len, size_t *consumed, socks_request *req,
                             unsigned char *reply, size_t *reply_len, const char **why) {
  return socks_feed(st, in, len, consumed, req, reply, reply_len, why);
}

/* Feed the bytes one more at a time: nothing happens until the message is
   whole, then it is the same whatever the split. */
static socks_result feed_growing(const unsigned char *in, size_t len, socks_request *req, unsigned char *reply,
                                 size_t *reply_len, size_t *used, const char **why) {
  socks_state st = {0};
  size_t off = 0;
  socks_result r = SOCKS_MORE;
  for (size_t n = 0; n <= len; n++) {
    size_t consumed = 0;
    r = feed_all(&st, in + off, n - off, &consumed, req, reply, reply_len, why);
    if (r == SOCKS_MORE) {
      ck_assert_uint_eq(consumed, 0);
      continue;
    }
    off += consumed;
    if (r != SOCKS_REPLY) break;
  }
  *used = off;
  return r;
}

START_TEST(test_socks4_connect) {
  const unsigned char req[] = {4, 1, 0x1f, 0x90, 127, 0, 0, 1, 'b', 'o', 'b', 0, 'x'};
  socks_request r;
  unsigned char reply[SOCKS_REPLY_MAX];
  size_t rl, used;
  const char *why;
  ck_assert_int_eq(feed_growing(req, sizeof req, &r, reply, &rl, &used, &why), SOCKS_CONNECT);
  ck_assert_uint_eq(used, 12);   /* the byte after the request is the client's data */
  ck_assert_int_eq(r.version, 4);
  ck_assert_str_eq(r.host, "127.0.0.1");
  ck_assert_int_eq(r.port, 8080);
  ck_assert_uint_eq(socks_connect_reply(4, true, 0, NULL, reply), 8);
  ck_assert_int_eq(reply[0], 0);
  ck_assert_int_eq(reply[1], 0x5a);
  ck_assert_uint_eq(socks_connect_reply(4, false, 2, "Connection refused", reply), 8);
  ck_assert_int_eq(reply[1], 0x5b);
}
END_TEST

START_TEST(test_socks4a_name) {
  const unsigned char req[] = {4, 1, 0, 80, 0, 0, 0, 9, 0, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g', 0};
  socks_request r;
  unsigned char reply[SOCKS_REPLY_MAX];
  size_t rl, used;
  const char *why;
  ck_assert_int_eq(feed_growing(req, sizeof req, &r, reply, &rl, &used, &why), SOCKS_CONNECT);
  ck_assert_uint_eq(used, sizeof req);
  ck_assert_str_eq(r.host, "example.org");
  ck_assert_int_eq(r.port, 80);
}
END_TEST

START_TEST(test_socks5_kinds) {
  const unsigned char v4[] = {5, 2, 2, 0, 5, 1, 0, 1, 10, 1, 2, 3, 0, 22};
  const unsigned char v6[] = {5, 1, 0, 5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0xbb};
  const unsigned char dn[] = {5, 1, 0, 5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0x1f, 0x90};
  socks_request r;
  unsigned char reply[SOCKS_REPLY_MAX];
  size_t rl, used;
  const char *why;
  ck_assert_int_eq(feed_growing(v4, sizeof v4, &r, reply, &rl, &used, &why), SOCKS_CONNECT);
  ck_assert_str_eq(r.host, "10.1.2.3");
  ck_assert_int_eq(r.port, 22);
  ck_assert_int_eq(r.version, 5);
  ck_assert_int_eq(feed_growing(v6, sizeof v6, &r, reply, &rl, &used, &why), SOCKS_CONNECT);
  ck_assert_str_eq(r.host, "2001:db8::1");
  ck_assert_int_eq(r.port, 443);
  ck_assert_int_eq(feed_growing(dn, sizeof dn, &r, reply, &rl, &used, &why), SOCKS_CONNECT);
  ck_assert_str_eq(r.host, "localhost");
  ck_assert_int_eq(r.port, 8080);
  /* the greeting's answer: no authentication */
  socks_state st = {0};
  size_t c;
  ck_assert_int_eq(socks_feed(&st, dn, 3, &c, &r, reply, &rl, &why), SOCKS_REPLY);
  ck_assert_uint_eq(c, 3);
  ck_assert_uint_eq(rl, 2);
  ck_assert_int_eq(reply[0], 5);
  ck_assert_int_eq(reply[1], 0);
  ck_assert_uint_eq(socks_connect_reply(5, true, 0, NULL, reply), 10);
  ck_assert(memcmp(reply, "\x05\x00\x00\x01\0\0\0\0\0\0", 10) == 0);
}
END_TEST

static void expect_fail(const unsigned char *in, size_t len, const unsigned char *want_reply, size_t want_len,
                        const char *why_part) {
  socks_request r;
  unsigned char reply[SOCKS_REPLY_MAX];
  size_t rl = 99, used;
  const char *why = NULL;
  ck_assert_int_eq(feed_growing(in, len, &r, reply, &rl, &used, &why), SOCKS_FAIL);
  ck_assert_uint_eq(rl, want_len);
  if (want_len) ck_assert(memcmp(reply, want_reply, want_len) == 0);
  ck_assert_ptr_nonnull(why);
  ck_assert_msg(strstr(why, why_part), "%s", why);
}

START_TEST(test_socks_refusals) {
  const unsigned char bind5[] = {5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80};
  expect_fail(bind5, sizeof bind5, (const unsigned char *)"\x05\x07\x00\x01\0\0\0\0\0\0", 10, "not supported");
  const unsigned char udp5[] = {5, 1, 0, 5, 3, 0, 1, 1, 2, 3, 4, 0, 80};
  expect_fail(udp5, sizeof udp5, (const unsigned char *)"\x05\x07\x00\x01\0\0\0\0\0\0", 10, "UDP");
  const unsigned char atyp[] = {5, 1, 0, 5, 1, 0, 7, 1, 2, 3, 4, 0, 80};
  expect_fail(atyp, sizeof atyp, (const unsigned char *)"\x05\x08\x00\x01\0\0\0\0\0\0", 10, "address type");
  const unsigned char auth[] = {5, 2, 1, 2};
  expect_fail(auth, sizeof auth, (const unsigned char *)"\x05\xff", 2, "no method");
  const unsigned char nomethods[] = {5, 0};
  expect_fail(nomethods, sizeof nomethods, NULL, 0, "no authentication method");
  const unsigned char bind4[] = {4, 2, 0, 80, 1, 2, 3, 4, 0};
  expect_fail(bind4, sizeof bind4, (const unsigned char *)"\x00\x5b\0\0\0\0\0\0", 8, "CONNECT");
  expect_fail((const unsigned char *)"GET / HTTP/1.1\r\n", 16, NULL, 0, "not a SOCKS request");
  const unsigned char badver[] = {5, 1, 0, 4, 1, 0, 1, 1, 2, 3, 4, 0, 80};
  expect_fail(badver, sizeof badver, NULL, 0, "version");
  const unsigned char rsv[] = {5, 1, 0, 5, 1, 7, 1, 1, 2, 3, 4, 0, 80};
  expect_fail(rsv, sizeof rsv, (const unsigned char *)"\x05\x01\x00\x01\0\0\0\0\0\0", 10, "reserved");
  const unsigned char ctl[] = {5, 1, 0, 5, 1, 0, 3, 3, 'a', '\n', 'b', 0, 80};
  expect_fail(ctl, sizeof ctl, (const unsigned char *)"\x05\x01\x00\x01\0\0\0\0\0\0", 10, "printable");
  const unsigned char empty[] = {5, 1, 0, 5, 1, 0, 3, 0, 0, 80};
  expect_fail(empty, sizeof empty, (const unsigned char *)"\x05\x01\x00\x01\0\0\0\0\0\0", 10, "empty");
  /* a user id without its NUL within 255 bytes */
  unsigned char longid[300];
  memset(longid, 'a', sizeof longid);
  memcpy(longid, "\x04\x01\x00\x50\x01\x02\x03\x04", 8);
  expect_fail(longid, sizeof longid, (const unsigned char *)"\x00\x5b\0\0\0\0\0\0", 8, "too long");
  unsigned char longname[300];
  memset(longname, 'n', sizeof longname);
  memcpy(longname, "\x04\x01\x00\x50\x00\x00\x00\x01u\x00", 10);
  expect_fail(longname, sizeof longname, (const unsigned char *)"\x00\x5b\0\0\0\0\0\0", 8, "too long");
}
END_TEST

START_TEST(test_socks_failure_codes) {
  ck_assert_int_eq(socks5_code_for(1, "open failed"), 2);
  ck_assert_int_eq(socks5_code_for(2, "Connection refused"), 5);
  ck_assert_int_eq(socks5_code_for(2, "connect failed: Network is unreachable"), 3);
  ck_assert_int_eq(socks5_code_for(2, "No route to host"), 4);
  ck_assert_int_eq(socks5_code_for(2, "name or service not known"), 4);
  ck_assert_int_eq(socks5_code_for(2, "Connection timed out"), 4);
  ck_assert_int_eq(socks5_code_for(4, "resource shortage"), 1);
  ck_assert_int_eq(socks5_code_for(2, NULL), 1);
}
END_TEST

/* ----------------------------------------------------- forward specs */

static void spec_ok(fwd_spec_kind k, const char *listen, const char *connect, const char *canon) {
  forward_spec f;
  char err[300] = "";
  ck_assert_msg(forward_spec_parse(k, listen, connect, &f, err, sizeof err) == EVSSH_OK, "%s %s: %s", listen,
                connect ? connect : "", err);
  char *text = forward_spec_format(k, &f);
  ck_assert_str_eq(text, canon);
  forward_spec back;
  ck_assert_int_eq(forward_spec_parse_canonical(k, text, &back, err, sizeof err), EVSSH_OK);
  char *again = forward_spec_format(k, &back);
  ck_assert_str_eq(again, canon);
  ck_assert_int_eq(back.listen_port, f.listen_port);
  ck_assert_int_eq(back.connect_port, f.connect_port);
  free(text);
  free(again);
  forward_spec_release(&f);
  forward_spec_release(&back);
}

static void spec_bad(fwd_spec_kind k, const char *listen, const char *connect, const char *why) {
  forward_spec f;
  char err[300] = "";
  ck_assert_int_eq(forward_spec_parse(k, listen, connect, &f, err, sizeof err), EVSSH_EINVAL);
  ck_assert_msg(strstr(err, why), "%s %s: %s", listen, connect ? connect : "", err);
}

START_TEST(test_forward_specs) {
  spec_ok(FWD_SPEC_LOCAL, "8080", "example.com:80", "8080 [example.com]:80");
  spec_ok(FWD_SPEC_LOCAL, "127.0.0.1:8081", "[::1]:81", "[127.0.0.1]:8081 [::1]:81");
  spec_ok(FWD_SPEC_LOCAL, "[::1]:8082", "host:82", "[::1]:8082 [host]:82");
  spec_ok(FWD_SPEC_LOCAL, "*:8083", "h:1", "[*]:8083 [h]:1");
  spec_ok(FWD_SPEC_LOCAL, ":8084", "h:1", "[]:8084 [h]:1");
  spec_ok(FWD_SPEC_LOCAL, "/tmp/a.sock", "/tmp/b.sock", "/tmp/a.sock /tmp/b.sock");
  spec_ok(FWD_SPEC_LOCAL, "8085", "/run/x.sock", "8085 /run/x.sock");
  spec_ok(FWD_SPEC_LOCAL, "/tmp/c\\:d", "h:2", "/tmp/c:d [h]:2");
  spec_ok(FWD_SPEC_LOCAL, "/tmp/with space", "h:2", "/tmp/with\\ space [h]:2");
  spec_ok(FWD_SPEC_REMOTE, "0", "localhost:22", "0 [localhost]:22");
  spec_ok(FWD_SPEC_REMOTE, "0.0.0.0:9000", "127.0.0.1:8000", "[0.0.0.0]:9000 [127.0.0.1]:8000");
  spec_ok(FWD_SPEC_REMOTE, "/srv/r.sock", "/tmp/l.sock", "/srv/r.sock /tmp/l.sock");
  spec_ok(FWD_SPEC_DYNAMIC, "1080", NULL, "1080");
  spec_ok(FWD_SPEC_DYNAMIC, "localhost:1081", NULL, "[localhost]:1081");
  spec_ok(FWD_SPEC_DYNAMIC, "/tmp/socks.sock", NULL, "/tmp/socks.sock");
  spec_bad(FWD_SPEC_LOCAL, "0", "h:1", "only for RemoteForward");
  spec_bad(FWD_SPEC_LOCAL, "70000", "h:1", "bad listen port");
  spec_bad(FWD_SPEC_LOCAL, "8080", NULL, "missing target");
  spec_bad(FWD_SPEC_LOCAL, "8080", "h", "bad target");
  spec_bad(FWD_SPEC_LOCAL, "8080", "h:0", "bad target port");
  spec_bad(FWD_SPEC_LOCAL, "8080", "h:x", "bad target port");
  spec_bad(FWD_SPEC_LOCAL, "a:b:c:d", "h:1", "too many");
  spec_bad(FWD_SPEC_LOCAL, "[::1:8080", "h:1", "[address]");
  spec_bad(FWD_SPEC_DYNAMIC, "0", NULL, "bad listen port");
  spec_bad(FWD_SPEC_DYNAMIC, "1080", "h:1", "one argument");
  spec_bad(FWD_SPEC_REMOTE, "9000", NULL, "remote dynamic forwarding");
}
END_TEST

/* ------------------------------------------------- through evssh_config */

static evssh_config *config_of(const char *const *opts) {
  evssh_config *c;
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  char err[512];
  for (size_t i = 0; opts[i]; i++) {
    const char *eq = strchr(opts[i], '=');
    char kw[64];
    snprintf(kw, sizeof kw, "%.*s", (int)(eq - opts[i]), opts[i]);
    ck_assert_msg(evssh_config_set(c, kw, eq + 1, err, sizeof err) == EVSSH_OK, "%s: %s", opts[i], err);
  }
  ck_assert_int_eq(evssh_config_read_file(c, "/dev/null", "example", err, sizeof err), EVSSH_OK);
  ck_assert_msg(evssh_config_finalize(c, "example", err, sizeof err) == EVSSH_OK, "%s", err);
  return c;
}

static const char *const forward_opts[] = {
  "LocalForward=8080 example.com:80",
  "LocalForward=127.0.0.1:8081 [::1]:81",
  "LocalForward=8080 example.com:80",
  "localforward=/tmp/evssh-a.sock /tmp/evssh-b.sock",
  "RemoteForward=9000 localhost:22",
  "RemoteForward=0 127.0.0.1:2222",
  "DynamicForward=1080",
  "DynamicForward=*:1081",
  "ExitOnForwardFailure=yes",
  "GatewayPorts=true",
  NULL,
};

START_TEST(test_config_keywords) {
  evssh_config *c = config_of(forward_opts);
  const char *const *v;
  ck_assert_uint_eq(evssh_config_get_list(c, "LocalForward", &v), 3);   /* the repeat dropped */
  ck_assert_str_eq(v[0], "8080 [example.com]:80");
  ck_assert_str_eq(v[1], "[127.0.0.1]:8081 [::1]:81");
  ck_assert_str_eq(v[2], "/tmp/evssh-a.sock /tmp/evssh-b.sock");
  ck_assert_uint_eq(evssh_config_get_list(c, "RemoteForward", &v), 2);
  ck_assert_str_eq(v[1], "0 [127.0.0.1]:2222");
  ck_assert_uint_eq(evssh_config_get_list(c, "DynamicForward", &v), 2);
  ck_assert_str_eq(v[1], "[*]:1081");
  ck_assert_str_eq(evssh_config_get(c, "ExitOnForwardFailure"), "yes");
  ck_assert_str_eq(evssh_config_get(c, "GatewayPorts"), "yes");
  evssh_config_free(c);
  /* bad values fail when set, naming the keyword */
  ck_assert_int_eq(evssh_config_new(&c), EVSSH_OK);
  char err[512];
  ck_assert_int_eq(evssh_config_set(c, "LocalForward", "8080", err, sizeof err), EVSSH_EINVAL);
  ck_assert_msg(strstr(err, "LocalForward") && strstr(err, "missing target"), "%s", err);
  ck_assert_int_eq(evssh_config_set(c, "DynamicForward", "1080 x:1", err, sizeof err), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_config_set(c, "LocalForward", "1 h:1 extra", err, sizeof err), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_config_set(c, "GatewayPorts", "maybe", err, sizeof err), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_config_set(c, "ExitOnForwardFailure", "2", err, sizeof err), EVSSH_EINVAL);
  evssh_config_free(c);
}
END_TEST

/* The same options through `ssh -G`, which prints the forwards in the
   same canonical form. */
START_TEST(test_config_matches_ssh_G) {
  if (system("command -v ssh >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: no ssh to compare with\n");
    return;
  }
  char cmd[4096] = "ssh -G -F /dev/null";
  for (size_t i = 0; forward_opts[i]; i++) {
    strcat(cmd, " -o '");
    strcat(cmd, forward_opts[i]);
    strcat(cmd, "'");
  }
  strcat(cmd, " example </dev/null 2>/dev/null");
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  char line[1024], lf[2048] = "", rf[1024] = "", df[1024] = "", eoff[32] = "", gw[32] = "";
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    char *sp = strchr(line, ' ');
    if (!sp) continue;
    *sp++ = 0;
    /* ssh 9.x also lists a unix-to-unix LocalForward under dynamicforward
       (its connect host is unset); that line is not a DynamicForward */
    char *dst = !strcmp(line, "localforward") ? lf : !strcmp(line, "remoteforward") ? rf
                : !strcmp(line, "dynamicforward") && sp[0] != '/' ? df : NULL;
    if (dst) {
      if (dst[0]) strcat(dst, "|");
      strcat(dst, sp);
    }
    if (!strcmp(line, "exitonforwardfailure")) snprintf(eoff, sizeof eoff, "%s", sp);
    if (!strcmp(line, "gatewayports")) snprintf(gw, sizeof gw, "%s", sp);
  }
  int st = pclose(p);
  ck_assert_int_eq(st, 0);
  evssh_config *c = config_of(forward_opts);
  const char *kws[] = {"LocalForward", "RemoteForward", "DynamicForward"};
  const char *theirs[] = {lf, rf, df};
  for (int k = 0; k < 3; k++) {
    const char *const *v;
    size_t n = evssh_config_get_list(c, kws[k], &v);
    char mine[2048] = "";
    for (size_t i = 0; i < n; i++) {
      if (i) strcat(mine, "|");
      strcat(mine, v[i]);
    }
    ck_assert_msg(strcmp(mine, theirs[k]) == 0, "%s: evssh \"%s\", ssh \"%s\"", kws[k], mine, theirs[k]);
  }
  ck_assert_str_eq(evssh_config_get(c, "ExitOnForwardFailure"), eoff);
  ck_assert_str_eq(evssh_config_get(c, "GatewayPorts"), gw);
  evssh_config_free(c);
}
END_TEST

static Suite *unit_suite(void) {
  Suite *s = suite_create("forward_unit");
  TCase *tc = tcase_create("socks");
  tcase_add_test(tc, test_socks4_connect);
  tcase_add_test(tc, test_socks4a_name);
  tcase_add_test(tc, test_socks5_kinds);
  tcase_add_test(tc, test_socks_refusals);
  tcase_add_test(tc, test_socks_failure_codes);
  suite_add_tcase(s, tc);
  tc = tcase_create("spec");
  tcase_add_test(tc, test_forward_specs);
  tcase_add_test(tc, test_config_keywords);
  tcase_add_test(tc, test_config_matches_ssh_G);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(unit_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
