// The C API of ctflite.h over the flatc-generated C++ accessors.
#include "ctflite.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tflite_generated.h"

struct mltfl_model {
  const uint8_t *bytes = nullptr;
  size_t size = 0;
  const tflite::Model *model = nullptr;
};

namespace {

const tflite::SubGraph *subgraph_at(const mltfl_model *m, int32_t s) {
  auto *subgraphs = m->model->subgraphs();
  if (subgraphs == nullptr || s < 0 || static_cast<uint32_t>(s) >= subgraphs->size()) return nullptr;
  return subgraphs->Get(static_cast<uint32_t>(s));
}

template <typename T>
int32_t vec_count(const flatbuffers::Vector<T> *v) {
  return v == nullptr ? 0 : static_cast<int32_t>(v->size());
}

}  // namespace

extern "C" {

mltfl_model *mltfl_open(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "not a regular file");
    close(fd);
    return nullptr;
  }
  if (st.st_size == 0) {
    snprintf(err, errlen, "file is empty");
    close(fd);
    return nullptr;
  }
  if (st.st_size < 8) {
    snprintf(err, errlen, "file is too short for a TFLite flatbuffer (%lld bytes)", (long long)st.st_size);
    close(fd);
    return nullptr;
  }
  void *p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    snprintf(err, errlen, "cannot map: %s", strerror(errno));
    return nullptr;
  }
  auto *bytes = static_cast<const uint8_t *>(p);
  size_t size = static_cast<size_t>(st.st_size);
  if (!flatbuffers::BufferHasIdentifier(bytes, tflite::ModelIdentifier())) {
    snprintf(err, errlen, "not a TFLite model (no \"TFL3\" file identifier at byte 4)");
    munmap(p, size);
    return nullptr;
  }
  // Models over 2 GB keep buffers after the flatbuffer; the verifier only
  // needs (and only accepts) the flatbuffer part, which is below 2 GB.
  size_t verify_size = size < FLATBUFFERS_MAX_BUFFER_SIZE ? size : FLATBUFFERS_MAX_BUFFER_SIZE - 1;
  flatbuffers::Verifier verifier(bytes, verify_size, /*max_depth=*/64, /*max_tables=*/10000000);
  if (!tflite::VerifyModelBuffer(verifier)) {
    snprintf(err, errlen, "corrupt TFLite flatbuffer (the FlatBuffers verifier rejected it)");
    munmap(p, size);
    return nullptr;
  }
  auto *m = new mltfl_model;
  m->bytes = bytes;
  m->size = size;
  m->model = tflite::GetModel(bytes);
  return m;
}

void mltfl_close(mltfl_model *m) {
  if (m == nullptr) return;
  munmap(const_cast<uint8_t *>(m->bytes), m->size);
  delete m;
}

uint64_t mltfl_file_size(const mltfl_model *m) { return m->size; }
const void *mltfl_file_data(const mltfl_model *m) { return m->bytes; }
uint32_t mltfl_version(const mltfl_model *m) { return m->model->version(); }
const char *mltfl_description(const mltfl_model *m) {
  return m->model->description() ? m->model->description()->c_str() : nullptr;
}

int32_t mltfl_opcode_count(const mltfl_model *m) { return vec_count(m->model->operator_codes()); }

int mltfl_opcode(const mltfl_model *m, int32_t index, int32_t *builtin, const char **custom_code,
                 int32_t *version) {
  auto *codes = m->model->operator_codes();
  if (codes == nullptr || index < 0 || static_cast<uint32_t>(index) >= codes->size()) return -1;
  auto *code = codes->Get(static_cast<uint32_t>(index));
  int32_t deprecated = code->deprecated_builtin_code();
  int32_t current = static_cast<int32_t>(code->builtin_code());
  *builtin = deprecated > current ? deprecated : current;
  *custom_code = code->custom_code() ? code->custom_code()->c_str() : nullptr;
  *version = code->version();
  return 0;
}

int32_t mltfl_subgraph_count(const mltfl_model *m) { return vec_count(m->model->subgraphs()); }

const char *mltfl_subgraph_name(const mltfl_model *m, int32_t s) {
  auto *g = subgraph_at(m, s);
  return g && g->name() ? g->name()->c_str() : nullptr;
}

int32_t mltfl_subgraph_io(const mltfl_model *m, int32_t s, int which, const int32_t **indices) {
  auto *g = subgraph_at(m, s);
  *indices = nullptr;
  if (g == nullptr) return 0;
  auto *v = which == 0 ? g->inputs() : g->outputs();
  if (v == nullptr) return 0;
  *indices = v->data();
  return static_cast<int32_t>(v->size());
}

