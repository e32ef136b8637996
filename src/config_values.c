/* config_values.c owns what a single ssh_config line means: the keyword
 * table (ours, their aliases, and the OpenSSH keywords we accept and
 * ignore), argument lexing with quotes, and the validation and canonical
 * form of every value. Which lines apply, and when, is config.c's. */
#include "config_internal.h"
#include "errors.h"
#include "forward_spec.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAX_INCLUDE_DEPTH 16
#define MAX_LINE 8192

const kwdef cfg_keywords[K_COUNT] = {
  [K_USER] = {"User", T_STR},
  [K_PORT] = {"Port", T_PORT},
  [K_HOSTNAME] = {"HostName", T_STR},
  [K_IDENTITYFILE] = {"IdentityFile", T_ACCUM},
  [K_IDENTITIESONLY] = {"IdentitiesOnly", T_FLAG},
  [K_IDENTITYAGENT] = {"IdentityAgent", T_STR},
  [K_USERKNOWNHOSTS] = {"UserKnownHostsFile", T_MULTI},
  [K_GLOBALKNOWNHOSTS] = {"GlobalKnownHostsFile", T_MULTI},
  [K_STRICT] = {"StrictHostKeyChecking", T_STRICT},
  [K_HASHKNOWNHOSTS] = {"HashKnownHosts", T_FLAG},
  [K_CONNECTTIMEOUT] = {"ConnectTimeout", T_TIMEOUT},
  [K_ALIVEINTERVAL] = {"ServerAliveInterval", T_TIME},
  [K_ALIVECOUNT] = {"ServerAliveCountMax", T_UINT},
  [K_CIPHERS] = {"Ciphers", T_ALGOS},
  [K_MACS] = {"MACs", T_ALGOS},
  [K_KEX] = {"KexAlgorithms", T_ALGOS},
  [K_HOSTKEYALGS] = {"HostKeyAlgorithms", T_ALGOS},
  [K_PUBKEYALGS] = {"PubkeyAcceptedAlgorithms", T_ALGOS},
  [K_PREFAUTH] = {"PreferredAuthentications", T_STR},
  [K_PASSWORDAUTH] = {"PasswordAuthentication", T_FLAG},
  [K_KBDINT] = {"KbdInteractiveAuthentication", T_FLAG},
  [K_PUBKEYAUTH] = {"PubkeyAuthentication", T_PUBKEY},
  [K_BATCHMODE] = {"BatchMode", T_FLAG},
  [K_PROXYCOMMAND] = {"ProxyCommand", T_COMMAND},
  [K_PROXYJUMP] = {"ProxyJump", T_JUMP},
  [K_REKEYLIMIT] = {"RekeyLimit", T_REKEY},
  [K_LOGLEVEL] = {"LogLevel", T_LOGLEVEL},
  [K_ADDRESSFAMILY] = {"AddressFamily", T_AF},
  [K_BINDADDRESS] = {"BindAddress", T_STR},
  [K_PASSPROMPTS] = {"NumberOfPasswordPrompts", T_UINT},
  [K_COMPRESSION] = {"Compression", T_FLAG},
  [K_SENDENV] = {"SendEnv", T_ACCUM_MULTI},
  [K_SETENV] = {"SetEnv", T_MULTI},
  [K_FORWARDAGENT] = {"ForwardAgent", T_FWDAGENT},
  /* forwardings: one canonical item per line (forward_spec.c), lines
     accumulate and repeats drop, as ssh's add_local_forward does */
  [K_LOCALFORWARD] = {"LocalForward", T_ACCUM},
  [K_REMOTEFORWARD] = {"RemoteForward", T_ACCUM},
  [K_DYNAMICFORWARD] = {"DynamicForward", T_ACCUM},
  [K_EXITONFWDFAILURE] = {"ExitOnForwardFailure", T_FLAG},
  [K_GATEWAYPORTS] = {"GatewayPorts", T_FLAG},
  [K_CERTIFICATEFILE] = {"CertificateFile", T_ACCUM},
  [K_REVOKEDHOSTKEYS] = {"RevokedHostKeys", T_STR},
  [K_HOSTKEYALIAS] = {"HostKeyAlias", T_STR},
};

static const struct {
  const char *alias;
  int index;
} keyword_aliases[] = {
  {"PubkeyAcceptedKeyTypes", K_PUBKEYALGS},
  {"ChallengeResponseAuthentication", K_KBDINT},
};

