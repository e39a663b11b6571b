// Reductions over the contiguous middle axis.
#include "internal.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mlk_reduce_contiguous(const float *x, long outer, long red, long inner, int kind, float *y) {
  if (kind == 1 && inner == 1 && outer <= INT_MAX && red <= INT_MAX) {
    // A mean over the trailing axes (global pooling written as ReduceMean over H and W): the
    // vector double sums of global pooling, where one dependent double add per element took
    // ShuffleNet's last reduction 0.1 ms.
    mlk_global_mean((int)outer, (int)red, 0, x, y);
    return;
  }
  double *acc = malloc(sizeof(double) * (size_t)(inner > 0 ? inner : 1));
  if (!acc) return;
  for (long o = 0; o < outer; o++) {
    const float *xo = x + (size_t)o * red * inner;
    const double init = kind == 2 ? -INFINITY : (kind == 3 ? INFINITY : 0.0);
    for (long i = 0; i < inner; i++) acc[i] = init;
    for (long r = 0; r < red; r++) {
      const float *row = xo + (size_t)r * inner;
      if (kind <= 1)
        for (long i = 0; i < inner; i++) acc[i] += row[i];
      else if (kind == 2)
        for (long i = 0; i < inner; i++) acc[i] = row[i] > acc[i] || row[i] != row[i] ? row[i] : acc[i];
      else
        for (long i = 0; i < inner; i++) acc[i] = row[i] < acc[i] || row[i] != row[i] ? row[i] : acc[i];
    }
    for (long i = 0; i < inner; i++) y[(size_t)o * inner + i] = (float)(kind == 1 ? acc[i] / (double)(red > 0 ? red : 1) : acc[i]);
  }
  free(acc);
}
