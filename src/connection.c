/* connection.c owns the SSH connection protocol (RFC 4254) on the client
 * side: channels (open, confirm, refuse, data, extended data, eof, close),
 * both flow-control windows with backpressure (send queue cap and on_drain
 * on our side, pause and consumer-paced window grants on the peer's), channel
 * and global requests in both directions, channels the peer opens (limited
 * in number), the keepalive probe, and the dispatch table that routes
 * messages 80..255 by number, the way Net::SSH's Connection::Session does.
 *
 * Lifetimes: channels live in a table indexed by our channel number; a
 * retired channel leaves the table for a graveyard and is freed by
 * conn_reap, which the session calls only when no callback is on the stack
 * and which skips held channels. So a handle stays readable after close
 * until the loop is next entered from the outermost level, or while held.
 * The layer reports failures upward through conn_events only. */
#include "connection.h"

#include "buf.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
  CHAN_OPENING = 0,  /* we sent CHANNEL_OPEN, no answer yet */
  CHAN_ACCEPTING,    /* the peer opened it; its on_open_channel handler runs */
  CHAN_OPEN,         /* confirmed both ways */
  CHAN_DONE,         /* retired: on_close (or on_open_failed) has run */
} chan_state;

/* One run of outgoing bytes of the same kind (data, or extended data of one
   type); consecutive sends of the same kind share a segment. */
typedef struct chan_segment {
  struct chan_segment *next;
  bool extended;
  uint32_t ext_type;
  evssh_buf bytes;
} chan_segment;

/* A channel request made before the open was confirmed: it waits for the
   peer's channel number and goes out, in order, right after confirmation. */
typedef struct early_request {
  struct early_request *next;
  char *type;
  unsigned char *extra;
  size_t extra_len;
  evssh_reply_cb cb;
  void *ud;
} early_request;

typedef struct reply_slot {
  evssh_reply_cb channel;
  evssh_global_reply_cb global;
  void *ud;
} reply_slot;

/* An exit report that came before the peer's EOF (sshd sends it as soon as
   the command exits, often ahead of the last output): only the latest of
   each kind is kept, re-encoded without trailing bytes, and delivered after
   EOF so callbacks keep Net::SSH's order data, eof, exit, close. */
typedef struct held_report {
  bool present;
  evssh_buf data;
} held_report;

struct evssh_channel {
  evssh_conn *conn;
  uint32_t local_id, remote_id;
  char *type;
  chan_state state;
  bool peer_opened;            /* counts toward the peer-channel limit */

  uint32_t local_window;       /* bytes the peer may still send us */
  uint32_t window_target;      /* the window we grant back up to */
  bool paused;                 /* no grants while set */
  uint32_t remote_window;      /* bytes we may still send */
  uint32_t remote_max_window;  /* the window the peer opened with */
  uint32_t remote_max_packet;

  bool eof_wanted, eof_sent, close_wanted, close_sent;
  bool closing_told;           /* retiring and past its reply callbacks: on_close runs or ran */
  bool eof_received, close_received;

  chan_segment *out_head, *out_tail;
  size_t out_bytes;
  size_t send_limit;
  evssh_channel_cb on_drain; void *on_drain_ud;
  size_t drain_low_water;
  bool drain_armed;

  early_request *early_head, *early_tail;
  ring replies;                /* reply_slot: our requests awaiting answers */
  held_report held_status, held_signal;

  evssh_channel_cb on_open; void *on_open_ud;
  evssh_data_cb on_data; void *on_data_ud;
  evssh_ext_data_cb on_ext_data; void *on_ext_data_ud;
  evssh_channel_cb on_eof; void *on_eof_ud;
  evssh_channel_cb on_close; void *on_close_ud;
  evssh_channel_cb on_process; void *on_process_ud;
  evssh_open_failed_cb on_open_failed; void *on_open_failed_ud;
  registry handlers;           /* request type -> evssh_request_cb */
  registry properties;

  bool has_exit_status;
  int exit_status;
  char *exit_signal;

  bool confirmed;               /* the open succeeded (stays true after close) */
  evssh_channel_free_cb on_free; void *on_free_ud;
  int holds;
  struct evssh_channel *next_dead;
};

/* A reply we owe the peer for a global request: replies must go out in the
   order the requests came, so an answer given early waits for older ones. */
typedef struct owed_reply {
  uint64_t serial;
  bool ready;
  bool success;
  unsigned char *data;
  size_t len;
} owed_reply;

struct evssh_conn {
  evssh_session *handle;       /* for user callbacks only */
  evssh_diag *diag;
  const conn_events *ev;
  void *ctx;
  evssh_transport *t;
  bool started, aborted;
  int abort_code;

  evssh_channel **table;       /* indexed by local channel number */
  size_t table_size, channel_count;
  size_t flush_start;          /* round-robin start of the next flush pass */
  evssh_channel *dead;         /* retired, freed by conn_reap */
  size_t peer_channels, max_peer_channels;

  ring global_replies;         /* reply_slot: our global requests */
  ring owed;                   /* owed_reply */
  uint64_t owed_serial;
  registry global_handlers, open_handlers;

  uint64_t moved;               /* channel data bytes handed to the transport */
  int alive_interval_s, alive_count_max;
  int64_t last_received_ms, last_probe_ms;
  int probes_unanswered;
};

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
    unsigned char ch = (unsigned char)data[i];
    out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
  }
  out[n] = 0;
}

