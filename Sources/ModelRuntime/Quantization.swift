import CKernels
import Foundation
import ModelIR

/// Quantized tensors: real = scale * (q - zero_point), per tensor or per axis.
enum Quant {
    static func isQuantizedType(_ d: DType) -> Bool { d == .int8 || d == .uint8 || d == .int16 || d == .int32 }

    /// Float copy of a quantized tensor (per-axis along `axis` when several scales).
    static func dequantize(_ t: RTensor, _ q: QuantizationParams, _ ctx: RunContext?) throws -> RTensor {
        let y = try ctx?.alloc(t.shape, .float32) ?? RTensor.allocate(t.shape, .float32)
        let n = t.count
        if q.scales.count <= 1, t.dtype == .int8 || t.dtype == .uint8 {
            mlk_dequantize_8(t.raw, t.dtype == .int8 ? 1 : 0, n, q.scales.first ?? 1, Int32(clamping: q.zeroPoints.first ?? 0), y.floats)
            return y
        }
        if q.scales.count <= 1 {
            let s = q.scales.first ?? 1, z = Float(q.zeroPoints.first ?? 0)
            for i in 0..<n { y.floats[i] = (t.element(i) - z) * s }
            return y
        }
        let axis = q.axis ?? 0
        guard axis < t.shape.count, t.shape[axis] == q.scales.count else {
            throw RuntimeError.input("per-axis quantization with \(q.scales.count) scales does not fit shape \(t.shape) on axis \(axis)")
        }
        let inner = t.shape[(axis + 1)...].reduce(1, *), len = t.shape[axis]
        for i in 0..<n {
            let c = (i / inner) % len
            let z = Float(c < q.zeroPoints.count ? q.zeroPoints[c] : (q.zeroPoints.first ?? 0))
            y.floats[i] = (t.element(i) - z) * q.scales[c]
        }
        return y
    }

    /// Quantized copy of a float tensor, per tensor. TFLite rounds half away from zero;
    /// ONNX QuantizeLinear rounds half to even.
    static func quantize(_ x: RTensor, to dtype: DType, scale: Float, zeroPoint: Int, halfToEven: Bool, _ ctx: RunContext) throws -> RTensor {
        let y = try ctx.alloc(x.shape, dtype)
        if dtype == .int8 || dtype == .uint8 {
            mlk_quantize_8(x.floats, x.count, scale, Int32(clamping: zeroPoint), dtype == .int8 ? 1 : 0, halfToEven ? 1 : 0, y.raw)
            return y
        }
        // int16 and int32 (int8 and uint8 took the C path above).
        let (lo, hi): (Float, Float) = dtype == .int16 ? (-32768, 32767) : (-2147483648, 2147483520)
        for i in 0..<x.count {
            let v = x.floats[i] / scale
            let r = halfToEven ? v.rounded(.toNearestOrEven) : v.rounded(.toNearestOrAwayFromZero)
            let q = r.isNaN ? Float(zeroPoint) : min(max(r + Float(zeroPoint), lo), hi)
            if dtype == .int16 {
                y.raw.storeBytes(of: Int16(q), toByteOffset: i * 2, as: Int16.self)
            } else {
                y.raw.storeBytes(of: Int32(q), toByteOffset: i * 4, as: Int32.self)
            }
        }
        return y
    }
}

