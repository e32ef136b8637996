/* connection.c owns the SSH connection protocol (RFC 4254) on the client
 * side: channels (open, confirm, refuse, data, extended data, eof, close),
 * both flow-control windows, channel requests and global requests in both
 * directions, channels the peer opens, and the dispatch table that routes
 * messages 80..127 by number, the way Net::SSH's Connection::Session does.
 * Channels live in a table indexed by our channel number; a retired channel
 * is moved to a graveyard and freed only when no callback is running, so a
 * callback that closes, opens or retires channels never leaves a dangling
 * pointer on the stack below it. */
#include "connection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- small helpers */

static char *dup_string(const char *s) {
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  if (c) memcpy(c, s, n + 1);
  return c;
}

static bool string_is(const char *data, size_t len, const char *name) {
  return strlen(name) == len && memcmp(data, name, len) == 0;
}

/* A peer-supplied string copied for callbacks and logs: NUL-terminated,
   truncated, control characters replaced so a log line stays one line. */
static void printable_copy(char *out, size_t outlen, const char *data, size_t len) {
  size_t n = len < outlen - 1 ? len : outlen - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  out[n] = 0;
}

static int fifo_push(reply_fifo *f, reply_slot slot) {
  if (f->count == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    reply_slot *v = malloc(cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    for (size_t i = 0; i < f->count; i++) v[i] = f->slots[(f->head + i) % f->cap];
    free(f->slots);
    f->slots = v;
    f->cap = cap;
    f->head = 0;
  }
  f->slots[(f->head + f->count) % f->cap] = slot;
  f->count++;
  return EVSSH_OK;
}

static bool fifo_pop(reply_fifo *f, reply_slot *out) {
  if (f->count == 0) return false;
  *out = f->slots[f->head];
  f->head = (f->head + 1) % f->cap;
  f->count--;
  return true;
}

static void fifo_release(reply_fifo *f) {
  free(f->slots);
  memset(f, 0, sizeof *f);
}

static struct evssh_conn *conn_of(const evssh_session *s) { return s ? s->conn : NULL; }

static int proto_error(evssh_session *s, const char *what, uint32_t id) {
  return session_fail(s, EVSSH_EPROTO, "connection protocol: %s (channel %u)", what, id);
}

/* ------------------------------------------------------------ life cycle */

int conn_init(evssh_session *s) {
  if (s->conn) return EVSSH_OK;
  struct evssh_conn *c = calloc(1, sizeof *c);
  if (!c) return EVSSH_ENOMEM;
  s->conn = c;
  return EVSSH_OK;
}

static void free_channel(evssh_channel *ch) {
  while (ch->out_head) {
    chan_segment *seg = ch->out_head;
    ch->out_head = seg->next;
    buf_release(&seg->bytes);
    free(seg);
  }
  while (ch->early_head) {
    chan_early_request *r = ch->early_head;
    ch->early_head = r->next;
    free(r->type);
    free(r->extra);
    free(r);
  }
  while (ch->held_head) {
    chan_held_request *r = ch->held_head;
    ch->held_head = r->next;
    free(r->type);
    free(r->data);
    free(r);
  }
  while (ch->handlers) {
    chan_handler *h = ch->handlers;
    ch->handlers = h->next;
    free(h->type);
    free(h);
  }
  while (ch->properties) {
    chan_property *p = ch->properties;
    ch->properties = p->next;
    free(p->key);
    free(p);
  }
  fifo_release(&ch->replies);
  free(ch->exit_signal);
  free(ch->type);
  free(ch);
}

static void reap(struct evssh_conn *c) {
  while (c->dead) {
    evssh_channel *ch = c->dead;
    c->dead = ch->next_dead;
    free_channel(ch);
  }
}

void conn_enter(evssh_session *s) {
  if (s->conn) s->conn->depth++;
}

void conn_leave(evssh_session *s) {
  struct evssh_conn *c = s->conn;
  if (!c) return;
  if (c->depth > 0) c->depth--;
  if (c->depth == 0) reap(c);
}

bool conn_in_callback(const evssh_session *s) {
  const struct evssh_conn *c = conn_of(s);
  return c && c->depth > 0;
}

bool conn_usable(const evssh_session *s) {
  const struct evssh_conn *c = conn_of(s);
  if (!c || c->aborted || !s->transport) return false;
  return s->state == SESSION_READY || s->state == SESSION_CLOSING;
}

void conn_free(evssh_session *s) {
  struct evssh_conn *c = s->conn;
  if (!c) return;
  /* hard teardown: no user callbacks, but internal hooks still release what
     they own, and a blocked waiter (impossible here, but cheap) learns. */
  for (size_t i = 0; i < c->table_size; i++) {
    evssh_channel *ch = c->table[i];
    if (!ch) continue;
    if (ch->retire) ch->retire(ch, EVSSH_ECLOSED, ch->retire_ctx);
    if (ch->waiter) { ch->waiter->done = true; ch->waiter->code = EVSSH_ECLOSED; }
    free_channel(ch);
  }
  reap(c);
  free(c->table);
  fifo_release(&c->global_replies);
  for (size_t i = 0; i < c->owed_count; i++) free(c->owed[(c->owed_head + i) % c->owed_cap].data);
  free(c->owed);
  while (c->global_handlers) {
    global_handler *h = c->global_handlers;
    c->global_handlers = h->next;
    free(h->type);
    free(h);
  }
  while (c->open_handlers) {
    open_handler *h = c->open_handlers;
    c->open_handlers = h->next;
    free(h->type);
    free(h);
  }
  free(c);
  s->conn = NULL;
}

/* ----------------------------------------------------------- channel table */

static int table_insert(struct evssh_conn *c, evssh_channel *ch) {
  /* lowest free number: numbers stay small and the table dense */
  size_t id = c->table_size;
  for (size_t i = 0; i < c->table_size; i++) {
    if (!c->table[i]) { id = i; break; }
  }
  if (id == c->table_size) {
    if (c->table_size >= UINT32_MAX / 2) return EVSSH_ENOMEM;
    size_t size = c->table_size ? c->table_size * 2 : 16;
    evssh_channel **t = realloc(c->table, size * sizeof *t);
    if (!t) return EVSSH_ENOMEM;
    for (size_t i = c->table_size; i < size; i++) t[i] = NULL;
    c->table = t;
    c->table_size = size;
  }
  c->table[id] = ch;
  ch->local_id = (uint32_t)id;
  c->channel_count++;
  return EVSSH_OK;
}

static evssh_channel *table_find(struct evssh_conn *c, uint32_t id) {
  if (id >= c->table_size) return NULL;
  evssh_channel *ch = c->table[id];
  return ch && ch->state != CHAN_DONE ? ch : NULL;
}

static evssh_channel *channel_new(evssh_session *s, const char *type, size_t type_len) {
  evssh_channel *ch = calloc(1, sizeof *ch);
  if (!ch) return NULL;
  ch->type = malloc(type_len + 1);
  if (!ch->type) { free(ch); return NULL; }
  memcpy(ch->type, type, type_len);
  ch->type[type_len] = 0;
  ch->session = s;
  ch->local_window = CONN_WINDOW_SIZE;
  ch->exit_status = -1;
  if (table_insert(s->conn, ch) != EVSSH_OK) {
    free(ch->type);
    free(ch);
    return NULL;
  }
  return ch;
}

/* The channel is over: fail replies still awaited, run on_close (or nothing
   more for a refused open), tell exec.c and a waiter, then leave the table.
   Freed later by reap(). */
static void channel_retire(evssh_session *s, evssh_channel *ch, int code, bool run_on_close) {
  struct evssh_conn *c = s->conn;
  if (ch->state == CHAN_DONE) return;
  ch->state = CHAN_DONE;
  reply_slot slot;
  while (fifo_pop(&ch->replies, &slot)) {
    if (slot.cb.channel) slot.cb.channel(ch, false, slot.ud);
  }
  /* requests that never went out (the open was refused) fail the same way */
  while (ch->early_head) {
    chan_early_request *e = ch->early_head;
    ch->early_head = e->next;
    if (!ch->early_head) ch->early_tail = NULL;
    if (e->cb) e->cb(ch, false, e->ud);
    free(e->type);
    free(e->extra);
    free(e);
  }
  if (run_on_close && ch->on_close) ch->on_close(ch, ch->on_close_ud);
  if (ch->retire) {
    chan_retire_fn fn = ch->retire;
    ch->retire = NULL;
    fn(ch, code, ch->retire_ctx);
  }
  if (ch->waiter) {
    ch->waiter->done = true;
    ch->waiter->code = code;
    ch->waiter = NULL;
  }
  if (ch->local_id < c->table_size && c->table[ch->local_id] == ch) {
    c->table[ch->local_id] = NULL;
    c->channel_count--;
  }
  ch->next_dead = c->dead;
  c->dead = ch;
  if (c->depth == 0) reap(c);
}

/* ------------------------------------------------------------- sending */

static int send_simple(evssh_session *s, uint8_t msg, uint32_t recipient) {
  evssh_buf *b = transport_begin(s->transport, msg);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, recipient);
  int rc2 = transport_end(s->transport);
  return rc ? rc : rc2;
}

