// Integer convolutions for quantized models: int8 or uint8 activations, int8 weights (per
// channel or per tensor, zero point 0), int32 bias and accumulation, and either the fixed-point
// requantization of TFLite's reference kernels (below), so results are the reference's to the
// bit, or onnxruntime's (mlk_qconv.fscale: the sum in float times a scale, rounded half to even).
//
// Arithmetic, per output channel o:
//   acc = bias[o] + sum_k (x_k - x_zero) * w[o][k]
//   y   = clamp(out_zero + MultiplyByQuantizedMultiplier(acc, M[o]), act_min, act_max)
// where M[o] = in_scale * w_scale[o] / out_scale is held as a Q31 multiplier and a power-of-two
// exponent (mlk_quantize_multiplier). The multiply is gemmlowp's rounding doubling high multiply
// (ties up: see requant16) followed by a rounding right shift (ties away from zero): two
// roundings, as TFLite does them.
//
// The GEMM takes unsigned activations: a = x + 128 for int8 (x itself for uint8), whose zero is
// a_zero = x_zero + 128 (x_zero). Then sum (x - x_zero) w = sum a w - a_zero * sum w, and the
// second term is folded into the bias once, when the weights are packed. Padding reads as
// a_zero: a real zero. With AVX-512 VNNI, vpdpbusd multiplies 4 unsigned bytes of A by 4 signed
// bytes of W and adds them into each of 16 int32 lanes, 64 multiply-adds an instruction; the
// portable path does the same sums in plain C.
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QROWS 64   // output pixels per task: their im2col rows stay in L1/L2
#define QMR 8      // rows per register tile (VNNI)

void mlk_quantize_multiplier(double m, int32_t *mult, int32_t *shift) {
  if (!(m > 0) || !isfinite(m)) {
    *mult = 0; *shift = 0;
    return;
  }
  int e = 0;
  const double f = frexp(m, &e);   // m = f * 2^e, f in [0.5, 1)
  long long q = llround(f * 2147483648.0);
  if (q == 2147483648LL) { q /= 2; e++; }
  if (e < -31) { q = 0; e = 0; }
  if (e > 30) { q = 2147483647LL; e = 30; }   // beyond any scale a real model has; saturate
  *mult = (int32_t)q;
  *shift = e;
}

int32_t mlk_multiply_by_quantized_(int32_t x, int32_t mult, int32_t shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int64_t ab = (int64_t)(int32_t)((uint32_t)x << left) * mult;
  const int64_t nudge = ab >= 0 ? (1LL << 30) : 1 - (1LL << 30);
  const int32_t hi = (int32_t)((ab + nudge) / (1LL << 31));   // C division truncates toward zero
  if (right == 0) return hi;
  const int32_t mask = (int32_t)((1u << right) - 1u);
  const int32_t rem = hi & mask, threshold = (mask >> 1) + (hi < 0 ? 1 : 0);
  return (hi >> right) + (rem > threshold ? 1 : 0);
}

static inline uint8_t requant_one(int32_t acc, const int32_t *mult, const int32_t *shift, int o, const mlk_qconv *q) {
  if (q->fscale) {
    // onnxruntime's MlasRequantizeOutput: the sum in float times the scale, clamped, rounded half to even.
    float f = (float)acc * q->fscale[o];
    const float lo = (float)(q->act_min - q->out_zero), hi = (float)(q->act_max - q->out_zero);
    f = f < lo ? lo : (f > hi ? hi : f);
    return (uint8_t)((int32_t)nearbyintf(f) + q->out_zero);
  }
  int32_t v = mlk_multiply_by_quantized_(acc, mult[o], shift[o]) + q->out_zero;
  v = v < q->act_min ? q->act_min : (v > q->act_max ? q->act_max : v);
  return (uint8_t)v;   // the low byte: an int8 or uint8 value as stored
}

size_t mlk_qconv_packed_size(int out_c, int k) { return (size_t)((out_c + 15) / 16) * (size_t)((k + 3) / 4) * 64; }

