// Compute kernels in C. For now: host measurements for `modellens profiles --measure`
// and the singular values behind the effective-rank analysis (LAPACK via OpenBLAS).
#ifndef MODELLENS_CKERNELS_H
#define MODELLENS_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Peak single-precision FMA rate of one core, in GFLOP/s, from independent
/// fused multiply-add chains in registers (AVX-512 when the CPU has it, else AVX2+FMA,
/// else scalar). Runs for about `seconds`. `isa` receives "avx512", "avx2" or "scalar".
double mlk_fma_peak_gflops(double seconds, const char **isa);

/// The executor's sgemm (mlk_sgemm: oneDNN or OpenBLAS in tiles) for n x n x n on `threads` threads,
/// in GFLOP/s (best of `reps`).
double mlk_sgemm_gflops(int n, int reps, int threads);

/// The executor's own convolution rate, in GFLOP/s: an n -> n channel 1x1 convolution over n
/// pixels (n a multiple of 32) on `threads` threads, best of `reps`.
double mlk_conv_gflops(int n, int reps, int threads);

/// Streaming bandwidth of a triad a = b + s*c over arrays of `bytes` each, in GB/s
/// (3 arrays counted, best of `reps`).
double mlk_triad_gbps(size_t bytes, int reps);
/// GB/s of weights a batch-1 product (x W^T through mlk_sgemm, `threads` threads) reads when
/// `bytes` of them stream from memory on every call: the best of `reps` calls.
double mlk_weight_stream_gbps(size_t bytes, int reps, int threads);

/// Bytes this process holds from malloc now (glibc's mallinfo2: in use in the heap plus chunks
/// mapped on their own), -1 where the C library cannot tell. Unlike the resident set, it leaves
/// out what does not come from malloc: code pages, thread stacks, OpenBLAS's own buffers (whose
/// size follows the CPU model), mapped files.
long long mlk_heap_in_use(void);

/// Pins the calling thread to one CPU, the second it may run on when there are two or more (as
/// `taskset -c 1` pins a benchmark), and returns 1; 0 when it could not (one CPU, no affinity).
/// mlk_unpin_thread gives back the CPUs it had before.
int mlk_pin_thread(void);
void mlk_unpin_thread(void);

/// Singular values of the m x n row-major matrix `a` (copied; not modified), largest
/// first, into `s` (min(m, n) values). Returns 0 on success.
int mlk_singular_values(const float *a, int m, int n, float *s);

/// Eigen-decomposition of a a^T for the m x n row-major a: `energies` (m, the squared singular
/// values, largest first) and `u` (m x m row-major, column j the j-th left singular vector).
/// Returns 0 on success.
int mlk_gram_eigen(const float *a, int m, int n, float *energies, float *u);

/// Rank-`rank` CP decomposition of the d[0] x d[1] x d[2] x d[3] row-major tensor x by
/// alternating least squares from a seeded random start: x[a,b,c,e] ~ sum_r f0[a,r] f1[b,r]
/// f2[c,r] f3[e,r], each factors[n] d[n] x rank row-major (written). Stops after `iterations`
/// sweeps or when the error settles. Returns the relative error ||x - x^|| / ||x||, or -1 when
/// it failed (memory, a singular system).
double mlk_cp_als(const float *x, const int *d, int rank, int iterations, unsigned long long seed, float *const *factors);

/// Elementwise binary ops with numpy broadcasting (rank <= 8). Strides are in elements,
/// 0 along broadcast axes.
enum {
  MLK_ADD = 0, MLK_SUB, MLK_MUL, MLK_DIV, MLK_POW, MLK_MAX, MLK_MIN, MLK_PRELU, MLK_SQDIFF, MLK_MOD, MLK_FMOD
};
void mlk_binary(int op, int rank, const long *shape, const float *a, const long *a_strides, const float *b,
                const long *b_strides, float *y);

/// The loop mlk_binary runs for these operands (after merging dimensions): both whole and of the
/// output's shape (FLAT, add/sub/mul/div only); a whole with b one row repeated (ROWS: a
/// per-channel vector over NHWC pixels) or one value (SCALAR); else rows walked by index (WALK:
/// a per-channel value over NCHW planes, a scale that comes first). Its cost differs per loop.
/// `rows` (may be NULL): the rows ROWS and WALK go through (each a call of the row kernel), 1 for
/// the one-pass loops.
enum { MLK_BINARY_FLAT = 0, MLK_BINARY_ROWS, MLK_BINARY_SCALAR, MLK_BINARY_WALK };
int mlk_binary_loop(int op, int rank, const long *shape, const long *a_strides, const long *b_strides, long *rows);

