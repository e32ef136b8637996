/* forward_relay.c owns one forwarded connection: a local stream socket
 * joined to one channel (see forward.h). It is where forwarding's memory
 * is bounded. Socket → channel: the socket is read in FWD_READ_CHUNK
 * pieces handed straight to evssh_channel_send_data, and reading stops
 * while FWD_SEND_HIGH or more waits in the channel's queue (on_drain at
 * FWD_SEND_LOW resumes it). Channel → socket: data goes straight to the
 * socket; what it does not take waits here and pauses the channel, so the
 * peer runs out of window and at most one receive window ever waits.
 * EOF travels both ways, the relay closes the channel once both directions
 * are done, and a socket error or reset ends both sides at once.
 *
 * Lifetime: the relay lives while its socket is open or its channel handle
 * still points at it (until the channel's on_free), whichever is longer,
 * and is never freed under one of its own callbacks. */
#include "forward.h"

#include "base.h"
#include "buf.h"
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fwd_relay {
  fwd_state *st;
  evssh_session *s;
  fwd_relay *prev, *next;     /* in st->relays */
  const fwd_relay_ops *ops;
  void *ud;
  char label[800];

  int fd;                     /* -1 once closed */
  int registered;             /* EVSSH_READ|WRITE listened for now */
  bool connecting;            /* non-blocking connect under way */
  fwd_addr *addrs;            /* relay_connect's addresses, for the next try */
  size_t naddrs, next_addr;

  evssh_channel *ch;          /* NULL before the open and once the channel is over */
  bool ch_linked;             /* the handle's on_free still has to run */
  bool ch_open;               /* confirmed */
  bool ch_over;               /* it closed, or its open was refused */
  bool handshaking;           /* ops->handshake reads the socket first */

  evssh_buf out;              /* channel → socket, not taken yet */
  evssh_buf in;               /* socket bytes read before the channel opened */
  bool local_eof;             /* the socket said EOF: channel EOF sent */
  bool remote_eof;            /* the channel said EOF */
  bool shut_wr;               /* passed on to the socket */
  bool read_blocked;          /* waiting for on_drain */
  bool finishing;             /* close the socket once out is written */
  bool ended;
  int depth;                  /* our callbacks on the stack */
};

static void relay_io(evssh_session *s, int fd, int events, void *ud);

