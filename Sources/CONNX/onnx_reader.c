#include "onnx_reader.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ml_map_file(const char *path, ml_mapping *out, char *err, size_t errlen) {
  out->data = NULL;
  out->size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, errlen, "cannot stat: %s", strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "not a regular file");
    close(fd);
    return -1;
  }
  if (st.st_size == 0) {
    close(fd);
    return 0;
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    snprintf(err, errlen, "cannot map: %s", strerror(errno));
    return -1;
  }
  out->data = (const uint8_t *)p;
  out->size = (size_t)st.st_size;
  return 0;
}

void ml_unmap_file(ml_mapping *mapping) {
  if (mapping->data != NULL) munmap((void *)mapping->data, mapping->size);
  mapping->data = NULL;
  mapping->size = 0;
}

// --- nesting check ----------------------------------------------------------------------
// protobuf-c unpacks nested messages recursively with no depth limit, so a crafted file of a few
// MB nesting graphs (Graph > Node > Attribute > Graph > ...) 100,000 deep overflows the stack.
// Before unpacking, walk the message fields that can nest (and only those), with a bounded
// recursion of our own.
enum { K_MODEL, K_GRAPH, K_NODE, K_ATTR, K_VALUEINFO, K_TYPE, K_TYPE_INNER1, K_TYPE_INNER2, K_FUNCTION, K_TRAINING };
#define ML_MAX_NESTING 256

static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out);
static int skip_value(const uint8_t *p, size_t n, size_t *pos, int wire, size_t *len_out);

// The kind of message field `field` holds inside a message of kind `kind`, or -1.
static int child_kind(int kind, int field) {
  switch (kind) {
    case K_MODEL: return field == 7 ? K_GRAPH : field == 20 ? K_TRAINING : field == 25 ? K_FUNCTION : -1;
    case K_TRAINING: return field == 1 || field == 2 ? K_GRAPH : -1;
    case K_FUNCTION: return field == 7 ? K_NODE : field == 11 ? K_ATTR : field == 12 ? K_VALUEINFO : -1;
    case K_GRAPH: return field == 1 ? K_NODE : (field == 11 || field == 12 || field == 13) ? K_VALUEINFO : -1;
    case K_NODE: return field == 5 ? K_ATTR : -1;
    case K_ATTR: return field == 6 || field == 11 ? K_GRAPH : field == 14 || field == 15 ? K_TYPE : -1;
    case K_VALUEINFO: return field == 2 ? K_TYPE : -1;
    case K_TYPE: return field == 4 || field == 9 ? K_TYPE_INNER1 : field == 5 ? K_TYPE_INNER2 : -1;
    case K_TYPE_INNER1: return field == 1 ? K_TYPE : -1;   // Sequence / Optional elem_type
    case K_TYPE_INNER2: return field == 2 ? K_TYPE : -1;   // Map value_type
    default: return -1;
  }
}

// 0 when the nesting stays within ML_MAX_NESTING, 1 when deeper; malformed framing returns 0
// (protobuf-c reports it).
static int too_deep(const uint8_t *p, size_t n, int kind, int depth) {
  if (depth > ML_MAX_NESTING) return 1;
  size_t pos = 0;
  while (pos < n) {
    uint64_t key;
    if (read_varint(p, n, &pos, &key) != 0) return 0;
    int field = (int)(key >> 3), wire = (int)(key & 7);
    size_t len = 0;
    if (skip_value(p, n, &pos, wire, &len) != 0) return 0;
    if (wire == 2) {
      int child = child_kind(kind, field);
      if (child >= 0 && too_deep(p + pos - len, len, child, depth + 1)) return 1;
    }
  }
  return 0;
}

Onnx__ModelProto *ml_onnx_decode(const uint8_t *data, size_t size, char *err, size_t errlen) {
  if (size == 0) {
    snprintf(err, errlen, "file is empty");
    return NULL;
  }
  if (too_deep(data, size, K_MODEL, 0)) {
    snprintf(err, errlen, "messages nest more than %d levels deep (graphs inside graphs); refusing to decode", ML_MAX_NESTING);
    return NULL;
  }
  Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, size, data);
  if (model == NULL) {
    snprintf(err, errlen, "not a valid ONNX protobuf (%zu bytes could not be decoded as a ModelProto)", size);
    return NULL;
  }
  return model;
}