/// ONNX QuantizeLinear / DequantizeLinear (per tensor or per axis), TFLite QUANTIZE, and the pair of them.
let quantizationKernels: [(String, KernelFactory)] = [
    ("DequantizeLinear", { pc in
        let n = pc.node
        if (n.int("block_size") ?? 0) != 0 { throw pc.fail("blocked quantization") }
        return { ins, ctx in
            guard let x = ins.first ?? nil, let s = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            guard Quant.isQuantizedType(x.dtype), s.dtype == .float32 else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "types \(x.dtype.rawValue) / \(s.dtype.rawValue)") }
            let zp = (ins.count > 2 ? ins[2] : nil)?.integers() ?? []
            // The axis matters only for per-axis scales.
            let axis = s.count > 1 ? try normalize(n.int("axis") ?? 1, max(x.shape.count, 1), n) : nil
            let q = QuantizationParams(scales: s.toFloats(), zeroPoints: zp.map { Int64($0) }, axis: axis)
            return [try Quant.dequantize(x, q, ctx)]
        }
    }),
    ("QuantizeLinear", { pc in
        let n = pc.node
        if (n.int("block_size") ?? 0) != 0 { throw pc.fail("blocked quantization") }
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n)
            guard let s = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "missing scale") }
            let zpT = ins.count > 2 ? ins[2] : nil
            let dtype = zpT?.dtype ?? (n.string("output_dtype_name").flatMap(DType.init(rawValue:)) ?? .uint8)
            guard [.int8, .uint8, .int16].contains(dtype) else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "output type \(dtype.rawValue)") }
            let scales = s.toFloats(), zps = zpT?.integers() ?? [0]
            if scales.count == 1 {
                return [try Quant.quantize(x, to: dtype, scale: scales[0], zeroPoint: zps.first ?? 0, halfToEven: true, ctx)]
            }
            // Per axis: quantize slice by slice.
            let axis = try normalize(n.int("axis") ?? 1, x.shape.count, n)
            guard x.shape[axis] == scales.count else { throw RuntimeError.invalid(node: n.label, reason: "\(scales.count) scales for axis of \(x.shape[axis])") }
            let y = try ctx.alloc(x.shape, dtype)
            let inner = x.shape[(axis + 1)...].reduce(1, *), len = x.shape[axis]
            for i in 0..<x.count {
                let c = (i / inner) % len
                let one = RTensor.make([x.floats[i]], shape: [1])
                let q = try Quant.quantize(one, to: dtype, scale: scales[c], zeroPoint: c < zps.count ? zps[c] : 0, halfToEven: true, ctx)
                y.raw.advanced(by: i * y.elementSize).copyMemory(from: q.raw, byteCount: y.elementSize)
            }
            return [y]
        }
    }),
    quantizeDequantizeKernel,
]

/// QuantizeLinear -> DequantizeLinear with one scale and 8-bit zero point, run as one float pass
/// (FusionPlan.unaryChain "QuantizeDequantize"; the node is the QuantizeLinear, its input x).
let quantizeDequantizeKernel: (String, KernelFactory) = ("QuantizeDequantize", { pc in
    let n = pc.node
    guard n.inputs.count == 3, let s = n.inputs[1], let z = n.inputs[2],
          let scale = pc.graph.values[s].constant?.doubles(limit: 1)?.first, let zc = pc.graph.values[z].constant,
          let zero = zc.doubles(limit: 1)?.first else { throw pc.fail("quantization parameters that are not constants") }
    let signed: Int32 = zc.dtype == .int8 ? 1 : 0
    return { ins, ctx in
        let x = try requireFloat(ins.first ?? nil, node: n)
        let y = try ctx.alloc(x.shape, .float32)
        mlk_quantize_dequantize_8(x.floats, x.count, Float(scale), Int32(zero), signed, y.floats)
        return [y]
    }
})

/// Runs a float kernel on a TFLite node with quantized tensors: quantized inputs are dequantized
/// (constants once, at plan time), the float kernel computes, and quantized outputs are
/// requantized with their own scale and zero point. Results match an integer kernel within
/// one quantization step; the arithmetic is float.
func quantizedWrapper(_ pc: PlanContext, factory: KernelFactory) throws -> Kernel {
    let g = pc.graph, n = pc.node
    func params(_ v: ValueID?) -> QuantizationParams? {
        guard let v else { return nil }
        return g.values[v].quantization ?? g.values[v].constant?.quantization
    }
    let inParams = n.inputs.map(params)
    var floatConstants = pc.constants
    for (i, c) in pc.constants.enumerated() {
        if let c, Quant.isQuantizedType(c.dtype), let q = inParams[i] { floatConstants[i] = try Quant.dequantize(c, q, nil) }
    }
    var inner = pc
    inner = PlanContext(node: n, graph: g, constants: floatConstants)
    inner.activation = pc.activation
    let kernel = try factory(inner)
    let outInfo = n.outputs.map { (g.values[$0].type.dtype, g.values[$0].quantization) }
    return { ins, ctx in
        var xs = ins
        var temporaries: [ObjectIdentifier: RBuffer] = [:]
        for (i, x) in ins.enumerated() {
            if let c = floatConstants[i] { xs[i] = c; continue }
            if let x, Quant.isQuantizedType(x.dtype), let q = inParams[i] {
                let t = try Quant.dequantize(x, q, ctx)
                xs[i] = t
                temporaries[ObjectIdentifier(t.buffer)] = t.buffer
            }
        }
        let outs = try kernel(xs, ctx)
        let results = try outs.enumerated().map { k, y in
            guard k < outInfo.count, Quant.isQuantizedType(outInfo[k].0), let q = outInfo[k].1, y.dtype == .float32 else { return y }
            temporaries[ObjectIdentifier(y.buffer)] = y.buffer
            return try Quant.quantize(y, to: outInfo[k].0, scale: q.scales.first ?? 1, zeroPoint: Int(q.zeroPoints.first ?? 0), halfToEven: false, ctx)
        }
        // The float copies go back to the pool, each once, unless a result is one of them.
        for r in results { temporaries[ObjectIdentifier(r.buffer)] = nil }
        for b in temporaries.values { ctx.release(b) }
        return results
    }
}

