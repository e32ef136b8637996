/* OpenSSH certificates (PROTOCOL.certkeys, "-cert-v01@openssh.com" key
 * types): parsing a certificate blob, verifying its CA signature, and
 * checking it for one use (a host certificate for a host name, or a user
 * certificate) at a given time. Nothing here decides trust in a CA: which
 * CA may certify which hosts is known_hosts' (@cert-authority,
 * knownhosts.h), and the policy around it is trust.c's.
 *
 * Supported certified-key types: ssh-ed25519, ecdsa-sha2-nistp256/384/521
 * and ssh-rsa certificates, signed by a CA key of any of those types (never
 * by a certificate: chains are not part of the format). CA signatures made
 * with ssh-rsa (SHA-1) are refused, as OpenSSH's default
 * CASignatureAlgorithms does. DSA and security-key (sk-*) certificates are
 * not supported and fail to parse with a message.
 *
 * Algorithm names versus blob types: a certificate blob always carries one
 * of the five types above (e.g. "ssh-rsa-cert-v01@openssh.com"); the names
 * rsa-sha2-256-cert-v01@openssh.com and rsa-sha2-512-cert-v01@openssh.com
 * appear only as algorithm names (KEXINIT host-key algorithms, the userauth
 * "public key algorithm") and say which signature the RSA key makes. A
 * signature made by a certified key is an ordinary signature of the plain
 * algorithm: "ssh-ed25519", "rsa-sha2-512", ... */
#ifndef EVSSH_CERT_H
#define EVSSH_CERT_H

#include "evssh.h"
#include "hostkey.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVSSH_CERT_TYPE_USER 1
#define EVSSH_CERT_TYPE_HOST 2

/* Most principals a certificate may list (OpenSSH's limit too). */
#define EVSSH_CERT_MAX_PRINCIPALS 256

/* valid_before of a certificate without an end ("forever"). */
#define EVSSH_CERT_FOREVER UINT64_MAX

/* Which check refused a certificate (evssh_cert_check). */
typedef enum evssh_cert_check_id {
  EVSSH_CERT_OK = 0,
  EVSSH_CERT_SIGNATURE = 1,       /* CA signature invalid, or made with a refused algorithm */
  EVSSH_CERT_WRONG_TYPE = 2,      /* a user certificate where a host one is required, or the reverse */
  EVSSH_CERT_NOT_YET_VALID = 3,   /* now < valid after */
  EVSSH_CERT_EXPIRED = 4,         /* now >= valid before */
  EVSSH_CERT_NO_PRINCIPALS = 5,   /* empty principals list (refused, as OpenSSH 10.3 does) */
  EVSSH_CERT_PRINCIPAL = 6,       /* the name is not among the principals */
  EVSSH_CERT_CRITICAL_OPTION = 7, /* a critical option this use does not know */
} evssh_cert_check_id;

/* A critical option or extension: name and its data (the option's raw data
   string, which for force-command / source-address is itself a string).
   data points into the certificate's blob. */
typedef struct evssh_cert_option {
  char *name;
  const unsigned char *data;
  size_t data_len;
} evssh_cert_option;

/* A parsed certificate. Every pointer is owned by it (or points into its
   blob copy) and lives until evssh_cert_free. Fields are read-only for
   callers. */
typedef struct evssh_cert {
  unsigned char *blob; /* the whole certificate as received */
  size_t blob_len;
  const char *type;     /* blob type, e.g. "ssh-ed25519-cert-v01@openssh.com" (static) */
  const char *key_type; /* the certified key's plain type, e.g. "ssh-ed25519" (static) */
  unsigned char *key_blob; /* the certified key as a plain public key blob */
  size_t key_blob_len;
  uint64_t serial;
  uint32_t cert_type; /* EVSSH_CERT_TYPE_USER or _HOST (nothing else parses) */
  char *key_id;       /* NUL-free text chosen by the CA */
  char **principals;
  size_t nprincipals;
  uint64_t valid_after, valid_before; /* seconds since the epoch; valid if after <= now < before */
  evssh_cert_option *critical;
  size_t ncritical;
  evssh_cert_option *extensions;
  size_t nextensions;
  const unsigned char *ca_blob; /* the signature key (a plain key), into blob */
  size_t ca_blob_len;
  char ca_type[32];
  size_t signed_len;            /* the CA signed blob[0 .. signed_len) */
  const unsigned char *signature; /* string(alg) || string(sig), into blob */
  size_t signature_len;
  char sig_alg[32];             /* the signature's algorithm */
} evssh_cert;

