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
