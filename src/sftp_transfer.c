/* sftp_transfer.c owns whole-file transfers: the pipeline under
 * evssh_sftp_upload/download (whose entry points are in sftp_copy.c), one
 * transfer per file, reached by sftp.c through its hooks. Each transfer
 * is a small state machine (stat for resume, open, fstat, run, fsync,
 * setstat, diagnose, close) driven by its replies. While it runs it keeps
 * up to `window` READs or WRITEs in flight; the window starts at
 * SFTP_INITIAL_REQUESTS and grows by one per full answer up to
 * max_requests, and a new request goes out only while the bytes all of the
 * sftp's transfers have requested (plus download replies held for
 * reordering) stay under inflight_cap, or when this transfer has nothing in
 * flight (so a transfer can always make progress: the bound is the cap
 * plus one block per transfer). Downloads write the local file strictly in
 * offset order: a reply ahead of the write position waits in a sorted
 * list, a short reply makes the rest of its range a hole asked for again,
 * and SSH_FX_EOF stops new reads; a file that is larger than its fstat
 * said is followed one block at a time. An upload may also hold a handle
 * on each of the sftp's extra channels (sftp_parallel.c's lanes): its
 * WRITEs go to the channel with the most send room, the ring of WRITEs in
 * offset order gives the prefix in place whichever channel answers, and
 * the lanes' handles are closed before the upload's own. A transfer ends
 * only once nothing it sent, on any channel, is unanswered, so no reply
 * can outlive it. */
#include "sftp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { P_STAT, P_OPEN, P_FSTAT, P_RUN, P_LANES, P_FSYNC, P_SETSTAT, P_DIAGNOSE, P_CUT, P_CLOSE };

/* an upload's handle on one extra channel (sftp_parallel.c's lanes) */
enum { L_OPENING = 1, L_OPEN, L_CLOSING, L_DONE };
typedef struct xfer_lane {
  evssh_sftp *sftp;
  evssh_sftp_file *file;        /* once L_OPEN, until its CLOSE or death */
  uint32_t outstanding;
  int state;
  uint64_t writes;              /* WRITEs it carried */
} xfer_lane;

typedef struct xfer_chunk {
  struct xfer_chunk *next;      /* sorted by offset */
  uint64_t offset;
  size_t len;
  unsigned char data[];
} xfer_chunk;

typedef struct xfer_range {
  uint64_t offset;
  uint32_t len;
} xfer_range;

/* an upload's WRITE, in issue (= offset) order, until answered */
typedef struct xfer_write {
  uint64_t offset;
  bool acked;
} xfer_write;

struct sftp_xfer {
  evssh_sftp *sftp;
  sftp_xfer *prev, *next;       /* sftp->xfers */
  bool upload;
  unsigned flags;
  int fd;
  bool created;                 /* download: we made the local file */
  char *local, *remote;
  evssh_sftp_file *file;
  int phase;
  bool ran;                     /* reached P_RUN: messages say how far */
  uint64_t start;
  uint64_t next_offset;
  uint64_t done;                /* prefix in place at the destination */
  uint64_t total;
  bool size_known;
  uint64_t eof_at;              /* download: UINT64_MAX until EOF */
  bool probing;                 /* download: a READ past the known size is out */
  bool local_eof;               /* upload */
  uint32_t block;
  uint32_t window;
  uint32_t outstanding;
  int busy;                     /* frames of ours on the stack: they finish it */
  xfer_chunk *chunks;
  size_t chunk_bytes;
  xfer_range *holes;
  size_t nholes, holes_cap;
  xfer_write *writes;           /* ring, capacity max_requests */
  size_t wr_head, wr_count, wr_cap;
  xfer_lane lanes[SFTP_MAX_CHANNELS - 1];
  unsigned nlanes;
  uint64_t main_writes;         /* WRITEs the sftp's own channel carried */
  unsigned rr;                  /* where the next channel choice starts */
  bool cut;                     /* failed multi-channel upload: cut to done */
  int status;
  uint32_t fx;
  char cause[SFTP_ERROR_MAX];
  bool diagnosed;
  evssh_sftp_attrs rattrs;      /* download: the remote file's */
  struct stat lst;              /* upload: the local file's */
  sftp_xfer_progress_fn progress;
  sftp_xfer_finish_fn finish;
  void *ctx;
};

static void advance(sftp_xfer *x);
static void fill(sftp_xfer *x);

/* ------------------------------------------------------------ helpers */

/* the first failure wins; its message is where the failing channel's
   code left it (the sftp's own or a lane's) */
static void fail_on(sftp_xfer *x, evssh_sftp *on, int code) {
  if (x->status) return;
  x->status = code;
  memcpy(x->cause, on->error, sizeof x->cause);
  x->fx = on->status_code;
}

static void fail(sftp_xfer *x, int code) { fail_on(x, x->sftp, code); }

static void local_fail(sftp_xfer *x, const char *what, const char *path, int err) {
  sftp_set_error(x->sftp, 0, "local: %s%s%s: %s", what, *what ? " " : "", path, strerror(err));
  fail(x, EVSSH_EINVAL);
}

static void release_chunks(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  while (x->chunks) {
    xfer_chunk *c = x->chunks;
    x->chunks = c->next;
    free(c);
  }
  sftp->inflight -= x->chunk_bytes < sftp->inflight ? x->chunk_bytes : sftp->inflight;
  x->chunk_bytes = 0;
}

static void xfer_free(sftp_xfer *x) {
  release_chunks(x);
  if (x->fd >= 0) close(x->fd);
  free(x->holes);
  free(x->writes);
  free(x->local);
  free(x->remote);
  free(x);
}

static void unlink_xfer(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  if (sftp->pump_next == x) sftp->pump_next = x->next;
  if (x->prev) x->prev->next = x->next; else sftp->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
}

static void release_lane(xfer_lane *ln) {
  if (ln->file) {
    ln->file->closed = true;
    sftp_file_unref(ln->file);
    ln->file = NULL;
  }
  ln->state = L_DONE;
}

