import CKernels
import Foundation
import ModelIR

/// The plan's fusions: BatchNorm folded into the conv before it, activations and residual adds
/// run inside the conv kernel.
extension Executor {
    /// The fusion plan (ModelIR's FusionPlan) over the constants the planner has, including those it
    /// computed (fp16 weights widened).
    func fusionPlan() -> FusionPlan {
        FusionPlan.make(graph, .init(type: { v in self.constantTensor(v).map { ($0.dtype, $0.shape) } },
                                     floats: { v in self.constantTensor(v)?.toFloats() }))
    }

    /// Applies the fusion plan: a folded BatchNorm becomes a per-channel scale and shift the conv
    /// kernel applies as it stores (folded into a copy of the weights for depthwise convs), the
    /// activation runs inside the kernel, a residual Add's other operand becomes the conv's
    /// residual input, and the absorbed nodes become views of the conv's output. The conv's inputs
    /// are then [x, w, shift, residual, scale] (nil where absent).
    func fusions() -> (inputs: [Int: [ValueID?]], activation: [Int: (Int32, Float, Float)]) {
        let plan = fusionPlan()
        fusion = plan
        var newInputs: [Int: [ValueID?]] = [:]
        for (i, j) in plan.batchNorm.sorted(by: { $0.key < $1.key }) {
            let conv = graph.nodes[i], bn = graph.nodes[j]
            guard let wID = conv.inputs[1], let w = constantTensor(wID) else { continue }
            let params = bn.inputs.dropFirst().map { $0.flatMap { constantTensor($0) }!.toFloats() }
            let layout = conv.kernelLayout ?? .oihw
            let outC = layout == .ihwo1 ? w.shape[3] : w.shape[0]
            let oldBias = conv.inputs.count > 2 ? conv.inputs[2].flatMap { constantTensor($0) }?.toFloats() : nil
            let (a, shift) = BatchNormFold.fold(gamma: params[0], beta: params[1], mean: params[2], variance: params[3],
                                                epsilon: Float(bn.float("epsilon") ?? 1e-5), bias: oldBias)
            let nb = RTensor.make(shift, shape: [outC])
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
        }
        var activation: [Int: (Int32, Float, Float)] = [:]
        for (p, k) in plan.activation { activation[p] = activationKind(graph.nodes[k]) }
        for (c, r) in plan.residual {
            var ins = newInputs[c] ?? graph.nodes[c].inputs
            while ins.count < 4 { ins.append(nil) }
            ins[3] = r.other
            newInputs[c] = ins
            // The Add becomes a view of the conv's output (the conv's, or its folded BatchNorm's).
            let convOut = graph.nodes[c].outputs[0]
            newInputs[r.add] = [plan.batchNorm[c].map { graph.nodes[$0].outputs[0] } ?? convOut]
        }
        // An elementwise chain's first node runs the whole chain on its input; the others are views
        // of its output.
        for (first, chain) in plan.unaryChain { newInputs[first] = [chain.input] }
        for (c, inputs) in plan.quantizedConv { newInputs[c] = inputs }
        for (a, inputs) in plan.quantizedAdd { newInputs[a] = inputs }
        for (m, inputs) in plan.quantizedGemm { newInputs[m] = inputs }
        for (k, into) in plan.fusedInto where plan.unaryChain[into] != nil { newInputs[k] = [graph.nodes[into].outputs[0]] }
        for (k, into) in plan.fusedInto {
            fusedNodes[k] = (graph.nodes[k].op == .batchNormalization && plan.batchNorm[into] == k ? "folded into " : "fused into ") + graph.nodes[into].name
        }
        return (newInputs, activation)
    }

    /// Node `i` as its kernel runs it: a QDQ convolution, Add or Gemm as the QLinearConv,
    /// QLinearAdd or QGemm it stands for (FusionPlan.quantizedConv / quantizedAdd / quantizedGemm),
    /// with that op's inputs; any other node as it is.
    func plannedNode(_ i: Int) -> Node {
        var node = graph.nodes[i]
        for (op, inputs) in [("QLinearConv", fusion.quantizedConv[i]), ("QLinearAdd", fusion.quantizedAdd[i]), ("QGemm", fusion.quantizedGemm[i])] {
            if let inputs {
                node.op = OpKind(op)
                node.inputs = inputs
            }
        }
        return node
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
}
