/* Two small containers every upper layer shares: a keyed registry (string
 * key -> callback and user pointer: channel request handlers, global
 * request handlers, channel-open handlers, channel and session properties)
 * and a ring of fixed-size slots (FIFOs of reply callbacks and of replies
 * we owe). One implementation each, so bounds and growth are checked once. */
#ifndef EVSSH_REGISTRY_H
#define EVSSH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

/* any function pointer, stored generically and cast back by the user */
typedef void (*registry_fn)(void);

typedef struct registry_entry {
  struct registry_entry *next;
  char *key;
  registry_fn fn;
  void *ud;
} registry_entry;

typedef struct registry { registry_entry *head; } registry;

/* Set key to (fn, ud), replacing an entry with that key; with fn and ud
   both NULL the entry is removed. EVSSH_OK or EVSSH_ENOMEM/EINVAL. */
int registry_set(registry *r, const char *key, registry_fn fn, void *ud);
/* Entry for a key given by pointer and length (not NUL-terminated), or NULL. */
const registry_entry *registry_find(const registry *r, const char *key, size_t len);
/* the ud of key's entry (a property's value), NULL when none */
void *registry_value(const registry *r, const char *key);
void registry_clear(registry *r);

typedef struct ring {
  unsigned char *slots;
  size_t elem, head, count, cap;
} ring;

void ring_init(ring *q, size_t elem);
/* copy one slot in at the back */
int  ring_push(ring *q, const void *slot);
/* copy the front slot out; false when empty */
bool ring_pop(ring *q, void *out);
/* drop the slot pushed last (undo) */
void ring_unpush(ring *q);
/* i-th slot from the front (i < count) */
void *ring_at(const ring *q, size_t i);
void ring_release(ring *q);

#endif
