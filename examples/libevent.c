/* libevent.c: listen_to's job (our stdin piped into a remote command) done
 * from a libevent event_base through the installed adapter
 * <evssh/adapters/libevent.h>. Our stdin is a libevent read event of the
 * program's own; its callback calls into evssh (send data, send EOF) from
 * outside any evssh callback, so it tells the adapter with
 * evssh_libevent_update, the one call libevent needs that libuv and libev
 * do not. The remote output goes to our stdout.
 *
 *   libevent [-o Keyword=value]... [user@]host[:port] command < input
 *   e.g.  seq 1 100000 | libevent -o Port=2222 me@127.0.0.1 "wc -l"
 *
 * Exit status: the command's, or 255 when the session failed. */
#include "example_args.h"

#include <evssh/adapters/libevent.h>

#include <stdio.h>
#include <unistd.h>

typedef struct app {
  evssh_session *session;
  evssh_libevent *adapter;
  evssh_channel *channel;   /* NULL until connected and after it closed */
  struct event *input;      /* our stdin */
  const char *command;
  int exit_status;
} app;

static void on_stdin(evutil_socket_t fd, short what, void *ud) {
  app *p = ud;
  char buf[32768];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    /* queued and sent as the server's window allows */
    evssh_channel_send_data(p->channel, buf, (size_t)n);
  } else {
    event_del(p->input);
    evssh_channel_eof(p->channel);
  }
  evssh_libevent_update(p->adapter);   /* we called evssh from our own callback */
}

static void on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  fwrite(data, 1, len, stdout);
}

static void on_close(evssh_channel *ch, void *ud) {
  app *p = ud;
  int status;
  if (evssh_channel_exit_status(ch, &status) == EVSSH_OK) p->exit_status = status;
  event_del(p->input);
  p->channel = NULL;
  evssh_libevent_detach(p->adapter);   /* nothing is left to do: dispatch returns */
}

static void on_ready(evssh_session *s, int status, void *ud) {
  app *p = ud;
  if (status != EVSSH_OK) return;   /* on_stopped reports it */
  p->channel = evssh_session_open_channel(s, NULL, NULL);
  if (!p->channel || evssh_channel_exec(p->channel, p->command, NULL, NULL) != EVSSH_OK) {
    fprintf(stderr, "libevent: cannot start the command\n");
    evssh_libevent_detach(p->adapter);
    return;
  }
  evssh_channel_on_data(p->channel, on_data, p);
  evssh_channel_on_close(p->channel, on_close, p);
  event_add(p->input, NULL);   /* read stdin only once there is a channel for it */
}

static void on_stopped(evssh_libevent *a, int status, void *ud) {
  app *p = ud;
  fprintf(stderr, "libevent: %s: %s (%s)\n", evssh_session_host(p->session), evssh_session_error(p->session),
          evssh_strerror(status));
  event_del(p->input);
  evssh_libevent_detach(a);
}

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 1, 1, " command < input", &c)) return 2;
  app p = {.exit_status = 255, .command = c.args[0]};
  p.session = example_session(&c);
  if (!p.session) return 2;

  struct event_base *base = event_base_new();
  if (!base) return 255;
  p.input = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, &p);
  evssh_session_connect_async(p.session, on_ready, &p);   /* a failure shows in on_stopped */
  p.adapter = evssh_libevent_attach(base, p.session, on_stopped, &p);
  if (!p.input || !p.adapter) return 255;
  event_base_dispatch(base);

  fflush(stdout);
  evssh_session_close(p.session);
  evssh_session_free(p.session);
  event_free(p.input);
  event_base_free(base);
  return p.exit_status;
}