/* Keywords an OpenSSH 9.x client (Debian build included) accepts that evssh
   does not implement: a config file written for ssh may use them freely. */
static const char *const openssh_other_keywords[] = {
  "AddKeysToAgent", "BindInterface", "CanonicalDomains", "CanonicalizeFallbackLocal",
  "CanonicalizeHostname", "CanonicalizeMaxDots", "CanonicalizePermittedCNAMEs",
  "CASignatureAlgorithms", "CheckHostIP", "Cipher", "ClearAllForwardings",
  "CompressionLevel", "ConnectionAttempts", "ControlMaster", "ControlPath", "ControlPersist",
  "DSAAuthentication", "EnableEscapeCommandline", "EnableSSHKeysign",
  "EscapeChar", "FallBackToRsh", "FingerprintHash",
  "ForkAfterAuthentication", "ForwardX11", "ForwardX11Timeout", "ForwardX11Trusted",
  "GlobalKnownHostsFile2", "GSSAPIAuthentication", "GSSAPIClientIdentity",
  "GSSAPIDelegateCredentials", "GSSAPIKeyExchange", "GSSAPIKexAlgorithms",
  "GSSAPIRenewalForcesRekey", "GSSAPIServerIdentity", "GSSAPITrustDns",
  "HostbasedAcceptedAlgorithms", "HostbasedAuthentication", "HostbasedKeyTypes",
  "IPQoS", "KbdInteractiveDevices", "KeepAlive", "KerberosAuthentication",
  "KerberosTGTPassing", "KnownHostsCommand", "LocalCommand", "LogFacility",
  "LogVerbose", "NoHostAuthenticationForLocalhost", "PermitLocalCommand",
  "PermitRemoteOpen", "PKCS11Provider", "Protocol", "ProxyUseFdpass", "RemoteCommand",
  "RequestTTY", "RequiredRSASize",
  "RhostsRSAAuthentication", "RSAAuthentication", "SecurityKeyProvider", "SessionType",
  "SmartcardDevice", "StdinNull", "StreamLocalBindMask", "StreamLocalBindUnlink",
  "SyslogFacility", "TCPKeepAlive", "Tunnel", "TunnelDevice", "UpdateHostKeys",
  "UseBlacklistedKeys", "UsePrivilegedPort", "UseRoaming", "UseRsh", "UserKnownHostsFile2",
  "VerifyHostKeyDNS", "VisualHostKey", "XAuthLocation", "AFSTokenPassing",
};

/* ---------------------------------------------------------------- helpers */

void cfg_strlist_free(strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

int cfg_strlist_push_owned(strlist *l, char *s) {
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 8;
    char **nv = realloc(l->v, ncap * sizeof(*nv));
    if (nv == NULL) {
      free(s);
      return EVSSH_ENOMEM;
    }
    l->v = nv;
    l->cap = ncap;
  }
  l->v[l->n++] = s;
  return EVSSH_OK;
}

int cfg_strlist_push(strlist *l, const char *s) {
  char *d = strdup(s);
  if (d == NULL)
    return EVSSH_ENOMEM;
  return cfg_strlist_push_owned(l, d);
}

bool cfg_strlist_has(const strlist *l, const char *s) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0)
      return true;
  return false;
}

char *cfg_join_list(const strlist *l, const char *sep) {
  size_t len = 1;
  for (size_t i = 0; i < l->n; i++)
    len += strlen(l->v[i]) + strlen(sep);
  char *s = malloc(len);
  if (s == NULL)
    return NULL;
  s[0] = '\0';
  size_t off = 0;
  for (size_t i = 0; i < l->n; i++) {
    size_t sl = strlen(sep), il = strlen(l->v[i]);
    if (i > 0) {
      memcpy(s + off, sep, sl);
      off += sl;
    }
    memcpy(s + off, l->v[i], il);
    off += il;
  }
  s[off] = '\0';
  return s;
}

void cfg_slot_clear(slot *s) {
  /* most of a config's four layers of slots are never set */
  if (!s->set && s->val == NULL && s->list.v == NULL)
    return;
  free(s->val);
  s->val = NULL;
  cfg_strlist_free(&s->list);
  s->set = false;
}

