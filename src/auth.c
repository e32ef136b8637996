/* auth.c owns user authentication (RFC 4252, 4256, 8332) as a state machine
 * over the session's transport: "none" to learn the server's methods, then
 * the methods of PreferredAuthentications that the server allows, in that
 * order: publickey (agent keys first, then IdentityFile keys, each queried
 * before it is signed with, so no passphrase is asked for a key the server
 * would refuse; user certificates as ssh finds them: the agent's,
 * IDENTITY-cert.pub right after its key unless CertificateFile is set, and
 * each CertificateFile last, signed by the file or agent key it certifies;
 * one that is expired, not yet valid or for another key is skipped with a
 * message), keyboard-interactive and password; partial success carries
 * on with what the server still wants. When everything fails the error says
 * what was tried and what the server offered, whole: lists grow as needed.
 * A key that cannot be used (encrypted without a prompt, a wrong
 * passphrase, a failed signature) is noted and the next key or method
 * follows; if the server's methods are not known yet at that point, a
 * "none" request learns them first. The agent's key list may come from the
 * session's shared cache; when that list proves stale (the agent refuses a
 * listed key, or the keys run out) the agent is asked again once and the
 * untried keys are rebuilt from its answer (reask_agent). */
#include "auth.h"

#include "agent.h"
#include "cache.h"
#include "buf.h"
#include "hostkey.h"
#include "keys.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct auth_key {
  evssh_key *key;            /* file key: public half first, private once needed */
  unsigned char *blob;
  size_t blob_len;
  char type[64];
  char *path;                /* NULL for an agent key */
  char *label;               /* for messages: path or agent comment */
  unsigned char *agent_blob; /* a CertificateFile certificate whose key is in the agent: the
                                plain key the agent signs with (NULL: blob itself) */
  size_t agent_blob_len;
  char outcome[400];         /* what happened to it, for the failure message */
  bool unqueried;            /* signed at once, without asking the server first */
  bool agent_refused;        /* the agent would not sign with it */
  bool seen_set;             /* seen: the stat() of path when the keys were collected, */
  struct stat seen;          /* standing for the cache's freshness stat at signing time */
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
  bool agent_cached;         /* the agent's list came from the shared cache */
  bool agent_reasked;        /* ... and was asked for again (once at most) */
  bool reasking;             /* rebuilding the key list: prompt for nothing */
  char *server_methods;
  char *preferred;
  bool batch;
  bool kbdint_tried;
  bool service_pending;      /* the first request went with SERVICE_REQUEST,
                                before the server's SERVICE_ACCEPT */
  bool pubkey_noted;         /* "publickey" is in tried */
  int password_tries;        /* password requests sent */
  int max_prompts;           /* NumberOfPasswordPrompts */
  int kbdint_rounds;
  const char *method;        /* last method sent, for the success log */
  evssh_buf tried;           /* methods, in order, with their results */
  evssh_buf skipped;         /* identity files that could not be used */
  auth_params p;
  const evssh_options *opt;
  evssh_transport *t;
};

#define LOG(a, level, ...) diag_log((a)->p.diag, level, __VA_ARGS__)

/* Append to a comma-separated list for the failure message, kept
   NUL-terminated; on allocation failure the list just stays shorter. */
static void note(evssh_buf *list, const char *what) {
  if (buf_avail(list)) list->len--;   /* drop the NUL */
  if (buf_avail(list)) buf_append(list, ", ", 2);
  buf_append(list, what, strlen(what) + 1);
}

static const char *text(const evssh_buf *list) { return buf_avail(list) ? (const char *)buf_ptr(list) : ""; }

static void note_tried(struct evssh_auth *a, const char *what) { note(&a->tried, what); }

