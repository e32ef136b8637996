/* sftp.c owns one SFTP session: the "sftp" subsystem channel (opened with
 * the public channel API only), the version exchange with its extension
 * list and limits@openssh.com, the table of requests in flight keyed by id,
 * the framing of replies (bounded: a packet over SFTP_MAX_PACKET_IN is a
 * protocol error, never an allocation), dispatch of each reply to the
 * handler of its request, the error text every failure leaves behind, and
 * the lifetime rules: a failure fails everything pending exactly once, and
 * evssh_sftp_free from inside one of our callbacks is deferred until the
 * callback has returned. */
#include "sftp.h"

#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The channel's pending subsystem reply holds this instead of the sftp, so
   a sftp freed before the reply arrives leaves nothing dangling. */
struct sftp_token {
  evssh_sftp *sftp;
};

#define FREE_REQS_KEPT 256

static void sftp_destroy(evssh_sftp *sftp);
static void handle_packet(evssh_sftp *sftp, const unsigned char *p, size_t len);

/* ---------------------------------------------------------- bookkeeping */

/* A lane's replies run its parent's transfers and their callbacks, so the
   parent counts as entered too: freed from there, it waits until the
   lane's frame is gone. */
void sftp_enter(evssh_sftp *sftp) {
  sftp->depth++;
  if (sftp->parent) sftp_enter(sftp->parent);
}

void sftp_leave(evssh_sftp *sftp) {
  evssh_sftp *parent = sftp->parent;
  if (--sftp->depth == 0 && sftp->free_pending) sftp_destroy(sftp);
  if (parent) sftp_leave(parent);
}

bool sftp_usable(const evssh_sftp *sftp) {
  return sftp->state == SFTP_READY && !sftp->freeing && sftp->channel;
}

static bool alive(const evssh_sftp *sftp) { return sftp->state != SFTP_DEAD && !sftp->freeing; }

void sftp_set_error(evssh_sftp *sftp, uint32_t fx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sftp->error, sizeof sftp->error, fmt, ap);
  va_end(ap);
  sftp->status_code = fx;
}

int sftp_abort_code(evssh_sftp *sftp) {
  memcpy(sftp->error, sftp->fail_msg, sizeof sftp->error);
  sftp->status_code = 0;
  return sftp->fail_code ? sftp->fail_code : EVSSH_ECLOSED;
}

bool sftp_has_ext(const evssh_sftp *sftp, const char *name, const char *version) {
  for (size_t i = 0; i < sftp->ext_count; i++) {
    if (!strcmp(sftp->exts[i].name, name) && (!version || !strcmp(sftp->exts[i].version, version)))
      return true;
  }
  return false;
}

/* ---------------------------------------------------------- request table */

static size_t slot_of(const evssh_sftp *sftp, uint32_t id) { return id & (sftp->table_cap - 1); }

static sftp_req *table_find(const evssh_sftp *sftp, uint32_t id) {
  if (!sftp->table_cap) return NULL;
  for (size_t i = slot_of(sftp, id);; i = (i + 1) & (sftp->table_cap - 1)) {
    sftp_req *r = sftp->table[i];
    if (!r) return NULL;
    if (r->id == id) return r;
  }
}

static int table_grow(evssh_sftp *sftp) {
  size_t cap = sftp->table_cap ? sftp->table_cap * 2 : 64;
  sftp_req **t = calloc(cap, sizeof *t);
  if (!t) return EVSSH_ENOMEM;
  for (size_t i = 0; i < sftp->table_cap; i++) {
    sftp_req *r = sftp->table[i];
    if (!r) continue;
    size_t j = r->id & (cap - 1);
    while (t[j]) j = (j + 1) & (cap - 1);
    t[j] = r;
  }
  free(sftp->table);
  sftp->table = t;
  sftp->table_cap = cap;
  return EVSSH_OK;
}

static int table_put(evssh_sftp *sftp, sftp_req *req) {
  if ((sftp->pending + 1) * 2 > sftp->table_cap && table_grow(sftp)) return EVSSH_ENOMEM;
  size_t i = slot_of(sftp, req->id);
  while (sftp->table[i]) i = (i + 1) & (sftp->table_cap - 1);
  sftp->table[i] = req;
  sftp->pending++;
  return EVSSH_OK;
}

/* Linear probing with backward-shift deletion: no tombstones, so lookups
   of unknown ids stay short however many requests came and went. */
