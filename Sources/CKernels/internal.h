// Shared between the kernel files of CKernels; not part of the module's public header.
#ifndef MODELLENS_CKERNELS_INTERNAL_H
#define MODELLENS_CKERNELS_INTERNAL_H

#include "ckernels.h"

#include <stdint.h>

/// OpenBLAS (Debian's libopenblas: CBLAS and LAPACK in one library), opened at start-up by
/// blas.c with the kernel set this CPU runs; these call into it.
enum { MLK_ROW_MAJOR_ = 101, MLK_NO_TRANS_ = 111, MLK_TRANS_ = 112 };
void mlk_cblas_sgemm_(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);
void mlk_cblas_sgemv_(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx,
                      float beta, float *y, int incy);
void mlk_sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s, float *u, const int *ldu,
                 float *vt, const int *ldvt, float *work, const int *lwork, int *iwork, int *info);
void mlk_ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w, float *work, const int *lwork,
                 int *iwork, const int *liwork, int *info);
void mlk_sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda, float *b, const int *ldb, int *info);

/// Threads of the next parallel section (mlk_set_threads), and the scratch slot of the calling
/// thread in one (0 for the section's caller, i + 1 for pool worker i).
extern int mlk_threads;
extern __thread int mlk_slot;

#define MLK_TILE 256
#define MLK_TILE_WIDE 2048   // output columns per tile of the direct path's single-block GEMMs (see mlk_conv_direct_)
#define MLK_WIDE_B_BYTES (512 << 10)   // the most of B one such tile spans (see mlk_conv_direct_)
#define PF_ROWS 4         // input rows ahead a 1x1 convolution's packing requests
#define MLK_KBLOCK 256   // im2col rows built at a time by the AVX-512 convolution path

