/* interactive.c: a minimal interactive ssh: request a pty sized like our
 * terminal, start the login shell, put the local terminal in raw mode, and
 * shuttle bytes both ways — our stdin goes to the channel through
 * listen_to, the channel's output goes straight to our stdout. A resized
 * terminal (SIGWINCH) is passed on as a window-change request from the
 * channel's on_process callback, which the loop runs every iteration. The
 * terminal is restored when the shell exits. Without a local tty it still works,
 * just without raw mode (handy for piping a script into a remote shell).
 *
 *   interactive [-o Keyword=value]... [user@]host */
#include <evssh.h>

#include "example_args.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static bool raw_mode;
static int exit_code = 255;
static volatile sig_atomic_t window_changed;

static void on_sigwinch(int sig) { window_changed = 1; }

static void restore_terminal(void) {
  if (raw_mode) tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
  raw_mode = false;
}

static void enter_raw_mode(void) {
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) != 0) return;
  struct termios raw = saved;
  cfmakeraw(&raw);
  if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0) raw_mode = true;
  atexit(restore_terminal);
}

static void on_stdin(evssh_session *s, int fd, int events, void *ud) {
  evssh_channel *ch = ud;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    evssh_channel_send_data(ch, buf, (size_t)n);
    return;
  }
  evssh_session_stop_listening_to(s, fd);
  evssh_channel_eof(ch);
}

static void on_output(evssh_channel *ch, const char *data, size_t len, void *ud) {
  while (len > 0) {
    ssize_t n = write(STDOUT_FILENO, data, len);
    if (n <= 0) break;
    data += n;
    len -= (size_t)n;
  }
}

static void on_stderr(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  fwrite(data, 1, len, stderr);
}

static void on_shell(evssh_channel *ch, bool success, void *ud) {
  if (!success) {
    fprintf(stderr, "the server refused to start a shell\r\n");
    evssh_channel_close(ch);
    return;
  }
  enter_raw_mode();
  evssh_session_listen_to(evssh_channel_session(ch), STDIN_FILENO, EVSSH_READ, on_stdin, ch);
}

/* Runs once per loop iteration: forward a terminal resize. */
static void on_process(evssh_channel *ch, void *ud) {
  if (!window_changed) return;
  window_changed = 0;
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0) return;
  evssh_buf *req = evssh_buf_new();
  evssh_buf_put_u32(req, ws.ws_col);
  evssh_buf_put_u32(req, ws.ws_row);
  evssh_buf_put_u32(req, ws.ws_xpixel);
  evssh_buf_put_u32(req, ws.ws_ypixel);
  evssh_channel_send_request(ch, "window-change", evssh_buf_data(req), evssh_buf_len(req), NULL, NULL);
  evssh_buf_free(req);
}

static void on_pty(evssh_channel *ch, bool success, void *ud) {
  if (!success) fprintf(stderr, "no pty; continuing without one\n");
}

static void on_open(evssh_channel *ch, void *ud) {
  struct winsize ws = {.ws_col = 80, .ws_row = 24};
  if (isatty(STDOUT_FILENO)) ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
  const char *term = getenv("TERM");
  evssh_channel_on_data(ch, on_output, NULL);
  evssh_channel_on_extended_data(ch, on_stderr, NULL);
  if (isatty(STDIN_FILENO)) {
    evssh_channel_request_pty(ch, term ? term : "xterm", ws.ws_col, ws.ws_row, on_pty, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigwinch;
    sigaction(SIGWINCH, &sa, NULL); /* no SA_RESTART: the loop's poll wakes up */
    evssh_channel_on_process(ch, on_process, NULL);
  }
  evssh_channel_shell(ch, on_shell, NULL);
}

static void on_close(evssh_channel *ch, void *ud) {
  int status;
  const char *sig;
  restore_terminal();
  if (evssh_channel_exit_status(ch, &status) == EVSSH_OK) exit_code = status;
  else if (evssh_channel_exit_signal(ch, &sig) == EVSSH_OK) fprintf(stderr, "shell killed by SIG%s\n", sig);
  evssh_session_stop_listening_to(evssh_channel_session(ch), STDIN_FILENO);
}

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 0, 0, "", &c)) return 2;
  evssh_session *s = example_connect(&c);
  if (!s) return 255;
  evssh_channel *ch = evssh_session_open_channel(s, on_open, NULL);
  if (!ch) {
    fprintf(stderr, "cannot open a channel: %s\n", evssh_session_error(s));
    evssh_session_free(s);
    return 255;
  }
  evssh_channel_on_close(ch, on_close, NULL);
  int rc = evssh_session_loop(s, -1, NULL, NULL);
  restore_terminal();
  if (rc < 0) fprintf(stderr, "connection lost: %s\n", evssh_session_error(s));
  evssh_session_close(s);
  evssh_session_free(s);
  return exit_code;
}
