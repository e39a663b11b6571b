// The executor's threads: a persistent pool that runs a parallel section's independent tasks,
// and OpenBLAS kept on one thread.
//
// Threads: OpenBLAS always runs on one thread (its threaded paths change the order of the
// sums, so results would depend on the thread count). Parallelism is ours instead: C is cut
// into tiles of MLK_TILE columns — the same tiles whatever the thread count — and the tiles
// are shared out among threads, so every element is computed by the same call.
#include <pthread.h>
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mlk_threads = 1;

void mlk_set_threads(int threads) {
  // (OpenBLAS stays at the one thread blas.c set: setting it again restarts its server
  // threads, which then spin.)
  mlk_threads = threads < 1 ? 1 : (threads > 16 ? 16 : threads);
}

// A persistent pool: workers wait (spin, then sleep on a condition variable) between parallel
// sections.
// mlk_parallel_(tasks, fn, ctx) runs fn(ctx, t) for every t; which thread runs a task does not
// matter, because tasks are independent and each computes a fixed piece of the output.
__thread int mlk_slot = 0;        // scratch slot of this thread in a parallel section
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER, pool_done = PTHREAD_COND_INITIALIZER;
static int pool_size = 0;               // worker threads started (excluding the caller)
static long pool_generation = 0;
static int pool_active = 0;             // workers taking part in the current section
static int pool_pending = 0;            // workers not yet finished
static mlk_task_fn pool_fn = NULL;
static void *pool_ctx = NULL;
static pthread_mutex_t section_lock = PTHREAD_MUTEX_INITIALIZER;

// Each participant of a section owns a contiguous range of its tasks and takes them in order,
// then helps with the others' ranges (an atomic cursor per range: a lock per task costs more
// than small tasks take). Contiguous ranges keep locality between layers: a task is mostly a
// band of output rows, so the rows a thread writes in one layer are the ones it reads in the
// next, from its own core's cache. Handing tasks out from one shared counter scattered them:
// half of every layer's input came from the other core, and mediapipe's NHWC models ran 1.2x
// faster on 2 threads than on 1 where onnxruntime and LiteRT gain 1.9x.
typedef struct { long next, end; char pad[48]; } task_range;
static task_range pool_ranges[17];
static int pool_parts = 1;

static void pool_drain(int me) {
  for (int k = 0; k < pool_parts; k++) {
    task_range *r = &pool_ranges[(me + k) % pool_parts];
    for (;;) {
      long t = __atomic_fetch_add(&r->next, 1, __ATOMIC_ACQ_REL);
      if (t >= r->end) break;
      pool_fn(pool_ctx, (int)t);
    }
  }
}