int32_t mltfl_tensor_count(const mltfl_model *m, int32_t s) {
  auto *g = subgraph_at(m, s);
  return g ? vec_count(g->tensors()) : 0;
}

int mltfl_get_tensor(const mltfl_model *m, int32_t s, int32_t t, mltfl_tensor *out) {
  auto *g = subgraph_at(m, s);
  if (g == nullptr || g->tensors() == nullptr || t < 0 || static_cast<uint32_t>(t) >= g->tensors()->size())
    return -1;
  auto *tensor = g->tensors()->Get(static_cast<uint32_t>(t));
  std::memset(out, 0, sizeof(*out));
  out->name = tensor->name() ? tensor->name()->c_str() : "";
  out->type = tensor->type();
  out->buffer = tensor->buffer();
  out->shape = tensor->shape() ? tensor->shape()->data() : nullptr;
  out->rank = tensor->shape() ? static_cast<int32_t>(tensor->shape()->size()) : -1;
  out->signature = tensor->shape_signature() ? tensor->shape_signature()->data() : nullptr;
  out->signature_rank = tensor->shape_signature() ? static_cast<int32_t>(tensor->shape_signature()->size()) : -1;
  out->is_variable = tensor->is_variable();
  out->has_sparsity = tensor->sparsity() != nullptr;
  if (auto *q = tensor->quantization()) {
    if (q->scale()) { out->scale = q->scale()->data(); out->scale_count = static_cast<int32_t>(q->scale()->size()); }
    if (q->zero_point()) {
      out->zero_point = q->zero_point()->data();
      out->zero_point_count = static_cast<int32_t>(q->zero_point()->size());
    }
    out->quantized_dimension = q->quantized_dimension();
  }
  return 0;
}

static void sparse_vector(tflite::SparseIndexVector type, const void *v, int32_t *out_type, const void **data, int32_t *count) {
  *out_type = static_cast<int32_t>(type);
  *data = nullptr;
  *count = 0;
  if (v == nullptr) return;
  switch (type) {
    case tflite::SparseIndexVector_Int32Vector: {
      auto *x = static_cast<const tflite::Int32Vector *>(v)->values();
      if (x) { *data = x->data(); *count = static_cast<int32_t>(x->size()); }
      break;
    }
    case tflite::SparseIndexVector_Uint16Vector: {
      auto *x = static_cast<const tflite::Uint16Vector *>(v)->values();
      if (x) { *data = x->data(); *count = static_cast<int32_t>(x->size()); }
      break;
    }
    case tflite::SparseIndexVector_Uint8Vector: {
      auto *x = static_cast<const tflite::Uint8Vector *>(v)->values();
      if (x) { *data = x->data(); *count = static_cast<int32_t>(x->size()); }
      break;
    }
    default: break;
  }
}

int32_t mltfl_tensor_sparsity(const mltfl_model *m, int32_t s, int32_t t, const int32_t **traversal, int32_t *traversal_count,
                              const int32_t **block_map, int32_t *block_map_count, mltfl_sparse_dim *dims, int32_t capacity) {
  auto *g = subgraph_at(m, s);
  *traversal = nullptr; *traversal_count = 0; *block_map = nullptr; *block_map_count = 0;
  if (g == nullptr || g->tensors() == nullptr || t < 0 || static_cast<uint32_t>(t) >= g->tensors()->size()) return -1;
  auto *sp = g->tensors()->Get(static_cast<uint32_t>(t))->sparsity();
  if (sp == nullptr) return -1;
  if (sp->traversal_order()) { *traversal = sp->traversal_order()->data(); *traversal_count = static_cast<int32_t>(sp->traversal_order()->size()); }
  if (sp->block_map()) { *block_map = sp->block_map()->data(); *block_map_count = static_cast<int32_t>(sp->block_map()->size()); }
  int32_t n = 0;
  if (auto *dm = sp->dim_metadata()) {
    for (uint32_t i = 0; i < dm->size() && n < capacity; i++) {
      auto *d = dm->Get(i);
      mltfl_sparse_dim out;
      std::memset(&out, 0, sizeof(out));
      out.format = d->format();
      out.dense_size = d->dense_size();
      sparse_vector(d->array_segments_type(), d->array_segments(), &out.segments_type, &out.segments, &out.segments_count);
      sparse_vector(d->array_indices_type(), d->array_indices(), &out.indices_type, &out.indices, &out.indices_count);
      dims[n++] = out;
    }
  }
  return n;
}

