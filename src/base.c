/* base.c owns the clock, logging and the first-failure record every layer
 * reports through (see base.h). It calls nothing else of the library. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t base_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *base_vasprintf(const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *base_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = base_vasprintf(fmt, ap);
  va_end(ap);
  return s;
}

void diag_vlog(const evssh_diag *d, int level, const char *fmt, va_list ap) {
  if (!d || level > d->log_level) return;
  char small[1024];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  char *msg = small, *big = NULL;
  if (n >= (int)sizeof small && (big = base_vasprintf(fmt, ap))) msg = big;
  if (d->log_cb) {
    d->log_cb(d->owner, level, msg, d->log_ud);
  } else {
    static const char *names[] = {"", "error", "info", "debug", "packet"};
    fprintf(stderr, "evssh[%s] %s: %s\n", d->label ? d->label : "?",
            names[level >= 1 && level <= 4 ? level : 0], msg);
  }
  free(big);
}

void diag_log(const evssh_diag *d, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vlog(d, level, fmt, ap);
  va_end(ap);
}

static void set_message(evssh_diag *d, const char *fmt, va_list ap) {
  char *m = base_vasprintf(fmt, ap);
  free(d->error);
  d->error = m;   /* NULL on allocation failure: the code still tells */
}

int diag_fail(evssh_diag *d, int code, const char *fmt, ...) {
  if (d->error_code != 0) return d->error_code;
  d->error_code = code;
  va_list ap;
  va_start(ap, fmt);
  set_message(d, fmt, ap);
  va_end(ap);
  diag_log(d, EVSSH_LOG_ERROR, "%s", d->error ? d->error : evssh_strerror(code));
  return code;
}

void diag_note(evssh_diag *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(d, fmt, ap);
  va_end(ap);
}

void diag_release(evssh_diag *d) {
  free(d->error);
  d->error = NULL;
}

void base_copy_elided(char *out, size_t size, const char *msg) {
  if (!size) return;
  size_t n = strlen(msg);
  if (n < size) {
    memcpy(out, msg, n + 1);
    return;
  }
  static const char gap[] = " ... ";
  size_t room = size - 1 - (sizeof gap - 1);
  size_t head = room / 3, tail = room - head;   /* the end carries the hints */
  memcpy(out, msg, head);
  memcpy(out + head, gap, sizeof gap - 1);
  memcpy(out + head + sizeof gap - 1, msg + n - tail, tail);
  out[size - 1] = 0;
}
