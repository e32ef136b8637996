/* Fuzz target: the connection layer after authentication (connection.c,
 * with loop.c and exec.c on top), through the seam test/test_connection.c
 * uses: the transport_* calls the layer makes and the evssh_session_* calls
 * loop.c and exec.c make are defined here, over the real layer. The input
 * interleaves server messages (every number 80..127 and any other, with
 * bodies built from templates that name live channels, or raw) with client
 * actions (opens, sends, EOF, close, channel and global requests and
 * replies, pause, window and send-limit changes, holds, exec, exec_wait and
 * channel_wait, which run nested loops that go on consuming the input,
 * transport backpressure and rekeys); and every callback takes a
 * "reaction" from a second stream (close, pause, resume, send, open,
 * nested iteration, EOF), so callbacks re-enter the layer anywhere.
 *
 * A model of the peer checks every packet the layer sends: a channel
 * message only to a remote number the peer gave (never the unset 0 of a
 * channel still opening), nothing after our CLOSE, no data after our EOF,
 * data within the peer's window and maximum packet, window adjusts
 * counted; data the peer sent beyond what we granted (or beyond our
 * maximum packet) must be refused, not delivered; peer-opened channels stay
 * within the limit; replies to global requests are never more than were
 * asked for. Callbacks: nothing after on_close or on_open_failed, each at
 * most once; an exit-status handler sees the latest valid status. A
 * refusal (EPROTO) says why. No crash, out-of-bounds access or leak.
 *
 * Input: byte 0 is the length of the reaction stream, which follows; the
 * rest are operations (see step()): below 0x80 a server message (0x40: its
 * number follows, else 80 + the low five bits; 0x20: a raw body follows as
 * a length byte and bytes, else the template's fields), from 0x80 a client
 * action (the low five bits) on a channel (next byte) with an argument. Build: as every test/fuzz/fuzz_*.c
 * (test/fuzz/run.sh). Seeds: test/fuzz/seeds/fuzz_connection/. */
#include "connection.h"

#include "buf.h"
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHANNELS 32    /* channels the harness opens or accepts per input */
#define MAX_DEPTH 3        /* nested loops from callbacks */

/* ------------------------------------------------------------ the input */

typedef struct stream {
  const unsigned char *p;
  size_t left;
} stream;

static stream ops, reactions;

static unsigned take8(stream *s) {
  if (!s->left) return 0;
  s->left--;
  return *s->p++;
}
static unsigned take16(stream *s) { return take8(s) << 8 | take8(s); }
static uint32_t take32(stream *s) { return (uint32_t)take16(s) << 16 | take16(s); }

/* ------------------------------------------------------ the peer model */

typedef struct model {
  bool used;
  uint32_t remote;          /* the peer's number for it, once known */
  bool remote_known;
  bool peer_opened;
  uint64_t granted;         /* bytes we allowed the peer to send (open + adjusts) */
  uint64_t peer_sent;       /* bytes the peer sent that we took */
  uint32_t peer_window;     /* bytes we may still send */
  uint32_t peer_maxp;
  bool eof_sent, close_sent, close_received;
  bool status_valid;        /* the latest valid exit-status the peer sent */
  uint32_t status;
} model;

static model models[256];   /* by our channel number (small: lowest free) */
static struct {
  bool active;              /* a peer CHANNEL_OPEN is being handled */
  uint32_t sender, window, maxp;
  bool answered;
} peer_open;
static size_t max_peer_channels;
static size_t owed_global;  /* global requests from the peer wanting a reply */

static model *model_of_remote(uint32_t r, bool *ambiguous) {
  model *found = NULL;
  int live = 0;
  for (size_t i = 0; i < 256; i++) {
    model *m = &models[i];
    if (!m->used || !m->remote_known || m->remote != r) continue;
    if (!(m->close_sent && m->close_received)) {
      live++;
      found = m;
    } else if (!found) {
      found = m;
    }
  }
  *ambiguous = live > 1;
  return found;
}

/* An accepted peer open: there was room for it (lowering the limit closes
   nothing, so only new ones count). */
static void check_peer_channel_limit(void) {
  size_t live = 0;
  for (size_t i = 0; i < 256; i++)
    if (models[i].used && models[i].peer_opened && !models[i].close_received) live++;
  if (live >= max_peer_channels) abort();
}

