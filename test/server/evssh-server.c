/*
 * evssh-server: the embedded SSH server used by evssh's demo and tests. One
 * process, one poll loop, many connections, all on 127.0.0.1. This file owns
 * the process and its connections: the command line, logging, host keys and
 * the known_hosts file clients verify against, accepting connections and
 * deciding what each may ask for before authentication, the top-level loop
 * that dispatches every connection in isolation, and the reconcile step that
 * runs after each round, outside libssh's dispatch, where channels can be
 * safely opened, finished and freed. Signals come through a signalfd and
 * children are reaped here, so nothing interrupts libssh in the middle of a
 * call. Channels, authentication, forwarding and echo@evssh each live in
 * their own file (server.h lists what crosses between them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

/* ------------------------------------------------------------------ */
/* Configuration and logging                                           */

struct srv_config srv_cfg;

void srv_log_at(int level, const char *fmt, ...)
{
    if (level > srv_cfg.verbosity)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1200];
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld evssh-server[%d]: ",
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

/* ------------------------------------------------------------------ */
/* Process state                                                       */

static ssh_bind g_bind;
static struct conn *g_conns;
static int g_next_conn_id = 1;
static int g_sigfd = -1;
static int g_stop;
static bool g_got_chld;

/* Live child pids, for reaping and for the final kill on shutdown. */
static pid_t *g_kids;
static size_t g_n_kids, g_cap_kids;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

void *srv_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (p == NULL) {
        LOG_ERR("out of memory");
        exit(2);
    }
    return p;
}

char *srv_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (p == NULL) {
        LOG_ERR("out of memory");
        exit(2);
    }
    return p;
}

int srv_set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

void srv_kid_add(pid_t pid)
{
    if (g_n_kids == g_cap_kids) {
        size_t ncap = g_cap_kids ? g_cap_kids * 2 : 16;
        pid_t *nk = realloc(g_kids, ncap * sizeof *nk);
        if (nk == NULL) {
            LOG_ERR("out of memory");
            exit(2);
        }
        g_kids = nk;
        g_cap_kids = ncap;
    }
    g_kids[g_n_kids++] = pid;
}

static void kid_remove(pid_t pid)
{
    for (size_t i = 0; i < g_n_kids; i++) {
        if (g_kids[i] == pid) {
            g_kids[i] = g_kids[--g_n_kids];
            return;
        }
    }
}

/* Children run in their own session, so the whole group can be signalled. */
void srv_signal_group(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

const char *srv_signal_name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "UNKNOWN";
}

/* ------------------------------------------------------------------ */
/* Connection lifecycle                                                */

/* libssh's catch-all for what has no dedicated callback; this is where the
 * connection decides what it accepts before authentication, then hands each
 * kind of request to the file that owns it. */
static int on_message(ssh_session s, ssh_message msg, void *ud)
{
    (void)s;
    struct conn *cn = ud;
    int type = ssh_message_type(msg);
    int sub = ssh_message_subtype(msg);

    if (type == SSH_REQUEST_SERVICE)
        return 1; /* the default reply accepts ssh-userauth */
    if (type == SSH_REQUEST_AUTH) {
        if (sub == SSH_AUTH_METHOD_INTERACTIVE) {
            srv_handle_kbdint(cn, msg);
            return 0;
        }
        srv_auth_failed(cn, "other", ssh_message_auth_user(msg));
        return 1;
    }
    if (!cn->authed) {
        LOG_INFO("conn %d: request type %d before authentication refused", cn->id, type);
        return 1;
    }
    if (type == SSH_REQUEST_CHANNEL_OPEN) {
        if (sub == SSH_CHANNEL_DIRECT_TCPIP) {
            srv_handle_direct_tcpip(cn, msg);
            return 0;
        }
        LOG_INFO("conn %d: channel open of type %d refused", cn->id, sub);
        return 1;
    }
    if (type == SSH_REQUEST_GLOBAL) {
        srv_handle_global(cn, msg);
        return 0;
    }
    if (type == SSH_REQUEST_CHANNEL) {
        if (sub == SSH_CHANNEL_UNKNOWN) {
            srv_handle_unknown_chan_request(cn, msg);
            return 0;
        }
        LOG_INFO("conn %d: channel request subtype %d refused", cn->id, sub);
        return 1;
    }
    return 1;
}