static int send_window_adjust(evssh_channel *ch) {
  evssh_session *s = ch->session;
  uint32_t add = CONN_WINDOW_SIZE - ch->local_window;
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_CHANNEL_WINDOW_ADJUST);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, ch->remote_id);
  if (!rc) rc = evssh_buf_put_u32(b, add);
  int rc2 = transport_end(s->transport);
  if (rc || rc2) return rc ? rc : rc2;
  ch->local_window = CONN_WINDOW_SIZE;
  session_log(s, EVSSH_LOG_PACKET, "channel %u: window adjust +%u", ch->local_id, add);
  return EVSSH_OK;
}

static int send_channel_request(evssh_channel *ch, const char *type, const void *extra,
                                size_t extra_len, bool want_reply) {
  evssh_session *s = ch->session;
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_CHANNEL_REQUEST);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, ch->remote_id);
  if (!rc) rc = evssh_buf_put_cstring(b, type);
  if (!rc) rc = evssh_buf_put_bool(b, want_reply);
  if (!rc && extra_len) rc = buf_append(b, extra, extra_len);
  int rc2 = transport_end(s->transport);
  if (rc || rc2) return rc ? rc : rc2;
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: request %s%s", ch->local_id, type,
              want_reply ? " (reply wanted)" : "");
  return EVSSH_OK;
}

/* May channel data go into the transport now? Control messages always may;
   bulk data waits while the transport is backed up or re-keying. */
static bool transport_takes_data(evssh_session *s) {
  return !transport_kex_running(s->transport) &&
         transport_pending_out(s->transport) < CONN_TRANSPORT_HIGH_WATER;
}

static size_t chunk_limit(evssh_channel *ch, bool extended) {
  size_t header = extended ? 13 : 9; /* msg, recipient, [type], length */
  size_t payload = transport_max_payload(ch->session->transport);
  size_t limit = payload > header ? payload - header : 0;
  if (ch->remote_max_packet < limit) limit = ch->remote_max_packet;
  if (ch->remote_window < limit) limit = ch->remote_window;
  return limit;
}

/* Send as much of p as the peer's window and packet size allow now. */
static int send_chunks(evssh_channel *ch, bool extended, uint32_t ext_type,
                       const unsigned char *p, size_t len, size_t *sent) {
  evssh_session *s = ch->session;
  size_t done = 0;
  int rc = EVSSH_OK;
  while (done < len && transport_takes_data(s)) {
    size_t n = chunk_limit(ch, extended);
    if (n == 0) break;
    if (n > len - done) n = len - done;
    evssh_buf *b = transport_begin(s->transport, extended ? SSH_MSG_CHANNEL_EXTENDED_DATA
                                                          : SSH_MSG_CHANNEL_DATA);
    if (!b) { rc = EVSSH_ENOMEM; break; }
    rc = evssh_buf_put_u32(b, ch->remote_id);
    if (!rc && extended) rc = evssh_buf_put_u32(b, ext_type);
    if (!rc) rc = evssh_buf_put_string(b, p + done, n);
    int rc2 = transport_end(s->transport);
    if (!rc) rc = rc2;
    if (rc) break;
    ch->remote_window -= (uint32_t)n;
    done += n;
  }
  *sent = done;
  return rc;
}

static bool can_send_now(const evssh_channel *ch) {
  return ch->state == CHAN_OPEN && !ch->close_sent;
}

/* Push queued data, then a wanted EOF and CLOSE once nothing is queued. */
static int channel_flush(evssh_channel *ch) {
  evssh_session *s = ch->session;
  if (!can_send_now(ch) || !conn_usable(s)) return EVSSH_OK;
  while (ch->out_head) {
    chan_segment *seg = ch->out_head;
    size_t avail = buf_avail(&seg->bytes);
    if (avail > 0) {
      size_t sent = 0;
      int rc = send_chunks(ch, seg->extended, seg->ext_type, buf_ptr(&seg->bytes), avail, &sent);
      buf_consume(&seg->bytes, sent);
      ch->out_bytes -= sent;
      if (rc) return rc;
      if (sent < avail) return EVSSH_OK;
    }
    ch->out_head = seg->next;
    if (!ch->out_head) ch->out_tail = NULL;
    buf_release(&seg->bytes);
    free(seg);
  }
  if (ch->eof_wanted && !ch->eof_sent) {
    int rc = send_simple(s, SSH_MSG_CHANNEL_EOF, ch->remote_id);
    if (rc) return rc;
    ch->eof_sent = true;
    session_log(s, EVSSH_LOG_DEBUG, "channel %u: sent eof", ch->local_id);
  }
  if (ch->close_wanted && !ch->close_sent) {
    int rc = send_simple(s, SSH_MSG_CHANNEL_CLOSE, ch->remote_id);
    if (rc) return rc;
    ch->close_sent = true;
    session_log(s, EVSSH_LOG_DEBUG, "channel %u: sent close", ch->local_id);
  }
  return EVSSH_OK;
}