void mlk_qconv_pack(int out_c, int k, const int8_t *w, const int32_t *bias, int32_t a_zero, int8_t *packed,
                    int32_t *bias_eff) {
  const size_t k4 = (size_t)(k + 3) / 4;
  memset(packed, 0, mlk_qconv_packed_size(out_c, k));
  for (int o = 0; o < out_c; o++) {
    int32_t sum = 0;
    int8_t *dst = packed + (size_t)(o / 16) * k4 * 64 + (size_t)(o % 16) * 4;
    for (int kk = 0; kk < k; kk++) {
      const int8_t v = w[(size_t)o * k + kk];
      sum += v;
      dst[(size_t)(kk / 4) * 64 + kk % 4] = v;
    }
    bias_eff[o] = (bias ? bias[o] : 0) - a_zero * sum;
  }
}

static int kp_of(const mlk_conv *p) { return (p->k_h * p->k_w * p->in_c + 3) / 4 * 4; }

// A 1x1 convolution over whole rows of 4-byte groups: with VNNI, the GEMM reads the input in place.
static int qconv_direct(const mlk_conv *p) {
  return mlk_vnni_available_() && p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
         p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w && p->in_c % 4 == 0;
}

// Each thread's im2col rows, and QSPILL bytes past them that a last 16-byte copy may write.
#define QSPILL 16
static size_t qslot_bytes(int kp) { return (size_t)QROWS * kp + QSPILL; }

size_t mlk_qconv_scratch(const mlk_conv *p) {
  return qconv_direct(p) ? 0 : (size_t)(mlk_thread_count_() + 1) * qslot_bytes(kp_of(p));
}

// len bytes from `from` to `to`, each XOR flip, 16 at a time. The last 16 may run past len (into
// bytes the caller writes afterwards, or the slot's spill) where the source has 16 bytes left
// before src_end; otherwise the rest goes a byte at a time.
static inline void copy_flip(uint8_t *to, const uint8_t *from, int len, uint8_t flip, const uint8_t *src_end) {
  const uint64_t f = flip * 0x0101010101010101ull;
  int j = 0;
  for (; j < len; j += 16) {
    if (from + j + 16 > src_end) break;
    uint64_t a, b;
    memcpy(&a, from + j, 8);
    memcpy(&b, from + j + 8, 8);
    a ^= f;
    b ^= f;
    memcpy(to + j, &a, 8);
    memcpy(to + j + 8, &b, 8);
  }
  for (; j < len; j++) to[j] = from[j] ^ flip;
}

// im2col rows [r0, r0 + nr) of image xn as unsigned bytes, each kp long: taps outside the
// image read a_zero, and the tail past k reads 0 (its packed weights are 0 too). Without
// dilation, the taps of one kernel row that lie inside the input are one run of bytes (k_w * C
// for a first layer's 3x3 over 3 channels: 9 bytes), copied at once.
static void qim2col(const mlk_conv *p, const uint8_t *xn, uint8_t flip, uint8_t a_zero, long r0, int nr, int kp,
                    uint8_t *dst) {
  const int c = p->in_c, run = p->k_w * c;
  const uint8_t *xend = xn + (size_t)p->in_h * p->in_w * c;
  // Pixels whose taps all lie inside the image, with kernel rows of at most 16 bytes (a first
  // layer's 3x3 over three channels: 9): each kernel row is one 16-byte copy, no bounds to work
  // out (the generic path below spent about 50 cycles a row on them).
  int ow_in0, ow_in1;
  mlk_columns_inside(p, &ow_in0, &ow_in1);
  const int short_rows = p->dil_w == 1 && run <= 16;
  const uint64_t f = flip * 0x0101010101010101ull;
  int oh = (int)(r0 / p->out_w), ow = (int)(r0 % p->out_w) - 1;
  for (int i = 0; i < nr; i++) {
    if (++ow == p->out_w) {
      ow = 0;
      oh++;
    }
    uint8_t *row = dst + (size_t)i * kp;
    const int ih0 = oh * p->stride_h - p->pad_top;
    if (short_rows && ow >= ow_in0 && ow < ow_in1 && ih0 >= 0 && ih0 + (p->k_h - 1) * p->dil_h < p->in_h) {
      const uint8_t *src = xn + ((size_t)ih0 * p->in_w + (size_t)(ow * p->stride_w - p->pad_left)) * c;
      int kh = 0;
      for (; kh < p->k_h; kh++) {
        const uint8_t *from = src + (size_t)kh * p->dil_h * p->in_w * c;
        if (from + 16 > xend) break;
        uint64_t a, b;
        memcpy(&a, from, 8);
        memcpy(&b, from + 8, 8);
        a ^= f;
        b ^= f;
        memcpy(row + (size_t)kh * run, &a, 8);   // runs past the kernel row into the next one's
        memcpy(row + (size_t)kh * run + 8, &b, 8);
      }
      for (; kh < p->k_h; kh++) {   // the image's last bytes: one at a time
        const uint8_t *from = src + (size_t)kh * p->dil_h * p->in_w * c;
        for (int j = 0; j < run; j++) row[kh * run + j] = from[j] ^ flip;
      }
      for (int t = p->k_h * run; t < kp; t++) row[t] = 0;
      continue;
    }
    const int iw0 = ow * p->stride_w - p->pad_left;
    int kw0, kw1;
    mlk_taps_inside(iw0, p->k_w, p->dil_w, p->in_w, &kw0, &kw1);
    for (int kh = 0; kh < p->k_h; kh++) {
      uint8_t *seg = row + (size_t)kh * run;
      const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
      if (ih < 0 || ih >= p->in_h || kw1 <= kw0) {
        memset(seg, a_zero, (size_t)run);
        continue;
      }
      const uint8_t *src = xn + (size_t)ih * p->in_w * c;
      if (kw0 > 0) memset(seg, a_zero, (size_t)kw0 * c);
      if (p->dil_w == 1) {
        copy_flip(seg + (size_t)kw0 * c, src + (size_t)(iw0 + kw0) * c, (kw1 - kw0) * c, flip, xend);
      } else {
        for (int kw = kw0; kw < kw1; kw++) {
          const uint8_t *from = src + (size_t)(iw0 + kw * p->dil_w) * c;
          for (int j = 0; j < c; j++) seg[kw * c + j] = from[j] ^ flip;
        }
      }
      if (kw1 < p->k_w) memset(seg + (size_t)kw1 * c, a_zero, (size_t)(p->k_w - kw1) * c);
    }
    for (int t = p->k_h * run; t < kp; t++) row[t] = 0;   // at most 3 bytes: kp rounds k up to 4
  }
}

