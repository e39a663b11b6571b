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

private func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
    return s
}

let moreKernels2: [(String, KernelFactory)] = [
    ("TopK", { pc in
        let n = pc.node
        let largest = (n.int("largest") ?? 1) != 0, sorted = (n.int("sorted") ?? 1) != 0
        guard sorted else { throw pc.fail("sorted = 0") }
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .float32 || x.dtype == .float64 || x.dtype == .int64 || x.dtype == .int32 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "element type")
            }
            let k = (ins.count > 1 ? ins[1]?.integers().first : nil) ?? n.int("k") ?? 1
            let axis = try normalize(n.int("axis") ?? -1, x.shape.count, n)
            let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
            guard k >= 0 && k <= len else { throw RuntimeError.invalid(node: n.label, reason: "k = \(k) for an axis of \(len)") }
            var shape = x.shape
            shape[axis] = k
            let values = try ctx.alloc(shape, x.dtype), indices = try ctx.alloc(shape, .int64)
            for o in 0..<outer {
                for i in 0..<inner {
                    let order = (0..<len).sorted { a, b in
                        let va = x.double((o * len + a) * inner + i), vb = x.double((o * len + b) * inner + i)
                        return largest ? (va > vb || (va == vb && a < b)) : (va < vb || (va == vb && a < b))
                    }
                    for j in 0..<k {
                        let src = (o * len + order[j]) * inner + i, dst = (o * k + j) * inner + i
                        (values.raw + dst * x.elementSize).copyMemory(from: x.raw + src * x.elementSize, byteCount: x.elementSize)
                        indices.raw.storeBytes(of: Int64(order[j]), toByteOffset: dst * 8, as: Int64.self)
                    }
                }
            }
            return [values, indices]
        }
    }),
    ("CumSum", cumulativeKernel(product: false)),
    ("OneHot", { pc in
        let n = pc.node
        return { ins, ctx in
            guard ins.count == 3, let idxT = ins[0], let depthT = ins[1], let vals = ins[2], vals.count == 2 else {
                throw RuntimeError.invalid(node: n.label, reason: "OneHot needs indices, depth and [off, on]")
            }
            let depth = Int(depthT.double(0))
            guard depth > 0, depth < 1 << 24 else { throw RuntimeError.invalid(node: n.label, reason: "depth \(depth)") }
            let r = idxT.shape.count + 1
            let axis = try normalize(n.int("axis") ?? -1, r, n)
            var shape = idxT.shape
            shape.insert(depth, at: axis)
            let y = try ctx.alloc(shape, vals.dtype)
            let e = vals.elementSize
            let outer = idxT.shape[..<axis].reduce(1, *), inner = idxT.shape[axis...].reduce(1, *)
            let idx = (0..<idxT.count).map { Int(idxT.double($0)) }
            for o in 0..<outer {
                for d in 0..<depth {
                    for i in 0..<inner {
                        var v = idx[o * inner + i]
                        if v < 0 { v += depth }
                        let dst = (o * depth + d) * inner + i
                        (y.raw + dst * e).copyMemory(from: vals.raw + (v == d ? e : 0), byteCount: e)
                    }
                }
            }
            return [y]
        }
    }),
    ("NonZero", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let st = strides(x.shape)
            let hits = (0..<x.count).filter { x.double($0) != 0 }
            let r = max(x.shape.count, 1)
            let y = try ctx.alloc([x.shape.count, hits.count], .int64)
            for (j, flat) in hits.enumerated() {
                for d in 0..<x.shape.count {
                    y.raw.storeBytes(of: Int64((flat / st[d]) % x.shape[d]), toByteOffset: (d * hits.count + j) * 8, as: Int64.self)
                }
            }
            _ = r
            return [y]
        }
    }),
    ("ScatterElements", { pc in try scatterElements(pc) }),
    ("Scatter", { pc in try scatterElements(pc) }),
    ("ScatterND", { pc in
        let n = pc.node
        let reduction = n.string("reduction") ?? "none"
        guard reduction == "none" else { throw pc.fail("reduction \(reduction)") }
        return { ins, ctx in
            guard ins.count == 3, let data = ins[0], let idxT = ins[1], let upd = ins[2], let q = idxT.shape.last, q <= data.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "ScatterND needs data, indices, updates")
            }
            let y = try ctx.alloc(data.shape, data.dtype)
            let e = data.elementSize
            y.raw.copyMemory(from: data.raw, byteCount: data.count * e)
            let slice = data.shape[q...].reduce(1, *)
            for (t, off) in try ndOffsets(idxT, data.shape, n).enumerated() {
                guard (t + 1) * slice <= upd.count else { throw RuntimeError.invalid(node: n.label, reason: "updates too short") }
                (y.raw + off * e).copyMemory(from: upd.raw + t * slice * e, byteCount: slice * e)
            }
            return [y]
        }
    }),
    ("GatherND", { pc in
        let n = pc.node
        let batchDims = n.int("batch_dims") ?? 0
        guard batchDims == 0 else { throw pc.fail("batch_dims") }
        return { ins, ctx in
            guard let data = ins.first ?? nil, let idxT = ins.count > 1 ? ins[1] : nil, let q = idxT.shape.last, q <= data.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "GatherND needs data and indices")
            }
            let slice = data.shape[q...].reduce(1, *)
            let y = try ctx.alloc(Array(idxT.shape.dropLast()) + Array(data.shape[q...]), data.dtype)
            let e = data.elementSize
            for (t, off) in try ndOffsets(idxT, data.shape, n).enumerated() {
                (y.raw + t * slice * e).copyMemory(from: data.raw + off * e, byteCount: slice * e)
            }
            return [y]
        }
    }),
    ("Einsum", { pc in
        let n = pc.node
        guard let eq = n.string("equation")?.replacingOccurrences(of: " ", with: ""), !eq.contains(".") else { throw pc.fail("ellipsis equations") }
        let parts = eq.components(separatedBy: "->")
        let inputs = parts[0].components(separatedBy: ",").map { Array($0) }
        return { ins, ctx in
            let xs = ins.compactMap { $0 }
            guard xs.count == inputs.count, xs.allSatisfy({ $0.dtype == .float32 || $0.dtype == .float64 }) else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "operands")
            }
            var size: [Character: Int] = [:]
            for (x, labels) in zip(xs, inputs) {
                guard labels.count == x.shape.count else { throw RuntimeError.invalid(node: n.label, reason: "equation does not fit shapes") }
                for (l, d) in zip(labels, x.shape) {
                    if let s = size[l], s != d { throw RuntimeError.invalid(node: n.label, reason: "size of \(l) differs") }
                    size[l] = d
                }
            }
            // Implicit output: labels appearing once, sorted.
            let outLabels: [Character] = parts.count > 1 ? Array(parts[1])
                : size.keys.filter { l in inputs.joined().filter { $0 == l }.count == 1 }.sorted()
            let all = outLabels + size.keys.filter { !outLabels.contains($0) }.sorted()
            let dims = all.map { size[$0] ?? 1 }
            let total = dims.reduce(1, *)
            guard total < 1 << 26 else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "too large for the direct loop") }
            let y = try ctx.alloc(outLabels.map { size[$0] ?? 1 }, xs[0].dtype)
            let outCount = y.count
            var acc = [Double](repeating: 0, count: outCount)
            let inStrides = zip(xs, inputs).map { x, labels -> [Int] in
                let st = strides(x.shape)
                return all.map { l in labels.indices.filter { labels[$0] == l }.reduce(0) { $0 + st[$1] } }
            }
            let outStrides: [Int] = { let st = strides(outLabels.map { size[$0] ?? 1 }); return all.map { l in outLabels.firstIndex(of: l).map { st[$0] } ?? 0 } }()
            var idx = [Int](repeating: 0, count: all.count)
            for _ in 0..<total {
                var prod = 1.0
                for (x, st) in zip(xs, inStrides) {
                    var off = 0
                    for d in 0..<all.count { off += idx[d] * st[d] }
                    prod *= x.double(off)
                }
                var o = 0
                for d in 0..<all.count { o += idx[d] * outStrides[d] }
                acc[o] += prod
                var d = all.count - 1
                while d >= 0 { idx[d] += 1; if idx[d] < dims[d] { break }; idx[d] = 0; d -= 1 }
            }
            for i in 0..<outCount { y.store(acc[i], at: i) }
            return [y]
        }
    }),
]