static int queue_bytes(evssh_channel *ch, bool extended, uint32_t ext_type,
                       const unsigned char *p, size_t len) {
  chan_segment *tail = ch->out_tail;
  if (!tail || tail->extended != extended || tail->ext_type != ext_type) {
    tail = calloc(1, sizeof *tail);
    if (!tail) return EVSSH_ENOMEM;
    buf_init(&tail->bytes);
    tail->extended = extended;
    tail->ext_type = ext_type;
    if (buf_append(&tail->bytes, p, len) != EVSSH_OK) { free(tail); return EVSSH_ENOMEM; }
    if (ch->out_tail) ch->out_tail->next = tail; else ch->out_head = tail;
    ch->out_tail = tail;
  } else if (buf_append(&tail->bytes, p, len) != EVSSH_OK) {
    return EVSSH_ENOMEM;
  }
  ch->out_bytes += len;
  return EVSSH_OK;
}

static int channel_write(evssh_channel *ch, bool extended, uint32_t ext_type,
                         const void *data, size_t len) {
  if (!ch || (!data && len)) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE || ch->eof_wanted || ch->close_wanted || ch->close_received ||
      !conn_usable(ch->session))
    return EVSSH_ECLOSED;
  if (len == 0) return EVSSH_OK;
  const unsigned char *p = data;
  size_t sent = 0;
  /* nothing queued: send straight from the caller's buffer, copy the rest */
  if (!ch->out_head && can_send_now(ch)) {
    int rc = send_chunks(ch, extended, ext_type, p, len, &sent);
    if (rc) return rc;
  }
  if (sent < len) return queue_bytes(ch, extended, ext_type, p + sent, len - sent);
  return EVSSH_OK;
}

/* ------------------------------------------------------- public: channels */

evssh_channel *evssh_session_open_channel_type(evssh_session *s, const char *type,
                                               const void *extra, size_t extra_len,
                                               evssh_channel_cb on_open, void *ud) {
  if (!s || !type || (!extra && extra_len)) return NULL;
  if (!conn_usable(s) || s->state != SESSION_READY) return NULL;
  evssh_channel *ch = channel_new(s, type, strlen(type));
  if (!ch) return NULL;
  ch->on_open = on_open;
  ch->on_open_ud = ud;
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_CHANNEL_OPEN);
  int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
  if (b) {
    rc = evssh_buf_put_cstring(b, type);
    if (!rc) rc = evssh_buf_put_u32(b, ch->local_id);
    if (!rc) rc = evssh_buf_put_u32(b, CONN_WINDOW_SIZE);
    if (!rc) rc = evssh_buf_put_u32(b, CONN_MAX_PACKET);
    if (!rc && extra_len) rc = buf_append(b, extra, extra_len);
    int rc2 = transport_end(s->transport);
    if (!rc) rc = rc2;
  }
  if (rc) {
    s->conn->table[ch->local_id] = NULL;
    s->conn->channel_count--;
    free_channel(ch);
    return NULL;
  }
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: open %s", ch->local_id, ch->type);
  return ch;
}

evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud) {
  return evssh_session_open_channel_type(s, "session", NULL, 0, on_open, ud);
}

void evssh_channel_on_data(evssh_channel *ch, evssh_data_cb cb, void *ud) {
  if (ch) { ch->on_data = cb; ch->on_data_ud = ud; }
}
void evssh_channel_on_extended_data(evssh_channel *ch, evssh_ext_data_cb cb, void *ud) {
  if (ch) { ch->on_ext_data = cb; ch->on_ext_data_ud = ud; }
}
void evssh_channel_on_eof(evssh_channel *ch, evssh_channel_cb cb, void *ud) {
  if (ch) { ch->on_eof = cb; ch->on_eof_ud = ud; }
}
void evssh_channel_on_close(evssh_channel *ch, evssh_channel_cb cb, void *ud) {
  if (ch) { ch->on_close = cb; ch->on_close_ud = ud; }
}
void evssh_channel_on_process(evssh_channel *ch, evssh_channel_cb cb, void *ud) {
  if (ch) { ch->on_process = cb; ch->on_process_ud = ud; }
}
void evssh_channel_on_open_failed(evssh_channel *ch, evssh_open_failed_cb cb, void *ud) {
  if (ch) { ch->on_open_failed = cb; ch->on_open_failed_ud = ud; }
}

void evssh_channel_on_request(evssh_channel *ch, const char *type, evssh_request_cb cb, void *ud) {
  if (!ch || !type) return;
  chan_handler **pp = &ch->handlers;
  for (; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->type, type) == 0) break;
  }
  if (*pp) {
    if (cb) { (*pp)->cb = cb; (*pp)->ud = ud; return; }
    chan_handler *gone = *pp;
    *pp = gone->next;
    free(gone->type);
    free(gone);
    return;
  }
  if (!cb) return;
  chan_handler *h = calloc(1, sizeof *h);
  if (!h) return;
  h->type = dup_string(type);
  if (!h->type) { free(h); return; }
  h->cb = cb;
  h->ud = ud;
  *pp = h;
}

int evssh_channel_send_request(evssh_channel *ch, const char *type, const void *extra,
                               size_t extra_len, evssh_reply_cb cb, void *ud) {
  if (!ch || !type || (!extra && extra_len)) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE || ch->close_wanted || ch->close_received ||
      !conn_usable(ch->session))
    return EVSSH_ECLOSED;
  if (ch->state == CHAN_OPENING || ch->state == CHAN_ACCEPTING) {
    chan_early_request *r = calloc(1, sizeof *r);
    if (!r) return EVSSH_ENOMEM;
    r->type = dup_string(type);
    r->extra = extra_len ? malloc(extra_len) : NULL;
    if (!r->type || (extra_len && !r->extra)) {
      free(r->type); free(r->extra); free(r);
      return EVSSH_ENOMEM;
    }
    if (extra_len) memcpy(r->extra, extra, extra_len);
    r->extra_len = extra_len;
    r->cb = cb;
    r->ud = ud;
    if (ch->early_tail) ch->early_tail->next = r; else ch->early_head = r;
    ch->early_tail = r;
    return EVSSH_OK;
  }
  if (cb) {
    reply_slot slot = {.cb.channel = cb, .ud = ud};
    if (fifo_push(&ch->replies, slot) != EVSSH_OK) return EVSSH_ENOMEM;
  }
  int rc = send_channel_request(ch, type, extra, extra_len, cb != NULL);
  if (rc && cb) ch->replies.count--; /* undo the push: it was the last one */
  return rc;
}

static int request_with_strings(evssh_channel *ch, const char *type, const char *a,
                                const char *b, evssh_reply_cb cb, void *ud) {
  evssh_buf extra = EVSSH_BUF_INIT;
  int rc = a ? evssh_buf_put_cstring(&extra, a) : EVSSH_OK;
  if (!rc && b) rc = evssh_buf_put_cstring(&extra, b);
  if (!rc) rc = evssh_channel_send_request(ch, type, buf_ptr(&extra), buf_avail(&extra), cb, ud);
  buf_release(&extra);
  return rc;
}

