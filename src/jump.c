/* jump.c owns ProxyJump: the byte pipe of a session carried by a
 * direct-tcpip channel of another evssh session, the jump host. The inner
 * session's transport runs on one end of a socketpair; the other end is
 * bridged to the channel (channel data is written to it, what the transport
 * writes is read from it and sent on the channel, EOF and close cross both
 * ways). The jump session is owned by the pipe and driven with the inner
 * session: the pipe's epoll fd holds the jump session's fd, the bridge end
 * and the transport end, so whoever polls the inner session (its own loop, a
 * multi, a foreign event loop) drives both. A chain "a,b" is a jump session
 * to b that itself has ProxyJump a. The pipe reaches io.c only through the
 * io_pipe_ops hooks, so no lower layer calls up; the jump session and its
 * channel are reached through the public API only. */
#include "jump.h"

#include "base.h"
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BRIDGE_CHUNK 32768
/* the jump host must answer our channel open within this, ConnectTimeout
   or not: a target it cannot reach must not hold the session forever */
#define OPEN_TIMEOUT_MS 60000
/* read no more from the bridge while this much waits in the jump channel,
   and pause the channel while this much waits for the bridge */
#define BRIDGE_HIGH_WATER (1024u * 1024u)

typedef enum { J_CONNECTING, J_OPENING, J_OPEN, J_CLOSED } jump_phase;

typedef struct jump_pipe {
  evssh_session *outer;          /* the jump session, owned */
  evssh_channel *ch;             /* direct-tcpip to the target, NULL once closed */
  char target[256];
  int target_port;
  jump_phase phase;
  int64_t open_deadline_ms;      /* J_OPENING: when to give up */
  int epfd;
  int transport_end;             /* goes to the inner transport (then the session closes it) */
  int bridge_end;
  bool handed;                   /* transport_end belongs to the session now */
  int outer_fd, outer_events;    /* as registered in epfd (-1: none) */
  int bridge_events, transport_events;
  evssh_buf to_bridge;           /* channel data the bridge end did not take yet */
  bool eof_from_channel;         /* shut the bridge's write side once to_bridge drains */
  bool bridge_shut;
  bool eof_to_channel;           /* the transport closed its end: channel EOF sent */
  int fail_code;
  char fail[300];
} jump_pipe;

static void jump_failed(jump_pipe *jp, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void jump_failed(jump_pipe *jp, int code, const char *fmt, ...) {
  if (jp->fail_code) return;
  jp->fail_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(jp->fail, sizeof jp->fail, fmt, ap);
  va_end(ap);
}

static int to_epoll(int events) {
  return ((events & EVSSH_READ) ? EPOLLIN : 0) | ((events & EVSSH_WRITE) ? EPOLLOUT : 0);
}

/* Level-triggered registration, robust against an fd closed and its number
   reused behind our back (closing drops it from the set). */
static void ep_set(int epfd, int fd, int events) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = (uint32_t)to_epoll(events);
  ev.data.fd = fd;
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT) epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void ep_del(int epfd, int fd) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

/* ------------------------------------------------------------- the bridge */

static void shut_bridge_if_drained(jump_pipe *jp) {
  if (jp->eof_from_channel && !jp->bridge_shut && buf_avail(&jp->to_bridge) == 0) {
    shutdown(jp->bridge_end, SHUT_WR);
    jp->bridge_shut = true;
  }
}

