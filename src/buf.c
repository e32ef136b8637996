/* buf.c owns the bounds-checked wire codec: every byte that comes from the
 * network is read through an evssh_reader, and every message we build goes
 * through an evssh_buf. A read either succeeds whole or leaves the reader
 * untouched with EVSSH_EPROTO, so a parser can never act on half a field. */
#include "buf.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* A single field larger than this is a protocol error whatever the packet
   limit: nothing in SSH needs strings this big in one packet. */
#define BUF_MAX (64u * 1024u * 1024u)

void buf_init(evssh_buf *b) { memset(b, 0, sizeof *b); }

void buf_release(evssh_buf *b) {
  if (b->data) {
    if (b->secret) OPENSSL_cleanse(b->data, b->cap);
    free(b->data);
  }
  bool secret = b->secret;
  buf_init(b);
  b->secret = secret;
}

void buf_reset(evssh_buf *b) {
  if (b->secret && b->data) OPENSSL_cleanse(b->data, b->len);
  b->off = b->len = 0;
}

int buf_reserve(evssh_buf *b, size_t n) {
  if (n > BUF_MAX * 4 || b->len > SIZE_MAX - n) return EVSSH_ENOMEM;
  if (b->len + n <= b->cap) return EVSSH_OK;
  if (b->off > 0 && b->off >= b->cap / 2) {
    buf_compact(b);
    if (b->len + n <= b->cap) return EVSSH_OK;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + n) cap *= 2;
  unsigned char *p;
  if (b->secret) {
    p = malloc(cap);
    if (!p) return EVSSH_ENOMEM;
    if (b->data) {
      memcpy(p, b->data, b->len);
      OPENSSL_cleanse(b->data, b->cap);
      free(b->data);
    }
  } else {
    p = realloc(b->data, cap);
    if (!p) return EVSSH_ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return EVSSH_OK;
}

unsigned char *buf_extend(evssh_buf *b, size_t n) {
  if (buf_reserve(b, n) != EVSSH_OK) return NULL;
  unsigned char *p = b->data + b->len;
  b->len += n;
  return p;
}

int buf_append(evssh_buf *b, const void *p, size_t n) {
  if (n == 0) return EVSSH_OK;
  unsigned char *dst = buf_extend(b, n);
  if (!dst) return EVSSH_ENOMEM;
  memcpy(dst, p, n);
  return EVSSH_OK;
}

void buf_consume(evssh_buf *b, size_t n) {
  if (n >= buf_avail(b)) {
    b->off = b->len = 0;
    return;
  }
  b->off += n;
}

void buf_compact(evssh_buf *b) {
  if (b->off == 0) return;
  size_t n = b->len - b->off;
  memmove(b->data, b->data + b->off, n);
  if (b->secret) OPENSSL_cleanse(b->data + n, b->off);
  b->off = 0;
  b->len = n;
}

/* ------------------------------------------------------------- public buf */

evssh_buf *evssh_buf_new(void) { return calloc(1, sizeof(evssh_buf)); }

void evssh_buf_free(evssh_buf *b) {
  if (!b) return;
  buf_release(b);
  free(b);
}

int evssh_buf_put_u8(evssh_buf *b, uint8_t v) { return buf_append(b, &v, 1); }
int evssh_buf_put_bool(evssh_buf *b, bool v) { return evssh_buf_put_u8(b, v ? 1 : 0); }

int evssh_buf_put_u32(evssh_buf *b, uint32_t v) {
  unsigned char *p = buf_extend(b, 4);
  if (!p) return EVSSH_ENOMEM;
  put_u32(p, v);
  return EVSSH_OK;
}

int evssh_buf_put_u64(evssh_buf *b, uint64_t v) {
  unsigned char *p = buf_extend(b, 8);
  if (!p) return EVSSH_ENOMEM;
  put_u32(p, (uint32_t)(v >> 32));
  put_u32(p + 4, (uint32_t)v);
  return EVSSH_OK;
}

int evssh_buf_put_string(evssh_buf *b, const void *data, size_t len) {
  if (len > UINT32_MAX) return EVSSH_EINVAL;
  unsigned char *p = buf_extend(b, 4 + len);
  if (!p) return EVSSH_ENOMEM;
  put_u32(p, (uint32_t)len);
  if (len) memcpy(p + 4, data, len);
  return EVSSH_OK;
}

int evssh_buf_put_cstring(evssh_buf *b, const char *s) {
  return evssh_buf_put_string(b, s ? s : "", s ? strlen(s) : 0);
}

const void *evssh_buf_data(const evssh_buf *b) { return b->data + b->off; }
size_t evssh_buf_len(const evssh_buf *b) { return b->len - b->off; }

int buf_put_mpint_bytes(evssh_buf *b, const unsigned char *be, size_t len) {
  while (len > 0 && be[0] == 0) { be++; len--; }
  bool pad = len > 0 && (be[0] & 0x80);
  size_t total = len + (pad ? 1 : 0);
  if (total > UINT32_MAX) return EVSSH_EINVAL;
  unsigned char *p = buf_extend(b, 4 + total);
  if (!p) return EVSSH_ENOMEM;
  put_u32(p, (uint32_t)total);
  if (pad) p[4] = 0;
  if (len) memcpy(p + 4 + (pad ? 1 : 0), be, len);
  return EVSSH_OK;
}

int buf_put_bignum(evssh_buf *b, const BIGNUM *bn) {
  if (BN_is_negative(bn)) return EVSSH_EINVAL;
  int n = BN_num_bytes(bn);
  unsigned char stackbuf[1100], *tmp = stackbuf;
  if ((size_t)n > sizeof stackbuf) {
    tmp = malloc((size_t)n);
    if (!tmp) return EVSSH_ENOMEM;
  }
  BN_bn2bin(bn, tmp);
  int rc = buf_put_mpint_bytes(b, tmp, (size_t)n);
  OPENSSL_cleanse(tmp, (size_t)n);
  if (tmp != stackbuf) free(tmp);
  return rc;
}

int buf_put_namelist(evssh_buf *b, const char *csv) { return evssh_buf_put_cstring(b, csv); }

/* ----------------------------------------------------------------- reader */

int evssh_read_u8(evssh_reader *r, uint8_t *v) {
  if (r->left < 1) return EVSSH_EPROTO;
  *v = r->p[0];
  r->p++; r->left--;
  return EVSSH_OK;
}

int evssh_read_bool(evssh_reader *r, bool *v) {
  uint8_t u;
  int rc = evssh_read_u8(r, &u);
  if (rc == EVSSH_OK) *v = u != 0;
  return rc;
}

int evssh_read_u32(evssh_reader *r, uint32_t *v) {
  if (r->left < 4) return EVSSH_EPROTO;
  *v = get_u32(r->p);
  r->p += 4; r->left -= 4;
  return EVSSH_OK;
}

int evssh_read_u64(evssh_reader *r, uint64_t *v) {
  if (r->left < 8) return EVSSH_EPROTO;
  *v = ((uint64_t)get_u32(r->p) << 32) | get_u32(r->p + 4);
  r->p += 8; r->left -= 8;
  return EVSSH_OK;
}

int evssh_read_string(evssh_reader *r, const char **data, size_t *len) {
  if (r->left < 4) return EVSSH_EPROTO;
  uint32_t n = get_u32(r->p);
  if (n > BUF_MAX || (size_t)n > r->left - 4) return EVSSH_EPROTO;
  *data = (const char *)r->p + 4;
  *len = n;
  r->p += 4 + (size_t)n;
  r->left -= 4 + (size_t)n;
  return EVSSH_OK;
}

int evssh_read_bytes(evssh_reader *r, size_t n, const unsigned char **p) {
  if (r->left < n) return EVSSH_EPROTO;
  *p = r->p;
  r->p += n; r->left -= n;
  return EVSSH_OK;
}

int evssh_read_cstring(evssh_reader *r, char **out) {
  evssh_reader save = *r;
  const char *s;
  size_t n;
  int rc = evssh_read_string(r, &s, &n);
  if (rc) return rc;
  if (memchr(s, 0, n)) { *r = save; return EVSSH_EPROTO; }
  char *c = malloc(n + 1);
  if (!c) { *r = save; return EVSSH_ENOMEM; }
  memcpy(c, s, n);
  c[n] = 0;
  *out = c;
  return EVSSH_OK;
}

int evssh_read_mpint(evssh_reader *r, const unsigned char **mag, size_t *len) {
  evssh_reader save = *r;
  const char *s;
  size_t n;
  int rc = evssh_read_string(r, &s, &n);
  if (rc) return rc;
  const unsigned char *u = (const unsigned char *)s;
  if (n > 0 && (u[0] & 0x80)) { *r = save; return EVSSH_EPROTO; }          /* negative */
  if (n > 1 && u[0] == 0 && !(u[1] & 0x80)) { *r = save; return EVSSH_EPROTO; } /* not minimal */
  while (n > 0 && u[0] == 0) { u++; n--; }
  *mag = u;
  *len = n;
  return EVSSH_OK;
}

int evssh_read_bignum(evssh_reader *r, BIGNUM **out) {
  evssh_reader save = *r;
  const unsigned char *mag;
  size_t n;
  int rc = evssh_read_mpint(r, &mag, &n);
  if (rc) return rc;
  if (n > 2048) { *r = save; return EVSSH_EPROTO; } /* 16384-bit cap */
  BIGNUM *bn = BN_bin2bn(mag, (int)n, NULL);
  if (!bn) { *r = save; return EVSSH_ENOMEM; }
  *out = bn;
  return EVSSH_OK;
}

/* ------------------------------------------------------------- name-lists */

bool namelist_contains(const char *list, const char *name) {
  size_t n = strlen(name);
  const char *p = list;
  while (p && *p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && memcmp(p, name, n) == 0) return true;
    p = comma ? comma + 1 : NULL;
  }
  return false;
}

int namelist_negotiate(const char *client, const char *server, char **chosen) {
  const char *p = client;
  while (p && *p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char name[128];
    if (len > 0 && len < sizeof name) {
      memcpy(name, p, len);
      name[len] = 0;
      if (namelist_contains(server, name)) {
        *chosen = strdup(name);
        return *chosen ? EVSSH_OK : EVSSH_ENOMEM;
      }
    }
    p = comma ? comma + 1 : NULL;
  }
  return EVSSH_ENOALGO;
}
