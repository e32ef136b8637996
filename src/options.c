/* options.c owns turning a finalized configuration into evssh_options (see
 * options.h): one typed read of every value the layers use, algorithm lists
 * resolved against the lists cipher.c, mac.c, kex.c and hostkey.c support,
 * and the set-time check of those lists. Defaults are config.c's. */
#include "options.h"

#include "base.h"
#include "cipher.h"
#include "hostkey.h"
#include "kex.h"
#include "mac.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct algo_kind {
  const char *keyword;
  const char *(*defaults)(void);
  const char *(*supported)(void);
  size_t field;
} algo_kind;

static const char *pubkey_defaults(void) { return evssh_hostkey_default_list(); }

static const algo_kind algo_kinds[] = {
  {"KexAlgorithms", evssh_kex_default_list, evssh_kex_supported_list, offsetof(evssh_options, kex)},
  {"HostKeyAlgorithms", evssh_hostkey_default_list, evssh_hostkey_supported_list, offsetof(evssh_options, hostkeys)},
  {"Ciphers", evssh_cipher_default_list, evssh_cipher_supported_list, offsetof(evssh_options, ciphers)},
  {"MACs", evssh_mac_default_list, evssh_mac_supported_list, offsetof(evssh_options, macs)},
  {"PubkeyAcceptedAlgorithms", pubkey_defaults, evssh_hostkey_supported_list, offsetof(evssh_options, pubkey_algs)},
};

static const algo_kind *algo_kind_of(const char *keyword) {
  for (size_t i = 0; i < sizeof algo_kinds / sizeof *algo_kinds; i++)
    if (strcasecmp(keyword, algo_kinds[i].keyword) == 0) return &algo_kinds[i];
  if (strcasecmp(keyword, "PubkeyAcceptedKeyTypes") == 0) return &algo_kinds[4];
  return NULL;
}

int options_check(const char *keyword, const char *value, char *err, size_t errlen) {
  const algo_kind *k = algo_kind_of(keyword);
  if (!k) return EVSSH_OK;
  char *out = NULL, sub[300] = "";
  int rc = evssh_config_algorithms(value, k->defaults(), k->supported(), &out, sub, sizeof sub);
  free(out);
  if (rc == EVSSH_EINVAL) snprintf(err, errlen, "bad option %s=%s: %s", k->keyword, value, sub);
  return rc;
}

static bool yes(const evssh_config *c, const char *kw) {
  const char *v = evssh_config_get(c, kw);
  return v && strcmp(v, "yes") == 0;
}

/* canonical decimal (config.c validated it), "none" meaning 0 */
static long number(const evssh_config *c, const char *kw) {
  const char *v = evssh_config_get(c, kw);
  if (!v || strcmp(v, "none") == 0) return 0;
  return strtol(v, NULL, 10);
}

static int copy_value(const evssh_config *c, const char *kw, char **out) {
  const char *v = evssh_config_get(c, kw);
  *out = NULL;
  if (!v) return EVSSH_OK;
  return (*out = strdup(v)) ? EVSSH_OK : EVSSH_ENOMEM;
}

static int resolve_algorithms(evssh_config *c, evssh_options *o, char **err) {
  for (size_t i = 0; i < sizeof algo_kinds / sizeof *algo_kinds; i++) {
    const algo_kind *k = &algo_kinds[i];
    char sub[300] = "";
    char **field = (char **)((char *)o + k->field);
    int rc = evssh_config_algorithms(evssh_config_get(c, k->keyword), k->defaults(), k->supported(), field, sub,
                                     sizeof sub);
    if (rc) {
      *err = base_asprintf("%s: %s", k->keyword, sub[0] ? sub : "invalid list");
      return rc;
    }
  }
  o->hostkeys_configured = evssh_config_is_set(c, "HostKeyAlgorithms");
  return EVSSH_OK;
}

/* LocalForward and friends: canonical items back into specs. */
static int resolve_forwards(evssh_config *c, const char *kw, fwd_spec_kind kind, forward_spec **out, size_t *n,
                            char **err) {
  const char *const *items;
  size_t count = evssh_config_get_list(c, kw, &items);
  *out = NULL;
  *n = 0;
  if (count == 0) return EVSSH_OK;
  forward_spec *v = calloc(count, sizeof *v);
  if (!v) return EVSSH_ENOMEM;
  *out = v;
  for (size_t i = 0; i < count; i++) {
    char sub[300] = "";
    int rc = forward_spec_parse_canonical(kind, items[i], &v[i], sub, sizeof sub);
    if (rc) {
      if (rc == EVSSH_EINVAL) *err = base_asprintf("%s: %s", kw, sub);
      return rc;
    }
    (*n)++;
  }
  return EVSSH_OK;
}

