/* connect.c owns how a session gets connected, above both the session and
 * the services it may need for that: evssh_session_connect_async picks the
 * byte pipe (TCP, ProxyCommand through io.c, or ProxyJump through jump.c,
 * which runs another session) once the options are resolved; the blocking
 * evssh_session_connect and evssh_start run the loop until the session is
 * ready; evssh_session_new_with builds a session from the option list
 * evssh_start takes. Once authenticated, the forwarding the options ask for
 * is set up (forward_config.c) before the program's on_ready runs, as ssh
 * does. Keeping this here lets session.c never name a service. */
#include "evssh.h"

#include "base.h"
#include "config.h"
#include "forward.h"
#include "io.h"
#include "jump.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Settings a jump host shares with the session it carries: who we are and
   whom we trust. Host-specific ones (User, Port, HostName, algorithms) are
   the hop's own. */
static const char *const inherited_lists[] = {"IdentityFile", "UserKnownHostsFile", "GlobalKnownHostsFile"};
static const char *const inherited_values[] = {
    "IdentitiesOnly", "IdentityAgent", "StrictHostKeyChecking", "BatchMode", "PreferredAuthentications",
    "PasswordAuthentication", "KbdInteractiveAuthentication", "PubkeyAuthentication", "ServerAliveInterval",
    "ServerAliveCountMax", "ConnectTimeout", "AddressFamily", "HashKnownHosts"};

static void free_list(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

/* "Keyword=value" for every inherited setting the session was given */
static int inherited_options(evssh_config *c, char ***out) {
  size_t n = 0, cap = 8;
  char **v = calloc(cap, sizeof *v);
  if (!v) return EVSSH_ENOMEM;
  for (size_t k = 0; k < sizeof inherited_lists / sizeof *inherited_lists + sizeof inherited_values / sizeof *inherited_values; k++) {
    bool list = k < sizeof inherited_lists / sizeof *inherited_lists;
    const char *kw = list ? inherited_lists[k] : inherited_values[k - sizeof inherited_lists / sizeof *inherited_lists];
    if (!evssh_config_is_set(c, kw)) continue;
    const char *const *vals = NULL;
    const char *one = NULL;
    size_t m = list ? evssh_config_get_list_raw(c, kw, &vals) : ((one = evssh_config_get(c, kw)) ? 1 : 0);
    for (size_t i = 0; i < m; i++) {
      if (n + 2 > cap) {
        char **g = realloc(v, 2 * cap * sizeof *g);
        if (!g) { free_list(v); return EVSSH_ENOMEM; }
        v = g;
        cap *= 2;
      }
      v[n] = base_asprintf("%s=%s", kw, list ? vals[i] : one);
      if (!v[n]) { free_list(v); return EVSSH_ENOMEM; }
      v[++n] = NULL;
    }
  }
  v[n] = NULL;
  *out = v;
  return EVSSH_OK;
}

static void fill_error(evssh_error *err, int code, const char *msg) {
  if (!err) return;
  err->code = code;
  base_copy_elided(err->message, sizeof err->message, msg);
}

/* One "Keyword=value" of an option list. */
static int apply_option(evssh_session *s, const char *option) {
  const char *eq = strchr(option, '=');
  if (!eq || eq == option || eq - option >= 64) {
    session_note(s, "option \"%s\" is not Keyword=value", option);
    return EVSSH_EINVAL;
  }
  char kw[64];
  snprintf(kw, sizeof kw, "%.*s", (int)(eq - option), option);
  return evssh_session_option(s, kw, eq + 1);
}

/* The session failed to come up: its message into err, and it is gone. */
static evssh_session *give_up(evssh_session *s, int rc, evssh_error *err) {
  const char *m = evssh_session_error(s);
  fill_error(err, rc, m[0] ? m : evssh_strerror(rc));
  evssh_session_free(s);
  return NULL;
}

/* The jump session to the hop nearest the target (the rest of the list is
   its own ProxyJump), with what it inherits and the callbacks it shares. */
static int jump_session(evssh_session *s, const char *spec, evssh_session **out, char *err, size_t errlen) {
  const char *last = strrchr(spec, ',');
  const char *hop = last ? last + 1 : spec;
  char user[128], host[256];
  int port;
  if (jump_parse_hop(hop, user, sizeof user, host, sizeof host, &port) != EVSSH_OK) {
    snprintf(err, errlen, "ProxyJump: bad jump host \"%s\"", hop);
    return EVSSH_EINVAL;
  }
  evssh_session *outer = evssh_session_new(host);
  char **inherit = NULL;
  int rc = outer ? inherited_options(session_config(s), &inherit) : EVSSH_ENOMEM;
  if (!rc && !session_default_config(s)) rc = evssh_session_option(outer, "ConfigFile", "none");
  if (!rc && user[0]) rc = evssh_session_option(outer, "User", user);
  if (!rc && port) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    rc = evssh_session_option(outer, "Port", ps);
  }
  if (!rc && last) {
    char *rest = base_asprintf("%.*s", (int)(last - spec), spec);
    rc = rest ? evssh_session_option(outer, "ProxyJump", rest) : EVSSH_ENOMEM;
    free(rest);
  }
  for (size_t i = 0; !rc && inherit[i]; i++) rc = apply_option(outer, inherit[i]);
  free_list(inherit);
  if (rc) {
    snprintf(err, errlen, "ProxyJump %s: %s", hop, outer ? evssh_session_error(outer) : "out of memory");
    evssh_session_free(outer);
    return rc;
  }
  evssh_log_cb log;
  evssh_prompt_cb prompt;
  evssh_hostkey_cb check;
  void *log_ud, *prompt_ud, *check_ud;
  int level;
  session_callbacks(s, &log, &log_ud, &level, &prompt, &prompt_ud, &check, &check_ud);
  evssh_session_set_log(outer, level, log, log_ud);
  evssh_session_set_prompt(outer, prompt, prompt_ud);
  evssh_session_set_hostkey_check(outer, check, check_ud);
  *out = outer;
  return EVSSH_OK;
}