static void flush_to_bridge(jump_pipe *jp) {
  while (buf_avail(&jp->to_bridge) > 0) {
    ssize_t n = send(jp->bridge_end, buf_ptr(&jp->to_bridge), buf_avail(&jp->to_bridge), MSG_NOSIGNAL);
    if (n > 0) {
      buf_consume(&jp->to_bridge, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    buf_reset(&jp->to_bridge);   /* the transport end is gone: nobody reads it */
    break;
  }
  if (buf_avail(&jp->to_bridge) == 0) buf_compact(&jp->to_bridge);
  /* the carried transport took some: let the jump host send again */
  if (jp->ch && evssh_channel_paused(jp->ch) && buf_avail(&jp->to_bridge) < BRIDGE_HIGH_WATER / 2)
    evssh_channel_pause(jp->ch, false);
  shut_bridge_if_drained(jp);
}

static void on_channel_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  jump_pipe *jp = ud;
  if (jp->bridge_shut) return;
  size_t done = 0;
  if (buf_avail(&jp->to_bridge) == 0) {
    while (done < len) {
      ssize_t n = send(jp->bridge_end, data + done, len - done, MSG_NOSIGNAL);
      if (n > 0) { done += (size_t)n; continue; }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return;   /* transport end closed */
    }
  }
  if (done < len && buf_append(&jp->to_bridge, data + done, len - done) != EVSSH_OK)
    jump_failed(jp, EVSSH_ENOMEM, "ProxyJump via %s: out of memory", evssh_session_host(jp->outer));
  /* bounded: past the mark the jump channel's window stops being granted */
  if (buf_avail(&jp->to_bridge) > BRIDGE_HIGH_WATER) evssh_channel_pause(ch, true);
}

static void on_channel_eof(evssh_channel *ch, void *ud) {
  jump_pipe *jp = ud;
  jp->eof_from_channel = true;
  shut_bridge_if_drained(jp);
}

static void on_channel_close(evssh_channel *ch, void *ud) {
  jump_pipe *jp = ud;
  jp->ch = NULL;
  if (jp->phase != J_OPEN)
    jump_failed(jp, EVSSH_ECONNECT, "ProxyJump via %s: channel to %s port %d closed before it opened",
                evssh_session_host(jp->outer), jp->target, jp->target_port);
  jp->phase = J_CLOSED;
  jp->eof_from_channel = true;
  shut_bridge_if_drained(jp);
}

static void on_channel_open_failed(evssh_channel *ch, uint32_t reason, const char *description, void *ud) {
  jump_pipe *jp = ud;
  jp->ch = NULL;   /* over without on_close: the handle goes at the next reap */
  jump_failed(jp, EVSSH_ECONNECT, "ProxyJump via %s: connect to %s port %d refused (reason %u: %s)",
              evssh_session_host(jp->outer), jp->target, jp->target_port, reason,
              description ? description : "");
}

static void on_channel_open(evssh_channel *ch, void *ud) {
  jump_pipe *jp = ud;
  jp->phase = J_OPEN;
}

/* The transport wrote into its end: carry it to the channel. */
static void pump_from_bridge(jump_pipe *jp) {
  if (jp->phase != J_OPEN || !jp->ch || jp->eof_to_channel) return;
  unsigned char chunk[BRIDGE_CHUNK];
  for (int i = 0; i < 8; i++) {
    ssize_t n = recv(jp->bridge_end, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      if (evssh_channel_send_data(jp->ch, chunk, (size_t)n) != EVSSH_OK) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    /* EOF or error: the inner transport is gone */
    jp->eof_to_channel = true;
    evssh_channel_eof(jp->ch);
    evssh_channel_close(jp->ch);
    break;
  }
}

static void on_outer_ready(evssh_session *outer, int status, void *ud) {
  jump_pipe *jp = ud;
  if (status != EVSSH_OK) {
    jump_failed(jp, status, "ProxyJump via %s: %s", evssh_session_host(outer), evssh_session_error(outer));
    return;
  }
  evssh_buf *extra = evssh_buf_new();
  int rc = extra ? EVSSH_OK : EVSSH_ENOMEM;
  if (!rc) rc = evssh_buf_put_cstring(extra, jp->target);
  if (!rc) rc = evssh_buf_put_u32(extra, (uint32_t)jp->target_port);
  if (!rc) rc = evssh_buf_put_cstring(extra, "127.0.0.1");
  if (!rc) rc = evssh_buf_put_u32(extra, 0);
  if (!rc) {
    jp->ch = evssh_session_open_channel_type(outer, "direct-tcpip", evssh_buf_data(extra), evssh_buf_len(extra),
                                             on_channel_open, jp);
    if (!jp->ch) rc = EVSSH_ECHANNEL;
  }
  evssh_buf_free(extra);
  if (rc) {
    jump_failed(jp, EVSSH_ECONNECT, "ProxyJump via %s: cannot open a channel to %s port %d: %s",
                evssh_session_host(outer), jp->target, jp->target_port, evssh_strerror(rc));
    return;
  }
  jp->phase = J_OPENING;
  jp->open_deadline_ms = base_now_ms() + OPEN_TIMEOUT_MS;
  evssh_channel_on_data(jp->ch, on_channel_data, jp);
  evssh_channel_on_eof(jp->ch, on_channel_eof, jp);
  evssh_channel_on_close(jp->ch, on_channel_close, jp);
  evssh_channel_on_open_failed(jp->ch, on_channel_open_failed, jp);
}

/* ------------------------------------------------------------- pipe hooks */

static size_t outer_backlog(const jump_pipe *jp) { return jp->ch ? evssh_channel_pending(jp->ch) : 0; }

static void sync_registrations(jump_pipe *jp) {
  int fd = evssh_session_fd(jp->outer);
  int ev = fd >= 0 ? evssh_session_events(jp->outer) : 0;
  if (fd != jp->outer_fd && jp->outer_fd >= 0) ep_del(jp->epfd, jp->outer_fd);
  /* re-registered every time: the jump session may have closed its fd and
     got the same number back for the next address it tries */
  if (fd >= 0) ep_set(jp->epfd, fd, ev);
  jp->outer_fd = fd;
  jp->outer_events = ev;

  int bev = 0;
  if (jp->phase == J_OPEN && jp->ch && !jp->eof_to_channel &&
      outer_backlog(jp) < BRIDGE_HIGH_WATER)
    bev |= EVSSH_READ;
  if (buf_avail(&jp->to_bridge) > 0) bev |= EVSSH_WRITE;
  if (bev != jp->bridge_events) {
    ep_set(jp->epfd, jp->bridge_end, bev);
    jp->bridge_events = bev;
  }
}

static int pipe_poll_fd(void *ctx) { return ((jump_pipe *)ctx)->epfd; }

static int pipe_timeout_ms(void *ctx) {
  jump_pipe *jp = ctx;
  if (jp->fail_code) return 0;
  if (jp->phase == J_OPEN && !jp->handed) return 0;
  if (evssh_session_closed(jp->outer)) return jp->handed ? -1 : 0;
  int t = evssh_session_timeout(jp->outer);
  if (jp->phase == J_OPENING) {
    int64_t left = jp->open_deadline_ms - base_now_ms();
    int lt = left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
    if (t < 0 || lt < t) t = lt;
  }
  return t;
}

static int pipe_handle(void *ctx, int *transport_fd, int *transport_revents, char *err, size_t errlen) {
  jump_pipe *jp = ctx;
  struct epoll_event evs[8];
  int n = epoll_wait(jp->epfd, evs, 8, 0);
  int outer_rev = 0, bridge_rev = 0;
  for (int i = 0; i < n; i++) {
    int rev = 0;
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) rev |= EVSSH_READ;
    if (evs[i].events & (EPOLLOUT | EPOLLERR)) rev |= EVSSH_WRITE;
    if (evs[i].data.fd == jp->bridge_end) bridge_rev |= rev;
    else if (evs[i].data.fd == jp->transport_end) *transport_revents |= rev;
    else if (evs[i].data.fd == jp->outer_fd) outer_rev |= rev;
  }
  if (!evssh_session_closed(jp->outer)) evssh_session_handle_events(jp->outer, outer_rev);
  if (buf_avail(&jp->to_bridge) > 0) flush_to_bridge(jp);
  if (bridge_rev & EVSSH_READ) {
    pump_from_bridge(jp);
    /* hand what was queued to the jump socket now rather than next round */
    if (!evssh_session_closed(jp->outer)) evssh_session_handle_events(jp->outer, EVSSH_WRITE);
  }
  if (jp->phase == J_OPENING && base_now_ms() >= jp->open_deadline_ms)
    jump_failed(jp, EVSSH_ETIMEOUT, "ProxyJump via %s: no answer to the channel open to %s port %d in %d s",
                evssh_session_host(jp->outer), jp->target, jp->target_port, OPEN_TIMEOUT_MS / 1000);
  if (evssh_session_closed(jp->outer))
    jump_failed(jp, jp->handed ? EVSSH_EDISCONNECT : EVSSH_ECONNECT, "ProxyJump via %s: %s",
                evssh_session_host(jp->outer), evssh_session_error(jp->outer));
  if (jp->fail_code) {
    snprintf(err, errlen, "%s", jp->fail);
    return jp->fail_code;
  }
  sync_registrations(jp);
  if (jp->phase == J_OPEN) {
    *transport_fd = jp->transport_end;
    if (!jp->handed) {
      jp->handed = true;
      ep_set(jp->epfd, jp->transport_end, EVSSH_READ);
      jp->transport_events = EVSSH_READ;
    }
  }
  return EVSSH_OK;
}

static void pipe_want(void *ctx, int events) {
  jump_pipe *jp = ctx;
  if (!jp->handed) return;
  events |= EVSSH_READ;
  if (events != jp->transport_events) {
    ep_set(jp->epfd, jp->transport_end, events);
    jp->transport_events = events;
  }
}

static void pipe_free(void *ctx) {
  jump_pipe *jp = ctx;
  if (!jp) return;
  if (jp->outer) {
    /* best effort, never blocking: what the inner transport wrote last (its
       DISCONNECT) goes out, then the jump session ends */
    if (jp->phase == J_OPEN && jp->ch) {
      pump_from_bridge(jp);
      if (jp->ch) evssh_channel_close(jp->ch);
      evssh_session_handle_events(jp->outer, EVSSH_WRITE);
    }
    evssh_session_free(jp->outer);
  }
  if (jp->epfd >= 0) close(jp->epfd);
  if (jp->bridge_end >= 0) close(jp->bridge_end);
  if (!jp->handed && jp->transport_end >= 0) close(jp->transport_end);
  buf_release(&jp->to_bridge);
  free(jp);
}

static const io_pipe_ops jump_ops = {pipe_poll_fd, pipe_timeout_ms, pipe_handle, pipe_want, pipe_free};

/* ------------------------------------------------------------- set up */

int jump_start(evssh_session *outer, const char *target, int target_port, evssh_connector **out,
               evssh_session_cb *on_ready, void **ready_ud, char *err, size_t errlen) {
  jump_pipe *jp = calloc(1, sizeof *jp);
  if (!jp) {
    evssh_session_free(outer);
    snprintf(err, errlen, "ProxyJump: out of memory");
    return EVSSH_ENOMEM;
  }
  jp->outer = outer;
  jp->epfd = jp->transport_end = jp->bridge_end = jp->outer_fd = -1;
  buf_init(&jp->to_bridge);
  snprintf(jp->target, sizeof jp->target, "%s", target);
  jp->target_port = target_port;
  int sv[2];
  jp->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (jp->epfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    snprintf(err, errlen, "ProxyJump: %s", strerror(errno));
    pipe_free(jp);
    return EVSSH_ECONNECT;
  }
  jp->transport_end = sv[0];
  jp->bridge_end = sv[1];
  int rc = connector_start_pipe(&jump_ops, jp, out);
  if (rc) {
    snprintf(err, errlen, "ProxyJump: out of memory");
    return rc;
  }
  *on_ready = on_outer_ready;
  *ready_ud = jp;
  return EVSSH_OK;
}

void jump_started(void *ready_ud) {
  jump_pipe *jp = ready_ud;
  if (evssh_session_closed(jp->outer))
    jump_failed(jp, EVSSH_ECONNECT, "ProxyJump via %s: %s", evssh_session_host(jp->outer),
                evssh_session_error(jp->outer));
  sync_registrations(jp);
}
