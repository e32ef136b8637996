/* Host key and signature handling for the transport and known_hosts:
 * parse public key blobs (ssh-ed25519, ecdsa-sha2-nistp*, ssh-rsa), verify
 * the server's signature on H with the negotiated algorithm (ssh-ed25519,
 * ecdsa-sha2-*, rsa-sha2-256/512, ssh-rsa only if allowed), SHA256
 * fingerprints as OpenSSH prints them. */
#ifndef EVSSH_HOSTKEY_H
#define EVSSH_HOSTKEY_H

#include "evssh.h"
#include <openssl/evp.h>

/* The plain host key algorithms in OpenSSH 10.5's order: ssh-ed25519,
   ecdsa-sha2-nistp256/384/521, rsa-sha2-512, rsa-sha2-256 (a transport
   without options offers these). */
const char *evssh_hostkey_default_list(void);
/* HostKeyAlgorithms and PubkeyAcceptedAlgorithms default, as OpenSSH
   10.5's: the certificate algorithms (evssh_cert_alg_list), then the
   plain list above. */
const char *evssh_hostkey_default_algs(void);
/* Everything we can use: the default plus ssh-rsa-cert-v01@openssh.com and
   ssh-rsa (SHA-1, off unless asked for). */
const char *evssh_hostkey_supported_list(void);

/* Key type name carried inside the blob ("ssh-rsa", "ssh-ed25519", ...),
   copied into out. */
int evssh_hostkey_blob_type(const unsigned char *blob, size_t len, char *out, size_t outlen);
/* Parse a public key blob into an EVP_PKEY (caller frees). */
int evssh_pubkey_from_blob(const unsigned char *blob, size_t len, EVP_PKEY **out);
/* Does signature algorithm alg apply to keys of blob type ("rsa-sha2-256" ~
   "ssh-rsa"; "rsa-sha2-512-cert-v01@openssh.com" ~
   "ssh-rsa-cert-v01@openssh.com"; each other certificate algorithm ~ its
   own blob type)? */
bool evssh_hostkey_alg_matches(const char *alg, const char *blob_type);
/* Verify sig_blob (string alg, string sig) over data with the key in blob.
   expected_alg: the negotiated host key algorithm; the signature's own
   algorithm name must equal it. When expected_alg is a certificate
   algorithm (ssh-ed25519-cert-v01@openssh.com, rsa-sha2-256-cert-v01@...,
   ...), blob is the host certificate: the signature is checked with the
   key it certifies and must carry the plain algorithm (ssh-ed25519,
   rsa-sha2-256, ...); the certificate's own validity is not checked here.
   EVSSH_EPROTO with a message on failure. */
int evssh_hostkey_verify(const unsigned char *blob, size_t blob_len, const char *expected_alg,
                         const unsigned char *sig_blob, size_t sig_len,
                         const unsigned char *data, size_t data_len, char *err, size_t errlen);
/* The key a certificate blob certifies: the blob's type, nonce and key
   fields are read and re-framed as the plain public key blob the key has on
   its own (checked with evssh_pubkey_from_blob); *key is malloc'd.
   cert_type / key_type (static names) and consumed (bytes of blob read: the
   rest of the certificate follows) may be NULL. cert.c parses the rest;
   this part is here because verifying a certified host key's signature
   needs it. EVSSH_ENOALGO: not a certificate type we support;
   EVSSH_EPROTO: cut short or an invalid key; EVSSH_ENOMEM. */
int evssh_hostkey_cert_key(const unsigned char *blob, size_t len, unsigned char **key, size_t *key_len,
                           const char **cert_type, const char **key_type, size_t *consumed);

/* Certificate algorithm names (PROTOCOL.certkeys). They live with the host
   key algorithms because negotiation and verification use them; cert.h
   includes this header.
   - evssh_cert_is_cert_name: true for any name ending in
     -cert-v01@openssh.com (also types we cannot parse, sk-* and DSA).
   - evssh_cert_alg_blob_type / _sig_alg: for a certificate algorithm we
     support (the five blob types and rsa-sha2-256/512-cert-v01@openssh.com),
     the blob type its certificates carry and the plain algorithm of the
     signatures the certified key makes; NULL otherwise.
   - evssh_cert_alg_for: the certificate algorithm for a blob type signing
     with a plain algorithm (("ssh-rsa-cert-v01@openssh.com",
     "rsa-sha2-512") -> "rsa-sha2-512-cert-v01@openssh.com"); NULL when they
     do not go together.
   - evssh_cert_alg_list: the certificate algorithms in OpenSSH's
     preference order (ed25519, ECDSA 256/384/521, rsa-sha2-512,
     rsa-sha2-256), which HostKeyAlgorithms / PubkeyAcceptedAlgorithms put
     before the plain ones. */
bool evssh_cert_is_cert_name(const char *name);
const char *evssh_cert_alg_blob_type(const char *alg);
const char *evssh_cert_alg_sig_alg(const char *alg);
const char *evssh_cert_alg_for(const char *cert_type, const char *sig_alg);
const char *evssh_cert_alg_list(void);

/* "SHA256:" + unpadded base64 of SHA-256(blob), as ssh-keygen -l prints */
int evssh_fingerprint_sha256(const unsigned char *blob, size_t len, char *out, size_t outlen);
/* base64 helpers shared with known_hosts and keys */
int evssh_base64_encode(const unsigned char *in, size_t len, bool pad, char *out, size_t outlen);
int evssh_base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *outl);
#endif