static int auth_fail(struct evssh_auth *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int auth_fail(struct evssh_auth *a, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = base_vasprintf(fmt, ap);
  va_end(ap);
  a->state = A_DONE;
  a->p.ev->fail(a->p.ctx, code, msg ? msg : evssh_strerror(code));
  free(msg);
  return code;
}

static void free_key(auth_key *k) {
  evssh_key_free(k->key);
  free(k->blob);
  free(k->path);
  free(k->label);
  free(k->agent_blob);
}

static void free_keys(struct evssh_auth *a) {
  for (size_t i = 0; i < a->nkeys; i++) free_key(&a->keys[i]);
  free(a->keys);
  a->keys = NULL;
  a->nkeys = a->key_idx = 0;
}

void auth_free(evssh_auth *a) {
  if (!a) return;
  free_keys(a);
  evssh_agent_close(a->agent);
  free(a->server_methods);
  free(a->preferred);
  buf_release(&a->tried);
  buf_release(&a->skipped);
  free(a);
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

typedef struct passphrase_ctx {
  struct evssh_auth *a;
  bool asked, declined, batch_blocked;
} passphrase_ctx;

static int ask(struct evssh_auth *a, const char *prompt, bool echo, char *answer, size_t size) {
  if (!a->p.can_prompt || a->batch) return -1;
  return a->p.ev->prompt(a->p.ctx, prompt, echo, answer, size);
}

static int passphrase_cb(const char *prompt, char *buf, size_t bufsize, void *ud) {
  passphrase_ctx *pc = ud;
  pc->asked = true;
  /* the list is rebuilt after a stale agent list: a key file whose
     passphrase was wanted was asked for (and kept, or declined) already */
  if (pc->a->reasking) {
    pc->declined = true;
    return -1;
  }
  if (pc->a->batch) {
    pc->batch_blocked = pc->declined = true;
    return -1;
  }
  if (ask(pc->a, prompt, false, buf, bufsize) != 0) {
    pc->declined = true;
    return -1;
  }
  return 0;
}

/* Load a private key, asking for its passphrase up to NumberOfPasswordPrompts
   times as ssh does. On failure why says what went wrong, for the failure
   message. */
static int load_private(struct evssh_auth *a, const char *path, const struct stat *seen, evssh_key **out, char *why,
                        size_t whylen) {
  int tries = a->max_prompts > 0 ? a->max_prompts : 1;
  int rc = EVSSH_EAUTH;
  char err[300] = "";
  for (int i = 0; i < tries; i++) {
    passphrase_ctx pc = {a, false, false, false};
    err[0] = 0;
    rc = cache_key_load_private_seen(a->p.cache, path, seen, passphrase_cb, &pc, out, err, sizeof err);
    if (rc == EVSSH_OK) return EVSSH_OK;
    if (pc.batch_blocked) {
      snprintf(why, whylen, "encrypted, and BatchMode forbids the passphrase prompt");
      return rc;
    }
    if (pc.declined) {
      snprintf(why, whylen, "encrypted, and %s", a->p.can_prompt ? "no passphrase was given" : "no prompt callback is set");
      return rc;
    }
    /* only a wrong passphrase is worth asking again */
    if (rc != EVSSH_EAUTH || !pc.asked) break;
    LOG(a, EVSSH_LOG_INFO, "%s", err);
  }
  LOG(a, EVSSH_LOG_INFO, "%s", err[0] ? err : evssh_strerror(rc));
  snprintf(why, whylen, "%s", err[0] ? err : evssh_strerror(rc));
  return rc;
}

static bool listed_file_key(evssh_key **file_keys, size_t nfiles, const unsigned char *blob, size_t len) {
  for (size_t j = 0; j < nfiles; j++) {
    const unsigned char *b;
    size_t bl;
    if (file_keys[j] && evssh_key_public_blob(file_keys[j], &b, &bl) == EVSSH_OK && bl == len &&
        memcmp(b, blob, bl) == 0)
      return true;
  }
  return false;
}

static void note_skipped(struct evssh_auth *a, const char *file, const char *why);

/* A user certificate worth sending now: a user certificate within its
   validity window. Others are skipped with a message, as the issue asks
   (the server would refuse them anyway, and a stale certificate is worth
   a line in the failure message, not a round trip). */
static bool cert_offerable(struct evssh_auth *a, const evssh_cert *c, const char *label) {
  char why[300] = "";
  if (c->cert_type != EVSSH_CERT_TYPE_USER)
    snprintf(why, sizeof why, "a host certificate, not a user certificate");
  else if (evssh_cert_check_validity(c, (uint64_t)time(NULL), why, sizeof why) == EVSSH_CERT_OK)
    return true;
  char desc[300];
  evssh_cert_describe(c, desc, sizeof desc);
  LOG(a, EVSSH_LOG_INFO, "certificate %s (%s, %s) not offered: %s", label, c->type, desc, why);
  char *what = base_asprintf("certificate %s", why);
  note_skipped(a, label, what ? what : why);
  free(what);
  return false;
}

static void collect_agent_keys(struct evssh_auth *a, evssh_key **file_keys, size_t nfiles) {
  const char *agent_sock = a->opt->identity_agent;
  if (agent_sock && strcmp(agent_sock, "none") == 0) return;
  char err[300] = "";
  if (evssh_agent_open(agent_sock, &a->agent, err, sizeof err) != EVSSH_OK) {
    if (agent_sock) LOG(a, EVSSH_LOG_INFO, "%s", err);
    return;
  }
  /* the list from the shared cache when it has a recent one (the agent
     still signs: this connection is for that) */
  cache_agent_list *list = NULL;
  if (cache_agent_identities(a->p.cache, a->agent, a->agent_reasked, &list, &a->agent_cached, err, sizeof err) !=
      EVSSH_OK) {
    LOG(a, EVSSH_LOG_DEBUG, "ssh-agent: %s", err);
    return;
  }
  if (a->agent_cached) LOG(a, EVSSH_LOG_DEBUG, "ssh-agent: %zu key(s), as listed shortly before", list->n);
  const evssh_agent_identity *ids = list->ids;
  for (size_t i = 0, n = list->n; i < n; i++) {
    /* a certificate the agent holds counts as listed when its key is */
    const evssh_cert *c = ids[i].cert;
    if (a->opt->identities_only && !listed_file_key(file_keys, nfiles, c ? c->key_blob : ids[i].blob,
                                                    c ? c->key_blob_len : ids[i].blob_len))
      continue;
    char label[300];
    snprintf(label, sizeof label, "agent %s %s", c ? "certificate" : "key",
             ids[i].comment && *ids[i].comment ? ids[i].comment : "(no comment)");
    if (c && !cert_offerable(a, c, label)) continue;
    add_key(a, ids[i].blob, ids[i].blob_len, NULL, label, NULL);
  }
  cache_agent_release(list);
}

static void note_skipped(struct evssh_auth *a, const char *file, const char *why) {
  char *what = base_asprintf("%s (%s)", file, why);
  if (what) note(&a->skipped, what);
  free(what);
}

/* A certificate file for the key plain (an identity file's public blob,
   whose private half is at identity), or, with plain NULL, for whichever
   collected key it certifies (a CertificateFile). Unusable certificates are
   noted and skipped; only memory failure is an error. */
static int add_cert_file(struct evssh_auth *a, const char *path, const unsigned char *plain, size_t plain_len,
                         const char *identity) {
  evssh_key *ck = NULL;
  char err[400] = "";
  int rc = evssh_key_load_cert_file(path, &ck, err, sizeof err);
  if (rc == EVSSH_ENOMEM) return rc;
  if (rc) {
    LOG(a, EVSSH_LOG_INFO, "certificate %s", err);
    note_skipped(a, path, err);
    return EVSSH_OK;
  }
  const evssh_cert *c = evssh_key_cert(ck);
  size_t owner = a->nkeys;   /* index: add_key moves the array */
  if (!plain) {
    for (size_t i = 0; i < a->nkeys && owner == a->nkeys; i++)
      if (!evssh_cert_is_cert_name(a->keys[i].type) && a->keys[i].blob_len == c->key_blob_len &&
          memcmp(a->keys[i].blob, c->key_blob, c->key_blob_len) == 0)
        owner = i;
  }
  bool mine = plain ? plain_len == c->key_blob_len && memcmp(plain, c->key_blob, plain_len) == 0 : owner < a->nkeys;
  if (!mine) {
    char fp[64] = "?";
    evssh_fingerprint_sha256(c->key_blob, c->key_blob_len, fp, sizeof fp);
    char *why = plain ? base_asprintf("certificate is for another key (%s %s) than %s", c->key_type, fp, identity)
                      : base_asprintf("certificate for %s %s, a key that is neither an identity file nor in the agent",
                                      c->key_type, fp);
    LOG(a, EVSSH_LOG_INFO, "%s: %s; not offered", path, why ? why : "certificate for another key");
    note_skipped(a, path, why ? why : "certificate for another key");
    free(why);
    evssh_key_free(ck);
    return EVSSH_OK;
  }
  if (!cert_offerable(a, c, path)) {
    evssh_key_free(ck);
    return EVSSH_OK;
  }
  /* a key the agent holds (and no file does) has no key object: the agent
     signs for the certificate with the plain key */
  bool by_agent = !plain && !a->keys[owner].key;
  unsigned char *agent_blob = NULL;
  size_t agent_blob_len = 0;
  char *key_path = NULL;
  if (by_agent) {
    agent_blob_len = a->keys[owner].blob_len;
    if (!(agent_blob = malloc(agent_blob_len))) rc = EVSSH_ENOMEM;
    else memcpy(agent_blob, a->keys[owner].blob, agent_blob_len);
  } else if (!(key_path = strdup(plain ? identity : a->keys[owner].path))) {
    rc = EVSSH_ENOMEM;
  }
  if (rc) {
    evssh_key_free(ck);
    return rc;
  }
  const unsigned char *cblob;
  size_t clen;
  evssh_key_cert_blob(ck, &cblob, &clen);
  size_t before = a->nkeys;
  if (by_agent) {
    rc = add_key(a, cblob, clen, NULL, path, NULL);
    evssh_key_free(ck);
  } else {
    rc = add_key(a, cblob, clen, key_path, path, ck);   /* takes ck */
  }
  if (rc == EVSSH_OK && by_agent && a->nkeys > before) {
    a->keys[a->nkeys - 1].agent_blob = agent_blob;
    a->keys[a->nkeys - 1].agent_blob_len = agent_blob_len;
    agent_blob = NULL;
  }
  free(agent_blob);
  free(key_path);
  return rc;
}

/* Agent keys first, then files, as ssh orders them. */
static int collect_keys(struct evssh_auth *a) {
  const char *const *files = a->opt->identity_files;
  size_t nfiles = a->opt->n_identity_files;
  /* public halves of the files, used to filter agent keys under IdentitiesOnly */
  evssh_key **file_keys = calloc(nfiles ? nfiles : 1, sizeof *file_keys);
  if (!file_keys) return EVSSH_ENOMEM;
  for (size_t i = 0; i < nfiles; i++) {
    char pub[1024], err[300];
    if (strcmp(files[i], "none") == 0) continue;
    snprintf(pub, sizeof pub, "%s.pub", files[i]);
    if (cache_key_load_public(a->p.cache, pub, &file_keys[i], err, sizeof err) != EVSSH_OK) file_keys[i] = NULL;
  }
  collect_agent_keys(a, file_keys, nfiles);
  int rc = EVSSH_OK;
  for (size_t i = 0; i < nfiles && rc == EVSSH_OK; i++) {
    struct stat st;
    evssh_key *k = file_keys[i];
    file_keys[i] = NULL;
    if (strcmp(files[i], "none") == 0) continue;
    if (stat(files[i], &st) != 0) {
      /* the defaults are tried quietly, as ssh does; a configured file
         that is missing belongs in the failure message. A .pub whose
         private half is only in the agent is fine: the agent signs. */
      if (a->opt->identity_files_configured && !k) {
        LOG(a, EVSSH_LOG_INFO, "identity file %s: %s", files[i], strerror(errno));
        note_skipped(a, files[i], strerror(errno));
      }
      evssh_key_free(k);
      continue;
    }
    if (!k) {
      /* no .pub beside it: the private file itself must be read (it may
         ask for a passphrase before the server has seen the key) */
      char why[300] = "";
      if (load_private(a, files[i], &st, &k, why, sizeof why) != EVSSH_OK) {
        note_skipped(a, files[i], why);
        continue;
      }
    }
    const unsigned char *blob;
    size_t len;
    evssh_key_public_blob(k, &blob, &len);
    unsigned char *plain = malloc(len ? len : 1);
    if (!plain) {
      evssh_key_free(k);
      rc = EVSSH_ENOMEM;
      break;
    }
    memcpy(plain, blob, len);
    size_t before = a->nkeys;
    rc = add_key(a, blob, len, files[i], files[i], k);
    if (rc == EVSSH_OK && a->nkeys > before) {
      a->keys[a->nkeys - 1].seen = st;
      a->keys[a->nkeys - 1].seen_set = true;
    }
    /* ssh looks for IDENTITY-cert.pub only when no CertificateFile is set */
    if (rc == EVSSH_OK && a->opt->n_certificate_files == 0) {
      char *cpath = base_asprintf("%s-cert.pub", files[i]);
      struct stat cst;
      if (!cpath) rc = EVSSH_ENOMEM;
      else if (stat(cpath, &cst) == 0) rc = add_cert_file(a, cpath, plain, len, files[i]);
      free(cpath);
    }
    free(plain);
  }
  for (size_t j = 0; j < nfiles; j++) evssh_key_free(file_keys[j]);
  free(file_keys);
  /* CertificateFile certificates go last, as in ssh, each with the
     identity file or agent key it certifies */
  for (size_t i = 0; i < a->opt->n_certificate_files && rc == EVSSH_OK; i++)
    rc = add_cert_file(a, a->opt->certificate_files[i], NULL, 0, NULL);
  return rc;
}

static bool same_blob(const auth_key *x, const auth_key *y) {
  return x->blob_len == y->blob_len && memcmp(x->blob, y->blob, x->blob_len) == 0;
}

/* The agent's list came from the shared cache and proved stale or short
   (the agent refused to sign with a key it listed, or every key has been
   tried): ask the agent itself, keep its answer in the cache, and go on as
   a session without the cache would have, with the keys not tried yet.
   Keys already tried keep their place and outcome; a key the agent refused
   comes back only as an identity file's (its private half is on disk).
   Once per authentication. *more: something new to try. */
static int reask_agent(struct evssh_auth *a, bool *more) {
  *more = false;
  if (!a->agent_cached || a->agent_reasked) return EVSSH_OK;
  a->agent_reasked = true;
  LOG(a, EVSSH_LOG_DEBUG, "ssh-agent: asking for its keys again (the list was the cache's)");
  auth_key *old = a->keys;
  size_t nold = a->nkeys, tried = a->key_idx;
  evssh_buf skipped = a->skipped;
  a->keys = NULL;
  a->nkeys = a->key_idx = 0;
  buf_init(&a->skipped);
  /* a fresh connection: the old one may be what broke */
  evssh_agent_close(a->agent);
  a->agent = NULL;
  a->reasking = true;
  int rc = collect_keys(a);
  a->reasking = false;
  auth_key *merged = rc ? NULL : calloc(tried + a->nkeys + 1, sizeof *merged);
  if (!merged) {
    free_keys(a);
    buf_release(&a->skipped);
    a->keys = old;
    a->nkeys = nold;
    a->key_idx = tried;
    a->skipped = skipped;
    return rc ? rc : EVSSH_ENOMEM;
  }
  buf_release(&skipped);
  size_t m = 0;
  for (size_t i = 0; i < tried; i++) merged[m++] = old[i];
  for (size_t j = 0; j < a->nkeys; j++) {
    auth_key *f = &a->keys[j];
    bool done = false;
    for (size_t i = 0; i < tried && !done; i++)
      done = same_blob(&old[i], f) && !(old[i].agent_refused && f->key);
    if (done) free_key(f);
    else merged[m++] = *f;
  }
  for (size_t i = 0; i < tried; i++) {
    if (!merged[i].agent_refused) continue;
    bool listed = false;
    for (size_t j = 0; j < a->nkeys && !listed; j++) listed = same_blob(&merged[i], &a->keys[j]);
    if (!listed) snprintf(merged[i].outcome, sizeof merged[i].outcome, "the agent no longer holds it");
  }
  for (size_t i = tried; i < nold; i++) free_key(&old[i]);
  free(old);
  free(a->keys);
  a->keys = merged;
  a->nkeys = m;
  a->key_idx = tried;
  *more = m > tried;
  return EVSSH_OK;
}

/* The request header; on failure the packet is discarded and NULL says so. */
static evssh_buf *begin_request(struct evssh_auth *a, const char *method) {
  evssh_buf *b = transport_begin(a->t, SSH_MSG_USERAUTH_REQUEST);
  if (!b) return NULL;
  if (evssh_buf_put_cstring(b, a->opt->user) || evssh_buf_put_cstring(b, "ssh-connection") ||
      evssh_buf_put_cstring(b, method)) {
    transport_abort(a->t);
    return NULL;
  }
  return b;
}

/* Finish a packet whose body may have failed to build: nothing half-built
   goes out. */
static int end_request(struct evssh_auth *a, int rc) {
  if (rc) {
    transport_abort(a->t);
    return rc;
  }
  return transport_end(a->t);
}

static int send_none(struct evssh_auth *a) {
  if (!begin_request(a, "none")) return EVSSH_ENOMEM;
  a->state = A_NONE;
  return transport_end(a->t);
}

/* The first request: "none" only serves to learn the server's methods,
   and any failure reply lists them, so when publickey comes first and we
   have a key its request goes out at once and saves a round trip (and
   sshd the work of a separate "none" request, some 9 ms measured here). */
static bool try_next_key(struct evssh_auth *a, int *rc);

static int first_request(struct evssh_auth *a) {
  size_t first_len = strcspn(a->preferred, ",");
  if (a->nkeys > 0 && first_len == 9 && strncmp(a->preferred, "publickey", 9) == 0) {
    int rc = EVSSH_OK;
    if (try_next_key(a, &rc)) return rc;
  }
  return send_none(a);
}

int auth_start(const auth_params *p, evssh_auth **out) {
  struct evssh_auth *a = calloc(1, sizeof *a);
  if (!a) return EVSSH_ENOMEM;
  *out = a;
  a->p = *p;
  a->opt = p->opt;
  a->t = p->transport;
  buf_init(&a->tried);
  buf_init(&a->skipped);
  a->preferred = strdup(a->opt->preferred);
  if (!a->preferred) return EVSSH_ENOMEM;
  a->batch = a->opt->batch;
  a->max_prompts = a->opt->password_prompts;
  if (a->opt->pubkey_auth) {
    int rc = collect_keys(a);
    if (rc) return rc;
  }
  evssh_buf *b = transport_begin(a->t, SSH_MSG_SERVICE_REQUEST);
  if (!b) return EVSSH_ENOMEM;
  a->state = A_SERVICE;
  int rc = end_request(a, evssh_buf_put_cstring(b, "ssh-userauth"));
  if (rc) return rc;
  /* The server handles packets in order, so the first request may follow
     the SERVICE_REQUEST in the same write instead of a round trip later.
     Only once its EXT_INFO is here: a signature's algorithm (rsa-sha2-*)
     is chosen from its server-sig-algs, and a server that sends none is
     left the classic exchange. */
  if (!transport_server_sig_algs(a->t)) return EVSSH_OK;
  a->service_pending = true;
  return first_request(a);
}

static int sign_request(struct evssh_auth *a, auth_key *k, const char *alg, evssh_buf *sig) {
  /* RFC 4252 7: the signature covers the session id and the request */
  size_t sid_len;
  const unsigned char *sid = transport_session_id(a->t, &sid_len);
  evssh_buf data = EVSSH_BUF_INIT;
  int rc = evssh_buf_put_string(&data, sid, sid_len);
  rc = rc ? rc : evssh_buf_put_u8(&data, SSH_MSG_USERAUTH_REQUEST);
  rc = rc ? rc : evssh_buf_put_cstring(&data, a->opt->user);
  rc = rc ? rc : evssh_buf_put_cstring(&data, "ssh-connection");
  rc = rc ? rc : evssh_buf_put_cstring(&data, "publickey");
  rc = rc ? rc : evssh_buf_put_bool(&data, true);
  rc = rc ? rc : evssh_buf_put_cstring(&data, alg);
  rc = rc ? rc : evssh_buf_put_string(&data, k->blob, k->blob_len);
  char err[300] = "";
  if (rc == EVSSH_OK) {
    if (k->key && evssh_key_can_sign(k->key))
      rc = evssh_key_sign(k->key, alg, buf_ptr(&data), buf_avail(&data), sig);
    else if (!k->key && a->agent)
      rc = evssh_agent_sign(a->agent, k->agent_blob ? k->agent_blob : k->blob,
                            k->agent_blob ? k->agent_blob_len : k->blob_len, alg, buf_ptr(&data), buf_avail(&data),
                            sig, err, sizeof err);
    else
      rc = EVSSH_EAUTH;
  }
  buf_release(&data);
  if (rc) LOG(a, EVSSH_LOG_INFO, "signing with %s failed: %s", k->label, err[0] ? err : evssh_strerror(rc));
  return rc;
}

static int send_pubkey(struct evssh_auth *a, auth_key *k, const char *alg, bool signed_req) {
  evssh_buf sig = EVSSH_BUF_INIT;
  if (signed_req) {
    int rc = sign_request(a, k, alg, &sig);
    if (rc) {
      buf_release(&sig);
      return rc;
    }
  }
  evssh_buf *b = begin_request(a, "publickey");
  if (!b) {
    buf_release(&sig);
    return EVSSH_ENOMEM;
  }
  int rc = evssh_buf_put_bool(b, signed_req);
  rc = rc ? rc : evssh_buf_put_cstring(b, alg);
  rc = rc ? rc : evssh_buf_put_string(b, k->blob, k->blob_len);
  if (signed_req && rc == EVSSH_OK) rc = evssh_buf_put_string(b, buf_ptr(&sig), buf_avail(&sig));
  buf_release(&sig);
  rc = end_request(a, rc);
  a->state = signed_req ? A_PUBKEY_SIGNED : A_PUBKEY_QUERY;
  return rc;
}

/* Offer the next key the server might take; false when none is left. */
static bool try_next_key(struct evssh_auth *a, int *rc) {
  while (a->key_idx < a->nkeys) {
    auth_key *k = &a->keys[a->key_idx];
    const char *alg = evssh_sig_alg_for_type(k->type, transport_server_sig_algs(a->t), a->opt->pubkey_algs);
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
      if (cache_key_load_private_seen(a->p.cache, k->path, k->seen_set ? &k->seen : NULL, NULL, NULL, &priv, err,
                                      sizeof err) == EVSSH_OK) {
        evssh_key_free(k->key);
        k->key = priv;
      }
    }
    if (k->key && evssh_key_can_sign(k->key)) {
      LOG(a, EVSSH_LOG_DEBUG, "offering %s key %s (%s), signed at once", k->type, k->label, alg);
      k->unqueried = true;
      *rc = send_pubkey(a, k, alg, true);
      if (*rc == EVSSH_EAUTH || *rc == EVSSH_EINVAL) {
        /* could not sign after all: ask the server the usual way */
        k->unqueried = false;
        *rc = send_pubkey(a, k, alg, false);
      }
      return true;
    }
    LOG(a, EVSSH_LOG_DEBUG, "offering %s key %s (%s)", k->type, k->label, alg);
    *rc = send_pubkey(a, k, alg, false);
    return true;
  }
  /* out of keys with a list from the cache: the agent may hold one that
     list lacks (added since) */
  bool more = false;
  int r = reask_agent(a, &more);
  if (r) {
    *rc = r;
    return true;
  }
  return more && try_next_key(a, rc);
}

/* A set password is sent once; one typed at the prompt may be asked for
   again, up to NumberOfPasswordPrompts, as ssh does. */
static bool password_left(const struct evssh_auth *a) {
  if (a->p.password) return a->password_tries == 0;
  return a->p.can_prompt && !a->batch && a->password_tries < (a->max_prompts > 0 ? a->max_prompts : 1);
}

static int send_password(struct evssh_auth *a) {
  a->password_tries++;
  char answer[512] = "";
  const char *pw = a->p.password;
  if (!pw) {
    char prompt[600];
    snprintf(prompt, sizeof prompt, "%s@%s's password: ", a->opt->user, a->opt->hostname);
    if (ask(a, prompt, false, answer, sizeof answer) != 0) {
      note_tried(a, "password (no answer at the prompt)");
      a->password_tries = a->max_prompts > 0 ? a->max_prompts : 1;
      return EVSSH_EAGAIN;
    }
    pw = answer;
  }
  a->method = "password";
  LOG(a, EVSSH_LOG_DEBUG, "trying method password");
  evssh_buf *b = begin_request(a, "password");
  int rc = b ? evssh_buf_put_bool(b, false) : EVSSH_ENOMEM;
  if (b && rc == EVSSH_OK) rc = evssh_buf_put_cstring(b, pw);
  OPENSSL_cleanse(answer, sizeof answer);
  if (b) rc = end_request(a, rc);
  a->state = A_PASSWORD;
  return rc;
}

static int send_kbdint(struct evssh_auth *a) {
  a->kbdint_tried = true;
  a->kbdint_rounds = 0;
  a->method = "keyboard-interactive";
  LOG(a, EVSSH_LOG_DEBUG, "trying method keyboard-interactive");
  evssh_buf *b = begin_request(a, "keyboard-interactive");
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_cstring(b, "");
  if (rc == EVSSH_OK) rc = evssh_buf_put_cstring(b, "");
  a->state = A_KBDINT;
  return end_request(a, rc);
}

/* "; reason" appended to the tail of the failure message */
static void note_reason(char *why, size_t size, const char *reason) {
  size_t n = strlen(why);
  if (n < size) snprintf(why + n, size - n, "; %s", reason);
}

static int fail_auth(struct evssh_auth *a) {
  const evssh_options *o = a->opt;
  const char *methods = a->server_methods ? a->server_methods : "";
  evssh_buf keys = EVSSH_BUF_INIT;
  char why[1200] = "";
  for (size_t i = 0; i < a->nkeys; i++) {
    char *what = base_asprintf("%s (%s)", a->keys[i].label, a->keys[i].outcome[0] ? a->keys[i].outcome : "not offered");
    if (what) note(&keys, what);
    free(what);
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
      note_reason(why, sizeof why, o->pubkey_auth ? "no keys found (IdentityFile, agent)" : "PubkeyAuthentication=no");
    if (typed && a->batch)
      note_reason(why, sizeof why, "BatchMode=yes: nothing was prompted for");
    else if (typed && !a->p.password && !a->p.can_prompt)
      note_reason(why, sizeof why, "no password or prompt callback set");
  }
  int rc = auth_fail(a, EVSSH_EAUTH, "Permission denied for %s@%s: server allows %s; tried %s; keys: %s%s%s%s",
                     o->user, o->hostname, methods[0] ? methods : "(nothing)",
                     buf_avail(&a->tried) ? text(&a->tried) : "nothing", buf_avail(&keys) ? text(&keys) : "none",
                     buf_avail(&a->skipped) ? "; not usable: " : "", text(&a->skipped), why);
  buf_release(&keys);
  return rc;
}

/* Pick the next method: PreferredAuthentications order, filtered by what
   the server still allows and what we have not used up. */
static int next_method(struct evssh_auth *a) {
  const char *methods = a->server_methods;
  /* a key was given up on before the server said what it allows (the first
     request was a publickey query): the other keys may still go, and
     "none" then learns the methods for the rest */
  if (!methods) {
    int r = EVSSH_OK;
    if (try_next_key(a, &r)) return r;
    return send_none(a);
  }
  char *pref = strdup(a->preferred);
  if (!pref) return EVSSH_ENOMEM;
  int rc = EVSSH_EAGAIN;
  for (char *save = NULL, *m = strtok_r(pref, ",", &save); m && rc == EVSSH_EAGAIN; m = strtok_r(NULL, ",", &save)) {
    if (!namelist_contains(methods, m)) continue;
    if (strcmp(m, "publickey") == 0) {
      int r = EVSSH_OK;
      if (try_next_key(a, &r)) rc = r;
    } else if (strcmp(m, "keyboard-interactive") == 0 && !a->kbdint_tried && a->opt->kbdint_auth &&
               (a->p.password || (a->p.can_prompt && !a->batch))) {
      rc = send_kbdint(a);
    } else if (strcmp(m, "password") == 0 && password_left(a) && a->opt->password_auth) {
      rc = send_password(a);
    }
  }
  free(pref);
  if (rc == EVSSH_EAGAIN) return fail_auth(a);
  return rc;
}

static int send_info_response(struct evssh_auth *a, uint32_t n, const evssh_buf *answers) {
  evssh_buf *b = transport_begin(a->t, SSH_MSG_USERAUTH_INFO_RESPONSE);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, n);
  /* zero prompts (PAM sends such rounds) means an empty answer list */
  if (rc == EVSSH_OK && buf_avail(answers)) rc = buf_append(b, buf_ptr(answers), buf_avail(answers));
  return end_request(a, rc);
}