// Output columns [lo, hi) whose input column ow*stride - pad + k*dil lies inside [0, in).
static inline void valid_range(int out, int in, int stride, int pad, int off, int *lo, int *hi) {
  // ow*stride - pad + off >= 0  <=>  ow >= ceil((pad - off) / stride)
  int a = pad - off;
  int l = a <= 0 ? 0 : (a + stride - 1) / stride;
  // ow*stride - pad + off <= in - 1  <=>  ow <= floor((in - 1 + pad - off) / stride)
  int b = in - 1 + pad - off;
  int h = b < 0 ? 0 : b / stride + 1;
  if (h > out) h = out;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

static inline void add_bias_nchw(float *y, const float *bias, int c, int hw) {
  if (!bias) return;
  for (int o = 0; o < c; o++) {
    float b = bias[o];
    float *row = y + (size_t)o * hw;
    for (int i = 0; i < hw; i++) row[i] += b;
  }
}

/// y[M, N] = x[M, K] * w[N, K]^T (OpenBLAS) in fixed tiles of rows shared among threads.
void mlk_sgemm_rows_(int m, int n, int k, const float *x, const float *w, float *y);

/// Runs fn(ctx, t) for t in [0, tasks) on the thread pool (the caller takes part).
typedef void (*mlk_task_fn)(void *ctx, int task);
void mlk_parallel_(int tasks, mlk_task_fn fn, void *ctx);
/// A tile width (a multiple of 32, from width / 2 to width) that shares n columns most evenly
/// among `threads` contiguous ranges of tiles, as mlk_parallel_ hands them out.
int mlk_balanced_tile_(int n, int width, int threads);
/// Chunks per part (at most max_chunks) so that parts x chunks tasks share evenly among threads.
int mlk_even_chunks_(int parts, int chunks, int max_chunks, int threads);
/// Units a task (from `per`) so that few tasks over `units` units share evenly among threads.
long mlk_even_per_(long units, long per, int threads);

/// Threads a parallel section may use, and the scratch slot of the calling thread
/// (0 for a section's caller, i + 1 for pool worker i).
int mlk_thread_count_(void);
int mlk_thread_slot_(void);

/// mlk_dequantize_8 / mlk_quantize_8 on the calling thread only (vector forms where the CPU has them).
void mlk_dequantize_row_(const void *x, int in_signed, size_t n, float scale, int32_t zero, float *y);
void mlk_quantize_row_(const float *x, size_t n, float scale, int32_t zero, int out_signed, int half_even, void *y);

/// True when this CPU runs the AVX-512 kernels (and MODELLENS_KERNELS is not "blas").
int mlk_use_avx512_(void);
/// Extensions beyond the base AVX-512 set (which mlk_avx512_available checks) that some kernels
/// use; each tested once, and true only where the AVX-512 kernels run at all.
typedef enum { MLK_AVX512_BW, MLK_AVX512_VNNI, MLK_AVX512_VBMI } mlk_avx512_ext;
int mlk_avx512_has_(mlk_avx512_ext ext);
/// 512-bit FMAs the core issues per cycle (1 or 2), measured on first use unless set by
/// mlk_set_fma512_pipes or the environment's MODELLENS_FMA512_PIPES; 2 where AVX-512 is not used.
int mlk_fma512_pipes_(void);

/// Steps of k the AVX-512 GEMM sums per pass over a tile of C (partial sums are stored between).
#define MLK_GEMM_KC 256

/// The taps [*t0, *t1) of a window of k taps at dilation dil, starting at input index `start`,
/// that lie inside [0, n): a kernel row's or column's valid taps for one output position.
static inline void mlk_taps_inside(int start, int k, int dil, int n, int *t0, int *t1) {
  int a = 0, b = k;
  while (a < b && start + a * dil < 0) a++;
  while (b > a && start + (b - 1) * dil >= n) b--;
  *t0 = a;
  *t1 = b;
}

/// The output columns [*lo, *hi) of a window whose taps all lie inside the input row.
static inline void mlk_columns_inside(const mlk_conv *p, int *lo, int *hi) {
  int a = 0, b = p->out_w;
  while (a < b && a * p->stride_w - p->pad_left < 0) a++;
  while (b > a && (b - 1) * p->stride_w - p->pad_left + (p->k_w - 1) * p->dil_w >= p->in_w) b--;
  *lo = a;
  *hi = b;
}

/// Activation applied as results are stored (kinds as in mlk_activate; 4, tanh, is not
/// handled here and is left to mlk_activate).
typedef struct { int kind; float lo, hi; } mlk_epilogue;

/// The sparse 1x1 convolution over pixels [q0, q1) of one image (sparse.c, sparse_avx512.c).
void mlk_conv_sparse_block_avx512_(int out_c, long plane, const float *x, const float *values, const int *columns,
                                   const int *starts, const float *bias, const float *scale, const float *res, float *y,
                                   long q0, long q1, mlk_epilogue act);

/// Units [o0, o1) of a pruned fully-connected layer: y[o] += alpha * row o . x (sparse.c).
void mlk_gemv_sparse_avx512_(int o0, int o1, const float *x, const float *values, const int *columns, const int *starts,
                             float alpha, float *y);

/// C[m x width] = scale[row] * (A[m x k] (row-major, row stride lda) * B) + bias[row] (or
/// + col_bias[column]) (+ res, a matrix laid out like C, when given), then the activation; a NULL
/// scale is 1. B is packed in panels of 32 columns: panel j holds rows 0..k-1 of columns
/// 32j..32j+31, row after row (k x 32 floats; columns past `width` are zero). C has row stride ldc.
/// With `accumulate`, the products are added to C as it is (no bias); without `finish`, the
/// activation is not applied yet (a later call continues the sum).
/// The NHWC convolutions' GEMM for sums of at most MLK_GEMM_SHORT_K products on a core with one
/// 512-bit FMA pipe (gemm_short_avx512.c): y[rows, o] = act(a * W^T + bias (+ res)), W as
/// mlk_weight_panels_pack left it; mlk_gemm_short_ok_ says whether it runs for k.
#define MLK_GEMM_SHORT_K 64
int mlk_gemm_short_ok_(int k);
void mlk_gemm_short_avx512_(int rows, int o, int k, const float *a, long lda, const float *panels, const float *bias,
                            const float *res, float *y, long ldy, mlk_epilogue act);
void mlk_gemm_packed_avx512_(int m, int width, int k, const float *a, long lda, const float *bpanels, float *c,
                             long ldc, const float *bias, const float *col_bias, const float *scale, const float *res,
                             mlk_epilogue act, int accumulate, int finish);

/// The sparse 1x1 convolution over pixels [q0, q1) of one image (sparse.c, sparse_avx512.c).
void mlk_conv_sparse_block_avx512_(int out_c, long plane, const float *x, const float *values, const int *columns,
                                   const int *starts, const float *bias, const float *scale, const float *res, float *y,
                                   long q0, long q1, mlk_epilogue act);

/// C[m x width] = scale[row] * (A[m x k] * B) + bias[row] (+ res, laid out like C), then the
/// activation, where row kk of B is the
/// `width` floats at b + boff[kk] (unpacked windows of a convolution's input; read masked to width).
void mlk_gemm_direct_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                             float *c, long ldc, const float *bias, const float *scale, const float *res,
                             mlk_epilogue act);

