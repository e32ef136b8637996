/* Transport interop: every key exchange, host key type, cipher and MAC we
 * offer completes a handshake with a real OpenSSH sshd (proven by an
 * encrypted SERVICE_REQUEST / SERVICE_ACCEPT round trip), and peers that
 * break the protocol end with the right code and a message that says what
 * happened: garbage, a truncated packet, a 1 MiB length, a flipped bit on the
 * wire, no algorithm in common, a stray packet before a strict KEXINIT, a
 * DISCONNECT. The misbehaving peers are scripted servers and a bit-flipping
 * proxy run by this test on 127.0.0.1. */
#include "harness.h"

#include "buf.h"
#include "io.h"
#include "transport.h"

#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static harness_peer sshd;

/* ----------------------------------------------------- a bare driver */

typedef struct driver {
  evssh_transport *t;
  int fd;
  void (*armed)(void);   /* runs when our keys are in use, before we send */
  bool kex_done;
  bool accepted;
  char hostkey_alg[64];
  char hostkey_type[64];
} driver;

static int drv_packet(void *ctx, uint8_t msg, evssh_reader *body) {
  driver *d = ctx;
  if (msg == SSH_MSG_SERVICE_ACCEPT) d->accepted = true;
  return EVSSH_OK;
}

static int drv_kex_done(void *ctx, bool first) {
  driver *d = ctx;
  d->kex_done = true;
  if (first && d->armed) d->armed();
  /* an encrypted round trip proves both directions' keys */
  if (first) return transport_send(d->t, SSH_MSG_SERVICE_REQUEST, "\0\0\0\x0cssh-userauth", 16);
  return EVSSH_OK;
}

static int drv_hostkey(void *ctx, const char *alg, const unsigned char *blob, size_t len) {
  driver *d = ctx;
  snprintf(d->hostkey_alg, sizeof d->hostkey_alg, "%s", alg);
  evssh_reader r = reader_of(blob, len);
  const char *type;
  size_t tl;
  if (evssh_read_string(&r, &type, &tl) == EVSSH_OK)
    snprintf(d->hostkey_type, sizeof d->hostkey_type, "%.*s", (int)tl, type);
  return EVSSH_OK;
}

static void drv_log(void *ctx, int level, const char *msg) {
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "  transport: %s\n", msg);
}

static const evssh_transport_handler drv_handler = {drv_packet, drv_kex_done, drv_hostkey, drv_log, NULL};

/* Connect to port and run until SERVICE_ACCEPT or failure. Returns the
   transport's code; err gets its message. */
static int handshake(int port, const evssh_transport_config *cfg, driver *d, char *err, size_t errlen,
                     void (*armed)(void)) {
  memset(d, 0, sizeof *d);
  evssh_connector *c = NULL;
  int rc = connector_start("127.0.0.1", port, NULL, &c, err, errlen);
  if (rc) return rc;
  int fd = -1;
  for (int i = 0; i < 1000; i++) {
    rc = connector_step(c, &fd, err, errlen);
    if (rc != EVSSH_EAGAIN) break;
    struct pollfd p = {connector_fd(c), POLLOUT, 0};
    poll(&p, 1, 10);
  }
  connector_free(c);
  if (rc) return rc;
  d->fd = fd;
  d->armed = armed;
  rc = transport_new(fd, cfg, &drv_handler, d, &d->t);
  ck_assert_int_eq(rc, EVSSH_OK);
  for (int i = 0; i < 2000 && !d->accepted; i++) {
    int ev = transport_events(d->t);
    struct pollfd p = {fd, (short)((ev & EVSSH_READ ? POLLIN : 0) | (ev & EVSSH_WRITE ? POLLOUT : 0)), 0};
    int n = poll(&p, 1, 10);
    int revents = 0;
    if (n > 0) revents = (p.revents & (POLLIN | POLLHUP | POLLERR) ? EVSSH_READ : 0) |
                         (p.revents & POLLOUT ? EVSSH_WRITE : 0);
    rc = transport_handle_io(d->t, revents);
    if (rc) break;
  }
  if (rc == EVSSH_OK && !d->accepted) rc = EVSSH_ETIMEOUT;
  snprintf(err, errlen, "%s", rc ? transport_error(d->t) : "");
  if (rc && !*err) snprintf(err, errlen, "%s", evssh_strerror(rc));
  return rc;
}

