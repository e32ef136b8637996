/* transport.c owns the SSH transport of RFC 4253 as a state machine that
 * never blocks: the version exchange, KEXINIT negotiation, the key exchange
 * and NEWKEYS (with OpenSSH's strict-kex rules, the Terrapin fix), rekeying
 * by volume, by time or at the peer's request, and the transport messages
 * (IGNORE, DEBUG, UNIMPLEMENTED, DISCONNECT, EXT_INFO). Everything else is
 * handed up unopened. While a key exchange runs, packets from the layers
 * above are held in order and released after our NEWKEYS, so data keeps
 * flowing across a rekey without reordering. */
#include "transport.h"

#include "cipher.h"
#include "hostkey.h"
#include "kex.h"
#include "kexinit.h"
#include "mac.h"
#include "packet.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define VERSION_LINE_MAX 255         /* RFC 4253 4.2, CR LF included */
#define PRE_BANNER_LINE_MAX 8192
#define PRE_BANNER_LINES_MAX 1024
#define READ_CHUNK (64 * 1024)
#define READ_BUDGET (512 * 1024)     /* per handle_io, so one session cannot starve others */
#define REKEY_BYTES_MAX (1ull << 30)
#define KEX_TIMEOUT_MS_DEFAULT 60000  /* a rekey's deadline: the session's default connect deadline */

typedef enum { PHASE_VERSION, PHASE_PACKETS, PHASE_CLOSED } tr_phase;

enum { KEX_DIR_CTOS = 0, KEX_DIR_STOC = 1 };

struct evssh_transport {
  int fd;
  const evssh_transport_handler *h;
  void *ctx;
  kexinit_offer offer;          /* our KEXINIT lists, resolved once */
  uint64_t rekey_bytes;
  int rekey_seconds;
  int kex_timeout_ms;
  int log_level;                /* messages above it are not even formatted */
  bool rcvlowat_first;          /* the first read: SO_RCVLOWAT may be raised (io.c) */

  evssh_packet pkt;
  tr_phase phase;
  char client_version[VERSION_LINE_MAX + 1];
  char server_version[VERSION_LINE_MAX + 1];
  int pre_banner_lines;

  /* key exchange */
  bool kex_running;             /* our KEXINIT is out and NEWKEYS not yet both ways */
  bool peer_kexinit_seen;
  bool newkeys_sent, newkeys_received;
  bool ignore_guessed_packet;   /* peer guessed wrong with first_kex_packet_follows */
  bool strict;
  bool first_kex_done;
  evssh_buf my_kexinit, peer_kexinit;
  char *neg[NEG_COUNT];         /* kex, hostkey, enc c2s, enc s2c, mac c2s, mac s2c */
  evssh_kex *kex;
  evssh_cipher *rx_cipher_next;
  evssh_mac *rx_mac_next;
  unsigned char session_id[64];
  size_t session_id_len;
  unsigned char *hostkey_blob;  /* from the first exchange; rekeys must match */
  size_t hostkey_len;
  uint64_t kex_count;
  int64_t last_kex_ms;
  int64_t rekey_started_ms;     /* our KEXINIT of a running rekey went out */
  uint64_t rekey_limit_tx, rekey_limit_rx;

  /* packets from above, held while a key exchange runs: u32 len || payload */
  evssh_buf held;
  size_t held_start;
  enum { OPEN_NONE, OPEN_PACKET, OPEN_HELD } open;

  char *server_sig_algs;
  bool undispatched;
  bool dispatching;
  uint32_t last_rx_seq;

