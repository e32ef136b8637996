/* Fuzz target: ssh_config text (config.c, config_values.c, options.c):
 * Host and Match blocks with every criterion, Include, tokens and ~/${ENV}
 * expansion, quoting, "Keyword=value", every keyword's value grammar, the
 * +/-/^ algorithm lists, then finalize and the typed resolve the session
 * does. The text is read through cfg_read_text, which touches no file and
 * starts no process: Match exec matches when its expanded command is
 * "true", Include reads the same text once more at the top level.
 *
 * Input: byte 0 picks the host (plain, dotted, an address, upper case, one
 * with a token) and flags: an explicit option first (the text's first line
 * as "Keyword value", as evssh_config_set takes it), finalize twice; the
 * rest is the file. A second mode (flag 0x80) checks the pattern matcher
 * instead: the input is "string\npattern", compared with a plain
 * backtracking matcher on short strings, and as a one-item list.
 *
 * Oracles: no crash, out-of-bounds access, leak or stall (matching is
 * linear); every refusal (EINVAL) has a message; finalize is idempotent
 * (a second call gives the same value for every keyword); the matcher
 * agrees with the reference. Build: as every test/fuzz/fuzz_*.c
 * (test/fuzz/run.sh). Seeds: test/fuzz/seeds/fuzz_config/. */
#include "config_internal.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------- the matcher oracle */

static bool ref_match(const char *s, const char *p) {
  if (*p == 0) return *s == 0;
  if (*p == '*') return ref_match(s, p + 1) || (*s && ref_match(s + 1, p));
  if (*s && (*p == '?' || *p == *s)) return ref_match(s + 1, p + 1);
  return false;
}

static void check_matcher(const unsigned char *data, size_t size) {
  char s[32], p[32];
  const unsigned char *nl = memchr(data, '\n', size);
  if (!nl) return;
  size_t sl = (size_t)(nl - data), pl = size - sl - 1;
  if (sl >= sizeof s || pl >= sizeof p) return;
  memcpy(s, data, sl);
  s[sl] = 0;
  memcpy(p, nl + 1, pl);
  p[pl] = 0;
  if (strlen(s) != sl || strlen(p) != pl) return;
  int stars = 0;
  for (const char *c = p; *c; c++) stars += *c == '*';
  if (stars > 8) return;   /* the reference is exponential */
  bool want = ref_match(s, p);
  if (evssh_config_match_pattern(s, p) != want) abort();
  /* a list of one item, no negation, no comma: the same answer */
  if (!strchr(p, ',') && p[0] != '!' && p[0] && (evssh_config_match_list(s, p, false) == 1) != want) abort();
}

/* ---------------------------------------------------- the config path */

static const char *const hosts[] = {"fuzzhost", "web1.example.com", "10.0.0.1", "MiXeD.Example.ORG",
                                    "h%h", "a-very-long-host-name.with.many.labels.example.net",
                                    "::1", "x"};

/* The getters' view of one keyword's slot (evssh_config_get and _get_raw
   after finalize: the value when set, else NULL), read from the slots
   directly: looking each keyword up by name (a linear strcasecmp scan, the
   same for every input) cost more than the parsing it checks. */
static const char *slot_value(const slot *s) { return s->set ? s->val : NULL; }

static char *snapshot(const evssh_config *c) {
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  out[0] = 0;
  for (int k = 0; k < K_COUNT; k++) {
    const char *v = slot_value(&c->final[k]);
    const char *raw = slot_value(&c->raw[k]);
    size_t need = strlen(cfg_keywords[k].name) + (v ? strlen(v) : 6) + (raw ? strlen(raw) : 6) + 4;
    if (len + need + 1 > cap) {
      while (len + need + 1 > cap) cap *= 2;
      char *grown = realloc(out, cap);
      if (!grown) {
        free(out);
        return NULL;
      }
      out = grown;
    }
    len += (size_t)snprintf(out + len, cap - len, "%s=%s|%s\n", cfg_keywords[k].name, v ? v : "(null)",
                            raw ? raw : "(null)");
  }
  return out;
}

static void check_list(const slot *s) {
  if (!s->set) return;
  for (size_t i = 0; i < s->list.n; i++)
    if (!s->list.v[i]) abort();
}

/* Every keyword's lists hold no NULL item; the public getters, by name,
   agree with the slots for one keyword the input picks (each keyword's
   name is looked up the same way whatever the input). */
static void read_everything(const evssh_config *c, unsigned pick) {
  for (int k = 0; k < K_COUNT; k++) {
    check_list(&c->final[k]);
    check_list(&c->raw[k]);
  }
  int k = (int)(pick % K_COUNT);
  const char *name = cfg_keywords[k].name;
  const char *const *items = NULL;
  size_t n = evssh_config_get_list(c, name, &items);
  if (n != (c->final[k].set ? c->final[k].list.n : 0) || (n && items != (const char *const *)c->final[k].list.v))
    abort();
  n = evssh_config_get_list_raw(c, name, &items);
  if (n != (c->raw[k].set ? c->raw[k].list.n : 0) || (n && items != (const char *const *)c->raw[k].list.v)) abort();
  if (evssh_config_get(c, name) != slot_value(&c->final[k]) || evssh_config_get_raw(c, name) != slot_value(&c->raw[k]))
    abort();
  (void)evssh_config_is_set(c, name);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1) return 0;
  unsigned flags = data[0];
  if (flags & 0x80) {
    check_matcher(data + 1, size - 1);
    return 0;
  }
  const char *host = hosts[flags & 7];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  evssh_config *c = NULL;
  if (evssh_config_new(&c) != EVSSH_OK) return 0;
  char err[512];
  if (flags & 0x08) {
    /* the first line as an explicit option, as evssh_session_option takes it */
    const char *nl = memchr(text, '\n', len);
    size_t line_len = nl ? (size_t)(nl - text) : len;
    char *line = malloc(line_len + 1);
    if (line) {
      memcpy(line, text, line_len);
      line[line_len] = 0;
      char *sp = strchr(line, ' ');
      if (sp) {
        *sp = 0;
        err[0] = 0;
        int rc = evssh_config_set(c, line, sp + 1, err, sizeof err);
        if (rc == EVSSH_EINVAL && !err[0]) abort();
        if (rc == EVSSH_OK) options_check(line, sp + 1, err, sizeof err);
      }
      free(line);
    }
  }
  err[0] = 0;
  int rc = cfg_read_text(c, "fuzz_config", text, len, host, err, sizeof err);
  if (rc == EVSSH_EINVAL && !err[0]) abort();
  err[0] = 0;
  rc = evssh_config_finalize(c, host, err, sizeof err);
  if (rc == EVSSH_EINVAL && !err[0]) abort();
  if (rc == EVSSH_OK) {
    read_everything(c, (unsigned)size ^ (unsigned)data[size - 1]);
    if (flags & 0x10) {
      char *first = snapshot(c);
      rc = evssh_config_finalize(c, host, err, sizeof err);
      char *second = snapshot(c);
      if (rc != EVSSH_OK) abort();   /* it succeeded once on the same input */
      if (first && second && strcmp(first, second) != 0) abort();
      free(first);
      free(second);
    }
    /* what connect does next: one typed read of every value */
    evssh_options opt;
    char *why = NULL;
    rc = options_resolve(c, host, &opt, &why);
    if (rc == EVSSH_OK) {
      options_release(&opt);
    } else if (rc == EVSSH_EINVAL && (!why || !why[0])) {
      abort();
    }
    free(why);
  }
  evssh_config_free(c);
  return 0;
}
