/* Test support for the forwarding tests: deterministic byte streams pushed
 * both ways through a forward between a client and a target that run in
 * threads of their own (the test's main thread runs the evssh loop), with
 * SHA-256 of what each side sent and received, plus small helpers (open
 * fds, RSS, a log capture, sessions to a harness peer). */
#ifndef EVSSH_TEST_FORWARD_SUPPORT_H
#define EVSSH_TEST_FORWARD_SUPPORT_H

#include "evssh.h"
#include "harness.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How the target answers one connection. */
enum {
  FS_CONCURRENT = 0,   /* send and receive at the same time */
  FS_AFTER_EOF = 1,    /* receive until EOF, then send, then close */
  FS_SEND_FIRST = 2,   /* send and shut down, then receive until EOF; the
                          client sends only after that EOF reached it */
};

/* What one stream did, seen from one end. */
typedef struct fs_end {
  uint64_t sent, received;
  unsigned char sent_sha[32], received_sha[32];
  bool got_eof;        /* the peer's EOF arrived (after everything) */
  bool failed;         /* error, reset or timeout */
  char why[128];
  atomic_bool over;    /* this end is done (well or not) */
} fs_end;

/* A target: listens (TCP 127.0.0.1 port 0, or a unix path) and serves up to
   max connections, each as its header says; results per connection in
   arrival order. Runs in its own thread. */
typedef struct fs_target fs_target;
fs_target *fs_target_start(const char *unix_path, size_t max, int *port);
/* the same on [::1]; NULL when this machine has no IPv6 loopback */
fs_target *fs_target_start6(size_t max, int *port);
/* bytes the target wrote so far, over all its connections */
uint64_t fs_target_sent(fs_target *t);
/* connections whose stream ended (well or not) */
size_t fs_target_done(fs_target *t);
/* the target's view of connection seed (the client's seed), NULL if none */
const fs_end *fs_target_result(fs_target *t, uint32_t seed);
/* the target's end of stream seed is over */
bool fs_target_over(fs_target *t, uint32_t seed);
void fs_target_stop(fs_target *t);

/* A client stream: connect to 127.0.0.1:port (or a unix path), send the
   header, then up bytes while receiving down bytes per mode. */
typedef struct fs_client {
  const char *unix_path;   /* NULL: TCP */
  int port;
  uint32_t seed;
  uint64_t up, down;
  int mode;
  /* raw bytes sent first, before the header (a SOCKS request); the reply
     of reply_len bytes is read and kept before the stream starts */
  const unsigned char *preamble;
  size_t preamble_len, reply_len;
  unsigned char reply[64];
  /* the memory test: do not read until released (fs_release) */
  atomic_int hold;
  int timeout_s;           /* default 600 */
  fs_end result;
} fs_client;

/* Run n clients concurrently in one thread; fs_clients_wait joins it. done
   is set to 1 when all are over (for the evssh loop's condition). */
typedef struct fs_batch fs_batch;
fs_batch *fs_clients_start(fs_client *clients, size_t n, atomic_int *done);
void fs_clients_wait(fs_batch *b);
/* Every client's stream equal both ways with target t's view. */
bool fs_check(const fs_client *c, fs_target *t, char *why, size_t whylen);

/* Run n clients through a forward until they are done (and the target's
   side too); every stream must be equal both ways (check assertions). */
void fs_run(evssh_session *s, fs_target *t, fs_client *c, size_t n);
/* a /tmp path for this process, removed first */
void fs_tmp_path(char *out, size_t len, const char *name);
/* a blocking TCP connection to 127.0.0.1:port; -1 with errno */
int fs_connect_tcp(int port);

/* the evssh loop until *flag (or the session ends); returns the last rc */
int fs_loop_until(evssh_session *s, atomic_int *flag);

/* how many fds this process has open (/proc/self/fd) */
int fs_open_fds(void);
/* VmRSS in KiB */
long fs_rss_kib(void);

/* Messages logged at or below a level, kept for the test to look at. */
typedef struct fs_log {
  char text[16384];
  size_t len;
} fs_log;
void fs_log_attach(evssh_session *s, fs_log *log);
bool fs_log_has(const fs_log *log, const char *needle);

/* A session to p with extra "Keyword=value" options (NULL-ended list). */
evssh_session *fs_connect(const harness_peer *p, const char *const *extra, evssh_error *err);

/* 64 MiB, the bulk size; EVSSH_TEST_FORWARD_MIB=n makes it n MiB (for
   valgrind runs) */
uint64_t fs_bulk(void);

/* true when the tests run under ASan/UBSan (allocator quarantine makes RSS
   figures meaningless) */
bool fs_sanitized(void);

#endif