int evssh_channel_exec(evssh_channel *ch, const char *command, evssh_reply_cb cb, void *ud) {
  if (!command) return EVSSH_EINVAL;
  return request_with_strings(ch, "exec", command, NULL, cb, ud);
}

int evssh_channel_subsystem(evssh_channel *ch, const char *name, evssh_reply_cb cb, void *ud) {
  if (!name) return EVSSH_EINVAL;
  return request_with_strings(ch, "subsystem", name, NULL, cb, ud);
}

int evssh_channel_shell(evssh_channel *ch, evssh_reply_cb cb, void *ud) {
  return evssh_channel_send_request(ch, "shell", NULL, 0, cb, ud);
}

int evssh_channel_env(evssh_channel *ch, const char *name, const char *value,
                      evssh_reply_cb cb, void *ud) {
  if (!name || !value) return EVSSH_EINVAL;
  return request_with_strings(ch, "env", name, value, cb, ud);
}

int evssh_channel_signal(evssh_channel *ch, const char *signame) {
  if (!signame) return EVSSH_EINVAL;
  return request_with_strings(ch, "signal", signame, NULL, NULL, NULL);
}

int evssh_channel_request_pty(evssh_channel *ch, const char *term, uint32_t cols,
                              uint32_t rows, evssh_reply_cb cb, void *ud) {
  evssh_buf extra = EVSSH_BUF_INIT;
  int rc = evssh_buf_put_cstring(&extra, term ? term : "xterm");
  if (!rc) rc = evssh_buf_put_u32(&extra, cols);
  if (!rc) rc = evssh_buf_put_u32(&extra, rows);
  if (!rc) rc = evssh_buf_put_u32(&extra, 0);  /* width in pixels */
  if (!rc) rc = evssh_buf_put_u32(&extra, 0);  /* height in pixels */
  if (!rc) rc = evssh_buf_put_string(&extra, "\0", 1); /* encoded modes: TTY_OP_END only */
  if (!rc) rc = evssh_channel_send_request(ch, "pty-req", buf_ptr(&extra), buf_avail(&extra), cb, ud);
  buf_release(&extra);
  return rc;
}

int evssh_channel_send_data(evssh_channel *ch, const void *data, size_t len) {
  return channel_write(ch, false, 0, data, len);
}

int evssh_channel_send_extended_data(evssh_channel *ch, uint32_t type, const void *data, size_t len) {
  return channel_write(ch, true, type, data, len);
}

int evssh_channel_eof(evssh_channel *ch) {
  if (!ch) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE || ch->close_received || !conn_usable(ch->session))
    return EVSSH_ECLOSED;
  if (ch->eof_wanted) return EVSSH_OK;
  ch->eof_wanted = true;
  return channel_flush(ch);
}

int evssh_channel_close(evssh_channel *ch) {
  if (!ch) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE) return EVSSH_ECLOSED;
  if (ch->close_wanted) return EVSSH_OK;
  ch->close_wanted = true;
  if (!conn_usable(ch->session)) return EVSSH_ECLOSED;
  return channel_flush(ch);
}

int evssh_channel_wait(evssh_channel *ch) {
  if (!ch) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE) return EVSSH_OK;
  evssh_session *s = ch->session;
  if (ch->waiter) return EVSSH_EBUSY;
  chan_waiter w = {false, EVSSH_OK};
  ch->waiter = &w;
  int rc = loop_until(s, &w.done);
  if (!w.done) {
    /* gave up (busy or error): the channel lives on; forget our flag */
    ch->waiter = NULL;
    return rc < 0 ? rc : EVSSH_ECLOSED;
  }
  return w.code;
}

uint32_t evssh_channel_id(const evssh_channel *ch) { return ch ? ch->local_id : 0; }
evssh_session *evssh_channel_session(const evssh_channel *ch) { return ch ? ch->session : NULL; }
bool evssh_channel_active(const evssh_channel *ch) { return ch && ch->state != CHAN_DONE; }
bool evssh_channel_eof_received(const evssh_channel *ch) { return ch && ch->eof_received; }

int evssh_channel_exit_status(const evssh_channel *ch, int *status) {
  if (!ch || !status || !ch->has_exit_status) return EVSSH_EINVAL;
  *status = ch->exit_status;
  return EVSSH_OK;
}

int evssh_channel_exit_signal(const evssh_channel *ch, const char **signame) {
  if (!ch || !signame || !ch->exit_signal) return EVSSH_EINVAL;
  *signame = ch->exit_signal;
  return EVSSH_OK;
}

void evssh_channel_set_property(evssh_channel *ch, const char *key, void *value) {
  if (!ch || !key) return;
  chan_property **pp = &ch->properties;
  for (; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->key, key) == 0) break;
  }
  if (*pp) {
    if (value) { (*pp)->value = value; return; }
    chan_property *gone = *pp;
    *pp = gone->next;
    free(gone->key);
    free(gone);
    return;
  }
  if (!value) return;
  chan_property *p = calloc(1, sizeof *p);
  if (!p) return;
  p->key = dup_string(key);
  if (!p->key) { free(p); return; }
  p->value = value;
  *pp = p;
}

void *evssh_channel_property(const evssh_channel *ch, const char *key) {
  if (!ch || !key) return NULL;
  for (const chan_property *p = ch->properties; p; p = p->next) {
    if (strcmp(p->key, key) == 0) return p->value;
  }
  return NULL;
}

/* ------------------------------------------------ public: global requests */

int evssh_session_send_global_request(evssh_session *s, const char *type, const void *extra,
                                      size_t extra_len, evssh_global_reply_cb cb, void *ud) {
  if (!s || !type || (!extra && extra_len)) return EVSSH_EINVAL;
  if (!conn_usable(s)) return EVSSH_ECLOSED;
  struct evssh_conn *c = s->conn;
  if (cb) {
    reply_slot slot = {.cb.global = cb, .ud = ud};
    if (fifo_push(&c->global_replies, slot) != EVSSH_OK) return EVSSH_ENOMEM;
  }
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_GLOBAL_REQUEST);
  int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
  if (b) {
    rc = evssh_buf_put_cstring(b, type);
    if (!rc) rc = evssh_buf_put_bool(b, cb != NULL);
    if (!rc && extra_len) rc = buf_append(b, extra, extra_len);
    int rc2 = transport_end(s->transport);
    if (!rc) rc = rc2;
  }
  if (rc) {
    if (cb) c->global_replies.count--;
    return rc;
  }
  session_log(s, EVSSH_LOG_DEBUG, "global request %s%s", type, cb ? " (reply wanted)" : "");
  return EVSSH_OK;
}

