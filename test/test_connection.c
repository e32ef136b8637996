/* Unit tests of the connection layer (connection.c) and of the drivers and
 * services built on the public API (loop.c, exec.c) against a fake
 * transport and a fake session: the transport_* functions the layer calls
 * and the evssh_session_* calls loop.c and exec.c make are defined here,
 * the session's over the real connection layer. Every packet the layer
 * sends is captured and handed to a small scripted peer (a toy sshd:
 * channel open, exec, cat, window accounting, global requests); what the
 * peer answers is fed back through conn_handle_packet. Tests that need
 * exact wire behaviour inject packets directly and inspect what was sent. */
#include "connection.h"

#include "buf.h"
#include "session.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------ fake transport */

typedef struct packet {
  struct packet *next;
  unsigned char *data; /* message byte first */
  size_t len;
} packet;

typedef struct plist { packet *head, *tail; size_t count; } plist;

struct evssh_transport {
  evssh_buf cur;
  bool open_packet;
  plist sent;          /* what the layer sent, not yet seen by the peer */
  size_t pending_out;  /* what transport_pending_out reports */
  bool kex_running;
  bool count_pending;  /* grow pending_out with every packet queued */
  int aborted;         /* packets begun and discarded */
  size_t max_payload;
  int failed;
};

static void plist_push(plist *l, const void *data, size_t len) {
  packet *p = calloc(1, sizeof *p);
  ck_assert_ptr_nonnull(p);
  p->data = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(p->data);
  memcpy(p->data, data, len);
  p->len = len;
  if (l->tail) l->tail->next = p; else l->head = p;
  l->tail = p;
  l->count++;
}

static packet *plist_pop(plist *l) {
  packet *p = l->head;
  if (!p) return NULL;
  l->head = p->next;
  if (!l->head) l->tail = NULL;
  l->count--;
  return p;
}

static void packet_free(packet *p) {
  if (p) { free(p->data); free(p); }
}

static void plist_clear(plist *l) {
  packet *p;
  while ((p = plist_pop(l))) packet_free(p);
}

evssh_buf *transport_begin(evssh_transport *t, uint8_t msg) {
  ck_assert(!t->open_packet);
  if (t->failed) return NULL;
  buf_reset(&t->cur);
  t->open_packet = true;
  if (evssh_buf_put_u8(&t->cur, msg)) return NULL;
  return &t->cur;
}

int transport_end(evssh_transport *t) {
  ck_assert(t->open_packet);
  t->open_packet = false;
  ck_assert_uint_le(buf_avail(&t->cur) - 1, t->max_payload);
  plist_push(&t->sent, buf_ptr(&t->cur), buf_avail(&t->cur));
  if (t->count_pending) t->pending_out += buf_avail(&t->cur);
  return EVSSH_OK;
}

int transport_send(evssh_transport *t, uint8_t msg, const void *body, size_t len) {
  evssh_buf *b = transport_begin(t, msg);
  if (!b) return EVSSH_ENOMEM;
  if (len) buf_append(b, body, len);
  return transport_end(t);
}

size_t transport_pending_out(const evssh_transport *t) { return t->pending_out; }
bool transport_kex_running(const evssh_transport *t) { return t->kex_running; }
size_t transport_max_payload(const evssh_transport *t) { return t->max_payload; }
bool transport_dispatching(const evssh_transport *t) { return false; }
uint32_t transport_last_seq(const evssh_transport *t) { return 4242; }

void transport_abort(evssh_transport *t) {
  ck_assert(t->open_packet);
  t->open_packet = false;
  t->aborted++;
}

/* ------------------------------------------------------- fake session */

static evssh_transport fake_t;
static char last_error[2048];
static plist inbound;          /* peer -> us, not yet dispatched */
static int handle_events_calls;

typedef struct fake_listener { int fd, events; evssh_io_cb cb; void *ud; } fake_listener;

struct evssh_session {
  evssh_conn *conn;
  evssh_diag diag;
  bool closed;
  int depth;
  size_t exec_limit;
  fake_listener listeners[8];
  size_t nlisteners;
};

static evssh_session *S;

/* what session.c does when a layer fails: record, end, abort the channels */
static void fake_fail(evssh_session *s, int code, const char *msg) {
  snprintf(last_error, sizeof last_error, "%s", msg);
  if (s->diag.error_code == 0) s->diag.error_code = code;
  s->closed = true;
  s->depth++;
  conn_abort(s->conn, code);
  s->depth--;
}

static void on_conn_fail(void *ctx, int code, const char *message) { fake_fail(ctx, code, message); }
static const conn_events fake_events = {on_conn_fail, NULL};

bool evssh_session_closed(const evssh_session *s) { return !s || s->closed; }
bool evssh_session_connecting(const evssh_session *s) { return false; }
bool evssh_session_busy(const evssh_session *s, bool inv) { return !s->closed && conn_busy(s->conn, inv); }
bool evssh_session_has_on_process(const evssh_session *s) { return conn_has_on_process(s->conn); }
const char *evssh_session_error(const evssh_session *s) { return last_error; }
size_t evssh_session_exec_limit(const evssh_session *s) { return s->exec_limit; }
evssh_diag *session_diag(evssh_session *s) { return &s->diag; }
void session_note(evssh_session *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}
int evssh_session_close_async(evssh_session *s, evssh_session_cb cb, void *ud) {
  fake_fail(s, EVSSH_ECLOSED, "session closed");
  if (cb) cb(s, EVSSH_OK, ud);
  return EVSSH_OK;
}
evssh_channel *evssh_session_open_channel_type(evssh_session *s, const char *type, const void *extra,
                                               size_t extra_len, evssh_channel_cb on_open, void *ud) {
  return s->closed ? NULL : conn_open_channel(s->conn, type, extra, extra_len, on_open, ud);
}
evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud) {
  return evssh_session_open_channel_type(s, "session", NULL, 0, on_open, ud);
}
int evssh_session_send_global_request(evssh_session *s, const char *type, const void *extra, size_t len,
                                      evssh_global_reply_cb cb, void *ud) {
  return conn_send_global_request(s->conn, type, extra, len, cb, ud);
}
int evssh_session_on_global_request(evssh_session *s, const char *type, evssh_global_request_cb cb, void *ud) {
  return conn_on_global_request(s->conn, type, cb, ud);
}
int evssh_session_send_global_reply(evssh_session *s, bool ok, const void *extra, size_t len) {
  return conn_send_global_reply(s->conn, ok, extra, len);
}
int evssh_session_on_open_channel(evssh_session *s, const char *type, evssh_open_channel_cb cb, void *ud) {
  return conn_on_open_channel(s->conn, type, cb, ud);
}
int evssh_session_fd(const evssh_session *s) { return -1; }
int evssh_session_events(const evssh_session *s) { return 0; }

int evssh_session_listen_to(evssh_session *s, int fd, int events, evssh_io_cb cb, void *ud) {
  ck_assert_uint_lt(s->nlisteners, 8);
  s->listeners[s->nlisteners++] = (fake_listener){fd, events, cb, ud};
  return EVSSH_OK;
}
int evssh_session_stop_listening_to(evssh_session *s, int fd) {
  for (size_t i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].fd == fd) {
      s->listeners[i] = s->listeners[--s->nlisteners];
      return EVSSH_OK;
    }
  return EVSSH_EINVAL;
}
size_t evssh_session_listeners(const evssh_session *s, int *fds, int *events, size_t max) {
  for (size_t i = 0; i < s->nlisteners && i < max; i++) {
    fds[i] = s->listeners[i].fd;
    events[i] = s->listeners[i].events;
  }
  return s->nlisteners;
}
int evssh_session_handle_listener(evssh_session *s, int fd, int revents) {
  for (size_t i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].fd == fd) {
      s->depth++;
      s->listeners[i].cb(s, fd, revents, s->listeners[i].ud);
      s->depth--;
      return EVSSH_OK;
    }
  return EVSSH_EINVAL;
}

static void peer_run(void);

/* Hand every inbound packet to the layer, as the session's inbox would. */
static int deliver_inbound(void) {
  packet *p;
  while (!S->closed && (p = plist_pop(&inbound))) {
    evssh_reader r = reader_of(p->data + 1, p->len - 1);
    int rc = conn_handle_packet(S->conn, p->data[0], &r, 4242);
    packet_free(p);
    if (rc < 0) return rc;
  }
  return EVSSH_OK;
}

static bool peer_is_mute(void);

int evssh_session_timeout(const evssh_session *s) {
  if (s->closed) return -1;
  if (inbound.count || (fake_t.sent.count && !peer_is_mute()) || conn_has_work(s->conn)) return 0;
  return conn_timeout_ms(s->conn);
}

/* One iteration as session.c runs it: "I/O" (the peer reads what we sent
   and answers), dispatch, on_process, flush, timers. */
int evssh_session_handle_events(evssh_session *s, int revents) {
  if (s->closed) {
    conn_abort(s->conn, s->diag.error_code);
    return s->diag.error_code;
  }
  handle_events_calls++;
  if (s->depth == 0) conn_reap(s->conn);
  s->depth++;
  peer_run();
  int rc = deliver_inbound();
  if (rc >= 0 && !s->closed) conn_run_on_process(s->conn);
  if (rc >= 0 && !s->closed) rc = conn_flush(s->conn);
  if (rc >= 0 && !s->closed) rc = conn_timers(s->conn);
  s->depth--;
  if (s->closed) return s->diag.error_code;
  return rc < 0 ? rc : EVSSH_OK;
}

/* --------------------------------------------------------- the toy peer */

typedef struct peer_channel {
  bool used;
  uint32_t client_id;        /* the client's number for it */
  uint32_t window_to_client; /* how much we may still send to the client */
  uint32_t window_from_client;
  bool is_cat, eof_from_client, closed_sent, close_from_client;
  evssh_buf backlog;         /* output waiting for client window */
  bool finish_after_backlog; /* send eof, exit-status, close once drained */
  uint32_t exit_status;
} peer_channel;

static struct {
  peer_channel ch[256];
  uint32_t initial_window;   /* the peer's window toward the client */
  uint32_t max_packet;
  bool auto_adjust;          /* grant window back as data arrives */
  bool mute;                 /* a dead peer: reads nothing, answers nothing */
  bool refuse_opens;
  size_t received_total;
  uint64_t received_sum;
  plist seen;                /* every packet the peer read, for inspection */
  bool keep_seen;
} peer;

static void peer_reset(void) {
  for (size_t i = 0; i < 256; i++) buf_release(&peer.ch[i].backlog);
  plist_clear(&peer.seen);
  memset(&peer, 0, sizeof peer);
  peer.initial_window = 2 * 1024 * 1024;
  peer.max_packet = 32768;
  peer.auto_adjust = true;
}

static void in_packet(uint8_t msg, const evssh_buf *body) {
  unsigned char *tmp = malloc(1 + buf_avail(body));
  ck_assert_ptr_nonnull(tmp);
  tmp[0] = msg;
  if (buf_avail(body)) memcpy(tmp + 1, buf_ptr(body), buf_avail(body));
  plist_push(&inbound, tmp, 1 + buf_avail(body));
  free(tmp);
}

static void in_u32(uint8_t msg, uint32_t a) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, a);
  in_packet(msg, &b);
  buf_release(&b);
}

static void peer_send_data(peer_channel *pc, uint32_t ext, const void *data, size_t len) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, pc->client_id);
  if (ext) evssh_buf_put_u32(&b, ext);
  evssh_buf_put_string(&b, data, len);
  in_packet(ext ? SSH_MSG_CHANNEL_EXTENDED_DATA : SSH_MSG_CHANNEL_DATA, &b);
  buf_release(&b);
  pc->window_to_client -= (uint32_t)len;
}

