/* The SSH transport (RFC 4253) as a non-blocking state machine: version
 * exchange, KEXINIT negotiation, key exchange, NEWKEYS, strict kex, rekeying,
 * and the transport-level messages (IGNORE, DEBUG, UNIMPLEMENTED, DISCONNECT,
 * EXT_INFO). It never blocks: the owner feeds it readiness with
 * transport_handle_io() and asks what it wants with transport_events() and
 * transport_timeout_ms(). Packets of the layers above (message numbers >= 50)
 * go up through the handler table; the transport never looks inside them. */
#ifndef EVSSH_TRANSPORT_H
#define EVSSH_TRANSPORT_H

#include "evssh.h"
#include "buf.h"

typedef struct evssh_transport evssh_transport;

/* What the transport reports upward (the session wires these). */
typedef struct evssh_transport_handler {
  /* A packet for the layers above: msg >= 50 or SERVICE_ACCEPT; body is the payload after the
     message byte, valid only during the call. Return <0 to fail the session
     with that code (after calling transport_fail with a message). */
  int (*packet)(void *ctx, uint8_t msg, evssh_reader *body);
  /* Key exchange finished; first is true for the initial one (the host key
     has been checked by then: see hostkey below). */
  int (*kex_done)(void *ctx, bool first);
  /* The server's host key, signature already verified. Return 0 to accept,
     <0 (EVSSH_EHOSTKEY) to refuse after calling transport_fail. Called for
     every key exchange; on a rekey the key must equal the first one. */
  int (*hostkey)(void *ctx, const char *alg, const unsigned char *blob, size_t len);
  /* Logging: level as EVSSH_LOG_*. */
  void (*log)(void *ctx, int level, const char *msg);
  /* A packet was queued for sending (it may be NULL): whoever polls for
     the session must now ask for writability. Runs no user code. */
  void (*wake)(void *ctx);
} evssh_transport_handler;

typedef struct evssh_transport_config {
  const char *kex_algorithms;       /* comma lists, already resolved */
  const char *hostkey_algorithms;
  const char *ciphers;
  const char *macs;
  uint64_t rekey_bytes;             /* 0: cipher-dependent default (RFC 4344) */
  int rekey_seconds;                /* 0: 3600 */
  const char *client_version;       /* NULL: "SSH-2.0-evssh_<version>" */
} evssh_transport_config;

int  transport_new(int fd, const evssh_transport_config *cfg, const evssh_transport_handler *h,
                   void *ctx, evssh_transport **out);
void transport_free(evssh_transport *t);   /* does not close fd */

/* Poll interest now (EVSSH_READ / EVSSH_WRITE). */
int  transport_events(const evssh_transport *t);
/* ms until the transport's next timer (rekey by time, or the deadline of a
   running rekey), -1 none, 0 if it has work to do without I/O (received
   packets not yet dispatched; an incomplete version line is not work). */
int  transport_timeout_ms(const evssh_transport *t);
/* Do the I/O that revents allows, dispatch every complete packet, run
   timers. Returns EVSSH_OK, or a negative code when the transport failed
   (transport_error tells why; the session is over). */
int  transport_handle_io(evssh_transport *t, int revents);
/* transport_handle_io without the final write: for a caller that queues
   more (the session's layers above) and flushes once, so what one read
   answered leaves in one write. */
/* Messages above this level (EVSSH_LOG_*) are not formatted for the log
   handler; default EVSSH_LOG_PACKET (all). */
void transport_set_log_level(evssh_transport *t, int level);
int  transport_pump(evssh_transport *t, int revents);
/* Dispatch packets already buffered, without I/O (used by process(0)). */
int  transport_dispatch(evssh_transport *t);
/* Write as much queued output as the socket takes now. */
int  transport_flush(evssh_transport *t);

/* Building packets for the layers above. begin() returns the buffer to
   append the body to (the message byte is already in); end() frames,
   encrypts and queues it. While a key exchange runs, packets are held in
   order and sent after NEWKEYS. Only one packet may be open at a time. */
evssh_buf *transport_begin(evssh_transport *t, uint8_t msg);
int  transport_end(evssh_transport *t);
int  transport_send(evssh_transport *t, uint8_t msg, const void *body, size_t len);

