/* known_hosts files in OpenSSH's format: reads them line by line (plain and
 * hashed host patterns, [host]:port names, wildcards and negation, @revoked
 * and @cert-authority markers), decides what they say about one server key
 * for a name and an address, lists the key types known for a name, and
 * appends new entries (plain or hashed). Malformed lines are skipped the way
 * ssh skips them; nothing here decides policy. */
#include "knownhosts.h"
#include "errors.h"
#include "config.h"
#include "hostkey.h"

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

/* |1|salt|hash: true when HMAC-SHA1(salt, name) == hash */
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
  if (hmac_sha1(salt, salt_len, name, mine) != EVSSH_OK)
    return false;
  return CRYPTO_memcmp(mine, hash, SHA1_LEN) == 0;
}

static bool host_field_matches(const char *field, const char *name) {
  if (name == NULL)
    return false;
  if (strncmp(field, HASH_MAGIC, strlen(HASH_MAGIC)) == 0)
    return hashed_match(field, name);
  return evssh_config_match_list(name, field, true) == 1;
}

typedef enum { MARK_NONE, MARK_REVOKED, MARK_CA } marker;

typedef struct kh_line {
  marker mark;
  char *hosts;           /* points into the line buffer */
  char type[64];         /* from the blob */
  unsigned char *blob;   /* malloc'd */
  size_t blob_len;
} kh_line;

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

/* 1: parsed, 0: skip (comment, blank, malformed), <0: out of memory */
static int parse_line(char *line, kh_line *out) {
  memset(out, 0, sizeof(*out));
  line[strcspn(line, "\r\n")] = '\0';
  char *p = line;
  char *f = next_field(&p);
  if (f == NULL || f[0] == '#')
    return 0;
  if (f[0] == '@') {
    if (strcmp(f, "@revoked") == 0)
      out->mark = MARK_REVOKED;
    else if (strcmp(f, "@cert-authority") == 0)
      out->mark = MARK_CA;
    else
      return 0;
    if ((f = next_field(&p)) == NULL)
      return 0;
  }
  out->hosts = f;
  char *type = next_field(&p);
  char *b64 = next_field(&p);
  if (type == NULL || b64 == NULL)
    return 0;
  size_t cap = strlen(b64) / 4 * 3 + 3;
  out->blob = malloc(cap);
  if (out->blob == NULL)
    return EVSSH_ENOMEM;
  if (evssh_base64_decode(b64, strlen(b64), out->blob, cap, &out->blob_len) != EVSSH_OK ||
      evssh_hostkey_blob_type(out->blob, out->blob_len, out->type, sizeof(out->type)) != EVSSH_OK ||
      strcmp(out->type, type) != 0) {
    free(out->blob);
    out->blob = NULL;
    return 0;
  }
  return 1;
}

typedef struct finding {
  bool found;
  const char *file;
  int line;
  char type[64];
  char fp[64];
} finding;

static void note(finding *f, const char *file, int line, const kh_line *kl) {
  if (f->found)
    return;
  f->found = true;
  f->file = file;
  f->line = line;
  snprintf(f->type, sizeof(f->type), "%s", kl->type);
  if (evssh_fingerprint_sha256(kl->blob, kl->blob_len, f->fp, sizeof(f->fp)) != EVSSH_OK)
    snprintf(f->fp, sizeof(f->fp), "(unknown)");
}

/* Calls visit for every well-formed line of every readable file. */
typedef int (*line_visitor)(const char *file, int lineno, const kh_line *kl, void *ud);

static int scan_files(const char *const *files, size_t nfiles, line_visitor visit, void *ud) {
  char *buf = NULL;
  size_t cap = 0;
  int rc = EVSSH_OK;
  for (size_t i = 0; i < nfiles && rc == EVSSH_OK; i++) {
    if (files[i] == NULL)
      continue;
    FILE *fp = fopen(files[i], "r");
    if (fp == NULL)
      continue;   /* missing or unreadable: ssh skips it too */
    int lineno = 0;
    while (rc == EVSSH_OK && getline(&buf, &cap, fp) >= 0) {
      lineno++;
      kh_line kl;
      int r = parse_line(buf, &kl);
      if (r < 0)
        rc = r;
      else if (r > 0)
        rc = visit(files[i], lineno, &kl, ud);
      free(kl.blob);
    }
    fclose(fp);
  }
  free(buf);
  return rc;
}

