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

#endif