static void drv_done(driver *d) {
  if (!d->t) return;
  transport_disconnect(d->t, 11, "test done");
  close(d->fd);
  transport_free(d->t);
  d->t = NULL;
}

static void expect_handshake(const char *kex, const char *hostkey, const char *cipher, const char *mac) {
  evssh_transport_config cfg = {kex, hostkey, cipher, mac, 0, 0, NULL};
  driver d;
  char err[512];
  int rc = handshake(sshd.port, &cfg, &d, err, sizeof err, NULL);
  ck_assert_msg(rc == EVSSH_OK, "handshake kex=%s hostkey=%s cipher=%s mac=%s failed: %s", kex ? kex : "default",
                hostkey ? hostkey : "default", cipher ? cipher : "default", mac ? mac : "default", err);
  if (kex) ck_assert_str_eq(transport_algorithm(d.t, "kex"), kex);
  if (hostkey) {
    size_t first = strcspn(hostkey, ",");   /* a list: our first choice wins */
    ck_assert_int_eq(strlen(transport_algorithm(d.t, "hostkey")), first);
    ck_assert(strncmp(transport_algorithm(d.t, "hostkey"), hostkey, first) == 0);
  }
  if (cipher) {
    ck_assert_str_eq(transport_algorithm(d.t, "cipher_ctos"), cipher);
    ck_assert_str_eq(transport_algorithm(d.t, "cipher_stoc"), cipher);
  }
  if (mac) {
    ck_assert_str_eq(transport_algorithm(d.t, "mac_ctos"), mac);
    ck_assert_str_eq(transport_algorithm(d.t, "mac_stoc"), mac);
  }
  /* OpenSSH 9.2 offers strict kex and server-sig-algs: both must be seen */
  ck_assert_str_eq(transport_algorithm(d.t, "strict"), "yes");
  ck_assert_ptr_nonnull(transport_server_sig_algs(d.t));
  printf("handshake ok: kex=%s hostkey=%s cipher=%s mac=%s\n", transport_algorithm(d.t, "kex"),
         transport_algorithm(d.t, "hostkey"), transport_algorithm(d.t, "cipher_ctos"),
         transport_algorithm(d.t, "mac_ctos") ? transport_algorithm(d.t, "mac_ctos") : "<aead>");
  fflush(stdout);
  drv_done(&d);
}

static const char *kexes[] = {"curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
                              "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "diffie-hellman-group14-sha256",
                              "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512",
                              "diffie-hellman-group-exchange-sha256"};
static const char *hostkeys[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                                 "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"};
static const char *ciphers[] = {"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com",
                                "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"};
static const char *macs[] = {"hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
                             "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1-etm@openssh.com", "hmac-sha1"};

START_TEST(each_kex) { expect_handshake(kexes[_i], NULL, NULL, NULL); }
END_TEST

START_TEST(each_hostkey) { expect_handshake(NULL, hostkeys[_i], NULL, NULL); }
END_TEST

START_TEST(each_cipher) { expect_handshake(NULL, NULL, ciphers[_i], NULL); }
END_TEST

START_TEST(each_mac) {
  /* a MAC is only negotiated with a non-AEAD cipher; check it with each */
  expect_handshake(NULL, NULL, "aes128-ctr", macs[_i]);
  expect_handshake(NULL, NULL, "aes256-ctr", macs[_i]);
}
END_TEST