void evssh_session_on_global_request(evssh_session *s, const char *type,
                                     evssh_global_request_cb cb, void *ud) {
  /* handlers may be registered before connect: OpenSSH sends
     hostkeys-00@openssh.com right after authentication */
  if (!s || !type || conn_init(s) != EVSSH_OK) return;
  global_handler **pp = &s->conn->global_handlers;
  for (; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->type, type) == 0) break;
  }
  if (*pp) {
    if (cb) { (*pp)->cb = cb; (*pp)->ud = ud; return; }
    global_handler *gone = *pp;
    *pp = gone->next;
    free(gone->type);
    free(gone);
    return;
  }
  if (!cb) return;
  global_handler *h = calloc(1, sizeof *h);
  if (!h) return;
  h->type = dup_string(type);
  if (!h->type) { free(h); return; }
  h->cb = cb;
  h->ud = ud;
  *pp = h;
}

void evssh_session_on_open_channel(evssh_session *s, const char *type,
                                   evssh_open_channel_cb cb, void *ud) {
  if (!s || !type || conn_init(s) != EVSSH_OK) return;
  open_handler **pp = &s->conn->open_handlers;
  for (; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->type, type) == 0) break;
  }
  if (*pp) {
    if (cb) { (*pp)->cb = cb; (*pp)->ud = ud; return; }
    open_handler *gone = *pp;
    *pp = gone->next;
    free(gone->type);
    free(gone);
    return;
  }
  if (!cb) return;
  open_handler *h = calloc(1, sizeof *h);
  if (!h) return;
  h->type = dup_string(type);
  if (!h->type) { free(h); return; }
  h->cb = cb;
  h->ud = ud;
  *pp = h;
}

/* Owed replies leave strictly in the order the requests arrived. */
static int flush_owed(evssh_session *s) {
  struct evssh_conn *c = s->conn;
  while (c->owed_count > 0) {
    owed_reply *o = &c->owed[c->owed_head];
    if (!o->ready) break;
    int rc = EVSSH_OK;
    if (conn_usable(s)) {
      if (o->success) {
        evssh_buf *b = transport_begin(s->transport, SSH_MSG_REQUEST_SUCCESS);
        rc = b ? EVSSH_OK : EVSSH_ENOMEM;
        if (b) {
          if (o->len) rc = buf_append(b, o->data, o->len);
          int rc2 = transport_end(s->transport);
          if (!rc) rc = rc2;
        }
      } else {
        rc = transport_send(s->transport, SSH_MSG_REQUEST_FAILURE, NULL, 0);
      }
    }
    free(o->data);
    memset(o, 0, sizeof *o);
    c->owed_head = (c->owed_head + 1) % c->owed_cap;
    c->owed_count--;
    if (rc) return rc;
  }
  return EVSSH_OK;
}

static int owe_reply(struct evssh_conn *c, uint64_t *serial) {
  if (c->owed_count == c->owed_cap) {
    size_t cap = c->owed_cap ? c->owed_cap * 2 : 4;
    owed_reply *v = calloc(cap, sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    for (size_t i = 0; i < c->owed_count; i++) v[i] = c->owed[(c->owed_head + i) % c->owed_cap];
    free(c->owed);
    c->owed = v;
    c->owed_cap = cap;
    c->owed_head = 0;
  }
  owed_reply *o = &c->owed[(c->owed_head + c->owed_count) % c->owed_cap];
  *o = (owed_reply){0};
  o->serial = ++c->owed_serial;
  *serial = o->serial;
  c->owed_count++;
  return EVSSH_OK;
}

static int settle_owed(owed_reply *o, bool success, const void *extra, size_t len) {
  o->ready = true;
  o->success = success;
  if (success && len) {
    o->data = malloc(len);
    if (!o->data) { o->success = false; return EVSSH_ENOMEM; }
    memcpy(o->data, extra, len);
    o->len = len;
  }
  return EVSSH_OK;
}

int evssh_session_send_global_reply(evssh_session *s, bool success, const void *extra, size_t len) {
  if (!s || (!extra && len)) return EVSSH_EINVAL;
  struct evssh_conn *c = s->conn;
  if (!c) return EVSSH_EINVAL;
  if (!conn_usable(s)) return EVSSH_ECLOSED;
  for (size_t i = 0; i < c->owed_count; i++) {
    owed_reply *o = &c->owed[(c->owed_head + i) % c->owed_cap];
    if (o->ready) continue;
    int rc = settle_owed(o, success, extra, len);
    int rc2 = flush_owed(s);
    return rc ? rc : rc2;
  }
  return EVSSH_EINVAL; /* no request is waiting for an answer */
}

/* ------------------------------------------------------ incoming messages */

static int on_global_request(evssh_session *s, evssh_reader *r) {
  struct evssh_conn *c = s->conn;
  const char *type;
  size_t type_len;
  bool want_reply;
  if (evssh_read_string(r, &type, &type_len) || evssh_read_bool(r, &want_reply))
    return proto_error(s, "malformed GLOBAL_REQUEST", 0);
  char name[128];
  printable_copy(name, sizeof name, type, type_len);
  session_log(s, EVSSH_LOG_DEBUG, "peer global request %s%s", name, want_reply ? " (reply wanted)" : "");
  global_handler *h = c->global_handlers;
  while (h && !string_is(type, type_len, h->type)) h = h->next;
  uint64_t serial = 0;
  if (want_reply) {
    int rc = owe_reply(c, &serial);
    if (rc) return rc;
  }
  int answer = EVSSH_REPLY_FAILURE;
  if (h) {
    /* the handler may unregister itself: hand it a type string it cannot free */
    char *type_copy = dup_string(h->type);
    if (!type_copy) return EVSSH_ENOMEM;
    evssh_reader data = *r;
    answer = h->cb(s, type_copy, &data, want_reply, h->ud);
    free(type_copy);
  }
  if (!want_reply || c->aborted) return EVSSH_OK;
  if (answer != EVSSH_REPLY_SENT) {
    /* unless the handler answered through send_global_reply already */
    for (size_t i = 0; i < c->owed_count; i++) {
      owed_reply *o = &c->owed[(c->owed_head + i) % c->owed_cap];
      if (o->serial == serial) {
        if (!o->ready) settle_owed(o, answer == EVSSH_REPLY_SUCCESS, NULL, 0);
        break;
      }
    }
  }
  return flush_owed(s);
}

static int on_request_reply(evssh_session *s, evssh_reader *r, bool success) {
  reply_slot slot;
  if (!fifo_pop(&s->conn->global_replies, &slot)) {
    session_log(s, EVSSH_LOG_INFO, "global request reply with no request outstanding; ignored");
    return EVSSH_OK;
  }
  evssh_reader response = success ? *r : reader_of(NULL, 0);
  if (slot.cb.global) slot.cb.global(s, success, &response, slot.ud);
  return EVSSH_OK;
}

static int on_global_success(evssh_session *s, evssh_reader *r) { return on_request_reply(s, r, true); }
static int on_global_failure(evssh_session *s, evssh_reader *r) { return on_request_reply(s, r, false); }

/* Requests made before the peer's channel number was known, in order. */
static int send_early_requests(evssh_channel *ch) {
  while (ch->early_head) {
    chan_early_request *e = ch->early_head;
    ch->early_head = e->next;
    if (!ch->early_head) ch->early_tail = NULL;
    int rc = EVSSH_OK;
    if (e->cb) rc = fifo_push(&ch->replies, (reply_slot){.cb.channel = e->cb, .ud = e->ud});
    if (!rc) rc = send_channel_request(ch, e->type, e->extra, e->extra_len, e->cb != NULL);
    free(e->type);
    free(e->extra);
    free(e);
    if (rc) return rc;
  }
  return EVSSH_OK;
}

static int on_channel_open(evssh_session *s, evssh_reader *r) {
  struct evssh_conn *c = s->conn;
  const char *type;
  size_t type_len;
  uint32_t sender, window, max_packet;
  if (evssh_read_string(r, &type, &type_len) || evssh_read_u32(r, &sender) ||
      evssh_read_u32(r, &window) || evssh_read_u32(r, &max_packet))
    return proto_error(s, "malformed CHANNEL_OPEN", 0);
  char name[128];
  printable_copy(name, sizeof name, type, type_len);
  open_handler *h = c->open_handlers;
  while (h && !string_is(type, type_len, h->type)) h = h->next;
  uint32_t reason = 3;
  const char *why = "unknown channel type";
  evssh_channel *ch = NULL;
  if (h && s->state == SESSION_READY) {
    ch = channel_new(s, type, type_len);
    if (!ch) {
      reason = 4;
      why = "out of memory";
    } else {
      ch->state = CHAN_ACCEPTING;
      ch->remote_id = sender;
      ch->remote_window = window;
      ch->remote_max_packet = max_packet;
      evssh_reader data = *r;
      int verdict = h->cb(s, ch, &data, h->ud);
      if (c->aborted) {
        channel_retire(s, ch, c->abort_code, false);
        return EVSSH_OK;
      }
      if (verdict == 0) {
        evssh_buf *b = transport_begin(s->transport, SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
        int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
        if (b) {
          rc = evssh_buf_put_u32(b, sender);
          if (!rc) rc = evssh_buf_put_u32(b, ch->local_id);
          if (!rc) rc = evssh_buf_put_u32(b, CONN_WINDOW_SIZE);
          if (!rc) rc = evssh_buf_put_u32(b, CONN_MAX_PACKET);
          int rc2 = transport_end(s->transport);
          if (!rc) rc = rc2;
        }
        if (rc) return rc;
        ch->state = CHAN_OPEN;
        session_log(s, EVSSH_LOG_DEBUG, "channel %u: peer opened %s, accepted", ch->local_id, name);
        /* requests and data the handler issued were held for this moment */
        rc = send_early_requests(ch);
        if (rc) return rc;
        return channel_flush(ch);
      }
      reason = verdict > 0 ? (uint32_t)verdict : 2;
      why = "refused";
      channel_retire(s, ch, EVSSH_ECHANNEL, false);
    }
  }
  session_log(s, EVSSH_LOG_DEBUG, "peer channel open %s refused (%u %s)", name, reason, why);
  evssh_buf *b = transport_begin(s->transport, SSH_MSG_CHANNEL_OPEN_FAILURE);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, sender);
  if (!rc) rc = evssh_buf_put_u32(b, reason);
  if (!rc) rc = evssh_buf_put_cstring(b, why);
  if (!rc) rc = evssh_buf_put_cstring(b, "");
  int rc2 = transport_end(s->transport);
  return rc ? rc : rc2;
}

static int read_recipient(evssh_session *s, evssh_reader *r, const char *what, evssh_channel **out) {
  uint32_t id;
  if (evssh_read_u32(r, &id)) return proto_error(s, what, 0);
  evssh_channel *ch = table_find(s->conn, id);
  if (!ch || ch->state == CHAN_ACCEPTING) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s for a channel that is not open", what);
    return proto_error(s, msg, id);
  }
  *out = ch;
  return EVSSH_OK;
}

