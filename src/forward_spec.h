/* The text of a forwarding as ssh writes it: LocalForward, RemoteForward and
 * DynamicForward arguments (ssh_config(5) syntax, the same as -L/-R/-D) read
 * into a typed spec, and the canonical text `ssh -G` prints for one. Config
 * files store the canonical text; options.c reads it back into a spec. A
 * leaf: it calls nothing but libc. */
#ifndef EVSSH_FORWARD_SPEC_H
#define EVSSH_FORWARD_SPEC_H

#include <stddef.h>

typedef enum { FWD_SPEC_LOCAL = 0, FWD_SPEC_REMOTE, FWD_SPEC_DYNAMIC } fwd_spec_kind;

typedef struct forward_spec {
  /* where we (local, dynamic) or the server (remote) listen */
  char *listen_host;   /* NULL: the default bind address; "*" or "": every interface */
  int listen_port;     /* 0 only for remote: the server picks */
  char *listen_path;   /* a unix socket instead of host and port */
  /* where connections go (NULL for dynamic) */
  char *connect_host;
  int connect_port;
  char *connect_path;  /* a unix socket instead of host and port */
} forward_spec;

/* One forwarding as written in ssh_config: listen is the first argument,
   connect the second (NULL for DynamicForward). Fields split at ':', with
   [brackets] around IPv6 addresses and '\' escaping a ':' in a path; a field
   with a '/' in it is a unix socket path. On EVSSH_EINVAL err says what is
   wrong. out is zeroed first; release it with forward_spec_release. */
int forward_spec_parse(fwd_spec_kind kind, const char *listen, const char *connect, forward_spec *out, char *err,
                       size_t errlen);
/* The canonical text, as `ssh -G` prints the value ("8080 [example.com]:80",
   "[127.0.0.1]:8081 /tmp/sock"); a ' ' or '\' inside a path is escaped with
   '\'. Heap string, NULL without memory. */
char *forward_spec_format(fwd_spec_kind kind, const forward_spec *f);
/* Read canonical text back (what forward_spec_format wrote). */
int forward_spec_parse_canonical(fwd_spec_kind kind, const char *text, forward_spec *out, char *err, size_t errlen);
void forward_spec_release(forward_spec *f);

#endif
