/* Unit tests of auth.c against a scripted server: the transport_* calls
 * auth.c makes are defined here, every packet it sends is captured, and the
 * server's answers are fed to auth_handle_packet by hand. Covers what a
 * real sshd shows only in some set-ups: a keyboard-interactive round with
 * zero prompts (PAM sends them; it must be answered with an empty list, no
 * NULL + 0 arithmetic), and a key given up on before the server said which
 * methods it allows (the next key follows, then "none" learns them). */
#include "auth.h"

#include "buf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------ fake transport */

struct evssh_transport {
  evssh_buf cur;
  bool open;
  evssh_buf sent[32];   /* payloads, message byte first */
  size_t nsent, next;
};

static evssh_transport T;

evssh_buf *transport_begin(evssh_transport *t, uint8_t msg) {
  ck_assert(!t->open);
  buf_reset(&t->cur);
  t->open = true;
  evssh_buf_put_u8(&t->cur, msg);
  return &t->cur;
}

int transport_end(evssh_transport *t) {
  ck_assert(t->open);
  t->open = false;
  ck_assert_uint_lt(t->nsent, 32);
  buf_init(&t->sent[t->nsent]);
  buf_append(&t->sent[t->nsent++], buf_ptr(&t->cur), buf_avail(&t->cur));
  return EVSSH_OK;
}

void transport_abort(evssh_transport *t) {
  ck_assert(t->open);
  t->open = false;
}

const unsigned char *transport_session_id(const evssh_transport *t, size_t *len) {
  static const unsigned char id[32] = {1, 2, 3};
  *len = sizeof id;
  return id;
}

const char *transport_server_sig_algs(const evssh_transport *t) { return "ssh-ed25519,rsa-sha2-512"; }

/* the next packet auth sent: its message number, and a reader after it */
static evssh_reader next_sent(uint8_t want) {
  ck_assert_uint_lt(T.next, T.nsent);
  evssh_buf *b = &T.sent[T.next++];
  ck_assert_uint_eq(buf_ptr(b)[0], want);
  return reader_of(buf_ptr(b) + 1, buf_avail(b) - 1);
}

/* a USERAUTH_REQUEST: returns its method, the reader after it */
static void expect_request(const char *method, evssh_reader *rest) {
  evssh_reader r = next_sent(SSH_MSG_USERAUTH_REQUEST);
  const char *s;
  size_t n;
  ck_assert_int_eq(evssh_read_string(&r, &s, &n), 0);   /* user */
  ck_assert_int_eq(evssh_read_string(&r, &s, &n), 0);   /* service */
  ck_assert_int_eq(evssh_read_string(&r, &s, &n), 0);
  ck_assert_msg(n == strlen(method) && memcmp(s, method, n) == 0, "method %.*s, wanted %s", (int)n, s, method);
  if (rest) *rest = r;
}

/* ------------------------------------------------------------ the layer */

static struct {
  int done, fails, prompts;
  int fail_code;
  char fail_msg[2048];
} ev;

static int on_done(void *ctx) {
  ev.done++;
  return EVSSH_OK;
}
static void on_fail(void *ctx, int code, const char *message) {
  ev.fails++;
  ev.fail_code = code;
  snprintf(ev.fail_msg, sizeof ev.fail_msg, "%s", message);
}
static int on_prompt(void *ctx, const char *prompt, bool echo, char *answer, size_t size) {
  ev.prompts++;
  if (strstr(prompt, "passphrase")) return -1;   /* no passphrase to give */
  snprintf(answer, size, "answer-%d", ev.prompts);
  return 0;
}
static const auth_events events = {on_done, on_fail, on_prompt};

static evssh_diag diag;
static evssh_options opt;
static evssh_auth *A;
static char workdir[] = "/tmp/evssh-auth-unit-XXXXXX";

static void setup(void) {
  memset(&T, 0, sizeof T);
  memset(&ev, 0, sizeof ev);
  memset(&opt, 0, sizeof opt);
  memset(&diag, 0, sizeof diag);
  diag.log_level = getenv("EVSSH_DEBUG") ? atoi(getenv("EVSSH_DEBUG")) : 0;
  opt.user = "u";
  opt.hostname = "h";
  opt.preferred = "publickey,keyboard-interactive,password";
  opt.kbdint_auth = opt.password_auth = true;
  opt.password_prompts = 3;
  opt.identity_agent = "none";
  opt.pubkey_algs = "ssh-ed25519,rsa-sha2-512,rsa-sha2-256";
  A = NULL;
}

static void teardown(void) {
  auth_free(A);
  for (size_t i = 0; i < T.nsent; i++) buf_release(&T.sent[i]);
  buf_release(&T.cur);
}

static void start(bool can_prompt) {
  auth_params p = {&T, &diag, &opt, NULL, can_prompt, &events, NULL, NULL};
  ck_assert_int_eq(auth_start(&p, &A), 0);
  next_sent(SSH_MSG_SERVICE_REQUEST);
}

static int feed(uint8_t msg, const evssh_buf *body) {
  evssh_reader r = buf_avail(body) ? reader_of(buf_ptr(body), buf_avail(body)) : reader_of(NULL, 0);
  return auth_handle_packet(A, msg, &r);
}

static int feed_failure(const char *methods) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_cstring(&b, methods);
  evssh_buf_put_bool(&b, false);
  int rc = feed(SSH_MSG_USERAUTH_FAILURE, &b);
  buf_release(&b);
  return rc;
}

