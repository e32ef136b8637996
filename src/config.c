/* ssh_config(5) for evssh: keeps three layers of option values (explicit
 * options, values read from config files, final values after defaults and
 * expansion), parses config files the way OpenSSH's client does (Host and
 * Match blocks, Include with globs, first value wins, validation of every
 * line, IgnoreUnknown, the final pass that Match final/canonical asks for),
 * expands ~, ${ENV} and %-tokens where ssh expands them, and resolves the
 * +/-/^ algorithm-list grammar. It knows nothing about the transport: the
 * session layer reads values out with evssh_config_get*. */
#include "config_internal.h"
#include "cache.h"
#include "errors.h"
#include "jump.h"
#include "match.h"
#include "ossl.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
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

/* ------------------------------------------------------------- patterns */

/* Host and Match patterns use the one matcher known_hosts and certificate
   principals use (match.c): * and ? with a cost bounded by the product of
   the two lengths, however many stars a pattern has. */
bool evssh_config_match_pattern(const char *s, const char *pattern) {
  return evssh_match_pattern(s, pattern, false);
}

int evssh_config_match_list(const char *s, const char *list, bool fold) {
  return evssh_match_list(s, list, fold);
}

/* ----------------------------------------------------------- public: set */

int evssh_config_new(evssh_config **out) {
  if (out == NULL)
    return EVSSH_EINVAL;
  *out = calloc(1, sizeof(**out));
  return *out ? EVSSH_OK : EVSSH_ENOMEM;
}

static void clear_derived(evssh_config *c) {
  for (int k = 0; k < K_COUNT; k++) {
    cfg_slot_clear(&c->raw[k]);
    cfg_slot_clear(&c->final[k]);
  }
  c->finalized = false;
}

void evssh_config_free(evssh_config *c) {
  if (c == NULL)
    return;
  for (int k = 0; k < K_COUNT; k++) {
    cfg_slot_clear(&c->explicit_opt[k]);
    cfg_slot_clear(&c->file[k]);
  }
  clear_derived(c);
  free(c->ignore_unknown);
  cache_unref(c->cache);
  free(c);
}

int evssh_config_set(evssh_config *c, const char *keyword, const char *value,
                     char *err, size_t errlen) {
  if (c == NULL || keyword == NULL || value == NULL) {
    evssh_errorf(err, errlen, "missing keyword or value");
    return EVSSH_EINVAL;
  }
  int k = cfg_keyword_index(keyword);
  if (k < 0) {
    if (cfg_openssh_keyword(keyword) || strcasecmp(keyword, "Host") == 0 ||
        strcasecmp(keyword, "Match") == 0 || strcasecmp(keyword, "Include") == 0 ||
        strcasecmp(keyword, "IgnoreUnknown") == 0)
      evssh_errorf(err, errlen, "option %s is not supported by evssh", keyword);
    else
      evssh_errorf(err, errlen, "unknown option %s", keyword);
    return EVSSH_EINVAL;
  }
  strlist args = {0}, items = {0};
  char sub[256];
  int rc = EVSSH_OK;
  if (cfg_keywords[k].type != T_COMMAND)
    rc = cfg_split_args(value, &args, sub, sizeof(sub));
  char *canon = NULL;
  if (rc == EVSSH_OK)
    rc = cfg_parse_value(k, &args, value, &canon, &items, sub, sizeof(sub));
  else if (rc == EVSSH_EINVAL)
    evssh_errorf(sub, sizeof(sub), "%s: %.200s", cfg_keywords[k].name, value);
  cfg_strlist_free(&args);
  if (rc != EVSSH_OK) {
    if (rc == EVSSH_EINVAL)
      evssh_errorf(err, errlen, "bad option %s=%s: %s", cfg_keywords[k].name, value, sub);
    else
      evssh_errorf(err, errlen, "out of memory");
    return rc;
  }
  /* first value wins, as for ssh -o; ProxyCommand and ProxyJump are one
     setting (whichever came first) */
  if ((k == K_PROXYCOMMAND || k == K_PROXYJUMP) &&
      (c->explicit_opt[K_PROXYCOMMAND].set || c->explicit_opt[K_PROXYJUMP].set)) {
    free(canon);
    cfg_strlist_free(&items);
    return EVSSH_OK;
  }
  rc = cfg_store_value(c->explicit_opt, k, canon, &items, true);
  if (rc == EVSSH_OK && c->finalized)
    clear_derived(c);   /* stale until the next finalize */
  return rc;
}

/* --------------------------------------------------- local identity */

typedef struct local_info {
  /* filled on first use (local_info_need): a finalize whose values need no
     %u/%d/%l/%L/%i/~ and no default User asks neither the password
     database (an open and read of /etc/passwd, with nsswitch) nor uname */
  bool loaded;
  int rc;
  evssh_cache *cache;   /* the passwd entry comes through it (NULL: none) */
  char user[256];
  char home[PATH_MAX];
  char hostname[256];
  char shorthost[256];
  unsigned long uid;
} local_info;

/* the password-database entry through cache (NULL: read here) */
static int local_info_get(local_info *li, evssh_cache *cache, char *err, size_t errlen) {
  memset(li, 0, sizeof(*li));
  li->loaded = true;
  li->cache = cache;
  li->uid = (unsigned long)getuid();
  if (cache_local_user(cache, (uid_t)li->uid, li->user, sizeof li->user, li->home, sizeof li->home) != EVSSH_OK) {
    evssh_errorf(err, errlen, "cannot find the local user (uid %lu) in the password database", li->uid);
    return li->rc = EVSSH_EINVAL;
  }
  if (gethostname(li->hostname, sizeof(li->hostname) - 1) != 0)
    snprintf(li->hostname, sizeof(li->hostname), "localhost");
  li->hostname[sizeof(li->hostname) - 1] = '\0';
  snprintf(li->shorthost, sizeof(li->shorthost), "%s", li->hostname);
  char *dot = strchr(li->shorthost, '.');
  if (dot)
    *dot = '\0';
  return EVSSH_OK;
}

/* li, read now if it was not yet (a failure is kept: asked again, it says
   the same) */
static int local_info_need(local_info *li, char *err, size_t errlen) {
  if (!li->loaded)
    return local_info_get(li, li->cache, err, errlen);
  if (li->rc != EVSSH_OK)
    evssh_errorf(err, errlen, "cannot find the local user (uid %lu) in the password database", li->uid);
  return li->rc;
}

/* ------------------------------------------------------------ expansion */

