// The NCHW convolution paths, shared by their files: conv_nchw.c (im2col and the entry points that
// choose a path), conv_direct.c, conv_cot.c (channels as vectors) and winograd.c.
#ifndef MODELLENS_CKERNELS_CONV_NCHW_PATHS_H
#define MODELLENS_CKERNELS_CONV_NCHW_PATHS_H

#include "internal.h"

/// The direct path (no im2col): whether it takes `p`, and its scratch in floats for weights
/// transposed per call (pre 0), packed at plan time (1) or channel-blocked activations (2).
int mlk_direct_ok_(const mlk_conv *p);
size_t mlk_direct_scratch_(const mlk_conv *p, int pre);
/// Runs the direct path (which hands small planes to the channels-as-vectors strips and 3x3
/// "same" convolutions to Winograd); `mode` as for mlk_cot_fits_.
void mlk_conv_direct_(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale, const float *res, float *y, float *scratch, mlk_epilogue act, const float *packed, int mode, int x_blocked, int y_blocked);

/// Channels as vectors: whether `p` fits (mode 0: weights transposed per call, 1: packed at
/// plan time, 2: packed and activations channel-blocked), and one thread's scratch in floats.
int mlk_cot_fits_(const mlk_conv *p, int mode);
int mlk_cot_ok_(const mlk_conv *p);
size_t mlk_cot_slot_(const mlk_conv *p);
/// One task of the channels-as-vectors path (see mlk_cot_task_ in conv_cot.c).
typedef struct {
  const mlk_conv *p;
  const float *x, *w, *bias, *scale, *res;
  const long *off;
  float *y, *scratch;
  size_t slot;
  int wq, kk, row_chunks;
  mlk_epilogue act;
  const float *packed;   // the weights as mlk_weight_panels_pack lays them out, or NULL (transposed per call)
  int y_blocked;         // store the output (and read the residual) channel-blocked, [C/16][hw][16]
} mlk_cot_job;
void mlk_cot_task_(void *ctx, int t);

/// Winograd F(2x2, 3x3): whether `p` takes it, its scratch in floats, and the convolution.
int mlk_wino_fits_(const mlk_conv *p);
size_t mlk_wino_scratch_(const mlk_conv *p);
void mlk_conv_wino_(const mlk_conv *p, const float *x, int x_blocked, const float *panels, const float *bias, const float *scale, const float *res, float *y, int y_blocked, float *scratch, mlk_epilogue act);

#endif