static void log_channels(sftp_xfer *x) {
  char per[SFTP_MAX_CHANNELS * 24];
  size_t n = (size_t)snprintf(per, sizeof per, "%llu", (unsigned long long)x->main_writes);
  unsigned used = x->main_writes > 0;
  for (unsigned i = 0; i < x->nlanes; i++) {
    used += x->lanes[i].writes > 0;
    if (n < sizeof per)
      n += (size_t)snprintf(per + n, sizeof per - n, "/%llu", (unsigned long long)x->lanes[i].writes);
  }
  sftp_log(x->sftp, EVSSH_LOG_INFO, "sftp: upload of %s to %s used %u channel%s (WRITEs per channel: %s)", x->local,
           x->remote, used, used == 1 ? "" : "s", per);
}

static void finish(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  unlink_xfer(x);
  if (x->file) {
    /* nothing of ours names the handle any more */
    x->file->closed = true;
    sftp_file_unref(x->file);
    x->file = NULL;
  }
  for (unsigned i = 0; i < x->nlanes; i++) {
    release_lane(&x->lanes[i]);
    x->lanes[i].sftp->lane_users--;
  }
  if (x->upload && x->ran && sftp->upload_channels > 1 && !sftp->freeing) log_channels(x);
  if (x->fd >= 0) {
    int rc = close(x->fd);
    x->fd = -1;
    if (rc && !x->status && !x->upload) local_fail(x, "close", x->local, errno);
  }
  if (x->status) {
    if (x->ran) {
      const char *verb = x->upload ? "upload" : "download";
      const char *from = x->upload ? x->local : x->remote, *to = x->upload ? x->remote : x->local;
      char total[32] = "?";
      if (x->size_known) snprintf(total, sizeof total, "%llu", (unsigned long long)x->total);
      sftp_set_error(sftp, x->fx, "%s of %s to %s stopped after %llu of %s bytes (%llu are in %s): %s", verb,
                     from, to, (unsigned long long)(x->done - x->start), total, (unsigned long long)x->done, to,
                     x->cause);
    } else {
      memcpy(sftp->error, x->cause, sizeof sftp->error);
      sftp->status_code = x->fx;
    }
  }
  sftp->transferred = x->done;
  /* always: the hook frees its context, and calls nobody while freeing */
  if (x->finish) x->finish(sftp, x->ctx, x->status, x->done);
  xfer_free(x);
}

/* A request for this transfer on `on` (the sftp or one of its lanes; ln
   the lane's record, or NULL): charge counted against the cap. */
static int send_req_on(sftp_xfer *x, evssh_sftp *on, xfer_lane *ln, sftp_req *req, size_t charge,
                       const void *trailing, size_t len) {
  req->owner = x;
  req->charge = charge;
  int rc = sftp_send(on, req, trailing, len);
  if (rc) {
    if (on->state == SFTP_DEAD) sftp_abort_code(on);
    else sftp_set_error(on, 0, "sftp: could not send a request: %s", evssh_strerror(rc));
    fail_on(x, on, rc);
    return rc;
  }
  on->inflight += charge;
  x->outstanding++;
  if (ln) ln->outstanding++;
  return EVSSH_OK;
}

static int send_req(sftp_xfer *x, sftp_req *req, size_t charge, const void *trailing, size_t len) {
  return send_req_on(x, x->sftp, NULL, req, charge, trailing, len);
}

static void on_reply(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body);

/* a request begun in on->out about file f (NULL: the remote path) */
static sftp_req *new_req_on(sftp_xfer *x, evssh_sftp *on, evssh_sftp_file *f, uint8_t type) {
  sftp_req *req = sftp_req_new(on, type, on_reply);
  /* the path for messages: the handle's, or a copy until there is one */
  if (req && f) sftp_file_ref(req, f);
  else if (req && !(req->path = strdup(x->remote))) {
    sftp_req_free(on, req);
    req = NULL;
  }
  if (!req || !sftp_begin(on, req)) {
    if (req) sftp_req_free(on, req);
    sftp_set_error(x->sftp, 0, "sftp: out of memory");
    fail(x, EVSSH_ENOMEM);
    return NULL;
  }
  return req;
}

static sftp_req *new_req(sftp_xfer *x, uint8_t type) { return new_req_on(x, x->sftp, x->file, type); }

static int put_handle_on(evssh_sftp *on, const evssh_sftp_file *f) {
  return evssh_buf_put_string(&on->out, f->handle, f->handle_len);
}

static int put_handle(sftp_xfer *x) { return put_handle_on(x->sftp, x->file); }

static void send_simple(sftp_xfer *x, uint8_t type, int phase) {
  sftp_req *req = new_req(x, type);
  if (!req) return;
  x->phase = phase;
  int rc = EVSSH_OK;
  if (type == SSH_FXP_STAT) {
    rc = evssh_buf_put_cstring(&x->sftp->out, x->remote);
  } else if (type == SSH_FXP_FSETSTAT) {
    evssh_sftp_attrs a;
    memset(&a, 0, sizeof a);
    if (x->flags & EVSSH_SFTP_PRESERVE) {
      a.flags = EVSSH_SFTP_ATTR_PERMISSIONS | EVSSH_SFTP_ATTR_ACMODTIME;
      a.permissions = x->lst.st_mode & 07777;
      a.atime = (uint32_t)x->lst.st_atime;
      a.mtime = (uint32_t)x->lst.st_mtime;
    }
    if (x->start > 0) {
      /* a resumed upload may sit on a longer old file: cut it to size */
      a.flags |= EVSSH_SFTP_ATTR_SIZE;
      a.size = x->done;
    }
    rc = put_handle(x);
    if (!rc) rc = sftp_put_attrs(&x->sftp->out, &a);
  } else {
    rc = put_handle(x);
  }
  if (rc) {
    sftp_req_free(x->sftp, req);
    sftp_set_error(x->sftp, 0, "sftp: out of memory");
    fail(x, rc);
    return;
  }
  send_req(x, req, 0, NULL, 0);
}

static void send_fsync(sftp_xfer *x) {
  sftp_req *req = new_req(x, SSH_FXP_EXTENDED);
  if (!req) return;
  x->phase = P_FSYNC;
  if (evssh_buf_put_cstring(&x->sftp->out, "fsync@openssh.com") || put_handle(x)) {
    sftp_req_free(x->sftp, req);
    fail(x, EVSSH_ENOMEM);
    return;
  }
  send_req(x, req, 0, NULL, 0);
}

