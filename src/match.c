/* match.c owns wildcard matching of host names against the patterns of
 * known_hosts lines and host-certificate principals. It is its own file
 * (not config.c's matcher) so the trust path depends on nothing that parses
 * ssh_config, and because its inputs come from outside: the matcher keeps
 * one resume point (the last star) instead of recursing per star, so a
 * pattern like "*a*a*a*a*a*b" costs at most len(name) * len(pattern)
 * steps rather than growing exponentially with the stars. */
#include "match.h"

#include <string.h>

static unsigned char fold_char(unsigned char c, bool fold) {
  return fold && c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

bool evssh_match_pattern_n(const char *name, const char *pattern, size_t plen, bool fold) {
  const unsigned char *s = (const unsigned char *)name, *p = (const unsigned char *)pattern;
  const unsigned char *pend = p + plen;
  /* after a star: where the pattern resumes and the name position the star
     has absorbed up to; a later mismatch lets the star take one more
     character. Only the last star matters: what an earlier star absorbed
     can be given to the last one instead. */
  const unsigned char *star_p = NULL, *star_s = NULL;
  while (*s) {
    if (p < pend && *p == '*') {
      star_p = ++p;
      star_s = s;
    } else if (p < pend && (*p == '?' || fold_char(*p, fold) == fold_char(*s, fold))) {
      p++;
      s++;
    } else if (star_p) {
      p = star_p;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < pend && *p == '*') p++;
  return p == pend;
}

bool evssh_match_pattern(const char *name, const char *pattern, bool fold) {
  return evssh_match_pattern_n(name, pattern, strlen(pattern), fold);
}

int evssh_match_list(const char *name, const char *list, bool fold) {
  int got = 0;
  const char *p = list;
  while (*p) {
    size_t len = strcspn(p, ",");
    const char *item = p;
    p += len;
    if (*p == ',') p++;
    bool negated = len > 0 && *item == '!';
    if (negated) {
      item++;
      len--;
    }
    if (len == 0) continue;
    if (evssh_match_pattern_n(name, item, len, fold)) {
      if (negated) return -1;
      got = 1;
    }
  }
  return got;
}
