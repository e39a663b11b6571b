import CKernels
import Foundation
import ModelIR

/// Bit shifts and floating-point class tests.
let bitwiseKernels: [(String, KernelFactory)] = [
    ("BitShift", { pc in
        let n = pc.node
        let left = (n.string("direction") ?? "LEFT") == "LEFT"
        return { ins, ctx in
            guard let a = ins.first ?? nil, let b = ins.count > 1 ? ins[1] : nil, [.uint8, .uint16, .uint32, .uint64].contains(a.dtype),
                  let shape = broadcastShapes(a.shape, b.shape) else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "unsigned integer inputs")
            }
            let y = try ctx.alloc(shape, a.dtype)
            let bits = (a.dtype.bitWidth ?? 8)
            let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
            let av = a.integers(), bv = b.integers()
            var idx = [Int](repeating: 0, count: shape.count)
            for t in 0..<shape.reduce(1, *) {
                var oa = 0, ob = 0
                for d in 0..<shape.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
                let v = UInt64(truncatingIfNeeded: av[oa]), k = UInt64(max(0, bv[ob]))
                var r = k >= UInt64(bits) ? 0 : (left ? v << k : v >> k)
                if bits < 64 { r &= (UInt64(1) << UInt64(bits)) - 1 }
                switch a.dtype {
                case .uint8: y.raw.storeBytes(of: UInt8(truncatingIfNeeded: r), toByteOffset: t, as: UInt8.self)
                case .uint16: y.raw.storeBytes(of: UInt16(truncatingIfNeeded: r), toByteOffset: t * 2, as: UInt16.self)
                case .uint32: y.raw.storeBytes(of: UInt32(truncatingIfNeeded: r), toByteOffset: t * 4, as: UInt32.self)
                default: y.raw.storeBytes(of: r, toByteOffset: t * 8, as: UInt64.self)
                }
                var d = shape.count - 1
                while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
            }
            return [y]
        }
    }),
    ("IsInf", { pc in
        let n = pc.node
        let neg = (n.int("detect_negative") ?? 1) != 0, pos = (n.int("detect_positive") ?? 1) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let y = try ctx.alloc(x.shape, .bool)
            for i in 0..<x.count {
                let v = x.double(i)
                y.raw.storeBytes(of: UInt8(v.isInfinite && ((v > 0 && pos) || (v < 0 && neg)) ? 1 : 0), toByteOffset: i, as: UInt8.self)
            }
            return [y]
        }
    }),
    ("IsNaN", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let y = try ctx.alloc(x.shape, .bool)
            for i in 0..<x.count { y.raw.storeBytes(of: UInt8(x.double(i).isNaN ? 1 : 0), toByteOffset: i, as: UInt8.self) }
            return [y]
        }
    }),
]
