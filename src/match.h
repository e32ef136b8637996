/* Host-name patterns as OpenSSH's known_hosts and certificate principals
 * use them: '*' matches any run of characters (including none), '?' exactly
 * one character, everything else itself; no escapes, no character classes.
 * A list is comma-separated patterns, each optionally negated with a
 * leading '!'. Matching never backtracks exponentially: the cost is at
 * most len(name) * len(pattern) character steps, whatever the number of
 * stars (a known_hosts file or a certificate is input from outside). */
#ifndef EVSSH_MATCH_H
#define EVSSH_MATCH_H

#include <stdbool.h>
#include <stddef.h>

/* Does name match the pattern (plen bytes, no NUL needed)? fold: compare
   ASCII letters case-insensitively (host names), else byte for byte. */
bool evssh_match_pattern_n(const char *name, const char *pattern, size_t plen, bool fold);
bool evssh_match_pattern(const char *name, const char *pattern, bool fold);

/* Match name against a comma-separated list: -1 when a negated item
   matches (the list then refuses the name whatever else matches), 1 when
   a plain item matches and no negated one does, 0 otherwise. Empty items
   are skipped. */
int evssh_match_list(const char *name, const char *list, bool fold);

#endif