/* Every packet the layer sends, checked against what the peer said. */
static void check_outgoing(const unsigned char *p, size_t n) {
  if (n == 0) abort();
  evssh_reader r = reader_of(p + 1, n - 1);
  uint8_t msg = p[0];
  uint32_t id = 0, a = 0, b = 0, c = 0;
  const char *s;
  size_t sl;
  switch (msg) {
  case SSH_MSG_UNIMPLEMENTED:
    if (evssh_read_u32(&r, &id) || id != 4242 || r.left) abort();
    return;
  case SSH_MSG_GLOBAL_REQUEST:
    if (evssh_read_string(&r, &s, &sl)) abort();
    return;
  case SSH_MSG_REQUEST_SUCCESS:
  case SSH_MSG_REQUEST_FAILURE:
    if (owed_global == 0) abort();   /* an answer nobody asked for */
    owed_global--;
    return;
  case SSH_MSG_CHANNEL_OPEN: {
    if (evssh_read_string(&r, &s, &sl) || evssh_read_u32(&r, &id) || evssh_read_u32(&r, &a) ||
        evssh_read_u32(&r, &b) || id >= 256)
      abort();
    model *m = &models[id];
    memset(m, 0, sizeof *m);
    m->used = true;
    m->granted = a;
    return;
  }
  case SSH_MSG_CHANNEL_OPEN_CONFIRMATION: {
    if (evssh_read_u32(&r, &id) || evssh_read_u32(&r, &a) || evssh_read_u32(&r, &b) || evssh_read_u32(&r, &c) ||
        a >= 256)
      abort();
    /* only as the answer to the peer's open being handled, to its number */
    if (!peer_open.active || peer_open.answered || id != peer_open.sender) abort();
    peer_open.answered = true;
    check_peer_channel_limit();
    model *m = &models[a];
    memset(m, 0, sizeof *m);
    m->used = true;
    m->peer_opened = true;
    m->remote = id;
    m->remote_known = true;
    m->granted = b;
    m->peer_window = peer_open.window;
    m->peer_maxp = peer_open.maxp;
    return;
  }
  case SSH_MSG_CHANNEL_OPEN_FAILURE:
    if (evssh_read_u32(&r, &id) || !peer_open.active || peer_open.answered || id != peer_open.sender) abort();
    peer_open.answered = true;
    return;
  default:
    break;
  }
  if (msg < SSH_MSG_CHANNEL_WINDOW_ADJUST || msg > SSH_MSG_CHANNEL_FAILURE) abort();
  if (evssh_read_u32(&r, &id)) abort();
  bool ambiguous;
  model *m = model_of_remote(id, &ambiguous);
  if (!m) abort();                   /* a number the peer never gave (the unset 0) */
  if (ambiguous) return;             /* the peer reused a number: nothing to check */
  if (m->close_sent) abort();        /* nothing after our CLOSE */
  switch (msg) {
  case SSH_MSG_CHANNEL_WINDOW_ADJUST:
    if (evssh_read_u32(&r, &a) || a == 0) abort();
    m->granted += a;
    return;
  case SSH_MSG_CHANNEL_DATA:
  case SSH_MSG_CHANNEL_EXTENDED_DATA:
    if (msg == SSH_MSG_CHANNEL_EXTENDED_DATA && evssh_read_u32(&r, &a)) abort();
    if (evssh_read_string(&r, &s, &sl) || r.left || sl == 0) abort();
    if (m->eof_sent || sl > m->peer_maxp || sl > m->peer_window) abort();
    m->peer_window -= (uint32_t)sl;
    return;
  case SSH_MSG_CHANNEL_EOF:
    if (m->eof_sent) abort();
    m->eof_sent = true;
    return;
  case SSH_MSG_CHANNEL_CLOSE:
    m->close_sent = true;
    return;
  default:
    return;   /* requests and request replies: addressed right is enough */
  }
}

/* What a peer message will change once the layer takes it; applied before
   the layer sees it, since its answers go out while it handles it. */
