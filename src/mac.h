/* Message authentication codes for non-AEAD ciphers: HMAC-SHA2-256/512 and
 * HMAC-SHA1, each in plain (MAC over plaintext) and -etm@openssh.com
 * (MAC over ciphertext, length in clear) form. */
#ifndef EVSSH_MAC_H
#define EVSSH_MAC_H

#include "evssh.h"

typedef struct evssh_mac_alg {
  const char *name;   /* "hmac-sha2-256-etm@openssh.com" */
  size_t key_len;     /* bytes derived with letter E/F */
  size_t mac_len;     /* bytes on the wire */
  bool etm;           /* encrypt-then-MAC */
  bool default_on;
} evssh_mac_alg;

const evssh_mac_alg *evssh_mac_find(const char *name);
const char *evssh_mac_default_list(void);
const char *evssh_mac_supported_list(void);

typedef struct evssh_mac evssh_mac;
int  evssh_mac_new(const evssh_mac_alg *alg, const unsigned char *key, evssh_mac **out);
void evssh_mac_free(evssh_mac *m); /* wipes key; NULL ok */
const evssh_mac_alg *evssh_mac_alg_of(const evssh_mac *m);
/* MAC over uint32(seq) || data; writes mac_len bytes */
int evssh_mac_compute(evssh_mac *m, uint32_t seq, const unsigned char *data, size_t len,
                      unsigned char *out);
/* constant-time compare; EVSSH_EPROTO on mismatch */
int evssh_mac_verify(evssh_mac *m, uint32_t seq, const unsigned char *data, size_t len,
                     const unsigned char *mac);

#endif
