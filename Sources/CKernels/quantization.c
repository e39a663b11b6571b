// Per-tensor conversions between float and int8 / uint8, for the ops that compute in float
// (QuantizeLinear / DequantizeLinear, TFLite QUANTIZE, the float paths of quantized nodes). A
// QDQ model from onnxruntime.quantization runs two of them around every convolution: as
// scalar loops they took 2.5 ns an element and most of MobileNetV2's time.
//
// The vector forms give the scalar forms' results to the bit: the quotient x / scale is the same
// IEEE division; half to even is the hardware's rounding, half away from zero is built from the
// truncation and the exact remainder v - trunc(v) as in the scalar form; the zero point is added
// in float, exactly, since |v| is clamped to 1e6 first (every value beyond saturates anyway).
#include "avx512.h"

#include <math.h>

#define QUANT_CHUNK 16384   // elements per task: fixed, so results never depend on the thread count

static void dequantize_scalar(const void *x, int in_signed, size_t n, float scale, int32_t zero, float *y) {
  if (in_signed)
    for (size_t i = 0; i < n; i++) y[i] = (float)((int32_t)((const int8_t *)x)[i] - zero) * scale;
  else
    for (size_t i = 0; i < n; i++) y[i] = (float)((int32_t)((const uint8_t *)x)[i] - zero) * scale;
}

static void quantize_scalar(const float *x, size_t n, float scale, int32_t zero, int out_signed, int half_even,
                            uint8_t *dst) {
  const int32_t lo = out_signed ? -128 : 0, hi = out_signed ? 127 : 255;
  for (size_t i = 0; i < n; i++) {
    float v = x[i] / scale;
    int32_t q = zero;
    if (v == v) {
      // Beyond +-1e6 every value saturates anyway; within, v - trunc(v) is exact.
      v = v < -1e6f ? -1e6f : (v > 1e6f ? 1e6f : v);
      int32_t t = (int32_t)v;
      const float f = v - (float)t;
      if (half_even)
        t += (f > 0.5f || (f == 0.5f && (t & 1))) ? 1 : ((f < -0.5f || (f == -0.5f && (t & 1))) ? -1 : 0);
      else
        t += f >= 0.5f ? 1 : (f <= -0.5f ? -1 : 0);
      q = t + zero;
      q = q < lo ? lo : (q > hi ? hi : q);
    }
    dst[i] = (uint8_t)q;
  }
}

// Quantize then dequantize (half to even), in blocks through a small byte buffer.
static void round_trip_scalar(const float *x, size_t n, float scale, int32_t zero, int is_signed, float *y) {
  uint8_t q[256];
  for (size_t i = 0; i < n; i += 256) {
    const size_t m = n - i < 256 ? n - i : 256;
    quantize_scalar(x + i, m, scale, zero, is_signed, 1, q);
    dequantize_scalar(q, is_signed, m, scale, zero, y + i);
  }
}

#if MLK_AVX512_BUILD
AVX512 static void dequantize_avx512(const void *x, int in_signed, size_t n, float scale, int32_t zero, float *y) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i z = _mm512_set1_epi32(zero);
  const uint8_t *src = x;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i b = _mm_loadu_si128((const __m128i *)(src + i));
    const __m512i w = in_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(w, z)), s));
  }
  dequantize_scalar(src + i, in_signed, n - i, scale, zero, y + i);
}

AVX512 static void quantize_avx512(const float *x, size_t n, float scale, int32_t zero, int out_signed, int half_even,
                                   uint8_t *dst) {
  const __m512 s = _mm512_set1_ps(scale), zf = _mm512_set1_ps((float)zero);
  const __m512 lo = _mm512_set1_ps(out_signed ? -128.0f : 0.0f), hi = _mm512_set1_ps(out_signed ? 127.0f : 255.0f);
  const __m512 big = _mm512_set1_ps(1e6f), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), s);
    const __mmask16 number = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_sub_ps(_mm512_setzero_ps(), big)), big);
    __m512 r;
    if (half_even) {
      r = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
      r = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m512 f = _mm512_sub_ps(v, r);
      r = _mm512_mask_add_ps(r, _mm512_cmp_ps_mask(f, half, _CMP_GE_OQ), r, one);
      r = _mm512_mask_sub_ps(r, _mm512_cmp_ps_mask(f, _mm512_sub_ps(_mm512_setzero_ps(), half), _CMP_LE_OQ), r, one);
    }
    __m512 q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, zf), lo), hi);
    q = _mm512_mask_blend_ps(number, zf, q);
    _mm_storeu_si128((__m128i *)(dst + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
  }
  quantize_scalar(x + i, n - i, scale, zero, out_signed, half_even, dst + i);
}

