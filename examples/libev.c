/* libev.c: one command on many hosts at once from a libev loop: every
 * session goes into one evssh_multi, and the installed adapter
 * <evssh/adapters/libev.h> drives the whole multi through a single io
 * watcher on evssh_multi_fd. Output lines are prefixed with their host; at
 * the end each host's exit status or error is printed.
 *
 *   libev [-o Keyword=value]... command dest...
 *
 * dest is host, user@host, host:port or user@host:port. Exit status 0 when
 * every host ran the command with status 0, else 1. */
#include "example_args.h"

#include <evssh/adapters/libev.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct job {
  const char *dest;
  evssh_session *session;
  int exit_status;     /* -1: none */
  char error[300];
} job;

static evssh_libev *adapter;
static size_t pending;   /* hosts not finished yet */

static void finished(job *j) {
  if (--pending == 0) evssh_libev_detach(adapter);   /* ev_run returns */
}

/* Whole chunks, prefixed; enough for an example (parallel.c splits lines). */
static void on_output(evssh_channel *ch, evssh_stream stream, const char *data, size_t len, void *ud) {
  job *j = ud;
  fprintf(stream == EVSSH_STDOUT ? stdout : stderr, "%s: %.*s", j->dest, (int)len, data);
}

static void on_close(evssh_channel *ch, void *ud) {
  job *j = ud;
  if (evssh_channel_exit_status(ch, &j->exit_status) != EVSSH_OK) {
    j->exit_status = -1;
    snprintf(j->error, sizeof j->error, "no exit status: %s", evssh_session_error(evssh_channel_session(ch)));
  }
  finished(j);
}

static void on_ready(evssh_session *s, int status, void *ud) {
  job *j = ud;
  if (status != EVSSH_OK) {
    /* the multi drops a failed session by itself */
    snprintf(j->error, sizeof j->error, "%s (%s)", evssh_session_error(s), evssh_strerror(status));
    finished(j);
    return;
  }
  evssh_channel *ch = evssh_session_exec(s, evssh_session_property(s, "command"), on_output, j);
  if (!ch) {
    snprintf(j->error, sizeof j->error, "cannot start the command");
    finished(j);
    return;
  }
  evssh_channel_on_close(ch, on_close, j);
}

int main(int argc, char **argv) {
  const char *opts[64];
  size_t nopts = 0;
  int i = 1;
  for (; i + 1 < argc && strcmp(argv[i], "-o") == 0 && nopts < 64; i += 2) opts[nopts++] = argv[i + 1];
  if (argc - i < 2) {
    fprintf(stderr, "usage: libev [-o Keyword=value]... command dest...\n");
    return 2;
  }
  const char *command = argv[i++];
  size_t n = (size_t)(argc - i);
  job *jobs = calloc(n, sizeof *jobs);
  evssh_multi *m = evssh_multi_new();
  if (!jobs || !m) return 1;
  struct ev_loop *loop = EV_DEFAULT;
  for (size_t k = 0; k < n; k++) {
    job *j = &jobs[k];
    j->dest = argv[i + (int)k];
    j->exit_status = -1;
    pending++;
    j->session = example_session_new(j->dest, opts, nopts, j->error, sizeof j->error);
    if (!j->session) {
      pending--;
      continue;
    }
    evssh_session_set_property(j->session, "command", (void *)command);
    /* a connect that fails at once reports through on_ready all the same */
    evssh_session_connect_async(j->session, on_ready, j);
    evssh_multi_add(m, j->session);
  }
  if (pending > 0) {
    adapter = evssh_libev_attach_multi(loop, m, NULL, NULL);
    if (!adapter) return 1;
    ev_run(loop, 0);
  }

  size_t ok = 0;
  for (size_t k = 0; k < n; k++) {
    job *j = &jobs[k];
    if (j->exit_status >= 0) printf("[%s] exit %d\n", j->dest, j->exit_status);
    else printf("[%s] FAILED: %s\n", j->dest, j->error);
    if (j->exit_status == 0) ok++;
    if (!j->session) continue;
    evssh_multi_remove(m, j->session);   /* EINVAL for one the multi dropped already */
    evssh_session_close(j->session);
    evssh_session_free(j->session);
  }
  evssh_multi_free(m);
  free(jobs);
  return ok == n ? 0 : 1;
}