// --- streaming decode -------------------------------------------------------------------
// protobuf-c copies every bytes field, so decoding a mapped file whole holds the mapping and
// the copy at once (2x the file). Instead: walk the top level of the ModelProto and of its
// GraphProto by hand, decode the graph without its initializers (small), then decode the
// initializers one by one from the mapping and drop each mapped range once copied
// (MADV_DONTNEED on a read-only private file mapping just releases clean pages).

static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= n) return -1;
    uint8_t b = p[(*pos)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) { *out = v; return 0; }
  }
  return -1;
}

// Skips one field's value; returns 0, or -1 on malformed input or unsupported wire types.
static int skip_value(const uint8_t *p, size_t n, size_t *pos, int wire, size_t *len_out) {
  uint64_t v;
  switch (wire) {
    case 0: return read_varint(p, n, pos, &v);
    case 1: if (n - *pos < 8) return -1; *pos += 8; return 0;
    case 5: if (n - *pos < 4) return -1; *pos += 4; return 0;
    case 2:
      if (read_varint(p, n, pos, &v) != 0 || v > n - *pos) return -1;
      if (len_out) *len_out = (size_t)v;
      *pos += (size_t)v;
      return 0;
    default: return -1;
  }
}

typedef struct { size_t start, len; } ml_range;

static void drop_pages(const uint8_t *base, size_t start, size_t len) {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)(base + start) + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  uintptr_t b = ((uintptr_t)(base + start + len)) & ~((uintptr_t)page - 1);
  if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

// One initializer. A large raw_data (field 9) is not left to protobuf-c, which would hold the
// whole mapped range and its copy at once: the TensorProto is unpacked without it, then the bytes
// are copied into their own allocation in slices, each mapped slice dropped once copied, so a
// single huge tensor (VGG16's 411 MB classifier weight) costs its size, not twice that.
#define ML_RAW_SLICE ((size_t)16 << 20)
// With `borrow` (ml_onnx_load_mapped), a raw_data of this size or more is left where it lies in
// the mapping: no copy at all (smaller ones share their pages with the file's other fields).
#define ML_BORROW_MIN ((size_t)4096)

static Onnx__TensorProto *unpack_initializer(const uint8_t *base, size_t start, size_t len, int borrow) {
  const uint8_t *p = base + start;
  size_t pos = 0, raw_start = 0, raw_len = 0;
  int raws = 0;
  while (pos < len) {
    uint64_t key;
    size_t flen = 0;
    if (read_varint(p, len, &pos, &key) != 0) return NULL;
    int field = (int)(key >> 3), wire = (int)(key & 7);
    if (skip_value(p, len, &pos, wire, &flen) != 0) return NULL;
    if (field == 9 && wire == 2) { raws++; raw_start = pos - flen; raw_len = flen; }
  }
  const int borrowed = borrow && raws == 1 && raw_len >= ML_BORROW_MIN;
  if (!borrowed && (raws != 1 || raw_len < ML_RAW_SLICE)) {
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, p);
    drop_pages(base, start, len);
    return t;
  }
  // The tensor's fields other than raw_data (small), then the bytes slice by slice.
  uint8_t *rest = malloc(len - raw_len);
  if (!rest) return NULL;
  size_t rest_len = 0;
  pos = 0;
  while (pos < len) {
    size_t field_start = pos, flen = 0;
    uint64_t key;
    read_varint(p, len, &pos, &key);
    int field = (int)(key >> 3), wire = (int)(key & 7);
    skip_value(p, len, &pos, wire, &flen);
    if (!(field == 9 && wire == 2)) { memcpy(rest + rest_len, p + field_start, pos - field_start); rest_len += pos - field_start; }
  }
  Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, rest_len, rest);
  free(rest);
  if (!t) return NULL;
  if (borrowed) {
    // Freed by ml_onnx_free_mapped, which recognises the address as the mapping's.
    t->has_raw_data = 1;
    t->raw_data.len = raw_len;
    t->raw_data.data = (uint8_t *)(p + raw_start);
    return t;
  }
  uint8_t *raw = malloc(raw_len);
  if (!raw) { onnx__tensor_proto__free_unpacked(t, NULL); return NULL; }
  for (size_t off = 0; off < raw_len; off += ML_RAW_SLICE) {
    size_t n = raw_len - off < ML_RAW_SLICE ? raw_len - off : ML_RAW_SLICE;
    memcpy(raw + off, p + raw_start + off, n);
    drop_pages(base, start + raw_start + off, n);
  }
  drop_pages(base, start, len);
  t->has_raw_data = 1;
  t->raw_data.len = raw_len;
  t->raw_data.data = raw;   // freed with the message (protobuf-c frees bytes fields with free())
  return t;
}

