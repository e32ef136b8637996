/* sftp_codec.c owns the SFTP wire forms that several requests share: ATTRS
 * both ways (draft-ietf-secsh-filexfer-02 section 5: flags, then only the
 * fields whose flag is set; unknown flag bits carry no fields in version 3
 * and are ignored, as OpenSSH does), NAME replies unpacked into entries
 * whose strings are NUL-terminated copies in the sftp's scratch buffer, the
 * names of status codes and packet types for messages, and the printable
 * copy of anything the server wrote before it reaches a message. Every
 * byte is read through evssh_reader's bounds checks. */
#include "sftp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sftp_put_attrs(evssh_buf *b, const evssh_sftp_attrs *a) {
  static const evssh_sftp_attrs none;
  if (!a) a = &none;
  uint32_t flags = a->flags & (EVSSH_SFTP_ATTR_SIZE | EVSSH_SFTP_ATTR_UIDGID | EVSSH_SFTP_ATTR_PERMISSIONS |
                               EVSSH_SFTP_ATTR_ACMODTIME | EVSSH_SFTP_ATTR_EXTENDED);
  if ((flags & EVSSH_SFTP_ATTR_EXTENDED) && a->extended_len && !a->extended) return EVSSH_EINVAL;
  if (flags & EVSSH_SFTP_ATTR_EXTENDED) {
    /* the caller's pairs go out as they are, but must be what they claim */
    evssh_reader r = {a->extended, a->extended_len};
    for (uint32_t i = 0; i < a->extended_count; i++) {
      const char *s;
      size_t n;
      if (evssh_read_string(&r, &s, &n) || evssh_read_string(&r, &s, &n)) return EVSSH_EINVAL;
    }
    if (r.left) return EVSSH_EINVAL;
  }
  int rc = evssh_buf_put_u32(b, flags);
  if (!rc && (flags & EVSSH_SFTP_ATTR_SIZE)) rc = evssh_buf_put_u64(b, a->size);
  if (!rc && (flags & EVSSH_SFTP_ATTR_UIDGID)) rc = evssh_buf_put_u32(b, a->uid);
  if (!rc && (flags & EVSSH_SFTP_ATTR_UIDGID)) rc = evssh_buf_put_u32(b, a->gid);
  if (!rc && (flags & EVSSH_SFTP_ATTR_PERMISSIONS)) rc = evssh_buf_put_u32(b, a->permissions);
  if (!rc && (flags & EVSSH_SFTP_ATTR_ACMODTIME)) rc = evssh_buf_put_u32(b, a->atime);
  if (!rc && (flags & EVSSH_SFTP_ATTR_ACMODTIME)) rc = evssh_buf_put_u32(b, a->mtime);
  if (!rc && (flags & EVSSH_SFTP_ATTR_EXTENDED)) rc = evssh_buf_put_u32(b, a->extended_count);
  if (!rc && (flags & EVSSH_SFTP_ATTR_EXTENDED) && a->extended_len)
    rc = buf_append(b, a->extended, a->extended_len);
  return rc;
}

int sftp_read_attrs(evssh_reader *r, evssh_sftp_attrs *a) {
  evssh_reader save = *r;
  memset(a, 0, sizeof *a);
  int rc = evssh_read_u32(r, &a->flags);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_SIZE)) rc = evssh_read_u64(r, &a->size);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_UIDGID)) rc = evssh_read_u32(r, &a->uid);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_UIDGID)) rc = evssh_read_u32(r, &a->gid);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_PERMISSIONS)) rc = evssh_read_u32(r, &a->permissions);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_ACMODTIME)) rc = evssh_read_u32(r, &a->atime);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_ACMODTIME)) rc = evssh_read_u32(r, &a->mtime);
  if (!rc && (a->flags & EVSSH_SFTP_ATTR_EXTENDED)) {
    rc = evssh_read_u32(r, &a->extended_count);
    a->extended = r->p;
    for (uint32_t i = 0; !rc && i < a->extended_count; i++) {
      const char *s;
      size_t n;
      rc = evssh_read_string(r, &s, &n);
      if (!rc) rc = evssh_read_string(r, &s, &n);
    }
    if (!rc) a->extended_len = (size_t)(r->p - a->extended);
  }
  if (rc) {
    *r = save;
    memset(a, 0, sizeof *a);
    return EVSSH_EPROTO;
  }
  a->flags &= EVSSH_SFTP_ATTR_SIZE | EVSSH_SFTP_ATTR_UIDGID | EVSSH_SFTP_ATTR_PERMISSIONS |
              EVSSH_SFTP_ATTR_ACMODTIME | EVSSH_SFTP_ATTR_EXTENDED;
  if (!(a->flags & EVSSH_SFTP_ATTR_EXTENDED)) a->extended = NULL;
  return EVSSH_OK;
}

