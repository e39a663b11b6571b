import CKernels
import ModelIR

/// Splits a k x k convolution by CP decomposition (paper 003 §2.2, after Lebedev et al.):
/// W[o, i, y, x] ≈ Σ_r A[o, r] B[i, r] C[y, r] D[x, r] becomes a 1x1 convolution I -> R (B),
/// a depthwise k x 1 one (C, the vertical stride and padding), a depthwise 1 x k one (D, the
/// horizontal ones) and a 1x1 one R -> O (A, with the bias): R (O + I + kh + kw) weights
/// instead of O I kh kw. The factors come from alternating least squares (mlk_cp_als) from a
/// fixed seed, so the same model gives the same file.
enum CPSplit {
    static let method = "cp"
    static let iterations = 100

    static func apply(_ g: Graph, rank r: Int, explicit: Bool, selected: (Node) -> Bool, log: inout CompressionLog) throws {
        var nodes: [Node] = []
        nodes.reserveCapacity(g.nodes.count)
        for node in g.nodes {
            guard node.op == .conv, selected(node), let (_, w) = Compressor.weight(of: node, in: g), w.shape.count == 4 else {
                nodes.append(node)
                continue
            }
            func skip(_ reason: String) {
                log.skipped.append(LayerSkip(layer: node.name, op: node.op.rawValue, method: method, reason: reason))
                nodes.append(node)
            }
            let (o, i, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
            // 1x1 and grouped convolutions are another method's (or none's): named only when picked.
            guard kh * kw > 1, (node.int("group") ?? 1) == 1 else {
                if explicit { skip(kh * kw == 1 ? "a 1x1 convolution: use --lowrank" : "grouped and depthwise convolutions do not split") } else { nodes.append(node) }
                continue
            }
            guard node.kernelLayout == nil || node.kernelLayout == .oihw else { skip("channels-last layers (\(node.kernelLayout!.rawValue) kernels) are not split yet"); continue }
            let autoPad = node.string("auto_pad") ?? "NOTSET"
            guard autoPad == "NOTSET" || autoPad == "VALID" else { skip("auto_pad \(autoPad): only explicit padding splits"); continue }
            let most = o * i * kh * kw / (o + i + kh + kw)
            guard r <= most else {
                if explicit { throw CompressionError("layer '\(node.name)' (Conv \(o)x\(i)x\(kh)x\(kw)): CP rank \(r) saves nothing; allowed 1...\(most)") }
                skip("CP rank \(r) saves nothing on \(o)x\(i)x\(kh)x\(kw) (at most \(most) does)")
                continue
            }
            guard let values = Weights.floats(w) else { skip("weights are \(w.dtype.rawValue), not float32"); continue }
            guard let x = node.inputs[0] else { nodes.append(node); continue }
            let dims = [o, i, kh, kw]
            // The four factors in one buffer: A, B, C, D one after the other.
            var flat = [Float](repeating: 0, count: dims.reduce(0, +) * r)
            let offsets = [0, o * r, (o + i) * r, (o + i + kh) * r]
            let error = values.withUnsafeBufferPointer { xp -> Double in
                dims.map(Int32.init).withUnsafeBufferPointer { dp in
                    flat.withUnsafeMutableBufferPointer { fp in
                        var ptrs: [UnsafeMutablePointer<Float>?] = offsets.map { fp.baseAddress! + $0 }
                        return mlk_cp_als(xp.baseAddress, dp.baseAddress, Int32(r), Int32(iterations), 0x5eed, &ptrs)
                    }
                }
            }
            let f = (0..<4).map { Array(flat[offsets[$0]..<(offsets[$0] + dims[$0] * r)]) }
            guard error >= 0, error.isFinite else { skip("the CP decomposition did not converge"); continue }
            let (a, b, c, d) = (f[0], f[1], f[2], f[3])
            var first = [Float](repeating: 0, count: r * i), vertical = [Float](repeating: 0, count: r * kh)
            var horizontal = [Float](repeating: 0, count: r * kw)
            for k in 0..<r {
                for j in 0..<i { first[k * i + j] = b[j * r + k] }
                for y in 0..<kh { vertical[k * kh + y] = c[y * r + k] }
                for z in 0..<kw { horizontal[k * kw + z] = d[z * r + k] }
            }
            let strides = node.ints("strides") ?? [1, 1], dilations = node.ints("dilations") ?? [1, 1]
            let pads = autoPad == "VALID" ? [0, 0, 0, 0] : (node.ints("pads") ?? [0, 0, 0, 0])
            let edit = GraphEdit(graph: g)
            let weightName = node.inputs[1].map { g.values[$0].name } ?? node.name
            let inDims = g.values[x].type.shape.dims?.map(\.value) ?? []
            let outDims = g.values[node.outputs[0]].type.shape.dims?.map(\.value) ?? []
            let batch = inDims.first ?? nil
            let h1 = edit.activation(node.name + "/cp_in", dtype: g.values[x].type.dtype, dims: [batch, r, inDims.count > 2 ? inDims[2] : nil, inDims.count > 3 ? inDims[3] : nil])
            let h2 = edit.activation(node.name + "/cp_vertical", dtype: g.values[x].type.dtype, dims: [batch, r, outDims.count > 2 ? outDims[2] : nil, inDims.count > 3 ? inDims[3] : nil])
            let h3 = edit.activation(node.name + "/cp_horizontal", dtype: g.values[x].type.dtype, dims: [batch, r, outDims.count > 2 ? outDims[2] : nil, outDims.count > 3 ? outDims[3] : nil])
            func conv(_ suffix: String, _ inputs: [ValueID?], _ output: ValueID, kernel: [Int], group: Int = 1, strides s: [Int] = [1, 1],
                      pads p: [Int] = [0, 0, 0, 0], dilations dl: [Int] = [1, 1]) -> Node {
                var n = node
                n.name = node.name + suffix
                n.inputs = inputs
                n.outputs = [output]
                n.attributes = ["kernel_shape": .ints(kernel), "group": .int(group), "strides": .ints(s), "pads": .ints(p), "dilations": .ints(dl)]
                n.fusedActivation = nil
                return n
            }
            nodes.append(conv("/cp_in", [x, edit.constant(weightName + "/cp_in", first, [r, i, 1, 1])], h1, kernel: [1, 1]))
            nodes.append(conv("/cp_vertical", [h1, edit.constant(weightName + "/cp_vertical", vertical, [r, 1, kh, 1])], h2, kernel: [kh, 1], group: r,
                              strides: [strides[0], 1], pads: [pads[0], 0, pads[2], 0], dilations: [dilations[0], 1]))
            nodes.append(conv("/cp_horizontal", [h2, edit.constant(weightName + "/cp_horizontal", horizontal, [r, 1, 1, kw])], h3, kernel: [1, kw], group: r,
                              strides: [1, strides[1]], pads: [0, pads[1], 0, pads[3]], dilations: [1, dilations[1]]))
            var last = conv("/cp_out", [h3, edit.constant(weightName + "/cp_out", a, [o, r, 1, 1])] + node.inputs.dropFirst(2), node.outputs[0], kernel: [1, 1])
            last.fusedActivation = node.fusedActivation
            nodes.append(last)
            log.changes.append(LayerChange(layer: node.name, op: node.op.rawValue, method: method,
                                           detail: String(format: "rank %d (%dx%dx%dx%d), relative error %.3f", r, o, i, kh, kw, error),
                                           parametersBefore: o * i * kh * kw, parametersAfter: r * (o + i + kh + kw)))
        }
        g.nodes = nodes
        try g.sortTopologically()
    }
}
