/* auth.c owns user authentication (RFC 4252, 4256, 8332) as a state machine
 * over the session's transport: "none" to learn the server's methods, then
 * the methods of PreferredAuthentications that the server allows, in that
 * order: publickey (agent keys first, then IdentityFile keys, each queried
 * before it is signed with, so no passphrase is asked for a key the server
 * would refuse), keyboard-interactive and password; partial success carries
 * on with what the server still wants. When everything fails the error says
 * what was tried and what the server offered. */
#include "session.h"

#include "agent.h"
#include "config.h"
#include "hostkey.h"
#include "keys.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct auth_key {
  evssh_key *key;            /* file key: public half first, private once needed */
  unsigned char *blob;
  size_t blob_len;
  char type[64];
  char *path;                /* NULL for an agent key */
  char *label;               /* for messages: path or agent comment */
  char outcome[320];         /* what happened to it, for the failure message */
  bool unqueried;            /* signed at once, without asking the server first */
} auth_key;

typedef enum {
  A_SERVICE,                 /* waiting for SERVICE_ACCEPT */
  A_NONE,                    /* "none" sent */
  A_PUBKEY_QUERY,            /* publickey without signature sent */
  A_PUBKEY_SIGNED,
  A_KBDINT,
  A_PASSWORD,
  A_DONE,
} auth_state;

struct evssh_auth {
  auth_state state;
  auth_key *keys;
  size_t nkeys, key_idx;
  evssh_agent *agent;
  char *server_methods;
  char *preferred;
  bool batch;
  bool kbdint_tried;
  bool pubkey_noted;         /* "publickey" is in tried */
  int password_tries;        /* password requests sent */
  int max_prompts;           /* NumberOfPasswordPrompts */
  int kbdint_rounds;
  const char *method;        /* last method sent, for the success log */
  char tried[300];           /* methods, in order, with their results */
  char skipped[300];         /* identity files that could not be used */
};

/* Append to a comma-separated list for the failure message; cut, never
   overflowed, when it is full. */
static void note(char *list, size_t size, const char *what) {
  size_t n = strlen(list);
  const char *parts[2] = {n ? ", " : "", what};
  for (int i = 0; i < 2; i++)
    for (const char *c = parts[i]; *c && n + 1 < size; c++) list[n++] = *c;
  list[n] = 0;
}

static void note_tried(struct evssh_auth *a, const char *what) { note(a->tried, sizeof a->tried, what); }

static void free_keys(struct evssh_auth *a) {
  for (size_t i = 0; i < a->nkeys; i++) {
    evssh_key_free(a->keys[i].key);
    free(a->keys[i].blob);
    free(a->keys[i].path);
    free(a->keys[i].label);
  }
  free(a->keys);
  a->keys = NULL;
  a->nkeys = a->key_idx = 0;
}

void auth_free(evssh_session *s) {
  struct evssh_auth *a = s->auth;
  if (!a) return;
  free_keys(a);
  evssh_agent_close(a->agent);
  free(a->server_methods);
  free(a->preferred);
  free(a);
  s->auth = NULL;
}

static bool flag_yes(evssh_session *s, const char *kw, bool dflt) {
  const char *v = evssh_config_get(s->config, kw);
  if (!v) return dflt;
  return strcmp(v, "yes") == 0;
}

