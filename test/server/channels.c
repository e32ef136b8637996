/*
 * Channels: moving bytes between an SSH channel and a local fd (a child's
 * pipes or pty, or a relayed TCP socket), the session requests that shape and
 * start a child (pty, env, exec/shell, signal), and the channel record's life
 * from open to free. Every fd is non-blocking and paced by the SSH windows in
 * both directions, so a slow peer or a slow child stalls only its own channel
 * and no byte is lost; keeping the pumps, the watches that drive them and the
 * progress step that finishes a channel together keeps that invariant in the
 * hands of one file.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server.h"

/* Bytes of client data we hold for a child beyond what the pipe took; the
 * rest stays in libssh's channel buffer, which keeps the SSH window shut. */
#define TO_CHILD_CAP (256 * 1024)
#define READ_CHUNK 32768
/* Reads per fd per poll round, so one busy channel cannot starve others. */
#define READS_PER_ROUND 8

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void buf_compact(struct bytebuf *b)
{
    if (b->off > 0 && b->len > 0)
        memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
}

static void buf_append(struct bytebuf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    buf_compact(b);
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n)
            ncap *= 2;
        unsigned char *nd = realloc(b->data, ncap);
        if (nd == NULL) {
            LOG_ERR("out of memory");
            exit(2);
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_consume(struct bytebuf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

static void buf_free(struct bytebuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int signal_from_name(const char *name)
{
    for (int s = 1; s < NSIG; s++) {
        const char *n = sigabbrev_np(s);
        if (n != NULL && strcmp(n, name) == 0)
            return s;
    }
    return -1;
}

const char *srv_chan_kind_name(enum chan_kind k)
{
    switch (k) {
    case CH_SESSION: return "session";
    case CH_DIRECT: return "direct-tcpip";
    case CH_FORWARDED: return "forwarded-tcpip";
    }
    return "?";
}

/* ------------------------------------------------------------------ */
/* Channel data pumps                                                  */

/* in_fd and out_fd may name the same socket or pty master; the fd is
 * closed once no field refers to it any more. */
static void release_fd(struct chan *c, int *which)
{
    int fd = *which;
    *which = -1;
    if (fd >= 0 && fd != c->in_fd && fd != c->out_fd && fd != c->err_fd)
        close(fd);
}

/* No more input will reach the child: EOF on its stdin (half-close for a
 * socket); queued input is dropped only when the reader has gone. */
static void drop_input(struct chan *c)
{
    c->in_done = true;
    buf_free(&c->to_in);
    if (c->in_fd >= 0 && c->in_is_socket)
        shutdown(c->in_fd, SHUT_WR);
    release_fd(c, &c->in_fd);
}

/* Moves child/socket output to the channel, never more than the peer's
 * window allows; with a closed window the fd is left unread (and is
 * unregistered at the next reconcile) until a window adjust arrives. */
static void pump_out(struct chan *c, int *fdp, bool is_stderr)
{
    unsigned char buf[READ_CHUNK];
    for (int round = 0; round < READS_PER_ROUND && *fdp >= 0; round++) {
        uint32_t win = ssh_channel_window_size(c->ch);
        if (win == 0)
            return;
        size_t want = win < sizeof buf ? win : sizeof buf;
        ssize_t r = read(*fdp, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            /* EOF, or EIO from a pty master whose slave side is gone */
            LOG_DEBUG("conn %d chan %d: %s EOF", c->conn->id, c->id,
                      is_stderr ? "stderr" : "output");
            if (is_stderr) {
                c->err_eof = true;
                release_fd(c, &c->err_fd);
            } else {
                c->out_eof = true;
                if (!c->in_is_socket && c->in_fd == c->out_fd)
                    drop_input(c); /* pty: nobody left to read input */
                release_fd(c, &c->out_fd);
            }
            return;
        }
        int w = is_stderr ? ssh_channel_write_stderr(c->ch, buf, (uint32_t)r)
                          : ssh_channel_write(c->ch, buf, (uint32_t)r);
        if (w != r) {
            LOG_ERR("conn %d chan %d: channel write returned %d for %zd bytes",
                    c->conn->id, c->id, w, r);
            c->dead = true;
            return;
        }
    }
}

static void finish_input(struct chan *c)
{
    if (c->in_done)
        return;
    LOG_DEBUG("conn %d chan %d: input closed", c->conn->id, c->id);
    drop_input(c);
}

/* Writes buffered client data to the child, refilling from libssh's
 * channel buffer (which re-opens our receive window) as room appears. */
static void pump_in(struct chan *c)
{
    for (;;) {
        if (c->in_fd < 0 || c->in_done)
            return;
        while (c->to_in.len > 0) {
            ssize_t w = write(c->in_fd, c->to_in.data + c->to_in.off, c->to_in.len);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (w < 0) {
                LOG_DEBUG("conn %d chan %d: input write: %s (discarding input)",
                          c->conn->id, c->id, strerror(errno));
                drop_input(c);
                return;
            }
            buf_consume(&c->to_in, (size_t)w);
        }
        if (c->lib_pending == 0)
            break;
        unsigned char tmp[READ_CHUNK];
        uint32_t n = c->lib_pending < sizeof tmp ? c->lib_pending : (uint32_t)sizeof tmp;
        int r = ssh_channel_read_nonblocking(c->ch, tmp, n, 0);
        if (r <= 0) {
            c->lib_pending = 0;
            break;
        }
        c->lib_pending -= (uint32_t)r;
        buf_append(&c->to_in, tmp, (size_t)r);
    }
    if (c->peer_eof && c->to_in.len == 0 && c->lib_pending == 0)
        finish_input(c);
}

static int chan_fd_cb(socket_t fd, int revents, void *userdata)
{
    struct chan *c = userdata;
    if (c->dead)
        return 0;
    if (fd == c->in_fd && (revents & (POLLOUT | POLLERR | POLLHUP)) &&
        (c->to_in.len > 0 || c->lib_pending > 0))
        pump_in(c);
    if (fd == c->out_fd && (revents & (POLLIN | POLLERR | POLLHUP)))
        pump_out(c, &c->out_fd, false);
    if (fd == c->err_fd && (revents & (POLLIN | POLLERR | POLLHUP)))
        pump_out(c, &c->err_fd, true);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Channel callbacks                                                   */

static int on_chan_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
                        int is_stderr, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    if (is_stderr)
        return (int)len; /* clients have no business sending stderr */
    if (c->kind == CH_SESSION && !c->started) {
        c->lib_pending = len; /* hold until the child exists */
        return 0;
    }
    if (c->in_fd < 0 || c->in_done)
        return (int)len; /* the child closed stdin: discard, like sshd */
    uint32_t used = 0;
    if (c->to_in.len == 0) {
        ssize_t w;
        do {
            w = write(c->in_fd, data, len);
        } while (w < 0 && errno == EINTR);
        if (w > 0)
            used = (uint32_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            drop_input(c);
            return (int)len;
        }
    }
    if (used < len && c->to_in.len < TO_CHILD_CAP) {
        uint32_t room = (uint32_t)(TO_CHILD_CAP - c->to_in.len);
        uint32_t take = len - used < room ? len - used : room;
        buf_append(&c->to_in, (unsigned char *)data + used, take);
        used += take;
    }
    c->lib_pending = len - used;
    return (int)used;
}

static void on_chan_eof(ssh_session s, ssh_channel ch, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    LOG_DEBUG("conn %d chan %d: peer EOF", c->conn->id, c->id);
    c->peer_eof = true;
}

static void on_chan_close(ssh_session s, ssh_channel ch, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    LOG_DEBUG("conn %d chan %d: peer closed", c->conn->id, c->id);
    c->peer_closed = true;
}

static void on_chan_signal(ssh_session s, ssh_channel ch, const char *sig, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    int signo = signal_from_name(sig ? sig : "");
    if (signo < 0 || c->pid <= 0 || c->reaped) {
        LOG_INFO("conn %d chan %d: signal %s ignored", c->conn->id, c->id, sig ? sig : "?");
        return;
    }
    LOG_INFO("conn %d chan %d: delivering SIG%s to pid %d", c->conn->id, c->id, sig, (int)c->pid);
    srv_signal_group(c->pid, signo);
}

static int on_pty_request(ssh_session s, ssh_channel ch, const char *term, int width,
                          int height, int pxwidth, int pxheight, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    if (c->started || c->want_pty)
        return -1;
    c->want_pty = true;
    free(c->term);
    c->term = srv_xstrdup(term);
    c->ws.ws_col = (unsigned short)width;
    c->ws.ws_row = (unsigned short)height;
    c->ws.ws_xpixel = (unsigned short)pxwidth;
    c->ws.ws_ypixel = (unsigned short)pxheight;
    LOG_INFO("conn %d chan %d: pty-req %s %dx%d", c->conn->id, c->id, term, width, height);
    return 0;
}

static int on_window_change(ssh_session s, ssh_channel ch, int width, int height,
                            int pxwidth, int pxheight, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    if (!c->want_pty)
        return -1;
    c->ws.ws_col = (unsigned short)width;
    c->ws.ws_row = (unsigned short)height;
    c->ws.ws_xpixel = (unsigned short)pxwidth;
    c->ws.ws_ypixel = (unsigned short)pxheight;
    if (c->started && c->out_fd >= 0)
        ioctl(c->out_fd, TIOCSWINSZ, &c->ws);
    LOG_DEBUG("conn %d chan %d: window-change %dx%d", c->conn->id, c->id, width, height);
    return 0;
}

static int on_env_request(ssh_session s, ssh_channel ch, const char *name,
                          const char *value, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    if (c->started || name == NULL || name[0] == '\0' || strchr(name, '=') != NULL)
        return -1;
    char **ne = realloc(c->env, (c->n_env + 1) * sizeof *ne);
    if (ne == NULL)
        return -1;
    c->env = ne;
    size_t l = strlen(name) + strlen(value ? value : "") + 2;
    char *kv = malloc(l);
    if (kv == NULL)
        return -1;
    snprintf(kv, l, "%s=%s", name, value ? value : "");
    c->env[c->n_env++] = kv;
    LOG_DEBUG("conn %d chan %d: env %s", c->conn->id, c->id, name);
    return 0;
}

/* Runs /bin/sh (with -c cmd when cmd != NULL), stdio wired to pipes or to
 * a pty. The child gets its own session so its whole process group can be
 * signalled when the channel or the server goes away. */
static int spawn_child(struct chan *c, const char *cmd)
{
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int master = -1, slave = -1;

    if (c->want_pty) {
        if (openpty(&master, &slave, NULL, NULL, &c->ws) < 0) {
            LOG_ERR("openpty: %s", strerror(errno));
            return -1;
        }
    } else if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 ||
               pipe2(err_p, O_CLOEXEC) < 0) {
        LOG_ERR("pipe: %s", strerror(errno));
        goto fail;
    }

    pid_t pid = fork();
    if (pid < 0) {
        LOG_ERR("fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        setsid();
        if (c->want_pty) {
            ioctl(slave, TIOCSCTTY, 0);
            dup2(slave, 0);
            dup2(slave, 1);
            dup2(slave, 2);
            if (c->term != NULL)
                setenv("TERM", c->term, 1);
        } else {
            dup2(in_p[0], 0);
            dup2(out_p[1], 1);
            dup2(err_p[1], 2);
        }
        close_range(3, ~0U, 0);
        for (size_t i = 0; i < c->n_env; i++)
            putenv(c->env[i]);
        if (cmd != NULL)
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        else
            execl("/bin/sh", "sh", (char *)NULL);
        _exit(127);
    }

    srv_kid_add(pid);
    c->pid = pid;
    c->started = true;
    if (c->want_pty) {
        close(slave);
        srv_set_nonblock_cloexec(master);
        c->in_fd = c->out_fd = master;
        c->err_fd = -1;
        c->err_eof = true;
    } else {
        close(in_p[0]);
        close(out_p[1]);
        close(err_p[1]);
        c->in_fd = in_p[1];
        c->out_fd = out_p[0];
        c->err_fd = err_p[0];
        srv_set_nonblock_cloexec(c->in_fd);
        srv_set_nonblock_cloexec(c->out_fd);
        srv_set_nonblock_cloexec(c->err_fd);
    }
    return 0;

fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in_p[i]);
        close_fd(&out_p[i]);
        close_fd(&err_p[i]);
    }
    close_fd(&master);
    close_fd(&slave);
    return -1;
}

static int on_exec_request(ssh_session s, ssh_channel ch, const char *command, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    if (c->started)
        return -1;
    if (spawn_child(c, command) < 0)
        return -1;
    LOG_INFO("conn %d chan %d: exec%s pid %d: %s", c->conn->id, c->id,
             c->want_pty ? " (pty)" : "", (int)c->pid, command);
    return 0;
}

static int on_shell_request(ssh_session s, ssh_channel ch, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    if (c->started)
        return -1;
    if (spawn_child(c, NULL) < 0)
        return -1;
    LOG_INFO("conn %d chan %d: shell%s pid %d", c->conn->id, c->id,
             c->want_pty ? " (pty)" : " (no pty)", (int)c->pid);
    return 0;
}

static int on_subsystem_request(ssh_session s, ssh_channel ch, const char *sub, void *userdata)
{
    (void)s;
    (void)ch;
    struct chan *c = userdata;
    LOG_INFO("conn %d chan %d: subsystem %s refused", c->conn->id, c->id, sub);
    return -1;
}

struct chan *srv_chan_new(struct conn *cn, enum chan_kind kind, ssh_channel ch)
{
    struct chan *c = srv_xcalloc(1, sizeof *c);
    c->conn = cn;
    c->kind = kind;
    c->ch = ch;
    c->id = cn->next_chan_id++;
    c->in_fd = c->out_fd = c->err_fd = -1;
    c->err_eof = kind != CH_SESSION;
    for (int i = 0; i < 3; i++)
        c->w[i].fd = -1;
    c->cb.userdata = c;
    c->cb.channel_data_function = on_chan_data;
    c->cb.channel_eof_function = on_chan_eof;
    c->cb.channel_close_function = on_chan_close;
    if (kind == CH_SESSION) {
        c->cb.channel_signal_function = on_chan_signal;
        c->cb.channel_pty_request_function = on_pty_request;
        c->cb.channel_pty_window_change_function = on_window_change;
        c->cb.channel_env_request_function = on_env_request;
        c->cb.channel_exec_request_function = on_exec_request;
        c->cb.channel_shell_request_function = on_shell_request;
        c->cb.channel_subsystem_request_function = on_subsystem_request;
    }
    ssh_callbacks_init(&c->cb);
    if (ch != NULL)
        ssh_set_channel_callbacks(ch, &c->cb);
    c->next = cn->chans;
    cn->chans = c;
    return c;
}

ssh_channel srv_on_session_open(ssh_session s, void *ud)
{
    struct conn *cn = ud;
    if (!cn->authed) {
        LOG_INFO("conn %d: session channel before authentication refused", cn->id);
        return NULL;
    }
    ssh_channel ch = ssh_channel_new(s);
    if (ch == NULL)
        return NULL;
    struct chan *c = srv_chan_new(cn, CH_SESSION, ch);
    LOG_INFO("conn %d chan %d: session channel opened", cn->id, c->id);
    return ch;
}

/* ------------------------------------------------------------------ */
/* Channel teardown                                                    */

static void watch_clear(struct chan *c)
{
    for (int i = 0; i < 3; i++) {
        if (c->w[i].fd >= 0 && c->w[i].reg)
            ssh_event_remove_fd(c->conn->ev, c->w[i].fd);
        c->w[i].fd = -1;
        c->w[i].reg = 0;
    }
}

void srv_chan_free(struct chan *c)
{
    watch_clear(c);
    if (c->ch != NULL) {
        ssh_remove_channel_callbacks(c->ch, &c->cb);
        ssh_channel_free(c->ch);
    }
    if (c->pid > 0 && !c->reaped) {
        LOG_DEBUG("conn %d chan %d: hanging up pid %d", c->conn->id, c->id, (int)c->pid);
        srv_signal_group(c->pid, SIGHUP);
    }
    release_fd(c, &c->in_fd);
    release_fd(c, &c->out_fd);
    release_fd(c, &c->err_fd);
    buf_free(&c->to_in);
    for (size_t i = 0; i < c->n_env; i++)
        free(c->env[i]);
    free(c->env);
    free(c->term);
    free(c->fwd_addr);
    free(c);
}

/* ------------------------------------------------------------------ */
/* Progress, run by reconcile outside libssh's dispatch                */

static void chan_set_watch(struct chan *c, int slot, int fd, short want)
{
    struct watch *w = &c->w[slot];
    if (w->fd != fd || w->reg != want) {
        if (w->fd >= 0 && w->reg)
            ssh_event_remove_fd(c->conn->ev, w->fd);
        w->fd = -1;
        w->reg = 0;
        if (fd >= 0 && want) {
            if (ssh_event_add_fd(c->conn->ev, fd, want, chan_fd_cb, c) == SSH_OK) {
                w->fd = fd;
                w->reg = want;
            }
        }
    }
}

void srv_chan_update_watches(struct chan *c)
{
    bool can_send = !c->dead && !c->opening && !c->peer_closed && c->ch != NULL &&
                    ssh_channel_window_size(c->ch) > 0;
    bool want_in = !c->dead && c->in_fd >= 0 && !c->in_done &&
                   (c->to_in.len > 0 || c->lib_pending > 0);
    int fds[3] = {c->out_fd, c->err_fd, c->in_fd};
    short ev[3] = {0, 0, 0};
    int slot_fd[3] = {-1, -1, -1};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        int fd = fds[i];
        if (fd < 0)
            continue;
        short e = 0;
        if (fd == c->out_fd && can_send)
            e |= POLLIN;
        if (fd == c->err_fd && can_send)
            e |= POLLIN;
        if (fd == c->in_fd && want_in)
            e |= POLLOUT;
        int j;
        for (j = 0; j < n; j++)
            if (slot_fd[j] == fd)
                break;
        if (j == n) {
            slot_fd[n] = fd;
            ev[n] = e;
            n++;
        } else {
            ev[j] |= e;
        }
    }
    /* keep fds in the slot they already occupy, to avoid churn */
    int order[3] = {-1, -1, -1};
    bool used[3] = {false, false, false};
    for (int j = 0; j < n; j++)
        for (int s = 0; s < 3; s++)
            if (!used[s] && c->w[s].fd == slot_fd[j]) {
                order[j] = s;
                used[s] = true;
                break;
            }
    for (int s = 0; s < 3; s++) {
        bool keep = false;
        for (int j = 0; j < n; j++)
            if (order[j] == s)
                keep = true;
        if (!keep)
            chan_set_watch(c, s, -1, 0);
    }
    for (int j = 0; j < n; j++) {
        if (order[j] < 0)
            for (int s = 0; s < 3; s++)
                if (!used[s]) {
                    order[j] = s;
                    used[s] = true;
                    break;
                }
        chan_set_watch(c, order[j], slot_fd[j], ev[j]);
    }
}

