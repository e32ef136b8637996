/* KEXINIT (RFC 4253 s7.1): building ours, parsing the peer's, and choosing
 * the algorithms. Our offer is resolved once per transport into name-lists
 * (the first KEXINIT also carries the ext-info-c and strict-kex pseudo
 * algorithms); each exchange only draws a fresh cookie. Negotiation takes
 * our lists from the offer, never by re-reading our own packet. */
#ifndef EVSSH_KEXINIT_H
#define EVSSH_KEXINIT_H

#include "buf.h"

#define KEXINIT_LISTS 10
#define KEX_STRICT_C "kex-strict-c-v00@openssh.com"
#define KEX_STRICT_S "kex-strict-s-v00@openssh.com"

/* indexes of the negotiated names, in KEXINIT order */
enum { NEG_KEX, NEG_HOSTKEY, NEG_ENC_CTOS, NEG_ENC_STOC, NEG_MAC_CTOS, NEG_MAC_STOC, NEG_COUNT };

typedef struct kexinit_offer {
  char *lists[KEXINIT_LISTS];  /* the ten name-lists, kex without pseudo-algorithms */
  char *kex_first;             /* kex list of the first KEXINIT: plus ext-info-c, strict kex */
} kexinit_offer;

/* EVSSH_ENOMEM or EVSSH_OK; o is usable (and freeable) either way */
int  kexinit_offer_init(kexinit_offer *o, const char *kex, const char *hostkey, const char *ciphers,
                        const char *macs);
void kexinit_offer_free(kexinit_offer *o);
/* Appends a whole KEXINIT payload (message byte, fresh cookie, lists,
   first_kex_packet_follows = false, reserved) to out. */
int  kexinit_build(const kexinit_offer *o, bool first, evssh_buf *out);

typedef struct kexinit_peer {
  char *lists[KEXINIT_LISTS];
  bool first_kex_packet_follows;
} kexinit_peer;

/* Parses a peer KEXINIT payload (message byte included). EVSSH_EPROTO with
   err set when malformed (a name-list with a NUL byte included), ENOMEM. */
int  kexinit_parse(const unsigned char *payload, size_t len, kexinit_peer *out, char *err, size_t errlen);
void kexinit_peer_free(kexinit_peer *p);

/* Chooses the six algorithms into neg (old values freed; the MACs are
   NULL for an AEAD cipher) and whether the peer's guessed first kex packet
   must be ignored. EVSSH_ENOALGO with err naming what has no match and
   both lists, or ENOMEM. */
int  kexinit_negotiate(const kexinit_offer *mine, const kexinit_peer *peer, char *neg[NEG_COUNT],
                       bool *ignore_guess, char *err, size_t errlen);

#endif
