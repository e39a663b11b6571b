import ModelIR

/// Weights stored as IEEE half precision (`--quantize fp16`): each float32 weight and bias of a
/// convolution or fully-connected layer becomes a float16 constant read through a Cast to
/// float32, so the file's weights take half the bytes while every layer still computes in
/// float32 (a runtime folds the Cast once, at load).
enum HalfPrecision {
    static let method = "fp16"

    static func apply(_ g: Graph, selected: (Node) -> Bool, log: inout CompressionLog) throws {
        let edit = GraphEdit(graph: g)
        var converted: [ValueID: ValueID] = [:]
        var casts: [Node] = []
        for k in g.nodes.indices {
            let node = g.nodes[k]
            guard [OpKind.conv, .gemm, .matMul, .convTranspose].contains(node.op), selected(node) else { continue }
            var before = 0, changed = false
            for slot in [1, 2] where slot < node.inputs.count {
                guard let v = node.inputs[slot], let t = g.values[v].constant, t.dtype == .float32, let values = Weights.floats(t) else { continue }
                if let done = converted[v] {
                    g.nodes[k].inputs[slot] = done
                    continue
                }
                var half = [UInt8](repeating: 0, count: 2 * values.count)
                for (i, x) in values.enumerated() {
                    let h = halfBits(x)
                    half[2 * i] = UInt8(h & 0xFF)
                    half[2 * i + 1] = UInt8(h >> 8)
                }
                let stored = edit.constant(g.values[v].name + "/fp16", TensorData(dtype: .float16, shape: t.shape, storage: .owned(half)))
                let out = g.addValue(name: edit.unique(g.values[v].name + "/float"), type: TensorType(dtype: .float32, shape: Shape(known: t.shape)))
                casts.append(Node(name: edit.unique(g.values[v].name + "/Cast"), op: OpKind("Cast"), sourceOp: "Cast", inputs: [stored], outputs: [out],
                                  attributes: ["to": .string(DType.float32.rawValue)]))
                converted[v] = out
                g.nodes[k].inputs[slot] = out
                before += values.count
                changed = true
            }
            if changed {
                log.changes.append(LayerChange(layer: node.name, op: node.op.rawValue, method: method, detail: "weights stored as float16",
                                               parametersBefore: before, parametersAfter: before))
            }
        }
        g.nodes = casts + g.nodes
        try g.sortTopologically()
    }

    /// The IEEE half nearest to `f` (ties to even); beyond the half range, infinity.
    static func halfBits(_ f: Float) -> UInt16 {
        let b = f.bitPattern
        let sign = UInt16((b >> 16) & 0x8000)
        let exponent = Int((b >> 23) & 0xFF), mantissa = b & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }   // inf, NaN
        let e = exponent - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            // Subnormal half (or zero): shift the mantissa with its implicit bit in, round to even.
            guard e >= -10 else { return sign }
            let m = mantissa | 0x80_0000
            let shift = UInt32(14 - e)
            var h = m >> shift
            let rest = m & ((1 << shift) - 1), halfway = UInt32(1) << (shift - 1)
            if rest > halfway || (rest == halfway && h & 1 == 1) { h += 1 }
            return sign | UInt16(h)
        }
        var h = UInt32(e) << 10 | mantissa >> 13
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }   // may carry into the exponent: still right
        return sign | UInt16(h)
    }
}
