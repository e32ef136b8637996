/* keyapi.c owns the public key-loading calls: a private key from a file or
 * from bytes in memory, with a passphrase given up front, and its SHA256
 * fingerprint. The parsing and decryption are keys.c's (every format
 * OpenSSH writes, encrypted ones included); bytes in memory reach it as an
 * anonymous in-memory file, never as a file on disk, and its messages name
 * what the caller called the key rather than that file. */
#include "evssh.h"

#include "base.h"
#include "hostkey.h"
#include "keys.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void fill(evssh_error *err, int code, const char *msg) {
  if (!err) return;
  err->code = code;
  base_copy_elided(err->message, sizeof err->message, msg);
}

typedef struct given_pass {
  const char *passphrase;
  bool asked;
} given_pass;

static int give_passphrase(const char *prompt, char *buf, size_t size, void *ud) {
  given_pass *g = ud;
  g->asked = true;
  if (!g->passphrase) return -1;
  size_t n = strlen(g->passphrase);
  if (n + 1 > size) return -1;
  memcpy(buf, g->passphrase, n + 1);
  return 0;
}

/* keys.c's message for a load, with `path` shown as `name` */
static void rename_in(char *msg, size_t size, const char *path, const char *name) {
  char *at = strstr(msg, path);
  if (!at) return;
  char *out = base_asprintf("%.*s%s%s", (int)(at - msg), msg, name, at + strlen(path));
  if (out) base_copy_elided(msg, size, out);
  free(out);
}

static int load(const char *path, const char *name, const char *passphrase, evssh_key **out, evssh_error *err) {
  given_pass g = {passphrase, false};
  char msg[1024] = "";
  int rc = evssh_key_load_private(path, give_passphrase, &g, out, msg, sizeof msg);
  if (rc == EVSSH_OK) {
    fill(err, EVSSH_OK, "");
    return EVSSH_OK;
  }
  *out = NULL;
  if (name) rename_in(msg, sizeof msg, path, name);
  if (rc == EVSSH_EAUTH && !passphrase)
    snprintf(msg, sizeof msg, "%s is encrypted: a passphrase is needed", name ? name : path);
  fill(err, rc, msg[0] ? msg : evssh_strerror(rc));
  return rc;
}

int evssh_key_load(const char *path, const char *passphrase, evssh_key **out, evssh_error *err) {
  if (!out || !path || !*path) {
    fill(err, EVSSH_EINVAL, "evssh_key_load: no path");
    return EVSSH_EINVAL;
  }
  return load(path, NULL, passphrase, out, err);
}

int evssh_key_load_data(const void *data, size_t len, const char *name, const char *passphrase, evssh_key **out,
                        evssh_error *err) {
  if (!out || (!data && len)) {
    fill(err, EVSSH_EINVAL, "evssh_key_load_data: no key data");
    return EVSSH_EINVAL;
  }
  *out = NULL;
  if (!name || !*name) name = "key data";
  int fd = memfd_create("evssh-key", MFD_CLOEXEC);
  if (fd < 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s: cannot hold the key in memory: %s", name, strerror(errno));
    fill(err, EVSSH_ENOMEM, msg);
    return EVSSH_ENOMEM;
  }
  const unsigned char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      close(fd);
      fill(err, EVSSH_ENOMEM, "cannot hold the key in memory");
      return EVSSH_ENOMEM;
    }
    p += w;
    left -= (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int rc = load(path, name, passphrase, out, err);
  /* the secret leaves no copy behind: the memory file is emptied, then gone */
  (void)!ftruncate(fd, 0);
  close(fd);
  return rc;
}

int evssh_key_fingerprint(const evssh_key *k, char *out, size_t outlen) {
  const unsigned char *blob;
  size_t len;
  if (!k || !out || evssh_key_public_blob(k, &blob, &len) != EVSSH_OK) return EVSSH_EINVAL;
  return evssh_fingerprint_sha256(blob, len, out, outlen);
}
