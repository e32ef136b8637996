/* The session and key calls a binding needs beside the connect (the Ruby
 * gem's Net::SSH surface), against a real OpenSSH sshd: a connection the
 * program made (evssh_session_set_fd), the server's version string, a rekey
 * on demand, the errno behind a failed connect, the lists of algorithm
 * names, loading keys from files and from memory (encrypted ones too), and
 * the ssh_config options that used to be accepted and ignored:
 * BindAddress, AddressFamily, SendEnv and SetEnv (each seen by the server:
 * SSH_CONNECTION, the command's environment). Skips (77) without sshd.
 * One case: CK_RUN_CASE=env make check TESTS=test/test_session_api. */
#include "evssh.h"
#include "harness.h"
#include "hostkey.h"
#include "session.h"
#include "transport.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static harness_peer peer;

/* `extra` (NULL-terminated keyword, value pairs; may be NULL), then the
   fixture's options: the first value of a keyword wins */
static evssh_session *new_session(const char *host, const char *const *extra) {
  char port[32], kh[700], id[700];
  snprintf(port, sizeof port, "%d", peer.port);
  snprintf(kh, sizeof kh, "%s", peer.known_hosts);
  snprintf(id, sizeof id, "%s", peer.key_ed25519);
  evssh_session *s = evssh_session_new(host);
  ck_assert_ptr_nonnull(s);
  for (size_t i = 0; extra && extra[i]; i += 2) {
    int rc = evssh_session_option(s, extra[i], extra[i + 1]);
    ck_assert_msg(rc == 0, "%s=%s: %s", extra[i], extra[i + 1], evssh_session_error(s));
  }
  const char *kv[][2] = {{"User", peer.user},       {"Port", port},
                         {"UserKnownHostsFile", kh}, {"IdentityFile", id},
                         {"IdentitiesOnly", "yes"},  {"GlobalKnownHostsFile", "/dev/null"},
                         {"ConfigFile", "none"},     {"IdentityAgent", "none"}};
  for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) ck_assert_int_eq(evssh_session_option(s, kv[i][0], kv[i][1]), 0);
  return s;
}

static evssh_session *connected(const char *const *extra) {
  evssh_session *s = new_session("127.0.0.1", extra);
  int rc = evssh_session_connect(s);
  ck_assert_msg(rc == 0, "connect: %s", evssh_session_error(s));
  return s;
}

/* stdout of `command`, trailing newline dropped, into out */
static void run(evssh_session *s, const char *command, char *out, size_t outlen) {
  evssh_result r;
  int rc = evssh_session_exec_wait(s, command, &r);
  ck_assert_msg(rc == 0, "exec %s: %s", command, evssh_session_error(s));
  snprintf(out, outlen, "%s", r.out);
  size_t n = strlen(out);
  if (n && out[n - 1] == '\n') out[n - 1] = 0;
  evssh_result_free(&r);
}

static int tcp_to_fixture(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)peer.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* ------------------------------------------------------------ set_fd */

