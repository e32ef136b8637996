/* Session options with OpenSSH ssh_config(5) semantics: explicit options,
 * config files (Host / Match / Include, first value wins), defaults, token
 * and ~ expansion, and the +/-/^ algorithm-list grammar.
 *
 * Life cycle:
 *   evssh_config_new
 *   evssh_config_set ...          explicit options (any time before finalize)
 *   evssh_config_read_file ...    zero or more files (NULL = the default files)
 *   evssh_config_finalize         defaults + expansion; get() then returns
 *                                 final values
 *   evssh_config_get / _get_list
 *   evssh_config_free
 *
 * Precedence: an explicit option beats every file value, a file value beats
 * the default. Inside files the first obtained value wins (as in ssh), except
 * IdentityFile and SendEnv, which accumulate. Explicit options behave as
 * `ssh -o`: the first evssh_config_set of a keyword wins (ProxyCommand and
 * ProxyJump count as one), every value is still validated; IdentityFile and
 * SendEnv accumulate (explicit IdentityFiles come before the files' ones,
 * as ssh puts -i before the config's).
 *
 * Keywords are case-insensitive. Implemented keywords (get() names them by
 * their canonical spelling, any case accepted):
 *   User Port HostName IdentityFile IdentitiesOnly IdentityAgent
 *   UserKnownHostsFile GlobalKnownHostsFile StrictHostKeyChecking
 *   HashKnownHosts ConnectTimeout ServerAliveInterval ServerAliveCountMax
 *   Ciphers MACs KexAlgorithms HostKeyAlgorithms PubkeyAcceptedAlgorithms
 *   (alias PubkeyAcceptedKeyTypes) PreferredAuthentications
 *   PasswordAuthentication KbdInteractiveAuthentication (alias
 *   ChallengeResponseAuthentication) PubkeyAuthentication BatchMode
 *   ProxyCommand ProxyJump RekeyLimit LogLevel AddressFamily BindAddress
 *   NumberOfPasswordPrompts Compression SendEnv SetEnv ForwardAgent
 * Canonical values returned by get() after finalize:
 *   flags                  "yes" / "no"
 *   StrictHostKeyChecking  "yes" / "accept-new" / "no"  (ask and true map to
 *                          yes: there is no terminal to ask on; off/false to no)
 *   Port ServerAliveCountMax NumberOfPasswordPrompts   decimal
 *   ConnectTimeout         seconds, or "none" when unset (0 also means none)
 *   ServerAliveInterval    seconds (time suffixes s m h d w accepted on input);
 *                          default 0, or 300 under BatchMode yes as in ssh
 *   RekeyLimit             "<bytes> <seconds>", 0 meaning "default"/"none"
 *   LogLevel               QUIET FATAL ERROR INFO VERBOSE DEBUG (= debug1)
 *                          DEBUG2 DEBUG3, as ssh -G prints them
 *   AddressFamily          any / inet / inet6
 *   Compression            "yes"/"no" accepted; the transport only offers
 *                          "none", which every server must accept, so "yes"
 *                          is stored and has no effect (ssh's own behaviour
 *                          when the server refuses compression).
 *   ProxyCommand/ProxyJump whichever was obtained first; "none" reads as NULL.
 *   Algorithm lists        the raw spec as written ("+ssh-rsa"), or NULL when
 *                          unset: resolve it with evssh_config_algorithms
 *                          against the defaults of cipher.c / mac.c / kex.c /
 *                          hostkey.c.
 *   IdentityAgent          expanded path or "none"; NULL when unset or
 *                          "SSH_AUTH_SOCK" (use $SSH_AUTH_SOCK); "$NAME" is
 *                          replaced by that variable's value ("none" if unset).
 *   PreferredAuthentications  default "publickey,keyboard-interactive,password"
 *   StrictHostKeyChecking  default "yes" (BatchMode-like: unknown key fails)
 * Lists (evssh_config_get_list): IdentityFile (default, when none configured:
 * ~/.ssh/id_ed25519, id_ecdsa, id_rsa expanded; evssh_config_is_set tells
 * whether they were configured, since a missing default file is not an
 * error but a missing configured one may be), UserKnownHostsFile (default
 * ~/.ssh/known_hosts ~/.ssh/known_hosts2), GlobalKnownHostsFile (default
 * /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2), SendEnv, SetEnv.
 * For those, get() returns the items joined by one space.
 *
 * Expansion in finalize, as ssh does it: HostName gets %h and %% and is
 * then lower-cased (Host patterns compare with the host as given, case
 * and all; Match host/originalhost ignore case).
 * IdentityFile, UserKnownHostsFile, IdentityAgent get ~, ${ENV} and the
 * tokens %% %C %d %h %i %k %L %l %n %p %r %u. ProxyCommand gets %h %p %r
 * %n %%. Token meanings: %h remote host after HostName, %n host as given,
 * %p port, %r remote user, %u local user, %d local home, %i local uid,
 * %l local host name, %L its first label, %k host key alias (= %n, since
 * HostKeyAlias is not implemented), %C hex SHA-1 of %l%h%p%r.
 *
 * Files: unknown keywords are EVSSH_EINVAL with "file:line" unless matched
 * by IgnoreUnknown; keywords that OpenSSH knows but evssh does not implement
 * (ForwardX11, ControlMaster, ...) are accepted and ignored. Values are
 * validated on every line, active or not, as ssh does. Host takes
 * whitespace-separated patterns (* ? and ! negation); Match supports all,
 * host, originalhost, user, localuser, exec, canonical, final, each
 * negatable with !. "Match exec" runs the command with /bin/sh -c (stdin
 * and stdout on /dev/null), as ssh does; its tokens are %% %C %d %h %i %k
 * %L %l %n %p %r %u. Match canonical/final trigger a second pass over the
 * files in which they match and Host patterns are compared with the
 * resolved HostName, as ssh's final pass does (there is no canonicalisation
 * here). Include takes glob patterns, relative to ~/.ssh (to /etc/ssh for
 * the system file); inside an inactive block it is parsed but never matches.
 * Arguments may be quoted ("..." or '...'); "Keyword=value" works.
 *
 * Not thread-safe per object; two objects in two threads are fine. */