static void relay_log(const fwd_relay *r, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void relay_log(const fwd_relay *r, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vlog(session_diag(r->s), level, fmt, ap);
  va_end(ap);
}

const char *relay_label(const fwd_relay *r) { return r->label; }

/* ------------------------------------------------------------- lifetime */

static void unlink_relay(fwd_relay *r) {
  if (!r->st) return;
  if (r->prev) r->prev->next = r->next;
  else r->st->relays = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  r->st = NULL;
}

static void release(fwd_relay *r) {
  unlink_relay(r);
  buf_release(&r->out);
  buf_release(&r->in);
  free(r->addrs);
  free(r);
}

static void maybe_free(fwd_relay *r) {
  if (r->ended && !r->ch_linked && r->depth == 0) release(r);
}

static void set_interest(fwd_relay *r, int ev) {
  if (r->fd < 0 || ev == r->registered) return;
  if (ev == 0) evssh_session_stop_listening_to(r->s, r->fd);
  else if (evssh_session_listen_to(r->s, r->fd, ev, relay_io, r) != EVSSH_OK) {
    relay_abort(r, "out of memory");
    return;
  }
  r->registered = ev;
}

static void close_socket(fwd_relay *r) {
  if (r->fd < 0) return;
  if (r->registered) evssh_session_stop_listening_to(r->s, r->fd);
  r->registered = 0;
  close(r->fd);
  r->fd = -1;
}

/* The socket is done with: closed, the owner told, the channel let go. */
static void end_relay(fwd_relay *r) {
  if (r->ended) return;
  close_socket(r);
  r->ended = true;
  if (r->ch && evssh_channel_active(r->ch)) evssh_channel_close(r->ch);
  r->depth++;
  if (r->ops && r->ops->ended) r->ops->ended(r, r->ud);
  r->depth--;
  /* out of the session's list: nothing of it is left to close */
  unlink_relay(r);
  maybe_free(r);
}

/* What the socket should be watched for now. */
static void update_interest(fwd_relay *r) {
  if (r->fd < 0 || r->ended) return;
  int ev = 0;
  if (r->connecting) {
    ev = EVSSH_WRITE;
  } else {
    if (buf_avail(&r->out)) ev |= EVSSH_WRITE;
    bool reading = r->handshaking ? buf_avail(&r->in) < FWD_HANDSHAKE_MAX
                                  : r->ch && r->ch_open && !r->local_eof && !r->read_blocked && !r->finishing;
    if (reading) ev |= EVSSH_READ;
  }
  set_interest(r, ev);
}

void relay_abort(fwd_relay *r, const char *why) {
  if (r->ended) return;
  if (why) relay_log(r, EVSSH_LOG_INFO, "%s: %s", r->label, why);
  buf_release(&r->out);
  end_relay(r);
}

/* Both directions are over (or the channel is): close what is left once
   everything owed to the socket is written. */
static void check_done(fwd_relay *r) {
  if (r->ended) return;
  bool drained = buf_avail(&r->out) == 0;
  if (r->remote_eof && drained && !r->shut_wr && r->fd >= 0 && !r->connecting) {
    shutdown(r->fd, SHUT_WR);
    r->shut_wr = true;
  }
  if ((r->finishing || r->ch_over) && (drained || r->fd < 0 || evssh_session_closed(r->s))) {
    end_relay(r);
    return;
  }
  if (r->local_eof && r->remote_eof && drained && r->ch) {
    /* both ways done: the channel closes after what it still queues */
    evssh_channel_close(r->ch);
    end_relay(r);
  }
}

/* ----------------------------------------------------- channel → socket */

/* Write what waits; false when the socket failed (the relay is over). */
static bool drain_out(fwd_relay *r) {
  while (buf_avail(&r->out)) {
    ssize_t n = send(r->fd, buf_ptr(&r->out), buf_avail(&r->out), MSG_NOSIGNAL);
    if (n > 0) {
      buf_consume(&r->out, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    relay_abort(r, n < 0 ? strerror(errno) : "socket closed");
    return false;
  }
  if (buf_avail(&r->out) == 0) {
    /* keep the storage of small buffers; give big ones back when idle */
    if (r->out.cap > 2 * FWD_READ_CHUNK) buf_release(&r->out);
    if (r->ch && evssh_channel_paused(r->ch)) evssh_channel_pause(r->ch, false);
  }
  return true;
}

static int queue_out(fwd_relay *r, const void *data, size_t len) {
  /* compact first, so the buffer never holds more than it must */
  if (r->out.off && r->out.len + len > r->out.cap) buf_compact(&r->out);
  return buf_append(&r->out, data, len);
}

static void on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  fwd_relay *r = ud;
  if (r->ended || r->fd < 0) return;
  size_t done = 0;
  if (!buf_avail(&r->out) && !r->connecting) {
    while (done < len) {
      ssize_t n = send(r->fd, data + done, len - done, MSG_NOSIGNAL);
      if (n > 0) { done += (size_t)n; continue; }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      r->depth++;
      relay_abort(r, n < 0 ? strerror(errno) : "socket closed");
      r->depth--;
      maybe_free(r);
      return;
    }
  }
  if (done < len) {
    if (queue_out(r, data + done, len - done) != EVSSH_OK) {
      relay_abort(r, "out of memory");
      return;
    }
    /* the socket is full: no more window until it took this */
    evssh_channel_pause(ch, true);
    update_interest(r);
  }
}

static void on_eof(evssh_channel *ch, void *ud) {
  fwd_relay *r = ud;
  r->remote_eof = true;
  r->depth++;
  check_done(r);
  r->depth--;
  maybe_free(r);
}

/* The channel is over (closed, or its open refused): the socket gets what
   is still owed, then closes. */
static void settle(fwd_relay *r) {
  r->handshaking = false;
  r->depth++;
  check_done(r);
  update_interest(r);
  r->depth--;
  maybe_free(r);
}

static void channel_over(fwd_relay *r) {
  r->ch = NULL;
  r->ch_open = false;
  r->ch_over = true;
  settle(r);
}

static void on_close(evssh_channel *ch, void *ud) {
  fwd_relay *r = ud;
  if (r->ch != ch) return;
  channel_over(r);
}

static void on_free(evssh_channel *ch, void *ud) {
  fwd_relay *r = ud;
  r->ch_linked = false;
  if (r->ch == ch) r->ch = NULL;
  maybe_free(r);
}

/* --------------------------------------------------- socket → channel */

static void on_drain(evssh_channel *ch, void *ud) {
  fwd_relay *r = ud;
  if (!r->read_blocked) return;
  r->read_blocked = false;
  update_interest(r);
}

static void read_socket(fwd_relay *r) {
  unsigned char chunk[FWD_READ_CHUNK];
  for (int i = 0; i < FWD_READS_PER_WAKEUP && !r->ended && r->ch && !r->local_eof; i++) {
    ssize_t n = recv(r->fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) {
      /* a reset or an error: nothing more can be written there either */
      relay_abort(r, strerror(errno));
      return;
    }
    if (n == 0) {
      r->local_eof = true;
      evssh_channel_eof(r->ch);
      check_done(r);
      break;
    }
    int rc = evssh_channel_send_data(r->ch, chunk, (size_t)n);
    if (rc != EVSSH_OK) {
      relay_abort(r, rc == EVSSH_ECLOSED ? "channel closed" : evssh_strerror(rc));
      return;
    }
    if (evssh_channel_pending(r->ch) >= FWD_SEND_HIGH) {
      r->read_blocked = true;
      break;
    }
  }
}

/* Before the channel exists: the owner reads the handshake. */
static void read_handshake(fwd_relay *r) {
  size_t room = FWD_HANDSHAKE_MAX - buf_avail(&r->in);
  unsigned char chunk[FWD_HANDSHAKE_MAX];
  ssize_t n = recv(r->fd, chunk, room, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    relay_abort(r, n == 0 ? "closed before its request was complete" : strerror(errno));
    return;
  }
  if (buf_append(&r->in, chunk, (size_t)n) != EVSSH_OK) {
    relay_abort(r, "out of memory");
    return;
  }
  long used = r->ops->handshake(r, buf_ptr(&r->in), buf_avail(&r->in), r->ud);
  if (r->ended) return;
  if (used < 0) {
    relay_finish(r);
    return;
  }
  buf_consume(&r->in, (size_t)used);
  if (r->handshaking && buf_avail(&r->in) >= FWD_HANDSHAKE_MAX) relay_abort(r, "request too long");
}

/* ------------------------------------------------------------- connecting */

static bool try_next_address(fwd_relay *r, int *last_errno) {
  while (r->next_addr < r->naddrs) {
    int fd = -1;
    bool in_progress = false;
    int e = net_connect_addr(&r->addrs[r->next_addr++], &fd, &in_progress);
    if (e) {
      *last_errno = e;
      continue;
    }
    close_socket(r);
    r->fd = fd;
    r->connecting = in_progress;
    if (!in_progress) net_nodelay(fd);
    return true;
  }
  return false;
}

int relay_connect(fwd_relay *r, const fwd_addr *addrs, size_t n) {
  free(r->addrs);
  r->addrs = calloc(n ? n : 1, sizeof *addrs);
  if (!r->addrs) return ENOMEM;
  memcpy(r->addrs, addrs, n * sizeof *addrs);
  r->naddrs = n;
  r->next_addr = 0;
  int e = ECONNREFUSED;
  if (!try_next_address(r, &e)) return e;
  update_interest(r);
  return 0;
}

static void finish_connect(fwd_relay *r) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) {
    r->connecting = false;
    net_nodelay(r->fd);
    /* what came over the channel meanwhile goes out now */
    drain_out(r);
    if (!r->ended) check_done(r);
    return;
  }
  int last = err;
  if (try_next_address(r, &last)) return;
  char why[160];
  snprintf(why, sizeof why, "connect failed: %s", strerror(last));
  relay_log(r, EVSSH_LOG_ERROR, "%s: %s", r->label, why);
  relay_abort(r, NULL);
}