/// Element offsets into a tensor of `shape` addressed by the index tuples in the last axis of
/// `indices` (GatherND / ScatterND); negative indices count from the end.
func ndOffsets(_ indices: RTensor, _ shape: [Int], _ n: Node) throws -> [Int] {
    let q = indices.shape.last ?? 0
    let st = strides(shape)
    let idx = indices.integers()
    return try (0..<(indices.count / max(q, 1))).map { t in
        var off = 0
        for d in 0..<q {
            var c = idx[t * q + d]
            if c < 0 { c += shape[d] }
            guard c >= 0 && c < shape[d] else { throw RuntimeError.invalid(node: n.label, reason: "index out of range") }
            off += c * st[d]
        }
        return off
    }
}

func scatterElements(_ pc: PlanContext) throws -> Kernel {
    let n = pc.node
    let reduction = n.string("reduction") ?? "none"
    guard ["none", "add", "mul", "max", "min"].contains(reduction) else { throw pc.fail("reduction \(reduction)") }
    return { ins, ctx in
        guard ins.count == 3, let data = ins[0], let idxT = ins[1], let upd = ins[2], idxT.shape == upd.shape, idxT.shape.count == data.shape.count else {
            throw RuntimeError.invalid(node: n.label, reason: "Scatter needs data, indices and updates of one shape")
        }
        let r = data.shape.count
        let axis = try normalize(n.int("axis") ?? 0, r, n)
        let y = try ctx.alloc(data.shape, data.dtype)
        let e = data.elementSize
        y.raw.copyMemory(from: data.raw, byteCount: data.count * e)
        let st = strides(data.shape), ist = strides(idxT.shape)
        let idx = idxT.integers()
        for t in 0..<idxT.count {
            var off = 0
            for d in 0..<r {
                var c = (t / ist[d]) % idxT.shape[d]
                if d == axis { c = idx[t] < 0 ? idx[t] + data.shape[d] : idx[t] }
                guard c >= 0 && c < data.shape[d] else { throw RuntimeError.invalid(node: n.label, reason: "index out of range") }
                off += c * st[d]
            }
            if reduction == "none" {
                (y.raw + off * e).copyMemory(from: upd.raw + t * e, byteCount: e)
            } else {
                let a = y.double(off), b = upd.double(t)
                let v = reduction == "add" ? a + b : reduction == "mul" ? a * b : reduction == "max" ? max(a, b) : min(a, b)
                y.store(v, at: off)
            }
        }
        return [y]
    }
}

