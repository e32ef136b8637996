/* trust.c owns the host-key policy of a session, as OpenSSH's ssh applies
 * it. The server's key is looked up in UserKnownHostsFile and
 * GlobalKnownHostsFile under the host's name ("[host]:port" off port 22), or
 * under HostKeyAlias alone when one is set (ssh adds no port to an alias);
 * entries for the server's address are not consulted (ssh's default
 * CheckHostIP=no). RevokedHostKeys (a plain key list) and @revoked lines
 * refuse a key, or a certificate's key or CA, in every mode.
 *
 * A host certificate is accepted when a @cert-authority line for the name
 * holds its CA and it passes every check (knownhosts.c / cert.c). When the
 * CA is unknown or a check fails, ssh drops the certificate and checks the
 * key it certifies as a plain host key; so does this file, except for a CA
 * signature that does not verify (ssh refuses such a key while decoding it)
 * and for revocation. StrictHostKeyChecking then decides what an unknown
 * key means (yes: refuse, accept-new: record it in the first
 * UserKnownHostsFile, no: accept it unrecorded); a certificate is never
 * recorded, only the plain key it certifies after a fall-back. A key that
 * differs from a known one, or a revoked one, is refused in every mode
 * (stricter than ssh, which lets StrictHostKeyChecking=no through). Then
 * the application's own check runs, and accept-new records the key only
 * once that check agreed too. Unknown is EVSSH_EHOSTKEY; changed, revoked or
 * forged is EVSSH_EHOSTKEY_CHANGED, so a program tells "trust this key?"
 * from a possible attack by the code.
 *
 * It also orders HostKeyAlgorithms as ssh does: the certificate algorithms
 * first when a @cert-authority line covers the host, then the types
 * known_hosts already has for it. */
#include "trust.h"

#include "cache.h"
#include "hostkey.h"
#include "knownhosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* user files first, then the global ones; *nuser of them are the user's.
   accept-new writes the first user file only, as ssh does: the global
   files are the administrator's. */
static size_t known_files(const evssh_options *o, const char **files, size_t max, size_t *nuser) {
  size_t n = 0;
  for (size_t i = 0; i < o->n_user_known_hosts && n < max; i++)
    if (strcmp(o->user_known_hosts[i], "none") != 0) files[n++] = o->user_known_hosts[i];
  if (nuser) *nuser = n;
  for (size_t i = 0; i < o->n_global_known_hosts && n < max; i++)
    if (strcmp(o->global_known_hosts[i], "none") != 0) files[n++] = o->global_known_hosts[i];
  return n;
}

/* The name known_hosts is searched for, written under, and that host
   certificates must list: HostKeyAlias as it is (port 22 makes
   evssh_knownhosts_name add nothing), else the host name and port. */
static void lookup_name(const evssh_options *o, const char **host, int *port) {
  *host = o->host_key_alias ? o->host_key_alias : o->hostname;
  *port = o->host_key_alias ? 22 : o->port;
}

/* the set is the caller's own (a copy of the session cache's parsed one) */
static int load_set(const trust_params *p, const char **files, size_t nfiles, evssh_known_hosts **kh, char *err,
                    size_t errlen) {
  const char *host;
  int port;
  lookup_name(p->opt, &host, &port);
  return cache_knownhosts_load(p->cache, files, nfiles, host, port, NULL, kh, err, errlen);
}

/* alg is one of the comma-separated types (as evssh_hostkey_alg_matches
   pairs an algorithm with a key type); no item is longer than a type name */
static bool type_known(const char *alg, const char *types) {
  bool known = false;
  for (const char *t = types; t && *t && !known;) {
    size_t n = strcspn(t, ",");
    char one[64];
    size_t m = n < sizeof one ? n : sizeof one - 1;
    memcpy(one, t, m);
    one[m] = 0;
    known = evssh_hostkey_alg_matches(alg, one);
    t += n;
    if (*t == ',') t++;
  }
  return known;
}