/* %C, made when a value first asks for it (most configurations never do,
   and then no session pays for the digest) */
typedef struct lazy_hash {
  evssh_cache *cache;
  local_info *li;
  const char *h, *p, *r, *jump;
  bool done;
  char hex[41];
} lazy_hash;

typedef struct tokens {
  const char *h, *n, *p, *r;
  lazy_hash *C;
  local_info *li;   /* read on first use */
} tokens;

static int conn_hash(evssh_cache *cache, const local_info *li, const char *h, const char *p, const char *r,
                     const char *jump, char out[41]);

static int sb_add(char **s, size_t *len, size_t *cap, const char *add, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t ncap = (*cap ? *cap : 64);
    while (ncap < *len + n + 1)
      ncap *= 2;
    char *ns = realloc(*s, ncap);
    if (ns == NULL)
      return EVSSH_ENOMEM;
    *s = ns;
    *cap = ncap;
  }
  memcpy(*s + *len, add, n);
  *len += n;
  (*s)[*len] = '\0';
  return EVSSH_OK;
}

/* allowed: the token letters this keyword accepts ('%' is always accepted). */
static int expand(const char *in, bool tilde, bool env, const tokens *t, const char *allowed,
                  const char *what, char **out, char *err, size_t errlen) {
  char *s = NULL;
  size_t len = 0, cap = 0;
  int rc = sb_add(&s, &len, &cap, "", 0);
  const char *p = in;
  if (rc == EVSSH_OK && tilde && p[0] == '~') {
    const char *slash = strchr(p, '/');
    size_t ulen = slash ? (size_t)(slash - p - 1) : strlen(p + 1);
    if (ulen == 0) {
      if (local_info_need(t->li, err, errlen) != EVSSH_OK) {
        free(s);
        return EVSSH_EINVAL;
      }
      rc = sb_add(&s, &len, &cap, t->li->home, strlen(t->li->home));
    } else {
      char uname[256], buf[4096];
      struct passwd pwbuf, *pw = NULL;
      if (ulen >= sizeof(uname) ||
          (memcpy(uname, p + 1, ulen), uname[ulen] = '\0',
           getpwnam_r(uname, &pwbuf, buf, sizeof(buf), &pw) != 0) || pw == NULL) {
        evssh_errorf(err, errlen, "%s: unknown user in \"%s\"", what, in);
        free(s);
        return EVSSH_EINVAL;
      }
      rc = sb_add(&s, &len, &cap, pw->pw_dir, strlen(pw->pw_dir));
    }
    p += 1 + ulen;
  }
  while (rc == EVSSH_OK && *p) {
    if (*p == '%') {
      char tk = p[1];
      const char *val = NULL;
      char num[32];
      if (tk == '%') {
        val = "%";
      } else if (tk != '\0' && strchr(allowed, tk) != NULL) {
        /* the local tokens, and %C (the local host name is part of it) */
        if (strchr("CudlLi", tk) != NULL && local_info_need(t->li, err, errlen) != EVSSH_OK) {
          free(s);
          return EVSSH_EINVAL;
        }
        switch (tk) {
        case 'h': val = t->h; break;
        case 'n': case 'k': val = t->n; break;
        case 'p': val = t->p; break;
        case 'r': val = t->r; break;
        case 'C':
          if (t->C && !t->C->done) {
            lazy_hash *lh = t->C;
            if ((rc = conn_hash(lh->cache, lh->li, lh->h, lh->p, lh->r, lh->jump, lh->hex)) != EVSSH_OK) {
              evssh_errorf(err, errlen, "out of memory");
              free(s);
              return rc;
            }
            lh->done = true;
          }
          val = t->C ? t->C->hex : NULL;
          break;
        case 'u': val = t->li->user; break;
        case 'd': val = t->li->home; break;
        case 'l': val = t->li->hostname; break;
        case 'L': val = t->li->shorthost; break;
        case 'i': snprintf(num, sizeof(num), "%lu", t->li->uid); val = num; break;
        default: break;
        }
      }
      if (val == NULL) {
        evssh_errorf(err, errlen, "%s: unknown token %%%c in \"%s\"", what, tk ? tk : ' ', in);
        free(s);
        return EVSSH_EINVAL;
      }
      rc = sb_add(&s, &len, &cap, val, strlen(val));
      p += 2;
    } else if (env && p[0] == '$' && p[1] == '{') {
      const char *end = strchr(p + 2, '}');
      char var[256];
      size_t vl = end ? (size_t)(end - p - 2) : 0;
      if (end == NULL || vl == 0 || vl >= sizeof(var)) {
        evssh_errorf(err, errlen, "%s: bad environment reference in \"%s\"", what, in);
        free(s);
        return EVSSH_EINVAL;
      }
      memcpy(var, p + 2, vl);
      var[vl] = '\0';
      const char *ev = getenv(var);
      if (ev == NULL) {
        evssh_errorf(err, errlen, "%s: environment variable ${%s} is not set", what, var);
        free(s);
        return EVSSH_EINVAL;
      }
      rc = sb_add(&s, &len, &cap, ev, strlen(ev));
      p = end + 1;
    } else {
      rc = sb_add(&s, &len, &cap, p, 1);
      p++;
    }
  }
  if (rc != EVSSH_OK) {
    free(s);
    evssh_errorf(err, errlen, "out of memory");
    return rc;
  }
  *out = s;
  return EVSSH_OK;
}

/* SHA-1 over the parts as they follow each other in `in` (each after its
   decimal length and a colon, so that the cache can tell inputs apart) */
