/* User key material for publickey authentication: loading public halves
 * (.pub files, OpenSSH public key lines), loading private key files in every
 * format OpenSSH writes, choosing the signature algorithm for a key, and
 * producing SSH signature blobs with OpenSSL.
 *
 * Private key files:
 *  - openssh-key-v1, unencrypted or encrypted (bcrypt-pbkdf with every
 *    cipher ssh-keygen -Z offers: aes*-ctr, aes*-cbc, 3des-cbc,
 *    aes*-gcm@openssh.com, chacha20-poly1305@openssh.com): parsed and
 *    decrypted here (bcrypt_pbkdf.c, the ciphers by OpenSSL). libssh 0.10,
 *    which did this first, cannot hand RSA keys back out, crashes on the
 *    AEAD ciphers and leaks on a damaged private section;
 *  - PEM containers (PKCS#1, SEC1, PKCS#8, legacy-encrypted PEM, encrypted
 *    PKCS#8): OpenSSL's decoder.
 * Every key is pair-checked once at load (the private half must be the
 * public half's), and the key derivation work a file can ask for is capped
 * before the passphrase prompt.
 * Either way the key ends up in an OpenSSL EVP_PKEY and every signature is
 * made by OpenSSL.
 *
 * User certificates (keys_cert.c): a key may carry an OpenSSH certificate
 * for itself, loaded from <identity>-cert.pub or a CertificateFile, or
 * attached from another key object's certificate (so the private key
 * loaded after the .pub keeps it). The certificate is offered with its
 * certificate algorithm (evssh_key_cert_sig_alg) and evssh_key_sign makes
 * the plain signature that algorithm stands for. */
#ifndef EVSSH_KEYS_H
#define EVSSH_KEYS_H

#include "evssh.h"
#include "cert.h"
#include <stddef.h>
#include <stdint.h>

#define EVSSH_KEYTYPE_ED25519 "ssh-ed25519"
#define EVSSH_KEYTYPE_ECDSA256 "ecdsa-sha2-nistp256"
#define EVSSH_KEYTYPE_ECDSA384 "ecdsa-sha2-nistp384"
#define EVSSH_KEYTYPE_ECDSA521 "ecdsa-sha2-nistp521"
#define EVSSH_KEYTYPE_RSA "ssh-rsa"

/* Largest bcrypt-pbkdf rounds count accepted in an encrypted openssh-key-v1
   file, for every key type (the RSA files decrypted here and the Ed25519 /
   ECDSA files that go to libssh, which has no limit of its own). Checked
   from the file's unencrypted header before any passphrase prompt.
   ssh-keygen writes 16 by default; each round costs about 10 ms of CPU on
   the project's test machine, so 16 rounds take ~0.2 s and the cap ~1.3 s
   per passphrase attempt; the often-recommended `ssh-keygen -a 100` fits.
   Above it (or 0) the load fails with EVSSH_EINVAL: "FILE: bcrypt KDF
   rounds N exceed the limit of 128; re-encrypt the key with ssh-keygen -p
   -a 16 or load it into ssh-agent". */
#define EVSSH_KEY_KDF_ROUNDS_MAX 128

/* The same for encrypted PKCS#8 files (PBKDF2, or PKCS#5 v1 / PKCS#12 PBE):
   OpenSSL writes 2048 iterations; PBKDF2-HMAC-SHA256 costs about 1 us an
   iteration, so the cap costs about a second per attempt. Above it the load
   fails with EVSSH_EINVAL "FILE: PKCS#8 key derivation iterations N exceed
   the limit of 1000000; ..." before any prompt. */
#define EVSSH_KEY_PBKDF2_ITER_MAX 1000000

/* RSA keys smaller than this are refused, as OpenSSH does. */
#define EVSSH_RSA_MIN_BITS 1024

typedef struct evssh_key evssh_key;

/* Asked for a key file's passphrase. prompt is "Enter passphrase for key
   'FILE': ". Write a NUL-terminated passphrase into buf (bufsize bytes) and
   return 0; return <0 to refuse (the load then fails with EVSSH_EAUTH).
   Called at most once per load and only for an encrypted file. */
typedef int (*evssh_passphrase_fn)(const char *prompt, char *buf, size_t bufsize, void *ud);

/* Load a public key file (normally PRIVATE_PATH + ".pub"), holding one
   OpenSSH public key line. The result can be offered to the server (blob,
   type) but not sign. Lets auth ask the server whether it would accept a key
   before any passphrase prompt.
   Errors (message in err): EVSSH_EINVAL "FILE: No such file" (or the errno
   text), "FILE: not an OpenSSH public key", unsupported key type. */
