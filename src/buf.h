/* Internal side of the wire codec: the evssh_buf layout and the helpers the
 * layers share (mpint, name-list, stream-buffer consumption). The public
 * half (evssh_reader / evssh_buf_put_*) is declared in evssh.h. */
#ifndef EVSSH_BUF_H
#define EVSSH_BUF_H

#include "evssh.h"
#include <openssl/bn.h>

struct evssh_buf {
  unsigned char *data;
  size_t off;      /* start of unread bytes (stream use) */
  size_t len;      /* end of valid bytes */
  size_t cap;
  bool secret;     /* wipe on growth and free */
};

#define EVSSH_BUF_INIT {NULL, 0, 0, 0, false}

void buf_init(evssh_buf *b);
void buf_release(evssh_buf *b);           /* frees storage (wiped if secret); b reusable */
void buf_reset(evssh_buf *b);             /* empty, keep storage */
int  buf_reserve(evssh_buf *b, size_t n); /* room for n more bytes after len */
int  buf_append(evssh_buf *b, const void *p, size_t n);
unsigned char *buf_extend(evssh_buf *b, size_t n); /* grow len by n, return pointer to it */
static inline const unsigned char *buf_ptr(const evssh_buf *b) { return b->data + b->off; }
static inline size_t buf_avail(const evssh_buf *b) { return b->len - b->off; }
void buf_consume(evssh_buf *b, size_t n);  /* drop n unread bytes from the front */
void buf_compact(evssh_buf *b);            /* move unread bytes to the start */

int buf_put_mpint_bytes(evssh_buf *b, const unsigned char *be, size_t len); /* unsigned big-endian */
int buf_put_bignum(evssh_buf *b, const BIGNUM *bn);
int buf_put_namelist(evssh_buf *b, const char *csv);

static inline evssh_reader reader_of(const void *p, size_t len) {
  evssh_reader r = {(const unsigned char *)p, len};
  return r;
}
/* mpint as big-endian magnitude; negative values rejected */
int evssh_read_mpint(evssh_reader *r, const unsigned char **mag, size_t *len);
int evssh_read_bignum(evssh_reader *r, BIGNUM **out);
/* string copied to a fresh NUL-terminated heap string; rejects embedded NUL */
int evssh_read_cstring(evssh_reader *r, char **out);
int evssh_read_bytes(evssh_reader *r, size_t n, const unsigned char **p);

/* big-endian helpers */
static inline uint32_t get_u32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);  p[3] = (unsigned char)v;
}

/* name-list helpers: first entry of client list also in server list */
int namelist_negotiate(const char *client, const char *server, char **chosen);
bool namelist_contains(const char *list, const char *name);

#endif
