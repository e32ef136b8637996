/* evssh: an event-driven SSH-2 client library in the shape of Ruby's Net::SSH.
 *
 * This is the one public header. Its contract is shared/API.md: names,
 * argument order and meanings below are binding. One thread, one loop,
 * callbacks per channel; nothing blocks except the functions documented as
 * blocking. */
#ifndef EVSSH_H
#define EVSSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EVSSH_API __attribute__((visibility("default")))
#else
#define EVSSH_API
#endif

/* ------------------------------------------------------------------ errors */

enum {
  EVSSH_OK = 0,
  EVSSH_EINVAL = -1,      /* bad argument or option */
  EVSSH_ENOMEM = -2,
  EVSSH_ECONNECT = -3,    /* TCP connect / resolve / proxy failed */
  EVSSH_ETIMEOUT = -4,
  EVSSH_EPROTO = -5,      /* peer broke the protocol, bad MAC, oversize packet */
  EVSSH_EHOSTKEY = -6,    /* host key unknown (strict) or mismatched */
  EVSSH_EAUTH = -7,       /* every authentication method failed */
  EVSSH_ECLOSED = -8,     /* session or channel already closed */
  EVSSH_EDISCONNECT = -9, /* peer disconnected */
  EVSSH_EBUSY = -10,
  EVSSH_ENOALGO = -11,    /* no algorithm in common */
  EVSSH_ECHANNEL = -12,   /* channel open refused */
  /* additions (not in the original contract) */
  EVSSH_EAGAIN = -13,     /* internal: would block; never returned by the public API */
  EVSSH_ESFTP = -15       /* the SFTP server answered with an error status */
};
EVSSH_API const char *evssh_strerror(int code);

typedef struct evssh_error {
  int code;
  char message[256];
} evssh_error;

/* --------------------------------------------------------------- wire data */

typedef struct evssh_reader {
  const unsigned char *p;
  size_t left;
} evssh_reader;

/* Each read is bounds-checked: a short read returns EVSSH_EPROTO and leaves
   the reader unchanged. */
EVSSH_API int evssh_read_u8(evssh_reader *r, uint8_t *v);
EVSSH_API int evssh_read_bool(evssh_reader *r, bool *v);
EVSSH_API int evssh_read_u32(evssh_reader *r, uint32_t *v);
EVSSH_API int evssh_read_u64(evssh_reader *r, uint64_t *v);
EVSSH_API int evssh_read_string(evssh_reader *r, const char **data, size_t *len); /* not NUL-terminated */

typedef struct evssh_buf evssh_buf;
EVSSH_API evssh_buf *evssh_buf_new(void);
EVSSH_API void evssh_buf_free(evssh_buf *b);
EVSSH_API int evssh_buf_put_u8(evssh_buf *b, uint8_t v);
EVSSH_API int evssh_buf_put_bool(evssh_buf *b, bool v);
EVSSH_API int evssh_buf_put_u32(evssh_buf *b, uint32_t v);
EVSSH_API int evssh_buf_put_u64(evssh_buf *b, uint64_t v);
EVSSH_API int evssh_buf_put_string(evssh_buf *b, const void *data, size_t len);
EVSSH_API int evssh_buf_put_cstring(evssh_buf *b, const char *s);
EVSSH_API const void *evssh_buf_data(const evssh_buf *b);
EVSSH_API size_t evssh_buf_len(const evssh_buf *b);

/* ---------------------------------------------------------------- sessions */

typedef struct evssh_session evssh_session;

/* Net::SSH.start: resolve options (ssh_config keywords), connect, exchange
   keys, verify the host key, authenticate. Blocking. NULL on failure, with
   err filled. options: NULL-terminated "Keyword=value" list; besides the
   ssh_config keywords it takes ConfigFile=PATH or ConfigFile=none (ssh's
   -F: read PATH, or no file, instead of ~/.ssh/config). */
EVSSH_API evssh_session *evssh_start(const char *host, const char *user,
                                     const char *const *options, evssh_error *err);

EVSSH_API evssh_session *evssh_session_new(const char *host); /* host or ssh_config alias */
EVSSH_API int evssh_session_option(evssh_session *s, const char *keyword, const char *value);
/* NULL: ~/.ssh/config (read at connect when this is never called);
   "none": read no config file at all */
