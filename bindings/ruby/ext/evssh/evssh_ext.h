/* evssh_ext.h holds what the files of the C half of the Ruby binding
 * (evssh_ext.c and ext_*.c) share: the wrapper structs, the interned names
 * and the ext_* functions that cross files. That half wraps evssh_session and
 * evssh_channel as EvSSH::Session and EvSSH::Channel, evssh_reader/evssh_buf
 * as EvSSH::Buffer, and turns every C callback into a call of the Ruby block
 * the program registered. It holds no protocol logic: every byte on the wire
 * is produced and parsed by libevssh.
 *
 * Three rules shape all of these files.
 *
 * The GVL. libevssh's process() both waits and runs callbacks, and callbacks
 * must run with the GVL. So one iteration here is Net::SSH's: "preprocess"
 * is evssh_session_process(s, 0) with the GVL (dispatch what is buffered,
 * on_process, non-blocking I/O on the session socket); the wait is a poll()
 * WITHOUT the GVL (rb_thread_call_without_gvl) on evssh_session_fd/events and
 * the listen_to IOs, for the smaller of the caller's wait and
 * evssh_session_timeout; "postprocess" runs the listen_to callbacks of the
 * IOs that became ready, with the GVL. What the socket delivered is read by
 * the next preprocess, so each iteration is exactly one C iteration and the
 * data a listener read is seen by on_process at once, never after a sleep.
 * The listen_to set is the binding's own (C never sees those fds). Other
 * Ruby threads run while we sleep; Thread#raise/kill and Ctrl-C interrupt
 * the poll (RUBY_UBF_IO) and are raised between iterations.
 *
 * Lifetimes. Every live channel wrapper is in its session's `channels` hash
 * (marked), so its blocks live as long as the C channel; the wrapper is
 * detached (C callbacks cleared, dropped from the hash) in on_close, in
 * on_open_failed, or when a peer-opened channel is refused. A channel wrapper
 * marks its session, so a reachable channel keeps the session alive. Request
 * reply blocks are kept in a hash keyed by a token passed to C as ud, never
 * as raw VALUEs. C finds the session wrapper through a session property; once
 * the wrapper is being freed (`dead`), trampolines return without touching
 * Ruby, so evssh_session_free may run from the GC.
 *
 * Exceptions. Every block runs under rb_protect. The first exception is
 * stashed and the C call (which never sees it) finishes normally, so the C
 * state stays intact; process/loop then re-raise it. Later callbacks of the
 * same iteration still run (their exceptions are dropped in favour of the
 * first); a non-exception jump (throw, Thread#kill) stops further Ruby
 * callbacks and is resumed with rb_jump_tag. */
#ifndef EVSSH_RUBY_EXT_H
#define EVSSH_RUBY_EXT_H

#include <ruby.h>
#include <ruby/encoding.h>
#include <ruby/io.h>
#include <ruby/thread.h>

#include <evssh.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* what crosses files stays internal to the .so, as it was when all of it
   was static: only Init_evssh_ext (declared in evssh_ext.c) is exported */
#pragma GCC visibility push(hidden)

/* the session / channel property under which the wrapper is found from C;
   user keys are Ruby symbols or strings and cannot start with \001 */
#define RB_KEY "\001ruby"

/* set once by Init_evssh_ext (evssh_ext.c); classes are constants, never collected */
extern VALUE ext_mEvSSH, ext_cSession, ext_cChannel;
extern VALUE ext_eChannelOpenFailed, ext_eChannelRequestFailed, ext_eClosed, ext_eBusy;
extern ID ext_id_call, ext_id_send_pending, ext_id_pending_write, ext_id_closed_p, ext_id_fileno, ext_id_to_io,
    ext_id_print, ext_id_default_listener, ext_id_force_encoding, ext_id_new;
extern VALUE ext_sym_stdout, ext_sym_stderr, ext_sym_sent, ext_sym_exit_code, ext_sym_exit_signal;

typedef struct rsess rsess;

/* An evssh_multi shared by the EvSSH::Multi object and its member sessions:
   whichever the GC frees first must not touch the other, so each holds a
   reference; m is NULL once the multi itself is freed. */
typedef struct mholder {
  evssh_multi *m;
  int refs;
} mholder;

typedef struct rchan {
  evssh_channel *ch; /* NULL once detached (closed, refused) */
  rsess *rs;
  VALUE self, session;
  VALUE on_open, on_data, on_ext, on_eof, on_close, on_process, on_open_failed;
  VALUE requests;   /* type => block */
  VALUE pending;    /* token => reply block */
  VALUE properties; /* ch[:key] */
  VALUE exec_block; /* ssh.exec's block, or nil */
  VALUE result;     /* exec!'s collected output, or nil */
  VALUE status;     /* exec(status: {}) hash, or nil */
  VALUE type;
  VALUE exit_signal;
  int exec_mode;    /* EXEC_NONE, ... */
  uint32_t id;
  bool has_exit_status, eof_received, close_requested;
  bool confirmed;   /* the peer confirmed the open (on_open ran) */
  bool eof_marked;  /* eof! was called (Net::SSH's eof?) */
  bool sent_in_step; /* send_data during the current preprocess */
  /* backpressure: what send_data took past libevssh's send cap
     (EVSSH_EAGAIN), in order, [ext type or nil, String] pairs fed to C as
     it drains; EOF and CLOSE asked for meanwhile wait for it */
  VALUE backlog;
  size_t backlog_bytes;
  bool eof_deferred, close_deferred;
  VALUE on_drain;   /* channel.on_drain's block, or nil */
  size_t drain_low; /* its low water */
  int drain_mode;   /* what C's on_drain is registered for (DRAIN_*) */
  unsigned long long queued; /* bytes given to send_data, ever */
  int exit_status;
  uint32_t remote_id;
  bool has_remote_id;
  evssh_channel_windows windows; /* the last seen, kept after close */
  bool has_windows;
} rchan;

