/* Fuzz target: userauth replies from the server (RFC 4252, 4256, 8332)
 * through auth.c's interface as session.c drives it: auth_start, then every
 * server message to auth_handle_packet, with the transport calls auth.c
 * makes supplied here (each packet it sends is captured and checked) and
 * its upward table (done / fail / prompt) recorded. The first two input
 * bytes choose the client's set-up: which methods in which order, a
 * password or none, a prompt callback and how it answers, BatchMode, the
 * keys (an ed25519 key with its .pub, an ECDSA key without one, an
 * encrypted ed25519 key, a configured file that is missing), the server's
 * server-sig-algs; the rest is a sequence of server messages, each a
 * message number, a 16-bit big-endian length and that many body bytes.
 *
 * Oracles: no crash, out-of-bounds access or leak; everything auth sends
 * is a well-formed SERVICE_REQUEST, USERAUTH_REQUEST (our user, our
 * service, a method we implement) or INFO_RESPONSE; done and fail are
 * reported at most once and never both, nothing is sent after either; a
 * refusal (EPROTO, EAUTH) is reported through fail with a message; and a
 * server never gets more than a few packets for one of its messages.
 *
 * The key files are written once into a private temporary directory (the
 * texts are below: test keys made for this target) and removed at exit.
 * The encrypted key's bcrypt-pbkdf is memoized (fuzz_memo.h, through the
 * linker's --wrap): the same file and passphrase give the same key, and
 * the derivation was 90% of every run that asked for it.
 * Build: as every test/fuzz/fuzz_*.c (test/fuzz/run.sh).
 * Seeds: test/fuzz/seeds/fuzz_auth/.
 * FUZZ_LDFLAGS: -Wl,--wrap=evssh_bcrypt_pbkdf */
#include "auth.h"

