/* ossl.h: OpenSSL algorithm objects fetched once per process (see ossl.c). */
#ifndef EVSSH_OSSL_H
#define EVSSH_OSSL_H

#include <openssl/evp.h>

/* Each returns the process-wide object for an OpenSSL fetch name (the
 * names evssh uses: digests SHA1, SHA256, SHA2-256, SHA384, SHA512,
 * SHA2-512, SHA3-256, SHA3-512, SHAKE128, SHAKE256; ciphers ChaCha20,
 * AES-{128,192,256}-CTR, AES-{128,256}-GCM; MACs HMAC, POLY1305), or NULL
 * when the name is not in the table or the default provider lacks it.
 * Borrowed: never free it; it stays valid until exit. Safe from any thread
 * (the table is filled once, under pthread_once, and never changes). */
const EVP_MD *evssh_ossl_md(const char *name);
const EVP_CIPHER *evssh_ossl_cipher(const char *name);
EVP_MAC *evssh_ossl_mac(const char *name);

#endif