static int on_open_confirmation(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_OPEN_CONFIRMATION", &ch);
  if (rc) return rc;
  uint32_t sender, window, max_packet;
  if (ch->state != CHAN_OPENING) return proto_error(s, "second open confirmation", ch->local_id);
  if (evssh_read_u32(r, &sender) || evssh_read_u32(r, &window) || evssh_read_u32(r, &max_packet))
    return proto_error(s, "malformed CHANNEL_OPEN_CONFIRMATION", ch->local_id);
  ch->remote_id = sender;
  ch->remote_window = window;
  ch->remote_max_packet = max_packet;
  ch->state = CHAN_OPEN;
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: open confirmed (peer %u, window %u, packet %u)",
              ch->local_id, sender, window, max_packet);
  rc = send_early_requests(ch);
  if (rc) return rc;
  if (ch->on_open) ch->on_open(ch, ch->on_open_ud);
  if (ch->state == CHAN_DONE) return EVSSH_OK;
  return channel_flush(ch);
}

static int on_open_failure(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_OPEN_FAILURE", &ch);
  if (rc) return rc;
  uint32_t reason;
  const char *desc;
  size_t desc_len;
  if (ch->state != CHAN_OPENING) return proto_error(s, "open failure for an open channel", ch->local_id);
  if (evssh_read_u32(r, &reason) || evssh_read_string(r, &desc, &desc_len))
    return proto_error(s, "malformed CHANNEL_OPEN_FAILURE", ch->local_id);
  char text[256];
  printable_copy(text, sizeof text, desc, desc_len);
  session_log(s, ch->on_open_failed ? EVSSH_LOG_DEBUG : EVSSH_LOG_ERROR,
              "channel %u: open %s refused: %u %s", ch->local_id, ch->type, reason, text);
  if (ch->on_open_failed) ch->on_open_failed(ch, reason, text, ch->on_open_failed_ud);
  channel_retire(s, ch, EVSSH_ECHANNEL, false);
  return EVSSH_OK;
}

static int on_window_adjust(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_WINDOW_ADJUST", &ch);
  if (rc) return rc;
  uint32_t add;
  if (evssh_read_u32(r, &add)) return proto_error(s, "malformed CHANNEL_WINDOW_ADJUST", ch->local_id);
  uint64_t w = (uint64_t)ch->remote_window + add;
  ch->remote_window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
  return channel_flush(ch);
}

/* Shared by DATA and EXTENDED_DATA: window accounting, delivery, top-up. */
static int deliver_data(evssh_session *s, evssh_channel *ch, bool extended, uint32_t ext_type,
                        const char *data, size_t len) {
  if (len > ch->local_window) {
    return session_fail(s, EVSSH_EPROTO,
                        "channel %u: peer sent %zu bytes with only %u left in the window",
                        ch->local_id, len, ch->local_window);
  }
  ch->local_window -= (uint32_t)len;
  if (extended) {
    if (ch->on_ext_data) ch->on_ext_data(ch, ext_type, data, len, ch->on_ext_data_ud);
  } else {
    if (ch->on_data) ch->on_data(ch, data, len, ch->on_data_ud);
  }
  if (ch->state == CHAN_DONE || ch->close_sent || !conn_usable(s)) return EVSSH_OK;
  if (ch->local_window < CONN_WINDOW_SIZE / 2) return send_window_adjust(ch);
  return EVSSH_OK;
}

