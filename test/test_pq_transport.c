/* The post-quantum hybrids against a scripted server that does the server's
 * half of the exchange itself (our ML-KEM/sntrup761 encapsulation, OpenSSL's
 * X25519 and Ed25519, our packet layer for its one encrypted packet) and
 * then misbehaves on purpose: a ciphertext tampered after the server took
 * its own key from the real one, a reply one byte short, an all-zero X25519
 * key. The same server without mischief completes the handshake
 * (SERVICE_ACCEPT under the new keys), which proves it is a fair peer.
 *
 * A tampered ciphertext decapsulates without error (implicit rejection) to
 * another secret, so our K differs from the server's. SSH's exchange hash
 * covers K, and the server signs its own H: the mismatch therefore surfaces
 * at the host-key signature check, before any encrypted packet, and the
 * error must say that a tampered ciphertext is one cause. (test_kex checks
 * the rejection itself: the exchange completes with a different K.) */
#include "harness.h"

#include "buf.h"
#include "cipher.h"
#include "io.h"
#include "mac.h"
#include "mlkem.h"
#include "packet.h"
#include "sntrup761.h"
#include "transport.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum mischief { FAIR, TAMPER_CT, SHORT_REPLY, ZERO_X25519 };

typedef struct server {
  const char *kex;
  enum mischief mode;
  int listen_fd, port;
  pthread_t thread;
  char failure[200];   /* the script's own problems */
} server;

#define SERVER_BANNER "SSH-2.0-pq_scripted_server"

static bool send_all(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    b += w;
    n -= (size_t)w;
  }
  return true;
}

static bool recv_all(int fd, void *p, size_t n) {
  unsigned char *b = p;
  while (n) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, 10000) <= 0) return false;
    ssize_t r = recv(fd, b, n, 0);
    if (r <= 0) return false;
    b += r;
    n -= (size_t)r;
  }
  return true;
}

/* one unencrypted packet, padded to 8 */
static bool send_plain(int fd, const evssh_buf *payload) {
  size_t n = payload->len, pad = 8 - ((5 + n) % 8);
  if (pad < 4) pad += 8;
  unsigned char hdr[5], zeros[16] = {0};
  put_u32(hdr, (uint32_t)(1 + n + pad));
  hdr[4] = (unsigned char)pad;
  return send_all(fd, hdr, 5) && send_all(fd, payload->data, n) && send_all(fd, zeros, pad);
}

static bool recv_plain(int fd, evssh_buf *payload) {
  unsigned char hdr[4];
  if (!recv_all(fd, hdr, 4)) return false;
  uint32_t len = get_u32(hdr);
  if (len < 5 || len > 65536) return false;
  unsigned char *b = malloc(len);
  bool ok = recv_all(fd, b, len) && b[0] < len;
  buf_reset(payload);
  if (ok) buf_append(payload, b + 1, len - 1 - b[0]);
  free(b);
  return ok;
}

/* RFC 4253 7.2 for one letter, K as the string it is for the hybrids */
static void derive(const EVP_MD *md, const evssh_buf *kwire, const unsigned char *h, size_t hlen, char letter,
                   unsigned char *out, size_t need) {
  unsigned char acc[256];
  unsigned int n = 0;
  size_t have = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  while (have < need) {
    EVP_DigestInit_ex(c, md, NULL);
    EVP_DigestUpdate(c, kwire->data, kwire->len);
    EVP_DigestUpdate(c, h, hlen);
    if (have == 0) {
      EVP_DigestUpdate(c, &letter, 1);
      EVP_DigestUpdate(c, h, hlen);   /* session id = H of the first exchange */
    } else {
      EVP_DigestUpdate(c, acc, have);
    }
    EVP_DigestFinal_ex(c, acc + have, &n);
    have += n;
  }
  EVP_MD_CTX_free(c);
  memcpy(out, acc, need);
}

#define FAIL_SCRIPT(...) do { snprintf(sv->failure, sizeof sv->failure, __VA_ARGS__); goto out; } while (0)

