/* known_hosts files in OpenSSH's format: reads them line by line (plain and
 * hashed host patterns, [host]:port names, wildcards and negation, @revoked
 * and @cert-authority markers) into a set of the lines that concern one
 * server (its name and address), plus an optional RevokedHostKeys list;
 * decides what that set says about a server key or a host certificate;
 * lists the key types known for the name; and appends new entries (plain
 * or hashed). Malformed lines are skipped the way ssh skips them; nothing
 * here decides policy. */
#include "knownhosts.h"
#include "cert.h"
#include "errors.h"
#include "hostkey.h"
#include "keys.h"
#include "match.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define HASH_MAGIC "|1|"
#define SHA1_LEN 20
/* Longest line read; the rest of a longer one is skipped (a 16384-bit RSA
   key is under 3 KB of base64, a certificate with 256 principals ~20 KB). */
#define LINE_MAX_BYTES (64 * 1024)
#define KRL_MAGIC "SSHKRL\n\0"

int evssh_knownhosts_name(const char *host, int port, char *out, size_t outlen) {
  if (host == NULL || *host == '\0' || out == NULL || port <= 0 || port > 65535)
    return EVSSH_EINVAL;
  int n = port == 22 ? snprintf(out, outlen, "%s", host) : snprintf(out, outlen, "[%s]:%d", host, port);
  return n >= 0 && (size_t)n < outlen ? EVSSH_OK : EVSSH_EINVAL;
}

static int hmac_sha1(const unsigned char *key, size_t keylen, const char *msg,
                     unsigned char out[SHA1_LEN]) {
  unsigned int len = 0;
  if (HMAC(EVP_sha1(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len) == NULL ||
      len != SHA1_LEN)
    return EVSSH_ENOMEM;
  return EVSSH_OK;
}

static void ascii_lower(const char *in, char *out, size_t outlen) {
  size_t i = 0;
  for (; in[i] && i + 1 < outlen; i++)
    out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] - 'A' + 'a') : in[i];
  out[i] = '\0';
}

/* |1|salt|hash: true when HMAC-SHA1(salt, name) == hash. ssh hashes the
   name in lower case (it lowercases host names before any lookup), so a
   mixed-case name is tried both ways. */
static bool hashed_match(const char *field, const char *name) {
  const char *salt_b64 = field + strlen(HASH_MAGIC);
  const char *bar = strchr(salt_b64, '|');
  if (bar == NULL)
    return false;
  unsigned char salt[64], hash[64], mine[SHA1_LEN];
  size_t salt_len = 0, hash_len = 0;
  if (evssh_base64_decode(salt_b64, (size_t)(bar - salt_b64), salt, sizeof(salt), &salt_len) != EVSSH_OK ||
      evssh_base64_decode(bar + 1, strlen(bar + 1), hash, sizeof(hash), &hash_len) != EVSSH_OK ||
      salt_len != SHA1_LEN || hash_len != SHA1_LEN)
    return false;
  if (hmac_sha1(salt, salt_len, name, mine) == EVSSH_OK && CRYPTO_memcmp(mine, hash, SHA1_LEN) == 0)
    return true;
  char lower[1100];
  ascii_lower(name, lower, sizeof(lower));
  return strcmp(lower, name) != 0 && hmac_sha1(salt, salt_len, lower, mine) == EVSSH_OK &&
         CRYPTO_memcmp(mine, hash, SHA1_LEN) == 0;
}

static bool host_field_matches(const char *field, const char *name) {
  if (name == NULL)
    return false;
  if (strncmp(field, HASH_MAGIC, strlen(HASH_MAGIC)) == 0)
    return hashed_match(field, name);
  return evssh_match_list(name, field, true) == 1;
}

/* ------------------------------------------------------------ the set */

typedef enum { MARK_NONE, MARK_REVOKED, MARK_CA, MARK_REVOKED_LIST } marker;

typedef struct kh_entry {
  marker mark;
  bool by_name, by_addr;   /* which of the set's names the host field matched */
  char type[64];           /* from the blob */
  const char *cert_key_type; /* certificate lines: the certified key's type (static); else NULL */
  unsigned char *blob;     /* malloc'd */
  size_t blob_len;
  unsigned char *plain;    /* certificate lines: the certified key (malloc'd); else NULL */
  size_t plain_len;
  size_t file;             /* index into files */
  int line;
} kh_entry;

struct evssh_known_hosts {
  char host[1025];
  int port;
  char name[1100];          /* host, or [host]:port */
  char addrname[300];       /* likewise for the address; "" when none */
  char **files;
  size_t nfiles;
  kh_entry *e;
  size_t n, cap;
};

