/* The shared cache's internal interface (cache.c): what the layers call at
 * the points where a session would otherwise read and parse a file again.
 * Each call takes the session's cache, which may be NULL: then it is
 * exactly the uncached call it stands for, so a call site changes by one
 * name and one argument. */
#ifndef EVSSH_CACHE_H
#define EVSSH_CACHE_H

#include "evssh.h"
#include "keys.h"
#include "knownhosts.h"

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

#endif