static void model_incoming(uint8_t msg, const unsigned char *body, size_t len, bool *must_refuse) {
  evssh_reader r = reader_of(len ? body : NULL, len);
  uint32_t id, a, b, c;
  *must_refuse = false;
  if (msg == SSH_MSG_GLOBAL_REQUEST) {
    const char *s;
    size_t sl;
    bool want;
    if (!evssh_read_string(&r, &s, &sl) && !evssh_read_bool(&r, &want) && want) owed_global++;
    return;
  }
  if (msg == SSH_MSG_CHANNEL_OPEN) {
    const char *s;
    size_t sl;
    peer_open.active = !evssh_read_string(&r, &s, &sl) && !evssh_read_u32(&r, &id) && !evssh_read_u32(&r, &a) &&
                       !evssh_read_u32(&r, &b);
    peer_open.answered = false;
    peer_open.sender = id;
    peer_open.window = a;
    peer_open.maxp = b;
    return;
  }
  if (msg < SSH_MSG_CHANNEL_OPEN_CONFIRMATION || msg > SSH_MSG_CHANNEL_FAILURE) return;
  if (evssh_read_u32(&r, &id) || id >= 256 || !models[id].used) return;
  model *m = &models[id];
  switch (msg) {
  case SSH_MSG_CHANNEL_OPEN_CONFIRMATION:
    if (m->remote_known || m->peer_opened) return;   /* not opening: refused */
    if (!evssh_read_u32(&r, &a) && !evssh_read_u32(&r, &b) && !evssh_read_u32(&r, &c)) {
      m->remote = a;
      m->remote_known = true;
      m->peer_window = b;
      m->peer_maxp = c;
    }
    return;
  case SSH_MSG_CHANNEL_WINDOW_ADJUST:
    if (m->remote_known && !evssh_read_u32(&r, &a)) {
      uint64_t w = (uint64_t)m->peer_window + a;
      m->peer_window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    }
    return;
  case SSH_MSG_CHANNEL_DATA:
  case SSH_MSG_CHANNEL_EXTENDED_DATA: {
    const char *s;
    size_t sl;
    if (msg == SSH_MSG_CHANNEL_EXTENDED_DATA && evssh_read_u32(&r, &a)) return;
    if (evssh_read_string(&r, &s, &sl)) return;
    /* beyond what we granted, or larger than our maximum packet: never taken */
    if (sl > CONN_MAX_PACKET || m->peer_sent + sl > m->granted) *must_refuse = true;
    else m->peer_sent += sl;
    return;
  }
  case SSH_MSG_CHANNEL_CLOSE:
    if (m->remote_known) m->close_received = true;
    return;
  case SSH_MSG_CHANNEL_REQUEST: {
    const char *s;
    size_t sl;
    bool want;
    if (evssh_read_string(&r, &s, &sl) || evssh_read_bool(&r, &want)) return;
    if (sl == 11 && memcmp(s, "exit-status", 11) == 0 && !evssh_read_u32(&r, &a)) {
      m->status_valid = true;
      m->status = a;
    }
    return;
  }
  default:
    return;
  }
}

/* ------------------------------------------------------ fake transport */

struct evssh_transport {
  evssh_buf cur;
  bool open;
  size_t pending_out;
  bool kex_running;
};

static evssh_transport T;

evssh_buf *transport_begin(evssh_transport *t, uint8_t msg) {
  if (t->open) abort();
  buf_reset(&t->cur);
  if (evssh_buf_put_u8(&t->cur, msg)) return NULL;
  t->open = true;
  return &t->cur;
}

static bool session_closed_flag;

int transport_end(evssh_transport *t) {
  if (!t->open) abort();
  t->open = false;
  if (session_closed_flag) abort();   /* nothing after the session failed */
  if (buf_avail(&t->cur) - 1 > transport_max_payload(t)) abort();
  check_outgoing(buf_ptr(&t->cur), buf_avail(&t->cur));
  return EVSSH_OK;
}

void transport_abort(evssh_transport *t) {
  if (!t->open) abort();
  t->open = false;
}

int transport_send(evssh_transport *t, uint8_t msg, const void *body, size_t len) {
  evssh_buf *b = transport_begin(t, msg);
  if (!b) return EVSSH_ENOMEM;
  if (len && buf_append(b, body, len)) {
    transport_abort(t);
    return EVSSH_ENOMEM;
  }
  return transport_end(t);
}

size_t transport_pending_out(const evssh_transport *t) { return t->pending_out; }
bool transport_kex_running(const evssh_transport *t) { return t->kex_running; }
size_t transport_max_payload(const evssh_transport *t) { return 32768 + 256; }
bool transport_dispatching(const evssh_transport *t) { return false; }
uint32_t transport_last_seq(const evssh_transport *t) { return 4242; }

