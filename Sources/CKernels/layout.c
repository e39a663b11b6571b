// Layout changes: NCHW <-> channel-blocked, transposition, the 32-channel weight panels.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mlk_blocked_from_nchw(int n, int c, int hw, const float *x, float *y) {
  for (int b = 0; b < n * (c / 16); b++) {
    const float *src = x + (size_t)b * 16 * hw;
    float *dst = y + (size_t)b * 16 * hw;
    if (mlk_use_avx512_()) {
      mlk_interleave16_avx512_(src, hw, 16, hw, dst);
      continue;
    }
    for (int q = 0; q < hw; q++)
      for (int i = 0; i < 16; i++) dst[(size_t)q * 16 + i] = src[(size_t)i * hw + q];
  }
}

void mlk_nchw_from_blocked(int n, int c, int hw, const float *x, float *y) {
  for (int b = 0; b < n * (c / 16); b++) {
    const float *src = x + (size_t)b * 16 * hw;
    float *dst = y + (size_t)b * 16 * hw;
    for (int q = 0; q < hw; q++)
      for (int i = 0; i < 16; i++) dst[(size_t)i * hw + q] = src[(size_t)q * 16 + i];
  }
}

size_t mlk_weight_panel_floats(int out_c, int kk) { return (size_t)(out_c + 31) / 32 * 32 * (size_t)kk; }

// Panel jp holds output channels [32 jp, 32 jp + 32) as [kk][32] (zeros past out_c).
void mlk_weight_panels_pack(int out_c, int kk, const float *w, float *panels) {
  for (int jp = 0; jp < (out_c + 31) / 32; jp++)
    for (int k = 0; k < kk; k++) {
      float *dst = panels + ((size_t)jp * kk + k) * 32;
      for (int i = 0; i < 32; i++) {
        const int o = jp * 32 + i;
        dst[i] = o < out_c ? w[(size_t)o * kk + k] : 0.0f;
      }
    }
}

void mlk_weight_panels_unpack(int out_c, int kk, const float *panels, float *w) {
  for (int o = 0; o < out_c; o++)
    for (int k = 0; k < kk; k++) w[(size_t)o * kk + k] = panels[((size_t)(o / 32) * kk + k) * 32 + o % 32];
}

void mlk_transpose(const void *x, void *y, int rank, const long *shape, const int *perm, int elem) {
  long in_strides[8], out_shape[8], total = 1;
  in_strides[rank - 1] = 1;
  for (int i = rank - 2; i >= 0; i--) in_strides[i] = in_strides[i + 1] * shape[i + 1];
  for (int i = 0; i < rank; i++) { out_shape[i] = shape[perm[i]]; total *= out_shape[i]; }
  long idx[8] = {0};
  const char *src = x;
  char *dst = y;
  for (long t = 0; t < total; t++) {
    long off = 0;
    for (int d = 0; d < rank; d++) off += idx[d] * in_strides[perm[d]];
    memcpy(dst + t * elem, src + off * elem, (size_t)elem);
    for (int d = rank - 1; d >= 0; d--) { if (++idx[d] < out_shape[d]) break; idx[d] = 0; }
  }
}
