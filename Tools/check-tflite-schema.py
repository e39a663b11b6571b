#!/usr/bin/env python3
"""Checks Schemas/tflite.fbs against the FlatBuffers-generated Python that ships in
ai-edge-litert (schema_py_generated.py): for every table we declare, each field's id
and scalar width must equal the slot the generated builder writes; every enum value
and the member order of the BuiltinOptions union must match. Exits 1 on differences."""
import os, re, sys

import ai_edge_litert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
gen = open(os.path.join(os.path.dirname(ai_edge_litert.__file__), 'schema_py_generated.py')).read()
fbs = re.sub(r'//[^\n]*', '', open(os.path.join(ROOT, 'Schemas', 'tflite.fbs')).read())

WIDTH = {'bool': 1, 'byte': 1, 'ubyte': 1, 'short': 2, 'ushort': 2, 'int': 4, 'uint': 4, 'float': 4,
         'long': 8, 'ulong': 8, 'double': 8}
SLOT = {'Bool': 1, 'Int8': 1, 'Uint8': 1, 'Int16': 2, 'Uint16': 2, 'Int32': 4, 'Uint32': 4, 'Float32': 4,
        'Int64': 8, 'Uint64': 8, 'Float64': 8, 'UOffsetTRelative': 'offset'}
enums = {m.group(1): (m.group(2), dict((n, int(v)) for n, v in re.findall(r'(\w+)\s*=\s*(-?\d+)', m.group(3))))
         for m in re.finditer(r'enum\s+(\w+)\s*:\s*(\w+)\s*\{(.*?)\}', fbs, re.S)}
unions = {m.group(1): [x.strip() for x in m.group(2).split(',') if x.strip()]
          for m in re.finditer(r'union\s+(\w+)\s*\{(.*?)\}', fbs, re.S)}
problems, checked = [], 0


def snake_to_camel(name):
    return ''.join(p[:1].upper() + p[1:] for p in name.split('_'))


for m in re.finditer(r'table\s+(\w+)\s*\{(.*?)\}', fbs, re.S):
    table, body = m.group(1), m.group(2)
    for f in re.finditer(r'(\w+)\s*:\s*(\[?\w+\]?)[^;]*?\(id:\s*(\d+)[^)]*\)', body):
        name, typ, fid = f.group(1), f.group(2), int(f.group(3))
        checked += 1
        is_union = typ in unions
        camel = snake_to_camel(name)
        g = re.search(r'def %sAdd%s\(builder, \w+\):\n\s+builder\.Prepend(\w+)Slot\((\d+),' % (table, camel), gen)
        if not g:
            if 'deprecated' not in f.group(0):
                problems.append(f'{table}.{name}: no such field in the generated schema')
            continue
        kind, slot = g.group(1), int(g.group(2))
        if slot != fid:
            problems.append(f'{table}.{name}: id {fid} != slot {slot}')
        base = enums[typ][0] if typ in enums else typ
        want = SLOT.get(kind)
        if is_union or typ.startswith('[') or base not in WIDTH:
            if want != 'offset':
                problems.append(f'{table}.{name}: {typ} is an offset, generated writes {kind}')
        elif WIDTH[base] != want:
            problems.append(f'{table}.{name}: {typ} is {WIDTH[base]} bytes, generated writes {kind}')
        if is_union:  # the type field sits in the slot before
            gt = re.search(r'def %sAdd%sType\(builder, \w+\):\n\s+builder\.PrependUint8Slot\((\d+),' % (table, camel), gen)
            if not gt or int(gt.group(1)) != fid - 1:
                problems.append(f'{table}.{name}: union type slot is not {fid - 1}')

for name, (_, values) in enums.items():
    c = re.search(r'^class %s\(object\):\n((?:    \w+ = -?\d+\n)+)' % name, gen, re.M)
    if not c:
        problems.append(f'enum {name}: not in the generated schema')
        continue
    theirs = dict((n, int(v)) for n, v in re.findall(r'(\w+) = (-?\d+)', c.group(1)))
    checked += len(values)
    if values != theirs:
        diff = set(values.items()) ^ set(theirs.items())
        problems.append(f'enum {name}: differs in {sorted(diff)[:6]}')

for name, members in unions.items():
    c = re.search(r'^class %s\(object\):\n((?:    \w+ = -?\d+\n)+)' % name, gen, re.M)
    theirs = [n for n, v in sorted(re.findall(r'(\w+) = (-?\d+)', c.group(1)), key=lambda x: int(x[1])) if n != 'NONE']
    checked += len(members)
    if members != theirs[:len(members)]:
        problems.append(f'union {name}: member order differs')
    elif len(members) < len(theirs):
        problems.append(f'union {name}: {len(theirs) - len(members)} newer members not declared: {theirs[len(members):]}')

for p in problems:
    print('check-tflite-schema:', p, file=sys.stderr)
print(f'check-tflite-schema: {checked} fields, enum values and union members checked, {len(problems)} differences')
sys.exit(1 if problems else 0)
