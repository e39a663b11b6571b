// Matrix decompositions for analysis and compression (LAPACK through OpenBLAS; see blas.c).
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "internal.h"

int mlk_singular_values(const float *a, int m, int n, float *s) {
  // LAPACK is column-major: the row-major m x n matrix is its n x m transpose, same singular values.
  int rows = n, cols = m, lda = n, info = 0, one = 1, lwork = -1;
  int k = rows < cols ? rows : cols;
  float *copy = malloc((size_t)m * (size_t)n * sizeof(float));
  int *iwork = malloc(8 * (size_t)k * sizeof(int));
  if (!copy || !iwork) { free(copy); free(iwork); return -1; }
  memcpy(copy, a, (size_t)m * (size_t)n * sizeof(float));
  float query, dummy;
  mlk_sgesdd_("N", &rows, &cols, copy, &lda, s, &dummy, &one, &dummy, &one, &query, &lwork, iwork, &info);
  lwork = (int)query + 1;
  float *work = malloc((size_t)lwork * sizeof(float));
  if (!work) { free(copy); free(iwork); return -1; }
  mlk_sgesdd_("N", &rows, &cols, copy, &lda, s, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info);
  free(work); free(copy); free(iwork);
  return info;
}

// Principal directions of the rows' space: the eigenvectors of a a^T (m x m, for the m x n
// row-major a), largest eigenvalue first. Much cheaper than an SVD when n >> m (VGG16's first
// classifier layer: 4096 x 25088 in seconds instead of a minute), and what a truncation needs:
// u_r u_r^T a is the best rank-r approximation whatever the accuracy of the discarded pairs.
int mlk_gram_eigen(const float *a, int m, int n, float *energies, float *u) {
  float *g = malloc(sizeof(float) * (long)m * m);
  if (!g) return -1;
  mlk_cblas_sgemm_(MLK_ROW_MAJOR_, MLK_NO_TRANS_, MLK_TRANS_, m, m, n, 1.0f, a, n, a, n, 0.0f, g, m);
  int info = 0, lwork = -1, liwork = -1, iq = 0;
  float query = 0;
  mlk_ssyevd_("V", "U", &m, g, &m, energies, &query, &lwork, &iq, &liwork, &info);
  lwork = (int)query + 1;
  liwork = iq + 1;
  float *work = info == 0 ? malloc(sizeof(float) * (long)lwork) : NULL;
  int *iwork = work ? malloc(sizeof(int) * (long)liwork) : NULL;
  if (!iwork) { free(work); free(g); return info ? info : -1; }
  mlk_ssyevd_("V", "U", &m, g, &m, energies, work, &lwork, iwork, &liwork, &info);
  if (info == 0) {
    // LAPACK: ascending, eigenvector j in column j (column-major: contiguous row j here).
    for (int j = 0; j < m; j++) {
      const float *src = g + (long)(m - 1 - j) * m;
      for (int i = 0; i < m; i++) u[(long)i * m + j] = src[i];
    }
    for (int j = 0; j < m / 2; j++) { float t = energies[j]; energies[j] = energies[m - 1 - j]; energies[m - 1 - j] = t; }
    for (int j = 0; j < m; j++) if (energies[j] < 0) energies[j] = 0;
  }
  free(work); free(iwork); free(g);
  return info;
}

// ---- CP decomposition of a 4-way tensor by alternating least squares ----

// gram = f^T f (rank x rank) for the d x rank factor f.
static void gram(const float *f, int d, int rank, float *g) {
  mlk_cblas_sgemm_(MLK_ROW_MAJOR_, MLK_TRANS_, MLK_NO_TRANS_, rank, rank, d, 1.0f, f, rank, f, rank, 0.0f, g, rank);
}

// Solves f v = m for the factor f (d x rank), v the Hadamard product of the other factors'
// Gram matrices with a small ridge that keeps it positive definite when columns are
// near-dependent. v is symmetric, so v f^T = m^T, and row-major m is column-major m^T.
static int update(float *const *grams, int n, int d, int rank, const float *m, float *v, float *f) {
  double trace = 0;
  for (int i = 0; i < rank * rank; i++) {
    float p = 1;
    for (int o = 0; o < 4; o++) if (o != n) p *= grams[o][i];
    v[i] = p;
  }
  for (int i = 0; i < rank; i++) trace += v[i * rank + i];
  for (int i = 0; i < rank; i++) v[i * rank + i] += (float)(1e-7 * trace / rank + 1e-30);
  memcpy(f, m, sizeof(float) * (long)d * rank);
  int info = 0, nrhs = d, r = rank;
  mlk_sposv_("U", &r, &nrhs, v, &r, f, &r, &info);
  if (info == 0) gram(f, d, rank, grams[n]);
  return info;
}

