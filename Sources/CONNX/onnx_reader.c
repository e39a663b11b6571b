#include "onnx_reader.h"

#include <errno.h>
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

Onnx__ModelProto *ml_onnx_decode(const uint8_t *data, size_t size, char *err, size_t errlen) {
  if (size == 0) {
    snprintf(err, errlen, "file is empty");
    return NULL;
  }
  Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, size, data);
  if (model == NULL) {
    snprintf(err, errlen, "not a valid ONNX protobuf (%zu bytes could not be decoded as a ModelProto)", size);
    return NULL;
  }
  return model;
}

Onnx__ModelProto *ml_onnx_load(const char *path, char *err, size_t errlen) {
  ml_mapping m;
  if (ml_map_file(path, &m, err, errlen) != 0) return NULL;
  // protobuf-c reads the buffer once, front to back.
  if (m.data != NULL) madvise((void *)m.data, m.size, MADV_SEQUENTIAL);
  Onnx__ModelProto *model = ml_onnx_decode(m.data, m.size, err, errlen);
  ml_unmap_file(&m);
  return model;
}

void ml_onnx_free(Onnx__ModelProto *model) {
  if (model != NULL) onnx__model_proto__free_unpacked(model, NULL);
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