static sftp_req *table_take(evssh_sftp *sftp, uint32_t id) {
  if (!sftp->table_cap) return NULL;
  size_t mask = sftp->table_cap - 1, i = slot_of(sftp, id);
  for (;; i = (i + 1) & mask) {
    if (!sftp->table[i]) return NULL;
    if (sftp->table[i]->id == id) break;
  }
  sftp_req *found = sftp->table[i];
  sftp->table[i] = NULL;
  sftp->pending--;
  for (size_t j = (i + 1) & mask; sftp->table[j]; j = (j + 1) & mask) {
    size_t home = sftp->table[j]->id & mask;
    bool stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    sftp->table[i] = sftp->table[j];
    sftp->table[j] = NULL;
    i = j;
  }
  return found;
}

sftp_req *sftp_req_new(evssh_sftp *sftp, uint8_t request, sftp_reply_fn fn) {
  sftp_req *req = sftp->free_reqs;
  if (req) {
    sftp->free_reqs = req->next;
    sftp->free_count--;
  } else {
    req = malloc(sizeof *req);
    if (!req) return NULL;
  }
  memset(req, 0, sizeof *req);
  do {
    req->id = sftp->next_id++;
  } while (table_find(sftp, req->id));
  req->request = request;
  req->fn = fn;
  return req;
}

void sftp_req_free(evssh_sftp *sftp, sftp_req *req) {
  if (!req) return;
  if (req->file) sftp_file_unref(req->file);
  free(req->path);
  free(req->path2);
  if (sftp->free_count < FREE_REQS_KEPT && !sftp->freeing) {
    req->next = sftp->free_reqs;
    sftp->free_reqs = req;
    sftp->free_count++;
  } else {
    free(req);
  }
}

/* ------------------------------------------------------------- sending */

evssh_buf *sftp_begin(evssh_sftp *sftp, sftp_req *req) {
  evssh_buf *b = &sftp->out;
  buf_reset(b);
  if (evssh_buf_put_u32(b, 0) || evssh_buf_put_u8(b, req->request) || evssh_buf_put_u32(b, req->id))
    return NULL;
  return b;
}

evssh_buf *sftp_begin_extended(evssh_sftp *sftp, sftp_req *req, const char *name) {
  evssh_buf *b = sftp_begin(sftp, req);
  if (b && evssh_buf_put_cstring(b, name)) return NULL;
  return b;
}

int sftp_send(evssh_sftp *sftp, sftp_req *req, const void *trailing, size_t trailing_len) {
  if (!sftp_usable(sftp) && !(sftp->state == SFTP_OPENING && sftp->channel)) {
    sftp_req_free(sftp, req);
    return EVSSH_ECLOSED;
  }
  if (sftp->pending >= EVSSH_SFTP_MAX_PENDING) {
    sftp_req_free(sftp, req);
    return EVSSH_EBUSY;
  }
  evssh_buf *b = &sftp->out;
  size_t head = buf_avail(b);
  uint64_t length = (uint64_t)head - 4 + trailing_len;
  uint64_t limit = sftp->limits.max_packet_length ? sftp->limits.max_packet_length : SFTP_MAX_PACKET_IN;
  if (head < 9 || length > limit) {
    sftp_req_free(sftp, req);
    return EVSSH_EINVAL;
  }
  put_u32(b->data + b->off, (uint32_t)length);
  if (table_put(sftp, req)) {
    sftp_req_free(sftp, req);
    return EVSSH_ENOMEM;
  }
  int rc = evssh_channel_send_data(sftp->channel, buf_ptr(b), head);
  if (rc) {
    table_take(sftp, req->id);
    sftp_req_free(sftp, req);
    return rc;
  }
  if (trailing_len) {
    rc = evssh_channel_send_data(sftp->channel, trailing, trailing_len);
    if (rc) {
      /* half a packet is on its way: the stream cannot be trusted any more */
      sftp_fail(sftp, rc, "sftp: could not queue request data: %s", evssh_strerror(rc));
      return rc;
    }
  }
  return EVSSH_OK;
}

/* ------------------------------------------------------------- failure */

static void fail_pending(evssh_sftp *sftp) {
  /* handlers may try to send more (and fail at once): drain until empty */
  while (sftp->pending) {
    for (size_t i = 0; i < sftp->table_cap; i++) {
      sftp_req *req = sftp->table[i];
      if (!req) continue;
      table_take(sftp, req->id);
      if (req->charge <= sftp->inflight) sftp->inflight -= req->charge;
      req->fn(sftp, req, 0, NULL);
      sftp_req_free(sftp, req);
      break;
    }
  }
}