static void conn_free(struct conn *cn)
{
    while (cn->chans != NULL) {
        struct chan *c = cn->chans;
        cn->chans = c->next;
        srv_chan_free(c);
    }
    while (cn->fwds != NULL) {
        struct fwd *f = cn->fwds;
        cn->fwds = f->next;
        if (f->registered)
            ssh_event_remove_fd(cn->ev, f->fd);
        close(f->fd);
        free(f->addr);
        free(f);
    }
    if (cn->in_event)
        ssh_event_remove_session(cn->ev, cn->session);
    ssh_event_free(cn->ev);
    ssh_disconnect(cn->session);
    ssh_free(cn->session);
    free(cn->user);
    free(cn);
}

static int listen_cb(socket_t fd, int revents, void *userdata)
{
    (void)revents;
    (void)userdata;
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int s = accept4(fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    if (s < 0)
        return 0;
    struct conn *cn = srv_xcalloc(1, sizeof *cn);
    cn->id = g_next_conn_id++;
    snprintf(cn->peer, sizeof cn->peer, "%s:%d", inet_ntoa(peer.sin_addr),
             ntohs(peer.sin_port));
    cn->session = ssh_new();
    if (cn->session == NULL) {
        close(s);
        free(cn);
        return 0;
    }
    if (srv_cfg.verbosity >= 3) {
        int lv = srv_cfg.verbosity >= 4 ? SSH_LOG_FUNCTIONS : SSH_LOG_PROTOCOL;
        ssh_options_set(cn->session, SSH_OPTIONS_LOG_VERBOSITY, &lv);
    }
    if (ssh_bind_accept_fd(g_bind, cn->session, s) != SSH_OK) {
        LOG_ERR("accept: %s", ssh_get_error(g_bind));
        ssh_free(cn->session);
        close(s);
        free(cn);
        return 0;
    }
    cn->scb.userdata = cn;
    cn->scb.auth_password_function = srv_on_auth_password;
    cn->scb.auth_pubkey_function = srv_on_auth_pubkey;
    cn->scb.auth_none_function = srv_on_auth_none;
    cn->scb.channel_open_request_session_function = srv_on_session_open;
    ssh_callbacks_init(&cn->scb);
    ssh_set_server_callbacks(cn->session, &cn->scb);
    ssh_set_message_callback(cn->session, on_message, cn);
    int methods = 0;
    if (srv_cfg.authorized_keys != NULL)
        methods |= SSH_AUTH_METHOD_PUBLICKEY;
    if (srv_cfg.password != NULL)
        methods |= SSH_AUTH_METHOD_PASSWORD;
    if (srv_cfg.password != NULL && srv_cfg.kbdint_prompts > 0)
        methods |= SSH_AUTH_METHOD_INTERACTIVE;
    ssh_set_auth_methods(cn->session, methods);
    ssh_set_blocking(cn->session, 0);
    int rc = ssh_handle_key_exchange(cn->session);
    if (rc == SSH_ERROR) {
        LOG_INFO("conn %d from %s: key exchange failed: %s", cn->id, cn->peer,
                 ssh_get_error(cn->session));
        ssh_free(cn->session);
        free(cn);
        return 0;
    }
    /* From here on libssh's state machine is driven by the event; its
     * completion shows up as authentication requests. */
    cn->ev = ssh_event_new();
    if (cn->ev == NULL || ssh_event_add_session(cn->ev, cn->session) != SSH_OK) {
        LOG_ERR("conn %d: cannot create event", cn->id);
        if (cn->ev != NULL)
            ssh_event_free(cn->ev);
        ssh_free(cn->session);
        free(cn);
        return 0;
    }
    cn->in_event = true;
    cn->next = g_conns;
    g_conns = cn;
    LOG_INFO("conn %d: connection from %s", cn->id, cn->peer);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reconcile: everything that must not run inside libssh's dispatch    */

static void reap_children(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        kid_remove(pid);
        bool found = false;
        for (struct conn *cn = g_conns; cn && !found; cn = cn->next)
            for (struct chan *c = cn->chans; c && !found; c = c->next)
                if (c->pid == pid) {
                    c->reaped = true;
                    c->wstatus = st;
                    found = true;
                    LOG_DEBUG("conn %d chan %d: reaped pid %d", cn->id, c->id, (int)pid);
                }
        if (!found)
            LOG_DEBUG("reaped orphan pid %d", (int)pid);
    }
}

static void reconcile(void)
{
    if (g_got_chld) {
        g_got_chld = false;
        reap_children();
    }
    for (struct conn **pp = &g_conns; *pp != NULL;) {
        struct conn *cn = *pp;
        int status = ssh_get_status(cn->session);
        if (!cn->dead && (status & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
            LOG_INFO("conn %d: connection closed by peer", cn->id);
            cn->dead = true;
        }
        if (cn->dead) {
            *pp = cn->next;
            LOG_INFO("conn %d: closing", cn->id);
            conn_free(cn);
            continue;
        }
        for (struct chan **cp = &cn->chans; *cp != NULL;) {
            struct chan *c = *cp;
            srv_chan_progress(c);
            if (c->dead) {
                *cp = c->next;
                LOG_INFO("conn %d chan %d: %s channel closed", cn->id, c->id,
                         srv_chan_kind_name(c->kind));
                srv_chan_free(c);
                continue;
            }
            srv_chan_update_watches(c);
            cp = &c->next;
        }
        pp = &cn->next;
    }
}

/* ------------------------------------------------------------------ */
/* Signals                                                             */

/* Signals arrive through a signalfd while blocked: an asynchronous handler
 * would interrupt libssh's internal poll() calls, and libssh 0.10 treats that
 * EINTR as a fatal session error (a key exchange in progress dies). */
static int sigfd_cb(socket_t fd, int revents, void *userdata)
{
    (void)revents;
    (void)userdata;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            g_got_chld = true;
        else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            g_stop = (int)si.ssi_signo;
    }
    return 0;
}

static void install_signals(void)
{
    /* a shell's `cmd &` starts us with SIGINT ignored, and an ignored signal
     * never reaches a signalfd */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
        (g_sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        LOG_ERR("signalfd: %s", strerror(errno));
        exit(1);
    }
    signal(SIGPIPE, SIG_IGN);
}

static void shutdown_all(void)
{
    while (g_conns != NULL) {
        struct conn *cn = g_conns;
        g_conns = cn->next;
        conn_free(cn); /* sends SIGHUP to each live child group */
    }
    for (size_t i = 0; i < g_n_kids; i++)
        srv_signal_group(g_kids[i], SIGTERM);
    for (int tries = 0; tries < 40 && g_n_kids > 0; tries++) {
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
            kid_remove(pid);
        if (g_n_kids > 0)
            usleep(50000);
    }
    for (size_t i = 0; i < g_n_kids; i++) {
        LOG_INFO("pid %d ignored SIGTERM, killing", (int)g_kids[i]);
        srv_signal_group(g_kids[i], SIGKILL);
    }
    while (g_n_kids > 0) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid < 0)
            break;
        kid_remove(pid);
    }
}