static void peer_exit_status(peer_channel *pc, uint32_t status) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, pc->client_id);
  evssh_buf_put_cstring(&b, "exit-status");
  evssh_buf_put_bool(&b, false);
  evssh_buf_put_u32(&b, status);
  in_packet(SSH_MSG_CHANNEL_REQUEST, &b);
  buf_release(&b);
}

static void peer_finish(peer_channel *pc) {
  in_u32(SSH_MSG_CHANNEL_EOF, pc->client_id);
  peer_exit_status(pc, pc->exit_status);
  in_u32(SSH_MSG_CHANNEL_CLOSE, pc->client_id);
  pc->closed_sent = true;
}

/* Output respects the client's window; what does not fit waits. */
static void peer_pump(peer_channel *pc) {
  while (buf_avail(&pc->backlog) && pc->window_to_client > 0 && !pc->closed_sent) {
    size_t n = buf_avail(&pc->backlog);
    if (n > pc->window_to_client) n = pc->window_to_client;
    if (n > 32768) n = 32768;
    peer_send_data(pc, 0, buf_ptr(&pc->backlog), n);
    buf_consume(&pc->backlog, n);
  }
  if (!buf_avail(&pc->backlog) && pc->finish_after_backlog && !pc->closed_sent) peer_finish(pc);
}

static void peer_exec(peer_channel *pc, const char *cmd, size_t len) {
  if (len == 3 && memcmp(cmd, "cat", 3) == 0) {
    pc->is_cat = true;
    return;
  }
  if (len >= 4 && memcmp(cmd, "big ", 4) == 0) {
    /* "big N": N bytes of a pattern on stdout */
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)(len - 4), cmd + 4);   /* the packet's string is not NUL-terminated */
    size_t n = strtoul(num, NULL, 10);
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)(i * 7 + 3);
      buf_append(&pc->backlog, &c, 1);
    }
    pc->finish_after_backlog = true;
    peer_pump(pc);
    return;
  }
  if (len == 4 && memcmp(cmd, "kill", 4) == 0) {
    evssh_buf b = EVSSH_BUF_INIT;
    evssh_buf_put_u32(&b, pc->client_id);
    evssh_buf_put_cstring(&b, "exit-signal");
    evssh_buf_put_bool(&b, false);
    evssh_buf_put_cstring(&b, "TERM");
    evssh_buf_put_bool(&b, false);
    evssh_buf_put_cstring(&b, "");
    evssh_buf_put_cstring(&b, "");
    in_u32(SSH_MSG_CHANNEL_EOF, pc->client_id);
    in_packet(SSH_MSG_CHANNEL_REQUEST, &b);
    in_u32(SSH_MSG_CHANNEL_CLOSE, pc->client_id);
    pc->closed_sent = true;
    buf_release(&b);
    return;
  }
  if (len == 4 && memcmp(cmd, "hang", 4) == 0) return;
  if (len == 5 && memcmp(cmd, "early", 5) == 0) {
    /* as sshd often does: the exit status ahead of the last output */
    peer_exit_status(pc, 4);
    peer_send_data(pc, 0, "late", 4);
    in_u32(SSH_MSG_CHANNEL_EOF, pc->client_id);
    in_u32(SSH_MSG_CHANNEL_CLOSE, pc->client_id);
    pc->closed_sent = true;
    return;
  }
  if (len == 5 && memcmp(cmd, "noeof", 5) == 0) {
    peer_exit_status(pc, 5);
    in_u32(SSH_MSG_CHANNEL_CLOSE, pc->client_id);
    pc->closed_sent = true;
    return;
  }
  /* anything else: "out:<cmd>" on stdout, "err:<cmd>" on stderr, status len */
  char out[300];
  int n = snprintf(out, sizeof out, "out:%.*s", (int)len, cmd);
  peer_send_data(pc, 0, out, (size_t)n);
  n = snprintf(out, sizeof out, "err:%.*s", (int)len, cmd);
  peer_send_data(pc, 1, out, (size_t)n);
  pc->exit_status = (uint32_t)len;
  peer_finish(pc);
}

static void peer_handle(const unsigned char *p, size_t len) {
  evssh_reader r = reader_of(p + 1, len - 1);
  uint8_t msg = p[0];
  uint32_t id;
  const char *str;
  size_t slen;
  bool want;
  switch (msg) {
  case SSH_MSG_CHANNEL_OPEN: {
    uint32_t sender, window, maxp;
    ck_assert_int_eq(evssh_read_string(&r, &str, &slen), 0);
    ck_assert_int_eq(evssh_read_u32(&r, &sender), 0);
    ck_assert_int_eq(evssh_read_u32(&r, &window), 0);
    ck_assert_int_eq(evssh_read_u32(&r, &maxp), 0);
    ck_assert_uint_ge(window, 2u * 1024 * 1024);
    ck_assert_uint_eq(maxp, 32768);
    evssh_buf b = EVSSH_BUF_INIT;
    evssh_buf_put_u32(&b, sender);
    if (peer.refuse_opens) {
      evssh_buf_put_u32(&b, 1);
      evssh_buf_put_cstring(&b, "administratively prohibited");
      evssh_buf_put_cstring(&b, "");
      in_packet(SSH_MSG_CHANNEL_OPEN_FAILURE, &b);
    } else {
      ck_assert_uint_lt(sender, 256);
      peer_channel *pc = &peer.ch[sender];
      ck_assert(!pc->used);
      buf_release(&pc->backlog);
      memset(pc, 0, sizeof *pc);
      pc->used = true;
      pc->client_id = sender;
      pc->window_to_client = window;
      pc->window_from_client = peer.initial_window;
      evssh_buf_put_u32(&b, 1000 + sender);
      evssh_buf_put_u32(&b, peer.initial_window);
      evssh_buf_put_u32(&b, peer.max_packet);
      in_packet(SSH_MSG_CHANNEL_OPEN_CONFIRMATION, &b);
    }
    buf_release(&b);
    break;
  }
  case SSH_MSG_CHANNEL_REQUEST: {
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    ck_assert_uint_ge(id, 1000);
    peer_channel *pc = &peer.ch[id - 1000];
    ck_assert(pc->used);
    ck_assert_int_eq(evssh_read_string(&r, &str, &slen), 0);
    ck_assert_int_eq(evssh_read_bool(&r, &want), 0);
    bool ok = false;
    const char *cmd = NULL;
    size_t cmdlen = 0;
    if (slen == 4 && memcmp(str, "exec", 4) == 0) {
      ck_assert_int_eq(evssh_read_string(&r, &cmd, &cmdlen), 0);
      ok = !(cmdlen == 6 && memcmp(cmd, "refuse", 6) == 0);
    }
    if (want) in_u32(ok ? SSH_MSG_CHANNEL_SUCCESS : SSH_MSG_CHANNEL_FAILURE, pc->client_id);
    if (ok && cmd) peer_exec(pc, cmd, cmdlen);
    break;
  }
  case SSH_MSG_CHANNEL_DATA: {
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    peer_channel *pc = &peer.ch[id - 1000];
    ck_assert(pc->used);
    ck_assert(!pc->eof_from_client);
    ck_assert_int_eq(evssh_read_string(&r, &str, &slen), 0);
    ck_assert_uint_le(slen, peer.max_packet);
    ck_assert_uint_le(slen, pc->window_from_client); /* the client kept to our window */
    pc->window_from_client -= (uint32_t)slen;
    peer.received_total += slen;
    for (size_t i = 0; i < slen; i++) peer.received_sum = peer.received_sum * 31 + (unsigned char)str[i];
    if (peer.auto_adjust && pc->window_from_client < peer.initial_window / 2) {
      evssh_buf b = EVSSH_BUF_INIT;
      evssh_buf_put_u32(&b, pc->client_id);
      evssh_buf_put_u32(&b, peer.initial_window - pc->window_from_client);
      pc->window_from_client = peer.initial_window;
      in_packet(SSH_MSG_CHANNEL_WINDOW_ADJUST, &b);
      buf_release(&b);
    }
    if (pc->is_cat) {
      buf_append(&pc->backlog, str, slen);
      peer_pump(pc);
    }
    break;
  }
  case SSH_MSG_CHANNEL_WINDOW_ADJUST: {
    uint32_t add;
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    ck_assert_int_eq(evssh_read_u32(&r, &add), 0);
    peer_channel *pc = &peer.ch[id - 1000];
    ck_assert((uint64_t)pc->window_to_client + add <= UINT32_MAX);
    pc->window_to_client += add;
    peer_pump(pc);
    break;
  }
  case SSH_MSG_CHANNEL_EOF: {
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    peer_channel *pc = &peer.ch[id - 1000];
    ck_assert(!pc->eof_from_client);
    pc->eof_from_client = true;
    if (pc->is_cat) {
      pc->finish_after_backlog = true;
      peer_pump(pc);
    }
    break;
  }
  case SSH_MSG_CHANNEL_CLOSE: {
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    peer_channel *pc = &peer.ch[id - 1000];
    ck_assert(!pc->close_from_client);
    pc->close_from_client = true;
    if (!pc->closed_sent) {
      in_u32(SSH_MSG_CHANNEL_CLOSE, pc->client_id);
      pc->closed_sent = true;
    }
    pc->used = false;
    break;
  }
  case SSH_MSG_GLOBAL_REQUEST: {
    ck_assert_int_eq(evssh_read_string(&r, &str, &slen), 0);
    ck_assert_int_eq(evssh_read_bool(&r, &want), 0);
    if (!want) break;
    if (slen == 13 && memcmp(str, "tcpip-forward", 13) == 0) {
      const char *addr;
      size_t alen;
      uint32_t port;
      ck_assert_int_eq(evssh_read_string(&r, &addr, &alen), 0);
      ck_assert_int_eq(evssh_read_u32(&r, &port), 0);
      evssh_buf b = EVSSH_BUF_INIT;
      if (port == 0) evssh_buf_put_u32(&b, 40123);
      in_packet(SSH_MSG_REQUEST_SUCCESS, &b);
      buf_release(&b);
    } else {
      evssh_buf b = EVSSH_BUF_INIT;
      in_packet(SSH_MSG_REQUEST_FAILURE, &b);
      buf_release(&b);
    }
    break;
  }
  default:
    break;
  }
}

static bool peer_is_mute(void) { return peer.mute; }

static void peer_run(void) {
  if (peer.mute) return;
  packet *p;
  while ((p = plist_pop(&fake_t.sent))) {
    peer_handle(p->data, p->len);
    if (peer.keep_seen) plist_push(&peer.seen, p->data, p->len);
    packet_free(p);
  }
}

/* ------------------------------------------------------------ fixtures */

static void setup(void) {
  peer_reset();
  memset(&fake_t, 0, sizeof fake_t);
  fake_t.max_payload = 32768 + 256;
  plist_clear(&inbound);
  S = calloc(1, sizeof *S);
  ck_assert_ptr_nonnull(S);
  S->diag.owner = S;
  S->diag.label = "test";
  S->diag.log_level = getenv("EVSSH_DEBUG") ? atoi(getenv("EVSSH_DEBUG")) : 0;
  S->exec_limit = 64u * 1024 * 1024;
  ck_assert_int_eq(conn_new(S, &S->diag, &fake_events, S, &S->conn), EVSSH_OK);
  conn_start(S->conn, &fake_t);
  last_error[0] = 0;
  handle_events_calls = 0;
}

static void teardown(void) {
  conn_free(S->conn);
  diag_release(&S->diag);
  free(S);
  S = NULL;
  buf_release(&fake_t.cur);
  plist_clear(&fake_t.sent);
  plist_clear(&inbound);
  peer_reset();
}

