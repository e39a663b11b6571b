import CKernels
import Foundation
import ModelIR

let normalizationKernels: [(String, KernelFactory)] = [
    ("RMSNormalization", { pc in
        let n = pc.node
        let eps = n.float("epsilon") ?? 1e-5
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .float32 || x.dtype == .float64 || x.dtype == .float16 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "element type")
            }
            let axis = try normalize(n.int("axis") ?? -1, x.shape.count, n)
            let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[axis...].reduce(1, *)
            let scale = ins.count > 1 ? ins[1] : nil
            let y = try ctx.alloc(x.shape, x.dtype)
            for o in 0..<outer {
                var sq = 0.0
                for i in 0..<inner { let v = x.double(o * inner + i); sq += v * v }
                let inv = 1 / (sq / Double(inner) + eps).squareRoot()
                for i in 0..<inner {
                    let s = scale.map { $0.double($0.count == 1 ? 0 : i % $0.count) } ?? 1
                    y.store(x.double(o * inner + i) * inv * s, at: o * inner + i)
                }
            }
            return [y]
        }
    }),
]
