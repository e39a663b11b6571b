// Layer normalization over the last `inner` elements of each row.
#include "internal.h"

#include <math.h>

typedef struct {
  const float *x, *scale, *bias;
  float *y, *mean_out, *inv_out;
  long rows, inner, scale_n, bias_n, per;
  float eps;
} layer_norm_job;

// Sums in 16 lanes (a loop the compiler vectorises without reordering any one lane's sum), then
// the lanes in a fixed order: the same bits on any thread count.
static float lane_sum(const float *x, long n, float centre) {
  float acc[16] = {0};
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) acc[l] += x[i + l] - centre;
  for (; i < n; i++) acc[i % 16] += x[i] - centre;
  float s = 0;
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

static float lane_squares(const float *x, long n, float centre) {
  float acc[16] = {0};
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) { float d = x[i + l] - centre; acc[l] += d * d; }
  for (; i < n; i++) { float d = x[i] - centre; acc[i % 16] += d * d; }
  float s = 0;
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

static void layer_norm_rows(void *ctx, int t) {
  const layer_norm_job *j = ctx;
  const long r0 = (long)t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows, n = j->inner;
  for (long r = r0; r < r1; r++) {
    const float *x = j->x + r * n;
    float *y = j->y + r * n;
    // Two passes (mean, then squares about it): no cancellation when the mean is large.
    const float mean = lane_sum(x, n, 0) / (float)n;
    const float inv = 1.0f / sqrtf(lane_squares(x, n, mean) / (float)n + j->eps);
    if (j->mean_out) j->mean_out[r] = mean;
    if (j->inv_out) j->inv_out[r] = inv;
    if (j->scale_n == n && j->bias_n == n) {
      for (long i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * j->scale[i] + j->bias[i];
    } else if (j->scale_n == n && j->bias_n == 0) {
      for (long i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * j->scale[i];
    } else {
      for (long i = 0; i < n; i++) {
        float v = (x[i] - mean) * inv;
        if (j->scale_n) v *= j->scale[j->scale_n == 1 ? 0 : i % j->scale_n];
        if (j->bias_n) v += j->bias[j->bias_n == 1 ? 0 : i % j->bias_n];
        y[i] = v;
      }
    }
  }
}

void mlk_layer_norm(const float *x, float *y, long rows, long inner, const float *scale, long scale_n, const float *bias,
                    long bias_n, float eps, float *mean_out, float *inv_out) {
  if (rows <= 0 || inner <= 0) return;
  // Tasks of at least 16K elements.
  const long per = inner >= 16384 ? 1 : (16384 + inner - 1) / inner;
  layer_norm_job job = {x, scale, bias, y, mean_out, inv_out, rows, inner, scale ? scale_n : 0, bias ? bias_n : 0, per, eps};
  mlk_parallel_((int)((rows + per - 1) / per), layer_norm_rows, &job);
}