static int sha1_hex(const char *in, size_t len, char out[41], void *ud) {
  (void)ud;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL && EVP_DigestInit_ex(ctx, evssh_ossl_md("SHA1"), NULL) == 1;
  const char *p = in, *end = in + len;
  while (ok && p < end) {
    char *colon;
    unsigned long n = strtoul(p, &colon, 10);
    ok = *colon == ':' && n <= (size_t)(end - colon - 1);
    if (ok && n)
      ok = EVP_DigestUpdate(ctx, colon + 1, n) == 1;
    p = colon + 1 + n;
  }
  ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
  EVP_MD_CTX_free(ctx);
  if (!ok)
    return EVSSH_ENOMEM;
  for (unsigned i = 0; i < 20; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  out[40] = '\0';
  return EVSSH_OK;
}

/* ssh's %C: SHA-1 of the local host name, host, port, user and (OpenSSH
   10) the host of the last ProxyJump hop, "" without one. Once per
   distinct input through the cache when there is one. */
static int conn_hash(evssh_cache *cache, const local_info *li, const char *h, const char *p, const char *r,
                     const char *jump, char out[41]) {
  char jhost[1025] = "";
  if (jump && *jump && strcasecmp(jump, "none") != 0) {
    const char *last = strrchr(jump, ',');
    last = last ? last + 1 : jump;
    char juser[256];
    int jport;
    if (jump_parse_hop(last, juser, sizeof juser, jhost, sizeof jhost, &jport) != EVSSH_OK)
      snprintf(jhost, sizeof jhost, "%s", last);
  }
  const char *parts[] = {li->hostname, h, p, r, jhost};
  char *in = NULL;
  size_t len = 0, cap = 0;
  int rc = sb_add(&in, &len, &cap, "", 0);
  for (size_t i = 0; i < sizeof parts / sizeof parts[0] && rc == EVSSH_OK; i++) {
    char num[24];
    int n = snprintf(num, sizeof num, "%zu:", strlen(parts[i]));
    rc = sb_add(&in, &len, &cap, num, (size_t)n);
    if (rc == EVSSH_OK)
      rc = sb_add(&in, &len, &cap, parts[i], strlen(parts[i]));
  }
  if (rc == EVSSH_OK)
    rc = cache_conn_hash(cache, in, len, sha1_hex, NULL, out);
  free(in);
  return rc;
}

/* --------------------------------------------------------- file reading */

typedef struct read_ctx {
  evssh_config *c;
  const char *host_for_host;   /* compared with Host patterns */
  const char *original;        /* the host as given */
  const char *resolved;        /* final pass: HostName as resolved */
  bool final_pass;
  bool want_final;
  bool system_file;            /* Include relative to /etc/ssh */
  /* cfg_read_text: the "file" is this text, Include and Match exec touch
     neither the file system nor processes */
  const char *text;
  size_t text_len;
  /* when set, every file's text (Included ones too) comes through it */
  evssh_cache *cache;
  local_info li;
  char *err;
  size_t errlen;
} read_ctx;

static const slot *current(const evssh_config *c, int k) {
  if (c->explicit_opt[k].set)
    return &c->explicit_opt[k];
  if (c->file[k].set)
    return &c->file[k];
  return NULL;
}

static int match_host_now(read_ctx *rc, char **out) {
  if (rc->final_pass) {
    *out = strdup(rc->resolved);
    return *out ? EVSSH_OK : EVSSH_ENOMEM;
  }
  const slot *hn = current(rc->c, K_HOSTNAME);
  if (hn == NULL) {
    *out = strdup(rc->original);
    return *out ? EVSSH_OK : EVSSH_ENOMEM;
  }
  tokens t = {.h = rc->original, .li = &rc->li};
  return expand(hn->val, false, false, &t, "h", "HostName", out, rc->err, rc->errlen);
}

static int run_match_exec(read_ctx *rc, const char *cmdtmpl, const char *where, bool *matched) {
  char *host = NULL, *cmd = NULL;
  int r = match_host_now(rc, &host);
  if (r != EVSSH_OK)
    return r;
  const slot *us = current(rc->c, K_USER), *ps = current(rc->c, K_PORT);
  const char *ruser = us ? us->val : rc->li.user;
  const char *port = ps ? ps->val : "22";
  const slot *js = current(rc->c, K_PROXYJUMP);
  lazy_hash hash = {.cache = rc->cache, .li = &rc->li, .h = host, .p = port, .r = ruser, .jump = js ? js->val : NULL};
  tokens t = {.h = host, .n = rc->original, .p = port, .r = ruser, .C = &hash, .li = &rc->li};
  char sub[512];
  r = expand(cmdtmpl, false, false, &t, "CdhikLlnpru", "Match exec", &cmd, sub, sizeof(sub));
  free(host);
  if (r != EVSSH_OK) {
    evssh_errorf(rc->err, rc->errlen, "%s: %s", where, sub);
    return r;
  }
  if (rc->text) {
    *matched = strcmp(cmd, "true") == 0;
    free(cmd);
    return EVSSH_OK;
  }
  pid_t pid = fork();
  if (pid < 0) {
    evssh_errorf(rc->err, rc->errlen, "%s: Match exec: fork: %s", where, strerror(errno));
    free(cmd);
    return EVSSH_EINVAL;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      if (devnull > 2)
        close(devnull);
    }
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  free(cmd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      evssh_errorf(rc->err, rc->errlen, "%s: Match exec: waitpid: %s", where, strerror(errno));
      return EVSSH_EINVAL;
    }
  }
  *matched = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return EVSSH_OK;
}

static int eval_match(read_ctx *rc, const strlist *args, const char *where, bool *active) {
  bool result = true;
  size_t i = 0;
  if (args->n == 0) {
    evssh_errorf(rc->err, rc->errlen, "%s: Match: missing criteria", where);
    return EVSSH_EINVAL;
  }
  while (i < args->n) {
    const char *attr = args->v[i++];
    bool neg = attr[0] == '!';
    if (neg)
      attr++;
    bool r;
    if (strcasecmp(attr, "all") == 0) {
      /* ssh allows "all" alone or with canonical/final only */
      for (size_t j = 0; j < args->n; j++) {
        const char *o = args->v[j][0] == '!' ? args->v[j] + 1 : args->v[j];
        if (strcasecmp(o, "all") != 0 && strcasecmp(o, "canonical") != 0 &&
            strcasecmp(o, "final") != 0) {
          evssh_errorf(rc->err, rc->errlen, "%s: Match all cannot be combined with %s", where, o);
          return EVSSH_EINVAL;
        }
      }
      r = true;
    } else if (strcasecmp(attr, "canonical") == 0 || strcasecmp(attr, "final") == 0) {
      if (!rc->final_pass)
        rc->want_final = true;
      r = rc->final_pass;
    } else {
      static const char *const with_arg[] = {"host", "originalhost", "user", "localuser", "exec"};
      bool known = false;
      for (size_t j = 0; j < sizeof(with_arg) / sizeof(with_arg[0]); j++)
        known |= strcasecmp(attr, with_arg[j]) == 0;
      if (!known) {
        evssh_errorf(rc->err, rc->errlen, "%s: unsupported Match attribute %s", where, attr);
        return EVSSH_EINVAL;
      }
      if (i >= args->n || args->v[i][0] == '\0') {
        evssh_errorf(rc->err, rc->errlen, "%s: Match %s: missing argument", where, attr);
        return EVSSH_EINVAL;
      }
      const char *arg = args->v[i++];
      if (strcasecmp(attr, "host") == 0) {
        char *h = NULL;
        int e = match_host_now(rc, &h);
        if (e != EVSSH_OK)
          return e;
        r = evssh_config_match_list(h, arg, true) == 1;
        free(h);
      } else if (strcasecmp(attr, "originalhost") == 0) {
        r = evssh_config_match_list(rc->original, arg, true) == 1;
      } else if (strcasecmp(attr, "user") == 0) {
        const slot *us = current(rc->c, K_USER);
        r = evssh_config_match_list(us ? us->val : rc->li.user, arg, false) == 1;
      } else if (strcasecmp(attr, "localuser") == 0) {
        r = evssh_config_match_list(rc->li.user, arg, false) == 1;
      } else {
        /* exec: like ssh, only run when everything so far matched */
        if (!result) {
          r = false;
          neg = false;
        } else {
          int e = run_match_exec(rc, arg, where, &r);
          if (e != EVSSH_OK)
            return e;
        }
      }
    }
    if (r == neg)
      result = false;
  }
  *active = result;
  return EVSSH_OK;
}

