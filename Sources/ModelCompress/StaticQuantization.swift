import Foundation
import ModelIR
import ModelRuntime

/// Post-training static int8 quantization in the QDQ form onnxruntime.quantization writes:
/// a BatchNorm after a convolution folded into its weights first; weights int8, symmetric, one
/// scale per output channel, behind a DequantizeLinear; biases int32 at the input's scale times
/// the weight's; and each activation a layer reads or writes (after its Relu/Clip, where one
/// follows) through a QuantizeLinear -> DequantizeLinear pair, uint8 over the range the
/// calibration inputs gave it (min/max, zero included). A Relu or Clip whose output's pair
/// saturates at its bounds anyway is left out, so that each layer is DequantizeLinear -> Conv ->
/// QuantizeLinear: what runtimes fuse into one integer convolution (onnxruntime, ModelLens). One
/// that does not fuse computes the same values in float.
enum StaticQuantization {
    static let method = "int8"

    /// The range each value takes over the calibration inputs: every tensor a node computes
    /// made a graph output of `model` for the while, run on each feed.
    static func ranges(_ model: Model, feeds: [[String: RTensor]]) throws -> [String: (lo: Float, hi: Float)] {
        let g = model.graph
        let outputs = g.outputs
        defer { g.outputs = outputs }
        var seen = Set(g.outputs)
        for n in g.nodes {
            for o in n.outputs where g.values[o].isTensor && g.values[o].type.dtype == .float32 && seen.insert(o).inserted { g.outputs.append(o) }
        }
        for i in g.inputs where g.values[i].constant == nil { seen.insert(i) }
        let exec = try Executor(model: model, threads: ProcessInfo.processInfo.activeProcessorCount)
        var out: [String: (lo: Float, hi: Float)] = [:]
        for f in feeds {
            var values = try exec.run(f)
            for (name, t) in f { values[name] = t }
            for (name, t) in values where t.dtype == .float32 && t.count > 0 {
                let xs = t.toFloats()
                var lo = xs[0], hi = xs[0]
                for x in xs where x.isFinite { lo = min(lo, x); hi = max(hi, x) }
                if let r = out[name] { out[name] = (min(r.lo, lo), max(r.hi, hi)) } else { out[name] = (lo, hi) }
            }
        }
        return out
    }