static int conn_fail(evssh_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int conn_fail(evssh_conn *c, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = base_vasprintf(fmt, ap);
  va_end(ap);
  c->ev->fail(c->ctx, code, msg ? msg : evssh_strerror(code));
  free(msg);
  return code;
}

static int proto_error(evssh_conn *c, const char *what, uint32_t id) {
  return conn_fail(c, EVSSH_EPROTO, "connection protocol: %s (channel %u)", what, id);
}

/* See conn_events.wake: the session's multi re-reads this session. */
static void conn_wake(const evssh_conn *c) {
  if (c && c->ev && c->ev->wake) c->ev->wake(c->ctx);
}

static bool usable(const evssh_conn *c) { return c && c->started && !c->aborted && c->t; }

#define LOG(c, level, ...) diag_log((c)->diag, level, __VA_ARGS__)

/* ------------------------------------------------------------ life cycle */

int conn_new(evssh_session *handle, evssh_diag *diag, const conn_events *ev, void *ctx, evssh_conn **out) {
  evssh_conn *c = calloc(1, sizeof *c);
  if (!c) return EVSSH_ENOMEM;
  c->handle = handle;
  c->diag = diag;
  c->ev = ev;
  c->ctx = ctx;
  c->max_peer_channels = CONN_PEER_CHANNELS;
  ring_init(&c->global_replies, sizeof(reply_slot));
  ring_init(&c->owed, sizeof(owed_reply));
  *out = c;
  return EVSSH_OK;
}

void conn_start(evssh_conn *c, evssh_transport *t) {
  c->t = t;
  c->started = true;
  c->last_received_ms = base_now_ms();
}

bool conn_started(const evssh_conn *c) { return c && c->started; }

static void free_channel(evssh_channel *ch) {
  if (ch->on_free) ch->on_free(ch, ch->on_free_ud);
  while (ch->out_head) {
    chan_segment *seg = ch->out_head;
    ch->out_head = seg->next;
    buf_release(&seg->bytes);
    free(seg);
  }
  while (ch->early_head) {
    early_request *r = ch->early_head;
    ch->early_head = r->next;
    free(r->type);
    free(r->extra);
    free(r);
  }
  buf_release(&ch->held_status.data);
  buf_release(&ch->held_signal.data);
  registry_clear(&ch->handlers);
  registry_clear(&ch->properties);
  ring_release(&ch->replies);
  free(ch->exit_signal);
  free(ch->type);
  free(ch);
}

void conn_reap(evssh_conn *c) {
  if (!c) return;
  evssh_channel **pp = &c->dead;
  while (*pp) {
    evssh_channel *ch = *pp;
    if (ch->holds > 0) {
      pp = &ch->next_dead;
      continue;
    }
    *pp = ch->next_dead;
    free_channel(ch);
  }
}

static void free_owed(evssh_conn *c) {
  owed_reply o;
  while (ring_pop(&c->owed, &o)) free(o.data);
}

void conn_free(evssh_conn *c) {
  if (!c) return;
  for (size_t i = 0; i < c->table_size; i++)
    if (c->table[i]) free_channel(c->table[i]);
  while (c->dead) {
    evssh_channel *ch = c->dead;
    c->dead = ch->next_dead;
    free_channel(ch);
  }
  free(c->table);
  ring_release(&c->global_replies);
  free_owed(c);
  ring_release(&c->owed);
  registry_clear(&c->global_handlers);
  registry_clear(&c->open_handlers);
  free(c);
}

void conn_set_keepalive(evssh_conn *c, int interval_s, int count_max) {
  c->alive_interval_s = interval_s;
  c->alive_count_max = count_max;
}

void conn_set_max_peer_channels(evssh_conn *c, size_t max) { c->max_peer_channels = max; }

/* ----------------------------------------------------------- channel table */

static int table_insert(evssh_conn *c, evssh_channel *ch) {
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

static void table_remove(evssh_conn *c, evssh_channel *ch) {
  if (ch->local_id < c->table_size && c->table[ch->local_id] == ch) {
    c->table[ch->local_id] = NULL;
    c->channel_count--;
    if (ch->peer_opened) c->peer_channels--;
  }
}

static evssh_channel *channel_new(evssh_conn *c, const char *type, size_t type_len) {
  evssh_channel *ch = calloc(1, sizeof *ch);
  if (!ch) return NULL;
  ch->type = malloc(type_len + 1);
  if (!ch->type) { free(ch); return NULL; }
  memcpy(ch->type, type, type_len);
  ch->type[type_len] = 0;
  ch->conn = c;
  ch->local_window = ch->window_target = CONN_WINDOW_SIZE;
  ch->send_limit = CONN_SEND_LIMIT;
  ch->exit_status = -1;
  ring_init(&ch->replies, sizeof(reply_slot));
  buf_init(&ch->held_status.data);
  buf_init(&ch->held_signal.data);
  if (table_insert(c, ch) != EVSSH_OK) {
    free(ch->type);
    free(ch);
    return NULL;
  }
  conn_wake(c);
  return ch;
}

static void run_held_requests(evssh_channel *ch);

/* The channel is over: fail replies still awaited, run on_close (or nothing
   more for a refused open), then leave the table for the graveyard. */
static void channel_retire(evssh_channel *ch, bool run_on_close) {
  evssh_conn *c = ch->conn;
  if (ch->state == CHAN_DONE) return;
  ch->state = CHAN_DONE;
  conn_wake(c);
  reply_slot slot;
  while (ring_pop(&ch->replies, &slot))
    if (slot.channel) slot.channel(ch, false, slot.ud);
  /* requests that never went out (the open was refused) fail the same way */
  while (ch->early_head) {
    early_request *e = ch->early_head;
    ch->early_head = e->next;
    if (!ch->early_head) ch->early_tail = NULL;
    if (e->cb) e->cb(ch, false, e->ud);
    free(e->type);
    free(e->extra);
    free(e);
  }
  ch->closing_told = true;
  if (run_on_close && ch->on_close) ch->on_close(ch, ch->on_close_ud);
  table_remove(c, ch);
  ch->next_dead = c->dead;
  c->dead = ch;
}

/* ------------------------------------------------------------- sending */

/* Build one packet; anything failing after begin aborts it, so nothing
   half-built reaches the wire. */
static int send_packet(evssh_conn *c, uint8_t msg, const evssh_buf *body) {
  evssh_buf *b = transport_begin(c->t, msg);
  if (!b) return EVSSH_ENOMEM;
  if (body && buf_avail(body) && buf_append(b, buf_ptr(body), buf_avail(body)) != EVSSH_OK) {
    transport_abort(c->t);
    return EVSSH_ENOMEM;
  }
  return transport_end(c->t);
}

static int end_or_abort(evssh_conn *c, int rc) {
  if (rc) {
    transport_abort(c->t);
    return rc;
  }
  return transport_end(c->t);
}

static int send_simple(evssh_conn *c, uint8_t msg, uint32_t recipient) {
  evssh_buf *b = transport_begin(c->t, msg);
  if (!b) return EVSSH_ENOMEM;
  return end_or_abort(c, evssh_buf_put_u32(b, recipient));
}

/* Window grants follow the consumer: data counts as consumed once its
   on_data returned; nothing is granted while paused; a grant counts only
   once its packet is queued. Granted when at least half the target is
   owed, so adjusts stay few. */
static int grant_window(evssh_channel *ch, bool any) {
  evssh_conn *c = ch->conn;
  if (ch->paused || ch->state != CHAN_OPEN || ch->close_sent || ch->close_received || !usable(c)) return EVSSH_OK;
  if (ch->local_window >= ch->window_target) return EVSSH_OK;
  uint32_t owed = ch->window_target - ch->local_window;
  if (!any && owed < ch->window_target / 2) return EVSSH_OK;
  evssh_buf *b = transport_begin(c->t, SSH_MSG_CHANNEL_WINDOW_ADJUST);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, ch->remote_id);
  if (!rc) rc = evssh_buf_put_u32(b, owed);
  rc = end_or_abort(c, rc);
  if (rc) return rc;
  ch->local_window += owed;
  LOG(c, EVSSH_LOG_PACKET, "channel %u: window adjust +%u", ch->local_id, owed);
  return EVSSH_OK;
}

static int send_channel_request(evssh_channel *ch, const char *type, const void *extra,
                                size_t extra_len, bool want_reply) {
  evssh_conn *c = ch->conn;
  evssh_buf *b = transport_begin(c->t, SSH_MSG_CHANNEL_REQUEST);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, ch->remote_id);
  if (!rc) rc = evssh_buf_put_cstring(b, type);
  if (!rc) rc = evssh_buf_put_bool(b, want_reply);
  if (!rc && extra_len) rc = buf_append(b, extra, extra_len);
  rc = end_or_abort(c, rc);
  if (rc) return rc;
  LOG(c, EVSSH_LOG_DEBUG, "channel %u: request %s%s", ch->local_id, type, want_reply ? " (reply wanted)" : "");
  return EVSSH_OK;
}

