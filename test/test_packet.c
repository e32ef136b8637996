/* The binary packet protocol: framing and padding rules (RFC 4253 6) in all
 * three integrity modes, sequence numbers, the 256 KiB limit, and refusal of
 * bad lengths, bad padding and tampered bytes. A sender and a receiver with
 * matching keys talk through one buffer, as the two ends of a connection. */
#include "packet.h"

#include <check.h>
#include <string.h>

static const unsigned char key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                                      33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
                                      49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64};
static const unsigned char iv[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

typedef struct pair {
  evssh_packet tx, rx;
} pair;

/* cipher NULL: unencrypted (before the first NEWKEYS) */
static void setup(pair *p, const char *cipher, const char *mac) {
  packet_init(&p->tx);
  packet_init(&p->rx);
  if (!cipher) return;
  const evssh_cipher_alg *ca = evssh_cipher_find(cipher);
  ck_assert_ptr_nonnull(ca);
  evssh_cipher *enc = NULL, *dec = NULL;
  ck_assert_int_eq(evssh_cipher_new(ca, true, key, ca->iv_len ? iv : NULL, &enc), 0);
  ck_assert_int_eq(evssh_cipher_new(ca, false, key, ca->iv_len ? iv : NULL, &dec), 0);
  evssh_mac *m1 = NULL, *m2 = NULL;
  if (mac) {
    const evssh_mac_alg *ma = evssh_mac_find(mac);
    ck_assert_ptr_nonnull(ma);
    ck_assert_int_eq(evssh_mac_new(ma, key, &m1), 0);
    ck_assert_int_eq(evssh_mac_new(ma, key, &m2), 0);
  }
  packet_set_tx(&p->tx, enc, m1);
  packet_set_rx(&p->rx, dec, m2);
}

static void teardown(pair *p) {
  packet_free(&p->tx);
  packet_free(&p->rx);
}

static void send_payload(pair *p, const unsigned char *data, size_t len) {
  evssh_buf *b = packet_begin(&p->tx);
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq(buf_append(b, data, len), 0);
  ck_assert_int_eq(packet_end(&p->tx), 0);
}

/* move everything sent so far to the receiver */
static void deliver(pair *p) {
  ck_assert_int_eq(buf_append(&p->rx.in, buf_ptr(&p->tx.out), buf_avail(&p->tx.out)), 0);
  buf_consume(&p->tx.out, buf_avail(&p->tx.out));
}

static const char *modes[][2] = {
    {NULL, NULL},
    {"aes128-ctr", "hmac-sha2-256"},
    {"aes256-ctr", "hmac-sha2-512-etm@openssh.com"},
    {"aes128-gcm@openssh.com", NULL},
    {"chacha20-poly1305@openssh.com", NULL},
};

START_TEST(round_trip_and_padding) {
  pair p;
  setup(&p, modes[_i][0], modes[_i][1]);
  size_t block = modes[_i][0] ? evssh_cipher_find(modes[_i][0])->block_size : 8;
  if (block < 8) block = 8;
  bool len_clear = modes[_i][0] && (strstr(modes[_i][0], "gcm") || strstr(modes[_i][0], "chacha") ||
                                     (modes[_i][1] && strstr(modes[_i][1], "etm")));
  unsigned char data[40000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 31);
  size_t sizes[] = {1, 2, 7, 8, 15, 16, 17, 100, 255, 256, 1000, 32768, 39999};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t before = buf_avail(&p.tx.out);
    send_payload(&p, data, sizes[k]);
    size_t wire = buf_avail(&p.tx.out) - before;
    size_t tag = wire - 4;  /* adjusted below */
    /* what the block size covers: length field included unless it is sent apart */
    size_t mac_len = modes[_i][1] ? evssh_mac_find(modes[_i][1])->mac_len
                     : modes[_i][0] ? evssh_cipher_find(modes[_i][0])->tag_len : 0;
    tag = wire - mac_len;
    size_t covered = len_clear ? tag - 4 : tag;
    ck_assert_msg(covered % block == 0, "mode %d size %zu: %zu not a multiple of %zu", _i, sizes[k], covered, block);
    size_t padding = tag - 4 - 1 - sizes[k];
    ck_assert_msg(padding >= 4 && padding < 4 + block, "padding %zu", padding);
  }
  deliver(&p);
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    const unsigned char *payload;
    size_t len;
    char err[128] = "";
    ck_assert_int_eq(packet_next(&p.rx, &payload, &len, err, sizeof err), 0);
    ck_assert_uint_eq(len, sizes[k]);
    ck_assert(memcmp(payload, data, len) == 0);
  }
  const unsigned char *payload;
  size_t len;
  ck_assert_int_eq(packet_next(&p.rx, &payload, &len, NULL, 0), EVSSH_EAGAIN);
  ck_assert_uint_eq(p.rx.rx.seq, 13);
  ck_assert_uint_eq(p.tx.tx.seq, 13);
  teardown(&p);
}
END_TEST

START_TEST(byte_by_byte_arrival) {
  pair p;
  setup(&p, modes[_i][0], modes[_i][1]);
  unsigned char data[300];
  memset(data, 0xab, sizeof data);
  send_payload(&p, data, sizeof data);
  send_payload(&p, data, 5);
  const unsigned char *wire = buf_ptr(&p.tx.out);
  size_t n = buf_avail(&p.tx.out);
  int got = 0;
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(buf_append(&p.rx.in, wire + i, 1), 0);
    const unsigned char *payload;
    size_t len;
    int rc;
    while ((rc = packet_next(&p.rx, &payload, &len, NULL, 0)) == EVSSH_OK) {
      ck_assert_uint_eq(len, got == 0 ? sizeof data : 5);
      got++;
    }
    ck_assert_int_eq(rc, EVSSH_EAGAIN);
  }
  ck_assert_int_eq(got, 2);
  teardown(&p);
}
END_TEST

