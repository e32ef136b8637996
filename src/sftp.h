/* sftp.h: internals shared by the SFTP client's files. sftp.c owns the
 * session (channel, version exchange, request table, reply framing and
 * dispatch, errors, lifetime); sftp_codec.c the wire forms (attributes,
 * status, names, printable copies); sftp_requests.c the request-level calls;
 * sftp_transfer.c pipelined whole-file transfers; sftp_parallel.c the
 * extra channels uploads may spread over; sftp_tree.c directory trees. Everything rides on the public channel API, as DESIGN.md's
 * services rule asks: no file here reaches into connection.c. */
#ifndef EVSSH_SFTP_INTERNAL_H
#define EVSSH_SFTP_INTERNAL_H

#include "evssh.h"
#include "buf.h"

enum {
  SSH_FXP_INIT = 1, SSH_FXP_VERSION = 2, SSH_FXP_OPEN = 3, SSH_FXP_CLOSE = 4, SSH_FXP_READ = 5,
  SSH_FXP_WRITE = 6, SSH_FXP_LSTAT = 7, SSH_FXP_FSTAT = 8, SSH_FXP_SETSTAT = 9,
  SSH_FXP_FSETSTAT = 10, SSH_FXP_OPENDIR = 11, SSH_FXP_READDIR = 12, SSH_FXP_REMOVE = 13,
  SSH_FXP_MKDIR = 14, SSH_FXP_RMDIR = 15, SSH_FXP_REALPATH = 16, SSH_FXP_STAT = 17,
  SSH_FXP_RENAME = 18, SSH_FXP_READLINK = 19, SSH_FXP_SYMLINK = 20,
  SSH_FXP_STATUS = 101, SSH_FXP_HANDLE = 102, SSH_FXP_DATA = 103, SSH_FXP_NAME = 104,
  SSH_FXP_ATTRS = 105, SSH_FXP_EXTENDED = 200, SSH_FXP_EXTENDED_REPLY = 201
};

#define SFTP_PROTOCOL_VERSION 3u
/* Longest packet accepted from the server. OpenSSH's own limit is 256 KiB;
   the slack covers servers whose limits@openssh.com allow more, and keeps
   the reassembly buffer bounded whatever the server claims. */
#define SFTP_MAX_PACKET_IN (1024u * 1024u)
#define SFTP_MAX_HANDLE 256u
#define SFTP_DEFAULT_BLOCK 32768u
/* OpenSSH's historical request-size limit (256 KiB message, 1 KiB header) */
#define SFTP_NOLIMITS_MAX_IO 261120u
#define SFTP_BLOCK_CEILING (SFTP_MAX_PACKET_IN - 1024u)
#define SFTP_DEFAULT_REQUESTS 64u
#define SFTP_MAX_REQUESTS 1024u
#define SFTP_INITIAL_REQUESTS 4u
#define SFTP_DEFAULT_INFLIGHT (16u * 1024u * 1024u)
#define SFTP_DEFAULT_WINDOW (16u * 1024u * 1024u)
/* evssh_sftp_set_upload_channels' ceiling (EVSSH_SFTP_MAX_UPLOAD_CHANNELS) */
#define SFTP_MAX_CHANNELS 8u
#define SFTP_ERROR_MAX 1024
#ifndef SFTP_START_TIMEOUT_MS
#define SFTP_START_TIMEOUT_MS 60000
#endif

typedef struct sftp_req sftp_req;
typedef struct sftp_xfer sftp_xfer;
typedef struct sftp_tree sftp_tree;

/* A reply for req arrived (type, body after the id), or, with type 0, the
   sftp failed first (sftp->fail_code; sftp->freeing: run no user callback,
   only free what the request carries).
   The handler owns nothing of req: sftp.c frees it after the call. */
typedef void (*sftp_reply_fn)(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body);