static int handle_info_request(struct evssh_auth *a, evssh_reader *r) {
  const char *name, *instr, *lang;
  size_t nl, il, ll;
  uint32_t n;
  if (evssh_read_string(r, &name, &nl) || evssh_read_string(r, &instr, &il) || evssh_read_string(r, &lang, &ll) ||
      evssh_read_u32(r, &n) || n > 64)
    return auth_fail(a, EVSSH_EPROTO, "malformed keyboard-interactive request");
  if (++a->kbdint_rounds > 16) return auth_fail(a, EVSSH_EAUTH, "keyboard-interactive: too many rounds");
  evssh_buf answers = EVSSH_BUF_INIT;
  answers.secret = true;
  int rc = EVSSH_OK;
  for (uint32_t i = 0; i < n && rc == EVSSH_OK; i++) {
    char *prompt = NULL;
    bool echo;
    if (evssh_read_cstring(r, &prompt) || evssh_read_bool(r, &echo)) {
      free(prompt);
      buf_release(&answers);
      return auth_fail(a, EVSSH_EPROTO, "malformed keyboard-interactive prompt");
    }
    char answer[512] = "";
    /* a lone hidden prompt is the password, as ssh assumes */
    if (n == 1 && !echo && a->p.password && a->kbdint_rounds == 1) {
      snprintf(answer, sizeof answer, "%s", a->p.password);
    } else if (ask(a, prompt, echo, answer, sizeof answer) != 0) {
      free(prompt);
      buf_release(&answers);
      note_tried(a, "keyboard-interactive (no answer to a prompt)");
      return next_method(a);
    }
    free(prompt);
    rc = evssh_buf_put_cstring(&answers, answer);
    OPENSSL_cleanse(answer, sizeof answer);
  }
  if (rc == EVSSH_OK) rc = send_info_response(a, n, &answers);
  buf_release(&answers);
  return rc;
}

