/* packet.c owns the binary packet protocol of RFC 4253 section 6: it turns
 * payloads into padded, encrypted, authenticated packets in the outgoing
 * buffer, and finds, authenticates and decrypts packets in the incoming one.
 * The three integrity modes differ in what is hidden and what is MACed:
 * MAC-then-encrypt hides the length and MACs plaintext; encrypt-then-MAC
 * (-etm@openssh.com) leaves the length in clear and MACs ciphertext; AEAD
 * ciphers authenticate everything themselves. */
#include "packet.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define MIN_PADDING 4
#define MAX_TAG 64

void packet_init(evssh_packet *p) {
  memset(p, 0, sizeof *p);
  buf_init(&p->in);
  buf_init(&p->out);
}

void packet_free(evssh_packet *p) {
  evssh_cipher_free(p->tx.cipher);
  evssh_mac_free(p->tx.mac);
  evssh_cipher_free(p->rx.cipher);
  evssh_mac_free(p->rx.mac);
  /* plaintext of received packets sits in `in` after decryption, never
     past the furthest byte received (the rest of its 64 KiB+ was never
     written: wiping it all cost ~50 K instructions per session) */
  if (p->in.data) {
    size_t used = p->in_high > p->in.len ? p->in_high : p->in.len;
    OPENSSL_cleanse(p->in.data, used < p->in.cap ? used : p->in.cap);
  }
  buf_release(&p->in);
  buf_release(&p->out);
  OPENSSL_cleanse(p->pad_pool, sizeof p->pad_pool);
  p->pad_left = 0;
  memset(p, 0, sizeof *p);
}

static void set_dir(packet_dir *d, evssh_cipher *c, evssh_mac *m) {
  evssh_cipher_free(d->cipher);
  evssh_mac_free(d->mac);
  d->cipher = c;
  d->mac = m;
  d->bytes = 0;
  d->packets = 0;
}

void packet_set_tx(evssh_packet *p, evssh_cipher *c, evssh_mac *m) { set_dir(&p->tx, c, m); }
void packet_set_rx(evssh_packet *p, evssh_cipher *c, evssh_mac *m) { set_dir(&p->rx, c, m); }

static size_t dir_block(const packet_dir *d) {
  if (!d->cipher) return 8;
  size_t b = evssh_cipher_alg_of(d->cipher)->block_size;
  return b < 8 ? 8 : b;
}

static bool dir_aead(const packet_dir *d) {
  return d->cipher && (evssh_cipher_alg_of(d->cipher)->flags & CIPHER_AEAD);
}

static bool dir_etm(const packet_dir *d) { return d->mac && evssh_mac_alg_of(d->mac)->etm; }

static size_t dir_tag(const packet_dir *d) {
  if (dir_aead(d)) return evssh_cipher_alg_of(d->cipher)->tag_len;
  if (d->mac) return evssh_mac_alg_of(d->mac)->mac_len;
  return 0;
}

size_t packet_max_payload(void) { return PACKET_MAX_LEN - 64 - MAX_TAG; }

evssh_buf *packet_begin(evssh_packet *p) {
  if (p->tx_open) return NULL;
  /* a packet built after a partial drain must not move under us: keep the
     pending bytes where they are, append after them */
  if (buf_reserve(&p->out, 5 + 256) != EVSSH_OK) return NULL;
  /* relative to off: appending may compact the buffer under us */
  p->tx_start = p->out.len - p->out.off;
  p->out.len += 5;   /* packet_length + padding_length, filled in by end */
  p->tx_open = true;
  return &p->out;
}

void packet_abort(evssh_packet *p) {
  if (!p->tx_open) return;
  p->out.len = p->out.off + p->tx_start;
  p->tx_open = false;
}

int packet_end(evssh_packet *p) {
  if (!p->tx_open) return EVSSH_EINVAL;
  packet_dir *d = &p->tx;
  size_t block = dir_block(d);
  size_t start = p->out.off + p->tx_start;
  size_t payload_len = p->out.len - start - 5;
  if (payload_len == 0 || payload_len > packet_max_payload()) {
    packet_abort(p);
    return EVSSH_EINVAL;
  }
  /* AEAD and EtM keep the length field out of the encrypted, padded part */
  bool len_clear = dir_aead(d) || dir_etm(d);
  size_t covered = (len_clear ? 0 : 4) + 1 + payload_len;
  size_t pad = block - (covered % block);
  if (pad < MIN_PADDING) pad += block;
  size_t tag_len = dir_tag(d);
  if (buf_reserve(&p->out, pad + tag_len) != EVSSH_OK) {
    packet_abort(p);
    return EVSSH_ENOMEM;
  }
  start = p->out.off + p->tx_start;   /* reserve may have compacted */
  unsigned char *pkt = p->out.data + start;
  size_t packet_length = 1 + payload_len + pad;
  put_u32(pkt, (uint32_t)packet_length);
  pkt[4] = (unsigned char)pad;
  unsigned char *padding = p->out.data + p->out.len;
  if (d->cipher) {
    /* the padding is encrypted: its content only has to be unpredictable
       before encryption for CBC, which we do not offer; zeros would do, but
       random costs little and matches the RFC's advice */
    if (p->pad_left < pad) {
      p->pad_left = RAND_bytes(p->pad_pool, (int)sizeof p->pad_pool) == 1 ? sizeof p->pad_pool : 0;
    }
    if (p->pad_left >= pad) {
      memcpy(padding, p->pad_pool + sizeof p->pad_pool - p->pad_left, pad);
      p->pad_left -= pad;
    } else {
      memset(padding, 0, pad);
    }
  } else {
    memset(padding, 0, pad);
  }
  p->out.len += pad;
  size_t total = 4 + packet_length;
  unsigned char *tag = p->out.data + p->out.len;
  int rc = EVSSH_OK;
  if (dir_aead(d)) {
    rc = evssh_cipher_aead_seal(d->cipher, d->seq, pkt, total, tag);
  } else if (d->cipher) {
    if (dir_etm(d)) {
      rc = evssh_cipher_crypt(d->cipher, pkt + 4, pkt + 4, total - 4);
      if (rc == EVSSH_OK) rc = evssh_mac_compute(d->mac, d->seq, pkt, total, tag);
    } else {
      if (d->mac) rc = evssh_mac_compute(d->mac, d->seq, pkt, total, tag);
      if (rc == EVSSH_OK) rc = evssh_cipher_crypt(d->cipher, pkt, pkt, total);
    }
  }
  if (rc != EVSSH_OK) {
    packet_abort(p);
    return rc;
  }
  p->out.len += tag_len;
  p->tx_open = false;
  d->seq++;
  d->packets++;
  d->bytes += total + tag_len;
  return EVSSH_OK;
}

