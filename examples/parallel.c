/* parallel.c: run one command on many hosts at once from one thread, the
 * thing one reaches for pssh to do. Every session connects, authenticates
 * and runs the command inside one evssh_multi; each output line is printed
 * as it arrives, prefixed with its host (stderr lines go to stderr); at the
 * end a summary gives each host's exit status or error.
 *
 *   parallel [-o Keyword=value]... [-p max_parallel] [-q] command dest...
 *
 * dest is host, user@host, host:port or user@host:port (an ssh_config alias
 * works too); -o options apply to every host; -p bounds how many sessions
 * are open at once (default 100, 0: no bound); -q prints only the summary.
 * Exit status 0 when every host ran the command with status 0, else 1. */
#include "example_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct line_buf {
  char *data;
  size_t len, cap;
} line_buf;

typedef struct host_job {
  const char *dest;         /* as given */
  evssh_session *session;
  int status;               /* on_ready's */
  int exit_status;          /* -1 none */
  const char *signal;
  char error[300];
  bool started, finished, reported;
  line_buf out, err;
} host_job;

static bool quiet;

/* Print every complete line of b with the host in front; at the end
   (flush_all) also the unterminated rest. */
static void emit_lines(host_job *j, line_buf *b, FILE *f, bool flush_all) {
  if (b->len == 0) return;
  size_t start = 0;
  for (size_t i = 0; i < b->len; i++) {
    if (b->data[i] != '\n') continue;
    if (!quiet) fprintf(f, "%s: %.*s\n", j->dest, (int)(i - start), b->data + start);
    start = i + 1;
  }
  if (flush_all && start < b->len) {
    if (!quiet) fprintf(f, "%s: %.*s\n", j->dest, (int)(b->len - start), b->data + start);
    start = b->len;
  }
  memmove(b->data, b->data + start, b->len - start);
  b->len -= start;
}

static void on_output(evssh_channel *ch, evssh_stream stream, const char *data, size_t len, void *ud) {
  host_job *j = ud;
  line_buf *b = stream == EVSSH_STDOUT ? &j->out : &j->err;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + len) cap *= 2;
    char *v = realloc(b->data, cap);
    if (!v) return;   /* out of memory: this chunk is lost, the run goes on */
    b->data = v;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  emit_lines(j, b, stream == EVSSH_STDOUT ? stdout : stderr, false);
}

static void on_closed(evssh_channel *ch, void *ud) {
  host_job *j = ud;
  int st;
  const char *sig;
  emit_lines(j, &j->out, stdout, true);
  emit_lines(j, &j->err, stderr, true);
  if (evssh_channel_exit_status(ch, &st) == EVSSH_OK) j->exit_status = st;
  if (evssh_channel_exit_signal(ch, &sig) == EVSSH_OK && sig) j->signal = strdup(sig);
  if (j->exit_status < 0 && !j->signal && evssh_session_closed(evssh_channel_session(ch)))
    snprintf(j->error, sizeof j->error, "%s", evssh_session_error(evssh_channel_session(ch)));
  j->finished = true;
}

static void on_ready(evssh_session *s, int status, void *ud) {
  host_job *j = ud;
  j->status = status;
  if (status != EVSSH_OK) {
    snprintf(j->error, sizeof j->error, "%s", evssh_session_error(s));
    j->finished = true;
    return;
  }
  const char *command = evssh_session_property(s, "command");
  evssh_channel *ch = evssh_session_exec(s, command, on_output, j);
  if (!ch) {
    snprintf(j->error, sizeof j->error, "cannot start the command");
    j->status = EVSSH_ECHANNEL;
    j->finished = true;
    return;
  }
  evssh_channel_on_close(ch, on_closed, j);
}

static int usage(void) {
  fprintf(stderr, "usage: parallel [-o Keyword=value]... [-p max_parallel] [-q] command dest...\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *opts[128];
  size_t nopts = 0;
  long max_parallel = 100;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-q") == 0) {
      quiet = true;
    } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && nopts < 128) {
      opts[nopts++] = argv[++i];
    } else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
      max_parallel = strtol(argv[++i], NULL, 10);
    } else {
      return usage();
    }
  }
  if (argc - i < 2) return usage();
  const char *command = argv[i++];
  size_t nhosts = (size_t)(argc - i);
  host_job *jobs = calloc(nhosts, sizeof *jobs);
  evssh_multi *m = evssh_multi_new();
  if (!jobs || !m) return 1;
  for (size_t k = 0; k < nhosts; k++) {
    jobs[k].dest = argv[i + (int)k];
    jobs[k].exit_status = -1;
    jobs[k].status = 1;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  size_t next = 0, open = 0, done = 0;
  while (done < nhosts) {
    /* start sessions up to the bound */
    while (next < nhosts && (max_parallel <= 0 || open < (size_t)max_parallel)) {
      host_job *j = &jobs[next++];
      j->started = true;
      j->session = example_session_new(j->dest, opts, nopts, j->error, sizeof j->error);
      if (j->session) {
        evssh_session_set_property(j->session, "command", (void *)command);
        if (evssh_session_connect_async(j->session, on_ready, j) == EVSSH_OK &&
            evssh_multi_add(m, j->session) == EVSSH_OK) {
          open++;
          continue;
        }
        if (!j->error[0]) snprintf(j->error, sizeof j->error, "%s", evssh_session_error(j->session));
      }
      j->status = j->status == 1 ? EVSSH_EINVAL : j->status;
      j->finished = true;
    }
    /* reap: finished sessions leave the multi and close (outside callbacks) */
    for (size_t k = 0; k < next; k++) {
      host_job *j = &jobs[k];
      if (!j->finished || j->reported) continue;
      j->reported = true;
      done++;
      if (j->session) {
        evssh_multi_remove(m, j->session);
        evssh_session_close(j->session);
        evssh_session_free(j->session);
        j->session = NULL;
        open--;
      }
    }
    if (done == nhosts) break;
    if (evssh_multi_process(m, -1, NULL, NULL) < 0) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);

  size_t ok = 0, nonzero = 0, failed = 0;
  fprintf(stdout, "\n");
  for (size_t k = 0; k < nhosts; k++) {
    host_job *j = &jobs[k];
    if (j->status == EVSSH_OK && j->exit_status >= 0) {
      if (!quiet || j->exit_status != 0) fprintf(stdout, "[%s] exit %d\n", j->dest, j->exit_status);
      if (j->exit_status == 0) ok++; else nonzero++;
    } else if (j->status == EVSSH_OK && j->signal) {
      fprintf(stdout, "[%s] killed by signal %s\n", j->dest, j->signal);
      nonzero++;
    } else {
      fprintf(stdout, "[%s] FAILED (%s): %s\n", j->dest, evssh_strerror(j->status <= 0 ? j->status : EVSSH_ECLOSED),
              j->error[0] ? j->error : "no exit status");
      failed++;
    }
    free(j->out.data);
    free(j->err.data);
    free((char *)j->signal);
  }
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  fprintf(stdout, "%zu hosts: %zu exit 0, %zu other exit status, %zu failed (%.2f s)\n", nhosts, ok, nonzero,
          failed, secs);
  evssh_multi_free(m);
  free(jobs);
  return ok == nhosts ? 0 : 1;
}
