/* sftp_parallel.c owns the extra channels of parallel uploads. A server
 * grants each session channel a fixed window (OpenSSH: 2 MiB), which no
 * client can enlarge, so one channel moves at most a window per round trip;
 * an upload spread over several "sftp" subsystem channels of the same
 * connection has a window on each. Each extra channel (a lane) is a whole
 * evssh_sftp of its own, opened here lazily before the first upload big
 * enough to use it and kept for later ones; the transfer engine
 * (sftp_transfer.c) opens the remote file on each ready lane and spreads
 * its WRITEs over them. A lane the server refuses (MaxSessions, no
 * subsystem) lowers the count for the rest of the sftp's life, with a
 * line in the session's log: never an upload's failure. */
#include "sftp.h"

#include "base.h"
#include "session.h"

#include <stdarg.h>
#include <stdio.h>

#define LANE_SLOTS (SFTP_MAX_CHANNELS - 1u)

void sftp_log(evssh_sftp *sftp, int level, const char *fmt, ...) {
  if (!sftp->session) return;
  va_list ap;
  va_start(ap, fmt);
  diag_vlog(session_diag(sftp->session), level, fmt, ap);
  va_end(ap);
}

static unsigned lanes_held(const evssh_sftp *sftp) {
  unsigned n = 0;
  for (unsigned i = 0; i < LANE_SLOTS; i++) n += sftp->lanes[i] != NULL;
  return n;
}

static void drop_lane(evssh_sftp *sftp, unsigned i) {
  evssh_sftp *lane = sftp->lanes[i];
  sftp->lanes[i] = NULL;
  evssh_sftp_free(lane); /* deferred when inside one of its callbacks */
}

/* a lane's channel brought data: its parent's uploads may send more */
static void lane_pump(evssh_sftp *lane) {
  evssh_sftp *sftp = lane->parent;
  if (sftp && sftp->xfers_pump) sftp->xfers_pump(sftp);
}

static void lane_ready(evssh_sftp *lane, int status, void *ud) {
  evssh_sftp *sftp = ud;
  if (status == EVSSH_OK) {
    sftp_log(sftp, EVSSH_LOG_DEBUG, "sftp: an extra upload channel is ready");
    lane_pump(lane);
    return;
  }
  unsigned i = 0;
  while (i < LANE_SLOTS && sftp->lanes[i] != lane) i++;
  if (i == LANE_SLOTS) return;
  sftp->lanes[i] = NULL;
  if (sftp_usable(sftp)) {
    unsigned have = 1 + lanes_held(sftp);
    if (sftp->channels_ceiling > have) sftp->channels_ceiling = have;
    sftp_log(sftp, EVSSH_LOG_INFO, "sftp: an extra upload channel could not be opened (%s): uploads use %u channel%s",
             lane->error, have, have == 1 ? "" : "s");
  }
  evssh_sftp_free(lane);
}

void sftp_lanes_want(evssh_sftp *sftp, uint64_t bytes, uint32_t block) {
  if (sftp->parent || !sftp_usable(sftp)) return;
  for (unsigned i = 0; i < LANE_SLOTS; i++) {
    /* a lane that died is replaced once no transfer holds it */
    if (sftp->lanes[i] && sftp->lanes[i]->state == SFTP_DEAD && !sftp->lanes[i]->lane_users) drop_lane(sftp, i);
  }
  unsigned want = sftp->upload_channels < sftp->channels_ceiling ? sftp->upload_channels : sftp->channels_ceiling;
  if (want <= 1 || bytes <= (uint64_t)SFTP_LANE_MIN_BLOCKS * block) return;
  unsigned have = 1 + lanes_held(sftp);
  sftp->lanes_end = sftp_lanes_end;   /* sftp.c reaches the lanes only through the hook */
  for (unsigned i = 0; i < LANE_SLOTS && have < want; i++) {
    if (sftp->lanes[i]) continue;
    evssh_sftp *lane = evssh_sftp_open(sftp->session, lane_ready, sftp);
    if (!lane) {
      sftp->channels_ceiling = have;
      sftp_log(sftp, EVSSH_LOG_INFO, "sftp: no extra upload channel could be opened: uploads use %u channel%s",
               have, have == 1 ? "" : "s");
      return;
    }
    lane->parent = sftp;
    lane->xfers_pump = lane_pump;
    sftp->lanes[i] = lane;
    have++;
  }
}

size_t sftp_lanes_inflight(const evssh_sftp *sftp) {
  size_t n = sftp->inflight;
  for (unsigned i = 0; i < LANE_SLOTS; i++) {
    if (sftp->lanes[i]) n += sftp->lanes[i]->inflight;
  }
  return n;
}

void sftp_lanes_end(evssh_sftp *sftp, int code, bool free_them) {
  for (unsigned i = 0; i < LANE_SLOTS; i++) {
    evssh_sftp *lane = sftp->lanes[i];
    if (!lane) continue;
    if (free_them) drop_lane(sftp, i);
    else sftp_fail(lane, code, "%s", sftp->fail_msg[0] ? sftp->fail_msg : "sftp: closed");
  }
}

int evssh_sftp_set_upload_channels(evssh_sftp *sftp, unsigned n) {
  if (!sftp || sftp->parent || n == 0 || n > SFTP_MAX_CHANNELS) return EVSSH_EINVAL;
  sftp->upload_channels = n;
  sftp->channels_ceiling = SFTP_MAX_CHANNELS; /* asking again tries again */
  /* fewer wanted: lanes no transfer holds go now, the others stay idle */
  for (unsigned i = LANE_SLOTS; i-- > 0 && 1 + lanes_held(sftp) > n;) {
    if (sftp->lanes[i] && !sftp->lanes[i]->lane_users) drop_lane(sftp, i);
  }
  return EVSSH_OK;
}

unsigned evssh_sftp_upload_channels(const evssh_sftp *sftp) {
  if (!sftp) return 0;
  unsigned n = 1;
  for (unsigned i = 0; i < LANE_SLOTS; i++) n += sftp->lanes[i] && sftp_usable(sftp->lanes[i]);
  return n;
}
