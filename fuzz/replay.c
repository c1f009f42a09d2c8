/*
 * replay.c -- run a fuzz target's corpus once, as a TAP test.
 *
 * Linked with one fuzz/fuzz_<name>.c, this main() stands in for
 * libFuzzer's: it feeds every file of the corpus to LLVMFuzzerTestOneInput()
 * and prints "ok N - <file>" for each, so that `make check` replays every
 * seed and every crash reproducer kept in fuzz/corpus/ with whatever
 * compiler and sanitizers the build uses.  A crash or a failed invariant
 * aborts the program, which the TAP driver reports as an error; the
 * "# <file>" line printed before each input names the culprit in the log.
 *
 * Arguments: files or folders to replay.  Without any, the folder is
 * $ACED_SRCDIR/fuzz/corpus/FUZZ_CORPUS (ACED_SRCDIR is exported by the
 * test harness; FUZZ_CORPUS is compiled in by fuzz/fuzz.mk).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_CORPUS
#error "FUZZ_CORPUS must name the corpus folder"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target; NULL when it does not define one. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

struct list {
  char **a;
  size_t n, cap;
};

static void list_add(struct list *l, const char *dir, const char *name)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->a = realloc(l->a, l->cap * sizeof *l->a);
    if (l->a == NULL)
      abort();
  }
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p == NULL)
    abort();
  snprintf(p, n, "%s%s%s", dir, *dir ? "/" : "", name);
  l->a[l->n++] = p;
}

static int by_name(const void *x, const void *y)
{
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Add path, or the regular files of folder path (sorted, no dot files). */
static int collect(struct list *l, const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    printf("Bail out! %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    list_add(l, "", path);
    return 0;
  }
  DIR *d = opendir(path);
  if (d == NULL) {
    printf("Bail out! %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t first = l->n;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    list_add(l, path, e->d_name);
  }
  closedir(d);
  qsort(l->a + first, l->n - first, sizeof *l->a, by_name);
  return 0;
}

/* The whole file in a block of exactly its size (ASan sees overreads). */
static uint8_t *slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  for (;;) {
    uint8_t chunk[65536];
    size_t k = fread(chunk, 1, sizeof chunk, f);
    if (k == 0)
      break;
    uint8_t *nb = realloc(buf, len + k);
    if (nb == NULL)
      abort();
    buf = nb;
    memcpy(buf + len, chunk, k);
    len += k;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *n = len;
  return buf != NULL ? buf : malloc(1);
}

int main(int argc, char **argv)
{
  struct list l = {NULL, 0, 0};
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      if (collect(&l, argv[i]) != 0)
        return 1;
  } else {
    const char *src = getenv("ACED_SRCDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", src ? src : ".", FUZZ_CORPUS);
    if (collect(&l, dir) != 0)
      return 1;
  }
  if (l.n == 0) {
    printf("Bail out! no inputs to replay\n");
    return 1;
  }
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize(&argc, &argv);

  printf("1..%zu\n", l.n);
  int failed = 0;
  for (size_t i = 0; i < l.n; i++) {
    const char *name = strrchr(l.a[i], '/') ? strrchr(l.a[i], '/') + 1 : l.a[i];
    printf("# %s\n", l.a[i]);
    fflush(stdout);
    size_t n = 0;
    uint8_t *data = slurp(l.a[i], &n);
    if (data == NULL) {
      printf("not ok %zu - %s: %s\n", i + 1, name, strerror(errno));
      failed = 1;
    } else {
      LLVMFuzzerTestOneInput(data, n);
      free(data);
      printf("ok %zu - %s (%zu bytes)\n", i + 1, name, n);
    }
    free(l.a[i]);
  }
  free(l.a);
  return failed;
}