/* Pop the next packet the layer sent (tests that play the peer by hand). */
static packet *sent_pop(void) { return plist_pop(&fake_t.sent); }

static evssh_reader sent_expect(packet *p, uint8_t msg) {
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(p->data[0], msg);
  return reader_of(p->data + 1, p->len - 1);
}

static int feed(uint8_t msg, const evssh_buf *body) {
  evssh_reader r = reader_of(buf_ptr(body), buf_avail(body));
  return conn_handle_packet(S->conn, msg, &r, 4242);
}

static int feed_u32(uint8_t msg, uint32_t v) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, v);
  int rc = feed(msg, &b);
  buf_release(&b);
  return rc;
}

static int feed_confirm(uint32_t local, uint32_t remote, uint32_t window, uint32_t maxp) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, local);
  evssh_buf_put_u32(&b, remote);
  evssh_buf_put_u32(&b, window);
  evssh_buf_put_u32(&b, maxp);
  int rc = feed(SSH_MSG_CHANNEL_OPEN_CONFIRMATION, &b);
  buf_release(&b);
  return rc;
}

static int feed_data(uint32_t local, const void *data, size_t len) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, local);
  evssh_buf_put_string(&b, data, len);
  int rc = feed(SSH_MSG_CHANNEL_DATA, &b);
  buf_release(&b);
  return rc;
}

/* Open a channel by hand and confirm it; the CHANNEL_OPEN is consumed. */
static evssh_channel *open_confirmed(uint32_t remote, uint32_t window, uint32_t maxp) {
  evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
  ck_assert_ptr_nonnull(ch);
  packet_free(sent_pop());
  ck_assert_int_eq(feed_confirm(evssh_channel_id(ch), remote, window, maxp), 0);
  return ch;
}

/* ---------------------------------------------- event-order recording */

static char events[4096];

static void ev(const char *fmt, ...) {
  size_t n = strlen(events);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(events + n, sizeof events - n, fmt, ap);
  va_end(ap);
}

static void rec_open(evssh_channel *ch, void *ud) { ev("open;"); }
static void rec_data(evssh_channel *ch, const char *d, size_t n, void *ud) { ev("data:%.*s;", (int)n, d); }
static void rec_ext(evssh_channel *ch, uint32_t t, const char *d, size_t n, void *ud) {
  ev("ext%u:%.*s;", t, (int)n, d);
}
static void rec_eof(evssh_channel *ch, void *ud) { ev("eof;"); }
static void rec_close(evssh_channel *ch, void *ud) { ev("close;"); }
static int rec_exit(evssh_channel *ch, const char *type, evssh_reader *d, bool want, void *ud) {
  uint32_t st = 99;
  ck_assert_int_eq(evssh_read_u32(d, &st), 0);
  ev("%s=%u;", type, st);
  return EVSSH_REPLY_SUCCESS;
}
static void rec_failed(evssh_channel *ch, uint32_t reason, const char *desc, void *ud) {
  ev("failed:%u:%s;", reason, desc);
}
static void rec_reply(evssh_channel *ch, bool ok, void *ud) { ev("reply%s:%s;", (const char *)ud, ok ? "ok" : "fail"); }

/* ================================================================ tests */

START_TEST(test_exec_callback_order) {
  /* Net::SSH order: data..., eof, exit-status, close */
  events[0] = 0;
  evssh_channel *ch = evssh_session_open_channel(S, rec_open, NULL);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_data(ch, rec_data, NULL);
  evssh_channel_on_extended_data(ch, rec_ext, NULL);
  evssh_channel_on_eof(ch, rec_eof, NULL);
  evssh_channel_on_close(ch, rec_close, NULL);
  evssh_channel_on_request(ch, "exit-status", rec_exit, NULL);
  /* exec before confirmation is held and goes out right after it */
  ck_assert_int_eq(evssh_channel_exec(ch, "hello", rec_reply, "X"), 0);
  ck_assert_int_eq(evssh_session_loop(S, 1000, NULL, NULL), 0);
  ck_assert_str_eq(events, "open;replyX:ok;data:out:hello;ext1:err:hello;eof;exit-status=5;close;");
  ck_assert(!evssh_session_busy(S, true));
}
END_TEST

START_TEST(test_exit_status_held_until_eof) {
  const char *cmds[] = {"early", "noeof"};
  const char *want[] = {"data:late;eof;exit-status=4;close;", "exit-status=5;close;"};
  for (int i = 0; i < 2; i++) {
    events[0] = 0;
    evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
    evssh_channel_on_data(ch, rec_data, NULL);
    evssh_channel_on_eof(ch, rec_eof, NULL);
    evssh_channel_on_close(ch, rec_close, NULL);
    evssh_channel_on_request(ch, "exit-status", rec_exit, NULL);
    ck_assert_int_eq(evssh_channel_exec(ch, cmds[i], NULL, NULL), 0);
    ck_assert_int_eq(evssh_session_loop(S, 1000, NULL, NULL), 0);
    ck_assert_str_eq(events, want[i]);
  }
}
END_TEST

START_TEST(test_held_exit_status_on_abort) {
  events[0] = 0;
  evssh_channel *ch = open_confirmed(4, 1000, 1000);
  evssh_channel_on_request(ch, "exit-status", rec_exit, NULL);
  evssh_channel_on_close(ch, rec_close, NULL);
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, evssh_channel_id(ch));
  evssh_buf_put_cstring(&b, "exit-status");
  evssh_buf_put_bool(&b, false);
  evssh_buf_put_u32(&b, 7);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), 0);
  buf_release(&b);
  ck_assert_str_eq(events, ""); /* held: no EOF yet */
  int st;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0); /* but recorded at once */
  ck_assert_int_eq(st, 7);
  fake_fail(S, EVSSH_EDISCONNECT, "gone");
  ck_assert_str_eq(events, "exit-status=7;close;");
}
END_TEST

START_TEST(test_exec_wait_result) {
  evssh_result res;
  ck_assert_int_eq(evssh_session_exec_wait(S, "uname -a", &res), 0);
  ck_assert_str_eq(res.out, "out:uname -a");
  ck_assert_uint_eq(res.out_len, 12);
  ck_assert_str_eq(res.err, "err:uname -a");
  ck_assert_int_eq(res.exit_status, 8);
  ck_assert_ptr_null(res.exit_signal);
  evssh_result_free(&res);

  ck_assert_int_eq(evssh_session_exec_wait(S, "kill", &res), 0);
  ck_assert_uint_eq(res.out_len, 0);
  ck_assert_str_eq(res.out, "");
  ck_assert_int_eq(res.exit_status, -1);
  ck_assert_str_eq(res.exit_signal, "TERM");
  evssh_result_free(&res);

  ck_assert_int_eq(evssh_session_exec_wait(S, "refuse", &res), EVSSH_ECHANNEL);
  ck_assert_ptr_null(res.out);

  peer.refuse_opens = true;
  ck_assert_int_eq(evssh_session_exec_wait(S, "x", &res), EVSSH_ECHANNEL);
  ck_assert_ptr_null(res.out);
  ck_assert(!evssh_session_busy(S, true));
}
END_TEST

typedef struct exec_capture { char out[256], err[256]; } exec_capture;

static void capture_exec(evssh_channel *ch, evssh_stream stream, const char *d, size_t n, void *ud) {
  exec_capture *c = ud;
  char *dst = stream == EVSSH_STDOUT ? c->out : c->err;
  strncat(dst, d, n);
}

START_TEST(test_exec_async_many) {
  /* 100 channels at once, each with its own output */
  exec_capture caps[100];
  memset(caps, 0, sizeof caps);
  for (int i = 0; i < 100; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "echo %d", i);
    ck_assert_ptr_nonnull(evssh_session_exec(S, cmd, capture_exec, &caps[i]));
  }
  ck_assert(evssh_session_busy(S, false));
  ck_assert_int_eq(evssh_session_loop(S, 1000, NULL, NULL), 0);
  for (int i = 0; i < 100; i++) {
    char want[64];
    snprintf(want, sizeof want, "out:echo %d", i);
    ck_assert_str_eq(caps[i].out, want);
    snprintf(want, sizeof want, "err:echo %d", i);
    ck_assert_str_eq(caps[i].err, want);
  }
}
END_TEST

typedef struct cat_state {
  uint64_t sum;
  size_t received;
  bool closed;
  int status;
} cat_state;

static void cat_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  cat_state *c = ud;
  for (size_t i = 0; i < n; i++) c->sum = c->sum * 31 + (unsigned char)d[i];
  c->received += n;
}
static void cat_close(evssh_channel *ch, void *ud) {
  cat_state *c = ud;
  c->closed = true;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &c->status), 0);
}

START_TEST(test_cat_bulk_both_ways) {
  /* 16 MiB through the toy cat: more than either window many times over,
     sent in one call before the channel is even confirmed */
  size_t total = 16u * 1024 * 1024;
  unsigned char *data = malloc(total);
  ck_assert_ptr_nonnull(data);
  uint64_t want = 0;
  for (size_t i = 0; i < total; i++) {
    data[i] = (unsigned char)((i * 2654435761u) >> 13);
    want = want * 31 + data[i];
  }
  cat_state c = {0};
  evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_data(ch, cat_data, &c);
  evssh_channel_on_close(ch, cat_close, &c);
  ck_assert_int_eq(evssh_channel_exec(ch, "cat", NULL, NULL), 0);
  ck_assert_int_eq(evssh_channel_send_data(ch, data, total / 2), 0);
  ck_assert_int_eq(evssh_channel_send_data(ch, data + total / 2, total - total / 2), 0);
  ck_assert_int_eq(evssh_channel_eof(ch), 0);
  ck_assert_int_eq(evssh_channel_send_data(ch, "x", 1), EVSSH_ECLOSED); /* after eof! */
  free(data);
  ck_assert_int_eq(evssh_session_loop(S, 1000, NULL, NULL), 0);
  ck_assert(c.closed);
  ck_assert_uint_eq(peer.received_total, total);
  ck_assert(peer.received_sum == want);
  ck_assert_uint_eq(c.received, total);
  ck_assert(c.sum == want);
  ck_assert_int_eq(c.status, 0);
}
END_TEST

START_TEST(test_window_and_max_packet_respected) {
  /* peer window 100 bytes, max packet 30: nothing beyond, order kept */
  evssh_channel *ch = open_confirmed(7, 100, 30);
  char buf[250];
  for (int i = 0; i < 250; i++) buf[i] = (char)('a' + i % 26);
  ck_assert_int_eq(evssh_channel_send_data(ch, buf, 120), 0);
  ck_assert_int_eq(evssh_channel_send_extended_data(ch, 1, buf + 120, 50), 0);
  ck_assert_int_eq(evssh_channel_send_data(ch, buf + 170, 80), 0);
  ck_assert_int_eq(evssh_channel_eof(ch), 0);
  size_t got = 0;
  packet *p;
  char seen[250];
  while ((p = sent_pop())) {
    evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_DATA);
    uint32_t id;
    const char *d;
    size_t n;
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    ck_assert_uint_eq(id, 7);
    ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
    ck_assert_uint_le(n, 30);
    memcpy(seen + got, d, n);
    got += n;
    packet_free(p);
  }
  ck_assert_uint_eq(got, 100);
  ck_assert(conn_has_work(S->conn) == false);
  /* more window: the rest flows, extended data in its place, then EOF */
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, evssh_channel_id(ch));
  evssh_buf_put_u32(&b, 1000);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_WINDOW_ADJUST, &b), 0);
  buf_release(&b);
  int phase = 0;
  while ((p = sent_pop())) {
    evssh_reader r = reader_of(p->data + 1, p->len - 1);
    uint32_t id, type;
    const char *d;
    size_t n;
    ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
    if (p->data[0] == SSH_MSG_CHANNEL_EOF) {
      ck_assert_uint_eq(got, 250);
      phase = 3;
    } else if (p->data[0] == SSH_MSG_CHANNEL_EXTENDED_DATA) {
      ck_assert_int_le(phase, 1);
      phase = 1;
      ck_assert_int_eq(evssh_read_u32(&r, &type), 0);
      ck_assert_uint_eq(type, 1);
      ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
      ck_assert_uint_ge(got, 120);
      memcpy(seen + got, d, n);
      got += n;
    } else {
      ck_assert_uint_eq(p->data[0], SSH_MSG_CHANNEL_DATA);
      ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
      if (phase == 1) phase = 2;
      ck_assert(got < 120 || got >= 170);
      memcpy(seen + got, d, n);
      got += n;
    }
    packet_free(p);
  }
  ck_assert_int_eq(phase, 3);
  ck_assert(memcmp(seen, buf, 250) == 0);
}
END_TEST