// Rows [0, nr) of A (row stride kp) times every packed panel, requantized into y (row stride ldy).
static void qgemm_portable(const uint8_t *a, int nr, int kp, const int8_t *packed, int out_c, const int32_t *bias,
                           const int32_t *mult, const int32_t *shift, const mlk_qconv *q, uint8_t *y, long ldy) {
  const int k4 = kp / 4;
  for (int jp = 0; jp * 16 < out_c; jp++) {
    const int8_t *pw = packed + (size_t)jp * k4 * 64;
    const int o0 = jp * 16, n = out_c - o0 < 16 ? out_c - o0 : 16;
    for (int i = 0; i < nr; i++) {
      const uint8_t *ar = a + (size_t)i * kp;
      int32_t acc[16] = {0};
      for (int g = 0; g < k4; g++)
        for (int c = 0; c < 16; c++)
          for (int j = 0; j < 4; j++) acc[c] += (int32_t)ar[g * 4 + j] * pw[(size_t)g * 64 + c * 4 + j];
      if (q->float_out)
        for (int c = 0; c < n; c++) ((float *)y)[i * ldy + o0 + c] = (float)(acc[c] + bias[o0 + c]) * q->fscale[o0 + c];
      else
        for (int c = 0; c < n; c++) y[i * ldy + o0 + c] = requant_one(acc[c] + bias[o0 + c], mult, shift, o0 + c, q);
    }
  }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

int mlk_vnni_available_(void) { return mlk_avx512_has_(MLK_AVX512_VNNI); }

// Per-channel requantization constants of 16 channels, made once per block of channels.
typedef struct {
  __m512i bias, mult, mult_odd, left, right, rmask, rhalf, zero, lo, hi;
  __m512 fscale, flo, fhi;   // onnxruntime's float requantization, where fmode
  int fmode, float_out;      // float_out: y holds floats, sum times scale
  int es;                    // bytes an output element
  __mmask16 m;
  int any_left;   // a multiplier of 1 or more among the 16: shift left first
} qvec;

// The constants of channels [o0, o0 + 16) under mask m; bias may be NULL.
VNNI static inline qvec qvec_of(const int32_t *bias, const int32_t *mult, const int32_t *shift, int o0, const mlk_qconv *q,
                                __mmask16 m) {
  qvec v;
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
  v.bias = bias ? _mm512_maskz_loadu_epi32(m, bias + o0) : zero;
  v.fmode = q->fscale != NULL;
  v.float_out = v.fmode && q->float_out;
  v.es = v.float_out ? 4 : 1;
  v.fscale = v.fmode ? _mm512_maskz_loadu_ps(m, q->fscale + o0) : _mm512_setzero_ps();
  v.flo = _mm512_set1_ps((float)(q->act_min - q->out_zero));
  v.fhi = _mm512_set1_ps((float)(q->act_max - q->out_zero));
  const __m512i sh = v.fmode ? zero : _mm512_maskz_loadu_epi32(m, shift + o0);
  v.mult = v.fmode ? zero : _mm512_maskz_loadu_epi32(m, mult + o0);
  v.mult_odd = _mm512_srli_epi64(v.mult, 32);
  v.left = _mm512_max_epi32(sh, zero);
  v.any_left = _mm512_test_epi32_mask(v.left, v.left) != 0;
  v.right = _mm512_max_epi32(_mm512_sub_epi32(zero, sh), zero);
  v.rmask = _mm512_sub_epi32(_mm512_sllv_epi32(one, v.right), one);
  v.rhalf = _mm512_srli_epi32(v.rmask, 1);
  v.zero = _mm512_set1_epi32(q->out_zero);
  v.lo = _mm512_set1_epi32(q->act_min);
  v.hi = _mm512_set1_epi32(q->act_max);
  v.m = m;
  return v;
}

// MultiplyByQuantizedMultiplier on 16 lanes, exactly as the scalar one. The rounding doubling
// high multiply, (ab + nudge) / 2^31 truncated with nudge 2^30 or 1 - 2^30 by the sign of ab, is
// floor((ab + 2^30) / 2^31) in both cases (for ab < 0 the truncation is a ceiling, and
// ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31)), so one add and one shift per
// 64-bit product; the multiplier is below 2^31, so the saturating case never arises. Then the
// rounding right shift, half away from zero.
VNNI static inline __m512i requant16(__m512i x, const qvec *c) {
  if (c->any_left) x = _mm512_sllv_epi32(x, c->left);
  const __m512i half = _mm512_set1_epi64(1LL << 30);
  const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, c->mult), half);
  const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), c->mult_odd), half);
  // Bits 31..62 of each sum: the low dword of pe >> 31, the high dword of po << 1.
  const __m512i hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
  const __m512i rem = _mm512_and_si512(hi, c->rmask);
  const __m512i threshold = _mm512_sub_epi32(c->rhalf, _mm512_srai_epi32(hi, 31));
  const __m512i shifted = _mm512_srav_epi32(hi, c->right);
  return _mm512_mask_add_epi32(shifted, _mm512_cmpgt_epi32_mask(rem, threshold), shifted, _mm512_set1_epi32(1));
}