START_TEST(tampering_is_detected) {
  /* every byte of an encrypted packet is covered: flip each in turn */
  for (size_t m = 1; m < sizeof modes / sizeof modes[0]; m++) {
    pair ref;
    setup(&ref, modes[m][0], modes[m][1]);
    unsigned char data[50];
    memset(data, 0x5a, sizeof data);
    send_payload(&ref, data, sizeof data);
    size_t n = buf_avail(&ref.tx.out);
    unsigned char wire[256];
    memcpy(wire, buf_ptr(&ref.tx.out), n);
    teardown(&ref);
    for (size_t i = 0; i < n; i++) {
      pair p;
      setup(&p, modes[m][0], modes[m][1]);
      wire[i] ^= 0x01;
      ck_assert_int_eq(buf_append(&p.rx.in, wire, n), 0);
      wire[i] ^= 0x01;
      const unsigned char *payload;
      size_t len;
      char err[160] = "";
      int rc = packet_next(&p.rx, &payload, &len, err, sizeof err);
      /* a flipped length byte may also just make the packet look longer */
      ck_assert_msg(rc == EVSSH_EPROTO || (i < 16 && rc == EVSSH_EAGAIN), "mode %s byte %zu: rc %d", modes[m][0], i, rc);
      if (rc == EVSSH_EPROTO) ck_assert_msg(err[0], "no message for byte %zu", i);
      teardown(&p);
    }
  }
}
END_TEST

START_TEST(oversize_and_bad_lengths) {
  pair p;
  setup(&p, NULL, NULL);
  const unsigned char *payload;
  size_t len;
  char err[160];
  unsigned char big[] = {0x00, 0x04, 0x00, 0x08, 4};   /* 256 KiB + 8 */
  buf_append(&p.rx.in, big, sizeof big);
  ck_assert_int_eq(packet_next(&p.rx, &payload, &len, err, sizeof err), EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "exceeds"), "%s", err);
  teardown(&p);

  setup(&p, NULL, NULL);
  unsigned char odd[] = {0, 0, 0, 13, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  /* 17 not a multiple of 8 */
  buf_append(&p.rx.in, odd, sizeof odd);
  ck_assert_int_eq(packet_next(&p.rx, &payload, &len, err, sizeof err), EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "multiple"), "%s", err);
  teardown(&p);

  setup(&p, NULL, NULL);
  unsigned char nopayload[] = {0, 0, 0, 12, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};  /* all padding */
  buf_append(&p.rx.in, nopayload, sizeof nopayload);
  ck_assert_int_eq(packet_next(&p.rx, &payload, &len, err, sizeof err), EVSSH_EPROTO);
  ck_assert_msg(strstr(err, "padding"), "%s", err);
  teardown(&p);

  /* the sender refuses what the receiver would refuse */
  setup(&p, NULL, NULL);
  evssh_buf *b = packet_begin(&p.tx);
  ck_assert_ptr_nonnull(buf_extend(b, PACKET_MAX_LEN));
  ck_assert_int_eq(packet_end(&p.tx), EVSSH_EINVAL);
  ck_assert_uint_eq(buf_avail(&p.tx.out), 0);
  ck_assert_uint_eq(p.tx.tx.seq, 0);
  teardown(&p);
}
END_TEST

START_TEST(interleaved_drain_keeps_framing) {
  /* the socket takes part of the output between two packets being built */
  pair p;
  setup(&p, "aes128-gcm@openssh.com", NULL);
  unsigned char data[5000];
  memset(data, 7, sizeof data);
  size_t moved = 0;
  for (int i = 0; i < 200; i++) {
    send_payload(&p, data, (size_t)(i * 37) % sizeof data + 1);
    size_t take = buf_avail(&p.tx.out) / 2 + 1;
    ck_assert_int_eq(buf_append(&p.rx.in, buf_ptr(&p.tx.out), take), 0);
    buf_consume(&p.tx.out, take);
    moved += take;
  }
  deliver(&p);
  const unsigned char *payload;
  size_t len;
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(packet_next(&p.rx, &payload, &len, NULL, 0), 0);
    ck_assert_uint_eq(len, (size_t)(i * 37) % sizeof data + 1);
  }
  teardown(&p);
}
END_TEST

/* A receiver asked before any byte arrived (its buffer never allocated)
   just waits; found by fuzz_packet as NULL + 0 under UBSan. */
START_TEST(next_on_empty_receiver) {
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    pair p;
    setup(&p, modes[m][0], modes[m][1]);
    const unsigned char *payload = NULL;
    size_t len = 0;
    char err[128] = "";
    ck_assert_int_eq(packet_next(&p.rx, &payload, &len, err, sizeof err), EVSSH_EAGAIN);
    ck_assert_str_eq(err, "");
    teardown(&p);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("packet");
  TCase *tc = tcase_create("framing");
  int nmodes = (int)(sizeof modes / sizeof modes[0]);
  tcase_add_loop_test(tc, round_trip_and_padding, 0, nmodes);
  tcase_add_loop_test(tc, byte_by_byte_arrival, 0, nmodes);
  tcase_add_test(tc, tampering_is_detected);
  tcase_add_test(tc, oversize_and_bad_lengths);
  tcase_add_test(tc, interleaved_drain_keeps_framing);
  tcase_add_test(tc, next_on_empty_receiver);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