/// Integer arithmetic and comparisons with numpy broadcasting (rank <= 8): operands of a_elem /
/// b_elem bytes (4: int32, 8: int64), results of y_elem bytes (8: int64, 4: int32, 1: bool).
/// Arithmetic wraps; division and modulo by 0 give 0.
enum {
  MLK_IADD = 0, MLK_ISUB, MLK_IMUL, MLK_IDIV, MLK_IMOD, MLK_IFMOD, MLK_IMAX, MLK_IMIN, MLK_IEQ, MLK_IGT, MLK_ILT, MLK_IGE,
  MLK_ILE, MLK_INE, MLK_IAND, MLK_IOR, MLK_IXOR
};
void mlk_binary_int(int op, int rank, const long *shape, const void *a, const long *a_strides, int a_elem, const void *b,
                    const long *b_strides, int b_elem, void *y, int y_elem);

/// Elementwise unary float ops; alpha and beta parametrise some of them.
enum {
  MLK_RELU = 0, MLK_SIGMOID, MLK_TANH, MLK_EXP, MLK_LOG, MLK_SQRT, MLK_ABS, MLK_NEG, MLK_ERF, MLK_HARDSWISH,
  MLK_HARDSIGMOID, MLK_LEAKYRELU, MLK_ELU, MLK_SOFTPLUS, MLK_GELU, MLK_GELU_TANH, MLK_CLIP, MLK_RECIPROCAL,
  MLK_FLOOR, MLK_CEIL, MLK_ROUND, MLK_SIN, MLK_COS, MLK_SELU, MLK_SOFTSIGN, MLK_RELU6, MLK_RELU_N1_TO_1,
  MLK_SQUARE, MLK_RSQRT, MLK_SIGN, MLK_IDENTITY, MLK_TAN, MLK_ASIN, MLK_ACOS, MLK_ATAN, MLK_SINH, MLK_COSH,
  MLK_ASINH, MLK_ACOSH, MLK_ATANH, MLK_THRESHOLDED_RELU, MLK_CELU, MLK_MISH, MLK_SHRINK, MLK_SILU
};
void mlk_unary(int op, const float *x, float *y, size_t n, float alpha, float beta);

/// Layer normalization of each of `rows` rows of `inner` floats: (x - mean) / sqrt(var + eps), times
/// scale and plus bias (each NULL, one value, or repeated every scale_n / bias_n elements);
/// mean_out and inv_out (may be NULL) receive each row's mean and 1 / sqrt(var + eps).
void mlk_layer_norm(const float *x, float *y, long rows, long inner, const float *scale, long scale_n, const float *bias,
                    long bias_n, float eps, float *mean_out, float *inv_out);

/// Softmax (log = 0), LogSoftmax (log = 1) or Hardmax (log = 2) over the middle axis of [outer, axis, inner].
void mlk_softmax(const float *x, float *y, long outer, long axis, long inner, int log);

/// Transposes a tensor of `elem` bytes per element (rank <= 8): y[i] = x[perm-permuted index].
void mlk_transpose(const void *x, void *y, int rank, const long *shape, const int *perm, int elem);
/// y[j][i] = x[i][j] for a rows x cols matrix of bytes (an image's NCHW <-> NHWC for 8-bit values).
void mlk_transpose_bytes(long rows, long cols, const void *x, void *y);
/// y (contiguous, `shape`) = x read at sum(idx[d] * stride[d]) elements of `elem` bytes; strides
/// may be 0 (broadcast) or negative. Rank at most 8. Runs of contiguous elements are copied whole.
void mlk_copy_strided(const void *x, void *y, int rank, const long *shape, const long *stride, int elem);
/// Constant padding: y (contiguous, `yshape`) is x (contiguous, `xshape`) placed at offset
/// before[d] along each axis, every other element `value` (elem bytes). Rank 1 to 8; every x
/// index plus its offset lies inside y.
void mlk_pad_constant(const void *x, void *y, int rank, const long *xshape, const long *yshape, const long *before, int elem,
                      const void *value);
