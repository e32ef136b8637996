/* Fuzz target: server replies of every key exchange method we offer, the
 * post-quantum hybrids included, fed straight into evssh_kex. The first
 * input byte picks the method (index into evssh_kex_supported_list()); the
 * rest is a sequence of server messages, each a message number, a 16-bit
 * big-endian length and that many body bytes. Whatever arrives, the
 * exchange must finish or fail with a message, never crash, read out of
 * bounds or leak; a finished one must yield H, K_S, the signature and
 * derivable keys.
 *
 * Build with clang as test/fuzz/run.sh builds fuzz_transport (the same
 * library sources, which now include src/mlkem.c, src/sntrup761.c and
 * src/kexinit.c). Seeds: test/fuzz/seeds/fuzz_kex/. */
#include "kex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *method_at(unsigned idx, char *name, size_t len) {
  const char *p = evssh_kex_supported_list();
  unsigned count = 1;
  for (const char *c = p; *c; c++) count += *c == ',';
  idx %= count;
  while (idx--) p = strchr(p, ',') + 1;
  size_t n = strcspn(p, ",");
  if (n >= len) n = len - 1;
  memcpy(name, p, n);
  name[n] = 0;
  return name;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1) return 0;
  char name[80];
  const evssh_kex_alg *alg = evssh_kex_find(method_at(data[0], name, sizeof name));
  if (!alg) abort();   /* every supported name must be findable */
  static const unsigned char ic[] = "\x14 client kexinit", is[] = "\x14 server kexinit";
  evssh_kex_input in = {"SSH-2.0-evssh_fuzz", "SSH-2.0-OpenSSH_10.0", ic, sizeof ic - 1, is, sizeof is - 1};
  evssh_kex *k = NULL;
  if (evssh_kex_new(alg, &in, &k) != EVSSH_OK) return 0;
  /* fixed ephemeral keys keep runs reproducible (and skip no code path) */
  unsigned char priv[96];
  for (size_t i = 0; i < sizeof priv; i++) priv[i] = (unsigned char)(i * 37 + 11);
  size_t plen = strncmp(name, "mlkem", 5) == 0 ? 96 : strncmp(name, "sntrup", 6) == 0 ? 48
               : strncmp(name, "curve25519", 10) == 0 ? 32 : strstr(name, "nistp521") ? 66
               : strstr(name, "nistp384") ? 48 : 32;
  if (strstr(name, "nistp521")) priv[0] = 0x01;   /* below the group order */
  evssh_kex_set_private(k, priv, plen);
  evssh_buf out = EVSSH_BUF_INIT;
  if (evssh_kex_start(k, &out) != EVSSH_OK) {
    evssh_kex_free(k);
    buf_release(&out);
    return 0;
  }
  size_t off = 1;
  bool done = false;
  while (off + 3 <= size && !done) {
    uint8_t msg = data[off];
    size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
    off += 3;
    if (len > size - off) len = size - off;
    evssh_reader body = reader_of(data + off, len);
    off += len;
    char err[256] = "";
    buf_reset(&out);
    int rc = evssh_kex_handle(k, msg, &body, &out, &done, err, sizeof err);
    if (rc == EVSSH_EPROTO && !err[0]) abort();   /* a refusal must say why */
    if (rc) break;
  }
  if (done) {
    size_t hl, kl, sl;
    if (!evssh_kex_hash(k, &hl) || !evssh_kex_hostkey(k, &kl) || !evssh_kex_signature(k, &sl) || hl == 0) abort();
    unsigned char key[80];
    if (evssh_kex_derive(k, evssh_kex_hash(k, &hl), hl, 'C', key, sizeof key) != EVSSH_OK) abort();
  }
  evssh_kex_free(k);
  buf_release(&out);
  return 0;
}
