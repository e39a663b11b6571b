// Shape rules of convolutions and pooling, for NCHW (ONNX) and NHWC (TFLite)
// data. Canonical attributes (the importers fill them, with defaults):
// `strides`, `dilations`, `pads` ([begin..., end...]), `auto_pad`
// (NOTSET, SAME_UPPER, SAME_LOWER, VALID), `group`, `kernel_shape`, `ceil_mode`.

/// One spatial axis of a sliding window (convolution, pooling): the output size and the padding
/// applied at each end. auto_pad SAME gives out = ceil(input / stride) and splits the padding it
/// needs, the odd one at the end (SAME_UPPER) or the beginning (SAME_LOWER); ceil_mode drops a
/// last window that would start inside the end padding. The shape rules and the kernels both
/// use it.
public enum SlidingWindow {
    public static func geometry(_ input: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int,
                                autoPad: String, ceilMode: Bool) -> (out: Int, begin: Int, end: Int) {
        let stride = max(stride, 1)
        let effective = dilation * (kernel - 1) + 1
        switch autoPad {
        case "SAME_UPPER", "SAME_LOWER", "SAME":
            let out = (input + stride - 1) / stride
            let total = max(0, (out - 1) * stride + effective - input)
            let small = total / 2
            return autoPad == "SAME_LOWER" ? (out, total - small, small) : (out, small, total - small)
        case "VALID":
            return (max(0, (input - effective) / stride + 1), 0, 0)
        default:
            let span = input + padBegin + padEnd - effective
            if span < 0 { return (0, padBegin, padEnd) }
            var out = ceilMode ? (span + stride - 1) / stride + 1 : span / stride + 1
            if ceilMode && (out - 1) * stride >= input + padBegin { out -= 1 }
            return (out, padBegin, padEnd)
        }
    }
}

/// Spatial output size of a sliding window over a possibly unknown size.
func windowOutput(_ input: Dim, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int,
                  autoPad: String, ceilMode: Bool) -> Dim {
    guard let n = input.value else { return .unknown }
    return .known(SlidingWindow.geometry(n, kernel: kernel, stride: stride, dilation: dilation, padBegin: padBegin, padEnd: padEnd,
                                         autoPad: autoPad, ceilMode: ceilMode).out)
}

/// Splits an activation's dims into batch, channel and spatial parts by layout.
private func splitLayout(_ dims: [Dim], _ layout: DataLayout?) -> (batch: Dim, channels: Dim, spatial: [Dim])? {
    guard dims.count >= 2 else { return nil }
    if layout == .nhwc { return (dims[0], dims[dims.count - 1], Array(dims[1..<(dims.count - 1)])) }
    return (dims[0], dims[1], Array(dims[2...]))
}

private func joinLayout(batch: Dim, channels: Dim, spatial: [Dim], _ layout: DataLayout?) -> [Dim] {
    layout == .nhwc ? [batch] + spatial + [channels] : [batch, channels] + spatial
}

/// Kernel spatial sizes and output channels from a weight shape and its layout.
private func kernelInfo(_ w: [Dim], _ layout: KernelLayout?, group: Int) -> (spatial: [Dim], outChannels: Dim) {
    switch layout ?? .oihw {
    case .oihw: return (Array(w.dropFirst(2)), w.first ?? .unknown)
    case .iohw:
        let o = w.count > 1 ? w[1] : .unknown
        return (Array(w.dropFirst(2)), o.value.map { .known($0 * group) } ?? .unknown)
    case .ohwi: return (Array(w.dropFirst().dropLast()), w.first ?? .unknown)
    case .ihwo1: return (Array(w.dropFirst().dropLast()), w.last ?? .unknown)
    }
}

private func windowed(_ ctx: RuleContext, spatial: [Dim], kernel: [Int]) -> [Dim] {
    let r = spatial.count
    let strides = ctx.ints("strides") ?? Array(repeating: 1, count: r)
    let dilations = ctx.ints("dilations") ?? Array(repeating: 1, count: r)
    let pads = ctx.ints("pads") ?? Array(repeating: 0, count: 2 * r)
    let autoPad = ctx.node.string("auto_pad") ?? "NOTSET"
    let ceil = (ctx.int("ceil_mode") ?? 0) != 0
    return (0..<r).map { i in
        windowOutput(spatial[i], kernel: i < kernel.count ? kernel[i] : 1,
                     stride: i < strides.count ? strides[i] : 1,
                     dilation: i < dilations.count ? dilations[i] : 1,
                     padBegin: i < pads.count ? pads[i] : 0,
                     padEnd: i + r < pads.count ? pads[i + r] : 0,
                     autoPad: autoPad, ceilMode: ceil)
    }
}