static int fail(char *err, size_t errlen, const char *msg, unsigned long v) {
  if (err) snprintf(err, errlen, msg, v);
  return EVSSH_EPROTO;
}

int packet_next(evssh_packet *p, const unsigned char **payload, size_t *len,
                char *err, size_t errlen) {
  if (p->rx_consume) {
    buf_consume(&p->in, p->rx_consume);
    p->rx_consume = 0;
  }
  size_t avail = buf_avail(&p->in);
  /* nothing buffered (the buffer may not even be allocated yet): the
     pointer arithmetic below would be NULL + 0 */
  if (avail == 0) return EVSSH_EAGAIN;
  packet_dir *d = &p->rx;
  size_t block = dir_block(d);
  size_t tag_len = dir_tag(d);
  bool aead = dir_aead(d), etm = dir_etm(d);
  unsigned char *pkt = p->in.data + p->in.off;

  if (p->rx_total == 0) {
    uint32_t packet_length;
    if (aead) {
      if (avail < 4) return EVSSH_EAGAIN;
      int rc = evssh_cipher_aead_length(d->cipher, d->seq, pkt, &packet_length);
      if (rc) return fail(err, errlen, "cannot decrypt packet length%.0lu", 0);
    } else if (!d->cipher || etm) {
      if (avail < 4) return EVSSH_EAGAIN;
      packet_length = get_u32(pkt);
    } else {
      if (avail < block) return EVSSH_EAGAIN;
      if (!p->rx_head_decrypted) {
        int rc = evssh_cipher_crypt(d->cipher, pkt, pkt, block);
        if (rc) return fail(err, errlen, "decryption failed%.0lu", 0);
        p->rx_head_decrypted = true;
      }
      packet_length = get_u32(pkt);
    }
    if (packet_length > PACKET_MAX_LEN)
      return fail(err, errlen, "packet length %lu exceeds the 256 KiB limit", packet_length);
    if (packet_length < 1 + MIN_PADDING)
      return fail(err, errlen, "packet length %lu is too small", packet_length);
    size_t covered = (aead || etm) ? packet_length : 4 + (size_t)packet_length;
    if (covered % block != 0)
      return fail(err, errlen, "packet length %lu is not a multiple of the cipher block size",
                  packet_length);
    p->rx_total = 4 + (size_t)packet_length + tag_len;
  }
  if (avail < p->rx_total) {
    /* make room for the whole packet in one go, so reads land contiguously */
    if (buf_reserve(&p->in, p->rx_total - avail) != EVSSH_OK) return EVSSH_ENOMEM;
    return EVSSH_EAGAIN;
  }

  size_t total = p->rx_total - tag_len;
  const unsigned char *tag = pkt + total;
  int rc = EVSSH_OK;
  if (aead) {
    rc = evssh_cipher_aead_open(d->cipher, d->seq, pkt, total, tag);
    if (rc) return fail(err, errlen, "message authentication failed (bad tag) on packet %lu",
                        (unsigned long)d->seq);
  } else if (d->cipher && etm) {
    rc = evssh_mac_verify(d->mac, d->seq, pkt, total, tag);
    if (rc) return fail(err, errlen, "message authentication code incorrect on packet %lu",
                        (unsigned long)d->seq);
    rc = evssh_cipher_crypt(d->cipher, pkt + 4, pkt + 4, total - 4);
  } else if (d->cipher) {
    rc = evssh_cipher_crypt(d->cipher, pkt + block, pkt + block, total - block);
    if (rc == EVSSH_OK && d->mac) {
      rc = evssh_mac_verify(d->mac, d->seq, pkt, total, tag);
      if (rc) return fail(err, errlen, "message authentication code incorrect on packet %lu",
                          (unsigned long)d->seq);
    }
  }
  if (rc) return fail(err, errlen, "decryption failed%.0lu", 0);

  size_t packet_length = total - 4;
  size_t pad = pkt[4];
  if (pad < MIN_PADDING || pad + 1 >= packet_length)
    return fail(err, errlen, "invalid padding length %lu", pad);
  *payload = pkt + 5;
  *len = packet_length - pad - 1;
  p->rx_consume = p->rx_total;
  p->rx_total = 0;
  p->rx_head_decrypted = false;
  d->seq++;
  d->packets++;
  d->bytes += p->rx_consume;
  return EVSSH_OK;
}
