import CKernels
import Foundation
import ModelIR

let normalizationKernels: [(String, KernelFactory)] = [
    ("LayerNormalization", { pc in
        let n = pc.node
        let eps = Float(n.float("epsilon") ?? 1e-5)
        let statistics = n.outputs.count > 1
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n)
            let axis = try normalize(n.int("axis") ?? -1, x.shape.count, n)
            let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[axis...].reduce(1, *)
            let y = try ctx.alloc(x.shape, .float32)
            let statShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.shape.count - axis)
            let meanOut = statistics ? try ctx.alloc(statShape, .float32) : nil
            let invOut = statistics ? try ctx.alloc(statShape, .float32) : nil
            let sv = (ins.count > 1 ? ins[1] : nil)?.toFloats() ?? [], bv = (ins.count > 2 ? ins[2] : nil)?.toFloats() ?? []
            for p in [sv, bv] where !p.isEmpty && p.count != 1 && inner % p.count != 0 {
                throw RuntimeError.invalid(node: n.label, reason: "scale or bias of \(p.count) for rows of \(inner)")
            }
            sv.withUnsafeBufferPointer { s in
                bv.withUnsafeBufferPointer { b in
                    mlk_layer_norm(x.floats, y.floats, outer, inner, sv.isEmpty ? nil : s.baseAddress, sv.count, bv.isEmpty ? nil : b.baseAddress,
                                   bv.count, eps, meanOut?.floats, invOut?.floats)
                }
            }
            if let meanOut, let invOut { return [y, meanOut, invOut] }
            return [y]
        }
    }),
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
