/* The shared cache's internal interface (cache.c): what the layers call at
 * the points where a session would otherwise read and parse a file again.
 * Each call takes the session's cache, which may be NULL: then it is
 * exactly the uncached call it stands for, so a call site changes by one
 * name and one argument. */
#ifndef EVSSH_CACHE_H
#define EVSSH_CACHE_H

#include "evssh.h"
#include "agent.h"
#include "config.h"
#include "keys.h"
#include "knownhosts.h"

#include <sys/stat.h>

/* A session's reference (evssh_session_set_cache / session free). */
evssh_cache *cache_ref(evssh_cache *c);
void cache_unref(evssh_cache *c);

/* evssh_key_load_private / _public through the cache: a hit is a private
   copy of the parsed key (its EVP_PKEY shared by reference), so the caller
   frees it with evssh_key_free as before. An entry is good while the file's
   device, inode, size and mtime are unchanged. A passphrase callback runs
   only on a miss; failures are not cached. */
int cache_key_load_private(evssh_cache *c, const char *path, evssh_passphrase_fn fn, void *ud, evssh_key **out,
                           char *err, size_t errlen);
int cache_key_load_public(evssh_cache *c, const char *path, evssh_key **out, char *err, size_t errlen);
/* cache_key_load_private with the caller's own stat() of path, made
   earlier in the same connect (auth.c stats each identity file when it
   collects the keys), standing for the one the freshness check would make:
   a hit is the key the file held when seen. A miss loads and stats as
   cache_key_load_private does. */
int cache_key_load_private_seen(evssh_cache *c, const char *path, const struct stat *seen, evssh_passphrase_fn fn,
                                void *ud, evssh_key **out, char *err, size_t errlen);

/* evssh_knownhosts_check / _types through the cache: one parsed set per
   (files, host, port, addr), good while every file's identity and mtime
   (or its absence) are unchanged. */
int cache_knownhosts_check(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                           const char *addr, const unsigned char *blob, size_t blob_len, evssh_kh_result *res,
                           char *err, size_t errlen);
/* evssh_knownhosts_load through the cache: *out is the caller's own copy
   of the shared parsed set (evssh_knownhosts_dup), to add to and free as a
   freshly loaded one. */
int cache_knownhosts_load(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                          const char *addr, evssh_known_hosts **out, char *err, size_t errlen);
int cache_knownhosts_types(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                           char **types, char *err, size_t errlen);

/* What trust.c orders HostKeyAlgorithms by, read on the shared set under
   the lock (no copy of it is made): the key types known for (host, port)
   as evssh_knownhosts_loaded_types gives them (*types malloc'd, NULL when
   none) and whether a @cert-authority line covers the host. c NULL: a
   plain load of the files. Errors as for cache_knownhosts_load. */
int cache_knownhosts_order_info(evssh_cache *c, const char *const *files, size_t nfiles, const char *host, int port,
                                char **types, bool *has_ca, char *err, size_t errlen);

/* The local user's name and home directory for uid (getpwuid_r), as
   config.c needs them for a default User, ~, %u and %d: kept while the uid
   and the identity and mtime of /etc/passwd are unchanged (a user database
   other than the file, e.g. a directory service, is then read once per
   cache: as ssh reads it once per process); dropped by evssh_cache_clear.
   c NULL: asked each time. EVSSH_OK, or EVSSH_EINVAL when uid has no entry
   (nothing kept). */
int cache_local_user(evssh_cache *c, uid_t uid, char *name, size_t nlen, char *home, size_t hlen);

/* An ssh_config file's text through the cache (config.c reads every file,
   Included ones too, through this when its session has a cache): on a hit
   *text is a copy of the text read before (the caller frees it), *st the
   stat of the file as read then (for the owner/mode check); an entry is
   good while the file's device, inode, size and mtime are unchanged.
   Returns EVSSH_OK; 1 when the file is not for the cache (c NULL, larger
   than 1 MiB, not a regular file: the caller reads it itself); or
   EVSSH_EINVAL with *sys_errno the open or read error (ENOENT when absent:
   absence is not cached), or EVSSH_ENOMEM. */
int cache_config_text(evssh_cache *c, const char *path, char **text, size_t *len, struct stat *st, int *sys_errno);

/* evssh_config_read_file through the cache (defined in config.c, the
   parser; the files' text comes from cache_config_text). It also hands
   the cache to the config as cache_config_use does. */
int cache_config_read_file(evssh_cache *c, evssh_config *cfg, const char *path, const char *host, char *err,
                           size_t errlen);

/* An agent's identity list, shared read-only by the sessions holding it
   (cache_agent_release lets go). */
typedef struct cache_agent_list {
  int refs;
  evssh_agent_identity *ids;
  size_t n;
} cache_agent_list;

/* evssh_agent_identities through the cache: the list for the agent's
   socket path, asked of the agent (REQUEST_IDENTITIES) at most once per
   the cache's agent TTL (evssh_cache_set_agent_ttl), and again at once
   when the socket file is another one (the agent restarted) or after
   evssh_cache_clear. fresh: ask the agent whatever the cache holds, and
   keep that answer instead (a session found the kept one stale: counted
   in agent_drops). *list is the caller's to release; *from_cache says
   whether the agent was asked. c NULL: the plain request. Errors as for
   evssh_agent_identities (nothing is kept then). */
int cache_agent_identities(evssh_cache *c, evssh_agent *agent, bool fresh, cache_agent_list **list, bool *from_cache,
                           char *err, size_t errlen);
void cache_agent_release(cache_agent_list *list); /* NULL ok */

/* Have evssh_config_finalize make the config's %C hash through c (held
   until the config is freed or given another; NULL: none). Defined in
   config.c. A session that reads no config file (ConfigFile none) gets
   there only through this. */
void cache_config_use(evssh_config *cfg, evssh_cache *c);

/* The %C hash (config.c) through the cache: the 40 hex digits for one
   input (the length-prefixed local host name, host, port, user and jump
   host, as config.c builds it) computed once per distinct input. On a hit
   out gets the kept value; on a miss compute(in, len, out, ud) makes it
   and a success is kept. c NULL: compute alone. Returns what compute
   returns (EVSSH_OK on a hit). */
typedef int (*cache_hash_fn)(const char *in, size_t len, char out[41], void *ud);
int cache_conn_hash(evssh_cache *c, const char *in, size_t len, cache_hash_fn compute, void *ud, char out[41]);

#endif
