// Unary elementwise ops as AVX-512 vectors: the exponential family (Exp, Sigmoid, SiLU, Tanh,
// Erf, Gelu, Elu) from one vector exp, and the piecewise-linear ones (HardSwish,
// HardSigmoid, LeakyRelu, Clip) as selects. libm's scalar expf/erff behind a switch per element
// ran at 0.2 GFLOP/s: EfficientNet-B0's Sigmoids took 40% of its time, ConvNeXt's Erfs 25%.
//
// Accuracy: exp within 2 ulp over its range (Cody-Waite reduction by ln 2 in two parts, then
// the Taylor polynomial of degree 7 on |r| <= ln2/2, whose remainder is below 1e-8); the others
// inherit it, with the small-argument branches of tanh and erf on series so that their relative
// error stays near 1e-7 where the result is tiny. NaN in gives NaN out.
#include "avx512.h"

#include <math.h>

#if MLK_AVX512_BUILD

AVX512 static inline __attribute__((always_inline)) __m512 poly_exp(__m512 x) {
  // e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (ln 2 split so that n * hi is exact).
  const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(89.0f);
  __m512 v = _mm512_min_ps(_mm512_max_ps(x, lo), hi);   // e^-104 is 0 in float, e^89 infinite
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);   // p * 2^n without forming 2^n (no overflow in between)
}

AVX512 static inline __attribute__((always_inline)) __m512 keep_nan(__m512 y, __m512 x) {
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

AVX512 static inline __attribute__((always_inline)) __m512 vabs(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
}

// The sign of s on |y|.
AVX512 static inline __attribute__((always_inline)) __m512 with_sign(__m512 y, __m512 s) {
  const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(sign, _mm512_castps_si512(y)),
                                             _mm512_and_si512(sign, _mm512_castps_si512(s))));
}

AVX512 static inline __attribute__((always_inline)) __m512 vsigmoid(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return keep_nan(_mm512_div_ps(one, _mm512_add_ps(one, poly_exp(_mm512_sub_ps(_mm512_setzero_ps(), x)))), x);
}

AVX512 static inline __attribute__((always_inline)) __m512 vtanh(__m512 x) {
  // |x| < 0.3: the odd series to x^11 (the next term is below 2e-9 relative); beyond,
  // 1 - 2 / (e^2|x| + 1), which loses no digits there.
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 a = vabs(x);
  __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(poly_exp(_mm512_add_ps(a, a)), one)));
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 s = _mm512_set1_ps(-1382.0f / 155925.0f);
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(62.0f / 2835.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-17.0f / 315.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(2.0f / 15.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-1.0f / 3.0f));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(s, x2), x, x);
  __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.3f), _CMP_LT_OQ);
  return keep_nan(_mm512_mask_mov_ps(with_sign(big, x), is_small, small), x);
}

AVX512 static inline __attribute__((always_inline)) __m512 verf(__m512 x) {
  // |x| < 0.5: the Maclaurin series to x^13 (remainder below 4e-10); beyond, Abramowitz and
  // Stegun 7.1.26 (absolute error below 1.5e-7, so relative below 3e-7 where erf >= 0.52).
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 a = _mm512_min_ps(vabs(x), _mm512_set1_ps(4.0f));   // erf(4) rounds to 1
  __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), a, one));
  __m512 q = _mm512_set1_ps(1.061405429f);
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-1.453152027f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.421413741f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-0.284496736f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.254829592f));
  q = _mm512_mul_ps(q, t);
  __m512 big = _mm512_fnmadd_ps(q, poly_exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a))), one);
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 s = _mm512_set1_ps(1.0f / 9360.0f);
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-1.0f / 1320.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.0f / 216.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-1.0f / 42.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.0f / 10.0f));
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-1.0f / 3.0f));
  s = _mm512_fmadd_ps(s, x2, one);
  __m512 small = _mm512_mul_ps(_mm512_mul_ps(s, x), _mm512_set1_ps(1.12837916709551257f));   // 2 / sqrt(pi)
  __mmask16 is_small = _mm512_cmp_ps_mask(vabs(x), _mm512_set1_ps(0.5f), _CMP_LT_OQ);
  return keep_nan(_mm512_mask_mov_ps(with_sign(big, x), is_small, small), x);
}