int32_t mltfl_operator_count(const mltfl_model *m, int32_t s) {
  auto *g = subgraph_at(m, s);
  return g ? vec_count(g->operators()) : 0;
}

static const tflite::Operator *operator_at(const mltfl_model *m, int32_t s, int32_t o) {
  auto *g = subgraph_at(m, s);
  if (g == nullptr || g->operators() == nullptr || o < 0 || static_cast<uint32_t>(o) >= g->operators()->size())
    return nullptr;
  return g->operators()->Get(static_cast<uint32_t>(o));
}

int mltfl_get_operator(const mltfl_model *m, int32_t s, int32_t o, mltfl_operator *out) {
  auto *op = operator_at(m, s, o);
  if (op == nullptr) return -1;
  std::memset(out, 0, sizeof(*out));
  out->opcode_index = op->opcode_index();
  if (op->inputs()) { out->inputs = op->inputs()->data(); out->input_count = static_cast<int32_t>(op->inputs()->size()); }
  if (op->outputs()) { out->outputs = op->outputs()->data(); out->output_count = static_cast<int32_t>(op->outputs()->size()); }
  out->options_type = static_cast<int32_t>(op->builtin_options_type());
  if (out->options_type > 0 && out->options_type <= static_cast<int32_t>(tflite::BuiltinOptions_MAX))
    out->options_name = tflite::EnumNameBuiltinOptions(op->builtin_options_type());
  if (op->custom_options()) {
    out->custom_options = op->custom_options()->data();
    out->custom_options_size = op->custom_options()->size();
  } else if (op->large_custom_options_offset() > 1) {
    uint64_t off = op->large_custom_options_offset(), len = op->large_custom_options_size();
    if (off <= m->size && len <= m->size - off) {
      out->custom_options = m->bytes + off;
      out->custom_options_size = len;
    }
  }
  return 0;
}

int32_t mltfl_operator_options(const mltfl_model *m, int32_t s, int32_t o, mltfl_attr *out, int32_t capacity) {
  auto *op = operator_at(m, s, o);
  if (op == nullptr) return 0;
  auto type = op->builtin_options_type();
  auto *table = static_cast<const flatbuffers::Table *>(op->builtin_options());
  if (type == tflite::BuiltinOptions_NONE || table == nullptr || type > tflite::BuiltinOptions_MAX) return 0;
  // Mini-reflection of the union gives the options table's field list, in id order.
  const flatbuffers::TypeTable *union_table = tflite::BuiltinOptionsTypeTable();
  const flatbuffers::TypeTable *tt = union_table->type_refs[union_table->type_codes[type].sequence_ref]();
  int32_t n = 0;
  for (size_t i = 0; i < tt->num_elems && n < capacity; i++) {
    auto voffset = static_cast<flatbuffers::voffset_t>(flatbuffers::FieldIndexToOffset(static_cast<flatbuffers::voffset_t>(i)));
    if (!table->CheckField(voffset)) continue;
    flatbuffers::TypeCode tc = tt->type_codes[i];
    mltfl_attr a;
    std::memset(&a, 0, sizeof(a));
    a.name = tt->names ? tt->names[i] : "";
    auto et = static_cast<flatbuffers::ElementaryType>(tc.base_type);
    if (tc.is_repeating) {
      auto *vec = table->GetPointer<const flatbuffers::Vector<uint8_t> *>(voffset);
      a.count = vec ? static_cast<int32_t>(vec->size()) : 0;
      a.data = vec ? vec->Data() : nullptr;
      a.kind = et == flatbuffers::ET_INT ? MLTFL_ATTR_INTS : et == flatbuffers::ET_FLOAT ? MLTFL_ATTR_FLOATS : MLTFL_ATTR_OTHER;
    } else {
      switch (et) {
        case flatbuffers::ET_BOOL: a.kind = MLTFL_ATTR_BOOL; a.i = table->GetField<uint8_t>(voffset, 0); break;
        case flatbuffers::ET_CHAR: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<int8_t>(voffset, 0); break;
        case flatbuffers::ET_UCHAR: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<uint8_t>(voffset, 0); break;
        case flatbuffers::ET_SHORT: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<int16_t>(voffset, 0); break;
        case flatbuffers::ET_USHORT: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<uint16_t>(voffset, 0); break;
        case flatbuffers::ET_INT: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<int32_t>(voffset, 0); break;
        case flatbuffers::ET_UINT: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<uint32_t>(voffset, 0); break;
        case flatbuffers::ET_LONG: a.kind = MLTFL_ATTR_INT; a.i = table->GetField<int64_t>(voffset, 0); break;
        case flatbuffers::ET_ULONG: a.kind = MLTFL_ATTR_INT; a.i = static_cast<int64_t>(table->GetField<uint64_t>(voffset, 0)); break;
        case flatbuffers::ET_FLOAT: a.kind = MLTFL_ATTR_FLOAT; a.f = table->GetField<float>(voffset, 0); break;
        case flatbuffers::ET_DOUBLE: a.kind = MLTFL_ATTR_FLOAT; a.f = table->GetField<double>(voffset, 0); break;
        case flatbuffers::ET_STRING: {
          auto *str = table->GetPointer<const flatbuffers::String *>(voffset);
          a.kind = MLTFL_ATTR_STRING;
          a.text = str ? str->c_str() : "";
          break;
        }
        default: a.kind = MLTFL_ATTR_OTHER; break;
      }
      // Enum-typed fields: give the value's name too (e.g. padding "SAME").
      if (a.kind == MLTFL_ATTR_INT && tc.sequence_ref >= 0 && tt->type_refs != nullptr) {
        const flatbuffers::TypeTable *et_table = tt->type_refs[tc.sequence_ref]();
        if (et_table->st == flatbuffers::ST_ENUM && et_table->names != nullptr) {
          for (size_t k = 0; k < et_table->num_elems; k++) {
            int64_t v = et_table->values ? et_table->values[k] : static_cast<int64_t>(k);
            if (v == a.i) { a.text = et_table->names[k]; break; }
          }
        }
      }
    }
    out[n++] = a;
  }
  return n;
}