START_TEST(ssh_rsa_needs_opt_in) {
  /* without ssh-rsa in our list, an RSA-only negotiation must pick SHA-2 */
  expect_handshake(NULL, "rsa-sha2-512,rsa-sha2-256", NULL, NULL);
}
END_TEST

/* ------------------------------------------------- a scripted server */

typedef struct script {
  int listen_fd;
  int port;
  unsigned char bytes[16384];
  size_t len;
  bool close_after;   /* close right after sending, else wait for the client */
  pthread_t thread;
} script;

static void *script_main(void *arg) {
  script *sc = arg;
  int c = accept(sc->listen_fd, NULL, NULL);
  if (c < 0) return NULL;
  size_t off = 0;
  while (off < sc->len) {
    ssize_t n = send(c, sc->bytes + off, sc->len - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += (size_t)n;
  }
  if (!sc->close_after) {
    char sink[4096];
    struct pollfd p = {c, POLLIN, 0};
    while (poll(&p, 1, 3000) > 0 && read(c, sink, sizeof sink) > 0) {}
  }
  close(c);
  return NULL;
}

static void script_start(script *sc) {
  sc->listen_fd = harness_listen_loopback(&sc->port);
  ck_assert_int_ge(sc->listen_fd, 0);
  pthread_create(&sc->thread, NULL, script_main, sc);
}

static void script_end(script *sc) {
  pthread_join(sc->thread, NULL);
  close(sc->listen_fd);
}

static void add_bytes(script *sc, const void *p, size_t n) {
  ck_assert(sc->len + n <= sizeof sc->bytes);
  memcpy(sc->bytes + sc->len, p, n);
  sc->len += n;
}

/* an unencrypted packet, padded to 8 as RFC 4253 6 requires */
static void add_packet(script *sc, const void *payload, size_t n) {
  size_t pad = 8 - ((5 + n) % 8);
  if (pad < 4) pad += 8;
  unsigned char hdr[5];
  put_u32(hdr, (uint32_t)(1 + n + pad));
  hdr[4] = (unsigned char)pad;
  add_bytes(sc, hdr, 5);
  add_bytes(sc, payload, n);
  unsigned char zeros[16] = {0};
  add_bytes(sc, zeros, pad);
}

static void add_kexinit_full(script *sc, const char *kex, const char *hostkey, const char *ciphers_list,
                             bool follows) {
  evssh_buf b = EVSSH_BUF_INIT;
  unsigned char cookie[16] = {1, 2, 3};
  evssh_buf_put_u8(&b, SSH_MSG_KEXINIT);
  buf_append(&b, cookie, 16);
  const char *lists[10] = {kex, hostkey, ciphers_list, ciphers_list, "hmac-sha2-256", "hmac-sha2-256",
                           "none", "none", "", ""};
  for (int i = 0; i < 10; i++) evssh_buf_put_cstring(&b, lists[i]);
  evssh_buf_put_bool(&b, follows);
  evssh_buf_put_u32(&b, 0);
  add_packet(sc, buf_ptr(&b), buf_avail(&b));
  buf_release(&b);
}

static void add_kexinit(script *sc, const char *kex, const char *ciphers_list) {
  add_kexinit_full(sc, kex, "ssh-ed25519", ciphers_list, false);
}

static void add_disconnect(script *sc, uint32_t reason, const char *text) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u8(&b, SSH_MSG_DISCONNECT);
  evssh_buf_put_u32(&b, reason);
  evssh_buf_put_cstring(&b, text);
  evssh_buf_put_cstring(&b, "");
  add_packet(sc, buf_ptr(&b), buf_avail(&b));
  buf_release(&b);
}

static int run_script(script *sc, char *err, size_t errlen) {
  script_start(sc);
  driver d;
  int rc = handshake(sc->port, NULL, &d, err, errlen, NULL);
  drv_done(&d);
  script_end(sc);
  return rc;
}

#define BANNER "SSH-2.0-scripted_test_server\r\n"