static int add_key(struct evssh_auth *a, const unsigned char *blob, size_t len, const char *path,
                   const char *label, evssh_key *key) {
  for (size_t i = 0; i < a->nkeys; i++)
    if (a->keys[i].blob_len == len && memcmp(a->keys[i].blob, blob, len) == 0) {
      /* the same key from the agent and a file: keep the agent's, remember the file */
      if (path && !a->keys[i].path) a->keys[i].path = strdup(path);
      evssh_key_free(key);
      return EVSSH_OK;
    }
  auth_key *grown = realloc(a->keys, (a->nkeys + 1) * sizeof *grown);
  if (!grown) {
    evssh_key_free(key);
    return EVSSH_ENOMEM;
  }
  a->keys = grown;
  auth_key *k = &a->keys[a->nkeys];
  memset(k, 0, sizeof *k);
  k->blob = malloc(len);
  k->path = path ? strdup(path) : NULL;
  k->label = strdup(label ? label : "?");
  if (!k->blob || (path && !k->path) || !k->label) {
    free(k->blob);
    free(k->path);
    free(k->label);
    evssh_key_free(key);
    return EVSSH_ENOMEM;
  }
  memcpy(k->blob, blob, len);
  k->blob_len = len;
  k->key = key;
  evssh_hostkey_blob_type(blob, len, k->type, sizeof k->type);
  a->nkeys++;
  return EVSSH_OK;
}

/* One private key load: whether the passphrase was asked for, and whether
   the application (or BatchMode) declined to give one. */
typedef struct passphrase_ctx {
  evssh_session *s;
  bool asked, declined, batch_blocked;
} passphrase_ctx;

static int passphrase_cb(const char *prompt, char *buf, size_t bufsize, void *ud) {
  passphrase_ctx *pc = ud;
  evssh_session *s = pc->s;
  pc->asked = true;
  if (s->auth && s->auth->batch) {
    pc->batch_blocked = pc->declined = true;
    return -1;
  }
  if (!s->prompt || s->prompt(s, prompt, false, buf, bufsize, s->prompt_ud) != 0) {
    pc->declined = true;
    return -1;
  }
  return 0;
}

/* Load a private key, asking for its passphrase up to NumberOfPasswordPrompts
   times as ssh does. On failure why says what went wrong, for the failure
   message. */
static int load_private(evssh_session *s, const char *path, evssh_key **out, char *why, size_t whylen) {
  struct evssh_auth *a = s->auth;
  int tries = a->max_prompts > 0 ? a->max_prompts : 1;
  int rc = EVSSH_EAUTH;
  char err[300] = "";
  for (int i = 0; i < tries; i++) {
    passphrase_ctx pc = {s, false, false, false};
    err[0] = 0;
    rc = evssh_key_load_private(path, passphrase_cb, &pc, out, err, sizeof err);
    if (rc == EVSSH_OK) return EVSSH_OK;
    if (pc.batch_blocked) {
      snprintf(why, whylen, "encrypted, and BatchMode forbids the passphrase prompt");
      return rc;
    }
    if (pc.declined) {
      snprintf(why, whylen, "encrypted, and %s", s->prompt ? "no passphrase was given" : "no prompt callback is set");
      return rc;
    }
    /* only a wrong passphrase is worth asking again */
    if (rc != EVSSH_EAUTH || !pc.asked) break;
    session_log(s, EVSSH_LOG_INFO, "%s", err);
  }
  session_log(s, EVSSH_LOG_INFO, "%s", err[0] ? err : evssh_strerror(rc));
  snprintf(why, whylen, "%s", err[0] ? err : evssh_strerror(rc));
  return rc;
}