/// ONNX's integer ops through the float kernels: inputs dequantized (x - zero point) * scale,
/// the float Conv / MatMul computes, and the output is requantized (QLinear*, saturating, half
/// to even) or written as exact int32 (ConvInteger / MatMulInteger, whose values are integers).
func integerOp(_ floatOp: String, qlinear: Bool) -> KernelFactory {
    { pc in
        let n = pc.node
        var inner = n
        inner.op = OpKind(floatOp)
        inner.fusedActivation = nil
        if floatOp == "Conv" { inner.dataLayout = .nchw; inner.kernelLayout = .oihw }
        guard let factory = KernelRegistry.table[floatOp] else { throw pc.fail("no float \(floatOp)") }
        let weightAxis = floatOp == "Conv" ? 0 : 1
        let (wSlot, wScale, wZero) = qlinear ? (3, 4, 5) : (1, -1, 3)
        func constant(_ i: Int) -> RTensor? { i >= 0 && i < pc.constants.count ? pc.constants[i] : nil }
        // Constant weights (and a QLinearConv's bias) dequantized once, here, so that the float
        // kernel packs them at plan time as it does a float model's: dequantized on every call, the
        // QOperator MobileNetV2's convolutions took 21 ms.
        // QLinearConv as onnxruntime computes it: the float kernel convolves inputs and weights less
        // their zero points, integers whose products and sums a float holds exactly (below 2^24;
        // Winograd F(2x2, 3x3)'s transforms only add, subtract and halve them), and the sums are
        // requantized with x_scale * w_scale / y_scale per channel. Dequantized first, one sum in
        // 20 of the QOperator MobileNetV2's logits came out a step apart.
        let integerSums = qlinear && floatOp == "Conv"
        var plannedW: RTensor? = nil, plannedBias: RTensor? = nil
        if let w = constant(wSlot), wScale < 0 || constant(wScale) != nil, pc.node.inputs.count <= wZero || constant(wZero) != nil {
            plannedW = try dequantize(w, scale: integerSums ? nil : constant(wScale), zp: constant(wZero), axis: weightAxis, nil)
            if qlinear, floatOp == "Conv", let bq = constant(8), let xs = constant(1), let ws = constant(4) {
                plannedBias = integerSums ? integerBias(bq, nil) : dequantizedBias(bq, xs, ws, nil)
            }
        }
        var innerContext = PlanContext(node: inner, graph: pc.graph, constants: [nil, plannedW, plannedBias])
        innerContext.madeAtPlanTime = plannedW == nil ? [] : [1]
        let kernel = try factory(innerContext)
        return { ins, ctx in
            func input(_ i: Int) -> RTensor? { i < ins.count ? ins[i] : nil }
            func deq(_ t: RTensor?, scale: RTensor?, zp: RTensor?, axis: Int) throws -> RTensor {
                guard let t else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
                return try dequantize(t, scale: scale, zp: zp, axis: axis, ctx)
            }
            let a: RTensor, b: RTensor
            var bias: RTensor? = plannedBias
            if integerSums {
                a = try deq(input(0), scale: nil, zp: input(2), axis: 1)
                b = try plannedW ?? deq(input(3), scale: nil, zp: input(5), axis: weightAxis)
                if bias == nil, let bq = input(8) { bias = integerBias(bq, ctx) }
                let sums = try kernel(bias.map { [a, b, $0] } ?? [a, b], ctx)[0]
                let xs = input(1)?.toFloats().first ?? 1, ys = input(6)?.toFloats().first ?? 1
                let scales = (input(4)?.toFloats() ?? [1]).map { xs * $0 / ys }
                let yz = input(7)
                let y = try ctx.alloc(sums.shape, yz?.dtype ?? .uint8)
                let channels = sums.shape.count > 1 ? sums.shape[1] : 1
                guard scales.count == 1 || scales.count == channels else {
                    throw RuntimeError.invalid(node: n.label, reason: "\(scales.count) weight scales for \(channels) output channels")
                }
                mlk_requantize_planes(sums.floats, Int32(sums.shape.prefix(2).reduce(1, *)), sums.shape.dropFirst(2).reduce(1, *), Int32(channels),
                                      scales, Int32(scales.count), Int32(clamping: yz?.integers().first ?? 0), y.dtype == .int8 ? 1 : 0, y.raw)
                ctx.release(sums.buffer)
                return [y]
            }
            if qlinear {
                a = try deq(input(0), scale: input(1), zp: input(2), axis: 1)
                b = try plannedW ?? deq(input(3), scale: input(4), zp: input(5), axis: weightAxis)
            } else {
                a = try deq(input(0), scale: nil, zp: input(2), axis: 1)
                b = try plannedW ?? deq(input(1), scale: nil, zp: input(3), axis: weightAxis)
            }
            var y = try kernel(bias.map { [a, b, $0] } ?? [a, b], ctx)[0]
            if qlinear {
                let ys = input(6)?.toFloats().first ?? 1
                let yz = input(7)
                y = try Quant.quantize(y, to: yz?.dtype ?? .uint8, scale: ys, zeroPoint: yz?.integers().first ?? 0, halfToEven: true, ctx)
            } else {
                let yi = try ctx.alloc(y.shape, .int32)
                for i in 0..<y.count { yi.raw.storeBytes(of: Int32(clamping: Int(y.floats[i].rounded())), toByteOffset: i * 4, as: Int32.self) }
                y = yi
            }
            return [y]
        }
    }
}