START_TEST(test_transport_backpressure) {
  evssh_channel *ch = open_confirmed(7, 10u * 1024 * 1024, 32768);
  static char big[3u * 1024 * 1024];
  fake_t.pending_out = CONN_TRANSPORT_HIGH_WATER; /* transport backed up */
  ck_assert_int_eq(evssh_channel_send_data(ch, big, sizeof big), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  ck_assert(!conn_has_work(S->conn));
  fake_t.pending_out = 0;
  fake_t.kex_running = true;                      /* re-keying: hold data */
  ck_assert_int_eq(conn_flush(S->conn), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  fake_t.kex_running = false;
  ck_assert(conn_has_work(S->conn));
  ck_assert_int_eq(conn_flush(S->conn), 0);
  ck_assert_uint_eq(fake_t.sent.count, (sizeof big + 32767) / 32768);
  ck_assert_uint_eq(evssh_channel_pending(ch), 0);
}
END_TEST

START_TEST(test_flush_is_fair) {
  /* two channels with plenty queued and a transport that takes one packet
     per pass: both make progress, neither starves */
  evssh_channel *a = open_confirmed(1, 10u * 1024 * 1024, 32768);
  evssh_channel *b = open_confirmed(2, 10u * 1024 * 1024, 32768);
  static char blob[1u << 20];
  fake_t.pending_out = CONN_TRANSPORT_HIGH_WATER;
  ck_assert_int_eq(evssh_channel_send_data(a, blob, sizeof blob), 0);
  ck_assert_int_eq(evssh_channel_send_data(b, blob, sizeof blob), 0);
  size_t per_channel[3] = {0, 0, 0};
  fake_t.count_pending = true;
  for (int pass = 0; pass < 20; pass++) {
    fake_t.pending_out = CONN_TRANSPORT_HIGH_WATER - 1; /* room for one packet */
    ck_assert_int_eq(conn_flush(S->conn), 0);
    packet *p;
    while ((p = sent_pop())) {
      evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_DATA);
      uint32_t id;
      ck_assert_int_eq(evssh_read_u32(&r, &id), 0);
      ck_assert_uint_le(id, 2);
      per_channel[id]++;
      packet_free(p);
    }
  }
  ck_assert_uint_eq(per_channel[1] + per_channel[2], 20);
  ck_assert_uint_ge(per_channel[1], 5);
  ck_assert_uint_ge(per_channel[2], 5);
}
END_TEST

/* Feed n bytes of data in packets of at most our max packet size. */
static int feed_bulk(uint32_t id, size_t n) {
  static char blob[CONN_MAX_PACKET];
  int rc = EVSSH_OK;
  while (n && rc == EVSSH_OK) {
    size_t k = n < sizeof blob ? n : sizeof blob;
    rc = feed_data(id, blob, k);
    n -= k;
  }
  return rc;
}

START_TEST(test_window_overrun_is_eproto) {
  evssh_channel *ch = open_confirmed(9, 1000, 32768);
  uint32_t id = evssh_channel_id(ch);
  ck_assert_int_eq(feed_bulk(id, CONN_WINDOW_SIZE / 2 - 1), 0); /* just under half */
  ck_assert_ptr_null(fake_t.sent.head);                         /* no adjust yet */
  ck_assert_int_eq(feed_bulk(id, 2), 0);                        /* now past half */
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_WINDOW_ADJUST);
  uint32_t rid, add;
  ck_assert_int_eq(evssh_read_u32(&r, &rid), 0);
  ck_assert_int_eq(evssh_read_u32(&r, &add), 0);
  ck_assert_uint_eq(rid, 9);
  ck_assert_uint_eq(add, CONN_WINDOW_SIZE / 2 + 1);
  packet_free(p);
  /* a peer that sends more than the window holds: paused, nothing is
     granted, so 5 bytes are left after this */
  ck_assert_int_eq(evssh_channel_pause(ch, true), 0);
  ck_assert_int_eq(feed_bulk(id, CONN_WINDOW_SIZE - 5), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  ck_assert_uint_eq(evssh_channel_receive_window(ch), 5);
  static char blob[6];
  ck_assert_int_eq(feed_data(id, blob, 6), EVSSH_EPROTO);
  ck_assert_int_eq(S->diag.error_code, EVSSH_EPROTO);
  ck_assert_ptr_nonnull(strstr(last_error, "window"));
}
END_TEST

START_TEST(test_open_failure_reason_text) {
  events[0] = 0;
  peer.refuse_opens = true;
  evssh_channel *ch = evssh_session_open_channel_type(S, "direct-tcpip", "\0\0\0\0", 4, rec_open, NULL);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_open_failed(ch, rec_failed, NULL);
  evssh_channel_on_close(ch, rec_close, NULL);
  ck_assert_int_eq(evssh_channel_send_request(ch, "never-sent", NULL, 0, rec_reply, "E"), 0);
  /* the extra data went out after the standard fields */
  packet *p = fake_t.sent.head;
  ck_assert_uint_eq(p->data[0], SSH_MSG_CHANNEL_OPEN);
  ck_assert_uint_eq(p->len, 1 + 4 + 12 + 12 + 4);
  ck_assert_int_eq(evssh_session_loop(S, 1000, NULL, NULL), 0);
  ck_assert_str_eq(events, "failed:1:administratively prohibited;replyE:fail;");
}
END_TEST

/* The session ends while a channel is still opening: on_open_failed
   (reason 2) is its last callback, as for a refusal, without on_close;
   found by fuzz_connection (both ran). Without on_open_failed, on_close. */
START_TEST(test_abort_while_opening_one_callback) {
  events[0] = 0;
  evssh_channel *a = evssh_session_open_channel(S, rec_open, NULL);
  evssh_channel_on_open_failed(a, rec_failed, NULL);
  evssh_channel_on_close(a, rec_close, NULL);
  ck_assert_int_eq(evssh_channel_send_request(a, "exec", NULL, 0, rec_reply, "A"), 0);
  evssh_channel *b = evssh_session_open_channel(S, rec_open, NULL);
  evssh_channel_on_close(b, rec_close, NULL);
  fake_fail(S, EVSSH_EDISCONNECT, "gone");
  ck_assert_str_eq(events, "failed:2:session closed;replyA:fail;close;");
  ck_assert(!evssh_channel_active(a) && !evssh_channel_active(b));
}
END_TEST

/* on_eof runs once even when a peer repeats EOF (found by fuzz_connection) */
START_TEST(test_repeated_eof_one_callback) {
  events[0] = 0;
  evssh_channel *ch = open_confirmed(5, 1000, 1000);
  evssh_channel_on_eof(ch, rec_eof, NULL);
  evssh_channel_on_close(ch, rec_close, NULL);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_EOF, evssh_channel_id(ch)), 0);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_EOF, evssh_channel_id(ch)), 0);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_CLOSE, evssh_channel_id(ch)), 0);
  ck_assert_str_eq(events, "eof;close;");
}
END_TEST

static int refuse_or_accept(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  uint32_t v;
  ck_assert_int_eq(evssh_read_u32(data, &v), 0);
  if (v == 0) return 1;
  evssh_channel_on_data(ch, rec_data, NULL);
  ck_assert_int_eq(evssh_channel_send_data(ch, "hi", 2), 0); /* held until confirmed */
  return 0;
}

START_TEST(test_peer_opened_channels) {
  events[0] = 0;
  evssh_buf b = EVSSH_BUF_INIT;
  /* unknown type: OPEN_FAILURE(3, "unknown channel type") */
  evssh_buf_put_cstring(&b, "x11");
  evssh_buf_put_u32(&b, 55);
  evssh_buf_put_u32(&b, 1000);
  evssh_buf_put_u32(&b, 1000);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_OPEN, &b), 0);
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_OPEN_FAILURE);
  uint32_t v;
  const char *d;
  size_t n;
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 55);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 3);
  ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
  ck_assert_uint_eq(n, strlen("unknown channel type"));
  ck_assert(memcmp(d, "unknown channel type", n) == 0);
  packet_free(p);

  evssh_session_on_open_channel(S, "forwarded-tcpip", refuse_or_accept, NULL);
  buf_reset(&b);
  evssh_buf_put_cstring(&b, "forwarded-tcpip");
  evssh_buf_put_u32(&b, 56);
  evssh_buf_put_u32(&b, 1000);
  evssh_buf_put_u32(&b, 1000);
  evssh_buf_put_u32(&b, 0); /* handler refuses */
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_OPEN, &b), 0);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_OPEN_FAILURE);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 1);
  packet_free(p);

  buf_reset(&b);
  evssh_buf_put_cstring(&b, "forwarded-tcpip");
  evssh_buf_put_u32(&b, 57);
  evssh_buf_put_u32(&b, 1000);
  evssh_buf_put_u32(&b, 1000);
  evssh_buf_put_u32(&b, 1); /* accepted */
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_OPEN, &b), 0);
  buf_release(&b);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 57);
  uint32_t local;
  ck_assert_int_eq(evssh_read_u32(&r, &local), 0);
  packet_free(p);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_DATA);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 57);
  packet_free(p);
  ck_assert_int_eq(feed_data(local, "yo", 2), 0);
  ck_assert_str_eq(events, "data:yo;");
  ck_assert(evssh_session_busy(S, false));
}
END_TEST

static int answer_keepalive(evssh_channel *ch, const char *type, evssh_reader *d, bool want, void *ud) {
  evssh_channel_on_request(ch, "keepalive@openssh.com", NULL, NULL); /* once is enough */
  ck_assert_str_eq(type, "keepalive@openssh.com");                  /* still readable */
  return EVSSH_REPLY_SUCCESS;
}

