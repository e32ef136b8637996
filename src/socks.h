/* The SOCKS side of dynamic forwarding (ssh -D): a parser for the requests
 * a SOCKS client sends (SOCKS4, SOCKS4a, SOCKS5 without authentication;
 * RFC 1928 and the SOCKS4/4a memos) and the replies we send back. Pure
 * code over byte arrays: it allocates nothing and calls nothing but libc,
 * so the fuzz target can drive it alone. */
#ifndef EVSSH_SOCKS_H
#define EVSSH_SOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOCKS_MAX_HOST 255
#define SOCKS_REPLY_MAX 10

typedef struct socks_state {
  uint8_t stage;             /* 0: nothing yet; 1: SOCKS5 greeted, the request is next */
} socks_state;

typedef struct socks_request {
  uint8_t version;           /* 4 (4a included) or 5 */
  char host[SOCKS_MAX_HOST + 1];  /* dotted IPv4, IPv6 text, or the domain name */
  uint16_t port;
} socks_request;

typedef enum {
  SOCKS_MORE = 0,            /* the message is not complete: feed more (nothing consumed) */
  SOCKS_REPLY,               /* send reply, drop consumed bytes, feed the rest */
  SOCKS_CONNECT,             /* req is a CONNECT; consumed bytes are the request */
  SOCKS_FAIL,                /* send reply (reply_len may be 0), then close; why says what */
} socks_result;

/* Parse what the client sent so far (in, len). reply must hold
   SOCKS_REPLY_MAX bytes. */
socks_result socks_feed(socks_state *st, const unsigned char *in, size_t len, size_t *consumed,
                        socks_request *req, unsigned char *reply, size_t *reply_len, const char **why);
/* The answer to a CONNECT: success, or the channel-open failure (SSH reason
   code and the server's description) as the closest SOCKS error. Returns
   its length (out holds SOCKS_REPLY_MAX). */
size_t socks_connect_reply(uint8_t version, bool ok, uint32_t reason, const char *description, unsigned char *out);
/* The SOCKS5 reply code that socks_connect_reply uses for a failure. */
uint8_t socks5_code_for(uint32_t reason, const char *description);

#endif