/* ------------------------------------------------------------- the socket */

static void relay_io(evssh_session *s, int fd, int events, void *ud) {
  fwd_relay *r = ud;
  r->depth++;
  if (r->connecting) {
    finish_connect(r);
  } else {
    if ((events & EVSSH_WRITE) && buf_avail(&r->out) && drain_out(r)) check_done(r);
    if (!r->ended && (events & EVSSH_READ)) {
      if (r->handshaking) read_handshake(r);
      else if (r->ch && r->ch_open && !r->local_eof) read_socket(r);
    }
  }
  update_interest(r);
  r->depth--;
  maybe_free(r);
}

/* ------------------------------------------------------------- channels */

static void on_open(evssh_channel *ch, void *ud) {
  fwd_relay *r = ud;
  if (r->ended) return;
  r->ch_open = true;
  r->depth++;
  if (r->ops && r->ops->opened) r->ops->opened(r, true, 0, NULL, r->ud);
  /* bytes that came with the handshake go first */
  if (!r->ended && buf_avail(&r->in)) {
    int rc = evssh_channel_send_data(ch, buf_ptr(&r->in), buf_avail(&r->in));
    buf_release(&r->in);
    if (rc) relay_abort(r, evssh_strerror(rc));
  }
  if (!r->ended) {
    drain_out(r);
    update_interest(r);
  }
  r->depth--;
  maybe_free(r);
}

