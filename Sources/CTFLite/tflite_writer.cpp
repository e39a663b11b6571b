// The builder of ctflite_writer.h over flatc's generated C++ (tflite_generated.h).
#include "ctflite_writer.h"

#include <cerrno>
#include <cstdio>
#include <cctype>
#include <cstring>
#include <strings.h>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "tflite_generated.h"

struct mltflw_builder {
  flatbuffers::FlatBufferBuilder fbb{1 << 20};
  std::vector<flatbuffers::Offset<tflite::Buffer>> buffers;
  std::vector<flatbuffers::Offset<tflite::OperatorCode>> opcodes;
  std::vector<std::pair<std::pair<int32_t, std::string>, int32_t>> opcode_keys;  // (builtin, custom), version
  std::vector<flatbuffers::Offset<tflite::Tensor>> tensors;
  std::vector<flatbuffers::Offset<tflite::Operator>> operators;
  std::vector<flatbuffers::Offset<tflite::SubGraph>> subgraphs;
};

namespace {

// The mini-reflection table of a BuiltinOptions member, found by name.
const flatbuffers::TypeTable *options_table(const char *name, uint8_t *type) {
  const flatbuffers::TypeTable *u = tflite::BuiltinOptionsTypeTable();
  for (size_t k = 1; k < u->num_elems; k++) {
    if (u->names && std::strcmp(u->names[k], name) == 0) {
      *type = static_cast<uint8_t>(k);
      return u->type_refs[u->type_codes[k].sequence_ref]();
    }
  }
  return nullptr;
}

int64_t enum_value(const flatbuffers::TypeTable *tt, const flatbuffers::TypeCode &tc, const mltfl_attr &a, bool *ok) {
  *ok = true;
  if (a.text == nullptr || tc.sequence_ref < 0 || tt->type_refs == nullptr) return a.i;
  const flatbuffers::TypeTable *et = tt->type_refs[tc.sequence_ref]();
  if (et->st != flatbuffers::ST_ENUM || et->names == nullptr) return a.i;
  for (size_t k = 0; k < et->num_elems; k++) {
    if (strcasecmp(et->names[k], a.text) == 0) return et->values ? et->values[k] : static_cast<int64_t>(k);
  }
  *ok = false;
  return 0;
}

}  // namespace