START_TEST(garbage_instead_of_banner) {
  script sc = {0};
  unsigned char junk[9000];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 7 + 1) | 1;   /* no newline */
  for (size_t i = 0; i < sizeof junk; i++)
    if (junk[i] == '\n') junk[i] = 'x';
  add_bytes(&sc, junk, sizeof junk);
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "no SSH protocol banner"), "message: %s", err);
}
END_TEST

START_TEST(pre_banner_lines_are_skipped_then_version_checked) {
  script sc = {0};
  const char *text = "hello there\r\nthis is not ssh\r\nSSH-1.5-ancient\r\n";
  add_bytes(&sc, text, strlen(text));
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "protocol version mismatch") && strstr(err, "SSH-1.5-ancient"), "message: %s", err);
}
END_TEST

START_TEST(truncated_packet) {
  script sc = {0};
  sc.close_after = true;
  add_bytes(&sc, BANNER, strlen(BANNER));
  unsigned char partial[] = {0, 0, 0, 252, 10, 20, 1, 2, 3};   /* says 252 bytes, sends 5 */
  add_bytes(&sc, partial, sizeof partial);
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EDISCONNECT);
  ck_assert_msg(strstr(err, "closed by server during key exchange"), "message: %s", err);
}
END_TEST

START_TEST(huge_length_field) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  unsigned char big[] = {0, 0x10, 0, 0, 4, 20, 0, 0, 0, 0, 0, 0, 0, 0};  /* 1 MiB */
  add_bytes(&sc, big, sizeof big);
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "1048576") && strstr(err, "256 KiB"), "message: %s", err);
}
END_TEST

START_TEST(bad_padding) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  /* length 12, padding length 2 (under the minimum of 4) */
  unsigned char pkt[] = {0, 0, 0, 12, 2, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
  add_bytes(&sc, pkt, sizeof pkt);
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "padding"), "message: %s", err);
}
END_TEST

START_TEST(no_algorithm_in_common) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  add_kexinit(&sc, "curve25519-sha256", "3des-cbc,blowfish-cbc");
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_ENOALGO);
  ck_assert_msg(strstr(err, "no matching cipher") && strstr(err, "3des-cbc,blowfish-cbc") &&
                    strstr(err, "chacha20-poly1305@openssh.com"),
                "message: %s", err);
}
END_TEST

START_TEST(no_kex_in_common) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  add_kexinit(&sc, "diffie-hellman-group1-sha1", "aes128-ctr");
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_ENOALGO);
  ck_assert_msg(strstr(err, "key exchange method") && strstr(err, "diffie-hellman-group1-sha1") &&
                    strstr(err, "curve25519-sha256"),
                "message: %s", err);
}
END_TEST

START_TEST(strict_kex_refuses_stray_packet) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  unsigned char ignore[] = {SSH_MSG_IGNORE, 0, 0, 0, 0};
  add_packet(&sc, ignore, sizeof ignore);
  add_kexinit(&sc, "curve25519-sha256,kex-strict-s-v00@openssh.com", "aes128-ctr");
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "strict key exchange"), "message: %s", err);
}
END_TEST

START_TEST(non_strict_tolerates_ignore_but_not_service_messages) {
  /* without strict kex an IGNORE before KEXINIT is fine, a SERVICE_ACCEPT is not */
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  unsigned char ignore[] = {SSH_MSG_IGNORE, 0, 0, 0, 0};
  add_packet(&sc, ignore, sizeof ignore);
  unsigned char accept[] = {SSH_MSG_SERVICE_ACCEPT, 0, 0, 0, 0};
  add_packet(&sc, accept, sizeof accept);
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "before KEXINIT"), "message: %s", err);
}
END_TEST

START_TEST(disconnect_reason_reaches_the_error) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  add_disconnect(&sc, 12, "go away, too busy");
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EDISCONNECT);
  ck_assert_msg(strstr(err, "go away, too busy") && strstr(err, "too many connections"), "message: %s", err);
}
END_TEST