int32_t mltfl_buffer_count(const mltfl_model *m) { return vec_count(m->model->buffers()); }

int mltfl_buffer(const mltfl_model *m, uint32_t index, const uint8_t **data, uint64_t *size, char *err,
                 size_t errlen) {
  *data = nullptr;
  *size = 0;
  auto *buffers = m->model->buffers();
  if (buffers == nullptr || index >= buffers->size()) {
    snprintf(err, errlen, "buffer index %u is out of range (the model has %u buffers)", index,
             buffers ? buffers->size() : 0u);
    return -1;
  }
  auto *b = buffers->Get(index);
  if (b->data() != nullptr && b->data()->size() > 0) {
    *data = b->data()->data();
    *size = b->data()->size();
    return 0;
  }
  // offset 0 and 1 both mean "unset" in the format.
  if (b->offset() > 1) {
    uint64_t off = b->offset(), len = b->size();
    if (off > m->size || len > m->size - off) {
      snprintf(err, errlen, "buffer %u lies outside the file (offset %llu, size %llu, file is %llu bytes)", index,
               (unsigned long long)off, (unsigned long long)len, (unsigned long long)m->size);
      return -1;
    }
    *data = m->bytes + off;
    *size = len;
  }
  return 0;
}

int32_t mltfl_metadata_count(const mltfl_model *m) { return vec_count(m->model->metadata()); }

int mltfl_metadata(const mltfl_model *m, int32_t index, const char **name, uint32_t *buffer) {
  auto *md = m->model->metadata();
  if (md == nullptr || index < 0 || static_cast<uint32_t>(index) >= md->size()) return -1;
  auto *e = md->Get(static_cast<uint32_t>(index));
  *name = e->name() ? e->name()->c_str() : "";
  *buffer = e->buffer();
  return 0;
}

int32_t mltfl_signature_count(const mltfl_model *m) { return vec_count(m->model->signature_defs()); }

const char *mltfl_signature_key(const mltfl_model *m, int32_t index) {
  auto *sd = m->model->signature_defs();
  if (sd == nullptr || index < 0 || static_cast<uint32_t>(index) >= sd->size()) return nullptr;
  auto *key = sd->Get(static_cast<uint32_t>(index))->signature_key();
  return key ? key->c_str() : "";
}

const char *mltfl_builtin_name(int32_t code) {
  if (code < tflite::BuiltinOperator_MIN || code > tflite::BuiltinOperator_MAX) return nullptr;
  return tflite::EnumNameBuiltinOperator(static_cast<tflite::BuiltinOperator>(code));
}

const char *mltfl_tensor_type_name(int32_t type) {
  if (type < tflite::TensorType_MIN || type > tflite::TensorType_MAX) return nullptr;
  return tflite::EnumNameTensorType(static_cast<tflite::TensorType>(type));
}

}  // extern "C"