/* the type of the key the line stands for (not a pointer into the entry:
   the entry array moves as it grows) */
static const char *entry_type(const kh_entry *k) {
  return k->cert_key_type ? k->cert_key_type : k->type;
}

static const unsigned char *entry_key(const kh_entry *k, size_t *len) {
  *len = k->plain ? k->plain_len : k->blob_len;
  return k->plain ? k->plain : k->blob;
}

void evssh_knownhosts_free(evssh_known_hosts *kh) {
  if (kh == NULL)
    return;
  for (size_t i = 0; i < kh->n; i++) {
    free(kh->e[i].blob);
    free(kh->e[i].plain);
  }
  free(kh->e);
  for (size_t i = 0; i < kh->nfiles; i++)
    free(kh->files[i]);
  free(kh->files);
  free(kh);
}

static int add_file_name(evssh_known_hosts *kh, const char *file, size_t *index) {
  char **grown = realloc(kh->files, (kh->nfiles + 1) * sizeof(*grown));
  if (grown == NULL)
    return EVSSH_ENOMEM;
  kh->files = grown;
  if ((kh->files[kh->nfiles] = strdup(file)) == NULL)
    return EVSSH_ENOMEM;
  *index = kh->nfiles++;
  return EVSSH_OK;
}

/* Takes ownership of blob. A certificate's certified key is kept beside it,
   since revocation and plain lookups compare keys, not certificates. */
static int add_entry(evssh_known_hosts *kh, marker mark, bool by_name, bool by_addr, unsigned char *blob,
                     size_t blob_len, const char *type, size_t file, int line) {
  if (kh->n == kh->cap) {
    size_t cap = kh->cap ? kh->cap * 2 : 8;
    kh_entry *grown = realloc(kh->e, cap * sizeof(*grown));
    if (grown == NULL) {
      free(blob);
      return EVSSH_ENOMEM;
    }
    kh->e = grown;
    kh->cap = cap;
  }
  kh_entry *k = &kh->e[kh->n];
  memset(k, 0, sizeof(*k));
  k->mark = mark;
  k->by_name = by_name;
  k->by_addr = by_addr;
  snprintf(k->type, sizeof(k->type), "%s", type);
  k->blob = blob;
  k->blob_len = blob_len;
  k->file = file;
  k->line = line;
  if (evssh_cert_is_cert_name(type)) {
    evssh_cert *c = NULL;
    char cerr[8];
    int rc = evssh_cert_parse(blob, blob_len, &c, cerr, sizeof(cerr));
    if (rc == EVSSH_ENOMEM) {
      free(blob);
      return rc;
    }
    if (rc) {   /* an unparsable certificate on a line is a malformed line */
      free(blob);
      return EVSSH_OK;
    }
    k->plain = c->key_blob;
    k->plain_len = c->key_blob_len;
    k->cert_key_type = c->key_type;   /* static */
    c->key_blob = NULL;
    evssh_cert_free(c);
  }
  kh->n++;
  return EVSSH_OK;
}

static char *next_field(char **p) {
  char *s = *p;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s == '\0')
    return NULL;
  char *start = s;
  while (*s && *s != ' ' && *s != '\t')
    s++;
  if (*s)
    *s++ = '\0';
  *p = s;
  return start;
}

/* One known_hosts line; lines that concern neither of the set's names are
   dropped here, so the set stays as small as what it says about them. */
static int load_line(evssh_known_hosts *kh, char *line, size_t file, int lineno) {
  line[strcspn(line, "\r\n")] = '\0';
  char *p = line;
  char *f = next_field(&p);
  if (f == NULL || f[0] == '#')
    return EVSSH_OK;
  marker mark = MARK_NONE;
  if (f[0] == '@') {
    if (strcmp(f, "@revoked") == 0)
      mark = MARK_REVOKED;
    else if (strcmp(f, "@cert-authority") == 0)
      mark = MARK_CA;
    else
      return EVSSH_OK;
    if ((f = next_field(&p)) == NULL)
      return EVSSH_OK;
  }
  char *hosts = f;
  char *type = next_field(&p);
  char *b64 = next_field(&p);
  if (type == NULL || b64 == NULL)
    return EVSSH_OK;
  bool by_name = host_field_matches(hosts, kh->name);
  bool by_addr = kh->addrname[0] && host_field_matches(hosts, kh->addrname);
  if (!by_name && !by_addr)
    return EVSSH_OK;
  size_t cap = strlen(b64) / 4 * 3 + 3, blob_len = 0;
  unsigned char *blob = malloc(cap);
  char btype[64];
  if (blob == NULL)
    return EVSSH_ENOMEM;
  if (evssh_base64_decode(b64, strlen(b64), blob, cap, &blob_len) != EVSSH_OK ||
      evssh_hostkey_blob_type(blob, blob_len, btype, sizeof(btype)) != EVSSH_OK || strcmp(btype, type) != 0) {
    free(blob);
    return EVSSH_OK;
  }
  return add_entry(kh, mark, by_name, by_addr, blob, blob_len, btype, file, lineno);
}