AVX512 static inline __attribute__((always_inline)) __m512 clamp01(__m512 v) {
  return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
}

AVX512 static inline __attribute__((always_inline)) __m512 unary_vec(int op, __m512 v, float alpha, float beta) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  switch (op) {
    case MLK_EXP: return keep_nan(poly_exp(v), v);
    case MLK_SIGMOID: return vsigmoid(v);
    case MLK_SILU: return _mm512_mul_ps(v, vsigmoid(v));
    case MLK_TANH: return vtanh(v);
    case MLK_ERF: return verf(v);
    case MLK_GELU:
      return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                           _mm512_add_ps(one, verf(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)))));
    case MLK_GELU_TANH: {
      __m512 inner = _mm512_mul_ps(_mm512_set1_ps(0.79788456080286536f),
                                   _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), _mm512_mul_ps(v, v), v));
      return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(one, vtanh(inner)));
    }
    case MLK_ELU: {
      __m512 neg = _mm512_mul_ps(_mm512_set1_ps(alpha), _mm512_sub_ps(poly_exp(v), one));
      return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), neg);
    }
    case MLK_HARDSWISH:
      return _mm512_mul_ps(v, clamp01(_mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f))));
    case MLK_HARDSIGMOID: return keep_nan(clamp01(_mm512_fmadd_ps(v, _mm512_set1_ps(alpha), _mm512_set1_ps(beta))), v);
    case MLK_LEAKYRELU:
      return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), _mm512_mul_ps(v, _mm512_set1_ps(alpha)));
    default: return v;
  }
}

int mlk_unary_avx512_ok_(int op) {
  switch (op) {
    case MLK_EXP: case MLK_SIGMOID: case MLK_SILU: case MLK_TANH: case MLK_ERF: case MLK_GELU: case MLK_GELU_TANH: case MLK_ELU:
    case MLK_HARDSWISH: case MLK_HARDSIGMOID: case MLK_LEAKYRELU:
      return 1;
    default: return 0;
  }
}

AVX512 void mlk_unary_avx512_(int op, const float *x, float *y, size_t n, float alpha, float beta) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, unary_vec(op, _mm512_loadu_ps(x + i), alpha, beta));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, unary_vec(op, _mm512_maskz_loadu_ps(m, x + i), alpha, beta));
  }
}

// Binary arithmetic with 16-wide vectors: the portable file is built for baseline x86-64 (4-wide
// SSE), and its rows over NHWC pixels are a few channels long (face_landmark's per-channel PRelu
// over 16 channels: 0.1 ms for 147k elements). The results are the scalar ones (one IEEE
// operation per element; PRelu selects x where x < 0 is false, NaN and -0 included).
AVX512 static inline __attribute__((always_inline)) __m512 binary_vec(const int op, __m512 a, __m512 b) {
  switch (op) {
    case MLK_ADD: return _mm512_add_ps(a, b);
    case MLK_SUB: return _mm512_sub_ps(a, b);
    case MLK_MUL: return _mm512_mul_ps(a, b);
    case MLK_DIV: return _mm512_div_ps(a, b);
    default: return _mm512_mask_mul_ps(a, _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ), a, b);   // PRelu
  }
}

AVX512 static inline __attribute__((always_inline)) void binary_rows(const int op, const float *a, const float *b, float *y,
                                                                     long rows, long inner) {
  const __mmask16 tail = (__mmask16)((1u << (inner % 16)) - 1);
  const long whole = inner - inner % 16;
  for (long r = 0; r < rows; r++, a += inner, y += inner) {
    for (long k = 0; k < whole; k += 16) _mm512_storeu_ps(y + k, binary_vec(op, _mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k)));
    if (tail)
      _mm512_mask_storeu_ps(y + whole, tail, binary_vec(op, _mm512_maskz_loadu_ps(tail, a + whole), _mm512_maskz_loadu_ps(tail, b + whole)));
  }
}

