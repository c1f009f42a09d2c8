/*
 * allocstat.c -- an LD_PRELOAD shim for tests/e2e/test_warm_cache.py:
 * counts the bytes and calls of malloc, calloc and realloc in the process,
 * and on SIGUSR2 writes "bytes calls\n" (fixed width) at the start of the
 * file named by $ALLOCSTAT_FILE.  The test compiles it with the system's
 * cc; it is never part of aced.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong bytes, calls;
static int out_fd = -1;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
/* dlsym may allocate before real_calloc is known: serve it from here */
static char boot[4096];
static size_t boot_used;

static void put_num(char *p, unsigned long v) /* 20 digits, zero-padded */
{
  for (int i = 19; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

static void on_usr2(int sig)
{
  (void)sig;
  char line[42];
  put_num(line, atomic_load(&bytes));
  line[20] = ' ';
  put_num(line + 21, atomic_load(&calls));
  line[41] = '\n';
  if (out_fd >= 0)
    (void)!pwrite(out_fd, line, sizeof line, 0);
}

__attribute__((constructor)) static void init(void)
{
  real_malloc = dlsym(RTLD_NEXT, "malloc");
  real_calloc = dlsym(RTLD_NEXT, "calloc");
  real_realloc = dlsym(RTLD_NEXT, "realloc");
  const char *f = getenv("ALLOCSTAT_FILE");
  if (f)
    out_fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
}

void *malloc(size_t n)
{
  if (!real_malloc)
    real_malloc = dlsym(RTLD_NEXT, "malloc");
  atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
  static _Thread_local int resolving;
  if (!real_calloc && !resolving) {
    /* a library's constructor may allocate before ours runs */
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    resolving = 0;
  }
  if (!real_calloc) {
    size_t n = (a * b + 15) & ~(size_t)15;
    if (boot_used + n > sizeof boot)
      return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
  }
  atomic_fetch_add_explicit(&bytes, a * b, memory_order_relaxed);
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
  if (!real_realloc)
    real_realloc = dlsym(RTLD_NEXT, "realloc");
  atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return real_realloc(p, n);
}

void free(void *p)
{
  static void (*real_free)(void *);
  if ((char *)p >= boot && (char *)p < boot + sizeof boot)
    return;
  if (!real_free)
    real_free = dlsym(RTLD_NEXT, "free");
  real_free(p);
}