/* May channel data go into the transport now? Control messages always may;
   bulk data waits while the transport is backed up or re-keying. */
static bool transport_takes_data(const evssh_conn *c) {
  return !transport_kex_running(c->t) && transport_pending_out(c->t) < CONN_TRANSPORT_HIGH_WATER;
}

static size_t chunk_limit(const evssh_channel *ch, bool extended) {
  size_t header = extended ? 13 : 9; /* msg, recipient, [type], length */
  size_t payload = transport_max_payload(ch->conn->t);
  size_t limit = payload > header ? payload - header : 0;
  if (ch->remote_max_packet < limit) limit = ch->remote_max_packet;
  if (ch->remote_window < limit) limit = ch->remote_window;
  return limit;
}

/* Send as much of p as the peer's window and packet size allow now. */
static int send_chunks(evssh_channel *ch, bool extended, uint32_t ext_type, const unsigned char *p, size_t len,
                       size_t *sent) {
  evssh_conn *c = ch->conn;
  size_t done = 0;
  int rc = EVSSH_OK;
  while (done < len && transport_takes_data(c)) {
    size_t n = chunk_limit(ch, extended);
    if (n == 0) break;
    if (n > len - done) n = len - done;
    evssh_buf *b = transport_begin(c->t, extended ? SSH_MSG_CHANNEL_EXTENDED_DATA : SSH_MSG_CHANNEL_DATA);
    if (!b) { rc = EVSSH_ENOMEM; break; }
    rc = evssh_buf_put_u32(b, ch->remote_id);
    if (!rc && extended) rc = evssh_buf_put_u32(b, ext_type);
    if (!rc) rc = evssh_buf_put_string(b, p + done, n);
    rc = end_or_abort(c, rc);
    if (rc) break;
    ch->remote_window -= (uint32_t)n;
    c->moved += n;
    done += n;
  }
  *sent = done;
  return rc;
}

static bool can_send_now(const evssh_channel *ch) { return ch->state == CHAN_OPEN && !ch->close_sent; }

/* Push queued data, then a wanted EOF and CLOSE once nothing is queued. */
static int channel_flush(evssh_channel *ch) {
  evssh_conn *c = ch->conn;
  if (!can_send_now(ch) || !usable(c)) return EVSSH_OK;
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
    int rc = send_simple(c, SSH_MSG_CHANNEL_EOF, ch->remote_id);
    if (rc) return rc;
    ch->eof_sent = true;
    LOG(c, EVSSH_LOG_DEBUG, "channel %u: sent eof", ch->local_id);
  }
  if (ch->close_wanted && !ch->close_sent) {
    int rc = send_simple(c, SSH_MSG_CHANNEL_CLOSE, ch->remote_id);
    if (rc) return rc;
    ch->close_sent = true;
    LOG(c, EVSSH_LOG_DEBUG, "channel %u: sent close", ch->local_id);
  }
  return EVSSH_OK;
}

static int queue_bytes(evssh_channel *ch, bool extended, uint32_t ext_type, const unsigned char *p, size_t len) {
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
  if (ch->on_drain && ch->out_bytes > ch->drain_low_water) ch->drain_armed = true;
  conn_wake(ch->conn);
  return EVSSH_OK;
}

static int channel_write(evssh_channel *ch, bool extended, uint32_t ext_type, const void *data, size_t len) {
  if (!ch || (!data && len)) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE || ch->eof_wanted || ch->close_wanted || ch->close_received ||
      (ch->conn->started && !usable(ch->conn)))
    return EVSSH_ECLOSED;
  if (len == 0) return EVSSH_OK;
  /* the cap bounds what waits here; one call is taken whole or not at all */
  if (ch->out_bytes >= ch->send_limit) return EVSSH_EAGAIN;
  const unsigned char *p = data;
  size_t sent = 0;
  /* nothing queued: send straight from the caller's buffer, copy the rest */
  if (!ch->out_head && can_send_now(ch) && usable(ch->conn)) {
    int rc = send_chunks(ch, extended, ext_type, p, len, &sent);
    if (rc) return rc;
  }
  if (sent < len) return queue_bytes(ch, extended, ext_type, p + sent, len - sent);
  return EVSSH_OK;
}

/* ------------------------------------------------------- public: channels */

evssh_channel *conn_open_channel(evssh_conn *c, const char *type, const void *extra, size_t extra_len,
                                 evssh_channel_cb on_open, void *ud) {
  if (!usable(c)) return NULL;
  evssh_channel *ch = channel_new(c, type, strlen(type));
  if (!ch) return NULL;
  ch->on_open = on_open;
  ch->on_open_ud = ud;
  evssh_buf *b = transport_begin(c->t, SSH_MSG_CHANNEL_OPEN);
  int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
  if (b) {
    rc = evssh_buf_put_cstring(b, type);
    if (!rc) rc = evssh_buf_put_u32(b, ch->local_id);
    if (!rc) rc = evssh_buf_put_u32(b, ch->local_window);
    if (!rc) rc = evssh_buf_put_u32(b, CONN_MAX_PACKET);
    if (!rc && extra_len) rc = buf_append(b, extra, extra_len);
    rc = end_or_abort(c, rc);
  }
  if (rc) {
    table_remove(c, ch);
    free_channel(ch);
    return NULL;
  }
  LOG(c, EVSSH_LOG_DEBUG, "channel %u: open %s", ch->local_id, ch->type);
  return ch;
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
  if (ch) {
    ch->on_process = cb;
    ch->on_process_ud = ud;
    conn_wake(ch->conn);
  }
}
void evssh_channel_on_open_failed(evssh_channel *ch, evssh_open_failed_cb cb, void *ud) {
  if (ch) { ch->on_open_failed = cb; ch->on_open_failed_ud = ud; }
}

int evssh_channel_on_request(evssh_channel *ch, const char *type, evssh_request_cb cb, void *ud) {
  if (!ch || !type) return EVSSH_EINVAL;
  return registry_set(&ch->handlers, type, (registry_fn)cb, cb ? ud : NULL);
}

int evssh_channel_send_request(evssh_channel *ch, const char *type, const void *extra, size_t extra_len,
                               evssh_reply_cb cb, void *ud) {
  if (!ch || !type || (!extra && extra_len)) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE || ch->close_wanted || ch->close_received || !usable(ch->conn))
    return EVSSH_ECLOSED;
  if (ch->state == CHAN_OPENING || ch->state == CHAN_ACCEPTING) {
    early_request *r = calloc(1, sizeof *r);
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
  reply_slot slot = {cb, NULL, ud};
  if (cb && ring_push(&ch->replies, &slot) != EVSSH_OK) return EVSSH_ENOMEM;
  int rc = send_channel_request(ch, type, extra, extra_len, cb != NULL);
  if (rc && cb) ring_unpush(&ch->replies);
  return rc;
}