/* the lists are sized for the whole of algs, so an item always fits */
static void append(char *list, const char *item, size_t len) {
  size_t at = strlen(list);
  if (at) list[at++] = ',';
  memcpy(list + at, item, len);
  list[at + len] = 0;
}

int trust_order_hostkey_algs(const trust_params *p, const char *algs, char **out) {
  *out = NULL;
  const char *files[16];
  size_t n = known_files(p->opt, files, 16, NULL);
  const char *host;
  int port;
  lookup_name(p->opt, &host, &port);
  char *types = NULL;
  bool ca = false;
  char err[256];
  /* read on the cache's own set: ordering needs no copy of it */
  int rc = cache_knownhosts_order_info(p->cache, files, n, host, port, &types, &ca, err, sizeof err);
  if (rc) {
    free(types);
    return rc == EVSSH_ENOMEM ? rc : EVSSH_OK;   /* unreadable files: the order stays */
  }
  /* first: the certificate algorithms when a CA may vouch for the host
     (ssh's order_hostkeyalgs), and the types known for it; then the other
     plain types; certificates without a CA last: ssh would only drop the
     certificate and check its key as a plain one, so asking for the plain
     key directly gives the same verdict on the key that is checked */
  size_t cap = strlen(algs) + 2;
  char *first = calloc(1, cap), *middle = calloc(1, cap), *last = calloc(1, cap);
  if (!first || !middle || !last) {
    free(first); free(middle); free(last); free(types);
    return EVSSH_ENOMEM;
  }
  for (const char *a = algs; *a;) {
    size_t len = strcspn(a, ",");
    char alg[128];
    size_t m = len < sizeof alg ? len : sizeof alg - 1;
    memcpy(alg, a, m);
    alg[m] = 0;
    bool cert = evssh_cert_is_cert_name(alg);
    char *to = (cert && ca) || (!cert && type_known(alg, types)) ? first : cert ? last : middle;
    if (len) append(to, a, len);
    a += len;
    if (*a == ',') a++;
  }
  free(types);
  if (*middle) append(first, middle, strlen(middle));
  if (*last) append(first, last, strlen(last));
  free(middle);
  free(last);
  if (strcmp(first, algs) == 0) {
    free(first);   /* nothing to change */
    return EVSSH_OK;
  }
  *out = first;
  return EVSSH_OK;
}

static int refuse(char **err, int code, char *msg) {
  *err = msg;
  return code;
}

/* "a, b, c" of the files looked in, for the unknown-key message */
static char *file_list(const char **files, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(files[i]) + 2;
  char *s = malloc(len);
  if (!s) return NULL;
  s[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(s, ", ");
    strcat(s, files[i]);
  }
  return s;
}

typedef struct check_ctx {
  const trust_params *p;
  const char **files;
  size_t nfiles, nuser;
  char name[1100];          /* as known_hosts names it: "host", "[host]:port" or the alias */
  const char *cert_note;    /* why a certificate was set aside for its plain key, or NULL */
} check_ctx;

/* A refusal message, after the certificate's own story when there is one. */
static int refuse_key(const check_ctx *c, char **err, int code, char *msg) {
  if (!c->cert_note || !msg) return refuse(err, code, msg);
  char *whole = base_asprintf("%s; as ssh does, its key was then checked as a plain host key: %s", c->cert_note, msg);
  free(msg);
  return refuse(err, code, whole);
}

static int application_check(const check_ctx *c, const char *type, const char *fp, char **err) {
  const trust_params *p = c->p;
  if (p->ev && p->ev->check && p->ev->check(p->ctx, type, fp) != 0)
    return refuse(err, EVSSH_EHOSTKEY,
                  base_asprintf("host key for %s (%s %s) refused by the application's check", c->name, type, fp));
  return EVSSH_OK;
}

/* The plain known_hosts decision for blob (a certificate is looked up as
   the key it certifies), under StrictHostKeyChecking. */