/* Agent keys first, then files, as ssh orders them. */
static int collect_keys(evssh_session *s, struct evssh_auth *a) {
  const char *const *files = NULL;
  size_t nfiles = evssh_config_get_list(s->config, "IdentityFile", &files);
  bool explicit_files = evssh_config_is_set(s->config, "IdentityFile");
  bool identities_only = flag_yes(s, "IdentitiesOnly", false);
  /* public halves of the files, used to filter agent keys under IdentitiesOnly */
  evssh_key **file_keys = calloc(nfiles ? nfiles : 1, sizeof *file_keys);
  if (!file_keys) return EVSSH_ENOMEM;
  for (size_t i = 0; i < nfiles; i++) {
    char pub[1024], err[300];
    if (strcmp(files[i], "none") == 0) continue;
    snprintf(pub, sizeof pub, "%s.pub", files[i]);
    if (evssh_key_load_public(pub, &file_keys[i], err, sizeof err) != EVSSH_OK) file_keys[i] = NULL;
  }
  const char *agent_sock = evssh_config_get(s->config, "IdentityAgent");
  if (!(agent_sock && strcmp(agent_sock, "none") == 0)) {
    char err[300] = "";
    if (evssh_agent_open(agent_sock, &a->agent, err, sizeof err) == EVSSH_OK) {
      evssh_agent_identity *ids = NULL;
      size_t n = 0;
      if (evssh_agent_identities(a->agent, &ids, &n, err, sizeof err) == EVSSH_OK) {
        for (size_t i = 0; i < n; i++) {
          if (identities_only) {
            bool listed = false;
            for (size_t j = 0; j < nfiles && !listed; j++) {
              const unsigned char *b;
              size_t bl;
              listed = file_keys[j] && evssh_key_public_blob(file_keys[j], &b, &bl) == EVSSH_OK &&
                       bl == ids[i].blob_len && memcmp(b, ids[i].blob, bl) == 0;
            }
            if (!listed) continue;
          }
          char label[300];
          snprintf(label, sizeof label, "agent key %s", ids[i].comment && *ids[i].comment ? ids[i].comment : "(no comment)");
          add_key(a, ids[i].blob, ids[i].blob_len, NULL, label, NULL);
        }
        evssh_agent_identities_free(ids, n);
      } else {
        session_log(s, EVSSH_LOG_DEBUG, "ssh-agent: %s", err);
      }
    } else if (agent_sock) {
      session_log(s, EVSSH_LOG_INFO, "%s", err);
    }
  }
  for (size_t i = 0; i < nfiles; i++) {
    struct stat st;
    if (strcmp(files[i], "none") == 0) continue;
    if (stat(files[i], &st) != 0) {
      /* the defaults are tried quietly, as ssh does; a configured file
         that is missing belongs in the failure message. A .pub whose
         private half is only in the agent is fine: the agent signs. */
      if (explicit_files && !file_keys[i]) {
        char what[400];
        snprintf(what, sizeof what, "%s (%s)", files[i], strerror(errno));
        session_log(s, EVSSH_LOG_INFO, "identity file %s", what);
        note(a->skipped, sizeof a->skipped, what);
      }
      evssh_key_free(file_keys[i]);
      file_keys[i] = NULL;
      continue;
    }
    evssh_key *k = file_keys[i];
    file_keys[i] = NULL;
    if (!k) {
      /* no .pub beside it: the private file itself must be read (it may
         ask for a passphrase before the server has seen the key) */
      char why[300] = "";
      if (load_private(s, files[i], &k, why, sizeof why) != EVSSH_OK) {
        char what[400];
        snprintf(what, sizeof what, "%s (%s)", files[i], why);
        note(a->skipped, sizeof a->skipped, what);
        continue;
      }
    }
    const unsigned char *blob;
    size_t len;
    evssh_key_public_blob(k, &blob, &len);
    int rc = add_key(a, blob, len, files[i], files[i], k);
    if (rc) {
      for (size_t j = i + 1; j < nfiles; j++) evssh_key_free(file_keys[j]);
      free(file_keys);
      return rc;
    }
  }
  free(file_keys);
  return EVSSH_OK;
}

int auth_start(evssh_session *s) {
  struct evssh_auth *a = calloc(1, sizeof *a);
  if (!a) return EVSSH_ENOMEM;
  s->auth = a;
  const char *pref = evssh_config_get(s->config, "PreferredAuthentications");
  a->preferred = strdup(pref ? pref : "publickey,keyboard-interactive,password");
  if (!a->preferred) return EVSSH_ENOMEM;
  a->batch = flag_yes(s, "BatchMode", false);
  const char *prompts = evssh_config_get(s->config, "NumberOfPasswordPrompts");
  a->max_prompts = prompts ? atoi(prompts) : 3;
  if (flag_yes(s, "PubkeyAuthentication", true)) {
    int rc = collect_keys(s, a);
    if (rc) return rc;
  }
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_SERVICE_REQUEST);
  if (!b || evssh_buf_put_cstring(b, "ssh-userauth")) return EVSSH_ENOMEM;
  a->state = A_SERVICE;
  return transport_end(s->transport);
}

