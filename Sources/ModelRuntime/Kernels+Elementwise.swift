import CKernels
import Foundation
import ModelIR

/// mlk_activate's kind for a fused activation (nil: none the kernels apply).
func activationKind(_ a: FusedActivation) -> Int32? {
    switch a {
    case .relu: return 1
    case .relu6: return 2
    case .reluN1To1: return 3
    case .tanh: return 4
    case .signBit: return nil
    }
}

/// The activation a TFLite op fuses into its output, applied in place.
func applyFused(_ node: Node, _ y: RTensor) {
    guard let a = node.fusedActivation, y.dtype == .float32, let kind = activationKind(a) else { return }
    mlk_activate(y.floats, y.count, kind, 0, 0)
}

private let unaryOps: [String: Int32] = [
    "Relu": Int32(MLK_RELU), "Sigmoid": Int32(MLK_SIGMOID), "Tanh": Int32(MLK_TANH), "Exp": Int32(MLK_EXP), "Log": Int32(MLK_LOG),
    "Sqrt": Int32(MLK_SQRT), "Abs": Int32(MLK_ABS), "Neg": Int32(MLK_NEG), "Erf": Int32(MLK_ERF), "HardSwish": Int32(MLK_HARDSWISH),
    "HardSigmoid": Int32(MLK_HARDSIGMOID), "LeakyRelu": Int32(MLK_LEAKYRELU), "Elu": Int32(MLK_ELU), "Softplus": Int32(MLK_SOFTPLUS),
    "Gelu": Int32(MLK_GELU), "Reciprocal": Int32(MLK_RECIPROCAL), "Floor": Int32(MLK_FLOOR), "Ceil": Int32(MLK_CEIL),
    "Round": Int32(MLK_ROUND), "Sin": Int32(MLK_SIN), "Cos": Int32(MLK_COS), "Selu": Int32(MLK_SELU), "Softsign": Int32(MLK_SOFTSIGN),
    "Relu6": Int32(MLK_RELU6), "ReluN1To1": Int32(MLK_RELU_N1_TO_1), "Square": Int32(MLK_SQUARE), "Rsqrt": Int32(MLK_RSQRT),
    "Sign": Int32(MLK_SIGN), "Tan": Int32(MLK_TAN), "Asin": Int32(MLK_ASIN), "Acos": Int32(MLK_ACOS), "Atan": Int32(MLK_ATAN),
    "Sinh": Int32(MLK_SINH), "Cosh": Int32(MLK_COSH), "Asinh": Int32(MLK_ASINH), "Acosh": Int32(MLK_ACOSH), "Atanh": Int32(MLK_ATANH),
    "ThresholdedRelu": Int32(MLK_THRESHOLDED_RELU), "Celu": Int32(MLK_CELU), "Mish": Int32(MLK_MISH), "Shrink": Int32(MLK_SHRINK),
    // No op of either format: the planner's kernel for Sigmoid(x) * x (FusionPlan.unaryChain).
    "SiLU": Int32(MLK_SILU),
]

private let binaryOps: [String: Int32] = [
    "Add": Int32(MLK_ADD), "Sub": Int32(MLK_SUB), "Mul": Int32(MLK_MUL), "Div": Int32(MLK_DIV), "Pow": Int32(MLK_POW),
    "Max": Int32(MLK_MAX), "Min": Int32(MLK_MIN), "Sum": Int32(MLK_ADD), "Mean": Int32(MLK_ADD), "PRelu": Int32(MLK_PRELU),
    "SquaredDifference": Int32(MLK_SQDIFF), "Mod": Int32(MLK_MOD),
]

