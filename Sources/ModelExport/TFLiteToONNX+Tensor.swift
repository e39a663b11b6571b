import ModelIR

extension TFLiteToONNX {
    /// Data movement: concatenation, reshapes, padding, depth/space, gather, transpose, strided slices.
    static let tensorLowerings: [String: Lowering] = [
        "CONCATENATION": { c, node in try c.lowerConcat(node) },
        "RESHAPE": { c, node in try c.lowerReshape(node) },
        "SQUEEZE": { c, node in try c.lowerReshape(node) },
        "EXPAND_DIMS": { c, node in try c.lowerReshape(node) },
        "PAD": { c, node in try c.lowerPad(node) },
        "PADV2": { c, node in try c.lowerPad(node) },
        "DEPTH_TO_SPACE": { c, node in try c.lowerDepthToSpace(node) },
        "SPACE_TO_DEPTH": { c, node in try c.lowerDepthToSpace(node) },
        "GATHER": { c, node in try c.lowerGather(node) },
        "TRANSPOSE": { c, node in try c.lowerTranspose(node) },
        "STRIDED_SLICE": { c, node in try c.lowerStridedSlice(node) },
    ]

    /// CONCATENATION -> Concat along the axis in the value's layout.
    func lowerConcat(_ node: Node) throws {
        let c = try concatOperands(node)
        try emit("Concat", c.values, node, shape: c.shape, perm: c.layout, attrs: ["axis": .int(c.axis)])
    }

    /// RESHAPE, SQUEEZE, EXPAND_DIMS -> Reshape.
    func lowerReshape(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        guard let x else { throw fail(node, "no input") }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let p = map[x]?.perm
        let input = try get(x, LayoutConverter.orderEquivalent(inShape, p) ? p : nil)
        let s = newConstant(node.name + "/shape", TensorOps.make(int64: outShape))
        try emit("Reshape", [input, s], node, shape: outShape, perm: nil)
    }

    /// PAD / PADV2 with constant paddings -> Pad.
    func lowerPad(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        guard let x, node.inputs.count >= 2, let pd = constant(node.inputs[1])?.integers() else { throw fail(node, "the paddings must be constant") }
        let s = try shape(x)
        let p = map[x]?.perm
        let order = p ?? Array(0..<s.count)
        let begins = order.map { pd[$0 * 2] }, ends = order.map { pd[$0 * 2 + 1] }
        var ins: [ValueID?] = [try get(x, p), newConstant(node.name + "/pads", TensorOps.make(int64: begins + ends))]
        if op == "PADV2", node.inputs.count > 2, let v = node.inputs[2] { ins.append(try get(v, nil)) }
        try emit("Pad", ins, node, shape: try shape(node.outputs[0]), perm: p, attrs: ["mode": .string("constant")])
    }

    /// DEPTH_TO_SPACE / SPACE_TO_DEPTH (DCR).
    func lowerDepthToSpace(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        guard let x else { throw fail(node, "no input") }
        var attrs: [String: Attribute] = ["blocksize": .int(node.int("block_size") ?? 1)]
        if op == "DEPTH_TO_SPACE" { attrs["mode"] = .string("DCR") }
        try emit(op == "DEPTH_TO_SPACE" ? "DepthToSpace" : "SpaceToDepth", [try get(x, TFLiteToONNX.channelsFirst)], node,
                 shape: try shape(node.outputs[0]), perm: TFLiteToONNX.channelsFirst, attrs: attrs)
    }

    /// GATHER with constant indices.
    func lowerGather(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        guard let x, node.inputs.count > 1, let idx = node.inputs[1], let indices = constant(idx)?.integers() else { throw fail(node, "the indices must be constant") }
        let s = try shape(x)
        var axis = node.int("axis") ?? 0
        if axis < 0 { axis += s.count }
        let p = map[x]?.perm
        let target = LayoutConverter.targetAxis(axis, p)
        let indexShape = constant(idx)!.shape
        guard indexShape.count <= 1 || p == nil else { throw fail(node, "multi-dimensional indices on a permuted tensor") }
        try emit("Gather", [try get(x, p), newConstant(node.name + "/indices", TensorOps.make(int64: indices, indexShape))], node,
                 shape: try shape(node.outputs[0]), perm: indexShape.count == 1 ? p : nil, attrs: ["axis": .int(target)])
    }

