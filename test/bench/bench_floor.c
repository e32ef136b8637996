/* bench_floor: the crypto floor of one connection, measured in process.
 * A curve25519-sha256 + ssh-ed25519 host key + ed25519 user key session
 * needs, on the client, three public-key operations that no cache may take
 * away (each is over that session's own secrets or exchange hash): an
 * X25519 key generation and derive, an Ed25519 verification of the
 * server's signature over the exchange hash, and an Ed25519 signature for
 * user authentication. This times N of each through the same OpenSSL 3.0
 * calls src/kex.c, src/hostkey.c and src/keys.c make (a fresh ephemeral
 * key every time, the peer's public value checked, a fresh verify context
 * per signature), and prints the CPU (getrusage) per session. Whatever a
 * client does besides, with this OpenSSL it cannot spend less per session
 * than this; floor / (a peer's CPU per session from bench_multi) is the
 * lowest ratio any client doing these operations could reach against it.
 *
 *   test/bench/bench_floor [N] [cold]       (default 2000)
 *
 * "cold" also runs the interleaved loop with 32 MiB of other memory
 * written between sessions, outside the timed part (the thread's CPU
 * clock around the three operations only): a real session's operations
 * run after a wait in which sshd and the kernel had the CPU and its
 * caches, and this shows what that costs the same calls.
 *
 * The server's halves (its ephemeral key, its signatures) are made before
 * the clock starts. Not a test: it prints figures and asserts nothing
 * beyond every operation succeeding. */
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SIGNED_LEN 32     /* H of curve25519-sha256 */
#define AUTH_DATA_LEN 150 /* session id + a publickey request, about */

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "bench_floor: %s failed\n", what);
  exit(1);
}

/* the server's ephemeral public values and host-key signatures */
typedef struct server_side {
  unsigned char q_s[32];
  unsigned char host_pub[32];
  unsigned char h[SIGNED_LEN];
  unsigned char sig[64];
} server_side;

static void make_server_side(EVP_PKEY *host, server_side *sv) {
  EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
  size_t n = 32;
  if (!eph || EVP_PKEY_get_raw_public_key(eph, sv->q_s, &n) != 1) die("server keygen");
  EVP_PKEY_free(eph);
  n = 32;
  if (EVP_PKEY_get_raw_public_key(host, sv->host_pub, &n) != 1) die("host key");
  if (RAND_bytes(sv->h, sizeof sv->h) != 1) die("RAND_bytes");
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  size_t sl = sizeof sv->sig;
  if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, host) != 1 ||
      EVP_DigestSign(ctx, sv->sig, &sl, sv->h, sizeof sv->h) != 1 || sl != 64)
    die("host signature");
  EVP_MD_CTX_free(ctx);
}

/* kex.c's x25519_keygen + derive_secret */
static void x25519(const server_side *sv) {
  EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
  unsigned char q_c[32], secret[32];
  size_t n = 32;
  if (!eph || EVP_PKEY_get_raw_public_key(eph, q_c, &n) != 1) die("X25519 keygen");
  EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, sv->q_s, 32);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
  n = sizeof secret;
  if (!peer || !ctx || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) != 1 ||
      EVP_PKEY_derive(ctx, secret, &n) != 1 || n != 32)
    die("X25519 derive");
  OPENSSL_cleanse(secret, sizeof secret);
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  EVP_PKEY_free(eph);
}

/* hostkey.c's evssh_hostkey_verify for ssh-ed25519: the key from its blob,
   a verify context per signature */
static void ed25519_verify(const server_side *sv) {
  EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sv->host_pub, 32);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  if (!pk || !ctx || EVP_DigestVerifyInit_ex(ctx, &pctx, NULL, NULL, NULL, pk, NULL) != 1 ||
      EVP_DigestVerify(ctx, sv->sig, sizeof sv->sig, sv->h, sizeof sv->h) != 1)
    die("Ed25519 verify");
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pk);
}

/* keys.c's evssh_key_sign for an ed25519 key held (cached) by the process */
static void ed25519_sign(EVP_PKEY *user, const unsigned char *data) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t sl = 0;
  if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, user) != 1 ||
      EVP_DigestSign(ctx, NULL, &sl, data, AUTH_DATA_LEN) != 1 || sl != 64 ||
      EVP_DigestSign(ctx, sig, &sl, data, AUTH_DATA_LEN) != 1)
    die("Ed25519 sign");
  EVP_MD_CTX_free(ctx);
}

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  int cold = argc > 2 && strcmp(argv[2], "cold") == 0;
  if (n < 1) n = 1;
  EVP_PKEY *host = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  EVP_PKEY *user = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  if (!host || !user) die("Ed25519 keygen");
  server_side *sv = calloc((size_t)n, sizeof *sv);
  unsigned char data[AUTH_DATA_LEN];
  if (!sv || RAND_bytes(data, sizeof data) != 1) die("setup");
  for (int i = 0; i < n; i++) make_server_side(host, &sv[i]);
  /* warm-up: OpenSSL's first fetches of each algorithm stay out */
  x25519(&sv[0]);
  ed25519_verify(&sv[0]);
  ed25519_sign(user, data);

  double t0 = cpu_s();
  for (int i = 0; i < n; i++) x25519(&sv[i]);
  double t1 = cpu_s();
  for (int i = 0; i < n; i++) ed25519_verify(&sv[i]);
  double t2 = cpu_s();
  for (int i = 0; i < n; i++) ed25519_sign(user, data);
  double t3 = cpu_s();
  /* and the three together, in a session's order, as a cross-check */
  for (int i = 0; i < n; i++) {
    x25519(&sv[i]);
    ed25519_verify(&sv[i]);
    ed25519_sign(user, data);
  }
  double t4 = cpu_s();
  double cold_s = 0;
  if (cold) {
    size_t big = 32u << 20;
    unsigned char *junk = malloc(big);
    if (!junk) die("malloc");
    for (int i = 0; i < n; i++) {
      memset(junk, i, big);   /* evicts the caches, as a wait for the server does */
      double c0 = thread_cpu_s();
      x25519(&sv[i]);
      ed25519_verify(&sv[i]);
      ed25519_sign(user, data);
      cold_s += thread_cpu_s() - c0;
    }
    free(junk);
  }

  printf("crypto floor of one curve25519-sha256 + ssh-ed25519 + ed25519-publickey session, %s, %d sessions\n",
         OpenSSL_version(OPENSSL_VERSION), n);
  printf("%-38s %10s\n", "operation (client side)", "ms/session");
  printf("%-38s %10.4f\n", "X25519 keygen + derive", 1e3 * (t1 - t0) / n);
  printf("%-38s %10.4f\n", "Ed25519 verify (host-key signature)", 1e3 * (t2 - t1) / n);
  printf("%-38s %10.4f\n", "Ed25519 sign (user auth)", 1e3 * (t3 - t2) / n);
  printf("%-38s %10.4f\n", "sum", 1e3 * (t3 - t0) / n);
  printf("%-38s %10.4f\n", "all three per session, interleaved", 1e3 * (t4 - t3) / n);
  if (cold) printf("%-38s %10.4f\n", "the same, caches cold before each", 1e3 * cold_s / n);
  free(sv);
  EVP_PKEY_free(host);
  EVP_PKEY_free(user);
  return 0;
}