typedef struct check_state {
  const char *name, *addrname;
  const unsigned char *blob;
  size_t blob_len;
  const char *type;
  finding revoked, name_ok, name_changed, other_type, addr_changed;
} check_state;

/* A key that does not parse (a cut blob, bad curve point) is a malformed
   line. Parsing is not cheap (an EC point check costs more than the rest of
   a connection's client work), so it is done only where the verdict needs
   it: a line whose key equals the server's needs none (the transport parsed
   that key and verified its signature), and a line of another key type
   decides nothing that its well-formed blob does not already tell. */
static bool key_parses(const kh_line *kl) {
  EVP_PKEY *pk = NULL;
  if (evssh_pubkey_from_blob(kl->blob, kl->blob_len, &pk) != EVSSH_OK)
    return false;
  EVP_PKEY_free(pk);
  return true;
}

static bool same_key(const kh_line *kl, const unsigned char *blob, size_t len) {
  return kl->blob_len == len && CRYPTO_memcmp(kl->blob, blob, len) == 0;
}

static int check_visit(const char *file, int lineno, const kh_line *kl, void *ud) {
  check_state *st = ud;
  if (kl->mark == MARK_CA)
    return EVSSH_OK;
  bool by_name = host_field_matches(kl->hosts, st->name);
  bool by_addr = st->addrname && host_field_matches(kl->hosts, st->addrname);
  if (!by_name && !by_addr)
    return EVSSH_OK;
  bool equal = same_key(kl, st->blob, st->blob_len);
  if (kl->mark == MARK_REVOKED) {
    if (equal)
      note(&st->revoked, file, lineno, kl);
    return EVSSH_OK;
  }
  bool same_type = strcmp(kl->type, st->type) == 0;
  if (!equal && same_type && !key_parses(kl))
    return EVSSH_OK;
  if (by_name) {
    if (equal)
      note(&st->name_ok, file, lineno, kl);
    else if (same_type)
      note(&st->name_changed, file, lineno, kl);
    else
      note(&st->other_type, file, lineno, kl);
  }
  if (by_addr && !equal && same_type)
    note(&st->addr_changed, file, lineno, kl);
  return EVSSH_OK;
}

static void fill_result(evssh_kh_result *res, int status, const finding *f) {
  res->status = status;
  if (f == NULL)
    return;
  snprintf(res->file, sizeof(res->file), "%s", f->file);
  res->line = f->line;
  if (status == EVSSH_KH_MISMATCH) {
    snprintf(res->expected_fp, sizeof(res->expected_fp), "%s", f->fp);
    snprintf(res->expected_type, sizeof(res->expected_type), "%s", f->type);
  }
}

int evssh_knownhosts_check(const char *const *files, size_t nfiles, const char *host, int port,
                           const char *addr, const unsigned char *blob, size_t blob_len,
                           evssh_kh_result *res, char *err, size_t errlen) {
  if (res == NULL || blob == NULL || (files == NULL && nfiles)) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  memset(res, 0, sizeof(*res));
  char name[1100], addrname[300];
  if (evssh_knownhosts_name(host, port, name, sizeof(name)) != EVSSH_OK ||
      (addr && evssh_knownhosts_name(addr, port, addrname, sizeof(addrname)) != EVSSH_OK)) {
    evssh_errorf(err, errlen, "known_hosts: bad host name or port");
    return EVSSH_EINVAL;
  }
  check_state st;
  memset(&st, 0, sizeof(st));
  st.name = name;
  /* the address adds nothing when the host was given as that address */
  st.addrname = addr && strcasecmp(addrname, name) != 0 ? addrname : NULL;
  st.blob = blob;
  st.blob_len = blob_len;
  if (evssh_hostkey_blob_type(blob, blob_len, res->got_type, sizeof(res->got_type)) != EVSSH_OK ||
      evssh_fingerprint_sha256(blob, blob_len, res->got_fp, sizeof(res->got_fp)) != EVSSH_OK) {
    evssh_errorf(err, errlen, "known_hosts: cannot parse the server's host key");
    return EVSSH_EINVAL;
  }
  st.type = res->got_type;
  int rc = scan_files(files, nfiles, check_visit, &st);
  if (rc != EVSSH_OK) {
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
    return rc;
  }
  if (st.revoked.found) {
    fill_result(res, EVSSH_KH_REVOKED, &st.revoked);
  } else if (st.name_ok.found) {
    if (st.addr_changed.found) {
      fill_result(res, EVSSH_KH_MISMATCH, &st.addr_changed);
      res->by_address = true;
    } else {
      fill_result(res, EVSSH_KH_MATCH, &st.name_ok);
    }
  } else if (st.name_changed.found) {
    fill_result(res, EVSSH_KH_MISMATCH, &st.name_changed);
  } else if (st.other_type.found) {
    fill_result(res, EVSSH_KH_MISMATCH, &st.other_type);
    res->other_type = true;
  } else {
    fill_result(res, EVSSH_KH_UNKNOWN, NULL);
  }
  return EVSSH_OK;
}

