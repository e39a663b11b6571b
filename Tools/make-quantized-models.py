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
  tiny_cnn_qop.onnx          the same in the QOperator format: QLinearConv, and onnxruntime's
                             QLinearAdd, QLinearGlobalAveragePool and QGemm (domain com.microsoft).
  qlinear_cases.onnx         onnxruntime's QLinear ops where tiny_cnn_qop does not reach: QLinearAdd
                             broadcasting per channel and from a scalar, QLinearMul, a channels-last
                             QLinearGlobalAveragePool, QGemm with int8 weights per column and a
                             float output, QLinearLeakyRelu, QLinearConcat, QLinearSigmoid and a
                             per-channel QLinearMul (a squeeze-excitation gate).
Needs tensorflow (pip install tensorflow-cpu) for the .tflite files; Tools/setup.sh does not
install it (it is large), so the files are committed. `--onnx` makes the ONNX files alone
(onnxruntime only). Seeds are fixed."""
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


def quantized_onnx(fmt, name):
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
    quantize_static(fixed, os.path.join(SAMPLES, name), Reader(), quant_format=getattr(QuantFormat, fmt),
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(fixed)


def qlinear_cases_onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def q(name, scale, zp, dtype):
        return const(name + '_s', np.float32(scale)), const(name + '_z', np.asarray(zp, dtype=dtype))
    xs, xz = q('x', 0.02, 128, np.uint8)
    nodes.append(helper.make_node('QuantizeLinear', ['x', xs, xz], ['xq']))
    # Per-channel operand [1, 8, 1, 1] and a scalar one, at other scales.
    cs, cz = q('c', 0.05, 100, np.uint8)
    const('c', rng.integers(0, 256, (1, 8, 1, 1)).astype(np.uint8))
    ys, yz = q('y', 0.03, 120, np.uint8)
    nodes.append(helper.make_node('QLinearAdd', ['xq', xs, xz, 'c', cs, cz, ys, yz], ['y'], domain='com.microsoft'))
    ks, kz = q('k', 0.01, 90, np.uint8)
    const('k', np.asarray([200], dtype=np.uint8))
    ms, mz = q('m', 0.04, 110, np.uint8)
    nodes.append(helper.make_node('QLinearMul', ['y', ys, yz, 'k', ks, kz, ms, mz], ['m'], domain='com.microsoft'))
    as_, az = q('a', 0.05, 128, np.uint8)
    nodes.append(helper.make_node('QLinearAdd', ['k', ks, kz, 'm', ms, mz, as_, az], ['a'], domain='com.microsoft'))
    nodes.append(helper.make_node('Transpose', ['a'], ['a_nhwc'], perm=[0, 2, 3, 1]))
    gs, gz = q('g', 0.02, 128, np.uint8)
    nodes.append(helper.make_node('QLinearGlobalAveragePool', ['a_nhwc', as_, az, gs, gz], ['g'], domain='com.microsoft', channels_last=1))
    nodes.append(helper.make_node('Reshape', ['g', const('flat', np.asarray([1, 8], dtype=np.int64))], ['gf']))
    # QGemm: int8 weights per output column, int32 bias, float output.
    const('w', rng.integers(-127, 128, (8, 5)).astype(np.int8))
    const('w_s', rng.uniform(0.005, 0.02, 5).astype(np.float32))
    const('w_z', np.zeros(5, dtype=np.int8))
    const('bias', rng.integers(-500, 500, 5).astype(np.int32))
    nodes.append(helper.make_node('QGemm', ['gf', gs, gz, 'w', 'w_s', 'w_z', 'bias'], ['logits'], domain='com.microsoft', alpha=1.0))
    nodes.append(helper.make_node('DequantizeLinear', ['a', as_, az], ['a_float']))
    # QLinearLeakyRelu, and a QLinearConcat that copies one input (its scale is the output's) and
    # requantizes the other.
    ls, lz = q('l', 0.025, 100, np.uint8)
    nodes.append(helper.make_node('QLinearLeakyRelu', ['y', ys, yz, ls, lz], ['lr'], domain='com.microsoft', alpha=0.2))
    nodes.append(helper.make_node('QLinearConcat', [ls, lz, 'lr', ls, lz, 'm', ms, mz], ['cat'], domain='com.microsoft', axis=1))
    nodes.append(helper.make_node('DequantizeLinear', ['cat', ls, lz], ['cat_float']))
    # A squeeze-excitation's gate: QLinearSigmoid, then a per-channel QLinearMul of the plane.
    ss, sz = q('sg', 1 / 256, 0, np.uint8)
    nodes.append(helper.make_node('QLinearSigmoid', ['c', cs, cz, ss, sz], ['gate'], domain='com.microsoft'))
    es, ez = q('e', 0.02, 128, np.uint8)
    nodes.append(helper.make_node('QLinearMul', ['lr', ls, lz, 'gate', ss, sz, es, ez], ['se'], domain='com.microsoft'))
    nodes.append(helper.make_node('DequantizeLinear', ['se', es, ez], ['se_float']))
    graph = helper.make_graph(nodes, 'qlinear_cases', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 8, 6, 6])],
                              [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 5]),
                               helper.make_tensor_value_info('a_float', TensorProto.FLOAT, [1, 8, 6, 6]),
                               helper.make_tensor_value_info('cat_float', TensorProto.FLOAT, [1, 16, 6, 6]),
                               helper.make_tensor_value_info('se_float', TensorProto.FLOAT, [1, 8, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.microsoft', 1)])
    model.ir_version = 8
    onnx.save(model, os.path.join(SAMPLES, 'qlinear_cases.onnx'))


def main():
    names = ['tiny_cnn_qdq.onnx', 'tiny_cnn_qop.onnx', 'qlinear_cases.onnx']
    if '--onnx' not in sys.argv:
        model = keras_model()
        with open(os.path.join(SAMPLES, 'mobilenet_int8.tflite'), 'wb') as f:
            f.write(convert(model, True))
        with open(os.path.join(SAMPLES, 'mobilenet_dynamic.tflite'), 'wb') as f:
            f.write(convert(model, False))
        names = ['mobilenet_int8.tflite', 'mobilenet_dynamic.tflite'] + names
    quantized_onnx('QDQ', 'tiny_cnn_qdq.onnx')
    quantized_onnx('QOperator', 'tiny_cnn_qop.onnx')
    qlinear_cases_onnx()
    for n in names:
        print('make-quantized-models:', n, os.path.getsize(os.path.join(SAMPLES, n)), 'bytes')


if __name__ == '__main__':
    main()