static int check_plain(check_ctx *c, const evssh_known_hosts *kh, const unsigned char *blob, size_t len,
                       char **err) {
  const evssh_options *o = c->p->opt;
  const char *name = c->name;
  evssh_kh_result res;
  char kerr[256] = "";
  int rc = evssh_knownhosts_lookup(kh, blob, len, &res, kerr, sizeof kerr);
  if (rc)
    return refuse(err, rc == EVSSH_ENOMEM ? rc : EVSSH_EHOSTKEY,
                  base_asprintf("host key for %s: %s", name, kerr[0] ? kerr : evssh_strerror(rc)));
  bool record = false;
  switch (res.status) {
  case EVSSH_KH_MATCH:
    diag_log(c->p->diag, EVSSH_LOG_INFO, "host key for %s found in %s line %d (%s %s)", name, res.file, res.line,
             res.got_type, res.got_fp);
    break;
  case EVSSH_KH_REVOKED: {
    bool listed = o->revoked_host_keys && strcmp(res.file, o->revoked_host_keys) == 0;
    return refuse_key(c, err, EVSSH_EHOSTKEY_CHANGED,
                      base_asprintf("host key for %s is revoked (%s%s line %d): %s %s", name,
                                    listed ? "RevokedHostKeys " : "", res.file, res.line, res.got_type, res.got_fp));
  }
  case EVSSH_KH_MISMATCH:
    if (res.other_type)
      return refuse_key(c, err, EVSSH_EHOSTKEY_CHANGED,
                        base_asprintf("host key for %s (%s %s) is of a type known_hosts does not have for it, only "
                                      "another type: %s line %d has %s %s",
                                      name, res.got_type, res.got_fp, res.file, res.line, res.expected_type,
                                      res.expected_fp));
    return refuse_key(c, err, EVSSH_EHOSTKEY_CHANGED,
                      base_asprintf("host key for %s does not match %s line %d: expected %s, got %s; if the key "
                                    "really changed, remove the old one with ssh-keygen -R '%s'",
                                    name, res.file, res.line, res.expected_fp, res.got_fp, name));
  case EVSSH_KH_UNKNOWN:
  default:
    if (o->strict == STRICT_NO) {
      diag_log(c->p->diag, EVSSH_LOG_INFO, "host key for %s is unknown; accepted (StrictHostKeyChecking=no): %s %s",
               name, res.got_type, res.got_fp);
      break;
    }
    if (o->strict == STRICT_ACCEPT_NEW) {
      if (c->nuser == 0)
        return refuse_key(c, err, EVSSH_EHOSTKEY,
                          base_asprintf("host key for %s (%s %s) is unknown and there is no UserKnownHostsFile to "
                                        "add it to (StrictHostKeyChecking=accept-new)",
                                        name, res.got_type, res.got_fp));
      record = true;   /* once the application agrees too */
      break;
    }
    {
      /* name the files looked in: a typo in UserKnownHostsFile shows here */
      char *where = c->nfiles ? file_list(c->files, c->nfiles) : NULL;
      bool ca_only = !c->cert_note && evssh_knownhosts_has_cert_authority(kh);
      char *msg = base_asprintf("host key for %s is not known (%s %s) in %s%s: add it to known_hosts or set "
                                "StrictHostKeyChecking=accept-new",
                                name, res.got_type, res.got_fp,
                                where ? where : "any file (no known_hosts files configured)",
                                ca_only ? " (a @cert-authority line covers the host, but the server sent a plain "
                                          "key, not a certificate)"
                                        : "");
      free(where);
      return refuse_key(c, err, EVSSH_EHOSTKEY, msg);
    }
  }
  if ((rc = application_check(c, res.got_type, res.got_fp, err)) != EVSSH_OK) return rc;
  if (record) {
    const char *host;
    int port;
    lookup_name(o, &host, &port);
    char aerr[256] = "";
    /* a certificate blob is written as the key it certifies */
    if (evssh_knownhosts_add(c->files[0], host, port, blob, len, o->hash_known_hosts, aerr, sizeof aerr) !=
        EVSSH_OK)
      return refuse(err, EVSSH_EHOSTKEY, base_asprintf("cannot record host key for %s in %s: %s", name, c->files[0], aerr));
    diag_log(c->p->diag, EVSSH_LOG_INFO, "permanently added %s (%s %s) to %s", name, res.got_type, res.got_fp,
             c->files[0]);
  }
  return EVSSH_OK;
}

