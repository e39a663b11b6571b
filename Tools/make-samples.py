#!/usr/bin/env python3
"""Makes the small models in SampleModels/ (committed; re-run to regenerate).

  tiny_cnn.onnx            Conv-BN-Relu-MaxPool-Conv(depthwise)-Add(residual)-GlobalAveragePool-Flatten-Gemm,
                           input [batch, 3, 32, 32] with a symbolic batch (onnx.helper).
  tiny_cnn.tflite          DEQUANTIZE(fp16 weights) -> CONV_2D(+RELU) -> DEPTHWISE_CONV_2D -> ADD -> MEAN,
                           input [1, 16, 16, 3] (built with the flatbuffers builder of the `tflite` package).
  tiny_int8.tflite         a full-integer int8 CONV_2D with per-axis weight quantization.
  depthwise_cases.onnx     depthwise convolutions at the edges of the kernels' fast paths: odd sizes,
                           stride 2 with asymmetric pads, dilation 2, a 5x5 kernel with depth
                           multiplier 2; input [1, 6, 15, 13].
  convnext_block.onnx      two ConvNeXt-style blocks as torch writes them below opset 20, input [1, 8, 12, 12]:
                           a 3x3 conv with SiLU (Sigmoid * x), 7x7 depthwise, Transpose to NHWC,
                           LayerNormalization, MatMul + bias (a Linear over every pixel), GELU written out
                           (x / sqrt 2 -> Erf -> + 1 -> * x -> * 0.5; the second block x * (1 / sqrt 2) and
                           * 0.5 before * x), MatMul + bias, a layer-scale Mul, Transpose back, residual Add;
                           then hard-swish written out (x + 3 -> Clip(0, 6) -> * x -> / 6).
  bad/cycle.onnx           two nodes that feed each other.
  bad/huge_tensor.onnx     an initializer declaring 2^40 float elements with 16 bytes of data.
  bad/undefined_input.onnx a node reading a value nothing defines.
  external/tiny_cnn_external.onnx  tiny_cnn.onnx with every weight in tiny_cnn_external.weights.
  bad/external_escape.onnx  external data whose location leaves the model's directory.
  bad/buffer_offset.tflite tiny_cnn.tflite with one buffer moved to an offset past the end of the file.
Weights are random (seeded)."""
import os

import flatbuffers
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'SampleModels')
rng = np.random.default_rng(7)


def w(*shape):
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


def convnext_block_onnx():
    c, e = 16, 64
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    x = node('Conv', ['x', const('stem.w', w(c, 8, 3, 3)), const('stem.b', w(c))], 'stem', pads=[1, 1, 1, 1])
    x = node('Mul', [x, node('Sigmoid', [x], 'stem.sigmoid')], 'stem.silu')
    for b in range(2):
        p = f'block{b}.'
        h = node('Conv', [x, const(p + 'dw.w', w(c, 1, 7, 7)), const(p + 'dw.b', w(c))], p + 'dw', pads=[3, 3, 3, 3], group=c)
        h = node('Transpose', [h], p + 'nhwc', perm=[0, 2, 3, 1])
        h = node('LayerNormalization', [h, const(p + 'ln.scale', 1 + w(c)), const(p + 'ln.bias', w(c))], p + 'ln', axis=-1, epsilon=1e-6)
        h = node('Add', [node('MatMul', [h, const(p + 'fc1.w', w(c, e))], p + 'fc1'), const(p + 'fc1.b', w(e))], p + 'fc1.bias')
        if b == 0:
            d = node('Div', [h, const(p + 'sqrt2', np.float32(np.sqrt(2)))], p + 'gelu.div')
            a = node('Add', [node('Erf', [d], p + 'gelu.erf'), const(p + 'one', np.float32(1))], p + 'gelu.add')
            g = node('Mul', [node('Mul', [h, a], p + 'gelu.mul'), const(p + 'half', np.float32(0.5))], p + 'gelu')
        else:
            d = node('Mul', [const(p + 'rsqrt2', np.float32(1 / np.sqrt(2))), h], p + 'gelu.scale')
            a = node('Add', [const(p + 'one', np.float32(1)), node('Erf', [d], p + 'gelu.erf')], p + 'gelu.add')
            g = node('Mul', [node('Mul', [a, const(p + 'half', np.float32(0.5))], p + 'gelu.half'), h], p + 'gelu')
        h = node('Add', [node('MatMul', [g, const(p + 'fc2.w', w(e, c))], p + 'fc2'), const(p + 'fc2.b', w(c))], p + 'fc2.bias')
        h = node('Mul', [h, const(p + 'gamma', 0.5 + w(c))], p + 'scale')
        h = node('Transpose', [h], p + 'nchw', perm=[0, 3, 1, 2])
        x = node('Add', [x, h], p + 'out')
    # Hard-swish as paddle2onnx writes it: x + 3 -> Clip(0, 6) -> * x -> / 6.
    c3 = node('Clip', [node('Add', [x, const('three', np.float32(3))], 'hswish.add'), const('zero', np.float32(0)),
                       const('six', np.float32(6))], 'hswish.clip')
    x = node('Div', [node('Mul', [x, c3], 'hswish.mul'), const('six.div', np.float32(6))], 'hswish')
    graph = helper.make_graph(nodes, 'convnext_block', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 8, 12, 12])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, c, 12, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], producer_name='make-samples.py')
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(HERE, 'convnext_block.onnx'))


