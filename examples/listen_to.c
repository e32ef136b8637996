/* listen_to.c: pipe a local file descriptor into a remote command's stdin
 * through the session's own event loop, as Net::SSH's listen_to does. Our
 * stdin is registered with evssh_session_listen_to; whenever it is readable
 * the callback reads a chunk and sends it on the channel; at end of file it
 * stops listening and sends EOF, so the remote command sees its input end.
 * The remote output is copied to our stdout.
 *
 *   listen_to [-o Keyword=value]... [user@]host command < input
 *   e.g.  seq 1 100000 | listen_to -o Port=2222 me@127.0.0.1 "wc -l" */
#include <evssh.h>

#include "example_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int exit_code = 255;

static void on_stdin(evssh_session *s, int fd, int events, void *ud) {
  evssh_channel *ch = ud;
  char buf[32768];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    /* queued and sent as the server's window allows; never dropped */
    evssh_channel_send_data(ch, buf, (size_t)n);
    return;
  }
  evssh_session_stop_listening_to(s, fd);
  evssh_channel_eof(ch);
}

static void on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  fwrite(data, 1, len, stdout);
}

static void on_close(evssh_channel *ch, void *ud) {
  int status;
  if (evssh_channel_exit_status(ch, &status) == EVSSH_OK) exit_code = status;
  evssh_session_stop_listening_to(evssh_channel_session(ch), STDIN_FILENO);
}

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 1, 1, " command < input", &c)) return 2;
  evssh_session *s = example_connect(&c);
  if (!s) return 255;
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  if (!ch || evssh_channel_exec(ch, c.args[0], NULL, NULL) != EVSSH_OK) {
    fprintf(stderr, "cannot start the command: %s\n", evssh_session_error(s));
    evssh_session_free(s);
    return 255;
  }
  evssh_channel_on_data(ch, on_data, NULL);
  evssh_channel_on_close(ch, on_close, NULL);
  evssh_session_listen_to(s, STDIN_FILENO, EVSSH_READ, on_stdin, ch);
  int rc = evssh_session_loop(s, -1, NULL, NULL);
  if (rc < 0) fprintf(stderr, "loop: %s: %s\n", evssh_strerror(rc), evssh_session_error(s));
  fflush(stdout);
  evssh_session_close(s);
  evssh_session_free(s);
  return exit_code;
}