EVSSH_API int evssh_session_read_config(evssh_session *s, const char *path);
EVSSH_API int evssh_session_set_password(evssh_session *s, const char *password);
/* keyboard-interactive prompts and key passphrases; return 0 and fill answer */
typedef int (*evssh_prompt_cb)(evssh_session *s, const char *prompt, bool echo,
                               char *answer, size_t answer_size, void *ud);
EVSSH_API void evssh_session_set_prompt(evssh_session *s, evssh_prompt_cb cb, void *ud);
/* extra host key check after known_hosts policy: return 0 to accept */
typedef int (*evssh_hostkey_cb)(evssh_session *s, const char *keytype,
                                const char *sha256_fingerprint, void *ud);
EVSSH_API void evssh_session_set_hostkey_check(evssh_session *s, evssh_hostkey_cb cb, void *ud);

EVSSH_API int evssh_session_connect(evssh_session *s); /* blocking */
typedef void (*evssh_session_cb)(evssh_session *s, int status, void *ud);
EVSSH_API int evssh_session_connect_async(evssh_session *s, evssh_session_cb on_ready, void *ud);
/* graceful: closes every channel and disconnects; waits a few seconds at
   most. From inside a callback it returns EVSSH_EBUSY. */
EVSSH_API int evssh_session_close(evssh_session *s);
/* hard shutdown if needed, then free; NULL ok. Every open channel gets its
   on_close first. Never call it from one of the session's own callbacks
   (the object is in use up the stack): close there, free after the loop. */
EVSSH_API void evssh_session_free(evssh_session *s);
EVSSH_API const char *evssh_session_error(const evssh_session *s);
EVSSH_API bool evssh_session_closed(const evssh_session *s);
EVSSH_API const char *evssh_session_host(const evssh_session *s);
EVSSH_API void evssh_session_set_property(evssh_session *s, const char *key, void *value);
EVSSH_API void *evssh_session_property(const evssh_session *s, const char *key);

/* ---------------------------------------------------------- the event loop */

typedef bool (*evssh_cond_cb)(evssh_session *s, void *ud);

EVSSH_API int evssh_session_process(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud);
EVSSH_API int evssh_session_loop(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud);
EVSSH_API bool evssh_session_busy(const evssh_session *s, bool include_invisible);

enum { EVSSH_READ = 1, EVSSH_WRITE = 2 };
typedef void (*evssh_io_cb)(evssh_session *s, int fd, int events, void *ud);
EVSSH_API int evssh_session_listen_to(evssh_session *s, int fd, int events, evssh_io_cb cb, void *ud);
EVSSH_API int evssh_session_stop_listening_to(evssh_session *s, int fd);

/* ---------------------------------------------------------------- channels */

typedef struct evssh_channel evssh_channel;
typedef void (*evssh_channel_cb)(evssh_channel *ch, void *ud);
typedef void (*evssh_data_cb)(evssh_channel *ch, const char *data, size_t len, void *ud);
typedef void (*evssh_ext_data_cb)(evssh_channel *ch, uint32_t type,
                                  const char *data, size_t len, void *ud);
typedef void (*evssh_reply_cb)(evssh_channel *ch, bool success, void *ud);
typedef void (*evssh_open_failed_cb)(evssh_channel *ch, uint32_t reason,
                                     const char *description, void *ud);
enum { EVSSH_REPLY_SUCCESS = 1, EVSSH_REPLY_FAILURE = 0, EVSSH_REPLY_SENT = 2 };
typedef int (*evssh_request_cb)(evssh_channel *ch, const char *type,
                                evssh_reader *data, bool want_reply, void *ud);

EVSSH_API evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud);
EVSSH_API evssh_channel *evssh_session_open_channel_type(evssh_session *s, const char *type,
                                                         const void *extra, size_t extra_len,
                                                         evssh_channel_cb on_open, void *ud);

EVSSH_API void evssh_channel_on_data(evssh_channel *ch, evssh_data_cb cb, void *ud);
EVSSH_API void evssh_channel_on_extended_data(evssh_channel *ch, evssh_ext_data_cb cb, void *ud);
EVSSH_API void evssh_channel_on_request(evssh_channel *ch, const char *type, evssh_request_cb cb, void *ud);
EVSSH_API void evssh_channel_on_eof(evssh_channel *ch, evssh_channel_cb cb, void *ud);
EVSSH_API void evssh_channel_on_close(evssh_channel *ch, evssh_channel_cb cb, void *ud);
EVSSH_API void evssh_channel_on_process(evssh_channel *ch, evssh_channel_cb cb, void *ud);
EVSSH_API void evssh_channel_on_open_failed(evssh_channel *ch, evssh_open_failed_cb cb, void *ud);

