import CKernels
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
    // The common casts to float32 (a one-hot or mask to float, indices to float): typed loops.
    if dtype == .float32 {
        let out = y.floats
        switch x.dtype {
        case .bool, .uint8:
            let p = x.raw.assumingMemoryBound(to: UInt8.self)
            for i in 0..<x.count { out[i] = Float(p[i]) }
            return y
        case .int32:
            let p = x.raw.assumingMemoryBound(to: Int32.self)
            for i in 0..<x.count { out[i] = Float(p[i]) }
            return y
        case .int64:
            let p = x.raw.assumingMemoryBound(to: Int64.self)
            for i in 0..<x.count { out[i] = Float(Double(p[i])) }
            return y
        default: break
        }
    }
    for i in 0..<x.count {
        if x.dtype == .int64 && (dtype == .int64 || dtype == .int32) {
            y.store(Double(x.raw.load(fromByteOffset: i * 8, as: Int64.self)), at: i)
        } else {
            y.store(x.double(i), at: i, roundBFloat16: roundBFloat16)
        }
    }
    return y
}

/// CastLike (Cast itself is in Kernels+Tensor.swift).
let castKernels: [(String, KernelFactory)] = [
    ("CastLike", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let like = ins.count > 1 ? ins[1] : nil, castable.contains(x.dtype), castable.contains(like.dtype) else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "these element types")
            }
            return [try castAny(x, to: like.dtype, ctx, roundBFloat16: n.string("bfloat16_rounding") != "truncate")]
        }
    }),
]
