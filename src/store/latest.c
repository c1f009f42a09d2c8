/*
 * latest.c -- the latest-row table of the store backends (latest.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/latest.h"

static unsigned latest_slot(const char *name)
{
  unsigned h = 2166136261u; /* FNV-1a */
  for (; *name; name++)
    h = (h ^ (unsigned char)*name) * 16777619u;
  return h & (STORE_LATEST_SLOTS - 1);
}

void store_latest_init(struct store_latest *t, int enabled)
{
  memset(t->slot, 0, sizeof t->slot);
  static atomic_ulong ids;
  pthread_rwlock_init(&t->lock, NULL);
  atomic_init(&t->generation, 0);
  t->id = atomic_fetch_add(&ids, 1) + 1;
  t->enabled = enabled;
}

void store_latest_destroy(struct store_latest *t)
{
  store_latest_reset(t, 0);
  pthread_rwlock_destroy(&t->lock);
}

int store_latest_get(struct store_latest *t, const char *name, struct store_model_row *row,
                     unsigned long *gen)
{
  int hit = 0;
  pthread_rwlock_rdlock(&t->lock);
  *gen = t->generation;
  struct store_latest_slot *l = &t->slot[latest_slot(name)];
  if (t->enabled && l->used && strcmp(l->row.name, name) == 0) {
    *row = l->row;
    row->body = NULL;
    row->description = NULL;
    hit = l->row.description == NULL || (row->description = strdup(l->row.description)) != NULL;
  }
  pthread_rwlock_unlock(&t->lock);
  return hit;
}

void store_latest_put(struct store_latest *t, const struct store_model_row *row,
                      unsigned long gen)
{
  char *desc = row->description ? strdup(row->description) : NULL;
  if (row->description != NULL && desc == NULL)
    return;
  pthread_rwlock_wrlock(&t->lock);
  if (gen == t->generation && t->enabled) {
    struct store_latest_slot *l = &t->slot[latest_slot(row->name)];
    char *old = l->used ? l->row.description : NULL;
    l->row = *row;
    l->row.body = NULL;
    l->row.description = desc;
    l->used = 1;
    desc = old;
  }
  pthread_rwlock_unlock(&t->lock);
  free(desc);
}

void store_latest_reset(struct store_latest *t, int enabled)
{
  pthread_rwlock_wrlock(&t->lock);
  atomic_fetch_add_explicit(&t->generation, 1, memory_order_release);
  if (enabled >= 0)
    t->enabled = enabled;
  for (int i = 0; i < STORE_LATEST_SLOTS; i++) {
    if (t->slot[i].used)
      free(t->slot[i].row.description);
    t->slot[i].used = 0;
    t->slot[i].row.description = NULL;
  }
  pthread_rwlock_unlock(&t->lock);
}

/* Per thread: the last names store_latest_digest answered. */
static _Thread_local struct {
  unsigned long id, gen;
  char name[ACED_NAME_MAX + 1];
  char digest[72];
} memo[4];
static _Thread_local unsigned memo_next;

int store_latest_digest(struct store_latest *t, const char *name, char *digest)
{
  unsigned long g = atomic_load_explicit(&t->generation, memory_order_acquire);
  for (int i = 0; i < 4; i++)
    if (memo[i].id == t->id && memo[i].gen == g && strcmp(memo[i].name, name) == 0) {
      memcpy(digest, memo[i].digest, sizeof memo[i].digest);
      return 1;
    }
  if (strlen(name) > ACED_NAME_MAX)
    return 0;
  pthread_rwlock_rdlock(&t->lock);
  struct store_latest_slot *l = &t->slot[latest_slot(name)];
  int hit = t->enabled && l->used && strcmp(l->row.name, name) == 0;
  g = atomic_load_explicit(&t->generation, memory_order_relaxed);
  if (hit)
    memcpy(digest, l->row.digest, sizeof l->row.digest);
  pthread_rwlock_unlock(&t->lock);
  if (hit) {
    unsigned i = memo_next++ % 4;
    memo[i].id = t->id;
    memo[i].gen = g;
    strcpy(memo[i].name, name);
    memcpy(memo[i].digest, digest, sizeof memo[i].digest);
  }
  return hit;
}