START_TEST(test_incoming_channel_requests) {
  evssh_channel *ch = open_confirmed(3, 1000, 1000);
  uint32_t id = evssh_channel_id(ch);
  int st;
  const char *sig;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_channel_exit_signal(ch, &sig), EVSSH_EINVAL);
  evssh_buf b = EVSSH_BUF_INIT;
  /* no handler, reply wanted: CHANNEL_FAILURE */
  evssh_buf_put_u32(&b, id);
  evssh_buf_put_cstring(&b, "keepalive@openssh.com");
  evssh_buf_put_bool(&b, true);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), 0);
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_FAILURE);
  uint32_t v;
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 3);
  packet_free(p);
  /* with a handler: its answer */
  evssh_channel_on_request(ch, "keepalive@openssh.com", answer_keepalive, NULL);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), 0);
  p = sent_pop();
  sent_expect(p, SSH_MSG_CHANNEL_SUCCESS);
  packet_free(p);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), 0); /* handler gone: failure again */
  p = sent_pop();
  sent_expect(p, SSH_MSG_CHANNEL_FAILURE);
  packet_free(p);
  /* exit-status and exit-signal recorded without handlers, no reply sent */
  buf_reset(&b);
  evssh_buf_put_u32(&b, id);
  evssh_buf_put_cstring(&b, "exit-status");
  evssh_buf_put_bool(&b, false);
  evssh_buf_put_u32(&b, 42);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), 0);
  buf_reset(&b);
  evssh_buf_put_u32(&b, id);
  evssh_buf_put_cstring(&b, "exit-signal");
  evssh_buf_put_bool(&b, false);
  evssh_buf_put_cstring(&b, "KILL");
  evssh_buf_put_bool(&b, true);
  evssh_buf_put_cstring(&b, "killed");
  evssh_buf_put_cstring(&b, "");
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);
  ck_assert_int_eq(st, 42);
  ck_assert_int_eq(evssh_channel_exit_signal(ch, &sig), 0);
  ck_assert_str_eq(sig, "KILL");
  /* malformed: truncated request is a protocol error */
  buf_reset(&b);
  evssh_buf_put_u32(&b, id);
  evssh_buf_put_u32(&b, 100); /* string length beyond the packet */
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_REQUEST, &b), EVSSH_EPROTO);
  buf_release(&b);
}
END_TEST

START_TEST(test_channel_request_replies_in_order) {
  events[0] = 0;
  evssh_channel *ch = open_confirmed(3, 1000, 1000);
  uint32_t id = evssh_channel_id(ch);
  ck_assert_int_eq(evssh_channel_env(ch, "A", "1", rec_reply, "1"), 0);
  ck_assert_int_eq(evssh_channel_signal(ch, "TERM"), 0); /* no reply wanted */
  ck_assert_int_eq(evssh_channel_request_pty(ch, "vt100", 80, 24, rec_reply, "2"), 0);
  ck_assert_int_eq(evssh_channel_send_request(ch, "x-unknown@example.com", "abc", 3, rec_reply, "3"), 0);
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_REQUEST);
  uint32_t v;
  const char *d;
  size_t n;
  bool want;
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
  ck_assert(n == 3 && memcmp(d, "env", 3) == 0);
  packet_free(p);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_REQUEST);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
  ck_assert(n == 6 && memcmp(d, "signal", 6) == 0);
  ck_assert_int_eq(evssh_read_bool(&r, &want), 0);
  ck_assert(!want);
  packet_free(p);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_REQUEST);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
  ck_assert(n == 7 && memcmp(d, "pty-req", 7) == 0);
  packet_free(p);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_REQUEST);
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
  ck_assert_int_eq(evssh_read_bool(&r, &want), 0);
  ck_assert(want);
  ck_assert_uint_eq(r.left, 3);
  ck_assert(memcmp(r.p, "abc", 3) == 0);
  packet_free(p);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_SUCCESS, id), 0);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_FAILURE, id), 0);
  /* a close with a reply outstanding: the callback hears failure */
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_CLOSE, id), 0);
  ck_assert_str_eq(events, "reply1:ok;reply2:fail;reply3:fail;");
  p = sent_pop();
  sent_expect(p, SSH_MSG_CHANNEL_CLOSE);
  packet_free(p);
  ck_assert(!evssh_session_busy(S, true));
}
END_TEST

static char global_log[512];
static void global_reply(evssh_session *s, bool ok, evssh_reader *resp, void *ud) {
  size_t n = strlen(global_log);
  uint32_t port = 0;
  if (ok && resp->left >= 4) evssh_read_u32(resp, &port);
  snprintf(global_log + n, sizeof global_log - n, "%s:%s:%u;", (const char *)ud, ok ? "ok" : "fail", port);
}

START_TEST(test_global_requests_out) {
  global_log[0] = 0;
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_cstring(&b, "127.0.0.1");
  evssh_buf_put_u32(&b, 0);
  ck_assert_int_eq(evssh_session_send_global_request(S, "keepalive@openssh.com", NULL, 0, global_reply, "ka"), 0);
  ck_assert_int_eq(evssh_session_send_global_request(S, "no-reply@example.com", NULL, 0, NULL, NULL), 0);
  ck_assert_int_eq(evssh_session_send_global_request(S, "tcpip-forward", buf_ptr(&b), buf_avail(&b),
                                                     global_reply, "fwd"), 0);
  buf_release(&b);
  while (strlen(global_log) < 14) ck_assert_int_ge(evssh_session_process(S, 100, NULL, NULL), 0);
  ck_assert_str_eq(global_log, "ka:fail:0;fwd:ok:40123;");
}
END_TEST

static int later_handler(evssh_session *s, const char *type, evssh_reader *d, bool want, void *ud) {
  evssh_session_on_global_request(s, "later@example.com", NULL, NULL); /* unregisters itself */
  ck_assert_str_eq(type, "later@example.com");
  return EVSSH_REPLY_SENT; /* answered later by the test */
}
static int now_handler(evssh_session *s, const char *type, evssh_reader *d, bool want, void *ud) {
  const char *k;
  size_t n;
  ck_assert_int_eq(evssh_read_string(d, &k, &n), 0); /* reader starts at the request data */
  ck_assert(n == 3 && memcmp(k, "key", 3) == 0);
  return EVSSH_REPLY_SUCCESS;
}

static int feed_global(const char *type, bool want, const char *str) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_cstring(&b, type);
  evssh_buf_put_bool(&b, want);
  if (str) evssh_buf_put_cstring(&b, str);
  int rc = feed(SSH_MSG_GLOBAL_REQUEST, &b);
  buf_release(&b);
  return rc;
}

START_TEST(test_global_requests_in) {
  /* unknown with reply wanted: REQUEST_FAILURE; without: nothing */
  ck_assert_int_eq(feed_global("x@example.com", true, NULL), 0);
  packet *p = sent_pop();
  sent_expect(p, SSH_MSG_REQUEST_FAILURE);
  packet_free(p);
  ck_assert_int_eq(feed_global("x@example.com", false, NULL), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  /* a late answer holds back the replies to the requests after it */
  evssh_session_on_global_request(S, "later@example.com", later_handler, NULL);
  evssh_session_on_global_request(S, "hostkeys-00@openssh.com", now_handler, NULL);
  ck_assert_int_eq(feed_global("later@example.com", true, NULL), 0);
  ck_assert_int_eq(feed_global("hostkeys-00@openssh.com", true, "key"), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  ck_assert_int_eq(evssh_session_send_global_reply(S, true, "\0\0\0\7", 4), 0);
  p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_REQUEST_SUCCESS);
  uint32_t v;
  ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
  ck_assert_uint_eq(v, 7);
  packet_free(p);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_REQUEST_SUCCESS);
  ck_assert_uint_eq(r.left, 0);
  packet_free(p);
  ck_assert_int_eq(evssh_session_send_global_reply(S, true, NULL, 0), EVSSH_EINVAL); /* nothing owed */
  /* handler removed: back to failure */
  evssh_session_on_global_request(S, "hostkeys-00@openssh.com", NULL, NULL);
  ck_assert_int_eq(feed_global("hostkeys-00@openssh.com", true, "key"), 0);
  p = sent_pop();
  sent_expect(p, SSH_MSG_REQUEST_FAILURE);
  packet_free(p);
}
END_TEST

static void sink_exec(evssh_channel *ch, evssh_stream stream, const char *d, size_t n, void *ud) {}

/* callbacks that close, open and re-enter during dispatch */
static int reentry_closes;
static void close_in_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  if (!evssh_channel_active(ch) || evssh_channel_property(ch, "closing")) return;
  evssh_channel_set_property(ch, "closing", ch);
  ck_assert_int_eq(evssh_channel_close(ch), 0);
  ck_assert_int_eq(evssh_channel_close(ch), 0);                 /* twice is fine */
  ck_assert_int_eq(evssh_channel_send_data(ch, "z", 1), EVSSH_ECLOSED);
  /* blocking calls from a callback are nested loops */
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(S, "x", &r), 0);
  ck_assert_str_eq(r.out, "out:x");
  evssh_result_free(&r);
  ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), 1);
  ck_assert_int_eq(evssh_channel_wait(ch), 0);
  ck_assert(!evssh_channel_active(ch));    /* over, and still readable */
}
static void open_in_close(evssh_channel *ch, void *ud) {
  reentry_closes++;
  evssh_channel_set_property(ch, "k", &reentry_closes);
  ck_assert_ptr_eq(evssh_channel_property(ch, "k"), &reentry_closes);
  if (reentry_closes < 3) {
    evssh_channel *next = evssh_session_exec(S, "big 100000", sink_exec, NULL);
    (void)next;
    evssh_channel *n2 = evssh_session_open_channel(S, NULL, NULL);
    ck_assert_ptr_nonnull(n2);
    evssh_channel_on_data(n2, close_in_data, NULL);
    evssh_channel_on_close(n2, open_in_close, NULL);
    ck_assert_int_eq(evssh_channel_exec(n2, "big 5000", NULL, NULL), 0);
  }
}

START_TEST(test_reentrant_callbacks) {
  reentry_closes = 0;
  evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
  evssh_channel_on_data(ch, close_in_data, NULL);
  evssh_channel_on_close(ch, open_in_close, NULL);
  ck_assert_int_eq(evssh_channel_exec(ch, "big 70000", NULL, NULL), 0);
  (void)sink_exec;
  ck_assert_int_eq(evssh_session_loop(S, 100, NULL, NULL), 0);
  ck_assert_int_eq(reentry_closes, 3);
}
END_TEST

static void count_close(evssh_channel *ch, void *ud) { (*(int *)ud)++; }
static void reply_count(evssh_session *s, bool ok, evssh_reader *resp, void *ud) {
  ck_assert(!ok);
  (*(int *)ud)++;
}

START_TEST(test_peer_dies_mid_transfer) {
  int closes = 0, greplies = 0;
  static char blob[1 << 20];
  for (int i = 0; i < 5; i++) {
    evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
    evssh_channel_on_close(ch, count_close, &closes);
    evssh_channel_exec(ch, "cat", NULL, NULL);
    evssh_channel_send_data(ch, blob, sizeof blob);
  }
  evssh_channel *opening = evssh_session_open_channel(S, NULL, NULL);
  evssh_channel_on_close(opening, count_close, &closes);
  ck_assert_int_eq(evssh_session_send_global_request(S, "a@b", NULL, 0, reply_count, &greplies), 0);
  /* the peer dies: simulated as the transport failing the session */
  peer.mute = true;
  fake_fail(S, EVSSH_EDISCONNECT, "connection reset by peer");
  int rc = evssh_session_loop(S, 100, NULL, NULL);
  ck_assert_int_eq(rc, EVSSH_EDISCONNECT);
  ck_assert_int_eq(closes, 6);
  ck_assert_int_eq(greplies, 1);
  ck_assert(!evssh_session_busy(S, true));
  /* afterwards everything reports the closed session */
  ck_assert_ptr_null(evssh_session_open_channel(S, NULL, NULL));
  ck_assert_int_eq(evssh_session_send_global_request(S, "x", NULL, 0, NULL, NULL), EVSSH_ECLOSED);
  ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), EVSSH_EDISCONNECT);
}
END_TEST

static bool always(evssh_session *s, void *ud) { return true; }