void sftp_fail(evssh_sftp *sftp, int code, const char *fmt, ...) {
  if (sftp->state == SFTP_DEAD) return;
  bool was_opening = sftp->state == SFTP_OPENING;
  sftp->state = SFTP_DEAD;
  sftp->fail_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sftp->fail_msg, sizeof sftp->fail_msg, fmt, ap);
  va_end(ap);
  memcpy(sftp->error, sftp->fail_msg, sizeof sftp->error);
  sftp->status_code = 0;
  if (sftp->channel) evssh_channel_close(sftp->channel);
  sftp_enter(sftp);
  fail_pending(sftp);
  if (sftp->lanes_end) sftp->lanes_end(sftp, code, false);
  if (sftp->xfers_abort) sftp->xfers_abort(sftp, code);
  if (was_opening && sftp->on_ready && !sftp->freeing) {
    evssh_sftp_cb cb = sftp->on_ready;
    sftp->on_ready = NULL;
    memcpy(sftp->error, sftp->fail_msg, sizeof sftp->error);
    cb(sftp, code, sftp->ready_ud);
  }
  sftp_leave(sftp);
}

int sftp_unexpected(evssh_sftp *sftp, sftp_req *req, uint8_t type, const char *what) {
  const char *path = req->file ? req->file->path : req->path;
  sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: %s (reply %s to %s request %u%s%s%s)", what,
            sftp_request_name(type), sftp_request_name(req->request), req->id, path ? " for " : "",
            path ? path : "", req->path2 ? " and another path" : "");
  return EVSSH_EPROTO;
}

int sftp_status_result(evssh_sftp *sftp, sftp_req *req, evssh_reader *body, bool *eof) {
  uint32_t code;
  const char *msg = NULL;
  size_t msg_len = 0;
  if (evssh_read_u32(body, &code)) return sftp_unexpected(sftp, req, SSH_FXP_STATUS, "STATUS without a code");
  /* message and language tag: required by the draft, missing from some
     old servers; take what is there */
  if (evssh_read_string(body, &msg, &msg_len)) msg = NULL;
  if (code == 0) return EVSSH_OK;
  if (code == 1 && eof) {
    *eof = true;
    return EVSSH_OK;
  }
  char text[256];
  if (msg && msg_len)
    sftp_printable(text, sizeof text, msg, msg_len);
  else
    snprintf(text, sizeof text, "%s", sftp_fx_name(code));
  const char *path = req->file ? req->file->path : req->path;
  if (path && !*path) path = NULL;
  if (path && req->path2)
    sftp_set_error(sftp, code, "remote: %s (%s -> %s)", text, path, req->path2);
  else if (path)
    sftp_set_error(sftp, code, "remote: %s (%s)", text, path);
  else
    sftp_set_error(sftp, code, "remote: %s (%s)", text, sftp_request_name(req->request));
  return EVSSH_ESFTP;
}

/* ------------------------------------------------------------- files */

evssh_sftp_file *sftp_file_new(evssh_sftp *sftp, const char *path, const void *handle, size_t len) {
  if (len > SFTP_MAX_HANDLE) return NULL;
  evssh_sftp_file *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->path = strdup(path ? path : "");
  if (!f->path) {
    free(f);
    return NULL;
  }
  memcpy(f->handle, handle, len);
  f->handle_len = len;
  f->sftp = sftp;
  f->next = sftp->files;
  if (sftp->files) sftp->files->prev = f;
  sftp->files = f;
  return f;
}

void sftp_file_free(evssh_sftp_file *f) {
  if (!f) return;
  evssh_sftp *sftp = f->sftp;
  if (f->prev) f->prev->next = f->next; else sftp->files = f->next;
  if (f->next) f->next->prev = f->prev;
  free(f->path);
  free(f);
}

void sftp_file_ref(sftp_req *req, evssh_sftp_file *f) {
  req->file = f;
  f->refs++;
}

void sftp_file_unref(evssh_sftp_file *f) {
  if (f->refs) f->refs--;
  if (!f->refs && f->closed) sftp_file_free(f);
}

bool sftp_file_ok(const evssh_sftp *sftp, const evssh_sftp_file *f) {
  return f && f->sftp == sftp && !f->closing;
}

int sftp_read_handle(evssh_sftp *sftp, sftp_req *req, evssh_reader *body, evssh_sftp_file **out) {
  const char *h;
  size_t n;
  if (evssh_read_string(body, &h, &n) || n == 0 || n > SFTP_MAX_HANDLE)
    return sftp_unexpected(sftp, req, SSH_FXP_HANDLE, "a handle must be 1 to 256 bytes");
  *out = sftp_file_new(sftp, req->path, h, n);
  return *out ? EVSSH_OK : EVSSH_ENOMEM;
}

/* --------------------------------------------------- version and limits */

static void become_ready(evssh_sftp *sftp) {
  sftp->state = SFTP_READY;
  if (sftp->on_ready && !sftp->freeing) {
    evssh_sftp_cb cb = sftp->on_ready;
    sftp->on_ready = NULL;
    cb(sftp, EVSSH_OK, sftp->ready_ud);
  }
}