typedef union sftp_user_cb {
  evssh_sftp_cb status;
  evssh_sftp_file_cb file;
  evssh_sftp_data_cb data;
  evssh_sftp_attrs_cb attrs;
  evssh_sftp_names_cb names;
  evssh_sftp_path_cb path;
  evssh_sftp_statvfs_cb statvfs;
  evssh_sftp_ids_cb ids;
  evssh_sftp_reply_cb reply;
} sftp_user_cb;

struct sftp_req {
  uint32_t id;
  uint8_t request;             /* the SSH_FXP_* we sent (for messages) */
  sftp_reply_fn fn;
  void *owner;                 /* transfer, tree, listing or file */
  sftp_user_cb cb;
  void *ud;
  char *path, *path2;          /* for error messages; owned */
  evssh_sftp_file *file;       /* handle the request is about */
  uint64_t offset;
  uint32_t len;
  size_t charge;               /* bytes counted in sftp->inflight */
  bool internal;               /* made by our own code: its callback runs
                                  even during teardown, to free its context */
  sftp_req *next;              /* free list, or an owner's queue */
};

struct evssh_sftp_file {
  evssh_sftp *sftp;
  evssh_sftp_file *prev, *next;   /* sftp->files */
  char *path;
  unsigned char handle[SFTP_MAX_HANDLE];
  size_t handle_len;
  bool closing;                   /* CLOSE sent: no more requests on it */
  bool closed;                    /* CLOSE answered (or the sftp died) */
  unsigned refs;                  /* pending requests that name it */
};

typedef struct sftp_ext {
  char *name, *version;
} sftp_ext;

typedef struct sftp_token sftp_token;

enum { SFTP_OPENING = 0, SFTP_READY, SFTP_DEAD };

struct evssh_sftp {
  evssh_session *session;      /* NULL once the channel is gone */
  evssh_channel *channel;      /* NULL once closed */
  sftp_token *token;           /* what the channel's pending reply points at */
  int state;
  evssh_sftp_cb on_ready;
  void *ready_ud;
  bool exec_mode;              /* subsystem given as a command */

  uint32_t version;
  sftp_ext *exts;
  size_t ext_count;
  evssh_sftp_limits limits;
  bool have_limits;
  uint32_t read_block, write_block;    /* from the limits, or defaults */
  uint32_t max_write;                  /* request-level WRITE ceiling */

  uint32_t next_id;
  sftp_req **table;            /* open addressing by id */
  size_t table_cap, pending;
  sftp_req *free_reqs;
  size_t free_count;

  evssh_buf in;                /* reply reassembly */
  evssh_buf held;              /* bytes a nested loop delivered while a
                                  reply's callback ran: parsed after it */
  bool parsing;                /* a reply is being dispatched */
  evssh_buf out;               /* request being built */
  evssh_buf scratch;           /* NUL-terminated strings handed to callbacks */

  int fail_code;               /* why the sftp is dead */
  char fail_msg[SFTP_ERROR_MAX];
  char error[SFTP_ERROR_MAX];  /* evssh_sftp_error */
  char server_stderr[200];     /* the first words the server wrote there */
  uint32_t status_code;        /* evssh_sftp_status */
  uint64_t transferred;        /* evssh_sftp_transferred */

  int depth;                   /* our entry points on the stack */
  bool free_pending;           /* evssh_sftp_free from a callback */
  bool freeing;                /* tearing down: no user callbacks */
  int internal;                /* > 0 while our own code makes a request */

  /* pipelining */
  uint32_t max_requests;
  uint32_t block_override;
  size_t inflight_cap;
  size_t inflight;             /* bytes of all transfers not yet answered */
  uint32_t receive_window;
  sftp_xfer *xfers;            /* active transfers (pump order) */
  sftp_xfer *pump_next;        /* round-robin start */
  sftp_tree *trees;
  unsigned char *iobuf;        /* uploads read the local file through it */
  size_t iobuf_len;

  evssh_sftp_file *files;