bool transport_ready(const evssh_transport *t);         /* first kex done */
bool transport_kex_running(const evssh_transport *t);
size_t transport_pending_out(const evssh_transport *t); /* bytes queued, not yet written */
/* The largest payload the peer takes in one packet (for channel packets). */
size_t transport_max_payload(const evssh_transport *t);

const unsigned char *transport_session_id(const evssh_transport *t, size_t *len);
const char *transport_server_version(const evssh_transport *t);
/* server-sig-algs from the server's EXT_INFO, NULL if none was sent */
const char *transport_server_sig_algs(const evssh_transport *t);
/* negotiated names, for logs and tests: "kex", "hostkey", "cipher_ctos",
   "cipher_stoc", "mac_ctos", "mac_stoc" */
const char *transport_algorithm(const evssh_transport *t, const char *what);
uint64_t transport_kex_count(const evssh_transport *t);
/* true once the first key exchange is done and its method was post-quantum
   (kex_method_is_post_quantum); a session-level accessor wraps this */
bool transport_kex_post_quantum(const evssh_transport *t);

/* A key re-exchange must finish within ms of our KEXINIT, or the transport
   fails with EVSSH_ETIMEOUT. Default (and ms <= 0) 60000, the session's
   default connect deadline; the first exchange runs under the session's
   own deadline instead. */
void transport_set_kex_timeout(evssh_transport *t, int ms);
/* Start a key exchange now (no-op if one runs). */
int  transport_rekey(evssh_transport *t);
/* Fail the transport with a code and message (first failure wins). */
int  transport_fail(evssh_transport *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int  transport_error_code(const evssh_transport *t);
const char *transport_error(const evssh_transport *t);
/* Send DISCONNECT (reason 11, by application) and stop; output is flushed
   best-effort. */
int  transport_disconnect(evssh_transport *t, uint32_t reason, const char *text);
bool transport_closed(const evssh_transport *t);
/* true while a received packet is being handed up: blocking calls made from
   a callback must not pump the transport then (they return EVSSH_EBUSY) */
bool transport_dispatching(const evssh_transport *t);
/* sequence number of the last packet received (for SSH_MSG_UNIMPLEMENTED) */
uint32_t transport_last_seq(const evssh_transport *t);

/* RFC 4253 message numbers (transport) and the ones the layers above use */
enum {
  SSH_MSG_DISCONNECT = 1, SSH_MSG_IGNORE = 2, SSH_MSG_UNIMPLEMENTED = 3,
  SSH_MSG_DEBUG = 4, SSH_MSG_SERVICE_REQUEST = 5, SSH_MSG_SERVICE_ACCEPT = 6,
  SSH_MSG_EXT_INFO = 7,
  SSH_MSG_KEXINIT = 20, SSH_MSG_NEWKEYS = 21,
  SSH_MSG_USERAUTH_REQUEST = 50, SSH_MSG_USERAUTH_FAILURE = 51,
  SSH_MSG_USERAUTH_SUCCESS = 52, SSH_MSG_USERAUTH_BANNER = 53,
  SSH_MSG_USERAUTH_PK_OK = 60, SSH_MSG_USERAUTH_INFO_REQUEST = 60,
  SSH_MSG_USERAUTH_INFO_RESPONSE = 61,
  SSH_MSG_GLOBAL_REQUEST = 80, SSH_MSG_REQUEST_SUCCESS = 81, SSH_MSG_REQUEST_FAILURE = 82,
  SSH_MSG_CHANNEL_OPEN = 90, SSH_MSG_CHANNEL_OPEN_CONFIRMATION = 91,
  SSH_MSG_CHANNEL_OPEN_FAILURE = 92, SSH_MSG_CHANNEL_WINDOW_ADJUST = 93,
  SSH_MSG_CHANNEL_DATA = 94, SSH_MSG_CHANNEL_EXTENDED_DATA = 95,
  SSH_MSG_CHANNEL_EOF = 96, SSH_MSG_CHANNEL_CLOSE = 97, SSH_MSG_CHANNEL_REQUEST = 98,
  SSH_MSG_CHANNEL_SUCCESS = 99, SSH_MSG_CHANNEL_FAILURE = 100,
};

/* Discard the packet begun by transport_begin (nothing of it reaches the
   wire): the abort path for a body that could not be built. */
void transport_abort(evssh_transport *t);

#endif
