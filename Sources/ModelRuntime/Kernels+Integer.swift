import CKernels
import Foundation
import ModelIR

/// Integer kernels for quantized TFLite CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: int8 or
/// uint8 activations (one scale and zero point each), int8 weights with zero point 0 (per output
/// channel or per tensor), int32 bias. They accumulate in int32 and requantize in fixed point as
/// TFLite's reference kernels do (`kernels_int8.c`). Nodes outside that set (uint8 weights with a
/// zero point, hybrid float-activation nodes, two activations) keep the float path of
/// `quantizedWrapper`. ONNX's QLinearConv and QGemm (and the QDQ patterns fused into them) run on
/// the same kernels with onnxruntime's requantization: `qlinear`, `qgemm` below.
struct IntegerConv {
    let kernel: Kernel
    /// Bytes of weights as the kernel reads them (packed panels, per-channel tables).
    let weightBytes: Int
    /// False when the kernel reads only its activation input (weights and bias packed into its own copy).
    let readsWeights: Bool

    static func make(_ pc: PlanContext) -> IntegerConv? {
        let n = pc.node, g = pc.graph
        guard pc.activation == nil else { return nil }
        let op = n.op.rawValue
        guard op == "Conv" || op == "FullyConnected" else { return nil }
        guard n.inputs.count >= 2, let xv = n.inputs[0], n.outputs.count == 1,
              let w = pc.constants.count > 1 ? pc.constants[1] : nil, w.dtype == .int8,
              let wq = g.values[n.inputs[1]!].constant?.quantization ?? g.values[n.inputs[1]!].quantization else { return nil }
        let x = g.values[xv], y = g.values[n.outputs[0]]
        guard [DType.int8, .uint8].contains(x.type.dtype), [DType.int8, .uint8].contains(y.type.dtype),
              let xq = x.quantization, xq.scales.count == 1, let yq = y.quantization, yq.scales.count == 1,
              xq.scales[0] > 0, yq.scales[0] > 0, wq.zeroPoints.allSatisfy({ $0 == 0 }) else { return nil }
        // Zero points inside their type's range (a hostile file may say otherwise: the float path reports it).
        func fits(_ z: Int64?, _ t: DType) -> Bool { let z = z ?? 0; return t == .int8 ? (-128...127).contains(z) : (0...255).contains(z) }
        guard fits(xq.zeroPoints.first, x.type.dtype), fits(yq.zeroPoints.first, y.type.dtype) else { return nil }
        var bias: RTensor? = nil
        if n.inputs.count > 2, n.inputs[2] != nil {
            guard let b = pc.constants[2], b.dtype == .int32 else { return nil }
            bias = b
        }
        let depthwise = op == "Conv" && n.kernelLayout == .ihwo1
        if op == "Conv" {
            guard n.dataLayout == .nhwc, n.kernelLayout == .ohwi || depthwise, w.shape.count == 4 else { return nil }
        } else {
            guard w.shape.count == 2 else { return nil }
        }
        let outC = depthwise ? w.shape[3] : w.shape[0]
        let k = depthwise ? 0 : w.shape.dropFirst().reduce(1, *)
        guard outC > 0, outC < 1 << 24, k < 1 << 24, bias.map({ $0.count == outC }) ?? true,
              wq.scales.count == 1 || wq.scales.count == outC else { return nil }
        if wq.scales.count > 1, wq.axis != (depthwise ? 3 : 0) { return nil }
        // A grouped standard conv (input channels a multiple of the weights') stays on the float path.
        if op == "Conv", !depthwise, let c = x.type.shape.concrete?.last, c != w.shape[3] { return nil }

        // Per-channel multipliers: in_scale * w_scale / out_scale, in double as TFLite computes them.
        var mult = [Int32](repeating: 0, count: outC), shift = [Int32](repeating: 0, count: outC)
        for c in 0..<outC {
            let ws = Double(wq.scales[wq.scales.count == 1 ? 0 : c])
            mlk_quantize_multiplier(Double(xq.scales[0]) * ws / Double(yq.scales[0]), &mult[c], &shift[c])
        }
        // Output clamp: the type's range, narrowed by the fused activation as TFLite quantizes it.
        let signedOut = y.type.dtype == .int8
        let (qmin, qmax): (Int32, Int32) = signedOut ? (-128, 127) : (0, 255)
        let yz = Int32(yq.zeroPoints.first ?? 0)
        func quantized(_ f: Float) -> Int32 { yz + Int32((f / yq.scales[0]).rounded(.toNearestOrAwayFromZero)) }
        var lo = qmin, hi = qmax
        switch n.fusedActivation {
        case nil: break
        case .relu?: lo = max(qmin, quantized(0))
        case .relu6?: lo = max(qmin, quantized(0)); hi = min(qmax, quantized(6))
        case .reluN1To1?: lo = max(qmin, quantized(-1)); hi = min(qmax, quantized(1))
        default: return nil
        }
        var q = mlk_qconv()
        q.in_zero = Int32(xq.zeroPoints.first ?? 0); q.out_zero = yz
        q.act_min = lo; q.act_max = hi
        q.in_signed = x.type.dtype == .int8 ? 1 : 0
        let outType = y.type.dtype, label = n.label
        let window = WindowAttributes(n)

        if depthwise {
            let weights = w, biasT = bias, multTable = mult, shiftTable = shift
            return IntegerConv(kernel: { ins, ctx in
                guard let xt = ins.first ?? nil, xt.dtype == x.type.dtype, xt.shape.count == 4 else {
                    throw RuntimeError.invalid(node: label, reason: "input is not a 4-D \(x.type.dtype.rawValue) tensor")
                }
                var p = try convGeometry(window, x: xt.shape, kernel: [weights.shape[1], weights.shape[2]], outChannels: outC, nhwc: true)
                guard p.in_c > 0, outC % Int(p.in_c) == 0 else {
                    throw RuntimeError.invalid(node: label, reason: "\(outC) output channels for \(p.in_c) input channels")
                }
                p.groups = p.in_c
                let yt = try ctx.alloc(outShape(p, rank: 4, nhwc: true), outType)
                var qq = q
                mlk_qdepthwise_nhwc(&p, &qq, xt.raw, weights.raw.assumingMemoryBound(to: Int8.self),
                                    biasT?.raw.assumingMemoryBound(to: Int32.self), multTable, shiftTable, yt.raw)
                return [yt]
            }, weightBytes: w.byteCount + (bias?.byteCount ?? 0) + 8 * outC, readsWeights: true)
        }

        // Standard conv and fully connected: weights packed once, the input zero point folded into the bias.
        let aZero = q.in_zero + (q.in_signed != 0 ? 128 : 0)
        let packedBytes = Int(mlk_qconv_packed_size(Int32(outC), Int32(k)))
        let packed = UnsafeMutablePointer<Int8>.allocate(capacity: packedBytes)
        var biasEff = [Int32](repeating: 0, count: outC)
        mlk_qconv_pack(Int32(outC), Int32(k), w.raw.assumingMemoryBound(to: Int8.self), bias?.raw.assumingMemoryBound(to: Int32.self),
                       aZero, packed, &biasEff)
        let holder = PackedWeights(packed), biasTable = biasEff, multTable = mult, shiftTable = shift
        let keep = (n.int("keep_num_dims") ?? 0) != 0
        let wshape = w.shape
        return IntegerConv(kernel: { ins, ctx in
            guard let xt = ins.first ?? nil, xt.dtype == x.type.dtype else {
                throw RuntimeError.invalid(node: label, reason: "input is not a \(x.type.dtype.rawValue) tensor")
            }
            var p: mlk_conv
            let shape: [Int]
            if op == "FullyConnected" {
                guard xt.count % k == 0 else { throw RuntimeError.invalid(node: label, reason: "input \(xt.shape) does not fit weights \(wshape)") }
                let rows = xt.count / k
                p = mlk_conv()
                p.batch = 1; p.in_c = Int32(k); p.in_h = 1; p.in_w = Int32(rows)
                p.out_c = Int32(outC); p.out_h = 1; p.out_w = Int32(rows)
                p.k_h = 1; p.k_w = 1; p.stride_h = 1; p.stride_w = 1; p.dil_h = 1; p.dil_w = 1; p.groups = 1
                shape = keep ? Array(xt.shape.dropLast()) + [outC] : [rows, outC]
            } else {
                guard xt.shape.count == 4 else { throw RuntimeError.invalid(node: label, reason: "input rank \(xt.shape.count)") }
                p = try convGeometry(window, x: xt.shape, kernel: [wshape[1], wshape[2]], outChannels: outC, nhwc: true)
                guard Int(p.in_c) == wshape[3] else {
                    throw RuntimeError.unsupported(op: n.sourceOp, node: label, reason: "grouped quantized convolution (\(p.in_c) input channels, weights for \(wshape[3]))")
                }
                p.groups = 1
                shape = outShape(p, rank: 4, nhwc: true)
            }
            let yt = try ctx.alloc(shape, outType)
            let scratch = try ctx.scratchFloats((Int(mlk_qconv_scratch(&p)) + 3) / 4)
            var qq = q
            mlk_qconv_nhwc(&p, &qq, xt.raw, holder.pointer, biasTable, multTable, shiftTable, yt.raw,
                           UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt8.self))
            return [yt]
        }, weightBytes: packedBytes + 12 * outC, readsWeights: false)
    }
}

