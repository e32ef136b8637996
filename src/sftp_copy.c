/* sftp_copy.c owns the whole-file entry points: evssh_sftp_upload and
 * evssh_sftp_download, their _flags and _wait forms. Each starts either a
 * single pipelined transfer (sftp_transfer.c) or, with EVSSH_SFTP_RECURSIVE,
 * a directory tree (sftp_tree.c); the _wait forms run the session's loop
 * until that one is done and report its own result, not whatever else
 * failed on the loop meanwhile. */
#include "sftp.h"

#include <stdlib.h>
#include <string.h>

static int transfer(evssh_sftp *sftp, bool upload, const char *local, const char *remote, uint64_t offset,
                    unsigned flags, evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  if (!sftp || !local || !remote || (flags & ~(unsigned)(EVSSH_SFTP_PRESERVE | EVSSH_SFTP_RECURSIVE |
                                                        EVSSH_SFTP_FSYNC)))
    return EVSSH_EINVAL;
  if (flags & EVSSH_SFTP_RECURSIVE)
    return sftp_tree_start(sftp, upload, local, remote, offset, flags, progress, done, ud);
  return sftp_user_xfer_start(sftp, upload, local, remote, offset, flags, progress, done, ud);
}

int evssh_sftp_upload_flags(evssh_sftp *sftp, const char *local, const char *remote, uint64_t offset,
                            unsigned flags, evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  return transfer(sftp, true, local, remote, offset, flags, progress, done, ud);
}

int evssh_sftp_download_flags(evssh_sftp *sftp, const char *remote, const char *local, uint64_t offset,
                              unsigned flags, evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  return transfer(sftp, false, local, remote, offset, flags, progress, done, ud);
}

int evssh_sftp_upload(evssh_sftp *sftp, const char *local, const char *remote, uint64_t offset,
                      evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  return transfer(sftp, true, local, remote, offset, 0, progress, done, ud);
}

int evssh_sftp_download(evssh_sftp *sftp, const char *remote, const char *local, uint64_t offset,
                        evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  return transfer(sftp, false, local, remote, offset, 0, progress, done, ud);
}

typedef struct wait_state {
  bool done;
  int status;
  uint64_t bytes;
  char error[SFTP_ERROR_MAX];
  uint32_t fx;
} wait_state;

static void wait_done(evssh_sftp *sftp, int status, void *ud) {
  wait_state *w = ud;
  w->done = true;
  w->status = status;
  w->bytes = sftp->transferred;
  memcpy(w->error, sftp->error, sizeof w->error);
  w->fx = sftp->status_code;
}

static int transfer_wait(evssh_sftp *sftp, bool upload, const char *local, const char *remote, uint64_t offset,
                         unsigned flags) {
  if (!sftp) return EVSSH_EINVAL;
  int rc = sftp_wait_check(sftp);
  if (rc) return rc;
  wait_state w;
  memset(&w, 0, sizeof w);
  rc = transfer(sftp, upload, local, remote, offset, flags, NULL, wait_done, &w);
  if (rc) return rc;
  sftp_wait(sftp, &w.done, -1);
  /* other work on the loop may have failed meanwhile: ours is the result */
  memcpy(sftp->error, w.error, sizeof sftp->error);
  sftp->status_code = w.fx;
  sftp->transferred = w.bytes;
  return w.status;
}

int evssh_sftp_upload_wait(evssh_sftp *sftp, const char *local, const char *remote) {
  return transfer_wait(sftp, true, local, remote, 0, 0);
}

int evssh_sftp_download_wait(evssh_sftp *sftp, const char *remote, const char *local) {
  return transfer_wait(sftp, false, local, remote, 0, 0);
}

int evssh_sftp_upload_flags_wait(evssh_sftp *sftp, const char *local, const char *remote, uint64_t offset,
                                 unsigned flags) {
  return transfer_wait(sftp, true, local, remote, offset, flags);
}

int evssh_sftp_download_flags_wait(evssh_sftp *sftp, const char *remote, const char *local, uint64_t offset,
                                   unsigned flags) {
  return transfer_wait(sftp, false, local, remote, offset, flags);
}
