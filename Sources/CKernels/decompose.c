// Matrix decompositions for analysis and compression (LAPACK through OpenBLAS; see blas.c).
#include <stdlib.h>
#include <string.h>

#include "internal.h"

// LAPACK is column-major: a row-major m x n matrix is, in memory, its n x m transpose. With
// a^T = U' S V'^T, a = V' S U'^T: the factors LAPACK writes for the transpose are the row-major
// factors of `a` with their roles swapped.
static int gesdd(const char *jobz, const float *a, int m, int n, float *s, float *u, float *vt) {
  int rows = n, cols = m, lda = n, info = 0, lwork = -1;
  int k = rows < cols ? rows : cols;
  int ldu = rows, ldvt = k;
  float dummy = 0, query = 0;
  float *copy = malloc((size_t)m * (size_t)n * sizeof(float));
  int *iwork = malloc(8 * (size_t)k * sizeof(int));
  if (!copy || !iwork) { free(copy); free(iwork); return -1; }
  memcpy(copy, a, (size_t)m * (size_t)n * sizeof(float));
  // jobz "S": U' (n x k) lands in `vt`'s buffer as vt (k x n row-major), V'^T (k x m) in `u`'s.
  float *up = u ? vt : &dummy, *vtp = u ? u : &dummy;
  if (!u) ldu = ldvt = 1;
  mlk_sgesdd_(jobz, &rows, &cols, copy, &lda, s, up, &ldu, vtp, &ldvt, &query, &lwork, iwork, &info);
  lwork = (int)query + 1;
  float *work = info == 0 ? malloc((size_t)lwork * sizeof(float)) : NULL;
  if (!work) { free(copy); free(iwork); return info ? info : -1; }
  mlk_sgesdd_(jobz, &rows, &cols, copy, &lda, s, up, &ldu, vtp, &ldvt, work, &lwork, iwork, &info);
  free(work); free(copy); free(iwork);
  return info;
}

int mlk_singular_values(const float *a, int m, int n, float *s) { return gesdd("N", a, m, n, s, NULL, NULL); }

int mlk_svd(const float *a, int m, int n, float *s, float *u, float *vt) { return gesdd("S", a, m, n, s, u, vt); }
