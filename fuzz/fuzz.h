/*
 * fuzz.h -- what the libFuzzer targets in fuzz/ share.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput() (and, where it needs
 * set-up, LLVMFuzzerInitialize()).  The same file is linked two ways:
 *
 *   fuzz/fuzz_<name>    clang -fsanitize=fuzzer: libFuzzer's main() drives
 *                       it (./configure --enable-fuzzing CC=clang; make fuzz)
 *   fuzz/replay_<name>  fuzz/replay.c's main() runs every file of
 *                       fuzz/corpus/<name> through it once, as a TAP test of
 *                       the ordinary `make check` (any compiler)
 *
 * A target returns 0 for every input it merely rejects; it calls abort()
 * (FUZZ_ASSERT) when an invariant the code promises is broken, so that
 * libFuzzer and the replay test both report it as a crash.
 */
#ifndef ACED_FUZZ_H
#define ACED_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aced/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant the code under test promises; abort() with the line when it
 * does not hold (libFuzzer then saves the input as crash-<sha1>). */
#define FUZZ_ASSERT(cond)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,       \
              __LINE__, #cond);                                             \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* Is s NUL-terminated within its n bytes? */
static inline int fuzz_terminated(const char *s, size_t n)
{
  return memchr(s, '\0', n) != NULL;
}

/* A copy of data[0..n) with a NUL after it, in a block of exactly n + 1
 * bytes so that ASan sees any read past the end. */
static inline char *fuzz_strndup(const uint8_t *data, size_t n)
{
  char *s = malloc(n + 1);
  if (s == NULL)
    abort();
  memcpy(s, data, n);
  s[n] = '\0';
  return s;
}

/* The parsers of aced.conf and of the token file take a path: one scratch
 * file per process, rewritten for every input and removed at exit. */
static char fuzz_tmp_path[64];

static inline void fuzz_tmp_remove(void)
{
  if (fuzz_tmp_path[0] != '\0')
    unlink(fuzz_tmp_path);
}

static inline const char *fuzz_tmp_write(const uint8_t *data, size_t n)
{
  if (fuzz_tmp_path[0] == '\0') {
    /* /dev/shm when there is one: a disk write per input would make
     * these targets five times slower. */
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || strlen(dir) >= 40)
      dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_tmp_path, sizeof fuzz_tmp_path, "%s/aced-fuzz-XXXXXX", dir);
    int fd = mkstemp(fuzz_tmp_path);
    if (fd < 0)
      abort();
    close(fd);
    atexit(fuzz_tmp_remove);
  }
  FILE *f = fopen(fuzz_tmp_path, "wb");
  if (f == NULL || (n > 0 && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
    abort();
  return fuzz_tmp_path;
}

/* The nesting check src/http/dispatch.c makes before jansson sees a body; deeper
 * input never reaches the parsers. */
static inline int fuzz_json_depth(const uint8_t *s, size_t n)
{
  return http_json_depth((const char *)s, n);
}

#endif