static bool eval_host_line(const char *host, const strlist *args) {
  bool positive = false;
  for (size_t i = 0; i < args->n; i++) {
    const char *p = args->v[i];
    bool neg = p[0] == '!';
    if (neg)
      p++;
    if (evssh_config_match_pattern(host, p)) {
      if (neg)
        return false;
      positive = true;
    }
  }
  return positive;
}

static int read_one(read_ctx *rc, const char *path, bool active, bool nevermatch, int depth,
                    bool checkperm, bool must_exist);

static int do_include(read_ctx *rc, const strlist *args, const char *where, bool active,
                      bool nevermatch, int depth) {
  if (args->n == 0) {
    evssh_errorf(rc->err, rc->errlen, "%s: Include: missing argument", where);
    return EVSSH_EINVAL;
  }
  if (depth + 1 > MAX_INCLUDE_DEPTH) {
    evssh_errorf(rc->err, rc->errlen, "%s: Include: too deeply nested", where);
    return EVSSH_EINVAL;
  }
  for (size_t i = 0; i < args->n; i++) {
    char *pat = NULL;
    const char *a = args->v[i];
    if (a[0] == '~') {
      tokens t = {.li = &rc->li};
      int e = expand(a, true, false, &t, "", "Include", &pat, rc->err, rc->errlen);
      if (e != EVSSH_OK)
        return e;
    } else if (a[0] == '/') {
      pat = strdup(a);
    } else if (rc->system_file) {
      pat = cfg_dup_printf("/etc/ssh/%s", a);
    } else {
      pat = cfg_dup_printf("%s/.ssh/%s", rc->li.home, a);
    }
    if (pat == NULL)
      return EVSSH_ENOMEM;
    if (rc->text) {
      /* the text includes itself once, whatever the pattern */
      free(pat);
      int e = depth == 0 ? read_one(rc, "(included text)", active, nevermatch || !active, depth + 1, false, true)
                         : EVSSH_OK;
      if (e != EVSSH_OK)
        return e;
      continue;
    }
    glob_t g;
    memset(&g, 0, sizeof(g));
    int gr = glob(pat, 0, NULL, &g);
    free(pat);
    if (gr == GLOB_NOMATCH) {
      globfree(&g);
      continue;
    }
    if (gr != 0) {
      globfree(&g);
      evssh_errorf(rc->err, rc->errlen, "%s: Include: glob of \"%s\" failed", where, a);
      return EVSSH_EINVAL;
    }
    for (size_t j = 0; j < g.gl_pathc; j++) {
      int e = read_one(rc, g.gl_pathv[j], active, nevermatch || !active, depth + 1, true, true);
      if (e != EVSSH_OK) {
        globfree(&g);
        return e;
      }
    }
    globfree(&g);
  }
  return EVSSH_OK;
}

static int process_line(read_ctx *rc, char *line, const char *where, bool *active,
                        bool nevermatch, int depth) {
  /* ssh strips trailing blanks (and form feeds) before anything else */
  size_t len = strlen(line);
  while (len > 0 && strchr(" \t\r\n\f", line[len - 1]))
    line[--len] = '\0';
  char *p = line;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '\0' || *p == '#')
    return EVSSH_OK;
  char *kwstart = p;
  while (*p && !strchr(" \t=", *p))
    p++;
  char kwbuf[128];
  size_t kwlen = (size_t)(p - kwstart);
  if (kwlen == 0 || kwlen >= sizeof(kwbuf)) {
    evssh_errorf(rc->err, rc->errlen, "%s: bad keyword", where);
    return EVSSH_EINVAL;
  }
  memcpy(kwbuf, kwstart, kwlen);
  kwbuf[kwlen] = '\0';
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '=') {
    p++;
    while (*p == ' ' || *p == '\t')
      p++;
  }
  const char *rest = p;

  strlist args = {0};
  char sub[256];
  int e;
  int k = cfg_keyword_index(kwbuf);
  if (k < 0 || cfg_keywords[k].type != T_COMMAND) {
    e = cfg_split_args(rest, &args, sub, sizeof(sub));
    if (e != EVSSH_OK) {
      if (e == EVSSH_EINVAL)
        evssh_errorf(rc->err, rc->errlen, "%s: %s: %s", where, kwbuf, sub);
      return e;
    }
  }
  if (strcasecmp(kwbuf, "Host") == 0) {
    if (args.n == 0) {
      evssh_errorf(rc->err, rc->errlen, "%s: Host: missing argument", where);
      e = EVSSH_EINVAL;
    } else {
      *active = !nevermatch && eval_host_line(rc->host_for_host, &args);
      e = EVSSH_OK;
    }
  } else if (strcasecmp(kwbuf, "Match") == 0) {
    bool m = false;
    e = eval_match(rc, &args, where, &m);
    if (e == EVSSH_OK)
      *active = !nevermatch && m;
  } else if (strcasecmp(kwbuf, "Include") == 0) {
    e = do_include(rc, &args, where, *active, nevermatch, depth);
  } else if (strcasecmp(kwbuf, "IgnoreUnknown") == 0) {
    e = EVSSH_OK;
    if (args.n != 1) {
      evssh_errorf(rc->err, rc->errlen, "%s: IgnoreUnknown: expected one pattern list", where);
      e = EVSSH_EINVAL;
    } else if (*active && rc->c->ignore_unknown == NULL) {
      rc->c->ignore_unknown = strdup(args.v[0]);
      if (rc->c->ignore_unknown == NULL)
        e = EVSSH_ENOMEM;
    }
  } else if (k < 0) {
    e = EVSSH_OK;
    if (!cfg_openssh_keyword(kwbuf) &&
        !(rc->c->ignore_unknown && evssh_config_match_list(kwbuf, rc->c->ignore_unknown, true) == 1)) {
      evssh_errorf(rc->err, rc->errlen, "%s: Bad configuration option: %s", where, kwbuf);
      e = EVSSH_EINVAL;
    }
  } else {
    char *canon = NULL;
    strlist items = {0};
    e = cfg_parse_value(k, &args, rest, &canon, &items, sub, sizeof(sub));
    if (e == EVSSH_EINVAL)
      evssh_errorf(rc->err, rc->errlen, "%s: %s", where, sub);
    if (e == EVSSH_OK) {
      bool proxy_taken = (k == K_PROXYCOMMAND || k == K_PROXYJUMP) &&
                         (rc->c->file[K_PROXYCOMMAND].set || rc->c->file[K_PROXYJUMP].set);
      if (*active && !proxy_taken) {
        e = cfg_store_value(rc->c->file, k, canon, &items, true);
      } else {
        free(canon);
        cfg_strlist_free(&items);
      }
    }
  }
  cfg_strlist_free(&args);
  return e;
}