static int on_data(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_DATA", &ch);
  if (rc) return rc;
  const char *data;
  size_t len;
  if (evssh_read_string(r, &data, &len)) return proto_error(s, "malformed CHANNEL_DATA", ch->local_id);
  return deliver_data(s, ch, false, 0, data, len);
}

static int on_extended_data(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_EXTENDED_DATA", &ch);
  if (rc) return rc;
  uint32_t type;
  const char *data;
  size_t len;
  if (evssh_read_u32(r, &type) || evssh_read_string(r, &data, &len))
    return proto_error(s, "malformed CHANNEL_EXTENDED_DATA", ch->local_id);
  return deliver_data(s, ch, true, type, data, len);
}

static void run_held_requests(evssh_channel *ch);

static int on_eof(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_EOF", &ch);
  if (rc) return rc;
  ch->eof_received = true;
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: eof from peer", ch->local_id);
  if (ch->on_eof) ch->on_eof(ch, ch->on_eof_ud);
  run_held_requests(ch);
  return EVSSH_OK;
}

static int on_close(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_CLOSE", &ch);
  if (rc) return rc;
  ch->close_received = true;
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: close from peer", ch->local_id);
  if (!ch->close_sent) {
    /* the peer is gone from this channel: what we still had queued cannot
       be delivered any more; answer the close at once */
    rc = send_simple(s, SSH_MSG_CHANNEL_CLOSE, ch->remote_id);
    ch->close_sent = true;
  }
  run_held_requests(ch);
  channel_retire(s, ch, EVSSH_OK, true);
  return rc;
}

/* Record what the library itself keeps from a request (exit status and
   signal), whether or not a handler is registered. */
static void record_request(evssh_channel *ch, const char *type, size_t type_len, evssh_reader r) {
  if (string_is(type, type_len, "exit-status")) {
    uint32_t status;
    if (evssh_read_u32(&r, &status) == EVSSH_OK) {
      ch->has_exit_status = true;
      ch->exit_status = (int)status;
    }
  } else if (string_is(type, type_len, "exit-signal")) {
    char *name = NULL;
    if (evssh_read_cstring(&r, &name) == EVSSH_OK) {
      /* RFC 4254 names signals without "SIG"; some servers add it anyway */
      if (strncmp(name, "SIG", 3) == 0) memmove(name, name + 3, strlen(name + 3) + 1);
      free(ch->exit_signal);
      ch->exit_signal = name;
    }
  }
}

/* Run the on_request handler for type, if any; returns its answer. */
static int run_request_handler(evssh_channel *ch, const char *type, size_t type_len, evssh_reader data,
                               bool want_reply) {
  chan_handler *h = ch->handlers;
  while (h && !string_is(type, type_len, h->type)) h = h->next;
  if (!h) return EVSSH_REPLY_FAILURE;
  /* the handler may unregister itself: hand it a type string it cannot free */
  char small[64];
  char *type_copy = type_len < sizeof small ? small : malloc(type_len + 1);
  if (!type_copy) return EVSSH_REPLY_FAILURE;
  memcpy(type_copy, h->type, type_len + 1);
  int answer = h->cb(ch, type_copy, &data, want_reply, h->ud);
  if (type_copy != small) free(type_copy);
  return answer;
}

static int hold_request(evssh_channel *ch, const char *type, size_t type_len, evssh_reader data) {
  chan_held_request *h = calloc(1, sizeof *h);
  if (!h) return EVSSH_ENOMEM;
  h->type = malloc(type_len + 1);
  h->data = malloc(data.left ? data.left : 1);
  if (!h->type || !h->data) {
    free(h->type); free(h->data); free(h);
    return EVSSH_ENOMEM;
  }
  memcpy(h->type, type, type_len);
  h->type[type_len] = 0;
  if (data.left) memcpy(h->data, data.p, data.left);
  h->len = data.left;
  if (ch->held_tail) ch->held_tail->next = h; else ch->held_head = h;
  ch->held_tail = h;
  return EVSSH_OK;
}

/* Deliver held exit-status / exit-signal requests (after EOF, or before
   close when the peer never sent EOF). */
static void run_held_requests(evssh_channel *ch) {
  while (ch->held_head && ch->state != CHAN_DONE) {
    chan_held_request *h = ch->held_head;
    ch->held_head = h->next;
    if (!ch->held_head) ch->held_tail = NULL;
    run_request_handler(ch, h->type, strlen(h->type), reader_of(h->data, h->len), false);
    free(h->type);
    free(h->data);
    free(h);
  }
}

static int on_channel_request(evssh_session *s, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, "CHANNEL_REQUEST", &ch);
  if (rc) return rc;
  const char *type;
  size_t type_len;
  bool want_reply;
  if (evssh_read_string(r, &type, &type_len) || evssh_read_bool(r, &want_reply))
    return proto_error(s, "malformed CHANNEL_REQUEST", ch->local_id);
  char name[128];
  printable_copy(name, sizeof name, type, type_len);
  session_log(s, EVSSH_LOG_DEBUG, "channel %u: peer request %s%s", ch->local_id, name,
              want_reply ? " (reply wanted)" : "");
  record_request(ch, type, type_len, *r);
  bool exit_report = string_is(type, type_len, "exit-status") || string_is(type, type_len, "exit-signal");
  if (exit_report && !want_reply && (!ch->eof_received || ch->held_head))
    return hold_request(ch, type, type_len, *r);
  int answer = run_request_handler(ch, type, type_len, *r, want_reply);
  if (!want_reply || answer == EVSSH_REPLY_SENT) return EVSSH_OK;
  if (ch->state == CHAN_DONE || ch->close_sent || !conn_usable(s)) return EVSSH_OK;
  return send_simple(s, answer == EVSSH_REPLY_SUCCESS ? SSH_MSG_CHANNEL_SUCCESS : SSH_MSG_CHANNEL_FAILURE,
                     ch->remote_id);
}

static int on_channel_reply(evssh_session *s, evssh_reader *r, bool success) {
  evssh_channel *ch;
  int rc = read_recipient(s, r, success ? "CHANNEL_SUCCESS" : "CHANNEL_FAILURE", &ch);
  if (rc) return rc;
  reply_slot slot;
  if (!fifo_pop(&ch->replies, &slot)) {
    session_log(s, EVSSH_LOG_INFO, "channel %u: reply with no request outstanding; ignored", ch->local_id);
    return EVSSH_OK;
  }
  if (slot.cb.channel) slot.cb.channel(ch, success, slot.ud);
  return EVSSH_OK;
}

static int on_channel_success(evssh_session *s, evssh_reader *r) { return on_channel_reply(s, r, true); }
static int on_channel_failure(evssh_session *s, evssh_reader *r) { return on_channel_reply(s, r, false); }

