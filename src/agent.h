/* ssh-agent client (draft-miller-ssh-agent): list the agent's identities and
 * ask it to sign. The agent is a local UNIX socket, so each request is a
 * short, bounded, blocking exchange: the whole request/reply must complete
 * within EVSSH_AGENT_TIMEOUT_MS (10 s) or the call fails with
 * EVSSH_ETIMEOUT, after which the connection is unusable (ECLOSED). A
 * caller running an event loop of many sessions pays at most that per
 * request, and normally well under a millisecond. */
#ifndef EVSSH_AGENT_H
#define EVSSH_AGENT_H

#include "cert.h"
#include "evssh.h"
#include <stddef.h>

#define EVSSH_AGENT_TIMEOUT_MS 10000
/* largest agent reply we accept (identity lists of a few hundred keys fit) */
#define EVSSH_AGENT_MAX_MSG (256u * 1024u)

typedef struct evssh_agent evssh_agent;

typedef struct evssh_agent_identity {
  unsigned char *blob; /* public key blob, as offered to the server */
  size_t blob_len;
  char *comment;       /* NUL-terminated; cut at an embedded NUL */
  char type[64];       /* the blob's key type ("ssh-ed25519", "ssh-rsa-cert-v01@openssh.com", ...; "" if unreadable) */
  evssh_cert *cert;    /* for a certificate we can parse: it (type, the key it certifies in
                          cert->key_blob, principals, validity); NULL for plain keys and for
                          certificates of types we do not support (sk-*, DSA) */
} evssh_agent_identity;

/* Connect to the agent. sock: a socket path (IdentityAgent, already
   ~-expanded by the caller), "$NAME" for the path in environment variable
   NAME, or NULL / "SSH_AUTH_SOCK" for $SSH_AUTH_SOCK. "none" is refused
   (IdentityAgent none disables the agent).
   Errors: EVSSH_EINVAL "no ssh-agent: SSH_AUTH_SOCK is not set", path too
   long; EVSSH_ECONNECT "cannot connect to ssh-agent at PATH: <errno text>". */
int evssh_agent_open(const char *sock, evssh_agent **out, char *err, size_t errlen);

/* SSH2_AGENTC_REQUEST_IDENTITIES. On success *ids (n entries, possibly 0)
   belongs to the caller: free with evssh_agent_identities_free. Keys of
   types evssh cannot use (security keys, DSA) are listed too; certificates
   are recognised (type, cert). A certificate that does not parse is listed
   with cert NULL, not an error: the rest of the list stays usable.
   Errors: EVSSH_ETIMEOUT, EVSSH_EPROTO (bad or oversized reply), EVSSH_EAUTH
   (agent answered FAILURE, e.g. locked), EVSSH_ECLOSED (agent went away or
   an earlier exchange broke the connection). */
int evssh_agent_identities(evssh_agent *a, evssh_agent_identity **ids, size_t *n,
                           char *err, size_t errlen);
void evssh_agent_identities_free(evssh_agent_identity *ids, size_t n);

/* SSH2_AGENTC_SIGN_REQUEST for the key blob with signature algorithm alg
   (rsa-sha2-256 / rsa-sha2-512 set the agent's SHA-2 flags; others send 0).
   For a certificate identity, blob is the certificate and alg may be its
   certificate algorithm (rsa-sha2-512-cert-v01@openssh.com, ...): the flags
   and the expected signature follow the plain algorithm it stands for.
   Appends the signature blob string(alg) || string(sig) to sig_blob, after
   checking that the agent signed with alg. Errors as for identities;
   EVSSH_EAUTH when the agent refuses (unknown key, confirmation denied). */
int evssh_agent_sign(evssh_agent *a, const unsigned char *blob, size_t blob_len,
                     const char *alg, const unsigned char *data, size_t len,
                     evssh_buf *sig_blob, char *err, size_t errlen);

/* Per-request deadline in milliseconds (default EVSSH_AGENT_TIMEOUT_MS). */
void evssh_agent_set_timeout(evssh_agent *a, int ms);

void evssh_agent_close(evssh_agent *a); /* NULL ok */

/* The socket path the agent was reached at (after $SSH_AUTH_SOCK or
   "$NAME" was looked up): what the shared cache keys identity lists by. */
const char *evssh_agent_path(const evssh_agent *a);

#endif