static uint32_t clamp_block(uint64_t v, uint64_t fallback) {
  if (v == 0) v = fallback;
  if (v > SFTP_BLOCK_CEILING) v = SFTP_BLOCK_CEILING;
  return (uint32_t)v;
}

/* Block sizes from the server's limits: READ/WRITE lengths, and packets
   (header included) within max-packet-length. */
static void apply_limits(evssh_sftp *sftp) {
  const evssh_sftp_limits *l = &sftp->limits;
  uint64_t pkt_room = l->max_packet_length > 1024 ? l->max_packet_length - 1024 : 0;
  uint64_t rd = l->max_read_length, wr = l->max_write_length;
  if (pkt_room && (!rd || rd > pkt_room)) rd = pkt_room;
  if (pkt_room && (!wr || wr > pkt_room)) wr = pkt_room;
  sftp->read_block = clamp_block(rd, SFTP_DEFAULT_BLOCK);
  sftp->write_block = clamp_block(wr, SFTP_DEFAULT_BLOCK);
  sftp->max_write = clamp_block(wr, SFTP_NOLIMITS_MAX_IO);
}

static void on_limits(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  if (!type) return; /* the failure already reached on_ready */
  if (type == SSH_FXP_EXTENDED_REPLY) {
    evssh_sftp_limits l;
    if (evssh_read_u64(body, &l.max_packet_length) || evssh_read_u64(body, &l.max_read_length) ||
        evssh_read_u64(body, &l.max_write_length) || evssh_read_u64(body, &l.max_open_handles)) {
      sftp_unexpected(sftp, req, type, "limits@openssh.com reply too short");
      return;
    }
    /* a server asking for packets smaller than the draft's minimum would
       make every request fail: ignore such limits */
    if (!l.max_packet_length || l.max_packet_length >= 34000) {
      sftp->limits = l;
      sftp->have_limits = true;
      apply_limits(sftp);
    }
  } else if (type != SSH_FXP_STATUS) {
    sftp_unexpected(sftp, req, type, "unexpected reply to limits@openssh.com");
    return;
  }
  become_ready(sftp);
}

static void on_version(evssh_sftp *sftp, evssh_reader *r) {
  uint32_t version;
  if (evssh_read_u32(r, &version)) {
    sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: SSH_FXP_VERSION without a version");
    return;
  }
  if (version < SFTP_PROTOCOL_VERSION) {
    sftp_fail(sftp, EVSSH_EPROTO, "sftp: the server speaks SFTP version %u; evssh needs version 3", version);
    return;
  }
  sftp->version = SFTP_PROTOCOL_VERSION;
  while (r->left) {
    const char *name, *ver;
    size_t nlen, vlen;
    if (evssh_read_string(r, &name, &nlen) || evssh_read_string(r, &ver, &vlen)) {
      sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: malformed extension list in SSH_FXP_VERSION");
      return;
    }
    if (memchr(name, 0, nlen) || memchr(ver, 0, vlen)) continue;
    sftp_ext *v = realloc(sftp->exts, (sftp->ext_count + 1) * sizeof *v);
    if (!v) {
      sftp_fail(sftp, EVSSH_ENOMEM, "sftp: out of memory");
      return;
    }
    sftp->exts = v;
    sftp_ext *e = &v[sftp->ext_count];
    e->name = strndup(name, nlen);
    e->version = strndup(ver, vlen);
    if (!e->name || !e->version) {
      free(e->name);
      free(e->version);
      sftp_fail(sftp, EVSSH_ENOMEM, "sftp: out of memory");
      return;
    }
    sftp->ext_count++;
  }
  if (sftp_has_ext(sftp, "limits@openssh.com", "1")) {
    sftp_req *req = sftp_req_new(sftp, SSH_FXP_EXTENDED, on_limits);
    int rc = req ? EVSSH_OK : EVSSH_ENOMEM;
    if (req && !sftp_begin_extended(sftp, req, "limits@openssh.com")) {
      sftp_req_free(sftp, req);
      rc = EVSSH_ENOMEM;
    }
    if (!rc) rc = sftp_send(sftp, req, NULL, 0);
    if (rc) sftp_fail(sftp, rc, "sftp: could not ask for the server's limits: %s", evssh_strerror(rc));
    return;
  }
  become_ready(sftp);
}

/* --------------------------------------------------------- reply framing */

