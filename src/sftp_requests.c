/* sftp_requests.c owns the request-level calls, one evssh_sftp_<verb> per
 * request of protocol version 3 and per OpenSSH extension, each with its
 * callback: building the request, and turning the reply (or the sftp's
 * failure) into exactly one callback with a status, the server's status
 * text and the path in evssh_sftp_error. Extensions are refused at the call
 * when the server did not advertise them. Also the streaming directory
 * listing (evssh_sftp_list: OPENDIR, READDIR to the end, CLOSE). */
#include "sftp.h"

#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- plumbing */

/* The reply for a call that expects `expect` (a data-bearing type):
   1 when body holds that reply, 0 for an OK status (with *eof for
   SSH_FX_EOF when eof is given), <0 the callback's error status. */
static int classify(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body, uint8_t expect,
                    bool *eof) {
  if (type == 0) return sftp_abort_code(sftp);
  if (type == expect) return 1;
  if (type == SSH_FXP_STATUS) {
    int rc = sftp_status_result(sftp, req, body, eof);
    if (rc == EVSSH_OK && !(eof && *eof))
      return sftp_unexpected(sftp, req, type, "an OK status where an answer was due");
    return rc;
  }
  return sftp_unexpected(sftp, req, type, "reply of the wrong type");
}

/* the callback may run: always for our own requests (they free their
   context), for the program's only while the sftp is not being torn down */
static bool user(const evssh_sftp *sftp, const sftp_req *req) { return !sftp->freeing || req->internal; }

static int start_call(evssh_sftp *sftp, uint8_t type, sftp_reply_fn fn, const char *path, const char *path2,
                      evssh_sftp_file *file, void *ud, sftp_req **out) {
  if (!sftp) return EVSSH_EINVAL;
  if (!sftp_usable(sftp)) {
    if (sftp->state == SFTP_DEAD) sftp_abort_code(sftp);
    else sftp_set_error(sftp, 0, "sftp: not ready");
    return EVSSH_ECLOSED;
  }
  if (file && !sftp_file_ok(sftp, file)) return EVSSH_EINVAL;
  sftp_req *req = sftp_req_new(sftp, type, fn);
  if (!req) return EVSSH_ENOMEM;
  req->ud = ud;
  req->internal = sftp->internal > 0;
  if ((path && !(req->path = strdup(path))) || (path2 && !(req->path2 = strdup(path2)))) {
    sftp_req_free(sftp, req);
    return EVSSH_ENOMEM;
  }
  if (file) sftp_file_ref(req, file);
  if (!sftp_begin(sftp, req)) {
    sftp_req_free(sftp, req);
    return EVSSH_ENOMEM;
  }
  *out = req;
  return EVSSH_OK;
}

static int need_ext(evssh_sftp *sftp, const char *name, const char *version) {
  if (!sftp) return EVSSH_EINVAL;
  if (sftp_has_ext(sftp, name, version)) return EVSSH_OK;
  if (!sftp_usable(sftp)) {
    if (sftp->state == SFTP_DEAD) sftp_abort_code(sftp);
    return EVSSH_ECLOSED;
  }
  sftp_set_error(sftp, EVSSH_SFTP_FX_OP_UNSUPPORTED, "sftp: the server does not offer %s", name);
  return EVSSH_ESFTP;
}

/* an extended request: the name goes right after the id */
static int start_ext(evssh_sftp *sftp, const char *name, sftp_reply_fn fn, const char *path, const char *path2,
                     evssh_sftp_file *file, void *ud, sftp_req **out) {
  int rc = start_call(sftp, SSH_FXP_EXTENDED, fn, path, path2, file, ud, out);
  if (!rc && evssh_buf_put_cstring(&sftp->out, name)) {
    sftp_req_free(sftp, *out);
    rc = EVSSH_ENOMEM;
  }
  return rc;
}

static int put_handle(evssh_sftp *sftp, const evssh_sftp_file *f) {
  return evssh_buf_put_string(&sftp->out, f->handle, f->handle_len);
}

/* finish building: a failure frees the request */
static int send_built(evssh_sftp *sftp, sftp_req *req, int rc, const void *trailing, size_t len) {
  if (rc) {
    sftp_req_free(sftp, req);
    return rc;
  }
  return sftp_send(sftp, req, trailing, len);
}

