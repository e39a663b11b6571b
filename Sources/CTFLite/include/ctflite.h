// A plain-C view of a .tflite file, for Swift. The file is mapped read-only
// and checked by the FlatBuffers Verifier before anything is read; every
// pointer handed out points into that mapping and lives as long as the model.
#ifndef MODELLENS_CTFLITE_H
#define MODELLENS_CTFLITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mltfl_model mltfl_model;

/// Maps and verifies `path`. NULL on failure, with a message in `err`.
mltfl_model *mltfl_open(const char *path, char *err, size_t errlen);
void mltfl_close(mltfl_model *model);

uint64_t mltfl_file_size(const mltfl_model *model);
/// Start of the read-only, private mapping of the file (mltfl_file_size bytes).
const void *mltfl_file_data(const mltfl_model *model);
uint32_t mltfl_version(const mltfl_model *model);
/// NUL-terminated, or NULL when absent.
const char *mltfl_description(const mltfl_model *model);

int32_t mltfl_opcode_count(const mltfl_model *model);
/// The real builtin code (the larger of the deprecated and the new field),
/// the custom code (NULL unless a custom op) and the op version.
int mltfl_opcode(const mltfl_model *model, int32_t index, int32_t *builtin,
                 const char **custom_code, int32_t *version);

int32_t mltfl_subgraph_count(const mltfl_model *model);
const char *mltfl_subgraph_name(const mltfl_model *model, int32_t subgraph);
/// Indices of the subgraph's inputs (which == 0) or outputs (which == 1).
int32_t mltfl_subgraph_io(const mltfl_model *model, int32_t subgraph, int which,
                          const int32_t **indices);

typedef struct mltfl_tensor {
  const char *name;
  int32_t type;                  // tflite::TensorType
  uint32_t buffer;
  const int32_t *shape;
  int32_t rank;                  // -1 when the file stores no shape
  const int32_t *signature;      // shape_signature: -1 marks a dynamic dimension
  int32_t signature_rank;        // -1 when absent
  int32_t is_variable;
  int32_t has_sparsity;
  const float *scale;
  int32_t scale_count;
  const int64_t *zero_point;
  int32_t zero_point_count;
  int32_t quantized_dimension;
} mltfl_tensor;

/// One dimension of a sparse tensor's storage (traversal order).
typedef struct mltfl_sparse_dim {
  int32_t format;          // 0 DENSE, 1 SPARSE_CSR
  int32_t dense_size;
  int32_t segments_type;   // 1 int32, 2 uint16, 3 uint8 (SparseIndexVector member), 0 none
  const void *segments;
  int32_t segments_count;
  int32_t indices_type;
  const void *indices;
  int32_t indices_count;
} mltfl_sparse_dim;

/// Sparsity of a tensor: traversal order, block map and per-dimension storage. Returns the
/// number of dimensions written (at most `capacity`), or -1 when the tensor is dense.
int32_t mltfl_tensor_sparsity(const mltfl_model *model, int32_t subgraph, int32_t tensor, const int32_t **traversal,
                              int32_t *traversal_count, const int32_t **block_map, int32_t *block_map_count,
                              mltfl_sparse_dim *dims, int32_t capacity);

int32_t mltfl_tensor_count(const mltfl_model *model, int32_t subgraph);
int mltfl_get_tensor(const mltfl_model *model, int32_t subgraph, int32_t tensor,
                     mltfl_tensor *out);

typedef struct mltfl_operator {
  uint32_t opcode_index;
  const int32_t *inputs;
  int32_t input_count;
  const int32_t *outputs;
  int32_t output_count;
  int32_t options_type;          // tflite::BuiltinOptions member, 0 = none
  const char *options_name;      // e.g. "Conv2DOptions", or NULL
  const uint8_t *custom_options;
  uint64_t custom_options_size;
} mltfl_operator;

int32_t mltfl_operator_count(const mltfl_model *model, int32_t subgraph);
int mltfl_get_operator(const mltfl_model *model, int32_t subgraph, int32_t op,
                       mltfl_operator *out);

/// One field of an operator's builtin options table.
typedef enum mltfl_attr_kind {
  MLTFL_ATTR_INT = 0,            // integer or enum (value in i, enum name in text)
  MLTFL_ATTR_FLOAT = 1,          // f
  MLTFL_ATTR_BOOL = 2,           // i = 0 or 1
  MLTFL_ATTR_INTS = 3,           // data -> int32_t[count]
  MLTFL_ATTR_FLOATS = 4,         // data -> float[count]
  MLTFL_ATTR_STRING = 5,         // text
  MLTFL_ATTR_OTHER = 6           // a nested table or other vector: named, not decoded
} mltfl_attr_kind;

typedef struct mltfl_attr {
  const char *name;
  int32_t kind;
  int64_t i;
  double f;
  const char *text;
  const void *data;
  int32_t count;
} mltfl_attr;

/// Writes up to `capacity` fields of the operator's builtin options that are
/// present in the file (absent fields take the schema default, which the
/// caller knows per op) and returns how many were present.
int32_t mltfl_operator_options(const mltfl_model *model, int32_t subgraph, int32_t op,
                               mltfl_attr *out, int32_t capacity);

/// Bytes of buffer `index` (inline, or at offset/size past the flatbuffer).
/// Returns 0 and sets data/size (size 0 for an empty buffer), or -1 with err
/// set when the buffer points outside the file.
int mltfl_buffer(const mltfl_model *model, uint32_t index, const uint8_t **data,
                 uint64_t *size, char *err, size_t errlen);
int32_t mltfl_buffer_count(const mltfl_model *model);

int32_t mltfl_metadata_count(const mltfl_model *model);
int mltfl_metadata(const mltfl_model *model, int32_t index, const char **name, uint32_t *buffer);

int32_t mltfl_signature_count(const mltfl_model *model);
const char *mltfl_signature_key(const mltfl_model *model, int32_t index);

/// Names from the schema: "CONV_2D", "FLOAT32". NULL or "" for unknown values.
const char *mltfl_builtin_name(int32_t code);
const char *mltfl_tensor_type_name(int32_t type);

#ifdef __cplusplus
}
#endif
#endif
