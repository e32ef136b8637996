/* The binary packet protocol (RFC 4253 s6) over two byte buffers: framing,
 * padding, sequence numbers, encryption and integrity in either mode
 * (MAC-then-encrypt, encrypt-then-MAC, AEAD). No I/O here: the transport
 * fills p->in from the socket and drains p->out into it. Packets are built
 * and decrypted in place, so the data path does no per-packet allocation. */
#ifndef EVSSH_PACKET_H
#define EVSSH_PACKET_H

#include "buf.h"
#include "cipher.h"
#include "mac.h"

#define PACKET_MAX_LEN (256u * 1024u)  /* packet_length limit we accept */

typedef struct packet_dir {
  evssh_cipher *cipher;   /* NULL: none (before the first NEWKEYS) */
  evssh_mac *mac;         /* NULL with AEAD or none */
  uint32_t seq;
  uint64_t bytes;         /* since the last key change, for rekeying */
  uint64_t packets;
} packet_dir;

typedef struct evssh_packet {
  evssh_buf in;           /* received bytes; decrypted in place */
  size_t in_high;         /* the furthest end of received bytes in `in` (the
                             reader keeps it): what packet_free wipes */
  evssh_buf out;          /* framed, encrypted bytes waiting for the socket */
  packet_dir tx, rx;
  /* receive state of the packet at the front of in */
  size_t rx_total;        /* 0 until its length is known: 4 + length + tag/mac */
  bool rx_head_decrypted; /* MAC-then-encrypt: first block already decrypted */
  size_t rx_consume;      /* bytes of the last returned packet still to drop */
  /* send state */
  size_t tx_start;        /* offset of the open packet, relative to out.off */
  bool tx_open;
  /* random padding bytes, drawn from OpenSSL a pool at a time (one DRBG
     call per many packets instead of one per packet) */
  unsigned char pad_pool[256];
  size_t pad_left;        /* unused bytes at the end of pad_pool */
} evssh_packet;

void packet_init(evssh_packet *p);
void packet_free(evssh_packet *p);
/* Replace one direction's keys (frees the old ones). */
void packet_set_tx(evssh_packet *p, evssh_cipher *c, evssh_mac *m);
void packet_set_rx(evssh_packet *p, evssh_cipher *c, evssh_mac *m);

/* Start a packet in out; returns the buffer to append the payload to (the
   first byte appended is the message number). */
evssh_buf *packet_begin(evssh_packet *p);
/* Pad, encrypt and MAC the open packet. */
int packet_end(evssh_packet *p);
void packet_abort(evssh_packet *p);

/* Next complete packet from in: EVSSH_OK with its payload (valid until the
   next call), EVSSH_EAGAIN if more bytes are needed, EVSSH_EPROTO with err
   filled on a bad length, padding or MAC. */
int packet_next(evssh_packet *p, const unsigned char **payload, size_t *len,
                char *err, size_t errlen);
/* Largest payload we may put in one packet. */
size_t packet_max_payload(void);

#endif