START_TEST(test_keepalive_timeout) {
  conn_set_keepalive(S->conn, 1, 2);
  peer.mute = true;                  /* a stopped server */
  /* the loop sleeps until each probe is due: two go out, the third time
     the session ends */
  int rc = evssh_session_loop(S, -1, always, NULL);
  ck_assert_int_eq(rc, EVSSH_ETIMEOUT);
  ck_assert_uint_eq(fake_t.sent.count, 2);
  ck_assert_ptr_nonnull(strstr(last_error, "no answer from the server to 2 keepalives"));
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_GLOBAL_REQUEST);
  const char *d;
  size_t n;
  ck_assert_int_eq(evssh_read_string(&r, &d, &n), 0);
  ck_assert(n == 21 && memcmp(d, "keepalive@openssh.com", 21) == 0);
  packet_free(p);
}
END_TEST

static bool for_3500_ms(evssh_session *s, void *ud) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const struct timespec *t0 = ud;
  return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000 < 3500;
}

START_TEST(test_keepalive_answered) {
  conn_set_keepalive(S->conn, 1, 2);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(evssh_session_loop(S, -1, for_3500_ms, &t0), 0);
  ck_assert_int_eq(S->diag.error_code, 0);
  ck_assert(!S->closed);
}
END_TEST

static int cond_calls;
static bool cond_three(evssh_session *s, void *ud) { return ++cond_calls <= 3; }

START_TEST(test_process_and_loop_cond) {
  /* idle: process(0) returns at once with 1. The bound is wall time, so
     it is far above a loaded machine's scheduling delays (50 ms was not);
     a wait that ignored the 0 would be the session's own timeout, which
     here is none (process would fail) or a keepalive of seconds. */
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), 1);
  clock_gettime(CLOCK_MONOTONIC, &b);
  ck_assert_int_lt((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 1000);
  /* idle with a wait: the wait is honoured */
  clock_gettime(CLOCK_MONOTONIC, &a);
  ck_assert_int_eq(evssh_session_process(S, 60, NULL, NULL), 1);
  clock_gettime(CLOCK_MONOTONIC, &b);
  ck_assert_int_ge((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 55);
  /* cond asked before and after: false before means no iteration */
  cond_calls = 3;
  int before = handle_events_calls;
  ck_assert_int_eq(evssh_session_process(S, 0, cond_three, NULL), 0);
  ck_assert_int_eq(handle_events_calls, before);
  /* loop stops when cond turns false: asked before and after each pass */
  cond_calls = 0;
  ck_assert_int_eq(evssh_session_loop(S, 0, cond_three, NULL), 0);
  ck_assert_int_eq(cond_calls, 4);
  /* loop with no cond and nothing busy returns 0 at once */
  ck_assert_int_eq(evssh_session_loop(S, -1, NULL, NULL), 0);
}
END_TEST

START_TEST(test_busy_invisible) {
  evssh_channel *ch = evssh_session_exec(S, "hang", sink_exec, NULL);
  ck_assert(evssh_session_busy(S, false));
  evssh_channel_set_property(ch, "invisible", (void *)1);
  ck_assert(!evssh_session_busy(S, false));
  ck_assert(evssh_session_busy(S, true));
  evssh_channel_set_property(ch, "invisible", NULL);
  ck_assert(evssh_session_busy(S, false));
  ck_assert_int_eq(evssh_channel_close(ch), 0);
  ck_assert_int_eq(evssh_channel_wait(ch), 0);
  ck_assert(!evssh_session_busy(S, true));
}
END_TEST

typedef struct pipe_state { int rfd; char got[64]; int calls; } pipe_state;
static void pipe_ready(evssh_session *s, int fd, int ready, void *ud) {
  pipe_state *ps = ud;
  ck_assert(ready & EVSSH_READ);
  ps->calls++;
  /* read first: the fd is level-triggered, and a nested loop polls it too */
  ssize_t n = read(fd, ps->got + strlen(ps->got), 10);
  if (n <= 0) evssh_session_stop_listening_to(s, fd);
  if (ps->calls == 1) {
    evssh_result r;
    ck_assert_int_eq(evssh_session_exec_wait(s, "x", &r), 0); /* blocking, from a callback: nested */
    ck_assert_str_eq(r.err, "err:x");
    evssh_result_free(&r);
    ck_assert_int_eq(evssh_session_loop(s, 0, NULL, NULL), 0);
  }
}
static bool until_eof(evssh_session *s, void *ud) { return ((pipe_state *)ud)->calls < 3; }

START_TEST(test_listen_to_pipe) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pipe_state ps = {fds[0], {0}, 0};
  ck_assert_int_eq(evssh_session_listen_to(S, fds[0], EVSSH_READ, pipe_ready, &ps), 0);
  ck_assert_int_eq(write(fds[1], "hello", 5), 5);
  ck_assert_int_eq(evssh_session_process(S, 1000, NULL, NULL), 1);
  ck_assert_str_eq(ps.got, "hello");
  ck_assert_int_eq(write(fds[1], " world", 6), 6);
  close(fds[1]);
  ck_assert_int_eq(evssh_session_loop(S, 1000, until_eof, &ps), 0);
  ck_assert_str_eq(ps.got, "hello world");
  ck_assert_int_eq(evssh_session_stop_listening_to(S, fds[0]), EVSSH_EINVAL); /* already gone */
  close(fds[0]);
}
END_TEST

START_TEST(test_close_all_graceful) {
  evssh_channel *a = evssh_session_exec(S, "hang", sink_exec, NULL);
  evssh_channel *b = evssh_session_exec(S, "hang", sink_exec, NULL);
  (void)a; (void)b;
  ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), 1);
  ck_assert(!conn_close_all(S->conn));
  for (int i = 0; i < 5 && !conn_close_all(S->conn); i++) evssh_session_process(S, 0, NULL, NULL);
  ck_assert(conn_close_all(S->conn));
}
END_TEST

/* Garbage from the peer: random messages 80..100 with bodies that start
   with a plausible channel number. Whatever comes, no crash, no leak (run
   under ASan), and a session either goes on or fails with EVSSH_EPROTO. */
static uint32_t rng_state = 12345;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}
static int garbage_request(evssh_channel *ch, const char *type, evssh_reader *d, bool want, void *ud) {
  const char *x;
  size_t n;
  evssh_read_string(d, &x, &n);
  return (int)(rng() % 3);
}
static int garbage_global(evssh_session *s, const char *type, evssh_reader *d, bool want, void *ud) {
  return (int)(rng() % 3);
}
static int garbage_open(evssh_session *s, evssh_channel *ch, evssh_reader *d, void *ud) {
  evssh_channel_on_request(ch, "exit-status", garbage_request, NULL);
  return (int)(rng() % 2);
}

/* RFC 4253 11.4: a message number nobody handles is answered with
   UNIMPLEMENTED carrying its sequence number, and the session goes on */
START_TEST(test_unknown_message_unimplemented) {
  for (unsigned msg = 83; msg <= 255; msg++) {
    if (msg >= 90 && msg <= 100) continue;   /* the channel messages */
    evssh_buf b = EVSSH_BUF_INIT;
    evssh_buf_put_cstring(&b, "whatever");
    ck_assert_int_eq(feed((uint8_t)msg, &b), EVSSH_OK);
    buf_release(&b);
    packet *p = sent_pop();
    evssh_reader r = sent_expect(p, SSH_MSG_UNIMPLEMENTED);
    uint32_t seq = 0;
    ck_assert_int_eq(evssh_read_u32(&r, &seq), EVSSH_OK);
    ck_assert_uint_eq(seq, 4242);
    packet_free(p);
  }
  ck_assert(!S->closed);
}
END_TEST

START_TEST(test_garbage_from_peer) {
  int survived = 0;
  for (int round = 0; round < 300; round++) {
    teardown();
    setup();
    evssh_session_on_open_channel(S, "x", garbage_open, NULL);
    evssh_session_on_global_request(S, "y", garbage_global, NULL);
    evssh_channel *a = open_confirmed(1, 100, 50);
    evssh_channel_on_request(a, "exit-status", garbage_request, NULL);
    evssh_session_open_channel(S, NULL, NULL); /* left opening */
    evssh_channel_send_data(a, "0123456789012345678901234567890123456789", 40);
    evssh_channel_send_request(a, "z", NULL, 0, rec_reply, "g");
    evssh_session_send_global_request(S, "g", NULL, 0, global_reply, "g");
    events[0] = 0;
    global_log[0] = 0;
    for (int i = 0; i < 40 && !S->closed; i++) {
      evssh_buf b = EVSSH_BUF_INIT;
      uint8_t msg = (uint8_t)(80 + rng() % 21);
      if (msg == SSH_MSG_CHANNEL_OPEN || msg == SSH_MSG_GLOBAL_REQUEST) {
        static const char *types[] = {"x", "y", "exit-status", "keepalive@openssh.com"};
        evssh_buf_put_cstring(&b, types[rng() % 4]);
      } else {
        evssh_buf_put_u32(&b, rng() % 3);
      }
      if (rng() % 2) {
        static const char *types[] = {"exit-status", "exit-signal", "x"};
        evssh_buf_put_cstring(&b, types[rng() % 3]);
      }
      size_t n = rng() % 24;
      for (size_t k = 0; k < n; k++) evssh_buf_put_u8(&b, (uint8_t)(rng() % 4 == 0 ? rng() : 0));
      int rc = feed(msg, &b);
      buf_release(&b);
      ck_assert(rc == EVSSH_OK || rc == EVSSH_EPROTO);
      if (rc) ck_assert(S->closed);
      plist_clear(&fake_t.sent);
      survived += rc == EVSSH_OK;
    }
  }
  /* the generator must reach past the first packet often enough */
  fprintf(stderr, "garbage: %d packets taken without error\n", survived);
  /* (messages for a channel still opening are refused now, so fewer
     random packets get through than before) */
  ck_assert_int_gt(survived, 300);
}
END_TEST

typedef struct feeder { int calls; int chunks; } feeder;
static void feed_on_process(evssh_channel *ch, void *ud) {
  feeder *f = ud;
  f->calls++;
  if (f->chunks < 10) {
    char chunk[1000];
    memset(chunk, 'a' + f->chunks, sizeof chunk);
    ck_assert_int_eq(evssh_channel_send_data(ch, chunk, sizeof chunk), 0);
    if (++f->chunks == 10) ck_assert_int_eq(evssh_channel_eof(ch), 0);
  }
}

START_TEST(test_on_process_feeds_data) {
  /* Net::SSH style: produce input from on_process, one chunk per iteration */
  feeder f = {0, 0};
  cat_state c = {0};
  evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
  evssh_channel_on_process(ch, feed_on_process, &f);
  evssh_channel_on_data(ch, cat_data, &c);
  evssh_channel_on_close(ch, cat_close, &c);
  ck_assert_int_eq(evssh_channel_exec(ch, "cat", NULL, NULL), 0);
  ck_assert_int_eq(f.calls, 0); /* not before the channel is open */
  ck_assert_int_eq(evssh_session_loop(S, 1000, NULL, NULL), 0);
  ck_assert_int_eq(f.chunks, 10);
  ck_assert_int_ge(f.calls, 10);
  ck_assert_uint_eq(c.received, 10000);
  ck_assert(c.closed);
}
END_TEST

/* ------------------------------------------- hostile peers (issue 15) */

static int feed_request(uint32_t local, const char *type, bool want, const void *extra, size_t n) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, local);
  evssh_buf_put_cstring(&b, type);
  evssh_buf_put_bool(&b, want);
  if (n) buf_append(&b, extra, n);
  int rc = feed(SSH_MSG_CHANNEL_REQUEST, &b);
  buf_release(&b);
  return rc;
}

/* An exit-status held for EOF is superseded by a later one delivered at
   once (want-reply set): the handler never sees the older value after the
   newer (found by fuzz_connection: 98, then the held 0 at the end). */