START_TEST(test_set_fd) {
  /* a ProxyCommand that would fail is not used once the program gave the
     connection */
  const char *extra[] = {"ProxyCommand", "exit 3", NULL};
  evssh_session *s = new_session("127.0.0.1", extra);
  int fd = tcp_to_fixture();
  ck_assert_int_eq(evssh_session_set_fd(s, -1), EVSSH_EINVAL);
  ck_assert_int_eq(evssh_session_set_fd(s, fd), EVSSH_OK);
  ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
  int rc = evssh_session_connect(s);
  ck_assert_msg(rc == 0, "connect over the given fd: %s", evssh_session_error(s));
  ck_assert_int_eq(evssh_session_fd(s), fd);
  ck_assert_int_eq(evssh_session_set_fd(s, fd), EVSSH_EBUSY);
  char out[256];
  run(s, "echo ok", out, sizeof out);
  ck_assert_str_eq(out, "ok");
  evssh_session_close(s);
  evssh_session_free(s);
  /* the session owned it */
  ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
  ck_assert_int_eq(errno, EBADF);

  /* given and never connected over: freed with the session */
  s = new_session("127.0.0.1", NULL);
  fd = tcp_to_fixture();
  ck_assert_int_eq(evssh_session_set_fd(s, fd), EVSSH_OK);
  evssh_session_free(s);
  ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

/* The server end of a socketpair relayed to sshd by a child process: the
   stream need not be a socket to the server itself. */
START_TEST(test_set_fd_socketpair) {
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int tcp = tcp_to_fixture();
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(sv[0]);
    char buf[16384];
    /* one direction per process */
    if (fork() == 0) {
      ssize_t n;
      while ((n = read(sv[1], buf, sizeof buf)) > 0)
        if (write(tcp, buf, (size_t)n) != n) break;
      shutdown(tcp, SHUT_WR);
      _exit(0);
    }
    ssize_t n;
    while ((n = read(tcp, buf, sizeof buf)) > 0)
      if (write(sv[1], buf, (size_t)n) != n) break;
    _exit(0);
  }
  close(sv[1]);
  close(tcp);
  evssh_session *s = new_session("127.0.0.1", NULL);
  ck_assert_int_eq(evssh_session_set_fd(s, sv[0]), EVSSH_OK);
  int rc = evssh_session_connect(s);
  ck_assert_msg(rc == 0, "connect over a socketpair: %s", evssh_session_error(s));
  char out[256];
  run(s, "echo via-pair", out, sizeof out);
  ck_assert_str_eq(out, "via-pair");
  evssh_session_close(s);
  evssh_session_free(s);
  waitpid(pid, NULL, 0);
}
END_TEST

/* ------------------------------------------- version, rekey, errno */

START_TEST(test_server_version_and_rekey) {
  evssh_session *fresh = new_session("127.0.0.1", NULL);
  ck_assert_ptr_null(evssh_session_server_version(fresh));
  ck_assert_int_eq(evssh_session_rekey(fresh), EVSSH_EINVAL);
  ck_assert(!evssh_session_rekeying(fresh));
  evssh_session_free(fresh);

  evssh_session *s = connected(NULL);
  const char *v = evssh_session_server_version(s);
  ck_assert_ptr_nonnull(v);
  ck_assert_msg(strncmp(v, "SSH-2.0-OpenSSH_", 16) == 0, "version %s", v);
  ck_assert_ptr_null(strchr(v, '\r'));
  ck_assert_ptr_null(strchr(v, '\n'));

  uint64_t before = transport_kex_count(session_transport(s));
  ck_assert(!evssh_session_rekeying(s));
  ck_assert_int_eq(evssh_session_rekey(s), EVSSH_OK);
  ck_assert(evssh_session_rekeying(s));
  ck_assert_int_eq(evssh_session_rekey(s), EVSSH_OK);   /* already running: not a second one */
  for (int i = 0; i < 2000 && evssh_session_rekeying(s); i++) ck_assert_int_ge(evssh_session_process(s, 50, NULL, NULL), 0);
  ck_assert(!evssh_session_rekeying(s));
  ck_assert_uint_eq(transport_kex_count(session_transport(s)), before + 1);
  char out[64];
  run(s, "echo after-rekey", out, sizeof out);
  ck_assert_str_eq(out, "after-rekey");
  evssh_session_close(s);
  ck_assert_int_eq(evssh_session_rekey(s), EVSSH_ECLOSED);
  ck_assert(!evssh_session_rekeying(s));
  evssh_session_free(s);
}
END_TEST