/// Gather along an axis: x is [outer, len, inner] elements of `elem` bytes, y [outer, n, inner]
/// with y[o][i] = x[o][idx[i]]; every idx in [0, len).
void mlk_gather(const void *x, void *y, long outer, long len, long inner, const long *idx, long n, int elem);

/// Concatenation: y holds `outer` rows, each the n inputs' next bytes[k] bytes in turn (input k is
/// outer x bytes[k] bytes, contiguous). Shared among the executor's threads in byte ranges.
void mlk_concat(void *y, int n, const void *const *x, const long *bytes, long outer);

/// Resizes the two innermost spatial axes. len_h / len_w: the resized lengths before rounding
/// (input x scale), which align_corners and pytorch_half_pixel use. nhwc: data is [N, H, W, C], else [N, C, H, W].
/// mode: 0 nearest, 1 linear. coord: 0 half_pixel, 1 asymmetric, 2 align_corners, 3 pytorch_half_pixel,
/// 4 tf_half_pixel_for_nn. nearest: 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil.
void mlk_resize(const float *x, float *y, int nhwc, long n, long c, long ih, long iw, long oh, long ow,
                float scale_h, float scale_w, float len_h, float len_w, int mode, int coord, int nearest);

#ifdef __cplusplus
}
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// C = alpha * op(A) * op(B) + beta * C, row-major, through OpenBLAS.
void mlk_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc);

/// Whether this CPU has the AVX-512 kernels' instructions (AVX-512 F/VL/DQ and FMA).
int mlk_avx512_available(void);
/// Chooses the kernels: the AVX-512 ones (where available; the default unless the environment
/// has MODELLENS_KERNELS=blas) or the portable ones (OpenBLAS sgemm, scalar loops).
void mlk_prefer_avx512(int on);

/// How many 512-bit FMAs a cycle the AVX-512 kernels take this core to issue, 1 or 2 (0: measure it
/// on first use, the default; the environment's MODELLENS_FMA512_PIPES sets it too). With 1, NHWC
/// convolutions with short sums take a GEMM of smaller register tiles (for tests of both forms).
void mlk_set_fma512_pipes(int pipes);

/// Threads of the executor's parallel sections (OpenBLAS itself stays on one).
void mlk_set_threads(int threads);

/// The OpenBLAS kernel set in use ("SkylakeX", "Haswell", ...): blas.c chooses it from the CPU's
/// features unless the environment sets OPENBLAS_CORETYPE.
const char *mlk_blas_kernels(void);
/// The library that runs matrix products: "oneDNN" where it is installed (and MODELLENS_GEMM is not
/// "openblas"), else "OpenBLAS".
const char *mlk_gemm_library(void);

/// Convolution geometry, shared by the NCHW and NHWC kernels (2-D; 1-D convs use h = 1).
typedef struct mlk_conv {
  int batch, in_c, in_h, in_w;
  int out_c, out_h, out_w;
  int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right;
  int groups;
} mlk_conv;

/// Nonzero elements among n floats.
long mlk_count_nonzero(const float *w, long n);
/// Whether a convolution runs on the sparse kernel with `nonzero` weights: 1x1, stride 1, no
/// padding, one group, and at most 35% of the weights nonzero (below the break-even with the GEMM).
int mlk_conv_sparse_ok(const mlk_conv *p, long nonzero);
/// Compressed rows of the rows x cols row-major w: its nonzeros in `values` with their column in
/// `columns` (both mlk_count_nonzero long), row r's from starts[r] to starts[r + 1] (rows + 1).
void mlk_sparse_pack(int rows, int cols, const float *w, float *values, int *columns, int *starts);
/// y = act(scale[o] * sum over row o's nonzeros of value x input channel + bias[o] (+ residual)),
/// NCHW, for a 1x1 convolution mlk_conv_sparse_ok takes; scale, bias, residual may be NULL.
void mlk_conv_sparse(const mlk_conv *p, const float *x, const float *values, const int *columns, const int *starts, const float *bias,
                     const float *scale, const float *residual, float *y, float *scratch, int act, float lo, float hi);
/// Whether a fully-connected layer (outputs x inner weights) with `nonzero` weights runs sparse:
/// at most 35% nonzero (each nonzero is read with its column index, 8 bytes for the dense 4).
int mlk_gemm_sparse_ok(int outputs, int inner, long nonzero);
/// y[r, o] += alpha * sum over row o's nonzeros of value x x[r, column], for rows x inner
/// inputs x and compressed rows of the outputs x inner weights (mlk_sparse_pack).
void mlk_gemm_sparse(int rows, int outputs, int inner, const float *x, const float *values, const int *columns, const int *starts,
                     float alpha, float *y);