/* ------------------------------------------------------- fake session */

struct evssh_session {
  evssh_conn *conn;
  evssh_diag diag;
  bool closed;
  int depth;
  size_t exec_limit;
  char error[512];
};

static evssh_session *S;

static void fake_fail(evssh_session *s, int code, const char *msg) {
  if (s->closed) return;
  if (!msg || !msg[0]) abort();   /* failures say why */
  snprintf(s->error, sizeof s->error, "%s", msg);
  s->diag.error_code = code;
  s->closed = true;
  session_closed_flag = true;
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
const char *evssh_session_error(const evssh_session *s) { return s->error; }
size_t evssh_session_exec_limit(const evssh_session *s) { return s->exec_limit; }
evssh_diag *session_diag(evssh_session *s) { return &s->diag; }
void session_note(evssh_session *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->error, sizeof s->error, fmt, ap);
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
int evssh_session_send_global_reply(evssh_session *s, bool ok, const void *extra, size_t len) {
  return conn_send_global_reply(s->conn, ok, extra, len);
}
int evssh_session_fd(const evssh_session *s) { return -1; }
int evssh_session_events(const evssh_session *s) { return 0; }
size_t evssh_session_listeners(const evssh_session *s, int *fds, int *events, size_t max) { return 0; }
int evssh_session_handle_listener(evssh_session *s, int fd, int revents) { return EVSSH_EINVAL; }
/* never a wait: the input is the only source of events */
int evssh_session_timeout(const evssh_session *s) { return s->closed ? -1 : 0; }

static void step(void);

/* One iteration as session.c runs it: the next operation of the input
   ("I/O"), then on_process, flush; the input's end is the peer hanging up. */
int evssh_session_handle_events(evssh_session *s, int revents) {
  if (s->closed) {
    conn_abort(s->conn, s->diag.error_code);
    return s->diag.error_code;
  }
  if (s->depth == 0) conn_reap(s->conn);
  s->depth++;
  if (!ops.left) fake_fail(s, EVSSH_EDISCONNECT, "the peer closed the connection (end of input)");
  else step();
  if (!s->closed) conn_run_on_process(s->conn);
  int rc = s->closed ? EVSSH_OK : conn_flush(s->conn);
  s->depth--;
  if (rc < 0) fake_fail(s, rc, "flush failed");
  return s->closed ? s->diag.error_code : EVSSH_OK;
}

/* ------------------------------------------------ the program's channels */

/* What each callback saw, to check the order rules. Kept until the end of
   the input (no pointer to the channel: it may be freed before). */
typedef struct rec {
  bool closed, failed, opened, eof;
  bool peer_opened;
} rec;

static rec recs[MAX_CHANNELS * 4];
static size_t nrecs;

typedef struct slot {
  evssh_channel *ch;   /* NULL once freed */
  rec *r;
  bool held;
} slot;

static slot slots[MAX_CHANNELS];
static size_t nslots;

static rec *new_rec(void) { return nrecs < sizeof recs / sizeof recs[0] ? &recs[nrecs++] : NULL; }

static void forget(evssh_channel *ch, void *ud) {
  slot *sl = ud;
  sl->ch = NULL;
}

static slot *pick_slot(unsigned sel) { return nslots ? &slots[sel % nslots] : NULL; }

static evssh_channel *pick(unsigned sel) {
  slot *sl = pick_slot(sel);
  return sl ? sl->ch : NULL;
}

static void react(evssh_channel *ch, rec *r);

static void cb_open(evssh_channel *ch, void *ud) {
  rec *r = ud;
  if (r->opened || r->failed || r->closed) abort();
  r->opened = true;
  react(ch, r);
}
static void cb_failed(evssh_channel *ch, uint32_t reason, const char *desc, void *ud) {
  rec *r = ud;
  if (r->opened || r->failed || r->closed || !desc) abort();
  r->failed = true;
}
static void cb_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  rec *r = ud;
  if (r->closed || r->failed || n > CONN_MAX_PACKET) abort();
  react(ch, r);
}
static void cb_ext(evssh_channel *ch, uint32_t type, const char *d, size_t n, void *ud) { cb_data(ch, d, n, ud); }
static void cb_eof(evssh_channel *ch, void *ud) {
  rec *r = ud;
  if (r->closed || r->failed || r->eof) abort();
  r->eof = true;
  react(ch, r);
}
static void cb_close(evssh_channel *ch, void *ud) {
  rec *r = ud;
  if (r->closed || r->failed) abort();
  r->closed = true;
  react(ch, r);
}
static void cb_process(evssh_channel *ch, void *ud) {
  rec *r = ud;
  if (r->closed || r->failed) abort();
  if (take8(&reactions) % 4 == 0) react(ch, r);
}
static void cb_drain(evssh_channel *ch, void *ud) {
  rec *r = ud;
  if (r->closed || r->failed) abort();
  evssh_channel_send_data(ch, "drained", 7);
}
/* (requests still waiting fail after on_open_failed or on_close: allowed) */
static void cb_reply(evssh_channel *ch, bool ok, void *ud) {
  rec *r = ud;
  if (r && ok && (r->failed || r->closed)) abort();
}
static int cb_request(evssh_channel *ch, const char *type, evssh_reader *d, bool want, void *ud) {
  rec *r = ud;
  if (r->closed || r->failed || !type) abort();
  if (strcmp(type, "exit-status") == 0) {
    uint32_t v;
    if (evssh_read_u32(d, &v) == EVSSH_OK) {
      model *m = &models[evssh_channel_id(ch) & 255];
      if (!m->status_valid || m->status != v) abort();   /* the latest valid one */
      int got;
      if (evssh_channel_exit_status(ch, &got) != EVSSH_OK || (uint32_t)got != v) abort();
    }
  }
  unsigned x = take8(&reactions);
  if (x & 0x80) react(ch, r);
  return (int)(x % 2);
}

