/* Test support: push a deterministic byte stream through a remote `cat` on
 * an evssh session and compare SHA-256 of what went out with what came back. */
#ifndef EVSSH_TEST_STREAMS_H
#define EVSSH_TEST_STREAMS_H

#include "evssh.h"

typedef struct stream_result {
  size_t sent, received;
  bool equal;            /* checksums match and received == sent */
  int exit_status;       /* -1 if none */
  int loop_rc;           /* what evssh_session_loop returned */
} stream_result;

/* Blocks until the channel closed. */
void stream_through_cat(evssh_session *s, size_t total, stream_result *out);

#endif