  /* extra upload channels (sftp_parallel.c): each lane is a whole sftp of
     its own on the same session, serving this one's uploads; a lane's
     entries bump its parent's depth too (sftp_enter), so the parent is
     never freed under a lane's reply */
  unsigned upload_channels;    /* wanted, 1..SFTP_MAX_CHANNELS */
  unsigned channels_ceiling;   /* lowered when the server refuses a lane */
  evssh_sftp *lanes[SFTP_MAX_CHANNELS - 1];
  evssh_sftp *parent;          /* a lane: the sftp it serves */
  unsigned lane_users;         /* a lane: transfers holding a handle on it */

  /* upward hooks (the layer rule: sftp.c calls nothing above it by name),
     NULL until the first transfer or tree */
  void (*xfers_pump)(evssh_sftp *sftp);          /* issue what the budget allows */
  void (*xfers_abort)(evssh_sftp *sftp, int code); /* fail every transfer: dying */
  void (*trees_free)(evssh_sftp *sftp);          /* teardown, no callbacks */
  void (*lanes_end)(evssh_sftp *sftp, int code, bool free_them); /* sftp_lanes_end, once lanes were made */
};

/* ------------------------------------------------------------ sftp.c */
void sftp_enter(evssh_sftp *sftp);
void sftp_leave(evssh_sftp *sftp);
/* requests can be sent */
bool sftp_usable(const evssh_sftp *sftp);
/* a request with a fresh id, not yet sent; NULL without memory */
sftp_req *sftp_req_new(evssh_sftp *sftp, uint8_t request, sftp_reply_fn fn);
void sftp_req_free(evssh_sftp *sftp, sftp_req *req);
/* sftp->out reset to a packet header for req (length filled by the send) */
evssh_buf *sftp_begin(evssh_sftp *sftp, sftp_req *req);
/* as sftp_begin for SSH_FXP_EXTENDED with the request name */
evssh_buf *sftp_begin_extended(evssh_sftp *sftp, sftp_req *req, const char *name);
/* sends sftp->out (then trailing bytes, counted in the length) and files
   req under its id; on failure req is freed and the error returned */