// Returns NULL when the file is not shaped as expected; the caller then decodes it whole.
static Onnx__ModelProto *ml_onnx_decode_streaming(const uint8_t *data, size_t size, int borrow) {
  // Top level: find the single graph field (7).
  size_t pos = 0, graph_start = 0, graph_len = 0;
  int graphs = 0;
  while (pos < size) {
    uint64_t key;
    if (read_varint(data, size, &pos, &key) != 0) return NULL;
    int field = (int)(key >> 3), wire = (int)(key & 7);
    size_t before = pos, len = 0;
    if (skip_value(data, size, &pos, wire, &len) != 0) return NULL;
    if (field == 7 && wire == 2) { graphs++; graph_len = len; graph_start = pos - len; (void)before; }
  }
  if (graphs != 1) return NULL;
  // In the graph: initializers (field 5) apart, everything else copied into a small buffer.
  const uint8_t *g = data + graph_start;
  size_t gpos = 0, count = 0, cap = 64, rest_len = 0;
  ml_range *inits = malloc(cap * sizeof(ml_range));
  uint8_t *rest = malloc(graph_len ? graph_len : 1);
  if (!inits || !rest) { free(inits); free(rest); return NULL; }
  while (gpos < graph_len) {
    size_t field_start = gpos, len = 0;
    uint64_t key;
    if (read_varint(g, graph_len, &gpos, &key) != 0) goto fail;
    int field = (int)(key >> 3), wire = (int)(key & 7);
    if (skip_value(g, graph_len, &gpos, wire, &len) != 0) goto fail;
    if (field == 5 && wire == 2) {
      if (count == cap) {
        ml_range *bigger = realloc(inits, 2 * cap * sizeof(ml_range));
        if (!bigger) goto fail;
        inits = bigger; cap *= 2;
      }
      inits[count++] = (ml_range){graph_start + gpos - len, len};
    } else {
      memcpy(rest + rest_len, g + field_start, gpos - field_start);
      rest_len += gpos - field_start;
    }
  }
  {
    // The model without its graph, and the graph without its initializers.
    size_t mpos = 0, mlen = 0;
    uint8_t *mrest = malloc(size - graph_len + 1);
    if (!mrest) goto fail;
    while (mpos < size) {
      size_t field_start = mpos, len = 0;
      uint64_t key;
      read_varint(data, size, &mpos, &key);
      int field = (int)(key >> 3), wire = (int)(key & 7);
      skip_value(data, size, &mpos, wire, &len);
      if (!(field == 7 && wire == 2)) { memcpy(mrest + mlen, data + field_start, mpos - field_start); mlen += mpos - field_start; }
    }
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, mlen, mrest);
    free(mrest);
    Onnx__GraphProto *graph = onnx__graph_proto__unpack(NULL, rest_len, rest);
    free(rest); rest = NULL;
    if (!model || !graph) {
      if (model) onnx__model_proto__free_unpacked(model, NULL);
      if (graph) onnx__graph_proto__free_unpacked(graph, NULL);
      free(inits);
      return NULL;
    }
    model->graph = graph;
    if (count > 0) {
      graph->initializer = calloc(count, sizeof(Onnx__TensorProto *));
      if (!graph->initializer) { onnx__model_proto__free_unpacked(model, NULL); free(inits); return NULL; }
      for (size_t i = 0; i < count; i++) {
        Onnx__TensorProto *t = unpack_initializer(data, inits[i].start, inits[i].len, borrow);
        if (!t) {
          graph->n_initializer = i;
          ml_mapping m = {data, size};
          ml_onnx_free_mapped(model, &m);
          free(inits);
          return NULL;
        }
        graph->initializer[i] = t;
        graph->n_initializer = i + 1;
      }
    }
    free(inits);
    return model;
  }
fail:
  free(inits);
  free(rest);
  return NULL;
}