/* After a failure: one question to the server that turns its bare
   "Failure" into the reason (a directory in the way, a full disk). */
static bool send_diagnosis(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  if (x->diagnosed || x->fx != EVSSH_SFTP_FX_FAILURE || !sftp_usable(sftp)) return false;
  x->diagnosed = true;
  sftp_req *req;
  if (x->phase == P_OPEN) {
    req = sftp_req_new(sftp, SSH_FXP_STAT, on_reply);
    if (!req || !sftp_begin(sftp, req) || evssh_buf_put_cstring(&sftp->out, x->remote)) goto oom;
  } else if (x->upload && sftp_has_ext(sftp, "statvfs@openssh.com", "2")) {
    req = sftp_req_new(sftp, SSH_FXP_EXTENDED, on_reply);
    if (!req || !sftp_begin_extended(sftp, req, "statvfs@openssh.com") ||
        evssh_buf_put_cstring(&sftp->out, x->remote))
      goto oom;
  } else {
    return false;
  }
  req->owner = x;
  if (sftp_send(sftp, req, NULL, 0)) return false;
  x->outstanding++;
  x->phase = P_DIAGNOSE;
  return true;
oom:
  if (req) sftp_req_free(sftp, req);
  return false;
}

/* ---------------------------------------------------------- download */

static void report(sftp_xfer *x) {
  if (x->progress && !x->sftp->freeing) x->progress(x->sftp, x->ctx, x->done, x->size_known ? x->total : 0);
}

static bool write_local(sftp_xfer *x, const unsigned char *data, size_t len, uint64_t offset) {
  while (len) {
    ssize_t n = pwrite(x->fd, data, len, (off_t)offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      local_fail(x, "write", x->local, n < 0 ? errno : ENOSPC);
      return false;
    }
    data += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
    x->done += (uint64_t)n;
  }
  return true;
}

static void flush_chunks(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  while (x->chunks && x->chunks->offset <= x->done && !x->status) {
    xfer_chunk *c = x->chunks;
    x->chunks = c->next;
    if (c->offset == x->done) write_local(x, c->data, c->len, c->offset);
    x->chunk_bytes -= c->len;
    sftp->inflight -= c->len < sftp->inflight ? c->len : sftp->inflight;
    free(c);
  }
}

static int hold_chunk(sftp_xfer *x, uint64_t offset, const unsigned char *data, size_t len) {
  xfer_chunk *c = malloc(sizeof *c + len);
  if (!c) return EVSSH_ENOMEM;
  c->offset = offset;
  c->len = len;
  memcpy(c->data, data, len);
  xfer_chunk **pp = &x->chunks;
  while (*pp && (*pp)->offset < offset) pp = &(*pp)->next;
  c->next = *pp;
  *pp = c;
  x->chunk_bytes += len;
  x->sftp->inflight += len;
  return EVSSH_OK;
}