static void on_open_failed(evssh_channel *ch, uint32_t reason, const char *description, void *ud) {
  fwd_relay *r = ud;
  static const char *const reasons[] = {"", "administratively prohibited", "connect failed",
                                        "unknown channel type", "resource shortage"};
  if (r->ended) {
    /* the local side went first: nobody waits for this answer */
    channel_over(r);
    return;
  }
  relay_log(r, EVSSH_LOG_ERROR, "%s: the server refused the channel: %s (%u): %s", r->label,
            reason < 5 ? reasons[reason] : "unknown reason", reason, description);
  r->depth++;
  if (r->ops && r->ops->opened) r->ops->opened(r, false, reason, description, r->ud);
  r->finishing = true;
  r->depth--;
  channel_over(r);
}

static void wire_channel(fwd_relay *r, evssh_channel *ch) {
  r->ch = ch;
  r->ch_linked = true;
  evssh_channel_on_data(ch, on_data, r);
  evssh_channel_on_eof(ch, on_eof, r);
  evssh_channel_on_close(ch, on_close, r);
  evssh_channel_on_drain(ch, FWD_SEND_LOW, on_drain, r);
  evssh_channel_on_free(ch, on_free, r);
}

int relay_open(fwd_relay *r, const char *type, const void *extra, size_t extra_len) {
  r->handshaking = false;
  evssh_channel *ch = evssh_session_open_channel_type(r->s, type, extra, extra_len, on_open, r);
  if (!ch) {
    int rc = evssh_session_closed(r->s) ? EVSSH_ECLOSED : EVSSH_ENOMEM;
    relay_abort(r, evssh_session_closed(r->s) ? "the session is closed" : "cannot open a channel");
    return rc;
  }
  wire_channel(r, ch);
  evssh_channel_on_open_failed(ch, on_open_failed, r);
  update_interest(r);
  return EVSSH_OK;
}

int relay_accept(fwd_relay *r, evssh_channel *ch) {
  wire_channel(r, ch);
  /* confirmed as soon as the open callback returns: read from then on */
  r->ch_open = true;
  if (r->connecting) evssh_channel_pause(ch, true);
  update_interest(r);
  return EVSSH_OK;
}

int relay_write_first(fwd_relay *r, const void *data, size_t len) {
  int rc = queue_out(r, data, len);
  if (!rc) update_interest(r);
  return rc;
}

void relay_finish(fwd_relay *r) {
  r->finishing = true;
  settle(r);
}

int relay_new(fwd_state *st, int fd, const char *label, const fwd_relay_ops *ops, void *ud, fwd_relay **out) {
  evssh_session *s = st->s;
  fwd_relay *r = calloc(1, sizeof *r);
  if (!r) {
    if (fd >= 0) close(fd);
    return EVSSH_ENOMEM;
  }
  r->st = st;
  r->s = s;
  r->ops = ops;
  r->ud = ud;
  r->fd = fd;
  snprintf(r->label, sizeof r->label, "%s", label);
  buf_init(&r->out);
  buf_init(&r->in);
  r->next = st->relays;
  if (st->relays) st->relays->prev = r;
  st->relays = r;
  r->handshaking = ops && ops->handshake;
  if (fd >= 0) net_nodelay(fd);
  update_interest(r);
  *out = r;
  return EVSSH_OK;
}

void relay_end_all(fwd_state *st) {
  while (st->relays) {
    fwd_relay *r = st->relays;
    buf_release(&r->out);
    r->ch = NULL;
    end_relay(r);   /* unlinks r */
  }
}

void relay_free_all(fwd_state *st) {
  relay_end_all(st);
}
