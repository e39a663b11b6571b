import ModelIR

/// Splits a fully-connected layer or a 1x1 convolution W (m outputs x n inputs) into two of
/// rank r by its singular value decomposition, W ≈ (U_r √S_r)(√S_r V_rᵀ): n -> r -> m, with
/// r (m + n) weights and MACs instead of m n. The first layer takes the original's input
/// handling (stride, padding, transposed input), the second its bias and scaling. At the
/// full rank the pair computes the original up to rounding.
enum LowRankSplit {
    enum Rank {
        case fixed(Int)
        case energy(Double)
    }

    static let method = "lowrank"

    static func apply(_ model: Model, rank: Rank, explicit: Bool, selected: (Node) -> Bool, log: inout CompressionLog) throws {
        let g = model.graph
        var nodes: [Node] = []
        nodes.reserveCapacity(g.nodes.count)
        for node in g.nodes {
            guard ["Gemm", "MatMul", "Conv"].contains(node.op.rawValue), selected(node), let (_, w) = Compressor.weight(of: node, in: g) else {
                nodes.append(node)
                continue
            }
            func skip(_ reason: String) { log.skipped.append(LayerSkip(layer: node.name, op: node.op.rawValue, method: method, reason: reason)) }
            guard model.format.rawValue == "onnx" else {
                skip("splits are written as ONNX layers: convert the model to .onnx first")
                nodes.append(node)
                continue
            }
            guard let form = Form(node, w) else {
                if node.op == .conv, explicit || w.shape.count == 4 && w.shape[2...].allSatisfy({ $0 == 1 }) {
                    skip("only 1x1 convolutions of one group split this way (k x k ones by CP decomposition)")
                } else if node.op != .conv {
                    skip("the weight is \(w.shape), not a matrix")
                }
                nodes.append(node)
                continue
            }
            guard let values = Weights.floats(w) else {
                skip("weights are \(w.dtype.rawValue), not float32")
                nodes.append(node)
                continue
            }
            let (m, n) = (form.m, form.n)
            let full = min(m, n)
            let saving = m * n / (m + n)  // ranks below this save weights
            if case .fixed(let r) = rank, r >= full {
                if explicit {
                    throw CompressionError("layer '\(node.name)' (\(node.op.rawValue), \(m)x\(n)): rank \(r) is not below the layer's \(full); allowed 1...\(full - 1), saving weights below \(saving + 1)")
                }
                skip("rank \(r) is not below the layer's \(full) (\(m)x\(n))")
                nodes.append(node)
                continue
            }
            guard let svd = Weights.svd(form.matrix(values), m, n) else {
                skip("the singular value decomposition failed")
                nodes.append(node)
                continue
            }
            let r: Int
            switch rank {
            case .fixed(let k): r = k
            case .energy(let e):
                let energies = svd.s.map { Double($0) * Double($0) }
                let total = energies.reduce(0, +)
                var acc = 0.0, k = full
                for (i, v) in energies.enumerated() {
                    acc += v
                    if acc >= e * total * (1 - 1e-12) { k = i + 1; break }
                }
                r = k
            }
            guard r * (m + n) < m * n else {
                skip("rank \(r) of \(full) (\(m)x\(n)) saves nothing: \(r * (m + n)) weights against \(m * n)")
                nodes.append(node)
                continue
            }
            // first = √S_r V_rᵀ (r x n), second = U_r √S_r (m x r).
            var first = [Float](repeating: 0, count: r * n), second = [Float](repeating: 0, count: m * r)
            for i in 0..<r {
                let root = svd.s[i].squareRoot()
                for j in 0..<n { first[i * n + j] = root * svd.vt[i * n + j] }
                for j in 0..<m { second[j * r + i] = svd.u[j * full + i] * root }
            }
            nodes += form.split(node, graph: g, rank: r, first: first, second: second)
            let kept = svd.s.prefix(r).reduce(0.0) { $0 + Double($1) * Double($1) } / max(1e-30, svd.s.reduce(0.0) { $0 + Double($1) * Double($1) })
            log.changes.append(LayerChange(layer: node.name, op: node.op.rawValue, method: method,
                                           detail: String(format: "rank %d of %d (%dx%d), %.1f%% of the energy", r, full, m, n, 100 * kept),
                                           parametersBefore: m * n, parametersAfter: r * (m + n)))
        }
        g.nodes = nodes
        try g.sortTopologically()
    }

