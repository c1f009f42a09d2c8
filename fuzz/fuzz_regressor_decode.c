/*
 * fuzz_regressor_decode.c -- svc_regressor_decode() (src/svc/fit.c),
 * which turns a cached regressor read back from SQLite into the struct
 * attributions evaluate.  A damaged cache row must be refused (-1), never
 * read out of bounds; an accepted one must be safe to evaluate.
 *
 * Input: the cached text, parsed as the cache reader does (json_loads, no
 * flags; here json_loadb since the bytes are not NUL-terminated).
 */
#include "config.h"

#include <jansson.h>
#include <math.h>

#include "aced/svc.h"
#include "aced/engine.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  json_t *j = json_loadb((const char *)data, size, 0, NULL);
  if (j == NULL)
    return 0;
  struct eng_regressor r;
  int rc = svc_regressor_decode(j, &r);
  FUZZ_ASSERT(rc == 0 || rc == -1);
  if (rc == 0) {
    FUZZ_ASSERT(r.order >= 0 && r.order <= ENG_ORDER_CAP);
    FUZZ_ASSERT(r.max_order >= r.order && r.max_order <= ENG_ORDER_CAP);
    FUZZ_ASSERT(isfinite(r.low) && isfinite(r.high) && r.low < r.high);
    for (int i = 0; i <= r.order; i++)
      FUZZ_ASSERT(isfinite(r.coef[i]));
    json_t *coef = json_object_get(j, "coefficients");
    FUZZ_ASSERT(json_array_size(coef) == (size_t)r.order + 1);
  }
  json_decref(j);
  return 0;
}