/// `t` dequantized with the scale and zero point tensors of an ONNX integer op (per tensor, or per
/// axis along `axis`); into the pool when `ctx` is given.
private func dequantize(_ t: RTensor, scale: RTensor?, zp: RTensor?, axis: Int, _ ctx: RunContext?) throws -> RTensor {
    let scales = scale?.toFloats() ?? [1]
    let zps = zp?.integers().map { Int64($0) } ?? [0]
    let q = QuantizationParams(scales: scales, zeroPoints: zps, axis: scales.count > 1 || zps.count > 1 ? axis : nil)
    if q.axis != nil && scales.count == 1 {
        // Per-axis zero points with one scale.
        return try Quant.dequantize(t, QuantizationParams(scales: Array(repeating: scales[0], count: zps.count), zeroPoints: zps, axis: axis), ctx)
    }
    return try Quant.dequantize(t, q, ctx)
}

/// A QLinearConv's int32 bias as float integers (exact below 2^24), for sums left unscaled.
private func integerBias(_ bq: RTensor, _ ctx: RunContext?) -> RTensor {
    let bf = (try? ctx?.alloc(bq.shape, .float32)) ?? RTensor.allocate(bq.shape, .float32)
    for i in 0..<bq.count { bf.floats[i] = bq.element(i) }
    return bf
}

/// A QLinearMatMul's or QLinearConv's int32 bias in float: scale x_scale * w_scale (per output channel).
private func dequantizedBias(_ bq: RTensor, _ xScale: RTensor?, _ wScale: RTensor?, _ ctx: RunContext?) -> RTensor {
    let xs = xScale?.toFloats().first ?? 1, ws = wScale?.toFloats() ?? [1]
    let bf = (try? ctx?.alloc(bq.shape, .float32)) ?? RTensor.allocate(bq.shape, .float32)
    for i in 0..<bq.count { bf.floats[i] = bq.element(i) * xs * ws[ws.count == 1 ? 0 : i] }
    return bf
}

