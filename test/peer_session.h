/* Sessions to a harness peer for the interop tests that count what a
 * connect or an exec does (test_exec_rtt, test_multi_touch): the peer's
 * known_hosts and ed25519 key, no config file, no agent. Included by the
 * tests (static: each test program has its own copy); assertions are
 * check's. */
#ifndef EVSSH_TEST_PEER_SESSION_H
#define EVSSH_TEST_PEER_SESSION_H

#include "evssh.h"
#include "harness.h"

#include <check.h>
#include <stdio.h>

/* options set, not connected */
static inline evssh_session *peer_session_new(const harness_peer *p) {
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_ptr_nonnull(s);
  char port[16];
  snprintf(port, sizeof port, "%d", p->port);
  ck_assert_int_eq(evssh_session_read_config(s, "none"), 0);
  ck_assert_int_eq(evssh_session_option(s, "User", p->user), 0);
  ck_assert_int_eq(evssh_session_option(s, "Port", port), 0);
  ck_assert_int_eq(evssh_session_option(s, "UserKnownHostsFile", p->known_hosts), 0);
  ck_assert_int_eq(evssh_session_option(s, "GlobalKnownHostsFile", "/dev/null"), 0);
  ck_assert_int_eq(evssh_session_option(s, "IdentityFile", p->key_ed25519), 0);
  ck_assert_int_eq(evssh_session_option(s, "IdentitiesOnly", "yes"), 0);
  ck_assert_int_eq(evssh_session_option(s, "IdentityAgent", "none"), 0);
  return s;
}

/* connected, and what sshd sends after auth (hostkeys-00) taken in */
static inline evssh_session *peer_session_connected(const harness_peer *p) {
  evssh_session *s = peer_session_new(p);
  int rc = evssh_session_connect(s);
  if (rc) fprintf(stderr, "connect: %s\n", evssh_session_error(s));
  ck_assert_int_eq(rc, EVSSH_OK);
  evssh_session_process(s, 300, NULL, NULL);
  return s;
}

#endif
