// AVX-512 row copies of the im2col and direct convolution paths: even lanes (stride 2),
// 1x1 stride-2 subsampling with requests ahead, the activation store of kept columns.
#include "avx512.h"

#if MLK_AVX512_BUILD

// Every other float: two 16-lane loads, one permute keeping the even lanes. The tail loads are
// masked to the floats that exist, so nothing past src[2n - 2] is read.
AVX512 static void even_lanes_avx512(float *dst, const float *src, int n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    // src[2i + 31] is odd and, in the last full block, may lie past the end: masked off there.
    const __m512 a = _mm512_loadu_ps(src + 2 * i);
    const __m512 b = i + 16 < n ? _mm512_loadu_ps(src + 2 * i + 16) : _mm512_maskz_loadu_ps(0x7FFF, src + 2 * i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
  }
  if (i < n) {
    const int left = 2 * (n - i) - 1;   // floats src[2i .. 2n - 2]
    const __mmask16 ma = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
    const __mmask16 mb = (__mmask16)(left > 16 ? (1u << (left - 16)) - 1 : 0);
    const __m512 a = _mm512_maskz_loadu_ps(ma, src + 2 * i), b = _mm512_maskz_loadu_ps(mb, src + 2 * i + 16);
    _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1), _mm512_permutex2var_ps(a, even, b));
  }
}

// Row of im2col for a 1x1 convolution of stride 2 (no padding): output columns [col, col + width)
// of a plane with out_w columns, i.e. the even columns of the plane's even rows, into row. The
// same input lines of the plane `ahead` (a later channel; NULL for none) are requested meanwhile:
// the lines read lie rows and planes apart, beyond what the hardware prefetcher follows.
AVX512 void mlk_subsample2_row_avx512_(float *row, const float *plane, int in_w, int out_w, int col, int width,
                                       const float *ahead) {
  for (int j = 0; j < width;) {
    const int o = col + j, oh = o / out_w, ow0 = o % out_w;
    const int run = out_w - ow0 < width - j ? out_w - ow0 : width - j;
    const long at = (long)2 * oh * in_w + 2 * ow0;
    if (ahead)
      for (int q = 0; q < 2 * run; q += 16) _mm_prefetch((const char *)(ahead + at + q), _MM_HINT_T0);
    even_lanes_avx512(row + j, plane + at, run);
    j += run;
  }
}
AVX512 void mlk_store_act_avx512_(float *dst, const float *src, const float *res, int n, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(src + i);
    if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + i));
    _mm512_storeu_ps(dst + i, apply_clamp(v, cl));
  }
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, src + i);
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + i));
    _mm512_mask_storeu_ps(dst + i, m, apply_clamp(v, cl));
  }
}

void mlk_even_lanes_(float *dst, const float *src, int n) {
  if (mlk_use_avx512_()) {
    even_lanes_avx512(dst, src, n);
    return;
  }
  for (int i = 0; i < n; i++) dst[i] = src[2 * i];
}

#endif
