/* socks.c owns the SOCKS protocol of dynamic forwarding (see socks.h):
 * reading SOCKS4, SOCKS4a and SOCKS5 greetings and CONNECT requests from
 * whatever bytes a client sent so far, refusing what we do not do (BIND,
 * UDP ASSOCIATE, authentication other than none, unknown address types)
 * with the reply the protocol defines, and mapping a refused channel open
 * to the closest SOCKS error. Every length is checked before a byte is
 * read; a message is taken whole or not at all. */
#include "socks.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
  SOCKS4_GRANTED = 0x5a,
  SOCKS4_REJECTED = 0x5b,
  SOCKS5_OK = 0x00,
  SOCKS5_GENERAL = 0x01,
  SOCKS5_NOT_ALLOWED = 0x02,
  SOCKS5_NET_UNREACHABLE = 0x03,
  SOCKS5_HOST_UNREACHABLE = 0x04,
  SOCKS5_REFUSED = 0x05,
  SOCKS5_BAD_COMMAND = 0x07,
  SOCKS5_BAD_ADDRESS = 0x08,
  SOCKS_CMD_CONNECT = 1,
  SOCKS5_NO_AUTH = 0x00,
  SOCKS5_NO_METHOD = 0xff,
};

static size_t reply4(uint8_t code, unsigned char *out) {
  memset(out, 0, 8);
  out[1] = code;
  return 8;
}

static size_t reply5(uint8_t code, unsigned char *out) {
  memset(out, 0, 10);
  out[0] = 5;
  out[1] = code;
  out[3] = 1;   /* an IPv4 bound address of 0.0.0.0:0, as ssh answers */
  return 10;
}

/* A name is passed to the server as it is; control bytes are not a name. */
static bool usable_name(const unsigned char *p, size_t n) {
  if (n == 0 || n > SOCKS_MAX_HOST) return false;
  for (size_t i = 0; i < n; i++)
    if (p[i] <= 0x20 || p[i] == 0x7f) return false;
  return true;
}

/* Index of the first NUL in p[from, len) with at most max bytes before it;
   -1: none yet, -2: more than max bytes and no NUL. */
static long find_nul(const unsigned char *p, size_t len, size_t from, size_t max) {
  for (size_t i = from; i < len; i++) {
    if (p[i] == 0) return (long)i;
    if (i - from >= max) return -2;
  }
  return -1;
}

static socks_result fail(unsigned char *reply, size_t *reply_len, size_t n, const char **why, const char *text) {
  *reply_len = n;
  *why = text;
  (void)reply;
  return SOCKS_FAIL;
}

static socks_result parse4(const unsigned char *in, size_t len, size_t *consumed, socks_request *req,
                           unsigned char *reply, size_t *reply_len, const char **why) {
  if (len < 9) return SOCKS_MORE;
  long user_end = find_nul(in, len, 8, SOCKS_MAX_HOST);
  if (user_end == -2) return fail(reply, reply_len, reply4(SOCKS4_REJECTED, reply), why, "SOCKS4 user id too long");
  if (user_end < 0) return SOCKS_MORE;
  size_t end = (size_t)user_end + 1;
  req->version = 4;
  req->port = (uint16_t)(in[2] << 8 | in[3]);
  bool socks4a = in[4] == 0 && in[5] == 0 && in[6] == 0 && in[7] != 0;
  if (socks4a) {
    long host_end = find_nul(in, len, end, SOCKS_MAX_HOST);
    if (host_end == -2) return fail(reply, reply_len, reply4(SOCKS4_REJECTED, reply), why, "SOCKS4a host name too long");
    if (host_end < 0) return SOCKS_MORE;
    size_t n = (size_t)host_end - end;
    if (!usable_name(in + end, n))
      return fail(reply, reply_len, reply4(SOCKS4_REJECTED, reply), why, "SOCKS4a host name is empty or not printable");
    memcpy(req->host, in + end, n);
    req->host[n] = 0;
    end = (size_t)host_end + 1;
  } else {
    inet_ntop(AF_INET, in + 4, req->host, sizeof req->host);
  }
  if (in[1] != SOCKS_CMD_CONNECT)
    return fail(reply, reply_len, reply4(SOCKS4_REJECTED, reply), why, "SOCKS4 command not supported (only CONNECT)");
  *consumed = end;
  return SOCKS_CONNECT;
}

