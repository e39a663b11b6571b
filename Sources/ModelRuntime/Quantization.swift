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
        let kernel = try factory(PlanContext(node: inner, graph: pc.graph, constants: []))
        return { ins, ctx in
            func input(_ i: Int) -> RTensor? { i < ins.count ? ins[i] : nil }
            func deq(_ t: RTensor?, scale: RTensor?, zp: RTensor?, axis: Int) throws -> RTensor {
                guard let t else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
                let scales = scale?.toFloats() ?? [1]
                let zps = zp?.integers().map { Int64($0) } ?? [0]
                let q = QuantizationParams(scales: scales, zeroPoints: zps, axis: scales.count > 1 || zps.count > 1 ? axis : nil)
                if q.axis != nil && scales.count == 1 {
                    // Per-axis zero points with one scale.
                    return try Quant.dequantize(t, QuantizationParams(scales: Array(repeating: scales[0], count: zps.count), zeroPoints: zps, axis: axis), ctx)
                }
                return try Quant.dequantize(t, q, ctx)
            }
            let a: RTensor, b: RTensor
            var bias: RTensor? = nil
            if qlinear {
                a = try deq(input(0), scale: input(1), zp: input(2), axis: 1)
                b = try deq(input(3), scale: input(4), zp: input(5), axis: floatOp == "Conv" ? 0 : 1)
                if floatOp == "Conv", let bq = input(8) {
                    // int32 bias with scale x_scale * w_scale (per output channel).
                    let xs = input(1)?.toFloats().first ?? 1, ws = input(4)?.toFloats() ?? [1]
                    let bf = try ctx.alloc(bq.shape, .float32)
                    for i in 0..<bq.count { bf.floats[i] = bq.element(i) * xs * ws[ws.count == 1 ? 0 : i] }
                    bias = bf
                }
            } else {
                a = try deq(input(0), scale: nil, zp: input(2), axis: 1)
                b = try deq(input(1), scale: nil, zp: input(3), axis: floatOp == "Conv" ? 0 : 1)
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

let integerKernels: [(String, KernelFactory)] = [
    ("QLinearConv", integerOp("Conv", qlinear: true)),
    ("QLinearMatMul", integerOp("MatMul", qlinear: true)),
    ("ConvInteger", integerOp("Conv", qlinear: false)),
    ("MatMulInteger", integerOp("MatMul", qlinear: false)),
]
