#!/usr/bin/env python3
"""Writes reference facts about real model files, as independent tools see them,
to .refdata/ (git-ignored). The Swift tests compare ModelLens' import with them.

  onnx-node-tests.json  every backend node test model of the onnx 1.22.0 wheel and of
                        Debian's libonnx-testdata: node count, op types, inputs (without
                        initializers), outputs, and every value's shape after
                        onnx.shape_inference.infer_shapes.
  onnx-models.json      the .onnx files of rapidocr-onnxruntime, nudenet and magika.
  onnx-tool.json        per-node MACs and params of the torchvision exports (Tools/export-torchvision.py)
                        as onnx-tool counts them.
  tflite.json           every mediapipe .tflite and SampleModels/*.tflite: operators, op names and tensors per
                        subgraph from the `tflite` package; tensor details from
                        ai-edge-litert's Interpreter where it can build one (models
                        with custom ops it does not know are marked so).
Run through `make reference` (after Tools/setup.sh and Tools/fetch-models.sh)."""
import glob, json, os, sys, warnings

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, '.refdata')

ONNX_DTYPES = {1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
               9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64',
               15: 'complex128', 16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2',
               20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4', 23: 'float4e2m1', 24: 'float8e8m0', 25: 'uint2',
               26: 'int2', 0: 'undefined'}


def onnx_type(t):
    """(dtype, shape) of a TypeProto, or None for non-tensors."""
    which = t.WhichOneof('value')
    if which not in ('tensor_type', 'sparse_tensor_type'):
        return None
    tt = getattr(t, which)
    dtype = ONNX_DTYPES.get(tt.elem_type, 'undefined')
    if not tt.HasField('shape'):
        return dtype, None
    dims = []
    for d in tt.shape.dim:
        w = d.WhichOneof('value')
        dims.append(d.dim_value if w == 'dim_value' else d.dim_param if w == 'dim_param' and d.dim_param else '?')
    return dtype, dims


def value_infos(vis):
    out = []
    for vi in vis:
        t = onnx_type(vi.type)
        out.append({'name': vi.name, 'tensor': t is not None,
                    'dtype': t[0] if t else None, 'shape': t[1] if t else None})
    return out


