/* Fuzz target: the binary packet protocol (packet.c) in every mode we
 * negotiate: no cipher, each AEAD cipher, and each CTR cipher with each MAC
 * (plain and -etm). A sender and a receiver with the same keys run a script
 * the input chooses: payloads of any size sealed and opened (they must come
 * back byte for byte, in order), delivered whole or in slices, several
 * packets in flight, rekeys into another mode, sequence numbers near the
 * 32-bit wrap, oversized payloads (refused by the sender), and then one
 * tampered packet or raw garbage. The oracle: once a byte on the wire was
 * changed (or bytes nobody sealed arrived), no packet may open again in an
 * authenticated mode, and every refusal says why; without a cipher only
 * the framing is checked. Never a crash, an out-of-bounds access or a leak.
 *
 * Input: byte 0 picks the mode, byte 1 seeds the keys; then operations, each
 * an opcode byte followed by its arguments (see run_op). Build: as every
 * test/fuzz/fuzz_*.c (test/fuzz/run.sh). Seeds: test/fuzz/seeds/fuzz_packet/. */
#include "packet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mode {
  const evssh_cipher_alg *cipher; /* NULL: none */
  const evssh_mac_alg *mac;       /* NULL: none or AEAD */
} mode;

static mode modes[64];
static size_t n_modes;

