/* What keys.c shares with keys_cert.c and nobody else: reading a key file
 * with the size cap, building a public-only key from a blob, and attaching
 * a certificate to a key (the struct stays private to keys.c). */
#ifndef EVSSH_KEYS_INTERNAL_H
#define EVSSH_KEYS_INTERNAL_H

#include "cert.h"
#include "keys.h"

/* Whole file (at most 1 MiB) into a NUL-terminated heap buffer; the caller
   wipes and frees it. EVSSH_EINVAL "PATH: <errno text>" / not a regular
   file / too large, EVSSH_ENOMEM. */
int keys_read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen);
/* A public-only key of one of our plain types from its blob; takes blob
   and comment (may be NULL) on success and failure. path names it in the
   "unsupported key type" message. */
int keys_new_public(const char *path, unsigned char *blob, size_t blob_len, char *comment, evssh_key **out,
                    char *err, size_t errlen);
/* Replace the key's certificate (NULL: none); takes c. */
void keys_set_cert(evssh_key *k, evssh_cert *c);

#endif