def tiny_onnx():
    inits = [
        numpy_helper.from_array(w(8, 3, 3, 3), 'conv1.w'), numpy_helper.from_array(w(8), 'conv1.b'),
        numpy_helper.from_array(np.abs(w(8)) + 1, 'bn.scale'), numpy_helper.from_array(w(8), 'bn.bias'),
        numpy_helper.from_array(w(8), 'bn.mean'), numpy_helper.from_array(np.abs(w(8)) + 1, 'bn.var'),
        numpy_helper.from_array(w(8, 1, 3, 3), 'dw.w'),
        numpy_helper.from_array(w(10, 8), 'fc.w'), numpy_helper.from_array(w(10), 'fc.b'),
    ]
    nodes = [
        helper.make_node('Conv', ['input', 'conv1.w', 'conv1.b'], ['c1'], name='conv1', pads=[1, 1, 1, 1]),
        helper.make_node('BatchNormalization', ['c1', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], ['b1'], name='bn1'),
        helper.make_node('Relu', ['b1'], ['r1'], name='relu1'),
        helper.make_node('MaxPool', ['r1'], ['p1'], name='pool1', kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node('Conv', ['p1', 'dw.w'], ['d1'], name='dwconv', group=8, pads=[1, 1, 1, 1]),
        helper.make_node('Add', ['d1', 'p1'], ['s1'], name='residual'),
        helper.make_node('GlobalAveragePool', ['s1'], ['g1'], name='gap'),
        helper.make_node('Flatten', ['g1'], ['f1'], name='flatten'),
        helper.make_node('Gemm', ['f1', 'fc.w', 'fc.b'], ['logits'], name='fc', transB=1),
    ]
    graph = helper.make_graph(nodes, 'tiny_cnn',
                              [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch', 3, 32, 32])],
                              [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', 10])], inits)
    model = helper.make_model(graph, producer_name='modellens-samples', opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, 'tiny_cnn.onnx'))


def bad_onnx():
    os.makedirs(os.path.join(HERE, 'bad'), exist_ok=True)
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4])
    cyc = helper.make_graph([helper.make_node('Add', ['x', 'b'], ['a'], name='first'),
                             helper.make_node('Relu', ['a'], ['b'], name='second'),
                             helper.make_node('Identity', ['b'], ['y'], name='out')], 'cycle', [x], [y])
    onnx.save(helper.make_model(cyc, opset_imports=[helper.make_opsetid('', 13)]), os.path.join(HERE, 'bad', 'cycle.onnx'))
    huge = TensorProto()
    huge.name = 'huge'
    huge.data_type = TensorProto.FLOAT
    huge.dims.extend([1 << 20, 1 << 20])
    huge.raw_data = b'\0' * 16
    g = helper.make_graph([helper.make_node('Add', ['x', 'huge'], ['y'])], 'huge', [x], [y], [huge])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), os.path.join(HERE, 'bad', 'huge_tensor.onnx'))
    g = helper.make_graph([helper.make_node('Add', ['x', 'nowhere'], ['y'], name='add')], 'undef', [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), os.path.join(HERE, 'bad', 'undefined_input.onnx'))