/* RFC 4253 7: a guessed first kex packet is ignored when the guess was
   wrong and processed when it was right. The guess here is garbage, so
   processing it fails; ignoring it lets the script's DISCONNECT through. */
static const unsigned char bogus_kex[] = {30, 0, 0, 0, 3, 'b', 'a', 'd'};

START_TEST(wrong_guess_is_ignored) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  /* the server's first kex and host key differ from ours: a wrong guess */
  add_kexinit_full(&sc, "ecdh-sha2-nistp256,curve25519-sha256", "ecdsa-sha2-nistp256,ssh-ed25519",
                   "aes128-ctr", true);
  add_packet(&sc, bogus_kex, sizeof bogus_kex);
  add_disconnect(&sc, 11, "guessed packet was skipped");
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_msg(rc == EVSSH_EDISCONNECT && strstr(err, "guessed packet was skipped"), "rc %d: %s", rc, err);
}
END_TEST

START_TEST(right_guess_is_processed) {
  script sc = {0};
  add_bytes(&sc, BANNER, strlen(BANNER));
  add_kexinit_full(&sc, "mlkem768x25519-sha256", "ssh-ed25519", "aes128-ctr", true);   /* our first choices */
  add_packet(&sc, bogus_kex, sizeof bogus_kex);
  add_disconnect(&sc, 11, "should not get here");
  char err[512];
  int rc = run_script(&sc, err, sizeof err);
  ck_assert_msg(rc == EVSSH_EPROTO && strstr(err, "key exchange"), "rc %d: %s", rc, err);
}
END_TEST

/* ----------------------------------------- a proxy that flips one bit */

typedef struct flipper {
  int listen_fd, port, target_port;
  atomic_int armed;      /* set once our side finished the key exchange */
  atomic_int flipped;
  bool drop;             /* once armed, swallow the server's bytes instead of flipping one */
  pthread_t thread;
} flipper;

static void *flipper_main(void *arg) {
  flipper *f = arg;
  int c = accept(f->listen_fd, NULL, NULL);
  if (c < 0) return NULL;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)f->target_port);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c);
    return NULL;
  }
  struct pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
  unsigned char buf[65536];
  while (poll(p, 2, 5000) > 0) {
    if (p[0].revents) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0 || send(s, buf, (size_t)n, MSG_NOSIGNAL) != n) break;
    }
    if (p[1].revents) {
      ssize_t n = read(s, buf, sizeof buf);
      if (n <= 0) break;
      if (f->drop && atomic_load(&f->armed)) continue;
      if (atomic_load(&f->armed) && !atomic_load(&f->flipped)) {
        buf[n / 2] ^= 0x10;   /* inside the ciphertext of an encrypted packet */
        atomic_store(&f->flipped, 1);
      }
      if (send(c, buf, (size_t)n, MSG_NOSIGNAL) != n) break;
    }
  }
  close(c);
  close(s);
  return NULL;
}

static flipper *current_flipper;
static void arm_flipper(void) { atomic_store(&current_flipper->armed, 1); }

/* a proxy in front of the shared sshd: flips one bit, or drops everything, once armed */
static void flipper_start(flipper *f, bool drop) {
  memset(f, 0, sizeof *f);
  f->target_port = sshd.port;
  f->drop = drop;
  f->listen_fd = harness_listen_loopback(&f->port);
  ck_assert_int_ge(f->listen_fd, 0);
  pthread_create(&f->thread, NULL, flipper_main, f);
}

static void flip_test(const char *cipher, const char *mac) {
  flipper f;
  flipper_start(&f, false);
  current_flipper = &f;
  evssh_transport_config cfg = {NULL, NULL, cipher, mac, 0, 0, NULL};
  driver d;
  char err[512];
  int rc = handshake(f.port, &cfg, &d, err, sizeof err, arm_flipper);
  drv_done(&d);
  pthread_join(f.thread, NULL);
  close(f.listen_fd);
  ck_assert_msg(atomic_load(&f.flipped), "the proxy never flipped a bit");
  ck_assert_msg(rc == EVSSH_EPROTO, "cipher %s: expected EVSSH_EPROTO, got %d (%s)", cipher, rc, err);
  ck_assert_msg(strstr(err, "corrupted packet") &&
                    (strstr(err, "authentication") || strstr(err, "packet length") || strstr(err, "padding")),
                "message: %s", err);
  printf("flipped bit with %s/%s: %s\n", cipher, mac ? mac : "aead", err);
}

