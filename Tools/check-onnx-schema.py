#!/usr/bin/env python3
"""Checks Schemas/onnx.proto against the `onnx` package's compiled descriptors:
every message and field we declare must exist there with the same number and
wire type, and every enum value must match. Exits 1 on any difference."""
import os, re, sys

from google.protobuf.descriptor import FieldDescriptor as F
from onnx import onnx_ml_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
text = open(os.path.join(ROOT, 'Schemas', 'onnx.proto')).read()
text = re.sub(r'//[^\n]*', '', text)

SCALAR = {'float': F.TYPE_FLOAT, 'double': F.TYPE_DOUBLE, 'int64': F.TYPE_INT64, 'uint64': F.TYPE_UINT64,
          'int32': F.TYPE_INT32, 'string': F.TYPE_STRING, 'bytes': F.TYPE_BYTES, 'bool': F.TYPE_BOOL}
problems, checked = [], 0


def walk(body, path):
    """Yields (path, kind, name, body) for messages/enums declared at this level."""
    i = 0
    pat = re.compile(r'\b(message|enum|oneof)\s+(\w+)\s*\{')
    while True:
        m = pat.search(body, i)
        if not m:
            return
        depth, j = 1, m.end()
        while depth:
            depth += {'{': 1, '}': -1}.get(body[j], 0)
            j += 1
        yield path, m.group(1), m.group(2), body[m.end():j - 1]
        i = j


def strip_nested(body):
    out, depth = [], 0
    for line in body.split('\n'):
        if re.search(r'\b(message|enum)\s+\w+\s*\{', line) and depth == 0:
            depth += line.count('{') - line.count('}')
            continue
        if depth:
            depth += line.count('{') - line.count('}')
            continue
        out.append(line)
    return '\n'.join(out)


def check_message(desc, body):
    global checked
    own = strip_nested(body)
    for kind, name, sub in [(k, n, b) for _, k, n, b in walk(body, '')]:
        if kind == 'message':
            check_message(desc.nested_types_by_name[name], sub)
        elif kind == 'enum':
            check_enum(desc.enum_types_by_name[name], sub)
    for m in re.finditer(r'(?:(optional|repeated)\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)', own):
        label, typ, name, num = m.groups()
        f = desc.fields_by_name.get(name)
        checked += 1
        if f is None:
            problems.append(f'{desc.full_name}.{name}: not in onnx')
            continue
        if f.number != int(num):
            problems.append(f'{desc.full_name}.{name}: number {num} != {f.number}')
        if typ in SCALAR and f.type != SCALAR[typ]:
            problems.append(f'{desc.full_name}.{name}: type {typ} != {f.type}')
        if typ not in SCALAR:
            target = f.message_type or f.enum_type
            if target is None or target.name != typ.split('.')[-1]:
                problems.append(f'{desc.full_name}.{name}: type {typ} != {target.name if target else f.type}')
        if (label == 'repeated') != bool(getattr(f, 'is_repeated', getattr(f, 'label', 0) == 3)):
            problems.append(f'{desc.full_name}.{name}: repeated mismatch')
    # Every field onnx has must be declared by us too.
    ours = set(re.findall(r'\b(\w+)\s*=\s*\d+', own))
    for f in desc.fields:
        if f.name not in ours:
            problems.append(f'{desc.full_name}.{f.name}: missing from Schemas/onnx.proto')


def check_enum(desc, body):
    global checked
    for name, num in re.findall(r'(\w+)\s*=\s*(-?\d+)', body):
        checked += 1
        v = desc.values_by_name.get(name)
        if v is None or v.number != int(num):
            problems.append(f'{desc.full_name}.{name} = {num}: onnx has {v.number if v else "nothing"}')
    if len(re.findall(r'(\w+)\s*=\s*(-?\d+)', body)) != len(desc.values):
        problems.append(f'{desc.full_name}: value count differs')


for _, kind, name, body in walk(text, ''):
    fd = onnx_ml_pb2.DESCRIPTOR
    if kind == 'message':
        if name not in fd.message_types_by_name:
            problems.append(f'message {name}: not in onnx')
            continue
        check_message(fd.message_types_by_name[name], body)
    elif kind == 'enum':
        check_enum(fd.enum_types_by_name[name], body)

for p in problems:
    print('check-onnx-schema:', p, file=sys.stderr)
print(f'check-onnx-schema: {checked} fields and enum values checked, {len(problems)} differences')
sys.exit(1 if problems else 0)
