import ModelIR

/// Splits a fully-connected layer or a 1x1 convolution W (m outputs x n inputs) into two of
/// rank r by its leading singular vectors, W ≈ U_r (U_rᵀ W): n -> r -> m, with
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
            guard ["Gemm", "MatMul", "Conv", "FullyConnected"].contains(node.op.rawValue), selected(node), let (_, w) = Compressor.weight(of: node, in: g) else {
                nodes.append(node)
                continue
            }
            func skip(_ reason: String) { log.skipped.append(LayerSkip(layer: node.name, op: node.op.rawValue, method: method, reason: reason)) }
            let form: Form
            switch Form.make(node, w) {
            case .success(let f): form = f
            case .failure(let reason):
                // Layers of another kind (k x k, depthwise) are named only when picked by name.
                if explicit || !reason.otherKind { skip(reason.description) }
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
            guard let directions = Weights.Directions(form.matrix(values), m, n) else {
                skip("the eigen-decomposition of its Gram matrix failed")
                nodes.append(node)
                continue
            }
            let r: Int
            switch rank {
            case .fixed(let k): r = k
            case .energy(let e):
                let energies = directions.energies
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
            let (first, second) = directions.split(rank: r)
            nodes += form.split(node, graph: g, rank: r, first: first, second: second)
            let kept = directions.energies.prefix(r).reduce(0, +) / max(1e-30, directions.energies.reduce(0, +))
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

        struct Refusal: Error, CustomStringConvertible {
            let description: String
            var otherKind = false
        }

        /// The layer's form, or why it does not split.
        static func make(_ node: Node, _ w: TensorData) -> Result<Form, Refusal> {
            let kind: Kind, m: Int, n: Int
            switch node.op.rawValue {
            case "Gemm":
                guard w.shape.count == 2 else { return .failure(Refusal(description: "the weight is \(w.shape), not a matrix")) }
                let t = (node.int("transB") ?? 0) != 0
                kind = .gemm(transposedB: t)
                (m, n) = t ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
            case "MatMul":
                guard w.shape.count == 2 else { return .failure(Refusal(description: "the weight is \(w.shape), not a matrix")) }
                kind = .matMul
                (m, n) = (w.shape[1], w.shape[0])
            case "Conv":
                guard w.shape.count == 4, (node.int("group") ?? 1) == 1 else {
                    return .failure(Refusal(description: "grouped and depthwise convolutions do not split", otherKind: true))
                }
                guard node.kernelLayout == nil || node.kernelLayout == .oihw else {
                    return .failure(Refusal(description: "channels-last layers (\(node.kernelLayout!.rawValue) kernels) are not split yet"))
                }
                guard w.shape[2] == 1, w.shape[3] == 1 else {
                    return .failure(Refusal(description: "a \(w.shape[2])x\(w.shape[3]) convolution: low-rank splits take 1x1 ones (k x k ones split by CP decomposition)", otherKind: true))
                }
                kind = .conv1x1
                (m, n) = (w.shape[0], w.shape[1])
            default:
                return .failure(Refusal(description: "channels-last fully-connected layers are not split yet"))
            }
            guard m > 1, n > 1 else { return .failure(Refusal(description: "a \(m)x\(n) matrix has no lower rank")) }
            return .success(Form(kind: kind, m: m, n: n))
        }

        /// The weight as m x n row-major.
        func matrix(_ v: [Float]) -> [Float] {
            switch kind {
            case .gemm(transposedB: true), .conv1x1: return v
            case .gemm(transposedB: false), .matMul: return Weights.transpose(v, rows: n, cols: m)
            }
        }

        /// Two nodes replacing `node`; `first` is r x n, `second` m x r (row-major).
        func split(_ node: Node, graph g: Graph, rank r: Int, first: [Float], second: [Float]) -> [Node] {
            let edit = GraphEdit(graph: g)
            // The rank-r activation: the output's shape with r in place of m along its channel
            // (convolution) or last (matrix) axis.
            let rank = g.values[node.outputs[0]].type.shape.rank ?? 1
            let mid = edit.activation(node.name + "/lowrank", like: node.outputs[0], axis: kind == .conv1x1 ? min(1, rank - 1) : rank - 1, size: r)
            func constant(_ name: String, _ values: [Float], _ shape: [Int]) -> ValueID { edit.constant(name, values, shape) }
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
                a.inputs = [node.inputs[0], constant(weightName + "/lowrank_in", Weights.transpose(first, rows: r, cols: n), [n, r])]
                b.inputs = [mid, constant(weightName + "/lowrank_out", Weights.transpose(second, rows: m, cols: r), [r, m])]
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