/* Reads lines of at most LINE_MAX_BYTES into buf; longer ones are skipped
   whole. *lineno counts every line, read or skipped. 1: a line, 0: end of
   file. */
static int read_line(FILE *fp, char *buf, size_t cap, int *lineno) {
  for (;;) {
    if (fgets(buf, (int)cap, fp) == NULL)
      return 0;
    (*lineno)++;
    size_t n = strlen(buf);
    if (n + 1 < cap || buf[n - 1] == '\n' || feof(fp))
      return 1;
    int c;
    while ((c = fgetc(fp)) != EOF && c != '\n') {}
  }
}

static int load_stream(evssh_known_hosts *kh, FILE *fp, const char *label) {
  size_t file;
  int rc = add_file_name(kh, label, &file);
  if (rc != EVSSH_OK)
    return rc;
  char *buf = malloc(LINE_MAX_BYTES);
  if (buf == NULL)
    return EVSSH_ENOMEM;
  int lineno = 0;
  while (rc == EVSSH_OK && read_line(fp, buf, LINE_MAX_BYTES, &lineno))
    rc = load_line(kh, buf, file, lineno);
  free(buf);
  return rc;
}

static int new_set(const char *host, int port, const char *addr, evssh_known_hosts **out, char *err,
                   size_t errlen) {
  evssh_known_hosts *kh = calloc(1, sizeof(*kh));
  if (kh == NULL)
    return EVSSH_ENOMEM;
  if (host == NULL || strlen(host) >= sizeof(kh->host) ||
      evssh_knownhosts_name(host, port, kh->name, sizeof(kh->name)) != EVSSH_OK ||
      (addr && evssh_knownhosts_name(addr, port, kh->addrname, sizeof(kh->addrname)) != EVSSH_OK)) {
    free(kh);
    evssh_errorf(err, errlen, "known_hosts: bad host name or port");
    return EVSSH_EINVAL;
  }
  snprintf(kh->host, sizeof(kh->host), "%s", host);
  kh->port = port;
  /* the address adds nothing when the host was given as that address */
  if (addr && strcasecmp(kh->addrname, kh->name) == 0)
    kh->addrname[0] = '\0';
  *out = kh;
  return EVSSH_OK;
}

