/* session_env.c owns SendEnv and SetEnv: which variables of this process a
 * session channel forwards (ssh's pattern list, where "-PATTERN" removes the
 * patterns given before it that it matches) and the env requests that carry
 * them and the SetEnv items, queued on the channel as it opens. */
#include "session_env.h"

#include "config.h"

#include <stdlib.h>
#include <string.h>

extern char **environ;

/* The SendEnv patterns in force: each "-PATTERN" drops the earlier
   patterns it matches, as ssh's readconf does. *out holds pointers into
   o's list (free only the array). */
static int effective_patterns(const evssh_options *o, const char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (o->n_send_env == 0) return EVSSH_OK;
  const char **v = calloc(o->n_send_env, sizeof *v);
  if (!v) return EVSSH_ENOMEM;
  size_t m = 0;
  for (size_t i = 0; i < o->n_send_env; i++) {
    const char *p = o->send_env[i];
    if (p[0] != '-') {
      v[m++] = p;
      continue;
    }
    size_t k = 0;
    for (size_t j = 0; j < m; j++)
      if (!evssh_config_match_pattern(v[j], p + 1)) v[k++] = v[j];
    m = k;
  }
  *out = v;
  *n = m;
  return EVSSH_OK;
}

static bool permitted(const char *name, const char **patterns, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (evssh_config_match_pattern(name, patterns[i])) return true;
  return false;
}

/* One "NAME=VALUE" as an env request; items without '=' or with an empty
   name are not variables and are skipped. */
static int send_pair(evssh_channel *ch, const char *pair, const evssh_diag *d, const char *why) {
  const char *eq = strchr(pair, '=');
  if (!eq || eq == pair) return EVSSH_OK;
  size_t nlen = (size_t)(eq - pair);
  char *name = malloc(nlen + 1);
  if (!name) return EVSSH_ENOMEM;
  memcpy(name, pair, nlen);
  name[nlen] = 0;
  /* the value may be a secret: only the name is logged */
  diag_log(d, EVSSH_LOG_DEBUG, "channel %u: %s sends %s", evssh_channel_id(ch), why, name);
  int rc = evssh_channel_env(ch, name, eq + 1, NULL, NULL);
  free(name);
  return rc;
}

int session_env_send(evssh_channel *ch, const evssh_options *o, const evssh_diag *d) {
  const char **patterns;
  size_t n;
  int rc = effective_patterns(o, &patterns, &n);
  for (char **e = environ; rc == EVSSH_OK && n && e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e) continue;
    char name[256];
    size_t nlen = (size_t)(eq - *e);
    if (nlen >= sizeof name) continue;
    memcpy(name, *e, nlen);
    name[nlen] = 0;
    if (permitted(name, patterns, n)) rc = send_pair(ch, *e, d, "SendEnv");
  }
  free(patterns);
  for (size_t i = 0; rc == EVSSH_OK && i < o->n_set_env; i++) rc = send_pair(ch, o->set_env[i], d, "SetEnv");
  return rc;
}
