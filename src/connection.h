/* The connection layer (RFC 4254) as session.c sees it: an opaque object
 * created with the session (handlers may be registered before connect),
 * started over the transport once authentication succeeded, fed every
 * packet 80..255, and asked by the loop iteration to run on_process, flush
 * and run its timer. It reports upward only through conn_events; the
 * evssh_session handle it is given is passed to user callbacks, never read.
 * The channel API itself (evssh_channel_*) is public, in evssh.h. */
#ifndef EVSSH_CONNECTION_H
#define EVSSH_CONNECTION_H

#include "base.h"
#include "evssh.h"
#include "transport.h"

/* Our default receive window: large enough that one channel runs at cipher
   speed on a link with latency; granted back as the program consumes. */
#define CONN_WINDOW_SIZE (4u * 1024u * 1024u)
#define CONN_MAX_PACKET (32u * 1024u)
/* Channel data moves into the transport only while less than this is queued
   there, so a fast producer cannot buffer without bound below us. */
#define CONN_TRANSPORT_HIGH_WATER (1024u * 1024u)
/* Default per-channel send cap (evssh_channel_set_send_limit). */
#define CONN_SEND_LIMIT (64u * 1024u * 1024u)
/* Default limit on channels the peer opened that are alive at once. */
#define CONN_PEER_CHANNELS 1024u

typedef struct evssh_conn evssh_conn;

/* What the connection layer reports upward. */
typedef struct conn_events {
  /* The peer broke the protocol (or memory ran out): the session is over.
     The message is whole and names the message and channel. */
  void (*fail)(void *ctx, int code, const char *message);
  /* A channel's queues, flags or callbacks changed (data queued, EOF or
     CLOSE wanted, on_process or on_drain set, paused or resumed): what
     conn_has_work / conn_has_on_process / conn_busy answer may differ now.
     Runs no user code; may be NULL. */
  void (*wake)(void *ctx);
} conn_events;

int  conn_new(evssh_session *handle, evssh_diag *diag, const conn_events *ev, void *ctx, evssh_conn **out);
/* hard teardown: no user callbacks; every channel is freed, held or not */
void conn_free(evssh_conn *c);
/* authentication succeeded: the layer runs over t from now on */
void conn_start(evssh_conn *c, evssh_transport *t);
bool conn_started(const evssh_conn *c);
/* one packet from the peer; seq is its sequence number (for UNIMPLEMENTED) */
int  conn_handle_packet(evssh_conn *c, uint8_t msg, evssh_reader *body, uint32_t seq);
/* The session is over: every channel gets on_close (or on_open_failed),
   pending reply callbacks fail. Idempotent. */
void conn_abort(evssh_conn *c, int code);
/* each open channel's on_process, once */
void conn_run_on_process(evssh_conn *c);
/* queued data, EOF and CLOSE into the transport as windows allow; owed
   window adjusts; then on_drain callbacks */
int  conn_flush(evssh_conn *c);
/* true while queued data could move into the transport now */
bool conn_has_work(const evssh_conn *c);
bool conn_busy(const evssh_conn *c, bool include_invisible);
/* channel data bytes handed to the transport so far */
uint64_t conn_moved(const evssh_conn *c);
/* an open channel has an on_process callback */
bool conn_has_on_process(const evssh_conn *c);
/* graceful close: CLOSE on every channel; true once all are closed */
bool conn_close_all(evssh_conn *c);
/* free retired channels nobody holds; only with no callback on the stack */
void conn_reap(evssh_conn *c);
/* ServerAliveInterval / ServerAliveCountMax (0: off) */
void conn_set_keepalive(evssh_conn *c, int interval_s, int count_max);
int  conn_timeout_ms(const evssh_conn *c);     /* keepalive timer, -1 none */
int  conn_timers(evssh_conn *c);               /* send a due probe, or fail */
void conn_set_max_peer_channels(evssh_conn *c, size_t max);

/* the session-level calls of the public API, delegated by session.c */
evssh_channel *conn_open_channel(evssh_conn *c, const char *type, const void *extra, size_t extra_len,
                                 evssh_channel_cb on_open, void *ud);
int  conn_send_global_request(evssh_conn *c, const char *type, const void *extra, size_t extra_len,
                              evssh_global_reply_cb cb, void *ud);
int  conn_send_global_reply(evssh_conn *c, bool success, const void *extra, size_t len);
int  conn_on_global_request(evssh_conn *c, const char *type, evssh_global_request_cb cb, void *ud);
int  conn_on_open_channel(evssh_conn *c, const char *type, evssh_open_channel_cb cb, void *ud);

#endif