/// y = a op b with broadcasting, float32.
func binaryFloat(_ op: Int32, _ a: RTensor, _ b: RTensor, _ node: Node, _ ctx: RunContext) throws -> RTensor {
    guard let shape = broadcastShapes(a.shape, b.shape) else {
        throw RuntimeError.invalid(node: node.label, reason: "shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let y = try ctx.alloc(shape, .float32)
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    guard shape.count <= 8 else { throw RuntimeError.unsupported(op: node.sourceOp, node: node.label, reason: "rank above 8") }
    shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
        sa.map { CLong($0) }.withUnsafeBufferPointer { pa in
            sb.map { CLong($0) }.withUnsafeBufferPointer { pb in
                mlk_binary(op, Int32(shape.count), sh.baseAddress, a.floats, pa.baseAddress, b.floats, pb.baseAddress, y.floats)
            }
        }
    }
    return y
}

/// mlk_binary_int's ops and result sizes.
private let integerOps: [String: Int32] = [
    "Add": Int32(MLK_IADD), "Sum": Int32(MLK_IADD), "Sub": Int32(MLK_ISUB), "Mul": Int32(MLK_IMUL), "Div": Int32(MLK_IDIV),
    "Mod": Int32(MLK_IMOD), "Max": Int32(MLK_IMAX), "Min": Int32(MLK_IMIN), "Equal": Int32(MLK_IEQ), "Greater": Int32(MLK_IGT),
    "Less": Int32(MLK_ILT), "GreaterOrEqual": Int32(MLK_IGE), "LessOrEqual": Int32(MLK_ILE), "NotEqual": Int32(MLK_INE),
    "And": Int32(MLK_IAND), "Or": Int32(MLK_IOR), "Xor": Int32(MLK_IXOR),
]
private let integerResultBytes: [DType: Int32] = [.int64: 8, .int32: 4, .bool: 1]

/// Integer (int64/int32) arithmetic and comparisons with broadcasting, computed in Int64.
func binaryInteger(_ name: String, _ a: RTensor, _ b: RTensor, _ node: Node, _ ctx: RunContext, outType: DType) throws -> RTensor {
    guard let shape = broadcastShapes(a.shape, b.shape) else {
        throw RuntimeError.invalid(node: node.label, reason: "shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let y = try ctx.alloc(shape, outType)
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    if a.dtype == .int32 || a.dtype == .int64, b.dtype == .int32 || b.dtype == .int64, let ye = integerResultBytes[outType],
       var op = integerOps[name], shape.count <= 8 {
        if op == Int32(MLK_IMOD), (node.int("fmod") ?? 0) != 0 { op = Int32(MLK_IFMOD) }
        // int32/int64 operands (shape arithmetic, magika's one-hot Equal over 2048 x 257): the C loop.
        shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
            sa.map { CLong($0) }.withUnsafeBufferPointer { pa in
                sb.map { CLong($0) }.withUnsafeBufferPointer { pb in
                    mlk_binary_int(op, Int32(shape.count), sh.baseAddress, a.raw, pa.baseAddress, Int32(a.elementSize), b.raw,
                                   pb.baseAddress, Int32(b.elementSize), y.raw, ye)
                }
            }
        }
        return y
    }
    let n = shape.reduce(1, *)
    let av = a.integers(), bv = b.integers()
    var idx = [Int](repeating: 0, count: shape.count)
    for i in 0..<n {
        var oa = 0, ob = 0
        for d in 0..<shape.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
        let x = av[oa], z = bv[ob]
        let r: Int
        switch name {
        case "Add", "Sum": r = x &+ z
        case "Sub": r = x &- z
        case "Mul": r = x &* z
        case "Div": r = z == 0 ? 0 : x / z
        case "Mod":
            let fmodMode = (node.int("fmod") ?? 0) != 0
            let m = z == 0 ? 0 : x % z
            r = fmodMode ? m : (m != 0 && (m < 0) != (z < 0) ? m + z : m)
        case "Max": r = max(x, z)
        case "Min": r = min(x, z)
        case "Equal": r = x == z ? 1 : 0
        case "Greater": r = x > z ? 1 : 0
        case "Less": r = x < z ? 1 : 0
        case "GreaterOrEqual": r = x >= z ? 1 : 0
        case "LessOrEqual": r = x <= z ? 1 : 0
        case "NotEqual": r = x != z ? 1 : 0
        case "And": r = (x != 0 && z != 0) ? 1 : 0
        case "Or": r = (x != 0 || z != 0) ? 1 : 0
        case "Xor": r = ((x != 0) != (z != 0)) ? 1 : 0
        default: throw RuntimeError.unsupported(op: node.sourceOp, node: node.label, reason: "integer \(name)")
        }
        switch outType {
        case .int64: y.raw.storeBytes(of: Int64(r), toByteOffset: i * 8, as: Int64.self)
        case .int32: y.raw.storeBytes(of: Int32(truncatingIfNeeded: r), toByteOffset: i * 4, as: Int32.self)
        default: y.raw.storeBytes(of: UInt8(r != 0 ? 1 : 0), toByteOffset: i, as: UInt8.self)
        }
        var d = shape.count - 1
        while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
    }
    return y
}

/// Comparisons of floats -> bool.
func compareFloat(_ name: String, _ a: RTensor, _ b: RTensor, _ node: Node, _ ctx: RunContext) throws -> RTensor {
    guard let shape = broadcastShapes(a.shape, b.shape) else {
        throw RuntimeError.invalid(node: node.label, reason: "shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let y = try ctx.alloc(shape, .bool)
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    var idx = [Int](repeating: 0, count: shape.count)
    for i in 0..<shape.reduce(1, *) {
        var oa = 0, ob = 0
        for d in 0..<shape.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
        let x = a.element(oa), z = b.element(ob)
        let r: Bool
        switch name {
        case "Equal": r = x == z
        case "Greater": r = x > z
        case "Less": r = x < z
        case "GreaterOrEqual": r = x >= z
        case "LessOrEqual": r = x <= z
        default: r = x != z
        }
        y.raw.storeBytes(of: UInt8(r ? 1 : 0), toByteOffset: i, as: UInt8.self)
        var d = shape.count - 1
        while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
    }
    return y
}

let elementwiseKernels: [(String, KernelFactory)] = {
    var k: [(String, KernelFactory)] = []
    for (name, op) in unaryOps {
        k.append((name, { pc in
            let n = pc.node
            var alpha = Float(n.float("alpha") ?? 0), beta = Float(n.float("beta") ?? 0)
            switch name {
            case "LeakyRelu": alpha = Float(n.float("alpha") ?? 0.01)
            case "Elu", "Celu": alpha = Float(n.float("alpha") ?? 1)
            case "HardSigmoid": alpha = Float(n.float("alpha") ?? 0.2); beta = Float(n.float("beta") ?? 0.5)
            case "Selu": alpha = Float(n.float("alpha") ?? 1.67326319217681884765625); beta = Float(n.float("gamma") ?? 1.05070102214813232421875)
            case "ThresholdedRelu": alpha = Float(n.float("alpha") ?? 1)
            case "Shrink": alpha = Float(n.float("lambd") ?? 0.5); beta = Float(n.float("bias") ?? 0)
            default: break
            }
            var cop = op
            if name == "Gelu" && n.string("approximate") == "tanh" { cop = Int32(MLK_GELU_TANH) }
            return { ins, ctx in
                let x = try requireFloat(ins.first ?? nil, node: n)
                let y = try ctx.reuse(x) ?? ctx.alloc(x.shape, .float32)   // element by element: in place where x is free
                mlk_unary(cop, x.floats, y.floats, x.count, alpha, beta)
                return [y]
            }
        }))
    }
    k.append(("Clip", { pc in
        let n = pc.node
        let attrLo = n.float("min"), attrHi = n.float("max")
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n)
            let lo = ins.count > 1 ? ins[1].map { $0.element(0) } : nil
            let hi = ins.count > 2 ? ins[2].map { $0.element(0) } : nil
            let y = try ctx.reuse(x) ?? ctx.alloc(x.shape, .float32)
            mlk_unary(Int32(MLK_CLIP), x.floats, y.floats, x.count, lo ?? Float(attrLo ?? -Double.greatestFiniteMagnitude), hi ?? Float(attrHi ?? Double.greatestFiniteMagnitude))
            return [y]
        }
    }))
    for (name, op) in binaryOps {
        k.append((name, { pc in
            let n = pc.node
            return { ins, ctx in
                var operands = ins.compactMap { $0 }
                guard let first = operands.first else { throw RuntimeError.invalid(node: n.label, reason: "no inputs") }
                if first.dtype == .int64 || first.dtype == .int32 {
                    var acc = first
                    for b in operands.dropFirst() { acc = try binaryInteger(name, acc, b, n, ctx, outType: first.dtype) }
                    return [acc]
                }
                guard first.dtype == .float32, operands.allSatisfy({ $0.dtype == .float32 }) else {
                    throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "element type \(first.dtype.rawValue)")
                }
                if name == "Mod" && (n.int("fmod") ?? 0) == 0 {
                    // Integer-style modulo on floats is only defined by fmod=1 for floats.
                    throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "float Mod without fmod=1")
                }
                var acc = operands.count == 1 ? try binaryFloat(Int32(MLK_ADD), first, RTensor.make([0], shape: []), n, ctx) : first
                // Early PRelu: a [C] slope applies along axis 1, not numpy-style from the right.
                if name == "PRelu", operands.count == 2, first.shape.count > 2, operands[1].shape == [first.shape[1]],
                   broadcastShapes(first.shape, operands[1].shape) == nil {
                    operands[1] = view(operands[1], [first.shape[1]] + Array(repeating: 1, count: first.shape.count - 2))
                }
                for b in operands.dropFirst() { acc = try binaryFloat(name == "Mod" ? Int32(MLK_FMOD) : op, acc, b, n, ctx) }
                if name == "Mean" {
                    let scale = RTensor.make([1 / Float(operands.count)], shape: [])
                    acc = try binaryFloat(Int32(MLK_MUL), acc, scale, n, ctx)
                }
                applyFused(n, acc)
                if let a = pc.activation { mlk_activate(acc.floats, acc.count, a.kind, a.lo, a.hi) }
                return [acc]
            }
        }))
    }
    for name in ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "NotEqual"] {
        k.append((name, { pc in
            let n = pc.node
            return { ins, ctx in
                guard let a = ins.first ?? nil, let b = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "two inputs needed") }
                if a.dtype == .float32 || a.dtype == .float64 || a.dtype == .float16 { return [try compareFloat(name, a, b, n, ctx)] }
                guard [.int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool].contains(a.dtype) else {
                    throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "element type \(a.dtype.rawValue)")
                }
                return [try binaryInteger(name, a, b, n, ctx, outType: .bool)]
            }
        }))
    }
    for name in ["And", "Or", "Xor"] {
        k.append((name, { pc in
            let n = pc.node
            return { ins, ctx in
                guard let a = ins.first ?? nil, let b = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "two inputs needed") }
                return [try binaryInteger(name, a, b, n, ctx, outType: .bool)]
            }
        }))
    }
    k.append(("Not", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .bool else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "bool only") }
            let y = try ctx.alloc(x.shape, .bool)
            for i in 0..<x.count { y.raw.storeBytes(of: x.raw.load(fromByteOffset: i, as: UInt8.self) == 0 ? 1 : 0, toByteOffset: i, as: UInt8.self) }
            return [y]
        }
    }))
    k.append(("Where", { pc in
        let n = pc.node
        return { ins, ctx in
            guard ins.count == 3, let c = ins[0], let x = ins[1], let z = ins[2], x.dtype == z.dtype else {
                throw RuntimeError.invalid(node: n.label, reason: "Where needs condition, X and Y of one type")
            }
            guard let s1 = broadcastShapes(c.shape, x.shape), let shape = broadcastShapes(s1, z.shape) else {
                throw RuntimeError.invalid(node: n.label, reason: "shapes do not broadcast")
            }
            let y = try ctx.alloc(shape, x.dtype)
            let e = x.elementSize
            let sc = broadcastStrides(c.shape, to: shape), sx = broadcastStrides(x.shape, to: shape), sz = broadcastStrides(z.shape, to: shape)
            var idx = [Int](repeating: 0, count: shape.count)
            for i in 0..<shape.reduce(1, *) {
                var oc = 0, ox = 0, oz = 0
                for d in 0..<shape.count { oc += idx[d] * sc[d]; ox += idx[d] * sx[d]; oz += idx[d] * sz[d] }
                let pick = c.raw.load(fromByteOffset: oc, as: UInt8.self) != 0
                (y.raw + i * e).copyMemory(from: pick ? x.raw + ox * e : z.raw + oz * e, byteCount: e)
                var d = shape.count - 1
                while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
            }
            return [y]
        }
    }))
    k.append(("BatchNormalization", { pc in
        let n = pc.node
        guard (n.int("training_mode") ?? 0) == 0, n.outputs.count == 1 else { throw pc.fail("training mode") }
        let eps = Float(n.float("epsilon") ?? 1e-5)
        // y = x * scale + shift per channel; computed once when the parameters are constants.
        func affine(_ s: RTensor, _ b: RTensor, _ m: RTensor, _ v: RTensor) -> (scale: [Float], shift: [Float]) {
            let sv = s.toFloats(), bv = b.toFloats(), mv = m.toFloats(), vv = v.toFloats()
            let c = min(sv.count, bv.count, mv.count, vv.count)
            let scale = (0..<c).map { sv[$0] / (vv[$0] + eps).squareRoot() }
            return (scale, (0..<c).map { bv[$0] - mv[$0] * scale[$0] })
        }
        let params = pc.constants.count >= 5 ? pc.constants[1...4].compactMap { $0 } : []
        let planned = params.count == 4 ? affine(params[0], params[1], params[2], params[3]) : nil
        let act = pc.activation ?? (0, 0, 0)
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n)
            guard ins.count >= 5, let s = ins[1], let b = ins[2], let m = ins[3], let v = ins[4], x.shape.count >= 2 else {
                throw RuntimeError.invalid(node: n.label, reason: "BatchNormalization needs 5 inputs")
            }
            let c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *), outer = x.shape[0]
            let (scale, shift) = planned ?? affine(s, b, m, v)
            guard scale.count == c, [s, b, m, v].allSatisfy({ $0.count == c }) else {
                throw RuntimeError.invalid(node: n.label, reason: "parameters of \(s.count) elements for \(c) channels")
            }
            let y = try ctx.alloc(x.shape, .float32)
            mlk_channel_affine(x.floats, y.floats, outer, c, inner, scale, shift, act.kind, act.lo, act.hi)
            return [y]
        }
    }))
    for name in ["Softmax", "LogSoftmax", "Hardmax"] {
        k.append((name, { pc in
            let n = pc.node
            let kind: Int32 = name == "Softmax" ? 0 : name == "LogSoftmax" ? 1 : 2
            let legacy = n.int("flatten_to_2d") == 1
            return { ins, ctx in
                let x = try requireFloat(ins.first ?? nil, node: n)
                let axis = try normalize(n.int("axis") ?? (legacy ? 1 : -1), x.shape.count, n)
                let outer = x.shape[..<axis].reduce(1, *)
                // flatten_to_2d: the input taken as 2-D, split at `axis`.
                let len = legacy ? x.shape[axis...].reduce(1, *) : x.shape[axis]
                let inner = legacy ? 1 : x.shape[(axis + 1)...].reduce(1, *)
                let y = try ctx.alloc(x.shape, .float32)
                mlk_softmax(x.floats, y.floats, outer, len, inner, kind)
                return [y]
            }
        }))
    }
    k.append(("InstanceNormalization", { pc in
        let n = pc.node
        let eps = Float(n.float("epsilon") ?? 1e-5)
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n)
            guard ins.count == 3, let s = ins[1], let b = ins[2], x.shape.count >= 3 else { throw RuntimeError.invalid(node: n.label, reason: "needs scale and bias") }
            let c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
            let y = try ctx.alloc(x.shape, .float32)
            let sv = s.toFloats(), bv = b.toFloats()
            for o in 0..<x.shape[0] {
                for ch in 0..<c {
                    let base = (o * c + ch) * inner
                    var mean = 0.0, sq = 0.0
                    for i in 0..<inner { mean += Double(x.floats[base + i]) }
                    mean /= Double(inner)
                    for i in 0..<inner { let d = Double(x.floats[base + i]) - mean; sq += d * d }
                    let inv = 1 / (sq / Double(inner) + Double(eps)).squareRoot()
                    for i in 0..<inner { y.floats[base + i] = Float((Double(x.floats[base + i]) - mean) * inv) * sv[ch] + bv[ch] }
                }
            }
            return [y]
        }
    }))
    k.append(("Cast", { pc in
        let n = pc.node
        let supported: Set<DType> = [.float32, .float64, .float16, .bfloat16, .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool]
        guard let to = n.string("to").flatMap(DType.init(rawValue:)), supported.contains(to) else {
            throw pc.fail("cast to \(n.string("to") ?? "?")")
        }
        return { ins, ctx in
            guard let x = ins.first ?? nil, supported.contains(x.dtype) else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "cast from \(ins.first??.dtype.rawValue ?? "?")")
            }
            return [try castAny(x, to: to, ctx, roundBFloat16: n.string("bfloat16_rounding") != "truncate")]
        }
    }))
    // TFLite QUANTIZE: float -> int8/uint8 (or requantize) with the output's scale and zero point.
    k.append(("Quantize", { pc in
        let n = pc.node
        guard let out = n.outputs.first, let q = pc.graph.values[out].quantization, q.scales.count == 1 else { throw pc.fail("output without per-tensor quantization") }
        let outType = pc.graph.values[out].type.dtype
        let inQ = n.inputs.first.flatMap { $0 }.flatMap { pc.graph.values[$0].quantization }
        return { ins, ctx in
            guard var x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            if x.dtype != .float32 {
                guard let inQ else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "requantizing without input parameters") }
                x = try Quant.dequantize(x, inQ, ctx)
            }
            return [try Quant.quantize(x, to: outType, scale: q.scales[0], zeroPoint: Int(q.zeroPoints.first ?? 0), halfToEven: false, ctx)]
        }
    }))
    // TFLite DEQUANTIZE: float16 weights widened to float32, or int8/uint8 with the tensor's scale and zero point.
    k.append(("Dequantize", { pc in
        let n = pc.node
        let q = n.inputs.first.flatMap { $0 }.flatMap { pc.graph.values[$0].quantization ?? pc.graph.values[$0].constant?.quantization }
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let y = try ctx.alloc(x.shape, .float32)
            switch x.dtype {
            case .float16:
                for i in 0..<x.count { y.floats[i] = halfToFloat(x.raw.load(fromByteOffset: i * 2, as: UInt16.self)) }
            case .int8, .uint8, .int16:
                guard let q else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "no quantization parameters") }
                return [try Quant.dequantize(x, q, ctx)]
            default: throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "dequantize from \(x.dtype.rawValue)")
            }
            return [y]
        }
    }))
    // TFLite DENSIFY: the importer already expanded the sparse constant; this is a copy.
    for name in ["Identity", "Dropout", "Densify"] {
        k.append((name, { pc in
            let n = pc.node
            return { ins, ctx in
                guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
                if name == "Dropout", ins.count > 2, let training = ins[2], training.element(0) != 0 {
                    throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "training mode (random)")
                }
                if n.outputs.count > 1 {
                    let mask = try ctx.alloc(x.shape, .bool)
                    for i in 0..<x.count { mask.raw.storeBytes(of: UInt8(1), toByteOffset: i, as: UInt8.self) }
                    return [x, mask]
                }
                return [x]
            }
        }))
    }
    return k
}()
