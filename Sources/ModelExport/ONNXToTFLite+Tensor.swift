import ModelIR
import ModelRuntime

extension ONNXToTFLite {
    /// Data movement: reshapes, transposes, concatenation, slices, splits.
    static let tensorLowerings: [String: Lowering] = [
        "Flatten": { c, node, index in try c.lowerReshape(node) },
        "Reshape": { c, node, index in try c.lowerReshape(node) },
        "Squeeze": { c, node, index in try c.lowerReshape(node) },
        "Unsqueeze": { c, node, index in try c.lowerReshape(node) },
        "Transpose": { c, node, index in try c.lowerTranspose(node) },
        "Concat": { c, node, index in try c.lowerConcat(node) },
        "Slice": { c, node, index in try c.lowerSlice(node) },
        "Split": { c, node, index in try c.lowerSplit(node) },
    ]

    /// Channels-last layout of a rank-`r` value whose axes 1...k are channel axes.
    static func channelsLast(rank r: Int, channelAxes k: Int) -> [Int] { [0] + Array((k + 1)..<r) + Array(1...k) }

    func lowerReshape(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let dtype = src.values[x].type.dtype
        let p = map[x]?.perm
        if let p, !LayoutConverter.orderEquivalent(inShape, p) {
            // Regrouping the channel axes only: stay channels-last.
            let r = inShape.count
            if let k = (1..<r).first(where: { p == ONNXToTFLite.channelsLast(rank: r, channelAxes: $0) }) {
                let spatial = Array(inShape[(k + 1)...])
                let s = spatial.count
                if outShape.count > s + 1, outShape.first == inShape.first, Array(outShape.suffix(s)) == spatial {
                    let q = ONNXToTFLite.channelsLast(rank: outShape.count, channelAxes: outShape.count - 1 - s)
                    let target = LayoutConverter.apply(q, outShape)
                    let shapeID = newConstant(node.name + "/shape", TensorOps.make(int32: target))
                    emit("RESHAPE", [try get(x, p), shapeID], node, shape: outShape, dtype: dtype, perm: q, attrs: ["new_shape": .ints(target)])
                    return
                }
            }
        }
        let input = try get(x, LayoutConverter.orderEquivalent(inShape, p) ? p : nil)
        let shapeID = newConstant(node.name + "/shape", TensorOps.make(int32: outShape))
        emit("RESHAPE", [input, shapeID], node, shape: outShape, dtype: dtype, perm: nil, attrs: ["new_shape": .ints(outShape)])
    }

    func lowerTranspose(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let s = try shape(x)
        let q = node.ints("perm") ?? Array((0..<s.count).reversed())
        let pin = map[x]?.perm ?? Array(0..<s.count)
        let inv = TensorOps.inverse(pin)
        // Output layout: the input's, unless the plain order makes the transpose vanish.
        var candidates: [[Int]?] = [map[x]?.perm, nil]
        if q.count == 4 { candidates.append(ONNXToTFLite.channelsLast) }
        for pout in candidates {
            let po = pout ?? Array(0..<q.count)
            let t = po.map { inv[q[$0]] }
            if LayoutConverter.isIdentity(t) {
                map[node.outputs[0]] = (try get(x, map[x]?.perm), pout)
                report.opsMapped["Transpose -> (absorbed by the layout)", default: 0] += 1
                return
            }
        }
        let pout = map[x]?.perm
        let po = pout ?? Array(0..<q.count)
        let t = po.map { inv[q[$0]] }
        let permID = newConstant(node.name + "/perm", TensorOps.make(int32: t))
        emit("TRANSPOSE", [try get(x, map[x]?.perm), permID], node, shape: try shape(node.outputs[0]), dtype: src.values[x].type.dtype, perm: pout)
    }

    func lowerConcat(_ node: Node) throws {
        let c = try concatOperands(node)
        emit("CONCATENATION", c.values, node, shape: c.shape, dtype: c.dtype, perm: c.layout, attrs: ["axis": .int(c.axis)])
    }

    func lowerSlice(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let s = try shape(x)
        var starts: [Int], ends: [Int], axes: [Int], steps: [Int]
        if node.inputs.count >= 3 {
            guard let st = constant(node.inputs[1])?.integers(), let en = constant(node.inputs[2])?.integers() else { throw fail(node, "starts and ends must be constant") }
            starts = st; ends = en
            axes = node.inputs.count > 3 ? (constant(node.inputs[3])?.integers() ?? Array(0..<st.count)) : Array(0..<st.count)
            steps = node.inputs.count > 4 ? (constant(node.inputs[4])?.integers() ?? Array(repeating: 1, count: st.count)) : Array(repeating: 1, count: st.count)
        } else {
            starts = node.ints("starts") ?? []; ends = node.ints("ends") ?? []
            axes = node.ints("axes") ?? Array(0..<starts.count); steps = Array(repeating: 1, count: starts.count)
        }
        var begin = [Int](repeating: 0, count: s.count), end = s, stride = [Int](repeating: 1, count: s.count)
        for (k, a0) in axes.enumerated() {
            let a = a0 < 0 ? a0 + s.count : a0
            guard steps[k] > 0 else { throw fail(node, "negative slice steps are not converted yet") }
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + s[a] : v, 0), s[a]) }
            begin[a] = clamp(starts[k]); end[a] = clamp(ends[k]); stride[a] = steps[k]
        }
        let p = map[x]?.perm
        let order = p ?? Array(0..<s.count)
        let b = newConstant(node.name + "/begin", TensorOps.make(int32: order.map { begin[$0] }))
        let e = newConstant(node.name + "/end", TensorOps.make(int32: order.map { end[$0] }))
        let st = newConstant(node.name + "/strides", TensorOps.make(int32: order.map { stride[$0] }))
        emit("STRIDED_SLICE", [try get(x, p), b, e, st], node, shape: try shape(node.outputs[0]), dtype: src.values[x].type.dtype, perm: p,
             attrs: ["begin_mask": .int(0), "end_mask": .int(0), "ellipsis_mask": .int(0), "new_axis_mask": .int(0), "shrink_axis_mask": .int(0)])
    }

    func lowerSplit(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let s = try shape(x)
        var axis = node.int("axis") ?? 0
        if axis < 0 { axis += s.count }
        let sizes = try node.outputs.map { try shape($0)[axis] }
        let p = map[x]?.perm
        let tflAxis = LayoutConverter.targetAxis(axis, p)
        let sizeID = newConstant(node.name + "/size_splits", TensorOps.make(int32: sizes))
        var outs: [ValueID] = []
        for o in node.outputs {
            let id = newValue(src.values[o].name, src.values[x].type.dtype, LayoutConverter.apply(p, try shape(o)))
            map[o] = (id, p)
            outs.append(id)
        }
        // In the importer's form: value and sizes as inputs, the axis as an attribute (the writer restores its tensor).
        out.nodes.append(Node(name: node.name, op: OpKind("Split"), sourceOp: "SPLIT_V", domain: "tflite", version: 1,
                              inputs: [try get(x, p), sizeID], outputs: outs, attributes: ["axis": .int(tflAxis), "num_splits": .int(outs.count)]))
        report.opsMapped["Split -> SPLIT_V", default: 0] += 1
    }
}
