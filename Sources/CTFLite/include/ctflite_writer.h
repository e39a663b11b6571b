// Building a .tflite file from C/Swift: buffers, operator codes, tensors and
// operators are added one by one (flatbuffers are built bottom-up), subgraphs
// close over what was added since the last one, and finish writes the file.
#ifndef MODELLENS_CTFLITE_WRITER_H
#define MODELLENS_CTFLITE_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "ctflite.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mltflw_builder mltflw_builder;

mltflw_builder *mltflw_new(void);
void mltflw_free(mltflw_builder *b);

/// Adds a buffer holding a copy of `size` bytes, aligned to 16 bytes; returns its index.
/// Index 0 is the empty buffer every model starts with; size 0 returns 0.
uint32_t mltflw_buffer(mltflw_builder *b, const void *data, uint64_t size);

/// The index of an operator code, added on first use. Both the deprecated (int8)
/// and the new (int32) builtin code fields are set, as TFLite expects.
int32_t mltflw_opcode(mltflw_builder *b, int32_t builtin, const char *custom_code, int32_t version);

/// Adds a tensor to the open subgraph and returns its index there. `signature`
/// may be NULL; scales/zero points with n_scales > 0 give affine quantization
/// (per-axis along quantized_dimension when there are several).
int32_t mltflw_tensor(mltflw_builder *b, const char *name, int32_t type, const int32_t *shape, int32_t rank,
                      const int32_t *signature, int32_t signature_rank, uint32_t buffer, const float *scales,
                      int32_t n_scales, const int64_t *zero_points, int32_t n_zero_points, int32_t quantized_dimension);

/// Adds an operator to the open subgraph. `options_name` names the BuiltinOptions
/// member ("Conv2DOptions") or is NULL; each attribute whose name is a field of
/// that table is written (kind as in mltfl_attr; enums may be given by name in
/// `text`), others are ignored. Returns 0, or -1 with `err` set.
int mltflw_operator(mltflw_builder *b, int32_t opcode_index, const int32_t *inputs, int32_t n_inputs,
                    const int32_t *outputs, int32_t n_outputs, const char *options_name, const mltfl_attr *attrs,
                    int32_t n_attrs, const uint8_t *custom_options, uint64_t custom_options_size, char *err,
                    size_t errlen);

/// Closes the open subgraph with its inputs and outputs (tensor indices).
void mltflw_subgraph(mltflw_builder *b, const char *name, const int32_t *inputs, int32_t n_inputs,
                     const int32_t *outputs, int32_t n_outputs);

/// The builtin operator code of a name ("CONV_2D"), or -1.
int32_t mltflw_builtin_code(const char *name);

/// The BuiltinOptions member a builtin operator takes ("Conv2DOptions" for
/// "CONV_2D", "Pool2DOptions" for "MAX_POOL_2D"), or NULL when it takes none.
const char *mltflw_options_for(const char *builtin);

/// Finishes the model and writes it to `path` through a temporary file renamed
/// into place. Returns 0, or -1 with `err` set (nothing is left at `path`).
int mltflw_finish(mltflw_builder *b, const char *description, const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