static void attach(evssh_channel *ch, rec *r) {
  evssh_channel_on_data(ch, cb_data, r);
  evssh_channel_on_extended_data(ch, cb_ext, r);
  evssh_channel_on_eof(ch, cb_eof, r);
  evssh_channel_on_close(ch, cb_close, r);
  evssh_channel_on_open_failed(ch, cb_failed, r);
  evssh_channel_on_request(ch, "exit-status", cb_request, r);
  evssh_channel_on_request(ch, "exit-signal", cb_request, r);
  evssh_channel_on_request(ch, "x", cb_request, r);
}

static slot *keep(evssh_channel *ch, rec *r, bool own_free) {
  if (!ch || nslots >= MAX_CHANNELS) return NULL;
  slot *sl = &slots[nslots++];
  sl->ch = ch;
  sl->r = r;
  if (own_free) {
    evssh_channel_on_free(ch, forget, sl);
  } else {
    evssh_channel_hold(ch);   /* someone else's on_free: keep it until the end */
    sl->held = true;
  }
  return sl;
}

static evssh_channel *open_one(unsigned how) {
  if (nslots >= MAX_CHANNELS || S->closed) return NULL;
  rec *r = new_rec();
  if (!r) return NULL;
  static const char *const types[] = {"session", "direct-tcpip", "x"};
  evssh_channel *ch = evssh_session_open_channel_type(S, types[how % 3], how & 4 ? "\0\0\0\1z" : NULL,
                                                      how & 4 ? 5 : 0, cb_open, r);
  if (!ch) return NULL;
  attach(ch, r);
  keep(ch, r, true);
  if (how & 8) evssh_channel_exec(ch, "cmd", how & 16 ? cb_reply : NULL, r);
  return ch;
}

static char sendbuf[70000];

/* What a callback does, chosen by the reaction stream. */
static void react(evssh_channel *ch, rec *r) {
  unsigned x = take8(&reactions);
  switch (x % 9) {
  case 0: return;
  case 1: evssh_channel_close(ch); return;
  case 2: evssh_channel_pause(ch, true); return;
  case 3: evssh_channel_pause(ch, false); return;
  case 4: evssh_channel_send_data(ch, sendbuf, (x >> 4) * 997u + 1); return;
  case 5: open_one(x >> 4); return;
  case 6:
    if (S->depth < MAX_DEPTH) evssh_session_process(S, 0, NULL, NULL);
    return;
  case 7: evssh_channel_eof(ch); return;
  default:
    evssh_channel_set_receive_window(ch, (x >> 4) * 4096u + 1);
    return;
  }
}

