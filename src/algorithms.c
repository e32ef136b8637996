/* algorithms.c owns the public lists of algorithm names: what evssh
 * implements and what it proposes by default, per kind, as the crypto
 * files (kex.c, hostkey.c, cipher.c, mac.c) and the transport's
 * compression offer (none) define them. A binding reads them instead of copying
 * them (the Ruby gem's Transport::Algorithms). */
#include "evssh.h"

#include "cipher.h"
#include "hostkey.h"
#include "kex.h"
#include "mac.h"

#include <string.h>

typedef struct algo_list {
  const char *what;
  const char *(*supported)(void);
  const char *(*defaults)(void);
} algo_list;

/* the transport offers no compression method but "none" */
static const char *compression_list(void) { return "none"; }

static const algo_list lists[] = {
  {"kex", evssh_kex_supported_list, evssh_kex_default_list},
  {"hostkey", evssh_hostkey_supported_list, evssh_hostkey_default_list},
  {"cipher", evssh_cipher_supported_list, evssh_cipher_default_list},
  {"mac", evssh_mac_supported_list, evssh_mac_default_list},
  /* user keys are signed with the host key algorithms' names */
  {"pubkey", evssh_hostkey_supported_list, evssh_hostkey_default_list},
  {"compression", compression_list, compression_list},
};

static const algo_list *find(const char *what) {
  for (size_t i = 0; what && i < sizeof lists / sizeof *lists; i++)
    if (strcmp(lists[i].what, what) == 0) return &lists[i];
  return NULL;
}

const char *evssh_supported_algorithms(const char *what) {
  const algo_list *l = find(what);
  return l ? l->supported() : NULL;
}

const char *evssh_default_algorithms(const char *what) {
  const algo_list *l = find(what);
  return l ? l->defaults() : NULL;
}
