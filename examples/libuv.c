/* libuv.c: an evssh session driven by libuv's event loop instead of its
 * own, through the four calls meant for foreign loops
 * (evssh_session_fd / _events / _timeout / _handle_events), the way
 * hiredis' adapters/libuv.h drives a redisAsyncContext: one uv_poll_t on the
 * session's fd and one uv_timer_t for its next deadline, both re-armed after
 * every handle_events. The adapter (first half) is reusable as is; the
 * program (second half) connects, runs one command, prints its output and
 * exit status while a libuv timer of its own keeps ticking, which shows that
 * connect, key exchange and authentication never block the loop.
 *
 *   libuv [-o Keyword=value]... [user@]host[:port] command
 *
 * Exit status: the command's, or 255 when the session failed. */
#include <evssh.h>
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- adapter */

typedef struct evssh_uv evssh_uv;
typedef void (*evssh_uv_closed_cb)(evssh_uv *a, void *ud);

struct evssh_uv {
  uv_loop_t *loop;
  evssh_session *session;
  uv_poll_t *poll;        /* on the session's current fd, NULL when none */
  int fd;
  ino_t fd_ino;           /* tells a reused fd number from the one we watch */
  int events;             /* EVSSH_READ|EVSSH_WRITE the poll was started with */
  uv_timer_t timer;
  evssh_uv_closed_cb on_closed;
  void *ud;
  bool detached;
};

static void adapter_rearm(evssh_uv *a);

static void close_free(uv_handle_t *h) { free(h); }

static void drop_poll(evssh_uv *a) {
  if (!a->poll) return;
  uv_poll_stop(a->poll);
  uv_close((uv_handle_t *)a->poll, close_free);
  a->poll = NULL;
}

/* After every call into the session: stop watching if it is over, else
   follow its fd, interest and deadline. */
static void adapter_after(evssh_uv *a) {
  if (a->detached) return;
  if (evssh_session_closed(a->session)) {
    drop_poll(a);
    uv_timer_stop(&a->timer);
    a->detached = true;
    if (a->on_closed) a->on_closed(a, a->ud);
    return;
  }
  adapter_rearm(a);
}

static void on_poll(uv_poll_t *h, int status, int uv_events) {
  evssh_uv *a = h->data;
  int revents = 0;
  if (status < 0) revents = EVSSH_READ | EVSSH_WRITE;   /* let the session see the error */
  if (uv_events & UV_READABLE) revents |= EVSSH_READ;
  if (uv_events & UV_WRITABLE) revents |= EVSSH_WRITE;
  evssh_session_handle_events(a->session, revents);
  adapter_after(a);
}

static void on_timer(uv_timer_t *t) {
  evssh_uv *a = t->data;
  evssh_session_handle_events(a->session, 0);
  adapter_after(a);
}

static void adapter_rearm(evssh_uv *a) {
  int fd = evssh_session_fd(a->session);
  struct stat st;
  ino_t ino = (fd >= 0 && fstat(fd, &st) == 0) ? st.st_ino : 0;
  /* while connecting the session moves between fds (resolver wake-up, one
     socket per address), possibly under the same number */
  if (a->poll && (fd != a->fd || ino != a->fd_ino)) drop_poll(a);
  if (fd >= 0 && !a->poll) {
    a->poll = malloc(sizeof *a->poll);
    if (!a->poll || uv_poll_init(a->loop, a->poll, fd) != 0) {
      free(a->poll);
      a->poll = NULL;
    } else {
      a->poll->data = a;
      a->fd = fd;
      a->fd_ino = ino;
      a->events = 0;
    }
  }
  if (a->poll) {
    int ev = evssh_session_events(a->session);
    if (ev != a->events) {
      int uv_ev = ((ev & EVSSH_READ) ? UV_READABLE : 0) | ((ev & EVSSH_WRITE) ? UV_WRITABLE : 0);
      if (uv_ev)
        uv_poll_start(a->poll, uv_ev, on_poll);
      else
        uv_poll_stop(a->poll);
      a->events = ev;
    }
  }
  /* 0 means work is buffered: come back at once, without new I/O */
  int t = evssh_session_timeout(a->session);
  if (t >= 0)
    uv_timer_start(&a->timer, on_timer, (uint64_t)t, 0);
  else
    uv_timer_stop(&a->timer);
}

/* Drive s from loop. Call after evssh_session_connect_async, and again
   (evssh_uv_touch) after calling into the session from outside a callback,
   as one re-arms a hiredis context after a command. */
static evssh_uv *evssh_uv_attach(uv_loop_t *loop, evssh_session *s, evssh_uv_closed_cb on_closed, void *ud) {
  evssh_uv *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->loop = loop;
  a->session = s;
  a->fd = -1;
  a->on_closed = on_closed;
  a->ud = ud;
  uv_timer_init(loop, &a->timer);
  a->timer.data = a;
  adapter_after(a);
  return a;
}