let integerKernels: [(String, KernelFactory)] = [
    ("QLinearConv", integerOp("Conv", qlinear: true)),
    ("QLinearMatMul", integerOp("MatMul", qlinear: true)),
    ("ConvInteger", integerOp("Conv", qlinear: false)),
    ("MatMulInteger", integerOp("MatMul", qlinear: false)),
]

/// onnxruntime's QOperator ops (domain com.microsoft, written by onnxruntime.quantization), with
/// onnxruntime's arithmetic so that outputs equal its own: QLinearAdd as its AVX2 kernel does it
/// (the scales as ratios to the output's, one fused multiply-add per operand in float, rounding
/// half to even, saturation); the global average pool and QGemm sum in int32 and requantize as
/// MlasRequantizeOutput does (the sum times one float scale, rounded half to even, saturated).
let qoperatorKernels: [(String, KernelFactory)] = [
    ("QLinearAdd", qlinearBinary(add: true)),
    ("QLinearMul", qlinearBinary(add: false)),
    ("QLinearGlobalAveragePool", { pc in
        let n = pc.node
        let channelsLast = (n.int("channels_last") ?? 0) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .int8 || x.dtype == .uint8, x.shape.count >= 3 else {
                throw RuntimeError.invalid(node: n.label, reason: "expects an 8-bit input of rank 3 or more")
            }
            let (sx, zx) = try quantParams(ins, 1, 2, n), (sy, zy) = try quantParams(ins, 3, 4, n)
            let batch = x.shape[0], channels = channelsLast ? x.shape[x.shape.count - 1] : x.shape[1]
            let image = x.count / max(1, batch * channels)
            var shape = [Int](repeating: 1, count: x.shape.count)
            shape[0] = batch
            shape[channelsLast ? shape.count - 1 : 1] = channels
            let y = try ctx.alloc(shape, x.dtype)
            let scale = sx / (sy * Float(image))
            for b in 0..<batch {
                for c in 0..<channels {
                    var acc = -zx * Int32(image)
                    if channelsLast {
                        for i in 0..<image { acc &+= q8(x, (b * image + i) * channels + c) }
                    } else if x.dtype == .uint8 {
                        // A plane's bytes summed as they lie (the loop vectorizes).
                        let plane = UnsafeBufferPointer(start: x.raw.assumingMemoryBound(to: UInt8.self) + (b * channels + c) * image, count: image)
                        acc &+= plane.reduce(Int32(0)) { $0 &+ Int32($1) }
                    } else {
                        let plane = UnsafeBufferPointer(start: x.raw.assumingMemoryBound(to: Int8.self) + (b * channels + c) * image, count: image)
                        acc &+= plane.reduce(Int32(0)) { $0 &+ Int32($1) }
                    }
                    store8(y, b * channels + c, roundHalfEven(Float(acc) * scale) &+ zy)
                }
            }
            return [y]
        }
    }),
    ("QGemm", { pc in
        let n = pc.node
        let transA = (n.int("transA") ?? 0) != 0, transB = (n.int("transB") ?? 0) != 0
        let alpha = Float(n.float("alpha") ?? 1)
        // B's columns less their zero points, as int32 with k contiguous: once, when constant.
        func columns(_ b: RTensor, _ zb: [Int32], _ k: Int, _ cols: Int) -> [Int32] {
            var out = [Int32](repeating: 0, count: cols * k)
            for j in 0..<cols {
                let z = zb[zb.count == 1 ? 0 : j]
                for kk in 0..<k { out[j * k + kk] = q8(b, transB ? j * k + kk : kk * cols + j) - z }
            }
            return out
        }
        func zeros(_ t: RTensor?) -> [Int32] { t?.integers().map { Int32(clamping: $0) } ?? [0] }
        var planned: (shape: [Int], cols: [Int32])? = nil
        if pc.constants.count > 3, let b = pc.constants[3], b.shape.count == 2, [.int8, .uint8].contains(b.dtype),
           n.inputs.count <= 5 || (pc.constants.count > 5 && pc.constants[5] != nil) {
            let k = transB ? b.shape[1] : b.shape[0], cols = transB ? b.shape[0] : b.shape[1]
            let zb = zeros(pc.constants.count > 5 ? pc.constants[5] : nil)
            if zb.count == 1 || zb.count == cols { planned = (b.shape, columns(b, zb, k, cols)) }
        }
        return { ins, ctx in
            func input(_ i: Int) -> RTensor? { i < ins.count ? ins[i] : nil }
            guard let a = input(0), let b = input(3), a.shape.count == 2, b.shape.count == 2,
                  [.int8, .uint8].contains(a.dtype), [.int8, .uint8].contains(b.dtype) else {
                throw RuntimeError.invalid(node: n.label, reason: "expects 8-bit matrices A and B")
            }
            let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
            let cols = transB ? b.shape[0] : b.shape[1]
            guard (transB ? b.shape[1] : b.shape[0]) == k else { throw RuntimeError.invalid(node: n.label, reason: "A \(a.shape) and B \(b.shape) do not multiply") }
            let (sa, za) = try quantParams(ins, 1, 2, n)
            guard let bs = input(4) else { throw RuntimeError.invalid(node: n.label, reason: "missing b_scale") }
            let sb = bs.toFloats(), zb = zeros(input(5))
            guard sb.count == 1 || sb.count == cols, zb.count == 1 || zb.count == cols else {
                throw RuntimeError.invalid(node: n.label, reason: "b_scale and b_zero_point take 1 or \(cols) values")
            }
            let bias = input(6)
            let ys = input(7)?.toFloats().first, yz = input(8)
            let y = try ctx.alloc([m, cols], yz?.dtype ?? .float32)
            let zy = Int32(yz?.integers().first ?? 0)
            var rowsA = [Int32](repeating: 0, count: m * k)
            for i in 0..<m { for kk in 0..<k { rowsA[i * k + kk] = q8(a, transA ? kk * m + i : i * k + kk) - za } }
            let colsB = planned.flatMap { $0.shape == b.shape ? $0.cols : nil } ?? columns(b, zb, k, cols)
            rowsA.withUnsafeBufferPointer { ra in
                colsB.withUnsafeBufferPointer { cb in
                    for j in 0..<cols {
                        var scale = alpha * sa * sb[sb.count == 1 ? 0 : j]
                        if let ys { scale /= ys }
                        for i in 0..<m {
                            var acc: Int32 = 0
                            let r = ra.baseAddress! + i * k, c = cb.baseAddress! + j * k
                            for kk in 0..<k { acc &+= r[kk] &* c[kk] }
                            if let bias {
                                // C broadcast to [M, N]: a scalar, a row of N, a column of M, or the matrix.
                                let at = bias.count == 1 ? 0 : bias.count == cols && (bias.shape.count == 1 || bias.shape[0] == 1) ? j
                                    : bias.count == m ? i : i * cols + j
                                acc &+= bias.raw.load(fromByteOffset: at * 4, as: Int32.self)
                            }
                            if yz != nil {
                                store8(y, i * cols + j, roundHalfEven(Float(acc) * scale) &+ zy)
                            } else {
                                y.floats[i * cols + j] = Float(acc) * scale
                            }
                        }
                    }
                }
            }
            return [y]
        }
    }),
]