static int request_with_strings(evssh_channel *ch, const char *type, const char *a, const char *b,
                                evssh_reply_cb cb, void *ud) {
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

int evssh_channel_env(evssh_channel *ch, const char *name, const char *value, evssh_reply_cb cb, void *ud) {
  if (!name || !value) return EVSSH_EINVAL;
  return request_with_strings(ch, "env", name, value, cb, ud);
}

int evssh_channel_signal(evssh_channel *ch, const char *signame) {
  if (!signame) return EVSSH_EINVAL;
  return request_with_strings(ch, "signal", signame, NULL, NULL, NULL);
}

int evssh_channel_request_pty(evssh_channel *ch, const char *term, uint32_t cols, uint32_t rows,
                              evssh_reply_cb cb, void *ud) {
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
  if (ch->state == CHAN_DONE || ch->close_received || !usable(ch->conn)) return EVSSH_ECLOSED;
  if (ch->eof_wanted) return EVSSH_OK;
  ch->eof_wanted = true;
  conn_wake(ch->conn);
  return channel_flush(ch);
}

int evssh_channel_close(evssh_channel *ch) {
  if (!ch) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE) return EVSSH_ECLOSED;
  if (ch->close_wanted) return EVSSH_OK;
  ch->close_wanted = true;
  conn_wake(ch->conn);
  if (!usable(ch->conn)) return EVSSH_ECLOSED;
  return channel_flush(ch);
}

uint32_t evssh_channel_id(const evssh_channel *ch) { return ch ? ch->local_id : 0; }
evssh_session *evssh_channel_session(const evssh_channel *ch) { return ch ? ch->conn->handle : NULL; }
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

int evssh_channel_set_property(evssh_channel *ch, const char *key, void *value) {
  if (!ch || !key) return EVSSH_EINVAL;
  conn_wake(ch->conn);   /* "invisible" changes whether the channel keeps a loop going */
  return registry_set(&ch->properties, key, NULL, value);
}

void *evssh_channel_property(const evssh_channel *ch, const char *key) {
  if (!ch) return NULL;
  return registry_value(&ch->properties, key);
}

/* ---------------------------------------------------- public: backpressure */

size_t evssh_channel_pending(const evssh_channel *ch) { return ch ? ch->out_bytes : 0; }

void evssh_channel_on_drain(evssh_channel *ch, size_t low_water, evssh_channel_cb cb, void *ud) {
  if (!ch) return;
  ch->on_drain = cb;
  ch->on_drain_ud = ud;
  ch->drain_low_water = low_water;
  ch->drain_armed = cb != NULL;   /* fires at the next flush if already low */
  conn_wake(ch->conn);
}

int evssh_channel_pause(evssh_channel *ch, bool paused) {
  if (!ch) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE) return EVSSH_ECLOSED;
  bool was = ch->paused;
  ch->paused = paused;
  conn_wake(ch->conn);
  if (was && !paused) return grant_window(ch, false);
  return EVSSH_OK;
}

bool evssh_channel_paused(const evssh_channel *ch) { return ch && ch->paused; }

bool evssh_channel_opened(const evssh_channel *ch) { return ch && ch->confirmed; }

void evssh_channel_on_free(evssh_channel *ch, evssh_channel_free_cb cb, void *ud) {
  if (!ch) return;
  ch->on_free = cb;
  ch->on_free_ud = ud;
}

void evssh_channel_hold(evssh_channel *ch) {
  if (ch) ch->holds++;
}

void evssh_channel_release(evssh_channel *ch) {
  if (ch && ch->holds > 0) ch->holds--;
}

int evssh_channel_set_receive_window(evssh_channel *ch, uint32_t bytes) {
  if (!ch || bytes == 0) return EVSSH_EINVAL;
  if (ch->state == CHAN_DONE) return EVSSH_ECLOSED;
  ch->window_target = bytes;
  /* before confirmation the grant waits for the peer's channel number */
  if (ch->state != CHAN_OPEN) return EVSSH_OK;
  return grant_window(ch, true);
}

int evssh_channel_set_send_limit(evssh_channel *ch, size_t bytes) {
  if (!ch || bytes == 0) return EVSSH_EINVAL;
  ch->send_limit = bytes;
  return EVSSH_OK;
}

uint32_t evssh_channel_receive_window(const evssh_channel *ch) { return ch ? ch->local_window : 0; }
uint32_t evssh_channel_send_window(const evssh_channel *ch) { return ch ? ch->remote_window : 0; }

int evssh_channel_remote_id(const evssh_channel *ch, uint32_t *id) {
  if (!ch || !id || !ch->confirmed) return EVSSH_EINVAL;
  *id = ch->remote_id;
  return EVSSH_OK;
}

int evssh_channel_windows_get(const evssh_channel *ch, evssh_channel_windows *w) {
  if (!ch || !w) return EVSSH_EINVAL;
  *w = (evssh_channel_windows){
    .local_window = ch->local_window,
    .local_max_window = ch->window_target,
    .local_max_packet = CONN_MAX_PACKET,
    .remote_window = ch->remote_window,
    .remote_max_window = ch->remote_max_window,
    .remote_max_packet = ch->remote_max_packet,
  };
  return EVSSH_OK;
}

/* ------------------------------------------------ public: global requests */

int conn_send_global_request(evssh_conn *c, const char *type, const void *extra, size_t extra_len,
                             evssh_global_reply_cb cb, void *ud) {
  if (!usable(c)) return EVSSH_ECLOSED;
  reply_slot slot = {NULL, cb, ud};
  if (cb && ring_push(&c->global_replies, &slot) != EVSSH_OK) return EVSSH_ENOMEM;
  evssh_buf *b = transport_begin(c->t, SSH_MSG_GLOBAL_REQUEST);
  int rc = b ? EVSSH_OK : EVSSH_ENOMEM;
  if (b) {
    rc = evssh_buf_put_cstring(b, type);
    if (!rc) rc = evssh_buf_put_bool(b, cb != NULL);
    if (!rc && extra_len) rc = buf_append(b, extra, extra_len);
    rc = end_or_abort(c, rc);
  }
  if (rc) {
    if (cb) ring_unpush(&c->global_replies);
    return rc;
  }
  LOG(c, EVSSH_LOG_DEBUG, "global request %s%s", type, cb ? " (reply wanted)" : "");
  return EVSSH_OK;
}

int conn_on_global_request(evssh_conn *c, const char *type, evssh_global_request_cb cb, void *ud) {
  return registry_set(&c->global_handlers, type, (registry_fn)cb, cb ? ud : NULL);
}

int conn_on_open_channel(evssh_conn *c, const char *type, evssh_open_channel_cb cb, void *ud) {
  return registry_set(&c->open_handlers, type, (registry_fn)cb, cb ? ud : NULL);
}

/* Owed replies leave strictly in the order the requests arrived. */
static int flush_owed(evssh_conn *c) {
  while (c->owed.count > 0) {
    owed_reply *o = ring_at(&c->owed, 0);
    if (!o->ready) break;
    int rc = EVSSH_OK;
    if (usable(c)) {
      evssh_buf body = EVSSH_BUF_INIT;
      body.data = o->data;   /* borrowed, not released here */
      body.len = o->len;
      rc = send_packet(c, o->success ? SSH_MSG_REQUEST_SUCCESS : SSH_MSG_REQUEST_FAILURE, o->success ? &body : NULL);
    }
    free(o->data);
    ring_pop(&c->owed, NULL);
    if (rc) return rc;
  }
  return EVSSH_OK;
}

