/* Internal to the ssh_config layer: the shared types of config.c (layers,
 * files, finalize) and config_values.c (keyword table, argument lexing,
 * value validation). Nothing else includes this. */
#ifndef EVSSH_CONFIG_INTERNAL_H
#define EVSSH_CONFIG_INTERNAL_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct strlist {
  char **v;
  size_t n, cap;
} strlist;

enum kwtype {
  T_STR,       /* one argument, stored as written */
  T_FLAG,      /* yes/no */
  T_PORT,
  T_UINT,
  T_TIME,      /* ssh time format, seconds */
  T_TIMEOUT,   /* "none" or time */
  T_STRICT,
  T_PUBKEY,    /* yes/no/unbound/host-bound */
  T_LOGLEVEL,
  T_AF,
  T_ALGOS,
  T_REKEY,
  T_COMMAND,   /* rest of the line verbatim */
  T_JUMP,
  T_FWDAGENT,
  T_ACCUM,     /* one argument per line, lines accumulate */
  T_MULTI,     /* several arguments, first line wins */
  T_ACCUM_MULTI, /* several arguments, lines accumulate */
};

enum {
  K_USER, K_PORT, K_HOSTNAME, K_IDENTITYFILE, K_IDENTITIESONLY, K_IDENTITYAGENT,
  K_USERKNOWNHOSTS, K_GLOBALKNOWNHOSTS, K_STRICT, K_HASHKNOWNHOSTS, K_CONNECTTIMEOUT,
  K_ALIVEINTERVAL, K_ALIVECOUNT, K_CIPHERS, K_MACS, K_KEX, K_HOSTKEYALGS, K_PUBKEYALGS,
  K_PREFAUTH, K_PASSWORDAUTH, K_KBDINT, K_PUBKEYAUTH, K_BATCHMODE, K_PROXYCOMMAND,
  K_PROXYJUMP, K_REKEYLIMIT, K_LOGLEVEL, K_ADDRESSFAMILY, K_BINDADDRESS, K_PASSPROMPTS,
  K_COMPRESSION, K_SENDENV, K_SETENV, K_FORWARDAGENT,
  K_LOCALFORWARD, K_REMOTEFORWARD, K_DYNAMICFORWARD, K_EXITONFWDFAILURE, K_GATEWAYPORTS,
  K_CERTIFICATEFILE, K_REVOKEDHOSTKEYS, K_HOSTKEYALIAS,
  K_COUNT
};

typedef struct kwdef {
  const char *name;
  enum kwtype type;
} kwdef;

typedef struct slot {
  bool set;
  char *val;      /* scalar value, or the list joined by spaces */
  strlist list;   /* list-valued keywords */
} slot;

struct evssh_config {
  slot explicit_opt[K_COUNT];
  slot file[K_COUNT];
  slot raw[K_COUNT];     /* after finalize: merged, defaults in, unexpanded */
  slot final[K_COUNT];   /* after finalize: expanded */
  char *ignore_unknown;
  bool finalized;
  /* the cache the files were last read through (held: cache_ref): the %C
     hash of finalize goes through it too */
  evssh_cache *cache;
};


extern const kwdef cfg_keywords[K_COUNT];

void cfg_strlist_free(strlist *l);
int cfg_strlist_push_owned(strlist *l, char *s);
int cfg_strlist_push(strlist *l, const char *s);
bool cfg_strlist_has(const strlist *l, const char *s);
char *cfg_join_list(const strlist *l, const char *sep);
void cfg_slot_clear(slot *s);
int cfg_slot_rejoin(slot *s);
bool cfg_is_list_type(enum kwtype t);
int cfg_keyword_index(const char *name);
bool cfg_openssh_keyword(const char *name);
int cfg_split_args(const char *s, strlist *out, char *err, size_t errlen);
char *cfg_dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cfg_parse_value(int k, const strlist *args, const char *rest, char **canon,
                       strlist *items, char *err, size_t errlen);
int cfg_store_value(slot *layer, int k, char *canon, strlist *items, bool first_wins);

/* evssh_config_read_file over text in memory, for the fuzz target
   (test/fuzz/fuzz_config.c): name stands for the file in messages, and
   nothing outside the text is touched. Match exec runs no command (its
   tokens are expanded; it matches when the result is "true"); Include
   reads no file (its pattern is expanded; at the top level it reads the
   text itself once more, deeper it matches nothing). */
int cfg_read_text(evssh_config *c, const char *name, const char *text, size_t len, const char *host, char *err,
                  size_t errlen);

#endif