START_TEST(flipped_bit_is_bad_mac) {
  flip_test("chacha20-poly1305@openssh.com", NULL);
  flip_test("aes128-gcm@openssh.com", NULL);
  flip_test("aes128-ctr", "hmac-sha2-256-etm@openssh.com");
  flip_test("aes256-ctr", "hmac-sha2-512");
}
END_TEST

/* ------------------------------- a rekey the server never answers */

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(rekey_that_never_completes_times_out) {
  flipper f;
  flipper_start(&f, true);
  driver d;
  char err[512];
  ck_assert_int_eq(handshake(f.port, NULL, &d, err, sizeof err, NULL), EVSSH_OK);
  /* from now on the server's answers vanish */
  atomic_store(&f.armed, 1);
  ck_assert_int_eq(transport_rekey(d.t), EVSSH_OK);
  ck_assert(transport_kex_running(d.t));
  int t0 = transport_timeout_ms(d.t);
  ck_assert_msg(t0 > 50000 && t0 <= 60000, "default rekey deadline %d ms, want the 60 s connect default", t0);
  transport_set_kex_timeout(d.t, 1500);
  int t1 = transport_timeout_ms(d.t);
  ck_assert_msg(t1 > 0 && t1 <= 1500, "rekey deadline %d ms after setting 1500", t1);
  /* a loop that sleeps as long as the transport says, as the session's does */
  double start = mono_s();
  int rc = EVSSH_OK;
  while (rc == EVSSH_OK && mono_s() - start < 30) {
    int ev = transport_events(d.t), timeout = transport_timeout_ms(d.t);
    struct pollfd p = {d.fd, (short)((ev & EVSSH_READ ? POLLIN : 0) | (ev & EVSSH_WRITE ? POLLOUT : 0)), 0};
    int n = poll(&p, 1, timeout < 0 ? 1000 : timeout);
    int revents = n > 0 ? ((p.revents & (POLLIN | POLLHUP | POLLERR) ? EVSSH_READ : 0) |
                           (p.revents & POLLOUT ? EVSSH_WRITE : 0))
                        : 0;
    rc = transport_handle_io(d.t, revents);
  }
  double took = mono_s() - start;
  printf("rekey never answered: %s after %.2f s\n", transport_error(d.t), took);
  ck_assert_int_eq(rc, EVSSH_ETIMEOUT);
  ck_assert_msg(strstr(transport_error(d.t), "key re-exchange") && strstr(transport_error(d.t), "1500 ms"),
                "message: %s", transport_error(d.t));
  ck_assert_msg(took >= 1.4, "gave up after %.2f s, before the deadline", took);
  drv_done(&d);
  pthread_join(f.thread, NULL);
  close(f.listen_fd);
}
END_TEST

/* ----------------------------------------- a server that trickles its banner */

typedef struct trickler {
  int listen_fd, port;
  pthread_t thread;
} trickler;

static void *trickle_main(void *arg) {
  trickler *tr = arg;
  int c = accept(tr->listen_fd, NULL, NULL);
  if (c < 0) return NULL;
  /* a whole pre-banner line, then a version line that never ends */
  const char *text = "please wait\r\nSSH-2.0-slow_server_that_never_finishes_its_line";
  send(c, text, 13, MSG_NOSIGNAL);
  for (size_t i = 13; text[i]; i++) {
    struct pollfd p = {c, POLLIN, 0};
    if (poll(&p, 1, 250) > 0) {   /* the client hung up (or wrote): stop */
      char sink[512];
      if (read(c, sink, sizeof sink) <= 0) break;
    }
    if (send(c, text + i, 1, MSG_NOSIGNAL) != 1) break;
  }
  close(c);
  return NULL;
}