// Before sleeping, a worker (and a caller waiting for its workers) spins a while: sections come
// in quick succession (one or more per layer), and waking a sleeping thread takes tens of
// microseconds on a virtual machine, which small layers would pay on every section.
#define MLK_SPIN 16384
static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void *pool_worker(void *arg) {
  long index = (long)arg;
  long seen = 0;
  mlk_slot = (int)index + 1;
  for (;;) {
    for (int i = 0; i < MLK_SPIN && __atomic_load_n(&pool_generation, __ATOMIC_ACQUIRE) == seen; i++) spin_pause();
    pthread_mutex_lock(&pool_lock);
    while (pool_generation == seen || index >= pool_active) {
      if (pool_generation != seen) seen = pool_generation;   // a section this worker sits out
      pthread_cond_wait(&pool_wake, &pool_lock);
    }
    seen = pool_generation;
    pthread_mutex_unlock(&pool_lock);
    pool_drain((int)index + 1);
    pthread_mutex_lock(&pool_lock);
    if (__atomic_sub_fetch(&pool_pending, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&pool_done);
    pthread_mutex_unlock(&pool_lock);
  }
  return NULL;
}

int mlk_thread_count_(void) { return mlk_threads; }
int mlk_thread_slot_(void) { return mlk_slot; }

void mlk_parallel_(int tasks, mlk_task_fn fn, void *ctx) {
  mlk_slot = 0;   // whoever calls is the section's caller
  int helpers = (mlk_threads < tasks ? mlk_threads : tasks) - 1;
  if (helpers <= 0) {
    for (int t = 0; t < tasks; t++) fn(ctx, t);
    return;
  }
  pthread_mutex_lock(&section_lock);   // one parallel section at a time
  pthread_mutex_lock(&pool_lock);
  while (pool_size < helpers) {
    pthread_t th;
    if (pthread_create(&th, NULL, pool_worker, (void *)(long)pool_size) != 0) break;
    pthread_detach(th);
    pool_size++;
  }
  if (helpers > pool_size) helpers = pool_size;
  pool_fn = fn; pool_ctx = ctx;
  pool_parts = helpers + 1;
  for (int r = 0; r < pool_parts; r++) {
    __atomic_store_n(&pool_ranges[r].next, (long)tasks * r / pool_parts, __ATOMIC_RELAXED);
    pool_ranges[r].end = (long)tasks * (r + 1) / pool_parts;
  }
  pool_active = helpers;
  __atomic_store_n(&pool_pending, helpers, __ATOMIC_RELAXED);
  __atomic_add_fetch(&pool_generation, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool_wake);
  pthread_mutex_unlock(&pool_lock);
  pool_drain(0);
  for (int i = 0; i < MLK_SPIN && __atomic_load_n(&pool_pending, __ATOMIC_ACQUIRE) > 0; i++) spin_pause();
  pthread_mutex_lock(&pool_lock);
  while (pool_pending > 0) pthread_cond_wait(&pool_done, &pool_lock);
  pthread_mutex_unlock(&pool_lock);
  pthread_mutex_unlock(&section_lock);
}

// Column tiles of equal work for the threads. The pool hands each thread a contiguous range of
// tasks (mlk_parallel_), so a ragged last tile unbalances the section: 784 columns (28x28) in
// tiles of 256 put 512 columns on one thread and 272 on the other, and the calibration
// networks' 1x1 convolutions on 28x28 ran 1.53-1.56x faster on 2 threads where ResNet50's ran
// 1.9x. Widths are multiples of 32, the GEMM's panel width, so every column falls in the same
// kind of micro-tile whatever the width (results do not depend on the threads), and no
// narrower than half the given width (narrow tiles reuse the weights less).
int mlk_balanced_tile_(int n, int width, int threads) {
  int best = width, best_load = 0x7fffffff;
  for (int w = width / 32 * 32; w >= 64 && w >= width / 2; w -= 32) {
    const int tiles = (n + w - 1) / w;
    int load = 0;
    for (int r = 0; r < threads; r++) {
      const int t0 = (int)((long)tiles * r / threads), t1 = (int)((long)tiles * (r + 1) / threads);
      int cols = 0;
      for (int t = t0; t < t1; t++) cols += n - t * w < w ? n - t * w : w;
      if (cols > load) load = cols;
    }
    if (load < best_load) { best_load = load; best = w; }
  }
  return best;
}

// Chunks per part for a section of parts x chunks tasks, so that the tasks fall evenly on the
// threads. Each thread takes a contiguous range of tasks (mlk_parallel_): 3 equal tasks on 2
// threads leave one thread idle a third of the section, and 5 a fifth. MobileNetV2's 1x1
// convolutions to 160 channels on 7x7 (one column tile, 3 chunks of output channels) ran 1.3x
// faster on 2 threads than on 1, where its layers with 2 or 4 chunks reached 1.5-1.7x. Where
// there are few tasks (under 4 a thread) and they do not divide evenly, the nearest count that
// does, within [1, max_chunks]; otherwise `chunks` as it was.
int mlk_even_chunks_(int parts, int chunks, int max_chunks, int threads) {
  const long few = 4L * threads;
  if (threads <= 1 || (long)parts * chunks % threads == 0 || (long)parts * chunks >= few) return chunks;
  for (int c = chunks + 1; c <= max_chunks && c <= chunks + threads; c++)
    if ((long)parts * c % threads == 0) return c;
  for (int c = chunks - 1; c >= 1 && (long)parts * c >= threads; c--)
    if ((long)parts * c % threads == 0) return c;
  return chunks;
}

// Units a task where `units` units go in tasks of `per`: the same `per` unless the tasks are few
// (under 4 a thread) and not a multiple of the threads, then the size that makes them the next
// multiple (mlk_even_chunks_'s reason: 7 tasks on 2 threads split 4 / 3).
long mlk_even_per_(long units, long per, int threads) {
  if (per < 1) per = 1;
  const long tasks = (units + per - 1) / per;
  if (threads <= 1 || tasks < 2 || tasks >= 4L * threads || tasks % threads == 0) return per;
  const long want = (tasks + threads - 1) / threads * threads;
  const long even = (units + want - 1) / want;
  return even < 1 ? 1 : even;
}