/* ------------------------------------------------------ reply handlers */

static void on_status(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  int st;
  if (type == 0) st = sftp_abort_code(sftp);
  else if (type == SSH_FXP_STATUS) st = sftp_status_result(sftp, req, body, NULL);
  else st = sftp_unexpected(sftp, req, type, "reply of the wrong type");
  if (user(sftp, req) && req->cb.status) req->cb.status(sftp, st, req->ud);
}

static void on_handle(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_sftp_file *f = NULL;
  int st = classify(sftp, req, type, body, SSH_FXP_HANDLE, NULL);
  if (st == 1) st = sftp_read_handle(sftp, req, body, &f);
  if (!user(sftp, req)) {
    if (f) {
      f->closed = true;
      sftp_file_unref(f);
    }
    return;
  }
  req->cb.file(sftp, st, st ? NULL : f, req->ud);
}

static void on_data(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  bool eof = false;
  const char *data = NULL;
  size_t len = 0;
  int st = classify(sftp, req, type, body, SSH_FXP_DATA, &eof);
  if (st == 1) {
    st = evssh_read_string(body, &data, &len) ? sftp_unexpected(sftp, req, type, "malformed DATA") : EVSSH_OK;
    if (!st && len > req->len) {
      st = sftp_unexpected(sftp, req, type, "more data than was asked for");
      len = 0;
    }
  }
  if (user(sftp, req)) req->cb.data(sftp, st, st ? NULL : (data ? data : ""), st ? 0 : len, req->ud);
}

static void on_attrs(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_sftp_attrs a;
  memset(&a, 0, sizeof a);
  int st = classify(sftp, req, type, body, SSH_FXP_ATTRS, NULL);
  if (st == 1) st = sftp_read_attrs(body, &a) ? sftp_unexpected(sftp, req, type, "malformed ATTRS") : EVSSH_OK;
  if (user(sftp, req)) req->cb.attrs(sftp, st, st ? NULL : &a, req->ud);
}

static void on_names(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  bool eof = false;
  evssh_sftp_name *names = NULL;
  size_t count = 0;
  int st = classify(sftp, req, type, body, SSH_FXP_NAME, &eof);
  if (st == 1) {
    st = sftp_read_names(sftp, body, &names, &count);
    if (st == EVSSH_EPROTO) st = sftp_unexpected(sftp, req, type, "malformed NAME");
  }
  if (user(sftp, req)) req->cb.names(sftp, st, names, count, req->ud);
  free(names);
}

static void on_path(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_sftp_name *names = NULL;
  size_t count = 0;
  int st = classify(sftp, req, type, body, SSH_FXP_NAME, NULL);
  if (st == 1) {
    st = sftp_read_names(sftp, body, &names, &count);
    if (st == EVSSH_EPROTO || (!st && count == 0))
      st = sftp_unexpected(sftp, req, type, "NAME without exactly one name");
  }
  if (user(sftp, req)) req->cb.path(sftp, st, st ? NULL : names[0].filename, req->ud);
  free(names);
}

static void on_statvfs(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_sftp_fsstat v;
  memset(&v, 0, sizeof v);
  int st = classify(sftp, req, type, body, SSH_FXP_EXTENDED_REPLY, NULL);
  if (st == 1) {
    uint64_t *f[] = {&v.bsize, &v.frsize, &v.blocks, &v.bfree, &v.bavail, &v.files,
                     &v.ffree, &v.favail, &v.fsid, &v.flag, &v.namemax};
    st = EVSSH_OK;
    for (size_t i = 0; i < sizeof f / sizeof f[0] && !st; i++) {
      if (evssh_read_u64(body, f[i])) st = sftp_unexpected(sftp, req, type, "statvfs reply too short");
    }
  }
  if (user(sftp, req)) req->cb.statvfs(sftp, st, st ? NULL : &v, req->ud);
}

/* n names packed as strings inside one string: NUL-terminated copies in
   scratch, their offsets in offs (the buffer moves while it grows) */
static int read_name_list(evssh_sftp *sftp, evssh_reader *body, size_t n, size_t *offs) {
  const char *packed;
  size_t len;
  if (evssh_read_string(body, &packed, &len)) return EVSSH_EPROTO;
  evssh_reader r = {(const unsigned char *)packed, len};
  for (size_t i = 0; i < n; i++) {
    int rc = sftp_scratch_string(sftp, &r, &offs[i]);
    if (rc) return rc;
  }
  return r.left ? EVSSH_EPROTO : EVSSH_OK;
}