int sftp_send(evssh_sftp *sftp, sftp_req *req, const void *trailing, size_t trailing_len);
/* extension advertised with this version */
bool sftp_has_ext(const evssh_sftp *sftp, const char *name, const char *version);
/* evssh_sftp_error / evssh_sftp_status */
void sftp_set_error(evssh_sftp *sftp, uint32_t fx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* the sftp can no longer be used: every pending request and transfer
   fails with code, the channel is closed */
void sftp_fail(evssh_sftp *sftp, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* for a failing reply: the code a type-0 (aborted) reply stands for, and
   its message set as the current error */
int sftp_abort_code(evssh_sftp *sftp);
/* A STATUS body for a request about path (and path2): EVSSH_OK for
   SSH_FX_OK, else EVSSH_ESFTP (message set) or EVSSH_EPROTO (malformed:
   the sftp is failed). eof_ok maps SSH_FX_EOF to EVSSH_OK with *eof set. */
int sftp_status_result(evssh_sftp *sftp, sftp_req *req, evssh_reader *body, bool *eof);
/* the reply was not what the request allows: fail the sftp (EPROTO) */
int sftp_unexpected(evssh_sftp *sftp, sftp_req *req, uint8_t type, const char *what);
/* handle bookkeeping */
evssh_sftp_file *sftp_file_new(evssh_sftp *sftp, const char *path, const void *handle, size_t len);
void sftp_file_free(evssh_sftp_file *f);
/* a request names f (kept until its reply), and the reverse; the object is
   freed once it is closed and nothing names it */
void sftp_file_ref(sftp_req *req, evssh_sftp_file *f);
void sftp_file_unref(evssh_sftp_file *f);
/* the handle body (string) of a HANDLE reply into a new file object */
int sftp_read_handle(evssh_sftp *sftp, sftp_req *req, evssh_reader *body, evssh_sftp_file **out);
/* blocking helper for the _wait calls: run the session's loop until *done,
   or fail the sftp (ETIMEOUT) after timeout_ms (-1: no limit) */
int sftp_wait(evssh_sftp *sftp, const bool *done, int timeout_ms);
/* EVSSH_OK when a _wait call may run the loop (not inside one of this
   sftp's own callbacks: its replies could not be dispatched there) */
int sftp_wait_check(evssh_sftp *sftp);
/* an evssh_sftp_file the caller passed belongs to this sftp and is usable */
bool sftp_file_ok(const evssh_sftp *sftp, const evssh_sftp_file *f);

/* ------------------------------------------------------ sftp_codec.c */
int sftp_put_attrs(evssh_buf *b, const evssh_sftp_attrs *a);
int sftp_read_attrs(evssh_reader *r, evssh_sftp_attrs *a);
const char *sftp_fx_name(uint32_t code);
const char *sftp_request_name(uint8_t type);
/* printable copy of untrusted text (controls become '?') */
void sftp_printable(char *out, size_t outlen, const char *data, size_t len);
/* NAME body into an array of entries whose strings live in sftp->scratch;
   *names is malloc'd (free it), NULL when count is 0 */
int sftp_read_names(evssh_sftp *sftp, evssh_reader *r, evssh_sftp_name **names, size_t *count);
/* a string of the body copied NUL-terminated into sftp->scratch, at *off
   (an offset: the buffer moves as it grows) */
int sftp_scratch_string(evssh_sftp *sftp, evssh_reader *r, size_t *off);

/* --------------------------------------------------- sftp_transfer.c */
/* (sftp.c reaches the transfers through sftp->xfers_pump / xfers_abort,
   which the first transfer sets) */
/* internal completion hook: the tree's, or the one calling the user's done */
typedef void (*sftp_xfer_finish_fn)(evssh_sftp *sftp, void *ctx, int status, uint64_t bytes);
typedef void (*sftp_xfer_progress_fn)(evssh_sftp *sftp, void *ctx, uint64_t done, uint64_t total);
typedef struct sftp_xfer_spec {
  bool upload;
  const char *local, *remote;
  uint64_t offset;
  unsigned flags;
  sftp_xfer_progress_fn progress;
  sftp_xfer_finish_fn finish;
  void *ctx;
} sftp_xfer_spec;
int sftp_xfer_start(evssh_sftp *sftp, const sftp_xfer_spec *spec);
/* one file for the user: progress and done as the public calls take them */
int sftp_user_xfer_start(evssh_sftp *sftp, bool upload, const char *local, const char *remote, uint64_t offset,
                         unsigned flags, evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud);

/* --------------------------------------------------- sftp_parallel.c */
/* Before an upload of `bytes` (from its start offset): open the extra
   channels it may use, when evssh_sftp_set_upload_channels asked for
   them and the upload is big enough; drops lanes that died unused. A
   lane that becomes ready calls the parent's pump, so running uploads
   pick it up. */
void sftp_lanes_want(evssh_sftp *sftp, uint64_t bytes, uint32_t block);
/* bytes in flight over the sftp and all its lanes */
size_t sftp_lanes_inflight(const evssh_sftp *sftp);
/* the sftp failed: fail its lanes too (their requests answered with type
   0); with free_them, free them as well (the sftp is being freed) */
void sftp_lanes_end(evssh_sftp *sftp, int code, bool free_them);
/* a line in the session's log */
void sftp_log(evssh_sftp *sftp, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* below this many blocks left an upload opens no extra channel and
   attaches no more lanes */
#define SFTP_LANE_MIN_BLOCKS 8u

/* ------------------------------------------------------- sftp_tree.c */
int sftp_tree_start(evssh_sftp *sftp, bool upload, const char *local, const char *remote,
                    uint64_t offset, unsigned flags, evssh_sftp_progress_cb progress,
                    evssh_sftp_cb done, void *ud);
/* (sftp.c frees the trees at teardown through sftp->trees_free, which the
   first tree sets) */

#endif