#ifndef EVSSH_CONFIG_H
#define EVSSH_CONFIG_H

#include "evssh.h"
#include <stddef.h>
#include <stdbool.h>

typedef struct evssh_config evssh_config;

int  evssh_config_new(evssh_config **out);
void evssh_config_free(evssh_config *c);   /* NULL ok */

/* Explicit option. Unknown keyword, a keyword evssh does not implement, or
   a bad value: EVSSH_EINVAL with a message naming the keyword (and value).
   The value is split like a config line (quotes honoured); ProxyCommand
   takes it verbatim. Host, Match, Include are not options. */
int evssh_config_set(evssh_config *c, const char *keyword, const char *value,
                     char *err, size_t errlen);

/* Read one config file for host (as given by the caller, before HostName).
   path NULL: ~/.ssh/config then /etc/ssh/ssh_config, each skipped when
   missing (the user file must not be writable by others, as ssh insists).
   An explicit path that cannot be opened is EVSSH_EINVAL. Errors name
   file:line. On error the object keeps the values read so far. */
int evssh_config_read_file(evssh_config *c, const char *path, const char *host,
                           char *err, size_t errlen);

/* Fill defaults and expand tokens for host (the same string given to
   read_file). May be called again after more set() calls. */
int evssh_config_finalize(evssh_config *c, const char *host, char *err, size_t errlen);

/* Canonical value (after finalize) or NULL. Before finalize: the explicit
   or file value, unexpanded, or NULL. keyword is case-insensitive; aliases
   accepted. */
const char *evssh_config_get(const evssh_config *c, const char *keyword);
/* Value before ~/token expansion (after finalize defaults are included),
   which is what `ssh -G` prints for IdentityFile and ProxyCommand. */
const char *evssh_config_get_raw(const evssh_config *c, const char *keyword);
size_t evssh_config_get_list(const evssh_config *c, const char *keyword,
                             const char *const **values);
size_t evssh_config_get_list_raw(const evssh_config *c, const char *keyword,
                                 const char *const **values);
/* Did an explicit option or a file give this keyword a value? */
bool evssh_config_is_set(const evssh_config *c, const char *keyword);

/* Resolve an algorithm spec as OpenSSH does: NULL or "" → defaults;
   "+a,b" appends to defaults, "-a,b" removes from defaults, "^a,b" puts in
   front of defaults, otherwise the list replaces defaults. Patterns with *
   and ? expand against supported (in its order). A name or pattern (outside
   "-") that matches nothing supported, a "!" pattern, or an empty result is
   EVSSH_EINVAL naming it. Duplicates are dropped. *out is malloc'd. */
int evssh_config_algorithms(const char *spec, const char *defaults, const char *supported,
                            char **out, char *err, size_t errlen);

/* Shell-style pattern match (* and ?), exposed for known_hosts. */
bool evssh_config_match_pattern(const char *s, const char *pattern);
/* Comma-separated pattern list with ! negation: 1 match, -1 negated
   match, 0 no match. Case-insensitive when fold is true. */
int evssh_config_match_list(const char *s, const char *list, bool fold);

#endif
