// Transposed convolution (NCHW) by GEMM and col2im.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mlk_conv_transpose_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, float *scratch) {
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
  const int kk = cout_g * p->k_h * p->k_w;
  memset(y, 0, sizeof(float) * (size_t)p->batch * p->out_c * out_hw);
  for (int n = 0; n < p->batch; n++)
    for (int gi = 0; gi < g; gi++) {
      const float *xg = x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw;
      const float *wg = w + (size_t)gi * cin_g * kk;
      float *yg = y + ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw;
      // cols[(co, kh, kw), (ih, iw)] = W_g^T x_g
      mlk_sgemm(1, 0, kk, in_hw, cin_g, 1.0f, wg, kk, xg, in_hw, 0.0f, scratch, in_hw);
      // col2im: scatter-add every column into the output it touches.
      for (int co = 0; co < cout_g; co++)
        for (int kh = 0; kh < p->k_h; kh++)
          for (int kw = 0; kw < p->k_w; kw++) {
            const float *row = scratch + ((size_t)(co * p->k_h + kh) * p->k_w + kw) * in_hw;
            float *plane = yg + (size_t)co * out_hw;
            for (int ih = 0; ih < p->in_h; ih++) {
              int oh = ih * p->stride_h - p->pad_top + kh * p->dil_h;
              if (oh < 0 || oh >= p->out_h) continue;
              for (int iw = 0; iw < p->in_w; iw++) {
                int ow = iw * p->stride_w - p->pad_left + kw * p->dil_w;
                if (ow < 0 || ow >= p->out_w) continue;
                plane[oh * p->out_w + ow] += row[ih * p->in_w + iw];
              }
            }
          }
    }
  if (bias)
    for (int n = 0; n < p->batch; n++) add_bias_nchw(y + (size_t)n * p->out_c * out_hw, bias, p->out_c, out_hw);
}