__attribute__((unused)) static void evssh_uv_touch(evssh_uv *a) { adapter_after(a); }

static void free_adapter(uv_handle_t *timer) { free(timer->data); }

/* Stop driving; the session is left as it is. a is freed once libuv has
   let go of its timer (safe to call from the session's callbacks). */
static void evssh_uv_detach(evssh_uv *a) {
  drop_poll(a);
  uv_timer_stop(&a->timer);
  a->detached = true;
  uv_close((uv_handle_t *)&a->timer, free_adapter);
}

/* ---------------------------------------------------------------- program */

typedef struct app {
  evssh_uv *adapter;
  const char *command;
  int exit_status;
  bool ran;
  unsigned ticks;
  uv_timer_t tick;
} app;

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
  uv_timer_stop(&p->tick);
  uv_close((uv_handle_t *)&p->tick, NULL);
  /* nothing else to do: stop driving the session so uv_run returns */
  evssh_uv_detach(p->adapter);
  p->adapter = NULL;
}

static void on_ready(evssh_session *s, int status, void *ud) {
  app *p = ud;
  if (status != EVSSH_OK) {
    fprintf(stderr, "libuv: %s: %s (%s)\n", evssh_session_host(s), evssh_session_error(s), evssh_strerror(status));
    return;
  }
  fprintf(stderr, "libuv: connected; the application timer ticked %u times meanwhile\n", p->ticks);
  evssh_channel *ch = evssh_session_exec(s, p->command, on_output, p);
  if (!ch) {
    fprintf(stderr, "libuv: cannot start the command\n");
    return;
  }
  evssh_channel_on_close(ch, on_command_closed, p);
}

static void on_session_closed(evssh_uv *a, void *ud) {
  app *p = ud;
  if (!p->ran && !uv_is_closing((uv_handle_t *)&p->tick)) {
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, NULL);
  }
  if (p->adapter) {
    evssh_uv_detach(p->adapter);
    p->adapter = NULL;
  }
}

static void on_tick(uv_timer_t *t) { ((app *)t->data)->ticks++; }

static int usage(void) {
  fprintf(stderr, "usage: libuv [-o Keyword=value]... [user@]host[:port] command\n");
  return 2;
}

int main(int argc, char **argv) {
  int i = 1;
  evssh_session *s = NULL;
  const char *opts[64];
  size_t nopts = 0;
  for (; i < argc && strcmp(argv[i], "-o") == 0; i += 2) {
    if (i + 1 >= argc || nopts == 64) return usage();
    opts[nopts++] = argv[i + 1];
  }
  if (argc - i != 2) return usage();
  char user[128] = "", host[256];
  const char *dest = argv[i], *at = strrchr(dest, '@');
  if (at) {
    snprintf(user, sizeof user, "%.*s", (int)(at - dest), dest);
    dest = at + 1;
  }
  snprintf(host, sizeof host, "%s", dest);
  char *colon = strrchr(host, ':');
  const char *port = NULL;
  if (colon && !strchr(colon + 1, ']')) {
    *colon = 0;
    port = colon + 1;
  }
  s = evssh_session_new(host);
  if (!s) return 255;
  if ((user[0] && evssh_session_option(s, "User", user)) || (port && evssh_session_option(s, "Port", port)))
    goto bad_option;
  for (size_t k = 0; k < nopts; k++) {
    char kw[64];
    const char *eq = strchr(opts[k], '=');
    if (!eq) goto bad_option;
    snprintf(kw, sizeof kw, "%.*s", (int)(eq - opts[k]), opts[k]);
    if (evssh_session_option(s, kw, eq + 1)) goto bad_option;
  }

  uv_loop_t *loop = uv_default_loop();
  app p = {NULL, argv[i + 1], 255, false, 0, {0}};
  uv_timer_init(loop, &p.tick);
  p.tick.data = &p;
  uv_timer_start(&p.tick, on_tick, 1, 1);
  if (evssh_session_connect_async(s, on_ready, &p) != EVSSH_OK && evssh_session_closed(s)) {
    fprintf(stderr, "libuv: %s\n", evssh_session_error(s));
    uv_timer_stop(&p.tick);
    uv_close((uv_handle_t *)&p.tick, NULL);
  } else {
    p.adapter = evssh_uv_attach(loop, s, on_session_closed, &p);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  evssh_session_close(s);
  evssh_session_free(s);
  uv_loop_close(loop);
  return p.ran ? p.exit_status : 255;

bad_option:
  fprintf(stderr, "libuv: %s\n", evssh_session_error(s));
  evssh_session_free(s);
  return 2;
}