static int handle_pk_ok(struct evssh_auth *a) {
  auth_key *k = &a->keys[a->key_idx];
  /* agent keys carry no evssh_key; a file key may so far be its .pub */
  if (k->key && !evssh_key_can_sign(k->key)) {
    evssh_key *priv = NULL;
    char why[300] = "";
    int rc = load_private(a, k->path, k->seen_set ? &k->seen : NULL, &priv, why, sizeof why);
    if (rc) {
      snprintf(k->outcome, sizeof k->outcome, "server would accept it, but: %s", why);
      a->key_idx++;
      return next_method(a);
    }
    evssh_key_free(k->key);
    k->key = priv;
  }
  const char *alg = evssh_sig_alg_for_type(k->type, transport_server_sig_algs(a->t), a->opt->pubkey_algs);
  int rc = send_pubkey(a, k, alg, true);
  if (rc == EVSSH_EAUTH || rc == EVSSH_EINVAL) {
    snprintf(k->outcome, sizeof k->outcome, "signing failed");
    a->key_idx++;
    if (!k->key) {
      /* the agent listed it (perhaps only in the cache's list) but would
         not sign: ssh-add -d since, or a confirmation declined */
      k->agent_refused = true;
      bool more;
      if ((rc = reask_agent(a, &more)) != EVSSH_OK) return rc;
    }
    return next_method(a);
  }
  return rc;
}