int cfg_slot_rejoin(slot *s) {
  char *j = cfg_join_list(&s->list, " ");
  if (j == NULL)
    return EVSSH_ENOMEM;
  free(s->val);
  s->val = j;
  return EVSSH_OK;
}

bool cfg_is_list_type(enum kwtype t) {
  return t == T_ACCUM || t == T_MULTI || t == T_ACCUM_MULTI;
}

/* Every option lookup of every session comes here (options.c reads some
   forty values per connect): an open-addressed index by first letter and
   length, built once per process and only read afterwards, leaves one
   strcasecmp per lookup. */
#define KW_SLOTS 128
static signed char kw_index[KW_SLOTS];
static pthread_once_t kw_once = PTHREAD_ONCE_INIT;

static unsigned kw_hash(const char *name, size_t len) {
  return ((unsigned)tolower((unsigned char)name[0]) * 31u + (unsigned)len) % KW_SLOTS;
}

static void kw_fill(void) {
  memset(kw_index, -1, sizeof kw_index);
  for (int i = 0; i < K_COUNT; i++) {
    unsigned h = kw_hash(cfg_keywords[i].name, strlen(cfg_keywords[i].name));
    while (kw_index[h] >= 0)
      h = (h + 1) % KW_SLOTS;
    kw_index[h] = (signed char)i;
  }
}

int cfg_keyword_index(const char *name) {
  size_t len = strlen(name);
  if (len > 0 && pthread_once(&kw_once, kw_fill) == 0) {
    for (unsigned h = kw_hash(name, len); kw_index[h] >= 0; h = (h + 1) % KW_SLOTS)
      if (strcasecmp(cfg_keywords[kw_index[h]].name, name) == 0)
        return kw_index[h];
  } else {
    for (int i = 0; i < K_COUNT; i++)
      if (strcasecmp(cfg_keywords[i].name, name) == 0)
        return i;
  }
  for (size_t i = 0; i < sizeof(keyword_aliases) / sizeof(keyword_aliases[0]); i++)
    if (strcasecmp(keyword_aliases[i].alias, name) == 0)
      return keyword_aliases[i].index;
  return -1;
}

bool cfg_openssh_keyword(const char *name) {
  for (size_t i = 0; i < sizeof(openssh_other_keywords) / sizeof(openssh_other_keywords[0]); i++)
    if (strcasecmp(openssh_other_keywords[i], name) == 0)
      return true;
  return false;
}

/* --------------------------------------------------------------- lexing */

/* Split like ssh's argv_split: whitespace separates, "..." and '...' quote,
   backslash escapes a quote, a backslash or (unquoted) a blank; an unquoted
   # at the start of an argument ends the line. */
int cfg_split_args(const char *s, strlist *out, char *err, size_t errlen) {
  size_t n = strlen(s);
  char *arg = malloc(n + 1);
  if (arg == NULL)
    return EVSSH_ENOMEM;
  size_t i = 0;
  int rc = EVSSH_OK;
  for (;;) {
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\f')
      i++;
    if (s[i] == '\0' || s[i] == '#')
      break;
    size_t j = 0;
    char quote = 0;
    for (; s[i] != '\0'; i++) {
      char ch = s[i];
      if (quote == 0 && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f'))
        break;
      if (ch == '\\') {
        char nx = s[i + 1];
        if (nx == '\'' || nx == '"' || nx == '\\' || (quote == 0 && (nx == ' ' || nx == '\t'))) {
          arg[j++] = nx;
          i++;
          continue;
        }
        arg[j++] = ch;
        continue;
      }
      if (quote == 0 && (ch == '"' || ch == '\'')) {
        quote = ch;
        continue;
      }
      if (quote != 0 && ch == quote) {
        quote = 0;
        continue;
      }
      arg[j++] = ch;
    }
    if (quote != 0) {
      evssh_errorf(err, errlen, "unterminated quote");
      rc = EVSSH_EINVAL;
      break;
    }
    arg[j] = '\0';
    if ((rc = cfg_strlist_push(out, arg)) != EVSSH_OK)
      break;
  }
  free(arg);
  if (rc != EVSSH_OK)
    cfg_strlist_free(out);
  return rc;
}

/* ------------------------------------------------------ value validation */

static int parse_flag_word(const char *v) {
  if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0)
    return 1;
  if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0)
    return 0;
  return -1;
}

