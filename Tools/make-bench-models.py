#!/usr/bin/env python3
"""Makes the benchmark's models that no package ships, in .models/bench/ (git-ignored; made once
per machine, an existing file is kept). Weights are random and seeded; input 224x224 (Inception
299x299), batch 1.

Without TensorFlow (onnxruntime.quantization, from the torchvision exports of `make models`):
  mobilenet_v2_qdq.onnx        torchvision MobileNetV2, QDQ: uint8 activations, int8 weights per
                               channel, calibrated on 8 random inputs
  mobilenet_v2_qop.onnx        the same in the QOperator format (QLinearConv, QLinearAdd, ...)
  efficientnet_b0_qop.onnx     torchvision EfficientNet-B0 (Tools/export-torchvision.py --study),
                               QOperator after onnxruntime's quant_pre_process (QLinearSigmoid,
                               squeeze-excitation QLinearMul, QLinearGlobalAveragePool)
With TensorFlow (pip install tensorflow-cpu; large, so Tools/setup.sh does not install it),
Keras applications converted by TFLiteConverter:
  keras_mobilenet_v2.tflite, keras_inception_v3.tflite, keras_efficientnet_b0.tflite,
  keras_mobilenet_v3_large.tflite, keras_resnet50.tflite      float32
  keras_mobilenet_v2_int8.tflite     full integer (int8 in and out), calibrated on 8 random inputs
  keras_mobilenet_v2_dynamic.tflite  dynamic range (int8 weights, float activations)"""
import os, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, '.models', 'bench')


def onnx_quantized():
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.data = iter([{'input': rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)
    made = (('torchvision/mobilenet_v2.onnx', 'mobilenet_v2_qdq.onnx', QuantFormat.QDQ, False),
            ('torchvision/mobilenet_v2.onnx', 'mobilenet_v2_qop.onnx', QuantFormat.QOperator, False),
            ('study-torchvision/efficientnet_b0.onnx', 'efficientnet_b0_qop.onnx', QuantFormat.QOperator, True))
    for rel, name, fmt, preprocess in made:
        src, out = os.path.join(ROOT, '.models', rel), os.path.join(OUT, name)
        if os.path.exists(out):
            continue
        if not os.path.exists(src):
            print(f'make-bench-models: no {rel} (run make models / Tools/export-torchvision.py --study): no {name}', file=sys.stderr)
            continue
        tmp = out + '.tmp'
        if preprocess:
            quant_pre_process(src, tmp + '.pre.onnx')
            src = tmp + '.pre.onnx'
        quantize_static(src, tmp, Reader(), quant_format=fmt, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        if preprocess:
            os.remove(src)
        os.replace(tmp, out)
        print('make-bench-models:', name, os.path.getsize(out), 'bytes')


def keras_models():
    try:
        import tensorflow as tf
    except ImportError:
        print('make-bench-models: no tensorflow (pip install tensorflow-cpu): no Keras models', file=sys.stderr)
        return
    apps = tf.keras.applications
    models = {
        'keras_mobilenet_v2': lambda: apps.MobileNetV2(weights=None),
        'keras_inception_v3': lambda: apps.InceptionV3(weights=None),
        'keras_efficientnet_b0': lambda: apps.EfficientNetB0(weights=None),
        'keras_mobilenet_v3_large': lambda: apps.MobileNetV3Large(input_shape=(224, 224, 3), weights=None),
        'keras_resnet50': lambda: apps.ResNet50(weights=None),
    }

    def write(name, data):
        out = os.path.join(OUT, name)
        with open(out + '.tmp', 'wb') as f:
            f.write(data)
        os.replace(out + '.tmp', out)
        print('make-bench-models:', name, len(data), 'bytes')

    for stem, make in models.items():
        names = [stem + '.tflite'] + ([stem + '_int8.tflite', stem + '_dynamic.tflite'] if stem == 'keras_mobilenet_v2' else [])
        if all(os.path.exists(os.path.join(OUT, n)) for n in names):
            continue
        tf.keras.utils.set_random_seed(5)
        model = make()
        write(names[0], tf.lite.TFLiteConverter.from_keras_model(model).convert())
        if len(names) > 1:
            size = model.input_shape[1]
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            rng = np.random.default_rng(0)
            conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)] for _ in range(8))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            write(names[1], conv.convert())
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            write(names[2], conv.convert())


def main():
    os.makedirs(OUT, exist_ok=True)
    onnx_quantized()
    keras_models()


if __name__ == '__main__':
    main()