static int feed_empty(uint8_t msg) {
  evssh_buf b = EVSSH_BUF_INIT;
  int rc = feed(msg, &b);
  return rc;
}

static int feed_info_request(uint32_t n) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_cstring(&b, "");
  evssh_buf_put_cstring(&b, "");
  evssh_buf_put_cstring(&b, "");
  evssh_buf_put_u32(&b, n);
  for (uint32_t i = 0; i < n; i++) {
    evssh_buf_put_cstring(&b, "Code: ");
    evssh_buf_put_bool(&b, false);
  }
  int rc = feed(SSH_MSG_USERAUTH_INFO_REQUEST, &b);
  buf_release(&b);
  return rc;
}

START_TEST(test_zero_prompt_info_request) {
  opt.preferred = "keyboard-interactive";
  start(true);
  ck_assert_int_eq(feed_empty(SSH_MSG_SERVICE_ACCEPT), 0);
  expect_request("none", NULL);
  ck_assert_int_eq(feed_failure("keyboard-interactive"), 0);
  expect_request("keyboard-interactive", NULL);
  /* PAM's informational round: no prompts, answered with none */
  ck_assert_int_eq(feed_info_request(0), 0);
  evssh_reader r = next_sent(SSH_MSG_USERAUTH_INFO_RESPONSE);
  uint32_t n = 99;
  ck_assert_int_eq(evssh_read_u32(&r, &n), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(r.left, 0);
  ck_assert_int_eq(ev.prompts, 0);
  /* then a real one */
  ck_assert_int_eq(feed_info_request(1), 0);
  r = next_sent(SSH_MSG_USERAUTH_INFO_RESPONSE);
  ck_assert_int_eq(evssh_read_u32(&r, &n), 0);
  ck_assert_uint_eq(n, 1);
  const char *s;
  size_t len;
  ck_assert_int_eq(evssh_read_string(&r, &s, &len), 0);
  ck_assert(len == 8 && memcmp(s, "answer-1", 8) == 0);
  ck_assert_int_eq(feed_empty(SSH_MSG_USERAUTH_SUCCESS), 0);
  ck_assert_int_eq(ev.done, 1);
  ck_assert_int_eq(ev.fails, 0);
}
END_TEST

static void keygen(char *path, size_t size, const char *name, const char *passphrase) {
  snprintf(path, size, "%s/%s", workdir, name);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -f '%s' '%s.pub'; ssh-keygen -q -t ed25519 -N '%s' -f '%s' </dev/null >/dev/null", path,
           path, passphrase, path);
  ck_assert_int_eq(system(cmd), 0);
}

/* The first request is a publickey query (no "none" first): the server
   accepts the key (PK_OK) but it cannot be opened. The next key is offered,
   not a failure saying "server allows (nothing)". */
START_TEST(test_unusable_key_before_methods_known) {
  char enc[600], plain[600];
  keygen(enc, sizeof enc, "enc", "a passphrase");
  keygen(plain, sizeof plain, "plain", "");
  /* the plain key without its .pub: opened at collect time, signed at once */
  char pub[700];
  snprintf(pub, sizeof pub, "%s.pub", plain);
  unlink(pub);
  const char *files[] = {enc, plain};
  opt.identity_files = files;
  opt.n_identity_files = 2;
  opt.identity_files_configured = true;
  opt.pubkey_auth = true;
  start(true);
  ck_assert_int_eq(feed_empty(SSH_MSG_SERVICE_ACCEPT), 0);
  evssh_reader r;
  expect_request("publickey", &r);
  bool signed_req = true;
  ck_assert_int_eq(evssh_read_bool(&r, &signed_req), 0);
  ck_assert(!signed_req);                       /* the encrypted key: asked about first */
  evssh_buf b = EVSSH_BUF_INIT;
  const char *alg;
  size_t alen;
  ck_assert_int_eq(evssh_read_string(&r, &alg, &alen), 0);
  evssh_buf_put_string(&b, alg, alen);
  const char *blob;
  size_t blen;
  ck_assert_int_eq(evssh_read_string(&r, &blob, &blen), 0);
  evssh_buf_put_string(&b, blob, blen);
  ck_assert_int_eq(feed(SSH_MSG_USERAUTH_PK_OK, &b), 0);
  buf_release(&b);
  ck_assert_int_eq(ev.fails, 0);
  ck_assert_int_eq(ev.prompts, 1);              /* the passphrase was asked for, and declined */
  expect_request("publickey", &r);              /* the next key */
  ck_assert_int_eq(evssh_read_bool(&r, &signed_req), 0);
  ck_assert(signed_req);
  /* refused too: now the server's list is known and the rest follows it */
  ck_assert_int_eq(feed_failure("publickey,password"), 0);
  expect_request("password", NULL);
  ck_assert_int_eq(feed_failure("publickey,password"), 0);
  expect_request("password", NULL);             /* asked again at the prompt */
  ck_assert_int_eq(feed_empty(SSH_MSG_USERAUTH_SUCCESS), 0);
  ck_assert_int_eq(ev.done, 1);
}
END_TEST

int main(void) {
  if (!mkdtemp(workdir)) {
    perror("mkdtemp");
    return 1;
  }
  Suite *s = suite_create("auth-unit");
  TCase *tc = tcase_create("auth");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_zero_prompt_info_request);
  tcase_add_test(tc, test_unusable_key_before_methods_known);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
  if (system(cmd) != 0) failed++;
  return failed ? 1 : 0;
}
