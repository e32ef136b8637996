/* ossl.c owns the process-wide table of OpenSSL algorithm objects. With
 * OpenSSL 3 every EVP_MD_fetch/EVP_CIPHER_fetch (and every legacy
 * EVP_sha256()-style pointer handed to an init call, which fetches
 * implicitly) walks the provider method store: a name lookup, a property
 * query and a lock, about 2-3 K instructions each. Connection set-up and
 * every rekey fetch the same handful of digests, ciphers and MACs, so they
 * are fetched here once, the first time any is asked for, and shared.
 *
 * Thread safety: pthread_once fills the table; after that nothing writes
 * it, so two threads only ever read it. OpenSSL's own objects are
 * reference counted and immutable once fetched. An atexit handler,
 * registered after the first fetch (so after OpenSSL registered its own
 * cleanup, and therefore run before it), frees them, which keeps valgrind's
 * report free of them.
 *
 * What this cannot remove with OpenSSL 3.0: EVP_PKEY_CTX creation
 * (keygen, derive, sign, verify) fetches its key management and operation
 * by name on every call, and 3.0 has neither EVP_PKEY_CTX_dup for key
 * generation nor an init call that takes a pre-fetched EVP_SIGNATURE or
 * EVP_KEYEXCH; a shared context would be mutable state seen by two threads. */
#include "ossl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const md_names[] = {
  "SHA1", "SHA256", "SHA2-256", "SHA384", "SHA512", "SHA2-512",
  "SHA3-256", "SHA3-512", "SHAKE128", "SHAKE256",
};
static const char *const cipher_names[] = {
  "ChaCha20", "AES-128-CTR", "AES-192-CTR", "AES-256-CTR", "AES-128-GCM", "AES-256-GCM",
};
static const char *const mac_names[] = {"HMAC", "POLY1305"};

#define N_MD (sizeof md_names / sizeof md_names[0])
#define N_CIPHER (sizeof cipher_names / sizeof cipher_names[0])
#define N_MAC (sizeof mac_names / sizeof mac_names[0])

static struct {
  EVP_MD *md[N_MD];
  EVP_CIPHER *cipher[N_CIPHER];
  EVP_MAC *mac[N_MAC];
} table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_free(void) {
  for (size_t i = 0; i < N_MD; i++) EVP_MD_free(table.md[i]);
  for (size_t i = 0; i < N_CIPHER; i++) EVP_CIPHER_free(table.cipher[i]);
  for (size_t i = 0; i < N_MAC; i++) EVP_MAC_free(table.mac[i]);
  memset(&table, 0, sizeof table);
}

static void table_fill(void) {
  /* a name the provider lacks stays NULL, and its users report ENOALGO as
     they did when they fetched it themselves */
  for (size_t i = 0; i < N_MD; i++) table.md[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
  for (size_t i = 0; i < N_CIPHER; i++) table.cipher[i] = EVP_CIPHER_fetch(NULL, cipher_names[i], NULL);
  for (size_t i = 0; i < N_MAC; i++) table.mac[i] = EVP_MAC_fetch(NULL, mac_names[i], NULL);
  /* if atexit fails the objects stay reachable until exit: harmless */
  (void)atexit(table_free);
}

static int find(const char *const *names, size_t n, const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return (int)i;
  return -1;
}

const EVP_MD *evssh_ossl_md(const char *name) {
  int i = find(md_names, N_MD, name);
  if (i < 0 || pthread_once(&table_once, table_fill) != 0) return NULL;
  return table.md[i];
}

const EVP_CIPHER *evssh_ossl_cipher(const char *name) {
  int i = find(cipher_names, N_CIPHER, name);
  if (i < 0 || pthread_once(&table_once, table_fill) != 0) return NULL;
  return table.cipher[i];
}

EVP_MAC *evssh_ossl_mac(const char *name) {
  int i = find(mac_names, N_MAC, name);
  if (i < 0 || pthread_once(&table_once, table_fill) != 0) return NULL;
  return table.mac[i];
}
