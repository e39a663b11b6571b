// The linear-algebra libraries, opened at run time: OpenBLAS with the kernel set this CPU runs best,
// and oneDNN's sgemm where it is installed.
//
// Debian's libopenblas is a DYNAMIC_ARCH build: when it loads, it picks its kernels by the CPU's
// family and model numbers, and a model it does not know gets the SSE3 ("Prescott") kernels.
// OpenBLAS 0.3.21 knows neither Emerald Rapids (family 6 model 207) nor Zen 5: there sgemm ran
// at 31-32 GFLOP/s on one core where its AVX-512 kernels ("SkylakeX") give 150-155 (1024^3,
// same core, same minute). The choice is made in the library's own constructor from the
// environment variable OPENBLAS_CORETYPE, so linking the library would be too late to set it:
// it is opened here instead, after the variable is set from the CPU's features (never over a
// value the user gave).
//
// Matrix products go to oneDNN's sgemm where the library is installed (Debian: libdnnl-dev,
// opened at the first product, so that commands that compute nothing do not load it), else to
// OpenBLAS. Measured on one core of the same Xeon, same run (GFLOP/s, OpenBLAS / oneDNN 2.6):
// 3136x384x96 141/166, 784x768x192 147/170, 12544x32x16 73/146, 3136x144x24 107/149,
// 49x768x3072 107/147, 1024^3 150/157. MODELLENS_GEMM=openblas keeps OpenBLAS.
#define _GNU_SOURCE
#include "internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*sgesdd_fn)(const char *, const int *, const int *, float *, const int *, float *, float *, const int *,
                          float *, const int *, float *, const int *, int *, int *);
typedef void (*sposv_fn)(const char *, const int *, const int *, float *, const int *, float *, const int *, int *);
typedef void (*ssyevd_fn)(const char *, const char *, const int *, float *, const int *, float *, float *, const int *, int *, const int *, int *);
typedef void (*threads_fn)(int);
typedef char *(*corename_fn)(void);
typedef int (*shutdown_fn)(void);

static struct {
  sgemm_fn sgemm;
  sgemv_fn sgemv;
  sgesdd_fn sgesdd;
  sposv_fn sposv;
  ssyevd_fn ssyevd;
  threads_fn set_threads;
  corename_fn corename;
} blas;

// The OpenBLAS kernel set for this CPU's instructions, or NULL to leave the choice to OpenBLAS.
static const char *coretype_for_this_cpu(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return "SKYLAKEX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "HASWELL";
#endif
  return NULL;
}

static void *symbol(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) {
    fprintf(stderr, "modellens: the OpenBLAS library has no %s (%s)\n", name, dlerror());
    exit(70);
  }
  return p;
}

// Runs before main (the library is not linked, so nothing of it ran yet).
__attribute__((constructor)) static void mlk_blas_load(void) {
  const char *core = coretype_for_this_cpu();
  if (core) setenv("OPENBLAS_CORETYPE", core, 0);
  static const char *const names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib", "libopenblas.0.dylib"};
  void *lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "modellens: cannot load OpenBLAS (%s); install it (Debian: apt-get install libopenblas0)\n", dlerror());
    exit(70);
  }
  blas.sgemm = (sgemm_fn)symbol(lib, "cblas_sgemm");
  blas.sgemv = (sgemv_fn)symbol(lib, "cblas_sgemv");
  blas.sgesdd = (sgesdd_fn)symbol(lib, "sgesdd_");
  blas.sposv = (sposv_fn)symbol(lib, "sposv_");
  blas.ssyevd = (ssyevd_fn)symbol(lib, "ssyevd_");
  blas.set_threads = (threads_fn)symbol(lib, "openblas_set_num_threads");
  blas.corename = (corename_fn)dlsym(lib, "openblas_get_corename");
  // OpenBLAS runs on one thread (parallelism is ours, in fixed tiles), from the start. The
  // pthread build starts its server threads when it loads, and they spin in sched_yield for their
  // first 0.1-0.2 s: during the warm-up and first timed runs of a `profile`, on the other vCPU.
  // Timed runs of MobileNetV2 then took 7.5-8 ms instead of 5.3-6 in about half of the
  // processes. Its threads are stopped (blas_thread_shutdown_, where the build has it);
  // single-threaded calls never start them again.
  blas.set_threads(1);
  shutdown_fn shutdown = (shutdown_fn)dlsym(lib, "blas_thread_shutdown_");
  if (shutdown) shutdown();
}

// oneDNN, when installed. Debian builds it with OpenMP: every thread that calls it is limited
// to one OpenMP thread first (our pool shares the work out, in tiles fixed whatever the thread
// count, so results do not depend on it).
typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                             float, float *, int64_t);
typedef void (*omp_threads_fn)(int);
static struct {
  pthread_once_t once;
  dnnl_sgemm_fn sgemm;
  omp_threads_fn omp_set_num_threads;
} dnnl = {PTHREAD_ONCE_INIT, NULL, NULL};

static void dnnl_load(void) {
  const char *choice = getenv("MODELLENS_GEMM");
  if (choice && strcmp(choice, "openblas") == 0) return;
  void *lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!lib) lib = dlopen("libdnnl.so", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return;
  omp_threads_fn omp = (omp_threads_fn)dlsym(lib, "omp_set_num_threads");
  dnnl_sgemm_fn f = (dnnl_sgemm_fn)dlsym(lib, "dnnl_sgemm");
  if (!f || !omp) return;   // a build without OpenMP would need its own threading set: OpenBLAS then
  dnnl.omp_set_num_threads = omp;
  dnnl.sgemm = f;
}

static dnnl_sgemm_fn dnnl_sgemm_here(void) {
  static __thread int one_thread;
  pthread_once(&dnnl.once, dnnl_load);
  if (dnnl.sgemm && !one_thread) {
    dnnl.omp_set_num_threads(1);
    one_thread = 1;
  }
  return dnnl.sgemm;
}

void mlk_cblas_sgemm_(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
  dnnl_sgemm_fn f = order == MLK_ROW_MAJOR_ ? dnnl_sgemm_here() : NULL;
  if (f && m > 0 && n > 0) {
    // oneDNN reads C when beta is not 0 only; k = 0 leaves beta * C, as BLAS does.
    int status = f(transa == MLK_TRANS_ ? 'T' : 'N', transb == MLK_TRANS_ ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (status == 0) return;
  }
  blas.sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mlk_cblas_sgemv_(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx,
                      float beta, float *y, int incy) {
  blas.sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void mlk_sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s, float *u, const int *ldu,
                 float *vt, const int *ldvt, float *work, const int *lwork, int *iwork, int *info) {
  blas.sgesdd(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info);
}

void mlk_sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda, float *b, const int *ldb, int *info) {
  blas.sposv(uplo, n, nrhs, a, lda, b, ldb, info);
}

void mlk_ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w, float *work, const int *lwork,
                 int *iwork, const int *liwork, int *info) {
  blas.ssyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info);
}

const char *mlk_gemm_library(void) { return dnnl_sgemm_here() ? "oneDNN" : "OpenBLAS"; }

const char *mlk_blas_kernels(void) {
  const char *name = blas.corename ? blas.corename() : NULL;
  return name ? name : "unknown";
}
