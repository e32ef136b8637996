/*
 * TCP forwarding: direct-tcpip opens (a client's -L) and tcpip-forward /
 * cancel-tcpip-forward global requests with their listeners (a client's -R),
 * plus the refusal of any other global request. Only 127.0.0.1 is ever
 * connected to or bound, so no test can reach beyond the machine. A
 * connection accepted on a forward only becomes a pending channel here:
 * reconcile opens it later, because libssh must not be asked to open a
 * channel from inside its own poll dispatch.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

/* ------------------------------------------------------------------ */
/* direct-tcpip, tcpip-forward and other global requests               */

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    srv_set_nonblock_cloexec(fd);
    return fd;
}

static bool is_loopback_name(const char *h)
{
    return h != NULL && (strcmp(h, "127.0.0.1") == 0 || strcmp(h, "localhost") == 0);
}

void srv_handle_direct_tcpip(struct conn *cn, ssh_message msg)
{
    const char *dst = ssh_message_channel_request_open_destination(msg);
    int dport = ssh_message_channel_request_open_destination_port(msg);
    if (!is_loopback_name(dst)) {
        LOG_INFO("conn %d: direct-tcpip to %s:%d refused (only 127.0.0.1)", cn->id,
                 dst ? dst : "?", dport);
        ssh_message_reply_default(msg); /* ADMINISTRATIVELY_PROHIBITED */
        return;
    }
    int fd = connect_local(dport);
    if (fd < 0) {
        LOG_INFO("conn %d: direct-tcpip to 127.0.0.1:%d: connect: %s", cn->id, dport,
                 strerror(errno));
        ssh_message_reply_default(msg);
        return;
    }
    ssh_channel ch = ssh_message_channel_request_open_reply_accept(msg);
    if (ch == NULL) {
        close(fd);
        return;
    }
    struct chan *c = srv_chan_new(cn, CH_DIRECT, ch);
    c->in_fd = c->out_fd = fd;
    c->in_is_socket = true;
    LOG_INFO("conn %d chan %d: direct-tcpip to 127.0.0.1:%d", cn->id, c->id, dport);
}

static int fwd_accept_cb(socket_t fd, int revents, void *userdata);

void srv_handle_global(struct conn *cn, ssh_message msg)
{
    int sub = ssh_message_subtype(msg);
    const char *addr = ssh_message_global_request_address(msg);
    int port = ssh_message_global_request_port(msg);
    if (sub == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sa;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
            LOG_INFO("conn %d: tcpip-forward %s:%d failed: %s", cn->id, addr ? addr : "",
                     port, strerror(errno));
            if (fd >= 0)
                close(fd);
            ssh_message_reply_default(msg);
            return;
        }
        struct fwd *f = srv_xcalloc(1, sizeof *f);
        f->addr = srv_xstrdup(addr);
        f->port = ntohs(sa.sin_port);
        f->fd = fd;
        f->conn = cn;
        f->next = cn->fwds;
        cn->fwds = f;
        if (ssh_event_add_fd(cn->ev, fd, POLLIN, fwd_accept_cb, f) == SSH_OK)
            f->registered = true;
        LOG_INFO("conn %d: tcpip-forward %s:%d listening on 127.0.0.1:%d", cn->id,
                 f->addr, port, f->port);
        ssh_message_global_request_reply_success(msg, (uint16_t)f->port);
        return;
    }
    if (sub == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) {
        for (struct fwd **pp = &cn->fwds; *pp != NULL; pp = &(*pp)->next) {
            struct fwd *f = *pp;
            if (f->port == port) {
                *pp = f->next;
                if (f->registered)
                    ssh_event_remove_fd(cn->ev, f->fd);
                close(f->fd);
                LOG_INFO("conn %d: cancel-tcpip-forward %s:%d", cn->id, f->addr, port);
                free(f->addr);
                free(f);
                ssh_message_global_request_reply_success(msg, 0);
                return;
            }
        }
        LOG_INFO("conn %d: cancel-tcpip-forward %s:%d: no such forward", cn->id,
                 addr ? addr : "", port);
        ssh_message_reply_default(msg);
        return;
    }
    LOG_DEBUG("conn %d: global request (subtype %d) refused", cn->id, sub);
    ssh_message_reply_default(msg);
}

static int fwd_accept_cb(socket_t fd, int revents, void *userdata)
{
    (void)revents;
    struct fwd *f = userdata;
    struct conn *cn = f->conn;
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int s = accept4(fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (s < 0)
        return 0;
    if (cn->dead) {
        close(s);
        return 0;
    }
    /* the open is sent from reconcile, outside libssh's poll dispatch */
    struct chan *c = srv_chan_new(cn, CH_FORWARDED, NULL);
    c->opening = true;
    c->fwd_addr = srv_xstrdup(f->addr);
    c->fwd_port = f->port;
    c->orig_port = ntohs(peer.sin_port);
    c->in_fd = c->out_fd = s;
    c->in_is_socket = true;
    LOG_INFO("conn %d chan %d: forwarded connection on 127.0.0.1:%d from port %d", cn->id,
             c->id, f->port, c->orig_port);
    return 0;
}