/// The same product for a convolution's wide tile (columns q0 .. q0 + width of the wide output,
/// wq columns per output row of which the first out_w are kept, wq >= 16), stored straight into
/// the output planes (row r at y + r * ldy, pixel (oh, ow) at oh * out_w + ow); res is read
/// the same way. The padding columns are never stored.
void mlk_gemm_wide_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                           long q0, int wq, int out_w, float *y, long ldy, const float *bias, const float *scale,
                           const float *res, mlk_epilogue act);

/// Whether a depthwise convolution is shared among threads (by its multiply-adds).
int mlk_depthwise_splits_(const mlk_conv *p);

/// Output channels [o0, o1) of image n of a depthwise convolution over NCHW data: bias + taps,
/// then the activation. For geometries where mlk_depthwise_avx512_ok_ (stride_w 1 or 2, kernel
/// width <= 16).
int mlk_depthwise_avx512_ok_(const mlk_conv *p);
/// Small stride-1 "same" planes (up to 4096 outputs, 25 taps) are read as one flat row with a
/// load mask per tap and vector of 16 outputs; the masks are made once per call.
#define MLK_DW_FLAT_VECTORS 256
#define MLK_DW_FLAT_TAPS 25
/// Stride-2 "same" planes take the same path after their input is split into its four phases
/// (even/odd rows x even/odd columns), each out_h x out_w: every tap then reads one phase at a
/// fixed offset (`phased`).
typedef struct {
  uint16_t masks[MLK_DW_FLAT_TAPS * MLK_DW_FLAT_VECTORS + 4];
  long offs[MLK_DW_FLAT_TAPS];
  int phased;
} mlk_dw_flat;
int mlk_depthwise_flat_setup_(const mlk_conv *p, mlk_dw_flat *f);
void mlk_depthwise_planes_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int n,
                                  int o0, int o1, const mlk_dw_flat *flat, mlk_epilogue act);

/// Output row `oh` of a depthwise convolution over NHWC data (multiplier 1), weights 1HWO.
void mlk_depthwise_nhwc_row_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *yn, int oh,
                                    mlk_epilogue act);

/// The same for few channels (C = 1, 2, 4, 8 or 16, stride_w 1; see mlk_depthwise_nhwc_flat_ok_),
/// an output row taken as one flat vector of out_w * C floats.
int mlk_depthwise_nhwc_flat_ok_(const mlk_conv *p);
void mlk_depthwise_nhwc_row_flat_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                         float *yn, int oh, mlk_epilogue act);

/// Output row `oh` of an NHWC convolution with few input channels (stems over images; see
/// mlk_conv_nhwc_direct_ok_), computed from the input where it lies; weights as 32-channel panels.
int mlk_conv_nhwc_direct_ok_(const mlk_conv *p);
void mlk_conv_nhwc_direct_row_avx512_(const mlk_conv *p, const float *xn, const float *panels, const float *bias,
                                      float *yn, int oh, mlk_epilogue act);

/// Output row `oh` of an NHWC convolution to one output channel from 1-16 input channels
/// (stride_w 1; see mlk_conv_nhwc_single_ok_, which also bounds out_w * C).
int mlk_conv_nhwc_single_ok_(const mlk_conv *p);
void mlk_conv_nhwc_row_single_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                      float *yn, int oh, mlk_epilogue act);