static int cb_peer_open(evssh_session *s, evssh_channel *ch, evssh_reader *d, void *ud) {
  unsigned x = take8(&reactions);
  rec *r = new_rec();
  if (!r || nslots >= MAX_CHANNELS) return 4;
  r->peer_opened = true;
  attach(ch, r);
  keep(ch, r, true);
  if (x & 0x10) evssh_channel_send_data(ch, "hello", 5);   /* goes out after the confirmation */
  if (x & 0x20) evssh_channel_close(ch);
  return x % 4 == 3 ? (int)(x >> 6) + 1 : 0;
}

static int cb_global(evssh_session *s, const char *type, evssh_reader *d, bool want, void *ud) {
  unsigned x = take8(&reactions);
  if (x & 0x40 && S->depth < MAX_DEPTH) open_one(x);
  return (int)(x % 3);   /* success, failure, or answered later */
}

static void cb_global_reply(evssh_session *s, bool ok, evssh_reader *resp, void *ud) {
  if (!resp) abort();
}

static void cb_exec(evssh_channel *ch, evssh_stream stream, const char *d, size_t n, void *ud) {
  if (n > CONN_MAX_PACKET || (n && !d)) abort();
}

/* --------------------------------------------------------- operations */

static const char *const request_types[] = {"exit-status", "exit-signal", "x", "keepalive@openssh.com", ""};
static const char *const open_types[] = {"forwarded-tcpip", "x11", "auth-agent@openssh.com", "session", "y"};

/* A channel number for a template: mostly a channel we have. */
static uint32_t pick_recipient(void) {
  unsigned sel = take8(&ops);
  if (sel < 0xe0) {
    evssh_channel *ch = pick(sel);
    return ch ? evssh_channel_id(ch) : sel % 4;
  }
  if (sel < 0xf0) return sel - 0xe0;
  return take32(&ops);
}

/* Build the body of server message msg from the input. */
static void build_body(uint8_t msg, bool raw, evssh_buf *b) {
  if (raw) {
    size_t n = take8(&ops);
    if (n > ops.left) n = ops.left;
    buf_append(b, ops.p, n);
    ops.p += n;
    ops.left -= n;
    return;
  }
  switch (msg) {
  case SSH_MSG_GLOBAL_REQUEST:
    evssh_buf_put_cstring(b, request_types[take8(&ops) % 5]);
    evssh_buf_put_bool(b, take8(&ops) & 1);
    return;
  case SSH_MSG_CHANNEL_OPEN: {
    unsigned t = take8(&ops);
    evssh_buf_put_cstring(b, open_types[t % 5]);
    evssh_buf_put_u32(b, 2000 + take8(&ops));
    evssh_buf_put_u32(b, t & 0x80 ? take32(&ops) : 1u << 21);
    evssh_buf_put_u32(b, t & 0x40 ? take16(&ops) : 32768);
    return;
  }
  case SSH_MSG_CHANNEL_OPEN_CONFIRMATION: {
    uint32_t id = pick_recipient();
    unsigned t = take8(&ops);
    evssh_buf_put_u32(b, id);
    evssh_buf_put_u32(b, t & 1 ? take32(&ops) : 1000 + id);   /* the peer's number: usually unique */
    evssh_buf_put_u32(b, t & 2 ? take32(&ops) : 1u << 21);
    evssh_buf_put_u32(b, t & 4 ? take16(&ops) : 32768);
    return;
  }
  case SSH_MSG_CHANNEL_OPEN_FAILURE:
    evssh_buf_put_u32(b, pick_recipient());
    evssh_buf_put_u32(b, take8(&ops));
    evssh_buf_put_cstring(b, "no\nway");
    evssh_buf_put_cstring(b, "");
    return;
  case SSH_MSG_CHANNEL_WINDOW_ADJUST:
    evssh_buf_put_u32(b, pick_recipient());
    evssh_buf_put_u32(b, take8(&ops) & 1 ? take32(&ops) : (uint32_t)take16(&ops) << 4);
    return;
  case SSH_MSG_CHANNEL_DATA:
  case SSH_MSG_CHANNEL_EXTENDED_DATA: {
    evssh_buf_put_u32(b, pick_recipient());
    if (msg == SSH_MSG_CHANNEL_EXTENDED_DATA) evssh_buf_put_u32(b, take8(&ops));
    unsigned t = take8(&ops);
    size_t n = t < 0xf0 ? t * 137u : (size_t)take16(&ops);
    evssh_buf_put_string(b, sendbuf, n);
    return;
  }
  case SSH_MSG_CHANNEL_REQUEST: {
    evssh_buf_put_u32(b, pick_recipient());
    unsigned t = take8(&ops);
    evssh_buf_put_cstring(b, request_types[t % 5]);
    evssh_buf_put_bool(b, t & 0x80);
    if (t % 5 == 0) evssh_buf_put_u32(b, take8(&ops));
    if (t % 5 == 1) {
      evssh_buf_put_cstring(b, t & 0x40 ? "SIGKILL" : "TERM");
      evssh_buf_put_bool(b, t & 0x20);
      evssh_buf_put_cstring(b, "msg");
      evssh_buf_put_cstring(b, "");
    }
    size_t trailing = t & 0x10 ? take8(&ops) * 64u : 0;   /* bytes after the fields */
    unsigned char *tail = trailing ? buf_extend(b, trailing) : NULL;   /* (one call: a byte loop was most of the run) */
    if (tail) memset(tail, 0xaa, trailing);
    return;
  }
  default:
    evssh_buf_put_u32(b, pick_recipient());
    return;
  }
}

