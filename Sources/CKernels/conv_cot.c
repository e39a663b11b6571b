// NCHW convolution with output channels as the vector dimension ("cot") for small planes, and
// the channel-blocked entry point built on it.
#include "conv_nchw_paths.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Small planes take output channels as the vector dimension instead ("cot"): with pixels as
// vectors, a 14x14 plane computes 224 columns for 196 (with the wide columns), while 32 output
// channels fill two vectors whatever the plane. Per panel of 32 output channels and block of 256
// k, the weights are transposed k-major (every call; see mlk_cot_task_), then every strip of up to 7
// pixels of one output row sums its taps straight from the padded input: no im2col. Sums go to a small
// [pixels][32] buffer, stored transposed into the NCHW output at the end with scale, bias,
// residual and activation.
// The padded input is laid out in blocks of 16 channels, a pixel's 16 channels side by side
// ([C/16][Hq][Wq][16], `pad_block`): the 7 pixels of a strip then read 7 or 8 cache lines for 16
// channels of a tap row, where separate planes took a line or two per channel. Stride 2 reads
// every other pixel of that layout (no phase split): a broadcast costs the same at any address.
// Where it pays (harness measurements in Docs/journal/2026-12-kernel-comment-history.md): spatial
// kernels on planes of 65 to 12544 outputs, 3x3 on 14x14 to 112x112 faster than the pixels-as-vectors
// path, 7x7 and 224x224 slower (the weights' transposition, and [pixels][32] sums that leave the
// caches). Not for stems (3 input channels fill 3 of a block's 16). 1x1 convolutions stay on the
// GEMM: the transposition costs about 20% of their arithmetic (a 1x1 weight serves hw
// multiply-adds, a 3x3 one 9 hw), and keeping every transposed panel would cost a second copy of
// the weights. With the weights packed at plan time (mlk_conv_nchw_packed) there is no
// transposition, and the path takes planes of any size up to 12544: on planes of 2x2 to 7x7
// (ResNet's last stage below 224x224 inputs) the GEMM path, reading the unpacked weights 12 rows
// at a time, took 1.3-2.6x its time (calibration networks, AMD EPYC Zen 4).
// `mode`: 0 weights transposed per call, 1 packed at plan time, 2 packed and the activations
// channel-blocked on either side (mlk_conv_blocked: 1x1 convolutions too, channels in blocks of 16).
int mlk_cot_fits_(const mlk_conv *p, int mode) {
  const int hw = p->out_h * p->out_w;
  return mlk_use_avx512_() && p->groups == 1 && p->stride_h == p->stride_w && (p->stride_w == 1 || p->stride_w == 2) &&
         (p->k_h > 1 || p->k_w > 1 || mode == 2) && (mode || hw > 64) && hw <= 12544 && p->out_c >= 32 && p->in_c >= 16 &&
         (mode < 2 || (p->in_c % 16 == 0 && p->out_c % 16 == 0));
}

int mlk_cot_ok_(const mlk_conv *p) { return mlk_cot_fits_(p, 0); }