/// Pixels [px0, px0 + npx) of a 1x1 NHWC convolution with 2, 4 or 8 output channels and few
/// input channels (see mlk_conv1x1_nhwc_small_ok_); x and y are the image's input and output.
int mlk_conv1x1_nhwc_small_ok_(const mlk_conv *p);
void mlk_conv1x1_nhwc_small_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y,
                                    long px0, long npx, mlk_epilogue act);

/// Max and average pooling of NCHW planes in vectors (mlk_maxpool_planes_avx512_,
/// mlk_avgpool_planes_avx512_), for the geometries this admits (it also checks that the AVX-512
/// kernels are in use): stride_w 1 or 2 (any for one output column), k_w <= DW_MAX_KW, pads smaller
/// than the window, no dilation.
int mlk_pool_planes_avx512_ok_(const mlk_conv *p);
/// Average pooling of `planes` NCHW planes, each output divided by rows[oh] * cols[ow] taps.
void mlk_avgpool_planes_avx512_(const mlk_conv *p, const float *x, float *y, int planes, const float *rows, const float *cols);
/// Output row `oh` of an average pooling over NHWC data (one image: xn, yn).
void mlk_avgpool_nhwc_row_avx512_(const mlk_conv *p, int include_pad, const float *xn, float *yn, int oh);
/// Output row `oh` of a max pooling over NHWC data (one image: xn, yn).
void mlk_maxpool_nhwc_row_avx512_(const mlk_conv *p, const float *xn, float *yn, int oh);
/// mlk_global_max's AVX-512 path, for `planes` planes from x.
void mlk_global_max_avx512_(int planes, int inner, const float *x, float *y);
/// mlk_global_mean's AVX-512 path.
void mlk_global_mean_avx512_(int planes, int inner, int blocked, const float *x, float *y);
/// y[j] = alpha * sum_q w[j * ldw + q] x[q] + beta * y[j] for j < n, q < k (y unread for beta 0).
void mlk_gemv_rows_avx512_(int n, int k, const float *w, long ldw, const float *x, float alpha, float beta, float *y);
/// Winograd F(2x2, 3x3) on channel-blocked activations (mlk_conv_wino_ in winograd.c): weight panels
/// (mlk_weight_panels_pack of in_c * 9 columns) [p0, p1) -> u [P][16][in_c][32]; the 4x4 input
/// tiles of tile rows [th0, th0 + nth) of x ([c16][h][w][16], tw tiles a row, padding 1) -> v
/// [16][c16][nth * tw][16]; one panel's sums m [16][nth * tw][32] -> y (its first channel block,
/// bias, scale, residual and activation applied; nco <= 32 channels), or with pixel_major into y
/// as [pixel][32] from output row row0 on.
void mlk_wino_weights_avx512_(int in_c, int p0, int p1, const float *panels, float *u);
void mlk_wino_input_avx512_(const float *x, int c16, int h, int w, int th0, int nth, int tw, float *v);
void mlk_wino_output_avx512_(const float *m, int nco, int th0, int nth, int tw, int h, int w, const float *scale,
                             const float *bias, const float *res, float *y, int pixel_major, int row0,
                             mlk_epilogue act);
/// Output channels as the vector dimension, for small planes (see conv_cot.c): for
/// output pixels [q0, q0 + n) of one row, n <= MLK_COT_PIXELS, whose tap k reads x[off[k] + s i]
/// for pixel q0 + i (s = 16 or 32: the input is in blocks of 16 channels, 16 floats per pixel,
/// and the convolution's stride is 1 or 2), ct[i][0..32) (+)= sum over k < kc of
/// x[off[k] + s i] * wt[k][0..32) (wt: 32 output channels per row). `first`: ct starts at zero,
/// else it holds the earlier blocks' sums. The lines pf + 16 j, j < npf <= kc, are prefetched
/// meanwhile, one per step of k (pf may be NULL with npf = 0).
#define MLK_COT_PIXELS 7
void mlk_cot_strip_avx512_(int n, int s, int kc, const float *x, const long *off, const float *wt, float *ct,
                           int first, const float *pf, int npf);