/// Floats of scratch mlk_conv_sparse needs (for every thread of a section).
size_t mlk_conv_sparse_scratch(const mlk_conv *p);

/// NCHW input, OIHW weights (O x I/g x kH x kW): y = scale[o] * conv + bias[o] (scale optional,
/// a folded BatchNorm; bias optional), plus an optional residual `res` (a tensor of y's shape),
/// then the activation `act` (kinds as in mlk_activate). `scratch` holds mlk_conv_nchw_scratch(p)
/// floats.
size_t mlk_conv_nchw_scratch(const mlk_conv *p);
/// Whether mlk_conv_nchw may be given the residual's own buffer as `y` (res == y): true where
/// every output element reads its residual before anything is stored there (the AVX-512 paths
/// with the whole reduction in one block, in_c / groups * k_h * k_w <= 256).
int mlk_conv_nchw_residual_in_place_ok(const mlk_conv *p);
void mlk_conv_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                   const float *res, float *y, float *scratch, int act, float lo, float hi);
/// Whether mlk_conv_nchw runs `p` on the direct kernel for grouped convolutions with few channels
/// per group (2 or more inputs and at most 16 outputs a group, stride 1 or 2 across, AVX-512).
int mlk_conv_grouped_direct(const mlk_conv *p);

/// Weights of out_c x kk floats (OIHW for NCHW, OHWI for NHWC; kk the rest of the shape) as
/// panels of 32 output channels, [ceil(out_c / 32)][kk][32] (zeros past out_c), in
/// mlk_weight_panel_floats(out_c, kk) floats; and back. The layout both the NHWC GEMM and the NCHW
/// channels-as-vectors path read, packed once at plan time.
size_t mlk_weight_panel_floats(int out_c, int kk);
void mlk_weight_panels_pack(int out_c, int kk, const float *w, float *panels);
void mlk_weight_panels_unpack(int out_c, int kk, const float *panels, float *w);

/// Plan-time packing for the AVX-512 channels-as-vectors path (3x3 and other spatial kernels on
/// planes of up to 12544 outputs): whether mlk_conv_nchw_packed takes that path for `p`.
int mlk_conv_nchw_cot_packs(const mlk_conv *p);
/// The share of the vector lanes the NCHW float kernel for `p` multiplies that are outputs, where
/// its time goes with the lanes rather than the outputs: the grouped direct kernel's rows in chunks
/// of 16 columns (a 5x5 plane fills 5 of 16). 1 elsewhere: the channels-as-vectors path's strips of
/// 7 pixels also leave lanes empty on such planes, but a short strip costs less than a full one
/// (its weight loads, not its multiply-adds, bound it). The calibration prices FLOPs / lane use.
double mlk_conv_nchw_lane_use(const mlk_conv *p);
/// The scratch mlk_conv_nchw_packed needs (it may take another path than mlk_conv_nchw would).
size_t mlk_conv_nchw_packed_scratch(const mlk_conv *p);
/// mlk_conv_nchw with the weights as mlk_weight_panels_pack left them; only where
/// mlk_conv_nchw_cot_packs(p), with scratch of mlk_conv_nchw_packed_scratch(p) floats. Results
/// equal mlk_conv_nchw's bit for bit on planes of more than 64 outputs (the same path), except
/// where mlk_conv_winograd_ok(p) (see below); on 64 or fewer mlk_conv_nchw takes another path,
/// whose sums may differ in their last bits.
void mlk_conv_nchw_packed(const mlk_conv *p, const float *x, const float *panels, const float *bias, const float *scale,
                          const float *res, float *y, float *scratch, int act, float lo, float hi);

