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
  pthread_rwlock_init(&t->lock, NULL);
  t->generation = 0;
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
  t->generation++;
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
