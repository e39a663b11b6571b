// Stand-ins for the AVX-512 kernels where they are not compiled (not x86-64, or a compiler
// without the target attribute): the CPU check says no, so callers take the portable paths;
// the few helpers called either way fall back to plain loops.
#include "avx512.h"

#if !MLK_AVX512_BUILD
int mlk_avx512_available(void) { return 0; }
void mlk_prefer_avx512(int on) { (void)on; }
int mlk_use_avx512_(void) { return 0; }
int mlk_avx512_has_(mlk_avx512_ext ext) { (void)ext; return 0; }
int mlk_gemm_short_ok_(int k) { (void)k; return 0; }
void mlk_gemm_short_avx512_(int rows, int o, int k, const float *a, long lda, const float *panels, const float *bias,
                            const float *res, float *y, long ldy, mlk_epilogue act) {
  (void)rows; (void)o; (void)k; (void)a; (void)lda; (void)panels; (void)bias; (void)res; (void)y; (void)ldy; (void)act;
}
int mlk_depthwise_avx512_ok_(const mlk_conv *p) { (void)p; return 0; }
int mlk_depthwise_flat_setup_(const mlk_conv *p, mlk_dw_flat *f) { (void)p; (void)f; return 0; }
int mlk_depthwise_nhwc_flat_ok_(const mlk_conv *p) { (void)p; return 0; }
long mlk_depthwise_nhwc_short_groups(const mlk_conv *p) { (void)p; return 0; }
int mlk_conv_nhwc_single_ok_(const mlk_conv *p) { (void)p; return 0; }
int mlk_conv1x1_nhwc_small_ok_(const mlk_conv *p) { (void)p; return 0; }
int mlk_conv_nhwc_direct_ok_(const mlk_conv *p) { (void)p; return 0; }
void mlk_conv_nhwc_direct_row_avx512_(const mlk_conv *p, const float *xn, const float *panels, const float *bias,
                                      float *yn, int oh, mlk_epilogue act) {
  (void)p; (void)xn; (void)panels; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
void mlk_conv1x1_nhwc_small_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y,
                                    long px0, long npx, mlk_epilogue act) {
  (void)p; (void)x; (void)w; (void)bias; (void)y; (void)px0; (void)npx; (void)act;
  abort();
}
void mlk_conv_nhwc_row_single_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                      float *yn, int oh, mlk_epilogue act) {
  (void)p; (void)xn; (void)w; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
void mlk_depthwise_nhwc_row_flat_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                         float *yn, int oh, mlk_epilogue act) {
  (void)p; (void)xn; (void)w; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
int mlk_pool_planes_avx512_ok_(const mlk_conv *p) { (void)p; return 0; }
void mlk_gemv_sparse_avx512_(int o0, int o1, const float *x, const float *values, const int *columns, const int *starts,
                             float alpha, float *y) {
  (void)o0; (void)o1; (void)x; (void)values; (void)columns; (void)starts; (void)alpha; (void)y;
  abort();
}
void mlk_conv_sparse_block_avx512_(int out_c, long plane, const float *x, const float *values, const int *columns,
                                   const int *starts, const float *bias, const float *scale, const float *res, float *y,
                                   long q0, long q1, mlk_epilogue act) {
  (void)out_c; (void)plane; (void)x; (void)values; (void)columns; (void)starts; (void)bias; (void)scale; (void)res; (void)y;
  (void)q0; (void)q1; (void)act;
  abort();
}
void mlk_avgpool_nhwc_row_avx512_(const mlk_conv *p, int include_pad, const float *xn, float *yn, int oh) {
  (void)p; (void)include_pad; (void)xn; (void)yn; (void)oh;
  abort();
}
void mlk_avgpool_planes_avx512_(const mlk_conv *p, const float *x, float *y, int planes, const float *rows, const float *cols) {
  (void)p; (void)x; (void)y; (void)planes; (void)rows; (void)cols;
  abort();
}
void mlk_maxpool_nhwc_row_avx512_(const mlk_conv *p, const float *xn, float *yn, int oh) {
  (void)p; (void)xn; (void)yn; (void)oh;
  abort();
}
void mlk_even_lanes_(float *dst, const float *src, int n) {
  for (int i = 0; i < n; i++) dst[i] = src[2 * i];
}
void mlk_subsample2_row_avx512_(float *row, const float *plane, int in_w, int out_w, int col, int width,
                                const float *ahead) {
  (void)row; (void)plane; (void)in_w; (void)out_w; (void)col; (void)width; (void)ahead;
}
int mlk_unary_avx512_ok_(int op) { (void)op; return 0; }
int mlk_binary_avx512_ok_(int op) { (void)op; return 0; }
void mlk_binary_row_avx512_(int op, const float *a, long ai, const float *b, long bi, float *y, long n) {
  (void)op; (void)a; (void)ai; (void)b; (void)bi; (void)y; (void)n;
  abort();
}
void mlk_softmax_avx512_(const float *x, float *y, long axis, long inner, int log, long c0, long c1) {
  (void)x; (void)y; (void)axis; (void)inner; (void)log; (void)c0; (void)c1;
  abort();
}
void mlk_binary_rows_avx512_(int op, const float *a, const float *b, float *y, long rows, long inner) {
  (void)op; (void)a; (void)b; (void)y; (void)rows; (void)inner;
  abort();
}
void mlk_unary_avx512_(int op, const float *x, float *y, size_t n, float alpha, float beta) {
  (void)op; (void)x; (void)y; (void)n; (void)alpha; (void)beta;
  abort();
}
void mlk_store_act_avx512_(float *dst, const float *src, const float *res, int n, mlk_epilogue act) {
  (void)dst; (void)src; (void)res; (void)n; (void)act;
}
void mlk_cot_strip_avx512_(int n, int s, int kc, const float *x, const long *off, const float *wt, float *ct, int first,
                           const float *pf, int npf) {
  (void)n; (void)s; (void)kc; (void)x; (void)off; (void)wt; (void)ct; (void)first; (void)pf; (void)npf;
}
void mlk_transpose_block_avx512_(const float *src, long lds, long ni, long nk, float *dst, long ldd) {
  (void)src; (void)lds; (void)ni; (void)nk; (void)dst; (void)ldd;
  abort();
}
void mlk_conv_grouped_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                              const float *res, float *y, mlk_epilogue act) {
  (void)p; (void)x; (void)w; (void)bias; (void)scale; (void)res; (void)y; (void)act;
  abort();
}
void mlk_channel_affine_rows_avx512_(const float *x, float *y, long r0, long r1, long c, long inner, const float *scale,
                                     const float *shift, mlk_epilogue act) {
  (void)x; (void)y; (void)r0; (void)r1; (void)c; (void)inner; (void)scale; (void)shift; (void)act;
  abort();
}
void mlk_interleave16_avx512_(const float *src, long lds, int nch, int n, float *dst) {
  (void)src; (void)lds; (void)nch; (void)n; (void)dst;
}
void mlk_cot_pack_avx512_(int kk, int nrows, const float *w, long ldw, float *wt) {
  (void)kk; (void)nrows; (void)w; (void)ldw; (void)wt;
}
void mlk_global_max_avx512_(int planes, int inner, const float *x, float *y) {
  (void)planes; (void)inner; (void)x; (void)y;
  abort();
}
void mlk_global_mean_avx512_(int planes, int inner, int blocked, const float *x, float *y) {
  (void)planes; (void)inner; (void)blocked; (void)x; (void)y;
  abort();
}
void mlk_gemv_rows_avx512_(int n, int k, const float *w, long ldw, const float *x, float alpha, float beta, float *y) {
  (void)n; (void)k; (void)w; (void)ldw; (void)x; (void)alpha; (void)beta; (void)y;
  abort();
}
void mlk_wino_weights_avx512_(int in_c, int p0, int p1, const float *panels, float *u) {
  (void)in_c; (void)p0; (void)p1; (void)panels; (void)u;
  abort();
}
void mlk_wino_input_avx512_(const float *x, int c16, int h, int w, int th0, int nth, int tw, float *v) {
  (void)x; (void)c16; (void)h; (void)w; (void)th0; (void)nth; (void)tw; (void)v;
  abort();
}
void mlk_wino_output_avx512_(const float *m, int nco, int th0, int nth, int tw, int h, int w, const float *scale,
                             const float *bias, const float *res, float *y, int pixel_major, int row0, mlk_epilogue act) {
  (void)m; (void)nco; (void)th0; (void)nth; (void)tw; (void)h; (void)w; (void)scale; (void)bias; (void)res; (void)y;
  (void)pixel_major; (void)row0; (void)act;
  abort();
}
void mlk_cot_store_blocked_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                                   const float *res, float *y, mlk_epilogue act) {
  (void)hw; (void)ld; (void)nco; (void)ct; (void)scale; (void)bias; (void)res; (void)y; (void)act;
}
void mlk_cot_store_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                           const float *res, float *y, mlk_epilogue act) {
  (void)hw; (void)ld; (void)nco; (void)ct; (void)scale; (void)bias; (void)res; (void)y; (void)act;
}
void mlk_maxpool_planes_avx512_(const mlk_conv *p, const float *x, float *y, int planes) {
  (void)p; (void)x; (void)y; (void)planes;
  abort();
}
void mlk_gemm_direct_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                             float *c, long ldc, const float *bias, const float *scale, const float *res,
                             mlk_epilogue act) {
  (void)scale; (void)res; (void)m; (void)width; (void)k; (void)a; (void)lda; (void)b; (void)boff; (void)c; (void)ldc; (void)bias; (void)act;
  abort();
}
void mlk_gemm_wide_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                           long q0, int wq, int out_w, float *y, long ldy, const float *bias, const float *scale,
                           const float *res, mlk_epilogue act) {
  (void)m; (void)width; (void)k; (void)a; (void)lda; (void)b; (void)boff; (void)q0; (void)wq; (void)out_w; (void)y;
  (void)ldy; (void)bias; (void)scale; (void)res; (void)act;
  abort();
}
void mlk_depthwise_nhwc_row_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *yn, int oh,
                                    mlk_epilogue act) {
  (void)p; (void)xn; (void)w; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
void mlk_depthwise_planes_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int n,
                                  int o0, int o1, const mlk_dw_flat *flat, mlk_epilogue act) {
  (void)p; (void)x; (void)w; (void)bias; (void)y; (void)n; (void)o0; (void)o1; (void)flat; (void)act;
  abort();
}
void mlk_gemm_packed_avx512_(int m, int width, int k, const float *a, long lda, const float *bpanels, float *c,
                             long ldc, const float *bias, const float *col_bias, const float *scale, const float *res,
                             mlk_epilogue act, int accumulate, int finish) {
  (void)scale; (void)res; (void)accumulate; (void)finish; (void)col_bias; (void)m; (void)width; (void)k; (void)a; (void)lda; (void)bpanels; (void)c; (void)ldc; (void)bias; (void)act;
  abort();
}
#endif