START_TEST(test_held_exit_status_superseded) {
  events[0] = 0;
  evssh_channel *ch = open_confirmed(6, 1000, 1000);
  evssh_channel_on_request(ch, "exit-status", rec_exit, NULL);
  evssh_channel_on_close(ch, rec_close, NULL);
  ck_assert_int_eq(feed_request(evssh_channel_id(ch), "exit-status", false, "\0\0\0\3", 4), 0);
  ck_assert_int_eq(feed_request(evssh_channel_id(ch), "exit-status", true, "\0\0\0\142", 4), 0);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_EOF, evssh_channel_id(ch)), 0);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_CLOSE, evssh_channel_id(ch)), 0);
  ck_assert_str_eq(events, "exit-status=98;close;");
  int st;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);
  ck_assert_int_eq(st, 98);
}
END_TEST

/* Only OPEN_CONFIRMATION / OPEN_FAILURE may come for a channel still
   opening; anything else is EPROTO naming the message and the channel, and
   nothing is answered to the unknown remote number. */
START_TEST(test_unconfirmed_channel_messages_refused) {
  static const struct { uint8_t msg; const char *name; } msgs[] = {
    {SSH_MSG_CHANNEL_DATA, "CHANNEL_DATA"}, {SSH_MSG_CHANNEL_EXTENDED_DATA, "CHANNEL_EXTENDED_DATA"},
    {SSH_MSG_CHANNEL_EOF, "CHANNEL_EOF"}, {SSH_MSG_CHANNEL_CLOSE, "CHANNEL_CLOSE"},
    {SSH_MSG_CHANNEL_WINDOW_ADJUST, "CHANNEL_WINDOW_ADJUST"}, {SSH_MSG_CHANNEL_REQUEST, "CHANNEL_REQUEST"},
    {SSH_MSG_CHANNEL_SUCCESS, "CHANNEL_SUCCESS"}, {SSH_MSG_CHANNEL_FAILURE, "CHANNEL_FAILURE"},
  };
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
    teardown();
    setup();
    events[0] = 0;
    evssh_channel *ch = evssh_session_open_channel(S, rec_open, NULL);
    evssh_channel_on_data(ch, rec_data, NULL);
    evssh_channel_on_close(ch, rec_close, NULL);
    evssh_channel_on_request(ch, "exit-status", rec_exit, NULL);
    packet_free(sent_pop());   /* the CHANNEL_OPEN */
    evssh_buf b = EVSSH_BUF_INIT;
    evssh_buf_put_u32(&b, evssh_channel_id(ch));
    if (msgs[i].msg == SSH_MSG_CHANNEL_EXTENDED_DATA) evssh_buf_put_u32(&b, 1);
    if (msgs[i].msg == SSH_MSG_CHANNEL_DATA || msgs[i].msg == SSH_MSG_CHANNEL_EXTENDED_DATA)
      evssh_buf_put_cstring(&b, "x");
    if (msgs[i].msg == SSH_MSG_CHANNEL_WINDOW_ADJUST) evssh_buf_put_u32(&b, 100);
    if (msgs[i].msg == SSH_MSG_CHANNEL_REQUEST) {
      evssh_buf_put_cstring(&b, "exit-status");
      evssh_buf_put_bool(&b, true);
      evssh_buf_put_u32(&b, 3);
    }
    ck_assert_int_eq(feed(msgs[i].msg, &b), EVSSH_EPROTO);
    buf_release(&b);
    ck_assert_msg(strstr(last_error, msgs[i].name) && strstr(last_error, "channel 0") &&
                  strstr(last_error, "not confirmed"), "%s: %s", msgs[i].name, last_error);
    /* no callback ran for it, nothing went to remote channel 0 */
    ck_assert_msg(strstr(events, "data") == NULL && strstr(events, "exit") == NULL, "%s: %s", msgs[i].name, events);
    ck_assert_ptr_null(fake_t.sent.head);
  }
}
END_TEST

START_TEST(test_data_over_max_packet_is_eproto) {
  evssh_channel *ch = open_confirmed(9, 1000, 32768);
  static char blob[CONN_MAX_PACKET + 1];
  ck_assert_int_eq(feed_data(evssh_channel_id(ch), blob, CONN_MAX_PACKET), 0);
  ck_assert_int_eq(feed_data(evssh_channel_id(ch), blob, CONN_MAX_PACKET + 1), EVSSH_EPROTO);
  ck_assert_ptr_nonnull(strstr(last_error, "maximum packet"));
}
END_TEST

static void pause_in_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  *(size_t *)ud += n;
  evssh_channel_pause(ch, true);   /* the consumer is full */
}

/* The window is granted only for data the program took: not while paused
   (even past half the window), and back in one adjust on resume. */
START_TEST(test_window_granted_as_consumed) {
  evssh_channel *ch = open_confirmed(9, 1000, 32768);
  size_t got = 0;
  evssh_channel_on_data(ch, pause_in_data, &got);
  uint32_t id = evssh_channel_id(ch);
  ck_assert_int_eq(feed_bulk(id, 3u * 1024 * 1024), 0);
  ck_assert_uint_eq(got, 3u * 1024 * 1024);
  ck_assert(evssh_channel_paused(ch));
  ck_assert_ptr_null(fake_t.sent.head);   /* nothing granted while paused */
  ck_assert_uint_eq(evssh_channel_receive_window(ch), CONN_WINDOW_SIZE - 3u * 1024 * 1024);
  ck_assert_int_eq(evssh_channel_pause(ch, false), 0);
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_WINDOW_ADJUST);
  uint32_t rid, add;
  ck_assert_int_eq(evssh_read_u32(&r, &rid), 0);
  ck_assert_int_eq(evssh_read_u32(&r, &add), 0);
  ck_assert_uint_eq(add, 3u * 1024 * 1024);
  packet_free(p);
  ck_assert_uint_eq(evssh_channel_receive_window(ch), CONN_WINDOW_SIZE);
  /* a grant that cannot be built is not counted as given */
  ck_assert_int_eq(evssh_channel_pause(ch, true), 0);
  ck_assert_int_eq(feed_bulk(id, 3u * 1024 * 1024), 0);
  fake_t.failed = 1;
  ck_assert_int_ne(evssh_channel_pause(ch, false), 0);
  ck_assert_uint_eq(evssh_channel_receive_window(ch), CONN_WINDOW_SIZE - 3u * 1024 * 1024);
  fake_t.failed = 0;
}
END_TEST

/* Our receive window per channel: set before confirmation it is granted
   right after it; grown later it is granted at once; shrunk, it only grants
   less from then on. */
START_TEST(test_set_receive_window) {
  evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
  packet_free(sent_pop());
  ck_assert_int_eq(evssh_channel_set_receive_window(ch, 16u * 1024 * 1024), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  uint32_t peer_id;
  ck_assert_int_eq(evssh_channel_remote_id(ch, &peer_id), EVSSH_EINVAL);   /* not confirmed yet */
  ck_assert_int_eq(feed_confirm(evssh_channel_id(ch), 5, 1000, 32768), 0);
  ck_assert_int_eq(evssh_channel_remote_id(ch, &peer_id), 0);
  ck_assert_uint_eq(peer_id, 5);
  evssh_channel_windows w;
  ck_assert_int_eq(evssh_channel_windows_get(ch, &w), 0);
  ck_assert_uint_eq(w.local_max_window, 16u * 1024 * 1024);
  ck_assert_uint_eq(w.local_window, 16u * 1024 * 1024);
  ck_assert_uint_eq(w.local_max_packet, 32768);
  ck_assert_uint_eq(w.remote_window, 1000);
  ck_assert_uint_eq(w.remote_max_window, 1000);
  ck_assert_uint_eq(w.remote_max_packet, 32768);
  packet *p = sent_pop();
  evssh_reader r = sent_expect(p, SSH_MSG_CHANNEL_WINDOW_ADJUST);
  uint32_t rid, add;
  ck_assert_int_eq(evssh_read_u32(&r, &rid), 0);
  ck_assert_int_eq(evssh_read_u32(&r, &add), 0);
  ck_assert_uint_eq(rid, 5);
  ck_assert_uint_eq(add, 12u * 1024 * 1024);
  packet_free(p);
  ck_assert_int_eq(evssh_channel_set_receive_window(ch, 32u * 1024 * 1024), 0);
  p = sent_pop();
  r = sent_expect(p, SSH_MSG_CHANNEL_WINDOW_ADJUST);
  ck_assert_int_eq(evssh_read_u32(&r, &rid), 0);
  ck_assert_int_eq(evssh_read_u32(&r, &add), 0);
  ck_assert_uint_eq(add, 16u * 1024 * 1024);
  packet_free(p);
  ck_assert_int_eq(evssh_channel_set_receive_window(ch, 1024 * 1024), 0);
  ck_assert_ptr_null(fake_t.sent.head);
  ck_assert_int_eq(evssh_channel_set_receive_window(ch, 0), EVSSH_EINVAL);
}
END_TEST

static void count_drain(evssh_channel *ch, void *ud) { (*(int *)ud)++; }

/* The send cap: a call that finds the queue at or over it queues nothing
   and says EVSSH_EAGAIN; on_drain tells when to go on. */
START_TEST(test_send_limit_and_drain) {
  evssh_channel *ch = open_confirmed(7, 0, 32768);   /* the peer gives no window yet */
  ck_assert_int_eq(evssh_channel_set_send_limit(ch, 1000), 0);
  static char chunk[600];
  ck_assert_int_eq(evssh_channel_send_data(ch, chunk, sizeof chunk), 0);
  ck_assert_int_eq(evssh_channel_send_data(ch, chunk, sizeof chunk), 0);   /* below the cap: taken whole */
  ck_assert_uint_eq(evssh_channel_pending(ch), 1200);
  ck_assert_int_eq(evssh_channel_send_data(ch, chunk, 1), EVSSH_EAGAIN);
  ck_assert_int_eq(evssh_channel_send_extended_data(ch, 1, chunk, 1), EVSSH_EAGAIN);
  ck_assert_uint_eq(evssh_channel_pending(ch), 1200);
  int drains = 0;
  evssh_channel_on_drain(ch, 0, count_drain, &drains);
  ck_assert_int_eq(conn_flush(S->conn), 0);
  ck_assert_int_eq(drains, 0);
  /* the peer opens its window: the queue drains, on_drain runs once */
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_u32(&b, evssh_channel_id(ch));
  evssh_buf_put_u32(&b, 5000);
  ck_assert_int_eq(feed(SSH_MSG_CHANNEL_WINDOW_ADJUST, &b), 0);
  buf_release(&b);
  ck_assert_uint_eq(evssh_channel_pending(ch), 0);
  ck_assert(conn_has_work(S->conn));   /* the drain callback is due */
  ck_assert_int_eq(conn_flush(S->conn), 0);
  ck_assert_int_eq(drains, 1);
  ck_assert_int_eq(conn_flush(S->conn), 0);
  ck_assert_int_eq(drains, 1);
  ck_assert_int_eq(evssh_channel_send_data(ch, chunk, sizeof chunk), 0);   /* the window takes it */
  ck_assert_int_eq(conn_flush(S->conn), 0);
  ck_assert_int_eq(drains, 1);   /* never rose above low water: not re-armed */
}
END_TEST

static int exit_reports;
static uint32_t last_exit;
static int count_exit(evssh_channel *ch, const char *type, evssh_reader *d, bool want, void *ud) {
  exit_reports++;
  ck_assert_int_eq(evssh_read_u32(d, &last_exit), 0);
  ck_assert_uint_eq(d->left, 0);   /* held without trailing bytes */
  return EVSSH_REPLY_SUCCESS;
}

/* A flood of exit-status requests before EOF keeps only the latest. */
START_TEST(test_exit_status_flood_keeps_latest) {
  evssh_channel *ch = open_confirmed(4, 1000, 1000);
  exit_reports = 0;
  evssh_channel_on_request(ch, "exit-status", count_exit, NULL);
  static unsigned char body[4 + 32768];
  for (uint32_t i = 0; i < 2000; i++) {
    put_u32(body, i);
    ck_assert_int_eq(feed_request(evssh_channel_id(ch), "exit-status", false, body, sizeof body), 0);
  }
  int st = -1;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);
  ck_assert_int_eq(st, 1999);
  ck_assert_int_eq(exit_reports, 0);
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_EOF, evssh_channel_id(ch)), 0);
  ck_assert_int_eq(exit_reports, 1);
  ck_assert_uint_eq(last_exit, 1999);
}
END_TEST

