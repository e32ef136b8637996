/* registry.c owns the keyed registry and the ring of slots described in
 * registry.h. */
#include "registry.h"

#include "evssh.h"

#include <stdlib.h>
#include <string.h>

int registry_set(registry *r, const char *key, registry_fn fn, void *ud) {
  if (!r || !key) return EVSSH_EINVAL;
  registry_entry **pp = &r->head;
  while (*pp && strcmp((*pp)->key, key) != 0) pp = &(*pp)->next;
  if (!fn && !ud) {
    if (*pp) {
      registry_entry *gone = *pp;
      *pp = gone->next;
      free(gone->key);
      free(gone);
    }
    return EVSSH_OK;
  }
  if (*pp) {
    (*pp)->fn = fn;
    (*pp)->ud = ud;
    return EVSSH_OK;
  }
  registry_entry *e = calloc(1, sizeof *e);
  size_t n = strlen(key);
  if (!e || !(e->key = malloc(n + 1))) {
    free(e);
    return EVSSH_ENOMEM;
  }
  memcpy(e->key, key, n + 1);
  e->fn = fn;
  e->ud = ud;
  *pp = e;
  return EVSSH_OK;
}

const registry_entry *registry_find(const registry *r, const char *key, size_t len) {
  for (const registry_entry *e = r ? r->head : NULL; e; e = e->next)
    if (strlen(e->key) == len && memcmp(e->key, key, len) == 0) return e;
  return NULL;
}

void *registry_value(const registry *r, const char *key) {
  const registry_entry *e = key ? registry_find(r, key, strlen(key)) : NULL;
  return e ? e->ud : NULL;
}

void registry_clear(registry *r) {
  while (r->head) {
    registry_entry *e = r->head;
    r->head = e->next;
    free(e->key);
    free(e);
  }
}

void ring_init(ring *q, size_t elem) {
  memset(q, 0, sizeof *q);
  q->elem = elem;
}

void *ring_at(const ring *q, size_t i) { return q->slots + ((q->head + i) % q->cap) * q->elem; }

int ring_push(ring *q, const void *slot) {
  if (q->count == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 8;
    unsigned char *v = malloc(cap * q->elem);
    if (!v) return EVSSH_ENOMEM;
    for (size_t i = 0; i < q->count; i++) memcpy(v + i * q->elem, ring_at(q, i), q->elem);
    free(q->slots);
    q->slots = v;
    q->cap = cap;
    q->head = 0;
  }
  memcpy(q->slots + ((q->head + q->count) % q->cap) * q->elem, slot, q->elem);
  q->count++;
  return EVSSH_OK;
}

bool ring_pop(ring *q, void *out) {
  if (q->count == 0) return false;
  if (out) memcpy(out, ring_at(q, 0), q->elem);
  q->head = (q->head + 1) % q->cap;
  q->count--;
  return true;
}

void ring_unpush(ring *q) {
  if (q->count) q->count--;
}

void ring_release(ring *q) {
  free(q->slots);
  size_t elem = q->elem;
  memset(q, 0, sizeof *q);
  q->elem = elem;
}
