/* Fuzz target: known_hosts text and a host name from the fuzzer.
 *
 * Input: one flags byte, a host name up to the first '\n' (at most 300
 * bytes), then known_hosts text (also tried as a RevokedHostKeys list).
 * Every path must end cleanly (a verdict or an error with a message); on
 * top, the add-then-lookup oracle of issue 15 item 9: whatever the host
 * name, evssh_knownhosts_add either refuses it with a message or writes a
 * line that a lookup of that same name and port then finds (MATCH), both
 * in an empty file and appended to the fuzzed text (where only a fuzzed
 * @revoked line for the key may turn it into REVOKED), and the line it
 * wrote must not vouch for a different name.
 *
 * The two files add and check need (paths: the API takes paths) are in
 * /dev/shm when it is writable, else /tmp.
 *
 * Build and run: test/fuzz/run.sh fuzz_knownhosts (seeds in
 * test/fuzz/seeds/fuzz_knownhosts/). */
#include "cert.h"
#include "hostkey.h"
#include "knownhosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a fixed CA, host key and host certificate (ssh-keygen -s ca -h -n
   fuzz.example,*.fuzz.example host.pub), so a fuzzed @cert-authority line
   can name the CA and the certificate path runs */
static const char ca_b64[] = "AAAAC3NzaC1lZDI1NTE5AAAAIFSe0731ybQYKQfjMUSKoQKwz5j/62mhDfF72xm0q0AW";
static const char host_b64[] = "AAAAC3NzaC1lZDI1NTE5AAAAIC6H0INvIYWnTVZ3NfLOrQ7euzONevpelIiPNyDZIQHd";
static const char cert_b64[] =
    "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIEQK5g2DgxPp/hp2bicKwtA1/4LUjItbVZubDOCxJIVBAAAAIC6H0INv"
    "IYWnTVZ3NfLOrQ7euzONevpelIiPNyDZIQHdAAAAAAAAAAAAAAACAAAACWZ1enotaG9zdAAAACIAAAAMZnV6ei5leGFtcGxlAAAADiouZnV6"
    "ei5leGFtcGxlAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgVJ7TvfXJtBgpB+MxRIqhArDPmP/r"
    "aaEN8XvbGbSrQBYAAABTAAAAC3NzaC1lZDI1NTE5AAAAQGoK/GWoSqp+XePdSp18FiNAUJAFWDdbLqV55Bt6JL4qkIcu42GNaaqnG2FB0veI"
    "agBg1eONrqGJzapJquwldQ4=";

static unsigned char host_blob[64], cert_blob[1024], ca_blob[64];
static size_t host_len, cert_len, ca_len;
static char file_a[64], file_b[64];

static void decode(const char *b64, unsigned char *out, size_t cap, size_t *len) {
  if (evssh_base64_decode(b64, strlen(b64), out, cap, len) != EVSSH_OK) abort();
}

static void remove_files(void) {
  unlink(file_a);
  unlink(file_b);
}

static void setup(void) {
  decode(ca_b64, ca_blob, sizeof ca_blob, &ca_len);
  decode(host_b64, host_blob, sizeof host_blob, &host_len);
  decode(cert_b64, cert_blob, sizeof cert_blob, &cert_len);
  /* the files are rewritten several times per input: on a disk file
     system each rewrite (truncate, write, close) costs a flush, so they
     live in memory (tmpfs) where there is one */
  const char *where = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(file_a, sizeof file_a, "%s/evssh-fuzz-kh-%d-a", where, (int)getpid());
  snprintf(file_b, sizeof file_b, "%s/evssh-fuzz-kh-%d-b", where, (int)getpid());
  atexit(remove_files);
}

static void write_file(const char *path, const unsigned char *data, size_t len) {
  FILE *f = fopen(path, "w");
  if (!f) abort();
  if (len && fwrite(data, 1, len, f) != len) abort();
  fclose(f);
}

static int lookup(const char *file, const char *host, int port, const unsigned char *blob, size_t len) {
  const char *files[] = {file};
  evssh_kh_result r;
  char err[256] = "";
  int rc = evssh_knownhosts_check(files, 1, host, port, NULL, blob, len, &r, err, sizeof err);
  if (rc != EVSSH_OK) {
    if (!err[0]) abort(); /* failures must say why */
    return -1;
  }
  if (r.status < EVSSH_KH_MATCH || r.status > EVSSH_KH_REVOKED) abort();
  return r.status;
}

/* a name a literal reading of host would match if it were written as a
   pattern: every '*' and '?' replaced by 'x' */