static int accept_all(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) { return 0; }

static int feed_peer_open(const char *type, uint32_t sender) {
  evssh_buf b = EVSSH_BUF_INIT;
  evssh_buf_put_cstring(&b, type);
  evssh_buf_put_u32(&b, sender);
  evssh_buf_put_u32(&b, 1000);
  evssh_buf_put_u32(&b, 1000);
  int rc = feed(SSH_MSG_CHANNEL_OPEN, &b);
  buf_release(&b);
  return rc;
}

/* Channels the peer opens are limited (like sshd's MaxSessions): beyond the
   limit OPEN_FAILURE, resource shortage; a closed one makes room. */
START_TEST(test_peer_channel_limit) {
  conn_set_max_peer_channels(S->conn, 2);
  evssh_session_on_open_channel(S, "forwarded-tcpip", accept_all, NULL);
  uint32_t local[3];
  for (uint32_t i = 0; i < 3; i++) {
    ck_assert_int_eq(feed_peer_open("forwarded-tcpip", 70 + i), 0);
    packet *p = sent_pop();
    ck_assert_ptr_nonnull(p);
    evssh_reader r = reader_of(p->data + 1, p->len - 1);
    uint32_t v;
    ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
    ck_assert_uint_eq(v, 70 + i);
    if (i < 2) {
      ck_assert_uint_eq(p->data[0], SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
      ck_assert_int_eq(evssh_read_u32(&r, &local[i]), 0);
    } else {
      ck_assert_uint_eq(p->data[0], SSH_MSG_CHANNEL_OPEN_FAILURE);
      ck_assert_int_eq(evssh_read_u32(&r, &v), 0);
      ck_assert_uint_eq(v, 4);
    }
    packet_free(p);
  }
  /* one closes: the next open is taken */
  ck_assert_int_eq(feed_u32(SSH_MSG_CHANNEL_CLOSE, local[0]), 0);
  packet_free(sent_pop());
  ck_assert_int_eq(feed_peer_open("forwarded-tcpip", 80), 0);
  packet *p = sent_pop();
  ck_assert_uint_eq(p->data[0], SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
  packet_free(p);
}
END_TEST

/* exec_wait keeps at most the session's limit of output: past it the
   command is ended and the error says so. */
START_TEST(test_exec_wait_output_limit) {
  S->exec_limit = 10000;
  peer.keep_seen = true;
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(S, "big 50000", &r), EVSSH_ELIMIT);
  ck_assert_ptr_null(r.out);
  ck_assert_ptr_nonnull(strstr(last_error, "limit of 10000 bytes"));
  bool closed = false;
  for (packet *p = peer.seen.head; p; p = p->next) closed |= p->data[0] == SSH_MSG_CHANNEL_CLOSE;
  for (packet *p = fake_t.sent.head; p; p = p->next) closed |= p->data[0] == SSH_MSG_CHANNEL_CLOSE;
  ck_assert(closed);   /* we ended the command */
  /* under the limit it works as before */
  ck_assert_int_eq(evssh_session_exec_wait(S, "big 9000", &r), 0);
  ck_assert_uint_eq(r.out_len, 9000);
  evssh_result_free(&r);
}
END_TEST

/* ---------------------------------------------- lifetimes and nesting */

static void note_freed(evssh_channel *ch, void *ud) { *(bool *)ud = true; }

/* wait, then read the exit status: the handle lives until the loop is next
   entered from the outermost level, or longer while held (run under ASan). */
START_TEST(test_wait_then_exit_status) {
  bool freed = false;
  evssh_channel *ch = evssh_session_open_channel(S, NULL, NULL);
  evssh_channel_on_free(ch, note_freed, &freed);
  ck_assert_int_eq(evssh_channel_exec(ch, "hello", NULL, NULL), 0);
  ck_assert_int_eq(evssh_channel_wait(ch), 0);
  int st = -1;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);
  ck_assert_int_eq(st, 5);
  ck_assert(!evssh_channel_active(ch));
  ck_assert(!freed);
  evssh_channel_hold(ch);
  ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), 1);
  ck_assert(!freed);                                   /* held */
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);
  evssh_channel_release(ch);
  ck_assert(!freed);                                   /* freed at the next entry, not here */
  ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), 1);
  ck_assert(freed);
}
END_TEST

/* Nested loops from every callback kind, three levels deep, with channels
   opened, closed and retired at each level. */
typedef struct nest_state {
  int opened[4], closed[4], ran[4][5];
} nest_state;

static nest_state nest;
enum { K_OPEN, K_DATA, K_REQUEST, K_CLOSE, K_LISTEN };

static void nest_level(int level);

static void nest_in(int level, int kind) {
  if (nest.ran[level][kind]++ || level >= 3) return;
  nest_level(level + 1);
  /* and a blocking exec of its own, a channel that comes and goes */
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(S, "x", &r), 0);
  ck_assert_str_eq(r.out, "out:x");
  evssh_result_free(&r);
}

static void nest_open(evssh_channel *ch, void *ud) { nest_in((int)(intptr_t)ud, K_OPEN); }
static void nest_data(evssh_channel *ch, const char *d, size_t n, void *ud) { nest_in((int)(intptr_t)ud, K_DATA); }
static int nest_request(evssh_channel *ch, const char *type, evssh_reader *d, bool want, void *ud) {
  nest_in((int)(intptr_t)ud, K_REQUEST);
  return EVSSH_REPLY_SUCCESS;
}
static void nest_close(evssh_channel *ch, void *ud) {
  int level = (int)(intptr_t)ud;
  nest.closed[level]++;
  nest_in(level, K_CLOSE);
}

static void nest_level(int level) {
  nest.opened[level]++;
  evssh_channel *ch = evssh_session_open_channel(S, nest_open, (void *)(intptr_t)level);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_data(ch, nest_data, (void *)(intptr_t)level);
  evssh_channel_on_request(ch, "exit-status", nest_request, (void *)(intptr_t)level);
  evssh_channel_on_close(ch, nest_close, (void *)(intptr_t)level);
  ck_assert_int_eq(evssh_channel_exec(ch, "hello", NULL, NULL), 0);
  ck_assert_int_eq(evssh_channel_wait(ch), 0);
  int st = -1;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);   /* readable after its wait */
  ck_assert_int_eq(st, 5);
}

static void nest_listen(evssh_session *s, int fd, int ready, void *ud) {
  char c;
  ck_assert_int_eq(read(fd, &c, 1), 1);
  evssh_session_stop_listening_to(s, fd);
  nest_in(0, K_LISTEN);
}

START_TEST(test_nested_loops_every_callback) {
  memset(&nest, 0, sizeof nest);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  ck_assert_int_eq(write(fds[1], "!", 1), 1);
  ck_assert_int_eq(evssh_session_listen_to(S, fds[0], EVSSH_READ, nest_listen, NULL), 0);
  nest_level(0);
  /* the listener's nested run happens in a loop entered from the top */
  for (int i = 0; i < 10 && !nest.ran[0][K_LISTEN]; i++) evssh_session_process(S, 100, NULL, NULL);
  for (int kind = K_OPEN; kind <= K_CLOSE; kind++)
    for (int level = 0; level < 3; level++) ck_assert_msg(nest.ran[level][kind] > 0, "level %d kind %d", level, kind);
  ck_assert_int_eq(nest.ran[0][K_LISTEN], 1);
  for (int level = 0; level <= 3; level++) ck_assert_int_eq(nest.opened[level], nest.closed[level]);
  ck_assert_int_eq(nest.opened[3], 4);   /* one per callback kind of level 2 */
  ck_assert(!evssh_session_busy(S, true));
  close(fds[0]);
  close(fds[1]);
}
END_TEST

typedef struct counter { int calls; } counter;
static void count_process(evssh_channel *ch, void *ud) { ((counter *)ud)->calls++; }

START_TEST(test_on_process_once_per_iteration) {
  counter c = {0};
  evssh_channel *ch = open_confirmed(3, 1000, 1000);
  evssh_channel_on_process(ch, count_process, &c);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(evssh_session_process(S, 0, NULL, NULL), 1);
  ck_assert_int_eq(c.calls, 10);
}
END_TEST

static Suite *connection_suite(void) {
  Suite *s = suite_create("connection");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_exec_callback_order);
  tcase_add_test(tc, test_exit_status_held_until_eof);
  tcase_add_test(tc, test_held_exit_status_on_abort);
  tcase_add_test(tc, test_exec_wait_result);
  tcase_add_test(tc, test_exec_async_many);
  tcase_add_test(tc, test_cat_bulk_both_ways);
  tcase_add_test(tc, test_window_and_max_packet_respected);
  tcase_add_test(tc, test_transport_backpressure);
  tcase_add_test(tc, test_flush_is_fair);
  tcase_add_test(tc, test_window_overrun_is_eproto);
  tcase_add_test(tc, test_open_failure_reason_text);
  tcase_add_test(tc, test_abort_while_opening_one_callback);
  tcase_add_test(tc, test_repeated_eof_one_callback);
  tcase_add_test(tc, test_held_exit_status_superseded);
  tcase_add_test(tc, test_peer_opened_channels);
  tcase_add_test(tc, test_incoming_channel_requests);
  tcase_add_test(tc, test_channel_request_replies_in_order);
  tcase_add_test(tc, test_global_requests_out);
  tcase_add_test(tc, test_global_requests_in);
  tcase_add_test(tc, test_reentrant_callbacks);
  tcase_add_test(tc, test_peer_dies_mid_transfer);
  tcase_add_test(tc, test_keepalive_timeout);
  tcase_add_test(tc, test_keepalive_answered);
  tcase_add_test(tc, test_process_and_loop_cond);
  tcase_add_test(tc, test_busy_invisible);
  tcase_add_test(tc, test_listen_to_pipe);
  tcase_add_test(tc, test_close_all_graceful);
  tcase_add_test(tc, test_on_process_feeds_data);
  tcase_add_test(tc, test_garbage_from_peer);
  tcase_add_test(tc, test_unknown_message_unimplemented);
  tcase_add_test(tc, test_unconfirmed_channel_messages_refused);
  tcase_add_test(tc, test_data_over_max_packet_is_eproto);
  tcase_add_test(tc, test_window_granted_as_consumed);
  tcase_add_test(tc, test_set_receive_window);
  tcase_add_test(tc, test_send_limit_and_drain);
  tcase_add_test(tc, test_exit_status_flood_keeps_latest);
  tcase_add_test(tc, test_peer_channel_limit);
  tcase_add_test(tc, test_exec_wait_output_limit);
  tcase_add_test(tc, test_wait_then_exit_status);
  tcase_add_test(tc, test_nested_loops_every_callback);
  tcase_add_test(tc, test_on_process_once_per_iteration);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(connection_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