static evssh_buf *begin_request(evssh_session *s, const char *method) {
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_USERAUTH_REQUEST);
  if (!b) return NULL;
  if (evssh_buf_put_cstring(b, s->opt.user) || evssh_buf_put_cstring(b, "ssh-connection") ||
      evssh_buf_put_cstring(b, method))
    return NULL;
  return b;
}

static int sign_request(evssh_session *s, auth_key *k, const char *alg, evssh_buf *sig) {
  /* RFC 4252 7: the signature covers the session id and the request */
  size_t sid_len;
  const unsigned char *sid = transport_session_id(s->transport, &sid_len);
  evssh_buf data = EVSSH_BUF_INIT;
  int rc = evssh_buf_put_string(&data, sid, sid_len);
  rc = rc ? rc : evssh_buf_put_u8(&data, SSH_MSG_USERAUTH_REQUEST);
  rc = rc ? rc : evssh_buf_put_cstring(&data, s->opt.user);
  rc = rc ? rc : evssh_buf_put_cstring(&data, "ssh-connection");
  rc = rc ? rc : evssh_buf_put_cstring(&data, "publickey");
  rc = rc ? rc : evssh_buf_put_bool(&data, true);
  rc = rc ? rc : evssh_buf_put_cstring(&data, alg);
  rc = rc ? rc : evssh_buf_put_string(&data, k->blob, k->blob_len);
  char err[300] = "";
  if (rc == EVSSH_OK) {
    if (k->key && evssh_key_can_sign(k->key))
      rc = evssh_key_sign(k->key, alg, buf_ptr(&data), buf_avail(&data), sig);
    else if (!k->key && s->auth->agent)
      rc = evssh_agent_sign(s->auth->agent, k->blob, k->blob_len, alg, buf_ptr(&data), buf_avail(&data),
                            sig, err, sizeof err);
    else
      rc = EVSSH_EAUTH;
  }
  buf_release(&data);
  if (rc) session_log(s, EVSSH_LOG_INFO, "signing with %s failed: %s", k->label, err[0] ? err : evssh_strerror(rc));
  return rc;
}

static int send_pubkey(evssh_session *s, auth_key *k, const char *alg, bool signed_req) {
  evssh_buf sig = EVSSH_BUF_INIT;
  if (signed_req) {
    int rc = sign_request(s, k, alg, &sig);
    if (rc) {
      buf_release(&sig);
      return rc;
    }
  }
  evssh_buf *b = begin_request(s, "publickey");
  int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
  rc = rc ? rc : evssh_buf_put_bool(b, signed_req);
  rc = rc ? rc : evssh_buf_put_cstring(b, alg);
  rc = rc ? rc : evssh_buf_put_string(b, k->blob, k->blob_len);
  if (signed_req && rc == EVSSH_OK) rc = evssh_buf_put_string(b, buf_ptr(&sig), buf_avail(&sig));
  buf_release(&sig);
  if (b) {
    int rc2 = transport_end(s->transport);
    if (rc == EVSSH_OK) rc = rc2;
  }
  s->auth->state = signed_req ? A_PUBKEY_SIGNED : A_PUBKEY_QUERY;
  return rc;
}

