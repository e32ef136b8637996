/* kexinit.c owns the KEXINIT message: our offer, resolved once from the
 * configured lists; building a KEXINIT from it with a fresh cookie; parsing
 * the peer's; and RFC 4253 s7.1 negotiation (the client's first name the
 * server also lists; no MAC for AEAD ciphers; compression must allow
 * "none"; whether a guessed first kex packet was right). It knows nothing of
 * sockets or state: transport.c calls it once per exchange. */
#include "kexinit.h"

#include "cipher.h"
#include "errors.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kexinit_offer_init(kexinit_offer *o, const char *kex, const char *hostkey, const char *ciphers,
                       const char *macs) {
  memset(o, 0, sizeof *o);
  const char *src[KEXINIT_LISTS] = {kex, hostkey, ciphers, ciphers, macs, macs, "none", "none", "", ""};
  for (int i = 0; i < KEXINIT_LISTS; i++)
    if (!(o->lists[i] = strdup(src[i]))) return EVSSH_ENOMEM;
  size_t n = strlen(kex) + sizeof ",ext-info-c," KEX_STRICT_C;
  if (!(o->kex_first = malloc(n))) return EVSSH_ENOMEM;
  snprintf(o->kex_first, n, "%s,ext-info-c," KEX_STRICT_C, kex);
  return EVSSH_OK;
}

void kexinit_offer_free(kexinit_offer *o) {
  for (int i = 0; i < KEXINIT_LISTS; i++) free(o->lists[i]);
  free(o->kex_first);
  memset(o, 0, sizeof *o);
}

int kexinit_build(const kexinit_offer *o, bool first, evssh_buf *out) {
  unsigned char cookie[16];
  if (RAND_bytes(cookie, sizeof cookie) != 1) return EVSSH_ENOMEM;
  size_t mark = out->len;
  int rc = evssh_buf_put_u8(out, 20 /* SSH_MSG_KEXINIT */);
  if (!rc) rc = buf_append(out, cookie, sizeof cookie);
  /* the pseudo-algorithms that signal extensions belong in the first KEXINIT only */
  for (int i = 0; i < KEXINIT_LISTS && !rc; i++)
    rc = evssh_buf_put_cstring(out, i == 0 && first ? o->kex_first : o->lists[i]);
  if (!rc) rc = evssh_buf_put_bool(out, false);
  if (!rc) rc = evssh_buf_put_u32(out, 0);
  if (rc) out->len = mark;
  return rc;
}

int kexinit_parse(const unsigned char *payload, size_t len, kexinit_peer *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (len < 1) {
    evssh_errorf(err, errlen, "malformed KEXINIT from server");
    return EVSSH_EPROTO;
  }
  evssh_reader r = reader_of(payload + 1, len - 1);
  const unsigned char *cookie;
  const char *lists[KEXINIT_LISTS];
  size_t lens[KEXINIT_LISTS];
  uint32_t reserved;
  int rc = evssh_read_bytes(&r, 16, &cookie);
  for (int i = 0; i < KEXINIT_LISTS && rc == EVSSH_OK; i++) rc = evssh_read_string(&r, &lists[i], &lens[i]);
  if (rc == EVSSH_OK) rc = evssh_read_bool(&r, &out->first_kex_packet_follows);
  if (rc == EVSSH_OK) rc = evssh_read_u32(&r, &reserved);
  if (rc) {
    evssh_errorf(err, errlen, "malformed KEXINIT from server");
    return EVSSH_EPROTO;
  }
  for (int i = 0; i < KEXINIT_LISTS; i++) {
    if (memchr(lists[i], 0, lens[i])) {
      kexinit_peer_free(out);
      evssh_errorf(err, errlen, "malformed name-list in server KEXINIT");
      return EVSSH_EPROTO;
    }
    if (!(out->lists[i] = strndup(lists[i], lens[i]))) {
      kexinit_peer_free(out);
      return EVSSH_ENOMEM;
    }
  }
  return EVSSH_OK;
}

void kexinit_peer_free(kexinit_peer *p) {
  for (int i = 0; i < KEXINIT_LISTS; i++) free(p->lists[i]);
  memset(p, 0, sizeof *p);
}

static const char *neg_what[NEG_COUNT] = {"key exchange method", "host key type", "cipher (client to server)",
                                          "cipher (server to client)", "MAC (client to server)",
                                          "MAC (server to client)"};

static bool first_name_equal(const char *a, const char *b) {
  size_t la = strcspn(a, ","), lb = strcspn(b, ",");
  return la == lb && memcmp(a, b, la) == 0;
}

int kexinit_negotiate(const kexinit_offer *mine, const kexinit_peer *peer, char *neg[NEG_COUNT],
                      bool *ignore_guess, char *err, size_t errlen) {
  for (int i = 0; i < NEG_COUNT; i++) {
    free(neg[i]);
    neg[i] = NULL;
  }
  for (int i = 0; i < NEG_COUNT; i++) {
    if (i >= NEG_MAC_CTOS) {
      /* AEAD ciphers carry their own integrity: the MAC lists do not matter */
      const evssh_cipher_alg *c = evssh_cipher_find(neg[i == NEG_MAC_CTOS ? NEG_ENC_CTOS : NEG_ENC_STOC]);
      if (c && (c->flags & CIPHER_AEAD)) continue;
    }
    int rc = namelist_negotiate(mine->lists[i], peer->lists[i], &neg[i]);
    if (rc == EVSSH_ENOALGO) {
      evssh_errorf(err, errlen, "no matching %s found: client offers %s; server offers %s", neg_what[i],
                   mine->lists[i], peer->lists[i]);
      return rc;
    }
    if (rc) return rc;
  }
  if (!namelist_contains(peer->lists[6], "none") || !namelist_contains(peer->lists[7], "none")) {
    evssh_errorf(err, errlen, "no matching compression method: client offers none; server offers %s",
                 peer->lists[namelist_contains(peer->lists[6], "none") ? 7 : 6]);
    return EVSSH_ENOALGO;
  }
  /* RFC 4253 7: a guess was right only if both first algorithms match */
  *ignore_guess = peer->first_kex_packet_follows &&
                  !(first_name_equal(peer->lists[0], mine->lists[0]) &&
                    first_name_equal(peer->lists[1], mine->lists[1]));
  return EVSSH_OK;
}
