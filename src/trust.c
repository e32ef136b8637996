/* trust.c owns the host-key policy of a session: the server's key is looked
 * up in UserKnownHostsFile and GlobalKnownHostsFile by name (entries for
 * the server's address are not consulted: ssh's default CheckHostIP=no,
 * so a stale address entry fails nothing that ssh would let through);
 * StrictHostKeyChecking decides what an unknown key means (yes: refuse,
 * accept-new: record it in the first UserKnownHostsFile, no: accept it
 * unrecorded); a key that differs from a known one, or one marked @revoked,
 * is refused in every mode; then the application's own check runs, and
 * accept-new records the key only once that check agreed too. An unknown key
 * is EVSSH_EHOSTKEY; a changed or revoked one EVSSH_EHOSTKEY_CHANGED, so a
 * program tells "trust this key?" from a possible attack by the code. It
 * also orders HostKeyAlgorithms so the server is asked for a key type we
 * already know, as ssh does. */
#include "trust.h"

#include "cache.h"
#include "hostkey.h"
#include "knownhosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int trust_order_hostkey_algs(const trust_params *p, const char *algs, char **out) {
  *out = NULL;
  const char *files[16];
  size_t n = known_files(p->opt, files, 16, NULL);
  char *types = NULL, err[256];
  if (cache_knownhosts_types(p->cache, files, n, p->opt->hostname, p->opt->port, &types, err, sizeof err) != EVSSH_OK ||
      !types)
    return EVSSH_OK;
  size_t cap = strlen(algs) + 2;
  char *first = calloc(1, cap), *rest = calloc(1, cap), *copy = strdup(algs);
  if (!first || !rest || !copy) {
    free(first); free(rest); free(copy); free(types);
    return EVSSH_ENOMEM;
  }
  for (char *save = NULL, *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
    bool known = false;
    char *tcopy = strdup(types);
    for (char *s2 = NULL, *t = tcopy ? strtok_r(tcopy, ",", &s2) : NULL; t && !known; t = strtok_r(NULL, ",", &s2))
      known = evssh_hostkey_alg_matches(a, t);
    free(tcopy);
    char *dst = known ? first : rest;
    if (*dst) strcat(dst, ",");
    strcat(dst, a);
  }
  if (*first && *rest) {
    strcat(first, ",");
    strcat(first, rest);
  }
  free(rest);
  free(copy);
  free(types);
  if (!*first) {
    free(first);
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

int trust_check_hostkey(const trust_params *p, const unsigned char *blob, size_t len, char **err) {
  const evssh_options *o = p->opt;
  const char *files[16];
  size_t nuser = 0;
  size_t nfiles = known_files(o, files, 16, &nuser);
  bool record = false;
  char name[300];
  *err = NULL;
  if (evssh_knownhosts_name(o->hostname, o->port, name, sizeof name) != EVSSH_OK)
    snprintf(name, sizeof name, "%s", o->hostname);
  evssh_kh_result res;
  char kerr[256] = "";
  int rc = cache_knownhosts_check(p->cache, files, nfiles, o->hostname, o->port, NULL, blob, len, &res, kerr, sizeof kerr);
  if (rc)
    return refuse(err, EVSSH_EHOSTKEY,
                  base_asprintf("host key for %s: %s", name, kerr[0] ? kerr : evssh_strerror(rc)));
  switch (res.status) {
  case EVSSH_KH_MATCH:
    diag_log(p->diag, EVSSH_LOG_INFO, "host key for %s found in %s line %d (%s %s)", name, res.file, res.line,
             res.got_type, res.got_fp);
    break;
  case EVSSH_KH_REVOKED:
    return refuse(err, EVSSH_EHOSTKEY_CHANGED,
                  base_asprintf("host key for %s is revoked (%s line %d): %s %s", name, res.file, res.line,
                                res.got_type, res.got_fp));
  case EVSSH_KH_MISMATCH:
    if (res.other_type)
      return refuse(err, EVSSH_EHOSTKEY_CHANGED,
                    base_asprintf("host key for %s (%s %s) is of a type known_hosts does not have for it, only "
                                  "another type: %s line %d has %s %s",
                                  name, res.got_type, res.got_fp, res.file, res.line, res.expected_type,
                                  res.expected_fp));
    return refuse(err, EVSSH_EHOSTKEY_CHANGED,
                  base_asprintf("host key for %s does not match %s line %d: expected %s, got %s; if the key "
                                "really changed, remove the old one with ssh-keygen -R '%s'",
                                name, res.file, res.line, res.expected_fp, res.got_fp, name));
  case EVSSH_KH_UNKNOWN:
  default:
    if (o->strict == STRICT_NO) {
      diag_log(p->diag, EVSSH_LOG_INFO, "host key for %s is unknown; accepted (StrictHostKeyChecking=no): %s %s",
               name, res.got_type, res.got_fp);
      break;
    }
    if (o->strict == STRICT_ACCEPT_NEW) {
      if (nuser == 0)
        return refuse(err, EVSSH_EHOSTKEY,
                      base_asprintf("host key for %s (%s %s) is unknown and there is no UserKnownHostsFile to "
                                    "add it to (StrictHostKeyChecking=accept-new)",
                                    name, res.got_type, res.got_fp));
      record = true;   /* once the application agrees too */
      break;
    }
    {
      /* name the files looked in: a typo in UserKnownHostsFile shows here */
      char *where = nfiles ? file_list(files, nfiles) : NULL;
      char *msg = base_asprintf("host key for %s is not known (%s %s) in %s: add it to known_hosts or set "
                                "StrictHostKeyChecking=accept-new",
                                name, res.got_type, res.got_fp,
                                where ? where : "any file (no known_hosts files configured)");
      free(where);
      return refuse(err, EVSSH_EHOSTKEY, msg);
    }
  }
  if (p->ev && p->ev->check && p->ev->check(p->ctx, res.got_type, res.got_fp) != 0)
    return refuse(err, EVSSH_EHOSTKEY,
                  base_asprintf("host key for %s (%s %s) refused by the application's check", name, res.got_type,
                                res.got_fp));
  if (record) {
    char aerr[256] = "";
    if (evssh_knownhosts_add(files[0], o->hostname, o->port, blob, len, o->hash_known_hosts, aerr, sizeof aerr) !=
        EVSSH_OK)
      return refuse(err, EVSSH_EHOSTKEY,
                    base_asprintf("cannot record host key for %s in %s: %s", name, files[0], aerr));
    diag_log(p->diag, EVSSH_LOG_INFO, "permanently added %s (%s %s) to %s", name, res.got_type, res.got_fp,
             files[0]);
  }
  return EVSSH_OK;
}
