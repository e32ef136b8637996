/* cache.c owns evssh_cache: the work the sessions of one process would
 * otherwise each repeat, done once and shared. It keeps parsed key files
 * (private keys decrypted, public halves from .pub files) and parsed
 * known_hosts sets (one per file list, host, port and address) and the
 * text of ssh_config files (by path; config.c parses it, since matching
 * depends on each session's host), each entry
 * good while its files' device, inode, size and mtime stay what they were
 * when it was read: every lookup stat()s the files and re-reads on any
 * change. It also keeps %C hashes (by their input, never stale) and
 * ssh-agent identity lists by socket path, which no file describes: those
 * are good for a bounded time (agent_ttl_ms) while the socket is the same
 * file, and a session that finds one stale asks again (auth.c). Entries
 * are bounded (least recently used out first).
 *
 * Sharing: a key handed out is the caller's own copy (evssh_key_dup, its
 * EVP_PKEY shared by OpenSSL's reference count, so the private key is
 * cleared by OpenSSL when the last holder frees it); a known_hosts set
 * never leaves the cache: lookups on it run here, under the cache's lock.
 * The lock and the reference count make one cache safe to share between
 * sessions in different threads; a cache has no global state. A cache
 * lives until its creator has freed it and the last session holding it
 * (evssh_session_set_cache, evssh_multi_add) is freed. */
#include "cache.h"

#include "base.h"
#include "buf.h"
#include "errors.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_KEYS 64
#define MAX_SETS 256
#define MAX_KH_FILES 16
#define MAX_TEXTS 64
#define MAX_TEXT_BYTES (1024 * 1024)
#define MAX_HASHES 256
#define MAX_AGENTS 16

typedef struct file_sig {
  bool present;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
} file_sig;

typedef struct key_entry {
  struct key_entry *next;
  char *path;
  bool private_half;
  file_sig sig;
  evssh_key *key;
  uint64_t used;
} key_entry;

typedef struct set_entry {
  struct set_entry *next;
  char *id;                   /* length-prefixed host, port, addr, files */
  file_sig sigs[MAX_KH_FILES];
  size_t nfiles;
  evssh_known_hosts *set;
  uint64_t used;
} set_entry;

typedef struct text_entry {
  struct text_entry *next;
  char *path;
  file_sig sig;
  struct stat st;             /* as read: owner and mode for config.c's check */
  char *text;
  size_t len;
  uint64_t used;
} text_entry;

/* a %C hash: depends on its input alone, so it never goes stale */
typedef struct hash_entry {
  struct hash_entry *next;
  char *in;
  size_t len;
  char hex[41];
  uint64_t used;
} hash_entry;

/* an agent's identity list: good for agent_ttl_ms from when it was asked,
   while the socket file is the same one */
typedef struct agent_entry {
  struct agent_entry *next;
  char *path;
  file_sig sig;
  long long asked_ms;
  cache_agent_list *list;
} agent_entry;

/* the local user's password-database entry, for config.c (a default User,
   ~, %u, %d): good while the uid and /etc/passwd's identity and mtime stay
   what they were when it was read */
typedef struct user_entry {
  bool held;
  uid_t uid;
  file_sig sig;
  char name[256];
  char home[PATH_MAX];
} user_entry;

struct evssh_cache {
  pthread_mutex_t lock;
  int refs;                   /* the creator's, plus one per session */
  bool creator_freed;
  key_entry *keys;
  size_t nkeys;
  set_entry *sets;
  size_t nsets;
  text_entry *texts;          /* ssh_config files */
  size_t ntexts;
  hash_entry *hashes;         /* %C */
  size_t nhashes;
  agent_entry *agents;        /* identity lists by socket path */
  size_t nagents;
  user_entry user;
  int agent_ttl_ms;
  uint64_t tick;
  evssh_cache_stats stats;
};

/* ------------------------------------------------------------- lifetime */