def external_data():
    """tiny_cnn.onnx with its weights in a separate file, and a copy whose location escapes the directory."""
    import copy
    m = onnx.load(os.path.join(HERE, 'tiny_cnn.onnx'))
    d = os.path.join(HERE, 'external')
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    onnx.save(m, os.path.join(d, 'tiny_cnn_external.onnx'), save_as_external_data=True, all_tensors_to_one_file=True,
              location='tiny_cnn_external.weights', size_threshold=0)
    bad = onnx.load(os.path.join(d, 'tiny_cnn_external.onnx'), load_external_data=False)
    for t in bad.graph.initializer:
        for e in t.external_data:
            if e.key == 'location':
                e.value = '../../etc/passwd'
    onnx.save(bad, os.path.join(HERE, 'bad', 'external_escape.onnx'))


def tiny_tflite(buffer_offset=None, extra_buffer_bytes=0):
    import importlib
    # The package's __init__ re-exports classes under the module names; take the modules.
    B, M, S, T, O, OC, C2, DW, AO, RO = (importlib.import_module('tflite.' + n) for n in (
        'Buffer', 'Model', 'SubGraph', 'Tensor', 'Operator', 'OperatorCode', 'Conv2DOptions',
        'DepthwiseConv2DOptions', 'AddOptions', 'ReducerOptions'))
    from tflite.BuiltinOperator import BuiltinOperator as BO
    from tflite.BuiltinOptions import BuiltinOptions as BOpt
    b = flatbuffers.Builder(4096)

    def ivec(start, vals):
        start(b, len(vals))
        for v in reversed(vals):
            b.PrependInt32(v)
        return b.EndVector()

    # Buffers: 0 empty sentinel, then data.
    datas = [None,
             w(8, 3, 3, 3).astype(np.float16).tobytes(),   # 1 conv weights, fp16 (OHWI)
             w(8).tobytes(),                                # 2 conv bias
             w(1, 3, 3, 8).tobytes(),                       # 3 depthwise weights (1HWO)
             w(8).tobytes(),                                # 4 depthwise bias
             np.array([1, 2], np.int32).tobytes()]          # 5 MEAN axes
    if extra_buffer_bytes:
        datas.append(np.zeros(extra_buffer_bytes, np.uint8).tobytes())  # a large unused weight buffer (benchmarks)
    buf_offsets = []
    for i, d in enumerate(datas):
        vec = None
        if d is not None and not (buffer_offset is not None and i == 3):
            b.StartVector(1, len(d), 16)
            b.head = b.head - len(d)
            b.Bytes[b.head:b.head + len(d)] = d
            vec = b.EndVector()
        B.BufferStart(b)
        if vec is not None:
            B.BufferAddData(b, vec)
        if buffer_offset is not None and i == 3:
            B.BufferAddOffset(b, buffer_offset)
            B.BufferAddSize(b, len(d))
        buf_offsets.append(B.BufferEnd(b))
    # Tensors: (name, type, shape, buffer)
    F32, F16, I32 = 0, 1, 2
    tensors = [('input', F32, [1, 16, 16, 3], 0), ('conv.w16', F16, [8, 3, 3, 3], 1), ('conv.w', F32, [8, 3, 3, 3], 0),
               ('conv.b', F32, [8], 2), ('conv.out', F32, [1, 16, 16, 8], 0), ('dw.w', F32, [1, 3, 3, 8], 3),
               ('dw.b', F32, [8], 4), ('dw.out', F32, [1, 8, 8, 8], 0), ('pool', F32, [1, 8, 8, 8], 0),
               ('axes', I32, [2], 5), ('output', F32, [1, 8], 0)]
    t_offsets = []
    for name, ty, shape, buf in tensors:
        n = b.CreateString(name)
        sv = ivec(T.TensorStartShapeVector, shape)
        T.TensorStart(b); T.TensorAddShape(b, sv); T.TensorAddType(b, ty); T.TensorAddBuffer(b, buf); T.TensorAddName(b, n)
        t_offsets.append(T.TensorEnd(b))
    # conv.out [1,16,16,8] -> dw stride 2 -> dw.out [1,8,8,8]; MAX_POOL 1x1 gives 'pool'; ADD(dw.out, pool) would need
    # a second path: keep it simple and add dw.out to itself through ADD.
    codes = [BO.DEQUANTIZE, BO.CONV_2D, BO.DEPTHWISE_CONV_2D, BO.ADD, BO.MEAN]
    c_offsets = []
    for c in codes:
        OC.OperatorCodeStart(b); OC.OperatorCodeAddDeprecatedBuiltinCode(b, c); OC.OperatorCodeAddBuiltinCode(b, c); OC.OperatorCodeAddVersion(b, 1)
        c_offsets.append(OC.OperatorCodeEnd(b))
    C2.Conv2DOptionsStart(b); C2.Conv2DOptionsAddPadding(b, 0); C2.Conv2DOptionsAddStrideW(b, 1); C2.Conv2DOptionsAddStrideH(b, 1)
    C2.Conv2DOptionsAddFusedActivationFunction(b, 1); conv_opt = C2.Conv2DOptionsEnd(b)
    DW.DepthwiseConv2DOptionsStart(b); DW.DepthwiseConv2DOptionsAddPadding(b, 0); DW.DepthwiseConv2DOptionsAddStrideW(b, 2)
    DW.DepthwiseConv2DOptionsAddStrideH(b, 2); DW.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1); dw_opt = DW.DepthwiseConv2DOptionsEnd(b)
    AO.AddOptionsStart(b); add_opt = AO.AddOptionsEnd(b)
    RO.ReducerOptionsStart(b); RO.ReducerOptionsAddKeepDims(b, False); red_opt = RO.ReducerOptionsEnd(b)
    ops = [(0, [1], [2], 0, None), (1, [0, 2, 3], [4], BOpt.Conv2DOptions, conv_opt),
           (2, [4, 5, 6], [7], BOpt.DepthwiseConv2DOptions, dw_opt), (3, [7, 7], [8], BOpt.AddOptions, add_opt),
           (4, [8, 9], [10], BOpt.ReducerOptions, red_opt)]
    o_offsets = []
    for code, ins, outs, otype, opt in ops:
        iv = ivec(O.OperatorStartInputsVector, ins)
        ov = ivec(O.OperatorStartOutputsVector, outs)
        O.OperatorStart(b); O.OperatorAddOpcodeIndex(b, code); O.OperatorAddInputs(b, iv); O.OperatorAddOutputs(b, ov)
        if opt is not None:
            O.OperatorAddBuiltinOptionsType(b, otype); O.OperatorAddBuiltinOptions(b, opt)
        o_offsets.append(O.OperatorEnd(b))

    def tvec(start, offs):
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()
    tv = tvec(S.SubGraphStartTensorsVector, t_offsets)
    ov = tvec(S.SubGraphStartOperatorsVector, o_offsets)
    iv = ivec(S.SubGraphStartInputsVector, [0])
    outv = ivec(S.SubGraphStartOutputsVector, [10])
    name = b.CreateString('main')
    S.SubGraphStart(b); S.SubGraphAddTensors(b, tv); S.SubGraphAddInputs(b, iv); S.SubGraphAddOutputs(b, outv)
    S.SubGraphAddOperators(b, ov); S.SubGraphAddName(b, name); sg = S.SubGraphEnd(b)
    sgv = tvec(M.ModelStartSubgraphsVector, [sg])
    cv = tvec(M.ModelStartOperatorCodesVector, c_offsets)
    bv = tvec(M.ModelStartBuffersVector, buf_offsets)
    desc = b.CreateString('modellens sample: fp16 conv, depthwise conv, add, mean')
    M.ModelStart(b); M.ModelAddVersion(b, 3); M.ModelAddOperatorCodes(b, cv); M.ModelAddSubgraphs(b, sgv)
    M.ModelAddDescription(b, desc); M.ModelAddBuffers(b, bv)
    b.Finish(M.ModelEnd(b), file_identifier=b'TFL3')
    return bytes(b.Output())


