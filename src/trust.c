/* trust.c owns the host-key policy of a session: the server's key is looked
 * up in UserKnownHostsFile and GlobalKnownHostsFile by name (entries for
 * the server's address are not consulted: ssh's default CheckHostIP=no,
 * so a stale address entry fails nothing that ssh would let through);
 * StrictHostKeyChecking decides what an unknown key means (yes: refuse,
 * accept-new: record it in the first UserKnownHostsFile, no: accept it
 * unrecorded); a key that differs from a known one, or one marked @revoked,
 * is refused in every mode; then the application's own check runs, and
 * accept-new records the key only once that check agreed too. It also orders HostKeyAlgorithms so the
 * server is asked for a key type we already know, as ssh does. */
#include "trust.h"

#include "config.h"
#include "hostkey.h"
#include "io.h"
#include "knownhosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* user files first, then the global ones; *nuser of them are the user's.
   accept-new writes the first user file only, as ssh does: the global
   files are the administrator's. */
static size_t known_files(evssh_session *s, const char **files, size_t max, size_t *nuser) {
  size_t n = 0;
  const char *const *list = NULL;
  size_t k = evssh_config_get_list(s->config, "UserKnownHostsFile", &list);
  for (size_t i = 0; i < k && n < max; i++)
    if (strcmp(list[i], "none") != 0) files[n++] = list[i];
  if (nuser) *nuser = n;
  k = evssh_config_get_list(s->config, "GlobalKnownHostsFile", &list);
  for (size_t i = 0; i < k && n < max; i++)
    if (strcmp(list[i], "none") != 0) files[n++] = list[i];
  return n;
}

int trust_order_hostkey_algs(evssh_session *s, const char *algs, char **out) {
  *out = NULL;
  const char *files[16];
  size_t n = known_files(s, files, 16, NULL);
  char *types = NULL, err[256];
  if (evssh_knownhosts_types(files, n, s->opt.hostname, s->opt.port, &types, err, sizeof err) != EVSSH_OK ||
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

int trust_check_hostkey(evssh_session *s, const char *alg, const unsigned char *blob, size_t len,
                        char *err, size_t errlen) {
  const char *files[16];
  size_t nuser = 0;
  size_t nfiles = known_files(s, files, 16, &nuser);
  bool record = false;
  char name[300];
  if (evssh_knownhosts_name(s->opt.hostname, s->opt.port, name, sizeof name) != EVSSH_OK)
    snprintf(name, sizeof name, "%s", s->opt.hostname);
  evssh_kh_result res;
  char kerr[256] = "";
  int rc = evssh_knownhosts_check(files, nfiles, s->opt.hostname, s->opt.port, NULL, blob,
                                  len, &res, kerr, sizeof kerr);
  if (rc) {
    snprintf(err, errlen, "host key for %s: %s", name, kerr[0] ? kerr : evssh_strerror(rc));
    return EVSSH_EHOSTKEY;
  }
  const char *strict = evssh_config_get(s->config, "StrictHostKeyChecking");
  if (!strict) strict = "yes";
  switch (res.status) {
  case EVSSH_KH_MATCH:
    session_log(s, EVSSH_LOG_INFO, "host key for %s found in %s line %d (%s %s)", name, res.file, res.line,
                res.got_type, res.got_fp);
    break;
  case EVSSH_KH_REVOKED:
    snprintf(err, errlen, "host key for %s is revoked (%s line %d): %s %s", name, res.file, res.line,
             res.got_type, res.got_fp);
    return EVSSH_EHOSTKEY;
  case EVSSH_KH_MISMATCH:
    if (res.other_type)
      snprintf(err, errlen,
               "host key for %s (%s %s) is of a type known_hosts does not have for it, only another type: "
               "%s line %d has %s %s",
               name, res.got_type, res.got_fp, res.file, res.line, res.expected_type, res.expected_fp);
    else
      snprintf(err, errlen,
               "host key for %s does not match %s line %d: expected %s, got %s; if the key really changed, "
               "remove the old one with ssh-keygen -R '%s'",
               name, res.file, res.line, res.expected_fp, res.got_fp, name);
    return EVSSH_EHOSTKEY;
  case EVSSH_KH_UNKNOWN:
  default:
    if (strcmp(strict, "no") == 0) {
      session_log(s, EVSSH_LOG_INFO, "host key for %s is unknown; accepted (StrictHostKeyChecking=no): %s %s",
                  name, res.got_type, res.got_fp);
      break;
    }
    if (strcmp(strict, "accept-new") == 0) {
      if (nuser == 0) {
        snprintf(err, errlen,
                 "host key for %s (%s %s) is unknown and there is no UserKnownHostsFile to add it to "
                 "(StrictHostKeyChecking=accept-new)",
                 name, res.got_type, res.got_fp);
        return EVSSH_EHOSTKEY;
      }
      record = true;   /* once the application agrees too */
      break;
    }
    {
      /* name the files looked in: a typo in UserKnownHostsFile shows here */
      char where[200] = "";
      size_t used = 0;
      for (size_t i = 0; i < nfiles && used + 1 < sizeof where; i++) {
        int n = snprintf(where + used, sizeof where - used, "%s%s", i ? ", " : "", files[i]);
        if (n < 0) break;
        used += (size_t)n;
      }
      snprintf(err, errlen,
               "host key for %s is not known (%s %s) in %s: add it to known_hosts or set "
               "StrictHostKeyChecking=accept-new",
               name, res.got_type, res.got_fp, nfiles ? where : "any file (no known_hosts files configured)");
    }
    return EVSSH_EHOSTKEY;
  }
  if (s->hostkey_check && s->hostkey_check(s, res.got_type, res.got_fp, s->hostkey_check_ud) != 0) {
    snprintf(err, errlen, "host key for %s (%s %s) refused by the application's check", name, res.got_type,
             res.got_fp);
    return EVSSH_EHOSTKEY;
  }
  if (record) {
    const char *hashed = evssh_config_get(s->config, "HashKnownHosts");
    char aerr[256] = "";
    if (evssh_knownhosts_add(files[0], s->opt.hostname, s->opt.port, blob, len, hashed && strcmp(hashed, "yes") == 0,
                             aerr, sizeof aerr) != EVSSH_OK) {
      snprintf(err, errlen, "cannot record host key for %s in %s: %s", name, files[0], aerr);
      return EVSSH_EHOSTKEY;
    }
    session_log(s, EVSSH_LOG_INFO, "permanently added %s (%s %s) to %s", name, res.got_type, res.got_fp, files[0]);
  }
  (void)alg;
  return EVSSH_OK;
}