    static func apply(_ g: Graph, ranges: [String: (lo: Float, hi: Float)], selected: (Node) -> Bool, log: inout CompressionLog) throws {
        foldBatchNorms(g, selected: selected)
        let edit = GraphEdit(graph: g)
        var consumers: [ValueID: [Int]] = [:]
        for (i, n) in g.nodes.enumerated() { for case let v? in n.inputs { consumers[v, default: []].append(i) } }
        // The layers, and the activations to pass through a quantize/dequantize pair.
        var layers: [Int] = []
        var activations: [ValueID] = []
        func addActivation(_ v: ValueID) { if !activations.contains(v) { activations.append(v) } }
        for (i, node) in g.nodes.enumerated() where [OpKind.conv, .gemm, .matMul].contains(node.op) && selected(node) {
            guard let (_, w) = Compressor.weight(of: node, in: g), let x = node.inputs[0], g.values[x].constant == nil else { continue }
            func skip(_ reason: String) { log.skipped.append(LayerSkip(layer: node.name, op: node.op.rawValue, method: method, reason: reason)) }
            guard w.dtype == .float32, w.shape.count >= 2 else { skip("weights are \(w.dtype.rawValue) \(w.shape), not float32"); continue }
            guard node.op != .conv || node.kernelLayout == nil || node.kernelLayout == .oihw else { skip("channels-last layers are not quantized yet"); continue }
            guard node.op != .matMul || w.shape.count == 2 else { skip("a MatMul by a \(w.shape) weight"); continue }
            guard ranges[g.values[x].name] != nil else { skip("no calibrated range for its input"); continue }
            layers.append(i)
            addActivation(x)
            // The output after the BatchNorm and activation that follow alone, as the fused
            // kernel gives it (a pair between them would keep the BatchNorm from folding).
            var out = node.outputs[0]
            for follower in ["BatchNormalization", "Relu", "Clip"] {
                if let c = consumers[out], c.count == 1, g.nodes[c[0]].op.rawValue == follower, !g.outputs.contains(out) {
                    out = g.nodes[c[0]].outputs[0]
                }
            }
            if ranges[g.values[out].name] != nil { addActivation(out) }
        }
        guard !layers.isEmpty else { return }
        var nodes = g.nodes
        // Weights and biases: integers behind a DequantizeLinear.
        for i in layers {
            let node = g.nodes[i]
            let w = Compressor.weight(of: node, in: g)!.data
            let values = Weights.floats(w)!
            let transposed = node.op == .matMul || (node.op == .gemm && (node.int("transB") ?? 0) == 0)
            let outputs = transposed ? w.shape[1] : w.shape[0]
            let per = values.count / outputs
            func index(_ o: Int, _ k: Int) -> Int { transposed ? k * outputs + o : o * per + k }
            var scales = [Float](repeating: 1, count: outputs), q = [Int8](repeating: 0, count: values.count)
            for o in 0..<outputs {
                var m: Float = 0
                for k in 0..<per { m = max(m, abs(values[index(o, k)])) }
                scales[o] = m > 0 ? m / 127 : 1
                for k in 0..<per { q[index(o, k)] = Int8(clamping: Int((values[index(o, k)] / scales[o]).rounded(.toNearestOrEven))) }
            }
            let name = node.inputs[1].map { g.values[$0].name } ?? node.name
            let axis = transposed ? 1 : 0
            let wq = edit.constant(name + "/int8", TensorData(dtype: .int8, shape: w.shape, storage: .owned(q.map { UInt8(bitPattern: $0) })))
            let dqW = dequantize(edit, wq, scale: scales, zeroPoint: TensorData(dtype: .int8, shape: [outputs], storage: .owned([UInt8](repeating: 0, count: outputs))),
                                 axis: axis, like: node.inputs[1]!, name: name)
            var node2 = node
            node2.inputs[1] = dqW.output
            nodes.append(dqW.node)
            // A bias as int32 at (input scale x weight scale), when it is a float constant of one value per output.
            let x = node.inputs[0]!
            if node.inputs.count > 2, let b = node.inputs[2], let bias = g.values[b].constant, let bv = Weights.floats(bias), bv.count == outputs,
               node.op != .gemm || (node.float("beta") ?? 1) == 1 {
                let (sx, _) = params(ranges[g.values[x].name]!)
                let bs = scales.map { $0 * sx }
                let bq = zip(bv, bs).map { Int32(clamping: Int(($0 / $1).rounded(.toNearestOrEven))) }
                let bqID = edit.constant(g.values[b].name + "/int32", TensorData(dtype: .int32, shape: bias.shape, storage: .owned(bq.withUnsafeBytes { Array($0) })))
                let dqB = dequantize(edit, bqID, scale: bs, zeroPoint: TensorData(dtype: .int32, shape: [outputs], storage: .owned([UInt8](repeating: 0, count: 4 * outputs))),
                                     axis: 0, like: b, name: g.values[b].name)
                node2.inputs[2] = dqB.output
                nodes.append(dqB.node)
            }
            nodes[i] = node2
            log.changes.append(LayerChange(layer: node.name, op: node.op.rawValue, method: method,
                                           detail: "int8 weights, \(outputs) scales", parametersBefore: values.count, parametersAfter: values.count))
        }
        // A Relu / Clip between a layer and its output's pair, where the pair's range lies within
        // the bounds: quantizing clamps as the activation would (Q is monotone and saturates), so
        // the layer writes the activation's output itself.
        var dropped = Set<Int>()
        for i in layers where g.nodes[i].op == .conv {
            guard let out = nodes[i].outputs.first, let c = consumers[out], c.count == 1, !g.outputs.contains(out) else { continue }
            let act = nodes[c[0]]
            guard ["Relu", "Clip"].contains(act.op.rawValue), act.inputs.first == out, act.outputs.count == 1,
                  let v = act.outputs.first, activations.contains(v), !g.outputs.contains(v), let r = ranges[g.values[v].name] else { continue }
            var lo: Float = 0, hi = Float.infinity
            if act.op.rawValue == "Clip" {
                func bound(_ k: Int, _ attribute: String) -> Float?? {
                    if k < act.inputs.count, let b = act.inputs[k] { return g.values[b].constant.flatMap(Weights.floats)?.first.map { .some($0) } }
                    return .some(act.float(attribute).map(Float.init))
                }
                guard let l = bound(1, "min"), let h = bound(2, "max") else { continue }
                lo = l ?? -.infinity
                hi = h ?? .infinity
            }
            let (scale, zero) = params(r)
            guard (lo / scale).rounded(.toNearestOrEven) + Float(zero) <= 0,
                  (hi / scale).rounded(.toNearestOrEven) + Float(zero) >= 255 else { continue }
            nodes[i].outputs = [v]
            dropped.insert(c[0])
        }
        // Activations: x -> QuantizeLinear -> DequantizeLinear, read by every consumer of x.
        for v in activations {
            let (scale, zero) = params(ranges[g.values[v].name]!)
            let base = g.values[v].name
            let s = edit.constant(base + "/scale", [scale], [])
            let z = edit.constant(base + "/zero_point", TensorData(dtype: .uint8, shape: [], storage: .owned([zero])))
            let q = g.addValue(name: edit.unique(base + "/quantized"), type: TensorType(dtype: .uint8, shape: g.values[v].type.shape))
            let d = g.addValue(name: edit.unique(base + "/dequantized"), type: g.values[v].type)
            for k in consumers[v] ?? [] {
                for (slot, input) in nodes[k].inputs.enumerated() where input == v { nodes[k].inputs[slot] = d }
            }
            nodes.append(Node(name: edit.unique(base + "/QuantizeLinear"), op: OpKind("QuantizeLinear"), sourceOp: "QuantizeLinear", inputs: [v, s, z], outputs: [q]))
            nodes.append(Node(name: edit.unique(base + "/DequantizeLinear"), op: OpKind("DequantizeLinear"), sourceOp: "DequantizeLinear", inputs: [q, s, z], outputs: [d]))
        }
        g.nodes = nodes.enumerated().filter { !dropped.contains($0.offset) }.map(\.element)
        try g.sortTopologically()
    }