// The quantized value q stays in float (an integer within the type's range), so q - zero is
// exact and the product is the one dequantize_scalar forms.
AVX512 static void round_trip_avx512(const float *x, size_t n, float scale, int32_t zero, int is_signed, float *y) {
  const __m512 s = _mm512_set1_ps(scale), zf = _mm512_set1_ps((float)zero);
  const __m512 lo = _mm512_set1_ps(is_signed ? -128.0f : 0.0f), hi = _mm512_set1_ps(is_signed ? 127.0f : 255.0f);
  const __m512 big = _mm512_set1_ps(1e6f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), s);
    const __mmask16 number = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_sub_ps(_mm512_setzero_ps(), big)), big);
    const __m512 r = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, zf), lo), hi);
    q = _mm512_mask_blend_ps(number, zf, q);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_sub_ps(q, zf), s));
  }
  round_trip_scalar(x + i, n - i, scale, zero, is_signed, y + i);
}
#endif

void mlk_dequantize_row_(const void *x, int in_signed, size_t n, float scale, int32_t zero, float *y) {
#if MLK_AVX512_BUILD
  if (mlk_use_avx512_()) {
    dequantize_avx512(x, in_signed, n, scale, zero, y);
    return;
  }
#endif
  dequantize_scalar(x, in_signed, n, scale, zero, y);
}

void mlk_quantize_row_(const float *x, size_t n, float scale, int32_t zero, int out_signed, int half_even, void *y) {
#if MLK_AVX512_BUILD
  if (mlk_use_avx512_()) {
    quantize_avx512(x, n, scale, zero, out_signed, half_even, y);
    return;
  }
#endif
  quantize_scalar(x, n, scale, zero, out_signed, half_even, y);
}

typedef struct {
  const void *x;
  void *y;
  size_t n;
  float scale;
  int32_t zero;
  int is_signed, half_even;
} quant_job;

static size_t chunk_of(const quant_job *j, int t, size_t *i0) {
  *i0 = (size_t)t * QUANT_CHUNK;
  return j->n - *i0 < QUANT_CHUNK ? j->n - *i0 : QUANT_CHUNK;
}

static void dequantize_task(void *ctx, int t) {
  const quant_job *j = ctx;
  size_t i0;
  const size_t m = chunk_of(j, t, &i0);
  mlk_dequantize_row_((const uint8_t *)j->x + i0, j->is_signed, m, j->scale, j->zero, (float *)j->y + i0);
}

static void quantize_task(void *ctx, int t) {
  const quant_job *j = ctx;
  size_t i0;
  const size_t m = chunk_of(j, t, &i0);
  mlk_quantize_row_((const float *)j->x + i0, m, j->scale, j->zero, j->is_signed, j->half_even, (uint8_t *)j->y + i0);
}

static void round_trip_task(void *ctx, int t) {
  const quant_job *j = ctx;
  size_t i0;
  const size_t m = chunk_of(j, t, &i0);
  const float *x = (const float *)j->x + i0;
  float *y = (float *)j->y + i0;
#if MLK_AVX512_BUILD
  if (mlk_use_avx512_()) {
    round_trip_avx512(x, m, j->scale, j->zero, j->is_signed, y);
    return;
  }
#endif
  round_trip_scalar(x, m, j->scale, j->zero, j->is_signed, y);
}

static int tasks_of(size_t n) { return (int)((n + QUANT_CHUNK - 1) / QUANT_CHUNK); }

void mlk_dequantize_8(const void *x, int in_signed, size_t n, float scale, int32_t zero, float *y) {
  if (n == 0) return;
  quant_job job = {x, y, n, scale, zero, in_signed, 0};
  mlk_parallel_(tasks_of(n), dequantize_task, &job);
}

void mlk_quantize_8(const float *x, size_t n, float scale, int32_t zero, int out_signed, int half_even, void *y) {
  if (n == 0) return;
  quant_job job = {x, y, n, scale, zero, out_signed, half_even};
  mlk_parallel_(tasks_of(n), quantize_task, &job);
}

void mlk_quantize_dequantize_8(const float *x, size_t n, float scale, int32_t zero, int is_signed, float *y) {
  if (n == 0) return;
  quant_job job = {x, y, n, scale, zero, is_signed, 1};
  mlk_parallel_(tasks_of(n), round_trip_task, &job);
}

