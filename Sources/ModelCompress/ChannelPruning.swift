import Foundation
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
            compensate(g, edit, node: i, reach: reach, removed: (0..<filters).filter { !keep.contains($0) })
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

    /// A removed filter's output is taken to be its bias alone (its weights are the smallest):
    /// a constant plane, which the ops on the way map to another constant and each reader turns
    /// into a constant per output channel. That goes into the reader's bias, so the model keeps
    /// the removed channels' average contribution instead of dropping it (with BatchNorm folded
    /// into the weights, biases are large: dropping them changed every top-1 class of a
    /// pretrained EfficientNet-Lite0 at 10% of the filters). Exact for a zero filter and 1x1
    /// readers; at a k x k reader's borders the zero padding makes it approximate.
    static func compensate(_ g: Graph, _ edit: GraphEdit, node i: Int, reach: Reach, removed: [Int]) {
        let n0 = g.nodes[i]
        let bias = n0.inputs.count > 2 ? n0.inputs[2].flatMap { g.values[$0].constant }.flatMap(Weights.floats) : nil
        func constant(_ v: ValueID?) -> [Float]? { v.flatMap { g.values[$0].constant }.flatMap(Weights.floats) }
        var consts: [ValueID: [Float]] = [n0.outputs[0]: removed.map { bias?[$0] ?? 0 }]
        for k in (reach.passing + reach.depthwise).sorted() {
            let n = g.nodes[k]
            guard let v = n.inputs[0], let x = consts[v] else { continue }
            let y: [Float]
            func perChannel(_ slot: Int) -> [Float]? {
                guard let t = constant(slot < n.inputs.count ? n.inputs[slot] : nil) else { return nil }
                return t.count == 1 ? [Float](repeating: t[0], count: removed.count) : removed.map { t[$0] }
            }
            switch n.op.rawValue {
            case "Relu": y = x.map { max(0, $0) }
            case "Clip":
                let lo = constant(n.inputs.count > 1 ? n.inputs[1] : nil)?.first ?? Float(n.float("min") ?? -Double.infinity)
                let hi = constant(n.inputs.count > 2 ? n.inputs[2] : nil)?.first ?? Float(n.float("max") ?? Double.infinity)
                y = x.map { min(max($0, lo), hi) }
            case "LeakyRelu": let a = Float(n.float("alpha") ?? 0.01); y = x.map { $0 < 0 ? a * $0 : $0 }
            case "Sigmoid": y = x.map { 1 / (1 + exp(-$0)) }
            case "HardSigmoid":
                let a = Float(n.float("alpha") ?? 0.2), b = Float(n.float("beta") ?? 0.5)
                y = x.map { min(max(a * $0 + b, 0), 1) }
            case "HardSwish": y = x.map { $0 * min(max($0 / 6 + 0.5, 0), 1) }
            case "Tanh": y = x.map { tanh($0) }
            case "Elu": let a = Float(n.float("alpha") ?? 1); y = x.map { $0 < 0 ? a * (exp($0) - 1) : $0 }
            case "PRelu": let s = perChannel(1) ?? [Float](repeating: 0, count: x.count); y = x.indices.map { x[$0] < 0 ? s[$0] * x[$0] : x[$0] }
            case "BatchNormalization":
                guard let sc = perChannel(1), let b = perChannel(2), let m = perChannel(3), let va = perChannel(4) else { continue }
                let eps = Float(n.float("epsilon") ?? 1e-5)
                y = x.indices.map { sc[$0] * (x[$0] - m[$0]) / (va[$0] + eps).squareRoot() + b[$0] }
            case "Conv":
                // Depthwise: a constant plane times the sum of the channel's taps, plus its bias.
                guard let w = constant(n.inputs[1]) else { continue }
                let taps = w.count / max(1, g.values[n.inputs[1]!].constant!.shape[0])
                let b = perChannel(2) ?? [Float](repeating: 0, count: x.count)
                y = x.indices.map { j in x[j] * (0..<taps).reduce(Float(0)) { $0 + w[removed[j] * taps + $1] } + b[j] }
            default: y = x   // Identity, Dropout, pooling: a constant stays itself
            }
            consts[n.outputs[0]] = y
        }
        for r in reach.readers {
            let n = g.nodes[r]
            guard let v = n.inputs[0], let x = consts[v], let wt = g.values[n.inputs[1]!].constant, let w = Weights.floats(wt) else { continue }
            let (outs, ins) = (wt.shape[0], wt.shape[1])
            let taps = wt.elementCount / (outs * ins)
            var b = (n.inputs.count > 2 ? constant(n.inputs[2]) : nil) ?? [Float](repeating: 0, count: outs)
            for o in 0..<outs {
                for (j, c) in removed.enumerated() where x[j] != 0 {
                    var sum: Float = 0
                    for t in 0..<taps { sum += w[(o * ins + c) * taps + t] }
                    b[o] += x[j] * sum
                }
            }
            let data = Weights.tensor(b, [outs])
            if n.inputs.count > 2, n.inputs[2] != nil { setInput(g, edit, r, 2, data) } else {
                while g.nodes[r].inputs.count < 2 { g.nodes[r].inputs.append(nil) }
                g.nodes[r].inputs.append(edit.constant(n.name + "/bias", data))
            }
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
