import Foundation
import ModelIR

/// Element access for the less common element types (float16, bfloat16), as Double.
extension RTensor {
    func double(_ i: Int) -> Double {
        switch dtype {
        case .float64: return raw.load(fromByteOffset: i * 8, as: Double.self)
        case .bfloat16: return Double(Float(bitPattern: UInt32(raw.load(fromByteOffset: i * 2, as: UInt16.self)) << 16))
        default: return Double(element(i))
        }
    }

    func store(_ v: Double, at i: Int, roundBFloat16: Bool = true) {
        switch dtype {
        case .float64: raw.storeBytes(of: v, toByteOffset: i * 8, as: Double.self)
        case .float32: raw.storeBytes(of: Float(v), toByteOffset: i * 4, as: Float.self)
        case .float16: raw.storeBytes(of: floatToHalf(Float(v)), toByteOffset: i * 2, as: UInt16.self)
        case .bfloat16:
            // Round to nearest even on the upper 16 bits, or truncate (ONNX Cast before opset 19).
            let bits = Float(v).bitPattern
            let kept = roundBFloat16 ? (bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16 : bits >> 16
            raw.storeBytes(of: Float(v).isNaN ? UInt16(0x7fc0) : UInt16(truncatingIfNeeded: kept), toByteOffset: i * 2, as: UInt16.self)
        case .int64: raw.storeBytes(of: v.isFinite ? Int64(clamping: Int(v.rounded(.towardZero))) : 0, toByteOffset: i * 8, as: Int64.self)
        case .int32: raw.storeBytes(of: Int32(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i * 4, as: Int32.self)
        case .int16: raw.storeBytes(of: Int16(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i * 2, as: Int16.self)
        case .int8: raw.storeBytes(of: Int8(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i, as: Int8.self)
        case .uint8: raw.storeBytes(of: UInt8(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i, as: UInt8.self)
        case .uint16: raw.storeBytes(of: UInt16(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i * 2, as: UInt16.self)
        case .uint32: raw.storeBytes(of: UInt32(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i * 4, as: UInt32.self)
        case .uint64: raw.storeBytes(of: UInt64(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i * 8, as: UInt64.self)
        case .bool: raw.storeBytes(of: UInt8(v != 0 ? 1 : 0), toByteOffset: i, as: UInt8.self)
        default: break
        }
    }
}

/// IEEE half from Float, round to nearest even.
func floatToHalf(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    if f.isNaN { return sign | 0x7e00 }
    let exp = Int((bits >> 23) & 0xff) - 127 + 15
    var mant = bits & 0x7f_ffff
    if exp >= 31 { return sign | 0x7c00 }
    if exp <= 0 {
        if exp < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - exp)
        var half = mant >> shift
        let rem = mant & ((1 << shift) - 1), halfway = UInt32(1) << (shift - 1)
        if rem > halfway || (rem == halfway && half & 1 == 1) { half += 1 }
        return sign | UInt16(half)
    }
    var half = UInt32(exp) << 10 | (mant >> 13)
    let rem = mant & 0x1fff
    if rem > 0x1000 || (rem == 0x1000 && half & 1 == 1) { half += 1 }
    return sign | UInt16(half)
}

private let castable: Set<DType> = [.float32, .float64, .float16, .bfloat16, .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool]

/// Any castable type to any other (values through Double; int64 kept exact).
func castAny(_ x: RTensor, to dtype: DType, _ ctx: RunContext, roundBFloat16: Bool = true) throws -> RTensor {
    if x.dtype == dtype { return x }
    let y = try ctx.alloc(x.shape, dtype)
    for i in 0..<x.count {
        if x.dtype == .int64 && (dtype == .int64 || dtype == .int32) {
            y.store(Double(x.raw.load(fromByteOffset: i * 8, as: Int64.self)), at: i)
        } else {
            y.store(x.double(i), at: i, roundBFloat16: roundBFloat16)
        }
    }
    return y
}

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

let moreKernels: [(String, KernelFactory)] = [
    ("CastLike", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let like = ins.count > 1 ? ins[1] : nil, castable.contains(x.dtype), castable.contains(like.dtype) else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "these element types")
            }
            return [try castAny(x, to: like.dtype, ctx, roundBFloat16: n.version == 0 || n.version >= 19)]
        }
    }),
    ("GatherElements", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let it = ins.count > 1 ? ins[1] : nil, it.shape.count == x.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "indices must have the data's rank")
            }
            let r = x.shape.count
            let axis = try normalize(n.int("axis") ?? 0, r, n)
            let idx = it.integers()
            let y = try ctx.alloc(it.shape, x.dtype)
            var xs = [Int](repeating: 1, count: r)
            for i in stride(from: r - 2, through: 0, by: -1) { xs[i] = xs[i + 1] * x.shape[i + 1] }
            var pos = [Int](repeating: 0, count: r)
            let e = x.elementSize
            for t in 0..<it.count {
                var off = 0
                for d in 0..<r {
                    var c = pos[d]
                    if d == axis {
                        c = idx[t] < 0 ? idx[t] + x.shape[d] : idx[t]
                        guard c >= 0 && c < x.shape[d] else { throw RuntimeError.invalid(node: n.label, reason: "index \(idx[t]) out of range") }
                    } else if c >= x.shape[d] { throw RuntimeError.invalid(node: n.label, reason: "indices larger than the data") }
                    off += c * xs[d]
                }
                (y.raw + t * e).copyMemory(from: x.raw + off * e, byteCount: e)
                var d = r - 1
                while d >= 0 { pos[d] += 1; if pos[d] < it.shape[d] { break }; pos[d] = 0; d -= 1 }
            }
            return [y]
        }
    }),
    ("Trilu", { pc in
        let n = pc.node
        let upper = (n.int("upper") ?? 1) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.shape.count >= 2 else { throw RuntimeError.invalid(node: n.label, reason: "rank 2 or more") }
            let k = (ins.count > 1 ? ins[1]?.integers().first : nil) ?? 0
            let rows = x.shape[x.shape.count - 2], cols = x.shape[x.shape.count - 1]
            let y = try ctx.alloc(x.shape, x.dtype)
            let e = x.elementSize
            y.raw.copyMemory(from: x.raw, byteCount: x.count * e)
            for t in 0..<x.count {
                let j = t % cols, i = (t / cols) % rows
                let keep = upper ? j - i >= k : j - i <= k
                if !keep { memset(y.raw + t * e, 0, e) }
            }
            return [y]
        }
    }),
]