// acc already holds the bias.
VNNI static inline void store16(__m512i acc, const qvec *c, uint8_t *dst) {
  __m512i v;
  if (c->float_out) {
    _mm512_mask_storeu_ps((float *)dst, c->m, _mm512_mul_ps(_mm512_cvtepi32_ps(acc), c->fscale));
    return;
  }
  if (c->fmode) {
    // Clamped in float, then rounded half to even (the default rounding of vcvtps2dq).
    const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), c->fscale), c->flo), c->fhi);
    v = _mm512_add_epi32(_mm512_cvtps_epi32(f), c->zero);
  } else {
    v = _mm512_add_epi32(requant16(acc, c), c->zero);
    v = _mm512_min_epi32(_mm512_max_epi32(v, c->lo), c->hi);
  }
  // Plain stores where the mask is full: masked accesses that miss the cache are slow here.
  if (c->m == 0xFFFF)
    _mm_storeu_si128((__m128i *)dst, _mm512_cvtepi32_epi8(v));
  else
    _mm_mask_storeu_epi8(dst, c->m, _mm512_cvtepi32_epi8(v));
}

// Up to QMR rows of A times two panels (32 channels), the sums starting from the bias; q1 NULL
// when only one panel is left (p1 then repeats p0 and is not stored). y is at the tile's first channel.
VNNI static void qtile_vnni(const uint8_t *a, int nr, int kp, const int8_t *p0, const int8_t *p1, const qvec *q0,
                            const qvec *q1, uint8_t *y, long ldy, int32_t flip) {
  const uint8_t *ar[QMR];
  for (int i = 0; i < QMR; i++) ar[i] = a + (size_t)(i < nr ? i : 0) * kp;
  __m512i c0[QMR], c1[QMR];
  for (int i = 0; i < QMR; i++) {
    c0[i] = q0->bias;
    c1[i] = q1 ? q1->bias : q0->bias;
  }
  const int k4 = kp / 4;
#pragma clang loop unroll(disable)
  for (int g = 0; g < k4; g++) {
    const __m512i w0 = _mm512_loadu_si512(p0 + (size_t)g * 64), w1 = _mm512_loadu_si512(p1 + (size_t)g * 64);
    for (int i = 0; i < QMR; i++) {
      int32_t four;
      memcpy(&four, ar[i] + (size_t)g * 4, 4);
      const __m512i av = _mm512_set1_epi32(four ^ flip);
      c0[i] = _mm512_dpbusd_epi32(c0[i], av, w0);
      c1[i] = _mm512_dpbusd_epi32(c1[i], av, w1);
    }
  }
  for (int i = 0; i < nr; i++) {
    store16(c0[i], q0, y + i * ldy * q0->es);
    if (q1) store16(c1[i], q1, y + (i * ldy + 16) * q0->es);
  }
}