def int8_tflite():
    """A full-integer int8 conv: int8 activations (per-tensor), int8 weights and int32 bias
    quantized per output channel (quantized_dimension 0), as TFLiteConverter writes them."""
    import importlib
    B, M, S, T, O, OC, C2, Q = (importlib.import_module('tflite.' + n) for n in (
        'Buffer', 'Model', 'SubGraph', 'Tensor', 'Operator', 'OperatorCode', 'Conv2DOptions', 'QuantizationParameters'))
    from tflite.BuiltinOperator import BuiltinOperator as BO
    from tflite.BuiltinOptions import BuiltinOptions as BOpt
    b = flatbuffers.Builder(4096)

    def vec(start, vals, put):
        start(b, len(vals))
        for v in reversed(vals):
            put(v)
        return b.EndVector()

    def bytes_buffer(d):
        if d is None:
            B.BufferStart(b)
            return B.BufferEnd(b)
        b.StartVector(1, len(d), 16)
        b.head = b.head - len(d)
        b.Bytes[b.head:b.head + len(d)] = d
        v = b.EndVector()
        B.BufferStart(b); B.BufferAddData(b, v)
        return B.BufferEnd(b)

    w_scales = [0.011, 0.02, 0.015, 0.008]
    in_scale, out_scale = 0.05, 0.1
    weights = rng.integers(-127, 128, size=(4, 3, 3, 3), dtype=np.int8)
    bias = rng.integers(-500, 500, size=4).astype(np.int32)
    bufs = [bytes_buffer(x) for x in (None, weights.tobytes(), bias.tobytes())]

    def quant(scales, zps, dim=0):
        sv = vec(Q.QuantizationParametersStartScaleVector, scales, b.PrependFloat32)
        zv = vec(Q.QuantizationParametersStartZeroPointVector, zps, b.PrependInt64)
        Q.QuantizationParametersStart(b); Q.QuantizationParametersAddScale(b, sv); Q.QuantizationParametersAddZeroPoint(b, zv)
        Q.QuantizationParametersAddQuantizedDimension(b, dim)
        return Q.QuantizationParametersEnd(b)
    INT8, INT32 = 9, 2
    specs = [('input', INT8, [1, 8, 8, 3], 0, quant([in_scale], [-3])),
             ('conv.w', INT8, [4, 3, 3, 3], 1, quant(w_scales, [0, 0, 0, 0], 0)),
             ('conv.b', INT32, [4], 2, quant([in_scale * s for s in w_scales], [0, 0, 0, 0], 0)),
             ('output', INT8, [1, 8, 8, 4], 0, quant([out_scale], [2]))]
    tens = []
    for name, ty, shape, buf, q in specs:
        n = b.CreateString(name)
        sv = vec(T.TensorStartShapeVector, shape, b.PrependInt32)
        T.TensorStart(b); T.TensorAddShape(b, sv); T.TensorAddType(b, ty); T.TensorAddBuffer(b, buf)
        T.TensorAddName(b, n); T.TensorAddQuantization(b, q)
        tens.append(T.TensorEnd(b))
    OC.OperatorCodeStart(b); OC.OperatorCodeAddDeprecatedBuiltinCode(b, BO.CONV_2D); OC.OperatorCodeAddBuiltinCode(b, BO.CONV_2D)
    OC.OperatorCodeAddVersion(b, 3); code = OC.OperatorCodeEnd(b)
    C2.Conv2DOptionsStart(b); C2.Conv2DOptionsAddPadding(b, 0); C2.Conv2DOptionsAddStrideW(b, 1); C2.Conv2DOptionsAddStrideH(b, 1)
    C2.Conv2DOptionsAddFusedActivationFunction(b, 3); opt = C2.Conv2DOptionsEnd(b)
    iv = vec(O.OperatorStartInputsVector, [0, 1, 2], b.PrependInt32)
    ov = vec(O.OperatorStartOutputsVector, [3], b.PrependInt32)
    O.OperatorStart(b); O.OperatorAddOpcodeIndex(b, 0); O.OperatorAddInputs(b, iv); O.OperatorAddOutputs(b, ov)
    O.OperatorAddBuiltinOptionsType(b, BOpt.Conv2DOptions); O.OperatorAddBuiltinOptions(b, opt); op = O.OperatorEnd(b)
    tv = vec(S.SubGraphStartTensorsVector, tens, b.PrependUOffsetTRelative)
    opv = vec(S.SubGraphStartOperatorsVector, [op], b.PrependUOffsetTRelative)
    inv = vec(S.SubGraphStartInputsVector, [0], b.PrependInt32)
    outv = vec(S.SubGraphStartOutputsVector, [3], b.PrependInt32)
    S.SubGraphStart(b); S.SubGraphAddTensors(b, tv); S.SubGraphAddInputs(b, inv); S.SubGraphAddOutputs(b, outv)
    S.SubGraphAddOperators(b, opv); sg = S.SubGraphEnd(b)
    sgv = vec(M.ModelStartSubgraphsVector, [sg], b.PrependUOffsetTRelative)
    cv = vec(M.ModelStartOperatorCodesVector, [code], b.PrependUOffsetTRelative)
    bv = vec(M.ModelStartBuffersVector, bufs, b.PrependUOffsetTRelative)
    desc = b.CreateString('modellens sample: int8 conv, per-axis weights')
    M.ModelStart(b); M.ModelAddVersion(b, 3); M.ModelAddOperatorCodes(b, cv); M.ModelAddSubgraphs(b, sgv)
    M.ModelAddDescription(b, desc); M.ModelAddBuffers(b, bv)
    b.Finish(M.ModelEnd(b), file_identifier=b'TFL3')
    return bytes(b.Output())


