/* channel.c: the long way round, as with Net::SSH's open_channel: open a
 * session channel, and when the server confirms it, request exec; attach
 * callbacks for data, extended data (stderr), the exit-status request, eof
 * and close; then run the event loop until nothing is left to do. Each
 * callback says what it saw, so the output shows the order events come in.
 *
 *   channel [-o Keyword=value]... [user@]host command */
#include <evssh.h>

#include "example_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int exit_code = 255;

static void on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  printf("[stdout %zu bytes] %.*s", len, (int)len, data);
}

static void on_extended_data(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  printf("[stderr %zu bytes] %.*s", len, (int)len, data);
}

static int on_exit_status(evssh_channel *ch, const char *type, evssh_reader *data, bool want_reply, void *ud) {
  uint32_t status;
  if (evssh_read_u32(data, &status) == EVSSH_OK) {
    printf("[exit-status %u]\n", status);
    exit_code = (int)status;
  }
  return EVSSH_REPLY_SUCCESS;
}

static void on_eof(evssh_channel *ch, void *ud) { printf("[eof]\n"); }
static void on_close(evssh_channel *ch, void *ud) { printf("[close]\n"); }

static void on_exec_reply(evssh_channel *ch, bool success, void *ud) {
  printf("[exec %s]\n", success ? "started" : "refused");
  if (!success) evssh_channel_close(ch);
}

static void on_open(evssh_channel *ch, void *ud) {
  printf("[channel %u open]\n", evssh_channel_id(ch));
  evssh_channel_on_data(ch, on_data, NULL);
  evssh_channel_on_extended_data(ch, on_extended_data, NULL);
  evssh_channel_on_request(ch, "exit-status", on_exit_status, NULL);
  evssh_channel_on_eof(ch, on_eof, NULL);
  evssh_channel_on_close(ch, on_close, NULL);
  evssh_channel_exec(ch, (const char *)ud, on_exec_reply, NULL);
}

static void on_open_failed(evssh_channel *ch, uint32_t reason, const char *description, void *ud) {
  printf("[open refused: %u %s]\n", reason, description);
}

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 1, 1, " command", &c)) return 2;
  evssh_session *s = example_connect(&c);
  if (!s) return 255;
  evssh_channel *ch = evssh_session_open_channel(s, on_open, c.args[0]);
  if (!ch) {
    fprintf(stderr, "cannot open a channel: %s\n", evssh_session_error(s));
    evssh_session_free(s);
    return 255;
  }
  evssh_channel_on_open_failed(ch, on_open_failed, NULL);
  /* cond NULL: run while any channel is open */
  int rc = evssh_session_loop(s, -1, NULL, NULL);
  if (rc < 0) fprintf(stderr, "loop: %s: %s\n", evssh_strerror(rc), evssh_session_error(s));
  evssh_session_close(s);
  evssh_session_free(s);
  return exit_code;
}