// One row of y = a op b, each operand a row (stride 1) or one value repeated (stride 0): a
// scalar constant, a per-channel bias or slope over an NCHW plane, a scale that comes first. The
// generic C loop is built for the baseline x86-64 (four lanes): these ran at 2.5 G elements/s
// where the same-shape op runs at 6.
AVX512 static inline __attribute__((always_inline)) void binary_strided(const int op, const float *a, long ai, const float *b,
                                                                        long bi, float *y, long n) {
  const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1);
  const long whole = n - n % 16;
  const __m512 sa = _mm512_set1_ps(a[0]), sb = _mm512_set1_ps(b[0]);
  for (long k = 0; k < whole; k += 16)
    _mm512_storeu_ps(y + k, binary_vec(op, ai ? _mm512_loadu_ps(a + k) : sa, bi ? _mm512_loadu_ps(b + k) : sb));
  if (tail)
    _mm512_mask_storeu_ps(y + whole, tail, binary_vec(op, ai ? _mm512_maskz_loadu_ps(tail, a + whole) : sa,
                                                      bi ? _mm512_maskz_loadu_ps(tail, b + whole) : sb));
}

// The strides are constants in each instance: tested in the loop, they cost a third of the time.
#define STRIDED(OP)                                                    \
  do {                                                                 \
    if (ai && bi) binary_strided(OP, a, 1, b, 1, y, n);                \
    else if (ai) binary_strided(OP, a, 1, b, 0, y, n);                 \
    else binary_strided(OP, a, 0, b, 1, y, n);                         \
  } while (0)
AVX512 void mlk_binary_row_avx512_(int op, const float *a, long ai, const float *b, long bi, float *y, long n) {
  switch (op) {
    case MLK_ADD: STRIDED(MLK_ADD); break;
    case MLK_SUB: STRIDED(MLK_SUB); break;
    case MLK_MUL: STRIDED(MLK_MUL); break;
    case MLK_DIV: STRIDED(MLK_DIV); break;
    case MLK_PRELU: STRIDED(MLK_PRELU); break;
    default: abort();
  }
}
#undef STRIDED

int mlk_binary_avx512_ok_(int op) {
  return op == MLK_ADD || op == MLK_SUB || op == MLK_MUL || op == MLK_DIV || op == MLK_PRELU;
}

// Rows [r0, r1) of mlk_channel_affine's [outer * c, inner] view: y = x * scale + shift and the
// clamping activation in one pass, the row's tail masked. Planes of 7 x 7 (DenseNet's last
// block) spent more on the per-row scalar loop and second pass than on their 49 elements.
AVX512 void mlk_channel_affine_rows_avx512_(const float *x, float *y, long r0, long r1, long c, long inner, const float *scale,
                                            const float *shift, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  const long n16 = inner / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (inner - n16)) - 1);
  for (long r = r0; r < r1; r++) {
    const __m512 a = _mm512_set1_ps(scale[r % c]), b = _mm512_set1_ps(shift[r % c]);
    const float *src = x + r * inner;
    float *dst = y + r * inner;
    for (long i = 0; i < n16; i += 16) _mm512_storeu_ps(dst + i, apply_clamp(_mm512_fmadd_ps(_mm512_loadu_ps(src + i), a, b), cl));
    if (tail) _mm512_mask_storeu_ps(dst + n16, tail, apply_clamp(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, src + n16), a, b), cl));
  }
}

AVX512 void mlk_binary_rows_avx512_(int op, const float *a, const float *b, float *y, long rows, long inner) {
  switch (op) {
    case MLK_ADD: binary_rows(MLK_ADD, a, b, y, rows, inner); break;
    case MLK_SUB: binary_rows(MLK_SUB, a, b, y, rows, inner); break;
    case MLK_MUL: binary_rows(MLK_MUL, a, b, y, rows, inner); break;
    case MLK_DIV: binary_rows(MLK_DIV, a, b, y, rows, inner); break;
    case MLK_PRELU: binary_rows(MLK_PRELU, a, b, y, rows, inner); break;
    default: abort();
  }
}

