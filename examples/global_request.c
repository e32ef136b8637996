/* global_request.c: global requests both ways. Before connecting, a handler
 * is registered for hostkeys-00@openssh.com, the request OpenSSH's sshd
 * sends right after login to announce all its host keys. Once connected we
 * send keepalive@openssh.com with a reply callback (sshd answers, with
 * failure, which is how OpenSSH's own keepalives work), then tcpip-forward
 * with port 0: the reply data carries the port the server bound, and a
 * handler for forwarded-tcpip channels greets whoever connects there.
 * Finally cancel-tcpip-forward undoes the forwarding.
 *
 *   global_request [-o Keyword=value]... [user@]host [seconds-to-listen] */
#include <evssh.h>

#include "example_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int replies;
static uint32_t bound_port;

static int on_hostkeys(evssh_session *s, const char *type, evssh_reader *data, bool want_reply, void *ud) {
  int keys = 0;
  const char *blob;
  size_t len;
  while (data->left > 0 && evssh_read_string(data, &blob, &len) == EVSSH_OK) keys++;
  printf("server announced %d host key(s) in %s\n", keys, type);
  return EVSSH_REPLY_SUCCESS;
}

static void on_keepalive_reply(evssh_session *s, bool success, evssh_reader *response, void *ud) {
  printf("keepalive@openssh.com answered: %s\n", success ? "success" : "failure");
  replies++;
}

static void on_forward_reply(evssh_session *s, bool success, evssh_reader *response, void *ud) {
  if (success && evssh_read_u32(response, &bound_port) == EVSSH_OK)
    printf("tcpip-forward: the server listens on 127.0.0.1:%u\n", bound_port);
  else
    printf("tcpip-forward refused\n");
  replies++;
}

static void close_after_eof(evssh_channel *ch, void *ud) { evssh_channel_close(ch); }

static int on_forwarded(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  const char *addr, *origin;
  size_t alen, olen;
  uint32_t port, oport;
  if (evssh_read_string(data, &addr, &alen) || evssh_read_u32(data, &port) ||
      evssh_read_string(data, &origin, &olen) || evssh_read_u32(data, &oport))
    return 2; /* SSH_OPEN_CONNECT_FAILED */
  printf("connection to %.*s:%u from %.*s:%u\n", (int)alen, addr, port, (int)olen, origin, oport);
  evssh_channel_send_data(ch, "hello from evssh\n", 17);
  evssh_channel_eof(ch);
  evssh_channel_on_eof(ch, close_after_eof, NULL);
  return 0; /* accept */
}

static bool until_replies(evssh_session *s, void *ud) { return replies < *(int *)ud; }

static bool until_deadline(evssh_session *s, void *ud) { return time(NULL) < *(time_t *)ud; }

int main(int argc, char **argv) {
  example_cmdline c;
  if (!example_parse(argc, argv, 0, 1, " [seconds-to-listen]", &c)) return 2;
  int listen_seconds = c.nargs == 1 ? atoi(c.args[0]) : 0;
  /* built step by step rather than with evssh_start: handlers must be in
     place before the connect */
  evssh_session *s = evssh_session_new(c.host);
  if (!s) return 255;
  if (c.user && evssh_session_option(s, "User", c.user) != EVSSH_OK) goto fail;
  for (size_t k = 0; c.options[k]; k++) {
    char kw[64];
    const char *eq = strchr(c.options[k], '=');
    if (!eq || eq - c.options[k] >= (int)sizeof kw) {
      fprintf(stderr, "bad option %s\n", c.options[k]);
      goto fail;
    }
    snprintf(kw, sizeof kw, "%.*s", (int)(eq - c.options[k]), c.options[k]);
    if (evssh_session_option(s, kw, eq + 1) != EVSSH_OK) goto fail;
  }
  /* registered before connect: the announcement comes right after login */
  evssh_session_on_global_request(s, "hostkeys-00@openssh.com", on_hostkeys, NULL);
  evssh_session_on_open_channel(s, "forwarded-tcpip", on_forwarded, NULL);
  if (evssh_session_connect(s) != EVSSH_OK) goto fail;

  evssh_session_send_global_request(s, "keepalive@openssh.com", NULL, 0, on_keepalive_reply, NULL);
  evssh_buf *req = evssh_buf_new();
  evssh_buf_put_cstring(req, "127.0.0.1");
  evssh_buf_put_u32(req, 0); /* any free port */
  evssh_session_send_global_request(s, "tcpip-forward", evssh_buf_data(req), evssh_buf_len(req),
                                    on_forward_reply, NULL);
  int want = 2;
  if (evssh_session_loop(s, -1, until_replies, &want) < 0) goto fail;

  if (bound_port && listen_seconds > 0) {
    printf("try: nc 127.0.0.1 %u   (listening %d s)\n", bound_port, listen_seconds);
    fflush(stdout);
    time_t deadline = time(NULL) + listen_seconds;
    if (evssh_session_loop(s, 200, until_deadline, &deadline) < 0) goto fail;
  }
  if (bound_port) {
    evssh_buf *cancel = evssh_buf_new();
    evssh_buf_put_cstring(cancel, "127.0.0.1");
    evssh_buf_put_u32(cancel, bound_port);
    evssh_session_send_global_request(s, "cancel-tcpip-forward", evssh_buf_data(cancel), evssh_buf_len(cancel),
                                      NULL, NULL);
    evssh_buf_free(cancel);
  }
  evssh_buf_free(req);
  evssh_session_close(s);
  evssh_session_free(s);
  return 0;

fail:
  fprintf(stderr, "%s\n", evssh_session_error(s));
  evssh_session_free(s);
  return 255;
}
