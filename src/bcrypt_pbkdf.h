/* bcrypt_pbkdf, the key derivation OpenSSH uses for passphrase-protected
 * private keys in the openssh-key-v1 format. */
#ifndef EVSSH_BCRYPT_PBKDF_H
#define EVSSH_BCRYPT_PBKDF_H

#include <stddef.h>
#include <stdint.h>

/* Derives keylen bytes (at most 1024) into key. EVSSH_EINVAL for bad
   arguments (empty salt, zero rounds), EVSSH_ENOMEM. */
int evssh_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                       uint8_t *key, size_t keylen, unsigned int rounds);

#endif
