import CKernels
import Foundation
import ModelIR

/// CumSum / CumProd along an axis (exclusive and reverse as ONNX defines them); int64 exactly,
/// other types through Double.
func cumulativeKernel(product: Bool) -> KernelFactory {
    { pc in
        let n = pc.node
        let exclusive = (n.int("exclusive") ?? 0) != 0, reverse = (n.int("reverse") ?? 0) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, let a = ins.count > 1 ? ins[1]?.integers().first : nil else { throw RuntimeError.invalid(node: n.label, reason: "missing axis") }
            let axis = try normalize(a, x.shape.count, n)
            let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
            let y = try ctx.alloc(x.shape, x.dtype)
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = product ? 1.0 : 0.0
                    var accInt: Int64 = product ? 1 : 0
                    for step in 0..<len {
                        let j = reverse ? len - 1 - step : step
                        let idx = (o * len + j) * inner + i
                        if x.dtype == .int64 {
                            let v = x.raw.load(fromByteOffset: idx * 8, as: Int64.self)
                            if exclusive { y.raw.storeBytes(of: accInt, toByteOffset: idx * 8, as: Int64.self) }
                            accInt = product ? accInt &* v : accInt &+ v
                            if !exclusive { y.raw.storeBytes(of: accInt, toByteOffset: idx * 8, as: Int64.self) }
                        } else {
                            let v = x.double(idx)
                            if exclusive { y.store(acc, at: idx) }
                            acc = product ? acc * v : acc + v
                            if !exclusive { y.store(acc, at: idx) }
                        }
                    }
                }
            }
            return [y]
        }
    }
}

let cumulativeKernels: [(String, KernelFactory)] = [
    ("CumSum", cumulativeKernel(product: false)),
    ("CumProd", cumulativeKernel(product: true)),
]