START_TEST(test_sys_errno) {
  /* a port nobody listens on */
  int lfd = harness_listen_loopback(&(int){0});
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  getsockname(lfd, (struct sockaddr *)&a, &al);
  close(lfd);
  char port[16];
  snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_int_eq(evssh_session_sys_errno(s), 0);
  evssh_session_option(s, "Port", port);
  evssh_session_option(s, "ConfigFile", "none");
  ck_assert_int_eq(evssh_session_connect(s), EVSSH_ECONNECT);
  ck_assert_int_eq(evssh_session_sys_errno(s), ECONNREFUSED);
  evssh_session_free(s);

  /* a name that does not resolve is no system call's failure */
  s = evssh_session_new("no-such-host.invalid");
  evssh_session_option(s, "ConfigFile", "none");
  ck_assert_int_eq(evssh_session_connect(s), EVSSH_ECONNECT);
  ck_assert_int_eq(evssh_session_sys_errno(s), 0);
  evssh_session_free(s);
  ck_assert_int_eq(evssh_session_sys_errno(NULL), 0);
}
END_TEST

/* -------------------------------------------------------- algorithms */

static bool in_list(const char *list, const char *name, size_t n) {
  for (const char *p = list; p && *p;) {
    size_t l = strcspn(p, ",");
    if (l == n && memcmp(p, name, n) == 0) return true;
    p += l + (p[l] == ',');
  }
  return false;
}

START_TEST(test_algorithm_lists) {
  const char *kinds[] = {"kex", "hostkey", "cipher", "mac", "pubkey", "compression"};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
    const char *sup = evssh_supported_algorithms(kinds[i]), *def = evssh_default_algorithms(kinds[i]);
    ck_assert_msg(sup && *sup && def && *def, "%s", kinds[i]);
    for (const char *p = def; *p;) {
      size_t l = strcspn(p, ",");
      ck_assert_msg(in_list(sup, p, l), "default %.*s of %s is not supported", (int)l, p, kinds[i]);
      p += l + (p[l] == ',');
    }
    /* what an option takes: the whole supported list is a valid value */
    static const char *const keyword[] = {"KexAlgorithms", "HostKeyAlgorithms", "Ciphers", "MACs",
                                          "PubkeyAcceptedAlgorithms", NULL};
    if (keyword[i]) {
      evssh_session *s = evssh_session_new("h");
      ck_assert_msg(evssh_session_option(s, keyword[i], sup) == 0, "%s", evssh_session_error(s));
      evssh_session_free(s);
    }
  }
  ck_assert(in_list(evssh_supported_algorithms("cipher"), "aes128-ctr", 10));
  ck_assert(in_list(evssh_supported_algorithms("kex"), "mlkem768x25519-sha256", 21));
  ck_assert(in_list(evssh_supported_algorithms("hostkey"), "ssh-rsa", 7));
  ck_assert(!in_list(evssh_default_algorithms("hostkey"), "ssh-rsa", 7));
  ck_assert_ptr_null(evssh_supported_algorithms("bogus"));
  ck_assert_ptr_null(evssh_supported_algorithms(NULL));
  ck_assert_ptr_null(evssh_default_algorithms("cipher_c2s"));
}
END_TEST

/* --------------------------------------------------------------- keys */

