/* streams.c owns the "bytes through cat" check shared by the rekey and
 * interop tests: the whole stream is queued at once so the channel layer
 * must honour the peer's window, and both directions are hashed. */
#include "streams.h"

#include <openssl/evp.h>
#include <string.h>

typedef struct stream {
  EVP_MD_CTX *out_hash, *in_hash;
  size_t total;
  stream_result *res;
  bool closed;
} stream;

static void on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  stream *st = ud;
  EVP_DigestUpdate(st->in_hash, data, len);
  st->res->received += len;
}

static void on_close(evssh_channel *ch, void *ud) {
  stream *st = ud;
  st->closed = true;
  if (evssh_channel_exit_status(ch, &st->res->exit_status) != EVSSH_OK) st->res->exit_status = -1;
}

static void on_open(evssh_channel *ch, void *ud) {
  stream *st = ud;
  evssh_channel_on_data(ch, on_data, st);
  evssh_channel_on_close(ch, on_close, st);
  if (evssh_channel_exec(ch, "cat", NULL, NULL) != EVSSH_OK) return;
  unsigned char block[65536];
  uint32_t x = 0x12345678;
  for (size_t sent = 0; sent < st->total; sent += sizeof block) {
    size_t n = st->total - sent < sizeof block ? st->total - sent : sizeof block;
    for (size_t i = 0; i < n; i++) {
      x = x * 1103515245u + 12345u;
      block[i] = (unsigned char)(x >> 24);
    }
    EVP_DigestUpdate(st->out_hash, block, n);
    if (evssh_channel_send_data(ch, block, n) != EVSSH_OK) return;
    st->res->sent += n;
  }
  evssh_channel_eof(ch);
}

static bool not_closed(evssh_session *s, void *ud) { return !((stream *)ud)->closed; }

void stream_through_cat(evssh_session *s, size_t total, stream_result *out) {
  memset(out, 0, sizeof *out);
  out->exit_status = -1;
  stream st = {EVP_MD_CTX_new(), EVP_MD_CTX_new(), total, out, false};
  EVP_DigestInit_ex(st.out_hash, EVP_sha256(), NULL);
  EVP_DigestInit_ex(st.in_hash, EVP_sha256(), NULL);
  if (evssh_session_open_channel(s, on_open, &st)) out->loop_rc = evssh_session_loop(s, 1000, not_closed, &st);
  else out->loop_rc = EVSSH_ECLOSED;
  unsigned char a[32], b[32];
  unsigned int la = 0, lb = 0;
  EVP_DigestFinal_ex(st.out_hash, a, &la);
  EVP_DigestFinal_ex(st.in_hash, b, &lb);
  out->equal = out->received == out->sent && out->sent == total && memcmp(a, b, 32) == 0;
  EVP_MD_CTX_free(st.out_hash);
  EVP_MD_CTX_free(st.in_hash);
}
