/* Fuzz target: the SOCKS request parser of dynamic forwarding (socks.c), as
 * a relay drives it: whatever bytes a client sent so far, fed again and
 * again as more arrive, replies taken and consumed bytes dropped. The first
 * input byte picks how the rest is cut into arrivals. Whatever arrives, the
 * parser must ask for more, answer, accept a CONNECT or refuse, never read
 * past what it was given (ASan), consume more than it had, write a reply
 * longer than SOCKS_REPLY_MAX, or hand over a host that is not a
 * NUL-terminated string of at most SOCKS_MAX_HOST bytes.
 *
 * Build with clang as test/fuzz/run.sh builds the others (it needs only
 * src/socks.c of the library). Seeds: test/fuzz/seeds/fuzz_socks/. */
#include "socks.h"

#include <stdlib.h>
#include <string.h>

#define WINDOW 1024   /* as FWD_HANDSHAKE_MAX: the relay never holds more */

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1) return 0;
  unsigned step = (data[0] & 0x3f) + 1;   /* bytes per arrival */
  data++;
  size--;
  socks_state st = {0};
  unsigned char *held = malloc(WINDOW);
  if (!held) return 0;
  size_t have = 0, next = 0;
  int replies = 0;
  for (;;) {
    /* the next arrival, exactly as big as it is: ASan sees overreads */
    size_t take = size - next < step ? size - next : step;
    if (have + take > WINDOW) take = WINDOW - have;
    memcpy(held + have, data + next, take);
    have += take;
    next += take;
    unsigned char *view = malloc(have ? have : 1);
    if (!view) break;
    memcpy(view, held, have);
    size_t consumed = 0, reply_len = 0;
    unsigned char reply[SOCKS_REPLY_MAX];
    socks_request req;
    const char *why = NULL;
    socks_result r = socks_feed(&st, view, have, &consumed, &req, reply, &reply_len, &why);
    free(view);
    if (consumed > have || reply_len > SOCKS_REPLY_MAX) abort();
    if (r == SOCKS_MORE) {
      if (consumed || reply_len) abort();
      if (next == size || have == WINDOW) break;
      continue;
    }
    if (r == SOCKS_FAIL && !why) abort();
    if (r == SOCKS_CONNECT) {
      size_t n = strnlen(req.host, sizeof req.host);
      if (n == 0 || n > SOCKS_MAX_HOST) abort();
      if (req.version != 4 && req.version != 5) abort();
      unsigned char out[SOCKS_REPLY_MAX];
      if (socks_connect_reply(req.version, data[0] & 0x40, data[0] >> 7, why, out) > SOCKS_REPLY_MAX) abort();
    }
    if (r != SOCKS_REPLY) break;
    if (++replies > 1 || consumed == 0) abort();   /* one greeting, then the request */
    memmove(held, held + consumed, have - consumed);
    have -= consumed;
  }
  free(held);
  return 0;
}