static bool pattern_twin(const char *host, char *out, size_t outlen) {
  bool changed = false;
  size_t i = 0;
  for (; host[i] && i + 1 < outlen; i++) {
    out[i] = host[i] == '*' || host[i] == '?' ? 'x' : host[i];
    changed = changed || out[i] != host[i];
  }
  out[i] = 0;
  return changed;
}

static void add_then_lookup(const char *host, int port, bool hashed, const unsigned char *text, size_t text_len) {
  char err[256] = "";
  /* an empty file first: what add writes must be found, exactly */
  write_file(file_a, NULL, 0);
  int rc = evssh_knownhosts_add(file_a, host, port, host_blob, host_len, hashed, err, sizeof err);
  if (rc != EVSSH_OK) {
    if (!err[0]) abort();
    return;
  }
  if (lookup(file_a, host, port, host_blob, host_len) != EVSSH_KH_MATCH) abort();
  /* and it vouches for no other name a pattern reading would let in */
  char twin[400];
  if (pattern_twin(host, twin, sizeof twin) && strcmp(twin, host) != 0 && twin[0] &&
      lookup(file_a, twin, port, host_blob, host_len) == EVSSH_KH_MATCH)
    abort();
  /* appended to the fuzzed text: found, unless that text revokes the key */
  write_file(file_b, text, text_len);
  err[0] = 0;
  if (evssh_knownhosts_add(file_b, host, port, host_blob, host_len, hashed, err, sizeof err) != EVSSH_OK) abort();
  int st = lookup(file_b, host, port, host_blob, host_len);
  if (st != EVSSH_KH_MATCH && st != EVSSH_KH_REVOKED) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static bool ready;
  if (!ready) {
    setup();
    ready = true;
  }
  if (size < 1) return 0;
  unsigned flags = data[0];
  data++;
  size--;
  const unsigned char *nl = memchr(data, '\n', size < 300 ? size : 300);
  size_t hl = nl ? (size_t)(nl - data) : (size < 300 ? size : 300);
  char host[301];
  memcpy(host, data, hl);
  host[hl] = 0;
  const unsigned char *text = data + hl + (nl ? 1 : 0);
  size_t text_len = size - hl - (nl ? 1 : 0);
  int port = flags & 1 ? 22 : 2222;
  const char *addr = flags & 2 ? "10.0.0.1" : NULL;

  evssh_known_hosts *kh = NULL;
  char err[256] = "";
  int rc = evssh_knownhosts_load_text((const char *)text, text_len, "fuzz", host, port, addr, &kh, err, sizeof err);
  if (rc != EVSSH_OK) {
    if (!err[0]) abort();
  } else {
    evssh_kh_result r;
    const unsigned char *blobs[] = {host_blob, cert_blob, ca_blob};
    size_t lens[] = {host_len, cert_len, ca_len};
    for (int i = 0; i < 3; i++) {
      err[0] = 0;
      if (evssh_knownhosts_lookup(kh, blobs[i], lens[i], &r, err, sizeof err) != EVSSH_OK && !err[0]) abort();
    }
    evssh_hostcert_result hc;
    err[0] = 0;
    if (evssh_knownhosts_check_hostcert(kh, cert_blob, cert_len, 1700000000, &hc, err, sizeof err) == EVSSH_OK) {
      if (hc.status < EVSSH_HOSTCERT_ACCEPT || hc.status > EVSSH_HOSTCERT_REVOKED || !hc.message[0]) abort();
      /* accepted only for a name the certificate lists */
      if (hc.status == EVSSH_HOSTCERT_ACCEPT && strcasecmp(host, "fuzz.example") != 0 &&
          !(strlen(host) >= 13 && strcasecmp(host + strlen(host) - 13, ".fuzz.example") == 0))
        abort();
    } else if (!err[0]) {
      abort();
    }
    char *types = NULL;
    if (evssh_knownhosts_loaded_types(kh, &types) == EVSSH_OK) free(types);
    (void)evssh_knownhosts_has_cert_authority(kh);
    if (flags & 4) {
      write_file(file_a, text, text_len);
      err[0] = 0;
      if (evssh_knownhosts_load_revoked(kh, file_a, err, sizeof err) != EVSSH_OK && !err[0]) abort();
      if (evssh_knownhosts_lookup(kh, host_blob, host_len, &r, err, sizeof err) != EVSSH_OK) abort();
    }
    evssh_knownhosts_free(kh);
  }
  add_then_lookup(host, port, flags & 8, text, text_len);
  return 0;
}