// Softmax (log 0) and LogSoftmax (log 1) over the middle axis of [outer, axis, inner], for
// outer index o and the inner columns [c0, c1): 16 columns a vector, the axis walked at a
// stride of `inner` (YOLOv8's distribution softmax: 16 bins over 8400 columns), or, where
// inner is 1, along a contiguous row 16 elements at a time. The scalar loop (a double exp per
// element, strided) took 3 ms on PP-OCRv4's recognizer and 1.6 ms on nudenet. The exponential
// and the sums are float (within a few ulp of the double ones); a NaN makes its column NaN.
AVX512 static inline __attribute__((always_inline)) float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

AVX512 static void softmax_row(const float *x, float *y, long n, int log) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  const long whole = n - n % 16;
  const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1);
  __m512 vm = ninf;
  __mmask16 nan = 0;
  for (long k = 0; k < whole; k += 16) { const __m512 v = _mm512_loadu_ps(x + k); nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q); vm = _mm512_max_ps(vm, v); }
  if (tail) { const __m512 v = _mm512_mask_loadu_ps(ninf, tail, x + whole); nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q); vm = _mm512_max_ps(vm, v); }
  const float mx = nan ? __builtin_nanf("") : _mm512_reduce_max_ps(vm);
  const __m512 m = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  for (long k = 0; k < whole; k += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + k), m), e = keep_nan(poly_exp(d), d);
    acc = _mm512_add_ps(acc, e);
    if (!log) _mm512_storeu_ps(y + k, e);
  }
  if (tail) {
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + whole), m), e = _mm512_maskz_mov_ps(tail, keep_nan(poly_exp(d), d));
    acc = _mm512_add_ps(acc, e);
    if (!log) _mm512_mask_storeu_ps(y + whole, tail, e);
  }
  const float sum = hsum(acc);
  if (log) {
    // (x - max) - log(sum): each difference rounded once at the result's own magnitude.
    const __m512 ls = _mm512_set1_ps(logf(sum));
    for (long k = 0; k < whole; k += 16) _mm512_storeu_ps(y + k, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + k), m), ls));
    if (tail) _mm512_mask_storeu_ps(y + whole, tail, _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + whole), m), ls));
    return;
  }
  const __m512 inv = _mm512_set1_ps(1.0f / sum);
  for (long k = 0; k < whole; k += 16) _mm512_storeu_ps(y + k, _mm512_mul_ps(_mm512_loadu_ps(y + k), inv));
  if (tail) _mm512_mask_storeu_ps(y + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + whole), inv));
}

AVX512 void mlk_softmax_avx512_(const float *x, float *y, long axis, long inner, int log, long c0, long c1) {
  if (inner == 1) { softmax_row(x, y, axis, log); return; }
  for (long c = c0; c < c1; c += 16) {
    const __mmask16 m = c1 - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c1 - c)) - 1);
    const float *px = x + c;
    float *py = y + c;
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    __mmask16 nan = 0;
    for (long k = 0; k < axis; k++) {
      const __m512 v = _mm512_maskz_loadu_ps(m, px + k * inner);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      mx = _mm512_max_ps(mx, v);
    }
    mx = _mm512_mask_mov_ps(mx, nan, _mm512_set1_ps(__builtin_nanf("")));
    __m512 sum = _mm512_setzero_ps();
    for (long k = 0; k < axis; k++) {
      const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, px + k * inner), mx), e = keep_nan(poly_exp(d), d);
      sum = _mm512_add_ps(sum, e);
      if (!log) _mm512_mask_storeu_ps(py + k * inner, m, e);
    }
    if (log) {
      float s[16], l[16];
      _mm512_storeu_ps(s, sum);
      for (int i = 0; i < 16; i++) l[i] = logf(s[i]);
      const __m512 ls = _mm512_loadu_ps(l);
      for (long k = 0; k < axis; k++)
        _mm512_mask_storeu_ps(py + k * inner, m, _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, px + k * inner), mx), ls));
    } else {
      const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum);
      for (long k = 0; k < axis; k++) _mm512_mask_storeu_ps(py + k * inner, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, py + k * inner), inv));
    }
  }
}

#endif