// Task t: output channels [32 g, 32 g + 32) of one image, g = t / row_chunks, over the output
// rows of chunk t % row_chunks.
void mlk_cot_task_(void *ctx, int t) {
  const mlk_cot_job *j = ctx;
  const mlk_conv *p = j->p;
  const int group = t / j->row_chunks, chunk = t % j->row_chunks;
  const int out_hw = p->out_h * p->out_w, co0 = 32 * group, nco = p->out_c - co0 < 32 ? p->out_c - co0 : 32;
  const int per = (p->out_h + j->row_chunks - 1) / j->row_chunks, oh0 = chunk * per;
  const int oh1 = oh0 + per < p->out_h ? oh0 + per : p->out_h;
  if (oh0 >= oh1) return;
  float *wt = j->scratch + j->slot * (size_t)mlk_slot, *ct = wt + (size_t)MLK_GEMM_KC * 32;
  const float *wp = j->packed ? NULL : j->w + (size_t)co0 * j->kk;
  const int row_strips = (p->out_w + MLK_COT_PIXELS - 1) / MLK_COT_PIXELS;
  for (int pc = 0; pc < j->kk; pc += MLK_GEMM_KC) {
    const int kc = j->kk - pc < MLK_GEMM_KC ? j->kk - pc : MLK_GEMM_KC;
    // The weights block by block (32 x kc, transposed where the strips read it), and the next
    // block's lines fetched while this one computes: they come from DRAM in a model, and the
    // whole panel transposed up front waited on memory for 12% of the convolution.
    // Packed at plan time, the block is read where it lies, and the next one (the next block of
    // this panel or the next panel's first) follows it in memory: its lines are fetched in order.
    if (j->packed) wt = (float *)j->packed + ((size_t)group * j->kk + pc) * 32;
    else mlk_cot_pack_avx512_(kc, nco, wp + pc, j->kk, wt);
    const int next = pc + MLK_GEMM_KC;
    const int has_next = next < j->kk || (co0 + 32 < p->out_c && oh0 == 0);
    const int nk = next < j->kk ? j->kk - next : j->kk, nkc = nk < MLK_GEMM_KC ? nk : MLK_GEMM_KC;
    const int nrows = next < j->kk ? nco : (p->out_c - co0 - 32 < 32 ? p->out_c - co0 - 32 : 32);
    const float *nw = NULL;
    int lines_per_row = (nkc + 15) / 16, lines = 0;
    if (has_next && j->packed) {
      // One run of 2 * nkc lines; with next == kk, the start of the next panel.
      nw = j->packed + ((size_t)group * j->kk + (next < j->kk ? next : j->kk)) * 32;
      lines_per_row = lines = 2 * nkc;
    } else if (has_next) {
      nw = next < j->kk ? wp + next : wp + (size_t)32 * j->kk;
      lines = nrows * lines_per_row;
    }
    const int strips = (oh1 - oh0) * row_strips, per = (lines + strips - 1) / strips;
    int fetched = 0, frow = 0, fcol = 0;
    for (int oh = oh0; oh < oh1; oh++)
      for (int ow = 0; ow < p->out_w; ow += MLK_COT_PIXELS) {
        const int n = p->out_w - ow < MLK_COT_PIXELS ? p->out_w - ow : MLK_COT_PIXELS;
        // Packed weights are one run of lines: the strip itself requests its share, one line per
        // step of k among its multiply-adds. (Requested here after each strip, in bursts of up to
        // 74 lines on 7x7 planes, they stalled on the full miss queue: this loop held 4.8% of
        // ResNet50's samples, and its layer4 ran 0.8 ms slower.)
        int npf = 0;
        if (j->packed) {
          npf = lines - fetched < per ? lines - fetched : per;
          if (npf > kc) npf = kc;
        }
        mlk_cot_strip_avx512_(n, 16 * p->stride_w, kc, j->x + ((size_t)oh * j->wq + ow) * p->stride_w * 16,
                              j->off + pc, wt, ct + ((size_t)oh * p->out_w + ow) * 32, pc == 0,
                              npf ? nw + 16 * (size_t)fcol : NULL, npf);
        fetched += npf;
        fcol += npf;   // (packed: one row of `lines` lines)
        for (int l = npf; l < per && fetched < lines; l++, fetched++) {
          __builtin_prefetch(nw + (size_t)frow * j->kk + 16 * fcol, 0, 3);
          if (++fcol == lines_per_row) { fcol = 0; frow++; }
        }
      }
  }
  const size_t q0 = (size_t)oh0 * p->out_w;
  if (j->y_blocked) {
    const size_t at = (size_t)co0 * out_hw + q0 * 16;
    mlk_cot_store_blocked_avx512_((int)((oh1 - oh0) * p->out_w), out_hw, nco, ct + q0 * 32, j->scale ? j->scale + co0 : NULL,
                                  j->bias ? j->bias + co0 : NULL, j->res ? j->res + at : NULL, j->y + at, j->act);
    return;
  }
  mlk_cot_store_avx512_((int)((oh1 - oh0) * p->out_w), out_hw, nco, ct + q0 * 32, j->scale ? j->scale + co0 : NULL,
                        j->bias ? j->bias + co0 : NULL, j->res ? j->res + (size_t)co0 * out_hw + q0 : NULL,
                        j->y + (size_t)co0 * out_hw + q0, j->act);
}

size_t mlk_cot_slot_(const mlk_conv *p) {
  return (size_t)MLK_GEMM_KC * 32 + (size_t)p->out_h * p->out_w * 32;
}

// Channel-blocked activations: see ckernels.h. The channels-as-vectors path already works on a
// blocked copy of its input and on [pixels][32] sums; here the copy is a plain row copy (or none,
// for a 1x1 convolution) and the sums are stored without transposition.
int mlk_conv_blocked_ok(const mlk_conv *p) { return mlk_cot_fits_(p, 2); }

int mlk_conv_winograd_ok(const mlk_conv *p) { return mlk_cot_fits_(p, 1) && mlk_wino_fits_(p); }

size_t mlk_conv_blocked_scratch(const mlk_conv *p) {
  const size_t direct = mlk_direct_scratch_(p, 2), wino = mlk_wino_fits_(p) ? mlk_wino_scratch_(p) : 0;
  return direct > wino ? direct : wino;
}

void mlk_conv_blocked(const mlk_conv *p, const float *x, int x_blocked, const float *panels, const float *bias,
                      const float *scale, const float *res, float *y, int y_blocked, float *scratch, int act, float lo,
                      float hi) {
  mlk_conv_direct_(p, x, NULL, bias, scale, res, y, scratch, (mlk_epilogue){act, lo, hi}, panels, 2, x_blocked, y_blocked);
  if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * p->out_h * p->out_w, act, lo, hi);
}