static int owe_reply(evssh_conn *c, uint64_t *serial) {
  owed_reply o = {++c->owed_serial, false, false, NULL, 0};
  if (ring_push(&c->owed, &o) != EVSSH_OK) return EVSSH_ENOMEM;
  *serial = o.serial;
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

int conn_send_global_reply(evssh_conn *c, bool success, const void *extra, size_t len) {
  if (!c->started) return EVSSH_EINVAL;
  if (!usable(c)) return EVSSH_ECLOSED;
  for (size_t i = 0; i < c->owed.count; i++) {
    owed_reply *o = ring_at(&c->owed, i);
    if (o->ready) continue;
    int rc = settle_owed(o, success, extra, len);
    int rc2 = flush_owed(c);
    return rc ? rc : rc2;
  }
  return EVSSH_EINVAL; /* no request is waiting for an answer */
}

/* ------------------------------------------------------ incoming messages */

static int on_global_request(evssh_conn *c, evssh_reader *r) {
  const char *type;
  size_t type_len;
  bool want_reply;
  if (evssh_read_string(r, &type, &type_len) || evssh_read_bool(r, &want_reply))
    return proto_error(c, "malformed GLOBAL_REQUEST", 0);
  char name[128];
  printable_copy(name, sizeof name, type, type_len);
  LOG(c, EVSSH_LOG_DEBUG, "peer global request %s%s", name, want_reply ? " (reply wanted)" : "");
  const registry_entry *h = registry_find(&c->global_handlers, type, type_len);
  uint64_t serial = 0;
  if (want_reply) {
    int rc = owe_reply(c, &serial);
    if (rc) return rc;
  }
  int answer = EVSSH_REPLY_FAILURE;
  if (h) {
    /* the handler may unregister itself: hand it a type string it cannot free */
    char *type_copy = dup_string(h->key);
    if (!type_copy) return EVSSH_ENOMEM;
    evssh_global_request_cb cb = (evssh_global_request_cb)h->fn;
    evssh_reader data = *r;
    answer = cb(c->handle, type_copy, &data, want_reply, h->ud);
    free(type_copy);
  }
  if (!want_reply || c->aborted) return EVSSH_OK;
  if (answer != EVSSH_REPLY_SENT) {
    /* unless the handler answered through send_global_reply already */
    for (size_t i = 0; i < c->owed.count; i++) {
      owed_reply *o = ring_at(&c->owed, i);
      if (o->serial == serial) {
        if (!o->ready) settle_owed(o, answer == EVSSH_REPLY_SUCCESS, NULL, 0);
        break;
      }
    }
  }
  return flush_owed(c);
}

static int on_request_reply(evssh_conn *c, evssh_reader *r, bool success) {
  reply_slot slot;
  if (!ring_pop(&c->global_replies, &slot)) {
    LOG(c, EVSSH_LOG_INFO, "global request reply with no request outstanding; ignored");
    return EVSSH_OK;
  }
  evssh_reader response = success ? *r : reader_of(NULL, 0);
  if (slot.global) slot.global(c->handle, success, &response, slot.ud);
  return EVSSH_OK;
}

static int on_global_success(evssh_conn *c, evssh_reader *r) { return on_request_reply(c, r, true); }
static int on_global_failure(evssh_conn *c, evssh_reader *r) { return on_request_reply(c, r, false); }

/* Requests made before the peer's channel number was known, in order. */
static int send_early_requests(evssh_channel *ch) {
  while (ch->early_head) {
    early_request *e = ch->early_head;
    ch->early_head = e->next;
    if (!ch->early_head) ch->early_tail = NULL;
    int rc = EVSSH_OK;
    reply_slot slot = {e->cb, NULL, e->ud};
    if (e->cb) rc = ring_push(&ch->replies, &slot);
    if (!rc) rc = send_channel_request(ch, e->type, e->extra, e->extra_len, e->cb != NULL);
    free(e->type);
    free(e->extra);
    free(e);
    if (rc) return rc;
  }
  return EVSSH_OK;
}

/* The channel is confirmed both ways: held requests go out, then the
   window we want beyond what the open offered. */
static int channel_opened(evssh_channel *ch) {
  ch->state = CHAN_OPEN;
  ch->confirmed = true;
  int rc = send_early_requests(ch);
  if (!rc) rc = grant_window(ch, true);
  return rc;
}

static int refuse_open(evssh_conn *c, uint32_t sender, uint32_t reason, const char *why) {
  evssh_buf *b = transport_begin(c->t, SSH_MSG_CHANNEL_OPEN_FAILURE);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, sender);
  if (!rc) rc = evssh_buf_put_u32(b, reason);
  if (!rc) rc = evssh_buf_put_cstring(b, why);
  if (!rc) rc = evssh_buf_put_cstring(b, "");
  return end_or_abort(c, rc);
}