def onnx_facts(path, infer=True):
    m = onnx.load(path, load_external_data=False)
    g = m.graph
    init = {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
    hist = {}
    for n in g.node:
        hist[n.op_type] = hist.get(n.op_type, 0) + 1
    params = sum(int(np.prod(t.dims)) for t in g.initializer)
    for n in g.node:
        if n.op_type == 'Constant':
            for a in n.attribute:
                if a.name == 'value':
                    params += int(np.prod(a.t.dims))
    def count_graphs(graph):
        n = 1
        for node in graph.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    n += count_graphs(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    n += sum(count_graphs(x) for x in a.graphs)
        return n
    facts = {
        'path': path,
        'subgraphCount': count_graphs(g),
        'nodeCount': len(g.node),
        'opTypes': [n.op_type for n in g.node],
        'opHistogram': hist,
        'inputs': value_infos([i for i in g.input if i.name not in init]),
        'outputs': value_infos(g.output),
        'parameterCount': params,
        # float32 initializers with 4 KB or more of raw_data (ModelLens reads those in place from
        # the mapped file): name -> sum of the values, in float64.
        'rawInitializerSums': {t.name: float(np.sum(numpy_helper.to_array(t), dtype=np.float64))
                               for t in g.initializer if t.data_type == 1 and len(t.raw_data) >= 4096},
    }
    if infer:
        shapes = {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                inferred = shape_inference.infer_shapes(m, strict_mode=False)
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
                t = onnx_type(vi.type)
                if t and t[1] is not None:
                    shapes[vi.name] = {'dtype': t[0], 'shape': t[1]}
            facts['inferred'] = shapes
        except Exception as e:  # inference itself fails on a few tests
            facts['inferenceError'] = str(e).splitlines()[0][:200]
    return facts


def node_tests():
    roots = [os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data', 'node'),
             '/usr/share/libonnx-testdata/data']
    out = []
    for root in roots:
        paths = sorted(glob.glob(os.path.join(root, '**', 'model.onnx'), recursive=True))
        print(f'make-reference: {len(paths)} node tests in {root}', file=sys.stderr)
        for p in paths:
            out.append(onnx_facts(p))
    return out


def tflite_facts(path):
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    names = {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith('_')}
    type_names = {0: 'float32', 1: 'float16', 2: 'int32', 3: 'uint8', 4: 'int64', 5: 'string', 6: 'bool',
                  7: 'int16', 8: 'complex64', 9: 'int8', 10: 'float64', 11: 'complex128', 12: 'uint64',
                  13: 'resource', 14: 'variant', 15: 'uint32', 16: 'uint16', 17: 'int4', 18: 'bfloat16'}
    buf = open(path, 'rb').read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    subgraphs = []
    for s in range(m.SubgraphsLength()):
        g = m.Subgraphs(s)
        ops = []
        for o in range(g.OperatorsLength()):
            op = g.Operators(o)
            code = m.OperatorCodes(op.OpcodeIndex())
            b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            ops.append(code.CustomCode().decode() if names.get(b) == 'CUSTOM' else names.get(b, str(b)))
        tensors = []
        for t in range(g.TensorsLength()):
            tt = g.Tensors(t)
            tensors.append({'name': tt.Name().decode(errors='replace'), 'dtype': type_names.get(tt.Type(), str(tt.Type())),
                            'shape': tt.ShapeAsNumpy().tolist() if tt.ShapeLength() else [],
                            'signature': tt.ShapeSignatureAsNumpy().tolist() if tt.ShapeSignatureLength() else None})
        subgraphs.append({'ops': ops, 'tensors': tensors,
                          'inputs': g.InputsAsNumpy().tolist() if g.InputsLength() else [],
                          'outputs': g.OutputsAsNumpy().tolist() if g.OutputsLength() else []})
    facts = {'path': path, 'subgraphs': subgraphs}
    try:
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path=path)
        facts['litert'] = {
            'tensors': [{'index': d['index'], 'name': d['name'], 'dtype': np.dtype(d['dtype']).name,
                         'shape': d['shape'].tolist(), 'signature': d['shape_signature'].tolist(),
                         'scales': d['quantization_parameters']['scales'].tolist(),
                         'zeroPoints': d['quantization_parameters']['zero_points'].tolist(),
                         'quantizedDimension': int(d['quantization_parameters']['quantized_dimension'])}
                        for d in it.get_tensor_details()],
            'inputs': [d['index'] for d in it.get_input_details()],
            'outputs': [d['index'] for d in it.get_output_details()],
        }
    except Exception as e:
        facts['litertError'] = str(e).splitlines()[0][:200]
    return facts


def onnx_tool_facts():
    """Per-node MACs and params of the torchvision exports, as onnx-tool (pip) counts them."""
    try:
        import onnx_tool
    except ImportError:
        return []
    out = []
    for p in sorted(glob.glob(os.path.join(ROOT, '.models', 'torchvision', '*.onnx'))):
        m = onnx_tool.Model(p)
        m.graph.shape_infer({'input': np.zeros((1, 3, 224, 224), np.float32)})
        m.graph.profile()
        nodes = [{'name': n, 'op': node.op_type, 'macs': int(node.macs[0]), 'params': int(node.params)}
                 for n, node in m.graph.nodemap.items()]
        out.append({'path': p, 'nodes': nodes})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'onnx-node-tests.json'), 'w') as f:
        json.dump(node_tests(), f)
    models = sorted(p for d in ('rapidocr', 'nudenet', 'magika') for p in glob.glob(os.path.join(ROOT, '.models', d, '*.onnx')))
    with open(os.path.join(OUT, 'onnx-models.json'), 'w') as f:
        json.dump([onnx_facts(p, infer=False) for p in models], f)
    tfl = sorted(glob.glob(os.path.join(ROOT, '.models', 'mediapipe', '*.tflite')))
    tfl += sorted(glob.glob(os.path.join(ROOT, 'SampleModels', '*.tflite')))
    with open(os.path.join(OUT, 'tflite.json'), 'w') as f:
        json.dump([tflite_facts(p) for p in tfl], f)
    with open(os.path.join(OUT, 'onnx-tool.json'), 'w') as f:
        json.dump(onnx_tool_facts(), f)
    print(f'make-reference: wrote {OUT} ({len(models)} onnx models, {len(tfl)} tflite models)', file=sys.stderr)


if __name__ == '__main__':
    main()