/* Offer the next key the server might take; false when none is left. */
static bool try_next_key(evssh_session *s, int *rc) {
  struct evssh_auth *a = s->auth;
  while (a->key_idx < a->nkeys) {
    auth_key *k = &a->keys[a->key_idx];
    const char *alg = evssh_sig_alg_for_type(k->type, transport_server_sig_algs(s->transport),
                                             s->opt.pubkey_algs);
    if (!alg) {
      snprintf(k->outcome, sizeof k->outcome, "no mutual signature algorithm");
      a->key_idx++;
      continue;
    }
    if (!a->pubkey_noted) {
      note_tried(a, "publickey");
      a->pubkey_noted = true;
    }
    a->method = "publickey";
    /* The query before signing exists so no passphrase is asked for a key
       the server would refuse. A key file that opens without one needs no
       such care: sign at once and save a round trip. */
    if (k->path && k->key && !evssh_key_can_sign(k->key)) {
      evssh_key *priv = NULL;
      char err[300];
      if (evssh_key_load_private(k->path, NULL, NULL, &priv, err, sizeof err) == EVSSH_OK) {
        evssh_key_free(k->key);
        k->key = priv;
      }
    }
    if (k->key && evssh_key_can_sign(k->key)) {
      session_log(s, EVSSH_LOG_DEBUG, "offering %s key %s (%s), signed at once", k->type, k->label, alg);
      k->unqueried = true;
      *rc = send_pubkey(s, k, alg, true);
      if (*rc == EVSSH_EAUTH || *rc == EVSSH_EINVAL) {
        /* could not sign after all: ask the server the usual way */
        k->unqueried = false;
        *rc = send_pubkey(s, k, alg, false);
      }
      return true;
    }
    session_log(s, EVSSH_LOG_DEBUG, "offering %s key %s (%s)", k->type, k->label, alg);
    *rc = send_pubkey(s, k, alg, false);
    return true;
  }
  return false;
}

static int ask(evssh_session *s, const char *prompt, bool echo, char *answer, size_t size) {
  if (!s->prompt || s->auth->batch) return -1;
  return s->prompt(s, prompt, echo, answer, size, s->prompt_ud);
}

/* A set password is sent once; one typed at the prompt may be asked for
   again, up to NumberOfPasswordPrompts, as ssh does. */
static bool password_left(const struct evssh_auth *a, const evssh_session *s) {
  if (s->password) return a->password_tries == 0;
  return s->prompt && !a->batch && a->password_tries < (a->max_prompts > 0 ? a->max_prompts : 1);
}

static int send_password(evssh_session *s) {
  struct evssh_auth *a = s->auth;
  a->password_tries++;
  char answer[512] = "";
  const char *pw = s->password;
  if (!pw) {
    char prompt[300];
    snprintf(prompt, sizeof prompt, "%s@%s's password: ", s->opt.user, s->opt.hostname);
    if (ask(s, prompt, false, answer, sizeof answer) != 0) {
      note_tried(a, "password (no answer at the prompt)");
      a->password_tries = a->max_prompts > 0 ? a->max_prompts : 1;
      return EVSSH_EAGAIN;
    }
    pw = answer;
  }
  a->method = "password";
  session_log(s, EVSSH_LOG_DEBUG, "trying method password");
  evssh_buf *b = begin_request(s, "password");
  int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
  if (b) rc = evssh_buf_put_bool(b, false);
  if (b && rc == EVSSH_OK) rc = evssh_buf_put_cstring(b, pw);
  OPENSSL_cleanse(answer, sizeof answer);
  if (b) {
    int rc2 = transport_end(s->transport);
    if (rc == EVSSH_OK) rc = rc2;
  }
  a->state = A_PASSWORD;
  return rc;
}

static int send_kbdint(evssh_session *s) {
  struct evssh_auth *a = s->auth;
  a->kbdint_tried = true;
  a->kbdint_rounds = 0;
  a->method = "keyboard-interactive";
  session_log(s, EVSSH_LOG_DEBUG, "trying method keyboard-interactive");
  evssh_buf *b = begin_request(s, "keyboard-interactive");
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_cstring(b, "");
  if (rc == EVSSH_OK) rc = evssh_buf_put_cstring(b, "");
  int rc2 = transport_end(s->transport);
  a->state = A_KBDINT;
  return rc ? rc : rc2;
}

/* "; reason" appended to the tail of the failure message */
static void note_reason(char *why, size_t size, const char *reason) {
  size_t n = strlen(why);
  if (n < size) snprintf(why + n, size - n, "; %s", reason);
}

