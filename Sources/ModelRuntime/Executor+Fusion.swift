import CKernels
import Foundation
import ModelIR

/// The plan's fusions: BatchNorm folded into the conv before it, activations and residual adds
/// run inside the conv kernel.
extension Executor {
    /// Conv -> BatchNormalization (inference, constant parameters) -> Relu / Clip: the BatchNorm
    /// becomes a per-channel scale and shift the conv kernel applies as it stores (folded into a
    /// copy of the weights for depthwise convs), the activation runs inside the conv kernel, and the
    /// absorbed nodes become views of the conv's output. The conv's inputs are then
    /// [x, w, shift, residual, scale] (nil where absent).
    func fusions() -> (inputs: [Int: [ValueID?]], activation: [Int: (Int32, Float, Float)]) {
        var consumers: [ValueID: [Int]] = [:]
        for (i, n) in graph.nodes.enumerated() { for case let v? in n.inputs { consumers[v, default: []].append(i) } }
        let outputs = Set(graph.outputs)
        func single(_ v: ValueID) -> Int? {
            guard !outputs.contains(v), let c = consumers[v], c.count == 1 else { return nil }
            return c[0]
        }
        var newInputs: [Int: [ValueID?]] = [:]
        var activation: [Int: (Int32, Float, Float)] = [:]
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv && conv.fusedActivation == nil {
            guard conv.inputs.count >= 2, let wID = conv.inputs[1], let w = constantTensor(wID), w.dtype == .float32, w.shape.count == 4,
                  let out = conv.outputs.first else { continue }
            var tail = out
            if let j = single(out), graph.nodes[j].op == .batchNormalization, graph.nodes[j].outputs.count == 1,
               (graph.nodes[j].int("training_mode") ?? 0) == 0, graph.nodes[j].inputs.count == 5,
               let params = Optional(graph.nodes[j].inputs.dropFirst().compactMap { $0.flatMap { constantTensor($0) } }), params.count == 4,
               params.allSatisfy({ $0.dtype == .float32 }) {
                let layout = conv.kernelLayout ?? .oihw
                let outC = layout == .ihwo1 ? w.shape[3] : w.shape[0]
                guard params.allSatisfy({ $0.count == outC }) else { continue }
                let eps = Float(graph.nodes[j].float("epsilon") ?? 1e-5)
                let (s, b, m, v) = (params[0].toFloats(), params[1].toFloats(), params[2].toFloats(), params[3].toFloats())
                let a = (0..<outC).map { s[$0] / (v[$0] + eps).squareRoot() }
                let oldBias = conv.inputs.count > 2 ? conv.inputs[2].flatMap { constantTensor($0) }?.toFloats() : nil
                let nb = RTensor.make((0..<outC).map { ((oldBias?[$0] ?? 0) - m[$0]) * a[$0] + b[$0] }, shape: [outC])
                if layout == .oihw && (conv.int("group") ?? 1) == 1 && conv.dataLayout != .nhwc {
                    // Standard convolutions keep their weights as they are (no second copy): the kernel
                    // scales each output channel as it stores, y = a * (W x) + shift.
                    newInputs[i] = [conv.inputs[0], wID, addSynthetic(nb), nil, addSynthetic(RTensor.make(a, shape: [outC]))]
                } else {
                    // Depthwise (and TFLite-layout) weights are small: folded into a copy.
                    let nw = RTensor.allocate(w.shape, .float32)
                    let per = w.count / outC
                    for k in 0..<w.count {
                        let o = layout == .ihwo1 ? k % outC : k / per
                        nw.floats[k] = w.floats[k] * a[o]
                    }
                    newInputs[i] = [conv.inputs[0], addSynthetic(nw), addSynthetic(nb)]
                }
                fusedNodes[j] = "folded into \(conv.name)"
                tail = graph.nodes[j].outputs[0]
            }
            if let k = single(tail) {
                let act = graph.nodes[k]
                if let fused = activationKind(act), act.inputs.first == tail {
                    activation[i] = fused
                    fusedNodes[k] = "fused into \(conv.name)"
                }
            }
        }
        // BatchNormalization that is not folded into a conv (DenseNet's, after a Concat) -> Relu / Clip.
        for (i, bn) in graph.nodes.enumerated() where bn.op == .batchNormalization && fusedNodes[i] == nil && bn.outputs.count == 1 {
            guard let out = bn.outputs.first, graph.values[out].type.dtype == .float32,
                  let k = single(out), graph.nodes[k].inputs.first == out, fusedNodes[k] == nil,
                  let fused = activationKind(graph.nodes[k]) else { continue }
            activation[i] = fused
            fusedNodes[k] = "fused into \(bn.name)"
        }
        // Add -> Relu / Clip (residual blocks): the activation runs inside the Add kernel.
        for (i, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && add.inputs.count == 2 {
            guard let out = add.outputs.first, graph.values[out].type.dtype == .float32, graph.values[out].quantization == nil,
                  let k = single(out), graph.nodes[k].inputs.first == out,
                  let fused = activationKind(graph.nodes[k]) else { continue }
            activation[i] = fused
            fusedNodes[k] = "fused into \(add.name)"
        }
        // Conv (-> BatchNorm) -> Add: the other operand becomes the conv's residual input, added as
        // the conv stores its results (then the Add's activation). The conv must be the later of the
        // two producers, so that the residual is ready when it runs.
        var convOfTail: [ValueID: Int] = [:]
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv {
            guard let out = conv.outputs.first else { continue }
            if let j = single(out), fusedNodes[j] != nil, graph.nodes[j].op == .batchNormalization, let bnOut = graph.nodes[j].outputs.first {
                convOfTail[bnOut] = i
            } else {
                convOfTail[out] = i
            }
        }
        for (a, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && add.inputs.count == 2 && fusedNodes[a] == nil {
            guard let out = add.outputs.first, graph.values[out].type.dtype == .float32, graph.values[out].quantization == nil,
                  let u = add.inputs[0], let v = add.inputs[1], u != v else { continue }
            let candidates = [(u, v), (v, u)].compactMap { pair -> (Int, ValueID, ValueID)? in
                guard let c = convOfTail[pair.0], single(pair.0) == a else { return nil }
                return (c, pair.0, pair.1)
            }
            // The other operand must exist before the conv runs: a graph input or constant, or produced earlier.
            guard let (c, tail, other) = candidates.filter({ cand in
                guard let producer = graph.values[cand.2].producer else { return true }
                return producer < cand.0
            }).max(by: { $0.0 < $1.0 }) else { continue }
            let conv = graph.nodes[c]
            guard activation[c] == nil, conv.fusedActivation == nil, conv.dataLayout != .nhwc, (conv.kernelLayout ?? .oihw) == .oihw,
                  (conv.int("group") ?? 1) == 1, conv.inputs.count >= 2 else { continue }
            var ins = newInputs[c] ?? conv.inputs
            while ins.count < 4 { ins.append(nil) }
            ins[3] = other
            newInputs[c] = ins
            newInputs[a] = [tail]
            if let act = activation[a] { activation[c] = act; activation[a] = nil }
            fusedNodes[a] = "fused into \(conv.name)"
        }
        return (newInputs, activation)
    }

    /// Relu, Relu6 or Clip with constant bounds, as an mlk_activate kind.
    func activationKind(_ act: Node) -> (Int32, Float, Float)? {
        switch act.op.rawValue {
        case "Relu": return (1, 0, 0)
        case "Relu6": return (2, 0, 0)
        case "Clip":
            let lo = act.inputs.count > 1 ? act.inputs[1].flatMap { constantTensor($0) }.map { $0.element(0) } : act.float("min").map(Float.init)
            let hi = act.inputs.count > 2 ? act.inputs[2].flatMap { constantTensor($0) }.map { $0.element(0) } : act.float("max").map(Float.init)
            // A bound that is given but not constant cannot be fused.
            if act.inputs.count > 1, act.inputs[1] != nil, lo == nil { return nil }
            if act.inputs.count > 2, act.inputs[2] != nil, hi == nil { return nil }
            return (5, lo ?? -.greatestFiniteMagnitude, hi ?? .greatestFiniteMagnitude)
        default: return nil
        }
    }

    /// TFLite nodes computing on quantized tensors (int8/uint8 with scale and zero point), other
}