// flip: 0x80808080 when A holds int8 values still to be made unsigned (read in place), else 0.
// Panel pairs outermost: their requantization constants are made once for all the rows. Panels
// [jp_begin, jp_end) only (jp_begin even).
VNNI static void qgemm_vnni(const uint8_t *a, int nr, int kp, const int8_t *packed, int out_c, const int32_t *bias,
                            const int32_t *mult, const int32_t *shift, const mlk_qconv *q, uint8_t *y, long ldy,
                            int32_t flip, int jp_begin, int jp_end) {
  const size_t pstride = (size_t)(kp / 4) * 64;
  const int npanels = (out_c + 15) / 16;
  for (int jp = jp_begin; jp < jp_end && jp < npanels; jp += 2) {
    const int o0 = jp * 16, n0 = out_c - o0 < 16 ? out_c - o0 : 16;
    const int n1 = jp + 1 < npanels ? (out_c - o0 - 16 < 16 ? out_c - o0 - 16 : 16) : 0;
    const int8_t *p0 = packed + jp * pstride, *p1 = n1 > 0 ? p0 + pstride : p0;
    const qvec q0 = qvec_of(bias, mult, shift, o0, q, (__mmask16)((1u << n0) - 1u));
    const qvec q1 = n1 > 0 ? qvec_of(bias, mult, shift, o0 + 16, q, (__mmask16)((1u << n1) - 1u)) : q0;
    for (int i0 = 0; i0 < nr; i0 += QMR) {
      const int rows = nr - i0 < QMR ? nr - i0 : QMR;
      qtile_vnni(a + (size_t)i0 * kp, rows, kp, p0, p1, &q0, n1 > 0 ? &q1 : NULL, y + (i0 * ldy + o0) * q0.es, ldy, flip);
    }
  }
}
#else
int mlk_vnni_available_(void) { return 0; }
static void qgemm_vnni(const uint8_t *a, int nr, int kp, const int8_t *packed, int out_c, const int32_t *bias,
                       const int32_t *mult, const int32_t *shift, const mlk_qconv *q, uint8_t *y, long ldy, int32_t flip,
                       int jp_begin, int jp_end) {
  (void)flip;
  (void)jp_begin;
  (void)jp_end;
  qgemm_portable(a, nr, kp, packed, out_c, bias, mult, shift, q, y, ldy);
}
#endif

typedef struct {
  const mlk_conv *p;
  const mlk_qconv *q;
  const uint8_t *x;
  const int8_t *packed;
  const int32_t *bias, *mult, *shift;
  uint8_t *y, *scratch;
  long rows;
  int kp, vnni, direct;
  int splits;   // tasks a block of rows is shared by, each taking a range of panel pairs
} qconv_job;

