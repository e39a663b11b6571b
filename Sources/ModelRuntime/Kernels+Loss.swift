import CKernels
import Foundation
import ModelIR

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (class axis 1, optional weights,
/// ignore_index, reductions none / sum / mean), computed in Double.
func lossKernel(softmax: Bool) -> KernelFactory {
    { pc in
        let n = pc.node
        let reduction = n.string("reduction") ?? "mean"
        guard ["none", "sum", "mean"].contains(reduction) else { throw pc.fail("reduction \(reduction)") }
        let ignore = n.int("ignore_index")
        return { ins, ctx in
            guard let x = ins.first ?? nil, let target = ins.count > 1 ? ins[1] : nil, x.shape.count >= 2,
                  x.dtype == .float32 || x.dtype == .float64 || x.dtype == .float16 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "inputs")
            }
            let weight = ins.count > 2 ? ins[2] : nil
            let N = x.shape[0], C = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
            guard target.count == N * inner else { throw RuntimeError.invalid(node: n.label, reason: "target shape \(target.shape)") }
            // Log-probabilities (SoftmaxCrossEntropyLoss) or the input itself (NLL).
            var logp = [Double](repeating: 0, count: x.count)
            for i in 0..<x.count { logp[i] = x.double(i) }
            if softmax {
                for b in 0..<N {
                    for s in 0..<inner {
                        var m = -Double.infinity
                        for c in 0..<C { m = max(m, logp[(b * C + c) * inner + s]) }
                        var sum = 0.0
                        for c in 0..<C { sum += exp(logp[(b * C + c) * inner + s] - m) }
                        let lse = m + log(sum)
                        for c in 0..<C { logp[(b * C + c) * inner + s] -= lse }
                    }
                }
            }
            let labels = target.integers()
            var losses = [Double](repeating: 0, count: N * inner)
            var weightSum = 0.0
            for b in 0..<N {
                for s in 0..<inner {
                    let t = labels[b * inner + s]
                    if let ignore, t == ignore { continue }
                    guard t >= 0 && t < C else { throw RuntimeError.invalid(node: n.label, reason: "label \(t) outside [0, \(C))") }
                    let w = weight.map { $0.double(t) } ?? 1
                    losses[b * inner + s] = -logp[(b * C + t) * inner + s] * w
                    weightSum += w
                }
            }
            let outShape = reduction == "none" ? [N] + Array(x.shape.dropFirst(2)) : []
            let y = try ctx.alloc(outShape, x.dtype)
            switch reduction {
            case "none": for i in 0..<losses.count { y.store(losses[i], at: i) }
            case "sum": y.store(losses.reduce(0, +), at: 0)
            default: y.store(weightSum == 0 ? 0 : losses.reduce(0, +) / weightSum, at: 0)
            }
            if softmax && n.outputs.count > 1 {
                let lp = try ctx.alloc(x.shape, x.dtype)
                for i in 0..<x.count { lp.store(logp[i], at: i) }
                return [y, lp]
            }
            return [y]
        }
    }
}

let lossKernels: [(String, KernelFactory)] = [
    ("NegativeLogLikelihoodLoss", lossKernel(softmax: false)),
    ("SoftmaxCrossEntropyLoss", lossKernel(softmax: true)),
]