int evssh_knownhosts_load(const char *const *files, size_t nfiles, const char *host, int port,
                          const char *addr, evssh_known_hosts **out, char *err, size_t errlen) {
  if (out == NULL || (files == NULL && nfiles)) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  evssh_known_hosts *kh = NULL;
  int rc = new_set(host, port, addr, &kh, err, errlen);
  for (size_t i = 0; rc == EVSSH_OK && i < nfiles; i++) {
    if (files[i] == NULL)
      continue;
    FILE *fp = fopen(files[i], "r");
    if (fp == NULL)
      continue;   /* missing or unreadable: ssh skips it too */
    rc = load_stream(kh, fp, files[i]);
    fclose(fp);
  }
  if (rc == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
  if (rc != EVSSH_OK) {
    evssh_knownhosts_free(kh);
    return rc;
  }
  *out = kh;
  return EVSSH_OK;
}

int evssh_knownhosts_load_text(const char *text, size_t len, const char *label, const char *host, int port,
                               const char *addr, evssh_known_hosts **out, char *err, size_t errlen) {
  if (out == NULL || (text == NULL && len) || label == NULL) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  evssh_known_hosts *kh = NULL;
  int rc = new_set(host, port, addr, &kh, err, errlen);
  if (rc != EVSSH_OK)
    return rc;
  FILE *fp = len ? fmemopen((void *)text, len, "r") : NULL;
  if (len && fp == NULL) {
    rc = EVSSH_ENOMEM;
  } else if (fp) {
    rc = load_stream(kh, fp, label);
    fclose(fp);
  }
  if (rc != EVSSH_OK) {
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
    evssh_knownhosts_free(kh);
    return rc;
  }
  *out = kh;
  return EVSSH_OK;
}

int evssh_knownhosts_load_revoked(evssh_known_hosts *kh, const char *path, char *err, size_t errlen) {
  if (kh == NULL || path == NULL)
    return EVSSH_EINVAL;
  FILE *fp = fopen(path, "r");
  if (fp == NULL) {
    /* a revocation list that cannot be read must not read as "nothing is
       revoked" (ssh refuses the connection too) */
    evssh_errorf(err, errlen, "RevokedHostKeys %s: %s", path, strerror(errno));
    return EVSSH_EINVAL;
  }
  size_t file;
  int rc = add_file_name(kh, path, &file);
  char *buf = rc == EVSSH_OK ? malloc(LINE_MAX_BYTES) : NULL;
  if (rc == EVSSH_OK && buf == NULL)
    rc = EVSSH_ENOMEM;
  char magic[sizeof(KRL_MAGIC) - 1];
  if (rc == EVSSH_OK && fread(magic, 1, sizeof(magic), fp) == sizeof(magic) &&
      memcmp(magic, KRL_MAGIC, sizeof(magic)) == 0) {
    evssh_errorf(err, errlen,
                 "RevokedHostKeys %s: KRL (binary) revocation lists are not supported yet; list the revoked "
                 "keys one per line instead",
                 path);
    rc = EVSSH_EINVAL;
  }
  rewind(fp);
  int lineno = 0;
  while (rc == EVSSH_OK && read_line(fp, buf, LINE_MAX_BYTES, &lineno)) {
    const char *p = buf + strspn(buf, " \t\r\n");
    if (*p == '\0' || *p == '#')
      continue;
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    char type[64];
    rc = evssh_pubkey_blob_from_line(p, &blob, &blob_len, NULL);
    if (rc == EVSSH_OK && evssh_hostkey_blob_type(blob, blob_len, type, sizeof(type)) != EVSSH_OK)
      rc = EVSSH_EINVAL;
    if (rc == EVSSH_EINVAL) {
      free(blob);
      /* skipping it would leave a key unrevoked: the list is refused */
      evssh_errorf(err, errlen, "RevokedHostKeys %s line %d: not a public key", path, lineno);
    } else if (rc == EVSSH_OK) {
      rc = add_entry(kh, MARK_REVOKED_LIST, true, true, blob, blob_len, type, file, lineno);
    }
  }
  if (rc == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory reading %s", path);
  free(buf);
  fclose(fp);
  return rc;
}

/* ------------------------------------------------------------ lookups */

typedef struct finding {
  const kh_entry *e;
} finding;

static void note(finding *f, const kh_entry *k) {
  if (f->e == NULL)
    f->e = k;
}

/* A key that does not parse (a cut blob, bad curve point) is a malformed
   line. Parsing is not cheap (an EC point check costs more than the rest of
   a connection's client work), so it is done only where the verdict needs
   it: a line whose key equals the server's needs none (the transport parsed
   that key and verified its signature), and a line of another key type
   decides nothing that its well-formed blob does not already tell. */
static bool key_parses(const kh_entry *k) {
  EVP_PKEY *pk = NULL;
  size_t len;
  const unsigned char *key = entry_key(k, &len);
  if (evssh_pubkey_from_blob(key, len, &pk) != EVSSH_OK)
    return false;
  EVP_PKEY_free(pk);
  return true;
}

static bool same_key(const kh_entry *k, const unsigned char *blob, size_t len) {
  size_t kl;
  const unsigned char *key = entry_key(k, &kl);
  return blob && kl == len && CRYPTO_memcmp(key, blob, len) == 0;
}

static bool is_revocation(const kh_entry *k) {
  return k->mark == MARK_REVOKED_LIST || (k->mark == MARK_REVOKED && (k->by_name || k->by_addr));
}

/* The first revocation line for key or (when not NULL) ca */
static const kh_entry *find_revoked(const evssh_known_hosts *kh, const unsigned char *key, size_t key_len,
                                    const unsigned char *ca, size_t ca_len) {
  for (size_t i = 0; i < kh->n; i++)
    if (is_revocation(&kh->e[i]) && (same_key(&kh->e[i], key, key_len) || same_key(&kh->e[i], ca, ca_len)))
      return &kh->e[i];
  return NULL;
}

static void fill_result(const evssh_known_hosts *kh, evssh_kh_result *res, int status, const kh_entry *k) {
  res->status = status;
  if (k == NULL)
    return;
  snprintf(res->file, sizeof(res->file), "%s", kh->files[k->file]);
  res->line = k->line;
  if (status == EVSSH_KH_MISMATCH) {
    size_t len;
    const unsigned char *key = entry_key(k, &len);
    snprintf(res->expected_type, sizeof(res->expected_type), "%s", entry_type(k));
    if (evssh_fingerprint_sha256(key, len, res->expected_fp, sizeof(res->expected_fp)) != EVSSH_OK)
      snprintf(res->expected_fp, sizeof(res->expected_fp), "(unknown)");
  }
}

int evssh_knownhosts_lookup(const evssh_known_hosts *kh, const unsigned char *blob, size_t blob_len,
                            evssh_kh_result *res, char *err, size_t errlen) {
  if (kh == NULL || res == NULL || blob == NULL) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  memset(res, 0, sizeof(*res));
  char type[64];
  if (evssh_hostkey_blob_type(blob, blob_len, type, sizeof(type)) != EVSSH_OK) {
    evssh_errorf(err, errlen, "known_hosts: cannot parse the server's host key");
    return EVSSH_EINVAL;
  }
  /* a certificate is looked up as the key it certifies (ssh's fallback when
     no @cert-authority vouches for it); its CA may still be revoked */
  evssh_cert *cert = NULL;
  const unsigned char *key = blob;
  size_t key_len = blob_len;
  if (evssh_cert_is_cert_name(type)) {
    char cerr[200] = "";
    int rc = evssh_cert_parse(blob, blob_len, &cert, cerr, sizeof(cerr));
    if (rc != EVSSH_OK) {
      evssh_errorf(err, errlen, "known_hosts: server's host certificate: %s", rc == EVSSH_ENOMEM ? "out of memory" : cerr);
      return rc;
    }
    key = cert->key_blob;
    key_len = cert->key_blob_len;
  }
  snprintf(res->got_type, sizeof(res->got_type), "%s", cert ? cert->key_type : type);
  if (evssh_fingerprint_sha256(key, key_len, res->got_fp, sizeof(res->got_fp)) != EVSSH_OK) {
    evssh_cert_free(cert);
    evssh_errorf(err, errlen, "known_hosts: cannot fingerprint the server's host key");
    return EVSSH_ENOMEM;
  }
  const kh_entry *revoked = find_revoked(kh, key, key_len, cert ? cert->ca_blob : NULL, cert ? cert->ca_blob_len : 0);
  if (revoked) {
    evssh_cert_free(cert);
    fill_result(kh, res, EVSSH_KH_REVOKED, revoked);
    return EVSSH_OK;
  }
  finding name_ok = {0}, name_changed = {0}, other_type = {0}, addr_changed = {0};
  for (size_t i = 0; i < kh->n; i++) {
    const kh_entry *k = &kh->e[i];
    if (k->mark != MARK_NONE)
      continue;
    bool equal = same_key(k, key, key_len);
    bool same_type = strcmp(entry_type(k), res->got_type) == 0;
    if (!equal && same_type && !key_parses(k))
      continue;
    if (k->by_name) {
      if (equal)
        note(&name_ok, k);
      else if (same_type)
        note(&name_changed, k);
      else
        note(&other_type, k);
    }
    if (k->by_addr && !equal && same_type)
      note(&addr_changed, k);
  }
  if (name_ok.e) {
    if (addr_changed.e) {
      fill_result(kh, res, EVSSH_KH_MISMATCH, addr_changed.e);
      res->by_address = true;
    } else {
      fill_result(kh, res, EVSSH_KH_MATCH, name_ok.e);
    }
  } else if (name_changed.e) {
    fill_result(kh, res, EVSSH_KH_MISMATCH, name_changed.e);
  } else if (other_type.e) {
    fill_result(kh, res, EVSSH_KH_MISMATCH, other_type.e);
    res->other_type = true;
  } else {
    fill_result(kh, res, EVSSH_KH_UNKNOWN, NULL);
  }
  evssh_cert_free(cert); /* key pointed into it */
  return EVSSH_OK;
}

int evssh_knownhosts_check(const char *const *files, size_t nfiles, const char *host, int port,
                           const char *addr, const unsigned char *blob, size_t blob_len,
                           evssh_kh_result *res, char *err, size_t errlen) {
  if (res == NULL || blob == NULL || (files == NULL && nfiles)) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  evssh_known_hosts *kh = NULL;
  int rc = evssh_knownhosts_load(files, nfiles, host, port, addr, &kh, err, errlen);
  if (rc == EVSSH_OK)
    rc = evssh_knownhosts_lookup(kh, blob, blob_len, res, err, errlen);
  evssh_knownhosts_free(kh);
  return rc;
}

int evssh_knownhosts_loaded_types(const evssh_known_hosts *kh, char **types) {
  if (kh == NULL || types == NULL)
    return EVSSH_EINVAL;
  *types = NULL;
  char *list = NULL;
  size_t len = 0;
  for (size_t i = 0; i < kh->n; i++) {
    const kh_entry *k = &kh->e[i];
    if (k->mark != MARK_NONE || !k->by_name)
      continue;
    size_t tl = strlen(entry_type(k));
    bool listed = false;
    for (const char *p = list; p && *p && !listed;) {
      size_t il = strcspn(p, ",");
      listed = il == tl && strncmp(p, entry_type(k), tl) == 0;
      p += il;
      if (*p == ',')
        p++;
    }
    if (listed)
      continue;
    char *grown = realloc(list, len + tl + 2);
    if (grown == NULL) {
      free(list);
      return EVSSH_ENOMEM;
    }
    list = grown;
    if (len)
      list[len++] = ',';
    memcpy(list + len, entry_type(k), tl + 1);
    len += tl;
  }
  *types = list;
  return EVSSH_OK;
}

int evssh_knownhosts_types(const char *const *files, size_t nfiles, const char *host, int port,
                           char **types, char *err, size_t errlen) {
  if (types == NULL || (files == NULL && nfiles)) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  *types = NULL;
  evssh_known_hosts *kh = NULL;
  int rc = evssh_knownhosts_load(files, nfiles, host, port, NULL, &kh, err, errlen);
  if (rc == EVSSH_OK && (rc = evssh_knownhosts_loaded_types(kh, types)) == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
  evssh_knownhosts_free(kh);
  return rc;
}

bool evssh_knownhosts_has_cert_authority(const evssh_known_hosts *kh) {
  for (size_t i = 0; kh && i < kh->n; i++)
    if (kh->e[i].mark == MARK_CA && kh->e[i].by_name)
      return true;
  return false;
}

/* ------------------------------------------------- host certificates */

static void hostcert_refuse(const evssh_known_hosts *kh, const evssh_cert *c, evssh_hostcert_result *res,
                            int status, const char *why) {
  char desc[300];
  evssh_cert_describe(c, desc, sizeof(desc));
  res->status = status;
  res->fallback = status == EVSSH_HOSTCERT_UNKNOWN_CA || status == EVSSH_HOSTCERT_INVALID;
  evssh_errorf(res->message, sizeof(res->message), "host certificate for %.200s (%s %s, %.300s): %.300s", kh->name, c->type,
           res->key_fp, desc, why);
}

int evssh_knownhosts_check_hostcert(const evssh_known_hosts *kh, const unsigned char *blob, size_t blob_len,
                                    uint64_t now, evssh_hostcert_result *res, char *err, size_t errlen) {
  if (kh == NULL || blob == NULL || res == NULL) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  memset(res, 0, sizeof(*res));
  evssh_cert *c = NULL;
  char cerr[300] = "";
  int rc = evssh_cert_parse(blob, blob_len, &c, cerr, sizeof(cerr));
  if (rc != EVSSH_OK) {
    evssh_errorf(err, errlen, "host certificate for %.200s: %s", kh->name, rc == EVSSH_ENOMEM ? "out of memory" : cerr);
    return rc;
  }
  snprintf(res->key_type, sizeof(res->key_type), "%s", c->key_type);
  snprintf(res->key_id, sizeof(res->key_id), "%s", c->key_id);
  res->serial = c->serial;
  if (evssh_fingerprint_sha256(c->key_blob, c->key_blob_len, res->key_fp, sizeof(res->key_fp)) != EVSSH_OK ||
      evssh_fingerprint_sha256(c->ca_blob, c->ca_blob_len, res->ca_fp, sizeof(res->ca_fp)) != EVSSH_OK) {
    evssh_cert_free(c);
    evssh_errorf(err, errlen, "out of memory");
    return EVSSH_ENOMEM;
  }
  char why[400];
  const kh_entry *revoked = find_revoked(kh, c->key_blob, c->key_blob_len, c->ca_blob, c->ca_blob_len);
  if (revoked) {
    bool ca = same_key(revoked, c->ca_blob, c->ca_blob_len);
    snprintf(why, sizeof(why), "%s is revoked (%s%.300s line %d)", ca ? "the CA key" : "the certified key",
             revoked->mark == MARK_REVOKED_LIST ? "RevokedHostKeys " : "", kh->files[revoked->file], revoked->line);
    snprintf(res->file, sizeof(res->file), "%s", kh->files[revoked->file]);
    res->line = revoked->line;
    hostcert_refuse(kh, c, res, EVSSH_HOSTCERT_REVOKED, why);
    evssh_cert_free(c);
    return EVSSH_OK;
  }
  /* a certificate whose CA signature does not verify was forged or damaged
     on the way: ssh refuses it while decoding the key, so nothing falls
     back to the key it claims to certify. Revocation is looked at first
     (it needs no signature work and refuses as firmly): a revoked key or
     CA reads as revoked whatever the signature. */
  rc = evssh_cert_verify_signature(c, cerr, sizeof(cerr));
  if (rc == EVSSH_ENOMEM) {
    evssh_cert_free(c);
    evssh_errorf(err, errlen, "out of memory");
    return rc;
  }
  if (rc != EVSSH_OK) {
    res->check = EVSSH_CERT_SIGNATURE;
    hostcert_refuse(kh, c, res, EVSSH_HOSTCERT_INVALID, cerr);
    res->fallback = false;
    evssh_cert_free(c);
    return EVSSH_OK;
  }
  const kh_entry *ca = NULL;
  for (size_t i = 0; i < kh->n && ca == NULL; i++)
    if (kh->e[i].mark == MARK_CA && kh->e[i].by_name && same_key(&kh->e[i], c->ca_blob, c->ca_blob_len))
      ca = &kh->e[i];
  if (ca == NULL) {
    snprintf(why, sizeof(why), "no @cert-authority line for %.200s has the CA key %s", kh->name, res->ca_fp);
    hostcert_refuse(kh, c, res, EVSSH_HOSTCERT_UNKNOWN_CA, why);
    evssh_cert_free(c);
    return EVSSH_OK;
  }
  snprintf(res->file, sizeof(res->file), "%s", kh->files[ca->file]);
  res->line = ca->line;
  evssh_cert_check_id failed = EVSSH_CERT_OK;
  rc = evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, kh->host, now, &failed, cerr, sizeof(cerr));
  if (rc == EVSSH_ENOMEM) {
    evssh_cert_free(c);
    evssh_errorf(err, errlen, "out of memory");
    return rc;
  }
  if (rc != EVSSH_OK) {
    res->check = failed;
    hostcert_refuse(kh, c, res, EVSSH_HOSTCERT_INVALID, cerr);
  } else {
    res->status = EVSSH_HOSTCERT_ACCEPT;
    snprintf(res->message, sizeof(res->message), "host certificate for %.200s accepted: %s %s signed by CA %s (%.200s line %d)",
             kh->name, c->type, res->key_fp, res->ca_fp, res->file, res->line);
  }
  evssh_cert_free(c);
  return EVSSH_OK;
}

/* ------------------------------------------------------------- writing */

static int ensure_dir_of(const char *file, char *err, size_t errlen) {
  char *copy = strdup(file);
  if (copy == NULL)
    return EVSSH_ENOMEM;
  const char *dir = dirname(copy);
  struct stat st;
  int rc = EVSSH_OK;
  if (stat(dir, &st) != 0) {
    if (errno != ENOENT || mkdir(dir, 0700) != 0) {
      evssh_errorf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
      rc = EVSSH_EINVAL;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    evssh_errorf(err, errlen, "%s is not a directory", dir);
    rc = EVSSH_EINVAL;
  }
  free(copy);
  return rc;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* What a host name needs to be written so that a lookup of that very name
   finds it again (issue 15 item 9). 0: write as given; 1: it must be
   hashed; <0: it cannot be written at all. In a plain host field '*' and
   '?' are wildcards, ',' separates patterns, whitespace ends the field and
   a leading '!' negates, '@' reads as a marker, '#' as a comment and "|"
   as a hashed entry: written plain, such a name would match other hosts or
   none. A hashed field is compared by HMAC with the exact name, by us and
   by ssh, so hashing encodes all of them. Control characters cannot be in a
   host name, and '[' / ']' cannot be encoded: "[a]:1" on port 22 is the
   same text as host a on port 1, hashed or not. */
static int name_encoding(const char *host) {
  if (host[0] == '\0')
    return -1;
  for (const unsigned char *p = (const unsigned char *)host; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '[' || *p == ']')
      return -1;
  return strchr("!@#|", host[0]) != NULL || strpbrk(host, "*?, ") != NULL ? 1 : 0;
}

static int write_entry(const char *file, const char *name, bool hashed, const char *type,
                       const unsigned char *blob, size_t blob_len, char *err, size_t errlen);

int evssh_knownhosts_add(const char *file, const char *host, int port,
                         const unsigned char *blob, size_t blob_len, bool hashed,
                         char *err, size_t errlen) {
  if (file == NULL || host == NULL || blob == NULL || blob_len == 0) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  int enc = name_encoding(host);
  if (enc < 0) {
    evssh_errorf(err, errlen,
                 "known_hosts: host name \"%.200s\" cannot be recorded (empty, or it holds a control character "
                 "or a bracket)",
                 host);
    return EVSSH_EINVAL;
  }
  if (enc > 0)
    hashed = true;
  char name[1100], type[64];
  if (evssh_knownhosts_name(host, port, name, sizeof(name)) != EVSSH_OK ||
      evssh_hostkey_blob_type(blob, blob_len, type, sizeof(type)) != EVSSH_OK) {
    evssh_errorf(err, errlen, "known_hosts: bad host, port or key");
    return EVSSH_EINVAL;
  }
  /* a host certificate is recorded as the key it certifies, as ssh records
     it once it has fallen back from the certificate: a certificate expires,
     the key stays */
  evssh_cert *cert = NULL;
  if (evssh_cert_is_cert_name(type)) {
    char cerr[200] = "";
    int crc = evssh_cert_parse(blob, blob_len, &cert, cerr, sizeof(cerr));
    if (crc != EVSSH_OK) {
      evssh_errorf(err, errlen, "known_hosts: %s", crc == EVSSH_ENOMEM ? "out of memory" : cerr);
      return crc;
    }
    blob = cert->key_blob;
    blob_len = cert->key_blob_len;
    snprintf(type, sizeof(type), "%s", cert->key_type);
  }
  int rc = write_entry(file, name, hashed, type, blob, blob_len, err, errlen);
  evssh_cert_free(cert);
  return rc;
}

static int write_entry(const char *file, const char *name, bool hashed, const char *type,
                       const unsigned char *blob, size_t blob_len, char *err, size_t errlen) {
  char hostfield[160];
  const char *field = name;
  if (hashed) {
    /* lower case, as ssh hashes (and as our lookup tries) */
    char lower[1100];
    ascii_lower(name, lower, sizeof(lower));
    unsigned char salt[SHA1_LEN], mac[SHA1_LEN];
    char salt_b64[64], mac_b64[64];
    if (RAND_bytes(salt, sizeof(salt)) != 1 || hmac_sha1(salt, sizeof(salt), lower, mac) != EVSSH_OK ||
        evssh_base64_encode(salt, sizeof(salt), true, salt_b64, sizeof(salt_b64)) != EVSSH_OK ||
        evssh_base64_encode(mac, sizeof(mac), true, mac_b64, sizeof(mac_b64)) != EVSSH_OK) {
      evssh_errorf(err, errlen, "known_hosts: cannot hash the host name");
      return EVSSH_ENOMEM;
    }
    snprintf(hostfield, sizeof(hostfield), HASH_MAGIC "%s|%s", salt_b64, mac_b64);
    field = hostfield;
  }
  size_t b64cap = (blob_len + 2) / 3 * 4 + 1;
  size_t linecap = strlen(field) + strlen(type) + b64cap + 8;
  char *line = malloc(linecap);
  char *b64 = malloc(b64cap);
  if (line == NULL || b64 == NULL) {
    free(line);
    free(b64);
    evssh_errorf(err, errlen, "out of memory");
    return EVSSH_ENOMEM;
  }
  int rc = evssh_base64_encode(blob, blob_len, true, b64, b64cap);
  if (rc == EVSSH_OK)
    snprintf(line, linecap, "%s %s %s\n", field, type, b64);
  free(b64);
  if (rc != EVSSH_OK) {
    free(line);
    evssh_errorf(err, errlen, "known_hosts: cannot encode the key");
    return rc;
  }
  if ((rc = ensure_dir_of(file, err, errlen)) != EVSSH_OK) {
    free(line);
    return rc;
  }
  int fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    evssh_errorf(err, errlen, "cannot open %s: %s", file, strerror(errno));
    free(line);
    return EVSSH_EINVAL;
  }
  /* a file whose last line lacks its newline would swallow ours */
  struct stat st;
  char last = '\n';
  if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
    last = '\n';
  int w = 0;
  if (last != '\n')
    w = write_all(fd, "\n", 1);
  if (w == 0)
    w = write_all(fd, line, strlen(line));
  int saved = errno;
  free(line);
  if (close(fd) != 0 && w == 0) {
    w = -1;
    saved = errno;
  }
  if (w != 0) {
    evssh_errorf(err, errlen, "cannot write %s: %s", file, strerror(saved));
    return EVSSH_EINVAL;
  }
  return EVSSH_OK;
}