static void handle_packet(evssh_sftp *sftp, const unsigned char *p, size_t len) {
  evssh_reader r = {p + 1, len - 1};
  uint8_t type = p[0];
  if (sftp->version == 0) {
    if (type != SSH_FXP_VERSION) {
      sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: the server's first packet is %s, not SSH_FXP_VERSION",
                sftp_request_name(type));
      return;
    }
    on_version(sftp, &r);
    return;
  }
  /* only reply types reach the handlers (type 0 means "aborted" there) */
  if ((type < SSH_FXP_STATUS || type > SSH_FXP_ATTRS) && type != SSH_FXP_EXTENDED_REPLY) {
    sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: the server sent packet type %u, which is no reply", type);
    return;
  }
  uint32_t id;
  if (evssh_read_u32(&r, &id)) {
    sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: %zu-byte %s packet without a request id", len,
              sftp_request_name(type));
    return;
  }
  sftp_req *req = table_take(sftp, id);
  if (!req) {
    sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: %s reply to request id %u, which is not pending",
              sftp_request_name(type), id);
    return;
  }
  if (req->charge <= sftp->inflight) sftp->inflight -= req->charge;
  req->fn(sftp, req, type, &r);
  sftp_req_free(sftp, req);
}

static void bad_first_bytes(evssh_sftp *sftp, const unsigned char *p, size_t n) {
  char text[64];
  sftp_printable(text, sizeof text, (const char *)p, n < 40 ? n : 40);
  sftp_fail(sftp, EVSSH_EPROTO,
            "sftp: protocol error: the server's first bytes are no SFTP packet (\"%s\"); does a login "
            "script print to stdout?", text);
}

/* Complete packets in p[0..n): returns the bytes used; stops at a partial
   packet or when the sftp ends. */
static size_t parse_packets(evssh_sftp *sftp, const unsigned char *p, size_t n) {
  size_t used = 0;
  while (n - used >= 4 && alive(sftp)) {
    uint32_t plen = get_u32(p + used);
    if (plen == 0 || plen > SFTP_MAX_PACKET_IN) {
      if (sftp->version == 0) {
        bad_first_bytes(sftp, p + used, n - used);
      } else {
        sftp_fail(sftp, EVSSH_EPROTO, "sftp: protocol error: the server sent a %u-byte packet (limit %u)",
                  plen, SFTP_MAX_PACKET_IN);
      }
      return used;
    }
    if (n - used - 4 < plen) break;
    handle_packet(sftp, p + used + 4, plen);
    used += 4 + (size_t)plen;
  }
  return used;
}

static void on_channel_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  evssh_sftp *sftp = ud;
  if (!alive(sftp)) return;
  if (sftp->parsing) {
    /* a callback of ours ran a nested loop (another sftp's _wait, exec_wait):
       the replies before these bytes are still being dispatched further up
       the stack, so these wait their turn there */
    if (buf_append(&sftp->held, data, len)) sftp_fail(sftp, EVSSH_ENOMEM, "sftp: out of memory buffering a reply");
    return;
  }
  sftp_enter(sftp);
  sftp->parsing = true;
  const unsigned char *p = (const unsigned char *)data;
  size_t n = len;
  /* nothing buffered: whole packets straight from the channel's bytes */
  if (buf_avail(&sftp->in) == 0) {
    size_t used = parse_packets(sftp, p, n);
    p += used;
    n -= used;
  }
  if (n && alive(sftp)) {
    if (buf_append(&sftp->in, p, n)) {
      sftp_fail(sftp, EVSSH_ENOMEM, "sftp: out of memory buffering a reply");
    } else {
      size_t used = parse_packets(sftp, buf_ptr(&sftp->in), buf_avail(&sftp->in));
      buf_consume(&sftp->in, used);
    }
  }
  while (buf_avail(&sftp->held) && alive(sftp)) {
    if (buf_append(&sftp->in, buf_ptr(&sftp->held), buf_avail(&sftp->held))) {
      sftp_fail(sftp, EVSSH_ENOMEM, "sftp: out of memory buffering a reply");
      break;
    }
    buf_consume(&sftp->held, buf_avail(&sftp->held));
    size_t used = parse_packets(sftp, buf_ptr(&sftp->in), buf_avail(&sftp->in));
    buf_consume(&sftp->in, used);
  }
  sftp->parsing = false;
  if (alive(sftp) && sftp->xfers_pump) sftp->xfers_pump(sftp);
  sftp_leave(sftp);
}

/* ------------------------------------------------------ channel events */

static void on_channel_ext_data(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  evssh_sftp *sftp = ud;
  /* what the server prints on stderr explains why it quits; only the
     first words are kept for the message */
  size_t have = strlen(sftp->server_stderr);
  if (have + 1 >= sizeof sftp->server_stderr) return;
  sftp_printable(sftp->server_stderr + have, sizeof sftp->server_stderr - have, data, len);
}