def depthwise_cases_onnx():
    r = np.random.default_rng(11)

    def dw(name, x, y, c_in, mult, k, stride, dil, pads):
        wt = numpy_helper.from_array((r.standard_normal((c_in * mult, 1, k, k)) * 0.3).astype(np.float32), name + '_w')
        b = numpy_helper.from_array((r.standard_normal(c_in * mult) * 0.1).astype(np.float32), name + '_b')
        node = helper.make_node('Conv', [x, name + '_w', name + '_b'], [y], name=name, group=c_in, kernel_shape=[k, k],
                                strides=[stride, stride], dilations=[dil, dil], pads=pads)
        return node, [wt, b]
    nodes, inits = [], []
    for args in [('dw_s2_asym', 'input', 'a', 6, 1, 3, 2, 1, [0, 2, 2, 0]),      # 15x13 -> 8x7
                 ('dw_dil2', 'a_relu', 'b', 6, 1, 3, 1, 2, [2, 2, 2, 2]),         # 8x7, dilation 2
                 ('dw_k5_mult2', 'b', 'c', 6, 2, 5, 1, 1, [1, 3, 3, 1]),          # 8x7, asymmetric, 12 channels
                 ('dw_s2_odd', 'c', 'output', 12, 1, 3, 2, 1, [1, 1, 1, 1])]:     # 8x7 -> 4x4
        n, i = dw(*args)
        nodes.append(n)
        inits += i
        if args[2] == 'a':
            nodes.append(helper.make_node('Relu', ['a'], ['a_relu']))
    g = helper.make_graph(nodes, 'depthwise_cases', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 6, 15, 13])],
                          [helper.make_tensor_value_info('output', TensorProto.FLOAT, [1, 12, 4, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)], producer_name='modellens sample')
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(HERE, 'depthwise_cases.onnx'))