    /// Conv -> BatchNormalization (inference, constant float parameters, one per output channel)
    /// folded into the convolution's float weights and bias (BatchNormFold, the executor's own
    /// arithmetic), before the weights are quantized, as onnxruntime's and TFLite's quantizers do.
    static func foldBatchNorms(_ g: Graph, selected: (Node) -> Bool) {
        var consumers: [ValueID: [Int]] = [:]
        for (i, n) in g.nodes.enumerated() { for case let v? in n.inputs { consumers[v, default: []].append(i) } }
        let edit = GraphEdit(graph: g)
        var folded = Set<Int>()
        for (i, conv) in g.nodes.enumerated() where conv.op == .conv && selected(conv) && (conv.kernelLayout ?? .oihw) == .oihw {
            guard conv.outputs.count == 1, let out = conv.outputs.first, !g.outputs.contains(out), let c = consumers[out], c.count == 1,
                  conv.inputs.count > 1, let wv = conv.inputs[1], let w = g.values[wv].constant, w.dtype == .float32, w.shape.count >= 3,
                  let wf = Weights.floats(w) else { continue }
            let bn = g.nodes[c[0]], outC = w.shape[0]
            guard bn.op == .batchNormalization, bn.inputs.count == 5, bn.inputs[0] == out, bn.outputs.count == 1,
                  (bn.int("training_mode") ?? 0) == 0 else { continue }
            let p = bn.inputs.dropFirst().map { $0.flatMap { g.values[$0].constant }.flatMap(Weights.floats) }
            guard let gamma = p[0], let beta = p[1], let mean = p[2], let variance = p[3],
                  [gamma, beta, mean, variance].allSatisfy({ $0.count == outC }) else { continue }
            let biasID = conv.inputs.count > 2 ? conv.inputs[2] : nil
            let oldBias = biasID.flatMap { g.values[$0].constant }.flatMap(Weights.floats)
            if biasID != nil, oldBias?.count != outC { continue }
            let (a, shift) = BatchNormFold.fold(gamma: gamma, beta: beta, mean: mean, variance: variance,
                                                epsilon: Float(bn.float("epsilon") ?? 1e-5), bias: oldBias)
            let per = wf.count / outC
            let scaled = wf.enumerated().map { $0.element * a[$0.offset / per] }
            var node = conv
            node.inputs[1] = edit.constant(g.values[wv].name + "/bn_folded", scaled, w.shape)
            let b = edit.constant((biasID.map { g.values[$0].name } ?? conv.name + "/bias") + "/bn_folded", shift, [outC])
            if node.inputs.count > 2 { node.inputs[2] = b } else { node.inputs.append(b) }
            node.outputs = bn.outputs
            g.nodes[i] = node
            folded.insert(c[0])
        }
        g.nodes = g.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
    }

    /// uint8 scale and zero point for a range, widened to hold zero (so that zero padding and
    /// Relu's zeros are exact), as onnxruntime's MinMax calibration does.
    static func params(_ r: (lo: Float, hi: Float)) -> (scale: Float, zero: UInt8) {
        let lo = min(0, r.lo), hi = max(0, r.hi)
        let scale = hi > lo ? (hi - lo) / 255 : 1
        let zero = UInt8(clamping: Int((-lo / scale).rounded(.toNearestOrEven)))
        return (scale, zero)
    }

    static func dequantize(_ edit: GraphEdit, _ x: ValueID, scale: [Float], zeroPoint: TensorData, axis: Int, like: ValueID, name: String)
        -> (node: Node, output: ValueID) {
        let g = edit.graph
        let s = edit.constant(name + "/scale", scale, [scale.count])
        let z = edit.constant(name + "/zero_point", zeroPoint)
        let out = g.addValue(name: edit.unique(name + "/dequantized"), type: TensorType(dtype: .float32, shape: g.values[like].type.shape))
        return (Node(name: edit.unique(name + "/DequantizeLinear"), op: OpKind("DequantizeLinear"), sourceOp: "DequantizeLinear",
                     inputs: [x, s, z], outputs: [out], attributes: ["axis": .int(axis)]), out)
    }
}
