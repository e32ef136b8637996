/* Fuzz target: replies of an ssh-agent (agent.c) to the two requests
 * publickey authentication makes. A listening UNIX socket in a private
 * temporary directory plays the agent; for each input the client connects
 * with evssh_agent_open and runs a script of calls, each an opcode byte
 * (list identities, or sign with one of the listed keys or a fixed one,
 * under rsa-sha2-256 / rsa-sha2-512 / ssh-ed25519), a 16-bit big-endian
 * length and that many bytes the agent has written before the call: the
 * raw reply stream, length headers included, so short, long, oversized,
 * split and concatenated replies all happen. The last chunk is followed by
 * end of file; a reply cut short earlier ends the call at its (1 ms)
 * deadline, since nothing more can arrive. Everything is in the socket
 * before the call, so runs are deterministic.
 *
 * Oracles: no crash, out-of-bounds access or leak; every request the
 * client writes is well framed; a listed identity has a non-empty blob and
 * a NUL-terminated comment; a signature handed back is string(alg) ||
 * string(signature) under the algorithm asked for; a refusal (EPROTO,
 * EAUTH, ECLOSED, ETIMEOUT) says why; once an exchange broke the stream,
 * every later call is ECLOSED without touching the socket.
 *
 * Build: as every test/fuzz/fuzz_*.c (test/fuzz/run.sh).
 * Seeds: test/fuzz/seeds/fuzz_agent/. */
#include "agent.h"

#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[] = "/tmp/evssh-fuzz-agent-XXXXXX";
static char sock_path[96];
static int listener = -1;

static void cleanup(void) {
  if (listener >= 0) close(listener);
  unlink(sock_path);
  rmdir(dir);
}

static void init_listener(void) {
  if (listener >= 0) return;
  if (!mkdtemp(dir)) abort();
  snprintf(sock_path, sizeof sock_path, "%s/agent.sock", dir);
  listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
  if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(listener, 4) != 0) abort();
  atexit(cleanup);
}

/* Read and check what the client wrote: length-framed requests, each an
   identities request or a sign request with its three fields. */
static void check_requests(int fd) {
  static unsigned char in[1 << 16];
  size_t have = 0;
  for (;;) {
    ssize_t n = recv(fd, in + have, sizeof in - have, MSG_DONTWAIT);
    if (n <= 0) break;
    have += (size_t)n;
    if (have == sizeof in) abort();   /* requests are small */
  }
  size_t off = 0;
  while (off < have) {
    if (have - off < 4) abort();
    uint32_t len = get_u32(in + off);
    if (len == 0 || len > have - off - 4) abort();   /* requests go out whole */
    evssh_reader r = reader_of(in + off + 4, len);
    uint8_t type;
    if (evssh_read_u8(&r, &type)) abort();
    if (type == 13) {
      const char *blob, *data;
      size_t bl, dl;
      uint32_t flags;
      if (evssh_read_string(&r, &blob, &bl) || evssh_read_string(&r, &data, &dl) || evssh_read_u32(&r, &flags) ||
          bl == 0 || flags > 4)
        abort();
    } else if (type != 11) {
      abort();
    }
    if (r.left) abort();
    off += 4 + len;
  }
}

static const char *const algs[] = {"rsa-sha2-256", "rsa-sha2-512", "ssh-ed25519"};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  init_listener();
  evssh_agent *a = NULL;
  char err[256] = "";
  if (evssh_agent_open(sock_path, &a, err, sizeof err) != EVSSH_OK) abort();
  int peer = accept(listener, NULL, NULL);
  if (peer < 0) abort();
  evssh_agent_set_timeout(a, 1);
  evssh_agent_identity *ids = NULL;
  size_t nids = 0;
  bool broken = false;
  size_t off = 0;
  int calls = 0;
  while (off + 3 <= size && calls++ < 16) {
    uint8_t op = data[off];
    size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
    off += 3;
    if (len > size - off) len = size - off;
    /* the socket buffer holds every chunk a 64 KiB input can carry */
    size_t w = 0;
    while (w < len) {
      ssize_t n = send(peer, data + off + w, len - w, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) break;
      w += (size_t)n;
    }
    off += len;
    if (off + 3 > size) shutdown(peer, SHUT_WR);   /* the agent has said all it will */
    err[0] = 0;
    int rc;
    if (op % 2 == 0) {
      evssh_agent_identity *got = NULL;
      size_t n = 0;
      rc = evssh_agent_identities(a, &got, &n, err, sizeof err);
      if (rc == EVSSH_OK) {
        for (size_t i = 0; i < n; i++)
          if (!got[i].blob || got[i].blob_len == 0 || !got[i].comment) abort();
        evssh_agent_identities_free(ids, nids);
        ids = got;
        nids = n;
      } else if (got) {
        abort();   /* nothing handed out on failure */
      }
    } else {
      static const unsigned char fixed[] = "\0\0\0\013ssh-ed25519\0\0\0\004abcd";
      const unsigned char *blob = fixed;
      size_t blob_len = sizeof fixed - 1;
      if (nids) {
        blob = ids[(op >> 3) % nids].blob;
        blob_len = ids[(op >> 3) % nids].blob_len;
      }
      const char *alg = algs[(op >> 1) % 3];
      static const unsigned char to_sign[] = "session id and request";
      evssh_buf sig = EVSSH_BUF_INIT;
      evssh_buf_put_u8(&sig, 0x7e);   /* what the caller had: appended to, not replaced */
      rc = evssh_agent_sign(a, blob, blob_len, alg, to_sign, sizeof to_sign - 1, &sig, err, sizeof err);
      evssh_reader r = reader_of(buf_ptr(&sig), buf_avail(&sig));
      uint8_t mark;
      if (evssh_read_u8(&r, &mark) || mark != 0x7e) abort();
      if (rc == EVSSH_OK) {
        const char *got_alg, *raw;
        size_t gl, rl;
        if (evssh_read_string(&r, &got_alg, &gl) || gl != strlen(alg) || memcmp(got_alg, alg, gl) ||
            evssh_read_string(&r, &raw, &rl) || rl == 0 || r.left)
          abort();
      } else if (r.left) {
        abort();   /* a refused signature leaves the caller's buffer alone */
      }
      buf_release(&sig);
    }
    if (broken && rc != EVSSH_ECLOSED) abort();   /* a broken stream stays refused */
    if (rc != EVSSH_OK && rc != EVSSH_ENOMEM && !err[0]) abort();   /* refusals say why */
    /* a framing failure breaks the stream; a malformed reply read whole does not */
    if (rc == EVSSH_ETIMEOUT || rc == EVSSH_ECLOSED || (rc == EVSSH_EPROTO && strstr(err, "bad length")))
      broken = true;
    check_requests(peer);
  }
  evssh_agent_identities_free(ids, nids);
  evssh_agent_close(a);
  close(peer);
  return 0;
}