static void channel_gone(evssh_sftp *sftp, const char *why) {
  size_t n = strlen(sftp->server_stderr);
  while (n && (sftp->server_stderr[n - 1] == '?' || sftp->server_stderr[n - 1] == ' ')) n--;
  sftp_enter(sftp);
  if (n)
    sftp_fail(sftp, EVSSH_ECLOSED, "%s (it said: %.*s)", why, (int)n, sftp->server_stderr);
  else
    sftp_fail(sftp, EVSSH_ECLOSED, "%s", why);
  sftp_leave(sftp);
}

static void on_channel_eof(evssh_channel *ch, void *ud) {
  channel_gone(ud, "sftp: the server ended the sftp channel");
}

static void on_channel_close(evssh_channel *ch, void *ud) {
  evssh_sftp *sftp = ud;
  evssh_session *s = sftp->session;
  sftp->channel = NULL;
  sftp->session = NULL;
  char why[512];
  if (s && evssh_session_closed(s)) {
    snprintf(why, sizeof why, "sftp: the session ended: %s", evssh_session_error(s));
  } else {
    snprintf(why, sizeof why, "sftp: the server closed the sftp channel");
  }
  channel_gone(sftp, why);
}

static void on_channel_open_failed(evssh_channel *ch, uint32_t reason, const char *description, void *ud) {
  evssh_sftp *sftp = ud;
  sftp->channel = NULL;
  sftp->session = NULL;
  sftp_enter(sftp);
  sftp_fail(sftp, EVSSH_ECHANNEL, "sftp: the server refused the channel (%u: %s)", reason,
            description ? description : "");
  sftp_leave(sftp);
}

/* The one place the channel's receive window is set: large enough for the
   bandwidth-delay product so downloads are not capped by the window. */
static void apply_receive_window(evssh_sftp *sftp) {
  if (sftp->channel) evssh_channel_set_receive_window(sftp->channel, sftp->receive_window);
}

static void on_subsystem_reply(evssh_channel *ch, bool success, void *ud) {
  sftp_token *tok = ud;
  evssh_sftp *sftp = tok->sftp;
  free(tok);
  if (!sftp) return;
  sftp->token = NULL;
  if (!alive(sftp)) return;
  if (success) return;
  sftp_enter(sftp);
  if (sftp->exec_mode)
    sftp_fail(sftp, EVSSH_ECHANNEL, "sftp: the server refused to run the sftp server command");
  else
    sftp_fail(sftp, EVSSH_ECHANNEL,
              "sftp: the server refused the subsystem request (is 'Subsystem sftp' configured in sshd_config?)");
  sftp_leave(sftp);
}

/* ------------------------------------------------------------- public */

evssh_sftp *evssh_sftp_open_subsystem(evssh_session *s, const char *subsystem, evssh_sftp_cb on_ready,
                                      void *ud) {
  if (!s || !subsystem || !*subsystem) return NULL;
  evssh_sftp *sftp = calloc(1, sizeof *sftp);
  sftp_token *tok = calloc(1, sizeof *tok);
  if (!sftp || !tok) {
    free(sftp);
    free(tok);
    return NULL;
  }
  buf_init(&sftp->in);
  buf_init(&sftp->held);
  buf_init(&sftp->out);
  buf_init(&sftp->scratch);
  sftp->session = s;
  sftp->on_ready = on_ready;
  sftp->ready_ud = ud;
  sftp->next_id = 1;
  sftp->max_requests = SFTP_DEFAULT_REQUESTS;
  sftp->inflight_cap = SFTP_DEFAULT_INFLIGHT;
  sftp->receive_window = SFTP_DEFAULT_WINDOW;
  sftp->upload_channels = 1;
  sftp->channels_ceiling = SFTP_MAX_CHANNELS;
  apply_limits(sftp);
  sftp->exec_mode = strchr(subsystem, '/') != NULL;

  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  if (!ch) {
    free(sftp);
    free(tok);
    return NULL;
  }
  sftp->channel = ch;
  apply_receive_window(sftp); /* in effect from the confirmation on */
  evssh_channel_on_data(ch, on_channel_data, sftp);
  evssh_channel_on_extended_data(ch, on_channel_ext_data, sftp);
  evssh_channel_on_eof(ch, on_channel_eof, sftp);
  evssh_channel_on_close(ch, on_channel_close, sftp);
  evssh_channel_on_open_failed(ch, on_channel_open_failed, sftp);
  tok->sftp = sftp;
  int rc = sftp->exec_mode ? evssh_channel_exec(ch, subsystem, on_subsystem_reply, tok)
                           : evssh_channel_subsystem(ch, subsystem, on_subsystem_reply, tok);
  if (rc) {
    free(tok);
    evssh_sftp_free(sftp);
    return NULL;
  }
  sftp->token = tok;
  /* INIT rides right behind the request, as ssh's own sftp does: one round
     trip less; a refused subsystem simply never answers it */
  unsigned char init[9];
  put_u32(init, 5);
  init[4] = SSH_FXP_INIT;
  put_u32(init + 5, SFTP_PROTOCOL_VERSION);
  if (evssh_channel_send_data(ch, init, sizeof init)) {
    evssh_sftp_free(sftp);
    return NULL;
  }
  return sftp;
}