int evssh_key_load_public(const char *path, evssh_key **out, char *err, size_t errlen);

/* The same on a file's text in memory (tests and fuzzing); label stands in
   for the path in prompts and messages. */
int evssh_key_load_public_text(const char *label, const char *text, size_t len, evssh_key **out, char *err,
                               size_t errlen);

/* Load a private key file. fn may be NULL (then an encrypted file fails with
   EVSSH_EAUTH). Errors:
     EVSSH_EINVAL  "FILE: No such file or directory" (errno text), unreadable,
                   "FILE: unsupported or invalid private key format",
                   unsupported key type, RSA below EVSSH_RSA_MIN_BITS,
                   "FILE: private key does not match its public key" (every
                   loaded pair is checked once, whichever decoder read it),
                   "FILE: bcrypt KDF rounds N exceed the limit of ..." (see
                   EVSSH_KEY_KDF_ROUNDS_MAX), "FILE: encrypted private
                   section too short (N bytes)"
     EVSSH_EAUTH   "wrong passphrase for key FILE", passphrase refused or no
                   passphrase callback for an encrypted key
     EVSSH_ENOMEM
   A single passphrase attempt: the caller retries (ssh allows three).
   The passphrase callback is asked only for encrypted files, and only once
   the file's unencrypted header has passed the checks above. */
int evssh_key_load_private(const char *path, evssh_passphrase_fn fn, void *ud,
                           evssh_key **out, char *err, size_t errlen);

int evssh_key_load_private_text(const char *label, const char *text, size_t len, evssh_passphrase_fn fn,
                                void *ud, evssh_key **out, char *err, size_t errlen);

/* Public key blob as sent in SSH_MSG_USERAUTH_REQUEST ("string type ...").
   Points into k; valid until evssh_key_free. */
int evssh_key_public_blob(const evssh_key *k, const unsigned char **blob, size_t *len);
/* One of the EVSSH_KEYTYPE_* names. */
const char *evssh_key_type(const evssh_key *k);
/* Comment from the .pub line or the openssh-key-v1 file; "" if none. */
const char *evssh_key_comment(const evssh_key *k);
/* True when the key was loaded with its private half and can sign. */
bool evssh_key_can_sign(const evssh_key *k);

/* Signature algorithm for a key of type key_type (an EVSSH_KEYTYPE_* name,
   a certificate blob type such as ssh-rsa-cert-v01@openssh.com, or the type
   carried in an agent's blob), as OpenSSH's client chooses it:
   - accepted: the PubkeyAcceptedAlgorithms list (comma-separated, client
     preference order) or NULL for OpenSSH's default, which has no "ssh-rsa".
   - server_sig_algs: the server's server-sig-algs extension, NULL if the
     server sent no EXT_INFO.
   Non-RSA keys sign with their own type name if accepted.
   RSA with server-sig-algs: the first of the accepted rsa-sha2-512,
   rsa-sha2-256, ssh-rsa (in the accepted list's order) that the server
   lists; NULL if none (OpenSSH skips the key: "no mutual signature
   algorithm").
   RSA without server-sig-algs: OpenSSH signs with "ssh-rsa" if accepted and
   otherwise skips the key; we do the same for "ssh-rsa", but instead of
   skipping we try rsa-sha2-512 (if accepted), which every RFC 8332 server
   accepts even when it omits EXT_INFO; a server that does not simply rejects
   that one key.
   Certificates choose the same way among the -cert-v01 names:
   ssh-ed25519-cert-v01@openssh.com, ecdsa-sha2-nistp*-cert-v01@openssh.com
   if accepted; an RSA certificate takes the first of the accepted
   rsa-sha2-512-cert-v01, rsa-sha2-256-cert-v01, ssh-rsa-cert-v01 whose
   signature algorithm (rsa-sha2-512, ...) the server lists. The default
   accepted list is OpenSSH's, certificates first.
   Returns a static string or NULL (key type not usable). */
const char *evssh_sig_alg_for_type(const char *key_type, const char *server_sig_algs,
                                   const char *accepted);
const char *evssh_key_sig_alg(const evssh_key *k, const char *server_sig_algs,
                              const char *accepted);

/* The certificate algorithm for offering k's certificate (NULL when k has
   none or no algorithm fits), chosen as evssh_sig_alg_for_type does. */
const char *evssh_key_cert_sig_alg(const evssh_key *k, const char *server_sig_algs, const char *accepted);