static socks_result greet5(socks_state *st, const unsigned char *in, size_t len, size_t *consumed,
                           unsigned char *reply, size_t *reply_len, const char **why) {
  if (len < 2) return SOCKS_MORE;
  size_t n = in[1];
  if (n == 0) return fail(reply, reply_len, 0, why, "SOCKS5 greeting offers no authentication method");
  if (len < 2 + n) return SOCKS_MORE;
  bool none = memchr(in + 2, SOCKS5_NO_AUTH, n) != NULL;
  reply[0] = 5;
  reply[1] = none ? SOCKS5_NO_AUTH : SOCKS5_NO_METHOD;
  *reply_len = 2;
  *consumed = 2 + n;
  if (!none) {
    *why = "SOCKS5 client offers no method we support (only \"no authentication\")";
    return SOCKS_FAIL;
  }
  st->stage = 1;
  return SOCKS_REPLY;
}

static socks_result request5(const unsigned char *in, size_t len, size_t *consumed, socks_request *req,
                             unsigned char *reply, size_t *reply_len, const char **why) {
  if (len < 1) return SOCKS_MORE;
  if (in[0] != 5) return fail(reply, reply_len, 0, why, "SOCKS5 request with a bad version byte");
  if (len < 5) return SOCKS_MORE;
  size_t addr_len;
  switch (in[3]) {
  case 1: addr_len = 4; break;
  case 3: addr_len = 1 + (size_t)in[4]; break;
  case 4: addr_len = 16; break;
  default:
    return fail(reply, reply_len, reply5(SOCKS5_BAD_ADDRESS, reply), why, "SOCKS5 address type not supported");
  }
  size_t total = 4 + addr_len + 2;
  if (len < total) return SOCKS_MORE;
  if (in[2] != 0) return fail(reply, reply_len, reply5(SOCKS5_GENERAL, reply), why, "SOCKS5 request with a reserved byte set");
  if (in[1] != SOCKS_CMD_CONNECT)
    return fail(reply, reply_len, reply5(SOCKS5_BAD_COMMAND, reply), why,
                "SOCKS5 command not supported (only CONNECT; not BIND or UDP ASSOCIATE)");
  req->version = 5;
  const unsigned char *a = in + 4;
  if (in[3] == 1) {
    inet_ntop(AF_INET, a, req->host, sizeof req->host);
  } else if (in[3] == 4) {
    inet_ntop(AF_INET6, a, req->host, sizeof req->host);
  } else {
    size_t n = in[4];
    if (!usable_name(a + 1, n))
      return fail(reply, reply_len, reply5(SOCKS5_GENERAL, reply), why, "SOCKS5 host name is empty or not printable");
    memcpy(req->host, a + 1, n);
    req->host[n] = 0;
  }
  req->port = (uint16_t)(in[4 + addr_len] << 8 | in[4 + addr_len + 1]);
  *consumed = total;
  return SOCKS_CONNECT;
}

socks_result socks_feed(socks_state *st, const unsigned char *in, size_t len, size_t *consumed,
                        socks_request *req, unsigned char *reply, size_t *reply_len, const char **why) {
  *consumed = 0;
  *reply_len = 0;
  *why = NULL;
  memset(req, 0, sizeof *req);
  if (st->stage == 1) return request5(in, len, consumed, req, reply, reply_len, why);
  if (len < 1) return SOCKS_MORE;
  if (in[0] == 4) return parse4(in, len, consumed, req, reply, reply_len, why);
  if (in[0] == 5) return greet5(st, in, len, consumed, reply, reply_len, why);
  return fail(reply, reply_len, 0, why, "not a SOCKS request (the first byte is neither 4 nor 5)");
}

static bool says(const char *d, const char *what) {
  size_t n = strlen(what);
  for (; d && *d; d++)
    if (strncasecmp(d, what, n) == 0) return true;
  return false;
}

uint8_t socks5_code_for(uint32_t reason, const char *d) {
  if (reason == 1) return SOCKS5_NOT_ALLOWED;   /* administratively prohibited */
  if (says(d, "refused")) return SOCKS5_REFUSED;
  if (says(d, "network is unreachable") || says(d, "network unreachable")) return SOCKS5_NET_UNREACHABLE;
  if (says(d, "unreachable") || says(d, "no route") || says(d, "not known") || says(d, "resolve") ||
      says(d, "timed out") || says(d, "no address"))
    return SOCKS5_HOST_UNREACHABLE;
  return SOCKS5_GENERAL;
}

size_t socks_connect_reply(uint8_t version, bool ok, uint32_t reason, const char *description, unsigned char *out) {
  if (version == 4) return reply4(ok ? SOCKS4_GRANTED : SOCKS4_REJECTED, out);
  return reply5(ok ? SOCKS5_OK : socks5_code_for(reason, description), out);
}