EVSSH_API int evssh_channel_exec(evssh_channel *ch, const char *command, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_subsystem(evssh_channel *ch, const char *name, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_shell(evssh_channel *ch, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_request_pty(evssh_channel *ch, const char *term, uint32_t cols,
                                        uint32_t rows, evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_env(evssh_channel *ch, const char *name, const char *value,
                                evssh_reply_cb cb, void *ud);
EVSSH_API int evssh_channel_signal(evssh_channel *ch, const char *signame);
EVSSH_API int evssh_channel_send_request(evssh_channel *ch, const char *type,
                                         const void *extra, size_t extra_len,
                                         evssh_reply_cb cb, void *ud);

EVSSH_API int evssh_channel_send_data(evssh_channel *ch, const void *data, size_t len);
EVSSH_API int evssh_channel_send_extended_data(evssh_channel *ch, uint32_t type,
                                               const void *data, size_t len);
EVSSH_API int evssh_channel_eof(evssh_channel *ch);
EVSSH_API int evssh_channel_close(evssh_channel *ch);
EVSSH_API int evssh_channel_wait(evssh_channel *ch); /* blocking */

EVSSH_API uint32_t evssh_channel_id(const evssh_channel *ch);
EVSSH_API evssh_session *evssh_channel_session(const evssh_channel *ch);
EVSSH_API bool evssh_channel_active(const evssh_channel *ch);
EVSSH_API bool evssh_channel_eof_received(const evssh_channel *ch);
EVSSH_API int evssh_channel_exit_status(const evssh_channel *ch, int *status);
EVSSH_API int evssh_channel_exit_signal(const evssh_channel *ch, const char **signame);
EVSSH_API void evssh_channel_set_property(evssh_channel *ch, const char *key, void *value);
EVSSH_API void *evssh_channel_property(const evssh_channel *ch, const char *key);

/* ------------------------------ global requests and server-opened channels */

typedef void (*evssh_global_reply_cb)(evssh_session *s, bool success,
                                      evssh_reader *response, void *ud);
EVSSH_API int evssh_session_send_global_request(evssh_session *s, const char *type,
                                                const void *extra, size_t extra_len,
                                                evssh_global_reply_cb cb, void *ud);
typedef int (*evssh_global_request_cb)(evssh_session *s, const char *type,
                                       evssh_reader *data, bool want_reply, void *ud);
EVSSH_API void evssh_session_on_global_request(evssh_session *s, const char *type,
                                               evssh_global_request_cb cb, void *ud);
EVSSH_API int evssh_session_send_global_reply(evssh_session *s, bool success,
                                              const void *extra, size_t len);

typedef int (*evssh_open_channel_cb)(evssh_session *s, evssh_channel *ch,
                                     evssh_reader *data, void *ud);
EVSSH_API void evssh_session_on_open_channel(evssh_session *s, const char *type,
                                             evssh_open_channel_cb cb, void *ud);

/* --------------------------------------------------------- exec helpers */

typedef enum { EVSSH_STDOUT = 0, EVSSH_STDERR = 1 } evssh_stream;
typedef void (*evssh_exec_cb)(evssh_channel *ch, evssh_stream stream,
                              const char *data, size_t len, void *ud);
EVSSH_API evssh_channel *evssh_session_exec(evssh_session *s, const char *command,
                                            evssh_exec_cb cb, void *ud);

typedef struct evssh_result {
  char *out;  size_t out_len;  /* stdout, NUL-terminated too */
  char *err;  size_t err_len;  /* stderr, NUL-terminated too */
  int exit_status;             /* -1 if none was sent */
  char *exit_signal;           /* "TERM", or NULL */
} evssh_result;
EVSSH_API int evssh_session_exec_wait(evssh_session *s, const char *command, evssh_result *result);
EVSSH_API void evssh_result_free(evssh_result *result);

/* -------------------------------------------------------------------- SFTP */
/* SFTP protocol version 3 (draft-ietf-secsh-filexfer-02) as OpenSSH's
   sftp-server speaks it, with its extensions used when the server
   advertises them. An evssh_sftp is one "sftp" subsystem channel on a
   session; it runs on the session's loop (evssh_session_loop, a multi, or a
   foreign loop) and never blocks except in the functions marked blocking.
   Many evssh_sftp may share a session, and any number of requests and
   transfers may run at once on one evssh_sftp.

   Conventions for every call below:
   - An asynchronous call returns EVSSH_OK when the request is on its way;
     its callback then runs exactly once, from the loop (never from inside
     the call). Any other return means no callback will run: EVSSH_EINVAL
     (bad argument), EVSSH_ECLOSED (the sftp is not ready or has failed),
     EVSSH_ENOMEM, EVSSH_ESFTP with evssh_sftp_status() ==
     EVSSH_SFTP_FX_OP_UNSUPPORTED for an extension the server does not
     advertise, EVSSH_EBUSY past EVSSH_SFTP_MAX_PENDING requests.
   - A callback's status is EVSSH_OK; EVSSH_ESFTP when the server answered
     with an error status (evssh_sftp_status() gives its SSH_FX code and
     evssh_sftp_error() "remote: No such file (/srv/x)": the server's
     message and the path); EVSSH_EPROTO when the server broke the protocol
     (malformed or oversized packet, a reply to no request: the sftp is then
     failed); EVSSH_ECLOSED when the channel or session ended first.
   - Pointers a callback receives (data, names, attributes) are valid only
     during the callback; paths and buffers passed in are copied.
   - evssh_sftp_error()/evssh_sftp_status() describe the most recent
     failure; inside a failing request's callback, that request's.
   - Callbacks may call any evssh_sftp_* function, evssh_sftp_free included
     (the free then happens when the callback returns). */

typedef struct evssh_sftp evssh_sftp;
/* an open remote file or directory: valid from its open callback until its
   close callback has returned, or until evssh_sftp_free */
typedef struct evssh_sftp_file evssh_sftp_file;
typedef void (*evssh_sftp_cb)(evssh_sftp *sftp, int status, void *ud);

/* SSH_FX status codes, as evssh_sftp_status() reports them */
enum {
  EVSSH_SFTP_FX_OK = 0,
  EVSSH_SFTP_FX_EOF = 1,
  EVSSH_SFTP_FX_NO_SUCH_FILE = 2,
  EVSSH_SFTP_FX_PERMISSION_DENIED = 3,
  EVSSH_SFTP_FX_FAILURE = 4,
  EVSSH_SFTP_FX_BAD_MESSAGE = 5,
  EVSSH_SFTP_FX_NO_CONNECTION = 6,
  EVSSH_SFTP_FX_CONNECTION_LOST = 7,
  EVSSH_SFTP_FX_OP_UNSUPPORTED = 8
};

/* The "sftp" subsystem on a new session channel. Returns at once (NULL only
   for a bad argument, a session that is not connected, or no memory);
   on_ready runs from the loop once SSH_FXP_VERSION (and the server's
   limits@openssh.com, when advertised) has arrived, with EVSSH_OK, or with
   EVSSH_ECHANNEL (channel or subsystem refused: "is 'Subsystem sftp'
   configured?"), EVSSH_EPROTO (the server's first bytes are no SFTP
   VERSION), EVSSH_ECLOSED. The handle stays allocated after a failure:
   free it with evssh_sftp_free. on_ready may be NULL. */
EVSSH_API evssh_sftp *evssh_sftp_open(evssh_session *s, evssh_sftp_cb on_ready, void *ud);
/* As evssh_sftp_open with another subsystem name; a name containing '/' is
   run as a command (an exec request), as `sftp -s /usr/lib/openssh/sftp-server`. */
EVSSH_API evssh_sftp *evssh_sftp_open_subsystem(evssh_session *s, const char *subsystem,
                                                evssh_sftp_cb on_ready, void *ud);
/* Blocking: evssh_sftp_open and run the session's loop until it is ready.
   NULL with err filled on failure (EVSSH_EBUSY from inside a callback). */
EVSSH_API evssh_sftp *evssh_sftp_start(evssh_session *s, evssh_error *err);
EVSSH_API evssh_sftp *evssh_sftp_start_subsystem(evssh_session *s, const char *subsystem,
                                                 evssh_error *err);
/* Closes the channel and frees everything: pending requests and transfers
   are dropped without their callbacks, open evssh_sftp_file handles become
   invalid, local files of transfers are closed as they are. NULL ok. Also
   valid after the session has been freed, and from inside the sftp's own
   callbacks (the free happens when the callback returns) — but not while
   a blocking call (_wait, start) on this sftp runs further up the stack. */
EVSSH_API void evssh_sftp_free(evssh_sftp *sftp);
/* "remote: No such file (/x/y)"; "" when nothing failed yet */
EVSSH_API const char *evssh_sftp_error(const evssh_sftp *sftp);
/* the server's SSH_FX code for the failure evssh_sftp_error describes (0 when
   that failure was not a server status) */
EVSSH_API uint32_t evssh_sftp_status(const evssh_sftp *sftp);
EVSSH_API evssh_session *evssh_sftp_session(const evssh_sftp *sftp);
/* true between on_ready(EVSSH_OK) and the end of the channel */
EVSSH_API bool evssh_sftp_ready(const evssh_sftp *sftp);
/* the version string the server advertised for an extension
   ("posix-rename@openssh.com" -> "1"), or NULL */
EVSSH_API const char *evssh_sftp_extension(const evssh_sftp *sftp, const char *name);
/* limits@openssh.com as the server sent them (all 0 when not advertised) */
typedef struct evssh_sftp_limits {
  uint64_t max_packet_length, max_read_length, max_write_length, max_open_handles;
} evssh_sftp_limits;
EVSSH_API int evssh_sftp_server_limits(const evssh_sftp *sftp, evssh_sftp_limits *out);
/* requests sent and not answered yet (transfers' included) */
EVSSH_API size_t evssh_sftp_pending(const evssh_sftp *sftp);
#define EVSSH_SFTP_MAX_PENDING 65536

/* Pipelining of whole-file transfers, for transfers started afterwards
   (0 keeps a value's default): max_requests in flight per transfer
   (default 64, at most 1024; each transfer ramps up to it), block_size
   per READ/WRITE (default: from limits@openssh.com, else 32768; never more
   than the server's limits), max_inflight_bytes: the cap on bytes
   requested or written and not yet answered and written out, for all
   transfers of this sftp together (default 16 MiB) — the memory a
   transfer may hold is bounded by it. */
EVSSH_API int evssh_sftp_set_pipeline(evssh_sftp *sftp, uint32_t max_requests, uint32_t block_size,
                                      size_t max_inflight_bytes);
/* The receive window wanted for the sftp channel (default 16 MiB): it should
   be at least the bandwidth-delay product (50 ms at 1 Gbit/s: 6 MiB).
   Applied to the channel when the channel API offers a per-channel window;
   until then the session's fixed channel window applies. */
EVSSH_API int evssh_sftp_set_receive_window(evssh_sftp *sftp, uint32_t bytes);

/* attributes (ATTRS): fields are meaningful when their flag is set */
#define EVSSH_SFTP_ATTR_SIZE 0x1u
#define EVSSH_SFTP_ATTR_UIDGID 0x2u
#define EVSSH_SFTP_ATTR_PERMISSIONS 0x4u
#define EVSSH_SFTP_ATTR_ACMODTIME 0x8u
#define EVSSH_SFTP_ATTR_EXTENDED 0x80000000u
typedef struct evssh_sftp_attrs {
  uint32_t flags;
  uint64_t size;
  uint32_t uid, gid;
  uint32_t permissions;        /* st_mode: type and permission bits */
  uint32_t atime, mtime;       /* seconds since the epoch */
  /* EXTENDED: extended_count pairs (string type, string data), raw, for
     evssh_read_string; on input the caller's bytes, sent as they are */
  uint32_t extended_count;
  const unsigned char *extended;
  size_t extended_len;
} evssh_sftp_attrs;

/* a directory entry or a name reply */
typedef struct evssh_sftp_name {
  const char *filename;        /* NUL-terminated */
  size_t filename_len;
  const char *longname;        /* `ls -l` line, NUL-terminated; "" if none */
  evssh_sftp_attrs attrs;
} evssh_sftp_name;

typedef struct evssh_sftp_fsstat {
  uint64_t bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax;
} evssh_sftp_fsstat;

typedef void (*evssh_sftp_file_cb)(evssh_sftp *sftp, int status, evssh_sftp_file *file, void *ud);
/* data: EVSSH_OK with len 0 is end of file */
typedef void (*evssh_sftp_data_cb)(evssh_sftp *sftp, int status, const char *data, size_t len, void *ud);
typedef void (*evssh_sftp_attrs_cb)(evssh_sftp *sftp, int status, const evssh_sftp_attrs *attrs, void *ud);
/* readdir batches: EVSSH_OK with count 0 is the end of the directory */
typedef void (*evssh_sftp_names_cb)(evssh_sftp *sftp, int status, const evssh_sftp_name *names,
                                    size_t count, void *ud);
typedef void (*evssh_sftp_entry_cb)(evssh_sftp *sftp, const evssh_sftp_name *entry, void *ud);
typedef void (*evssh_sftp_path_cb)(evssh_sftp *sftp, int status, const char *path, void *ud);
typedef void (*evssh_sftp_statvfs_cb)(evssh_sftp *sftp, int status, const evssh_sftp_fsstat *st, void *ud);
/* users-groups-by-id: names in request order, "" where the server knows none */
typedef void (*evssh_sftp_ids_cb)(evssh_sftp *sftp, int status, const char *const *users, size_t nusers,
                                  const char *const *groups, size_t ngroups, void *ud);
/* an extended request's raw reply: the EXTENDED_REPLY body (empty for an OK status) */
typedef void (*evssh_sftp_reply_cb)(evssh_sftp *sftp, int status, evssh_reader *reply, void *ud);

/* SSH_FXF open flags */
enum {
  EVSSH_SFTP_READ = 0x1, EVSSH_SFTP_WRITE = 0x2, EVSSH_SFTP_APPEND = 0x4,
  EVSSH_SFTP_CREAT = 0x8, EVSSH_SFTP_TRUNC = 0x10, EVSSH_SFTP_EXCL = 0x20
};

/* Requests, one per protocol request; attrs may be NULL (no attributes). */
EVSSH_API int evssh_sftp_open_file(evssh_sftp *sftp, const char *path, uint32_t pflags,
                                   const evssh_sftp_attrs *attrs, evssh_sftp_file_cb cb, void *ud);
EVSSH_API int evssh_sftp_opendir(evssh_sftp *sftp, const char *path, evssh_sftp_file_cb cb, void *ud);
/* CLOSE: the handle is freed after cb returns, whatever the status (also
   when the channel is gone) */
EVSSH_API int evssh_sftp_close(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_cb cb, void *ud);
/* the path the file was opened with */
EVSSH_API const char *evssh_sftp_file_path(const evssh_sftp_file *file);
/* READ of up to len bytes (a shorter answer is not the end of the file) */
EVSSH_API int evssh_sftp_read(evssh_sftp *sftp, evssh_sftp_file *file, uint64_t offset, uint32_t len,
                              evssh_sftp_data_cb cb, void *ud);
/* WRITE; data is copied. len above the server's max-write-length
   (limits@openssh.com; 261120 when not advertised) is EVSSH_EINVAL. */
EVSSH_API int evssh_sftp_write(evssh_sftp *sftp, evssh_sftp_file *file, uint64_t offset,
                               const void *data, size_t len, evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_stat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs_cb cb, void *ud);
EVSSH_API int evssh_sftp_lstat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs_cb cb, void *ud);
EVSSH_API int evssh_sftp_fstat(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_attrs_cb cb, void *ud);
EVSSH_API int evssh_sftp_setstat(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs,
                                 evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_fsetstat(evssh_sftp *sftp, evssh_sftp_file *file, const evssh_sftp_attrs *attrs,
                                  evssh_sftp_cb cb, void *ud);
/* one READDIR: a batch of entries (count 0: the end) */
EVSSH_API int evssh_sftp_readdir(evssh_sftp *sftp, evssh_sftp_file *dir, evssh_sftp_names_cb cb, void *ud);
/* a whole directory, streamed: OPENDIR, READDIR until the end (on_entry for
   each entry, "." and ".." included, as they come), CLOSE, then done */
EVSSH_API int evssh_sftp_list(evssh_sftp *sftp, const char *path, evssh_sftp_entry_cb on_entry,
                              evssh_sftp_cb done, void *ud);
EVSSH_API int evssh_sftp_mkdir(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs,
                               evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_rmdir(evssh_sftp *sftp, const char *path, evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_remove(evssh_sftp *sftp, const char *path, evssh_sftp_cb cb, void *ud);
/* RENAME: fails when newpath exists (draft semantics) */
EVSSH_API int evssh_sftp_rename(evssh_sftp *sftp, const char *oldpath, const char *newpath,
                                evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_realpath(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud);
EVSSH_API int evssh_sftp_readlink(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud);
/* linkpath -> target (sent in OpenSSH's argument order, PROTOCOL 4.1) */
EVSSH_API int evssh_sftp_symlink(evssh_sftp *sftp, const char *target, const char *linkpath,
                                 evssh_sftp_cb cb, void *ud);
/* extensions (EVSSH_ESFTP / OP_UNSUPPORTED at once when not advertised) */
EVSSH_API int evssh_sftp_posix_rename(evssh_sftp *sftp, const char *oldpath, const char *newpath,
                                      evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_statvfs(evssh_sftp *sftp, const char *path, evssh_sftp_statvfs_cb cb, void *ud);
EVSSH_API int evssh_sftp_fstatvfs(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_statvfs_cb cb, void *ud);
EVSSH_API int evssh_sftp_fsync(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_hardlink(evssh_sftp *sftp, const char *oldpath, const char *newpath,
                                  evssh_sftp_cb cb, void *ud);
EVSSH_API int evssh_sftp_lsetstat(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs,
                                  evssh_sftp_cb cb, void *ud);
/* server-side copy: length 0 copies to the end of from */
EVSSH_API int evssh_sftp_copy_data(evssh_sftp *sftp, evssh_sftp_file *from, uint64_t from_offset,
                                   uint64_t length, evssh_sftp_file *to, uint64_t to_offset,
                                   evssh_sftp_cb cb, void *ud);
/* "~", "~/x", "~user/x" and relative paths, canonicalised */
EVSSH_API int evssh_sftp_expand_path(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud);
/* a user's home directory; "" means the logged-in user by PROTOCOL, but
   OpenSSH 9.2's sftp-server answers Failure to "" (realpath of "." gives
   the login directory there) */
EVSSH_API int evssh_sftp_home_directory(evssh_sftp *sftp, const char *user, evssh_sftp_path_cb cb, void *ud);
EVSSH_API int evssh_sftp_users_groups_by_id(evssh_sftp *sftp, const uint32_t *uids, size_t nuids,
                                            const uint32_t *gids, size_t ngids,
                                            evssh_sftp_ids_cb cb, void *ud);
/* any other SSH_FXP_EXTENDED request: data is the request-specific part
   (after the name), sent as it is; no advertisement check */
EVSSH_API int evssh_sftp_extended(evssh_sftp *sftp, const char *request, const void *data, size_t len,
                                  evssh_sftp_reply_cb cb, void *ud);

/* Whole files. Pipelined: up to max_requests READs/WRITEs in flight after a
   ramp, block size from limits@openssh.com, bounded by max_inflight_bytes
   (evssh_sftp_set_pipeline); a download writes the local file strictly in
   offset order, so after any failure the local file is an exact prefix of
   the remote one, and stops cleanly at the end of the file (a short read is
   asked again for the rest). offset > 0 resumes: the transfer starts there,
   keeping what is before it (a download opens the local file without
   truncating it and cuts it to the final size at the end; an upload opens
   the remote file without TRUNC); EVSSH_SFTP_RESUME takes the offset from
   the destination's current size. progress (may be NULL) gets the bytes in
   place at the destination (a prefix, resume offset included) and the
   total (0 when unknown); done runs once. The call returns EVSSH_EINVAL,
   with evssh_sftp_error set ("local: /x: No such file or directory"), when
   the local file cannot be opened or created; done is then not called.
   On failure done's status is the cause (EVSSH_ESFTP, EVSSH_ECLOSED,
   EVSSH_EPROTO, or EVSSH_EINVAL for a local I/O error) and
   evssh_sftp_error says what and how far it got: "download of /srv/x to
   /tmp/x stopped after 5242880 of 10485760 bytes: ..."; evssh_sftp_transferred
   gives that byte count (the offset to resume from). */
typedef void (*evssh_sftp_progress_cb)(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud);
#define EVSSH_SFTP_RESUME UINT64_MAX
EVSSH_API int evssh_sftp_upload(evssh_sftp *sftp, const char *local, const char *remote, uint64_t offset,
                                evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud);
EVSSH_API int evssh_sftp_download(evssh_sftp *sftp, const char *remote, const char *local, uint64_t offset,
                                  evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud);
/* blocking: run the session's loop until the transfer is done; the result
   is done's status (EVSSH_EBUSY from inside a callback) */
EVSSH_API int evssh_sftp_upload_wait(evssh_sftp *sftp, const char *local, const char *remote);
EVSSH_API int evssh_sftp_download_wait(evssh_sftp *sftp, const char *remote, const char *local);

/* transfer flags */
enum {
  /* permissions and access/modification times copied to the destination
     (directories too, in a tree) */
  EVSSH_SFTP_PRESERVE = 0x1,
  /* local/remote may be directories: the whole tree is copied (regular
     files and directories; other entries, symlinks included, are skipped);
     destination directories are created as needed; offset must be 0 or
     EVSSH_SFTP_RESUME (then per file); progress counts the whole tree */
  EVSSH_SFTP_RECURSIVE = 0x2,
  /* upload: fsync@openssh.com before the close, when advertised */
  EVSSH_SFTP_FSYNC = 0x4
};
EVSSH_API int evssh_sftp_upload_flags(evssh_sftp *sftp, const char *local, const char *remote,
                                      uint64_t offset, unsigned flags, evssh_sftp_progress_cb progress,
                                      evssh_sftp_cb done, void *ud);
EVSSH_API int evssh_sftp_download_flags(evssh_sftp *sftp, const char *remote, const char *local,
                                        uint64_t offset, unsigned flags, evssh_sftp_progress_cb progress,
                                        evssh_sftp_cb done, void *ud);
EVSSH_API int evssh_sftp_upload_flags_wait(evssh_sftp *sftp, const char *local, const char *remote,
                                           uint64_t offset, unsigned flags);
EVSSH_API int evssh_sftp_download_flags_wait(evssh_sftp *sftp, const char *remote, const char *local,
                                             uint64_t offset, unsigned flags);
/* bytes in place at the destination for the transfer whose done (or
   progress) callback is running, or that the last _wait call ran */
EVSSH_API uint64_t evssh_sftp_transferred(const evssh_sftp *sftp);

/* ------------------------------------------------- many sessions, one loop */

typedef struct evssh_multi evssh_multi;
EVSSH_API evssh_multi *evssh_multi_new(void);
EVSSH_API void evssh_multi_free(evssh_multi *m);
EVSSH_API int evssh_multi_add(evssh_multi *m, evssh_session *s);
EVSSH_API int evssh_multi_remove(evssh_multi *m, evssh_session *s);
typedef bool (*evssh_multi_cond_cb)(evssh_multi *m, void *ud);
EVSSH_API int evssh_multi_process(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud);
EVSSH_API int evssh_multi_loop(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud);
/* A whole multi inside another event loop (additions): one fd, readable
   when any member's fd or listen_to fd is ready; poll it for reading only.
   evssh_multi_timeout brings the multi's interest up to date and returns
   how long the caller may wait on that fd before calling
   evssh_multi_process(m, 0, ...): ms, -1 no timer, 0 work to do now. Call
   it right before every wait. */
EVSSH_API int evssh_multi_fd(const evssh_multi *m);
EVSSH_API int evssh_multi_timeout(evssh_multi *m);

/* ----------------------------------- running inside another event loop */

EVSSH_API int evssh_session_fd(const evssh_session *s);
EVSSH_API int evssh_session_events(const evssh_session *s);
EVSSH_API int evssh_session_timeout(const evssh_session *s);
EVSSH_API int evssh_session_handle_events(evssh_session *s, int revents);

/* ----------------------------------------------------------------- logging */

enum { EVSSH_LOG_ERROR = 1, EVSSH_LOG_INFO = 2, EVSSH_LOG_DEBUG = 3, EVSSH_LOG_PACKET = 4 };
typedef void (*evssh_log_cb)(evssh_session *s, int level, const char *message, void *ud);
EVSSH_API void evssh_session_set_log(evssh_session *s, int level, evssh_log_cb cb, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* EVSSH_H */
