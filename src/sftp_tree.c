/* sftp_tree.c owns directory trees (EVSSH_SFTP_RECURSIVE): a depth-first
 * walk of the source, local (opendir/readdir) for an upload, remote
 * (OPENDIR/READDIR batches) for a download, that creates each destination
 * directory before anything inside it and runs up to TREE_PARALLEL file
 * transfers at once through the pipelined transfer engine. Memory stays
 * bounded by the depth of the tree (one open directory and at most one
 * READDIR batch per level), plus one record per directory when modes and
 * times are preserved: those are applied last, children before parents, so
 * creating entries cannot disturb a directory's times afterwards. The first
 * failure stops new work; running transfers finish; done gets that failure. */
#include "sftp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TREE_PARALLEL 8

typedef struct tree_entry {
  struct tree_entry *next;
  char *name;
  evssh_sftp_attrs attrs;
} tree_entry;

typedef struct tree_dir {
  struct tree_dir *up;
  char *local, *remote;
  DIR *ldir;                    /* upload */
  evssh_sftp_file *rdir;        /* download */
  tree_entry *entries;          /* download: the last batch, not yet taken */
  bool eof;
} tree_dir;

typedef struct tree_stamp {
  struct tree_stamp *next;
  char *path;
  uint32_t mode, atime, mtime;
} tree_stamp;

/* one running file: what it has reported, for the tree's progress */
typedef struct tree_file {
  sftp_tree *tree;
  uint64_t reported;
} tree_file;

struct sftp_tree {
  evssh_sftp *sftp;
  sftp_tree *prev, *next;       /* sftp->trees */
  bool upload;
  unsigned flags;
  uint64_t offset;              /* 0 or EVSSH_SFTP_RESUME, per file */
  evssh_sftp_progress_cb progress;
  evssh_sftp_cb done;
  void *ud;
  tree_dir *top;
  int running;
  bool waiting;                 /* a directory request is out */
  int stamps_out;               /* setstat replies still to come */
  int closes_out;               /* directory handles being given back */
  bool walked;
  uint64_t bytes, total;
  tree_stamp *stamps, *stamps_tail;
  char *root_local, *root_remote;
  int status;
  uint32_t fx;
  char cause[SFTP_ERROR_MAX];
};

static void step(sftp_tree *t);

/* --------------------------------------------------------- helpers */

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  bool slash = a && dir[a - 1] == '/';
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  if (!slash) p[a++] = '/';
  memcpy(p + a, name, b + 1);
  return p;
}

static void tree_fail(sftp_tree *t, int code) {
  if (t->status) return;
  t->status = code;
  memcpy(t->cause, t->sftp->error, sizeof t->cause);
  t->fx = t->sftp->status_code;
}

static void local_fail(sftp_tree *t, const char *what, const char *path) {
  sftp_set_error(t->sftp, 0, "local: %s %s: %s", what, path, strerror(errno));
  tree_fail(t, EVSSH_EINVAL);
}

static void oom(sftp_tree *t) {
  sftp_set_error(t->sftp, 0, "sftp: out of memory");
  tree_fail(t, EVSSH_ENOMEM);
}

static void free_entries(tree_entry *e) {
  while (e) {
    tree_entry *n = e->next;
    free(e->name);
    free(e);
    e = n;
  }
}

static void dir_closed(evssh_sftp *sftp, int status, void *ud) {
  sftp_tree *t = ud;
  if (sftp->freeing) return;
  /* the walk goes on meanwhile; only the end waits for the handles */
  t->closes_out--;
  step(t);
}

/* wait: the tree counts the close and ends only after its answer */
static void pop_dir(sftp_tree *t, bool wait) {
  tree_dir *d = t->top;
  t->top = d->up;
  if (d->ldir) closedir(d->ldir);
  if (d->rdir) {
    t->sftp->internal++;
    int rc = evssh_sftp_close(t->sftp, d->rdir, wait ? dir_closed : NULL, wait ? t : NULL);
    t->sftp->internal--;
    /* refused: the sftp is gone, and the handle object with it */
    if (rc == EVSSH_OK && wait) t->closes_out++;
  }
  free_entries(d->entries);
  free(d->local);
  free(d->remote);
  free(d);
}

static void tree_free(sftp_tree *t) {
  evssh_sftp *sftp = t->sftp;
  while (t->top) pop_dir(t, false);
  while (t->stamps) {
    tree_stamp *s = t->stamps;
    t->stamps = s->next;
    free(s->path);
    free(s);
  }
  if (t->prev) t->prev->next = t->next; else sftp->trees = t->next;
  if (t->next) t->next->prev = t->prev;
  t->sftp = NULL;
  free(t->root_local);
  free(t->root_remote);
  free(t);
}

