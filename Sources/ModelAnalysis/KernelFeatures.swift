import CKernels
import ModelIR

/// What a calibrated cost model needs to know of one kernel the executor runs: its class (the
/// op family, layout and window shape that pick a kernel path) and the work it does, summed over
/// the nodes fused into it.
public struct KernelFeatures: Sendable, Equatable {
    /// For example `conv.pointwise.nchw`, `conv.depthwise.s2.nhwc`, `gemm`, `elementwise.Tanh`.
    public var kernelClass: String
    /// The wider classes whose models stand in, in order, when a profile has none for
    /// `kernelClass` (`elementwise.Mul.broadcast` → `elementwise.Mul` → `elementwise`).
    public var fallbackClasses: [String]
    public var macs = 0
    public var flops = 0
    /// Activation bytes read (the node's non-weight inputs and a fused residual's other operand).
    public var bytesRead = 0
    /// Bytes of the last fused node's outputs.
    public var bytesWritten = 0
    public var weightBytes = 0
    /// The core's own cache (L2).
    public var cacheBytes = 0
    /// Activation bytes from beyond the core's cache: inputs whose reuse distance (they, and all
    /// bytes touched since they were written) exceeds it, and output beyond it.
    public var spill = 0
    /// Calls of a kernel's inner routine that its work alone does not price. Broadcasting binary
    /// ops: the rows their loop goes through (mlk_binary_loop), each a call of its row kernel (a
    /// per-channel PRelu over NHWC pixels of 8 channels costs more per element than over 128).
    /// NHWC depthwise: the pixel groups taken four or fewer at a time rather than in the row
    /// kernel's eight-pixel spans (mlk_depthwise_nhwc_short_groups): every group of a 7x7 plane's
    /// rows, three of the sixteen groups of a 112-wide row. Zero for other kernels.
    public var rows = 0
    /// Convolution geometry (zero for other classes): channels per group in and out, groups,
    /// kernel and output size, stride.
    public var inChannels = 0, outChannels = 0, groups = 0, kernelH = 0, kernelW = 0, outH = 0, outW = 0, stride = 0
    /// The largest power of two, up to 64, that divides a convolution's channels per group in and
    /// out (a depthwise convolution's channels); 0 for other kernels. Another runtime's blocked
    /// layouts may take only aligned channels (onnxruntime's NCHWc on AVX-512 takes multiples of
    /// 16), so `calibrate --from-timings` may fit the kernels below an alignment apart.
    public var channelAlignment = 0
    /// The share of the vector lanes the kernel multiplies that are outputs
    /// (mlk_conv_nchw_lane_use, mlk_pool_lane_use; 1 for kernels whose tiles they do not
    /// describe). The cost models price `flops / laneUse`: RegNet's grouped convolutions on 5x5
    /// planes (160x160 inputs) fill 5 of 16 lanes, and their class was predicted at 0.76 of their
    /// time; GoogLeNet's max pools over 7x7 planes 7 of 16, predicted at 0.41-0.45 (AMD EPYC, Zen 4).
    public var laneUse = 1.0

    public init(kernelClass: String, fallbackClasses: [String] = []) {
        self.kernelClass = kernelClass
        self.fallbackClasses = fallbackClasses
    }

    /// The model for this kernel among `models`: its class's, else the first wider class's.
    public func model(in models: [String: KernelCostModel]) -> KernelCostModel? {
        for c in [kernelClass] + fallbackClasses {
            for a in Self.alignmentSplits where channelAlignment > 0 && channelAlignment < a {
                if let m = models[Self.unalignedClass(c, below: a)] { return m }
            }
            if let m = models[c] { return m }
        }
        return nil
    }

    /// The channel alignments a profile may fit kernels below apart (SIMD widths in floats).
    public static let alignmentSplits = [4, 8, 16, 32, 64]
    /// The class of `cls`'s kernels whose channels are not a multiple of `alignment`.
    public static func unalignedClass(_ cls: String, below alignment: Int) -> String { "\(cls).under\(alignment)" }