/// QLinearConcat and QLinearLeakyRelu map each 8-bit value through a table of 256, as
/// onnxruntime builds it: dequantized ((q - zero) * scale in float), transformed, and quantized
/// again (round half to even of value / scale, plus the zero point, saturated).
private func requantTable(_ dtype: DType, _ sx: Float, _ zx: Int32, _ sy: Float, _ zy: Int32, _ f: (Float) -> Float) -> [UInt8] {
    (0..<256).map { b in
        let q = dtype == .int8 ? Int32(Int8(truncatingIfNeeded: b)) : Int32(b)
        let v = (f(Float(q - zx) * sx) / sy).rounded(.toNearestOrEven)
        let r = v.isNaN ? zy : Int32(max(-1e6, min(1e6, v))) &+ zy
        return dtype == .int8 ? UInt8(bitPattern: Int8(clamping: r)) : UInt8(clamping: r)
    }
}

private func mapped(_ x: RTensor, _ table: [UInt8], into y: RTensor) {
    mlk_map_8(x.raw, x.count, table, y.raw)
}

let qoperatorTableKernels: [(String, KernelFactory)] = [
    ("QLinearLeakyRelu", { pc in
        let n = pc.node
        let alpha = Float(n.float("alpha") ?? 0.01)
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .int8 || x.dtype == .uint8 else {
                throw RuntimeError.invalid(node: n.label, reason: "expects an 8-bit input")
            }
            let (sx, zx) = try quantParams(ins, 1, 2, n), (sy, zy) = try quantParams(ins, 3, 4, n)
            let y = try ctx.alloc(x.shape, x.dtype)
            mapped(x, requantTable(x.dtype, sx, zx, sy, zy) { $0 >= 0 ? $0 : $0 * alpha }, into: y)
            return [y]
        }
    }),
    ("QLinearSigmoid", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .int8 || x.dtype == .uint8 else {
                throw RuntimeError.invalid(node: n.label, reason: "expects an 8-bit input")
            }
            let (sx, zx) = try quantParams(ins, 1, 2, n), (sy, zy) = try quantParams(ins, 3, 4, n)
            let y = try ctx.alloc(x.shape, x.dtype)
            mapped(x, requantTable(x.dtype, sx, zx, sy, zy) { 1 / (1 + Foundation.exp(-$0)) }, into: y)
            return [y]
        }
    }),
    ("QLinearConcat", { pc in
        let n = pc.node
        return { ins, ctx in
            let (sy, zy) = try quantParams(ins, 0, 1, n)
            let parts = stride(from: 2, to: ins.count, by: 3).compactMap { ins[$0] }
            guard let first = parts.first, parts.allSatisfy({ $0.dtype == first.dtype && $0.shape.count == first.shape.count }),
                  first.dtype == .int8 || first.dtype == .uint8 else {
                throw RuntimeError.invalid(node: n.label, reason: "expects 8-bit inputs of one type and rank")
            }
            let axis = try normalize(n.int("axis") ?? 0, first.shape.count, n)
            var shape = first.shape
            shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
            for p in parts where p.shape.enumerated().contains(where: { $0.offset != axis && $0.element != shape[$0.offset] }) {
                throw RuntimeError.invalid(node: n.label, reason: "shapes \(first.shape) and \(p.shape) do not concatenate on axis \(axis)")
            }
            let y = try ctx.alloc(shape, first.dtype)
            let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), row = shape[axis] * inner
            var at = 0
            for (k, part) in parts.enumerated() {
                let (sx, zx) = try quantParams(ins, 2 + 3 * k + 1, 2 + 3 * k + 2, n)
                // Same scale and zero point: the bytes as they are.
                let table = sx == sy && zx == zy ? (0..<256).map { UInt8($0) } : requantTable(first.dtype, sx, zx, sy, zy) { $0 }
                let chunk = part.shape[axis] * inner
                let src = part.raw.assumingMemoryBound(to: UInt8.self), dst = y.raw.assumingMemoryBound(to: UInt8.self)
                for o in 0..<outer {
                    for i in 0..<chunk { dst[o * row + at + i] = table[Int(src[o * chunk + i])] }
                }
                at += chunk
            }
            return [y]
        }
    }),
]