/// Channel-blocked activations: an image's C channels (a multiple of 16) as [C/16][H][W][16], a
/// pixel's 16 channels of a block side by side (the layout the channels-as-vectors path computes
/// on). mlk_conv_blocked runs a convolution where mlk_conv_blocked_ok(p) (AVX-512, groups 1,
/// stride 1 or 2, 1x1 too, planes of up to 12544 outputs, in_c and out_c multiples of 16, out_c
/// >= 32) with weights as mlk_weight_panels_pack left them, reading x blocked or NCHW (x_blocked)
/// and writing y, and reading res, blocked or NCHW (y_blocked), with scratch of
/// mlk_conv_blocked_scratch(p) floats. Sums run as in mlk_conv_nchw_packed: results equal it bit for
/// bit whatever the layouts.
/// Where mlk_conv_winograd_ok(p) (3x3 "same" convolutions of stride 1, in and out channels
/// multiples of 16, planes of 196 to 12544 outputs, AVX-512) mlk_conv_nchw_packed and
/// mlk_conv_blocked run Winograd F(2x2, 3x3) in any layout: 2.25 times fewer multiply-adds, sums
/// that differ from the direct path's in the last bits (relative error about 1e-6).
/// MODELLENS_WINOGRAD=0 in the environment turns that off.
int mlk_conv_blocked_ok(const mlk_conv *p);
int mlk_conv_winograd_ok(const mlk_conv *p);
size_t mlk_conv_blocked_scratch(const mlk_conv *p);
void mlk_conv_blocked(const mlk_conv *p, const float *x, int x_blocked, const float *panels, const float *bias,
                      const float *scale, const float *res, float *y, int y_blocked, float *scratch, int act, float lo,
                      float hi);
/// n images of c channels (a multiple of 16) of hw pixels, NCHW to channel-blocked and back.
void mlk_blocked_from_nchw(int n, int c, int hw, const float *x, float *y);
/// Global average pooling: y[i] = the mean of plane i of `inner` floats, for `planes` planes
/// (NCHW), or of channel-blocked input (`blocked`: planes a multiple of 16, [planes/16][inner][16]).
/// Summed in double.
void mlk_global_mean(int planes, int inner, int blocked, const float *x, float *y);
/// y[i] = the largest of plane i's `inner` values (a NaN passed over; -inf for none): GlobalMaxPool.
void mlk_global_max(int planes, int inner, const float *x, float *y);
void mlk_nchw_from_blocked(int n, int c, int hw, const float *x, float *y);
/// Max pooling of NCHW x (in_c a multiple of 16) into channel-blocked y, with scratch of
/// 16 * out_h * out_w floats.
void mlk_maxpool_blocked(const mlk_conv *p, const float *x, float *y, float *scratch);

/// Depthwise NCHW (groups == in_c, out_c == in_c * multiplier), weights [O, 1, kH, kW].
/// The activation `act` is applied as results are stored (kinds as in mlk_activate).
void mlk_depthwise_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int act, float lo,
                        float hi);

/// NHWC input, OHWI weights (O x kH x kW x I/g), plus an optional residual `res` (a tensor of y's
/// shape, added before the activation), then the activation `act`; `scratch` holds
/// mlk_conv_nhwc_scratch(p) floats.
size_t mlk_conv_nhwc_scratch(const mlk_conv *p);
void mlk_conv_nhwc(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *res, float *y, float *scratch,
                   int act, float lo, float hi);

/// The weight panels the AVX-512 path of mlk_conv_nhwc builds on every call (mlk_weight_panels_pack
/// of the OHWI weights), built once: for a convolution with one group and at least 16 output
/// channels (mlk_conv_nhwc_packs). mlk_conv_nhwc_packed then runs it with those panels, `w` unread.
int mlk_conv_nhwc_packs(const mlk_conv *p);
void mlk_conv_nhwc_packed(const mlk_conv *p, const float *x, const float *panels, const float *bias, const float *res, float *y,
                          float *scratch, int act, float lo, float hi);
/// Whether mlk_conv_nhwc runs `p` on the direct kernel for few input channels (stems over images:
/// 1-4 input channels, one group, a window larger than 1x1, 2 or more outputs, AVX-512), which
/// reads the input where it lies instead of through im2col rows.
int mlk_conv_nhwc_runs_direct(const mlk_conv *p);
/// Whether mlk_conv_nhwc / mlk_conv_nchw run `p` as a matrix-vector product through mlk_sgemm
/// (one output pixel: squeeze-excitation blocks, classifier heads written as convolutions), the
/// kernel of a batch-1 fully-connected layer.
int mlk_conv_nhwc_runs_gemv(const mlk_conv *p);
/// Whether mlk_conv_nhwc runs `p` on the GEMM for short sums (one group, at most 64 products per
/// output, on a core that issues one 512-bit FMA a cycle) rather than the packed GEMM.
int mlk_conv_nhwc_short_sums(const mlk_conv *p);
int mlk_conv_nchw_runs_gemv(const mlk_conv *p);