/// Packed weights owned by a kernel closure, freed with it.
final class PackedWeights: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int8>
    init(_ p: UnsafeMutablePointer<Int8>) { pointer = p }
    deinit { pointer.deallocate() }
}

/// A quantized TFLite ADD of two same-shaped int8 / uint8 tensors: the float path of
/// `quantizedWrapper` (dequantize, add in float, the fused activation, requantize half away from
/// zero) done in one pass without float temporaries; other shapes take `fallback`.
func quantizedAddKernel(_ pc: PlanContext, fallback: @escaping Kernel) -> Kernel? {
    let n = pc.node, g = pc.graph
    guard n.op.rawValue == "Add", pc.activation == nil, n.inputs.count == 2, n.outputs.count == 1,
          let av = n.inputs[0], let bv = n.inputs[1] else { return nil }
    let a = g.values[av], b = g.values[bv], y = g.values[n.outputs[0]]
    let types: [DType] = [.int8, .uint8]
    guard types.contains(a.type.dtype), types.contains(b.type.dtype), types.contains(y.type.dtype),
          let aq = a.quantization, let bq = b.quantization, let yq = y.quantization,
          aq.scales.count == 1, bq.scales.count == 1, yq.scales.count == 1, yq.scales[0] > 0 else { return nil }
    // The clamping activations only (mlk_qadd_8 applies kinds 1-3).
    let act = n.fusedActivation.map { activationKind($0) ?? 99 } ?? 0
    guard act <= 3 else { return nil }
    let za = Int32(clamping: aq.zeroPoints.first ?? 0), zb = Int32(clamping: bq.zeroPoints.first ?? 0)
    let zy = Int32(clamping: yq.zeroPoints.first ?? 0)
    return { ins, ctx in
        guard ins.count == 2, let x1 = ins[0], let x2 = ins[1], x1.shape == x2.shape,
              x1.dtype == a.type.dtype, x2.dtype == b.type.dtype else { return try fallback(ins, ctx) }
        let out = try ctx.alloc(x1.shape, y.type.dtype)
        mlk_qadd_8(x1.raw, x1.dtype == .int8 ? 1 : 0, aq.scales[0], za, x2.raw, x2.dtype == .int8 ? 1 : 0, bq.scales[0], zb,
                   x1.count, act, yq.scales[0], zy, out.dtype == .int8 ? 1 : 0, out.raw)
        return [out]
    }
}

