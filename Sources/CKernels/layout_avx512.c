// Transposition of 4-byte elements with AVX-512: 16 x 16 blocks through registers
// (transpose16 in avx512.h), the ragged edges element by element.
#include "avx512.h"

#if MLK_AVX512_BUILD
AVX512 void mlk_transpose_block_avx512_(const float *src, long lds, long ni, long nk, float *dst, long ldd) {
  const long i16 = ni / 16 * 16, k16 = nk / 16 * 16;
  for (long i = 0; i < i16; i += 16) {
    for (long k = 0; k < k16; k += 16) transpose16(src + k * lds + i, lds, dst + i * ldd + k, ldd);
    for (long k = k16; k < nk; k++)
      for (long a = i; a < i + 16; a++) dst[a * ldd + k] = src[k * lds + a];
  }
  for (long a = i16; a < ni; a++)
    for (long k = 0; k < nk; k++) dst[a * ldd + k] = src[k * lds + a];
}
#endif
