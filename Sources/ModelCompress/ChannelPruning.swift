import ModelIR

/// Structured pruning: a convolution loses the share `ratio` of its filters with the smallest
/// L1 norms, and the layers that read its output lose the matching input channels, so the
/// model is smaller and does less work on any kernel. A convolution qualifies when its output
/// reaches other convolutions only through per-channel ops: activations, BatchNormalization,
/// pooling, and depthwise convolutions (which lose the same channels: MobileNet's expansion,
/// depthwise, projection). An output that meets an Add (a residual), a Concat, a reshape or a
/// graph output keeps its channels: ResNet's bottlenecks are pruned inside, their residual
/// stream is not.
enum ChannelPruning {
    static let method = "prune-channels"

    /// Ops that act on each channel alone, with the slots of their per-channel constants.
    static let perChannel: [String: [Int]] = [
        "Relu": [], "Clip": [], "LeakyRelu": [], "Sigmoid": [], "HardSigmoid": [], "HardSwish": [], "Tanh": [], "Elu": [],
        "Identity": [], "Dropout": [], "MaxPool": [], "AveragePool": [], "BatchNormalization": [1, 2, 3, 4], "PRelu": [1],
    ]

    /// The layers reading a pruned convolution's output: per-channel ops, depthwise
    /// convolutions (whose filters go with the channels) and the convolutions at the end
    /// (whose input channels go).
    struct Reach {
        var passing: [Int] = []
        var depthwise: [Int] = []
        var readers: [Int] = []
        var values: [ValueID] = []
    }

    static func reach(from start: ValueID, in g: Graph, consumers: [ValueID: [Int]]) -> Reach? {
        var r = Reach()
        var frontier = [start]
        while let v = frontier.popLast() {
            guard !g.outputs.contains(v), let users = consumers[v], !users.isEmpty else { return nil }
            r.values.append(v)
            for u in users {
                let n = g.nodes[u]
                let op = n.op.rawValue
                if n.op == .conv, n.inputs.first == v, (n.kernelLayout ?? .oihw) == .oihw, let w = Compressor.weight(of: n, in: g)?.data,
                   w.dtype == .float32, w.shape.count == 4 {
                    let group = n.int("group") ?? 1
                    if group == 1 {
                        if !r.readers.contains(u) { r.readers.append(u) }
                        continue
                    }
                    // Depthwise, one filter per channel: its channels go with ours.
                    guard group == w.shape[0], w.shape[1] == 1, n.outputs.count == 1 else { return nil }
                    if !r.depthwise.contains(u) { r.depthwise.append(u); frontier.append(n.outputs[0]) }
                    continue
                }
                guard let slots = perChannel[op], n.inputs.first == v, n.outputs.count >= 1 else { return nil }
                // Per-channel constants must be one value per channel (or a scalar).
                for s in slots where s < n.inputs.count {
                    guard let c = n.inputs[s], let t = g.values[c].constant, t.elementCount == 1 || t.shape.count == 1 || t.shape.filter({ $0 > 1 }).count == 1 else { return nil }
                }
                if !r.passing.contains(u) { r.passing.append(u); frontier.append(n.outputs[0]) }
            }
        }
        return r
    }