/// What the integer kernels need of a QLinearConv they can run (`QLinearConvSpec.of`).
struct QLinearConvSpec {
    let xType: DType, yType: DType
    let weights: RTensor
    let outC: Int, perGroup: Int, kh: Int, kw: Int
    let depthwise: Bool
    let bias: RTensor?
    /// x_scale * w_scale / y_scale per output channel.
    let fscale: [Float]
    let q: mlk_qconv

    /// The spec of a QLinearConv (or a fused QDQ convolution, with the QLinearConv's inputs) the
    /// integer kernels run: 8-bit activations with one scale and zero point each, int8 weights
    /// with zero point 0 (one scale, or one per output channel), an int32 bias, one group or
    /// depthwise; nil for others.
    static func of(_ pc: PlanContext) -> QLinearConvSpec? {
        let n = pc.node, g = pc.graph
        func constant(_ i: Int) -> RTensor? { i < pc.constants.count ? pc.constants[i] : nil }
        guard n.inputs.count >= 8, n.outputs.count == 1, let xv = n.inputs[0],
              let w = constant(3), w.dtype == .int8, w.shape.count == 4,
              let xs = constant(1), xs.count == 1, let xz = constant(2), xz.count == 1,
              let ws = constant(4), let ys = constant(6), ys.count == 1, let yz = constant(7), yz.count == 1 else { return nil }
        let xType = g.values[xv].type.dtype, yType = yz.dtype
        guard [DType.int8, .uint8].contains(xType), xz.dtype == xType, [DType.int8, .uint8].contains(yType) else { return nil }
        if n.inputs.count > 5, n.inputs[5] != nil {
            guard let wz = constant(5), wz.integers().allSatisfy({ $0 == 0 }) else { return nil }
        }
        let outC = w.shape[0], perGroup = w.shape[1], kh = w.shape[2], kw = w.shape[3]
        let group = n.int("group") ?? 1
        let depthwise = group > 1
        guard outC > 0, perGroup > 0, kh > 0, kw > 0, outC < 1 << 24, perGroup * kh * kw < 1 << 24,
              depthwise ? perGroup == 1 && group == outC : group == 1,
              ws.count == 1 || ws.count == outC else { return nil }
        var bias: RTensor? = nil
        if n.inputs.count > 8, n.inputs[8] != nil {
            guard let b = constant(8), b.dtype == .int32, b.count == outC else { return nil }
            bias = b
        }
        let xScale = xs.toFloats()[0], yScale = ys.toFloats()[0], wScales = ws.toFloats()
        guard xScale > 0, yScale > 0, xScale.isFinite, yScale.isFinite, wScales.allSatisfy({ $0.isFinite }) else { return nil }
        var q = mlk_qconv()
        q.in_zero = Int32(xz.integers()[0]); q.out_zero = Int32(yz.integers()[0])
        q.in_signed = xType == .int8 ? 1 : 0
        (q.act_min, q.act_max) = yType == .int8 ? (-128, 127) : (0, 255)
        // As onnxruntime forms them: (x_scale * w_scale) / y_scale in float.
        let fscale = (0..<outC).map { xScale * wScales[wScales.count == 1 ? 0 : $0] / yScale }
        return QLinearConvSpec(xType: xType, yType: yType, weights: w, outC: outC, perGroup: perGroup, kh: kh, kw: kw,
                               depthwise: depthwise, bias: bias, fscale: fscale, q: q)
    }
}