static int fail_auth(evssh_session *s) {
  struct evssh_auth *a = s->auth;
  const char *methods = a->server_methods ? a->server_methods : "";
  char keys[600] = "", why[200] = "";
  for (size_t i = 0; i < a->nkeys; i++) {
    char what[400];
    snprintf(what, sizeof what, "%s (%s)", a->keys[i].label, a->keys[i].outcome[0] ? a->keys[i].outcome : "not offered");
    note(keys, sizeof keys, what);
  }
  /* why nothing (more) could be tried */
  bool any_preferred = false;
  char *pref = strdup(a->preferred);
  for (char *save = NULL, *m = pref ? strtok_r(pref, ",", &save) : NULL; m; m = strtok_r(NULL, ",", &save))
    any_preferred = any_preferred || namelist_contains(methods, m);
  free(pref);
  bool typed = namelist_contains(methods, "password") || namelist_contains(methods, "keyboard-interactive");
  if (!any_preferred) {
    snprintf(why, sizeof why, "; none of PreferredAuthentications (%s) is allowed", a->preferred);
  } else {
    if (namelist_contains(methods, "publickey") && a->nkeys == 0)
      note_reason(why, sizeof why, flag_yes(s, "PubkeyAuthentication", true) ? "no keys found (IdentityFile, agent)"
                                                                              : "PubkeyAuthentication=no");
    if (typed && a->batch)
      note_reason(why, sizeof why, "BatchMode=yes: nothing was prompted for");
    else if (typed && !s->password && !s->prompt)
      note_reason(why, sizeof why, "no password or prompt callback set");
  }
  a->state = A_DONE;
  transport_fail(s->transport, EVSSH_EAUTH, "Permission denied for %s@%s: server allows %s; tried %s; keys: %s%s%s%s",
                 s->opt.user, s->opt.hostname, methods[0] ? methods : "(nothing)",
                 a->tried[0] ? a->tried : "nothing", keys[0] ? keys : "none", a->skipped[0] ? "; not usable: " : "",
                 a->skipped, why);
  return EVSSH_EAUTH;
}

/* Pick the next method: PreferredAuthentications order, filtered by what
   the server still allows and what we have not used up. */
static int next_method(evssh_session *s) {
  struct evssh_auth *a = s->auth;
  const char *methods = a->server_methods ? a->server_methods : "";
  char *pref = strdup(a->preferred);
  if (!pref) return EVSSH_ENOMEM;
  int rc = EVSSH_EAGAIN;
  for (char *save = NULL, *m = strtok_r(pref, ",", &save); m && rc == EVSSH_EAGAIN;
       m = strtok_r(NULL, ",", &save)) {
    if (!namelist_contains(methods, m)) continue;
    if (strcmp(m, "publickey") == 0) {
      int r = EVSSH_OK;
      if (try_next_key(s, &r)) rc = r;
    } else if (strcmp(m, "keyboard-interactive") == 0 && !a->kbdint_tried &&
               flag_yes(s, "KbdInteractiveAuthentication", true) && (s->password || (s->prompt && !a->batch))) {
      rc = send_kbdint(s);
    } else if (strcmp(m, "password") == 0 && password_left(a, s) && flag_yes(s, "PasswordAuthentication", true)) {
      rc = send_password(s);
    }
  }
  free(pref);
  if (rc == EVSSH_EAGAIN) return fail_auth(s);
  return rc;
}