static void qconv_task(void *ctx, int t) {
  const qconv_job *j = ctx;
  const int pairs = (j->p->out_c + 31) / 32, part = t % j->splits;
  const int jp_begin = 2 * (part * pairs / j->splits), jp_end = 2 * ((part + 1) * pairs / j->splits);
  t /= j->splits;
  const long r0 = (long)t * QROWS;
  const int nr = j->rows - r0 < QROWS ? (int)(j->rows - r0) : QROWS;
  const uint8_t flip = j->q->in_signed ? 0x80 : 0, a_zero = (uint8_t)(j->q->in_zero + (j->q->in_signed ? 128 : 0));
  uint8_t *y = j->y + (size_t)r0 * j->p->out_c * (j->q->float_out ? 4 : 1);
  if (j->direct) {
    // The input is A as it lies, made unsigned in registers.
    qgemm_vnni(j->x + (size_t)r0 * j->kp, nr, j->kp, j->packed, j->p->out_c, j->bias, j->mult, j->shift, j->q, y,
               j->p->out_c, flip ? (int32_t)0x80808080u : 0, jp_begin, jp_end);
    return;
  }
  uint8_t *a = j->scratch + (size_t)mlk_thread_slot_() * qslot_bytes(j->kp);
  qim2col(j->p, j->x, flip, a_zero, r0, nr, j->kp, a);
  if (j->vnni)
    qgemm_vnni(a, nr, j->kp, j->packed, j->p->out_c, j->bias, j->mult, j->shift, j->q, y, j->p->out_c, 0, jp_begin, jp_end);
  else
    qgemm_portable(a, nr, j->kp, j->packed, j->p->out_c, j->bias, j->mult, j->shift, j->q, y, j->p->out_c);
}

void mlk_qconv_nhwc(const mlk_conv *p, const mlk_qconv *q, const void *x, const int8_t *packed, const int32_t *bias_eff,
                    const int32_t *mult, const int32_t *shift, void *y, uint8_t *scratch) {
  const long rows = (long)p->out_h * p->out_w;
  const int vnni = mlk_vnni_available_();
  const int direct = qconv_direct(p);
  // Few blocks of rows (a 7x7 layer: one) for the threads: each block's panel pairs are shared
  // out too, so that a second thread has work. Every output is computed the same way whichever
  // task computes it.
  const int blocks = (int)((rows + QROWS - 1) / QROWS), threads = mlk_thread_count_(), pairs = (p->out_c + 31) / 32;
  int splits = 1;
  if (vnni && threads > 1 && blocks < 2 * threads) {
    splits = (2 * threads + blocks - 1) / blocks;
    if (splits > pairs) splits = pairs;
    if (splits < 1) splits = 1;
  }
  for (int n = 0; n < p->batch; n++) {
    qconv_job job = {p, q, (const uint8_t *)x + (size_t)n * p->in_h * p->in_w * p->in_c, packed, bias_eff, mult, shift,
                     (uint8_t *)y + (size_t)n * rows * p->out_c * (q->float_out ? 4 : 1), scratch, rows, kp_of(p), vnni, direct,
                     splits};
    mlk_parallel_(blocks * splits, qconv_task, &job);
  }
}

// Depthwise: channels are contiguous in NHWC, so each tap is a run of multiply-adds over them,
// kept in int32 per channel. The body is compiled twice, for the baseline and for AVX-512, and
// the compiler vectorises its channel loops.
#define QDW_CHUNK 256

typedef struct {
  const mlk_conv *p;
  const mlk_qconv *q;
  const uint8_t *x;
  const int8_t *w;
  const int32_t *bias, *mult, *shift;
  uint8_t *y;
} qdw_job;

static inline __attribute__((always_inline)) void qdw_row_body(const qdw_job *j, int t, int in_signed) {
  const mlk_conv *p = j->p;
  const int n = t / p->out_h, oh = t % p->out_h, m = p->out_c / p->in_c;
  const uint8_t *xn = j->x + (size_t)n * p->in_h * p->in_w * p->in_c;
  uint8_t *yrow = j->y + ((size_t)n * p->out_h + oh) * p->out_w * p->out_c;
  const int32_t zx = j->q->in_zero;
  int32_t acc[QDW_CHUNK];
  for (int ow = 0; ow < p->out_w; ow++)
    for (int c0 = 0; c0 < p->out_c; c0 += QDW_CHUNK) {
      const int nc = p->out_c - c0 < QDW_CHUNK ? p->out_c - c0 : QDW_CHUNK;
      for (int c = 0; c < nc; c++) acc[c] = j->bias ? j->bias[c0 + c] : 0;
      for (int kh = 0; kh < p->k_h; kh++) {
        const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
        if (ih < 0 || ih >= p->in_h) continue;
        for (int kw = 0; kw < p->k_w; kw++) {
          const int iw = ow * p->stride_w - p->pad_left + kw * p->dil_w;
          if (iw < 0 || iw >= p->in_w) continue;
          const uint8_t *src = xn + ((size_t)ih * p->in_w + iw) * p->in_c;
          const int8_t *wk = j->w + ((size_t)kh * p->k_w + kw) * p->out_c + c0;
          if (m == 1) {
            src += c0;
            if (in_signed)
              for (int c = 0; c < nc; c++) acc[c] += ((int32_t)(int8_t)src[c] - zx) * wk[c];
            else
              for (int c = 0; c < nc; c++) acc[c] += ((int32_t)src[c] - zx) * wk[c];
          } else {
            for (int c = 0; c < nc; c++) {
              const int ci = (c0 + c) / m;
              acc[c] += ((in_signed ? (int32_t)(int8_t)src[ci] : (int32_t)src[ci]) - zx) * wk[c];
            }
          }
        }
      }
      uint8_t *dst = yrow + (size_t)ow * p->out_c + c0;
      for (int c = 0; c < nc; c++) dst[c] = requant_one(acc[c], j->mult, j->shift, c0 + c, j->q);
    }
}

