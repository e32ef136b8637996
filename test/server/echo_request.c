/*
 * The private `echo@evssh` channel request: a request type no standard server
 * implements, with a payload the server writes back as channel data, so a
 * client's generic channel-request path can be tested end to end. It sits
 * apart because libssh 0.10 does not tell a server an unknown request's name
 * or payload, and recovering them means scanning memory reachable from the
 * session (see find_echo_payload); that workaround must stay fenced off from
 * the rest of the server and must fail closed, refusing rather than misreading.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server.h"

/* ------------------------------------------------------------------ */
/* echo@evssh                                                          */

/* Reads memory that may not be mapped without risking a fault: the kernel
 * reports EFAULT instead. process_vm_readv on ourselves first; where a
 * seccomp profile forbids it, a write() into a pipe does the same check. */
static bool probe_read(const void *addr, void *out, size_t len)
{
    static int pipefd[2] = {-1, -1};
    static bool vm_readv_works = true;
    if (vm_readv_works) {
        struct iovec local = {out, len};
        struct iovec remote = {(void *)addr, len};
        ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
        if (r == (ssize_t)len)
            return true;
        if (r >= 0 || errno == EFAULT)
            return false;
        vm_readv_works = false;
    }
    if (len > 65536)
        return false;
    if (pipefd[0] < 0 && pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
        return false;
    /* raw syscall: a sanitizer's write() wrapper would itself read addr */
    ssize_t w = (ssize_t)syscall(SYS_write, pipefd[1], addr, len);
    if (w <= 0)
        return false;
    ssize_t r = read(pipefd[0], out, (size_t)w);
    return w == (ssize_t)len && r == w;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Finds  string "echo@evssh", boolean, string payload  ending exactly at
 * the end of the `used` bytes at `data`; returns a copy of the payload. */
static char *match_echo_packet(const void *data, size_t used, uint32_t *plen)
{
    static const char name[] = "echo@evssh";
    const size_t nlen = sizeof name - 1;
    unsigned char *bytes = malloc(used);
    if (bytes == NULL || !probe_read(data, bytes, used)) {
        free(bytes);
        return NULL;
    }
    char *out = NULL;
    for (size_t i = 0; out == NULL && i + 4 + nlen + 1 + 4 <= used; i++) {
        if (be32(bytes + i) != nlen || memcmp(bytes + i + 4, name, nlen) != 0)
            continue;
        size_t p = i + 4 + nlen + 1;
        uint32_t l = be32(bytes + p);
        if (p + 4 + (size_t)l != used)
            continue;
        out = malloc((size_t)l + 1);
        if (out != NULL) {
            memcpy(out, bytes + p + 4, l);
            out[l] = '\0';
            *plen = l;
        }
    }
    free(bytes);
    return out;
}

/*
 * libssh 0.10 hands unknown channel requests to the message callback with
 * neither their name nor their payload. While that callback runs, the
 * decrypted packet is still in the session's input buffer, so we look for
 * it: a heap buffer (data pointer, used length) reachable from the session
 * whose live bytes end with  string "echo@evssh", boolean want_reply,
 * string payload  exactly at `used`. Every read goes through probe_read, so
 * a libssh with a different layout just fails the match; the request is then
 * refused, never misread.
 */
static char *find_echo_payload(ssh_session s, uint32_t *plen)
{
    size_t sz = malloc_usable_size(s);
    const unsigned char *base = (const unsigned char *)s;
    for (size_t off = 0; off + sizeof(void *) <= sz; off += sizeof(void *)) {
        uintptr_t cand;
        memcpy(&cand, base + off, sizeof cand);
        if (cand < 4096 || (cand & 7) != 0)
            continue;
        /* candidate ssh_buffer: try the 32-bit and the size_t field layouts
         * of (used, allocated, pos, data) */
        unsigned char hdr[48];
        if (!probe_read((const void *)cand, hdr, sizeof hdr))
            continue;
        for (int layout = 0; layout < 2; layout++) {
            size_t used, alloc, pos;
            uintptr_t data;
            if (layout == 0) {
                uint32_t u32[3];
                memcpy(u32, hdr + 4, sizeof u32);
                used = u32[0];
                alloc = u32[1];
                pos = u32[2];
                memcpy(&data, hdr + 16, sizeof data);
            } else {
                memcpy(&used, hdr + 8, sizeof used);
                memcpy(&alloc, hdr + 16, sizeof alloc);
                memcpy(&pos, hdr + 24, sizeof pos);
                memcpy(&data, hdr + 32, sizeof data);
            }
            if (used == 0 || used > alloc || pos > used || alloc > (1u << 20) ||
                data < 4096)
                continue;
            char *out = match_echo_packet((const void *)data, used, plen);
            if (out != NULL)
                return out;
        }
    }
    return NULL;
}

static struct chan *find_chan(struct conn *cn, ssh_channel ch)
{
    for (struct chan *c = cn->chans; c != NULL; c = c->next)
        if (c->ch == ch)
            return c;
    return NULL;
}

void srv_handle_unknown_chan_request(struct conn *cn, ssh_message msg)
{
    ssh_channel ch = ssh_message_channel_request_channel(msg);
    struct chan *c = ch ? find_chan(cn, ch) : NULL;
    uint32_t plen = 0;
    char *payload = find_echo_payload(cn->session, &plen);
    if (c == NULL || payload == NULL) {
        LOG_INFO("conn %d: unsupported channel request refused", cn->id);
        free(payload);
        ssh_message_reply_default(msg);
        return;
    }
    if (plen > ssh_channel_window_size(ch)) {
        LOG_INFO("conn %d chan %d: echo@evssh payload (%u bytes) exceeds window, refused",
                 cn->id, c->id, plen);
        free(payload);
        ssh_message_reply_default(msg);
        return;
    }
    int w = plen ? ssh_channel_write(ch, payload, plen) : 0;
    LOG_INFO("conn %d chan %d: echo@evssh (%u bytes) echoed", cn->id, c->id, plen);
    free(payload);
    if (w != (int)plen) {
        ssh_message_reply_default(msg);
        return;
    }
    ssh_message_channel_request_reply_success(msg);
}