extension IntegerConv {
    /// onnxruntime's QLinearConv on the integer kernels (QLinearConvSpec): the image, NCHW, is
    /// transposed to channels-last bytes unless the planner keeps it so (pc.channelsLastInput),
    /// convolved (int32 sums) and requantized as onnxruntime's MlasRequantizeOutput does (float
    /// sum times x_scale * w_scale / y_scale, clamped, rounded half to even), then transposed
    /// back unless every reader takes it channels-last (pc.channelsLastOutput). Other
    /// QLinearConvs keep the float path of `integerOp`.
    static func qlinear(_ pc: PlanContext) -> IntegerConv? {
        guard let spec = QLinearConvSpec.of(pc) else { return nil }
        let n = pc.node
        let (xType, yType, w, outC, perGroup, kh, kw) = (spec.xType, spec.yType, spec.weights, spec.outC, spec.perGroup, spec.kh, spec.kw)
        let (depthwise, bias, fscale, q) = (spec.depthwise, spec.bias, spec.fscale, spec.q)
        let channelsLastIn = pc.channelsLastInput, channelsLastOut = pc.channelsLastOutput
        let window = WindowAttributes(n), label = n.label
        let taps = kh * kw
        // Weights from OIHW to the layouts the kernels read: OHWI (packed) or, depthwise, [tap][channel].
        let src = w.raw.assumingMemoryBound(to: Int8.self)
        var reordered = [Int8](repeating: 0, count: w.count)
        for o in 0..<outC {
            for c in 0..<perGroup {
                for t in 0..<taps {
                    let v = src[(o * perGroup + c) * taps + t]
                    if depthwise { reordered[t * outC + o] = v } else { reordered[(o * taps + t) * perGroup + c] = v }
                }
            }
        }
        let mult = [Int32](repeating: 0, count: outC), shift = mult
        let biasValues: [Int32]? = bias.map { b in (0..<outC).map { b.raw.load(fromByteOffset: $0 * 4, as: Int32.self) } }
        var packed: PackedWeights? = nil
        var biasEff = biasValues ?? [Int32](repeating: 0, count: outC)
        var weightBytes = w.count + 8 * outC
        if !depthwise {
            let k = taps * perGroup
            let bytes = Int(mlk_qconv_packed_size(Int32(outC), Int32(k)))
            let pointer = UnsafeMutablePointer<Int8>.allocate(capacity: bytes)
            mlk_qconv_pack(Int32(outC), Int32(k), reordered, biasValues, q.in_zero + (q.in_signed != 0 ? 128 : 0), pointer, &biasEff)
            packed = PackedWeights(pointer)
            weightBytes = bytes + 8 * outC
        }
        let weights = reordered, biasTable = biasEff
        return IntegerConv(kernel: { ins, ctx in
            guard let xt = ins.first ?? nil, xt.dtype == xType, xt.shape.count == 4 else {
                throw RuntimeError.invalid(node: label, reason: "input is not a 4-D \(xType.rawValue) tensor")
            }
            let (batch, c, h, wd) = channelsLastIn ? (xt.shape[0], xt.shape[3], xt.shape[1], xt.shape[2])
                                                   : (xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3])
            guard c == (depthwise ? outC : perGroup) else {
                throw RuntimeError.invalid(node: label, reason: "\(c) input channels for weights \(w.shape)")
            }
            var p = try convGeometry(window, x: [batch, h, wd, c], kernel: [kh, kw], outChannels: outC, nhwc: true)
            p.groups = depthwise ? p.in_c : 1
            var xh = xt
            if !channelsLastIn {
                xh = try ctx.alloc([batch, h, wd, c], xType)
                let image = c * h * wd
                for b in 0..<batch { mlk_transpose_bytes(c, h * wd, xt.raw + b * image, xh.raw + b * image) }
            }
            let yh = try ctx.alloc(outShape(p, rank: 4, nhwc: true), yType)
            let scratch = packed == nil ? nil : try ctx.scratchFloats((Int(mlk_qconv_scratch(&p)) + 3) / 4)
            fscale.withUnsafeBufferPointer { fs in
                var qq = q
                qq.fscale = fs.baseAddress
                if let packed, let scratch {
                    mlk_qconv_nhwc(&p, &qq, xh.raw, packed.pointer, biasTable, mult, shift, yh.raw,
                                   UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt8.self))
                } else {
                    mlk_qdepthwise_nhwc(&p, &qq, xh.raw, weights, biasValues, mult, shift, yh.raw)
                }
            }
            if !channelsLastIn { ctx.release(xh.buffer) }
            if channelsLastOut { return [yh] }
            let plane = Int(p.out_h * p.out_w)
            let y = try ctx.alloc([batch, outC, Int(p.out_h), Int(p.out_w)], yType)
            for b in 0..<batch { mlk_transpose_bytes(plane, outC, yh.raw + b * plane * outC, y.raw + b * plane * outC) }
            ctx.release(yh.buffer)
            return [y]
        }, weightBytes: weightBytes, readsWeights: false)
    }
}

