/* The wire codec: every read is bounds-checked and a failed read leaves the
 * reader where it was; writers produce RFC 4251 encodings; name-list
 * negotiation picks the client's first choice the server also has. */
#include "buf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(short_reads_leave_reader_unchanged) {
  const unsigned char data[] = {0x00, 0x00, 0x00, 0x05, 'a', 'b'};
  for (size_t n = 0; n <= sizeof data; n++) {
    evssh_reader r = reader_of(data, n);
    const char *s;
    size_t len;
    uint32_t u32;
    uint64_t u64;
    ck_assert_int_eq(evssh_read_string(&r, &s, &len), EVSSH_EPROTO);
    ck_assert_ptr_eq(r.p, data);
    ck_assert_uint_eq(r.left, n);
    if (n < 4) {
      ck_assert_int_eq(evssh_read_u32(&r, &u32), EVSSH_EPROTO);
      ck_assert_uint_eq(r.left, n);
    }
    if (n < 8) {
      ck_assert_int_eq(evssh_read_u64(&r, &u64), EVSSH_EPROTO);
      ck_assert_uint_eq(r.left, n);
    }
  }
  evssh_reader empty = reader_of(data, 0);
  uint8_t u8;
  bool b;
  ck_assert_int_eq(evssh_read_u8(&empty, &u8), EVSSH_EPROTO);
  ck_assert_int_eq(evssh_read_bool(&empty, &b), EVSSH_EPROTO);
}
END_TEST

START_TEST(huge_lengths_are_refused) {
  const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};
  evssh_reader r = reader_of(huge, sizeof huge);
  const char *s;
  size_t len;
  ck_assert_int_eq(evssh_read_string(&r, &s, &len), EVSSH_EPROTO);
  ck_assert_uint_eq(r.left, sizeof huge);
  const unsigned char big[] = {0x7f, 0x00, 0x00, 0x00};
  r = reader_of(big, sizeof big);
  ck_assert_int_eq(evssh_read_string(&r, &s, &len), EVSSH_EPROTO);
}
END_TEST

START_TEST(round_trip) {
  evssh_buf *b = evssh_buf_new();
  ck_assert_int_eq(evssh_buf_put_u8(b, 7), 0);
  ck_assert_int_eq(evssh_buf_put_bool(b, true), 0);
  ck_assert_int_eq(evssh_buf_put_u32(b, 0xdeadbeef), 0);
  ck_assert_int_eq(evssh_buf_put_u64(b, 0x0102030405060708ull), 0);
  ck_assert_int_eq(evssh_buf_put_cstring(b, "exec"), 0);
  ck_assert_int_eq(evssh_buf_put_string(b, "\0\1", 2), 0);
  ck_assert_uint_eq(evssh_buf_len(b), 1 + 1 + 4 + 8 + 8 + 6);
  evssh_reader r = reader_of(evssh_buf_data(b), evssh_buf_len(b));
  uint8_t u8;
  bool bo;
  uint32_t u32;
  uint64_t u64;
  const char *s;
  size_t len;
  ck_assert_int_eq(evssh_read_u8(&r, &u8), 0);
  ck_assert_uint_eq(u8, 7);
  ck_assert_int_eq(evssh_read_bool(&r, &bo), 0);
  ck_assert(bo);
  ck_assert_int_eq(evssh_read_u32(&r, &u32), 0);
  ck_assert_uint_eq(u32, 0xdeadbeef);
  ck_assert_int_eq(evssh_read_u64(&r, &u64), 0);
  ck_assert_uint_eq(u64, 0x0102030405060708ull);
  ck_assert_int_eq(evssh_read_string(&r, &s, &len), 0);
  ck_assert_uint_eq(len, 4);
  ck_assert(memcmp(s, "exec", 4) == 0);
  ck_assert_int_eq(evssh_read_string(&r, &s, &len), 0);
  ck_assert_uint_eq(len, 2);
  ck_assert_uint_eq(r.left, 0);
  evssh_buf_free(b);
}
END_TEST