static int handle_info_request(evssh_session *s, evssh_reader *r) {
  struct evssh_auth *a = s->auth;
  const char *name, *instr, *lang;
  size_t nl, il, ll;
  uint32_t n;
  if (evssh_read_string(r, &name, &nl) || evssh_read_string(r, &instr, &il) ||
      evssh_read_string(r, &lang, &ll) || evssh_read_u32(r, &n) || n > 64)
    return transport_fail(s->transport, EVSSH_EPROTO, "malformed keyboard-interactive request");
  if (++a->kbdint_rounds > 16)
    return transport_fail(s->transport, EVSSH_EAUTH, "keyboard-interactive: too many rounds");
  evssh_buf answers = EVSSH_BUF_INIT;
  answers.secret = true;
  int rc = EVSSH_OK;
  for (uint32_t i = 0; i < n && rc == EVSSH_OK; i++) {
    char *prompt = NULL;
    bool echo;
    if (evssh_read_cstring(r, &prompt) || evssh_read_bool(r, &echo)) {
      free(prompt);
      rc = transport_fail(s->transport, EVSSH_EPROTO, "malformed keyboard-interactive prompt");
      break;
    }
    char answer[512] = "";
    /* a lone hidden prompt is the password, as ssh assumes */
    if (n == 1 && !echo && s->password && a->kbdint_rounds == 1) {
      snprintf(answer, sizeof answer, "%s", s->password);
    } else if (ask(s, prompt, echo, answer, sizeof answer) != 0) {
      free(prompt);
      buf_release(&answers);
      note_tried(a, "keyboard-interactive (no answer to a prompt)");
      return next_method(s);
    }
    free(prompt);
    rc = evssh_buf_put_cstring(&answers, answer);
    OPENSSL_cleanse(answer, sizeof answer);
  }
  if (rc == EVSSH_OK) {
    evssh_buf *b = transport_begin(s->transport, SSH_MSG_USERAUTH_INFO_RESPONSE);
    rc = b ? evssh_buf_put_u32(b, n) : EVSSH_ENOMEM;
    if (b && rc == EVSSH_OK) rc = buf_append(b, buf_ptr(&answers), buf_avail(&answers));
    if (b) {
      int rc2 = transport_end(s->transport);
      if (rc == EVSSH_OK) rc = rc2;
    }
  }
  buf_release(&answers);
  return rc;
}

static int handle_pk_ok(evssh_session *s) {
  struct evssh_auth *a = s->auth;
  auth_key *k = &a->keys[a->key_idx];
  /* agent keys carry no evssh_key; a file key may so far be its .pub */
  if (k->key && !evssh_key_can_sign(k->key)) {
    evssh_key *priv = NULL;
    char why[300] = "";
    int rc = load_private(s, k->path, &priv, why, sizeof why);
    if (rc) {
      snprintf(k->outcome, sizeof k->outcome, "server would accept it, but: %s", why);
      a->key_idx++;
      return next_method(s);
    }
    evssh_key_free(k->key);
    k->key = priv;
  }
  const char *alg = evssh_sig_alg_for_type(k->type, transport_server_sig_algs(s->transport), s->opt.pubkey_algs);
  int rc = send_pubkey(s, k, alg, true);
  if (rc == EVSSH_EAUTH || rc == EVSSH_EINVAL) {
    snprintf(k->outcome, sizeof k->outcome, "signing failed");
    a->key_idx++;
    return next_method(s);
  }
  return rc;
}