let convRules: [(String, ShapeRule)] = {
    var rules: [(String, ShapeRule)] = []
    let conv: ShapeRule = { ctx in
        // QLinearConv: x, x_scale, x_zp, w, ... ; ConvInteger / Conv: x, w, ...
        let qlinear = ctx.node.op.rawValue == "QLinearConv"
        let xi = 0, wi = qlinear ? 3 : 1
        guard let x = ctx.type(xi), let xd = x.shape.dims, let parts = splitLayout(xd, ctx.node.dataLayout),
              let w = ctx.dims(wi) else { return [nil] }
        let group = ctx.int("group") ?? 1
        let k = kernelInfo(w, ctx.node.kernelLayout, group: group)
        let kernel = ctx.ints("kernel_shape") ?? k.spatial.map { $0.value ?? 1 }
        guard parts.spatial.count == kernel.count || ctx.ints("kernel_shape") != nil else {
            throw ShapeRuleError("input has \(parts.spatial.count) spatial dims, kernel has \(kernel.count)")
        }
        let spatial = windowed(ctx, spatial: parts.spatial, kernel: kernel)
        let dtype: DType
        switch ctx.node.op.rawValue {
        case "ConvInteger": dtype = .int32
        case "QLinearConv": dtype = ctx.type(7)?.dtype ?? x.dtype
        default: dtype = x.dtype
        }
        return [.of(dtype, joinLayout(batch: parts.batch, channels: k.outChannels, spatial: spatial, ctx.node.dataLayout))]
    }
    rules.append(("Conv", conv))
    rules.append(("ConvInteger", conv))
    rules.append(("QLinearConv", conv))
    rules.append(("ConvTranspose", { ctx in
        guard let x = ctx.type(0), let xd = x.shape.dims, let parts = splitLayout(xd, ctx.node.dataLayout),
              let w = ctx.dims(1) else { return [nil] }
        let group = ctx.int("group") ?? 1
        let k = kernelInfo(w, ctx.node.kernelLayout ?? .iohw, group: group)
        let r = parts.spatial.count
        if let os = ctx.ints("output_shape") {
            // ONNX gives spatial sizes; TFLite gives the whole NHWC shape.
            if os.count == r { return [.of(x.dtype, joinLayout(batch: parts.batch, channels: k.outChannels, spatial: os.map { .known($0) }, ctx.node.dataLayout))] }
            if os.count == r + 2 { return [.of(x.dtype, os.map { .known($0) })] }
        }
        let kernel = ctx.ints("kernel_shape") ?? k.spatial.map { $0.value ?? 1 }
        let strides = ctx.ints("strides") ?? Array(repeating: 1, count: r)
        let dil = ctx.ints("dilations") ?? Array(repeating: 1, count: r)
        let pads = ctx.ints("pads") ?? Array(repeating: 0, count: 2 * r)
        let outPad = ctx.ints("output_padding") ?? Array(repeating: 0, count: r)
        let autoPad = ctx.node.string("auto_pad") ?? "NOTSET"
        var spatial: [Dim] = []
        for i in 0..<r {
            guard let n = parts.spatial[i].value, i < kernel.count else { spatial.append(.unknown); continue }
            let s = i < strides.count ? strides[i] : 1
            if autoPad.hasPrefix("SAME") { spatial.append(.known(n * s)); continue }
            let d = i < dil.count ? dil[i] : 1
            let pb = i < pads.count ? pads[i] : 0, pe = i + r < pads.count ? pads[i + r] : 0
            let op = i < outPad.count ? outPad[i] : 0
            spatial.append(.known(s * (n - 1) + op + ((kernel[i] - 1) * d + 1) - pb - pe))
        }
        return [.of(x.dtype, joinLayout(batch: parts.batch, channels: k.outChannels, spatial: spatial, ctx.node.dataLayout))]
    }))
    let pool: ShapeRule = { ctx in
        guard let x = ctx.type(0), let xd = x.shape.dims, let parts = splitLayout(xd, ctx.node.dataLayout) else {
            return [nil, nil]
        }
        guard let kernel = ctx.ints("kernel_shape") else { throw ShapeRuleError("pooling without kernel_shape") }
        let spatial = windowed(ctx, spatial: parts.spatial, kernel: kernel)
        let out = joinLayout(batch: parts.batch, channels: parts.channels, spatial: spatial, ctx.node.dataLayout)
        return [.of(x.dtype, out), .of(.int64, out)]
    }
    for name in ["MaxPool", "AveragePool", "LpPool"] { rules.append((name, pool)) }
    let global: ShapeRule = { ctx in
        guard let x = ctx.type(0), let xd = x.shape.dims, let parts = splitLayout(xd, ctx.node.dataLayout) else { return [nil] }
        let ones = [Dim](repeating: .known(1), count: parts.spatial.count)
        return [.of(x.dtype, joinLayout(batch: parts.batch, channels: parts.channels, spatial: ones, ctx.node.dataLayout))]
    }
    for name in ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"] { rules.append((name, global)) }
    rules.append(("DepthToSpace", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims, d.count == 4, let b = ctx.int("blocksize") else { return [nil] }
        if ctx.node.dataLayout == .nhwc {
            return [.of(x.dtype, [d[0], d[1].value.map { .known($0 * b) } ?? .unknown, d[2].value.map { .known($0 * b) } ?? .unknown, d[3].value.map { .known($0 / (b * b)) } ?? .unknown])]
        }
        return [.of(x.dtype, [d[0], d[1].value.map { .known($0 / (b * b)) } ?? .unknown, d[2].value.map { .known($0 * b) } ?? .unknown, d[3].value.map { .known($0 * b) } ?? .unknown])]
    }))
    rules.append(("SpaceToDepth", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims, d.count == 4, let b = ctx.int("blocksize") else { return [nil] }
        if ctx.node.dataLayout == .nhwc {
            return [.of(x.dtype, [d[0], d[1].value.map { .known($0 / b) } ?? .unknown, d[2].value.map { .known($0 / b) } ?? .unknown, d[3].value.map { .known($0 * b * b) } ?? .unknown])]
        }
        return [.of(x.dtype, [d[0], d[1].value.map { .known($0 * b * b) } ?? .unknown, d[2].value.map { .known($0 / b) } ?? .unknown, d[3].value.map { .known($0 / b) } ?? .unknown])]
    }))
    return rules
}()