/* RFC 4251 section 5 examples */
START_TEST(mpint_encoding) {
  struct { const char *hex; const unsigned char wire[12]; size_t wire_len; } cases[] = {
      {"0", {0, 0, 0, 0}, 4},
      {"9a378f9b2e332a7", {0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7}, 12},
      {"80", {0, 0, 0, 2, 0x00, 0x80}, 6},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    BIGNUM *bn = NULL;
    BN_hex2bn(&bn, cases[i].hex);
    evssh_buf b = EVSSH_BUF_INIT;
    ck_assert_int_eq(buf_put_bignum(&b, bn), 0);
    ck_assert_uint_eq(buf_avail(&b), cases[i].wire_len);
    ck_assert(memcmp(buf_ptr(&b), cases[i].wire, cases[i].wire_len) == 0);
    evssh_reader r = reader_of(buf_ptr(&b), buf_avail(&b));
    BIGNUM *back = NULL;
    ck_assert_int_eq(evssh_read_bignum(&r, &back), 0);
    ck_assert_int_eq(BN_cmp(bn, back), 0);
    BN_free(bn);
    BN_free(back);
    buf_release(&b);
  }
  /* negative and non-minimal encodings are refused */
  const unsigned char neg[] = {0, 0, 0, 2, 0xed, 0xcc};
  evssh_reader r = reader_of(neg, sizeof neg);
  const unsigned char *mag;
  size_t len;
  ck_assert_int_eq(evssh_read_mpint(&r, &mag, &len), EVSSH_EPROTO);
  ck_assert_uint_eq(r.left, sizeof neg);
  const unsigned char padded[] = {0, 0, 0, 2, 0x00, 0x12};
  r = reader_of(padded, sizeof padded);
  ck_assert_int_eq(evssh_read_mpint(&r, &mag, &len), EVSSH_EPROTO);
}
END_TEST

START_TEST(cstring_rejects_nul) {
  const unsigned char data[] = {0, 0, 0, 3, 'a', 0, 'b'};
  evssh_reader r = reader_of(data, sizeof data);
  char *s = NULL;
  ck_assert_int_eq(evssh_read_cstring(&r, &s), EVSSH_EPROTO);
  ck_assert_uint_eq(r.left, sizeof data);
  const unsigned char ok[] = {0, 0, 0, 2, 'h', 'i'};
  r = reader_of(ok, sizeof ok);
  ck_assert_int_eq(evssh_read_cstring(&r, &s), 0);
  ck_assert_str_eq(s, "hi");
  free(s);
}
END_TEST

START_TEST(stream_buffer_consume_and_compact) {
  evssh_buf b = EVSSH_BUF_INIT;
  for (int i = 0; i < 1000; i++) {
    unsigned char c = (unsigned char)i;
    ck_assert_int_eq(buf_append(&b, &c, 1), 0);
  }
  buf_consume(&b, 600);
  ck_assert_uint_eq(buf_avail(&b), 400);
  ck_assert_uint_eq(buf_ptr(&b)[0], (unsigned char)600);
  /* growing after a large consume compacts instead of moving the data away */
  ck_assert_ptr_nonnull(buf_extend(&b, 2000));
  ck_assert_uint_eq(buf_ptr(&b)[0], (unsigned char)600);
  buf_consume(&b, 5000);
  ck_assert_uint_eq(buf_avail(&b), 0);
  buf_release(&b);
}
END_TEST

START_TEST(namelist) {
  char *chosen = NULL;
  ck_assert_int_eq(namelist_negotiate("a,b,c", "c,b", &chosen), 0);
  ck_assert_str_eq(chosen, "b");
  free(chosen);
  ck_assert_int_eq(namelist_negotiate("a", "ab,ba", &chosen), EVSSH_ENOALGO);
  ck_assert(namelist_contains("x,yz,w", "yz"));
  ck_assert(!namelist_contains("x,yz,w", "y"));
  ck_assert(!namelist_contains("", "y"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("buf");
  TCase *tc = tcase_create("codec");
  tcase_add_test(tc, short_reads_leave_reader_unchanged);
  tcase_add_test(tc, huge_lengths_are_refused);
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, mpint_encoding);
  tcase_add_test(tc, cstring_rejects_nul);
  tcase_add_test(tc, stream_buffer_consume_and_compact);
  tcase_add_test(tc, namelist);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