static int push_dir(sftp_tree *t, const char *local, const char *remote, uint32_t mode, uint32_t atime,
                    uint32_t mtime) {
  tree_dir *d = calloc(1, sizeof *d);
  if (!d) return EVSSH_ENOMEM;
  d->local = strdup(local);
  d->remote = strdup(remote);
  if (!d->local || !d->remote) {
    free(d->local);
    free(d->remote);
    free(d);
    return EVSSH_ENOMEM;
  }
  d->up = t->top;
  t->top = d;
  /* the source directory's mode and times, for the end */
  if (t->flags & EVSSH_SFTP_PRESERVE) {
    tree_stamp *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(t->upload ? remote : local))) {
      free(s);
      return EVSSH_ENOMEM;
    }
    s->mode = mode;
    s->atime = atime;
    s->mtime = mtime;
    /* parents before children here; applied from the front reversed */
    s->next = t->stamps;
    t->stamps = s;
  }
  return EVSSH_OK;
}

/* ------------------------------------------------------ the end */

static void end(sftp_tree *t) {
  evssh_sftp *sftp = t->sftp;
  evssh_sftp_cb done = t->done;
  void *ud = t->ud;
  int status = t->status;
  if (status) {
    memcpy(sftp->error, t->cause, sizeof sftp->error);
    sftp->status_code = t->fx;
  }
  sftp->transferred = t->bytes;
  tree_free(t);
  if (done && !sftp->freeing) done(sftp, status, ud);
}

static void stamp_done(evssh_sftp *sftp, int status, void *ud) {
  sftp_tree *t = ud;
  if (sftp->freeing) return;
  if (status) tree_fail(t, status);
  if (--t->stamps_out == 0) end(t);
}

/* Modes and times of the directories, children first: the list holds
   them parents first, so the last pushed (deepest) is at the head. */
static void apply_stamps(sftp_tree *t) {
  for (tree_stamp *s = t->stamps; s && !t->status; s = s->next) {
    if (t->upload) {
      evssh_sftp_attrs a;
      memset(&a, 0, sizeof a);
      a.flags = EVSSH_SFTP_ATTR_PERMISSIONS | EVSSH_SFTP_ATTR_ACMODTIME;
      a.permissions = s->mode & 07777;
      a.atime = s->atime;
      a.mtime = s->mtime;
      t->sftp->internal++;
      int rc = evssh_sftp_setstat(t->sftp, s->path, &a, stamp_done, t);
      t->sftp->internal--;
      if (rc) tree_fail(t, rc);
      else t->stamps_out++;
    } else {
      struct timespec ts[2] = {{(time_t)s->atime, 0}, {(time_t)s->mtime, 0}};
      if (chmod(s->path, s->mode & 07777) || utimensat(AT_FDCWD, s->path, ts, 0))
        local_fail(t, "set mode and times of", s->path);
    }
  }
}

static void maybe_end(sftp_tree *t) {
  if (t->running || t->waiting) return;
  /* a failure: give the open directories back before done */
  while (t->status && t->top) pop_dir(t, true);
  if (t->stamps_out || t->closes_out) return;
  if (t->status || (t->walked && !t->top)) {
    if (!t->status && (t->flags & EVSSH_SFTP_PRESERVE)) {
      apply_stamps(t);
      if (t->stamps_out) return;
    }
    end(t);
  }
}

/* ------------------------------------------------------ files */

static void file_progress(evssh_sftp *sftp, void *ctx, uint64_t done, uint64_t total) {
  tree_file *f = ctx;
  sftp_tree *t = f->tree;
  if (done > f->reported) t->bytes += done - f->reported;
  f->reported = done;
  sftp->transferred = t->bytes;
  if (t->progress) t->progress(sftp, t->bytes, t->total, t->ud);
}

static void file_finished(evssh_sftp *sftp, void *ctx, int status, uint64_t bytes) {
  tree_file *f = ctx;
  sftp_tree *t = f->tree;
  free(f);
  if (sftp->freeing) return; /* the tree goes with the sftp */
  t->running--;
  if (status) tree_fail(t, status);
  step(t);
}

static void start_xfer(sftp_tree *t, const char *local, const char *remote, uint64_t size) {
  tree_file *f = calloc(1, sizeof *f);
  if (!f) {
    oom(t);
    return;
  }
  f->tree = t;
  if (!t->upload) t->total += size;
  sftp_xfer_spec spec = {t->upload, local, remote, t->offset, t->flags & ~(unsigned)EVSSH_SFTP_RECURSIVE,
                         file_progress, file_finished, f};
  int rc = sftp_xfer_start(t->sftp, &spec);
  if (rc) {
    free(f);
    tree_fail(t, rc);
    return;
  }
  t->running++;
}