typedef struct types_state {
  const char *name;
  char *list;     /* comma-separated, malloc'd */
  size_t len;
} types_state;

static int types_visit(const char *file, int lineno, const kh_line *kl, void *ud) {
  types_state *st = ud;
  if (kl->mark != MARK_NONE || !host_field_matches(kl->hosts, st->name))
    return EVSSH_OK;
  if (st->list) {
    /* already listed? compare whole comma-separated items */
    const char *p = st->list;
    size_t tl = strlen(kl->type);
    while (p && *p) {
      const char *comma = strchr(p, ',');
      size_t il = comma ? (size_t)(comma - p) : strlen(p);
      if (il == tl && strncmp(p, kl->type, tl) == 0)
        return EVSSH_OK;
      p = comma ? comma + 1 : NULL;
    }
  }
  size_t tl = strlen(kl->type);
  char *n = realloc(st->list, st->len + tl + 2);
  if (n == NULL)
    return EVSSH_ENOMEM;
  st->list = n;
  if (st->len)
    st->list[st->len++] = ',';
  memcpy(st->list + st->len, kl->type, tl + 1);
  st->len += tl;
  return EVSSH_OK;
}

int evssh_knownhosts_types(const char *const *files, size_t nfiles, const char *host, int port,
                           char **types, char *err, size_t errlen) {
  if (types == NULL || (files == NULL && nfiles)) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  *types = NULL;
  char name[1100];
  if (evssh_knownhosts_name(host, port, name, sizeof(name)) != EVSSH_OK) {
    evssh_errorf(err, errlen, "known_hosts: bad host name or port");
    return EVSSH_EINVAL;
  }
  types_state st = {name, NULL, 0};
  int rc = scan_files(files, nfiles, types_visit, &st);
  if (rc != EVSSH_OK) {
    free(st.list);
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
    return rc;
  }
  *types = st.list;
  return EVSSH_OK;
}

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

int evssh_knownhosts_add(const char *file, const char *host, int port,
                         const unsigned char *blob, size_t blob_len, bool hashed,
                         char *err, size_t errlen) {
  if (file == NULL || host == NULL || blob == NULL || blob_len == 0) {
    evssh_errorf(err, errlen, "known_hosts: missing argument");
    return EVSSH_EINVAL;
  }
  for (const char *p = host; *p; p++) {
    if ((unsigned char)*p <= ' ' || *p == ',' || *p == '#' || *p == 0x7f) {
      evssh_errorf(err, errlen, "known_hosts: host name \"%s\" cannot be written", host);
      return EVSSH_EINVAL;
    }
  }
  char name[1100], type[64];
  if (evssh_knownhosts_name(host, port, name, sizeof(name)) != EVSSH_OK ||
      evssh_hostkey_blob_type(blob, blob_len, type, sizeof(type)) != EVSSH_OK) {
    evssh_errorf(err, errlen, "known_hosts: bad host, port or key");
    return EVSSH_EINVAL;
  }
  char hostfield[160];
  const char *field = name;
  if (hashed) {
    unsigned char salt[SHA1_LEN], mac[SHA1_LEN];
    char salt_b64[64], mac_b64[64];
    if (RAND_bytes(salt, sizeof(salt)) != 1 || hmac_sha1(salt, sizeof(salt), name, mac) != EVSSH_OK ||
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