enum { DRAIN_NONE = 0, DRAIN_FEED, DRAIN_USER };
enum { EXEC_NONE = 0, EXEC_BLOCK, EXEC_COLLECT, EXEC_PRINT };

typedef struct open_type {
  struct open_type *next;
  char name[];
} open_type;

struct rsess {
  evssh_session *s;
  VALUE self;
  VALUE host;
  VALUE channels;        /* live Channel => true */
  VALUE pending;         /* token => global reply block */
  VALUE global_handlers; /* type => block */
  VALUE open_handlers;   /* type => block */
  VALUE listeners;       /* fd => [io, block, events] */
  VALUE properties;      /* ssh[:key] */
  VALUE listener_keys;   /* scratch: listener fds snapshot while dispatching */
  VALUE exc;             /* first exception raised by a callback */
  VALUE error;           /* message of a failed connect (Multi) */
  VALUE prompt_proc;     /* answers prompts other than key passphrases, or nil */
  VALUE hostkey_proc;    /* Ruby host key verification, or nil */
  VALUE connect_exc;     /* what a connect-time callback raised: raised instead of the C error */
  VALUE logger;          /* receives libevssh's log lines (#add), or nil */
  open_type *open_types; /* names handed to C as on_open_channel ud */
  mholder *multi;        /* the C multi this session is a member of */
  char *passphrase;      /* passphrase: for encrypted key files, wiped on free */
  int jump;              /* pending non-exception jump from a callback */
  int depth;             /* callbacks currently on the stack */
  unsigned long activity; /* callbacks run (on_process aside): work arrived */
  unsigned long long sent;   /* bytes handed to send_data, ever */
  unsigned long token;
  int connect_status;
  bool connect_done, connecting;
  bool dead;
};

/* evssh_ext.c: error classes. The exception for a C code is built by Ruby
   (EvSSH.__exception_for): Net::SSH raises Errno::ECONNREFUSED, its own
   classes under the Net::SSH shim, ConnectionTimeout only while connecting),
   from the code, the message and the errno behind a failed connect. */
VALUE ext_make_error(int code, const char *msg);
/* sys_errno: evssh_session_sys_errno of the failed session (0: none) */
VALUE ext_make_connect_error(int code, const char *msg, int sys_errno);
NORETURN(void ext_raise_code(int code, const char *msg));

/* ext_buffer.c: EvSSH::Buffer */
VALUE ext_buf_new_from(const void *p, size_t n);
VALUE ext_encode_pairs(int argc, const VALUE *argv);
void ext_init_buffer(void);

/* ext_guard.c: running Ruby blocks from C callbacks, waiting without the GVL */
VALUE ext_guarded_send(rsess *rs, VALUE recv, ID mid, int argc, const VALUE *argv, VALUE expected,
                       VALUE *caught);
VALUE ext_guarded_call(rsess *rs, VALUE proc, int argc, const VALUE *argv);
void ext_raise_pending(rsess *rs);
/* Sleep without the GVL until a session fd or a listened IO is ready, or
   wait_ms passes; revents[i] gets session i's events, and each ready
   listen_to entry its events (slot 3) for ext_dispatch_listeners. */
void ext_wait_ready(rsess **rss, size_t count, int wait_ms, int *revents);
int ext_wait_ms_of(VALUE wait);

/* ext_session.c: EvSSH::Session and its event loop */
rsess *ext_get_rs(VALUE self);
rsess *ext_open_rs(VALUE self);
rsess *ext_live_rs(evssh_session *s);
void ext_multi_leave(rsess *rs);
void ext_check_not_nested(rsess *rs);
void ext_wait_channel(rsess *rs, rchan *c);
NORETURN(void ext_raise_session(rsess *rs, int rc));
void ext_init_session(void);

/* ext_listen.c: listen_to (Net::SSH BufferedIo) */
void ext_refresh_listeners(rsess *rs);
void ext_dispatch_listeners(rsess *rs);
void ext_init_listen(void);

/* ext_channel.c: EvSSH::Channel and its trampolines */
VALUE ext_chan_alloc(VALUE klass);
rchan *ext_get_rc(VALUE self);
void ext_attach(rsess *rs, rchan *c, evssh_channel *ch, bool own_data);
void ext_detach(rchan *c);
void ext_t_on_open(evssh_channel *ch, void *ud);
void ext_t_on_process(evssh_channel *ch, void *ud);
void ext_t_exec(evssh_channel *ch, evssh_stream stream, const char *data, size_t len, void *ud);
void ext_init_channel(void);

/* ext_multi.c: EvSSH::Multi */
void ext_init_multi(void);

/* ext_key.c: EvSSH::KeyFactory::Native (keys loaded by libevssh) */
void ext_init_key(void);

/* ext_forward.c: the session's _forward_* calls (libevssh's forwarding) */
void ext_init_forward(void);
/* ext_sftp.c: EvSSH::SFTP::Session and Handle over evssh_sftp (when libevssh has it) */
void ext_init_sftp(void);

#pragma GCC visibility pop

#endif