evssh_cache *evssh_cache_new(void) {
  evssh_cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return NULL;
  }
  c->refs = 1;
  c->agent_ttl_ms = EVSSH_CACHE_AGENT_TTL_MS;
  return c;
}

static void key_entry_free(evssh_cache *c, key_entry *e) {
  evssh_key_free(e->key);
  free(e->path);
  free(e);
  c->stats.entries_freed++;
}

static void set_entry_free(evssh_cache *c, set_entry *e) {
  evssh_knownhosts_free(e->set);
  free(e->id);
  free(e);
  c->stats.entries_freed++;
}

static void text_entry_free(evssh_cache *c, text_entry *e) {
  free(e->text);
  free(e->path);
  free(e);
  c->stats.entries_freed++;
}

static void hash_entry_free(evssh_cache *c, hash_entry *e) {
  free(e->in);
  free(e);
  c->stats.entries_freed++;
}

static void agent_entry_free(evssh_cache *c, agent_entry *e) {
  cache_agent_release(e->list);
  free(e->path);
  free(e);
  c->stats.entries_freed++;
}

static void drop_all(evssh_cache *c) {
  c->user.held = false;
  while (c->agents) {
    agent_entry *e = c->agents;
    c->agents = e->next;
    agent_entry_free(c, e);
  }
  c->nagents = 0;
  while (c->hashes) {
    hash_entry *e = c->hashes;
    c->hashes = e->next;
    hash_entry_free(c, e);
  }
  c->nhashes = 0;
  while (c->texts) {
    text_entry *e = c->texts;
    c->texts = e->next;
    text_entry_free(c, e);
  }
  c->ntexts = 0;
  while (c->keys) {
    key_entry *e = c->keys;
    c->keys = e->next;
    key_entry_free(c, e);
  }
  while (c->sets) {
    set_entry *e = c->sets;
    c->sets = e->next;
    set_entry_free(c, e);
  }
  c->nkeys = c->nsets = 0;
}

void evssh_cache_clear(evssh_cache *c) {
  if (!c) return;
  pthread_mutex_lock(&c->lock);
  drop_all(c);
  pthread_mutex_unlock(&c->lock);
}

