import CKernels
import Foundation
import ModelIR

/// Unary maps in Double for float64 (and float16) inputs.
private let doubleUnary: [String: (Double) -> Double] = [
    "Neg": { -$0 }, "Abs": { abs($0) }, "Sqrt": { $0.squareRoot() }, "Exp": { exp($0) }, "Log": { log($0) },
    "Reciprocal": { 1 / $0 }, "Floor": { $0.rounded(.down) }, "Ceil": { $0.rounded(.up) }, "Relu": { max($0, 0) },
    "Sigmoid": { 1 / (1 + exp(-$0)) }, "Tanh": { tanh($0) }, "Sin": { sin($0) }, "Cos": { cos($0) }, "Sign": { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) },
    "Round": { $0.rounded(.toNearestOrEven) }, "Erf": { erf($0) }, "Softsign": { $0 / (1 + abs($0)) },
]

private let doubleBinary: [String: (Double, Double) -> Double] = [
    "Add": { $0 + $1 }, "Sub": { $0 - $1 }, "Mul": { $0 * $1 }, "Div": { $0 / $1 }, "Pow": { pow($0, $1) },
    "Max": { max($0, $1) }, "Min": { min($0, $1) }, "Sum": { $0 + $1 },
]

/// Wraps a float32 kernel so float64 / float16 inputs run through a Double path.
func widened(_ name: String, _ base: @escaping KernelFactory) -> KernelFactory {
    { pc in
        let n = pc.node
        let inner = try base(pc)
        return { ins, ctx in
            guard let first = ins.first ?? nil, first.dtype == .float64 || first.dtype == .float16 else { return try inner(ins, ctx) }
            if let f = doubleUnary[name] {
                let y = try ctx.alloc(first.shape, first.dtype)
                for i in 0..<first.count { y.store(f(first.double(i)), at: i) }
                return [y]
            }
            if let f = doubleBinary[name] {
                var acc = first
                for b in ins.dropFirst().compactMap({ $0 }) {
                    guard b.dtype == first.dtype, let shape = broadcastShapes(acc.shape, b.shape) else {
                        throw RuntimeError.invalid(node: n.label, reason: "operands do not broadcast")
                    }
                    let y = try ctx.alloc(shape, first.dtype)
                    let sa = broadcastStrides(acc.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
                    var idx = [Int](repeating: 0, count: shape.count)
                    for t in 0..<shape.reduce(1, *) {
                        var oa = 0, ob = 0
                        for d in 0..<shape.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
                        y.store(f(acc.double(oa), b.double(ob)), at: t)
                        var d = shape.count - 1
                        while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
                    }
                    acc = y
                }
                return [acc]
            }
            throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "element type \(first.dtype.rawValue)")
        }
    }
}