/* Sign data with alg (ssh-ed25519, ecdsa-sha2-nistp*, rsa-sha2-256,
   rsa-sha2-512, ssh-rsa, or the certificate algorithm of the key's type,
   e.g. rsa-sha2-256-cert-v01@openssh.com, which signs as rsa-sha2-256 and
   names that plain algorithm in the blob, as PROTOCOL.certkeys has it; it
   must match the key). Appends the SSH signature
   blob, i.e. string(alg) || string(signature), to sig_blob; the caller wraps
   it in one more string for SSH_MSG_USERAUTH_REQUEST. Signature encodings:
   ed25519 raw 64 bytes; ECDSA string(mpint r || mpint s); RSA PKCS#1 v1.5
   of modulus length. EVSSH_EINVAL for a public-only key or wrong alg. */
int evssh_key_sign(const evssh_key *k, const char *alg, const unsigned char *data, size_t len,
                   evssh_buf *sig_blob);

void evssh_key_free(evssh_key *k);

/* ----------------------------------------------------- user certificates */

/* Parse an OpenSSH public key line holding a certificate ("TYPE BASE64
   [COMMENT]", as in id_ed25519-cert.pub or a CertificateFile) with
   evssh_cert_parse. The comment, if wanted, is malloc'd into *comment.
   Errors as for evssh_cert_parse, and EVSSH_EINVAL "not a certificate
   line". */
int evssh_cert_parse_line(const char *line, evssh_cert **out, char **comment, char *err, size_t errlen);

/* Attach the certificate blob to k (replacing any it had). The certificate
   must certify k's own public key: EVSSH_EINVAL "certificate is for another
   key (TYPE FP, not TYPE FP)" otherwise, or a parse error. The CA signature
   and validity are not judged here (evssh_key_cert_usable). */
int evssh_key_attach_cert(evssh_key *k, const unsigned char *blob, size_t len, char *err, size_t errlen);
/* Load a certificate file (an OpenSSH public key line holding a
   certificate; '#' comments and blank lines before it skipped) and attach
   it to k as above; messages start with "PATH: ". */
int evssh_key_load_cert(evssh_key *k, const char *path, char *err, size_t errlen);
/* As ssh does for each IdentityFile: attach IDENTITY_PATH-cert.pub when it
   exists (*found = true). A missing file is EVSSH_OK with *found = false;
   one that exists but does not load (unreadable, not a certificate, for
   another key) is an error with a message. */
int evssh_key_load_identity_cert(evssh_key *k, const char *identity_path, bool *found, char *err, size_t errlen);
/* A CertificateFile on its own: a public-only key (the certified key, with
   the line's comment) carrying the certificate. Pair it with a private key
   of the same public key via evssh_key_attach_cert(priv, cert blob). */
int evssh_key_load_cert_file(const char *path, evssh_key **out, char *err, size_t errlen);
/* k's certificate (NULL when none) and its blob as offered in
   SSH_MSG_USERAUTH_REQUEST (EVSSH_EINVAL when none). Valid until k is
   freed or gets another certificate. */
const evssh_cert *evssh_key_cert(const evssh_key *k);
int evssh_key_cert_blob(const evssh_key *k, const unsigned char **blob, size_t *len);
/* Whether k's certificate is worth offering at time now: evssh_cert_check
   for a user certificate (CA signature, type, validity window, principals
   not empty, critical options known) without a principal (the server maps
   the user). EVSSH_OK, or EVSSH_EAUTH with "certificate for key COMMENT
   (TYPE, key id ..., serial N, CA ...) not offered: expired at ...";
   EVSSH_EINVAL when k has no certificate. Auth skips the certificate (and
   may still offer the plain key) on EVSSH_EAUTH. */
int evssh_key_cert_usable(const evssh_key *k, uint64_t now, char *err, size_t errlen);

/* Parse an OpenSSH public key line "TYPE BASE64 [COMMENT]" (leading blanks
   allowed; no authorized_keys options). The blob's own type string must
   equal TYPE. On success *blob (malloc'd, len *blob_len) and, if comment is
   not NULL, *comment (malloc'd, "" if none) belong to the caller.
   EVSSH_EINVAL for a malformed line. Any key type is accepted here. */
int evssh_pubkey_blob_from_line(const char *line, unsigned char **blob, size_t *blob_len,
                                char **comment);

/* Parse an unencrypted openssh-key-v1 file body (the bytes between the
   "-----BEGIN OPENSSH PRIVATE KEY-----" armour lines, or the whole armoured
   text) into a key. Exposed for tests and for the libssh re-export path.
   EVSSH_EINVAL with a message for anything malformed or encrypted. */
int evssh_key_parse_openssh_v1(const char *text, size_t len, evssh_key **out,
                               char *err, size_t errlen);

#endif