static void server_message(uint8_t msg, bool raw) {
  evssh_buf b = EVSSH_BUF_INIT;
  build_body(msg, raw, &b);
  size_t len = buf_avail(&b);
  /* a private copy of exactly the body, so any over-read is caught */
  unsigned char *body = malloc(len ? len : 1);
  if (!body) {
    buf_release(&b);
    return;
  }
  if (len) memcpy(body, buf_ptr(&b), len);
  buf_release(&b);
  bool must_refuse = false;
  model_incoming(msg, body, len, &must_refuse);
  evssh_reader r = reader_of(len ? body : NULL, len);
  int rc = conn_handle_packet(S->conn, msg, &r, 4242);
  peer_open.active = false;
  free(body);
  if (must_refuse && rc == EVSSH_OK && !S->closed) abort();   /* data beyond the window was taken */
  if (rc == EVSSH_EPROTO && !S->closed) abort();              /* refused without saying why */
  if (rc < 0) fake_fail(S, rc, "connection layer failed");
}

/* One operation: a server message (opcode < 0x80) or a client action. */
static void step(void) {
  unsigned op = take8(&ops);
  if (op < 0x80) {
    /* 0x40: the number follows (any of 0..255); else 80 + the low 5 bits;
       0x20: a raw body instead of the template */
    uint8_t msg = op & 0x40 ? (uint8_t)take8(&ops) : (uint8_t)(80 + (op & 0x1f));
    server_message(msg, op & 0x20);
    return;
  }
  slot *sl = pick_slot(take8(&ops));
  evssh_channel *ch = sl ? sl->ch : NULL;
  rec *r = sl ? sl->r : NULL;   /* NULL for exec's channels: their callbacks are exec.c's */
  unsigned arg = take8(&ops);
  switch (op & 0x1f) {
  case 0: open_one(arg); return;
  case 1:
    if (ch) evssh_channel_send_data(ch, sendbuf, arg * 271u);
    return;
  case 2:
    if (ch) evssh_channel_send_extended_data(ch, 1, sendbuf, arg * 13u + 1);
    return;
  case 3:
    if (ch) evssh_channel_eof(ch);
    return;
  case 4:
    if (ch) evssh_channel_close(ch);
    return;
  case 5:
    if (ch) evssh_channel_send_request(ch, request_types[arg % 5], "\0\0\0\1", 4, arg & 8 ? cb_reply : NULL, NULL);
    return;
  case 6:
    if (ch) evssh_channel_pause(ch, arg & 1);
    return;
  case 7:
    if (ch) evssh_channel_set_receive_window(ch, arg * 8192u + (arg & 1));
    return;
  case 8:
    if (ch) {
      size_t limit = arg * 1024u + 1, before = evssh_channel_pending(ch);
      evssh_channel_set_send_limit(ch, limit);
      int rc = evssh_channel_send_data(ch, sendbuf, 60000);
      if (rc == EVSSH_OK && evssh_channel_pending(ch) > before + 60000) abort();
      if (rc == EVSSH_OK && before >= limit) abort();   /* over the cap it must say EAGAIN */
    }
    return;
  case 9:
    if (ch && r) evssh_channel_on_drain(ch, arg * 100u, arg & 1 ? cb_drain : NULL, r);
    return;
  case 10:
    evssh_session_send_global_request(S, request_types[arg % 5], NULL, 0, arg & 8 ? cb_global_reply : NULL, NULL);
    return;
  case 11:
    evssh_session_send_global_reply(S, arg & 1, "ok", arg & 2 ? 2 : 0);
    return;
  case 12:
    conn_on_open_channel(S->conn, open_types[arg % 5], arg & 8 ? NULL : cb_peer_open, NULL);
    return;
  case 13:
    conn_on_global_request(S->conn, request_types[arg % 5], arg & 8 ? NULL : cb_global, NULL);
    return;
  case 14:
    max_peer_channels = arg % 6;
    conn_set_max_peer_channels(S->conn, max_peer_channels);
    return;
  case 15:
    T.pending_out = arg & 1 ? 2u * 1024 * 1024 : 0;   /* the transport backed up, or drained */
    T.kex_running = arg & 2;
    return;
  case 16:
    if (ch && r) evssh_channel_on_process(ch, arg & 1 ? cb_process : NULL, r);
    return;
  case 17: {
    evssh_channel *e = evssh_session_exec(S, "exec", cb_exec, NULL);   /* (NULL would print) */
    if (e) keep(e, NULL, false);
    return;
  }
  case 18:
    if (S->depth < MAX_DEPTH) {
      evssh_result res;
      S->exec_limit = arg * 512u + 1;
      evssh_session_exec_wait(S, "wait", &res);   /* a nested loop over the rest of the input */
      evssh_result_free(&res);
    }
    return;
  case 19:
    if (ch && S->depth < MAX_DEPTH) evssh_channel_wait(ch);
    return;
  case 20:
    if (ch && !sl->held) {
      evssh_channel_hold(ch);
      sl->held = true;
    }
    return;
  case 21:
    if (S->depth < MAX_DEPTH) evssh_session_process(S, 0, NULL, NULL);
    return;
  case 22:
    conn_close_all(S->conn);
    return;
  default:
    if (ch) {
      (void)evssh_channel_active(ch);
      (void)evssh_channel_receive_window(ch);
      (void)evssh_channel_send_window(ch);
      const char *sig;
      evssh_channel_exit_signal(ch, &sig);
    }
    return;
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1) return 0;
  size_t nreact = data[0] < size - 1 ? data[0] : size - 1;
  reactions = (stream){data + 1, nreact};
  ops = (stream){data + 1 + nreact, size - 1 - nreact};
  memset(models, 0, sizeof models);
  memset(&peer_open, 0, sizeof peer_open);
  memset(recs, 0, sizeof recs);
  memset(slots, 0, sizeof slots);
  memset(&T, 0, sizeof T);
  nrecs = nslots = 0;
  owed_global = 0;
  max_peer_channels = CONN_PEER_CHANNELS;
  session_closed_flag = false;
  S = calloc(1, sizeof *S);
  if (!S) return 0;
  S->diag.owner = S;
  S->diag.label = "fuzz";
  S->exec_limit = 64u * 1024 * 1024;
  if (conn_new(S, &S->diag, &fake_events, S, &S->conn) != EVSSH_OK) {
    free(S);
    return 0;
  }
  conn_start(S->conn, &T);
  /* handlers a program registers before connecting */
  conn_on_open_channel(S->conn, "forwarded-tcpip", cb_peer_open, NULL);
  conn_on_global_request(S->conn, "keepalive@openssh.com", cb_global, NULL);
  while (evssh_session_process(S, 0, NULL, NULL) > 0) {}
  /* after the end: every channel had its on_close or on_open_failed */
  for (size_t i = 0; i < nrecs; i++)
    if (!recs[i].closed && !recs[i].failed && !recs[i].peer_opened && recs[i].opened) abort();
  for (size_t i = 0; i < nslots; i++)
    if (slots[i].ch && slots[i].held) evssh_channel_release(slots[i].ch);
  conn_free(S->conn);
  diag_release(&S->diag);
  buf_release(&T.cur);
  free(S);
  return 0;
}