/// Transposed convolution over NCHW data. Here in_* is the op's input and out_* its output;
/// weights are IOHW ([in_c, out_c/g, kH, kW]). pad_top/pad_left are the begin paddings cut from
/// the full output. `scratch` holds (out_c/g * kH * kW) * (in_h * in_w) floats.
void mlk_conv_transpose_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, float *scratch);

/// Depthwise NHWC, weights 1HWO ([1, kH, kW, O]), then the activation `act`.
void mlk_depthwise_nhwc(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int act, float lo,
                        float hi);
/// How many times mlk_depthwise_nhwc's AVX-512 row kernel takes its short path: pixel groups of
/// 1-4 (the row's ends, and windows other than 3 or 5 wide) rather than its eight-pixel spans,
/// counted per 32-channel block over all rows and images; 0 where another kernel runs. A row's
/// time depends on how its pixels split (a cost model prices these groups apart).
long mlk_depthwise_nhwc_short_groups(const mlk_conv *p);

/// Pooling over NCHW (nhwc = 0) or NHWC (nhwc = 1) data. kind 0 = max, 1 = average
/// (count_include_pad chooses the divisor), 2 = L2.
void mlk_pool(int kind, int nhwc, int count_include_pad, const mlk_conv *p, const float *x, float *y);
/// The loop mlk_pool runs: NHWC rows of channel vectors (max and average), ResNet's 3x3 stride-2
/// max pooling of NCHW planes, other windows over NCHW planes in vectors, or the portable loop.
enum { MLK_POOL_PORTABLE = 0, MLK_POOL_NHWC_ROWS, MLK_POOL_MAX_3X3S2, MLK_POOL_PLANES };
int mlk_pool_loop(int kind, int nhwc, const mlk_conv *p);
/// The share of the vector lanes mlk_pool's loop works through that become outputs: the NCHW
/// plane loops take a row in chunks of 16 columns (a 7-column row fills 7 of 16), and the general
/// one at stride 2 loads two vectors a chunk; 1 for the other loops.
double mlk_pool_lane_use(int kind, int nhwc, const mlk_conv *p);

/// y = x * scale[ch] + shift[ch] over [outer, c, inner] (inference BatchNormalization), then the activation.
void mlk_channel_affine(const float *x, float *y, long outer, long c, long inner, const float *scale, const float *shift,
                        int act, float lo, float hi);

/// Quantized (int8 / uint8) NHWC convolutions, TFLite semantics: see kernels_int8.c.
/// Zero points and the output clamp are in the tensors' stored values; signedness 1 = int8, 0 = uint8.
typedef struct mlk_qconv {
  int32_t in_zero, out_zero, act_min, act_max;
  int in_signed;
  /// NULL: TFLite's fixed-point requantization (mult / shift). Otherwise onnxruntime's
  /// (MlasRequantizeOutput): per output channel, y = round half to even(clamp(float(sum) *
  /// fscale[o], act_min - out_zero, act_max - out_zero)) + out_zero; mult / shift are not read.
  const float *fscale;
  /// With fscale, mlk_qconv_nhwc only: y holds floats, float(sum) * fscale[o] (onnxruntime's
  /// QGemm without an output scale); no zero point, no clamp.
  int float_out;
} mlk_qconv;

/// A real multiplier as TFLite holds it: a Q31 value in [2^30, 2^31) and a power-of-two exponent.
void mlk_quantize_multiplier(double m, int32_t *mult, int32_t *shift);
/// TFLite's MultiplyByQuantizedMultiplier (rounding doubling high multiply, rounding shift).
int32_t mlk_multiply_by_quantized_(int32_t x, int32_t mult, int32_t shift);

/// Bytes of packed weights for out_c channels of k = kH * kW * in_c weights each.
size_t mlk_qconv_packed_size(int out_c, int k);
/// Packs OHWI int8 weights ([out_c][k]) into 16-channel panels and writes the bias the packed
/// GEMM adds: bias[o] - a_zero * sum_k w[o][k], where a_zero is the input zero point as an
/// unsigned byte (in_zero + 128 for int8 input, in_zero for uint8). bias may be NULL.
void mlk_qconv_pack(int out_c, int k, const int8_t *w, const int32_t *bias, int32_t a_zero, int8_t *packed,
                    int32_t *bias_eff);