static int resolve_forwarding(evssh_config *c, evssh_options *o, char **err) {
  int rc = resolve_forwards(c, "LocalForward", FWD_SPEC_LOCAL, &o->local_forwards, &o->n_local_forwards, err);
  if (!rc)
    rc = resolve_forwards(c, "RemoteForward", FWD_SPEC_REMOTE, &o->remote_forwards, &o->n_remote_forwards, err);
  if (!rc)
    rc = resolve_forwards(c, "DynamicForward", FWD_SPEC_DYNAMIC, &o->dynamic_forwards, &o->n_dynamic_forwards, err);
  o->exit_on_forward_failure = yes(c, "ExitOnForwardFailure");
  o->gateway_ports = yes(c, "GatewayPorts");
  const char *fa = evssh_config_get(c, "ForwardAgent");
  o->forward_agent = fa && strcmp(fa, "no") != 0;
  if (!rc && o->forward_agent && strcmp(fa, "yes") != 0 && !(o->forward_agent_sock = strdup(fa))) rc = EVSSH_ENOMEM;
  if (rc == EVSSH_ENOMEM && !*err) *err = strdup("out of memory");
  return rc;
}

int options_resolve(evssh_config *c, const char *host, evssh_options *o, char **err) {
  memset(o, 0, sizeof *o);
  *err = NULL;
  char sub[700] = "";
  int rc = evssh_config_finalize(c, host, sub, sizeof sub);
  if (rc) {
    *err = strdup(sub[0] ? sub : evssh_strerror(rc));
    return rc;
  }
  if ((rc = copy_value(c, "HostName", &o->hostname)) || (rc = copy_value(c, "User", &o->user)) ||
      (rc = copy_value(c, "ProxyCommand", &o->proxy_command)) || (rc = copy_value(c, "ProxyJump", &o->proxy_jump)) ||
      (rc = copy_value(c, "PreferredAuthentications", &o->preferred)))
    goto nomem;
  o->port = (int)number(c, "Port");
  o->connect_timeout_ms = (int)number(c, "ConnectTimeout") * 1000;
  o->alive_interval_s = (int)number(c, "ServerAliveInterval");
  o->alive_count_max = (int)number(c, "ServerAliveCountMax");
  const char *rekey = evssh_config_get(c, "RekeyLimit");
  unsigned long long bytes = 0;
  int secs = 0;
  if (rekey && sscanf(rekey, "%llu %d", &bytes, &secs) >= 1) {
    o->rekey_bytes = bytes;
    o->rekey_seconds = secs;
  }
  o->batch = yes(c, "BatchMode");
  o->pubkey_auth = yes(c, "PubkeyAuthentication");
  o->password_auth = yes(c, "PasswordAuthentication");
  o->kbdint_auth = yes(c, "KbdInteractiveAuthentication");
  o->identities_only = yes(c, "IdentitiesOnly");
  o->password_prompts = (int)number(c, "NumberOfPasswordPrompts");
  o->n_identity_files = evssh_config_get_list(c, "IdentityFile", &o->identity_files);
  o->identity_files_configured = evssh_config_is_set(c, "IdentityFile");
  o->identity_agent = evssh_config_get(c, "IdentityAgent");
  o->n_user_known_hosts = evssh_config_get_list(c, "UserKnownHostsFile", &o->user_known_hosts);
  o->n_global_known_hosts = evssh_config_get_list(c, "GlobalKnownHostsFile", &o->global_known_hosts);
  const char *strict = evssh_config_get(c, "StrictHostKeyChecking");
  o->strict = strict && strcmp(strict, "no") == 0 ? STRICT_NO
              : strict && strcmp(strict, "accept-new") == 0 ? STRICT_ACCEPT_NEW : STRICT_YES;
  o->hash_known_hosts = yes(c, "HashKnownHosts");
  if (!o->hostname || !o->user || !o->preferred) {
    *err = strdup("configuration incomplete after finalize");
    options_release(o);
    return EVSSH_EINVAL;
  }
  rc = resolve_algorithms(c, o, err);
  if (!rc) rc = resolve_forwarding(c, o, err);
  if (rc) options_release(o);
  return rc;
nomem:
  options_release(o);
  *err = strdup("out of memory");
  return EVSSH_ENOMEM;
}

void options_release(evssh_options *o) {
  free(o->hostname);
  free(o->user);
  free(o->proxy_command);
  free(o->proxy_jump);
  free(o->preferred);
  free(o->kex);
  free(o->hostkeys);
  free(o->ciphers);
  free(o->macs);
  free(o->pubkey_algs);
  for (size_t i = 0; i < o->n_local_forwards; i++) forward_spec_release(&o->local_forwards[i]);
  for (size_t i = 0; i < o->n_remote_forwards; i++) forward_spec_release(&o->remote_forwards[i]);
  for (size_t i = 0; i < o->n_dynamic_forwards; i++) forward_spec_release(&o->dynamic_forwards[i]);
  free(o->local_forwards);
  free(o->remote_forwards);
  free(o->dynamic_forwards);
  free(o->forward_agent_sock);
  memset(o, 0, sizeof *o);
}