static int accept_open(evssh_conn *c, evssh_channel *ch, uint32_t sender) {
  evssh_buf *b = transport_begin(c->t, SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
  if (!b) return EVSSH_ENOMEM;
  int rc = evssh_buf_put_u32(b, sender);
  if (!rc) rc = evssh_buf_put_u32(b, ch->local_id);
  if (!rc) rc = evssh_buf_put_u32(b, ch->window_target);
  if (!rc) rc = evssh_buf_put_u32(b, CONN_MAX_PACKET);
  rc = end_or_abort(c, rc);
  if (rc) return rc;
  ch->local_window = ch->window_target;
  rc = channel_opened(ch);
  return rc ? rc : channel_flush(ch);
}

static int on_channel_open(evssh_conn *c, evssh_reader *r) {
  const char *type;
  size_t type_len;
  uint32_t sender, window, max_packet;
  if (evssh_read_string(r, &type, &type_len) || evssh_read_u32(r, &sender) || evssh_read_u32(r, &window) ||
      evssh_read_u32(r, &max_packet))
    return proto_error(c, "malformed CHANNEL_OPEN", 0);
  char name[128];
  printable_copy(name, sizeof name, type, type_len);
  const registry_entry *h = registry_find(&c->open_handlers, type, type_len);
  if (!h) {
    LOG(c, EVSSH_LOG_DEBUG, "peer channel open %s refused (unknown channel type)", name);
    return refuse_open(c, sender, 3, "unknown channel type");
  }
  if (c->peer_channels >= c->max_peer_channels) {
    LOG(c, EVSSH_LOG_INFO, "peer channel open %s refused: %zu channels the peer opened are open already",
        name, c->peer_channels);
    return refuse_open(c, sender, 4, "too many channels open");
  }
  evssh_channel *ch = channel_new(c, type, type_len);
  if (!ch) return refuse_open(c, sender, 4, "out of memory");
  ch->peer_opened = true;
  c->peer_channels++;
  ch->state = CHAN_ACCEPTING;
  ch->remote_id = sender;
  ch->remote_window = ch->remote_max_window = window;
  ch->remote_max_packet = max_packet;
  evssh_open_channel_cb cb = (evssh_open_channel_cb)h->fn;
  evssh_reader data = *r;
  int verdict = cb(c->handle, ch, &data, h->ud);
  if (c->aborted || ch->state == CHAN_DONE) {
    channel_retire(ch, false);
    return EVSSH_OK;
  }
  if (verdict == 0) {
    LOG(c, EVSSH_LOG_DEBUG, "channel %u: peer opened %s, accepted", ch->local_id, name);
    return accept_open(c, ch, sender);
  }
  LOG(c, EVSSH_LOG_DEBUG, "peer channel open %s refused by the program (%d)", name, verdict);
  channel_retire(ch, false);
  return refuse_open(c, sender, verdict > 0 ? (uint32_t)verdict : 2, "refused");
}

/* Find the channel a message is for. Only OPEN_CONFIRMATION and
   OPEN_FAILURE may come for a channel still opening; anything else for it
   (or for a channel the peer opened that we have not confirmed) would be
   answered to a remote number we do not know yet. */
static int read_recipient(evssh_conn *c, evssh_reader *r, const char *what, bool opening, evssh_channel **out) {
  uint32_t id;
  if (evssh_read_u32(r, &id)) return proto_error(c, what, 0);
  evssh_channel *ch = id < c->table_size ? c->table[id] : NULL;
  if (!ch || ch->state == CHAN_DONE)
    return conn_fail(c, EVSSH_EPROTO, "connection protocol: %s for channel %u, which is not open", what, id);
  if (opening != (ch->state == CHAN_OPENING)) {
    if (opening)
      return conn_fail(c, EVSSH_EPROTO, "connection protocol: %s for channel %u, which is already open", what, id);
    return conn_fail(c, EVSSH_EPROTO,
                     "connection protocol: %s for channel %u, which is not confirmed yet "
                     "(only OPEN_CONFIRMATION or OPEN_FAILURE may come first)", what, id);
  }
  if (ch->state == CHAN_ACCEPTING)
    return conn_fail(c, EVSSH_EPROTO, "connection protocol: %s for channel %u before we confirmed it", what, id);
  *out = ch;
  return EVSSH_OK;
}

static int on_open_confirmation(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_OPEN_CONFIRMATION", true, &ch);
  if (rc) return rc;
  uint32_t sender, window, max_packet;
  if (evssh_read_u32(r, &sender) || evssh_read_u32(r, &window) || evssh_read_u32(r, &max_packet))
    return proto_error(c, "malformed CHANNEL_OPEN_CONFIRMATION", ch->local_id);
  ch->remote_id = sender;
  ch->remote_window = ch->remote_max_window = window;
  ch->remote_max_packet = max_packet;
  LOG(c, EVSSH_LOG_DEBUG, "channel %u: open confirmed (peer %u, window %u, packet %u)", ch->local_id, sender,
      window, max_packet);
  rc = channel_opened(ch);
  if (rc) return rc;
  if (ch->on_open) ch->on_open(ch, ch->on_open_ud);
  if (ch->state == CHAN_DONE || c->aborted) return EVSSH_OK;
  return channel_flush(ch);
}

static int on_open_failure(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_OPEN_FAILURE", true, &ch);
  if (rc) return rc;
  uint32_t reason;
  const char *desc;
  size_t desc_len;
  if (evssh_read_u32(r, &reason) || evssh_read_string(r, &desc, &desc_len))
    return proto_error(c, "malformed CHANNEL_OPEN_FAILURE", ch->local_id);
  char text[256];
  printable_copy(text, sizeof text, desc, desc_len);
  LOG(c, ch->on_open_failed ? EVSSH_LOG_DEBUG : EVSSH_LOG_ERROR, "channel %u: open %s refused: %u %s",
      ch->local_id, ch->type, reason, text);
  if (ch->on_open_failed) ch->on_open_failed(ch, reason, text, ch->on_open_failed_ud);
  channel_retire(ch, false);
  return EVSSH_OK;
}

static int on_window_adjust(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_WINDOW_ADJUST", false, &ch);
  if (rc) return rc;
  uint32_t add;
  if (evssh_read_u32(r, &add)) return proto_error(c, "malformed CHANNEL_WINDOW_ADJUST", ch->local_id);
  uint64_t w = (uint64_t)ch->remote_window + add;
  ch->remote_window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
  return channel_flush(ch);
}

/* Shared by DATA and EXTENDED_DATA: limits, window accounting, delivery,
   then a grant for what the program took. */
static int deliver_data(evssh_conn *c, evssh_channel *ch, bool extended, uint32_t ext_type, const char *data,
                        size_t len) {
  if (len > CONN_MAX_PACKET)
    return conn_fail(c, EVSSH_EPROTO,
                     "connection protocol: channel %u: peer sent %zu bytes of data in one packet, more than "
                     "our maximum packet size %u", ch->local_id, len, CONN_MAX_PACKET);
  if (len > ch->local_window)
    return conn_fail(c, EVSSH_EPROTO,
                     "connection protocol: channel %u: peer sent %zu bytes with only %u left in the window",
                     ch->local_id, len, ch->local_window);
  ch->local_window -= (uint32_t)len;
  if (extended) {
    if (ch->on_ext_data) ch->on_ext_data(ch, ext_type, data, len, ch->on_ext_data_ud);
  } else {
    if (ch->on_data) ch->on_data(ch, data, len, ch->on_data_ud);
  }
  if (ch->state == CHAN_DONE) return EVSSH_OK;
  return grant_window(ch, false);
}

static int on_data(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_DATA", false, &ch);
  if (rc) return rc;
  const char *data;
  size_t len;
  if (evssh_read_string(r, &data, &len)) return proto_error(c, "malformed CHANNEL_DATA", ch->local_id);
  return deliver_data(c, ch, false, 0, data, len);
}

static int on_extended_data(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_EXTENDED_DATA", false, &ch);
  if (rc) return rc;
  uint32_t type;
  const char *data;
  size_t len;
  if (evssh_read_u32(r, &type) || evssh_read_string(r, &data, &len))
    return proto_error(c, "malformed CHANNEL_EXTENDED_DATA", ch->local_id);
  return deliver_data(c, ch, true, type, data, len);
}

static int on_eof(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_EOF", false, &ch);
  if (rc) return rc;
  if (ch->eof_received) {
    /* on_eof runs once; a repeated EOF changes nothing (OpenSSH ignores it too) */
    LOG(c, EVSSH_LOG_INFO, "channel %u: second EOF from peer ignored", ch->local_id);
    return EVSSH_OK;
  }
  ch->eof_received = true;
  LOG(c, EVSSH_LOG_DEBUG, "channel %u: eof from peer", ch->local_id);
  if (ch->on_eof) ch->on_eof(ch, ch->on_eof_ud);
  run_held_requests(ch);
  return EVSSH_OK;
}

static int on_close(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_CLOSE", false, &ch);
  if (rc) return rc;
  ch->close_received = true;
  LOG(c, EVSSH_LOG_DEBUG, "channel %u: close from peer", ch->local_id);
  if (!ch->close_sent) {
    /* the peer is gone from this channel: what we still had queued cannot
       be delivered any more; answer the close at once */
    rc = send_simple(c, SSH_MSG_CHANNEL_CLOSE, ch->remote_id);
    ch->close_sent = true;
  }
  run_held_requests(ch);
  channel_retire(ch, true);
  return rc;
}

/* Record what the library itself keeps from an exit report. Returns false
   when the report is malformed. out (may be NULL) gets it re-encoded with
   nothing after its fields. */
static bool record_report(evssh_channel *ch, bool status, evssh_reader r, evssh_buf *out) {
  if (status) {
    uint32_t value;
    if (evssh_read_u32(&r, &value) != EVSSH_OK) return false;
    ch->has_exit_status = true;
    ch->exit_status = (int)value;
    return !out || evssh_buf_put_u32(out, value) == EVSSH_OK;
  }
  const char *name, *msg = "", *lang = "";
  size_t nl, ml = 0, ll = 0;
  bool core = false;
  if (evssh_read_string(&r, &name, &nl) != EVSSH_OK || memchr(name, 0, nl)) return false;
  if (evssh_read_bool(&r, &core) == EVSSH_OK && evssh_read_string(&r, &msg, &ml) == EVSSH_OK)
    evssh_read_string(&r, &lang, &ll);
  /* RFC 4254 names signals without "SIG"; some servers add it anyway */
  if (nl >= 3 && memcmp(name, "SIG", 3) == 0) {
    name += 3;
    nl -= 3;
  }
  char *copy = malloc(nl + 1);
  if (!copy) return false;
  memcpy(copy, name, nl);
  copy[nl] = 0;
  free(ch->exit_signal);
  ch->exit_signal = copy;
  if (!out) return true;
  return evssh_buf_put_string(out, name, nl) == EVSSH_OK && evssh_buf_put_bool(out, core) == EVSSH_OK &&
         evssh_buf_put_string(out, msg, ml) == EVSSH_OK && evssh_buf_put_string(out, lang, ll) == EVSSH_OK;
}

/* Run the on_request handler for type, if any; returns its answer. */
static int run_request_handler(evssh_channel *ch, const char *type, size_t type_len, evssh_reader data,
                               bool want_reply) {
  const registry_entry *h = registry_find(&ch->handlers, type, type_len);
  if (!h) return EVSSH_REPLY_FAILURE;
  /* the handler may unregister itself: hand it a type string it cannot free */
  char small[64];
  char *type_copy = type_len < sizeof small ? small : malloc(type_len + 1);
  if (!type_copy) return EVSSH_REPLY_FAILURE;
  memcpy(type_copy, h->key, type_len + 1);
  evssh_request_cb cb = (evssh_request_cb)h->fn;
  int answer = cb(ch, type_copy, &data, want_reply, h->ud);
  if (type_copy != small) free(type_copy);
  return answer;
}

static void deliver_held(evssh_channel *ch, held_report *h, const char *type) {
  if (!h->present || ch->state == CHAN_DONE) return;
  h->present = false;
  evssh_buf data = h->data;   /* taken: a nested loop may hold a new one */
  buf_init(&h->data);
  run_request_handler(ch, type, strlen(type), reader_of(buf_ptr(&data), buf_avail(&data)), false);
  buf_release(&data);
}

/* Deliver held exit reports (after EOF, or before close when the peer never
   sent EOF). */
static void run_held_requests(evssh_channel *ch) {
  deliver_held(ch, &ch->held_status, "exit-status");
  deliver_held(ch, &ch->held_signal, "exit-signal");
}

static int on_channel_request(evssh_conn *c, evssh_reader *r) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, "CHANNEL_REQUEST", false, &ch);
  if (rc) return rc;
  const char *type;
  size_t type_len;
  bool want_reply;
  if (evssh_read_string(r, &type, &type_len) || evssh_read_bool(r, &want_reply))
    return proto_error(c, "malformed CHANNEL_REQUEST", ch->local_id);
  char name[128];
  printable_copy(name, sizeof name, type, type_len);
  LOG(c, EVSSH_LOG_DEBUG, "channel %u: peer request %s%s", ch->local_id, name, want_reply ? " (reply wanted)" : "");
  bool status = string_is(type, type_len, "exit-status");
  bool exit_report = status || string_is(type, type_len, "exit-signal");
  if (exit_report) {
    held_report *h = status ? &ch->held_status : &ch->held_signal;
    /* the latest of each kind replaces an earlier one: bounded */
    buf_reset(&h->data);
    if (!want_reply && !ch->eof_received) {
      h->present = record_report(ch, status, *r, &h->data);
      return EVSSH_OK;
    }
    /* delivered now: one still held is older and must not follow it */
    h->present = false;
    record_report(ch, status, *r, NULL);
  }
  int answer = run_request_handler(ch, type, type_len, *r, want_reply);
  if (!want_reply || answer == EVSSH_REPLY_SENT) return EVSSH_OK;
  if (ch->state == CHAN_DONE || ch->close_sent || !usable(c)) return EVSSH_OK;
  return send_simple(c, answer == EVSSH_REPLY_SUCCESS ? SSH_MSG_CHANNEL_SUCCESS : SSH_MSG_CHANNEL_FAILURE,
                     ch->remote_id);
}