/* ------------------------------------------------------------------ */
/* Host keys, known_hosts, startup                                     */

struct keyspec {
    const char *file;
    enum ssh_keytypes_e type;
    int bits;
};

static ssh_key load_or_generate(const char *path, enum ssh_keytypes_e type, int bits)
{
    ssh_key key = NULL;
    if (access(path, F_OK) == 0) {
        if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
            LOG_ERR("%s: cannot load host key", path);
            return NULL;
        }
        LOG_DEBUG("loaded host key %s", path);
        return key;
    }
    if (type == SSH_KEYTYPE_UNKNOWN) {
        LOG_ERR("%s: no such host key", path);
        return NULL;
    }
    if (ssh_pki_generate(type, bits, &key) != SSH_OK) {
        LOG_ERR("cannot generate %s host key", ssh_key_type_to_char(type));
        return NULL;
    }
    mode_t old = umask(077);
    int rc = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
    umask(old);
    if (rc != SSH_OK) {
        LOG_ERR("%s: cannot write host key", path);
        ssh_key_free(key);
        return NULL;
    }
    LOG_INFO("generated %s host key %s", ssh_key_type_to_char(type), path);
    return key;
}

static int setup_keys(int port)
{
    ssh_key keys[8];
    int n = 0;
    char path[4096];
    if (srv_cfg.n_hostkeys > 0) {
        for (int i = 0; i < srv_cfg.n_hostkeys; i++) {
            keys[n] = load_or_generate(srv_cfg.hostkeys[i], SSH_KEYTYPE_UNKNOWN, 0);
            if (keys[n] == NULL)
                return -1;
            n++;
        }
    } else {
        static const struct keyspec specs[] = {
            {"ssh_host_ed25519_key", SSH_KEYTYPE_ED25519, 0},
            {"ssh_host_ecdsa_key", SSH_KEYTYPE_ECDSA_P256, 256},
            {"ssh_host_rsa_key", SSH_KEYTYPE_RSA, 3072},
        };
        if (mkdir(srv_cfg.keydir, 0700) < 0 && errno != EEXIST) {
            LOG_ERR("%s: %s", srv_cfg.keydir, strerror(errno));
            return -1;
        }
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", srv_cfg.keydir, specs[i].file);
            keys[n] = load_or_generate(path, specs[i].type, specs[i].bits);
            if (keys[n] == NULL)
                return -1;
            n++;
        }
    }
    snprintf(path, sizeof path, "%s/known_hosts", srv_cfg.keydir);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *kh = fopen(tmp, "w");
    if (kh == NULL) {
        LOG_ERR("%s: %s", tmp, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char *b64 = NULL;
        if (ssh_pki_export_pubkey_base64(keys[i], &b64) != SSH_OK) {
            fclose(kh);
            return -1;
        }
        const char *tname = ssh_key_type_to_char(ssh_key_type(keys[i]));
        fprintf(kh, "[127.0.0.1]:%d %s %s\n", port, tname, b64);
        ssh_string_free_char(b64);
        /* the bind takes ownership of imported keys */
        if (ssh_bind_options_set(g_bind, SSH_BIND_OPTIONS_IMPORT_KEY, keys[i]) != SSH_OK) {
            LOG_ERR("cannot use %s host key: %s", tname, ssh_get_error(g_bind));
            fclose(kh);
            return -1;
        }
    }
    if (fclose(kh) != 0 || rename(tmp, path) < 0) {
        LOG_ERR("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Gives the demo and the tests a client identity without needing
 * ssh-keygen: the key is written in OpenSSH format and authorized. */
static int setup_client_key(void)
{
    const char *path = srv_cfg.gen_client_key;
    if (access(path, F_OK) == 0)
        return 0;
    ssh_key key = NULL;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        LOG_ERR("cannot generate client key");
        return -1;
    }
    mode_t old = umask(077);
    int rc = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
    umask(old);
    char *b64 = NULL;
    if (rc != SSH_OK || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
        LOG_ERR("%s: cannot write client key", path);
        ssh_key_free(key);
        return -1;
    }
    ssh_key_free(key);
    char pub[4200];
    snprintf(pub, sizeof pub, "%s.pub", path);
    const char *targets[2] = {pub, srv_cfg.authorized_keys};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(targets[i], i == 0 ? "w" : "a");
        if (f == NULL || fprintf(f, "ssh-ed25519 %s evssh-test-client\n", b64) < 0 ||
            fclose(f) != 0) {
            LOG_ERR("%s: %s", targets[i], strerror(errno));
            ssh_string_free_char(b64);
            return -1;
        }
    }
    ssh_string_free_char(b64);
    LOG_INFO("generated client key %s and authorized it in %s", path, srv_cfg.authorized_keys);
    return 0;
}

static int open_listener(int *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_cfg.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        LOG_ERR("cannot listen on 127.0.0.1:%d: %s", srv_cfg.port, strerror(errno));
        close(fd);
        return -1;
    }
    *port_out = ntohs(sa.sin_port);
    return fd;
}

