// Winograd F(2x2, 3x3) convolution on the channels-as-vectors strips.
#include "conv_nchw_paths.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Winograd F(2x2, 3x3) for 3x3 "same" convolutions of stride 1 with weights packed at plan time
// (mlk_conv_nchw_packed, mlk_conv_blocked): a 4x4 tile of input (V = B' d B, per 16 channels)
// gives a 2x2 tile of output (A' M A), where M[i][j] sums U[i][j] V[i][j] (U = G g G') over input
// channels. The sums are 16 products of [tiles x in_c] by [in_c x out_c], run on the
// channels-as-vectors strips (tiles for pixels, k = in_c): 16 multiply-adds per tile and channel
// pair where the direct path takes 36, 2.25 times fewer. The weights are transformed on each
// call, from the panels packed at plan time into scratch (U is 16/9 the size of the weights: kept
// from plan time, it would add 13 MB to ResNet50's resident weights); the input a band of tile
// rows at a time (V of a band about 128 KB, so that it stays in L2 while each panel of 32 output
// channels sweeps it 16 times), each panel's sums stored as soon as its 16 products are done. NCHW input is copied into channel blocks first (one pass over it); for NCHW output a
// band's tiles go to a [pixels][32] buffer and are stored transposed, as the strips' sums are.
// DenseNet121 (its 3x3 128->32 layers read concatenations, NCHW): 31.8 -> 27.2 ms.
// Sums differ from the direct path's in the last bits (the transforms round): ResNet50's
// logits within 4e-7 relative of the direct path's. Harness, 1 thread: 64->64 on 56x56 1.00 ->
// 0.535 ms, 128->128 on 28x28 0.99 -> 0.52, 256->256 on 14x14 0.99 -> 0.65. Planes under 196
// outputs stay direct: on 7x7 a quarter of the tiles' outputs would be dropped, and ResNet50's
// 7x7 layers wait on their weights' memory traffic, which U would raise (not measured).
static int wino_off = -1;   // MODELLENS_WINOGRAD=0 turns the path off (for comparisons)

int mlk_wino_fits_(const mlk_conv *p) {
  if (wino_off < 0) {
    const char *e = getenv("MODELLENS_WINOGRAD");
    wino_off = e && strcmp(e, "0") == 0;
  }
  return !wino_off && mlk_use_avx512_() && p->groups == 1 && p->k_h == 3 && p->k_w == 3 && p->stride_h == 1 && p->stride_w == 1 &&
         p->dil_h == 1 && p->dil_w == 1 && p->pad_top == 1 && p->pad_left == 1 && p->pad_bottom == 1 && p->pad_right == 1 &&
         p->out_h == p->in_h && p->out_w == p->in_w && p->in_c % 16 == 0 && p->out_c % 16 == 0 && p->out_c >= 32 &&
         p->out_h * p->out_w >= 196;
}

// Tile rows per band: V of a band (16 * in_c floats a tile) about 128 KB, at least one row.
static int wino_band_rows(const mlk_conv *p) {
  const int tw = (p->out_w + 1) / 2, th = (p->out_h + 1) / 2;
  int r = 32768 / (16 * p->in_c * tw);
  return r < 1 ? 1 : r > th ? th : r;
}

static size_t wino_u_floats(const mlk_conv *p) { return (size_t)16 * p->in_c * ((p->out_c + 31) / 32) * 32; }

// Per thread: V of a band, one panel's sums M [16][tiles][32], the strips' offsets, and for NCHW
// output the band's outputs [pixels][32] before their transposed store.
static size_t wino_slot(const mlk_conv *p) {
  const int band = wino_band_rows(p);
  const size_t nt = (size_t)band * ((p->out_w + 1) / 2);
  return 16 * (size_t)p->in_c * nt + 16 * nt * 32 + (size_t)p->in_c * sizeof(long) / sizeof(float) + 16 +
         (size_t)2 * band * p->out_w * 32;
}

// U, an NCHW input's blocked copy, and the threads' slots.
size_t mlk_wino_scratch_(const mlk_conv *p) {
  return wino_u_floats(p) + (size_t)p->in_c * p->in_h * p->in_w + wino_slot(p) * (size_t)(mlk_threads + 1);
}

typedef struct {
  const mlk_conv *p;
  const float *x, *panels, *bias, *scale, *res;
  float *y, *u, *scratch;
  int band, tw, th, y_blocked;
  mlk_epilogue act;
} wino_job;

static void wino_weights_task(void *ctx, int t) {
  const wino_job *j = ctx;
  mlk_wino_weights_avx512_(j->p->in_c, t, t + 1, j->panels, j->u);
}