static void on_ids(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  size_t nu = req->offset, ng = req->len;
  const char **names = calloc(nu + ng + 1, sizeof *names);
  size_t *offs = calloc(nu + ng + 1, sizeof *offs);
  int st = classify(sftp, req, type, body, SSH_FXP_EXTENDED_REPLY, NULL);
  if (st == 1) {
    buf_reset(&sftp->scratch);
    st = names && offs ? EVSSH_OK : EVSSH_ENOMEM;
    if (!st) st = read_name_list(sftp, body, nu, offs);
    if (!st) st = read_name_list(sftp, body, ng, offs + nu);
    if (st == EVSSH_EPROTO) st = sftp_unexpected(sftp, req, type, "users-groups-by-id reply does not match the ids");
    for (size_t i = 0; !st && i < nu + ng; i++) names[i] = (const char *)buf_ptr(&sftp->scratch) + offs[i];
  }
  if (user(sftp, req)) {
    if (st) req->cb.ids(sftp, st, NULL, 0, NULL, 0, req->ud);
    else req->cb.ids(sftp, st, names, nu, names + nu, ng, req->ud);
  }
  free(names);
  free(offs);
}

static void on_raw(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  evssh_reader empty = {NULL, 0};
  int st;
  if (type == SSH_FXP_EXTENDED_REPLY) {
    st = EVSSH_OK;
  } else if (type == SSH_FXP_STATUS) {
    st = sftp_status_result(sftp, req, body, NULL);
    body = &empty;
  } else {
    st = type ? sftp_unexpected(sftp, req, type, "reply of the wrong type") : sftp_abort_code(sftp);
    body = &empty;
  }
  if (user(sftp, req)) req->cb.reply(sftp, st, body, req->ud);
}

/* --------------------------------------------------------- files */