/// ONNX RNN / GRU / LSTM (forward, reverse or bidirectional; layout 0 or 1), float32.
/// Gates follow the ONNX definitions: LSTM i, o, f, c with optional peepholes; GRU z, r, h with
/// linear_before_reset; RNN a single gate. Default activations only (sigmoid, tanh).
func recurrentKernel(_ kind: String) -> KernelFactory {
    { pc in
        let n = pc.node
        if let acts = n.attributes["activations"]?.strings {
            let defaults: [String] = kind == "LSTM" ? ["Sigmoid", "Tanh", "Tanh"] : kind == "GRU" ? ["Sigmoid", "Tanh"] : ["Tanh"]
            let dirs = (n.string("direction") ?? "forward") == "bidirectional" ? 2 : 1
            guard acts == Array(repeating: defaults, count: dirs).flatMap({ $0 }) else { throw pc.fail("activations \(acts)") }
        }
        if n.float("clip") != nil { throw pc.fail("clip") }
        if (n.int("input_forget") ?? 0) != 0 { throw pc.fail("input_forget") }
        let direction = n.string("direction") ?? "forward"
        let layout = n.int("layout") ?? 0
        let gates = kind == "LSTM" ? 4 : kind == "GRU" ? 3 : 1
        let linearBeforeReset = (n.int("linear_before_reset") ?? 0) != 0
        return { ins, ctx in
            func input(_ i: Int) -> RTensor? { i < ins.count ? ins[i] : nil }
            guard let x0 = input(0), let w = input(1), let r = input(2), x0.dtype == .float32, w.shape.count == 3, r.shape.count == 3 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "inputs")
            }
            let x = layout == 0 ? x0 : try permute3(x0, [1, 0, 2], ctx)        // -> [seq, batch, input]
            let seq = x.shape[0], batch = x.shape[1], inSize = x.shape[2]
            let dirs = w.shape[0], hidden = r.shape[2]
            guard w.shape[1] == gates * hidden, w.shape[2] == inSize, dirs == (direction == "bidirectional" ? 2 : 1) else {
                throw RuntimeError.invalid(node: n.label, reason: "weights \(w.shape) for \(gates) gates of \(hidden)")
            }
            let b = input(3), seqLens = input(4)?.integers(), h0 = input(5), c0 = kind == "LSTM" ? input(6) : nil, peep = kind == "LSTM" ? input(7) : nil
            let Y = try ctx.alloc([seq, dirs, batch, hidden], .float32)
            let Yh = try ctx.alloc([dirs, batch, hidden], .float32)
            let Yc = try ctx.alloc([dirs, batch, hidden], .float32)
            for i in 0..<Y.count { Y.floats[i] = 0 }
            func sigmoid(_ v: Float) -> Float { 1 / (1 + exp(-v)) }
            for d in 0..<dirs {
                let reverse = direction == "reverse" || d == 1
                var h = (0..<(batch * hidden)).map { h0?.floats[d * batch * hidden + $0] ?? 0 }
                var c = (0..<(batch * hidden)).map { c0?.floats[d * batch * hidden + $0] ?? 0 }
                let wd = w.floats + d * gates * hidden * inSize, rd = r.floats + d * gates * hidden * hidden
                for bi in 0..<batch {
                    let len = min(seqLens.map { $0[bi] } ?? seq, seq)
                    for step in 0..<len {
                        let t = reverse ? len - 1 - step : step
                        let xt = x.floats + (t * batch + bi) * inSize
                        // Pre-activations: W x + R h + Wb + Rb, per gate.
                        var pre = [Float](repeating: 0, count: gates * hidden)
                        var rh = [Float](repeating: 0, count: gates * hidden)
                        for gi in 0..<(gates * hidden) {
                            var s: Float = 0
                            for k in 0..<inSize { s += wd[gi * inSize + k] * xt[k] }
                            var q: Float = 0
                            for k in 0..<hidden { q += rd[gi * hidden + k] * h[bi * hidden + k] }
                            if let b {
                                s += b.floats[d * 2 * gates * hidden + gi]
                                q += b.floats[d * 2 * gates * hidden + gates * hidden + gi]
                            }
                            pre[gi] = s; rh[gi] = q
                        }
                        // GRU without linear_before_reset: the candidate reads R_h (r * h).
                        var resetH = [Float]()
                        if kind == "GRU" && !linearBeforeReset {
                            resetH = (0..<hidden).map { k in sigmoid(pre[hidden + k] + rh[hidden + k]) * h[bi * hidden + k] }
                        }
                        var pending = [Float](repeating: 0, count: kind == "GRU" ? hidden : 0)
                        for j in 0..<hidden {
                            let idx = bi * hidden + j
                            switch kind {
                            case "LSTM":
                                let p = peep.map { $0.floats + d * 3 * hidden }
                                let ig = sigmoid(pre[j] + rh[j] + (p?[j] ?? 0) * c[idx])
                                let fg = sigmoid(pre[2 * hidden + j] + rh[2 * hidden + j] + (p?[2 * hidden + j] ?? 0) * c[idx])
                                let cg = tanh(pre[3 * hidden + j] + rh[3 * hidden + j])
                                c[idx] = fg * c[idx] + ig * cg
                                let og = sigmoid(pre[hidden + j] + rh[hidden + j] + (p?[hidden + j] ?? 0) * c[idx])
                                h[idx] = og * tanh(c[idx])
                            case "GRU":
                                let z = sigmoid(pre[j] + rh[j])
                                let rg = sigmoid(pre[hidden + j] + rh[hidden + j])
                                let hh: Float
                                if linearBeforeReset {
                                    hh = tanh(pre[2 * hidden + j] + rg * rh[2 * hidden + j])
                                } else {
                                    var q: Float = 0
                                    for k in 0..<hidden { q += rd[(2 * hidden + j) * hidden + k] * resetH[k] }
                                    if let b { q += b.floats[d * 2 * gates * hidden + gates * hidden + 2 * hidden + j] }
                                    hh = tanh(pre[2 * hidden + j] + q)
                                }
                                pending[j] = (1 - z) * hh + z * h[idx]
                            default:
                                h[idx] = tanh(pre[j] + rh[j])
                            }
                        }
                        if kind == "GRU" { for j in 0..<hidden { h[bi * hidden + j] = pending[j] } }
                        for j in 0..<hidden { Y.floats[((t * dirs + d) * batch + bi) * hidden + j] = h[bi * hidden + j] }
                    }
                }
                for i in 0..<(batch * hidden) { Yh.floats[d * batch * hidden + i] = h[i]; Yc.floats[d * batch * hidden + i] = c[i] }
            }
            var yOut = Y, yhOut = Yh, ycOut = Yc
            if layout != 0 {
                yOut = try permute4(Y, [2, 0, 1, 3], ctx)      // [batch, seq, dirs, hidden]
                yhOut = try permute3(Yh, [1, 0, 2], ctx)
                ycOut = try permute3(Yc, [1, 0, 2], ctx)
            }
            return Array([yOut, yhOut, ycOut].prefix(n.outputs.count))
        }
    }
}