/* A host certificate: accepted, refused outright, or set aside (cert_note)
   for the plain check of its key. *done says whether the decision is made. */
static int check_cert(check_ctx *c, const evssh_known_hosts *kh, const unsigned char *blob, size_t len,
                      char **note, bool *done, char **err) {
  evssh_hostcert_result hc;
  char kerr[300] = "";
  *done = true;
  int rc = evssh_knownhosts_check_hostcert(kh, blob, len, (uint64_t)time(NULL), &hc, kerr, sizeof kerr);
  if (rc == EVSSH_ENOMEM) return refuse(err, rc, base_asprintf("host key for %s: out of memory", c->name));
  if (rc)
    /* ssh cannot decode it either, and gives up there */
    return refuse(err, EVSSH_EHOSTKEY_CHANGED, base_asprintf("%s", kerr));
  switch (hc.status) {
  case EVSSH_HOSTCERT_ACCEPT: {
    diag_log(c->p->diag, EVSSH_LOG_INFO, "%s", hc.message);
    char type[64] = "";
    evssh_hostkey_blob_type(blob, len, type, sizeof type);
    return application_check(c, type, hc.key_fp, err);
  }
  case EVSSH_HOSTCERT_REVOKED:
    return refuse(err, EVSSH_EHOSTKEY_CHANGED, base_asprintf("%s", hc.message));
  default:
    if (!hc.fallback)
      return refuse(err, EVSSH_EHOSTKEY_CHANGED,
                    base_asprintf("%s; refused: a certificate whose CA signature does not verify is forged or "
                                  "damaged, and ssh does not fall back to its key",
                                  hc.message));
    diag_log(c->p->diag, EVSSH_LOG_INFO, "%s; checking its key as a plain host key, as ssh does", hc.message);
    if (!(*note = strdup(hc.message))) return refuse(err, EVSSH_ENOMEM, NULL);
    *done = false;
    return EVSSH_OK;
  }
}

int trust_check_hostkey(const trust_params *p, const unsigned char *blob, size_t len, char **err) {
  const evssh_options *o = p->opt;
  const char *files[16];
  check_ctx c = {.p = p, .files = files};
  c.nfiles = known_files(o, files, 16, &c.nuser);
  *err = NULL;
  const char *host;
  int port;
  lookup_name(o, &host, &port);
  if (evssh_knownhosts_name(host, port, c.name, sizeof c.name) != EVSSH_OK)
    snprintf(c.name, sizeof c.name, "%s", host);
  evssh_known_hosts *kh = NULL;
  char kerr[400] = "";
  int rc = load_set(p, files, c.nfiles, &kh, kerr, sizeof kerr);
  if (rc)
    return refuse(err, rc == EVSSH_ENOMEM ? rc : EVSSH_EHOSTKEY,
                  base_asprintf("host key for %s: %s", c.name, kerr[0] ? kerr : evssh_strerror(rc)));
  if (o->revoked_host_keys && (rc = evssh_knownhosts_load_revoked(kh, o->revoked_host_keys, kerr, sizeof kerr))) {
    /* a list that cannot be read must not read as "nothing revoked": ssh
       refuses every host key then */
    evssh_knownhosts_free(kh);
    return refuse(err, rc == EVSSH_ENOMEM ? rc : EVSSH_EHOSTKEY,
                  base_asprintf("host key for %s cannot be checked against the revoked keys: %s", c.name, kerr));
  }
  char type[64] = "";
  evssh_hostkey_blob_type(blob, len, type, sizeof type);
  char *note = NULL;
  bool done = false;
  if (evssh_cert_is_cert_name(type)) rc = check_cert(&c, kh, blob, len, &note, &done, err);
  if (!done) {
    c.cert_note = note;
    rc = check_plain(&c, kh, blob, len, err);
  }
  free(note);
  evssh_knownhosts_free(kh);
  return rc;
}