// onnxruntime's QLinearAdd (its default AVX2 kernel): v = fma(a, ra, fma(b, rb, base)) with
// ra = sa / sc, rb = sb / sc and base = zc - (za ra + zb rb), rounded half to even and saturated.
// Both forms fuse the multiply-adds (fmaf, the vector FMA), so they agree to the bit.
static void qlinear_add_scalar(const uint8_t *a, const uint8_t *b, size_t n, int is_signed, float ra, float rb, float base,
                               uint8_t *y) {
  const float lo = is_signed ? -128.0f : 0.0f, hi = is_signed ? 127.0f : 255.0f;
  for (size_t i = 0; i < n; i++) {
    const float fa = is_signed ? (float)(int8_t)a[i] : (float)a[i], fb = is_signed ? (float)(int8_t)b[i] : (float)b[i];
    float v = fmaf(fa, ra, fmaf(fb, rb, base));
    v = v < lo ? lo : (v > hi ? hi : v);
    const int32_t q = (int32_t)nearbyintf(v);
    y[i] = is_signed ? (uint8_t)(int8_t)q : (uint8_t)q;
  }
}

#if MLK_AVX512_BUILD
AVX512 static void qlinear_add_avx512(const uint8_t *a, const uint8_t *b, size_t n, int is_signed, float ra, float rb,
                                      float base, uint8_t *y) {
  const __m512 vra = _mm512_set1_ps(ra), vrb = _mm512_set1_ps(rb), vbase = _mm512_set1_ps(base);
  const __m512 lo = _mm512_set1_ps(is_signed ? -128.0f : 0.0f), hi = _mm512_set1_ps(is_signed ? 127.0f : 255.0f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i qa = _mm_loadu_si128((const __m128i *)(a + i)), qb = _mm_loadu_si128((const __m128i *)(b + i));
    const __m512 fa = _mm512_cvtepi32_ps(is_signed ? _mm512_cvtepi8_epi32(qa) : _mm512_cvtepu8_epi32(qa));
    const __m512 fb = _mm512_cvtepi32_ps(is_signed ? _mm512_cvtepi8_epi32(qb) : _mm512_cvtepu8_epi32(qb));
    __m512 v = _mm512_fmadd_ps(fa, vra, _mm512_fmadd_ps(fb, vrb, vbase));
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __m512i q = _mm512_cvtps_epi32(v);   // the current rounding mode: half to even
    _mm_storeu_si128((__m128i *)(y + i), _mm512_cvtepi32_epi8(q));
  }
  qlinear_add_scalar(a + i, b + i, n - i, is_signed, ra, rb, base, y + i);
}
#endif

typedef struct {
  const uint8_t *a, *b;
  uint8_t *y;
  size_t n;
  int is_signed;
  float ra, rb, base;
} qlinear_add_job;

static void qlinear_add_task(void *ctx, int t) {
  const qlinear_add_job *j = ctx;
  const size_t i0 = (size_t)t * QUANT_CHUNK, m = j->n - i0 < QUANT_CHUNK ? j->n - i0 : QUANT_CHUNK;
#if MLK_AVX512_BUILD
  if (mlk_use_avx512_()) {
    qlinear_add_avx512(j->a + i0, j->b + i0, m, j->is_signed, j->ra, j->rb, j->base, j->y + i0);
    return;
  }
#endif
  qlinear_add_scalar(j->a + i0, j->b + i0, m, j->is_signed, j->ra, j->rb, j->base, j->y + i0);
}

void mlk_qlinear_add_8(const void *a, const void *b, size_t n, int is_signed, float ra, float rb, float base, void *y) {
  if (n == 0) return;
  qlinear_add_job job = {a, b, y, n, is_signed, ra, rb, base};
  mlk_parallel_(tasks_of(n), qlinear_add_task, &job);
}

// onnxruntime's requantization of int32 sums (MlasRequantizeOutput), here of sums held exactly as
// floats: v * scale clamped to the output type's range less the zero point, rounded half to even,
// plus the zero point. One scale per channel of NCHW planes (or one for all).
static void requantize_plane_scalar(const float *y, size_t n, float scale, int32_t zero, int is_signed, uint8_t *out) {
  const float lo = (float)((is_signed ? -128 : 0) - zero), hi = (float)((is_signed ? 127 : 255) - zero);
  for (size_t i = 0; i < n; i++) {
    float v = y[i] * scale;
    v = v < lo ? lo : (v > hi ? hi : v);
    const int32_t q = (int32_t)nearbyintf(v) + zero;
    out[i] = is_signed ? (uint8_t)(int8_t)q : (uint8_t)q;
  }
}