evssh_sftp *evssh_sftp_open(evssh_session *s, evssh_sftp_cb on_ready, void *ud) {
  return evssh_sftp_open_subsystem(s, "sftp", on_ready, ud);
}

typedef struct start_wait {
  bool done;
  int status;
} start_wait;

static void start_ready(evssh_sftp *sftp, int status, void *ud) {
  start_wait *w = ud;
  w->done = true;
  w->status = status;
}

static bool until_done(evssh_session *s, void *ud) { return !*(const bool *)ud; }

static void fill_error(evssh_error *err, int code, const char *msg) {
  if (!err) return;
  err->code = code;
  size_t n = strlen(msg);
  if (n >= sizeof err->message) n = sizeof err->message - 1; /* evssh_error's size is the contract's */
  memcpy(err->message, msg, n);
  err->message[n] = 0;
}

evssh_sftp *evssh_sftp_start_subsystem(evssh_session *s, const char *subsystem, evssh_error *err) {
  if (!s || !subsystem) {
    fill_error(err, EVSSH_EINVAL, "sftp: no session or subsystem");
    return NULL;
  }
  int rc;
  start_wait w = {false, EVSSH_OK};
  evssh_sftp *sftp = evssh_sftp_open_subsystem(s, subsystem, start_ready, &w);
  if (!sftp) {
    fill_error(err, evssh_session_closed(s) ? EVSSH_ECLOSED : EVSSH_ENOMEM,
               evssh_session_closed(s) ? evssh_session_error(s) : "sftp: could not open a channel");
    return NULL;
  }
  /* a server that takes the subsystem and never answers must not hang
     us: the same bound as the connect phases' default */
  rc = sftp_wait(sftp, &w.done, SFTP_START_TIMEOUT_MS);
  if (!w.done || w.status) {
    fill_error(err, w.done ? w.status : rc, sftp->error);
    evssh_sftp_free(sftp);
    return NULL;
  }
  if (err) {
    err->code = EVSSH_OK;
    err->message[0] = 0;
  }
  return sftp;
}

evssh_sftp *evssh_sftp_start(evssh_session *s, evssh_error *err) {
  return evssh_sftp_start_subsystem(s, "sftp", err);
}

int sftp_wait(evssh_sftp *sftp, const bool *done, int timeout_ms) {
  if (*done) return EVSSH_OK;
  evssh_session *s = sftp->session;
  if (!s) return EVSSH_ECLOSED;
  int64_t deadline = timeout_ms < 0 ? -1 : base_now_ms() + timeout_ms;
  int rc = 1;
  while (!*done && rc > 0) {
    int64_t left = deadline < 0 ? -1 : deadline - base_now_ms();
    if (deadline >= 0 && left <= 0) break;
    rc = evssh_session_process(s, left < 0 || left > 1000 ? 1000 : (int)left, until_done, (void *)done);
  }
  if (!*done) {
    /* given up with our work still pending (the loop fails every channel
       when the session dies, so this is a deadline or a loop error): end
       it here so no callback outlives the caller's frame */
    if (rc > 0)
      sftp_fail(sftp, EVSSH_ETIMEOUT, "sftp: no answer from the server within %d s", timeout_ms / 1000);
    else
      sftp_fail(sftp, rc < 0 ? rc : EVSSH_ECLOSED, "sftp: the session's loop stopped: %s",
                evssh_strerror(rc < 0 ? rc : EVSSH_ECLOSED));
    return rc > 0 ? EVSSH_ETIMEOUT : rc < 0 ? rc : EVSSH_ECLOSED;
  }
  return rc < 0 ? rc : EVSSH_OK;
}

int sftp_wait_check(evssh_sftp *sftp) {
  if (!sftp->session) return EVSSH_ECLOSED;
  if (sftp->depth > 0) {
    sftp_set_error(sftp, 0, "sftp: a blocking call cannot run inside one of the same sftp's callbacks "
                            "(its replies are dispatched further up the stack): use the asynchronous call");
    return EVSSH_EBUSY;
  }
  return EVSSH_OK;
}