/* ssh-keygen's fingerprint of a key file */
static void keygen_fingerprint(const char *path, char *out, size_t outlen) {
  char cmd[800];
  snprintf(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f '%s'", path);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  char line[512] = "";
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  pclose(f);
  ck_assert_int_eq(sscanf(line, "%*d %127s", out), 1);
  (void)outlen;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  char *buf = malloc(65536);
  *len = fread(buf, 1, 65536, f);
  fclose(f);
  return buf;
}

static void check_signs(evssh_key *k, const char *alg) {
  static const unsigned char msg[] = "data to be signed";
  evssh_buf *sig = evssh_buf_new();
  ck_assert_int_eq(evssh_key_sign(k, alg, msg, sizeof msg, sig), EVSSH_OK);
  const unsigned char *blob;
  size_t blen;
  ck_assert_int_eq(evssh_key_public_blob(k, &blob, &blen), EVSSH_OK);
  char err[200] = "";
  int rc = evssh_hostkey_verify(blob, blen, alg, evssh_buf_data(sig), evssh_buf_len(sig), msg, sizeof msg, err,
                                sizeof err);
  ck_assert_msg(rc == 0, "signature by %s does not verify: %s", alg, err);
  evssh_buf_free(sig);
}

START_TEST(test_key_load) {
  evssh_error err;
  evssh_key *k = NULL;
  ck_assert_int_eq(evssh_key_load(peer.key_ed25519, NULL, &k, &err), EVSSH_OK);
  ck_assert_str_eq(evssh_key_type(k), "ssh-ed25519");
  char fp[64], want[128];
  ck_assert_int_eq(evssh_key_fingerprint(k, fp, sizeof fp), EVSSH_OK);
  keygen_fingerprint(peer.key_ed25519, want, sizeof want);
  ck_assert_str_eq(fp, want);
  ck_assert_int_eq(evssh_key_fingerprint(k, fp, 10), EVSSH_EINVAL);
  check_signs(k, "ssh-ed25519");
  evssh_key_free(k);

  /* the same bytes from memory */
  size_t len;
  char *data = slurp(peer.key_rsa, &len);
  ck_assert_int_eq(evssh_key_load_data(data, len, "my-rsa", NULL, &k, &err), EVSSH_OK);
  ck_assert_str_eq(evssh_key_type(k), "ssh-rsa");
  keygen_fingerprint(peer.key_rsa, want, sizeof want);
  evssh_key_fingerprint(k, fp, sizeof fp);
  ck_assert_str_eq(fp, want);
  check_signs(k, "rsa-sha2-512");
  evssh_buf *b = evssh_buf_new();
  ck_assert_int_eq(evssh_key_sign(k, "ssh-ed25519", (const unsigned char *)"x", 1, b), EVSSH_EINVAL);
  evssh_buf_free(b);
  evssh_key_free(k);
  free(data);

  /* not a key: the message names what the caller called it */
  ck_assert_int_eq(evssh_key_load_data("garbage\n", 8, "my-garbage", NULL, &k, &err), EVSSH_EINVAL);
  ck_assert_ptr_null(k);
  ck_assert_msg(strstr(err.message, "my-garbage") && !strstr(err.message, "/proc/"), "%s", err.message);
  ck_assert_int_eq(evssh_key_load("/nonexistent/key", NULL, &k, &err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/key"));
}
END_TEST

START_TEST(test_key_load_encrypted) {
  char dir[] = "/tmp/evssh-keyapi-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  const char *types[] = {"ed25519", "ecdsa", "rsa"};
  const char *algs[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-256"};
  for (int i = 0; i < 3; i++) {
    char path[600], cmd[900];
    snprintf(path, sizeof path, "%s/%s", dir, types[i]);
    snprintf(cmd, sizeof cmd, "ssh-keygen -q -t %s -N 'sesame seed' -C 'a comment' -f '%s' </dev/null", types[i], path);
    ck_assert_int_eq(system(cmd), 0);
    evssh_error err;
    evssh_key *k = NULL;
    ck_assert_int_eq(evssh_key_load(path, NULL, &k, &err), EVSSH_EAUTH);
    ck_assert_msg(strstr(err.message, "passphrase"), "%s", err.message);
    ck_assert_int_eq(evssh_key_load(path, "wrong", &k, &err), EVSSH_EAUTH);
    ck_assert_ptr_null(k);
    ck_assert_msg(evssh_key_load(path, "sesame seed", &k, &err) == 0, "%s: %s", types[i], err.message);
    char fp[64], want[128];
    evssh_key_fingerprint(k, fp, sizeof fp);
    keygen_fingerprint(path, want, sizeof want);
    ck_assert_str_eq(fp, want);
    check_signs(k, algs[i]);
    evssh_key_free(k);
    size_t len;
    char *data = slurp(path, &len);
    ck_assert_int_eq(evssh_key_load_data(data, len, NULL, "sesame seed", &k, &err), EVSSH_OK);
    evssh_key_free(k);
    ck_assert_int_eq(evssh_key_load_data(data, len, NULL, NULL, &k, &err), EVSSH_EAUTH);
    ck_assert_ptr_nonnull(strstr(err.message, "key data"));
    free(data);
    unlink(path);
    snprintf(cmd, sizeof cmd, "%s.pub", path);
    unlink(cmd);
  }
  /* an unencrypted openssh-key-v1 file carries its comment */
  char path[600], cmd[900];
  snprintf(path, sizeof path, "%s/plain", dir);
  snprintf(cmd, sizeof cmd, "ssh-keygen -q -t ed25519 -N '' -C 'a comment' -f '%s' </dev/null", path);
  ck_assert_int_eq(system(cmd), 0);
  evssh_error err;
  evssh_key *k = NULL;
  ck_assert_int_eq(evssh_key_load(path, NULL, &k, &err), EVSSH_OK);
  ck_assert_str_eq(evssh_key_comment(k), "a comment");
  evssh_key_free(k);
  unlink(path);
  snprintf(cmd, sizeof cmd, "%s.pub", path);
  unlink(cmd);
  rmdir(dir);
}
END_TEST

/* ------------------------------------- BindAddress, AddressFamily */

START_TEST(test_bind_address) {
  const char *bind[] = {"BindAddress", "127.0.0.2", NULL};
  evssh_session *s = connected(bind);
  char out[256];
  run(s, "echo $SSH_CONNECTION", out, sizeof out);
  ck_assert_msg(strncmp(out, "127.0.0.2 ", 10) == 0, "SSH_CONNECTION %s", out);
  evssh_session_close(s);
  evssh_session_free(s);

  /* an address that is not ours: the connect fails saying so */
  const char *foreign[] = {"BindAddress", "192.0.2.7", NULL};
  s = new_session("127.0.0.1", foreign);
  ck_assert_int_eq(evssh_session_connect(s), EVSSH_ECONNECT);
  ck_assert_int_eq(evssh_session_sys_errno(s), EADDRNOTAVAIL);
  ck_assert_msg(strstr(evssh_session_error(s), "BindAddress 192.0.2.7"), "%s", evssh_session_error(s));
  evssh_session_free(s);

  /* of the wrong family for the server's address */
  const char *v6[] = {"BindAddress", "::1", NULL};
  s = new_session("127.0.0.1", v6);
  ck_assert_int_eq(evssh_session_connect(s), EVSSH_ECONNECT);
  ck_assert_msg(strstr(evssh_session_error(s), "another address family"), "%s", evssh_session_error(s));
  evssh_session_free(s);

  /* a name would need a blocking lookup: refused, named */
  const char *name[] = {"BindAddress", "localhost", NULL};
  s = new_session("127.0.0.1", name);
  ck_assert_int_eq(evssh_session_connect(s), EVSSH_EINVAL);
  ck_assert_msg(strstr(evssh_session_error(s), "BindAddress localhost"), "%s", evssh_session_error(s));
  evssh_session_free(s);
}
END_TEST

START_TEST(test_address_family) {
  /* localhost resolves to ::1 as well; inet keeps to 127.0.0.1, where sshd listens */
  char kh[] = "/tmp/evssh-af-kh-XXXXXX";
  close(mkstemp(kh));
  const char *inet[] = {"AddressFamily", "inet", "StrictHostKeyChecking", "accept-new", "UserKnownHostsFile", kh,
                        NULL};
  evssh_session *s = new_session("localhost", inet);
  int rc = evssh_session_connect(s);
  ck_assert_msg(rc == 0, "inet: %s", evssh_session_error(s));
  char out[256];
  run(s, "echo $SSH_CONNECTION", out, sizeof out);
  ck_assert_msg(strncmp(out, "127.0.0.1 ", 10) == 0, "SSH_CONNECTION %s", out);
  evssh_session_free(s);
  unlink(kh);

  const char *inet6[] = {"AddressFamily", "inet6", NULL};
  s = new_session("127.0.0.1", inet6);
  ck_assert_int_eq(evssh_session_connect(s), EVSSH_ECONNECT);
  ck_assert_msg(strstr(evssh_session_error(s), "127.0.0.1"), "%s", evssh_session_error(s));
  evssh_session_free(s);
}
END_TEST

/* ------------------------------------------------- SendEnv, SetEnv */

typedef struct own_exec {
  char out[256];
  bool closed;
} own_exec;

static void own_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  own_exec *o = ud;
  strncat(o->out, d, n < sizeof o->out - strlen(o->out) - 1 ? n : sizeof o->out - strlen(o->out) - 1);
}
static void own_close(evssh_channel *ch, void *ud) { ((own_exec *)ud)->closed = true; }
static bool own_open(evssh_session *s, void *ud) { return !((own_exec *)ud)->closed; }

START_TEST(test_send_env_and_set_env) {
  setenv("EVSSH_T_ALPHA", "alpha one", 1);
  setenv("EVSSH_T_BETA", "beta", 1);
  setenv("EVSSH_T_GONE", "must not arrive", 1);
  setenv("OTHER_T_VAR", "not accepted", 1);
  /* as ssh's readconf, "-P" drops the patterns before it that P matches */
  const char *env[] = {"SendEnv", "EVSSH_T_A* EVSSH_T_B?TA EVSSH_T_GONE -EVSSH_T_G* OTHER_T_VAR", "SetEnv",
                       "EVSSH_T_SET=\"set value\" EVSSH_T_BETA=overridden", NULL};
  evssh_session *s = connected(env);
  char out[256];
  run(s, "echo \"$EVSSH_T_ALPHA/$EVSSH_T_BETA/${EVSSH_T_GONE-unset}/$EVSSH_T_SET/${OTHER_T_VAR-unset}\"", out,
      sizeof out);
  /* SetEnv comes after SendEnv, so its BETA wins; OTHER_T_VAR is sent
     but sshd's AcceptEnv refuses it */
  ck_assert_str_eq(out, "alpha one/overridden/unset/set value/unset");

  /* a session channel the program opens gets them too, before its exec */
  own_exec o = {"", false};
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_data(ch, own_data, &o);
  evssh_channel_on_close(ch, own_close, &o);
  ck_assert_int_eq(evssh_channel_exec(ch, "echo \"$EVSSH_T_ALPHA\"", NULL, NULL), 0);
  evssh_channel_eof(ch);
  ck_assert_int_ge(evssh_session_loop(s, -1, own_open, &o), 0);
  ck_assert_str_eq(o.out, "alpha one\n");
  evssh_session_close(s);
  evssh_session_free(s);

  /* without the options nothing is sent */
  s = connected(NULL);
  run(s, "echo \"${EVSSH_T_ALPHA-unset}\"", out, sizeof out);
  ck_assert_str_eq(out, "unset");
  evssh_session_free(s);
}
END_TEST

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&peer, "AcceptEnv EVSSH_T_*") != 0) return 1;
  Suite *s = suite_create("session_api");
  TCase *tc = tcase_create("connect");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_set_fd);
  tcase_add_test(tc, test_set_fd_socketpair);
  tcase_add_test(tc, test_server_version_and_rekey);
  tcase_add_test(tc, test_sys_errno);
  tcase_add_test(tc, test_bind_address);
  tcase_add_test(tc, test_address_family);
  suite_add_tcase(s, tc);
  TCase *tk = tcase_create("keys");
  tcase_set_timeout(tk, 120);
  tcase_add_test(tk, test_algorithm_lists);
  tcase_add_test(tk, test_key_load);
  tcase_add_test(tk, test_key_load_encrypted);
  suite_add_tcase(s, tk);
  TCase *te = tcase_create("env");
  tcase_set_timeout(te, 120);
  tcase_add_test(te, test_send_env_and_set_env);
  suite_add_tcase(s, te);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