static void qdw_task(void *ctx, int t) {
  const qdw_job *j = ctx;
  if (j->q->in_signed) qdw_row_body(j, t, 1); else qdw_row_body(j, t, 0);
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
// Multiplier 1, up to QDW_TAPS taps: for each vector of 16 channels, the taps' weights are widened
// once to int32 lanes whose high 16 bits are 0, then every pixel of the row takes (x - x_zero) * w
// per valid tap with one vpdpwssd: x - x_zero lies in [-255, 255], so each lane's low 16 bits
// hold it as an int16, and its high 16 bits (the sign) meet the weight's zero half.
#define QDW_TAPS 25
VNNI static inline __attribute__((always_inline)) __m512i qdw_load(const uint8_t *src, __mmask16 m, int in_signed, __m512i zx) {
  const __m128i b = m == 0xFFFF ? _mm_loadu_si128((const __m128i *)src) : _mm_maskz_loadu_epi8(m, src);
  return _mm512_sub_epi32(in_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b), zx);
}

// Channels [c_begin, c_end) of one output row; `in_signed` and `full` (whole vectors of 16
// channels) are constants at each call, so the loads carry no test of either.
VNNI static inline __attribute__((always_inline)) void qdw_row_avx512_(const qdw_job *j, int t, const int in_signed,
                                                                       const int full, int c_begin, int c_end) {
  const mlk_conv *p = j->p;
  const int n = t / p->out_h, oh = t % p->out_h, c = p->out_c, kw_n = p->k_w;
  const uint8_t *xn = j->x + (size_t)n * p->in_h * p->in_w * c;
  uint8_t *yrow = j->y + ((size_t)n * p->out_h + oh) * p->out_w * c;
  const __m512i zx = _mm512_set1_epi32(j->q->in_zero);
  int kh0, kh1;
  mlk_taps_inside(oh * p->stride_h - p->pad_top, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);
  // Output columns whose taps all lie inside the row: no bounds to check there.
  int ow_in0, ow_in1;
  mlk_columns_inside(p, &ow_in0, &ow_in1);
  __m512i wv[QDW_TAPS];
  const __m512i low16 = _mm512_set1_epi32(0xFFFF);
  for (int c0 = c_begin; c0 < c_end; c0 += 16) {
    const __mmask16 m = full || c - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c - c0)) - 1u);
    for (int k = 0; k < p->k_h * kw_n; k++)
      wv[k] = _mm512_and_si512(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, j->w + (size_t)k * c + c0)), low16);
    const qvec qv = qvec_of(j->bias, j->mult, j->shift, c0, j->q, m);
    const size_t step = (size_t)p->stride_w * c;
    for (int ow = 0; ow < p->out_w; ow++) {
      const int iw0 = ow * p->stride_w - p->pad_left;
      if (ow >= ow_in0 && ow + 4 <= ow_in1) {
        // Four pixels inside the row at once: each tap's weights serve all four, and four
        // independent sums are in flight (one pixel at a time waited on its own chain).
        __m512i a0 = qv.bias, a1 = a0, a2 = a0, a3 = a0;
        for (int kh = kh0; kh < kh1; kh++) {
          const uint8_t *src = xn + ((size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w + iw0) * c + c0;
          const __m512i *wk = wv + kh * kw_n;
          for (int kw = 0; kw < kw_n; kw++) {
            const uint8_t *s0 = src + (size_t)kw * p->dil_w * c;
            a0 = _mm512_dpwssd_epi32(a0, qdw_load(s0, m, in_signed, zx), wk[kw]);
            a1 = _mm512_dpwssd_epi32(a1, qdw_load(s0 + step, m, in_signed, zx), wk[kw]);
            a2 = _mm512_dpwssd_epi32(a2, qdw_load(s0 + 2 * step, m, in_signed, zx), wk[kw]);
            a3 = _mm512_dpwssd_epi32(a3, qdw_load(s0 + 3 * step, m, in_signed, zx), wk[kw]);
          }
        }
        uint8_t *d = yrow + (size_t)ow * c + c0;
        store16(a0, &qv, d);
        store16(a1, &qv, d + c);
        store16(a2, &qv, d + 2 * c);
        store16(a3, &qv, d + 3 * c);
        ow += 3;
        continue;
      }
      __m512i acc = qv.bias;
      if (ow >= ow_in0 && ow < ow_in1) {
        for (int kh = kh0; kh < kh1; kh++) {
          const uint8_t *src = xn + ((size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w + iw0) * c + c0;
          const __m512i *wk = wv + kh * kw_n;
          for (int kw = 0; kw < kw_n; kw++)
            acc = _mm512_dpwssd_epi32(acc, qdw_load(src + (size_t)kw * p->dil_w * c, m, in_signed, zx), wk[kw]);
        }
      } else {
        int kw0, kw1;
        mlk_taps_inside(iw0, kw_n, p->dil_w, p->in_w, &kw0, &kw1);
        for (int kh = kh0; kh < kh1; kh++) {
          const uint8_t *src = xn + ((size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w + iw0) * c + c0;
          for (int kw = kw0; kw < kw1; kw++)
            acc = _mm512_dpwssd_epi32(acc, qdw_load(src + (size_t)kw * p->dil_w * c, m, in_signed, zx), wv[kh * kw_n + kw]);
        }
      }
      store16(acc, &qv, yrow + (size_t)ow * c + c0);
    }
  }
}

VNNI static void qdw_row_avx512(const qdw_job *j, int t) {
  const int c = j->p->out_c, whole = c / 16 * 16;
  if (j->q->in_signed) {
    qdw_row_avx512_(j, t, 1, 1, 0, whole);
    if (whole < c) qdw_row_avx512_(j, t, 1, 0, whole, c);
  } else {
    qdw_row_avx512_(j, t, 0, 1, 0, whole);
    if (whole < c) qdw_row_avx512_(j, t, 0, 0, whole, c);
  }
}

VNNI static void qdw_task_avx512(void *ctx, int t) {
  const qdw_job *j = ctx;
  if (j->p->out_c != j->p->in_c || j->p->k_h * j->p->k_w > QDW_TAPS) {
    if (j->q->in_signed) qdw_row_body(j, t, 1); else qdw_row_body(j, t, 0);
  } else {
    qdw_row_avx512(j, t);
  }
}
#else
#define qdw_task_avx512 qdw_task
#endif

void mlk_qdepthwise_nhwc(const mlk_conv *p, const mlk_qconv *q, const void *x, const int8_t *w, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, void *y) {
  qdw_job job = {p, q, x, w, bias, mult, shift, y};
  mlk_parallel_(p->batch * p->out_h, mlk_vnni_available_() ? qdw_task_avx512 : qdw_task, &job);
}

void mlk_qadd_8(const void *a, int a_signed, float sa, int32_t za, const void *b, int b_signed, float sb, int32_t zb,
                size_t n, int act, float so, int32_t zo, int out_signed, void *y) {
  float fa[256], fb[256];
  for (size_t i0 = 0; i0 < n; i0 += 256) {
    const size_t m = n - i0 < 256 ? n - i0 : 256;
    mlk_dequantize_row_((const uint8_t *)a + i0, a_signed, m, sa, za, fa);
    mlk_dequantize_row_((const uint8_t *)b + i0, b_signed, m, sb, zb, fb);
    for (size_t i = 0; i < m; i++) fa[i] += fb[i];
    if (act) mlk_activate(fa, m, act, 0, 0);
    mlk_quantize_row_(fa, m, so, zo, out_signed, 0, (uint8_t *)y + i0);
  }
}