static void *server_main(void *arg) {
  server *sv = arg;
  bool mlkem = strncmp(sv->kex, "mlkem", 5) == 0;
  const EVP_MD *md = mlkem ? EVP_sha256() : EVP_sha512();
  evssh_buf is = EVSSH_BUF_INIT, ic = EVSSH_BUF_INIT, pkt = EVSSH_BUF_INIT, h_in = EVSSH_BUF_INIT,
            reply = EVSSH_BUF_INIT, ks = EVSSH_BUF_INIT, sigblob = EVSSH_BUF_INIT, kwire = EVSSH_BUF_INIT;
  EVP_PKEY *hostkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
  EVP_PKEY *peer = NULL;
  evssh_packet out;
  packet_init(&out);
  int c = accept(sv->listen_fd, NULL, NULL);
  if (c < 0) FAIL_SCRIPT("accept failed");
  /* banner and KEXINIT (no strict kex: sequence numbers simply go on) */
  evssh_buf_put_u8(&is, SSH_MSG_KEXINIT);
  unsigned char cookie[16] = {7};
  buf_append(&is, cookie, 16);
  const char *lists[10] = {sv->kex, "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha2-256", "hmac-sha2-256",
                           "none", "none", "", ""};
  for (int i = 0; i < 10; i++) evssh_buf_put_cstring(&is, lists[i]);
  evssh_buf_put_bool(&is, false);
  evssh_buf_put_u32(&is, 0);
  if (!send_all(c, SERVER_BANNER "\r\n", strlen(SERVER_BANNER) + 2) || !send_plain(c, &is)) FAIL_SCRIPT("send");
  char vc[256];
  size_t vl = 0;
  while (vl < sizeof vc - 1 && recv_all(c, vc + vl, 1) && vc[vl] != '\n') vl++;
  if (vl > 0 && vc[vl - 1] == '\r') vl--;
  vc[vl] = 0;
  if (!recv_plain(c, &ic) || ic.data[0] != SSH_MSG_KEXINIT) FAIL_SCRIPT("no client KEXINIT");
  if (!recv_plain(c, &pkt) || pkt.data[0] != 30) FAIL_SCRIPT("no HYBRID_INIT");
  evssh_reader r = reader_of(pkt.data + 1, pkt.len - 1);
  const char *qc;
  size_t qclen;
  size_t pk_len = mlkem ? MLKEM768_EK_BYTES : SNTRUP761_PK_BYTES, ct_len = mlkem ? MLKEM768_CT_BYTES : SNTRUP761_CT_BYTES;
  if (evssh_read_string(&r, &qc, &qclen) || qclen != pk_len + 32) FAIL_SCRIPT("bad client value");
  /* the server's secrets: KEM (kem || x25519 into K) */
  unsigned char qs[MLKEM768_CT_BYTES + 32], shared[64], kh[64];
  int rc = mlkem ? mlkem768_encaps((const unsigned char *)qc, qs, shared)
                 : sntrup761_encaps((const unsigned char *)qc, qs, shared, NULL, NULL);
  if (rc) FAIL_SCRIPT("encaps %d", rc);
  size_t n = 32;
  EVP_PKEY_get_raw_public_key(eph, qs + ct_len, &n);
  peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, (const unsigned char *)qc + pk_len, 32);
  EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(eph, NULL);
  n = 32;
  if (EVP_PKEY_derive_init(dc) != 1 || EVP_PKEY_derive_set_peer(dc, peer) != 1 ||
      EVP_PKEY_derive(dc, shared + 32, &n) != 1)
    FAIL_SCRIPT("x25519");
  EVP_PKEY_CTX_free(dc);
  unsigned int hl = 0;
  EVP_Digest(shared, 64, kh, &hl, md, NULL);
  evssh_buf_put_string(&kwire, kh, hl);
  size_t qslen = ct_len + 32;
  if (sv->mode == TAMPER_CT) qs[10] ^= 0x01;   /* after the server's own K was made */
  if (sv->mode == SHORT_REPLY) qslen--;
  if (sv->mode == ZERO_X25519) memset(qs + ct_len, 0, 32);
  /* H over what was sent, signed: the signature alone cannot tell */
  unsigned char hk_pub[32], sig[64], h[64];
  n = 32;
  EVP_PKEY_get_raw_public_key(hostkey, hk_pub, &n);
  evssh_buf_put_cstring(&ks, "ssh-ed25519");
  evssh_buf_put_string(&ks, hk_pub, 32);
  evssh_buf_put_cstring(&h_in, vc);
  evssh_buf_put_cstring(&h_in, SERVER_BANNER);
  evssh_buf_put_string(&h_in, ic.data, ic.len);
  evssh_buf_put_string(&h_in, is.data, is.len);
  evssh_buf_put_string(&h_in, ks.data, ks.len);
  evssh_buf_put_string(&h_in, qc, qclen);
  evssh_buf_put_string(&h_in, qs, qslen);
  buf_append(&h_in, kwire.data, kwire.len);
  EVP_Digest(h_in.data, h_in.len, h, &hl, md, NULL);
  EVP_MD_CTX *sc = EVP_MD_CTX_new();
  size_t siglen = sizeof sig;
  if (EVP_DigestSignInit(sc, NULL, NULL, NULL, hostkey) != 1 || EVP_DigestSign(sc, sig, &siglen, h, hl) != 1)
    FAIL_SCRIPT("sign");
  EVP_MD_CTX_free(sc);
  evssh_buf_put_cstring(&sigblob, "ssh-ed25519");
  evssh_buf_put_string(&sigblob, sig, siglen);
  evssh_buf_put_u8(&reply, 31);
  evssh_buf_put_string(&reply, ks.data, ks.len);
  evssh_buf_put_string(&reply, qs, qslen);
  evssh_buf_put_string(&reply, sigblob.data, sigblob.len);
  buf_reset(&pkt);
  evssh_buf_put_u8(&pkt, SSH_MSG_NEWKEYS);
  if (!send_plain(c, &reply)) FAIL_SCRIPT("send reply");
  /* past this point a client that refused the reply may already be gone:
     only the fair run must get everything through */
  if (!send_plain(c, &pkt)) {
    if (sv->mode == FAIR) FAIL_SCRIPT("send NEWKEYS");
    goto out;
  }
  /* one encrypted packet under the server-to-client keys: SERVICE_ACCEPT */
  unsigned char iv[16], key[16], mkey[32];
  derive(md, &kwire, h, hl, 'B', iv, 16);
  derive(md, &kwire, h, hl, 'D', key, 16);
  derive(md, &kwire, h, hl, 'F', mkey, 32);
  evssh_cipher *cipher = NULL;
  evssh_mac *mac = NULL;
  if (evssh_cipher_new(evssh_cipher_find("aes128-ctr"), true, key, iv, &cipher) ||
      evssh_mac_new(evssh_mac_find("hmac-sha2-256"), mkey, &mac))
    FAIL_SCRIPT("cipher");
  packet_set_tx(&out, cipher, mac);
  out.tx.seq = 3;   /* KEXINIT, REPLY, NEWKEYS went before */
  evssh_buf *b = packet_begin(&out);
  evssh_buf_put_u8(b, SSH_MSG_SERVICE_ACCEPT);
  evssh_buf_put_cstring(b, "ssh-userauth");
  if (packet_end(&out)) FAIL_SCRIPT("packet_end");
  if (!send_all(c, buf_ptr(&out.out), buf_avail(&out.out)) && sv->mode == FAIR) FAIL_SCRIPT("send accept");
  /* until the client hangs up */
  char sink[4096];
  struct pollfd pf = {c, POLLIN, 0};
  while (poll(&pf, 1, 5000) > 0 && read(c, sink, sizeof sink) > 0) {}