static int read_one(read_ctx *rc, const char *path, bool active, bool nevermatch, int depth,
                    bool checkperm, bool must_exist) {
  if (rc->text && rc->text_len == 0)
    return EVSSH_OK;
  /* through the cache: the text read by an earlier session while the file
     is unchanged (1: not for the cache, read it here) */
  char *cached = NULL;
  size_t cached_len = 0;
  struct stat st;
  int from_cache = 1, sys_errno = 0;
  if (!rc->text && rc->cache) {
    from_cache = cache_config_text(rc->cache, path, &cached, &cached_len, &st, &sys_errno);
    if (from_cache == EVSSH_ENOMEM)
      return EVSSH_ENOMEM;
    if (from_cache == EVSSH_OK && cached_len == 0) {
      free(cached);   /* an empty file: nothing to parse, only its owner to check */
      cached = NULL;
    }
  }
  FILE *f = NULL;
  if (from_cache == EVSSH_EINVAL)
    errno = sys_errno;
  else if (rc->text)
    f = fmemopen((void *)rc->text, rc->text_len, "r");
  else if (from_cache == EVSSH_OK)
    f = cached ? fmemopen(cached, cached_len, "r") : NULL;
  else
    f = fopen(path, "r");
  if (f == NULL && !(from_cache == EVSSH_OK && cached == NULL)) {
    int saved = errno;
    free(cached);
    if (!must_exist && saved == ENOENT)
      return EVSSH_OK;
    evssh_errorf(rc->err, rc->errlen, "cannot open config file %s: %s", path, strerror(saved));
    return EVSSH_EINVAL;
  }
  if (checkperm && !rc->text) {
    if ((from_cache != EVSSH_OK && fstat(fileno(f), &st) != 0) ||
        (st.st_uid != 0 && st.st_uid != (uid_t)rc->li.uid) || (st.st_mode & 022) != 0) {
      if (f)
        fclose(f);
      free(cached);
      evssh_errorf(rc->err, rc->errlen, "bad owner or permissions on %s", path);
      return EVSSH_EINVAL;
    }
  }
  if (f == NULL)
    return EVSSH_OK;   /* the cached empty file */
  char *line = malloc(MAX_LINE);
  if (line == NULL) {
    fclose(f);
    free(cached);
    return EVSSH_ENOMEM;
  }
  int lineno = 0, e = EVSSH_OK;
  while (fgets(line, MAX_LINE, f) != NULL) {
    lineno++;
    size_t l = strlen(line);
    if (l == MAX_LINE - 1 && line[l - 1] != '\n' && !feof(f)) {
      evssh_errorf(rc->err, rc->errlen, "%s:%d: line too long", path, lineno);
      e = EVSSH_EINVAL;
      break;
    }
    char where[PATH_MAX + 32];
    snprintf(where, sizeof(where), "%s:%d", path, lineno);
    e = process_line(rc, line, where, &active, nevermatch, depth);
    if (e != EVSSH_OK)
      break;
  }
  free(line);
  fclose(f);
  free(cached);
  return e;
}

static int read_config(evssh_config *c, evssh_cache *cache, const char *path, const char *host, const char *text,
                       size_t text_len, char *err, size_t errlen) {
  if (c == NULL || host == NULL || *host == '\0') {
    evssh_errorf(err, errlen, "config: missing host");
    return EVSSH_EINVAL;
  }
  read_ctx rc;
  memset(&rc, 0, sizeof(rc));
  rc.c = c;
  rc.err = err;
  rc.errlen = errlen;
  rc.text = text;
  rc.text_len = text_len;
  rc.cache = cache;
  int e = local_info_get(&rc.li, cache, err, errlen);
  if (e != EVSSH_OK)
    return e;
  char userfile[PATH_MAX + 16];
  snprintf(userfile, sizeof(userfile), "%s/.ssh/config", rc.li.home);
  struct { const char *path; bool system, checkperm, must_exist; } files[2];
  size_t nfiles = 0;
  if (path != NULL) {
    files[nfiles].path = path;
    files[nfiles].system = false;
    files[nfiles].checkperm = false;
    files[nfiles++].must_exist = true;
  } else {
    files[nfiles].path = userfile;
    files[nfiles].system = false;
    files[nfiles].checkperm = true;
    files[nfiles++].must_exist = false;
    files[nfiles].path = "/etc/ssh/ssh_config";
    files[nfiles].system = true;
    files[nfiles].checkperm = false;
    files[nfiles++].must_exist = false;
  }
  if (c->finalized)
    clear_derived(c);
  rc.original = host;
  rc.host_for_host = host;
  for (size_t i = 0; i < nfiles && e == EVSSH_OK; i++) {
    rc.system_file = files[i].system;
    e = read_one(&rc, files[i].path, true, false, 0, files[i].checkperm, files[i].must_exist);
  }
  if (e != EVSSH_OK || !rc.want_final)
    return e;
  /* ssh's final pass: HostName is resolved first, Host lines then compare
     against it, and values already obtained keep winning. */
  char *resolved = NULL;
  if ((e = match_host_now(&rc, &resolved)) != EVSSH_OK)
    return e;
  for (char *q = resolved; *q; q++)
    *q = (char)tolower((unsigned char)*q);
  slot *hn = c->explicit_opt[K_HOSTNAME].set ? &c->explicit_opt[K_HOSTNAME]
             : c->file[K_HOSTNAME].set      ? &c->file[K_HOSTNAME] : NULL;
  if (hn == NULL)
    hn = &c->file[K_HOSTNAME];   /* ssh pins the host name before its final pass */
  char *copy = strdup(resolved);
  if (copy == NULL) {
    free(resolved);
    return EVSSH_ENOMEM;
  }
  free(hn->val);
  hn->val = copy;
  hn->set = true;
  rc.final_pass = true;
  rc.resolved = resolved;
  rc.host_for_host = resolved;
  for (size_t i = 0; i < nfiles && e == EVSSH_OK; i++) {
    rc.system_file = files[i].system;
    e = read_one(&rc, files[i].path, true, false, 0, files[i].checkperm, files[i].must_exist);
  }
  free(resolved);
  return e;
}