/// wt[k][c] = w[c][k] for k < kk, c < 32 (rows c >= nrows are zero): 32 output channels' weights
/// (rows of kk floats, row stride ldw) as the panel mlk_cot_strip_avx512_ reads.
void mlk_cot_pack_avx512_(int kk, int nrows, const float *w, long ldw, float *wt);
/// A grouped NCHW convolution where mlk_conv_grouped_direct(p) holds: OIHW weights as stored,
/// then scale (or NULL) and bias per output channel, the residual and the activation.
void mlk_conv_grouped_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                              const float *res, float *y, mlk_epilogue act);
/// dst[i * ldd + k] = src[k * lds + i] for i < ni, k < nk: a transposition of 4-byte elements.
void mlk_transpose_block_avx512_(const float *src, long lds, long ni, long nk, float *dst, long ldd);
/// dst[i][c] = src[c * lds + i] for i < n, c < 16 (0 for c >= nch): n pixels of 16 NCHW planes
/// (nch of them real) interleaved, as the channels-as-vectors path reads its input.
void mlk_interleave16_avx512_(const float *src, long lds, int nch, int n, float *dst);
/// y[c * ld + q] = act(scale[c] * ct[q][c] + bias[c] (+ res[c * ld + q])) for c < nco, q < hw: a
/// panel's sums (ct: hw rows of 32) into NCHW planes (ld floats apart; scale, bias, res may be
/// NULL; with no scale the bias is added; kind 4 is left to the caller).
void mlk_cot_store_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                           const float *res, float *y, mlk_epilogue act);
/// The same sums into channel-blocked planes: y[(c / 16) * ld * 16 + q * 16 + c % 16] (res laid
/// out alike); nco a multiple of 16.
void mlk_cot_store_blocked_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                                   const float *res, float *y, mlk_epilogue act);
/// dst = act(src + res) over n floats (res may be NULL; kind 4, tanh, is left to the caller):
/// the direct convolution's copy of its kept columns into place.
void mlk_store_act_avx512_(float *dst, const float *src, const float *res, int n, mlk_epilogue act);

/// Unary ops as AVX-512 vectors (elementwise_avx512.c): whether `op` has a vector form, and
/// y[i] = op(x[i]) for i < n.
int mlk_unary_avx512_ok_(int op);
/// Rows [r0, r1) of mlk_channel_affine (activation kinds other than 4).
void mlk_channel_affine_rows_avx512_(const float *x, float *y, long r0, long r1, long c, long inner, const float *scale,
                                     const float *shift, mlk_epilogue act);
/// Rows of y = a op b (ADD, SUB, MUL, DIV, PRELU; mlk_binary_avx512_ok_): a and y `rows` x `inner`
/// contiguous, b one row of `inner` floats used for every row.
/// Softmax (log 0) or LogSoftmax (log 1) of outer index x, y (pointing at [axis, inner]) over the
/// axis, for the inner columns [c0, c1) (inner 1: the whole row).
void mlk_softmax_avx512_(const float *x, float *y, long axis, long inner, int log, long c0, long c1);
int mlk_binary_avx512_ok_(int op);
void mlk_binary_rows_avx512_(int op, const float *a, const float *b, float *y, long rows, long inner);
/// One row of y = a op b (the ops of mlk_binary_avx512_ok_), a and b each a row (stride 1) or
/// one value (stride 0), not both one value.
void mlk_binary_row_avx512_(int op, const float *a, long ai, const float *b, long bi, float *y, long n);
void mlk_unary_avx512_(int op, const float *x, float *y, size_t n, float alpha, float beta);
/// dst[i] = src[2 i] for i < n (reads src[0 .. 2n-2] only): stride-2 im2col rows and phases.
void mlk_even_lanes_(float *dst, const float *src, int n);
void mlk_subsample2_row_avx512_(float *row, const float *plane, int in_w, int out_w, int col, int width,
                                const float *ahead);
void mlk_maxpool_planes_avx512_(const mlk_conv *p, const float *x, float *y, int planes);

#endif