out:
  if (c >= 0) close(c);
  packet_free(&out);
  EVP_PKEY_free(hostkey);
  EVP_PKEY_free(eph);
  EVP_PKEY_free(peer);
  evssh_buf *bufs[] = {&is, &ic, &pkt, &h_in, &reply, &ks, &sigblob, &kwire};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) buf_release(bufs[i]);
  return NULL;
}

static void server_start(server *sv, const char *kex, enum mischief mode) {
  memset(sv, 0, sizeof *sv);
  sv->kex = kex;
  sv->mode = mode;
  sv->listen_fd = harness_listen_loopback(&sv->port);
  ck_assert_int_ge(sv->listen_fd, 0);
  pthread_create(&sv->thread, NULL, server_main, sv);
}

/* ------------------------------------------------------------ the client */

typedef struct client {
  evssh_transport *t;
  bool accepted;
} client;

static int cl_packet(void *ctx, uint8_t msg, evssh_reader *body) {
  client *cl = ctx;
  if (msg == SSH_MSG_SERVICE_ACCEPT) cl->accepted = true;
  return EVSSH_OK;
}
static int cl_kex_done(void *ctx, bool first) {
  client *cl = ctx;
  return first ? transport_send(cl->t, SSH_MSG_SERVICE_REQUEST, "\0\0\0\x0cssh-userauth", 16) : EVSSH_OK;
}
static int cl_hostkey(void *ctx, const char *alg, const unsigned char *blob, size_t len) { return EVSSH_OK; }
static void cl_log(void *ctx, int level, const char *msg) {
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "  transport: %s\n", msg);
}
static const evssh_transport_handler cl_handler = {cl_packet, cl_kex_done, cl_hostkey, cl_log, NULL};