// MARK: - costs (see CostModel.convention)

/// Kernel spatial volume and input channels per group, from the weight shape and its layout.
private func kernelVolumeAndChannels(_ w: [Dim], _ layout: KernelLayout?) -> SymCount {
    switch layout ?? .oihw {
    case .oihw, .iohw: return SymCount(product: Array(w.dropFirst()))          // (C/g) x kH x kW
    case .ohwi: return SymCount(product: Array(w.dropFirst()))                  // kH x kW x (C/g)
    case .ihwo1: return SymCount(product: Array(w.dropFirst().dropLast()))      // kH x kW (one input channel per output)
    }
}

let convCosts: [(String, CostRule)] = {
    var rules: [(String, CostRule)] = []
    let conv: CostRule = { ctx in
        let wi = ctx.node.op.rawValue == "QLinearConv" ? 3 : 1
        guard let w = ctx.dims(wi) else { return (.zero, .zero) }
        let macs = ctx.outElements() * kernelVolumeAndChannels(w, ctx.node.kernelLayout)
        let biasIndex = ctx.node.op.rawValue == "QLinearConv" ? 8 : 2
        let bias = ctx.hasInput(biasIndex) ? ctx.outElements() : .zero
        return (macs, macs * 2 + bias)
    }
    for name in ["Conv", "ConvInteger", "QLinearConv"] { rules.append((name, conv)) }
    rules.append(("ConvTranspose", { ctx in
        // Every input element meets the whole kernel for its group: in x (C_out/g) x kernel volume.
        guard let w = ctx.dims(1) else { return (.zero, .zero) }
        let perInput: SymCount
        switch ctx.node.kernelLayout ?? .iohw {
        case .iohw: perInput = SymCount(product: Array(w.dropFirst()))                                 // (C_out/g) x k
        case .ohwi: perInput = SymCount(product: Array(w.dropLast())) / max(1, ctx.node.int("group") ?? 1) // C_out x k (/g)
        default: perInput = SymCount(product: w)
        }
        let macs = ctx.inElements() * perInput
        return (macs, macs * 2 + (ctx.hasInput(2) ? ctx.outElements() : .zero))
    }))
    let pool: CostRule = { ctx in
        let k = Shape.product(ctx.node.ints("kernel_shape") ?? [1]) ?? 1
        return (.zero, ctx.outElements() * k)
    }
    for name in ["MaxPool", "AveragePool", "LpPool"] { rules.append((name, pool)) }
    for name in ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"] {
        rules.append((name, { ctx in (.zero, ctx.inElements()) }))
    }
    for name in ["DepthToSpace", "SpaceToDepth"] { rules.append((name, { _ in (.zero, .zero) })) }
    return rules
}()