extern "C" {

mltflw_builder *mltflw_new(void) {
  auto *b = new mltflw_builder();
  b->buffers.push_back(tflite::CreateBuffer(b->fbb));
  return b;
}

void mltflw_free(mltflw_builder *b) { delete b; }

uint32_t mltflw_buffer(mltflw_builder *b, const void *data, uint64_t size) {
  if (size == 0) return 0;
  b->fbb.ForceVectorAlignment(size, 1, 16);
  auto v = b->fbb.CreateVector(static_cast<const uint8_t *>(data), size);
  b->buffers.push_back(tflite::CreateBuffer(b->fbb, v));
  return static_cast<uint32_t>(b->buffers.size() - 1);
}

int32_t mltflw_builtin_code(const char *name) {
  for (int32_t c = tflite::BuiltinOperator_MIN; c <= tflite::BuiltinOperator_MAX; c++) {
    const char *n = tflite::EnumNameBuiltinOperator(static_cast<tflite::BuiltinOperator>(c));
    if (n && n[0] && std::strcmp(n, name) == 0) return c;
  }
  return -1;
}

const char *mltflw_options_for(const char *builtin) {
  // Ops that share a table, or whose table is named otherwise.
  static const char *const shared[][2] = {
      {"AVERAGE_POOL_2D", "Pool2DOptions"}, {"MAX_POOL_2D", "Pool2DOptions"}, {"L2_POOL_2D", "Pool2DOptions"},
      {"MEAN", "ReducerOptions"}, {"SUM", "ReducerOptions"}, {"REDUCE_MAX", "ReducerOptions"},
      {"REDUCE_MIN", "ReducerOptions"}, {"REDUCE_PROD", "ReducerOptions"}, {"REDUCE_ANY", "ReducerOptions"},
      {"REDUCE_ALL", "ReducerOptions"}, {"LSTM", "LSTMOptions"}, {"SELECT", "SelectOptions"},
  };
  for (auto &e : shared)
    if (std::strcmp(e[0], builtin) == 0) return e[1];
  // Otherwise the member whose name, less "Options", matches the op's name
  // with underscores dropped, ignoring case ("DEPTHWISE_CONV_2D" -> "DepthwiseConv2DOptions").
  std::string want;
  for (const char *p = builtin; *p; p++)
    if (*p != '_') want += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
  want += "options";
  const flatbuffers::TypeTable *u = tflite::BuiltinOptionsTypeTable();
  for (size_t k = 1; k < u->num_elems; k++) {
    std::string have;
    for (const char *p = u->names[k]; *p; p++) have += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
    if (have == want) return u->names[k];
  }
  return nullptr;
}

int32_t mltflw_opcode(mltflw_builder *b, int32_t builtin, const char *custom_code, int32_t version) {
  std::string custom = custom_code ? custom_code : "";
  for (size_t i = 0; i < b->opcode_keys.size(); i++) {
    auto &k = b->opcode_keys[i];
    if (k.first.first == builtin && k.first.second == custom && k.second == version) return static_cast<int32_t>(i);
  }
  auto cc = custom_code ? b->fbb.CreateString(custom) : flatbuffers::Offset<flatbuffers::String>();
  tflite::OperatorCodeBuilder ob(b->fbb);
  ob.add_deprecated_builtin_code(static_cast<int8_t>(builtin < 127 ? builtin : 127));
  if (custom_code) ob.add_custom_code(cc);
  ob.add_version(version);
  ob.add_builtin_code(static_cast<tflite::BuiltinOperator>(builtin));
  b->opcodes.push_back(ob.Finish());
  b->opcode_keys.push_back({{builtin, custom}, version});
  return static_cast<int32_t>(b->opcodes.size() - 1);
}

int32_t mltflw_tensor(mltflw_builder *b, const char *name, int32_t type, const int32_t *shape, int32_t rank,
                      const int32_t *signature, int32_t signature_rank, uint32_t buffer, const float *scales,
                      int32_t n_scales, const int64_t *zero_points, int32_t n_zero_points, int32_t quantized_dimension) {
  auto &f = b->fbb;
  auto shp = f.CreateVector(shape, static_cast<size_t>(rank < 0 ? 0 : rank));
  flatbuffers::Offset<flatbuffers::Vector<int32_t>> sig;
  if (signature && signature_rank >= 0) sig = f.CreateVector(signature, static_cast<size_t>(signature_rank));
  auto nm = f.CreateString(name ? name : "");
  flatbuffers::Offset<tflite::QuantizationParameters> q;
  if (n_scales > 0) {
    auto sv = f.CreateVector(scales, static_cast<size_t>(n_scales));
    auto zv = f.CreateVector(zero_points, static_cast<size_t>(n_zero_points));
    tflite::QuantizationParametersBuilder qb(f);
    qb.add_scale(sv);
    qb.add_zero_point(zv);
    qb.add_quantized_dimension(quantized_dimension);
    q = qb.Finish();
  }
  tflite::TensorBuilder tb(f);
  tb.add_shape(shp);
  tb.add_type(static_cast<tflite::TensorType>(type));
  tb.add_buffer(buffer);
  tb.add_name(nm);
  if (n_scales > 0) tb.add_quantization(q);
  if (!sig.IsNull()) tb.add_shape_signature(sig);
  b->tensors.push_back(tb.Finish());
  return static_cast<int32_t>(b->tensors.size() - 1);
}

int mltflw_operator(mltflw_builder *b, int32_t opcode_index, const int32_t *inputs, int32_t n_inputs,
                    const int32_t *outputs, int32_t n_outputs, const char *options_name, const mltfl_attr *attrs,
                    int32_t n_attrs, const uint8_t *custom_options, uint64_t custom_options_size, char *err,
                    size_t errlen) {
  auto &f = b->fbb;
  uint8_t options_type = 0;
  flatbuffers::Offset<void> options;
  if (options_name != nullptr && options_name[0] != 0) {
    const flatbuffers::TypeTable *tt = options_table(options_name, &options_type);
    if (tt == nullptr) {
      snprintf(err, errlen, "'%s' is not a member of BuiltinOptions", options_name);
      return -1;
    }
    // Field index of each attribute (or -1), and the vectors/strings, which must precede the table.
    std::vector<int> field(static_cast<size_t>(n_attrs), -1);
    std::vector<flatbuffers::Offset<void>> refs(static_cast<size_t>(n_attrs));
    for (int32_t k = 0; k < n_attrs; k++) {
      for (size_t i = 0; i < tt->num_elems; i++) {
        if (tt->names && std::strcmp(tt->names[i], attrs[k].name) == 0) { field[k] = static_cast<int>(i); break; }
      }
      if (field[k] < 0) continue;
      const flatbuffers::TypeCode &tc = tt->type_codes[field[k]];
      auto et = static_cast<flatbuffers::ElementaryType>(tc.base_type);
      const mltfl_attr &a = attrs[k];
      if (tc.is_repeating) {
        if (et == flatbuffers::ET_INT && a.kind == MLTFL_ATTR_INTS)
          refs[k] = f.CreateVector(static_cast<const int32_t *>(a.data), static_cast<size_t>(a.count)).Union();
        else if (et == flatbuffers::ET_FLOAT && a.kind == MLTFL_ATTR_FLOATS)
          refs[k] = f.CreateVector(static_cast<const float *>(a.data), static_cast<size_t>(a.count)).Union();
        else field[k] = -1;
      } else if (et == flatbuffers::ET_STRING) {
        refs[k] = f.CreateString(a.text ? a.text : "").Union();
      } else if (et == flatbuffers::ET_SEQUENCE || et == flatbuffers::ET_UTYPE) {
        field[k] = -1;
      }
    }
    f.ForceDefaults(true);
    auto start = f.StartTable();
    for (int32_t k = 0; k < n_attrs; k++) {
      if (field[k] < 0) continue;
      auto vo = static_cast<flatbuffers::voffset_t>(flatbuffers::FieldIndexToOffset(static_cast<flatbuffers::voffset_t>(field[k])));
      const flatbuffers::TypeCode &tc = tt->type_codes[field[k]];
      auto et = static_cast<flatbuffers::ElementaryType>(tc.base_type);
      if (!refs[k].IsNull()) { f.AddOffset(vo, refs[k]); continue; }
      const mltfl_attr &a = attrs[k];
      bool ok = true;
      int64_t v = enum_value(tt, tc, a, &ok);
      if (!ok) {
        f.ForceDefaults(false);
        snprintf(err, errlen, "%s.%s has no value named '%s'", options_name, a.name, a.text);
        return -1;
      }
      double d = a.kind == MLTFL_ATTR_FLOAT ? a.f : static_cast<double>(v);
      switch (et) {
        case flatbuffers::ET_BOOL: case flatbuffers::ET_UCHAR: f.AddElement<uint8_t>(vo, static_cast<uint8_t>(v), 0); break;
        case flatbuffers::ET_CHAR: f.AddElement<int8_t>(vo, static_cast<int8_t>(v), 0); break;
        case flatbuffers::ET_SHORT: f.AddElement<int16_t>(vo, static_cast<int16_t>(v), 0); break;
        case flatbuffers::ET_USHORT: f.AddElement<uint16_t>(vo, static_cast<uint16_t>(v), 0); break;
        case flatbuffers::ET_INT: f.AddElement<int32_t>(vo, static_cast<int32_t>(v), 0); break;
        case flatbuffers::ET_UINT: f.AddElement<uint32_t>(vo, static_cast<uint32_t>(v), 0); break;
        case flatbuffers::ET_LONG: f.AddElement<int64_t>(vo, v, 0); break;
        case flatbuffers::ET_ULONG: f.AddElement<uint64_t>(vo, static_cast<uint64_t>(v), 0); break;
        case flatbuffers::ET_FLOAT: f.AddElement<float>(vo, static_cast<float>(d), 0); break;
        case flatbuffers::ET_DOUBLE: f.AddElement<double>(vo, d, 0); break;
        default: break;
      }
    }
    options = flatbuffers::Offset<void>(f.EndTable(start));
    f.ForceDefaults(false);
  }
  auto in = f.CreateVector(inputs, static_cast<size_t>(n_inputs));
  auto out = f.CreateVector(outputs, static_cast<size_t>(n_outputs));
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> custom;
  if (custom_options && custom_options_size > 0) custom = f.CreateVector(custom_options, custom_options_size);
  tflite::OperatorBuilder ob(f);
  ob.add_opcode_index(static_cast<uint32_t>(opcode_index));
  ob.add_inputs(in);
  ob.add_outputs(out);
  if (options_type != 0) {
    ob.add_builtin_options_type(static_cast<tflite::BuiltinOptions>(options_type));
    ob.add_builtin_options(options);
  }
  if (!custom.IsNull()) ob.add_custom_options(custom);
  b->operators.push_back(ob.Finish());
  return 0;
}

void mltflw_subgraph(mltflw_builder *b, const char *name, const int32_t *inputs, int32_t n_inputs,
                     const int32_t *outputs, int32_t n_outputs) {
  auto &f = b->fbb;
  auto t = f.CreateVector(b->tensors);
  auto in = f.CreateVector(inputs, static_cast<size_t>(n_inputs));
  auto out = f.CreateVector(outputs, static_cast<size_t>(n_outputs));
  auto ops = f.CreateVector(b->operators);
  auto nm = f.CreateString(name ? name : "");
  tflite::SubGraphBuilder sb(f);
  sb.add_tensors(t);
  sb.add_inputs(in);
  sb.add_outputs(out);
  sb.add_operators(ops);
  sb.add_name(nm);
  b->subgraphs.push_back(sb.Finish());
  b->tensors.clear();
  b->operators.clear();
}

int mltflw_finish(mltflw_builder *b, const char *description, const char *path, char *err, size_t errlen) {
  auto &f = b->fbb;
  auto codes = f.CreateVector(b->opcodes);
  auto subs = f.CreateVector(b->subgraphs);
  auto desc = f.CreateString(description ? description : "");
  auto bufs = f.CreateVector(b->buffers);
  tflite::ModelBuilder mb(f);
  mb.add_version(3);
  mb.add_operator_codes(codes);
  mb.add_subgraphs(subs);
  mb.add_description(desc);
  mb.add_buffers(bufs);
  tflite::FinishModelBuffer(f, mb.Finish());
  std::string tmp = std::string(path) + ".tmp-" + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create %s: %s", tmp.c_str(), strerror(errno));
    return -1;
  }
  const uint8_t *p = f.GetBufferPointer();
  size_t size = f.GetSize(), done = 0;
  while (done < size) {
    ssize_t n = write(fd, p + done, size - done);
    if (n <= 0) {
      snprintf(err, errlen, "cannot write %s: %s", tmp.c_str(), strerror(errno));
      close(fd);
      unlink(tmp.c_str());
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0 || rename(tmp.c_str(), path) != 0) {
    snprintf(err, errlen, "cannot move %s into place: %s", tmp.c_str(), strerror(errno));
    unlink(tmp.c_str());
    return -1;
  }
  return 0;
}

}  // extern "C"