// The MTTKRP of mode n in {1, 2, 3} from y = x contracted with f0 over mode 0 (y[(b, c, e), r],
// row-major over modes 1-3): m[j, r] = sum over the other two modes of y times their factors.
static void mttkrp_from_y(const float *y, const int *d, float *const *f, int n, int rank, float *m) {
  memset(m, 0, sizeof(float) * (long)d[n] * rank);
  long row = 0;
  for (int b = 0; b < d[1]; b++)
    for (int c = 0; c < d[2]; c++)
      for (int e = 0; e < d[3]; e++, row++) {
        int idx[4] = {0, b, c, e};
        const float *yr = y + row * rank;
        float *mr = m + (long)idx[n] * rank;
        const float *p = NULL, *q = NULL;
        for (int o = 1; o < 4; o++) {
          if (o == n) continue;
          if (!p) p = f[o] + (long)idx[o] * rank; else q = f[o] + (long)idx[o] * rank;
        }
        for (int r = 0; r < rank; r++) mr[r] += yr[r] * p[r] * q[r];
      }
}

double mlk_cp_als(const float *x, const int *d, int rank, int iterations, unsigned long long seed, float *const *factors) {
  long total = (long)d[0] * d[1] * d[2] * d[3];
  long cols = total / d[0];
  int maxd = d[0];
  for (int n = 1; n < 4; n++) if (d[n] > maxd) maxd = d[n];
  // kr: the Khatri-Rao product of factors 1-3 (cols x rank), then y = x^T f0 (cols x rank).
  float *kr = malloc(sizeof(float) * cols * rank);
  float *v = malloc(sizeof(float) * rank * rank);
  float *m = malloc(sizeof(float) * (long)maxd * rank);
  float *grams[4] = {0};
  int ok = kr && v && m;
  for (int n = 0; n < 4 && ok; n++) ok = (grams[n] = malloc(sizeof(float) * rank * rank)) != NULL;
  double norm2 = 0;
  for (long i = 0; i < total; i++) norm2 += (double)x[i] * x[i];
  double error = -1;
  if (!ok || norm2 == 0) goto done;
  // Seeded uniform start in [-1, 1) (a fixed seed: the same weights give the same split).
  for (int n = 0; n < 4; n++) {
    for (long i = 0; i < (long)d[n] * rank; i++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      factors[n][i] = (float)((double)(seed >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
    }
    gram(factors[n], d[n], rank, grams[n]);
  }
  double previous = 1e30;
  for (int it = 0; it < iterations; it++) {
    // Mode 0: m = X_(0) KR(f1, f2, f3), one GEMM over the tensor.
    long row = 0;
    for (int b = 0; b < d[1]; b++)
      for (int c = 0; c < d[2]; c++)
        for (int e = 0; e < d[3]; e++, row++) {
          const float *fb = factors[1] + (long)b * rank, *fc = factors[2] + (long)c * rank, *fe = factors[3] + (long)e * rank;
          float *k = kr + row * rank;
          for (int r = 0; r < rank; r++) k[r] = fb[r] * fc[r] * fe[r];
        }
    mlk_cblas_sgemm_(MLK_ROW_MAJOR_, MLK_NO_TRANS_, MLK_NO_TRANS_, d[0], rank, (int)cols, 1.0f, x, (int)cols, kr, rank, 0.0f, m, rank);
    if (update(grams, 0, d[0], rank, m, v, factors[0]) != 0) { error = -1; goto done; }
    // Modes 1-3 from one more GEMM: y = X_(0)^T f0, then small contractions.
    mlk_cblas_sgemm_(MLK_ROW_MAJOR_, MLK_TRANS_, MLK_NO_TRANS_, (int)cols, rank, d[0], 1.0f, x, (int)cols, factors[0], rank, 0.0f, kr, rank);
    double inner = 0;
    for (int n = 1; n < 4; n++) {
      mttkrp_from_y(kr, d, factors, n, rank, m);
      if (update(grams, n, d[n], rank, m, v, factors[n]) != 0) { error = -1; goto done; }
      // <X, X^> = sum f3 .* m3: the last update saw all the other factors as they are now.
      if (n == 3) for (long i = 0; i < (long)d[3] * rank; i++) inner += (double)factors[3][i] * m[i];
    }
    // ||X^||^2 = sum of the Hadamard product of all four Gram matrices.
    double model2 = 0;
    for (int i = 0; i < rank * rank; i++) model2 += (double)grams[0][i] * grams[1][i] * grams[2][i] * grams[3][i];
    double residual2 = norm2 - 2 * inner + model2;
    error = sqrt(residual2 > 0 ? residual2 / norm2 : 0);
    if (fabs(previous - error) < 1e-5 * (error > 1e-3 ? error : 1e-3)) break;
    previous = error;
    // Balance the factors' column norms (the product is unchanged) so none over- or underflows.
    for (int r = 0; r < rank; r++) {
      double scale[4], prod = 1;
      for (int n = 0; n < 4; n++) {
        double s2 = grams[n][r * rank + r];
        scale[n] = s2 > 0 ? sqrt(s2) : 1;
        prod *= scale[n];
      }
      double target = pow(prod, 0.25);
      for (int n = 0; n < 4; n++) {
        float k = (float)(target / scale[n]);
        for (int i = 0; i < d[n]; i++) factors[n][(long)i * rank + r] *= k;
      }
    }
    for (int n = 0; n < 4; n++) gram(factors[n], d[n], rank, grams[n]);
  }
done:
  for (int n = 0; n < 4; n++) free(grams[n]);
  free(kr); free(v); free(m);
  return error;
}