#define FUZZ_MEMO_BCRYPT
#include "fuzz_memo.h"

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* test keys made for this target (ssh-keygen; "enc" has passphrase "pw", 1 bcrypt round) */
static const char key_plain[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDi47RLpsgYDzbcEdjyEpF07avLj7pRqfx7TBpXfZPUkgAAAJBgpx+9YKcf\n"
    "vQAAAAtzc2gtZWQyNTUxOQAAACDi47RLpsgYDzbcEdjyEpF07avLj7pRqfx7TBpXfZPUkg\n"
    "AAAECmmjotHnSjf6U1xSqPgkGxcElmnn10NUU/8vKkMnU9IOLjtEumyBgPNtwR2PISkXTt\n"
    "q8uPulGp/HtMGld9k9SSAAAACmZ1enotcGxhaW4BAgM=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";
static const char key_plain_pub[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLjtEumyBgPNtwR2PISkXTtq8uPulGp/HtMGld9k9SS fuzz-plain\n";
static const char key_ecdsa[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAaAAAABNlY2RzYS\n"
    "1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQTMbYjsM8cjxfylBDWgtipWQBohlY+E\n"
    "aIDlyez3IFPqVVXmHsLV+NW2HyqHRpBw0/ThiSo4cheQWJv7oi0mXw81AAAAqEisSHdIrE\n"
    "h3AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMxtiOwzxyPF/KUE\n"
    "NaC2KlZAGiGVj4RogOXJ7PcgU+pVVeYewtX41bYfKodGkHDT9OGJKjhyF5BYm/uiLSZfDz\n"
    "UAAAAhAP2VjCN9Q4KSna9YH24aCAIBijI1kaQXcY9pmG5tBilDAAAACmZ1enotZWNkc2EB\n"
    "AgMEBQ==\n"
    "-----END OPENSSH PRIVATE KEY-----\n";
static const char key_enc[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBIPQsSbj\n"
    "dzCbockKa3YTXQAAAAAQAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIKNewNUyfdQ4G/4x\n"
    "VPNxpric3swGOtwhMEZ1BTZs8vTvAAAAkChyEFTubHe91fFVKS5FTu2p5J3pMJIlC71noB\n"
    "PGDFuYGzH0TztQLVVcCsMcavUiyD8vraHyPw4jhVJZFvwUcUFpTX26e47XDAbNJk/Hznx4\n"
    "oYcjoXMdjeCuUETI+y8U0bBjELr+Ts8ahnUmXZNWMK9gdKAvQaK9EgvJ3fs+WRHd9BlCkU\n"
    "o+Hecasy/Cm7IQ1g==\n"
    "-----END OPENSSH PRIVATE KEY-----\n";
static const char key_enc_pub[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKNewNUyfdQ4G/4xVPNxpric3swGOtwhMEZ1BTZs8vTv fuzz-enc\n";
/* ------------------------------------------------------ fake transport */

struct evssh_transport {
  evssh_buf cur;
  bool open;
  int sent;            /* packets sent for the current server message */
  bool after_end;      /* done or fail was reported */
};

static evssh_transport T;
static const char *sig_algs;

static void check_request(const unsigned char *p, size_t n);

evssh_buf *transport_begin(evssh_transport *t, uint8_t msg) {
  if (t->open) abort();                 /* one packet at a time */
  buf_reset(&t->cur);
  t->open = true;
  if (evssh_buf_put_u8(&t->cur, msg)) {
    t->open = false;
    return NULL;
  }
  return &t->cur;
}

int transport_end(evssh_transport *t) {
  if (!t->open) abort();
  t->open = false;
  if (t->after_end) abort();            /* nothing after done / fail */
  if (++t->sent > 4) abort();           /* bounded answer to one message */
  check_request(buf_ptr(&t->cur), buf_avail(&t->cur));
  return EVSSH_OK;
}

void transport_abort(evssh_transport *t) {
  if (!t->open) abort();
  t->open = false;
}

const unsigned char *transport_session_id(const evssh_transport *t, size_t *len) {
  static const unsigned char id[32] = {0x5e, 0x55, 0x10, 0x4e};
  *len = sizeof id;
  return id;
}

const char *transport_server_sig_algs(const evssh_transport *t) { return sig_algs; }

static bool is_method(const char *s, size_t n) {
  static const char *const methods[] = {"none", "publickey", "password", "keyboard-interactive"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strlen(methods[i]) == n && memcmp(methods[i], s, n) == 0) return true;
  return false;
}

/* What auth sends must be well formed, whatever the server said. */
static void check_request(const unsigned char *p, size_t n) {
  if (n == 0) abort();
  evssh_reader r = reader_of(p + 1, n - 1);
  const char *s;
  size_t len;
  switch (p[0]) {
  case SSH_MSG_SERVICE_REQUEST:
    if (evssh_read_string(&r, &s, &len) || len != 12 || memcmp(s, "ssh-userauth", 12) || r.left) abort();
    return;
  case SSH_MSG_USERAUTH_REQUEST:
    if (evssh_read_string(&r, &s, &len) || len != 8 || memcmp(s, "fuzzuser", 8)) abort();
    if (evssh_read_string(&r, &s, &len) || len != 14 || memcmp(s, "ssh-connection", 14)) abort();
    if (evssh_read_string(&r, &s, &len) || !is_method(s, len)) abort();
    if (len == 9 && memcmp(s, "publickey", 9) == 0) {
      bool has_sig;
      const char *alg, *blob, *sig;
      size_t alen, blen, slen;
      if (evssh_read_bool(&r, &has_sig) || evssh_read_string(&r, &alg, &alen) || alen == 0 ||
          evssh_read_string(&r, &blob, &blen) || blen == 0)
        abort();
      if (has_sig && (evssh_read_string(&r, &sig, &slen) || slen == 0)) abort();
    }
    return;
  case SSH_MSG_USERAUTH_INFO_RESPONSE: {
    uint32_t count;
    if (evssh_read_u32(&r, &count) || count > 64) abort();
    for (uint32_t i = 0; i < count; i++)
      if (evssh_read_string(&r, &s, &len)) abort();
    if (r.left) abort();
    return;
  }
  default:
    abort();
  }
}

/* ------------------------------------------------------ upward table */

static struct {
  int done, fails, prompts;
  unsigned answer_pattern;
  char fail_msg[64];
} ev;

static int on_done(void *ctx) {
  if (ev.done || ev.fails) abort();
  ev.done++;
  T.after_end = true;
  return EVSSH_OK;
}

static void on_fail(void *ctx, int code, const char *message) {
  if (ev.done || ev.fails) abort();
  if (code >= 0 || !message || !message[0]) abort();   /* a failure says why */
  ev.fails++;
  T.after_end = true;
}

/* Answers follow the pattern from the input: a passphrase prompt gets the
   right one, a wrong one or nothing; other prompts an answer or nothing. */
static int on_prompt(void *ctx, const char *prompt, bool echo, char *answer, size_t size) {
  if (!prompt || size < 16) abort();
  unsigned turn = (unsigned)ev.prompts++ % 4;
  unsigned choice = (ev.answer_pattern >> (turn * 2)) & 3;
  if (strstr(prompt, "passphrase")) {
    if (choice == 0) return -1;
    snprintf(answer, size, "%s", choice == 1 ? "pw" : "wrong");
    return 0;
  }
  if (choice == 3) return -1;
  snprintf(answer, size, "answer-%u", turn);
  return 0;
}

static const auth_events events = {on_done, on_fail, on_prompt};

/* ------------------------------------------------------------- set-up */

static char dir[] = "/tmp/evssh-fuzz-auth-XXXXXX";
static char path_plain[64], path_ecdsa[64], path_enc[64], path_missing[64];

static void remove_files(void) {
  char p[80];
  const char *names[] = {"plain", "plain.pub", "ecdsa", "enc", "enc.pub"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}

static void write_file(const char *name, const char *text) {
  char p[80];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) abort();
}

static void init_files(void) {
  if (path_plain[0]) return;
  if (!mkdtemp(dir)) abort();
  atexit(remove_files);
  write_file("plain", key_plain);
  write_file("plain.pub", key_plain_pub);
  write_file("ecdsa", key_ecdsa);
  write_file("enc", key_enc);
  write_file("enc.pub", key_enc_pub);
  snprintf(path_plain, sizeof path_plain, "%s/plain", dir);
  snprintf(path_ecdsa, sizeof path_ecdsa, "%s/ecdsa", dir);
  snprintf(path_enc, sizeof path_enc, "%s/enc", dir);
  snprintf(path_missing, sizeof path_missing, "%s/missing", dir);
}

static const char *const preferred[] = {
  "publickey,keyboard-interactive,password", "password,keyboard-interactive,publickey",
  "keyboard-interactive,password", "publickey", "password", "keyboard-interactive,publickey",
  "publickey,password", "gssapi-with-mic,publickey,password",
};

static const char *const sig_alg_lists[] = {
  NULL, "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512", "", "rsa-sha2-256",
};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 2) return 0;
  init_files();
  memset(&T, 0, sizeof T);
  memset(&ev, 0, sizeof ev);
  unsigned a = data[0], b = data[1];
  evssh_options opt;
  memset(&opt, 0, sizeof opt);
  opt.user = "fuzzuser";
  opt.hostname = "fuzzhost";
  opt.preferred = (char *)preferred[a & 7];
  opt.batch = a & 0x20;
  opt.pubkey_auth = a & 0x40;
  opt.kbdint_auth = !(b & 0x80) || (a & 1);
  opt.password_auth = !(b & 0x80) || !(a & 1);
  opt.password_prompts = (int)(b >> 2 & 3);
  opt.identity_agent = "none";
  opt.pubkey_algs = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256";
  const char *files[4];
  size_t nfiles = 0;
  /* the key set: by bits of the input, in an order it picks */
  if (opt.pubkey_auth) {
    if (b & 0x10) files[nfiles++] = path_enc;
    files[nfiles++] = (b & 0x20) ? path_ecdsa : path_plain;
    if (b & 0x40) files[nfiles++] = (b & 0x20) ? path_plain : path_ecdsa;
    if (a & 0x80) files[nfiles++] = path_missing;
  }
  opt.identity_files = files;
  opt.n_identity_files = nfiles;
  opt.identity_files_configured = a & 0x80;
  sig_algs = sig_alg_lists[b & 3];
  ev.answer_pattern = (unsigned)(b >> 4) * 0x11u ^ a;

  evssh_diag diag;
  memset(&diag, 0, sizeof diag);
  auth_params p = {&T, &diag, &opt, (a & 0x08) ? "secret" : NULL, (a & 0x10) != 0, &events, NULL};
  evssh_auth *auth = NULL;
  int rc = auth_start(&p, &auth);
  if (rc == EVSSH_OK) {
    size_t off = 2;
    while (off + 3 <= size) {
      uint8_t msg = data[off];
      size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
      off += 3;
      if (len > size - off) len = size - off;
      /* a private copy: an over-read past the body shows up under ASan */
      unsigned char *body = malloc(len ? len : 1);
      if (!body) break;
      memcpy(body, data + off, len);
      off += len;
      evssh_reader r = reader_of(len ? body : NULL, len);
      T.sent = 0;
      bool was_over = T.after_end;
      rc = auth_handle_packet(auth, msg, &r);
      free(body);
      if (was_over && rc != EVSSH_OK) abort();   /* once over, messages are ignored */
      if ((rc == EVSSH_EPROTO || rc == EVSSH_EAUTH) && !ev.fails) abort();   /* refused without a word */
      if (rc < 0) break;
    }
  }
  auth_free(auth);
  buf_release(&T.cur);
  diag_release(&diag);
  return 0;
}