void srv_chan_progress(struct chan *c)
{
    if (c->dead)
        return;
    if (c->opening) {
        if (c->ch == NULL) {
            c->ch = ssh_channel_new(c->conn->session);
            if (c->ch == NULL) {
                c->dead = true;
                return;
            }
            ssh_set_channel_callbacks(c->ch, &c->cb);
        }
        int rc = ssh_channel_open_reverse_forward(c->ch, c->fwd_addr, c->fwd_port,
                                                  "127.0.0.1", c->orig_port);
        if (rc == SSH_AGAIN)
            return;
        c->opening = false;
        if (rc != SSH_OK) {
            LOG_INFO("conn %d chan %d: forwarded-tcpip open refused by client",
                     c->conn->id, c->id);
            c->dead = true;
            return;
        }
        LOG_DEBUG("conn %d chan %d: forwarded-tcpip channel open", c->conn->id, c->id);
    }
    if (c->peer_closed) {
        c->dead = true;
        return;
    }
    /* input: start draining data that arrived before the child existed */
    if ((c->to_in.len > 0 || c->lib_pending > 0) && c->in_fd >= 0 && !c->in_done)
        pump_in(c);
    if (c->peer_eof && c->to_in.len == 0 && c->lib_pending == 0)
        finish_input(c);
    if (c->finished)
        return;
    if (c->kind == CH_SESSION) {
        if (!c->started || !c->reaped || !c->out_eof || !c->err_eof)
            return;
        if (WIFSIGNALED(c->wstatus)) {
            int sig = WTERMSIG(c->wstatus);
            LOG_INFO("conn %d chan %d: pid %d killed by SIG%s%s", c->conn->id, c->id,
                     (int)c->pid, srv_signal_name(sig), WCOREDUMP(c->wstatus) ? " (core)" : "");
            ssh_channel_request_send_exit_signal(c->ch, srv_signal_name(sig),
                                                 WCOREDUMP(c->wstatus) ? 1 : 0, "", "");
        } else {
            int st = WEXITSTATUS(c->wstatus);
            LOG_INFO("conn %d chan %d: pid %d exited with status %d", c->conn->id, c->id,
                     (int)c->pid, st);
            ssh_channel_request_send_exit_status(c->ch, st);
        }
    } else {
        if (!c->out_eof)
            return;
        /* relays are half-closable: pass the socket's EOF on right away, the
         * peer may still be sending (and the far end waiting for our EOF) */
        if (!c->sent_eof) {
            c->sent_eof = true;
            ssh_channel_send_eof(c->ch);
        }
        if (!c->in_done && !(c->peer_eof && c->to_in.len == 0 && c->lib_pending == 0))
            return;
        LOG_DEBUG("conn %d chan %d: %s relay finished", c->conn->id, c->id,
                  srv_chan_kind_name(c->kind));
    }
    c->finished = true;
    if (!c->sent_eof) {
        c->sent_eof = true;
        ssh_channel_send_eof(c->ch);
    }
    ssh_channel_close(c->ch);
}
