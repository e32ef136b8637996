/* A session's options resolved once into a typed struct, as OpenSSH's
 * fill_default_options does: config.c merges explicit options, files and
 * its defaults (the one place each default lives) and expands tokens;
 * options_resolve then reads every value once, typed, for the layers
 * (session, auth, trust, transport) to use without parsing text. */
#ifndef EVSSH_OPTIONS_H
#define EVSSH_OPTIONS_H

#include "config.h"
#include "forward_spec.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { STRICT_YES = 0, STRICT_ACCEPT_NEW, STRICT_NO } strict_mode;

typedef struct evssh_options {
  /* where */
  char *hostname, *user;
  int port;
  char *proxy_command, *proxy_jump;          /* NULL: none */
  /* deadlines and keepalive */
  int connect_timeout_ms;                    /* 0: the default bound */
  int alive_interval_s, alive_count_max;
  /* transport: comma lists, resolved against what we support */
  char *kex, *hostkeys, *ciphers, *macs, *pubkey_algs;
  bool hostkeys_configured;                  /* else ordered by known_hosts */
  uint64_t rekey_bytes;
  int rekey_seconds;
  /* authentication */
  char *preferred;                           /* PreferredAuthentications */
  bool batch, pubkey_auth, password_auth, kbdint_auth, identities_only;
  int password_prompts;                      /* NumberOfPasswordPrompts */
  const char *const *identity_files;         /* into the config; "none" skipped by users */
  size_t n_identity_files;
  bool identity_files_configured;
  const char *identity_agent;                /* NULL: $SSH_AUTH_SOCK; "none": no agent */
  /* host-key trust */
  const char *const *user_known_hosts;       /* "none" entries already dropped */
  size_t n_user_known_hosts;
  const char *const *global_known_hosts;
  size_t n_global_known_hosts;
  strict_mode strict;
  bool hash_known_hosts;
  /* forwarding, set up after authentication (forward_config.c) */
  forward_spec *local_forwards, *remote_forwards, *dynamic_forwards;
  size_t n_local_forwards, n_remote_forwards, n_dynamic_forwards;
  bool exit_on_forward_failure;              /* unset: no, as in ssh */
  bool gateway_ports;                        /* unset: no, as in ssh */
  bool forward_agent;                        /* ForwardAgent yes, or a socket */
  char *forward_agent_sock;                  /* that socket (path or $NAME) or NULL */
} evssh_options;

/* Finalize c for host and fill out. On failure *err is a heap message. The
   list pointers stay valid while c is neither changed nor freed. */
int  options_resolve(evssh_config *c, const char *host, evssh_options *out, char **err);
void options_release(evssh_options *o);
/* What config.c cannot check alone, checked when an option is set: an
   algorithm list that names nothing we support. */
int  options_check(const char *keyword, const char *value, char *err, size_t errlen);

#endif