#if MLK_AVX512_BUILD
AVX512 static void requantize_plane_avx512(const float *y, size_t n, float scale, int32_t zero, int is_signed, uint8_t *out) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512 lo = _mm512_set1_ps((float)((is_signed ? -128 : 0) - zero)), hi = _mm512_set1_ps((float)((is_signed ? 127 : 255) - zero));
  const __m512i z = _mm512_set1_epi32(zero);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(y + i), s), lo), hi);
    _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), z)));
  }
  requantize_plane_scalar(y + i, n - i, scale, zero, is_signed, out + i);
}
#endif

typedef struct {
  const float *y;
  uint8_t *out;
  size_t plane;
  int channels, nscales, is_signed;
  const float *scales;
  int32_t zero;
} requantize_job;

static void requantize_task(void *ctx, int t) {
  const requantize_job *j = ctx;
  const float scale = j->scales[j->nscales == 1 ? 0 : t % j->channels];
  const size_t at = (size_t)t * j->plane;
#if MLK_AVX512_BUILD
  if (mlk_use_avx512_()) {
    requantize_plane_avx512(j->y + at, j->plane, scale, j->zero, j->is_signed, j->out + at);
    return;
  }
#endif
  requantize_plane_scalar(j->y + at, j->plane, scale, j->zero, j->is_signed, j->out + at);
}

void mlk_requantize_planes(const float *y, int planes, size_t plane, int channels, const float *scales, int nscales,
                           int32_t zero, int is_signed, void *out) {
  if (planes <= 0 || plane == 0) return;
  requantize_job job = {y, out, plane, channels, nscales, is_signed, scales, zero};
  mlk_parallel_(planes, requantize_task, &job);
}

// onnxruntime's QLinearMul: round half to even of (float)((a - za)(b - zb)) * scale, plus zc,
// saturated; b one value for the whole row where b_scalar (a per-channel squeeze-excitation
// scale over its plane). The product of two 8-bit differences is exact in a float.
static void qlinear_mul_scalar(const uint8_t *a, const uint8_t *b, size_t n, int b_scalar, int is_signed, int32_t za,
                               int32_t zb, float scale, int32_t zc, uint8_t *y) {
  const int32_t lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
  for (size_t i = 0; i < n; i++) {
    const int32_t va = (is_signed ? (int32_t)(int8_t)a[i] : (int32_t)a[i]) - za;
    const uint8_t bb = b_scalar ? b[0] : b[i];
    const int32_t vb = (is_signed ? (int32_t)(int8_t)bb : (int32_t)bb) - zb;
    int32_t q = (int32_t)nearbyintf((float)(va * vb) * scale) + zc;
    q = q < lo ? lo : (q > hi ? hi : q);
    y[i] = (uint8_t)q;
  }
}

#if MLK_AVX512_BUILD
AVX512 static void qlinear_mul_avx512(const uint8_t *a, const uint8_t *b, size_t n, int b_scalar, int is_signed, int32_t za,
                                      int32_t zb, float scale, int32_t zc, uint8_t *y) {
  const __m512i vza = _mm512_set1_epi32(za), vzb = _mm512_set1_epi32(zb), vzc = _mm512_set1_epi32(zc);
  const __m512i lo = _mm512_set1_epi32(is_signed ? -128 : 0), hi = _mm512_set1_epi32(is_signed ? 127 : 255);
  const __m512 s = _mm512_set1_ps(scale);
  const int32_t b0 = b_scalar ? (is_signed ? (int32_t)(int8_t)b[0] : (int32_t)b[0]) : 0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i qa = _mm_loadu_si128((const __m128i *)(a + i));
    const __m512i va = _mm512_sub_epi32(is_signed ? _mm512_cvtepi8_epi32(qa) : _mm512_cvtepu8_epi32(qa), vza);
    __m512i vb;
    if (b_scalar) {
      vb = _mm512_set1_epi32(b0 - zb);
    } else {
      const __m128i qb = _mm_loadu_si128((const __m128i *)(b + i));
      vb = _mm512_sub_epi32(is_signed ? _mm512_cvtepi8_epi32(qb) : _mm512_cvtepu8_epi32(qb), vzb);
    }
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_mullo_epi32(va, vb)), s);
    const __m512i q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(v), vzc), lo), hi);
    _mm_storeu_si128((__m128i *)(y + i), _mm512_cvtepi32_epi8(q));
  }
  qlinear_mul_scalar(a + i, b_scalar ? b : b + i, n - i, b_scalar, is_signed, za, zb, scale, zc, y + i);
}
#endif