extension IntegerConv {
    /// onnxruntime's QGemm on the integer kernels (a fully-connected layer of mlk_qconv_nhwc):
    /// A 8-bit with one scale and zero point, not transposed; B a constant int8 matrix with zero
    /// point 0 (one scale, or one per column); C an int32 row of N or absent; alpha folded into
    /// the scale. With y_scale the sums are requantized as MlasRequantizeOutput does; without it
    /// the output is float(sum) * alpha * a_scale * b_scale, as the float path of `QGemm`
    /// computes it. Others keep that path.
    static func qgemm(_ pc: PlanContext) -> IntegerConv? {
        let n = pc.node, g = pc.graph
        func constant(_ i: Int) -> RTensor? { i < pc.constants.count ? pc.constants[i] : nil }
        func given(_ i: Int) -> Bool { i < n.inputs.count && n.inputs[i] != nil }
        guard (n.int("transA") ?? 0) == 0, n.outputs.count == 1, let av = n.inputs.first ?? nil,
              let b = constant(3), b.dtype == .int8, b.shape.count == 2,
              let sa = constant(1), sa.count == 1, let za = constant(2), za.count == 1, let sb = constant(4) else { return nil }
        let aType = g.values[av].type.dtype
        guard [DType.int8, .uint8].contains(aType), za.dtype == aType else { return nil }
        if given(5) { guard let zb = constant(5), zb.integers().allSatisfy({ $0 == 0 }) else { return nil } }
        let transB = (n.int("transB") ?? 0) != 0
        let (k, cols) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k > 0, cols > 0, k < 1 << 24, cols < 1 << 24, sb.count == 1 || sb.count == cols else { return nil }
        var bias: [Int32]? = nil
        if given(6) {
            guard let c = constant(6), c.dtype == .int32, c.count == cols, c.shape.count == 1 || c.shape.first == 1 else { return nil }
            bias = (0..<cols).map { c.raw.load(fromByteOffset: $0 * 4, as: Int32.self) }
        }
        var ys: Float? = nil, yType = DType.float32, zy: Int32 = 0
        if given(7) || given(8) {
            guard let s = constant(7), s.count == 1, let z = constant(8), z.count == 1, [DType.int8, .uint8].contains(z.dtype) else { return nil }
            ys = s.toFloats()[0]
            yType = z.dtype
            zy = Int32(z.integers()[0])
        }
        let alpha = Float(n.float("alpha") ?? 1), aScale = sa.toFloats()[0], bScales = sb.toFloats()
        guard aScale.isFinite, aScale > 0, alpha.isFinite, bScales.allSatisfy({ $0.isFinite }), ys.map({ $0 > 0 && $0.isFinite }) ?? true else { return nil }
        // As the float path of QGemm forms it: alpha * a_scale * b_scale, then / y_scale.
        let fscale = (0..<cols).map { j -> Float in
            var s = alpha * aScale * bScales[bScales.count == 1 ? 0 : j]
            if let ys { s /= ys }
            return s
        }
        var q = mlk_qconv()
        q.in_zero = Int32(za.integers()[0])
        q.in_signed = aType == .int8 ? 1 : 0
        q.out_zero = zy
        (q.act_min, q.act_max) = yType == .int8 ? (-128, 127) : (0, 255)
        q.float_out = ys == nil ? 1 : 0
        // B as [N][K] rows for the packing.
        let src = b.raw.assumingMemoryBound(to: Int8.self)
        var rows = [Int8](repeating: 0, count: b.count)
        for j in 0..<cols { for kk in 0..<k { rows[j * k + kk] = src[transB ? j * k + kk : kk * cols + j] } }
        let bytes = Int(mlk_qconv_packed_size(Int32(cols), Int32(k)))
        let pointer = UnsafeMutablePointer<Int8>.allocate(capacity: bytes)
        var biasEff = [Int32](repeating: 0, count: cols)
        mlk_qconv_pack(Int32(cols), Int32(k), rows, bias, q.in_zero + (q.in_signed != 0 ? 128 : 0), pointer, &biasEff)
        let holder = PackedWeights(pointer), biasTable = biasEff, label = n.label
        let mult = [Int32](repeating: 0, count: cols), shift = mult
        return IntegerConv(kernel: { ins, ctx in
            guard let a = ins.first ?? nil, a.dtype == aType, a.shape.count == 2, a.shape[1] == k else {
                throw RuntimeError.invalid(node: label, reason: "A is not a [M, \(k)] \(aType.rawValue) matrix")
            }
            var p = mlk_conv()
            p.batch = 1; p.in_c = Int32(k); p.in_h = 1; p.in_w = Int32(a.shape[0])
            p.out_c = Int32(cols); p.out_h = 1; p.out_w = Int32(a.shape[0])
            p.k_h = 1; p.k_w = 1; p.stride_h = 1; p.stride_w = 1; p.dil_h = 1; p.dil_w = 1; p.groups = 1
            let y = try ctx.alloc([a.shape[0], cols], yType)
            let scratch = try ctx.scratchFloats((Int(mlk_qconv_scratch(&p)) + 3) / 4)
            fscale.withUnsafeBufferPointer { fs in
                var qq = q
                qq.fscale = fs.baseAddress
                mlk_qconv_nhwc(&p, &qq, a.raw, holder.pointer, biasTable, mult, shift, y.raw,
                               UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt8.self))
            }
            return [y]
        }, weightBytes: bytes + 8 * cols, readsWeights: false)
    }
}