const char *sftp_fx_name(uint32_t code) {
  static const char *const names[] = {"OK", "End of file", "No such file", "Permission denied",
                                      "Failure", "Bad message", "No connection", "Connection lost",
                                      "Operation unsupported"};
  return code < sizeof names / sizeof names[0] ? names[code] : "Unknown status";
}

const char *sftp_request_name(uint8_t type) {
  switch (type) {
  case SSH_FXP_INIT: return "INIT";
  case SSH_FXP_VERSION: return "VERSION";
  case SSH_FXP_OPEN: return "OPEN";
  case SSH_FXP_CLOSE: return "CLOSE";
  case SSH_FXP_READ: return "READ";
  case SSH_FXP_WRITE: return "WRITE";
  case SSH_FXP_LSTAT: return "LSTAT";
  case SSH_FXP_FSTAT: return "FSTAT";
  case SSH_FXP_SETSTAT: return "SETSTAT";
  case SSH_FXP_FSETSTAT: return "FSETSTAT";
  case SSH_FXP_OPENDIR: return "OPENDIR";
  case SSH_FXP_READDIR: return "READDIR";
  case SSH_FXP_REMOVE: return "REMOVE";
  case SSH_FXP_MKDIR: return "MKDIR";
  case SSH_FXP_RMDIR: return "RMDIR";
  case SSH_FXP_REALPATH: return "REALPATH";
  case SSH_FXP_STAT: return "STAT";
  case SSH_FXP_RENAME: return "RENAME";
  case SSH_FXP_READLINK: return "READLINK";
  case SSH_FXP_SYMLINK: return "SYMLINK";
  case SSH_FXP_STATUS: return "STATUS";
  case SSH_FXP_HANDLE: return "HANDLE";
  case SSH_FXP_DATA: return "DATA";
  case SSH_FXP_NAME: return "NAME";
  case SSH_FXP_ATTRS: return "ATTRS";
  case SSH_FXP_EXTENDED: return "EXTENDED";
  case SSH_FXP_EXTENDED_REPLY: return "EXTENDED_REPLY";
  default: return "unknown type";
  }
}

void sftp_printable(char *out, size_t outlen, const char *data, size_t len) {
  if (!outlen) return;
  size_t n = len < outlen - 1 ? len : outlen - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  out[n] = 0;
}

/* Appends a NUL-terminated copy to the scratch buffer; *off is where. */
static int scratch_put(evssh_sftp *sftp, const char *s, size_t n, size_t *off) {
  *off = buf_avail(&sftp->scratch);
  if (buf_append(&sftp->scratch, s, n) || buf_append(&sftp->scratch, "", 1)) return EVSSH_ENOMEM;
  return EVSSH_OK;
}

int sftp_scratch_string(evssh_sftp *sftp, evssh_reader *r, size_t *off) {
  const char *s;
  size_t n;
  if (evssh_read_string(r, &s, &n)) return EVSSH_EPROTO;
  return scratch_put(sftp, s, n, off);
}

int sftp_read_names(evssh_sftp *sftp, evssh_reader *r, evssh_sftp_name **names, size_t *count) {
  uint32_t n;
  *names = NULL;
  *count = 0;
  if (evssh_read_u32(r, &n)) return EVSSH_EPROTO;
  /* each entry takes at least 12 bytes: a count the packet cannot hold is
     refused before anything is allocated for it */
  if (n > r->left / 12) return EVSSH_EPROTO;
  if (n == 0) return EVSSH_OK;
  evssh_sftp_name *v = calloc(n, sizeof *v);
  size_t *offs = calloc((size_t)n * 2, sizeof *offs);
  if (!v || !offs) {
    free(v);
    free(offs);
    return EVSSH_ENOMEM;
  }
  buf_reset(&sftp->scratch);
  int rc = EVSSH_OK;
  for (uint32_t i = 0; i < n && !rc; i++) {
    const char *fn, *ln;
    size_t fl, ll;
    if (evssh_read_string(r, &fn, &fl) || evssh_read_string(r, &ln, &ll) || sftp_read_attrs(r, &v[i].attrs)) {
      rc = EVSSH_EPROTO;
      break;
    }
    v[i].filename_len = fl;
    rc = scratch_put(sftp, fn, fl, &offs[2 * i]);
    if (!rc) rc = scratch_put(sftp, ln, ll, &offs[2 * i + 1]);
  }
  if (rc) {
    free(v);
    free(offs);
    return rc;
  }
  /* the scratch buffer may have moved while it grew: pointers only now */
  const char *base = (const char *)buf_ptr(&sftp->scratch);
  for (uint32_t i = 0; i < n; i++) {
    v[i].filename = base + offs[2 * i];
    v[i].longname = base + offs[2 * i + 1];
  }
  free(offs);
  *names = v;
  *count = n;
  return EVSSH_OK;
}
