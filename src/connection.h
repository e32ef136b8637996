/* Internal state of the connection layer (RFC 4254), shared by connection.c
 * (channels, windows, requests, the dispatch table), loop.c (process/loop,
 * listen_to, keepalive timers) and exec.c (exec conveniences). The session
 * reaches this layer only through the conn_* / loop_* seams in session.h;
 * this header is for the three files that implement them. */
#ifndef EVSSH_CONNECTION_H
#define EVSSH_CONNECTION_H

#include "session.h"

/* Our receive window: large enough that one channel runs at cipher speed on
   a link with latency; topped up once half of it has been consumed. */
#define CONN_WINDOW_SIZE (4u * 1024u * 1024u)
#define CONN_MAX_PACKET (32u * 1024u)
/* Channel data moves into the transport only while less than this is queued
   there, so a fast producer cannot buffer without bound below us. */
#define CONN_TRANSPORT_HIGH_WATER (1024u * 1024u)

typedef enum {
  CHAN_OPENING = 0,  /* we sent CHANNEL_OPEN, no answer yet */
  CHAN_ACCEPTING,    /* the peer opened it; its on_open_channel handler runs */
  CHAN_OPEN,         /* confirmed both ways */
  CHAN_DONE,         /* retired: on_close (or on_open_failed) has run */
} chan_state;

typedef struct chan_handler {
  struct chan_handler *next;
  char *type;
  evssh_request_cb cb;
  void *ud;
} chan_handler;

typedef struct chan_property {
  struct chan_property *next;
  char *key;
  void *value;
} chan_property;

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
typedef struct chan_early_request {
  struct chan_early_request *next;
  char *type;
  unsigned char *extra;
  size_t extra_len;
  evssh_reply_cb cb;
  void *ud;
} chan_early_request;

/* An exit-status / exit-signal that arrived before the peer's EOF (sshd
   sends them as soon as the command exits, often ahead of the last output):
   held so callbacks keep Net::SSH's documented order data, eof, exit, close. */
typedef struct chan_held_request {
  struct chan_held_request *next;
  char *type;
  unsigned char *data;
  size_t len;
} chan_held_request;

typedef struct reply_slot {
  union { evssh_reply_cb channel; evssh_global_reply_cb global; } cb;
  void *ud;
} reply_slot;

/* FIFO of callbacks waiting for replies that the peer sends in order. */
typedef struct reply_fifo {
  reply_slot *slots;
  size_t head, count, cap;
} reply_fifo;

/* Where a blocked evssh_channel_wait / exec_wait learns that the channel it
   waits for has been retired (the channel itself is freed right after). */
typedef struct chan_waiter {
  bool done;
  int code;          /* EVSSH_OK closed; EVSSH_ECHANNEL open refused; else session error */
} chan_waiter;

/* exec.c's hook: runs once, when the channel is retired for any reason,
   after the user's callbacks; code as in chan_waiter. */
typedef void (*chan_retire_fn)(evssh_channel *ch, int code, void *ctx);

struct evssh_channel {
  evssh_session *session;
  uint32_t local_id, remote_id;
  char *type;
  chan_state state;

  uint32_t local_window;       /* bytes the peer may still send us */
  uint32_t remote_window;      /* bytes we may still send */
  uint32_t remote_max_packet;

  bool eof_wanted, eof_sent, close_wanted, close_sent;
  bool eof_received, close_received;

  chan_segment *out_head, *out_tail;
  size_t out_bytes;
  chan_early_request *early_head, *early_tail;
  chan_held_request *held_head, *held_tail;
  reply_fifo replies;

  evssh_channel_cb on_open; void *on_open_ud;
  evssh_data_cb on_data; void *on_data_ud;
  evssh_ext_data_cb on_ext_data; void *on_ext_data_ud;
  evssh_channel_cb on_eof; void *on_eof_ud;
  evssh_channel_cb on_close; void *on_close_ud;
  evssh_channel_cb on_process; void *on_process_ud;
  evssh_open_failed_cb on_open_failed; void *on_open_failed_ud;
  chan_handler *handlers;

  bool has_exit_status;
  int exit_status;
  char *exit_signal;
  chan_property *properties;

  chan_retire_fn retire; void *retire_ctx;
  chan_waiter *waiter;
  struct evssh_channel *next_dead;
};

typedef struct global_handler {
  struct global_handler *next;
  char *type;
  evssh_global_request_cb cb;
  void *ud;
} global_handler;

typedef struct open_handler {
  struct open_handler *next;
  char *type;
  evssh_open_channel_cb cb;
  void *ud;
} open_handler;

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
  evssh_channel **table;       /* indexed by local channel number */
  size_t table_size;
  size_t channel_count;
  size_t flush_start;          /* round-robin start of the next flush pass */
  evssh_channel *dead;         /* retired, freed when no callback is running */
  int depth;                   /* entry points currently on the stack */
  bool aborted;
  int abort_code;

  reply_fifo global_replies;   /* our global requests awaiting an answer */
  owed_reply *owed;            /* FIFO of replies we owe */
  size_t owed_head, owed_count, owed_cap;
  uint64_t owed_serial;

  global_handler *global_handlers;
  open_handler *open_handlers;
};

/* Entry/exit bracket around anything that may run user callbacks: channels
   retired meanwhile are freed only when the outermost bracket closes. */
void conn_enter(evssh_session *s);
void conn_leave(evssh_session *s);
/* true while a connection-layer callback is running (blocking calls then
   return EVSSH_EBUSY) */
bool conn_in_callback(const evssh_session *s);
/* session usable for channel traffic */
bool conn_usable(const evssh_session *s);
/* move queued data of every channel into the transport (no on_process) */
int  conn_flush(evssh_session *s);

/* loop.c: the connection layer saw a packet from the peer (keepalive). */
void loop_note_received(evssh_session *s);
/* loop.c: blocking helper shared by channel_wait and exec_wait: run the
   loop until *done or the session fails. Returns EVSSH_OK or <0. */
int  loop_until(evssh_session *s, const bool *done);
/* loop.c: true while evssh_session_process runs for this session */
bool loop_in_process(const evssh_session *s);

#endif