def main():
    tiny_onnx()
    bad_onnx()
    external_data()
    good = tiny_tflite()
    with open(os.path.join(HERE, 'tiny_cnn.tflite'), 'wb') as f:
        f.write(good)
    with open(os.path.join(HERE, 'tiny_int8.tflite'), 'wb') as f:
        f.write(int8_tflite())
    with open(os.path.join(HERE, 'bad', 'buffer_offset.tflite'), 'wb') as f:
        f.write(tiny_tflite(buffer_offset=1 << 40))
    # The good sample must run in the reference runtime.
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=os.path.join(HERE, 'tiny_cnn.tflite'))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]['index'], np.ones((1, 16, 16, 3), np.float32))
    it.invoke()
    print('make-samples: tiny_cnn.tflite runs in ai-edge-litert, output', it.get_tensor(it.get_output_details()[0]['index']).shape)
    it = Interpreter(model_path=os.path.join(HERE, 'tiny_int8.tflite'))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]['index'], np.ones((1, 8, 8, 3), np.int8))
    it.invoke()
    print('make-samples: tiny_int8.tflite runs in ai-edge-litert, output', it.get_tensor(it.get_output_details()[0]['index']).dtype)
    import onnxruntime as ort
    s = ort.InferenceSession(os.path.join(HERE, 'tiny_cnn.onnx'))
    print('make-samples: tiny_cnn.onnx runs in onnxruntime, output', s.run(None, {'input': np.ones((2, 3, 32, 32), np.float32)})[0].shape)
    depthwise_cases_onnx()   # last: it draws from its own generator, the others from the shared one
    s = ort.InferenceSession(os.path.join(HERE, 'depthwise_cases.onnx'))
    print('make-samples: depthwise_cases.onnx runs in onnxruntime, output', s.run(None, {'input': np.ones((1, 6, 15, 13), np.float32)})[0].shape)
    convnext_block_onnx()   # after the others, so that their weights stay as they were
    s = ort.InferenceSession(os.path.join(HERE, 'convnext_block.onnx'))
    print('make-samples: convnext_block.onnx runs in onnxruntime, output', s.run(None, {'x': np.ones((1, 8, 12, 12), np.float32)})[0].shape)


if __name__ == '__main__':
    main()