static void wino_task(void *ctx, int t) {
  const wino_job *j = ctx;
  const mlk_conv *p = j->p;
  const int th0 = t * j->band, nth = j->th - th0 < j->band ? j->th - th0 : j->band, nt = nth * j->tw;
  const int out_hw = p->out_h * p->out_w, in_c = p->in_c, panels = (p->out_c + 31) / 32;
  float *v = j->scratch + wino_slot(p) * (size_t)mlk_slot;
  float *m = v + (size_t)16 * in_c * nt;
  long *off = (long *)(m + (size_t)16 * nt * 32);
  mlk_wino_input_avx512_(j->x, in_c / 16, p->in_h, p->in_w, th0, nth, j->tw, v);
  for (int k = 0; k < in_c; k++) off[k] = (long)(k / 16) * nt * 16 + k % 16;
  const int strips = (nt + MLK_COT_PIXELS - 1) / MLK_COT_PIXELS;
  for (int g = 0; g < panels; g++) {
    const int co0 = 32 * g, nco = p->out_c - co0 < 32 ? p->out_c - co0 : 32;
    for (int e = 0; e < 16; e++)
      for (int pc = 0; pc < in_c; pc += MLK_GEMM_KC) {
        const int kc = in_c - pc < MLK_GEMM_KC ? in_c - pc : MLK_GEMM_KC;
        const float *wt = j->u + (((size_t)g * 16 + e) * in_c + pc) * 32, *x = v + (size_t)e * in_c * nt;
        // The next block of u (the rest of this product's k, or the next product's first block)
        // follows this one: its lines are requested among the strips.
        const float *next = wt + (size_t)kc * 32, *end = j->u + (size_t)panels * 16 * in_c * 32;
        const int rest = pc + kc < in_c ? in_c - pc - kc : in_c;
        const int lines = next < end ? 2 * (rest < MLK_GEMM_KC ? rest : MLK_GEMM_KC) : 0, per = (lines + strips - 1) / strips;
        for (int q = 0, s = 0; q < nt; q += MLK_COT_PIXELS, s++) {
          const int n = nt - q < MLK_COT_PIXELS ? nt - q : MLK_COT_PIXELS;
          int npf = lines - s * per < per ? lines - s * per : per;
          if (npf < 0) npf = 0;
          if (npf > kc) npf = kc;
          mlk_cot_strip_avx512_(n, 16, kc, x + (size_t)q * 16, off + pc, wt, m + ((size_t)e * nt + q) * 32, pc == 0,
                                npf ? next + (size_t)s * per * 16 : NULL, npf);
        }
      }
    const size_t at = (size_t)co0 * out_hw;
    if (j->y_blocked) {
      mlk_wino_output_avx512_(m, nco, th0, nth, j->tw, p->out_h, p->out_w, j->scale ? j->scale + co0 : NULL,
                              j->bias ? j->bias + co0 : NULL, j->res ? j->res + at : NULL, j->y + at, 0, 0, j->act);
      continue;
    }
    // NCHW: the band's 2x2 tiles as [pixels][32], then stored transposed as the strips' sums are.
    float *o = (float *)(off + in_c) + 16;
    const int oy0 = 2 * th0, rows = p->out_h - oy0 < 2 * nth ? p->out_h - oy0 : 2 * nth;
    const size_t q0 = (size_t)oy0 * p->out_w;
    mlk_wino_output_avx512_(m, 32, th0, nth, j->tw, p->out_h, p->out_w, NULL, NULL, NULL, o, 1, oy0, (mlk_epilogue){0, 0, 0});
    mlk_cot_store_avx512_(rows * p->out_w, out_hw, nco, o, j->scale ? j->scale + co0 : NULL, j->bias ? j->bias + co0 : NULL,
                          j->res ? j->res + at + q0 : NULL, j->y + at + q0, j->act);
  }
}

void mlk_conv_wino_(const mlk_conv *p, const float *x, int x_blocked, const float *panels, const float *bias,
                      const float *scale, const float *res, float *y, int y_blocked, float *scratch, mlk_epilogue act) {
  const int out_hw = p->out_h * p->out_w;
  const size_t in_floats = (size_t)p->in_c * p->in_h * p->in_w;
  float *xb = scratch + wino_u_floats(p);
  wino_job j = {p, NULL, panels, bias, scale, NULL, NULL, scratch, xb + in_floats, wino_band_rows(p),
                (p->out_w + 1) / 2, (p->out_h + 1) / 2, y_blocked, act};
  mlk_parallel_((p->out_c + 31) / 32, wino_weights_task, &j);
  for (int n = 0; n < p->batch; n++) {
    j.x = x + (size_t)n * in_floats;
    if (!x_blocked) {   // NCHW input: its channel-blocked copy first
      mlk_blocked_from_nchw(1, p->in_c, p->in_h * p->in_w, j.x, xb);
      j.x = xb;
    }
    j.res = res ? res + (size_t)n * p->out_c * out_hw : NULL;
    j.y = y + (size_t)n * p->out_c * out_hw;
    mlk_parallel_((j.th + j.band - 1) / j.band, wino_task, &j);
  }
}

// `mode` as for mlk_cot_fits_ (2: mlk_conv_blocked, with x and y channel-blocked as the flags say).