int evssh_config_read_file(evssh_config *c, const char *path, const char *host,
                           char *err, size_t errlen) {
  return read_config(c, NULL, path, host, NULL, 0, err, errlen);
}

void cache_config_use(evssh_config *c, evssh_cache *cache) {
  if (c == NULL || c->cache == cache)
    return;
  cache_unref(c->cache);
  c->cache = cache_ref(cache);
}

int cache_config_read_file(evssh_cache *cache, evssh_config *c, const char *path, const char *host, char *err,
                           size_t errlen) {
  /* finalize's %C goes through the cache the files came through */
  if (cache)
    cache_config_use(c, cache);
  return read_config(c, cache, path, host, NULL, 0, err, errlen);
}

int cfg_read_text(evssh_config *c, const char *name, const char *text, size_t len, const char *host, char *err,
                  size_t errlen) {
  if (name == NULL || text == NULL)
    return EVSSH_EINVAL;
  return read_config(c, NULL, name, host, text, len, err, errlen);
}

/* ------------------------------------------------------------- finalize */

static int set_default_scalar(evssh_config *c, int k, const char *v) {
  if (c->raw[k].set)
    return EVSSH_OK;
  c->raw[k].val = strdup(v);
  if (c->raw[k].val == NULL)
    return EVSSH_ENOMEM;
  c->raw[k].set = true;
  return EVSSH_OK;
}

static int copy_slot(slot *dst, const slot *src) {
  cfg_slot_clear(dst);
  if (!src->set)
    return EVSSH_OK;
  for (size_t i = 0; i < src->list.n; i++)
    if (cfg_strlist_push(&dst->list, src->list.v[i]) != EVSSH_OK)
      return EVSSH_ENOMEM;
  if (src->val && (dst->val = strdup(src->val)) == NULL)
    return EVSSH_ENOMEM;
  dst->set = true;
  return EVSSH_OK;
}

static int merge_layers(evssh_config *c) {
  for (int k = 0; k < K_COUNT; k++) {
    slot *dst = &c->raw[k];
    const slot *ex = &c->explicit_opt[k], *fi = &c->file[k];
    int e;
    if (k == K_PROXYCOMMAND || k == K_PROXYJUMP) {
      bool ex_proxy = c->explicit_opt[K_PROXYCOMMAND].set || c->explicit_opt[K_PROXYJUMP].set;
      e = copy_slot(dst, ex_proxy ? ex : fi);
    } else if (cfg_keywords[k].type == T_ACCUM || cfg_keywords[k].type == T_ACCUM_MULTI) {
      e = copy_slot(dst, ex->set ? ex : fi);
      if (e == EVSSH_OK && ex->set && fi->set) {
        for (size_t i = 0; i < fi->list.n && e == EVSSH_OK; i++)
          if (!cfg_strlist_has(&dst->list, fi->list.v[i]))
            e = cfg_strlist_push(&dst->list, fi->list.v[i]);
        if (e == EVSSH_OK)
          e = cfg_slot_rejoin(dst);
      }
    } else {
      e = copy_slot(dst, ex->set ? ex : fi);
    }
    if (e != EVSSH_OK)
      return e;
  }
  return EVSSH_OK;
}

static int set_default_list(evssh_config *c, int k, const char *const *items, size_t n) {
  slot *s = &c->raw[k];
  if (s->set)
    return EVSSH_OK;
  for (size_t i = 0; i < n; i++)
    if (cfg_strlist_push(&s->list, items[i]) != EVSSH_OK)
      return EVSSH_ENOMEM;
  s->set = true;
  return cfg_slot_rejoin(s);
}

/* Step 2: every default, in one place. BatchMode's keepalive comes first:
   ssh watches a batch-mode peer every five minutes unless told otherwise. */
static int apply_defaults(evssh_config *c, local_info *li, char *err, size_t errlen) {
  static const char *const id_defaults[] = {"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"};
  static const char *const ukh_defaults[] = {"~/.ssh/known_hosts", "~/.ssh/known_hosts2"};
  static const char *const gkh_defaults[] = {"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"};
  const struct { int k; const char *v; } scalar_defaults[] = {
    {K_USER, li->user}, {K_PORT, "22"}, {K_IDENTITIESONLY, "no"},
    {K_STRICT, "yes"}, {K_HASHKNOWNHOSTS, "no"}, {K_CONNECTTIMEOUT, "none"},
    {K_ALIVEINTERVAL, "0"}, {K_ALIVECOUNT, "3"},
    {K_PREFAUTH, "publickey,keyboard-interactive,password"}, {K_PASSWORDAUTH, "yes"},
    {K_KBDINT, "yes"}, {K_PUBKEYAUTH, "yes"}, {K_BATCHMODE, "no"}, {K_REKEYLIMIT, "0 0"},
    {K_LOGLEVEL, "INFO"}, {K_ADDRESSFAMILY, "any"}, {K_PASSPROMPTS, "3"},
    {K_COMPRESSION, "no"}, {K_FORWARDAGENT, "no"},
  };
  int e = EVSSH_OK;
  /* the local user name only when no User is set */
  if (!c->raw[K_USER].set && (e = local_info_need(li, err, errlen)) != EVSSH_OK)
    return e;
  if (c->raw[K_BATCHMODE].set && strcmp(c->raw[K_BATCHMODE].val, "yes") == 0)
    e = set_default_scalar(c, K_ALIVEINTERVAL, "300");
  for (size_t i = 0; i < sizeof(scalar_defaults) / sizeof(scalar_defaults[0]) && e == EVSSH_OK; i++)
    e = set_default_scalar(c, scalar_defaults[i].k, scalar_defaults[i].v);
  if (e == EVSSH_OK)
    e = set_default_list(c, K_IDENTITYFILE, id_defaults, 3);
  if (e == EVSSH_OK)
    e = set_default_list(c, K_USERKNOWNHOSTS, ukh_defaults, 2);
  if (e == EVSSH_OK)
    e = set_default_list(c, K_GLOBALKNOWNHOSTS, gkh_defaults, 2);
  return e;
}