static bool parse_uint(const char *v, long long max, long long *out) {
  if (*v == '\0')
    return false;
  long long r = 0;
  for (const char *p = v; *p; p++) {
    if (!isdigit((unsigned char)*p))
      return false;
    r = r * 10 + (*p - '0');
    if (r > max)
      return false;
  }
  *out = r;
  return true;
}

/* ssh's time format: a sequence of <number>[smhdw], no unit = seconds. */
static bool parse_time(const char *v, long long *out) {
  if (*v == '\0')
    return false;
  long long total = 0;
  const char *p = v;
  while (*p) {
    if (!isdigit((unsigned char)*p))
      return false;
    long long n = 0;
    while (isdigit((unsigned char)*p)) {
      n = n * 10 + (*p - '0');
      if (n > INT_MAX)
        return false;
      p++;
    }
    long long mult = 1;
    switch (*p) {
    case '\0': break;
    case 's': case 'S': p++; break;
    case 'm': case 'M': mult = 60; p++; break;
    case 'h': case 'H': mult = 3600; p++; break;
    case 'd': case 'D': mult = 86400; p++; break;
    case 'w': case 'W': mult = 604800; p++; break;
    default: return false;
    }
    total += n * mult;
    if (total > INT_MAX)
      return false;
  }
  *out = total;
  return true;
}

static bool parse_size(const char *v, unsigned long long *out) {
  if (!isdigit((unsigned char)*v))
    return false;
  unsigned long long n = 0;
  const char *p = v;
  while (isdigit((unsigned char)*p)) {
    if (n > (ULLONG_MAX - 9) / 10)
      return false;
    n = n * 10 + (unsigned)(*p - '0');
    p++;
  }
  unsigned shift = 0;
  switch (*p) {
  case '\0': break;
  case 'k': case 'K': shift = 10; p++; break;
  case 'm': case 'M': shift = 20; p++; break;
  case 'g': case 'G': shift = 30; p++; break;
  case 't': case 'T': shift = 40; p++; break;
  default: return false;
  }
  if (*p != '\0')
    return false;
  if (shift && n > (ULLONG_MAX >> shift))
    return false;
  *out = n << shift;
  return true;
}

static bool valid_algo_spec(const char *v) {
  const char *p = v;
  if (*p == '+' || *p == '-' || *p == '^')
    p++;
  if (*p == '\0')
    return false;
  bool empty_item = true;
  for (; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch == ',') {
      if (empty_item)
        return false;
      empty_item = true;
      continue;
    }
    if (!(isalnum(ch) || strchr("@.-_*?", ch)))
      return false;
    empty_item = false;
  }
  return !empty_item;
}

char *cfg_dup_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *s = malloc((size_t)n + 1);
  if (s == NULL)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* LocalForward, RemoteForward, DynamicForward: the line's arguments become
   one item, the canonical text `ssh -G` prints for it. */
static int parse_forward_value(int k, const strlist *args, strlist *items, char *err, size_t errlen) {
  fwd_spec_kind kind = k == K_LOCALFORWARD ? FWD_SPEC_LOCAL : k == K_REMOTEFORWARD ? FWD_SPEC_REMOTE : FWD_SPEC_DYNAMIC;
  forward_spec f;
  char sub[300] = "";
  int rc = forward_spec_parse(kind, args->v[0], args->n > 1 ? args->v[1] : NULL, &f, sub, sizeof(sub));
  if (rc != EVSSH_OK) {
    evssh_errorf(err, errlen, "%s", sub[0] ? sub : "bad forwarding");
    return rc;
  }
  char *canon = forward_spec_format(kind, &f);
  forward_spec_release(&f);
  return canon ? cfg_strlist_push_owned(items, canon) : EVSSH_ENOMEM;
}

/* Validate the arguments of keyword k and produce its canonical form: a
   scalar in *canon, or (list keywords) the items in *items. rest is the raw
   argument text, used by ProxyCommand. */