static void qlinear_mul_run(const uint8_t *a, const uint8_t *b, size_t n, int b_scalar, int is_signed, int32_t za, int32_t zb,
                            float scale, int32_t zc, uint8_t *y) {
#if MLK_AVX512_BUILD
  if (mlk_use_avx512_()) {
    qlinear_mul_avx512(a, b, n, b_scalar, is_signed, za, zb, scale, zc, y);
    return;
  }
#endif
  qlinear_mul_scalar(a, b, n, b_scalar, is_signed, za, zb, scale, zc, y);
}

// Rows of `run` values of a, each with one b (b + b_at[row]) or, with b_at NULL, b itself
// element by element (one row of n): shared among threads, a task a row or a chunk.
typedef struct {
  const uint8_t *a, *b;
  const long *b_at;
  uint8_t *y;
  size_t n, run;
  int rows_per_task, rows, is_signed;
  int32_t za, zb, zc;
  float scale;
} qmul_job;

static void qmul_task(void *ctx, int t) {
  const qmul_job *j = ctx;
  if (!j->b_at) {
    const size_t i0 = (size_t)t * QUANT_CHUNK, m = j->n - i0 < QUANT_CHUNK ? j->n - i0 : QUANT_CHUNK;
    qlinear_mul_run(j->a + i0, j->b + i0, m, 0, j->is_signed, j->za, j->zb, j->scale, j->zc, j->y + i0);
    return;
  }
  const int r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
  for (int r = r0; r < r1; r++)
    qlinear_mul_run(j->a + (size_t)r * j->run, j->b + j->b_at[r], j->run, 1, j->is_signed, j->za, j->zb, j->scale, j->zc,
                    j->y + (size_t)r * j->run);
}

void mlk_qlinear_mul_8(const void *a, const void *b, size_t n, int is_signed, int32_t za, int32_t zb, float scale,
                       int32_t zc, void *y) {
  if (n == 0) return;
  qmul_job job = {a, b, NULL, y, n, 0, 0, 0, is_signed, za, zb, zc, scale};
  mlk_parallel_(tasks_of(n), qmul_task, &job);
}

void mlk_qlinear_mul_rows_8(const void *a, const void *b, const long *b_at, int rows, size_t run, int is_signed, int32_t za,
                            int32_t zb, float scale, int32_t zc, void *y) {
  if (rows <= 0 || run == 0) return;
  const int per = run >= QUANT_CHUNK ? 1 : (int)(QUANT_CHUNK / run);
  qmul_job job = {a, b, b_at, y, 0, run, per, rows, is_signed, za, zb, zc, scale};
  mlk_parallel_((rows + per - 1) / per, qmul_task, &job);
}

// y[i] = table[x[i]] over n bytes (8-bit ops onnxruntime computes by a lookup table).
typedef struct { const uint8_t *x, *table; uint8_t *y; size_t n; } map_job;

#if MLK_AVX512_BUILD
// With AVX-512 VBMI, 64 lookups at a time: vpermi2b picks from 128 table bytes by an index's low
// seven bits, once from each half of the table, and the index's top bit chooses between them.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static size_t map_vbmi(const uint8_t *x, size_t n, const uint8_t *table,
                                                                            uint8_t *y) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i idx = _mm512_loadu_si512(x + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1), hi = _mm512_permutex2var_epi8(t2, idx, t3);
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
  return i;
}
#endif

static void map_task(void *ctx, int t) {
  const map_job *j = ctx;
  const size_t i0 = (size_t)t * QUANT_CHUNK, m = j->n - i0 < QUANT_CHUNK ? j->n - i0 : QUANT_CHUNK;
  size_t done = 0;
#if MLK_AVX512_BUILD
  if (mlk_avx512_has_(MLK_AVX512_VBMI)) done = map_vbmi(j->x + i0, m, j->table, j->y + i0);
#endif
  for (size_t i = i0 + done; i < i0 + m; i++) j->y[i] = j->table[j->x[i]];
}

void mlk_map_8(const void *x, size_t n, const uint8_t *table, void *y) {
  if (n == 0) return;
  map_job job = {x, table, y, n};
  mlk_parallel_(tasks_of(n), map_task, &job);
}