static int on_channel_reply(evssh_conn *c, evssh_reader *r, bool success) {
  evssh_channel *ch;
  int rc = read_recipient(c, r, success ? "CHANNEL_SUCCESS" : "CHANNEL_FAILURE", false, &ch);
  if (rc) return rc;
  reply_slot slot;
  if (!ring_pop(&ch->replies, &slot)) {
    LOG(c, EVSSH_LOG_INFO, "channel %u: reply with no request outstanding; ignored", ch->local_id);
    return EVSSH_OK;
  }
  if (slot.channel) slot.channel(ch, success, slot.ud);
  return EVSSH_OK;
}

static int on_channel_success(evssh_conn *c, evssh_reader *r) { return on_channel_reply(c, r, true); }
static int on_channel_failure(evssh_conn *c, evssh_reader *r) { return on_channel_reply(c, r, false); }

typedef int (*message_handler)(evssh_conn *c, evssh_reader *body);

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

int conn_handle_packet(evssh_conn *c, uint8_t msg, evssh_reader *body, uint32_t seq) {
  if (!usable(c)) return EVSSH_OK;
  c->last_received_ms = base_now_ms();
  c->probes_unanswered = 0;
  message_handler h = dispatch[msg];
  if (!h) {
    /* RFC 4253 11.4: every unrecognized message gets UNIMPLEMENTED, in order */
    LOG(c, EVSSH_LOG_DEBUG, "connection layer: message %u not recognized; answering UNIMPLEMENTED", msg);
    unsigned char s[4];
    put_u32(s, seq);
    return transport_send(c->t, SSH_MSG_UNIMPLEMENTED, s, sizeof s);
  }
  LOG(c, EVSSH_LOG_PACKET, "connection layer: message %u, %zu bytes", msg, body->left);
  return h(c, body);
}

/* ------------------------------------------------------------- loop seams */

