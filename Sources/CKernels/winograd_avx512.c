// AVX-512 Winograd F(2x2, 3x3) transforms of weights, input tiles and outputs.
#include "avx512.h"

#if MLK_AVX512_BUILD

// Winograd F(2x2, 3x3) (see mlk_conv_wino_ in winograd.c), on vectors of 16 channels. With
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], B' = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and
// A' = [1 1 1 0; 0 1 -1 -1]: a filter g becomes U = G g G', a 4x4 input tile d becomes
// V = B' d B, and the 2x2 outputs are A' M A with M the elementwise products summed over input
// channels.

// One filter's rows (or columns) g0, g1, g2 -> G's four.
AVX512 static inline __attribute__((always_inline)) void wino_g(__m512 g0, __m512 g1, __m512 g2, __m512 *t) {
  const __m512 half = _mm512_set1_ps(0.5f), e = _mm512_mul_ps(_mm512_add_ps(g0, g2), half), o = _mm512_mul_ps(g1, half);
  t[0] = g0;
  t[1] = _mm512_add_ps(e, o);
  t[2] = _mm512_sub_ps(e, o);
  t[3] = g2;
}

// d0..d3 -> B' d.
AVX512 static inline __attribute__((always_inline)) void wino_b(__m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 *t) {
  t[0] = _mm512_sub_ps(d0, d2);
  t[1] = _mm512_add_ps(d1, d2);
  t[2] = _mm512_sub_ps(d2, d1);
  t[3] = _mm512_sub_ps(d1, d3);
}

// Panels [P][in_c * 9][32] (k = (c * 3 + kh) * 3 + kw) -> u [P][16][in_c][32], entry (i, j) of
// U = i * 4 + j; panels [p0, p1).
AVX512 void mlk_wino_weights_avx512_(int in_c, int p0, int p1, const float *panels, float *u) {
  for (int p = p0; p < p1; p++)
    for (int c = 0; c < in_c; c++)
      for (int h = 0; h < 32; h += 16) {
        const float *g = panels + ((size_t)p * in_c * 9 + (size_t)c * 9) * 32 + h;
        __m512 r[3][4], t[4];
        for (int kh = 0; kh < 3; kh++)   // G along each filter row (over kw)
          wino_g(_mm512_loadu_ps(g + (kh * 3) * 32), _mm512_loadu_ps(g + (kh * 3 + 1) * 32),
                 _mm512_loadu_ps(g + (kh * 3 + 2) * 32), r[kh]);
        for (int j = 0; j < 4; j++) {    // then along each column (over kh)
          wino_g(r[0][j], r[1][j], r[2][j], t);
          for (int i = 0; i < 4; i++) _mm512_storeu_ps(u + (((size_t)p * 16 + i * 4 + j) * in_c + c) * 32 + h, t[i]);
        }
      }
}

// Tiles of tile rows [th0, th0 + nth) (tw tiles a row) of the channel-blocked input x
// ([c16][h][w][16], padding 1 read as zeros) -> v [16][c16][nth * tw][16].
AVX512 void mlk_wino_input_avx512_(const float *x, int c16, int h, int w, int th0, int nth, int tw, float *v) {
  const int nt = nth * tw;
  for (int cb = 0; cb < c16; cb++) {
    const float *xc = x + (size_t)cb * h * w * 16;
    for (int ti = 0; ti < nth; ti++)
      for (int tj = 0; tj < tw; tj++) {
        const int y0 = 2 * (th0 + ti) - 1, x0 = 2 * tj - 1, inside = y0 >= 0 && y0 + 3 < h && x0 >= 0 && x0 + 3 < w;
        __m512 d[4][4], r[4][4], t[4];
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++) {
            const int yy = y0 + i, xx = x0 + j;
            d[i][j] = inside || (yy >= 0 && yy < h && xx >= 0 && xx < w) ? _mm512_loadu_ps(xc + ((size_t)yy * w + xx) * 16)
                                                                           : _mm512_setzero_ps();
          }
        for (int j = 0; j < 4; j++) {   // B' down each column
          wino_b(d[0][j], d[1][j], d[2][j], d[3][j], t);
          for (int i = 0; i < 4; i++) r[i][j] = t[i];
        }
        float *vt = v + ((size_t)cb * nt + (size_t)ti * tw + tj) * 16;
        for (int i = 0; i < 4; i++) {    // then along each row
          wino_b(r[i][0], r[i][1], r[i][2], r[i][3], t);
          for (int j = 0; j < 4; j++) _mm512_storeu_ps(vt + (size_t)(i * 4 + j) * c16 * nt * 16, t[j]);
        }
      }
  }
}

// Sums m [16][nth * tw][32] of one panel (nco <= 32 output channels) -> the 2x2 outputs of each
// tile, act(A' M A * scale + bias + res), into channel-blocked y and res (the panel's first
// block; blocks hw * 16 floats apart), rows and columns past h x w dropped. `pixel_major`: into
// y as [pixel][32] instead, pixel (oy - row0) * w + ox (res then NULL).
AVX512 void mlk_wino_output_avx512_(const float *m, int nco, int th0, int nth, int tw, int h, int w, const float *scale,
                                    const float *bias, const float *res, float *y, int pixel_major, int row0,
                                    mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  const int nt = nth * tw, ps = pixel_major ? 32 : 16;
  const size_t hw = (size_t)h * w, block = pixel_major ? 16 : hw * 16;
  for (int hh = 0; hh < nco; hh += 16) {
    const __m512 s = scale ? _mm512_loadu_ps(scale + hh) : _mm512_set1_ps(1.0f);
    const __m512 b = bias ? _mm512_loadu_ps(bias + hh) : _mm512_setzero_ps();
    float *yh = y + (size_t)(hh / 16) * block;
    const float *rh = res ? res + (size_t)(hh / 16) * block : NULL;
    for (int t = 0; t < nt; t++) {
      const int oy = 2 * (th0 + t / tw), ox = 2 * (t % tw);
      __m512 r[2][4];
      for (int j = 0; j < 4; j++) {   // A' down each column
        const __m512 m0 = _mm512_loadu_ps(m + ((size_t)(0 * 4 + j) * nt + t) * 32 + hh);
        const __m512 m1 = _mm512_loadu_ps(m + ((size_t)(1 * 4 + j) * nt + t) * 32 + hh);
        const __m512 m2 = _mm512_loadu_ps(m + ((size_t)(2 * 4 + j) * nt + t) * 32 + hh);
        const __m512 m3 = _mm512_loadu_ps(m + ((size_t)(3 * 4 + j) * nt + t) * 32 + hh);
        r[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        r[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      for (int i = 0; i < 2 && oy + i < h; i++) {   // then along each row
        const __m512 o[2] = {_mm512_add_ps(_mm512_add_ps(r[i][0], r[i][1]), r[i][2]),
                             _mm512_sub_ps(_mm512_sub_ps(r[i][1], r[i][2]), r[i][3])};
        for (int j = 0; j < 2 && ox + j < w; j++) {
          const size_t at = ((size_t)(oy + i - row0) * w + ox + j) * ps;
          __m512 v = _mm512_fmadd_ps(o[j], s, b);
          if (rh) v = _mm512_add_ps(v, _mm512_loadu_ps(rh + at));
          _mm512_storeu_ps(yh + at, apply_clamp(v, cl));
        }
      }
    }
  }
}

#endif
