/* exec.c owns the exec conveniences built on channels, as Net::SSH's
 * Session#exec and #exec!: evssh_session_exec opens a session channel, runs
 * one command and hands its output to a callback (or copies it to this
 * process's stdout/stderr); evssh_session_exec_wait runs one command to
 * completion, collecting stdout, stderr, exit status and exit signal while
 * the loop keeps serving every other channel. Per-command state hangs off
 * the channel's retire hook, so it is released exactly when the channel is,
 * whatever way it ends. */
#include "connection.h"

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
  evssh_session *s = evssh_channel_session(ch);
  session_log(s, EVSSH_LOG_ERROR, "channel %u: the server refused to execute the command",
              evssh_channel_id(ch));
  evssh_channel_close(ch);
}

static void exec_retire(evssh_channel *ch, int code, void *ctx) { free(ctx); }

/* Open a session channel whose open is followed at once by the exec
   request (it goes out right after confirmation, before on_open). */
static evssh_channel *open_exec_channel(evssh_session *s, const char *command, evssh_reply_cb on_reply,
                                        void *reply_ud) {
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  if (!ch) return NULL;
  if (evssh_channel_exec(ch, command, on_reply, reply_ud) != EVSSH_OK) {
    /* cannot happen short of memory: the request is only queued here */
    evssh_channel_close(ch);
    return NULL;
  }
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: exec requested", evssh_channel_id(ch));
  return ch;
}

evssh_channel *evssh_session_exec(evssh_session *s, const char *command, evssh_exec_cb cb, void *ud) {
  if (!s || !command) return NULL;
  exec_ctx *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->cb = cb;
  x->ud = ud;
  evssh_channel *ch = open_exec_channel(s, command, exec_on_reply, x);
  if (!ch) {
    free(x);
    return NULL;
  }
  ch->retire = exec_retire;
  ch->retire_ctx = x;
  evssh_channel_on_data(ch, exec_on_data, x);
  evssh_channel_on_extended_data(ch, exec_on_ext_data, x);
  return ch;
}

/* ------------------------------------------------------------- exec_wait */

typedef struct exec_wait_ctx {
  evssh_buf out, err;
  int append_error;
  bool refused;
  bool done;
  int code;
  bool has_status;
  int status;
  char *signal;
} exec_wait_ctx;

static void wait_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  exec_wait_ctx *w = ud;
  if (buf_append(&w->out, data, len) != EVSSH_OK) w->append_error = EVSSH_ENOMEM;
}

static void wait_on_ext_data(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  exec_wait_ctx *w = ud;
  if (buf_append(&w->err, data, len) != EVSSH_OK) w->append_error = EVSSH_ENOMEM;
}

static void wait_on_reply(evssh_channel *ch, bool success, void *ud) {
  exec_wait_ctx *w = ud;
  if (success) return;
  w->refused = true;
  evssh_channel_close(ch);
}

static void wait_retire(evssh_channel *ch, int code, void *ctx) {
  exec_wait_ctx *w = ctx;
  int status;
  const char *sig;
  if (evssh_channel_exit_status(ch, &status) == EVSSH_OK) {
    w->has_status = true;
    w->status = status;
  }
  if (evssh_channel_exit_signal(ch, &sig) == EVSSH_OK) {
    w->signal = strdup(sig);
    if (!w->signal) w->append_error = EVSSH_ENOMEM;
  }
  w->code = code;
  w->done = true;
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

int evssh_session_exec_wait(evssh_session *s, const char *command, evssh_result *result) {
  if (!result) return EVSSH_EINVAL;
  memset(result, 0, sizeof *result);
  result->exit_status = -1;
  if (!s || !command) return EVSSH_EINVAL;
  if (conn_in_callback(s) || (s->transport && transport_dispatching(s->transport)) ||
      (s->loop && loop_in_process(s)))
    return EVSSH_EBUSY;
  if (!conn_usable(s)) return EVSSH_ECLOSED;

  exec_wait_ctx w;
  memset(&w, 0, sizeof w);
  buf_init(&w.out);
  buf_init(&w.err);
  evssh_channel *ch = open_exec_channel(s, command, wait_on_reply, &w);
  if (!ch) return conn_usable(s) ? EVSSH_ENOMEM : EVSSH_ECLOSED;
  ch->retire = wait_retire;
  ch->retire_ctx = &w;
  evssh_channel_on_data(ch, wait_on_data, &w);
  evssh_channel_on_extended_data(ch, wait_on_ext_data, &w);
  /* nobody can write to this command's stdin: give it EOF, as
     `ssh host cmd < /dev/null` does, so a command that reads stdin ends
     instead of waiting forever */
  evssh_channel_eof(ch);

  int rc = loop_until(s, &w.done);
  if (!w.done) {
    /* the loop gave up while the channel lives on: cut every tie to this
       stack frame before it goes away */
    ch->retire = NULL;
    evssh_channel_on_data(ch, NULL, NULL);
    evssh_channel_on_extended_data(ch, NULL, NULL);
    for (size_t i = 0; i < ch->replies.count; i++) {
      reply_slot *slot = &ch->replies.slots[(ch->replies.head + i) % ch->replies.cap];
      if (slot->ud == &w) slot->cb.channel = NULL;
    }
    for (chan_early_request *e = ch->early_head; e; e = e->next) {
      if (e->ud == &w) e->cb = NULL;
    }
    evssh_channel_close(ch);
    if (rc >= 0) rc = EVSSH_ECLOSED;
  } else if (w.code != EVSSH_OK) {
    rc = w.code;
  } else if (w.refused) {
    /* the session is fine; only this command failed (command text not
       logged: it may carry secrets) */
    session_log(s, EVSSH_LOG_INFO, "exec_wait: the server refused to execute the command");
    rc = EVSSH_ECHANNEL;
  } else if (w.append_error) {
    rc = w.append_error;
  } else {
    rc = take_string(&w.out, &result->out, &result->out_len);
    if (!rc) rc = take_string(&w.err, &result->err, &result->err_len);
    if (!rc) {
      result->exit_status = w.has_status ? w.status : -1;
      result->exit_signal = w.signal;
      w.signal = NULL;
    }
  }
  buf_release(&w.out);
  buf_release(&w.err);
  free(w.signal);
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