int auth_handle_packet(evssh_session *s, uint8_t msg, evssh_reader *body) {
  struct evssh_auth *a = s->auth;
  if (!a) return EVSSH_EPROTO;
  switch (msg) {
  case SSH_MSG_SERVICE_ACCEPT: {
    if (a->state != A_SERVICE)
      return transport_fail(s->transport, EVSSH_EPROTO, "unexpected SERVICE_ACCEPT");
    /* "none" only serves to learn the server's methods, and any failure
       reply lists them: when publickey comes first and we have a key, its
       query goes out at once and saves a round trip (and sshd the work of
       a separate "none" request, some 9 ms measured here) */
    size_t first_len = strcspn(a->preferred, ",");
    if (a->nkeys > 0 && first_len == 9 && strncmp(a->preferred, "publickey", 9) == 0) {
      int rc = EVSSH_OK;
      if (try_next_key(s, &rc)) return rc;
    }
    evssh_buf *b = begin_request(s, "none");
    if (!b) return EVSSH_ENOMEM;
    a->state = A_NONE;
    return transport_end(s->transport);
  }
  case SSH_MSG_USERAUTH_BANNER: {
    const char *text;
    size_t len;
    if (evssh_read_string(body, &text, &len) == EVSSH_OK)
      session_log(s, EVSSH_LOG_INFO, "server banner: %.*s", (int)(len > 500 ? 500 : len), text);
    return EVSSH_OK;
  }
  case SSH_MSG_USERAUTH_SUCCESS:
    if (a->state == A_SERVICE || a->state == A_DONE)
      return transport_fail(s->transport, EVSSH_EPROTO, "unexpected USERAUTH_SUCCESS");
    if (a->state == A_PUBKEY_SIGNED)
      session_log(s, EVSSH_LOG_INFO, "authenticated with publickey %s", a->keys[a->key_idx].label);
    else
      session_log(s, EVSSH_LOG_INFO, "authenticated with %s", a->state == A_NONE ? "none" : a->method);
    a->state = A_DONE;
    free_keys(a);
    evssh_agent_close(a->agent);
    a->agent = NULL;
    return session_auth_done(s);
  case SSH_MSG_USERAUTH_FAILURE: {
    const char *methods;
    size_t mlen;
    bool partial;
    if (evssh_read_string(body, &methods, &mlen) || evssh_read_bool(body, &partial))
      return transport_fail(s->transport, EVSSH_EPROTO, "malformed USERAUTH_FAILURE");
    free(a->server_methods);
    a->server_methods = strndup(methods, mlen);
    if (!a->server_methods) return EVSSH_ENOMEM;
    switch (a->state) {
    case A_PUBKEY_QUERY:
      snprintf(a->keys[a->key_idx].outcome, sizeof a->keys[0].outcome, "refused");
      a->key_idx++;
      break;
    case A_PUBKEY_SIGNED:
      snprintf(a->keys[a->key_idx].outcome, sizeof a->keys[0].outcome, "%s",
               partial ? "accepted, more methods required"
                       : a->keys[a->key_idx].unqueried ? "refused" : "signature refused");
      a->key_idx++;
      if (partial) {
        /* "publickey" was noted when the first key went out: qualify it */
        size_t n = strlen(a->tried), w = strlen("publickey");
        if (n >= w && strcmp(a->tried + n - w, "publickey") == 0)
          snprintf(a->tried + n, sizeof a->tried - n, " (partial success)");
        else
          note_tried(a, "publickey (partial success)");
      }
      break;
    case A_PASSWORD:
      note_tried(a, partial ? "password (partial success)" : "password (rejected)");
      break;
    case A_KBDINT:
      note_tried(a, partial ? "keyboard-interactive (partial success)" : "keyboard-interactive (rejected)");
      break;
    case A_NONE:
      break;
    default:
      return transport_fail(s->transport, EVSSH_EPROTO, "unexpected USERAUTH_FAILURE");
    }
    if (partial) session_log(s, EVSSH_LOG_INFO, "partial success; server wants more: %s", a->server_methods);
    return next_method(s);
  }
  case 60:
    if (a->state == A_PUBKEY_QUERY) return handle_pk_ok(s);
    if (a->state == A_KBDINT) return handle_info_request(s, body);
    if (a->state == A_PASSWORD) {
      /* PASSWD_CHANGEREQ: changing it is for an interactive ssh; count the
         password as failed and go on with whatever else the server takes */
      const char *text;
      size_t len;
      if (evssh_read_string(body, &text, &len) == EVSSH_OK)
        session_log(s, EVSSH_LOG_INFO, "server wants a new password: %.*s", (int)(len > 200 ? 200 : len), text);
      note_tried(a, "password (expired: the server wants it changed)");
      return next_method(s);
    }
    return transport_fail(s->transport, EVSSH_EPROTO, "unexpected message 60 during authentication");
  default:
    if (msg >= 50 && msg <= 79) {
      /* methods we did not ask for (password change, GSSAPI): refuse the
         exchange by failing cleanly rather than guessing */
      return transport_fail(s->transport, EVSSH_EAUTH, "server sent unsupported authentication message %u", msg);
    }
    return transport_fail(s->transport, EVSSH_EPROTO, "unexpected message %u during authentication", msg);
  }
}