    /// How a layer holds its m x n matrix (outputs x inputs) and how its two halves are written.
    struct Form {
        enum Kind { case gemm(transposedB: Bool), matMul, conv1x1 }
        let kind: Kind
        let m: Int, n: Int

        init?(_ node: Node, _ w: TensorData) {
            switch node.op.rawValue {
            case "Gemm":
                guard w.shape.count == 2 else { return nil }
                let t = (node.int("transB") ?? 0) != 0
                kind = .gemm(transposedB: t)
                (m, n) = t ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
            case "MatMul":
                guard w.shape.count == 2 else { return nil }
                kind = .matMul
                (m, n) = (w.shape[1], w.shape[0])
            default:
                guard w.shape.count == 4, w.shape[2] == 1, w.shape[3] == 1, (node.int("group") ?? 1) == 1,
                      node.kernelLayout == nil || node.kernelLayout == .oihw else { return nil }
                kind = .conv1x1
                (m, n) = (w.shape[0], w.shape[1])
            }
            guard m > 1, n > 1 else { return nil }
        }

        /// The weight as m x n row-major.
        func matrix(_ v: [Float]) -> [Float] {
            switch kind {
            case .gemm(transposedB: true), .conv1x1: return v
            case .gemm(transposedB: false), .matMul: return transpose(v, rows: n, cols: m)
            }
        }

        func transpose(_ v: [Float], rows: Int, cols: Int) -> [Float] {
            var out = [Float](repeating: 0, count: v.count)
            for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = v[i * cols + j] } }
            return out
        }

        /// Two nodes replacing `node`; `first` is r x n, `second` m x r (row-major).
        func split(_ node: Node, graph g: Graph, rank r: Int, first: [Float], second: [Float]) -> [Node] {
            func unique(_ base: String) -> String {
                var name = base, k = 1
                while g.value(named: name) != nil { name = "\(base)_\(k)"; k += 1 }
                return name
            }
            func constant(_ name: String, _ values: [Float], _ shape: [Int]) -> ValueID {
                let id = g.addValue(name: unique(name), type: TensorType(dtype: .float32, shape: Shape(known: shape)))
                g.values[id].constant = Weights.tensor(values, shape)
                return id
            }
            // The rank-r activation: the output's shape with r in place of m along its channel
            // (convolution) or last (matrix) axis.
            let out = g.values[node.outputs[0]].type
            var dims = out.shape.dims
            if var d = dims, !d.isEmpty {
                d[kind == .conv1x1 ? min(1, d.count - 1) : d.count - 1] = .known(r)
                dims = d
            }
            let mid = g.addValue(name: unique(node.name + "/lowrank"), type: TensorType(dtype: out.dtype, shape: Shape(dims)))
            let weightName = node.inputs[1].map { g.values[$0].name } ?? node.name
            var a = node, b = node
            a.name = node.name + "/lowrank_in"
            b.name = node.name + "/lowrank_out"
            a.outputs = [mid]
            switch kind {
            case .gemm:
                a.inputs = [node.inputs[0], constant(weightName + "/lowrank_in", first, [r, n])]
                a.attributes = ["transB": .int(1)]
                if let t = node.attributes["transA"] { a.attributes["transA"] = t }
                b.inputs = [mid, constant(weightName + "/lowrank_out", second, [m, r])] + node.inputs.dropFirst(2)
                b.attributes["transA"] = nil
                b.attributes["transB"] = .int(1)
            case .matMul:
                a.inputs = [node.inputs[0], constant(weightName + "/lowrank_in", transpose(first, rows: r, cols: n), [n, r])]
                b.inputs = [mid, constant(weightName + "/lowrank_out", transpose(second, rows: m, cols: r), [r, m])]
            case .conv1x1:
                a.inputs = [node.inputs[0], constant(weightName + "/lowrank_in", first, [r, n, 1, 1])]
                b.inputs = [mid, constant(weightName + "/lowrank_out", second, [m, r, 1, 1])] + node.inputs.dropFirst(2)
                // Stride and padding happen once, in the first; the second maps pixel to pixel.
                for key in ["strides", "pads", "dilations", "auto_pad"] { b.attributes[key] = nil }
                b.attributes["kernel_shape"] = .ints([1, 1])
                a.attributes["kernel_shape"] = .ints([1, 1])
            }
            a.fusedActivation = nil
            return [a, b]
        }
    }
}

extension LowRankSplit.Form.Kind: Equatable {}