static bool wants_flush(const evssh_channel *ch) {
  return ch->state == CHAN_OPEN &&
         (ch->out_head || (ch->eof_wanted && !ch->eof_sent) || (ch->close_wanted && !ch->close_sent));
}

/* Every channel with something to send gets a turn. When the transport's
   high-water mark ends a pass, the next pass starts after the channel that
   used the budget up, so one busy channel cannot starve the others. */
static int flush_all_channels(evssh_conn *c) {
  size_t n = c->table_size;
  if (n == 0) return EVSSH_OK;
  size_t start = c->flush_start % n;
  for (size_t k = 0; k < n && !c->aborted; k++) {
    size_t i = (start + k) % n;
    if (i >= c->table_size) continue;
    evssh_channel *ch = c->table[i];
    if (!ch || !wants_flush(ch)) continue;
    int rc = channel_flush(ch);
    if (rc) return rc;
    if (!transport_takes_data(c)) {
      c->flush_start = i + 1;
      break;
    }
  }
  return EVSSH_OK;
}

/* on_drain callbacks for channels whose queue fell low; what they queue is
   flushed in the same pass. */
static int run_drains(evssh_conn *c) {
  for (size_t i = 0; i < c->table_size && !c->aborted; i++) {
    evssh_channel *ch = c->table[i];
    if (!ch || ch->state != CHAN_OPEN || !ch->on_drain || !ch->drain_armed) continue;
    if (ch->out_bytes > ch->drain_low_water) continue;
    ch->drain_armed = false;
    ch->on_drain(ch, ch->on_drain_ud);
    if (ch->state == CHAN_OPEN && !c->aborted && wants_flush(ch)) {
      int rc = channel_flush(ch);
      if (rc) return rc;
    }
  }
  return EVSSH_OK;
}

int conn_flush(evssh_conn *c) {
  if (!usable(c)) return EVSSH_OK;
  int rc = flush_all_channels(c);
  if (!rc && !c->aborted) rc = run_drains(c);
  return rc;
}

void conn_run_on_process(evssh_conn *c) {
  if (!usable(c)) return;
  /* the table may grow or lose entries under a callback: index, re-read */
  for (size_t i = 0; i < c->table_size && !c->aborted; i++) {
    evssh_channel *ch = c->table[i];
    if (ch && ch->state == CHAN_OPEN && ch->on_process) ch->on_process(ch, ch->on_process_ud);
  }
}

uint64_t conn_moved(const evssh_conn *c) { return c ? c->moved : 0; }

bool conn_has_on_process(const evssh_conn *c) {
  for (size_t i = 0; usable(c) && i < c->table_size; i++) {
    const evssh_channel *ch = c->table[i];
    if (ch && ch->state == CHAN_OPEN && ch->on_process) return true;
  }
  return false;
}

bool conn_has_work(const evssh_conn *c) {
  if (!usable(c) || !transport_takes_data(c)) return false;
  for (size_t i = 0; i < c->table_size; i++) {
    const evssh_channel *ch = c->table[i];
    if (!ch || ch->state != CHAN_OPEN || ch->close_sent) continue;
    if (ch->out_head ? ch->remote_window > 0 : ((ch->eof_wanted && !ch->eof_sent) || ch->close_wanted))
      return true;
    if (ch->on_drain && ch->drain_armed && ch->out_bytes <= ch->drain_low_water) return true;
  }
  return false;
}

bool conn_busy(const evssh_conn *c, bool include_invisible) {
  if (!c) return false;
  for (size_t i = 0; i < c->table_size; i++) {
    const evssh_channel *ch = c->table[i];
    if (!ch || ch->state == CHAN_DONE) continue;
    /* Net::SSH: a channel with ch[:invisible] set does not keep loop going */
    if (include_invisible || !evssh_channel_property(ch, "invisible")) return true;
  }
  return false;
}

bool conn_close_all(evssh_conn *c) {
  if (!c || !usable(c)) return true;
  bool all_done = true;
  for (size_t i = 0; i < c->table_size; i++) {
    evssh_channel *ch = c->table[i];
    /* retired, its on_close running (a program closing the session from
       the last channel's on_close): closed. Retired but still in its reply
       callbacks: on_close is still to come, before the session's. */
    if (!ch || (ch->state == CHAN_DONE && ch->closing_told)) continue;
    all_done = false;
    if (!ch->close_wanted) {
      ch->close_wanted = true;
      channel_flush(ch);
    }
  }
  return all_done;
}

void conn_abort(evssh_conn *c, int code) {
  if (!c || c->aborted) return;
  c->aborted = true;
  c->abort_code = code < 0 ? code : EVSSH_ECLOSED;
  reply_slot slot;
  while (ring_pop(&c->global_replies, &slot)) {
    evssh_reader none = reader_of(NULL, 0);
    if (slot.global) slot.global(c->handle, false, &none, slot.ud);
  }
  for (size_t i = 0; i < c->table_size; i++) {
    evssh_channel *ch = c->table[i];
    if (!ch || ch->state == CHAN_DONE) continue;
    /* a channel still opening ends as a refused open does: on_open_failed
       is its last callback, without on_close (or on_close when the
       program set no on_open_failed) */
    bool refused = ch->state == CHAN_OPENING && ch->on_open_failed;
    if (refused) ch->on_open_failed(ch, 2, "session closed", ch->on_open_failed_ud);
    run_held_requests(ch);
    channel_retire(ch, !refused);
  }
  free_owed(c);
}

/* ---------------------------------------------------------------- keepalive */

static bool keepalive_enabled(const evssh_conn *c) { return c->alive_interval_s > 0 && usable(c); }

static int64_t keepalive_due_ms(const evssh_conn *c) {
  int64_t base = c->last_received_ms > c->last_probe_ms ? c->last_received_ms : c->last_probe_ms;
  return base + (int64_t)c->alive_interval_s * 1000;
}

int conn_timeout_ms(const evssh_conn *c) {
  if (!c || !keepalive_enabled(c)) return -1;
  int64_t left = keepalive_due_ms(c) - base_now_ms();
  if (left <= 0) return 0;
  return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static void keepalive_reply(evssh_session *s, bool success, evssh_reader *response, void *ud) {
  /* any answer, even REQUEST_FAILURE, proves the peer alive; the packet
     itself already reset the count in conn_handle_packet */
}

int conn_timers(evssh_conn *c) {
  if (!c || !keepalive_enabled(c)) return EVSSH_OK;
  int64_t now = base_now_ms();
  if (now < keepalive_due_ms(c)) return EVSSH_OK;
  int max = c->alive_count_max > 0 ? c->alive_count_max : 3;
  if (c->probes_unanswered >= max)
    return conn_fail(c, EVSSH_ETIMEOUT, "no answer from the server to %d keepalives (%d s apart)",
                     c->probes_unanswered, c->alive_interval_s);
  c->probes_unanswered++;
  c->last_probe_ms = now;
  LOG(c, EVSSH_LOG_DEBUG, "keepalive %d of %d", c->probes_unanswered, max);
  return conn_send_global_request(c, "keepalive@openssh.com", NULL, 0, keepalive_reply, NULL);
}