static void start_file(sftp_tree *t, const char *name, uint64_t size) {
  char *local = join(t->top->local, name), *remote = join(t->top->remote, name);
  if (local && remote) start_xfer(t, local, remote, size);
  else oom(t);
  free(local);
  free(remote);
}

/* ------------------------------------------------------ upload */

static void remote_dir_checked(evssh_sftp *sftp, int status, const evssh_sftp_attrs *a, void *ud);

typedef struct mkdir_ctx {
  sftp_tree *t;
  char *local, *remote;
  struct stat st;
  char error[SFTP_ERROR_MAX];
  uint32_t fx;
} mkdir_ctx;

static void mkdir_ctx_free(mkdir_ctx *m) {
  free(m->local);
  free(m->remote);
  free(m);
}

/* the remote directory exists: walk the local one */
static void enter_local(sftp_tree *t, mkdir_ctx *m) {
  DIR *dir = opendir(m->local);
  if (!dir) {
    local_fail(t, "open directory", m->local);
    return;
  }
  if (push_dir(t, m->local, m->remote, m->st.st_mode, (uint32_t)m->st.st_atime, (uint32_t)m->st.st_mtime)) {
    closedir(dir);
    oom(t);
    return;
  }
  t->top->ldir = dir;
}

static void remote_mkdir_done(evssh_sftp *sftp, int status, void *ud) {
  mkdir_ctx *m = ud;
  sftp_tree *t = m->t;
  if (sftp->freeing) {
    mkdir_ctx_free(m);
    return;
  }
  if (status == EVSSH_ESFTP) {
    /* mkdir of a directory that exists fails in version 3: see whether
       that is all it was */
    memcpy(m->error, sftp->error, sizeof m->error);
    m->fx = sftp->status_code;
    sftp->internal++;
    int rc = evssh_sftp_stat(sftp, m->remote, remote_dir_checked, m);
    sftp->internal--;
    if (rc == EVSSH_OK) return;
  }
  t->waiting = false;
  if (status) tree_fail(t, status);
  else enter_local(t, m);
  mkdir_ctx_free(m);
  step(t);
}

static void remote_dir_checked(evssh_sftp *sftp, int status, const evssh_sftp_attrs *a, void *ud) {
  mkdir_ctx *m = ud;
  sftp_tree *t = m->t;
  if (sftp->freeing) {
    mkdir_ctx_free(m);
    return;
  }
  t->waiting = false;
  if (!status && (a->flags & EVSSH_SFTP_ATTR_PERMISSIONS) && S_ISDIR(a->permissions)) {
    enter_local(t, m);
  } else {
    memcpy(sftp->error, m->error, sizeof sftp->error);
    sftp->status_code = m->fx;
    tree_fail(t, status ? status : EVSSH_ESFTP);
  }
  mkdir_ctx_free(m);
  step(t);
}

static void remote_mkdir(sftp_tree *t, const char *local, const char *remote, const struct stat *st) {
  mkdir_ctx *m = calloc(1, sizeof *m);
  if (!m || !(m->local = strdup(local)) || !(m->remote = strdup(remote))) {
    if (m) mkdir_ctx_free(m);
    oom(t);
    return;
  }
  m->t = t;
  m->st = *st;
  evssh_sftp_attrs a;
  memset(&a, 0, sizeof a);
  a.flags = EVSSH_SFTP_ATTR_PERMISSIONS;
  a.permissions = st->st_mode & 0777;
  t->sftp->internal++;
  int rc = evssh_sftp_mkdir(t->sftp, remote, &a, remote_mkdir_done, m);
  t->sftp->internal--;
  if (rc) {
    mkdir_ctx_free(m);
    tree_fail(t, rc);
    return;
  }
  t->waiting = true;
}

/* the next local entry of the top directory: false when none is left */
static bool upload_next(sftp_tree *t) {
  tree_dir *d = t->top;
  errno = 0;
  struct dirent *e = readdir(d->ldir);
  if (!e) {
    if (errno) local_fail(t, "read directory", d->local);
    pop_dir(t, true);
    return false;
  }
  if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) return true;
  struct stat st;
  if (fstatat(dirfd(d->ldir), e->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
    char *p = join(d->local, e->d_name);
    local_fail(t, "stat", p ? p : e->d_name);
    free(p);
    return true;
  }
  if (S_ISREG(st.st_mode)) {
    start_file(t, e->d_name, (uint64_t)st.st_size);
  } else if (S_ISDIR(st.st_mode)) {
    char *local = join(d->local, e->d_name), *remote = join(d->remote, e->d_name);
    if (local && remote) remote_mkdir(t, local, remote, &st);
    else oom(t);
    free(local);
    free(remote);
  } /* symlinks, devices, sockets: not copied, as OpenSSH's sftp -r */
  return true;
}

