/* example_args.h: the command line the examples share, ssh's own shape:
 *
 *   NAME [-o Keyword=value]... [user@]host ARGS...
 *
 * Every -o is an ssh_config keyword handed to evssh_start (Port=2222,
 * IdentityFile=..., UserKnownHostsFile=..., ConfigFile=none, ...). Kept in
 * one header so each example shows only what it is about. */
#ifndef EXAMPLE_ARGS_H
#define EXAMPLE_ARGS_H

#include <evssh.h>
#include <stdio.h>
#include <string.h>

typedef struct example_cmdline {
  const char *options[64];  /* NULL-terminated, for evssh_start */
  const char *user;         /* NULL: the default user, as ssh picks it */
  const char *host;
  char **args;              /* what follows the destination */
  int nargs;
} example_cmdline;

/* Fills c; prints a usage line and returns false when the arguments after
   the destination are fewer than min_args or more than max_args. */
static inline bool example_parse(int argc, char **argv, int min_args, int max_args, const char *usage_tail,
                                 example_cmdline *c) {
  size_t n = 0;
  int i = 1;
  for (; i + 1 < argc && strcmp(argv[i], "-o") == 0 && n < 63; i += 2) c->options[n++] = argv[i + 1];
  c->options[n] = NULL;
  int rest = argc - i - 1;
  if (i >= argc || rest < min_args || rest > max_args) {
    fprintf(stderr, "usage: %s [-o Keyword=value]... [user@]host%s\n", argv[0], usage_tail);
    return false;
  }
  char *dest = argv[i], *at = strchr(dest, '@');
  c->user = NULL;
  if (at) {
    *at = 0;
    c->user = dest;
    dest = at + 1;
  }
  c->host = dest;
  c->args = argv + i + 1;
  c->nargs = rest;
  return true;
}

/* evssh_start for the parsed destination; says why on failure */
static inline evssh_session *example_connect(const example_cmdline *c) {
  evssh_error err;
  evssh_session *s = evssh_start(c->host, c->user, c->options, &err);
  if (!s) fprintf(stderr, "%s: %s (%s)\n", c->host, err.message, evssh_strerror(err.code));
  return s;
}

/* The non-blocking way in, for the examples that drive a loop themselves:
   a session for dest ("host", "user@host", "host:port", "[v6]:port"; an
   ssh_config alias works too) with User, Port and every "Keyword=value" of
   opts set, not yet connected. NULL with the reason in err. */
static inline evssh_session *example_session_new(const char *dest, const char *const *opts, size_t nopts,
                                                 char *err, size_t errlen) {
  char user[128] = "", host[256];
  const char *at = strrchr(dest, '@');
  if (at) {
    snprintf(user, sizeof user, "%.*s", (int)(at - dest), dest);
    dest = at + 1;
  }
  snprintf(host, sizeof host, "%.255s", dest);
  const char *port = NULL;
  char *colon = strrchr(host, ':');
  if (host[0] == '[') {            /* [v6]:port */
    char *close = strchr(host, ']');
    if (close) {
      port = close[1] == ':' ? close + 2 : NULL;
      *close = 0;
      memmove(host, host + 1, strlen(host));
    }
  } else if (colon && colon == strchr(host, ':')) {
    *colon = 0;
    port = colon + 1;
  }
  evssh_session *s = evssh_session_new(host);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  int rc = EVSSH_OK;
  if (user[0]) rc = evssh_session_option(s, "User", user);
  if (!rc && port) rc = evssh_session_option(s, "Port", port);
  for (size_t i = 0; i < nopts && !rc; i++) {
    const char *eq = strchr(opts[i], '=');
    char kw[64];
    snprintf(kw, sizeof kw, "%.*s", eq ? (int)(eq - opts[i]) : 0, opts[i]);
    rc = eq ? evssh_session_option(s, kw, eq + 1) : EVSSH_EINVAL;
  }
  if (rc) {
    snprintf(err, errlen, "%s", evssh_session_error(s)[0] ? evssh_session_error(s) : "bad option");
    evssh_session_free(s);
    return NULL;
  }
  return s;
}

/* example_session_new for the parsed destination; says why on failure */
static inline evssh_session *example_session(const example_cmdline *c) {
  char err[300], dest[400];
  size_t n = 0;
  while (c->options[n]) n++;
  snprintf(dest, sizeof dest, "%s%s%s", c->user ? c->user : "", c->user ? "@" : "", c->host);
  evssh_session *s = example_session_new(dest, c->options, n, err, sizeof err);
  if (!s) fprintf(stderr, "%s: %s\n", c->host, err);
  return s;
}

#endif