static int push_hole(sftp_xfer *x, uint64_t offset, uint32_t len) {
  if (x->nholes == x->holes_cap) {
    size_t cap = x->holes_cap ? x->holes_cap * 2 : 8;
    xfer_range *v = realloc(x->holes, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    x->holes = v;
    x->holes_cap = cap;
  }
  x->holes[x->nholes++] = (xfer_range){offset, len};
  return EVSSH_OK;
}

static void drop_holes_from(sftp_xfer *x, uint64_t eof) {
  size_t j = 0;
  for (size_t i = 0; i < x->nholes; i++) {
    if (x->holes[i].offset < eof) x->holes[j++] = x->holes[i];
  }
  x->nholes = j;
}

static void on_read_reply(sftp_xfer *x, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_sftp *sftp = x->sftp;
  if (req->offset >= x->total && x->size_known) x->probing = false;
  if (type == 0) {
    fail(x, sftp_abort_code(sftp));
    return;
  }
  if (type == SSH_FXP_STATUS) {
    bool eof = false;
    int rc = sftp_status_result(sftp, req, body, &eof);
    if (rc == EVSSH_OK && !eof) rc = sftp_unexpected(sftp, req, type, "an OK status to a READ");
    if (rc) {
      fail(x, rc);
      return;
    }
    if (req->offset < x->eof_at) x->eof_at = req->offset;
    drop_holes_from(x, x->eof_at);
    return;
  }
  const char *data;
  size_t n;
  if (type != SSH_FXP_DATA || evssh_read_string(body, &data, &n) || n > req->len) {
    fail(x, sftp_unexpected(sftp, req, type, type == SSH_FXP_DATA ? "malformed DATA" : "reply of the wrong type"));
    return;
  }
  if (x->status) return; /* draining after a failure */
  if (n == 0) {
    if (req->offset < x->eof_at) x->eof_at = req->offset;
    drop_holes_from(x, x->eof_at);
    return;
  }
  uint64_t end = req->offset + n;
  if (x->size_known && end > x->total) x->total = end; /* it grew */
  if (n < req->len && end < x->eof_at && push_hole(x, end, (uint32_t)(req->len - n))) {
    sftp_set_error(sftp, 0, "sftp: out of memory");
    fail(x, EVSSH_ENOMEM);
    return;
  }
  if (n == req->len && x->window < sftp->max_requests) x->window++;
  if (req->offset == x->done) {
    if (!write_local(x, (const unsigned char *)data, n, req->offset)) return;
    flush_chunks(x);
  } else if (req->offset > x->done) {
    if (hold_chunk(x, req->offset, (const unsigned char *)data, n)) {
      sftp_set_error(sftp, 0, "sftp: out of memory");
      fail(x, EVSSH_ENOMEM);
      return;
    }
  }
  report(x);
}

/* the request table is near its limit: wait for answers rather than fail */
static bool pending_full(const evssh_sftp *sftp) { return sftp->pending + 1 >= EVSSH_SFTP_MAX_PENDING; }

static bool download_complete(const sftp_xfer *x) {
  return x->eof_at != UINT64_MAX && x->nholes == 0;
}

static void fill_download(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  while (!x->status && x->outstanding < x->window && sftp_usable(sftp)) {
    if (x->outstanding && (sftp->inflight + x->block > sftp->inflight_cap || pending_full(sftp))) return;
    uint64_t offset;
    uint32_t len;
    bool hole = x->nholes > 0;
    if (hole) {
      offset = x->holes[x->nholes - 1].offset;
      len = x->holes[x->nholes - 1].len;
    } else {
      if (x->eof_at != UINT64_MAX) return;
      /* past the size fstat gave: one READ at a time finds the end */
      if (x->size_known && x->next_offset >= x->total && x->probing) return;
      offset = x->next_offset;
      len = x->block;
    }
    sftp_req *req = new_req(x, SSH_FXP_READ);
    if (!req) return;
    req->offset = offset;
    req->len = len;
    int rc = put_handle(x);
    if (!rc) rc = evssh_buf_put_u64(&sftp->out, offset);
    if (!rc) rc = evssh_buf_put_u32(&sftp->out, len);
    if (rc) {
      sftp_req_free(sftp, req);
      fail(x, EVSSH_ENOMEM);
      return;
    }
    if (send_req(x, req, len, NULL, 0)) return;
    if (hole) {
      x->nholes--;
    } else {
      if (x->size_known && offset >= x->total) x->probing = true;
      x->next_offset += len;
    }
  }
}

/* the whole file is in: cut, stamp and close the local copy */
static void finish_local(sftp_xfer *x) {
  release_chunks(x); /* anything held lies past the end */
  struct stat st;
  if (fstat(x->fd, &st) == 0 && (uint64_t)st.st_size > x->done && ftruncate(x->fd, (off_t)x->done)) {
    local_fail(x, "truncate", x->local, errno);
    return;
  }
  if (x->flags & EVSSH_SFTP_PRESERVE) {
    if ((x->rattrs.flags & EVSSH_SFTP_ATTR_PERMISSIONS) && fchmod(x->fd, x->rattrs.permissions & 07777)) {
      local_fail(x, "chmod", x->local, errno);
      return;
    }
    if (x->rattrs.flags & EVSSH_SFTP_ATTR_ACMODTIME) {
      struct timespec ts[2] = {{(time_t)x->rattrs.atime, 0}, {(time_t)x->rattrs.mtime, 0}};
      if (futimens(x->fd, ts)) {
        local_fail(x, "set times of", x->local, errno);
        return;
      }
    }
  }
  int rc = close(x->fd);
  x->fd = -1;
  if (rc) local_fail(x, "close", x->local, errno);
}

/* ------------------------------------------------------------ upload */

/* The WRITE at offset is answered: the prefix in place grows to the first
   WRITE still unanswered, whichever channel carries it. */
static void ack_write(sftp_xfer *x, uint64_t offset) {
  evssh_sftp *sftp = x->sftp;
  /* replies normally come in order: the answered write is near the front */
  for (size_t i = 0; i < x->wr_count; i++) {
    xfer_write *w = &x->writes[(x->wr_head + i) % x->wr_cap];
    if (w->offset == offset && !w->acked) {
      w->acked = true;
      break;
    }
  }
  while (x->wr_count && x->writes[x->wr_head].acked) {
    x->wr_head = (x->wr_head + 1) % x->wr_cap;
    x->wr_count--;
  }
  x->done = x->wr_count ? x->writes[x->wr_head].offset : x->next_offset;
  if (x->window < sftp->max_requests) x->window++;
  if (!x->status) report(x);
}

/* a STATUS reply's result on `on` (type 0: `on` died) */
static int status_reply(evssh_sftp *on, sftp_req *req, uint8_t type, evssh_reader *body) {
  if (type == 0) return sftp_abort_code(on);
  if (type == SSH_FXP_STATUS) return sftp_status_result(on, req, body, NULL);
  return sftp_unexpected(on, req, type, "reply of the wrong type");
}

static void on_write_reply(sftp_xfer *x, sftp_req *req, uint8_t type, evssh_reader *body) {
  int rc = status_reply(x->sftp, req, type, body);
  if (rc) {
    fail(x, rc);
    return;
  }
  ack_write(x, req->offset);
}

/* enough left to be worth a handle on one more channel */
static bool lanes_worth(const sftp_xfer *x) {
  return x->total > x->next_offset && x->total - x->next_offset >= (uint64_t)SFTP_LANE_MIN_BLOCKS / 2 * x->block;
}

/* Open the remote file on every lane that is ready and not yet ours (the
   sftp's own OPEN, with CREAT and TRUNC, has succeeded: these only WRITE). */
static void attach_lanes(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  unsigned want = sftp->upload_channels < sftp->channels_ceiling ? sftp->upload_channels : sftp->channels_ceiling;
  for (unsigned i = 0; i < SFTP_MAX_CHANNELS - 1 && 1 + x->nlanes < want; i++) {
    evssh_sftp *lane = sftp->lanes[i];
    if (x->status || x->local_eof || !lanes_worth(x)) return;
    if (!lane || !sftp_usable(lane)) continue;
    bool have = false;
    for (unsigned k = 0; k < x->nlanes && !have; k++) have = x->lanes[k].sftp == lane;
    if (have) continue;
    sftp_req *req = sftp_req_new(lane, SSH_FXP_OPEN, on_reply);
    evssh_sftp_attrs a;
    memset(&a, 0, sizeof a);
    if (!req || !(req->path = strdup(x->remote)) || !sftp_begin(lane, req) ||
        evssh_buf_put_cstring(&lane->out, x->remote) || evssh_buf_put_u32(&lane->out, EVSSH_SFTP_WRITE) ||
        sftp_put_attrs(&lane->out, &a)) {
      if (req) sftp_req_free(lane, req);
      return; /* short of memory: the channels there are carry on */
    }
    req->owner = x;
    if (sftp_send(lane, req, NULL, 0)) continue; /* that lane is failing: without it */
    xfer_lane *ln = &x->lanes[x->nlanes++];
    memset(ln, 0, sizeof *ln);
    ln->sftp = lane;
    ln->state = L_OPENING;
    ln->outstanding = 1;
    x->outstanding++;
    lane->lane_users++;
  }
}

/* The channel for the next WRITE: the one with the most send window left
   over what it already has queued (the sftp's own counts as one), ties
   taken in turn. Returns the lane's index, or -1 for the sftp's own. */
static int pick_channel(sftp_xfer *x) {
  unsigned n = 1 + x->nlanes;
  int best = -1;
  int64_t best_room = INT64_MIN;
  for (unsigned j = 0; j < n; j++) {
    unsigned c = (x->rr + j) % n;
    evssh_channel *ch;
    if (c == 0) {
      ch = x->sftp->channel;
    } else {
      xfer_lane *ln = &x->lanes[c - 1];
      if (ln->state != L_OPEN || !sftp_usable(ln->sftp)) continue;
      ch = ln->sftp->channel;
    }
    int64_t room = (int64_t)evssh_channel_send_window(ch) - (int64_t)evssh_channel_pending(ch);
    if (room > best_room) {
      best_room = room;
      best = (int)c - 1;
    }
  }
  x->rr = (x->rr + 1) % n;
  return best;
}

static void fill_upload(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  if (sftp->iobuf_len < x->block) {
    unsigned char *p = realloc(sftp->iobuf, x->block);
    if (!p) {
      sftp_set_error(sftp, 0, "sftp: out of memory");
      fail(x, EVSSH_ENOMEM);
      return;
    }
    sftp->iobuf = p;
    sftp->iobuf_len = x->block;
  }
  if (sftp->upload_channels > 1) attach_lanes(x);
  while (!x->status && !x->local_eof && x->outstanding < x->window && x->wr_count < x->wr_cap &&
         sftp_usable(sftp)) {
    if (x->outstanding && sftp_lanes_inflight(sftp) + x->block > sftp->inflight_cap) return;
    int k = x->nlanes ? pick_channel(x) : -1;
    xfer_lane *ln = k < 0 ? NULL : &x->lanes[k];
    evssh_sftp *on = ln ? ln->sftp : sftp;
    evssh_sftp_file *f = ln ? ln->file : x->file;
    if (x->outstanding && pending_full(on)) return;
    ssize_t n = pread(x->fd, sftp->iobuf, x->block, (off_t)x->next_offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      local_fail(x, "read", x->local, errno);
      return;
    }
    if (n == 0) {
      x->local_eof = true;
      return;
    }
    sftp_req *req = new_req_on(x, on, f, SSH_FXP_WRITE);
    if (!req) return;
    req->offset = x->next_offset;
    req->len = (uint32_t)n;
    int rc = put_handle_on(on, f);
    if (!rc) rc = evssh_buf_put_u64(&on->out, x->next_offset);
    if (!rc) rc = evssh_buf_put_u32(&on->out, (uint32_t)n);
    if (rc) {
      sftp_req_free(on, req);
      fail(x, EVSSH_ENOMEM);
      return;
    }
    if (send_req_on(x, on, ln, req, (size_t)n, sftp->iobuf, (size_t)n)) return;
    if (ln) ln->writes++;
    else x->main_writes++;
    x->writes[(x->wr_head + x->wr_count) % x->wr_cap] = (xfer_write){x->next_offset, false};
    x->wr_count++;
    x->next_offset += (uint64_t)n;
  }
}

/* A request about the lane's handle: FSYNC (fsync@openssh.com) or CLOSE. */
static void lane_request(sftp_xfer *x, xfer_lane *ln, uint8_t type) {
  sftp_req *req = new_req_on(x, ln->sftp, ln->file, type);
  if (!req) return;
  int rc = EVSSH_OK;
  if (type == SSH_FXP_EXTENDED) rc = evssh_buf_put_cstring(&ln->sftp->out, "fsync@openssh.com");
  if (!rc) rc = put_handle_on(ln->sftp, ln->file);
  if (rc) {
    sftp_req_free(ln->sftp, req);
    sftp_set_error(x->sftp, 0, "sftp: out of memory");
    fail(x, EVSSH_ENOMEM);
    return;
  }
  send_req_on(x, ln->sftp, ln, req, 0, NULL, 0);
}

/* Every lane's handle closed (synced first when asked and `sync`); a lane
   that died has nothing of ours left to close. Returns whether anything
   was sent. */
static bool close_lanes(sftp_xfer *x, bool sync) {
  bool sent = false;
  for (unsigned i = 0; i < x->nlanes; i++) {
    xfer_lane *ln = &x->lanes[i];
    if (ln->state != L_OPEN) continue;
    if (!sftp_usable(ln->sftp)) {
      release_lane(ln);
      continue;
    }
    ln->state = L_CLOSING;
    if (sync && (x->flags & EVSSH_SFTP_FSYNC) && sftp_has_ext(ln->sftp, "fsync@openssh.com", "1"))
      lane_request(x, ln, SSH_FXP_EXTENDED);
    lane_request(x, ln, SSH_FXP_CLOSE);
    sent = true;
  }
  return sent;
}

static void on_lane_reply(sftp_xfer *x, xfer_lane *ln, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_sftp *on = ln->sftp;
  int rc;
  ln->outstanding--;
  switch (ln->state) {
  case L_OPENING:
    if (type == SSH_FXP_HANDLE) {
      if (sftp_read_handle(on, req, body, &ln->file) == EVSSH_OK) {
        ln->file->refs++; /* ours until the transfer ends */
        ln->state = L_OPEN;
        return;
      }
    } else if (type == SSH_FXP_STATUS) {
      sftp_status_result(on, req, body, NULL);
    } else if (type == 0) {
      sftp_abort_code(on);
    } else {
      sftp_unexpected(on, req, type, "reply of the wrong type");
    }
    /* the sftp's own channel has the file open: go on without this one */
    ln->state = L_DONE;
    sftp_log(x->sftp, EVSSH_LOG_INFO, "sftp: upload of %s: an extra channel could not open %s (%s): going on without it",
             x->local, x->remote, on->error);
    return;
  case L_OPEN:
    rc = status_reply(on, req, type, body);
    if (rc) {
      fail_on(x, on, rc);
      if (type == 0) release_lane(ln); /* its handle died with it */
      return;
    }
    ack_write(x, req->offset);
    return;
  case L_CLOSING:
    rc = status_reply(on, req, type, body);
    /* an unconfirmed fsync or close may have lost data */
    if (rc) fail_on(x, on, rc);
    if (type == 0 || req->request == SSH_FXP_CLOSE) release_lane(ln);
    return;
  default:
    if (type == 0) fail_on(x, on, sftp_abort_code(on));
    return;
  }
}

/* A failed upload that spread its WRITEs may have bytes in place past the
   prefix it reports, with gaps between: the file is cut back to the
   prefix so its size is a safe place to resume from. */
static bool send_cut(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  if (x->cut || !x->upload || !x->ran || !x->nlanes || !x->file || x->phase == P_CLOSE || !sftp_usable(sftp))
    return false;
  x->cut = true;
  sftp_req *req = new_req(x, SSH_FXP_FSETSTAT);
  if (!req) return false;
  evssh_sftp_attrs a;
  memset(&a, 0, sizeof a);
  a.flags = EVSSH_SFTP_ATTR_SIZE;
  a.size = x->done;
  if (put_handle(x) || sftp_put_attrs(&sftp->out, &a)) {
    sftp_req_free(sftp, req);
    return false;
  }
  if (send_req(x, req, 0, NULL, 0)) return false;
  x->phase = P_CUT;
  return true;
}

/* -------------------------------------------------------- the machine */

static void fill(sftp_xfer *x) {
  if (x->phase != P_RUN) return;
  if (x->upload) fill_upload(x);
  else fill_download(x);
}

static void open_remote(sftp_xfer *x) {
  evssh_sftp *sftp = x->sftp;
  sftp_req *req = new_req(x, SSH_FXP_OPEN);
  if (!req) return;
  x->phase = P_OPEN;
  evssh_sftp_attrs a;
  memset(&a, 0, sizeof a);
  uint32_t pflags = EVSSH_SFTP_READ;
  if (x->upload) {
    pflags = EVSSH_SFTP_WRITE | EVSSH_SFTP_CREAT | (x->start == 0 ? EVSSH_SFTP_TRUNC : 0);
    a.flags = EVSSH_SFTP_ATTR_PERMISSIONS;
    a.permissions = x->lst.st_mode & 0777;
  }
  int rc = evssh_buf_put_cstring(&sftp->out, x->remote);
  if (!rc) rc = evssh_buf_put_u32(&sftp->out, pflags);
  if (!rc) rc = sftp_put_attrs(&sftp->out, &a);
  if (rc) {
    sftp_req_free(sftp, req);
    fail(x, EVSSH_ENOMEM);
    return;
  }
  send_req(x, req, 0, NULL, 0);
}

static void start_run(sftp_xfer *x) {
  x->phase = P_RUN;
  x->ran = true;
  x->next_offset = x->start;
  x->done = x->start;
  x->window = SFTP_INITIAL_REQUESTS < x->sftp->max_requests ? SFTP_INITIAL_REQUESTS : x->sftp->max_requests;
  if (x->upload) {
    x->wr_cap = x->sftp->max_requests;
    x->writes = calloc(x->wr_cap, sizeof *x->writes);
    if (!x->writes) {
      sftp_set_error(x->sftp, 0, "sftp: out of memory");
      fail(x, EVSSH_ENOMEM);
    }
  } else if (x->start == 0 && ftruncate(x->fd, 0)) {
    local_fail(x, "truncate", x->local, errno);
  }
  report(x);
}

static void on_reply(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  sftp_xfer *x = req->owner;
  x->outstanding--;
  /* a protocol error below fails the whole sftp, which reaches this
     transfer again (its other requests): busy keeps it alive till here */
  x->busy++;
  if (sftp != x->sftp) {
    /* one of the lanes: its own small machine */
    for (unsigned i = 0; i < x->nlanes; i++) {
      if (x->lanes[i].sftp == sftp) {
        on_lane_reply(x, &x->lanes[i], req, type, body);
        break;
      }
    }
    x->busy--;
    advance(x);
    return;
  }
  int rc;
  switch (x->phase) {
  case P_STAT: /* resume: how much of the upload is there already */
    if (type == SSH_FXP_ATTRS) {
      evssh_sftp_attrs a;
      if (sftp_read_attrs(body, &a)) {
        fail(x, sftp_unexpected(sftp, req, type, "malformed ATTRS"));
        break;
      }
      x->start = (a.flags & EVSSH_SFTP_ATTR_SIZE) ? a.size : 0;
    } else if (type == SSH_FXP_STATUS) {
      rc = sftp_status_result(sftp, req, body, NULL);
      if (rc == EVSSH_ESFTP && sftp->status_code == EVSSH_SFTP_FX_NO_SUCH_FILE) x->start = 0;
      else fail(x, rc ? rc : sftp_unexpected(sftp, req, type, "an OK status to STAT"));
    } else {
      fail(x, type ? sftp_unexpected(sftp, req, type, "reply of the wrong type") : sftp_abort_code(sftp));
    }
    if (!x->status && x->start > (uint64_t)x->lst.st_size) {
      sftp_set_error(sftp, 0, "sftp: cannot resume the upload of %s: %s is already longer (%llu bytes)",
                     x->local, x->remote, (unsigned long long)x->start);
      fail(x, EVSSH_EINVAL);
    }
    if (!x->status) open_remote(x);
    break;
  case P_OPEN:
    if (type == SSH_FXP_HANDLE) {
      rc = sftp_read_handle(sftp, req, body, &x->file);
      if (rc) {
        fail(x, rc);
        break;
      }
      x->file->refs++; /* ours until the transfer ends */
      if (x->upload) start_run(x);
      else send_simple(x, SSH_FXP_FSTAT, P_FSTAT);
    } else if (type == SSH_FXP_STATUS) {
      rc = sftp_status_result(sftp, req, body, NULL);
      fail(x, rc ? rc : sftp_unexpected(sftp, req, type, "an OK status to OPEN"));
    } else {
      fail(x, type ? sftp_unexpected(sftp, req, type, "reply of the wrong type") : sftp_abort_code(sftp));
    }
    break;
  case P_FSTAT:
    if (type == SSH_FXP_ATTRS && !sftp_read_attrs(body, &x->rattrs)) {
      x->rattrs.extended = NULL;
      x->rattrs.extended_len = 0;
      if ((x->rattrs.flags & EVSSH_SFTP_ATTR_PERMISSIONS) && S_ISDIR(x->rattrs.permissions)) {
        sftp_set_error(sftp, 0, "remote: %s is a directory, not a file", x->remote);
        fail(x, EVSSH_EINVAL);
        break;
      }
      x->size_known = (x->rattrs.flags & EVSSH_SFTP_ATTR_SIZE) != 0;
      x->total = x->rattrs.size;
    } else if (type == 0) {
      fail(x, sftp_abort_code(sftp));
      break;
    } /* other answers: the size stays unknown; the reads find the end */
    if (x->size_known && x->start > x->total) {
      sftp_set_error(sftp, 0, "sftp: cannot resume the download of %s at %llu: it has %llu bytes", x->remote,
                     (unsigned long long)x->start, (unsigned long long)x->total);
      fail(x, EVSSH_EINVAL);
      break;
    }
    start_run(x);
    break;
  case P_RUN:
    if (x->upload) on_write_reply(x, req, type, body);
    else on_read_reply(x, req, type, body);
    break;
  case P_DIAGNOSE:
    if (type == SSH_FXP_ATTRS) {
      evssh_sftp_attrs a;
      if (!sftp_read_attrs(body, &a) && (a.flags & EVSSH_SFTP_ATTR_PERMISSIONS) && S_ISDIR(a.permissions))
        snprintf(x->cause, sizeof x->cause, "remote: %s is a directory", x->remote);
    } else if (type == SSH_FXP_EXTENDED_REPLY) {
      uint64_t v[5];
      bool ok = true;
      for (int i = 0; i < 5 && ok; i++) ok = !evssh_read_u64(body, &v[i]);
      if (ok && v[4] == 0) {
        size_t n = strlen(x->cause);
        snprintf(x->cause + n, sizeof x->cause - n, "; the remote file system is full (statvfs: 0 blocks free)");
      }
    } else if (type == 0) {
      fail(x, sftp_abort_code(sftp));
    }
    break;
  case P_FSYNC:
  case P_SETSTAT:
  case P_CUT:
  case P_CLOSE:
    if (type == 0) {
      fail(x, sftp_abort_code(sftp));
      break;
    }
    rc = type == SSH_FXP_STATUS ? sftp_status_result(sftp, req, body, NULL)
                                : sftp_unexpected(sftp, req, type, "reply of the wrong type");
    /* a download's data is in place; only an upload's close can lose it */
    if (rc && (x->upload || x->phase != P_CLOSE)) fail(x, rc);
    if (x->phase == P_CLOSE && x->file) {
      x->file->closed = true;
      sftp_file_unref(x->file);
      x->file = NULL;
    }
    break;
  }
  x->busy--;
  advance(x);
}

/* What to do once nothing is in flight: the next step, or the end. Only
   the outermost frame of ours acts, so x is freed by no one else. */
static void advance(sftp_xfer *x) {
  if (x->busy) return;
  evssh_sftp *sftp = x->sftp;
  bool end = false;
  x->busy++;
  while (!x->outstanding && !end) {
    if (x->status) {
      if (send_diagnosis(x)) break;
      if (send_cut(x)) break;
      close_lanes(x, false);
      if (x->file && x->phase != P_CLOSE && sftp_usable(sftp)) {
        send_simple(x, SSH_FXP_CLOSE, P_CLOSE);
        x->phase = P_CLOSE;
      }
      if (x->outstanding) break;
      x->phase = P_CLOSE;
      if (!x->ran && x->created && !x->upload) unlink(x->local);
      end = true;
      break;
    }
    bool next = false;
    switch (x->phase) {
    case P_RUN:
      fill(x);
      if (x->outstanding || x->status) continue;
      if (!(x->upload ? x->local_eof : download_complete(x))) {
        /* an idle transfer may always send, so this means it could not */
        sftp_set_error(sftp, 0, "sftp: the transfer of %s stalled", x->remote);
        fail(x, EVSSH_ECLOSED);
        continue;
      }
      if (!x->upload) {
        finish_local(x);
        if (!x->status) send_simple(x, SSH_FXP_CLOSE, P_CLOSE);
        continue;
      }
      /* the extra channels' handles first: the file is whole once they
         are closed, and the sftp's own handle then syncs, stamps, cuts */
      x->phase = P_LANES;
      if (close_lanes(x, true)) continue;
      /* fall through */
    case P_LANES:
      if ((x->flags & EVSSH_SFTP_FSYNC) && sftp_has_ext(sftp, "fsync@openssh.com", "1")) {
        send_fsync(x);
        continue;
      }
      /* fall through */
    case P_FSYNC:
      if ((x->flags & EVSSH_SFTP_PRESERVE) || x->start > 0) {
        send_simple(x, SSH_FXP_FSETSTAT, P_SETSTAT);
        continue;
      }
      /* fall through */
    case P_SETSTAT:
      send_simple(x, SSH_FXP_CLOSE, P_CLOSE);
      continue;
    case P_CLOSE:
      end = true;
      break;
    default:
      /* the stat/open/fstat handlers send the next step themselves */
      next = true;
      break;
    }
    if (next) break;
  }
  x->busy--;
  if (end) finish(x);
}

static void xfers_pump(evssh_sftp *sftp) {
  if (!sftp->xfers || !sftp_usable(sftp)) return;
  size_t n = 0;
  for (sftp_xfer *y = sftp->xfers; y; y = y->next) n++;
  /* start one further each time, so no transfer always goes first;
     unlinking keeps pump_next valid */
  sftp_xfer *x = sftp->pump_next ? sftp->pump_next : sftp->xfers;
  sftp->pump_next = x->next;
  for (size_t i = 0; i < n && x && sftp_usable(sftp); i++) {
    sftp_xfer *next = x->next ? x->next : sftp->xfers;
    if (next == x) next = NULL;
    if (x->phase == P_RUN && !x->status) {
      x->busy++;
      fill(x);
      x->busy--;
      if (!x->outstanding) advance(x); /* may finish x */
    }
    x = next;
  }
}

static uint32_t lanes_outstanding(const sftp_xfer *x) {
  uint32_t n = 0;
  for (unsigned i = 0; i < x->nlanes; i++) n += x->lanes[i].outstanding;
  return n;
}

/* The sftp died (sftp.c has already failed its lanes, which answered
   their requests): every transfer ends. */
static void xfers_abort(evssh_sftp *sftp, int code) {
  for (;;) {
    /* a transfer with a frame on the stack is finished by that frame, one
       still waiting on a lane (failed from inside that lane's own replies)
       by the lane's last reply */
    sftp_xfer *x = sftp->xfers;
    while (x && (x->busy || lanes_outstanding(x))) {
      if (!x->status) {
        memcpy(sftp->error, sftp->fail_msg, sizeof sftp->error);
        sftp->status_code = 0;
        fail(x, code);
      }
      x = x->next;
    }
    if (!x) return;
    x->outstanding = 0;
    if (!x->status) {
      memcpy(sftp->error, sftp->fail_msg, sizeof sftp->error);
      sftp->status_code = 0;
      fail(x, code);
    }
    finish(x);
  }
}

/* ------------------------------------------------------------- start */

int sftp_xfer_start(evssh_sftp *sftp, const sftp_xfer_spec *spec) {
  if (!sftp_usable(sftp)) {
    if (sftp->state == SFTP_DEAD) sftp_abort_code(sftp);
    else sftp_set_error(sftp, 0, "sftp: not ready");
    return EVSSH_ECLOSED;
  }
  sftp_xfer *x = calloc(1, sizeof *x);
  if (!x) return EVSSH_ENOMEM;
  sftp->xfers_pump = xfers_pump;
  sftp->xfers_abort = xfers_abort;
  x->sftp = sftp;
  x->fd = -1;
  x->upload = spec->upload;
  x->flags = spec->flags;
  x->progress = spec->progress;
  x->finish = spec->finish;
  x->ctx = spec->ctx;
  x->eof_at = UINT64_MAX;
  x->local = strdup(spec->local);
  x->remote = strdup(spec->remote);
  if (!x->local || !x->remote) {
    xfer_free(x);
    return EVSSH_ENOMEM;
  }
  uint32_t server_block = x->upload ? sftp->write_block : sftp->read_block;
  x->block = sftp->block_override && sftp->block_override < server_block ? sftp->block_override : server_block;
  bool resume = spec->offset == EVSSH_SFTP_RESUME;
  x->start = resume ? 0 : spec->offset;

  if (x->upload) {
    x->fd = open(x->local, O_RDONLY | O_CLOEXEC);
    if (x->fd < 0 || fstat(x->fd, &x->lst)) {
      sftp_set_error(sftp, 0, "local: %s: %s", x->local, strerror(errno));
      xfer_free(x);
      return EVSSH_EINVAL;
    }
    if (!S_ISREG(x->lst.st_mode)) {
      sftp_set_error(sftp, 0, "local: %s is %s, not a file", x->local,
                     S_ISDIR(x->lst.st_mode) ? "a directory" : "something else");
      xfer_free(x);
      return EVSSH_EINVAL;
    }
    x->total = (uint64_t)x->lst.st_size;
    x->size_known = true;
    if (x->start > x->total) {
      sftp_set_error(sftp, 0, "sftp: cannot resume the upload of %s at %llu: it has %llu bytes", x->local,
                     (unsigned long long)x->start, (unsigned long long)x->total);
      xfer_free(x);
      return EVSSH_EINVAL;
    }
  } else {
    /* created now so a bad local path fails here; removed again if the
       remote file cannot be opened; cut to zero only once it can */
    x->fd = open(x->local, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (x->fd >= 0) x->created = true;
    else if (errno == EEXIST) x->fd = open(x->local, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (x->fd < 0 || fstat(x->fd, &st)) {
      sftp_set_error(sftp, 0, "local: %s: %s", x->local, strerror(errno));
      xfer_free(x);
      return EVSSH_EINVAL;
    }
    if (resume) x->start = (uint64_t)st.st_size;
  }

  x->next = sftp->xfers;
  if (sftp->xfers) sftp->xfers->prev = x;
  sftp->xfers = x;
  if (x->upload) sftp_lanes_want(sftp, x->total - x->start, x->block);
  if (x->upload && resume) send_simple(x, SSH_FXP_STAT, P_STAT);
  else open_remote(x);
  if (x->status) {
    /* nothing went out: undo without a callback */
    int rc = x->status;
    unlink_xfer(x);
    if (x->created) unlink(x->local);
    memcpy(sftp->error, x->cause, sizeof sftp->error);
    xfer_free(x);
    return rc;
  }
  return EVSSH_OK;
}

/* ------------------------------------------------- one user transfer */

typedef struct user_xfer {
  evssh_sftp_progress_cb progress;
  evssh_sftp_cb done;
  void *ud;
} user_xfer;

static void user_progress(evssh_sftp *sftp, void *ctx, uint64_t done, uint64_t total) {
  user_xfer *u = ctx;
  sftp->transferred = done;
  if (u->progress) u->progress(sftp, done, total, u->ud);
}

static void user_finish(evssh_sftp *sftp, void *ctx, int status, uint64_t bytes) {
  user_xfer *u = ctx;
  evssh_sftp_cb done = u->done;
  void *ud = u->ud;
  free(u);
  if (done && !sftp->freeing) done(sftp, status, ud);
}

int sftp_user_xfer_start(evssh_sftp *sftp, bool upload, const char *local, const char *remote, uint64_t offset,
                         unsigned flags, evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  user_xfer *u = calloc(1, sizeof *u);
  if (!u) return EVSSH_ENOMEM;
  u->progress = progress;
  u->done = done;
  u->ud = ud;
  sftp_xfer_spec spec = {upload, local, remote, offset, flags, user_progress, user_finish, u};
  int rc = sftp_xfer_start(sftp, &spec);
  if (rc) free(u);
  return rc;
}