/* the whole local tree's size, for progress */
static void count_local(const char *path, uint64_t *total, int depth) {
  DIR *dir = depth < 256 ? opendir(path) : NULL;
  if (!dir) return;
  struct dirent *e;
  while ((e = readdir(dir))) {
    struct stat st;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW)) continue;
    if (S_ISREG(st.st_mode)) {
      *total += (uint64_t)st.st_size;
    } else if (S_ISDIR(st.st_mode)) {
      char *p = join(path, e->d_name);
      if (p) count_local(p, total, depth + 1);
      free(p);
    }
  }
  closedir(dir);
}

/* ------------------------------------------------------ download */

static void batch_read(evssh_sftp *sftp, int status, const evssh_sftp_name *names, size_t count, void *ud) {
  sftp_tree *t = ud;
  if (sftp->freeing) return;
  t->waiting = false;
  if (status) {
    tree_fail(t, status);
  } else if (count == 0) {
    t->top->eof = true;
  } else {
    tree_entry **tail = &t->top->entries;
    while (*tail) tail = &(*tail)->next;
    for (size_t i = 0; i < count; i++) {
      const char *n = names[i].filename;
      if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
      if (strlen(n) != names[i].filename_len || strchr(n, '/')) {
        sftp_set_error(sftp, 0, "sftp: the server listed a bad name in %s", t->top->remote);
        tree_fail(t, EVSSH_EPROTO);
        break;
      }
      tree_entry *e = calloc(1, sizeof *e);
      if (!e || !(e->name = strdup(n))) {
        free(e);
        oom(t);
        break;
      }
      e->attrs = names[i].attrs;
      e->attrs.extended = NULL;
      e->attrs.extended_len = 0;
      *tail = e;
      tail = &e->next;
    }
  }
  step(t);
}

typedef struct opendir_ctx {
  sftp_tree *t;
  char *local, *remote;
  evssh_sftp_attrs attrs;
} opendir_ctx;

static void remote_opened(evssh_sftp *sftp, int status, evssh_sftp_file *dir, void *ud) {
  opendir_ctx *o = ud;
  sftp_tree *t = o->t;
  if (sftp->freeing) {
    free(o->local);
    free(o->remote);
    free(o);
    return;
  }
  t->waiting = false;
  if (status) {
    tree_fail(t, status);
  } else if (push_dir(t, o->local, o->remote, o->attrs.permissions, o->attrs.atime, o->attrs.mtime)) {
    evssh_sftp_close(sftp, dir, NULL, NULL);
    oom(t);
  } else {
    t->top->rdir = dir;
  }
  free(o->local);
  free(o->remote);
  free(o);
  step(t);
}

static void enter_remote(sftp_tree *t, const char *local, const char *remote, const evssh_sftp_attrs *a) {
  if (mkdir(local, 0777) && errno != EEXIST) {
    local_fail(t, "create directory", local);
    return;
  }
  struct stat st;
  if (stat(local, &st) || !S_ISDIR(st.st_mode)) {
    sftp_set_error(t->sftp, 0, "local: %s exists and is not a directory", local);
    tree_fail(t, EVSSH_EINVAL);
    return;
  }
  opendir_ctx *o = calloc(1, sizeof *o);
  if (!o || !(o->local = strdup(local)) || !(o->remote = strdup(remote))) {
    if (o) free(o->local);
    free(o);
    oom(t);
    return;
  }
  o->t = t;
  o->attrs = *a;
  t->sftp->internal++;
  int rc = evssh_sftp_opendir(t->sftp, remote, remote_opened, o);
  t->sftp->internal--;
  if (rc) {
    free(o->local);
    free(o->remote);
    free(o);
    tree_fail(t, rc);
    return;
  }
  t->waiting = true;
}

/* the next remote entry of the top directory: false when a request had to
   go out or the directory is done */
