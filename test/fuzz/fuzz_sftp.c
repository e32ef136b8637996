/* Fuzz target: arbitrary bytes from the "server" into the SFTP client: the
 * VERSION packet and its extension list, limits@openssh.com, then replies
 * to a fixed set of requests made once the sftp is ready (stat, opendir
 * and readdir, open/read/fstat/close, realpath, readlink, statvfs,
 * users-groups-by-id, a raw extension, a listing, a download, an upload
 * and a tree download), and the channel ending at any point. The channel
 * layer is faked here (the client only uses the public channel API), so
 * the SFTP framing, request table, attribute and name decoding, the
 * transfer machines and the tree walk see exactly the bytes the fuzzer
 * chooses. Whatever arrives, the client must fail with a message or carry
 * on, never crash, read out of bounds or leak.
 *
 * Input: byte 0 picks the slice size the rest is fed in (1..256), byte 1
 * bit 0 refuses the subsystem, bit 1 ends the channel after the last slice.
 *
 * Built and run by test/fuzz/run.sh (make check runs its smoke mode)
 * against the library's objects in an archive: the fakes below are defined
 * here first, so the linker never pulls in the real channel layer (every
 * channel or session call the sftp files make must have a fake here).
 * Seeds: test/fuzz/seeds/fuzz_sftp/. */
#include "evssh.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------ the fake channel layer */

struct evssh_session {
  int unused;
};

struct evssh_channel {
  evssh_data_cb on_data;
  void *data_ud;
  evssh_ext_data_cb on_ext;
  void *ext_ud;
  evssh_channel_cb on_eof, on_close;
  void *eof_ud, *close_ud;
  evssh_open_failed_cb on_failed;
  void *failed_ud;
  evssh_reply_cb reply;
  void *reply_ud;
  bool closed;
  size_t sent;
};

static struct evssh_session session;
static struct evssh_channel chan;

evssh_channel *evssh_session_open_channel(evssh_session *s, evssh_channel_cb on_open, void *ud) {
  memset(&chan, 0, sizeof chan);
  return &chan;
}
void evssh_channel_on_data(evssh_channel *ch, evssh_data_cb cb, void *ud) { ch->on_data = cb, ch->data_ud = ud; }
void evssh_channel_on_extended_data(evssh_channel *ch, evssh_ext_data_cb cb, void *ud) {
  ch->on_ext = cb, ch->ext_ud = ud;
}
void evssh_channel_on_eof(evssh_channel *ch, evssh_channel_cb cb, void *ud) { ch->on_eof = cb, ch->eof_ud = ud; }
void evssh_channel_on_close(evssh_channel *ch, evssh_channel_cb cb, void *ud) { ch->on_close = cb, ch->close_ud = ud; }
void evssh_channel_on_open_failed(evssh_channel *ch, evssh_open_failed_cb cb, void *ud) {
  ch->on_failed = cb, ch->failed_ud = ud;
}
int evssh_channel_subsystem(evssh_channel *ch, const char *name, evssh_reply_cb cb, void *ud) {
  ch->reply = cb, ch->reply_ud = ud;
  return EVSSH_OK;
}
int evssh_channel_exec(evssh_channel *ch, const char *command, evssh_reply_cb cb, void *ud) {
  return evssh_channel_subsystem(ch, command, cb, ud);
}
int evssh_channel_send_data(evssh_channel *ch, const void *data, size_t len) {
  if (ch->closed) return EVSSH_ECLOSED;
  ch->sent += len;
  return EVSSH_OK;
}
int evssh_channel_set_receive_window(evssh_channel *ch, uint32_t bytes) { return EVSSH_OK; }
/* a peer that takes everything at once: nothing queued, a full window */
size_t evssh_channel_pending(const evssh_channel *ch) { return 0; }
uint32_t evssh_channel_send_window(const evssh_channel *ch) { return 2u * 1024 * 1024; }
int evssh_channel_close(evssh_channel *ch) {
  ch->closed = true;
  return EVSSH_OK;
}
bool evssh_session_closed(const evssh_session *s) { return false; }
const char *evssh_session_error(const evssh_session *s) { return "fuzz session"; }
int evssh_session_process(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud) { return EVSSH_EBUSY; }
int evssh_session_loop(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud) { return EVSSH_EBUSY; }
/* the log sftp_parallel.c writes through: none here (diag_vlog ignores NULL) */
struct evssh_diag *session_diag(evssh_session *s) { return NULL; }

/* ------------------------------------------------ the requests */

static char upload_src[64], tree_root[64];
static int readdir_rounds;

static void ignore_status(evssh_sftp *sftp, int status, void *ud) {
  if (status && !evssh_sftp_error(sftp)[0]) abort(); /* failures must say why */
}
static void ignore_attrs(evssh_sftp *sftp, int status, const evssh_sftp_attrs *a, void *ud) {
  if (!status && !a) abort();
}
static void ignore_path(evssh_sftp *sftp, int status, const char *path, void *ud) {
  if (!status && !path) abort();
}
static void ignore_data(evssh_sftp *sftp, int status, const char *data, size_t len, void *ud) {}
static void ignore_fs(evssh_sftp *sftp, int status, const evssh_sftp_fsstat *st, void *ud) {}
static void ignore_ids(evssh_sftp *sftp, int status, const char *const *u, size_t nu, const char *const *g,
                       size_t ng, void *ud) {
  for (size_t i = 0; i < nu; i++) (void)strlen(u[i]);
  for (size_t i = 0; i < ng; i++) (void)strlen(g[i]);
}
static void ignore_raw(evssh_sftp *sftp, int status, evssh_reader *r, void *ud) {}
static void ignore_entry(evssh_sftp *sftp, const evssh_sftp_name *e, void *ud) { (void)strlen(e->longname); }
static void ignore_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {}