  int error_code;
  char error[512];
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tlog(evssh_transport *t, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tlog(evssh_transport *t, int level, const char *fmt, ...) {
  if (!t->h || !t->h->log || level > t->log_level) return;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  t->h->log(t->ctx, level, msg);
}

/* ------------------------------------------------------------ failures */

static void queue_disconnect(evssh_transport *t, uint32_t reason, const char *text) {
  if (t->pkt.tx_open) packet_abort(&t->pkt);
  evssh_buf *b = packet_begin(&t->pkt);
  if (!b) return;
  if (evssh_buf_put_u8(b, SSH_MSG_DISCONNECT) || evssh_buf_put_u32(b, reason) ||
      evssh_buf_put_cstring(b, text) || evssh_buf_put_cstring(b, "")) {
    packet_abort(&t->pkt);
    return;
  }
  packet_end(&t->pkt);
}

static void flush_best_effort(evssh_transport *t) {
  while (buf_avail(&t->pkt.out) > 0) {
    ssize_t n = send(t->fd, buf_ptr(&t->pkt.out), buf_avail(&t->pkt.out), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;
    buf_consume(&t->pkt.out, (size_t)n);
  }
}

int transport_fail(evssh_transport *t, int code, const char *fmt, ...) {
  if (t->error_code != 0) return t->error_code;
  t->error_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->error, sizeof t->error, fmt, ap);
  va_end(ap);
  tlog(t, EVSSH_LOG_ERROR, "%s", t->error);
  /* tell the peer why, when it is our side that gives up on its behaviour */
  if (t->phase == PHASE_PACKETS) {
    uint32_t reason = 0;
    if (code == EVSSH_EPROTO) reason = 2;           /* protocol error */
    else if (code == EVSSH_ENOALGO) reason = 3;     /* key exchange failed */
    else if (code == EVSSH_EHOSTKEY) reason = 9;    /* host key not verifiable */
    else if (code == EVSSH_ETIMEOUT || code == EVSSH_EAUTH) reason = 11;
    if (reason) {
      queue_disconnect(t, reason, t->error);
      flush_best_effort(t);
    }
  }
  t->phase = PHASE_CLOSED;
  return code;
}

int transport_error_code(const evssh_transport *t) { return t->error_code; }
const char *transport_error(const evssh_transport *t) { return t->error; }
bool transport_closed(const evssh_transport *t) { return t->phase == PHASE_CLOSED; }

int transport_disconnect(evssh_transport *t, uint32_t reason, const char *text) {
  if (t->phase == PHASE_CLOSED) return EVSSH_ECLOSED;
  if (t->phase == PHASE_PACKETS && !t->kex_running) queue_disconnect(t, reason, text ? text : "disconnected by user");
  /* what was queued before (a channel's CLOSE) and the DISCONNECT: one write */
  flush_best_effort(t);
  t->phase = PHASE_CLOSED;
  if (t->error_code == 0) {
    t->error_code = EVSSH_ECLOSED;
    snprintf(t->error, sizeof t->error, "session closed");
  }
  return EVSSH_OK;
}

/* --------------------------------------------------------- construction */

static int send_kexinit(evssh_transport *t);

int transport_new(int fd, const evssh_transport_config *cfg, const evssh_transport_handler *h,
                  void *ctx, evssh_transport **out) {
  evssh_transport *t = calloc(1, sizeof *t);
  if (!t) return EVSSH_ENOMEM;
  t->fd = fd;
  t->h = h;
  t->ctx = ctx;
  packet_init(&t->pkt);
  buf_init(&t->my_kexinit);
  buf_init(&t->peer_kexinit);
  buf_init(&t->held);
  int rc = kexinit_offer_init(&t->offer, cfg && cfg->kex_algorithms ? cfg->kex_algorithms : evssh_kex_default_list(),
                              cfg && cfg->hostkey_algorithms ? cfg->hostkey_algorithms : evssh_hostkey_default_list(),
                              cfg && cfg->ciphers ? cfg->ciphers : evssh_cipher_default_list(),
                              cfg && cfg->macs ? cfg->macs : evssh_mac_default_list());
  t->rekey_bytes = cfg ? cfg->rekey_bytes : 0;
  t->rekey_seconds = cfg && cfg->rekey_seconds > 0 ? cfg->rekey_seconds : 3600;
  t->kex_timeout_ms = KEX_TIMEOUT_MS_DEFAULT;
  t->log_level = EVSSH_LOG_PACKET;
  t->rcvlowat_first = true;
  snprintf(t->client_version, sizeof t->client_version, "%s",
           cfg && cfg->client_version ? cfg->client_version : "SSH-2.0-evssh_" PACKAGE_VERSION);
  if (rc) {
    transport_free(t);
    return EVSSH_ENOMEM;
  }
  t->phase = PHASE_VERSION;
  t->last_kex_ms = now_ms();
  /* our banner goes out at once; KEXINIT right behind it saves a round trip */
  char line[VERSION_LINE_MAX + 3];
  int n = snprintf(line, sizeof line, "%s\r\n", t->client_version);
  if (buf_append(&t->pkt.out, line, (size_t)n) != EVSSH_OK) {
    transport_free(t);
    return EVSSH_ENOMEM;
  }
  /* and our KEXINIT in the same write: key exchange begins once our
     identification is sent (RFC 4253 4.2), so the server's banner and
     KEXINIT find it waiting and our next packet can be the kex's own */
  if (send_kexinit(t) != EVSSH_OK) {
    transport_free(t);
    return EVSSH_ENOMEM;
  }
  *out = t;
  return EVSSH_OK;
}

void transport_free(evssh_transport *t) {
  if (!t) return;
  packet_free(&t->pkt);
  buf_release(&t->my_kexinit);
  buf_release(&t->peer_kexinit);
  t->held.secret = true;
  buf_release(&t->held);
  for (int i = 0; i < NEG_COUNT; i++) free(t->neg[i]);
  evssh_kex_free(t->kex);
  evssh_cipher_free(t->rx_cipher_next);
  evssh_mac_free(t->rx_mac_next);
  free(t->hostkey_blob);
  free(t->server_sig_algs);
  kexinit_offer_free(&t->offer);
  OPENSSL_cleanse(t->session_id, sizeof t->session_id);
  free(t);
}

/* ------------------------------------------------------ sending packets */

/* A transport-level packet, sent even while a key exchange runs. */
static evssh_buf *raw_begin(evssh_transport *t, uint8_t msg) {
  evssh_buf *b = packet_begin(&t->pkt);
  if (!b) return NULL;
  if (evssh_buf_put_u8(b, msg) != EVSSH_OK) {
    packet_abort(&t->pkt);
    return NULL;
  }
  return b;
}

static void check_rekey_volume(evssh_transport *t);

static int raw_end(evssh_transport *t) {
  int rc = packet_end(&t->pkt);
  if (rc != EVSSH_OK) return transport_fail(t, rc, "cannot build packet: %s", evssh_strerror(rc));
  return EVSSH_OK;
}

evssh_buf *transport_begin(evssh_transport *t, uint8_t msg) {
  if (t->phase == PHASE_CLOSED || t->open != OPEN_NONE) return NULL;
  if (t->kex_running || t->phase == PHASE_VERSION) {
    if (buf_reserve(&t->held, 5) != EVSSH_OK) return NULL;
    t->held_start = t->held.len - t->held.off;
    t->held.len += 4;
    if (evssh_buf_put_u8(&t->held, msg) != EVSSH_OK) return NULL;
    t->open = OPEN_HELD;
    return &t->held;
  }
  evssh_buf *b = raw_begin(t, msg);
  if (b) t->open = OPEN_PACKET;
  return b;
}

static void wake(const evssh_transport *t) {
  if (t->h && t->h->wake) t->h->wake(t->ctx);
}

int transport_end(evssh_transport *t) {
  wake(t);
  if (t->open == OPEN_HELD) {
    t->open = OPEN_NONE;
    size_t start = t->held.off + t->held_start;
    size_t len = t->held.len - start - 4;
    if (len > packet_max_payload()) {
      t->held.len = start;
      return EVSSH_EINVAL;
    }
    put_u32(t->held.data + start, (uint32_t)len);
    return EVSSH_OK;
  }
  if (t->open != OPEN_PACKET) return EVSSH_EINVAL;
  t->open = OPEN_NONE;
  int rc = packet_end(&t->pkt);
  if (rc == EVSSH_EINVAL) return rc;   /* oversize: the caller's mistake, not fatal */
  if (rc != EVSSH_OK) return transport_fail(t, rc, "cannot build packet: %s", evssh_strerror(rc));
  check_rekey_volume(t);
  return EVSSH_OK;
}

int transport_send(evssh_transport *t, uint8_t msg, const void *body, size_t len) {
  evssh_buf *b = transport_begin(t, msg);
  if (!b) return t->phase == PHASE_CLOSED ? EVSSH_ECLOSED : EVSSH_ENOMEM;
  if (len && buf_append(b, body, len) != EVSSH_OK) {
    transport_end(t);
    return EVSSH_ENOMEM;
  }
  return transport_end(t);
}

static int release_held(evssh_transport *t) {
  while (buf_avail(&t->held) >= 4) {
    uint32_t len = get_u32(buf_ptr(&t->held));
    evssh_buf *b = packet_begin(&t->pkt);
    if (!b) return transport_fail(t, EVSSH_ENOMEM, "out of memory");
    if (buf_append(b, buf_ptr(&t->held) + 4, len) != EVSSH_OK) {
      packet_abort(&t->pkt);
      return transport_fail(t, EVSSH_ENOMEM, "out of memory");
    }
    int rc = raw_end(t);
    if (rc) return rc;
    buf_consume(&t->held, 4 + (size_t)len);
  }
  buf_reset(&t->held);
  return EVSSH_OK;
}

/* ------------------------------------------------------------- KEXINIT */

static int send_kexinit(evssh_transport *t) {
  buf_reset(&t->my_kexinit);
  if (kexinit_build(&t->offer, !t->first_kex_done, &t->my_kexinit))
    return transport_fail(t, EVSSH_ENOMEM, "cannot build KEXINIT: out of memory or no randomness");
  evssh_buf *b = packet_begin(&t->pkt);
  if (!b || buf_append(b, buf_ptr(&t->my_kexinit), buf_avail(&t->my_kexinit)) != EVSSH_OK)
    return transport_fail(t, EVSSH_ENOMEM, "out of memory");
  int rc = raw_end(t);
  if (rc) return rc;
  t->kex_running = true;
  t->newkeys_sent = t->newkeys_received = false;
  t->rekey_started_ms = now_ms();
  tlog(t, EVSSH_LOG_DEBUG, "sent KEXINIT (%s)", t->first_kex_done ? "rekey" : "initial");
  return EVSSH_OK;
}

void transport_set_log_level(evssh_transport *t, int level) { t->log_level = level; }


void transport_set_kex_timeout(evssh_transport *t, int ms) {
  t->kex_timeout_ms = ms > 0 ? ms : KEX_TIMEOUT_MS_DEFAULT;
}

int transport_rekey(evssh_transport *t) {
  if (t->phase != PHASE_PACKETS) return t->phase == PHASE_CLOSED ? EVSSH_ECLOSED : EVSSH_OK;
  if (t->kex_running) return EVSSH_OK;
  tlog(t, EVSSH_LOG_INFO, "starting key re-exchange");
  return send_kexinit(t);
}

static void check_rekey_volume(evssh_transport *t) {
  if (!t->first_kex_done || t->kex_running || t->phase != PHASE_PACKETS) return;
  if (t->pkt.tx.bytes > t->rekey_limit_tx || t->pkt.rx.bytes > t->rekey_limit_rx) {
    tlog(t, EVSSH_LOG_DEBUG, "rekey: %llu bytes sent, %llu received",
         (unsigned long long)t->pkt.tx.bytes, (unsigned long long)t->pkt.rx.bytes);
    transport_rekey(t);
  }
}

static int handle_kexinit(evssh_transport *t, const unsigned char *payload, size_t len) {
  if (t->peer_kexinit_seen)
    return transport_fail(t, EVSSH_EPROTO, "server sent a second KEXINIT during key exchange");
  buf_reset(&t->peer_kexinit);
  if (buf_append(&t->peer_kexinit, payload, len)) return transport_fail(t, EVSSH_ENOMEM, "out of memory");
  kexinit_peer peer;
  char err[1024] = "";
  int rc = kexinit_parse(payload, len, &peer, err, sizeof err);
  if (rc) return transport_fail(t, rc, "%s", err[0] ? err : "out of memory");
  t->peer_kexinit_seen = true;
  if (!t->first_kex_done) {
    t->strict = namelist_contains(peer.lists[0], KEX_STRICT_S);
    if (t->strict && t->pkt.rx.seq != 1) {
      kexinit_peer_free(&peer);
      return transport_fail(t, EVSSH_EPROTO,
                            "strict key exchange: KEXINIT was not the first packet from the server");
    }
  }
  /* our own KEXINIT goes out first if the peer started this exchange */
  if (!t->kex_running && (rc = send_kexinit(t)) != EVSSH_OK) {
    kexinit_peer_free(&peer);
    return rc;
  }
  rc = kexinit_negotiate(&t->offer, &peer, t->neg, &t->ignore_guessed_packet, err, sizeof err);
  kexinit_peer_free(&peer);
  if (rc) return transport_fail(t, rc, "%s", rc == EVSSH_ENOALGO ? err : "out of memory");
  tlog(t, EVSSH_LOG_DEBUG, "negotiated kex %s, host key %s, cipher %s/%s, mac %s/%s%s", t->neg[0],
       t->neg[1], t->neg[2], t->neg[3], t->neg[4] ? t->neg[4] : "<implicit>",
       t->neg[5] ? t->neg[5] : "<implicit>", t->strict ? ", strict kex" : "");
  /* like OpenSSH 10.1's WarnWeakCrypto: say so once, at the first exchange */
  if (!t->first_kex_done && !kex_method_is_post_quantum(t->neg[NEG_KEX]))
    tlog(t, EVSSH_LOG_INFO,
         "connection is not using a post-quantum key exchange (%s): it may be vulnerable to "
         "\"store now, decrypt later\" attacks; the server may need to be upgraded",
         t->neg[NEG_KEX]);

  const evssh_kex_alg *ka = evssh_kex_find(t->neg[NEG_KEX]);
  if (!ka) return transport_fail(t, EVSSH_ENOALGO, "unsupported key exchange %s", t->neg[NEG_KEX]);
  evssh_kex_input in = {t->client_version, t->server_version, buf_ptr(&t->my_kexinit),
                        buf_avail(&t->my_kexinit), buf_ptr(&t->peer_kexinit),
                        buf_avail(&t->peer_kexinit)};
  evssh_kex_free(t->kex);
  t->kex = NULL;
  rc = evssh_kex_new(ka, &in, &t->kex);
  if (rc) return transport_fail(t, rc, "cannot start key exchange %s", ka->name);
  evssh_buf *b = packet_begin(&t->pkt);
  if (!b) return transport_fail(t, EVSSH_ENOMEM, "out of memory");
  rc = evssh_kex_start(t->kex, b);
  if (rc) {
    packet_abort(&t->pkt);
    return transport_fail(t, rc, "key exchange %s failed to start", ka->name);
  }
  return raw_end(t);
}

/* ------------------------------------------------------ key derivation */

static int derive_keys(evssh_transport *t, bool ctos, evssh_cipher **cipher, evssh_mac **mac) {
  const evssh_cipher_alg *ca = evssh_cipher_find(t->neg[ctos ? NEG_ENC_CTOS : NEG_ENC_STOC]);
  const char *mac_name = t->neg[ctos ? NEG_MAC_CTOS : NEG_MAC_STOC];
  const evssh_mac_alg *ma = mac_name ? evssh_mac_find(mac_name) : NULL;
  if (!ca || (!(ca->flags & CIPHER_AEAD) && !ma)) return EVSSH_ENOALGO;
  unsigned char iv[64], key[128], mkey[128];
  int rc = EVSSH_OK;
  if (ca->iv_len) rc = evssh_kex_derive(t->kex, t->session_id, t->session_id_len, ctos ? 'A' : 'B', iv, ca->iv_len);
  if (rc == EVSSH_OK)
    rc = evssh_kex_derive(t->kex, t->session_id, t->session_id_len, ctos ? 'C' : 'D', key, ca->key_len);
  if (rc == EVSSH_OK && ma && !(ca->flags & CIPHER_AEAD))
    rc = evssh_kex_derive(t->kex, t->session_id, t->session_id_len, ctos ? 'E' : 'F', mkey, ma->key_len);
  if (rc == EVSSH_OK) rc = evssh_cipher_new(ca, ctos, key, ca->iv_len ? iv : NULL, cipher);
  if (rc == EVSSH_OK && ma && !(ca->flags & CIPHER_AEAD)) {
    rc = evssh_mac_new(ma, mkey, mac);
    if (rc) {
      evssh_cipher_free(*cipher);
      *cipher = NULL;
    }
  } else {
    *mac = NULL;
  }
  OPENSSL_cleanse(iv, sizeof iv);
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(mkey, sizeof mkey);
  return rc;
}

static int finish_kex_if_done(evssh_transport *t) {
  if (!(t->newkeys_sent && t->newkeys_received)) return EVSSH_OK;
  bool first = !t->first_kex_done;
  t->first_kex_done = true;
  t->kex_running = false;
  t->peer_kexinit_seen = false;
  t->kex_count++;
  t->last_kex_ms = now_ms();
  evssh_kex_free(t->kex);
  t->kex = NULL;
  /* RFC 4344 3.2 and a cap of 1 GiB, as OpenSSH applies by default */
  uint64_t limit = t->rekey_bytes ? t->rekey_bytes : REKEY_BYTES_MAX;
  t->rekey_limit_tx = t->rekey_limit_rx = limit;
  tlog(t, EVSSH_LOG_INFO, "key exchange %llu done: %s, %s, %s", (unsigned long long)t->kex_count,
       t->neg[NEG_KEX], t->neg[NEG_HOSTKEY], t->neg[NEG_ENC_CTOS]);
  if (t->h && t->h->kex_done) {
    int rc = t->h->kex_done(t->ctx, first);
    if (rc < 0) return transport_fail(t, rc, "%s", "key exchange rejected by session");
  }
  return EVSSH_OK;
}

static int kex_reply_done(evssh_transport *t) {
  size_t hlen, klen, slen;
  const unsigned char *H = evssh_kex_hash(t->kex, &hlen);
  const unsigned char *blob = evssh_kex_hostkey(t->kex, &klen);
  const unsigned char *sig = evssh_kex_signature(t->kex, &slen);
  char err[256] = "";
  int rc = evssh_hostkey_verify(blob, klen, t->neg[NEG_HOSTKEY], sig, slen, H, hlen, err, sizeof err);
  if (rc)
    /* H covers K: with a KEM, a ciphertext changed on the way decapsulates
       (implicit rejection) to another K, and this is where that shows */
    return transport_fail(t, EVSSH_EPROTO, "server host key signature invalid: %s%s", err,
                          kex_method_is_post_quantum(t->neg[NEG_KEX])
                              ? " (with a post-quantum key exchange this is also what a tampered or corrupted "
                                "KEM ciphertext gives: its implicit rejection yields a different shared secret)"
                              : "");
  if (!t->first_kex_done) {
    if (hlen > sizeof t->session_id) return transport_fail(t, EVSSH_EPROTO, "exchange hash too long");
    memcpy(t->session_id, H, hlen);
    t->session_id_len = hlen;
    t->hostkey_blob = malloc(klen);
    if (!t->hostkey_blob) return transport_fail(t, EVSSH_ENOMEM, "out of memory");
    memcpy(t->hostkey_blob, blob, klen);
    t->hostkey_len = klen;
    if (t->h && t->h->hostkey) {
      rc = t->h->hostkey(t->ctx, t->neg[NEG_HOSTKEY], blob, klen);
      if (rc < 0) return transport_fail(t, rc, "host key rejected");
    }
  } else if (klen != t->hostkey_len || CRYPTO_memcmp(blob, t->hostkey_blob, klen) != 0) {
    return transport_fail(t, EVSSH_EHOSTKEY, "server host key changed during key re-exchange");
  }
  evssh_cipher *tx_cipher = NULL, *rx_cipher = NULL;
  evssh_mac *tx_mac = NULL, *rx_mac = NULL;
  rc = derive_keys(t, true, &tx_cipher, &tx_mac);
  if (rc == EVSSH_OK) rc = derive_keys(t, false, &rx_cipher, &rx_mac);
  if (rc) {
    evssh_cipher_free(tx_cipher);
    evssh_mac_free(tx_mac);
    return transport_fail(t, rc, "cannot set up negotiated cipher/MAC");
  }
  evssh_cipher_free(t->rx_cipher_next);
  evssh_mac_free(t->rx_mac_next);
  t->rx_cipher_next = rx_cipher;
  t->rx_mac_next = rx_mac;
  /* NEWKEYS goes out under the old keys; everything after under the new */
  if (!raw_begin(t, SSH_MSG_NEWKEYS)) {
    evssh_cipher_free(tx_cipher);
    evssh_mac_free(tx_mac);
    return transport_fail(t, EVSSH_ENOMEM, "out of memory");
  }
  rc = raw_end(t);
  if (rc) {
    evssh_cipher_free(tx_cipher);
    evssh_mac_free(tx_mac);
    return rc;
  }
  packet_set_tx(&t->pkt, tx_cipher, tx_mac);
  if (t->strict) t->pkt.tx.seq = 0;
  t->newkeys_sent = true;
  rc = release_held(t);
  if (rc) return rc;
  return finish_kex_if_done(t);
}

static int handle_newkeys(evssh_transport *t) {
  if (!t->kex_running || !t->newkeys_sent || t->newkeys_received)
    return transport_fail(t, EVSSH_EPROTO, "unexpected NEWKEYS from server");
  packet_set_rx(&t->pkt, t->rx_cipher_next, t->rx_mac_next);
  t->rx_cipher_next = NULL;
  t->rx_mac_next = NULL;
  if (t->strict) t->pkt.rx.seq = 0;
  t->newkeys_received = true;
  return finish_kex_if_done(t);
}

/* --------------------------------------------------- incoming messages */

static int handle_ext_info(evssh_transport *t, evssh_reader *r) {
  uint32_t n;
  if (evssh_read_u32(r, &n)) return transport_fail(t, EVSSH_EPROTO, "malformed EXT_INFO");
  for (uint32_t i = 0; i < n; i++) {
    const char *name, *value;
    size_t nlen, vlen;
    if (evssh_read_string(r, &name, &nlen) || evssh_read_string(r, &value, &vlen))
      return transport_fail(t, EVSSH_EPROTO, "malformed EXT_INFO");
    if (nlen == 15 && memcmp(name, "server-sig-algs", 15) == 0) {
      free(t->server_sig_algs);
      t->server_sig_algs = strndup(value, vlen);
      if (!t->server_sig_algs) return transport_fail(t, EVSSH_ENOMEM, "out of memory");
      tlog(t, EVSSH_LOG_DEBUG, "server-sig-algs: %s", t->server_sig_algs);
    }
  }
  return EVSSH_OK;
}

static const char *disconnect_reason(uint32_t code) {
  static const char *names[] = {"", "host not allowed to connect", "protocol error",
                                "key exchange failed", "reserved", "MAC error", "compression error",
                                "service not available", "protocol version not supported",
                                "host key not verifiable", "connection lost", "by application",
                                "too many connections", "auth cancelled by user",
                                "no more auth methods available", "illegal user name"};
  return code < sizeof names / sizeof names[0] ? names[code] : "unknown reason";
}

static void sanitize(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') *s = '?';
}

static int handle_packet(evssh_transport *t, const unsigned char *payload, size_t len) {
  uint8_t msg = payload[0];
  evssh_reader body = reader_of(payload + 1, len - 1);
  if (t->pkt.rx.seq > 0) t->last_rx_seq = t->pkt.rx.seq - 1;

  /* strict kex: during the initial exchange only kex messages are allowed */
  if (t->strict && !t->first_kex_done && !(msg >= SSH_MSG_KEXINIT && msg <= 49) &&
      msg != SSH_MSG_DISCONNECT)
    return transport_fail(t, EVSSH_EPROTO,
                          "strict key exchange: unexpected message %u during initial key exchange", msg);
  if (!t->first_kex_done && !t->peer_kexinit_seen && msg != SSH_MSG_KEXINIT &&
      msg != SSH_MSG_DISCONNECT && msg != SSH_MSG_IGNORE && msg != SSH_MSG_DEBUG)
    return transport_fail(t, EVSSH_EPROTO, "server sent message %u before KEXINIT", msg);

  switch (msg) {
  case SSH_MSG_DISCONNECT: {
    uint32_t reason = 0;
    const char *desc = "";
    size_t dlen = 0;
    if (evssh_read_u32(&body, &reason) == EVSSH_OK) evssh_read_string(&body, &desc, &dlen);
    char text[300];
    snprintf(text, sizeof text, "%.*s", (int)(dlen > 280 ? 280 : dlen), desc);
    sanitize(text);
    int rc = transport_fail(t, EVSSH_EDISCONNECT, "server disconnected: %s (reason %u: %s)", text,
                            (unsigned)reason, disconnect_reason(reason));
    return rc;
  }
  case SSH_MSG_IGNORE:
    return EVSSH_OK;
  case SSH_MSG_DEBUG: {
    bool display;
    const char *m;
    size_t ml;
    if (evssh_read_bool(&body, &display) == EVSSH_OK && evssh_read_string(&body, &m, &ml) == EVSSH_OK) {
      char text[300];
      snprintf(text, sizeof text, "%.*s", (int)(ml > 280 ? 280 : ml), m);
      sanitize(text);
      tlog(t, display ? EVSSH_LOG_INFO : EVSSH_LOG_DEBUG, "server debug message: %s", text);
    }
    return EVSSH_OK;
  }
  case SSH_MSG_UNIMPLEMENTED: {
    uint32_t seq = 0;
    evssh_read_u32(&body, &seq);
    tlog(t, EVSSH_LOG_DEBUG, "server did not understand our packet %u", (unsigned)seq);
    return EVSSH_OK;
  }
  case SSH_MSG_EXT_INFO:
    return handle_ext_info(t, &body);
  case SSH_MSG_KEXINIT:
    return handle_kexinit(t, payload, len);
  case SSH_MSG_NEWKEYS:
    return handle_newkeys(t);
  default:
    break;
  }
  if (msg >= 30 && msg <= 49) {
    if (!t->kex || !t->peer_kexinit_seen || t->newkeys_sent)
      return transport_fail(t, EVSSH_EPROTO, "unexpected key exchange message %u", msg);
    if (t->ignore_guessed_packet) {
      t->ignore_guessed_packet = false;
      return EVSSH_OK;
    }
    evssh_buf *b = packet_begin(&t->pkt);
    if (!b) return transport_fail(t, EVSSH_ENOMEM, "out of memory");
    size_t before = buf_avail(b);
    bool done = false;
    char err[256] = "";
    int rc = evssh_kex_handle(t->kex, msg, &body, b, &done, err, sizeof err);
    if (rc) {
      packet_abort(&t->pkt);
      return transport_fail(t, rc == EVSSH_ENOMEM ? rc : EVSSH_EPROTO, "key exchange %s failed: %s",
                            t->neg[NEG_KEX], err[0] ? err : evssh_strerror(rc));
    }
    if (buf_avail(b) > before + 5) {
      rc = raw_end(t);
      if (rc) return rc;
    } else {
      packet_abort(&t->pkt);
    }
    return done ? kex_reply_done(t) : EVSSH_OK;
  }
  if (msg < SSH_MSG_SERVICE_REQUEST || (msg > SSH_MSG_SERVICE_ACCEPT && msg < 50)) {
    /* a transport message we do not know: RFC 4253 11.4 */
    evssh_buf *b = raw_begin(t, SSH_MSG_UNIMPLEMENTED);
    if (b && evssh_buf_put_u32(b, t->last_rx_seq) == EVSSH_OK) return raw_end(t);
    if (b) packet_abort(&t->pkt);
    return EVSSH_OK;
  }
  if (!t->first_kex_done)
    return transport_fail(t, EVSSH_EPROTO, "server sent message %u before key exchange completed", msg);
  if (!t->h || !t->h->packet) return EVSSH_OK;
  int rc = t->h->packet(t->ctx, msg, &body);
  if (rc < 0 && t->error_code == 0) transport_fail(t, rc, "message %u rejected: %s", msg, evssh_strerror(rc));
  return rc < 0 ? rc : EVSSH_OK;
}

uint32_t transport_last_seq(const evssh_transport *t) { return t->last_rx_seq; }

/* ------------------------------------------------- version exchange */

static int parse_version(evssh_transport *t) {
  evssh_buf *in = &t->pkt.in;
  for (;;) {
    size_t avail = buf_avail(in);
    if (avail == 0) return EVSSH_EAGAIN;
    const unsigned char *p = buf_ptr(in);
    const unsigned char *nl = memchr(p, '\n', avail);
    if (!nl) {
      if (avail > PRE_BANNER_LINE_MAX)
        return transport_fail(t, EVSSH_EPROTO, "no SSH protocol banner from server: "
                                               "received %zu bytes without a line end", avail);
      return EVSSH_EAGAIN;
    }
    size_t linelen = (size_t)(nl - p);
    size_t textlen = linelen > 0 && p[linelen - 1] == '\r' ? linelen - 1 : linelen;
    if (textlen >= 4 && memcmp(p, "SSH-", 4) == 0) {
      if (linelen + 1 > VERSION_LINE_MAX)
        return transport_fail(t, EVSSH_EPROTO, "server version line longer than %d bytes",
                              VERSION_LINE_MAX);
      if (memchr(p, 0, textlen))
        return transport_fail(t, EVSSH_EPROTO, "server version line contains a NUL byte");
      memcpy(t->server_version, p, textlen);
      t->server_version[textlen] = 0;
      buf_consume(in, linelen + 1);
      if (strncmp(t->server_version, "SSH-2.0-", 8) != 0 && strncmp(t->server_version, "SSH-1.99-", 9) != 0) {
        char v[VERSION_LINE_MAX + 1];
        snprintf(v, sizeof v, "%s", t->server_version);
        sanitize(v);
        return transport_fail(t, EVSSH_EPROTO, "protocol version mismatch: server speaks \"%s\", we need SSH-2.0", v);
      }
      char v[VERSION_LINE_MAX + 1];
      snprintf(v, sizeof v, "%s", t->server_version);
      sanitize(v);
      tlog(t, EVSSH_LOG_INFO, "remote protocol version: %s", v);
      t->phase = PHASE_PACKETS;
      return EVSSH_OK;
    }
    if (linelen > PRE_BANNER_LINE_MAX || ++t->pre_banner_lines > PRE_BANNER_LINES_MAX)
      return transport_fail(t, EVSSH_EPROTO,
                            "no SSH protocol banner from server after %d lines", t->pre_banner_lines);
    buf_consume(in, linelen + 1);
  }
}

/* ------------------------------------------------------------ the pump */

int transport_dispatch(evssh_transport *t) {
  if (t->dispatching) return EVSSH_OK;
  if (t->phase == PHASE_CLOSED) return t->error_code ? t->error_code : EVSSH_ECLOSED;
  t->dispatching = true;
  int rc = EVSSH_OK;
  if (t->phase == PHASE_VERSION) {
    rc = parse_version(t);
    if (rc == EVSSH_OK && !t->kex_running) rc = send_kexinit(t);
    if (rc == EVSSH_EAGAIN) {
      /* an incomplete line is not work: wait for bytes, do not spin */
      t->undispatched = false;
      rc = EVSSH_OK;
    }
  }
  while (rc == EVSSH_OK && t->phase == PHASE_PACKETS) {
    const unsigned char *payload;
    size_t len;
    char err[200] = "";
    rc = packet_next(&t->pkt, &payload, &len, err, sizeof err);
    if (rc == EVSSH_EAGAIN) {
      t->undispatched = false;
      rc = EVSSH_OK;
      break;
    }
    if (rc) {
      rc = transport_fail(t, rc, "corrupted packet from server: %s", err[0] ? err : evssh_strerror(rc));
      break;
    }
    check_rekey_volume(t);
    rc = handle_packet(t, payload, len);
  }
  t->dispatching = false;
  if (t->phase == PHASE_CLOSED) return t->error_code ? t->error_code : EVSSH_ECLOSED;
  return rc;
}

static const char *closed_message(const evssh_transport *t) {
  if (t->phase == PHASE_VERSION) return "connection closed by server during version exchange";
  if (!t->first_kex_done) return "connection closed by server during key exchange";
  return "connection closed by server";
}

int transport_flush(evssh_transport *t) {
  while (buf_avail(&t->pkt.out) > 0) {
    ssize_t n = send(t->fd, buf_ptr(&t->pkt.out), buf_avail(&t->pkt.out), MSG_NOSIGNAL);
    if (n > 0) {
      buf_consume(&t->pkt.out, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return EVSSH_OK;
    if (t->phase == PHASE_CLOSED) return t->error_code;
    return transport_fail(t, EVSSH_EDISCONNECT, "%s (while writing: %s)", closed_message(t),
                          n < 0 ? strerror(errno) : "socket closed");
  }
  return EVSSH_OK;
}

static int read_input(evssh_transport *t) {
  size_t total = 0;
  while (total < READ_BUDGET) {
    if (buf_reserve(&t->pkt.in, READ_CHUNK) != EVSSH_OK)
      return transport_fail(t, EVSSH_ENOMEM, "out of memory");
    size_t room = t->pkt.in.cap - t->pkt.in.len;
    ssize_t n = recv(t->fd, t->pkt.in.data + t->pkt.in.len, room, 0);
    if (t->rcvlowat_first) {
      /* A socket the connector made waits for the server's banner and
         KEXINIT together (io.c CONNECT_RCVLOWAT); from here on every byte
         counts. Whoever made the fd, it is set back to the default 1 (a
         pipe refuses, which is no matter). */
      int one = 1;
      setsockopt(t->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
      t->rcvlowat_first = false;
    }
    if (n > 0) {
      t->pkt.in.len += (size_t)n;
      if (t->pkt.in.len > t->pkt.in_high) t->pkt.in_high = t->pkt.in.len;
      total += (size_t)n;
      t->undispatched = true;
      if ((size_t)n < room) break;   /* the socket is drained */
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n == 0) return transport_fail(t, EVSSH_EDISCONNECT, "%s", closed_message(t));
    return transport_fail(t, EVSSH_EDISCONNECT, "%s (while reading: %s)", closed_message(t), strerror(errno));
  }
  return EVSSH_OK;
}

int transport_handle_io(evssh_transport *t, int revents) {
  int rc = transport_pump(t, revents);
  return rc ? rc : transport_flush(t);
}

int transport_pump(evssh_transport *t, int revents) {
  if (t->phase == PHASE_CLOSED) return t->error_code ? t->error_code : EVSSH_ECLOSED;
  int rc;
  if (revents & EVSSH_READ && !t->dispatching) {
    rc = read_input(t);
    if (rc) return rc;
  }
  rc = transport_dispatch(t);
  if (rc) return rc;
  if (t->first_kex_done && t->kex_running && now_ms() - t->rekey_started_ms >= t->kex_timeout_ms)
    return transport_fail(t, EVSSH_ETIMEOUT, "key re-exchange%s%s did not complete within %d ms",
                          t->peer_kexinit_seen ? " " : "", t->peer_kexinit_seen ? t->neg[NEG_KEX] : "",
                          t->kex_timeout_ms);
  if (t->first_kex_done && !t->kex_running && t->rekey_seconds > 0 &&
      now_ms() - t->last_kex_ms >= (int64_t)t->rekey_seconds * 1000) {
    rc = transport_rekey(t);
    if (rc) return rc;
  }
  return EVSSH_OK;
}

int transport_events(const evssh_transport *t) {
  if (t->phase == PHASE_CLOSED) return 0;
  int ev = EVSSH_READ;
  if (buf_avail(&t->pkt.out) > 0) ev |= EVSSH_WRITE;
  return ev;
}

int transport_timeout_ms(const evssh_transport *t) {
  if (t->phase == PHASE_CLOSED) return -1;
  if (t->undispatched && !t->dispatching) return 0;
  /* the initial exchange runs under the session's connect deadline */
  if (!t->first_kex_done) return -1;
  if (t->kex_running) {
    int64_t left = t->rekey_started_ms + t->kex_timeout_ms - now_ms();
    return left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
  }
  int64_t due = t->last_kex_ms + (int64_t)t->rekey_seconds * 1000 - now_ms();
  if (due < 0) return 0;
  return due > 0x7fffffff ? 0x7fffffff : (int)due;
}

/* ------------------------------------------------------------ queries */

bool transport_ready(const evssh_transport *t) { return t->first_kex_done && t->phase == PHASE_PACKETS; }
bool transport_kex_running(const evssh_transport *t) { return t->kex_running; }
size_t transport_pending_out(const evssh_transport *t) {
  return buf_avail(&t->pkt.out) + buf_avail(&t->held);
}
size_t transport_max_payload(const evssh_transport *t) { return packet_max_payload(); }
const unsigned char *transport_session_id(const evssh_transport *t, size_t *len) {
  *len = t->session_id_len;
  return t->session_id;
}
const char *transport_server_version(const evssh_transport *t) { return t->server_version; }
const char *transport_server_sig_algs(const evssh_transport *t) { return t->server_sig_algs; }
uint64_t transport_kex_count(const evssh_transport *t) { return t->kex_count; }
bool transport_kex_post_quantum(const evssh_transport *t) {
  return t->first_kex_done && kex_method_is_post_quantum(t->neg[NEG_KEX]);
}
bool transport_dispatching(const evssh_transport *t) { return t->dispatching; }

const char *transport_algorithm(const evssh_transport *t, const char *what) {
  static const char *keys[NEG_COUNT] = {"kex", "hostkey", "cipher_ctos", "cipher_stoc", "mac_ctos", "mac_stoc"};
  for (int i = 0; i < NEG_COUNT; i++)
    if (strcmp(what, keys[i]) == 0) return t->neg[i];
  if (strcmp(what, "strict") == 0) return t->strict ? "yes" : "no";
  return NULL;
}

void transport_abort(evssh_transport *t) {
  if (t->open == OPEN_PACKET) {
    packet_abort(&t->pkt);
  } else if (t->open == OPEN_HELD) {
    t->held.len = t->held.off + t->held_start;
  }
  t->open = OPEN_NONE;
}
