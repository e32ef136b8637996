/* known_hosts in OpenSSH's format: lookups of a server's host key or host
 * certificate, and appending new keys. Policy (StrictHostKeyChecking, the
 * application's callback, messages, falling back from a refused
 * certificate) is trust.c's; this layer only says what the files say.
 *
 * Line format: [@revoked|@cert-authority] hostpatterns keytype base64 [comment]
 * hostpatterns: a comma list of patterns with * ? and ! negation, matched
 * case-insensitively; "[host]:port" for a port other than 22 (port 22 is
 * written plain); or one hashed entry |1|base64(salt)|base64(HMAC-SHA1(salt,
 * name)) (tried with the name as given and in lower case, as ssh hashes
 * it). Comments and blank lines are skipped; malformed lines (bad base64,
 * a key type that disagrees with the blob, missing fields, lines over 64
 * KiB) are skipped, never fatal. Files that do not exist or cannot be read
 * are skipped. A line holding a certificate stands for the key it
 * certifies.
 *
 * Two ways in: the one-shot evssh_knownhosts_check / _types (read the files
 * for one question), or a loaded set (evssh_knownhosts_load: the lines that
 * concern one server's name and address, read once) asked several
 * questions: the plain lookup, the host-certificate check, the known types,
 * whether any @cert-authority covers the name. A trust decision for a
 * certificate host key is then a few calls:
 *
 *   evssh_known_hosts *kh;
 *   evssh_knownhosts_load(files, n, alias_or_host, port, NULL, &kh, err, len);
 *   if (revoked_host_keys) evssh_knownhosts_load_revoked(kh, path, err, len);
 *   evssh_hostcert_result hc;
 *   evssh_knownhosts_check_hostcert(kh, blob, blob_len, time(NULL), &hc, err, len);
 *   ACCEPT -> trusted; REVOKED -> refuse (EVSSH_EHOSTKEY_CHANGED, hc.message);
 *   UNKNOWN_CA / INVALID -> log hc.message, then as ssh does fall back to
 *   evssh_knownhosts_lookup(kh, blob, ...) on the certified key (the lookup
 *   of a certificate blob looks up the key it certifies).
 *
 * Lookup of (host, port, addr, key):
 *   name = host, or "[host]:port" when port != 22; likewise for addr.
 *   REVOKED   a @revoked line for the name or the address, or a
 *             RevokedHostKeys entry, carries this key (for a certificate:
 *             the certified key or its CA key).
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
 *             host known, as in ssh). @cert-authority lines are not plain
 *             host keys and never make a plain key known.
 */
#ifndef EVSSH_KNOWNHOSTS_H
#define EVSSH_KNOWNHOSTS_H

#include "evssh.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
   and starting a new line if the file does not end with one.
   Names are written so that a later lookup of the same host and port finds
   them and no other host's lookup does: a host holding a character that a
   plain host field would read as syntax ('*', '?', ',', a space, or a
   leading '!', '@', '#', '|') is always written hashed, whatever hashed
   says (the hash compares the exact name, for us and for ssh); hashed names
   are hashed in lower case, as ssh hashes. Names that cannot be written
   either way are refused with EVSSH_EINVAL and a message: empty, control
   characters, '[' or ']' (a host "[a]:1" on port 22 would read as host a on
   port 1). A host certificate blob is recorded as the key it certifies (as
   ssh records it after falling back from the certificate). */
int evssh_knownhosts_add(const char *file, const char *host, int port,
                         const unsigned char *blob, size_t blob_len, bool hashed,
                         char *err, size_t errlen);

/* "host" or "[host]:port" as known_hosts writes it. EVSSH_EINVAL if it does
   not fit. */
int evssh_knownhosts_name(const char *host, int port, char *out, size_t outlen);

/* ------------------------------------------------------- loaded sets */

typedef struct evssh_known_hosts evssh_known_hosts;

/* Read the lines of files (in order; NULL entries and missing files
   skipped) that concern host (the host name, or HostKeyAlias) on port, and
   addr when not NULL (numeric address; ignored when equal to the name).
   The set keeps only those lines, so it is as small as what the files say
   about this server. host is also the name host certificates must list.
   Errors: EVSSH_EINVAL (bad host, port or arguments), EVSSH_ENOMEM. */