/* Step 3: HostName first, since every other %h depends on it; lower-cased
   as ssh does. The tokens for the other keywords are filled from it. */
static int resolve_hostname(evssh_config *c, const char *host, tokens *t, char **hostname, lazy_hash *hash,
                            char *err, size_t errlen) {
  int e;
  if (c->raw[K_HOSTNAME].set) {
    t->h = host;
    e = expand(c->raw[K_HOSTNAME].val, false, false, t, "h", "HostName", hostname, err, errlen);
    if (e != EVSSH_OK)
      return e;
  } else if ((*hostname = strdup(host)) == NULL) {
    return EVSSH_ENOMEM;
  }
  for (char *q = *hostname; *q; q++)
    *q = (char)tolower((unsigned char)*q);
  if ((e = set_default_scalar(c, K_HOSTNAME, host)) != EVSSH_OK)
    return e;
  t->h = *hostname;
  t->p = c->raw[K_PORT].val;
  t->r = c->raw[K_USER].val;
  *hash = (lazy_hash){.cache = c->cache, .li = t->li, .h = t->h, .p = t->p, .r = t->r,
                      .jump = c->raw[K_PROXYJUMP].set ? c->raw[K_PROXYJUMP].val : NULL};
  t->C = hash;
  return EVSSH_OK;
}

/* Step 4, one keyword: its final value from the merged one, with the
   expansion ssh applies to that keyword. */
static int finalize_keyword(evssh_config *c, int k, const tokens *t, const char *hostname, char *err,
                            size_t errlen) {
  slot *src = &c->raw[k], *dst = &c->final[k];
  if (!src->set)
    return EVSSH_OK;
  const char *allowed = NULL;
  bool tilde = false, env = false;
  /* RevokedHostKeys takes them as OpenSSH 10 does (9.x expanded only ~) */
  if (k == K_IDENTITYFILE || k == K_USERKNOWNHOSTS || k == K_IDENTITYAGENT || k == K_CERTIFICATEFILE ||
      k == K_REVOKEDHOSTKEYS) {
    allowed = "CdhikLlnpru";
    tilde = env = true;
  } else if (k == K_PROXYCOMMAND) {
    allowed = "hpnr";
  }
  int e = EVSSH_OK;
  if (k == K_HOSTNAME) {
    dst->val = strdup(hostname);   /* already lower-cased, as ssh does */
    dst->set = dst->val != NULL;
    return dst->set ? EVSSH_OK : EVSSH_ENOMEM;
  }
  if (k == K_HOSTKEYALIAS) {
    /* no tokens; lower-cased as ssh does, like the host names it stands for */
    if ((e = copy_slot(dst, src)) == EVSSH_OK)
      for (char *q = dst->val; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    return e;
  }
  if ((k == K_PROXYCOMMAND || k == K_PROXYJUMP) && strcasecmp(src->val, "none") == 0)
    return EVSSH_OK;   /* "none" switches the proxy off */
  if (k == K_IDENTITYAGENT && strcmp(src->val, "SSH_AUTH_SOCK") == 0)
    return EVSSH_OK;   /* NULL: the caller reads $SSH_AUTH_SOCK, as it does by default */
  if (k == K_IDENTITYAGENT && strcasecmp(src->val, "none") == 0)
    return copy_slot(dst, src);
  if (k == K_IDENTITYAGENT && src->val[0] == '$' && src->val[1] != '{') {
    /* "$NAME": the socket path is in that variable; unset means no agent */
    const char *ev = getenv(src->val + 1);
    dst->val = strdup(ev && *ev ? ev : "none");
    dst->set = dst->val != NULL;
    return dst->set ? EVSSH_OK : EVSSH_ENOMEM;
  }
  if (allowed == NULL)
    return copy_slot(dst, src);
  if (cfg_is_list_type(cfg_keywords[k].type)) {
    for (size_t i = 0; i < src->list.n && e == EVSSH_OK; i++) {
      char *x = NULL;
      if (k == K_USERKNOWNHOSTS && strcasecmp(src->list.v[i], "none") == 0)
        continue;
      e = expand(src->list.v[i], tilde, env, t, allowed, cfg_keywords[k].name, &x, err, errlen);
      if (e == EVSSH_OK)
        e = cfg_strlist_push_owned(&dst->list, x);
    }
    if (e == EVSSH_OK)
      e = cfg_slot_rejoin(dst);
  } else {
    e = expand(src->val, tilde, env, t, allowed, cfg_keywords[k].name, &dst->val, err, errlen);
  }
  dst->set = e == EVSSH_OK;
  return e;
}

/* Finalize, as ssh's fill_default_options and its expansions: 1. merge
   explicit options over file values, 2. defaults, 3. HostName and the
   tokens, 4. every keyword's final value. */
int evssh_config_finalize(evssh_config *c, const char *host, char *err, size_t errlen) {
  if (c == NULL || host == NULL || *host == '\0') {
    evssh_errorf(err, errlen, "config: missing host");
    return EVSSH_EINVAL;
  }
  clear_derived(c);
  local_info li;
  char *hostname = NULL;
  lazy_hash hash;
  tokens t = {.n = host, .li = &li};
  li.loaded = false;   /* read when a default or a token needs it */
  li.cache = c->cache;
  int e = merge_layers(c);
  if (e == EVSSH_OK)
    e = apply_defaults(c, &li, err, errlen);
  if (e == EVSSH_OK)
    e = resolve_hostname(c, host, &t, &hostname, &hash, err, errlen);
  for (int k = 0; k < K_COUNT && e == EVSSH_OK; k++)
    e = finalize_keyword(c, k, &t, hostname, err, errlen);
  free(hostname);
  if (e == EVSSH_OK) {
    c->finalized = true;
    return EVSSH_OK;
  }
  if (e == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory");
  clear_derived(c);
  return e;
}

/* ------------------------------------------------------------------ get */

static const slot *lookup(const evssh_config *c, const char *keyword, bool raw) {
  if (c == NULL || keyword == NULL)
    return NULL;
  int k = cfg_keyword_index(keyword);
  if (k < 0)
    return NULL;
  if (c->finalized)
    return raw ? &c->raw[k] : &c->final[k];
  return current(c, k);
}

const char *evssh_config_get(const evssh_config *c, const char *keyword) {
  const slot *s = lookup(c, keyword, false);
  return s && s->set ? s->val : NULL;
}

const char *evssh_config_get_raw(const evssh_config *c, const char *keyword) {
  const slot *s = lookup(c, keyword, true);
  return s && s->set ? s->val : NULL;
}

static size_t get_list(const slot *s, const char *const **values) {
  if (values)
    *values = NULL;
  if (s == NULL || !s->set)
    return 0;
  if (values)
    *values = (const char *const *)s->list.v;
  return s->list.n;
}

size_t evssh_config_get_list(const evssh_config *c, const char *keyword, const char *const **values) {
  return get_list(lookup(c, keyword, false), values);
}

size_t evssh_config_get_list_raw(const evssh_config *c, const char *keyword,
                                 const char *const **values) {
  return get_list(lookup(c, keyword, true), values);
}

bool evssh_config_is_set(const evssh_config *c, const char *keyword) {
  if (c == NULL || keyword == NULL)
    return false;
  int k = cfg_keyword_index(keyword);
  return k >= 0 && (c->explicit_opt[k].set || c->file[k].set);
}

/* ----------------------------------------------------------- algorithms */

static int split_commas(const char *s, strlist *out) {
  const char *p = s;
  while (p && *p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len > 0) {
      char *item = strndup(p, len);
      if (item == NULL || cfg_strlist_push_owned(out, item) != EVSSH_OK)
        return EVSSH_ENOMEM;
    }
    p = comma ? comma + 1 : NULL;
  }
  return EVSSH_OK;
}

/* name is one of the comma-separated items of list */
static bool csv_has(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && memcmp(p, name, n) == 0)
      return true;
    p = comma ? comma + 1 : NULL;
  }
  return false;
}