    /// The named quantities a cost model weighs (see `KernelCostModel`): `spillBytes` is `spill`.
    public var terms: [String: Double] {
        ["call": 1, "flops": Double(flops) / laneUse, "bytes": Double(bytesRead + bytesWritten), "weightBytes": Double(weightBytes),
         "spillBytes": Double(spill), "rows": Double(rows)]
    }
    public static let termNames: Set<String> = ["call", "flops", "bytes", "weightBytes", "spillBytes", "rows"]
}

/// Sorts kernels into classes and sums their work, from the IR only (op, layout, shapes and
/// window attributes): which code path runs inside a class is for its fitted cost model to absorb.
public enum KernelClassifier {
    static let movement: Set<String> = ["Concat", "Transpose", "Pad", "Slice", "Gather", "Split", "Tile", "Expand",
                                        "DepthToSpace", "SpaceToDepth", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                        "Identity", "Cast", "GatherND", "ScatterND", "Shape"]
    static let pooling: Set<String> = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"]
    static let linear: Set<String> = ["Gemm", "MatMul", "FullyConnected", "BatchMatMul", "MatMulInteger", "QLinearMatMul"]
    static let reduction: Set<String> = ["Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
                                         "ReduceProd", "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp",
                                         "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                                         "LpNormalization", "L2Normalization", "ArgMax", "ArgMin", "TopK"]

    /// Elements of the input after the last axis a Slice cuts (its `axes` a constant, the input's
    /// dimensions known): the least length of the runs it copies. Nil where unknown.
    static func sliceRun(_ node: Node, in g: Graph, bindings: [String: Int]) -> Int? {
        guard let x = node.inputs.first ?? nil, let dims = g.values[x].type.shape.dims else { return nil }
        let axes: [Int]
        if node.inputs.count > 3, let a = node.inputs[3] {
            guard let c = g.values[a].constant?.doubles(limit: 16) else { return nil }
            axes = c.map { Int($0) }
        } else if let a = node.ints("axes") {
            axes = a
        } else {
            axes = Array(0..<dims.count)   // all axes: the runs are the last dimension's
        }
        let last = axes.map { $0 < 0 ? $0 + dims.count : $0 }.max() ?? (dims.count - 1)
        guard last >= 0, last < dims.count else { return nil }
        var run = 1
        for d in dims[(last + 1)...] {
            let v: Int
            switch d {
            case .known(let k): v = k
            case .symbol(let name): guard let k = bindings[name] else { return nil }; v = k
            case .unknown: return nil
            }
            run *= v
        }
        return run
    }

    /// The class of a node's kernel and the wider class that stands in for it. Convolutions
    /// by layout and window (pointwise; depthwise by window, stride 2 apart; 3x3 stride 1, which the
    /// executor may run as Winograd; other windows; grouped, with few channels a group on the
    /// direct kernel); the other ops by family and op.
    public static func classify(_ node: Node, in g: Graph, bindings: [String: Int] = [:]) -> (String, [String]) {
        let op = node.op.rawValue
        let layout = node.dataLayout == .nhwc ? "nhwc" : "nchw"
        switch op {
        case "Conv", "ConvInteger", "QLinearConv":
            let geo = convGeometry(node, in: g, bindings: bindings)
            // One output pixel: the matrix-vector product of a batch-1 fully-connected layer, whose
            // time is its weights' (priced as a pointwise GEMM, the Keras MobileNetV3's 5 MB head
            // came out 13 ms for 0.26, the model 5.4x its time).
            if node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings),
               (node.dataLayout == .nhwc ? mlk_conv_nhwc_runs_gemv(&p) : mlk_conv_nchw_runs_gemv(&p)) != 0 {
                return ("conv.gemv", [node.dataLayout == .nhwc ? "gemm.FullyConnected" : "gemm.Gemm", "gemm"])
            }
            let (cls, wider): (String, [String])
            if geo.groups > 1 && geo.inChannels == 1 && geo.outChannels == 1 {
                // By window too: per tap, a 3x3 depthwise costs less than a 7x7 (one pooled class
                // put MobileNets' 3x3 layers 1.35-1.44x over and ConvNeXt's 7x7 0.72x under).
                let k = geo.kernelH == geo.kernelW ? "k\(geo.kernelH)" : "k\(geo.kernelH)x\(geo.kernelW)"
                // Over NCHW planes the kernels take a row's outputs 16 at a time and the stride
                // across the row sets the loads per output; the stride down the plane only picks
                // the rows. PP-OCR's (2, 1) strides, priced as stride 2, came out 1.8x.
                let strided = node.dataLayout == .nhwc ? geo.stride > 1 : (node.ints("strides")?.last ?? 1) > 1
                (cls, wider) = strided ? ("conv.depthwise.s2.\(k).\(layout)", ["conv.depthwise.s2.\(layout)", "conv.depthwise.\(layout)"])
                                              : ("conv.depthwise.\(k).\(layout)", ["conv.depthwise.\(layout)"])
            } else if geo.groups > 1 {
                // Few channels a group (RegNet's 8 and 16): the direct kernel, not im2col and a GEMM per group.
                if node.dataLayout != .nhwc, node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings),
                   mlk_conv_grouped_direct(&p) != 0 {
                    return ("conv.grouped.direct.nchw", ["conv.grouped.nchw", "conv.spatial.nchw"])
                }
                (cls, wider) = ("conv.grouped.\(layout)", ["conv.spatial.\(layout)"])
            } else if geo.kernelH * geo.kernelW == 1 {
                // Pruned weights (at most 35% nonzero) run on the sparse kernel, its work the nonzeros'.
                if node.dataLayout != .nhwc, node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings),
                   let (nonzero, _) = weightNonzeros(node, in: g), mlk_conv_sparse_ok(&p, nonzero) != 0 {
                    return ("conv.pointwise.sparse.nchw", ["conv.pointwise.nchw"])
                }
                (cls, wider) = ("conv.pointwise.\(layout)", [])
            } else if node.dataLayout == .nhwc, node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings),
                      mlk_conv_nhwc_runs_direct(&p) != 0 {
                // Stems over images (1-4 input channels): the direct kernel, no im2col rows.
                return ("conv.stem.nhwc", ["conv.spatial.nhwc"])
            } else if geo.kernelH == 3 && geo.kernelW == 3 && geo.stride == 1 {
                // Winograd where the kernels' own predicate takes it (NCHW, AVX-512, 3x3 "same" on
                // planes of 196 outputs or more, channels in sixteens): its own cost per FLOP.
                if node.dataLayout != .nhwc, node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings),
                   mlk_conv_winograd_ok(&p) != 0 {
                    return ("conv.3x3s1.winograd.nchw", ["conv.3x3s1.nchw", "conv.spatial.nchw"])
                }
                (cls, wider) = ("conv.3x3s1.\(layout)", ["conv.spatial.\(layout)"])
            } else {
                (cls, wider) = ("conv.spatial.\(layout)", [])
            }
            if geo.groups == 1, !weightsPacked(node, in: g, bindings: bindings) { return ("\(cls).unpacked", [cls] + wider) }
            // Short sums on a core with one 512-bit FMA pipe: another GEMM, of smaller tiles, whose
            // cost per FLOP at k = 16-64 is not the packed one's.
            if node.dataLayout == .nhwc, node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings),
               mlk_conv_nhwc_short_sums(&p) != 0 {
                return ("\(cls).short", [cls] + wider)
            }
            return (cls, wider)
        case "ConvTranspose": return ("convtranspose", ["conv.spatial.\(layout)"])
        default:
            // Shape arithmetic left for run time (Shape, Gather, Unsqueeze, Concat of a few int64
            // values, as torch exports reshapes): the step's cost is the executor's dispatch, not
            // the data-movement class's per-call cost fitted on activations (3 us predicted for
            // 0.45 measured, 470 of them in the study's ShuffleNets).
            if let out = node.outputs.first, [.int64, .int32].contains(g.values[out].type.dtype),
               let dims = g.values[out].type.shape.dims, dims.allSatisfy({ $0.value != nil }),
               dims.reduce(1, { $0 * ($1.value ?? 1) }) <= 64 {
                return ("shape.\(op)", [])
            }
            // A Slice whose copies are runs of whole inner blocks (ShuffleNetV2's channel split
            // over NCHW planes) is a few long copies; a crop of rows and columns, many short ones.
            if op == "Slice", let run = sliceRun(node, in: g, bindings: bindings), run >= 16 {
                return ("movement.Slice.planes", ["movement.Slice", "movement"])
            }
            // Max and average pooling by the loop the kernels' own predicate picks: ResNet's 3x3
            // stride-2 max pooling has its own (twice the others' speed), NHWC rows another.
            if op == "MaxPool" || op == "AveragePool", var p = poolParameters(node, in: g, bindings: bindings) {
                let loop = Int(mlk_pool_loop(op == "MaxPool" ? 0 : 1, node.dataLayout == .nhwc ? 1 : 0, &p))
                let suffix = [Int(MLK_POOL_NHWC_ROWS): ".nhwc", Int(MLK_POOL_MAX_3X3S2): ".3x3s2", Int(MLK_POOL_PLANES): ""][loop] ?? ".portable"
                return ("pool.\(op)\(suffix)", suffix.isEmpty ? ["pool"] : ["pool.\(op)", "pool"])
            }
            // Resize by mode and layout: nearest copies, linear interpolates, and the NCHW loop
            // interpolates a plane's row element by element where NHWC takes a pixel's channels.
            if op == "Resize" { return ("resize.\(node.string("mode") ?? "nearest").\(layout)", ["resize"]) }
            // A pruned fully-connected layer (at most 35% nonzero) runs on the sparse kernel.
            if op == "Gemm", (node.int("transA") ?? 0) == 0, let (units, inner) = gemmUnits(node, in: g),
               let (nonzero, _) = weightNonzeros(node, in: g), mlk_gemm_sparse_ok(Int32(units), Int32(inner), nonzero) != 0 {
                return ("gemm.sparse", ["gemm.Gemm", "gemm"])
            }
            let family: String
            if linear.contains(op) { family = "gemm" }
            else if pooling.contains(op) { family = "pool" }
            else if op == "Resize" { family = "resize" }
            else if reduction.contains(op) { family = "reduce" }
            else if movement.contains(op) { family = "movement" }
            else { family = "elementwise" }
            // A binary op whose operands differ in shape runs the loop mlk_binary picks for them
            // (mlk_binary_loop): a per-channel vector over NHWC pixels in vectors row by row, a
            // per-channel value over NCHW planes or a scale that comes first walked by index, and a
            // scalar constant in one pass as the same-shape op, whose class it shares (fitted
            // apart, the networks' scalar adds, whose outputs the allocator placed in cold buffers,
            // priced PP-OCR's at 2.4x their time).
            if family == "elementwise", node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1],
               let da = g.values[a].type.shape.dims, let db = g.values[b].type.shape.dims, da != db {
                let wider = ["elementwise.\(op)", "elementwise"]
                guard let loop = binaryPlan(op, da, db, bindings: bindings)?.loop else { return ("elementwise.\(op).broadcast", wider) }
                switch Int(loop) {
                case Int(MLK_BINARY_FLAT), Int(MLK_BINARY_SCALAR): return ("elementwise.\(op)", ["elementwise"])
                case Int(MLK_BINARY_ROWS): return ("elementwise.\(op).rows", wider)
                default: return ("elementwise.\(op).broadcast", wider)
                }
            }
            return ("\(family).\(op)", [family])
        }
    }

    /// The loop mlk_binary runs for a float binary op of these operand shapes, and the rows it goes
    /// through (numpy broadcasting; an early PRelu's [C] slope along axis 1, as the executor reads
    /// it). Nil where a dimension is unknown.
    static func binaryPlan(_ op: String, _ da: [Dim], _ db: [Dim], bindings: [String: Int]) -> (loop: Int32, rows: Int)? {
        func ints(_ d: [Dim]) -> [Int]? {
            let v = d.map { $0.value ?? SymCount(product: [$0]).evaluate(bindings) }
            return v.allSatisfy { $0 > 0 } ? v : nil
        }
        guard let a = ints(da), var b = ints(db) else { return nil }
        if op == "PRelu", a.count > 2, b == [a[1]] { b = [a[1]] + [Int](repeating: 1, count: a.count - 2) }
        guard let shape = Broadcast.shape(a, b), shape.count <= 8 else { return nil }
        let sa = Broadcast.strides(a, to: shape).map { CLong($0) }, sb = Broadcast.strides(b, to: shape).map { CLong($0) }
        let arithmetic = ["Add", "Sub", "Mul", "Div"].contains(op)
        var rows = 0
        let loop = mlk_binary_loop(Int32(arithmetic ? MLK_ADD : MLK_PRELU), Int32(shape.count), shape.map { CLong($0) }, sa, sb, &rows)
        return (loop, rows)
    }

    /// The kernels' description of a pooling window (batch 1 where symbolic).
    static func poolParameters(_ node: Node, in g: Graph, bindings: [String: Int]) -> mlk_conv? {
        func dims(_ v: ValueID?) -> [Int]? {
            guard let v, let d = g.values[v].type.shape.dims else { return nil }
            return d.map { $0.value ?? SymCount(product: [$0]).evaluate(bindings) }
        }
        guard let x = dims(node.inputs.first ?? nil), let y = dims(node.outputs.first), x.count == 4, y.count == 4,
              let kernel = node.ints("kernel_shape"), kernel.count == 2 else { return nil }
        let nhwc = node.dataLayout == .nhwc
        let (c, ih, iw) = nhwc ? (x[3], x[1], x[2]) : (x[1], x[2], x[3])
        let (oh, ow) = nhwc ? (y[1], y[2]) : (y[2], y[3])
        let strides = node.ints("strides") ?? [1, 1], dil = node.ints("dilations") ?? [1, 1], pads = node.ints("pads") ?? [0, 0, 0, 0]
        let autoPad = node.string("auto_pad") ?? "NOTSET", ceil = (node.int("ceil_mode") ?? 0) != 0
        let hGeo = SlidingWindow.geometry(ih, kernel: kernel[0], stride: strides.first ?? 1, dilation: dil.first ?? 1,
                                          padBegin: pads.count > 0 ? pads[0] : 0, padEnd: pads.count > 2 ? pads[2] : 0, autoPad: autoPad, ceilMode: ceil)
        let wGeo = SlidingWindow.geometry(iw, kernel: kernel[1], stride: strides.last ?? 1, dilation: dil.last ?? 1,
                                          padBegin: pads.count > 1 ? pads[1] : 0, padEnd: pads.count > 3 ? pads[3] : 0, autoPad: autoPad, ceilMode: ceil)
        return mlk_conv(batch: Int32(x[0]), in_c: Int32(c), in_h: Int32(ih), in_w: Int32(iw), out_c: Int32(c),
                        out_h: Int32(oh), out_w: Int32(ow), k_h: Int32(kernel[0]), k_w: Int32(kernel[1]),
                        stride_h: Int32(strides.first ?? 1), stride_w: Int32(strides.last ?? 1), dil_h: Int32(dil.first ?? 1), dil_w: Int32(dil.last ?? 1),
                        pad_top: Int32(hGeo.begin), pad_left: Int32(wGeo.begin), pad_bottom: Int32(hGeo.end), pad_right: Int32(wGeo.end),
                        groups: 1)
    }

    /// A Gemm's output units and inner size from its constant weight.
    static func gemmUnits(_ node: Node, in g: Graph) -> (Int, Int)? {
        guard node.inputs.count > 1, let w = node.inputs[1], let c = g.values[w].constant, c.shape.count == 2 else { return nil }
        return (node.int("transB") ?? 0) != 0 ? (c.shape[0], c.shape[1]) : (c.shape[1], c.shape[0])
    }

    /// Nonzero and all elements of a node's float32 constant weight (input 1).
    public static func weightNonzeros(_ node: Node, in g: Graph) -> (nonzero: Int, count: Int)? {
        guard node.inputs.count > 1, let w = node.inputs[1], let c = g.values[w].constant, c.dtype == .float32,
              let (zeros, n, _) = ModelAnalyzer.zeroStats(c) else { return nil }
        return (n - zeros, n)
    }

    /// Whether the executor's geometry lets it pack a convolution's weights once at plan time,
    /// asked of the kernels' own predicates (mlk_conv_nhwc_packs; mlk_conv_nchw_cot_packs for NCHW
    /// windows larger than 1x1). NCHW 1x1 convolutions pack when the planner blocks their
    /// activations, which the analysis does not see: they count as packed. Weights decoded at
    /// load time (fp16 or sparse) are packed like stored ones where the convolution is their only
    /// reader.
    static func weightsPacked(_ node: Node, in g: Graph, bindings: [String: Int]) -> Bool {
        guard node.op.rawValue == "Conv", var p = convParameters(node, in: g, bindings: bindings) else { return true }
        if node.dataLayout == .nhwc { return mlk_conv_nhwc_packs(&p) != 0 }
        if p.k_h * p.k_w == 1 { return true }
        return mlk_avx512_available() != 0 && mlk_conv_nchw_cot_packs(&p) != 0
    }

    /// The kernels' description of a 2-D convolution (batch 1 where symbolic).
    static func convParameters(_ node: Node, in g: Graph, bindings: [String: Int]) -> mlk_conv? {
        func dims(_ v: ValueID?) -> [Int]? {
            guard let v, let d = g.values[v].type.shape.dims else { return nil }
            return d.map { $0.value ?? SymCount(product: [$0]).evaluate(bindings) }
        }
        guard let x = dims(node.inputs.first ?? nil), let y = dims(node.outputs.first), x.count == 4, y.count == 4 else { return nil }
        let geo = convGeometry(node, in: g, bindings: bindings)
        let nhwc = node.dataLayout == .nhwc
        let (ih, iw) = nhwc ? (x[1], x[2]) : (x[2], x[3])
        let strides = node.ints("strides") ?? [1, 1], dil = node.ints("dilations") ?? [1, 1], pads = node.ints("pads") ?? [0, 0, 0, 0]
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        let hGeo = SlidingWindow.geometry(ih, kernel: geo.kernelH, stride: strides.first ?? 1, dilation: dil.first ?? 1,
                                          padBegin: pads.count > 0 ? pads[0] : 0, padEnd: pads.count > 2 ? pads[2] : 0, autoPad: autoPad, ceilMode: false)
        let wGeo = SlidingWindow.geometry(iw, kernel: geo.kernelW, stride: strides.last ?? 1, dilation: dil.last ?? 1,
                                          padBegin: pads.count > 1 ? pads[1] : 0, padEnd: pads.count > 3 ? pads[3] : 0, autoPad: autoPad, ceilMode: false)
        let cin = geo.inChannels * geo.groups, cout = geo.outChannels * geo.groups
        return mlk_conv(batch: Int32(x[0]), in_c: Int32(cin), in_h: Int32(ih), in_w: Int32(iw), out_c: Int32(cout),
                        out_h: Int32(geo.outH), out_w: Int32(geo.outW), k_h: Int32(geo.kernelH), k_w: Int32(geo.kernelW),
                        stride_h: Int32(strides.first ?? 1), stride_w: Int32(strides.last ?? 1), dil_h: Int32(dil.first ?? 1), dil_w: Int32(dil.last ?? 1),
                        pad_top: Int32(hGeo.begin), pad_left: Int32(wGeo.begin), pad_bottom: Int32(hGeo.end), pad_right: Int32(wGeo.end),
                        groups: Int32(geo.groups))
    }

    /// Channels per group in and out, groups, kernel, output size and the larger stride.
    static func convGeometry(_ node: Node, in g: Graph, bindings: [String: Int]) -> (inChannels: Int, outChannels: Int, groups: Int, kernelH: Int, kernelW: Int, outH: Int, outW: Int, stride: Int) {
        func dims(_ v: ValueID?) -> [Int] {
            guard let v, let d = g.values[v].type.shape.dims else { return [] }
            return d.map { $0.value ?? SymCount(product: [$0]).evaluate(bindings) }
        }
        let wi = node.op.rawValue == "QLinearConv" ? 3 : 1
        let x = dims(node.inputs.first ?? nil), y = dims(node.outputs.first)
        let w = dims(wi < node.inputs.count ? node.inputs[wi] : nil)
        let nhwc = node.dataLayout == .nhwc
        guard x.count == 4, y.count == 4, w.count == 4 else { return (0, 0, 1, 1, 1, 0, 0, 1) }
        let groups = max(1, node.int("group") ?? 1)
        let cin = nhwc ? x[3] : x[1], cout = nhwc ? y[3] : y[1]
        let (oh, ow) = nhwc ? (y[1], y[2]) : (y[2], y[3])
        let kernel = node.ints("kernel_shape") ?? {
            switch node.kernelLayout ?? .oihw {
            case .oihw, .iohw: return [w[2], w[3]]
            case .ohwi, .ihwo1: return [w[1], w[2]]
            }
        }()
        let strides = node.ints("strides") ?? [1, 1]
        return (cin / groups, cout / groups, groups, kernel.first ?? 1, kernel.last ?? 1, oh, ow, strides.max() ?? 1)
    }

    /// Whether a convolution step runs on the integer kernels: a QDQ convolution fused with its
    /// QuantizeLinear (FusionPlan.quantizedConv), a QLinearConv, or a convolution of quantized
    /// 8-bit tensors (TFLite).
    static func isIntegerConv(_ step: KernelStep, in g: Graph) -> Bool {
        let node = g.nodes[step.node]
        if node.op.rawValue == "QLinearConv" { return true }
        guard node.op == .conv else { return false }
        if step.fused.contains(where: { g.nodes[$0].op.rawValue == "QuantizeLinear" }) { return true }
        guard let x = node.inputs.first ?? nil else { return false }
        return [DType.int8, .uint8].contains(g.values[x].type.dtype) && g.values[x].quantization != nil
    }

    /// The features of each kernel of `kernels`, from the per-node counts of `nodes`; `folded`:
    /// the nodes computed at load time, whose outputs are weights (fp16 weights widened).
    public static func features(_ kernels: [KernelStep], _ nodes: [NodeAnalysis], in g: Graph, bindings: [String: Int], cacheBytes: Int,
                                folded: Set<Int> = []) -> [KernelFeatures] {
        func bytes(_ v: ValueID) -> Int {
            let t = g.values[v].type
            guard let dims = t.shape.dims else { return 0 }
            return SymCount(product: dims).evaluate(bindings) * (t.dtype.bitWidth ?? 32) / 8
        }
        // Bytes touched by the schedule before each node, to judge reuse distance (as the DRAM
        // model does against the last-level cache).
        var touched = [Int](repeating: 0, count: nodes.count + 1)
        for (i, a) in nodes.enumerated() { touched[i + 1] = touched[i] + a.bytesRead + a.bytesWritten }
        func fromBeyondCache(_ v: ValueID, readAt i: Int) -> Bool {
            guard let p = g.values[v].producer else { return true }   // a graph input: written outside the run
            return bytes(v) + touched[i] - touched[p + 1] > cacheBytes
        }
        return kernels.map { step in
            let node = g.nodes[step.node]
            // An elementwise chain runs as one unary kernel over its input.
            var (cls, fallback) = step.chainOp.map { ("elementwise.\($0)", ["elementwise"]) } ?? classify(node, in: g, bindings: bindings)
            let integer = isIntegerConv(step, in: g)
            if integer {
                // The integer kernels (NHWC, int32 sums, requantized per output): a class of their
                // own by the float class's kind, which stands in where none is fitted.
                let kind = cls.hasPrefix("conv.depthwise") ? "depthwise" : cls.hasPrefix("conv.pointwise") ? "pointwise" : "spatial"
                (cls, fallback) = ("conv.int8.\(kind)", [cls] + fallback)
            }
            var f = KernelFeatures(kernelClass: cls, fallbackClasses: fallback)
            f.cacheBytes = cacheBytes
            let group = [step.node] + step.fused
            for k in group {
                f.macs += nodes[k].macs
                f.flops += nodes[k].flops
                f.weightBytes += nodes[k].weightBytes
            }
            // A chain is one unary op per element, counted as the op itself is: the ONNX HardSwish
            // op and the chain x + 3 -> Clip -> * x -> / 6 that paddle2onnx writes are the same
            // kernel, and at 1 and 4 FLOPs an element the chains were predicted at 3-4x their time.
            if step.chainOp != nil, let out = (step.fused.last.map { g.nodes[$0] } ?? node).outputs.first {
                f.flops = bytes(out) / max(1, (g.values[out].type.dtype.bitWidth ?? 32) / 8)
            }
            // A sparse kernel does the products of the nonzero weights only, and reads them with
            // their column indices.
            if cls == "conv.pointwise.sparse.nchw" || cls == "gemm.sparse", let (nonzero, count) = weightNonzeros(node, in: g), count > 0 {
                f.macs = Int((Double(nodes[step.node].macs) * Double(nonzero) / Double(count)).rounded())
                f.flops = 2 * f.macs
                f.weightBytes = 8 * nonzero
            }
            f.bytesRead = nodes[step.node].activationBytesRead
            var inside = Set(node.outputs)
            for k in step.fused where step.chainOp == nil {
                for case let v? in g.nodes[k].inputs where !inside.contains(v) && g.values[v].constant == nil { f.bytesRead += bytes(v) }
                inside.formUnion(g.nodes[k].outputs)
            }
            f.bytesWritten = (step.fused.last.map { g.nodes[$0] } ?? node).outputs.reduce(0) { $0 + bytes($1) }
            if integer, let x = node.inputs.first ?? nil, let y = node.outputs.first {
                // One byte an element in and out, whatever type the graph gives a fused QDQ conv's float ends.
                f.bytesRead = bytes(x) / max(1, (g.values[x].type.dtype.bitWidth ?? 32) / 8)
                f.bytesWritten = bytes(y) / max(1, (g.values[y].type.dtype.bitWidth ?? 32) / 8)
            }
            var seen = Set<ValueID>(), produced = Set<ValueID>()
            for k in group {
                // Weights widened at load time are weights, not activations from beyond the cache:
                // face_landmark's 1.6 MB fp16 head had been priced 4x its time as such a spill.
                for case let v? in g.nodes[k].inputs where g.values[v].constant == nil && !produced.contains(v)
                    && !(g.values[v].producer.map { folded.contains($0) } ?? false) && seen.insert(v).inserted {
                    if fromBeyondCache(v, readAt: step.node) { f.spill += bytes(v) }
                }
                produced.formUnion(g.nodes[k].outputs)
            }
            f.spill += max(0, f.bytesWritten - cacheBytes)
            if f.kernelClass.hasSuffix(".rows") || f.kernelClass.hasSuffix(".broadcast"), step.chainOp == nil, node.inputs.count == 2,
               let a = node.inputs[0], let b = node.inputs[1], let da = g.values[a].type.shape.dims, let db = g.values[b].type.shape.dims,
               let plan = binaryPlan(node.op.rawValue, da, db, bindings: bindings) {
                f.rows = plan.rows
            }
            if f.kernelClass.hasPrefix("conv.") {
                let geo = convGeometry(node, in: g, bindings: bindings)
                (f.inChannels, f.outChannels, f.groups, f.kernelH, f.kernelW, f.outH, f.outW, f.stride) = geo
                let channels = geo.inChannels == 1 && geo.groups > 1 ? geo.groups : gcd(geo.inChannels, geo.outChannels)
                f.channelAlignment = channels > 0 ? min(64, channels & -channels) : 0
                if !integer, node.op == .conv, node.dataLayout != .nhwc, var p = convParameters(node, in: g, bindings: bindings) {
                    f.laneUse = max(0.01, mlk_conv_nchw_lane_use(&p))
                }
                if !integer, node.dataLayout == .nhwc, f.kernelClass.hasPrefix("conv.depthwise"), var p = convParameters(node, in: g, bindings: bindings) {
                    f.rows = Int(mlk_depthwise_nhwc_short_groups(&p))
                }
            }
            if node.op.rawValue == "MaxPool" || node.op.rawValue == "AveragePool", var p = poolParameters(node, in: g, bindings: bindings) {
                f.laneUse = max(0.01, mlk_pool_lane_use(node.op.rawValue == "MaxPool" ? 0 : 1, node.dataLayout == .nhwc ? 1 : 0, &p))
            }
            return f
        }
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
