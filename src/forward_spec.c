/* forward_spec.c owns the ssh_config text of a forwarding (see
 * forward_spec.h): splitting an argument into fields the way ssh's
 * parse_forward does (':' separates, [brackets] hold an IPv6 address, '\'
 * escapes, a field with a '/' is a unix socket path), the checks ssh makes
 * on ports, and the canonical `ssh -G` form config files store. */
#include "forward_spec.h"

#include "errors.h"
#include "evssh.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 3

typedef struct field {
  char *text;
  bool path;
} field;

static void free_fields(field *f, size_t n) {
  for (size_t i = 0; i < n; i++) free(f[i].text);
}

/* Split one argument into at most MAX_FIELDS fields. */
static int split_fields(const char *s, field *out, size_t *n, char *err, size_t errlen) {
  size_t len = strlen(s);
  *n = 0;
  const char *p = s;
  for (;;) {
    if (*n == MAX_FIELDS) {
      free_fields(out, *n);
      evssh_errorf(err, errlen, "too many ':'-separated fields in \"%s\"", s);
      return EVSSH_EINVAL;
    }
    char *text = malloc(len + 1);
    if (!text) {
      free_fields(out, *n);
      return EVSSH_ENOMEM;
    }
    size_t j = 0;
    bool path = false;
    if (*p == '[') {
      const char *close = strchr(p + 1, ']');
      if (!close || (close[1] != ':' && close[1] != '\0')) {
        free(text);
        free_fields(out, *n);
        evssh_errorf(err, errlen, "unterminated or misplaced [address] in \"%s\"", s);
        return EVSSH_EINVAL;
      }
      j = (size_t)(close - p - 1);
      memcpy(text, p + 1, j);
      p = close + 1;
    } else {
      for (; *p && *p != ':'; p++) {
        char ch = *p;
        if (ch == '\\' && p[1]) ch = *++p;
        else if (ch == '/') path = true;
        text[j++] = ch;
      }
    }
    text[j] = '\0';
    out[*n].text = text;
    out[*n].path = path;
    (*n)++;
    if (*p != ':') return EVSSH_OK;
    p++;
  }
}

/* A port as ssh's a2port takes it: decimal, 0..65535. -1 when not one. */
static int port_of(const char *s) {
  if (!*s || strlen(s) > 5) return -1;
  int v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v <= 65535 ? v : -1;
}

static int take(char **dst, field *f) {
  *dst = f->text;
  f->text = NULL;
  return EVSSH_OK;
}

static int listen_side(fwd_spec_kind kind, const char *arg, forward_spec *out, char *err, size_t errlen) {
  field f[MAX_FIELDS];
  size_t n;
  int rc = split_fields(arg, f, &n, err, errlen);
  if (rc) return rc;
  const char *what = kind == FWD_SPEC_LOCAL ? "LocalForward" : kind == FWD_SPEC_REMOTE ? "RemoteForward" : "DynamicForward";
  rc = EVSSH_EINVAL;
  if (n == 1 && f[0].path) {
    rc = take(&out->listen_path, &f[0]);
  } else if (n == 1 || n == 2) {
    const char *port = f[n - 1].text;
    int v = port_of(port);
    if (v < 0 || (v == 0 && kind != FWD_SPEC_REMOTE))
      evssh_errorf(err, errlen, "%s: bad listen port \"%s\" in \"%s\"%s", what, port, arg,
                   v == 0 ? " (0 is only for RemoteForward: the server picks one)" : "");
    else if (n == 2 && f[0].path)
      evssh_errorf(err, errlen, "%s: \"%s\" is not a bind address", what, f[0].text);
    else {
      out->listen_port = v;
      rc = n == 2 ? take(&out->listen_host, &f[0]) : EVSSH_OK;
    }
  } else {
    evssh_errorf(err, errlen, "%s: bad listen address \"%s\" (expected [bind_address:]port or a socket path)",
                 what, arg);
  }
  free_fields(f, n);
  return rc;
}

static int connect_side(fwd_spec_kind kind, const char *arg, forward_spec *out, char *err, size_t errlen) {
  const char *what = kind == FWD_SPEC_LOCAL ? "LocalForward" : "RemoteForward";
  field f[MAX_FIELDS];
  size_t n;
  int rc = split_fields(arg, f, &n, err, errlen);
  if (rc) return rc;
  rc = EVSSH_EINVAL;
  if (n == 1 && f[0].path) {
    rc = take(&out->connect_path, &f[0]);
  } else if (n == 2 && !f[0].path && f[0].text[0]) {
    int v = port_of(f[1].text);
    if (v <= 0)
      evssh_errorf(err, errlen, "%s: bad target port \"%s\" in \"%s\"", what, f[1].text, arg);
    else {
      out->connect_port = v;
      rc = take(&out->connect_host, &f[0]);
    }
  } else {
    evssh_errorf(err, errlen, "%s: bad target \"%s\" (expected host:hostport or a socket path)", what, arg);
  }
  free_fields(f, n);
  return rc;
}

