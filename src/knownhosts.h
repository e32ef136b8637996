/* known_hosts in OpenSSH's format: lookups of a server's host key and
 * appending new keys. Policy (StrictHostKeyChecking, the application's
 * callback, messages) is trust.c's; this layer only says what the files say.
 *
 * Line format: [@revoked|@cert-authority] hostpatterns keytype base64 [comment]
 * hostpatterns: a comma list of patterns with * ? and ! negation, matched
 * case-insensitively; "[host]:port" for a port other than 22 (port 22 is
 * written plain); or one hashed entry |1|base64(salt)|base64(HMAC-SHA1(salt,
 * name)). Comments and blank lines are skipped; malformed lines (bad base64,
 * a key type that disagrees with the blob, missing fields) are skipped, never
 * fatal. @cert-authority lines are recognised and ignored (no certificates
 * yet). Files that do not exist or cannot be read are skipped.
 *
 * Lookup of (host, port, addr, key):
 *   name = host, or "[host]:port" when port != 22; likewise for addr.
 *   REVOKED   a @revoked line for the name or the address carries this key.
 *   MATCH     a line for the name carries this key, and no line for the
 *             address carries a different key of the same type.
 *   MISMATCH  (a) a line for the name has a key of the same type but none
 *             has this key; or (b) the name's key matches but the address is
 *             known with a different key of the same type (ssh's CheckHostIP
 *             warning, made fatal: by_address is set); or (c) no line for
 *             the name has this key type but other types are known for it
 *             (other_type is set). ssh treats (c) as a new key and would
 *             accept it under accept-new / no; here it is refused, because a
 *             man in the middle who cannot present the known key would just
 *             offer another type. The transport avoids false alarms by
 *             asking for the known types first (evssh_knownhosts_types).
 *             file/line/expected_* describe the first conflicting line.
 *   UNKNOWN   nothing about the name (address-only entries do not make a
 *             host known, as in ssh).
 */
#ifndef EVSSH_KNOWNHOSTS_H
#define EVSSH_KNOWNHOSTS_H

#include "evssh.h"
#include <stdbool.h>
#include <stddef.h>

typedef enum evssh_kh_status {
  EVSSH_KH_MATCH = 0,
  EVSSH_KH_UNKNOWN = 1,
  EVSSH_KH_MISMATCH = 2,
  EVSSH_KH_REVOKED = 3,
} evssh_kh_status;

typedef struct evssh_kh_result {
  int status;               /* evssh_kh_status */
  bool other_type;          /* MISMATCH because only other key types are known */
  bool by_address;          /* MISMATCH found on the address's entry */
  char file[512];           /* MATCH / MISMATCH / REVOKED: where */
  int line;
  char expected_fp[64];     /* MISMATCH: "SHA256:..." of the known key */
  char expected_type[64];   /* MISMATCH: its type ("ssh-ed25519") */
  char got_fp[64];          /* fingerprint of the key that was checked */
  char got_type[64];
} evssh_kh_result;

/* Look the key up in files (in order; NULL entries and missing files
   skipped). addr: numeric address or NULL. Returns EVSSH_OK with *res filled,
   or EVSSH_EINVAL (bad arguments, unparsable blob) / EVSSH_ENOMEM. */
int evssh_knownhosts_check(const char *const *files, size_t nfiles, const char *host, int port,
                           const char *addr, const unsigned char *blob, size_t blob_len,
                           evssh_kh_result *res, char *err, size_t errlen);

/* Key types known for the name (host / [host]:port), comma-separated in the
   order first seen, malloc'd into *types; *types = NULL when none. Revoked
   and @cert-authority lines do not count. */
int evssh_knownhosts_types(const char *const *files, size_t nfiles, const char *host, int port,
                           char **types, char *err, size_t errlen);

/* Append "name keytype base64" (name hashed as |1|salt|hash when hashed),
   creating the file (mode 0600) and its directory (mode 0700) when missing,
   and starting a new line if the file does not end with one. */
int evssh_knownhosts_add(const char *file, const char *host, int port,
                         const unsigned char *blob, size_t blob_len, bool hashed,
                         char *err, size_t errlen);

/* "host" or "[host]:port" as known_hosts writes it. EVSSH_EINVAL if it does
   not fit. */
int evssh_knownhosts_name(const char *host, int port, char *out, size_t outlen);

#endif