/* The certificate algorithm names (evssh_cert_is_cert_name,
   evssh_cert_alg_blob_type, _sig_alg, _for, _list) and the extraction of a
   certified key are declared in hostkey.h, included here: the transport's
   signature check needs them without the rest of this file. */

/* Parse a certificate blob (a copy is kept). Checks the framing of every
   field, that the certified key and the CA key are valid public keys (the
   CA key not itself a certificate), the certificate type (user or host),
   at most EVSSH_CERT_MAX_PRINCIPALS NUL-free principals, well-formed
   critical options and extensions without duplicate names, and nothing
   after the signature. Does NOT verify the signature (evssh_cert_verify,
   or evssh_cert_check which starts with it).
   Errors: EVSSH_EINVAL "malformed certificate: <what>" / "unsupported
   certificate type X", EVSSH_ENOMEM. */
int evssh_cert_parse(const unsigned char *blob, size_t len, evssh_cert **out, char *err, size_t errlen);

/* evssh_cert_parse_line, for the line form (id_*-cert.pub, CertificateFile),
   is in keys.h: it reads an OpenSSH public key line, a key file format. */

/* Verify the CA's signature over the certificate with hostkey.c's
   verifier. The signature algorithm must fit the CA key and be one of
   ssh-ed25519, ecdsa-sha2-nistp*, rsa-sha2-256, rsa-sha2-512.
   EVSSH_OK, or EVSSH_EHOSTKEY with a message ("CA signature ... invalid",
   "CA signature algorithm ssh-rsa (SHA-1) refused"). */
int evssh_cert_verify(const evssh_cert *c, char *err, size_t errlen);
/* Only the cryptographic half of evssh_cert_verify: the signature fits the
   CA key and is valid, whatever CASignatureAlgorithms allows (an ssh-rsa
   SHA-1 signature that verifies passes here). A certificate failing this
   was forged or damaged: ssh refuses it while decoding the key, before any
   trust decision, so no fallback to its plain key applies; one that only
   uses a refused algorithm is a policy refusal, after which ssh does fall
   back. Same returns as evssh_cert_verify. */
int evssh_cert_verify_signature(const evssh_cert *c, char *err, size_t errlen);

/* Check the certificate for one use, in this order, stopping at the first
   failure: the CA signature (evssh_cert_verify); the type (want_type
   EVSSH_CERT_TYPE_HOST or _USER); now within [valid after, valid before);
   a non-empty principals list; name among the principals when name is
   not NULL (host certificates: principals are patterns with * and ?,
   matched case-insensitively, as host names are; user certificates: exact
   strings, no wildcards); critical options (a host certificate may have
   none, OpenSSH defines none for hosts; a user certificate may have
   force-command, source-address and verify-required; any other name is
   refused). name NULL skips only the principal match (a client cannot know
   which principal a server maps its user to).
   Returns EVSSH_OK, or EVSSH_EHOSTKEY with *failed (if not NULL) set to the
   failing evssh_cert_check_id and a message in err that names the check:
   "not a host certificate (it is a user certificate)", "expired at
   2026-01-02 03:04:05 UTC", "not valid before ...", "no principals (an
   empty list is refused)", "NAME is not among the principals (a, b)",
   "unknown critical option NAME", "CA signature ...". EVSSH_EINVAL for bad
   arguments. */
int evssh_cert_check(const evssh_cert *c, uint32_t want_type, const char *name, uint64_t now,
                     evssh_cert_check_id *failed, char *err, size_t errlen);

/* Only the validity window: EVSSH_CERT_OK, _NOT_YET_VALID or _EXPIRED, with
   the same message as evssh_cert_check when err is not NULL. For skipping
   an expired user certificate before offering it. */
evssh_cert_check_id evssh_cert_check_validity(const evssh_cert *c, uint64_t now, char *err, size_t errlen);

/* "key id \"ID\", serial N, CA SHA256:..." for log lines and messages. */
void evssh_cert_describe(const evssh_cert *c, char *out, size_t outlen);

/* The critical option of that name, or NULL. */
const evssh_cert_option *evssh_cert_critical(const evssh_cert *c, const char *name);

void evssh_cert_free(evssh_cert *c); /* NULL ok */

#endif