// Maps and decodes; with `borrow`, large raw_data stay in the mapping, which is handed to the
// caller when any did (otherwise, and without `borrow`, the file is unmapped before returning).
static Onnx__ModelProto *load(const char *path, int borrow, ml_mapping *mapping, char *err, size_t errlen) {
  mapping->data = NULL;
  mapping->size = 0;
  ml_mapping m;
  if (ml_map_file(path, &m, err, errlen) != 0) return NULL;
  if (m.data != NULL) madvise((void *)m.data, m.size, MADV_SEQUENTIAL);
  Onnx__ModelProto *model = NULL;
  if (m.size > 0 && !too_deep(m.data, m.size, K_MODEL, 0)) model = ml_onnx_decode_streaming(m.data, m.size, borrow);
  int borrowed = 0;
  if (model != NULL && model->graph != NULL)
    for (size_t i = 0; i < model->graph->n_initializer; i++) {
      const uint8_t *d = model->graph->initializer[i]->raw_data.data;
      if (d != NULL && d >= m.data && d < m.data + m.size) borrowed = 1;
    }
  // Anything unusual (several graph fields, groups, malformed framing): decode whole, copying
  // everything, which also produces the error message for broken files.
  if (model == NULL) model = ml_onnx_decode(m.data, m.size, err, errlen);
  if (borrowed) {
    madvise((void *)m.data, m.size, MADV_NORMAL);   // read again where the weights are used, in any order
    *mapping = m;
  } else {
    ml_unmap_file(&m);
  }
  return model;
}

Onnx__ModelProto *ml_onnx_load(const char *path, char *err, size_t errlen) {
  ml_mapping none;
  return load(path, 0, &none, err, errlen);
}

void ml_onnx_free(Onnx__ModelProto *model) {
  if (model != NULL) onnx__model_proto__free_unpacked(model, NULL);
}

Onnx__ModelProto *ml_onnx_load_mapped(const char *path, ml_mapping *mapping, char *err, size_t errlen) {
  return load(path, 1, mapping, err, errlen);
}

void ml_onnx_free_mapped(Onnx__ModelProto *model, const ml_mapping *mapping) {
  if (model == NULL) return;
  if (model->graph != NULL && mapping->data != NULL)
    for (size_t i = 0; i < model->graph->n_initializer; i++) {
      Onnx__TensorProto *t = model->graph->initializer[i];
      if (t != NULL && t->raw_data.data >= mapping->data && t->raw_data.data < mapping->data + mapping->size) {
        t->raw_data.data = NULL;
        t->raw_data.len = 0;
      }
    }
  onnx__model_proto__free_unpacked(model, NULL);
}

#include <stdlib.h>

int ml_onnx_save(const Onnx__ModelProto *model, const char *path, char *err, size_t errlen) {
  size_t size = onnx__model_proto__get_packed_size(model);
  uint8_t *buf = malloc(size > 0 ? size : 1);
  if (buf == NULL) {
    snprintf(err, errlen, "out of memory packing %zu bytes", size);
    return -1;
  }
  onnx__model_proto__pack(model, buf);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    free(buf);
    return -1;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, buf + done, size - done);
    if (n <= 0) {
      snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
      close(fd);
      unlink(tmp);
      free(buf);
      return -1;
    }
    done += (size_t)n;
  }
  free(buf);
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot move %s into place: %s", tmp, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

void ml_onnx_clear_value_info(Onnx__GraphProto *graph) {
  for (size_t i = 0; i < graph->n_value_info; i++) onnx__value_info_proto__free_unpacked(graph->value_info[i], NULL);
  free(graph->value_info);
  graph->value_info = NULL;
  graph->n_value_info = 0;
}

Onnx__TensorProto *ml_onnx_load_tensor(const char *path, char *err, size_t errlen) {
  ml_mapping m;
  if (ml_map_file(path, &m, err, errlen) != 0) return NULL;
  Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, m.size, m.data ? m.data : (const uint8_t *)"");
  ml_unmap_file(&m);
  if (t == NULL) snprintf(err, errlen, "not a serialised TensorProto");
  return t;
}

void ml_onnx_free_tensor(Onnx__TensorProto *tensor) {
  if (tensor != NULL) onnx__tensor_proto__free_unpacked(tensor, NULL);
}