static void dir_batch(evssh_sftp *sftp, int status, const evssh_sftp_name *names, size_t count, void *ud) {
  evssh_sftp_file *dir = ud;
  for (size_t i = 0; i < count; i++) (void)strlen(names[i].filename);
  if (!status && count && ++readdir_rounds < 4 && evssh_sftp_readdir(sftp, dir, dir_batch, dir) == EVSSH_OK) return;
  evssh_sftp_close(sftp, dir, ignore_status, NULL);
}

static void dir_opened(evssh_sftp *sftp, int status, evssh_sftp_file *dir, void *ud) {
  if (status) return;
  if (evssh_sftp_readdir(sftp, dir, dir_batch, dir)) evssh_sftp_close(sftp, dir, ignore_status, NULL);
}

static void file_opened(evssh_sftp *sftp, int status, evssh_sftp_file *f, void *ud) {
  if (status) return;
  evssh_sftp_read(sftp, f, 0, 100, ignore_data, NULL);
  evssh_sftp_fstat(sftp, f, ignore_attrs, NULL);
  evssh_sftp_close(sftp, f, ignore_status, NULL);
}

static void on_ready(evssh_sftp *sftp, int status, void *ud) {
  if (status) {
    if (!evssh_sftp_error(sftp)[0]) abort();
    return;
  }
  uint32_t ids[2] = {0, 1};
  evssh_sftp_stat(sftp, "/a", ignore_attrs, NULL);
  evssh_sftp_opendir(sftp, "/d", dir_opened, NULL);
  evssh_sftp_open_file(sftp, "/f", EVSSH_SFTP_READ, NULL, file_opened, NULL);
  evssh_sftp_realpath(sftp, ".", ignore_path, NULL);
  evssh_sftp_readlink(sftp, "/l", ignore_path, NULL);
  evssh_sftp_statvfs(sftp, "/", ignore_fs, NULL);
  evssh_sftp_users_groups_by_id(sftp, ids, 2, ids, 1, ignore_ids, NULL);
  evssh_sftp_extended(sftp, "x@example.com", "abc", 3, ignore_raw, NULL);
  evssh_sftp_list(sftp, "/ld", ignore_entry, ignore_status, NULL);
  evssh_sftp_download(sftp, "/big", "/dev/null", 0, ignore_progress, ignore_status, NULL);
  evssh_sftp_upload(sftp, upload_src, "/up", 0, ignore_progress, ignore_status, NULL);
  char local[128];
  snprintf(local, sizeof local, "%s/t", tree_root);
  evssh_sftp_download_flags(sftp, "/t", local, 0, EVSSH_SFTP_RECURSIVE | EVSSH_SFTP_PRESERVE, ignore_progress,
                            ignore_status, NULL);
}

static void rm_rf(const char *path, int depth) {
  struct stat st;
  if (lstat(path, &st)) return;
  if (S_ISDIR(st.st_mode) && depth < 64) {
    chmod(path, 0700);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      rm_rf(p, depth + 1);
    }
    if (d) closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static void setup_once(void) {
  if (upload_src[0]) return;
  snprintf(tree_root, sizeof tree_root, "/tmp/fuzz-sftp-%d", (int)getpid());
  mkdir(tree_root, 0700);
  snprintf(upload_src, sizeof upload_src, "%s-upload", tree_root);
  int fd = open(upload_src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  char block[4096];
  memset(block, 'u', sizeof block);
  for (int i = 0; i < 20 && fd >= 0; i++) {
    if (write(fd, block, sizeof block) != (ssize_t)sizeof block) break;
  }
  if (fd >= 0) close(fd);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 2) return 0;
  setup_once();
  size_t slice = (size_t)data[0] + 1;
  unsigned flags = data[1];
  data += 2;
  size -= 2;
  readdir_rounds = 0;
  evssh_sftp *sftp = evssh_sftp_open(&session, on_ready, NULL);
  if (!sftp) return 0;
  chan.reply(&chan, !(flags & 1), chan.reply_ud);
  for (size_t off = 0; off < size && !chan.closed; off += slice) {
    size_t n = size - off < slice ? size - off : slice;
    if (chan.on_data) chan.on_data(&chan, (const char *)data + off, n, chan.data_ud);
  }
  if ((flags & 2) && chan.on_close) {
    evssh_channel_cb cb = chan.on_close;
    chan.on_close = NULL;
    cb(&chan, chan.close_ud);
  }
  evssh_sftp_free(sftp);
  char local[128];
  snprintf(local, sizeof local, "%s/t", tree_root);
  rm_rf(local, 0);
  return 0;
}