typedef int (*message_handler)(evssh_session *s, evssh_reader *body);

/* The dispatch table: one entry per connection-protocol message number. */
static const message_handler dispatch[256] = {
  [SSH_MSG_GLOBAL_REQUEST] = on_global_request,
  [SSH_MSG_REQUEST_SUCCESS] = on_global_success,
  [SSH_MSG_REQUEST_FAILURE] = on_global_failure,
  [SSH_MSG_CHANNEL_OPEN] = on_channel_open,
  [SSH_MSG_CHANNEL_OPEN_CONFIRMATION] = on_open_confirmation,
  [SSH_MSG_CHANNEL_OPEN_FAILURE] = on_open_failure,
  [SSH_MSG_CHANNEL_WINDOW_ADJUST] = on_window_adjust,
  [SSH_MSG_CHANNEL_DATA] = on_data,
  [SSH_MSG_CHANNEL_EXTENDED_DATA] = on_extended_data,
  [SSH_MSG_CHANNEL_EOF] = on_eof,
  [SSH_MSG_CHANNEL_CLOSE] = on_close,
  [SSH_MSG_CHANNEL_REQUEST] = on_channel_request,
  [SSH_MSG_CHANNEL_SUCCESS] = on_channel_success,
  [SSH_MSG_CHANNEL_FAILURE] = on_channel_failure,
};

int conn_handle_packet(evssh_session *s, uint8_t msg, evssh_reader *body) {
  struct evssh_conn *c = s->conn;
  if (!c || c->aborted) return EVSSH_OK;
  message_handler h = dispatch[msg];
  if (!h) {
    /* RFC 4253 11.4: every unrecognized message gets UNIMPLEMENTED, in order */
    session_log(s, EVSSH_LOG_DEBUG, "connection layer: message %u not recognized; answering UNIMPLEMENTED", msg);
    unsigned char seq[4];
    put_u32(seq, transport_last_seq(s->transport));
    return transport_send(s->transport, SSH_MSG_UNIMPLEMENTED, seq, sizeof seq);
  }
  loop_note_received(s);
  session_log(s, EVSSH_LOG_PACKET, "connection layer: message %u, %zu bytes", msg, body->left);
  conn_enter(s);
  int rc = h(s, body);
  conn_leave(s);
  return rc;
}

/* ------------------------------------------------------------- loop seams */

/* Every channel with something to send gets a turn. When the transport's
   high-water mark ends a pass, the next pass starts after the channel that
   used the budget up, so one busy channel cannot starve the others. */
static int flush_all_channels(evssh_session *s, struct evssh_conn *c) {
  size_t n = c->table_size;
  if (n == 0) return EVSSH_OK;
  size_t start = c->flush_start % n;
  for (size_t k = 0; k < n && !c->aborted; k++) {
    size_t i = (start + k) % n;
    if (i >= c->table_size) continue;
    evssh_channel *ch = c->table[i];
    if (!ch || ch->state != CHAN_OPEN ||
        !(ch->out_head || (ch->eof_wanted && !ch->eof_sent) || (ch->close_wanted && !ch->close_sent)))
      continue;
    int rc = channel_flush(ch);
    if (rc) return rc;
    if (!transport_takes_data(s)) {
      c->flush_start = i + 1;
      break;
    }
  }
  return EVSSH_OK;
}

int conn_flush(evssh_session *s) {
  struct evssh_conn *c = s->conn;
  if (!c || !conn_usable(s)) return EVSSH_OK;
  conn_enter(s);
  int rc = flush_all_channels(s, c);
  conn_leave(s);
  return rc;
}

int conn_process(evssh_session *s) {
  struct evssh_conn *c = s->conn;
  if (!c || !conn_usable(s)) return EVSSH_OK;
  conn_enter(s);
  /* the table may grow or lose entries under a callback: index, re-read */
  for (size_t i = 0; i < c->table_size && !c->aborted; i++) {
    evssh_channel *ch = c->table[i];
    if (ch && ch->state == CHAN_OPEN && ch->on_process) ch->on_process(ch, ch->on_process_ud);
  }
  int rc = c->aborted ? EVSSH_OK : flush_all_channels(s, c);
  conn_leave(s);
  return rc;
}

bool conn_has_work(const evssh_session *s) {
  const struct evssh_conn *c = conn_of(s);
  if (!c || !conn_usable(s)) return false;
  if (transport_kex_running(s->transport) ||
      transport_pending_out(s->transport) >= CONN_TRANSPORT_HIGH_WATER)
    return false;
  for (size_t i = 0; i < c->table_size; i++) {
    const evssh_channel *ch = c->table[i];
    if (!ch || ch->state != CHAN_OPEN || ch->close_sent) continue;
    if (ch->out_head ? ch->remote_window > 0 : ((ch->eof_wanted && !ch->eof_sent) || ch->close_wanted))
      return true;
  }
  return false;
}

bool conn_busy(const evssh_session *s, bool include_invisible) {
  const struct evssh_conn *c = conn_of(s);
  if (!c) return false;
  for (size_t i = 0; i < c->table_size; i++) {
    const evssh_channel *ch = c->table[i];
    if (!ch || ch->state == CHAN_DONE) continue;
    /* Net::SSH: a channel with ch[:invisible] set does not keep loop going */
    if (include_invisible || !evssh_channel_property(ch, "invisible")) return true;
  }
  return false;
}

bool conn_close_all(evssh_session *s) {
  struct evssh_conn *c = s->conn;
  if (!c) return true;
  if (c->aborted) return true;
  for (size_t i = 0; i < c->table_size; i++) {
    evssh_channel *ch = c->table[i];
    if (ch && ch->state != CHAN_DONE && !ch->close_wanted) {
      ch->close_wanted = true;
      channel_flush(ch);
    }
  }
  return c->channel_count == 0;
}

void conn_abort(evssh_session *s, int code) {
  struct evssh_conn *c = s->conn;
  if (!c || c->aborted) return;
  c->aborted = true;
  c->abort_code = code < 0 ? code : EVSSH_ECLOSED;
  conn_enter(s);
  reply_slot slot;
  while (fifo_pop(&c->global_replies, &slot)) {
    evssh_reader none = reader_of(NULL, 0);
    if (slot.cb.global) slot.cb.global(s, false, &none, slot.ud);
  }
  for (size_t i = 0; i < c->table_size; i++) {
    evssh_channel *ch = c->table[i];
    if (!ch || ch->state == CHAN_DONE) continue;
    if (ch->state == CHAN_OPENING && ch->on_open_failed)
      ch->on_open_failed(ch, 2, "session closed", ch->on_open_failed_ud);
    run_held_requests(ch);
    channel_retire(s, ch, c->abort_code, true);
  }
  for (size_t i = 0; i < c->owed_count; i++) free(c->owed[(c->owed_head + i) % c->owed_cap].data);
  c->owed_count = 0;
  conn_leave(s);
}
