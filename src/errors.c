/* errors.c owns the names of the library's error codes and the helper that
 * fills the (err, errlen) message buffers the layers pass around. */
#include "evssh.h"
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

void evssh_errorf(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

const char *evssh_strerror(int code) {
  switch (code) {
  case EVSSH_OK: return "success";
  case EVSSH_EINVAL: return "invalid argument or option";
  case EVSSH_ENOMEM: return "out of memory";
  case EVSSH_ECONNECT: return "connection failed";
  case EVSSH_ETIMEOUT: return "timed out";
  case EVSSH_EPROTO: return "protocol error";
  case EVSSH_EHOSTKEY: return "host key verification failed";
  case EVSSH_EHOSTKEY_CHANGED: return "host key changed or revoked";
  case EVSSH_EAUTH: return "authentication failed";
  case EVSSH_ECLOSED: return "session or channel closed";
  case EVSSH_EDISCONNECT: return "disconnected by peer";
  case EVSSH_EBUSY: return "busy";
  case EVSSH_ENOALGO: return "no algorithm in common";
  case EVSSH_ECHANNEL: return "channel open refused";
  case EVSSH_EAGAIN: return "send queue full: try again after on_drain";
  case EVSSH_ESFTP: return "SFTP server error";
  case EVSSH_ELIMIT: return "size limit reached";
  default: return "unknown error";
  }
}
