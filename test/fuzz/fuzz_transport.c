/* Fuzz target: arbitrary bytes from the "server" into a client transport
 * before any keys are in use: version exchange, packet framing, KEXINIT
 * negotiation, key exchange replies, transport messages. Whatever arrives,
 * the transport must end in a clean state (running or failed with a
 * message), never crash, read out of bounds or leak.
 *
 * Build with clang: see test/fuzz/run.sh. The corpus seeds itself: the
 * first inputs are a banner and a KEXINIT built here. */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int on_packet(void *ctx, uint8_t msg, evssh_reader *body) { return EVSSH_OK; }
static int on_kex_done(void *ctx, bool first) { return EVSSH_OK; }
static int on_hostkey(void *ctx, const char *alg, const unsigned char *blob, size_t len) { return EVSSH_OK; }
static const evssh_transport_handler handler = {on_packet, on_kex_done, on_hostkey, NULL, NULL};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 0;
  evssh_transport *t = NULL;
  if (transport_new(sv[0], NULL, &handler, NULL, &t) != EVSSH_OK) {
    close(sv[0]);
    close(sv[1]);
    return 0;
  }
  /* feed in slices so partial packets and line ends across reads happen */
  size_t off = 0;
  while (off < size && !transport_closed(t)) {
    size_t n = size - off < 997 ? size - off : 997;
    ssize_t w = write(sv[1], data + off, n);
    if (w <= 0) break;
    off += (size_t)w;
    transport_handle_io(t, EVSSH_READ | EVSSH_WRITE);
    char sink[65536];
    while (read(sv[1], sink, sizeof sink) > 0) {}
  }
  shutdown(sv[1], SHUT_WR);
  transport_handle_io(t, EVSSH_READ);
  if (transport_closed(t) && transport_error(t)[0] == 0) abort();   /* failures must say why */
  transport_free(t);
  close(sv[0]);
  close(sv[1]);
  return 0;
}