    static func apply(_ g: Graph, ratio: Double, explicit: Bool, selected: (Node) -> Bool, log: inout CompressionLog) throws {
        var consumers: [ValueID: [Int]] = [:]
        for (i, n) in g.nodes.enumerated() { for case let v? in n.inputs { consumers[v, default: []].append(i) } }
        let edit = GraphEdit(graph: g)
        for i in g.nodes.indices {
            let node = g.nodes[i]
            guard node.op == .conv, selected(node), (node.int("group") ?? 1) == 1, (node.kernelLayout ?? .oihw) == .oihw,
                  let (_, w) = Compressor.weight(of: node, in: g), w.dtype == .float32, w.shape.count == 4, node.outputs.count == 1 else { continue }
            guard let reach = reach(from: node.outputs[0], in: g, consumers: consumers), !reach.readers.isEmpty else {
                if explicit {
                    log.skipped.append(LayerSkip(layer: node.name, op: node.op.rawValue, method: method,
                                                 reason: "its output reaches an op that mixes channels (an Add, a Concat, a reshape) or a graph output"))
                }
                continue
            }
            let filters = w.shape[0], per = w.elementCount / filters
            // Kept filters in multiples of 8 where the layer had such (vector kernels take
            // channels in 8s and 16s: 67 channels run no faster than 72).
            var kept = filters - Int((Double(filters) * ratio).rounded())
            if filters % 8 == 0, kept >= 8 { kept = Int((Double(kept) / 8).rounded()) * 8 }
            guard kept >= 1, kept < filters else { continue }
            let drop = filters - kept
            let values = Weights.floats(w)!
            let norms = (0..<filters).map { o in (0..<per).reduce(Float(0)) { $0 + abs(values[o * per + $1]) } }
            let keep = (0..<filters).sorted { norms[$0] > norms[$1] || (norms[$0] == norms[$1] && $0 < $1) }.prefix(filters - drop).sorted()
            var before = w.elementCount, after = keep.count * per
            // The convolution's filters and bias.
            setInput(g, edit, i, 1, slice(w, axis: 0, keep))
            if node.inputs.count > 2, let b = node.inputs[2], let bias = g.values[b].constant { setInput(g, edit, i, 2, slice(bias, axis: 0, keep)) }
            for k in reach.passing {
                for s in perChannel[g.nodes[k].op.rawValue] ?? [] where s < g.nodes[k].inputs.count {
                    if let c = g.nodes[k].inputs[s], let t = g.values[c].constant, t.elementCount > 1 {
                        setInput(g, edit, k, s, slice(t, axis: t.shape.firstIndex { $0 > 1 } ?? 0, keep))
                    }
                }
            }
            for k in reach.depthwise {
                let dw = g.values[g.nodes[k].inputs[1]!].constant!
                before += dw.elementCount
                setInput(g, edit, k, 1, slice(dw, axis: 0, keep))
                after += g.values[g.nodes[k].inputs[1]!].constant!.elementCount
                if g.nodes[k].inputs.count > 2, let b = g.nodes[k].inputs[2], let bias = g.values[b].constant { setInput(g, edit, k, 2, slice(bias, axis: 0, keep)) }
                g.nodes[k].attributes["group"] = .int(keep.count)
            }
            for k in reach.readers {
                let rw = g.values[g.nodes[k].inputs[1]!].constant!
                before += rw.elementCount
                setInput(g, edit, k, 1, slice(rw, axis: 1, keep))
                after += g.values[g.nodes[k].inputs[1]!].constant!.elementCount
            }
            // The activations between them have fewer channels now.
            for v in [node.outputs[0]] + reach.values + reach.depthwise.map({ g.nodes[$0].outputs[0] }) {
                if var dims = g.values[v].type.shape.dims, dims.count > 1 {
                    dims[1] = .known(keep.count)
                    g.values[v].type.shape = Shape(dims)
                }
            }
            log.changes.append(LayerChange(layer: node.name, op: node.op.rawValue, method: method,
                                           detail: "filters \(filters) -> \(keep.count) (smallest L1 norms out), \(reach.readers.count) reader(s)" +
                                               (reach.depthwise.isEmpty ? "" : ", \(reach.depthwise.count) depthwise"),
                                           parametersBefore: before, parametersAfter: after))
        }
    }

    /// Points input `slot` of node `k` at a new constant (the old one may be shared).
    static func setInput(_ g: Graph, _ edit: GraphEdit, _ k: Int, _ slot: Int, _ data: TensorData) {
        let old = g.nodes[k].inputs[slot].map { g.values[$0].name } ?? g.nodes[k].name
        g.nodes[k].inputs[slot] = edit.constant(old + "/pruned", data)
    }

    /// The elements of `t` whose index along `axis` is in `keep` (float32 or any fixed width).
    static func slice(_ t: TensorData, axis: Int, _ keep: [Int]) -> TensorData {
        let e = max(1, (t.dtype.bitWidth ?? 32) / 8)
        let outer = t.shape[..<axis].reduce(1, *), inner = t.shape[(axis + 1)...].reduce(1, *), n = t.shape[axis]
        var out = [UInt8](repeating: 0, count: outer * keep.count * inner * e)
        t.withBytes { raw in
            out.withUnsafeMutableBytes { dst in
                for o in 0..<outer {
                    for (j, c) in keep.enumerated() {
                        let from = ((o * n + c) * inner) * e, to = ((o * keep.count + j) * inner) * e
                        dst.baseAddress!.advanced(by: to).copyMemory(from: raw.baseAddress!.advanced(by: from), byteCount: inner * e)
                    }
                }
            }
        }
        var shape = t.shape
        shape[axis] = keep.count
        return TensorData(dtype: t.dtype, shape: shape, storage: .owned(out))
    }
}
