/* libuv.c: an evssh session driven by libuv's event loop instead of its
 * own, through the installed adapter <evssh/adapters/libuv.h>. It connects,
 * runs one command and prints its output and exit status, while a libuv
 * timer of the program's own keeps ticking: connect, key exchange and
 * authentication never block the loop.
 *
 *   libuv [-o Keyword=value]... [user@]host[:port] command
 *
 * Exit status: the command's, or 255 when the session failed. */
#include "example_args.h"

#include <evssh/adapters/libuv.h>

#include <stdio.h>

typedef struct app {
  evssh_session *session;
  evssh_libuv *adapter;
  const char *command;
  int exit_status;
  bool ran;
  unsigned ticks;
  uv_timer_t tick;
} app;

static void on_tick(uv_timer_t *t) { ((app *)t->data)->ticks++; }

static void stop_ticking(app *p) {
  if (!uv_is_closing((uv_handle_t *)&p->tick)) uv_close((uv_handle_t *)&p->tick, NULL);
}

static void on_output(evssh_channel *ch, evssh_stream stream, const char *data, size_t len, void *ud) {
  fwrite(data, 1, len, stream == EVSSH_STDOUT ? stdout : stderr);
}

static void on_command_closed(evssh_channel *ch, void *ud) {
  app *p = ud;
  int status;
  p->exit_status = evssh_channel_exit_status(ch, &status) == EVSSH_OK ? status : 255;
  p->ran = true;
  printf("-- exit status %d\n", p->exit_status);
  fflush(stdout);
  stop_ticking(p);
  /* nothing else to do: stop driving the session, so uv_run returns */
  evssh_libuv_detach(p->adapter);
}

static void on_ready(evssh_session *s, int status, void *ud) {
  app *p = ud;
  if (status != EVSSH_OK) return;   /* on_stopped reports it */
  fprintf(stderr, "libuv: connected; the program's timer ticked %u times meanwhile\n", p->ticks);
  evssh_channel *ch = evssh_session_exec(s, p->command, on_output, p);
  if (!ch) {
    fprintf(stderr, "libuv: cannot start the command\n");
    stop_ticking(p);
    evssh_libuv_detach(p->adapter);
    return;
  }
  evssh_channel_on_close(ch, on_command_closed, p);
}

/* the session ended before the command did */
static void on_stopped(evssh_libuv *a, int status, void *ud) {
  app *p = ud;
  fprintf(stderr, "libuv: %s: %s (%s)\n", evssh_session_host(p->session), evssh_session_error(p->session),
          evssh_strerror(status));
  stop_ticking(p);
  evssh_libuv_detach(a);
}

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 1, 1, " command", &c)) return 2;
  app p = {.exit_status = 255, .command = c.args[0]};
  p.session = example_session(&c);
  if (!p.session) return 2;

  uv_loop_t *loop = uv_default_loop();
  uv_timer_init(loop, &p.tick);
  p.tick.data = &p;
  uv_timer_start(&p.tick, on_tick, 1, 1);
  evssh_session_connect_async(p.session, on_ready, &p);   /* a failure shows in on_stopped */
  p.adapter = evssh_libuv_attach(loop, p.session, on_stopped, &p);
  if (!p.adapter) return 255;
  uv_run(loop, UV_RUN_DEFAULT);

  evssh_session_close(p.session);
  evssh_session_free(p.session);
  uv_loop_close(loop);
  return p.ran ? p.exit_status : 255;
}
