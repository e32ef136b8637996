/* exec.c owns the exec conveniences built on the public channel API, as
 * Net::SSH's Session#exec and #exec!: evssh_session_exec opens a session
 * channel, runs one command and hands its output to a callback (or copies
 * it to this process's stdout/stderr); evssh_session_exec_wait runs one
 * command to completion, collecting stdout, stderr, exit status and exit
 * signal up to the session's output limit, while the loop keeps serving
 * every other channel. Per-command state belongs to the channel and is
 * released by its on_free hook, so it lives exactly as long as the handle,
 * whatever way the channel ends and whatever callbacks the program sets. */
#include "evssh.h"

#include "base.h"
#include "buf.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ exec */

typedef struct exec_ctx {
  evssh_exec_cb cb;
  void *ud;
} exec_ctx;

static void exec_emit(evssh_channel *ch, exec_ctx *x, evssh_stream stream, const char *data, size_t len) {
  if (x->cb) {
    x->cb(ch, stream, data, len, x->ud);
    return;
  }
  FILE *f = stream == EVSSH_STDOUT ? stdout : stderr;
  fwrite(data, 1, len, f);
  fflush(f);
}

static void exec_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  exec_emit(ch, ud, EVSSH_STDOUT, data, len);
}

static void exec_on_ext_data(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  exec_emit(ch, ud, EVSSH_STDERR, data, len);
}

static void exec_on_reply(evssh_channel *ch, bool success, void *ud) {
  /* a channel already over (open refused, session gone) was reported there */
  if (success || !evssh_channel_active(ch)) return;
  diag_log(session_diag(evssh_channel_session(ch)), EVSSH_LOG_ERROR,
           "channel %u: the server refused to execute the command", evssh_channel_id(ch));
  evssh_channel_close(ch);
}

static void free_ctx(evssh_channel *ch, void *ud) { free(ud); }

/* Open a session channel whose open is followed at once by the exec
   request (it goes out right after confirmation, before on_open). ctx is
   the channel's from here on: release frees it with the channel, or at
   once when there is no channel. */
static evssh_channel *open_exec_channel(evssh_session *s, const char *command, evssh_reply_cb on_reply, void *ctx,
                                        evssh_channel_free_cb release) {
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  if (!ch) {
    release(NULL, ctx);
    return NULL;
  }
  evssh_channel_on_free(ch, release, ctx);
  if (evssh_channel_exec(ch, command, on_reply, ctx) != EVSSH_OK) {
    /* cannot happen short of memory: the request is only queued here */
    evssh_channel_close(ch);
    return NULL;
  }
  return ch;
}

evssh_channel *evssh_session_exec(evssh_session *s, const char *command, evssh_exec_cb cb, void *ud) {
  if (!s || !command) return NULL;
  exec_ctx *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->cb = cb;
  x->ud = ud;
  evssh_channel *ch = open_exec_channel(s, command, exec_on_reply, x, free_ctx);
  if (!ch) return NULL;
  evssh_channel_on_data(ch, exec_on_data, x);
  evssh_channel_on_extended_data(ch, exec_on_ext_data, x);
  return ch;
}

/* ------------------------------------------------------------- exec_wait */

typedef struct exec_wait_ctx {
  evssh_buf out, err;
  size_t limit;
  int append_error;
  bool refused;
  bool over_limit;
  bool abandoned;   /* exec_wait returned while the channel lived on */
} exec_wait_ctx;

static void wait_free(evssh_channel *ch, void *ud) {
  exec_wait_ctx *w = ud;
  buf_release(&w->out);
  buf_release(&w->err);
  free(w);
}

static void collect(evssh_channel *ch, exec_wait_ctx *w, evssh_buf *b, const char *data, size_t len) {
  if (w->abandoned || w->over_limit) return;
  if (buf_avail(&w->out) + buf_avail(&w->err) + len > w->limit) {
    /* Net::SSH's exec! would hold it all; we end the command instead */
    w->over_limit = true;
    evssh_channel_close(ch);
    return;
  }
  if (buf_append(b, data, len) != EVSSH_OK) w->append_error = EVSSH_ENOMEM;
}