int evssh_sftp_open_file(evssh_sftp *sftp, const char *path, uint32_t pflags, const evssh_sftp_attrs *attrs,
                         evssh_sftp_file_cb cb, void *ud) {
  sftp_req *req;
  if (!path || !cb) return EVSSH_EINVAL;
  int rc = start_call(sftp, SSH_FXP_OPEN, on_handle, path, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb.file = cb;
  rc = evssh_buf_put_cstring(&sftp->out, path);
  if (!rc) rc = evssh_buf_put_u32(&sftp->out, pflags);
  if (!rc) rc = sftp_put_attrs(&sftp->out, attrs);
  return send_built(sftp, req, rc, NULL, 0);
}

int evssh_sftp_opendir(evssh_sftp *sftp, const char *path, evssh_sftp_file_cb cb, void *ud) {
  sftp_req *req;
  if (!path || !cb) return EVSSH_EINVAL;
  int rc = start_call(sftp, SSH_FXP_OPENDIR, on_handle, path, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb.file = cb;
  return send_built(sftp, req, evssh_buf_put_cstring(&sftp->out, path), NULL, 0);
}

static void on_close(evssh_sftp *sftp, sftp_req *req, uint8_t type, evssh_reader *body) {
  /* the handle is gone whatever the answer: freed once this request lets go */
  req->file->closed = true;
  on_status(sftp, req, type, body);
}

int evssh_sftp_close(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_cb cb, void *ud) {
  sftp_req *req;
  if (!file) return EVSSH_EINVAL;
  int rc = start_call(sftp, SSH_FXP_CLOSE, on_close, NULL, NULL, file, ud, &req);
  if (rc) return rc;
  req->cb.status = cb;
  rc = send_built(sftp, req, put_handle(sftp, file), NULL, 0);
  if (!rc) file->closing = true;
  return rc;
}

const char *evssh_sftp_file_path(const evssh_sftp_file *file) { return file ? file->path : NULL; }

int evssh_sftp_read(evssh_sftp *sftp, evssh_sftp_file *file, uint64_t offset, uint32_t len,
                    evssh_sftp_data_cb cb, void *ud) {
  sftp_req *req;
  if (!file || !cb || len > SFTP_BLOCK_CEILING) return EVSSH_EINVAL;
  int rc = start_call(sftp, SSH_FXP_READ, on_data, NULL, NULL, file, ud, &req);
  if (rc) return rc;
  req->cb.data = cb;
  req->len = len;
  rc = put_handle(sftp, file);
  if (!rc) rc = evssh_buf_put_u64(&sftp->out, offset);
  if (!rc) rc = evssh_buf_put_u32(&sftp->out, len);
  return send_built(sftp, req, rc, NULL, 0);
}

int evssh_sftp_write(evssh_sftp *sftp, evssh_sftp_file *file, uint64_t offset, const void *data, size_t len,
                     evssh_sftp_cb cb, void *ud) {
  sftp_req *req;
  if (!sftp || !file || (!data && len) || len > sftp->max_write) return EVSSH_EINVAL;
  int rc = start_call(sftp, SSH_FXP_WRITE, on_status, NULL, NULL, file, ud, &req);
  if (rc) return rc;
  req->cb.status = cb;
  rc = put_handle(sftp, file);
  if (!rc) rc = evssh_buf_put_u64(&sftp->out, offset);
  if (!rc) rc = evssh_buf_put_u32(&sftp->out, (uint32_t)len);
  return send_built(sftp, req, rc, data, len);
}

/* ------------------------------------------------------ attributes */

static int path_call(evssh_sftp *sftp, uint8_t type, sftp_reply_fn fn, const char *path, sftp_user_cb cb,
                     void *ud) {
  sftp_req *req;
  if (!path) return EVSSH_EINVAL;
  int rc = start_call(sftp, type, fn, path, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb = cb;
  return send_built(sftp, req, evssh_buf_put_cstring(&sftp->out, path), NULL, 0);
}

static int handle_call(evssh_sftp *sftp, uint8_t type, sftp_reply_fn fn, evssh_sftp_file *file,
                       sftp_user_cb cb, void *ud) {
  sftp_req *req;
  if (!file) return EVSSH_EINVAL;
  int rc = start_call(sftp, type, fn, NULL, NULL, file, ud, &req);
  if (rc) return rc;
  req->cb = cb;
  return send_built(sftp, req, put_handle(sftp, file), NULL, 0);
}

int evssh_sftp_stat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return path_call(sftp, SSH_FXP_STAT, on_attrs, path, (sftp_user_cb){.attrs = cb}, ud);
}

int evssh_sftp_lstat(evssh_sftp *sftp, const char *path, evssh_sftp_attrs_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return path_call(sftp, SSH_FXP_LSTAT, on_attrs, path, (sftp_user_cb){.attrs = cb}, ud);
}

int evssh_sftp_fstat(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_attrs_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return handle_call(sftp, SSH_FXP_FSTAT, on_attrs, file, (sftp_user_cb){.attrs = cb}, ud);
}

static int path_attrs_call(evssh_sftp *sftp, uint8_t type, const char *ext, const char *path,
                           const evssh_sftp_attrs *attrs, evssh_sftp_cb cb, void *ud) {
  sftp_req *req;
  if (!path) return EVSSH_EINVAL;
  int rc = ext ? start_ext(sftp, ext, on_status, path, NULL, NULL, ud, &req)
               : start_call(sftp, type, on_status, path, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb.status = cb;
  rc = evssh_buf_put_cstring(&sftp->out, path);
  if (!rc) rc = sftp_put_attrs(&sftp->out, attrs);
  return send_built(sftp, req, rc, NULL, 0);
}

int evssh_sftp_setstat(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs, evssh_sftp_cb cb,
                       void *ud) {
  if (!attrs) return EVSSH_EINVAL;
  return path_attrs_call(sftp, SSH_FXP_SETSTAT, NULL, path, attrs, cb, ud);
}

int evssh_sftp_lsetstat(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs, evssh_sftp_cb cb,
                        void *ud) {
  if (!attrs) return EVSSH_EINVAL;
  int rc = need_ext(sftp, "lsetstat@openssh.com", "1");
  return rc ? rc : path_attrs_call(sftp, 0, "lsetstat@openssh.com", path, attrs, cb, ud);
}

int evssh_sftp_fsetstat(evssh_sftp *sftp, evssh_sftp_file *file, const evssh_sftp_attrs *attrs,
                        evssh_sftp_cb cb, void *ud) {
  sftp_req *req;
  if (!file || !attrs) return EVSSH_EINVAL;
  int rc = start_call(sftp, SSH_FXP_FSETSTAT, on_status, NULL, NULL, file, ud, &req);
  if (rc) return rc;
  req->cb.status = cb;
  rc = put_handle(sftp, file);
  if (!rc) rc = sftp_put_attrs(&sftp->out, attrs);
  return send_built(sftp, req, rc, NULL, 0);
}

int evssh_sftp_mkdir(evssh_sftp *sftp, const char *path, const evssh_sftp_attrs *attrs, evssh_sftp_cb cb,
                     void *ud) {
  return path_attrs_call(sftp, SSH_FXP_MKDIR, NULL, path, attrs, cb, ud);
}

/* ------------------------------------------------------ directories */

int evssh_sftp_readdir(evssh_sftp *sftp, evssh_sftp_file *dir, evssh_sftp_names_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return handle_call(sftp, SSH_FXP_READDIR, on_names, dir, (sftp_user_cb){.names = cb}, ud);
}

typedef struct sftp_listing {
  evssh_sftp_entry_cb on_entry;
  evssh_sftp_cb done;
  void *ud;
  evssh_sftp_file *dir;
  int status;
  char error[SFTP_ERROR_MAX];
  uint32_t fx;
} sftp_listing;

static void listing_end(evssh_sftp *sftp, sftp_listing *l, int status) {
  if (!sftp->freeing && l->done) {
    if (status) {
      memcpy(sftp->error, l->error, sizeof sftp->error);
      sftp->status_code = l->fx;
    }
    l->done(sftp, status, l->ud);
  }
  free(l);
}

static void listing_closed(evssh_sftp *sftp, int status, void *ud) {
  sftp_listing *l = ud;
  if (l->status) status = l->status; /* the first failure is the one to report */
  else if (status) {
    memcpy(l->error, sftp->error, sizeof l->error);
    l->fx = sftp->status_code;
  }
  listing_end(sftp, l, status);
}

static void listing_batch(evssh_sftp *sftp, int status, const evssh_sftp_name *names, size_t count, void *ud);

static void listing_finish(evssh_sftp *sftp, sftp_listing *l, int status) {
  if (status && !l->status) {
    l->status = status;
    memcpy(l->error, sftp->error, sizeof l->error);
    l->fx = sftp->status_code;
  }
  if (sftp->freeing) {
    free(l);
    return;
  }
  /* the handle is given back before done runs */
  if (l->dir) {
    sftp->internal++;
    int rc = evssh_sftp_close(sftp, l->dir, listing_closed, l);
    sftp->internal--;
    if (rc == EVSSH_OK) return;
  }
  listing_end(sftp, l, l->status);
}

static void listing_next(evssh_sftp *sftp, sftp_listing *l) {
  sftp->internal++;
  int rc = evssh_sftp_readdir(sftp, l->dir, listing_batch, l);
  sftp->internal--;
  if (rc) listing_finish(sftp, l, rc);
}

static void listing_batch(evssh_sftp *sftp, int status, const evssh_sftp_name *names, size_t count, void *ud) {
  sftp_listing *l = ud;
  if (status || count == 0 || sftp->freeing) {
    listing_finish(sftp, l, status);
    return;
  }
  /* the program may free the sftp from an entry: then stop there */
  for (size_t i = 0; i < count && !sftp->freeing; i++) l->on_entry(sftp, &names[i], l->ud);
  if (sftp->freeing) {
    free(l);
    return;
  }
  listing_next(sftp, l);
}

static void listing_opened(evssh_sftp *sftp, int status, evssh_sftp_file *dir, void *ud) {
  sftp_listing *l = ud;
  if (status || sftp->freeing) {
    listing_finish(sftp, l, status);
    return;
  }
  l->dir = dir;
  listing_next(sftp, l);
}

int evssh_sftp_list(evssh_sftp *sftp, const char *path, evssh_sftp_entry_cb on_entry, evssh_sftp_cb done,
                    void *ud) {
  if (!sftp || !path || !on_entry) return EVSSH_EINVAL;
  sftp_listing *l = calloc(1, sizeof *l);
  if (!l) return EVSSH_ENOMEM;
  l->on_entry = on_entry;
  l->done = done;
  l->ud = ud;
  sftp->internal++;
  int rc = evssh_sftp_opendir(sftp, path, listing_opened, l);
  sftp->internal--;
  if (rc) free(l);
  return rc;
}

/* ------------------------------------------------------ names */

int evssh_sftp_rmdir(evssh_sftp *sftp, const char *path, evssh_sftp_cb cb, void *ud) {
  return path_call(sftp, SSH_FXP_RMDIR, on_status, path, (sftp_user_cb){.status = cb}, ud);
}

int evssh_sftp_remove(evssh_sftp *sftp, const char *path, evssh_sftp_cb cb, void *ud) {
  return path_call(sftp, SSH_FXP_REMOVE, on_status, path, (sftp_user_cb){.status = cb}, ud);
}

int evssh_sftp_realpath(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return path_call(sftp, SSH_FXP_REALPATH, on_path, path, (sftp_user_cb){.path = cb}, ud);
}

int evssh_sftp_readlink(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return path_call(sftp, SSH_FXP_READLINK, on_path, path, (sftp_user_cb){.path = cb}, ud);
}

/* two paths: both go into the request, in the order given */
static int two_path_call(evssh_sftp *sftp, uint8_t type, const char *ext, const char *a, const char *b,
                         evssh_sftp_cb cb, void *ud) {
  sftp_req *req;
  if (!a || !b) return EVSSH_EINVAL;
  int rc = ext ? start_ext(sftp, ext, on_status, a, b, NULL, ud, &req)
               : start_call(sftp, type, on_status, a, b, NULL, ud, &req);
  if (rc) return rc;
  req->cb.status = cb;
  rc = evssh_buf_put_cstring(&sftp->out, a);
  if (!rc) rc = evssh_buf_put_cstring(&sftp->out, b);
  return send_built(sftp, req, rc, NULL, 0);
}

int evssh_sftp_rename(evssh_sftp *sftp, const char *oldpath, const char *newpath, evssh_sftp_cb cb, void *ud) {
  return two_path_call(sftp, SSH_FXP_RENAME, NULL, oldpath, newpath, cb, ud);
}

int evssh_sftp_symlink(evssh_sftp *sftp, const char *target, const char *linkpath, evssh_sftp_cb cb, void *ud) {
  /* OpenSSH's sftp-server takes (target, linkpath), the reverse of the
     draft; every server in use follows it (PROTOCOL 4.1) */
  return two_path_call(sftp, SSH_FXP_SYMLINK, NULL, target, linkpath, cb, ud);
}

int evssh_sftp_posix_rename(evssh_sftp *sftp, const char *oldpath, const char *newpath, evssh_sftp_cb cb,
                            void *ud) {
  int rc = need_ext(sftp, "posix-rename@openssh.com", "1");
  return rc ? rc : two_path_call(sftp, 0, "posix-rename@openssh.com", oldpath, newpath, cb, ud);
}

int evssh_sftp_hardlink(evssh_sftp *sftp, const char *oldpath, const char *newpath, evssh_sftp_cb cb,
                        void *ud) {
  int rc = need_ext(sftp, "hardlink@openssh.com", "1");
  return rc ? rc : two_path_call(sftp, 0, "hardlink@openssh.com", oldpath, newpath, cb, ud);
}

/* ------------------------------------------------------ extensions */

static int ext_path_call(evssh_sftp *sftp, const char *ext, const char *version, sftp_reply_fn fn,
                         const char *path, sftp_user_cb cb, void *ud) {
  sftp_req *req;
  if (!path) return EVSSH_EINVAL;
  int rc = need_ext(sftp, ext, version);
  if (!rc) rc = start_ext(sftp, ext, fn, path, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb = cb;
  return send_built(sftp, req, evssh_buf_put_cstring(&sftp->out, path), NULL, 0);
}

static int ext_handle_call(evssh_sftp *sftp, const char *ext, const char *version, sftp_reply_fn fn,
                           evssh_sftp_file *file, sftp_user_cb cb, void *ud) {
  sftp_req *req;
  if (!file) return EVSSH_EINVAL;
  int rc = need_ext(sftp, ext, version);
  if (!rc) rc = start_ext(sftp, ext, fn, NULL, NULL, file, ud, &req);
  if (rc) return rc;
  req->cb = cb;
  return send_built(sftp, req, put_handle(sftp, file), NULL, 0);
}

int evssh_sftp_statvfs(evssh_sftp *sftp, const char *path, evssh_sftp_statvfs_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return ext_path_call(sftp, "statvfs@openssh.com", "2", on_statvfs, path, (sftp_user_cb){.statvfs = cb}, ud);
}

int evssh_sftp_fstatvfs(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_statvfs_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return ext_handle_call(sftp, "fstatvfs@openssh.com", "2", on_statvfs, file, (sftp_user_cb){.statvfs = cb}, ud);
}

int evssh_sftp_fsync(evssh_sftp *sftp, evssh_sftp_file *file, evssh_sftp_cb cb, void *ud) {
  return ext_handle_call(sftp, "fsync@openssh.com", "1", on_status, file, (sftp_user_cb){.status = cb}, ud);
}

int evssh_sftp_expand_path(evssh_sftp *sftp, const char *path, evssh_sftp_path_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return ext_path_call(sftp, "expand-path@openssh.com", "1", on_path, path, (sftp_user_cb){.path = cb}, ud);
}

int evssh_sftp_home_directory(evssh_sftp *sftp, const char *user_name, evssh_sftp_path_cb cb, void *ud) {
  if (!cb) return EVSSH_EINVAL;
  return ext_path_call(sftp, "home-directory", "1", on_path, user_name ? user_name : "",
                       (sftp_user_cb){.path = cb}, ud);
}

int evssh_sftp_copy_data(evssh_sftp *sftp, evssh_sftp_file *from, uint64_t from_offset, uint64_t length,
                         evssh_sftp_file *to, uint64_t to_offset, evssh_sftp_cb cb, void *ud) {
  sftp_req *req;
  if (!from || !to || !sftp_file_ok(sftp, to)) return EVSSH_EINVAL;
  int rc = need_ext(sftp, "copy-data", "1");
  if (!rc) rc = start_ext(sftp, "copy-data", on_status, NULL, to->path, from, ud, &req);
  if (rc) return rc;
  req->cb.status = cb;
  rc = put_handle(sftp, from);
  if (!rc) rc = evssh_buf_put_u64(&sftp->out, from_offset);
  if (!rc) rc = evssh_buf_put_u64(&sftp->out, length);
  if (!rc) rc = put_handle(sftp, to);
  if (!rc) rc = evssh_buf_put_u64(&sftp->out, to_offset);
  return send_built(sftp, req, rc, NULL, 0);
}

static int put_id_list(evssh_buf *b, const uint32_t *ids, size_t n) {
  if (n > 65536) return EVSSH_EINVAL;
  int rc = evssh_buf_put_u32(b, (uint32_t)(n * 4));
  for (size_t i = 0; i < n && !rc; i++) rc = evssh_buf_put_u32(b, ids[i]);
  return rc;
}

int evssh_sftp_users_groups_by_id(evssh_sftp *sftp, const uint32_t *uids, size_t nuids, const uint32_t *gids,
                                  size_t ngids, evssh_sftp_ids_cb cb, void *ud) {
  sftp_req *req;
  if (!cb || (nuids && !uids) || (ngids && !gids)) return EVSSH_EINVAL;
  int rc = need_ext(sftp, "users-groups-by-id@openssh.com", "1");
  if (!rc) rc = start_ext(sftp, "users-groups-by-id@openssh.com", on_ids, NULL, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb.ids = cb;
  req->offset = nuids;
  req->len = (uint32_t)ngids;
  rc = put_id_list(&sftp->out, uids, nuids);
  if (!rc) rc = put_id_list(&sftp->out, gids, ngids);
  return send_built(sftp, req, rc, NULL, 0);
}

int evssh_sftp_extended(evssh_sftp *sftp, const char *request, const void *data, size_t len,
                        evssh_sftp_reply_cb cb, void *ud) {
  sftp_req *req;
  if (!request || !cb || (!data && len)) return EVSSH_EINVAL;
  int rc = start_ext(sftp, request, on_raw, NULL, NULL, NULL, ud, &req);
  if (rc) return rc;
  req->cb.reply = cb;
  return send_built(sftp, req, len ? buf_append(&sftp->out, data, len) : EVSSH_OK, NULL, 0);
}