static void destroy(evssh_cache *c) {
  drop_all(c);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

evssh_cache *cache_ref(evssh_cache *c) {
  if (!c) return NULL;
  pthread_mutex_lock(&c->lock);
  c->refs++;
  pthread_mutex_unlock(&c->lock);
  return c;
}

void cache_unref(evssh_cache *c) {
  if (!c) return;
  pthread_mutex_lock(&c->lock);
  bool last = --c->refs == 0;
  pthread_mutex_unlock(&c->lock);
  if (last) destroy(c);
}

void evssh_cache_free(evssh_cache *c) {
  if (!c) return;
  pthread_mutex_lock(&c->lock);
  bool twice = c->creator_freed;
  c->creator_freed = true;
  pthread_mutex_unlock(&c->lock);
  if (!twice) cache_unref(c);
}

int evssh_cache_stats_get(evssh_cache *c, evssh_cache_stats *out) {
  if (!c || !out) return EVSSH_EINVAL;
  pthread_mutex_lock(&c->lock);
  *out = c->stats;
  out->entries = c->nkeys + c->nsets + c->ntexts + c->nhashes + c->nagents;
  pthread_mutex_unlock(&c->lock);
  return EVSSH_OK;
}

int evssh_cache_set_agent_ttl(evssh_cache *c, int ms) {
  if (!c || ms < 0) return EVSSH_EINVAL;
  pthread_mutex_lock(&c->lock);
  c->agent_ttl_ms = ms;
  pthread_mutex_unlock(&c->lock);
  return EVSSH_OK;
}

/* ------------------------------------------------------------ freshness */

static file_sig sig_of(const char *path) {
  file_sig s;
  memset(&s, 0, sizeof s);
  struct stat st;
  if (stat(path, &st) != 0) return s;
  s.present = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime = st.st_mtim;
  return s;
}

static file_sig sig_of_stat(const struct stat *st) {
  file_sig s = {true, st->st_dev, st->st_ino, st->st_size, st->st_mtim};
  return s;
}

static bool sig_same(const file_sig *a, const file_sig *b) {
  if (a->present != b->present) return false;
  if (!a->present) return true;
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* ----------------------------------------------------------------- keys */

/* the least recently used entry of a full list goes */
static void evict_key(evssh_cache *c) {
  key_entry **oldest = NULL;
  for (key_entry **p = &c->keys; *p; p = &(*p)->next)
    if (!oldest || (*p)->used < (*oldest)->used) oldest = p;
  if (!oldest) return;
  key_entry *e = *oldest;
  *oldest = e->next;
  c->nkeys--;
  key_entry_free(c, e);
}

/* Under the lock: a copy of a fresh entry into *out (0), or 1 for a miss
   (a stale entry is dropped on the way). */
static int key_lookup(evssh_cache *c, const char *path, bool private_half, const file_sig *now, evssh_key **out) {
  for (key_entry **p = &c->keys; *p; p = &(*p)->next) {
    key_entry *e = *p;
    if (e->private_half != private_half || strcmp(e->path, path) != 0) continue;
    if (!sig_same(&e->sig, now)) {
      *p = e->next;
      c->nkeys--;
      c->stats.invalidations++;
      key_entry_free(c, e);
      return 1;
    }
    int rc = evssh_key_dup(e->key, out);
    if (rc) return rc;
    e->used = ++c->tick;
    c->stats.key_hits++;
    return 0;
  }
  return 1;
}

/* Under the lock: keep a copy of key (a failure to keep it costs only the
   next session's load). */
static void key_insert(evssh_cache *c, const char *path, bool private_half, const file_sig *sig,
                       const evssh_key *key) {
  for (key_entry *e = c->keys; e; e = e->next)
    if (e->private_half == private_half && strcmp(e->path, path) == 0) return;   /* another thread's */
  key_entry *e = calloc(1, sizeof *e);
  if (!e) return;
  if (!(e->path = strdup(path)) || evssh_key_dup(key, &e->key) != EVSSH_OK) {
    free(e->path);
    free(e);
    return;
  }
  if (c->nkeys >= MAX_KEYS) evict_key(c);
  e->private_half = private_half;
  e->sig = *sig;
  e->used = ++c->tick;
  e->next = c->keys;
  c->keys = e;
  c->nkeys++;
}

static int key_load(evssh_cache *c, const char *path, bool private_half, const struct stat *seen,
                    evssh_passphrase_fn fn, void *ud, evssh_key **out, char *err, size_t errlen) {
  if (!c || !path) {
    return private_half ? evssh_key_load_private(path, fn, ud, out, err, errlen)
                        : evssh_key_load_public(path, out, err, errlen);
  }
  file_sig now = seen ? sig_of_stat(seen) : sig_of(path);
  pthread_mutex_lock(&c->lock);
  int rc = now.present ? key_lookup(c, path, private_half, &now, out) : 1;
  pthread_mutex_unlock(&c->lock);
  if (rc <= 0) return rc;
  /* a miss loads outside the lock: the passphrase prompt is the
     application's and may take its time or run a nested loop */
  rc = private_half ? evssh_key_load_private(path, fn, ud, out, err, errlen)
                    : evssh_key_load_public(path, out, err, errlen);
  if (rc != EVSSH_OK) return rc;
  pthread_mutex_lock(&c->lock);
  c->stats.key_loads++;
  /* keep it only when the file is still the one stat()ed before the load */
  file_sig after = sig_of(path);
  if (now.present && sig_same(&now, &after)) key_insert(c, path, private_half, &now, *out);
  pthread_mutex_unlock(&c->lock);
  return EVSSH_OK;
}

int cache_key_load_private(evssh_cache *c, const char *path, evssh_passphrase_fn fn, void *ud, evssh_key **out,
                           char *err, size_t errlen) {
  return key_load(c, path, true, NULL, fn, ud, out, err, errlen);
}

int cache_key_load_private_seen(evssh_cache *c, const char *path, const struct stat *seen, evssh_passphrase_fn fn,
                                void *ud, evssh_key **out, char *err, size_t errlen) {
  return key_load(c, path, true, seen, fn, ud, out, err, errlen);
}

int cache_key_load_public(evssh_cache *c, const char *path, evssh_key **out, char *err, size_t errlen) {
  return key_load(c, path, false, NULL, NULL, NULL, out, err, errlen);
}

/* ----------------------------------------------------------- known_hosts */

/* "LEN:" then s: each part of an id says where it ends. Written by hand:
   two ids are built per connect, each of several parts. */
static int id_add(evssh_buf *b, const char *s) {
  size_t n = s ? strlen(s) : 0;
  char len[24];
  size_t at = sizeof len;
  len[--at] = ':';
  do {
    len[--at] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  int rc = buf_append(b, len + at, sizeof len - at);
  if (!rc && s) rc = buf_append(b, s, strlen(s));
  return rc;
}

static char *set_id(const char *const *files, size_t nfiles, const char *host, int port, const char *addr) {
  evssh_buf b;
  buf_init(&b);
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  int rc = id_add(&b, host);
  if (!rc) rc = id_add(&b, p);
  if (!rc) rc = id_add(&b, addr ? addr : "");
  for (size_t i = 0; !rc && i < nfiles; i++) rc = id_add(&b, files[i] ? files[i] : "");
  if (!rc) rc = buf_append(&b, "", 1);
  if (rc) {
    buf_release(&b);
    return NULL;
  }
  char *s = malloc(buf_avail(&b));
  if (s) memcpy(s, buf_ptr(&b), buf_avail(&b));
  buf_release(&b);
  return s;
}

static void evict_set(evssh_cache *c) {
  set_entry **oldest = NULL;
  for (set_entry **p = &c->sets; *p; p = &(*p)->next)
    if (!oldest || (*p)->used < (*oldest)->used) oldest = p;
  if (!oldest) return;
  set_entry *e = *oldest;
  *oldest = e->next;
  c->nsets--;
  set_entry_free(c, e);
}

/* Under the lock: the fresh set for these arguments, loading it on a miss.
   NULL with the loader's error (rc) when it cannot be had. */
static const evssh_known_hosts *set_get(evssh_cache *c, const char *const *files, size_t nfiles, const char *host,
                                        int port, const char *addr, int *rc, char *err, size_t errlen) {
  *rc = EVSSH_OK;
  char *id = set_id(files, nfiles, host, port, addr);
  if (!id) {
    *rc = EVSSH_ENOMEM;
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
    return NULL;
  }
  file_sig now[MAX_KH_FILES];
  for (size_t i = 0; i < nfiles; i++) {
    if (files[i]) now[i] = sig_of(files[i]);
    else memset(&now[i], 0, sizeof now[i]);
  }
  for (set_entry **p = &c->sets; *p; p = &(*p)->next) {
    set_entry *e = *p;
    if (strcmp(e->id, id) != 0) continue;
    bool fresh = true;
    for (size_t i = 0; i < nfiles && fresh; i++) fresh = sig_same(&e->sigs[i], &now[i]);
    if (fresh) {
      free(id);
      e->used = ++c->tick;
      c->stats.known_hosts_hits++;
      return e->set;
    }
    *p = e->next;
    c->nsets--;
    c->stats.invalidations++;
    set_entry_free(c, e);
    break;
  }
  evssh_known_hosts *set = NULL;
  *rc = evssh_knownhosts_load(files, nfiles, host, port, addr, &set, err, errlen);
  if (*rc) {
    free(id);
    return NULL;
  }
  c->stats.known_hosts_loads++;
  set_entry *e = calloc(1, sizeof *e);
  if (!e) {
    free(id);
    evssh_knownhosts_free(set);
    *rc = EVSSH_ENOMEM;
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
    return NULL;
  }
  if (c->nsets >= MAX_SETS) evict_set(c);
  e->id = id;
  e->nfiles = nfiles;
  memcpy(e->sigs, now, nfiles * sizeof now[0]);
  e->set = set;
  e->used = ++c->tick;
  e->next = c->sets;
  c->sets = e;
  c->nsets++;
  return set;
}

int cache_knownhosts_check(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                           const char *addr, const unsigned char *blob, size_t blob_len, evssh_kh_result *res,
                           char *err, size_t errlen) {
  if (!c || nfiles > MAX_KH_FILES || !res || !blob || (!files && nfiles))
    return evssh_knownhosts_check(files, nfiles, host, port, addr, blob, blob_len, res, err, errlen);
  pthread_mutex_lock(&c->lock);
  int rc;
  const evssh_known_hosts *set = set_get(c, files, nfiles, host, port, addr, &rc, err, errlen);
  if (set) rc = evssh_knownhosts_lookup(set, blob, blob_len, res, err, errlen);
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int cache_knownhosts_types(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                           char **types, char *err, size_t errlen) {
  if (!c || nfiles > MAX_KH_FILES || !types || (!files && nfiles))
    return evssh_knownhosts_types(files, nfiles, host, port, types, err, errlen);
  *types = NULL;
  pthread_mutex_lock(&c->lock);
  int rc;
  const evssh_known_hosts *set = set_get(c, files, nfiles, host, port, NULL, &rc, err, errlen);
  if (set && (rc = evssh_knownhosts_loaded_types(set, types)) == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int cache_knownhosts_order_info(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                                char **types, bool *has_ca, char *err, size_t errlen) {
  *types = NULL;
  *has_ca = false;
  if (!c || nfiles > MAX_KH_FILES || (!files && nfiles)) {
    evssh_known_hosts *kh = NULL;
    int rc = evssh_knownhosts_load(files, nfiles, host, port, NULL, &kh, err, errlen);
    if (rc) return rc;
    rc = evssh_knownhosts_loaded_types(kh, types);
    *has_ca = evssh_knownhosts_has_cert_authority(kh);
    evssh_knownhosts_free(kh);
    return rc;
  }
  pthread_mutex_lock(&c->lock);
  int rc;
  const evssh_known_hosts *set = set_get(c, files, nfiles, host, port, NULL, &rc, err, errlen);
  if (set) {
    rc = evssh_knownhosts_loaded_types(set, types);
    *has_ca = evssh_knownhosts_has_cert_authority(set);
  }
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int cache_knownhosts_load(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                          const char *addr, evssh_known_hosts **out, char *err, size_t errlen) {
  if (!c || nfiles > MAX_KH_FILES || !out || (!files && nfiles))
    return evssh_knownhosts_load(files, nfiles, host, port, addr, out, err, errlen);
  pthread_mutex_lock(&c->lock);
  int rc;
  const evssh_known_hosts *set = set_get(c, files, nfiles, host, port, addr, &rc, err, errlen);
  if (set && (rc = evssh_knownhosts_dup(set, out)) == EVSSH_ENOMEM)
    evssh_errorf(err, errlen, "out of memory reading known_hosts");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

/* ---------------------------------------------------------- local user */

#define PASSWD_FILE "/etc/passwd"

static int user_read(uid_t uid, char *name, size_t nlen, char *home, size_t hlen) {
  struct passwd pwbuf, *pw = NULL;
  char buf[4096];
  if (getpwuid_r(uid, &pwbuf, buf, sizeof buf, &pw) != 0 || pw == NULL) return EVSSH_EINVAL;
  snprintf(name, nlen, "%s", pw->pw_name);
  snprintf(home, hlen, "%s", pw->pw_dir);
  return EVSSH_OK;
}

int cache_local_user(evssh_cache *c, uid_t uid, char *name, size_t nlen, char *home, size_t hlen) {
  if (!c) return user_read(uid, name, nlen, home, hlen);
  file_sig now = sig_of(PASSWD_FILE);
  pthread_mutex_lock(&c->lock);
  bool hit = c->user.held && c->user.uid == uid && sig_same(&c->user.sig, &now);
  if (hit) {
    snprintf(name, nlen, "%s", c->user.name);
    snprintf(home, hlen, "%s", c->user.home);
  }
  pthread_mutex_unlock(&c->lock);
  if (hit) return EVSSH_OK;
  /* read outside the lock: NSS may be slow (a directory service) */
  int rc = user_read(uid, name, nlen, home, hlen);
  if (rc) return rc;   /* no entry: not kept, asked again next time */
  pthread_mutex_lock(&c->lock);
  c->user.held = true;
  c->user.uid = uid;
  c->user.sig = now;   /* the file as stat()ed before the read: a change after it is seen next time */
  snprintf(c->user.name, sizeof c->user.name, "%s", name);
  snprintf(c->user.home, sizeof c->user.home, "%s", home);
  pthread_mutex_unlock(&c->lock);
  return EVSSH_OK;
}

/* --------------------------------------------------------- ssh_config */

/* Under the lock: a copy of a fresh entry (0), 1 for a miss (a stale entry
   is dropped on the way), or ENOMEM. */
static int text_lookup(evssh_cache *c, const char *path, const file_sig *now, char **text, size_t *len,
                       struct stat *st) {
  for (text_entry **p = &c->texts; *p; p = &(*p)->next) {
    text_entry *e = *p;
    if (strcmp(e->path, path) != 0) continue;
    if (!sig_same(&e->sig, now)) {
      *p = e->next;
      c->ntexts--;
      c->stats.invalidations++;
      text_entry_free(c, e);
      return 1;
    }
    char *t = malloc(e->len ? e->len : 1);
    if (!t) return EVSSH_ENOMEM;
    memcpy(t, e->text, e->len);
    *text = t;
    *len = e->len;
    *st = e->st;
    e->used = ++c->tick;
    return 0;
  }
  return 1;
}

/* Under the lock: keep a copy (failing to keep it costs only a re-read). */
static void text_insert(evssh_cache *c, const char *path, const struct stat *st, const char *text, size_t len) {
  for (text_entry *e = c->texts; e; e = e->next)
    if (strcmp(e->path, path) == 0) return;   /* another thread's */
  text_entry *e = calloc(1, sizeof *e);
  if (!e) return;
  if (!(e->path = strdup(path)) || !(e->text = malloc(len ? len : 1))) {
    free(e->path);
    free(e);
    return;
  }
  memcpy(e->text, text, len);
  if (c->ntexts >= MAX_TEXTS) {
    text_entry **oldest = NULL;
    for (text_entry **p = &c->texts; *p; p = &(*p)->next)
      if (!oldest || (*p)->used < (*oldest)->used) oldest = p;
    text_entry *old = *oldest;
    *oldest = old->next;
    c->ntexts--;
    text_entry_free(c, old);
  }
  e->len = len;
  e->st = *st;
  e->sig = sig_of_stat(st);
  e->used = ++c->tick;
  e->next = c->texts;
  c->texts = e;
  c->ntexts++;
}

/* The whole file, read through one stream (the same fopen the uncached
   parser makes). */
static int text_read(const char *path, char **text, size_t *len, struct stat *st, int *sys_errno) {
  FILE *f = fopen(path, "r");
  if (!f) {
    *sys_errno = errno;
    return EVSSH_EINVAL;
  }
  if (fstat(fileno(f), st) != 0 || !S_ISREG(st->st_mode) || st->st_size > MAX_TEXT_BYTES) {
    fclose(f);
    return 1;
  }
  size_t cap = (size_t)st->st_size + 1, n = 0;
  char *t = malloc(cap);
  if (!t) {
    fclose(f);
    return EVSSH_ENOMEM;
  }
  /* the file may grow while it is read; what is read past the stat()ed
     size makes the entry stale at once (the size no longer matches) */
  size_t got;
  while ((got = fread(t + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      if (cap > MAX_TEXT_BYTES) {
        free(t);
        fclose(f);
        return 1;
      }
      char *bigger = realloc(t, cap * 2);
      if (!bigger) {
        free(t);
        fclose(f);
        return EVSSH_ENOMEM;
      }
      t = bigger;
      cap *= 2;
    }
  }
  int bad = ferror(f);
  int saved = errno;
  fclose(f);
  if (bad) {
    free(t);
    *sys_errno = saved ? saved : EIO;
    return EVSSH_EINVAL;
  }
  *text = t;
  *len = n;
  return EVSSH_OK;
}

int cache_config_text(evssh_cache *c, const char *path, char **text, size_t *len, struct stat *st, int *sys_errno) {
  if (!c || !path || !text || !len || !st || !sys_errno) return 1;
  file_sig now = sig_of(path);
  if (now.present) {
    pthread_mutex_lock(&c->lock);
    int rc = text_lookup(c, path, &now, text, len, st);
    pthread_mutex_unlock(&c->lock);
    if (rc <= 0) return rc;
  }
  int rc = text_read(path, text, len, st, sys_errno);
  if (rc != EVSSH_OK) return rc;
  file_sig read_sig = sig_of_stat(st);
  /* keep it only when what was read is the file stat()ed before (and still
     the same size: nothing was appended while reading) */
  if (now.present && sig_same(&now, &read_sig) && (off_t)*len == st->st_size) {
    pthread_mutex_lock(&c->lock);
    text_insert(c, path, st, *text, *len);
    pthread_mutex_unlock(&c->lock);
  }
  return EVSSH_OK;
}

/* ------------------------------------------------------------- %C hash */

int cache_conn_hash(evssh_cache *c, const char *in, size_t len, cache_hash_fn compute, void *ud, char out[41]) {
  if (!c) return compute(in, len, out, ud);
  pthread_mutex_lock(&c->lock);
  for (hash_entry *e = c->hashes; e; e = e->next)
    if (e->len == len && memcmp(e->in, in, len) == 0) {
      memcpy(out, e->hex, sizeof e->hex);
      e->used = ++c->tick;
      c->stats.conn_hash_hits++;
      pthread_mutex_unlock(&c->lock);
      return EVSSH_OK;
    }
  pthread_mutex_unlock(&c->lock);
  /* SHA-1 of a few dozen bytes: computed outside the lock all the same,
     so a thread never waits on another's digest */
  int rc = compute(in, len, out, ud);
  if (rc != EVSSH_OK) return rc;
  hash_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->in = malloc(len ? len : 1))) {
    free(e);
    return EVSSH_OK;   /* not kept: the next session computes it again */
  }
  memcpy(e->in, in, len);
  e->len = len;
  memcpy(e->hex, out, sizeof e->hex);
  pthread_mutex_lock(&c->lock);
  c->stats.conn_hashes++;
  for (hash_entry *h = c->hashes; h; h = h->next)
    if (h->len == len && memcmp(h->in, in, len) == 0) {   /* another thread's */
      free(e->in);
      free(e);
      pthread_mutex_unlock(&c->lock);
      return EVSSH_OK;
    }
  if (c->nhashes >= MAX_HASHES) {
    hash_entry **oldest = NULL;
    for (hash_entry **p = &c->hashes; *p; p = &(*p)->next)
      if (!oldest || (*p)->used < (*oldest)->used) oldest = p;
    hash_entry *old = *oldest;
    *oldest = old->next;
    c->nhashes--;
    hash_entry_free(c, old);
  }
  e->used = ++c->tick;
  e->next = c->hashes;
  c->hashes = e;
  c->nhashes++;
  pthread_mutex_unlock(&c->lock);
  return EVSSH_OK;
}

/* ------------------------------------------------- agent identity lists */

void cache_agent_release(cache_agent_list *list) {
  if (!list || __atomic_sub_fetch(&list->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  evssh_agent_identities_free(list->ids, list->n);
  free(list);
}

static cache_agent_list *list_hold(cache_agent_list *list) {
  __atomic_add_fetch(&list->refs, 1, __ATOMIC_RELAXED);
  return list;
}

static long long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under the lock: unlink and free the entry for path, if any. */
static void agent_forget(evssh_cache *c, const char *path) {
  for (agent_entry **p = &c->agents; *p; p = &(*p)->next) {
    agent_entry *e = *p;
    if (strcmp(e->path, path) != 0) continue;
    *p = e->next;
    c->nagents--;
    agent_entry_free(c, e);
    return;
  }
}

int cache_agent_identities(evssh_cache *c, evssh_agent *agent, bool fresh, cache_agent_list **list, bool *from_cache,
                           char *err, size_t errlen) {
  *list = NULL;
  *from_cache = false;
  const char *path = evssh_agent_path(agent);
  file_sig now = c && path ? sig_of(path) : (file_sig){0};
  if (c && path && now.present) {
    pthread_mutex_lock(&c->lock);
    long long t = monotonic_ms();
    for (agent_entry **p = &c->agents; *p; p = &(*p)->next) {
      agent_entry *e = *p;
      if (strcmp(e->path, path) != 0) continue;
      bool good = !fresh && sig_same(&e->sig, &now) && t - e->asked_ms < c->agent_ttl_ms;
      if (good) {
        *list = list_hold(e->list);
        *from_cache = true;
        c->stats.agent_hits++;
        pthread_mutex_unlock(&c->lock);
        return EVSSH_OK;
      }
      /* expired, another socket, or found stale by a session */
      if (fresh) c->stats.agent_drops++;
      *p = e->next;
      c->nagents--;
      agent_entry_free(c, e);
      break;
    }
    pthread_mutex_unlock(&c->lock);
  }
  cache_agent_list *l = calloc(1, sizeof *l);
  if (!l) return EVSSH_ENOMEM;
  l->refs = 1;
  long long asked = monotonic_ms();
  int rc = evssh_agent_identities(agent, &l->ids, &l->n, err, errlen);
  if (rc) {
    free(l);
    return rc;
  }
  *list = l;
  if (!c || !path || !now.present) return EVSSH_OK;
  agent_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->path = strdup(path))) {
    free(e);
    return EVSSH_OK;   /* not kept: the next session asks the agent itself */
  }
  e->sig = now;
  e->asked_ms = asked;
  e->list = list_hold(l);
  pthread_mutex_lock(&c->lock);
  c->stats.agent_lists++;
  if (c->agent_ttl_ms == 0) {
    pthread_mutex_unlock(&c->lock);
    cache_agent_release(e->list);
    free(e->path);
    free(e);
    return EVSSH_OK;
  }
  agent_forget(c, path);   /* another thread's answer, older or not: this one is newer */
  if (c->nagents >= MAX_AGENTS) {
    agent_entry **oldest = NULL;
    for (agent_entry **p = &c->agents; *p; p = &(*p)->next)
      if (!oldest || (*p)->asked_ms < (*oldest)->asked_ms) oldest = p;
    agent_entry *old = *oldest;
    *oldest = old->next;
    c->nagents--;
    agent_entry_free(c, old);
  }
  e->next = c->agents;
  c->agents = e;
  c->nagents++;
  pthread_mutex_unlock(&c->lock);
  return EVSSH_OK;
}