func permute3(_ x: RTensor, _ perm: [Int], _ ctx: RunContext) throws -> RTensor {
    let shape = perm.map { x.shape[$0] }
    let y = try ctx.alloc(shape, x.dtype)
    x.shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
        perm.map { Int32($0) }.withUnsafeBufferPointer { p in mlk_transpose(x.raw, y.raw, 3, sh.baseAddress, p.baseAddress, Int32(x.elementSize)) }
    }
    return y
}

let recurrentKernels: [(String, KernelFactory)] = [("LSTM", recurrentKernel("LSTM")), ("GRU", recurrentKernel("GRU")), ("RNN", recurrentKernel("RNN"))]

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

let moreKernels3: [(String, KernelFactory)] = [
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
    ("CumProd", cumulativeKernel(product: true)),
    ("Compress", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x0 = ins.first ?? nil, let cond = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let flags = cond.integers().map { $0 != 0 }
            let x = n.int("axis") == nil ? view(x0, [x0.count]) : x0
            let axis = try normalize(n.int("axis") ?? 0, x.shape.count, n)
            let len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.shape[..<axis].reduce(1, *)
            let keep = (0..<min(len, flags.count)).filter { flags[$0] }
            var shape = x.shape
            shape[axis] = keep.count
            let y = try ctx.alloc(shape, x.dtype)
            let e = x.elementSize
            for o in 0..<outer {
                for (j, k) in keep.enumerated() {
                    (y.raw + ((o * keep.count + j) * inner) * e).copyMemory(from: x.raw + ((o * len + k) * inner) * e, byteCount: inner * e)
                }
            }
            return [y]
        }
    }),
]

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