static bool has_wildcard(const char *s) {
  return strpbrk(s, "*?") != NULL;
}

int evssh_config_algorithms(const char *spec, const char *defaults, const char *supported,
                            char **out, char *err, size_t errlen) {
  if (out == NULL || defaults == NULL || supported == NULL) {
    evssh_errorf(err, errlen, "algorithms: missing argument");
    return EVSSH_EINVAL;
  }
  *out = NULL;
  strlist def = {0}, sup = {0}, pats = {0}, result = {0};
  int e = EVSSH_OK;
  if (spec == NULL || *spec == '\0') {
    *out = strdup(defaults);
    e = *out ? EVSSH_OK : EVSSH_ENOMEM;
    goto done;
  }
  /* every session resolves five lists: the defaults are split only for
     + - ^, the supported list only for a wildcard */
  char mode = (spec[0] == '+' || spec[0] == '-' || spec[0] == '^') ? spec[0] : 0;
  if ((e = split_commas(mode ? spec + 1 : spec, &pats)) != EVSSH_OK)
    goto done;
  if (mode && (e = split_commas(defaults, &def)) != EVSSH_OK)
    goto done;
  for (size_t i = 0; i < pats.n; i++) {
    if (pats.v[i][0] == '!') {
      evssh_errorf(err, errlen, "negated algorithm pattern \"%s\" is not allowed", pats.v[i]);
      e = EVSSH_EINVAL;
      goto done;
    }
  }
  if (mode == '-') {
    for (size_t i = 0; i < def.n && e == EVSSH_OK; i++) {
      bool drop = false;
      for (size_t j = 0; j < pats.n && !drop; j++)
        drop = evssh_config_match_pattern(def.v[i], pats.v[j]);
      if (!drop && !cfg_strlist_has(&result, def.v[i]))
        e = cfg_strlist_push(&result, def.v[i]);
    }
  } else {
    /* "+" appends to the defaults, "^" puts the names first, a plain list
       replaces them; only the caller's names are checked and expanded */
    const strlist *parts[2] = {&pats, NULL};
    bool user_part[2] = {true, false};
    if (mode == '+') {
      parts[0] = &def; user_part[0] = false;
      parts[1] = &pats; user_part[1] = true;
    } else if (mode == '^') {
      parts[1] = &def;
    }
    for (int part = 0; part < 2 && parts[part] != NULL && e == EVSSH_OK; part++) {
      const strlist *src = parts[part];
      for (size_t i = 0; i < src->n && e == EVSSH_OK; i++) {
        const char *name = src->v[i];
        if (!user_part[part]) {
          if (!cfg_strlist_has(&result, name))
            e = cfg_strlist_push(&result, name);
          continue;
        }
        bool any = false;
        if (has_wildcard(name)) {
          if (sup.n == 0 && (e = split_commas(supported, &sup)) != EVSSH_OK)
            break;
          for (size_t j = 0; j < sup.n && e == EVSSH_OK; j++) {
            if (evssh_config_match_pattern(sup.v[j], name)) {
              any = true;
              if (!cfg_strlist_has(&result, sup.v[j]))
                e = cfg_strlist_push(&result, sup.v[j]);
            }
          }
        } else if (csv_has(supported, name)) {
          any = true;
          if (!cfg_strlist_has(&result, name))
            e = cfg_strlist_push(&result, name);
        }
        if (e == EVSSH_OK && !any) {
          evssh_errorf(err, errlen, "unsupported algorithm \"%s\"", name);
          e = EVSSH_EINVAL;
        }
      }
    }
  }
  if (e == EVSSH_OK && result.n == 0) {
    evssh_errorf(err, errlen, "algorithm list \"%s\" leaves nothing to offer", spec);
    e = EVSSH_EINVAL;
  }
  if (e == EVSSH_OK) {
    *out = cfg_join_list(&result, ",");
    if (*out == NULL)
      e = EVSSH_ENOMEM;
  }
done:
  if (e == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory");
  cfg_strlist_free(&def);
  cfg_strlist_free(&sup);
  cfg_strlist_free(&pats);
  cfg_strlist_free(&result);
  return e;
}