static void wait_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  exec_wait_ctx *w = ud;
  collect(ch, w, &w->out, data, len);
}

static void wait_on_ext_data(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  exec_wait_ctx *w = ud;
  collect(ch, w, &w->err, data, len);
}

static void wait_on_reply(evssh_channel *ch, bool success, void *ud) {
  exec_wait_ctx *w = ud;
  if (success || w->abandoned) return;
  w->refused = true;
  evssh_channel_close(ch);
}

/* Hand a collected stream over as a NUL-terminated heap string. */
static int take_string(evssh_buf *b, char **out, size_t *len) {
  size_t n = buf_avail(b);
  char *p = malloc(n + 1);
  if (!p) return EVSSH_ENOMEM;
  if (n) memcpy(p, buf_ptr(b), n);
  p[n] = 0;
  *out = p;
  *len = n;
  return EVSSH_OK;
}

static bool channel_open(evssh_session *s, void *ud) { return evssh_channel_active(ud); }

static int collect_result(evssh_channel *ch, exec_wait_ctx *w, evssh_result *result) {
  int rc = take_string(&w->out, &result->out, &result->out_len);
  if (!rc) rc = take_string(&w->err, &result->err, &result->err_len);
  if (rc) return rc;
  int status;
  const char *sig;
  if (evssh_channel_exit_status(ch, &status) == EVSSH_OK) result->exit_status = status;
  if (evssh_channel_exit_signal(ch, &sig) == EVSSH_OK && !(result->exit_signal = strdup(sig))) return EVSSH_ENOMEM;
  return EVSSH_OK;
}

int evssh_session_exec_wait(evssh_session *s, const char *command, evssh_result *result) {
  if (!result) return EVSSH_EINVAL;
  memset(result, 0, sizeof *result);
  result->exit_status = -1;
  if (!s || !command) return EVSSH_EINVAL;
  if (evssh_session_closed(s)) return EVSSH_ECLOSED;
  exec_wait_ctx *w = calloc(1, sizeof *w);
  if (!w) return EVSSH_ENOMEM;
  buf_init(&w->out);
  buf_init(&w->err);
  w->limit = evssh_session_exec_limit(s);
  evssh_channel *ch = open_exec_channel(s, command, wait_on_reply, w, wait_free);
  if (!ch) return evssh_session_closed(s) || evssh_session_connecting(s) ? EVSSH_ECLOSED : EVSSH_ENOMEM;
  evssh_channel_hold(ch);
  evssh_channel_on_data(ch, wait_on_data, w);
  evssh_channel_on_extended_data(ch, wait_on_ext_data, w);
  /* nobody can write to this command's stdin: give it EOF, as
     `ssh host cmd < /dev/null` does, so a command that reads stdin ends
     instead of waiting forever */
  evssh_channel_eof(ch);

  int rc = evssh_session_loop(s, -1, channel_open, ch);
  if (evssh_channel_active(ch)) {
    /* the loop gave up while the channel lives on: it keeps its context
       (freed with it) but nothing is collected any more */
    w->abandoned = true;
    evssh_channel_close(ch);
    if (rc >= 0) rc = EVSSH_ECLOSED;
  } else if (evssh_session_closed(s) && rc < 0 && !w->over_limit) {
    /* the session ended under the command */
  } else if (w->over_limit) {
    session_note(s, "exec_wait: the command's output passed the limit of %zu bytes "
                    "(evssh_session_set_exec_limit); the command was ended", w->limit);
    rc = EVSSH_ELIMIT;
  } else if (w->refused || !evssh_channel_opened(ch)) {
    /* the session is fine; only this command failed (command text not
       logged: it may carry secrets) */
    rc = EVSSH_ECHANNEL;
  } else if (w->append_error) {
    rc = w->append_error;
  } else {
    rc = collect_result(ch, w, result);
  }
  evssh_channel_release(ch);
  if (rc) evssh_result_free(result);
  return rc;
}

void evssh_result_free(evssh_result *result) {
  if (!result) return;
  free(result->out);
  free(result->err);
  free(result->exit_signal);
  memset(result, 0, sizeof *result);
  result->exit_status = -1;
}
