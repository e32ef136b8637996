/*
 * Internal interface of evssh-server, shared by its source files only. The
 * connection and channel records live here because the event loop, the
 * channel pumps, authentication and forwarding all act on the same state;
 * everything else stays static in the file that owns it, so each srv_
 * prototype below is a deliberate crossing between two of those concerns.
 */
#ifndef EVSSH_TEST_SERVER_H
#define EVSSH_TEST_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

/* ------------------------------------------------------------------ */
/* Configuration and logging (evssh-server.c)                          */

struct srv_config {
    int port;
    const char *port_file;
    const char *pid_file;
    const char *keydir;
    const char *hostkeys[8];
    int n_hostkeys;
    const char *authorized_keys;
    const char *gen_client_key;
    const char *password;
    const char *user;
    int kbdint_prompts;
    int verbosity;
};

extern struct srv_config srv_cfg;

void srv_log_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_ERR(...) srv_log_at(0, __VA_ARGS__)
#define LOG_INFO(...) srv_log_at(1, __VA_ARGS__)
#define LOG_DEBUG(...) srv_log_at(2, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Data structures                                                     */

struct bytebuf {
    unsigned char *data;
    size_t off, len; /* live bytes are data[off .. off+len) */
    size_t cap;
};

enum chan_kind { CH_SESSION, CH_DIRECT, CH_FORWARDED };

struct watch {
    int fd;
    short reg; /* events currently registered with the ssh_event, 0 = none */
};

struct conn;

struct chan {
    struct chan *next;
    struct conn *conn;
    ssh_channel ch;
    struct ssh_channel_callbacks_struct cb;
    int id;
    enum chan_kind kind;

    /* forwarded-tcpip channels are opened by us; until confirmed, pending */
    bool opening;
    char *fwd_addr;
    int fwd_port;
    int orig_port;

    int in_fd;  /* we write channel data here (child stdin, socket, pty) */
    int out_fd; /* read here, sent as channel data */
    int err_fd; /* read here, sent as extended data (stderr) */
    bool in_is_socket;
    struct bytebuf to_in;
    uint32_t lib_pending; /* client bytes still held in libssh's buffer */
    bool peer_eof, in_done, out_eof, err_eof;
    bool peer_closed;
    bool sent_eof;
    bool finished; /* we sent exit status / eof / close */
    bool dead;     /* tear down at the next reconcile */
    struct watch w[3];

    /* session channels */
    bool started;
    bool want_pty;
    struct winsize ws;
    char *term;
    char **env;
    size_t n_env;
    pid_t pid;
    bool reaped;
    int wstatus;
};

struct fwd {
    struct fwd *next;
    char *addr;
    int port; /* port actually bound */
    int fd;
    bool registered;
    struct conn *conn;
};

struct conn {
    struct conn *next;
    int id;
    ssh_session session;
    struct ssh_server_callbacks_struct scb;
    ssh_event ev; /* this connection's session, child fds and listeners */
    bool in_event;
    bool dispatch; /* has work in the current poll round */
    bool authed;
    bool dead;
    int failures;
    char *user;
    char peer[64];
    struct chan *chans;
    struct fwd *fwds;
    int next_chan_id;
};

/* ------------------------------------------------------------------ */
/* evssh-server.c: process-wide helpers                                */

/* Allocation failure is fatal for this test server: log and exit(2). */
void *srv_xcalloc(size_t n, size_t sz);
char *srv_xstrdup(const char *s); /* NULL duplicates as "" */
int srv_set_nonblock_cloexec(int fd);
void srv_kid_add(pid_t pid);
void srv_signal_group(pid_t pid, int sig);
const char *srv_signal_name(int sig);

/* ------------------------------------------------------------------ */
/* channels.c                                                          */

struct chan *srv_chan_new(struct conn *cn, enum chan_kind kind, ssh_channel ch);
ssh_channel srv_on_session_open(ssh_session s, void *ud);
/* Runs outside libssh's dispatch: opens pending forwarded-tcpip channels,
 * drains early input, sends exit status / EOF / close when done. */
void srv_chan_progress(struct chan *c);
void srv_chan_update_watches(struct chan *c);
void srv_chan_free(struct chan *c);
const char *srv_chan_kind_name(enum chan_kind k);

/* ------------------------------------------------------------------ */
/* echo_request.c                                                      */

void srv_handle_unknown_chan_request(struct conn *cn, ssh_message msg);

/* ------------------------------------------------------------------ */
/* auth.c                                                              */

int srv_on_auth_password(ssh_session s, const char *user, const char *password, void *ud);
int srv_on_auth_pubkey(ssh_session s, const char *user, struct ssh_key_struct *pubkey,
                       char signature_state, void *ud);
int srv_on_auth_none(ssh_session s, const char *user, void *ud);
void srv_handle_kbdint(struct conn *cn, ssh_message msg);
void srv_auth_failed(struct conn *cn, const char *method, const char *user);

/* ------------------------------------------------------------------ */
/* forward.c                                                           */

void srv_handle_direct_tcpip(struct conn *cn, ssh_message msg);
void srv_handle_global(struct conn *cn, ssh_message msg);

#endif
