/* harness.h: C interface for check tests that need a real SSH peer.  Wraps
 * test/sshd-harness.sh, which starts OpenSSH sshd or dropbear on 127.0.0.1
 * with freshly generated host and client keys; see that script for details. */
#ifndef EVSSH_TEST_HARNESS_H
#define EVSSH_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* automake's exit status for "test skipped" */
#define HARNESS_SKIP 77

typedef struct harness_peer {
  char dir[512];          /* server directory (keys, config, logs) */
  int port;               /* 127.0.0.1 port the server listens on */
  char known_hosts[600];  /* "[127.0.0.1]:PORT type b64" for every host key */
  char user[64];          /* user the client keys log in as */
  char key_ed25519[600];  /* client private keys (OpenSSH format, no passphrase) */
  char key_rsa[600];
  char key_ecdsa[600];
  bool have_password_user; /* only when the harness runs as root */
  char password_user[64];  /* "evssh-test", shell /bin/sh, also accepts the keys */
  char password[64];
  pid_t pid;               /* the listening server process */
  int kind;                /* internal: 1 sshd, 2 dropbear */
} harness_peer;

/* Starts sshd.  extra_config: NULL or sshd_config lines ('\n'-separated).
 * They override the harness defaults (e.g. "Ciphers aes128-ctr" restricts the
 * server); a "Match" line and everything after it goes to the end.
 * Returns 0, or -1 with the reason on stderr; p is zeroed on failure. */
/* Runs the printf-formatted command line through /bin/sh (system(3)); the
   command's exit status, or -1 when it did not exit normally. */
int harness_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int harness_sshd_start(harness_peer *p, const char *extra_config);
/* Stops the server and every process it forked, then removes p->dir. */
int harness_sshd_stop(harness_peer *p);

/* As harness_sshd_start, with another sshd binary (e.g. OpenSSH 10's). */
int harness_sshd_start_bin(harness_peer *p, const char *sshd, const char *extra_config);

/* Fetches OpenSSH 10 (Debian bookworm-backports) into a cache without
 * installing it (sshd-harness.sh fetch-openssh10) into $EVSSH_OPENSSH10_CACHE,
 * else ${XDG_CACHE_HOME:-$HOME/.cache}/evssh/openssh10 (about 6 MB, reused).
 * 0 with root set to the extracted tree (usr/sbin/sshd, usr/lib/openssh/,
 * usr/bin/ssh), or -1 with why set (no network, no apt). */
int harness_openssh10(char *root, size_t rootlen, char *why, size_t whylen);

/* Starts dropbear (ed25519, ecdsa-256, rsa-3072 host keys).  p->user is
 * evssh-test when root, else the current user (its ~/.ssh/authorized_keys
 * gets tagged lines that harness_dropbear_stop removes again). */
int harness_dropbear_start(harness_peer *p);
int harness_dropbear_stop(harness_peer *p);

/* Starts the embedded libssh server (test/server/evssh-server, found via
 * EVSSH_SERVER_BIN or next to run-server.sh) with fresh keys: p->port,
 * p->known_hosts, p->user, p->key_ed25519 (its authorized client key),
 * p->password. */
int harness_embedded_start(harness_peer *p);
int harness_embedded_stop(harness_peer *p);

/* Sends sig to the listener and all its descendants (per-connection
 * children included).  SIGSTOP/SIGKILL hit the listener first so it cannot
 * fork while we walk the tree; SIGCONT hits the children first.  Returns the
 * number of processes signalled, or -1. */
int harness_sshd_signal(const harness_peer *p, int sig);

/* A listening TCP socket on 127.0.0.1 with a port the kernel chose, for
 * scripted servers and proxies; *port gets it. Returns the fd, or -1. */
int harness_listen_loopback(int *port);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). */
int harness_free_port(void);

/* Waits until something accepts connections on the unix socket at path
 * (a connect succeeds), for at most max_s seconds of wall time; a program
 * such as `ssh-agent -D -a path` creates the file at bind(), before its
 * listen(), so the file existing is not enough. pid, when > 0, is that
 * program: its exit ends the wait early. Returns 0, or -1. */
int harness_wait_unix_listener(const char *path, int max_s, pid_t pid);

/* Writes "p->dir/name" into out (size 600 is enough for any name < 80). */
int harness_dir_path(const harness_peer *p, const char *name, char *out, size_t outlen);

/* NULL when sshd (resp. dropbear) tests can run, else a static reason. */
const char *harness_skip_reason(void);
const char *harness_dropbear_skip_reason(void);
/* Prints "SKIP: reason" and exits HARNESS_SKIP when the peer is unavailable. */
void harness_require_sshd(void);
void harness_require_dropbear(void);

/* Path of sshd-harness.sh (EVSSH_SRCDIR/test, $srcdir, or beside the binary). */
const char *harness_script_path(void);

#endif