let detectionKernels: [(String, KernelFactory)] = [
    // Greedy per (batch, class): highest score first, dropping boxes whose IoU with a kept box
    // exceeds the threshold. Output rows (batch, class, box), in selection order.
    ("NonMaxSuppression", { pc in
        let n = pc.node
        let center = (n.int("center_point_box") ?? 0) != 0
        return { ins, ctx in
            guard let boxes = ins.first ?? nil, let scores = ins.count > 1 ? ins[1] : nil, boxes.shape.count == 3, boxes.shape[2] == 4,
                  scores.shape.count == 3, scores.shape[0] == boxes.shape[0], scores.shape[2] == boxes.shape[1] else {
                throw RuntimeError.invalid(node: n.label, reason: "boxes [B, N, 4] and scores [B, C, N] expected")
            }
            let maxOut = (ins.count > 2 ? ins[2]?.integers().first : nil) ?? 0
            let iouT = ins.count > 3 ? Double(ins[3]?.element(0) ?? 0) : 0
            let scoreT: Double? = ins.count > 4 ? ins[4].map { Double($0.element(0)) } : nil
            let B = boxes.shape[0], N = boxes.shape[1], C = scores.shape[1]
            func box(_ b: Int, _ i: Int) -> (Double, Double, Double, Double) {
                let v = (0..<4).map { boxes.double((b * N + i) * 4 + $0) }
                if center { return (v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2) }
                return (min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3]))
            }
            func iou(_ a: (Double, Double, Double, Double), _ c: (Double, Double, Double, Double)) -> Double {
                let h = max(0, min(a.2, c.2) - max(a.0, c.0)), w = max(0, min(a.3, c.3) - max(a.1, c.1))
                let inter = h * w
                let union = (a.2 - a.0) * (a.3 - a.1) + (c.2 - c.0) * (c.3 - c.1) - inter
                return union > 0 ? inter / union : 0
            }
            var selected: [(Int, Int, Int)] = []
            if maxOut > 0 {
                for b in 0..<B {
                    for c in 0..<C {
                        var cand = (0..<N).map { ($0, scores.double((b * C + c) * N + $0)) }
                        if let scoreT { cand = cand.filter { $0.1 > scoreT } }
                        cand.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
                        var kept: [Int] = []
                        for (i, _) in cand where kept.count < maxOut {
                            if kept.allSatisfy({ iou(box(b, $0), box(b, i)) <= iouT }) { kept.append(i) }
                        }
                        selected += kept.map { (b, c, $0) }
                    }
                }
            }
            let y = try ctx.alloc([selected.count, 3], .int64)
            for (k, s) in selected.enumerated() {
                y.raw.storeBytes(of: Int64(s.0), toByteOffset: (k * 3) * 8, as: Int64.self)
                y.raw.storeBytes(of: Int64(s.1), toByteOffset: (k * 3 + 1) * 8, as: Int64.self)
                y.raw.storeBytes(of: Int64(s.2), toByteOffset: (k * 3 + 2) * 8, as: Int64.self)
            }
            return [y]
        }
    }),
    // Unique over the flattened tensor (no axis): values, first indices, inverse indices, counts.
    ("Unique", { pc in
        let n = pc.node
        if n.int("axis") != nil { throw pc.fail("the axis attribute") }
        let sorted = (n.int("sorted") ?? 1) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype != .string else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            var first: [Double: Int] = [:], order: [Double] = [], counts: [Double: Int] = [:]
            let values = (0..<x.count).map { x.double($0) }
            for (i, v) in values.enumerated() {
                if first[v] == nil { first[v] = i; order.append(v) }
                counts[v, default: 0] += 1
            }
            let uniq = sorted ? order.sorted() : order
            let position = Dictionary(uniqueKeysWithValues: uniq.enumerated().map { ($1, $0) })
            let y = try ctx.alloc([uniq.count], x.dtype)
            let idx = try ctx.alloc([uniq.count], .int64), inv = try ctx.alloc([x.count], .int64), cnt = try ctx.alloc([uniq.count], .int64)
            for (k, v) in uniq.enumerated() {
                y.store(v, at: k)
                idx.raw.storeBytes(of: Int64(first[v]!), toByteOffset: k * 8, as: Int64.self)
                cnt.raw.storeBytes(of: Int64(counts[v]!), toByteOffset: k * 8, as: Int64.self)
            }
            for (i, v) in values.enumerated() { inv.raw.storeBytes(of: Int64(position[v]!), toByteOffset: i * 8, as: Int64.self) }
            return Array([y, idx, inv, cnt].prefix(max(1, n.outputs.count)))
        }
    }),
]
