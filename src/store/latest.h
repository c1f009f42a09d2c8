/*
 * store/latest.h -- the latest-version row of each model name, kept in
 * memory by a backend so that the lookup every query starts with needs no
 * database round trip.  Shared by the SQLite and PostgreSQL backends;
 * nothing outside src/store/ includes it.
 *
 * Every write empties the table and bumps `generation`; a reader only
 * files a row it read under the generation it started with, so a row read
 * before a write never lands after it.  `enabled` 0 (PostgreSQL while it
 * cannot hear other replicas' writes) turns the table off: nothing is
 * served from it or filed in it.
 */
#ifndef ACED_STORE_LATEST_H
#define ACED_STORE_LATEST_H

#include <pthread.h>
#include <stdatomic.h>

#include "aced/store.h"

#define STORE_LATEST_SLOTS 1024 /* a power of two */

struct store_latest {
  pthread_rwlock_t lock; /* read by every query: readers never wait for each other */
  atomic_ulong generation; /* changed (under the write lock) by every reset */
  unsigned long id;        /* this table among all made in the process */
  int enabled;
  struct store_latest_slot {
    int used;
    struct store_model_row row; /* description owned; body always NULL */
  } slot[STORE_LATEST_SLOTS];
};

void store_latest_init(struct store_latest *t, int enabled);
void store_latest_destroy(struct store_latest *t);
/* Copy the row of `name` into *row (description strdup'ed); 1 on a hit.
 * *gen: the generation to hand to store_latest_put. */
int store_latest_get(struct store_latest *t, const char *name, struct store_model_row *row,
                     unsigned long *gen);
void store_latest_put(struct store_latest *t, const struct store_model_row *row,
                      unsigned long gen);
/* The digest of name's latest version into digest (72 bytes) when the
 * table has it: 1, else 0.  Each thread remembers its last few answers
 * while the generation stands, so a repeated name takes no lock (the
 * table's lock is a cache line every HTTP thread would write). */
int store_latest_digest(struct store_latest *t, const char *name, char *digest);
/* After a write: forget every row.  enabled -1 keeps the current state. */
void store_latest_reset(struct store_latest *t, int enabled);

#endif