/// QLinearAdd / QLinearMul (inputs a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale,
/// c_zero_point), broadcasting as numpy does. Add follows onnxruntime's kernel: zc - (za * ra + zb
/// * rb) with ra = sa / sc and rb = sb / sc, then b and a multiplied in by fused multiply-adds
/// (where one operand is constant along a row, its term joins the constant first, as there).
/// Mul: (a - za)(b - zb) * (sa * sb / sc) + zc.
private func qlinearBinary(add: Bool) -> KernelFactory {
    { pc in
        let n = pc.node
        return { ins, ctx in
            guard ins.count > 3, let a = ins[0], let b = ins[3], a.dtype == .int8 || a.dtype == .uint8, b.dtype == a.dtype else {
                throw RuntimeError.invalid(node: n.label, reason: "expects two 8-bit inputs of one type")
            }
            let (sa, za) = try quantParams(ins, 1, 2, n), (sb, zb) = try quantParams(ins, 4, 5, n), (sc, zc) = try quantParams(ins, 6, 7, n)
            guard let shape = broadcastShapes(a.shape, b.shape) else {
                throw RuntimeError.invalid(node: n.label, reason: "shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            let y = try ctx.alloc(shape, a.dtype)
            let strideA = broadcastStrides(a.shape, to: shape), strideB = broadcastStrides(b.shape, to: shape)
            let ra = sa / sc, rb = sb / sc, rab = sa * sb / sc
            let base = Float(zc) - (ra * Float(za) + rb * Float(zb))
            let innerA = strideA.last ?? 0, innerB = strideB.last ?? 0
            func value(_ x: Int32, _ w: Int32) -> Int32 {
                guard add else { return roundHalfEven(Float((x - za) * (w - zb)) * rab) &+ zc }
                if innerA == 0, innerB != 0 { return roundHalfEven((base + Float(x) * ra).addingProduct(Float(w), rb)) }
                if innerB == 0, innerA != 0 { return roundHalfEven((base + Float(w) * rb).addingProduct(Float(x), ra)) }
                return roundHalfEven(base.addingProduct(Float(w), rb).addingProduct(Float(x), ra))
            }
            if !add {
                // Multiplication commutes: the full operand first, the broadcast one second.
                let (x, w, zx, zw, sw) = a.shape == shape ? (a, b, za, zb, strideB) : (b, a, zb, za, strideA)
                if x.shape == shape, x.count > 0 {
                    // The trailing axes along which w stays one value (none: w is x's shape).
                    var run = 1, d = shape.count
                    while d > 0, sw[d - 1] == 0 { d -= 1; run *= shape[d] }
                    let signed: Int32 = a.dtype == .int8 ? 1 : 0
                    if w.shape == shape {
                        mlk_qlinear_mul_8(x.raw, w.raw, x.count, signed, zx, zw, rab, zc, y.raw)
                        return [y]
                    }
                    if run > 1 {
                        // w's element for each run: the leading axes' index through w's strides.
                        let at: [Int] = (0..<(x.count / run)).map { r in
                            var rest = r, at = 0
                            for k in stride(from: d - 1, through: 0, by: -1) {
                                at += (rest % shape[k]) * sw[k]
                                rest /= shape[k]
                            }
                            return at
                        }
                        mlk_qlinear_mul_rows_8(x.raw, w.raw, at, Int32(at.count), run, signed, zx, zw, rab, zc, y.raw)
                        return [y]
                    }
                }
            }
            if a.shape == b.shape, add {
                // The common case (residual adds): one vector pass in C.
                mlk_qlinear_add_8(a.raw, b.raw, y.count, a.dtype == .int8 ? 1 : 0, ra, rb, base, y.raw)
                return [y]
            }
            var index = [Int](repeating: 0, count: shape.count)
            var ia = 0, ib = 0
            for i in 0..<y.count {
                store8(y, i, value(q8(a, ia), q8(b, ib)))
                var d = shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    ia += strideA[d]
                    ib += strideB[d]
                    if index[d] < shape[d] { break }
                    ia -= strideA[d] * shape[d]
                    ib -= strideB[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
            return [y]
        }
    }
}

/// A per-tensor scale and 8-bit zero point at input slots `s` and `z` (zero when absent).
private func quantParams(_ ins: [RTensor?], _ s: Int, _ z: Int, _ n: Node) throws -> (Float, Int32) {
    guard s < ins.count, let scale = ins[s]?.toFloats().first else { throw RuntimeError.invalid(node: n.label, reason: "missing scale (input \(s))") }
    let zero = z < ins.count ? ins[z]?.integers().first ?? 0 : 0
    return (scale, Int32(clamping: zero))
}

/// Element `i` of an 8-bit tensor.
private func q8(_ t: RTensor, _ i: Int) -> Int32 {
    t.dtype == .int8 ? Int32(t.raw.load(fromByteOffset: i, as: Int8.self)) : Int32(t.raw.load(fromByteOffset: i, as: UInt8.self))
}

/// Stores `v` saturated to the 8-bit type of `t`.
private func store8(_ t: RTensor, _ i: Int, _ v: Int32) {
    if t.dtype == .int8 { t.raw.storeBytes(of: Int8(clamping: v), toByteOffset: i, as: Int8.self) } else { t.raw.storeBytes(of: UInt8(clamping: v), toByteOffset: i, as: UInt8.self) }
}

/// Rounds half to even into Int32, saturating (NaN as 0).
private func roundHalfEven(_ v: Float) -> Int32 {
    guard v.isFinite else { return v.isNaN ? 0 : (v > 0 ? .max : .min) }
    return Int32(clamping: Int64(max(-2e9, min(2e9, v)).rounded(.toNearestOrEven)))
}