/* every negotiable combination, from the algorithm tables themselves */
static void init_modes(void) {
  if (n_modes) return;
  modes[n_modes++] = (mode){NULL, NULL};
  char ciphers[512], macs[512];
  snprintf(ciphers, sizeof ciphers, "%s", evssh_cipher_supported_list());
  char *save = NULL;
  for (char *c = strtok_r(ciphers, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
    const evssh_cipher_alg *ca = evssh_cipher_find(c);
    if (!ca) abort();
    if (ca->flags & CIPHER_AEAD) {
      modes[n_modes++] = (mode){ca, NULL};
      continue;
    }
    snprintf(macs, sizeof macs, "%s", evssh_mac_supported_list());
    char *save2 = NULL;
    for (char *m = strtok_r(macs, ",", &save2); m; m = strtok_r(NULL, ",", &save2)) {
      const evssh_mac_alg *ma = evssh_mac_find(m);
      if (!ma || n_modes >= sizeof modes / sizeof modes[0]) abort();
      modes[n_modes++] = (mode){ca, ma};
    }
  }
}

typedef struct input {
  const unsigned char *p;
  size_t left;
} input;

static unsigned take8(input *in) {
  if (!in->left) return 0;
  in->left--;
  return *in->p++;
}

static unsigned take16(input *in) { return take8(in) << 8 | take8(in); }

/* deterministic filler so payload contents do not cost input bytes */
static uint32_t rng;
static unsigned char next_byte(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return (unsigned char)rng;
}

static unsigned char payload_buf[PACKET_MAX_LEN + 16];

typedef struct link {
  evssh_packet tx, rx;
  const mode *m;
  bool broken;          /* unsealed or altered bytes reached the receiver */
  int big_done;
  size_t in_flight;     /* packets sealed and delivered, not yet opened */
  size_t flight_len[64];
  uint32_t flight_sum[64];
} link;

/* not instrumented: a byte loop over every payload would cost more than
   the packet layer it checks, and has no branches worth steering */
#if defined(__clang__)
__attribute__((no_sanitize("coverage"), noinline))
#endif
static uint32_t checksum(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603u;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211u;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 1099511628211u;
  return (uint32_t)(h ^ h >> 32);
}

static bool authenticated(const link *l) { return l->m->cipher != NULL; }

static void make_keys(link *l, const mode *m, unsigned seed) {
  unsigned char key[64], iv[16], mkey[64];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (unsigned char)(seed * 131 + i * 7 + 1);
  for (size_t i = 0; i < sizeof iv; i++) iv[i] = (unsigned char)(seed * 17 + i * 3 + 5);
  for (size_t i = 0; i < sizeof mkey; i++) mkey[i] = (unsigned char)(seed * 29 + i * 11 + 9);
  evssh_cipher *enc = NULL, *dec = NULL;
  evssh_mac *m1 = NULL, *m2 = NULL;
  if (m->cipher) {
    if (evssh_cipher_new(m->cipher, true, key, m->cipher->iv_len ? iv : NULL, &enc) != EVSSH_OK ||
        evssh_cipher_new(m->cipher, false, key, m->cipher->iv_len ? iv : NULL, &dec) != EVSSH_OK)
      abort();
  }
  if (m->mac) {
    if (evssh_mac_new(m->mac, mkey, &m1) != EVSSH_OK || evssh_mac_new(m->mac, mkey, &m2) != EVSSH_OK) abort();
  }
  packet_set_tx(&l->tx, enc, m1);
  packet_set_rx(&l->rx, dec, m2);
  l->m = m;
}

/* Everything the receiver can open now. Intact traffic must come back as
   sealed, in order; after tampering nothing may open in an authenticated
   mode. Returns false once the receiver refused the stream. */
static bool drain_rx(link *l) {
  for (;;) {
    const unsigned char *payload;
    size_t len;
    char err[256] = "";
    int rc = packet_next(&l->rx, &payload, &len, err, sizeof err);
    if (rc == EVSSH_EAGAIN) return true;
    if (rc == EVSSH_EPROTO) {
      if (!err[0]) abort();               /* a refusal must say why */
      if (!l->broken) abort();            /* intact traffic was refused */
      return false;
    }
    if (rc != EVSSH_OK) return false;     /* ENOMEM: nothing to check */
    if (l->broken) {
      if (authenticated(l)) abort();      /* a forged packet opened */
      continue;
    }
    if (l->in_flight == 0) abort();       /* a packet nobody sealed */
    if (len != l->flight_len[0] || checksum(payload, len) != l->flight_sum[0]) abort();
    memmove(l->flight_len, l->flight_len + 1, (l->in_flight - 1) * sizeof l->flight_len[0]);
    memmove(l->flight_sum, l->flight_sum + 1, (l->in_flight - 1) * sizeof l->flight_sum[0]);
    l->in_flight--;
  }
}

static int seal(link *l, size_t len) {
  /* a few varying bytes in a repeating pattern: content does not steer
     the packet layer, only the sizes do */
  unsigned char pattern = next_byte();
  memset(payload_buf, pattern, len);
  for (size_t i = 0; i < len && i < 16; i++) payload_buf[len - 1 - i] = next_byte();
  if (len) payload_buf[0] = (unsigned char)(len & 0xff);   /* a message number */
  evssh_buf *b = packet_begin(&l->tx);
  if (!b) return EVSSH_ENOMEM;
  if (buf_append(b, payload_buf, len) != EVSSH_OK) {
    packet_abort(&l->tx);
    return EVSSH_ENOMEM;
  }
  int rc = packet_end(&l->tx);
  bool valid = len > 0 && len <= packet_max_payload();
  if (valid != (rc == EVSSH_OK) && rc != EVSSH_ENOMEM) abort();   /* the sender's own limits */
  if (rc == EVSSH_OK && !l->broken) {   /* a broken stream is not checked */
    if (l->in_flight >= 64) abort();   /* every operation opens what it sealed */
    l->flight_len[l->in_flight] = len;
    l->flight_sum[l->in_flight] = checksum(payload_buf, len);
    l->in_flight++;
  }
  return rc;
}

/* Move the sender's bytes to the receiver, in slices of `slice` bytes
   (0: at once), opening what completes after each slice. */
static bool deliver(link *l, size_t slice, size_t tamper_at, unsigned char tamper_mask) {
  size_t n = buf_avail(&l->tx.out);
  unsigned char *wire = (unsigned char *)buf_ptr(&l->tx.out);
  if (tamper_mask && n) {
    wire[tamper_at % n] ^= tamper_mask;
    l->broken = true;
  }
  size_t off = 0;
  bool alive = true;
  while (off < n && alive) {
    size_t k = slice && slice < n - off ? slice : n - off;
    if (buf_append(&l->rx.in, wire + off, k) != EVSSH_OK) return false;
    off += k;
    alive = drain_rx(l);
  }
  buf_consume(&l->tx.out, n);
  return alive;
}

/* One operation; false ends the run (the receiver refused, or no input). */
static bool run_op(link *l, input *in) {
  unsigned op = take8(in);
  switch (op % 8) {
  case 0: {   /* one packet, delivered whole */
    size_t len = take16(in) % 5000 + 1;
    if (seal(l, len) != EVSSH_OK) return false;
    return deliver(l, 0, 0, 0);
  }
  case 1: {   /* several packets in flight, delivered in slices */
    unsigned count = take8(in) % 8 + 1;
    size_t slice = 1 + take8(in) * 29u;   /* 1 .. 7396 bytes at a time */
    for (unsigned i = 0; i < count; i++)
      if (seal(l, take8(in) * 13u % 3000 + 1) != EVSSH_OK) return false;
    return deliver(l, slice, 0, 0);
  }
  case 2: {   /* one byte changed on the wire */
    size_t len = take16(in) % 4000 + 1;
    size_t at = take16(in);
    unsigned char mask = (unsigned char)(take8(in) | 1);
    size_t slice = take8(in) % 4 == 0 ? 1 + take8(in) : 0;
    if (seal(l, len) != EVSSH_OK) return false;
    deliver(l, slice, at, mask);
    return false;   /* the receiver's stream is over either way */
  }
  case 3: {   /* bytes nobody sealed */
    size_t n = take8(in);
    if (n > in->left) n = in->left;
    l->broken = true;
    bool ok = buf_append(&l->rx.in, in->p, n) == EVSSH_OK && drain_rx(l);
    in->p += n;
    in->left -= n;
    return ok && !authenticated(l);   /* without a cipher, framing goes on */
  }
  case 4: {   /* NEWKEYS both ways: another mode, fresh keys */
    /* keys change on a packet boundary */
    if (buf_avail(&l->rx.in) != l->rx.rx_consume || l->rx.rx_total) return false;
    make_keys(l, &modes[take8(in) % n_modes], take8(in));
    /* at a clean boundary the new keys start a fresh, checkable stream
       (garbage accepted without a cipher may have swallowed packets) */
    l->broken = false;
    l->in_flight = 0;
    return true;
  }
  case 5: {   /* sequence numbers near the 32-bit wrap (chacha's nonce) */
    uint32_t seq = 0xffffffffu - take8(in) % 4;
    l->tx.tx.seq = l->rx.rx.seq = seq;
    return true;
  }
  case 6: {   /* the size limits: the largest payload, and one byte more */
    if (l->big_done++) return true;   /* once per input: it is slow */
    bool over = take8(in) & 1;
    size_t len = packet_max_payload() + (over ? 1 : 0);
    int rc = seal(l, len);
    if (over) return rc == EVSSH_EINVAL;
    if (rc != EVSSH_OK) return false;
    return deliver(l, take8(in) % 2 ? 4096 : 0, 0, 0);
  }
  default: {  /* a packet begun and abandoned leaves no trace */
    evssh_buf *b = packet_begin(&l->tx);
    if (!b) return false;
    if (packet_begin(&l->tx) != NULL) abort();   /* one open packet at a time */
    buf_append(b, "abandoned", 9);
    packet_abort(&l->tx);
    if (buf_avail(&l->tx.out) != 0) abort();
    return true;
  }
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 2) return 0;
  init_modes();
  input in = {data + 2, size - 2};
  rng = 0x9e3779b9u ^ (uint32_t)data[1] << 8 ^ (uint32_t)size;
  link *l = calloc(1, sizeof *l);
  if (!l) return 0;
  packet_init(&l->tx);
  packet_init(&l->rx);
  make_keys(l, &modes[data[0] % n_modes], data[1]);
  int ops = 0;
  while (in.left && ops++ < 64 && run_op(l, &in)) {}
  /* whatever was sealed and delivered intact has been opened */
  if (!l->broken && buf_avail(&l->tx.out) == 0 && l->in_flight != 0) abort();
  packet_free(&l->tx);
  packet_free(&l->rx);
  free(l);
  return 0;
}