/// Scratch bytes mlk_qconv_nhwc needs (per-thread im2col rows).
size_t mlk_qconv_scratch(const mlk_conv *p);
/// Standard (groups 1) convolution; a fully-connected layer is a 1x1 one over a [1, 1, rows, in] image.
/// mult / shift per output channel from mlk_quantize_multiplier.
void mlk_qconv_nhwc(const mlk_conv *p, const mlk_qconv *q, const void *x, const int8_t *packed, const int32_t *bias_eff,
                    const int32_t *mult, const int32_t *shift, void *y, uint8_t *scratch);
/// Depthwise convolution, weights 1HWO int8 as stored, bias int32 (or NULL).
void mlk_qdepthwise_nhwc(const mlk_conv *p, const mlk_qconv *q, const void *x, const int8_t *w, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, void *y);
/// Per-tensor dequantization of int8 (in_signed 1) or uint8 values: y = (x - zero) * scale.
void mlk_dequantize_8(const void *x, int in_signed, size_t n, float scale, int32_t zero, float *y);
/// Per-tensor quantization to int8 / uint8: round(x / scale) (half to even, or half away from
/// zero) + zero, saturated; NaN becomes the zero point.
void mlk_quantize_8(const float *x, size_t n, float scale, int32_t zero, int out_signed, int half_even, void *y);
/// y = dequantize(quantize(x)) with one scale and zero point (ONNX rounding, half to even): a
/// QuantizeLinear -> DequantizeLinear pair in one pass; y may be x.
void mlk_quantize_dequantize_8(const float *x, size_t n, float scale, int32_t zero, int is_signed, float *y);
/// onnxruntime's requantization (MlasRequantizeOutput) of integer sums held as floats, NCHW:
/// plane p of `plane` values (channel p % channels, scale scales[nscales == 1 ? 0 : channel]) to
/// int8 / uint8: clamp(round half to even(y * scale), type range - zero) + zero.
void mlk_requantize_planes(const float *y, int planes, size_t plane, int channels, const float *scales, int nscales,
                           int32_t zero, int is_signed, void *out);
/// onnxruntime's QLinearMul over n int8 / uint8 values of a and b:
/// y = saturate(round half to even((float)((a - za)(b - zb)) * scale) + zc).
void mlk_qlinear_mul_8(const void *a, const void *b, size_t n, int is_signed, int32_t za, int32_t zb, float scale,
                       int32_t zc, void *y);
/// The same over `rows` rows of `run` values of a, row r times the one value b[b_at[r]] (a
/// squeeze-excitation gate over its channel's plane).
void mlk_qlinear_mul_rows_8(const void *a, const void *b, const long *b_at, int rows, size_t run, int is_signed, int32_t za,
                            int32_t zb, float scale, int32_t zc, void *y);
/// y[i] = table[x[i]] over n bytes, shared among threads.
void mlk_map_8(const void *x, size_t n, const uint8_t *table, void *y);
/// onnxruntime's QLinearAdd over n same-shape int8 / uint8 values: y = saturate(round half to even
/// of fma(a, ra, fma(b, rb, base))), ra = sa / sc, rb = sb / sc, base = zc - (za ra + zb rb).
void mlk_qlinear_add_8(const void *a, const void *b, size_t n, int is_signed, float ra, float rb, float base, void *y);
/// y = quantize(dequantize(a) + dequantize(b)), elementwise over n values of int8 / uint8, with a
/// clamping activation (kinds 1-3 of mlk_activate) before quantizing: the float path of a quantized
/// ADD in one pass.
void mlk_qadd_8(const void *a, int a_signed, float sa, int32_t za, const void *b, int b_signed, float sb, int32_t zb,
                size_t n, int act, float so, int32_t zo, int out_signed, void *y);
/// True when the integer kernels use AVX-512 VNNI here.
int mlk_vnni_available_(void);

/// Reduction of the middle axis of [outer, red, inner]: kind 0 sum, 1 mean, 2 max, 3 min
/// (accumulated in double; a NaN propagates through max and min).
void mlk_reduce_contiguous(const float *x, long outer, long red, long inner, int kind, float *y);

/// Fused activations applied in place: 0 none, 1 relu, 2 relu6, 3 relu_n1_to_1, 4 tanh, 5 clip(lo, hi).
void mlk_activate(float *y, size_t n, int kind, float lo, float hi);

#ifdef __cplusplus
}
#endif