int cfg_parse_value(int k, const strlist *args, const char *rest, char **canon,
                       strlist *items, char *err, size_t errlen) {
  const kwdef *kw = &cfg_keywords[k];
  const char *name = kw->name;
  *canon = NULL;
  if (kw->type == T_COMMAND) {
    if (rest == NULL || *rest == '\0') {
      evssh_errorf(err, errlen, "%s: missing argument", name);
      return EVSSH_EINVAL;
    }
    *canon = strdup(rest);
    return *canon ? EVSSH_OK : EVSSH_ENOMEM;
  }
  if (args->n == 0) {
    evssh_errorf(err, errlen, "%s: missing argument", name);
    return EVSSH_EINVAL;
  }
  size_t max_args = 1;
  if (kw->type == T_MULTI || kw->type == T_ACCUM_MULTI)
    max_args = SIZE_MAX;
  else if (kw->type == T_REKEY || k == K_LOCALFORWARD || k == K_REMOTEFORWARD)
    max_args = 2;
  if (args->n > max_args) {
    evssh_errorf(err, errlen, "%s: garbage at end of line: \"%s\"", name, args->v[max_args]);
    return EVSSH_EINVAL;
  }
  const char *v = args->v[0];
  long long n;
  switch (kw->type) {
  case T_STR:
    if (*v == '\0') {
      evssh_errorf(err, errlen, "%s: empty value", name);
      return EVSSH_EINVAL;
    }
    if (k == K_PREFAUTH && !valid_algo_spec(v)) {
      evssh_errorf(err, errlen, "%s: bad method list \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = strdup(v);
    break;
  case T_FLAG: {
    int f = parse_flag_word(v);
    if (f < 0) {
      evssh_errorf(err, errlen, "%s: bad value \"%s\" (expected yes or no)", name, v);
      return EVSSH_EINVAL;
    }
    *canon = strdup(f ? "yes" : "no");
    break;
  }
  case T_PUBKEY: {
    int f = parse_flag_word(v);
    if (f < 0 && (strcasecmp(v, "unbound") == 0 || strcasecmp(v, "host-bound") == 0))
      f = 1;
    if (f < 0) {
      evssh_errorf(err, errlen, "%s: bad value \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = strdup(f ? "yes" : "no");
    break;
  }
  case T_STRICT:
    if (strcasecmp(v, "accept-new") == 0)
      *canon = strdup("accept-new");
    else if (strcasecmp(v, "ask") == 0 || parse_flag_word(v) == 1)
      *canon = strdup("yes");
    else if (strcasecmp(v, "off") == 0 || parse_flag_word(v) == 0)
      *canon = strdup("no");
    else {
      evssh_errorf(err, errlen, "%s: bad value \"%s\" (expected yes, accept-new or no)", name, v);
      return EVSSH_EINVAL;
    }
    break;
  case T_PORT:
    if (!parse_uint(v, 65535, &n) || n == 0) {
      evssh_errorf(err, errlen, "%s: bad port number \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = cfg_dup_printf("%lld", n);
    break;
  case T_UINT:
    if (!parse_uint(v, INT_MAX, &n)) {
      evssh_errorf(err, errlen, "%s: bad number \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = cfg_dup_printf("%lld", n);
    break;
  case T_TIME:
    if (!parse_time(v, &n)) {
      evssh_errorf(err, errlen, "%s: bad time value \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = cfg_dup_printf("%lld", n);
    break;
  case T_TIMEOUT:
    if (strcasecmp(v, "none") == 0) {
      *canon = strdup("none");
      break;
    }
    if (!parse_time(v, &n)) {
      evssh_errorf(err, errlen, "%s: bad time value \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = n == 0 ? strdup("none") : cfg_dup_printf("%lld", n);
    break;
  case T_LOGLEVEL: {
    static const char *const levels[] = {"QUIET", "FATAL", "ERROR", "INFO",
                                         "VERBOSE", "DEBUG", "DEBUG2", "DEBUG3"};
    const char *found = NULL;
    if (strcasecmp(v, "DEBUG1") == 0)
      found = "DEBUG";   /* ssh's name for level debug1 */
    for (size_t i = 0; found == NULL && i < sizeof(levels) / sizeof(levels[0]); i++)
      if (strcasecmp(v, levels[i]) == 0)
        found = levels[i];
    if (found == NULL) {
      evssh_errorf(err, errlen, "%s: unknown log level \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = strdup(found);
    break;
  }
  case T_AF:
    if (strcasecmp(v, "any") == 0 || strcasecmp(v, "inet") == 0 || strcasecmp(v, "inet6") == 0) {
      *canon = strdup(v);
      if (*canon)
        for (char *p = *canon; *p; p++)
          *p = (char)tolower((unsigned char)*p);
    } else {
      evssh_errorf(err, errlen, "%s: bad address family \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    break;
  case T_ALGOS:
    if (!valid_algo_spec(v)) {
      evssh_errorf(err, errlen, "%s: bad algorithm list \"%s\"", name, v);
      return EVSSH_EINVAL;
    }
    *canon = strdup(v);
    break;
  case T_REKEY: {
    unsigned long long bytes = 0;
    long long secs = 0;
    if (strcasecmp(v, "default") != 0) {
      if (!parse_size(v, &bytes) || (bytes != 0 && bytes < 16)) {
        evssh_errorf(err, errlen, "%s: bad size \"%s\"", name, v);
        return EVSSH_EINVAL;
      }
    }
    if (args->n == 2) {
      const char *t = args->v[1];
      if (strcasecmp(t, "default") != 0 && strcasecmp(t, "none") != 0 && !parse_time(t, &secs)) {
        evssh_errorf(err, errlen, "%s: bad time value \"%s\"", name, t);
        return EVSSH_EINVAL;
      }
    }
    *canon = cfg_dup_printf("%llu %lld", bytes, secs);
    break;
  }
  case T_JUMP:
    if (strcasecmp(v, "none") != 0) {
      const char *p = v;
      bool empty = true;
      for (; *p; p++) {
        if (*p == ',') {
          if (empty)
            break;
          empty = true;
        } else if (isspace((unsigned char)*p) || *p == '\'' || *p == '"') {
          break;
        } else {
          empty = false;
        }
      }
      if (*p != '\0' || empty) {
        evssh_errorf(err, errlen, "%s: bad jump host list \"%s\"", name, v);
        return EVSSH_EINVAL;
      }
    }
    *canon = strdup(v);
    break;
  case T_FWDAGENT:
    if (parse_flag_word(v) >= 0)
      *canon = strdup(parse_flag_word(v) ? "yes" : "no");
    else
      *canon = strdup(v);   /* a socket path or $VARIABLE, as ssh allows */
    break;
  case T_ACCUM:
  case T_MULTI:
  case T_ACCUM_MULTI:
    if (k == K_LOCALFORWARD || k == K_REMOTEFORWARD || k == K_DYNAMICFORWARD)
      return parse_forward_value(k, args, items, err, errlen);
    for (size_t i = 0; i < args->n; i++) {
      if (args->v[i][0] == '\0') {
        evssh_errorf(err, errlen, "%s: empty value", name);
        cfg_strlist_free(items);
        return EVSSH_EINVAL;
      }
      if (k == K_SETENV && strchr(args->v[i], '=') == NULL) {
        evssh_errorf(err, errlen, "%s: \"%s\" is not NAME=VALUE", name, args->v[i]);
        cfg_strlist_free(items);
        return EVSSH_EINVAL;
      }
      int rc = cfg_strlist_push(items, args->v[i]);
      if (rc != EVSSH_OK) {
        cfg_strlist_free(items);
        return rc;
      }
    }
    return EVSSH_OK;
  case T_COMMAND:
    break;
  }
  return *canon ? EVSSH_OK : EVSSH_ENOMEM;
}

/* Store a parsed value into a layer. first_wins: file semantics. */
int cfg_store_value(slot *layer, int k, char *canon, strlist *items, bool first_wins) {
  slot *s = &layer[k];
  enum kwtype t = cfg_keywords[k].type;
  int rc = EVSSH_OK;
  if (cfg_is_list_type(t)) {
    if (t == T_MULTI && s->set && first_wins) {
      cfg_strlist_free(items);
      return EVSSH_OK;
    }
    if (t == T_MULTI)
      cfg_strlist_free(&s->list);
    for (size_t i = 0; i < items->n && rc == EVSSH_OK; i++) {
      if (t != T_MULTI && cfg_strlist_has(&s->list, items->v[i]))
        continue;   /* ssh drops repeated identity files */
      rc = cfg_strlist_push(&s->list, items->v[i]);
    }
    cfg_strlist_free(items);
    if (rc == EVSSH_OK)
      rc = cfg_slot_rejoin(s);
    if (rc == EVSSH_OK)
      s->set = true;
    return rc;
  }
  if (s->set && first_wins) {
    free(canon);
    return EVSSH_OK;
  }
  free(s->val);
  s->val = canon;
  s->set = true;
  return EVSSH_OK;
}