static double thread_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

START_TEST(trickling_banner_does_not_spin) {
  trickler tr = {0};
  tr.listen_fd = harness_listen_loopback(&tr.port);
  ck_assert_int_ge(tr.listen_fd, 0);
  pthread_create(&tr.thread, NULL, trickle_main, &tr);
  evssh_session *s = evssh_session_new("127.0.0.1");
  char port[16];
  snprintf(port, sizeof port, "%d", tr.port);
  ck_assert_int_eq(evssh_session_option(s, "Port", port), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "User", "nobody"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "ConnectTimeout", "4"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "UserKnownHostsFile", "/dev/null"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "GlobalKnownHostsFile", "none"), EVSSH_OK);
  double wall0 = mono_s(), cpu0 = thread_cpu_s();
  int rc = evssh_session_connect(s);
  double wall = mono_s() - wall0, cpu = thread_cpu_s() - cpu0;
  printf("trickling banner: %s after %.2f s wall, %.3f s CPU\n", evssh_session_error(s), wall, cpu);
  ck_assert_int_eq(rc, EVSSH_ETIMEOUT);
  ck_assert_msg(strstr(evssh_session_error(s), "version exchange"), "message: %s", evssh_session_error(s));
  /* spinning costs about one CPU second per wall second; waiting costs nearly none */
  ck_assert_msg(cpu < 0.25 * wall, "client used %.3f s of CPU in %.2f s waiting for a banner", cpu, wall);
  evssh_session_free(s);
  pthread_join(tr.thread, NULL);
  close(tr.listen_fd);
}
END_TEST

/* ------------------------------------------------------------- main */

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&sshd, NULL) != 0) {
    fprintf(stderr, "cannot start sshd\n");
    return 1;
  }
  Suite *s = suite_create("transport");
  TCase *hs = tcase_create("handshakes with OpenSSH");
  tcase_set_timeout(hs, 120);
  tcase_add_loop_test(hs, each_kex, 0, (int)(sizeof kexes / sizeof kexes[0]));
  tcase_add_loop_test(hs, each_hostkey, 0, (int)(sizeof hostkeys / sizeof hostkeys[0]));
  tcase_add_loop_test(hs, each_cipher, 0, (int)(sizeof ciphers / sizeof ciphers[0]));
  tcase_add_loop_test(hs, each_mac, 0, (int)(sizeof macs / sizeof macs[0]));
  tcase_add_test(hs, ssh_rsa_needs_opt_in);
  suite_add_tcase(s, hs);
  TCase *bad = tcase_create("bad peers");
  tcase_set_timeout(bad, 60);
  tcase_add_test(bad, garbage_instead_of_banner);
  tcase_add_test(bad, pre_banner_lines_are_skipped_then_version_checked);
  tcase_add_test(bad, truncated_packet);
  tcase_add_test(bad, huge_length_field);
  tcase_add_test(bad, bad_padding);
  tcase_add_test(bad, no_algorithm_in_common);
  tcase_add_test(bad, no_kex_in_common);
  tcase_add_test(bad, strict_kex_refuses_stray_packet);
  tcase_add_test(bad, non_strict_tolerates_ignore_but_not_service_messages);
  tcase_add_test(bad, disconnect_reason_reaches_the_error);
  tcase_add_test(bad, flipped_bit_is_bad_mac);
  tcase_add_test(bad, wrong_guess_is_ignored);
  tcase_add_test(bad, right_guess_is_processed);
  tcase_add_test(bad, rekey_that_never_completes_times_out);
  tcase_add_test(bad, trickling_banner_does_not_spin);
  suite_add_tcase(s, bad);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&sshd);
  return failed ? 1 : 0;
}