static void write_small_file(const char *path, long value)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%ld\n", value) < 0 || fclose(f) != 0 ||
        rename(tmp, path) < 0) {
        LOG_ERR("%s: %s", path, strerror(errno));
        exit(1);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: evssh-server --keydir DIR [options]\n"
            "  --port N              listen on 127.0.0.1:N (default 0: a free port)\n"
            "  --port-file FILE      also write the port number to FILE\n"
            "  --pid-file FILE       write the server pid to FILE\n"
            "  --keydir DIR          host keys (generated if absent) and known_hosts\n"
            "  --hostkey FILE        use this host key instead (repeatable)\n"
            "  --authorized-keys F   enable publickey auth against F\n"
            "  --gen-client-key F    create an ed25519 client key F (+ F.pub) if absent\n"
            "                        and add it to the --authorized-keys file\n"
            "  --password PW         enable password auth\n"
            "  --user NAME           only accept this user name (default: any)\n"
            "  --kbdint-prompts N    enable keyboard-interactive with N prompts\n"
            "  -v, -vv, -vvv         more logging on stderr (-vvv adds libssh's)\n");
}

static void parse_args(int argc, char **argv)
{
    enum { O_PORT = 256, O_PORTFILE, O_PIDFILE, O_KEYDIR, O_HOSTKEY, O_AUTHKEYS,
           O_PASSWORD, O_USER, O_KBDINT, O_GENCLIENT };
    static const struct option opts[] = {
        {"port", required_argument, NULL, O_PORT},
        {"port-file", required_argument, NULL, O_PORTFILE},
        {"pid-file", required_argument, NULL, O_PIDFILE},
        {"keydir", required_argument, NULL, O_KEYDIR},
        {"hostkey", required_argument, NULL, O_HOSTKEY},
        {"authorized-keys", required_argument, NULL, O_AUTHKEYS},
        {"password", required_argument, NULL, O_PASSWORD},
        {"gen-client-key", required_argument, NULL, O_GENCLIENT},
        {"user", required_argument, NULL, O_USER},
        {"kbdint-prompts", required_argument, NULL, O_KBDINT},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (o) {
        case O_PORT: srv_cfg.port = atoi(optarg); break;
        case O_PORTFILE: srv_cfg.port_file = optarg; break;
        case O_PIDFILE: srv_cfg.pid_file = optarg; break;
        case O_KEYDIR: srv_cfg.keydir = optarg; break;
        case O_HOSTKEY:
            if (srv_cfg.n_hostkeys < 8)
                srv_cfg.hostkeys[srv_cfg.n_hostkeys++] = optarg;
            break;
        case O_AUTHKEYS: srv_cfg.authorized_keys = optarg; break;
        case O_PASSWORD: srv_cfg.password = optarg; break;
        case O_GENCLIENT: srv_cfg.gen_client_key = optarg; break;
        case O_USER: srv_cfg.user = optarg; break;
        case O_KBDINT: srv_cfg.kbdint_prompts = atoi(optarg); break;
        case 'v': srv_cfg.verbosity++; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (srv_cfg.keydir == NULL || optind != argc || srv_cfg.port < 0 || srv_cfg.port > 65535 ||
        srv_cfg.kbdint_prompts < 0 || srv_cfg.kbdint_prompts > 16) {
        usage(stderr);
        exit(2);
    }
    if (srv_cfg.gen_client_key != NULL && srv_cfg.authorized_keys == NULL) {
        fprintf(stderr, "--gen-client-key needs --authorized-keys\n");
        exit(2);
    }
    if (srv_cfg.authorized_keys == NULL && srv_cfg.password == NULL)
        LOG_ERR("warning: no authentication method configured; nobody can log in");
    if (srv_cfg.kbdint_prompts > 0 && srv_cfg.password == NULL)
        LOG_ERR("warning: --kbdint-prompts needs --password; keyboard-interactive disabled");
}

struct pollset {
    struct pollfd *fds;
    struct conn **owner;
    size_t n, cap;
};

static void pollset_add(struct pollset *ps, int fd, short events, struct conn *owner)
{
    if (ps->n == ps->cap) {
        size_t ncap = ps->cap ? ps->cap * 2 : 64;
        struct pollfd *nf = realloc(ps->fds, ncap * sizeof *nf);
        if (nf != NULL)
            ps->fds = nf;
        struct conn **no = realloc(ps->owner, ncap * sizeof *no);
        if (no != NULL)
            ps->owner = no;
        if (nf == NULL || no == NULL) {
            LOG_ERR("out of memory");
            exit(2);
        }
        ps->cap = ncap;
    }
    ps->fds[ps->n].fd = fd;
    ps->fds[ps->n].events = events;
    ps->fds[ps->n].revents = 0;
    ps->owner[ps->n] = owner;
    ps->n++;
}

/*
 * Each connection has its own ssh_event. libssh flushes inside calls such as
 * ssh_channel_write by polling the session's event context; with one shared
 * context that nested poll would also dispatch *other* connections, and
 * another client's disconnect (-2 from its socket callback) would be
 * reported as an error of the writing session and drop its output. So this
 * top-level poll() only finds out which connections have work, and
 * ssh_event_dopoll(conn->ev, 0) dispatches each of them in isolation.
 */
static void serve(int lfd)
{
    struct pollset ps = {0};
    while (!g_stop) {
        ps.n = 0;
        pollset_add(&ps, lfd, POLLIN, NULL);
        pollset_add(&ps, g_sigfd, POLLIN, NULL);
        int timeout = 1000; /* also re-checks windows reopened without an fd event */
        for (struct conn *cn = g_conns; cn != NULL; cn = cn->next) {
            int st = ssh_get_status(cn->session);
            int sfd = ssh_get_fd(cn->session);
            if (st & SSH_READ_PENDING)
                timeout = 0;
            if (sfd >= 0)
                pollset_add(&ps, sfd, POLLIN | ((st & SSH_WRITE_PENDING) ? POLLOUT : 0), cn);
            for (struct chan *c = cn->chans; c != NULL; c = c->next)
                for (int i = 0; i < 3; i++)
                    if (c->w[i].fd >= 0 && c->w[i].reg)
                        pollset_add(&ps, c->w[i].fd, c->w[i].reg, cn);
            for (struct fwd *f = cn->fwds; f != NULL; f = f->next)
                if (f->registered)
                    pollset_add(&ps, f->fd, POLLIN, cn);
        }
        if (poll(ps.fds, ps.n, timeout) < 0 && errno != EINTR) {
            LOG_ERR("poll: %s", strerror(errno));
            break;
        }
        if (ps.fds[1].revents)
            sigfd_cb(g_sigfd, ps.fds[1].revents, NULL);
        /* connections accepted now are not in ps.owner: no stale pointers */
        struct conn *first_old = g_conns;
        for (struct conn *cn = first_old; cn != NULL; cn = cn->next)
            cn->dispatch = (ssh_get_status(cn->session) & SSH_READ_PENDING) != 0;
        for (size_t i = 2; i < ps.n; i++)
            if (ps.fds[i].revents)
                ps.owner[i]->dispatch = true;
        for (struct conn *cn = first_old; cn != NULL; cn = cn->next)
            if (cn->dispatch)
                ssh_event_dopoll(cn->ev, 0);
        if (ps.fds[0].revents)
            listen_cb(lfd, ps.fds[0].revents, NULL);
        reconcile();
    }
    free(ps.fds);
    free(ps.owner);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    install_signals();
    ssh_init();

    g_bind = ssh_bind_new();
    if (g_bind == NULL) {
        LOG_ERR("libssh initialisation failed");
        return 1;
    }
    int port = 0;
    int lfd = open_listener(&port);
    if (lfd < 0)
        return 1;
    if (setup_keys(port) < 0)
        return 1;
    if (srv_cfg.gen_client_key != NULL && setup_client_key() < 0)
        return 1;
    if (srv_cfg.pid_file != NULL)
        write_small_file(srv_cfg.pid_file, (long)getpid());
    if (srv_cfg.port_file != NULL)
        write_small_file(srv_cfg.port_file, port);
    LOG_INFO("listening on 127.0.0.1:%d", port);
    printf("PORT %d\n", port);
    fflush(stdout);

    serve(lfd);

    LOG_INFO("SIG%s received, shutting down", srv_signal_name(g_stop));
    close(lfd);
    shutdown_all();
    ssh_bind_free(g_bind);
    ssh_finalize();
    close(g_sigfd);
    free(g_kids);
    if (srv_cfg.pid_file != NULL)
        unlink(srv_cfg.pid_file);
    LOG_INFO("bye");
    return 0;
}
