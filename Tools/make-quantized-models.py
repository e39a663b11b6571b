#!/usr/bin/env python3
"""Makes the quantized sample models (committed in SampleModels/, a few tens of KB):

  mobilenet_int8.tflite      a small MobileNet-style Keras model (conv, depthwise + pointwise blocks
                             with a residual add, global pooling, dense) converted by TFLiteConverter
                             to full integer: int8 input and output, int8 weights per axis, int32 bias,
                             calibrated on random data.
  mobilenet_dynamic.tflite   the same Keras model with dynamic-range quantization: int8 weights,
                             float activations.
  tiny_cnn_qdq.onnx          SampleModels/tiny_cnn.onnx quantized by onnxruntime.quantization
                             (QDQ format, int8 weights per channel, uint8 activations), calibrated
                             on random data.
Needs tensorflow (pip install tensorflow-cpu); Tools/setup.sh does not install it (it is large),
so the files are committed. Seeds are fixed."""
import sys
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, 'SampleModels')


def keras_model():
    import tensorflow as tf
    tf.keras.utils.set_random_seed(3)
    L = tf.keras.layers
    x = inp = L.Input((48, 48, 3), batch_size=1)
    x = L.Conv2D(32, 3, strides=2, padding='same', activation='relu6')(x)
    # Wide enough that the dynamic-range converter quantizes weights (it skips those under 1,024 elements).
    for filters, stride in [(32, 1), (48, 2), (48, 1)]:
        y = L.DepthwiseConv2D(3, strides=stride, padding='same', activation='relu6')(x)
        y = L.Conv2D(filters, 1, padding='same')(y)
        x = L.Add()([x, y]) if stride == 1 and x.shape[-1] == filters else y
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10)(x)
    return tf.keras.Model(inp, x)


def convert(model, full_integer):
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if full_integer:
        rng = np.random.default_rng(0)
        conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)] for _ in range(32))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def qdq_onnx():
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.data = iter([{'input': rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self.data, None)
    src = os.path.join(SAMPLES, 'tiny_cnn.onnx')
    fixed = os.path.join(SAMPLES, 'tiny_cnn_fixed.tmp.onnx')
    import onnx
    m = onnx.load(src)
    for t in list(m.graph.input) + list(m.graph.output):
        t.type.tensor_type.shape.dim[0].dim_value = 1   # calibration wants a fixed batch
    onnx.save(m, fixed)
    quantize_static(fixed, os.path.join(SAMPLES, 'tiny_cnn_qdq.onnx'), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(fixed)


def main():
    model = keras_model()
    with open(os.path.join(SAMPLES, 'mobilenet_int8.tflite'), 'wb') as f:
        f.write(convert(model, True))
    with open(os.path.join(SAMPLES, 'mobilenet_dynamic.tflite'), 'wb') as f:
        f.write(convert(model, False))
    qdq_onnx()
    for n in ('mobilenet_int8.tflite', 'mobilenet_dynamic.tflite', 'tiny_cnn_qdq.onnx'):
        print('make-quantized-models:', n, os.path.getsize(os.path.join(SAMPLES, n)), 'bytes')


if __name__ == '__main__':
    main()