static void sftp_destroy(evssh_sftp *sftp) {
  sftp->freeing = true;
  /* a lane's teardown runs no callback of its parent's: the caller's
     sftp_leave still balances the parent's depth (it read the pointer) */
  sftp->parent = NULL;
  if (sftp->token) sftp->token->sftp = NULL;
  if (sftp->channel) {
    evssh_channel *ch = sftp->channel;
    evssh_channel_on_data(ch, NULL, NULL);
    evssh_channel_on_extended_data(ch, NULL, NULL);
    evssh_channel_on_eof(ch, NULL, NULL);
    evssh_channel_on_close(ch, NULL, NULL);
    evssh_channel_on_open_failed(ch, NULL, NULL);
    evssh_channel_close(ch);
    sftp->channel = NULL;
  }
  sftp->depth = 1; /* nothing below may re-enter the destruction */
  if (sftp->state != SFTP_DEAD) {
    sftp->state = SFTP_DEAD;
    sftp->fail_code = EVSSH_ECLOSED;
  }
  fail_pending(sftp);
  /* the lanes' requests answered first, so every transfer can end; the
     lanes themselves go once no transfer holds a handle on them */
  if (sftp->lanes_end) sftp->lanes_end(sftp, EVSSH_ECLOSED, false);
  if (sftp->xfers_abort) sftp->xfers_abort(sftp, EVSSH_ECLOSED);
  if (sftp->lanes_end) sftp->lanes_end(sftp, EVSSH_ECLOSED, true);
  if (sftp->trees_free) sftp->trees_free(sftp);
  while (sftp->files) sftp_file_free(sftp->files);
  for (size_t i = 0; i < sftp->ext_count; i++) {
    free(sftp->exts[i].name);
    free(sftp->exts[i].version);
  }
  free(sftp->exts);
  while (sftp->free_reqs) {
    sftp_req *r = sftp->free_reqs;
    sftp->free_reqs = r->next;
    free(r);
  }
  free(sftp->table);
  free(sftp->iobuf);
  buf_release(&sftp->in);
  buf_release(&sftp->held);
  buf_release(&sftp->out);
  buf_release(&sftp->scratch);
  free(sftp);
}

void evssh_sftp_free(evssh_sftp *sftp) {
  if (!sftp) return;
  if (sftp->depth > 0) {
    /* inside one of our callbacks: silence the rest, free on the way out */
    sftp->free_pending = true;
    sftp->freeing = true;
    return;
  }
  sftp_destroy(sftp);
}

const char *evssh_sftp_error(const evssh_sftp *sftp) { return sftp ? sftp->error : "no sftp"; }
uint32_t evssh_sftp_status(const evssh_sftp *sftp) { return sftp ? sftp->status_code : 0; }
evssh_session *evssh_sftp_session(const evssh_sftp *sftp) { return sftp ? sftp->session : NULL; }
bool evssh_sftp_ready(const evssh_sftp *sftp) { return sftp && sftp_usable(sftp); }
size_t evssh_sftp_pending(const evssh_sftp *sftp) {
  if (!sftp) return 0;
  size_t n = sftp->pending;
  for (unsigned i = 0; i < SFTP_MAX_CHANNELS - 1; i++) n += sftp->lanes[i] ? sftp->lanes[i]->pending : 0;
  return n;
}
uint64_t evssh_sftp_transferred(const evssh_sftp *sftp) { return sftp ? sftp->transferred : 0; }

const char *evssh_sftp_extension(const evssh_sftp *sftp, const char *name) {
  if (!sftp || !name) return NULL;
  for (size_t i = 0; i < sftp->ext_count; i++) {
    if (!strcmp(sftp->exts[i].name, name)) return sftp->exts[i].version;
  }
  return NULL;
}

int evssh_sftp_server_limits(const evssh_sftp *sftp, evssh_sftp_limits *out) {
  if (!sftp || !out) return EVSSH_EINVAL;
  *out = sftp->limits;
  return EVSSH_OK;
}

int evssh_sftp_set_pipeline(evssh_sftp *sftp, uint32_t max_requests, uint32_t block_size,
                            size_t max_inflight_bytes) {
  if (!sftp || max_requests > SFTP_MAX_REQUESTS || block_size > SFTP_BLOCK_CEILING) return EVSSH_EINVAL;
  sftp->max_requests = max_requests ? max_requests : SFTP_DEFAULT_REQUESTS;
  sftp->block_override = block_size;
  sftp->inflight_cap = max_inflight_bytes ? max_inflight_bytes : SFTP_DEFAULT_INFLIGHT;
  return EVSSH_OK;
}

int evssh_sftp_set_receive_window(evssh_sftp *sftp, uint32_t bytes) {
  if (!sftp || bytes == 0) return EVSSH_EINVAL;
  sftp->receive_window = bytes;
  apply_receive_window(sftp);
  return EVSSH_OK;
}