int evssh_knownhosts_load(const char *const *files, size_t nfiles, const char *host, int port,
                          const char *addr, evssh_known_hosts **out, char *err, size_t errlen);
/* The same from text in memory (tests and fuzzing); label names it in
   results. */
int evssh_knownhosts_load_text(const char *text, size_t len, const char *label, const char *host, int port,
                               const char *addr, evssh_known_hosts **out, char *err, size_t errlen);
/* Add a RevokedHostKeys file in plain key-list form: one OpenSSH public key
   line ("TYPE BASE64 [COMMENT]") per revoked key, '#' comments and blank
   lines allowed; each key is revoked for every host, as a host key and as a
   CA key (a certificate line revokes the key it certifies). Unlike
   known_hosts, an unreadable file or a line that is not a key is an error
   (EVSSH_EINVAL "RevokedHostKeys FILE line N: not a public key"): skipping
   it would leave a key unrevoked. OpenSSH's binary KRL format is not
   supported yet and is refused with a message saying so. */
int evssh_knownhosts_load_revoked(evssh_known_hosts *kh, const char *path, char *err, size_t errlen);
void evssh_knownhosts_free(evssh_known_hosts *kh); /* NULL ok */

/* The plain lookup described at the top, on a loaded set. A certificate
   blob is looked up as the key it certifies (got_type / got_fp are then
   that key's), and is REVOKED also when its CA key is revoked. */
int evssh_knownhosts_lookup(const evssh_known_hosts *kh, const unsigned char *blob, size_t blob_len,
                            evssh_kh_result *res, char *err, size_t errlen);
/* evssh_knownhosts_types on a loaded set; *types NULL when none. */
int evssh_knownhosts_loaded_types(const evssh_known_hosts *kh, char **types);
/* True when a @cert-authority line covers the set's name: ssh then puts the
   certificate host-key algorithms first (evssh_cert_alg_list). */
bool evssh_knownhosts_has_cert_authority(const evssh_known_hosts *kh);

typedef enum evssh_hostcert_status {
  EVSSH_HOSTCERT_ACCEPT = 0,     /* a @cert-authority CA for the name signed it; every check passed */
  EVSSH_HOSTCERT_UNKNOWN_CA = 1, /* no @cert-authority line for the name has the signing CA */
  EVSSH_HOSTCERT_INVALID = 2,    /* the CA is trusted for the name but a check failed (check says which) */
  EVSSH_HOSTCERT_REVOKED = 3,    /* the certified key or the CA key is revoked */
} evssh_hostcert_status;

typedef struct evssh_hostcert_result {
  int status;             /* evssh_hostcert_status */
  int check;              /* INVALID: the evssh_cert_check_id that failed (cert.h) */
  bool fallback;          /* UNKNOWN_CA and INVALID (but not a CA signature that fails to verify):
                             ssh retries with the certified key as a plain key */
  char file[512];         /* ACCEPT / INVALID: the @cert-authority line; REVOKED: the revoking line */
  int line;
  char key_type[64];      /* the certified key: plain type and fingerprint */
  char key_fp[64];
  char ca_fp[64];
  char key_id[128];
  uint64_t serial;
  char message[640];      /* one line saying what was decided and why */
} evssh_hostcert_result;

/* Check a host certificate blob (as the server sent it) for the set's name
   at time now (seconds since the epoch), in this order: revocation (the
   certified key or the CA, by @revoked lines for the name or address and
   by RevokedHostKeys); the CA signature itself (one that does not verify
   is INVALID with check EVSSH_CERT_SIGNATURE and fallback false: ssh
   refuses such a key while decoding it); a
   @cert-authority line for the name ([host]:port
   patterns as for plain lines) with the certificate's CA key; then
   evssh_cert_check for a host certificate naming the set's host: CA
   signature, type, validity, non-empty principals, the host among them
   (wildcards allowed), no critical options. The outcome is in *res with a
   message such as "host certificate for NAME (TYPE FP, key id "x", serial
   N, CA ...): expired at 2026-01-02 03:04:05 UTC".
   Returns EVSSH_OK (whatever the verdict), EVSSH_EINVAL when blob is not a
   certificate we can parse (message in err), EVSSH_ENOMEM. */
int evssh_knownhosts_check_hostcert(const evssh_known_hosts *kh, const unsigned char *blob, size_t blob_len,
                                    uint64_t now, evssh_hostcert_result *res, char *err, size_t errlen);

#endif
