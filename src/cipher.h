/* Packet ciphers over OpenSSL EVP: AES-CTR (with a separate MAC), AES-GCM
 * (RFC 5647 as OpenSSH uses it) and chacha20-poly1305@openssh.com. The packet
 * layer (packet.c) owns framing and padding; this layer only transforms
 * bytes and computes or checks AEAD tags. */
#ifndef EVSSH_CIPHER_H
#define EVSSH_CIPHER_H

#include "evssh.h"

enum {
  CIPHER_AEAD = 1,        /* integrity from the cipher: no MAC negotiated */
  CIPHER_CHACHAPOLY = 2,  /* length field encrypted under its own key */
};

typedef struct evssh_cipher_alg {
  const char *name;       /* "aes128-ctr" */
  size_t key_len;         /* bytes of key derived with letter C/D */
  size_t iv_len;          /* bytes of IV derived with letter A/B (0 for chacha) */
  size_t block_size;      /* padding granularity: 16 for AES, 8 for chacha */
  size_t tag_len;         /* AEAD tag bytes, 0 otherwise */
  int flags;
  bool default_on;        /* in the default proposal */
} evssh_cipher_alg;

/* NULL when unknown */
const evssh_cipher_alg *evssh_cipher_find(const char *name);
/* comma-separated default proposal in preference order (OpenSSH client order)
   and every supported name */
const char *evssh_cipher_default_list(void);
const char *evssh_cipher_supported_list(void);

typedef struct evssh_cipher evssh_cipher;
int  evssh_cipher_new(const evssh_cipher_alg *alg, bool encrypt, const unsigned char *key,
                      const unsigned char *iv, evssh_cipher **out);
void evssh_cipher_free(evssh_cipher *c); /* wipes keys; NULL ok */
const evssh_cipher_alg *evssh_cipher_alg_of(const evssh_cipher *c);

/* Non-AEAD: transform len bytes (a multiple of block_size) in the running
   CTR stream; in and out may be the same. */
int evssh_cipher_crypt(evssh_cipher *c, unsigned char *out, const unsigned char *in, size_t len);

/* AEAD, both kinds. pkt points at the 4-byte packet_length field and
   len = 4 + packet_length.
   seal: encrypts pkt in place (GCM leaves the length in clear as AAD;
   chacha encrypts it too) and writes tag_len bytes to tag.
   length: reads packet_length from the first 4 bytes as received (GCM: plain;
   chacha: decrypted with the header key); does not modify them.
   open: checks the tag over pkt as received (constant time), then decrypts
   pkt+4 .. pkt+len in place; the 4 length bytes are left as received.
   A bad tag is EVSSH_EPROTO. GCM increments its invocation counter per
   seal/open; chacha takes the packet sequence number as nonce. */
int evssh_cipher_aead_seal(evssh_cipher *c, uint32_t seq, unsigned char *pkt, size_t len,
                           unsigned char *tag);
int evssh_cipher_aead_length(evssh_cipher *c, uint32_t seq, const unsigned char in[4],
                             uint32_t *packet_length);
int evssh_cipher_aead_open(evssh_cipher *c, uint32_t seq, unsigned char *pkt, size_t len,
                           const unsigned char *tag);

#endif