int forward_spec_parse(fwd_spec_kind kind, const char *listen, const char *connect, forward_spec *out, char *err,
                       size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!listen || !*listen) {
    evssh_errorf(err, errlen, "missing listen address");
    return EVSSH_EINVAL;
  }
  if (kind == FWD_SPEC_DYNAMIC && connect) {
    evssh_errorf(err, errlen, "DynamicForward takes one argument, [bind_address:]port");
    return EVSSH_EINVAL;
  }
  if (kind != FWD_SPEC_DYNAMIC && (!connect || !*connect)) {
    evssh_errorf(err, errlen, "%s %s: missing target (host:hostport or a socket path)%s",
                 kind == FWD_SPEC_LOCAL ? "LocalForward" : "RemoteForward", listen,
                 kind == FWD_SPEC_REMOTE ? "; remote dynamic forwarding (a SOCKS proxy on the server's port) "
                                           "is not supported" : "");
    return EVSSH_EINVAL;
  }
  int rc = listen_side(kind, listen, out, err, errlen);
  if (!rc && connect) rc = connect_side(kind, connect, out, err, errlen);
  if (rc) forward_spec_release(out);
  return rc;
}

/* append s to b (capacity cap, b NUL-terminated), escaping ' ' and '\' when asked */
static void put(char *b, size_t cap, const char *s, bool escape) {
  size_t j = strlen(b);
  for (; *s && j + 2 < cap; s++) {
    if (escape && (*s == ' ' || *s == '\\')) b[j++] = '\\';
    b[j++] = *s;
  }
  b[j] = '\0';
}

char *forward_spec_format(fwd_spec_kind kind, const forward_spec *f) {
  size_t cap = 64;
  if (f->listen_host) cap += strlen(f->listen_host);
  if (f->listen_path) cap += 2 * strlen(f->listen_path);
  if (f->connect_host) cap += strlen(f->connect_host);
  if (f->connect_path) cap += 2 * strlen(f->connect_path);
  char *b = calloc(1, cap);
  if (!b) return NULL;
  char num[16];
  if (f->listen_path) {
    put(b, cap, f->listen_path, true);
  } else {
    if (f->listen_host) {
      put(b, cap, "[", false);
      put(b, cap, f->listen_host, false);
      put(b, cap, "]:", false);
    }
    snprintf(num, sizeof num, "%d", f->listen_port);
    put(b, cap, num, false);
  }
  if (kind == FWD_SPEC_DYNAMIC) return b;
  put(b, cap, " ", false);
  if (f->connect_path) {
    put(b, cap, f->connect_path, true);
  } else {
    put(b, cap, "[", false);
    put(b, cap, f->connect_host ? f->connect_host : "", false);
    snprintf(num, sizeof num, "]:%d", f->connect_port);
    put(b, cap, num, false);
  }
  return b;
}

/* One canonical endpoint: "[host]:port", "port", or an escaped path. */
static int canonical_endpoint(const char *s, size_t n, char **host, int *port, char **path) {
  char *copy = malloc(n + 1);
  if (!copy) return EVSSH_ENOMEM;
  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close || close + 1 >= s + n || close[1] != ':') {
      free(copy);
      return EVSSH_EINVAL;
    }
    size_t hl = (size_t)(close - s - 1);
    memcpy(copy, s + 1, hl);
    copy[hl] = '\0';
    size_t pl = n - (size_t)(close + 2 - s);
    char ps[8];
    if (pl >= sizeof ps) { free(copy); return EVSSH_EINVAL; }
    memcpy(ps, close + 2, pl);
    ps[pl] = '\0';
    *port = port_of(ps);
    if (*port < 0) { free(copy); return EVSSH_EINVAL; }
    *host = copy;
    return EVSSH_OK;
  }
  memcpy(copy, s, n);
  copy[n] = '\0';
  int v = port_of(copy);
  if (v >= 0) {
    *port = v;
    free(copy);
    return EVSSH_OK;
  }
  size_t j = 0;
  for (size_t i = 0; i < n; i++) copy[j++] = (s[i] == '\\' && i + 1 < n) ? s[++i] : s[i];
  copy[j] = '\0';
  *path = copy;
  return EVSSH_OK;
}

int forward_spec_parse_canonical(fwd_spec_kind kind, const char *text, forward_spec *out, char *err,
                                 size_t errlen) {
  memset(out, 0, sizeof *out);
  size_t split = strlen(text);
  for (size_t i = 0; text[i]; i++) {
    if (text[i] == '\\' && text[i + 1]) i++;
    else if (text[i] == ' ') { split = i; break; }
  }
  int rc = canonical_endpoint(text, split, &out->listen_host, &out->listen_port, &out->listen_path);
  if (!rc && kind != FWD_SPEC_DYNAMIC) {
    if (!text[split]) rc = EVSSH_EINVAL;
    else {
      const char *c = text + split + 1;
      rc = canonical_endpoint(c, strlen(c), &out->connect_host, &out->connect_port, &out->connect_path);
    }
  }
  if (rc) {
    forward_spec_release(out);
    if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "bad forwarding \"%s\"", text);
  }
  return rc;
}

void forward_spec_release(forward_spec *f) {
  free(f->listen_host);
  free(f->listen_path);
  free(f->connect_host);
  free(f->connect_path);
  memset(f, 0, sizeof *f);
}