static int handle_failure(struct evssh_auth *a, evssh_reader *body) {
  const char *methods;
  size_t mlen;
  bool partial;
  if (evssh_read_string(body, &methods, &mlen) || evssh_read_bool(body, &partial))
    return auth_fail(a, EVSSH_EPROTO, "malformed USERAUTH_FAILURE");
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
      const char *t = text(&a->tried);
      size_t n = strlen(t), w = strlen("publickey");
      if (n >= w && strcmp(t + n - w, "publickey") == 0) {
        a->tried.len--;
        buf_append(&a->tried, " (partial success)", strlen(" (partial success)") + 1);
      } else {
        note_tried(a, "publickey (partial success)");
      }
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
    return auth_fail(a, EVSSH_EPROTO, "unexpected USERAUTH_FAILURE");
  }
  if (partial) LOG(a, EVSSH_LOG_INFO, "partial success; server wants more: %s", a->server_methods);
  return next_method(a);
}

int auth_handle_packet(evssh_auth *a, uint8_t msg, evssh_reader *body) {
  if (!a || a->state == A_DONE) return EVSSH_OK;
  /* a banner that comes early (RFC 4252 puts it after the accept) is taken
     as the classic exchange took it */
  if (a->service_pending && msg != SSH_MSG_SERVICE_ACCEPT && msg != SSH_MSG_USERAUTH_BANNER)
    return auth_fail(a, EVSSH_EPROTO, "server sent message %u before accepting the ssh-userauth service", msg);
  switch (msg) {
  case SSH_MSG_SERVICE_ACCEPT:
    if (a->service_pending) {   /* our first request is already on its way */
      a->service_pending = false;
      LOG(a, EVSSH_LOG_DEBUG, "server accepted the ssh-userauth service (our first request was sent with ours)");
      return EVSSH_OK;
    }
    if (a->state != A_SERVICE) return auth_fail(a, EVSSH_EPROTO, "unexpected SERVICE_ACCEPT");
    LOG(a, EVSSH_LOG_DEBUG, "server accepted the ssh-userauth service");
    return first_request(a);
  case SSH_MSG_USERAUTH_BANNER: {
    const char *t;
    size_t len;
    if (evssh_read_string(body, &t, &len) == EVSSH_OK)
      LOG(a, EVSSH_LOG_INFO, "server banner: %.*s", (int)(len > 500 ? 500 : len), t);
    return EVSSH_OK;
  }
  case SSH_MSG_USERAUTH_SUCCESS:
    if (a->state == A_SERVICE) return auth_fail(a, EVSSH_EPROTO, "unexpected USERAUTH_SUCCESS");
    if (a->state == A_PUBKEY_SIGNED)
      LOG(a, EVSSH_LOG_INFO, "authenticated with publickey %s", a->keys[a->key_idx].label);
    else
      LOG(a, EVSSH_LOG_INFO, "authenticated with %s", a->state == A_NONE ? "none" : a->method);
    a->state = A_DONE;
    free_keys(a);
    evssh_agent_close(a->agent);
    a->agent = NULL;
    return a->p.ev->done(a->p.ctx);
  case SSH_MSG_USERAUTH_FAILURE:
    return handle_failure(a, body);
  case 60:
    if (a->state == A_PUBKEY_QUERY) return handle_pk_ok(a);
    if (a->state == A_KBDINT) return handle_info_request(a, body);
    if (a->state == A_PASSWORD) {
      /* PASSWD_CHANGEREQ: changing it is for an interactive ssh; count the
         password as failed and go on with whatever else the server takes */
      const char *t;
      size_t len;
      if (evssh_read_string(body, &t, &len) == EVSSH_OK)
        LOG(a, EVSSH_LOG_INFO, "server wants a new password: %.*s", (int)(len > 200 ? 200 : len), t);
      note_tried(a, "password (expired: the server wants it changed)");
      return next_method(a);
    }
    return auth_fail(a, EVSSH_EPROTO, "unexpected message 60 during authentication");
  default:
    if (msg >= 50 && msg <= 79) {
      /* methods we did not ask for (password change, GSSAPI): refuse the
         exchange by failing cleanly rather than guessing */
      return auth_fail(a, EVSSH_EAUTH, "server sent unsupported authentication message %u", msg);
    }
    return auth_fail(a, EVSSH_EPROTO, "unexpected message %u during authentication", msg);
  }
}