/* Runs our client against the script; returns its code, err its message. */
static int run(const char *kex, enum mischief mode, char *err, size_t errlen) {
  server sv;
  server_start(&sv, kex, mode);
  evssh_connector *conn = NULL;
  int rc = connector_start("127.0.0.1", sv.port, NULL, &conn, err, errlen);
  ck_assert_int_eq(rc, EVSSH_OK);
  int fd = -1;
  for (int i = 0; i < 1000 && (rc = connector_step(conn, &fd, err, errlen)) == EVSSH_EAGAIN; i++) {
    struct pollfd p = {connector_fd(conn), POLLOUT, 0};
    poll(&p, 1, 10);
  }
  connector_free(conn);
  ck_assert_int_eq(rc, EVSSH_OK);
  client cl = {0};
  evssh_transport_config cfg = {kex, "ssh-ed25519", "aes128-ctr", "hmac-sha2-256", 0, 0, NULL};
  ck_assert_int_eq(transport_new(fd, &cfg, &cl_handler, &cl, &cl.t), EVSSH_OK);
  for (int i = 0; i < 3000 && !cl.accepted; i++) {
    int ev = transport_events(cl.t);
    struct pollfd p = {fd, (short)((ev & EVSSH_READ ? POLLIN : 0) | (ev & EVSSH_WRITE ? POLLOUT : 0)), 0};
    int revents = 0;
    if (poll(&p, 1, 10) > 0)
      revents = (p.revents & (POLLIN | POLLHUP | POLLERR) ? EVSSH_READ : 0) | (p.revents & POLLOUT ? EVSSH_WRITE : 0);
    if ((rc = transport_handle_io(cl.t, revents)) != EVSSH_OK) break;
  }
  if (rc == EVSSH_OK && !cl.accepted) rc = EVSSH_ETIMEOUT;
  snprintf(err, errlen, "%s", rc ? transport_error(cl.t) : "");
  printf("%s, %s: %s\n", kex,
         mode == FAIR ? "fair server" : mode == TAMPER_CT ? "tampered ciphertext" : mode == SHORT_REPLY ? "short reply" : "zero X25519 key",
         rc ? err : "handshake done, SERVICE_ACCEPT under the new keys");
  fflush(stdout);
  transport_disconnect(cl.t, 11, "test done");
  close(fd);
  transport_free(cl.t);
  pthread_join(sv.thread, NULL);
  close(sv.listen_fd);
  ck_assert_msg(!sv.failure[0], "the scripted server failed: %s", sv.failure);
  return rc;
}

static const char *methods[] = {"mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"};

START_TEST(fair_server_completes) {
  char err[600];
  int rc = run(methods[_i], FAIR, err, sizeof err);
  ck_assert_msg(rc == EVSSH_OK, "%s: %s", methods[_i], err);
}
END_TEST

START_TEST(tampered_ciphertext_is_a_key_mismatch) {
  char err[600];
  int rc = run(methods[_i], TAMPER_CT, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  /* not a parse error: decapsulation went through, the secrets differ */
  ck_assert_msg(!strstr(err, "malformed") && !strstr(err, "bytes"), "message: %s", err);
  ck_assert_msg(strstr(err, "signature invalid") && strstr(err, "tampered or corrupted KEM ciphertext") &&
                    strstr(err, "implicit rejection"),
                "message: %s", err);
}
END_TEST

START_TEST(short_reply_is_eproto_naming_the_method) {
  char err[600];
  int rc = run(methods[_i], SHORT_REPLY, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, methods[_i]) && strstr(err, "bytes") && strstr(err, "X25519"), "message: %s", err);
}
END_TEST

START_TEST(zero_x25519_key_is_eproto) {
  char err[600];
  int rc = run(methods[_i], ZERO_X25519, err, sizeof err);
  ck_assert_int_eq(rc, EVSSH_EPROTO);
  ck_assert_msg(strstr(err, methods[_i]) && strstr(err, "X25519"), "message: %s", err);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pq_transport");
  TCase *tc = tcase_create("scripted hybrid server");
  tcase_set_timeout(tc, 120);
  int n = (int)(sizeof methods / sizeof methods[0]);
  tcase_add_loop_test(tc, fair_server_completes, 0, n);
  tcase_add_loop_test(tc, tampered_ciphertext_is_a_key_mismatch, 0, n);
  tcase_add_loop_test(tc, short_reply_is_eproto_naming_the_method, 0, n);
  tcase_add_loop_test(tc, zero_x25519_key_is_eproto, 0, n);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