static bool download_next(sftp_tree *t) {
  tree_dir *d = t->top;
  tree_entry *e = d->entries;
  if (!e) {
    if (d->eof) {
      pop_dir(t, true);
      return false;
    }
    t->sftp->internal++;
    int rc = evssh_sftp_readdir(t->sftp, d->rdir, batch_read, t);
    t->sftp->internal--;
    if (rc) tree_fail(t, rc);
    else t->waiting = true;
    return false;
  }
  d->entries = e->next;
  uint32_t mode = e->attrs.permissions;
  bool typed = (e->attrs.flags & EVSSH_SFTP_ATTR_PERMISSIONS) != 0;
  if (typed && S_ISREG(mode)) {
    start_file(t, e->name, (e->attrs.flags & EVSSH_SFTP_ATTR_SIZE) ? e->attrs.size : 0);
  } else if (typed && S_ISDIR(mode)) {
    char *local = join(d->local, e->name), *remote = join(d->remote, e->name);
    if (local && remote) enter_remote(t, local, remote, &e->attrs);
    else oom(t);
    free(local);
    free(remote);
  } /* links and the rest are not copied */
  free(e->name);
  free(e);
  return true;
}

/* ------------------------------------------------------ the walk */

static void step(sftp_tree *t) {
  while (!t->status && !t->waiting && t->running < TREE_PARALLEL && t->top && sftp_usable(t->sftp)) {
    if (t->upload) upload_next(t);
    else download_next(t);
  }
  if (!t->top && !t->waiting) t->walked = true;
  if (!t->status && !sftp_usable(t->sftp) && !t->running && !t->waiting) {
    sftp_abort_code(t->sftp);
    tree_fail(t, EVSSH_ECLOSED);
  }
  maybe_end(t);
}

static void root_checked(evssh_sftp *sftp, int status, const evssh_sftp_attrs *a, void *ud) {
  sftp_tree *t = ud;
  if (sftp->freeing) return;
  t->waiting = false;
  if (status) {
    tree_fail(t, status);
  } else if ((a->flags & EVSSH_SFTP_ATTR_PERMISSIONS) && S_ISDIR(a->permissions)) {
    evssh_sftp_attrs copy = *a;
    copy.extended = NULL;
    copy.extended_len = 0;
    enter_remote(t, t->root_local, t->root_remote, &copy);
  } else {
    /* a plain file with the flag is simply that file */
    start_xfer(t, t->root_local, t->root_remote, (a->flags & EVSSH_SFTP_ATTR_SIZE) ? a->size : 0);
  }
  step(t);
}

static void trees_free(evssh_sftp *sftp) {
  while (sftp->trees) tree_free(sftp->trees);
}

int sftp_tree_start(evssh_sftp *sftp, bool upload, const char *local, const char *remote, uint64_t offset,
                    unsigned flags, evssh_sftp_progress_cb progress, evssh_sftp_cb done, void *ud) {
  if (offset != 0 && offset != EVSSH_SFTP_RESUME) return EVSSH_EINVAL;
  if (!sftp_usable(sftp)) {
    if (sftp->state == SFTP_DEAD) sftp_abort_code(sftp);
    return EVSSH_ECLOSED;
  }
  struct stat st;
  if (upload) {
    if (stat(local, &st)) {
      sftp_set_error(sftp, 0, "local: %s: %s", local, strerror(errno));
      return EVSSH_EINVAL;
    }
    if (!S_ISDIR(st.st_mode))
      return sftp_user_xfer_start(sftp, true, local, remote, offset, flags & ~(unsigned)EVSSH_SFTP_RECURSIVE,
                                  progress, done, ud);
  }
  sftp_tree *t = calloc(1, sizeof *t);
  if (!t) return EVSSH_ENOMEM;
  sftp->trees_free = trees_free;
  t->sftp = sftp;
  t->upload = upload;
  t->flags = flags;
  t->offset = offset;
  t->progress = progress;
  t->done = done;
  t->ud = ud;
  t->next = sftp->trees;
  if (sftp->trees) sftp->trees->prev = t;
  sftp->trees = t;
  t->root_local = strdup(local);
  t->root_remote = strdup(remote);
  if (!t->root_local || !t->root_remote) {
    tree_free(t);
    return EVSSH_ENOMEM;
  }
  if (upload) {
    count_local(local, &t->total, 0);
    remote_mkdir(t, local, remote, &st);
  } else {
    /* the root's type decides between a tree and a single file */
    sftp->internal++;
    int rc = evssh_sftp_stat(sftp, remote, root_checked, t);
    sftp->internal--;
    if (rc) {
      tree_free(t);
      return rc;
    }
    t->waiting = true;
  }
  if (t->status) {
    int rc = t->status;
    memcpy(sftp->error, t->cause, sizeof sftp->error);
    tree_free(t);
    return rc;
  }
  return EVSSH_OK;
}
