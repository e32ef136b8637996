/* Key exchange methods: the post-quantum hybrids mlkem768x25519-sha256 and
 * sntrup761x25519-sha512(@openssh.com), curve25519-sha256(@libssh.org),
 * ecdh-sha2-nistp*, diffie-hellman-group14/16/18 and group-exchange-sha256.
 * One evssh_kex is
 * one exchange: it builds the client's messages, takes the server's, and
 * yields the exchange hash H, the shared secret K and the server's host key
 * and signature. Signature verification and host-key policy are not here
 * (hostkey.c, transport.c). Key derivation (RFC 4253 7.2) is. */
#ifndef EVSSH_KEX_H
#define EVSSH_KEX_H

#include "evssh.h"
#include "buf.h"

/* message numbers used by key exchange methods */
enum {
  SSH2_MSG_KEXDH_INIT = 30, SSH2_MSG_KEXDH_REPLY = 31,
  SSH2_MSG_KEX_ECDH_INIT = 30, SSH2_MSG_KEX_ECDH_REPLY = 31,
  SSH2_MSG_KEX_DH_GEX_REQUEST_OLD = 30, SSH2_MSG_KEX_DH_GEX_GROUP = 31,
  SSH2_MSG_KEX_DH_GEX_INIT = 32, SSH2_MSG_KEX_DH_GEX_REPLY = 33,
  SSH2_MSG_KEX_DH_GEX_REQUEST = 34,
};

typedef struct evssh_kex_alg {
  const char *name;
  const char *digest;   /* OpenSSL digest name: "SHA256", "SHA384", "SHA512" */
  bool default_on;
} evssh_kex_alg;

const evssh_kex_alg *evssh_kex_find(const char *name);
const char *evssh_kex_default_list(void);   /* OpenSSH 10.5 client order, no pseudo-algorithms */
const char *evssh_kex_supported_list(void);
/* true for the methods whose secret resists a quantum computer (the
   ML-KEM and sntrup761 hybrids); false for the rest and for unknown names */
bool kex_method_is_post_quantum(const char *name);

/* The strings hashed into H that the transport knows (RFC 4253 8):
   V_C, V_S without CR LF; I_C, I_S the whole KEXINIT payloads. */
typedef struct evssh_kex_input {
  const char *client_version, *server_version;
  const unsigned char *client_kexinit; size_t client_kexinit_len;
  const unsigned char *server_kexinit; size_t server_kexinit_len;
} evssh_kex_input;

typedef struct evssh_kex evssh_kex;
/* the input is copied */
int  evssh_kex_new(const evssh_kex_alg *alg, const evssh_kex_input *in, evssh_kex **out);
void evssh_kex_free(evssh_kex *k);  /* wipes secrets; NULL ok */

/* Appends the client's first message (message byte included) to out. */
int evssh_kex_start(evssh_kex *k, evssh_buf *out);
/* Takes one server message (msg is its number, body the bytes after it).
   Appends the next client message to out if there is one (group exchange).
   Sets *done when the reply has been processed and H/K are known.
   Errors: EVSSH_EPROTO (unexpected message, bad point, bad group, malformed)
   with a description in err. */
int evssh_kex_handle(evssh_kex *k, uint8_t msg, evssh_reader *body, evssh_buf *out,
                     bool *done, char *err, size_t errlen);

/* After done: */
const unsigned char *evssh_kex_hash(const evssh_kex *k, size_t *len);
const unsigned char *evssh_kex_hostkey(const evssh_kex *k, size_t *len);   /* K_S blob */
const unsigned char *evssh_kex_signature(const evssh_kex *k, size_t *len); /* sig blob */

/* RFC 4253 7.2: HASH(K || H || letter || session_id), extended as needed.
   K is used in its wire (mpint or string) encoding. */
int evssh_kex_derive(const evssh_kex *k, const unsigned char *session_id, size_t sid_len,
                     char letter, unsigned char *out, size_t need);

/* Test hooks, for known-answer tests: replace the ephemeral private key
   before evssh_kex_start. For curve25519 a 32-byte scalar; for ECDH the
   private scalar big-endian; for DH/GEX the exponent x big-endian; for
   mlkem768x25519 the ML-KEM seed d || z (64 bytes) then the X25519 scalar;
   for sntrup761x25519 a seed of any length whose SHAKE256 stream replaces
   the key generation's randomness, then the X25519 scalar (32 bytes). */
int evssh_kex_set_private(evssh_kex *k, const unsigned char *priv, size_t len);
/* GEX: the (min, n, max) sizes requested; defaults 2048, 4096? (see kex.c) */

/* ---- additions by kex.c (not in the original header) ---- */
/* GEX request sizes (defaults min=2048 n=3072 max=8192); before evssh_kex_start.
   EVSSH_EINVAL unless 1024 <= min <= n <= max <= 16384. */
int evssh_kex_set_gex_sizes(evssh_kex *k, uint32_t min, uint32_t n, uint32_t max);
/* Test hook: K in its wire (mpint) encoding, after done; NULL before. */
const unsigned char *evssh_kex_secret(const evssh_kex *k, size_t *len);
/* ---- end of additions ---- */
#endif