static int start_jump(evssh_session *s, const evssh_options *o, evssh_connector **out, char *err, size_t errlen) {
  evssh_session *outer = NULL;
  int rc = jump_session(s, o->proxy_jump, &outer, err, errlen);
  if (rc) return rc;
  evssh_session_cb ready;
  void *ud;
  rc = jump_start(outer, o->hostname, o->port, out, &ready, &ud, err, errlen);
  if (rc) return rc;
  /* a failure here reaches the pipe's on_ready, which records it for the
     first pipe step: the carried session then fails from its loop */
  evssh_session_connect_async(outer, ready, ud);
  jump_started(ud);
  return EVSSH_OK;
}

static void forward_failed(evssh_session *s, int code, const char *message) {
  session_fail(s, code, "%s", message);
}

/* Authenticated (or failed): the options' forwards, then the program's on_ready. */
static void connect_ready(evssh_session *s, int status, void *ud) {
  const evssh_options *o = NULL;
  if (status == EVSSH_OK && session_resolve_options(s, &o) != EVSSH_OK) o = NULL;
  forward_connect_ready(s, status, o, forward_failed);
}

int evssh_session_connect_async(evssh_session *s, evssh_session_cb on_ready, void *ud) {
  if (!s) return EVSSH_EINVAL;
  /* not a new session: session_begin_connect says why not */
  if (evssh_session_connecting(s) || evssh_session_closed(s) || evssh_session_fd(s) >= 0)
    return session_begin_connect(s, on_ready, ud);
  int rc = forward_connect_prepare(s, on_ready, ud);
  if (rc) return rc;
  rc = session_begin_connect(s, connect_ready, NULL);
  if (rc) return rc;
  const evssh_options *o = NULL;
  rc = session_resolve_options(s, &o);
  if (rc) return rc;
  char err[700] = "";
  evssh_connector *c = NULL;
  if (o->proxy_jump)
    rc = start_jump(s, o, &c, err, sizeof err);
  else
    rc = connector_start(o->hostname, o->port, o->proxy_command, &c, err, sizeof err);
  if (rc) return session_fail(s, rc, "%s", err);
  session_set_connector(s, c);
  return EVSSH_OK;
}

typedef struct connect_wait {
  bool done;
  int status;
} connect_wait;

static void connect_done(evssh_session *s, int status, void *ud) {
  connect_wait *w = ud;
  w->done = true;
  w->status = status;
}

static bool connecting(evssh_session *s, void *ud) { return !((connect_wait *)ud)->done; }

static bool authenticating(evssh_session *s, void *ud) {
  return !((connect_wait *)ud)->done && !forward_setup_pending(s);
}

/* After authentication the wait is for the server's answers to the
   RemoteForward requests; that phase gets its own deadline, the connect
   timeout's (60 s when unset). */
static int wait_for_forwards(evssh_session *s, connect_wait *w) {
  const evssh_options *o = NULL;
  int ms = session_resolve_options(s, &o) == EVSSH_OK && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 60000;
  int64_t deadline = base_now_ms() + ms;
  int rc = 1;
  while (!w->done && rc > 0) {
    if (base_now_ms() >= deadline)
      return session_fail(s, EVSSH_ETIMEOUT, "timed out waiting for the server to answer the RemoteForward requests");
    rc = evssh_session_process(s, 1000, connecting, w);
  }
  return rc < 0 ? rc : EVSSH_OK;
}

int evssh_session_connect(evssh_session *s) {
  if (!s) return EVSSH_EINVAL;
  connect_wait w = {false, EVSSH_OK};
  int rc = evssh_session_connect_async(s, connect_done, &w);
  if (rc) return rc;
  rc = evssh_session_loop(s, -1, authenticating, &w);
  if (rc >= 0 && !w.done && forward_setup_pending(s)) rc = wait_for_forwards(s, &w);
  if (w.done && w.status != EVSSH_OK) return w.status;
  if (rc < 0) return rc;
  if (evssh_session_closed(s)) return EVSSH_ECLOSED;
  return EVSSH_OK;
}


evssh_session *evssh_session_new_with(const char *host, const char *user, const char *const *options,
                                      evssh_error *err) {
  fill_error(err, EVSSH_OK, "");
  if (!host || !*host) {
    fill_error(err, EVSSH_EINVAL, "no host given");
    return NULL;
  }
  evssh_session *s = evssh_session_new(host);
  if (!s) {
    fill_error(err, EVSSH_ENOMEM, "out of memory");
    return NULL;
  }
  int rc = EVSSH_OK;
  if (user && *user) rc = evssh_session_option(s, "User", user);
  for (size_t i = 0; rc == EVSSH_OK && options && options[i]; i++) rc = apply_option(s, options[i]);
  return rc == EVSSH_OK ? s : give_up(s, rc, err);
}

evssh_session *evssh_start(const char *host, const char *user, const char *const *options, evssh_error *err) {
  evssh_session *s = evssh_session_new_with(host, user, options, err);
  if (!s) return NULL;
  int rc = evssh_session_connect(s);
  return rc == EVSSH_OK ? s : give_up(s, rc, err);
}
