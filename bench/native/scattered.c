/*
 * Runs the reads of bench/scattered.mjs in native code, to tell the machine's memory system from
 * the wasm engine. The region, chunks, fractions, neuron sets and eviction read are the same, and
 * so is the read loop (SSE2, four i32x4 sums per 64 bytes). It prints the same table, and
 * bench/scattered.mjs builds and runs it when a C compiler is found:
 *
 *   cc -O2 -o build/scattered-native bench/native/scattered.c && build/scattered-native 9
 */

#include <emmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NEURONS 2048
#define LAYERS 12
#define BUNDLE 2496
#define SETS 3
#define EVICT_BYTES (48u << 20)

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Returns the sum of the i32 lanes of every whole 16-byte step: readBytes without its tail. */
static uint32_t read_bytes(const uint8_t *p, size_t n) {
  __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a = _mm_add_epi32(a, _mm_loadu_si128((const __m128i *)(p + i)));
    b = _mm_add_epi32(b, _mm_loadu_si128((const __m128i *)(p + i + 16)));
    c = _mm_add_epi32(c, _mm_loadu_si128((const __m128i *)(p + i + 32)));
    d = _mm_add_epi32(d, _mm_loadu_si128((const __m128i *)(p + i + 48)));
  }
  for (; i + 16 <= n; i += 16) a = _mm_add_epi32(a, _mm_loadu_si128((const __m128i *)(p + i)));
  a = _mm_add_epi32(_mm_add_epi32(a, b), _mm_add_epi32(c, d));
  uint32_t lanes[4];
  _mm_storeu_si128((__m128i *)lanes, a);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

static int compare(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static double median(double *values, int n) {
  qsort(values, n, sizeof(double), compare);
  return values[n / 2];
}

/* Writes the ascending neuron indices of a set to out, with the generator of bench/scattered.mjs. */
static size_t pick(size_t *out, size_t count, double p, uint32_t seed) {
  size_t n = 0;
  uint32_t state = seed;
  for (size_t i = 0; i < count; i++) {
    state = state * 1664525u + 1013904223u;
    if (state / 4294967296.0 < p) out[n++] = i;
  }
  return n;
}

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 9;
  if (rounds < 1) {
    fprintf(stderr, "scattered-native: invalid round count %s, expected a positive integer\n", argv[1]);
    return 2;
  }
  const size_t count = (size_t)NEURONS * LAYERS;
  const size_t region_bytes = count * BUNDLE;
  uint8_t *region = malloc(region_bytes);
  uint8_t *evict = malloc(EVICT_BYTES);
  size_t *sets[SETS];
  size_t sizes[SETS];
  double *times = malloc(sizeof(double) * (rounds + 1));
  for (int s = 0; s < SETS; s++) sets[s] = malloc(sizeof(size_t) * count);
  if (!region || !evict || !times || !sets[0] || !sets[1] || !sets[2]) {
    fprintf(stderr, "scattered-native: allocating %zu bytes failed\n", region_bytes + EVICT_BYTES);
    return 1;
  }
  memset(region, 3, region_bytes);
  memset(evict, 5, EVICT_BYTES);
  volatile uint32_t sink = 0;

  for (int r = 0; r <= rounds; r++) {
    sink += read_bytes(evict, EVICT_BYTES);
    double start = now_ms();
    sink += read_bytes(region, region_bytes);
    times[r] = now_ms() - start;
  }
  const double whole_ms = median(times + 1, rounds);
  printf("# native, one thread, %d × %d bundles of %d bytes (%.1f MB), %d rounds\n", LAYERS, NEURONS, BUNDLE,
         region_bytes / 1e6, rounds);
  printf("read, whole region: %.2f ms, %.1f GB/s\n", whole_ms, region_bytes / whole_ms / 1e6);
  printf("chunk     bytes  fraction  chunk GB/s  ms      vs all\n");

  const char *names[] = {"bundle", "gate", "up+down"};
  const size_t offsets[] = {0, 0, 864};
  const size_t lengths[] = {2496, 864, 1728};
  const double fractions[] = {0.1, 0.3, 0.5, 0.55, 0.7, 1};
  for (int c = 0; c < 3; c++) {
    for (int f = 0; f < 6; f++) {
      for (int s = 0; s < SETS; s++) sizes[s] = pick(sets[s], count, fractions[f], 977u * (s + 1));
      for (int r = 0; r <= rounds; r++) {
        const size_t *chosen = sets[r % SETS];
        const size_t n = sizes[r % SETS];
        sink += read_bytes(evict, EVICT_BYTES);
        double start = now_ms();
        for (size_t k = 0; k < n; k++) sink += read_bytes(region + chosen[k] * BUNDLE + offsets[c], lengths[c]);
        times[r] = (now_ms() - start) / (double)n;
      }
      const double per_chunk = median(times + 1, rounds);
      const double ms = per_chunk * count * fractions[f];
      printf("%-8s  %5zu  %8.2f  %10.1f  %6.2f  %6.2f\n", names[c], lengths[c], fractions[f],
             lengths[c] / per_chunk / 1e6, ms, ms / whole_ms);
    }
  }
  return sink == 1 ? 3 : 0;
}
