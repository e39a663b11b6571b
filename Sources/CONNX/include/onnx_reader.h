// Reading .onnx files with protobuf-c: file -> ModelProto, plus read-only
// mappings of external-data files.
#ifndef MODELLENS_ONNX_READER_H
#define MODELLENS_ONNX_READER_H

#include <stddef.h>
#include <stdint.h>
#include "onnx.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Decodes the ONNX model in `path`. The file is mapped read-only, decoded,
/// and unmapped again, so the only copy left afterwards is protobuf-c's.
/// Returns NULL on failure with a message in `err` (never longer than errlen).
Onnx__ModelProto *ml_onnx_load(const char *path, char *err, size_t errlen);

/// Decodes an ONNX model from memory (used by tests and for embedded models).
Onnx__ModelProto *ml_onnx_decode(const uint8_t *data, size_t size, char *err, size_t errlen);

/// Frees a model returned by ml_onnx_load / ml_onnx_decode.
void ml_onnx_free(Onnx__ModelProto *model);

/// A read-only mapping of a whole file.
typedef struct ml_mapping {
  const uint8_t *data;
  size_t size;
} ml_mapping;

/// Maps `path` read-only. Returns 0 on success, otherwise -1 with `err` set.
/// An empty file yields data == NULL, size == 0.
int ml_map_file(const char *path, ml_mapping *out, char *err, size_t errlen);
void ml_unmap_file(ml_mapping *mapping);

/// As ml_onnx_load, but the raw_data of the graph's large initializers (4 KB and up) is not
/// copied: it points into the file's mapping, which is returned in `mapping` (data == NULL when
/// nothing was borrowed and the file was unmapped) and must outlive the model. Free such a
/// model with ml_onnx_free_mapped, then unmap.
Onnx__ModelProto *ml_onnx_load_mapped(const char *path, ml_mapping *mapping, char *err, size_t errlen);

/// Frees a model from ml_onnx_load_mapped: bytes that point into `mapping` are left alone (the
/// caller unmaps afterwards), the rest is freed as ml_onnx_free does.
void ml_onnx_free_mapped(Onnx__ModelProto *model, const ml_mapping *mapping);

#ifdef __cplusplus
}
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif
/// Serialises `model` to `path` through a temporary file renamed into place when
/// complete. Returns 0, or -1 with `err` set (nothing is left at `path` then).
int ml_onnx_save(const Onnx__ModelProto *model, const char *path, char *err, size_t errlen);

/// Drops a graph's value_info entries (intermediate shapes that a rewrite made stale).
void ml_onnx_clear_value_info(Onnx__GraphProto *graph);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/// Decodes a serialised TensorProto file (the ONNX backend tests' input_N.pb / output_N.pb).
Onnx__TensorProto *ml_onnx_load_tensor(const char *path, char *err, size_t errlen);
void ml_onnx_free_tensor(Onnx__TensorProto *tensor);
#ifdef __cplusplus
}
#endif