    /// TRANSPOSE with a constant permutation.
    func lowerTranspose(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        guard let x, node.inputs.count > 1, let q = constant(node.inputs[1])?.integers() else { throw fail(node, "the permutation must be constant") }
        let p = map[x]?.perm
        let inv = TensorOps.inverse(p ?? Array(0..<q.count))
        let t = q.map { inv[$0] }
        try emit("Transpose", [try get(x, p)], node, shape: try shape(node.outputs[0]), perm: nil, attrs: ["perm": .ints(t)])
    }

    func lowerStridedSlice(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 4, let begin = constant(node.inputs[1])?.integers(),
              let end = constant(node.inputs[2])?.integers(), let strides = constant(node.inputs[3])?.integers() else {
            throw fail(node, "begin, end and strides must be constant")
        }
        guard (node.int("ellipsis_mask") ?? 0) == 0, (node.int("new_axis_mask") ?? 0) == 0, (node.int("offset") ?? 0) == 0 else {
            throw fail(node, "ellipsis, new-axis masks and offsets are not converted yet")
        }
        let s = try shape(x)
        let bm = node.int("begin_mask") ?? 0, em = node.int("end_mask") ?? 0, shrink = node.int("shrink_axis_mask") ?? 0
        var starts: [Int] = [], ends: [Int] = [], axes: [Int] = [], steps: [Int] = []
        for a in 0..<min(s.count, begin.count) {
            let st = strides[a]
            guard st != 0 else { throw fail(node, "a zero stride") }
            var b = begin[a], e = end[a]
            if bm & (1 << a) != 0 { b = st > 0 ? 0 : s[a] - 1 }
            if em & (1 << a) != 0 { e = st > 0 ? s[a] : -s[a] - 1 }
            if shrink & (1 << a) != 0 { e = (b < 0 ? b + s[a] : b) + 1; if e == 0 { e = s[a] } }
            starts.append(b); ends.append(e); axes.append(a); steps.append(st)
        }
        let p = map[x]?.perm
        let inv = p.map(TensorOps.inverse)
        let target = axes.map { inv?[$0] ?? $0 }
        let sliced = try shape(node.outputs[0])
        let ins: [ValueID?] = [try get(x, p), newConstant(node.name + "/starts", TensorOps.make(int64: starts)),
                               newConstant(node.name + "/ends", TensorOps.make(int64: ends)), newConstant(node.name + "/axes", TensorOps.make(int64: target)),
                               newConstant(node.name + "/steps", TensorOps.make(int64: steps))]
        if shrink == 0 {
            try emit("Slice", ins, node, shape: sliced, perm: p)
            return
        }
        // Shrunk axes: slice with them kept (size 1), then reshape to the output.
        var full: [Int] = []
        var k = 0
        for a in 0..<s.count {
            if a < starts.count, shrink & (1 << a) != 0 { full.append(1) } else { full.append(k < sliced.count ? sliced[k] : 1); k += 1 }
        }
        let mid = newValue(node.name + "/slice", src.values[x].type.dtype, LayoutConverter.apply(p, full))
        append("Slice", ins, [mid], name: node.name + "/slice")
        let input = LayoutConverter.orderEquivalent(full, p) ? mid : transposeNode(mid, TensorOps.inverse(p ?? Array(0..<full.count)), name: node.name + "/ordered", dtype: src.values[x].type.dtype, shape: full)
        try emit("Reshape", [input, newConstant(node.name + "/shape", TensorOps.make(int64: sliced))], node, shape: sliced, perm: nil)
    }
}
