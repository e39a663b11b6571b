import CKernels
import Foundation
import ModelIR

/// A window op's attributes, read from the node once when the step is planned (looking them up by
/// name on every run cost about 1% of MobileNetV2).
struct WindowAttributes {
    let node: Node
    let strides: [Int]?, dilations: [Int]?, pads: [Int]?
    let autoPad: String
    let ceilMode: Bool
    let group: Int

    init(_ node: Node) {
        self.node = node
        strides = node.ints("strides")
        dilations = node.ints("dilations")
        pads = node.ints("pads")
        autoPad = node.string("auto_pad") ?? "NOTSET"
        ceilMode = (node.int("ceil_mode") ?? 0) != 0
        group = node.int("group") ?? 1
    }
}

/// Geometry of a 1-D or 2-D window op over NCHW / NHWC data.
func convGeometry(_ a: WindowAttributes, x: [Int], kernel: [Int], outChannels: Int, nhwc: Bool) throws -> mlk_conv {
    let node = a.node
    let spatialRank = x.count - 2
    guard spatialRank == 1 || spatialRank == 2, kernel.count == spatialRank else {
        throw RuntimeError.unsupported(op: node.sourceOp, node: node.label, reason: "\(spatialRank)-D windows (1-D and 2-D only)")
    }
    let spatial = nhwc ? Array(x[1..<(x.count - 1)]) : Array(x[2...])
    let strides = a.strides ?? Array(repeating: 1, count: spatialRank)
    let dil = a.dilations ?? Array(repeating: 1, count: spatialRank)
    let pads = a.pads ?? Array(repeating: 0, count: 2 * spatialRank)
    let autoPad = a.autoPad
    let ceil = a.ceilMode
    // Hostile or broken attributes: refuse rather than divide by zero or overflow 32-bit sizes.
    let limit = 1 << 24
    guard strides.count >= spatialRank, dil.count >= spatialRank, pads.count >= 2 * spatialRank,
          strides.allSatisfy({ $0 >= 1 && $0 < limit }), dil.allSatisfy({ $0 >= 1 && $0 < limit }),
          kernel.allSatisfy({ $0 >= 1 && $0 < limit }), pads.allSatisfy({ $0 >= 0 && $0 < limit }),
          x.allSatisfy({ $0 >= 0 && $0 < limit }), outChannels >= 0, outChannels < limit else {
        throw RuntimeError.invalid(node: node.label, reason: "window attributes out of range (strides \(strides), dilations \(dil), pads \(pads), kernel \(kernel), input \(x))")
    }
    var g = [(out: Int, begin: Int, end: Int)]()
    for i in 0..<spatialRank {
        g.append(SlidingWindow.geometry(spatial[i], kernel: kernel[i], stride: strides[i], dilation: dil[i], padBegin: pads[i],
                                padEnd: pads[i + spatialRank], autoPad: autoPad, ceilMode: ceil))
    }
    // 1-D: a 2-D problem with height 1.
    let h = spatialRank == 2 ? 0 : -1
    var p = mlk_conv()
    p.batch = Int32(x[0]); p.in_c = Int32(nhwc ? x[x.count - 1] : x[1])
    p.in_h = Int32(h == 0 ? spatial[0] : 1); p.in_w = Int32(spatial[spatialRank - 1])
    p.out_c = Int32(outChannels)
    p.out_h = Int32(h == 0 ? g[0].out : 1); p.out_w = Int32(g[spatialRank - 1].out)
    p.k_h = Int32(h == 0 ? kernel[0] : 1); p.k_w = Int32(kernel[spatialRank - 1])
    p.stride_h = Int32(h == 0 ? strides[0] : 1); p.stride_w = Int32(strides[spatialRank - 1])
    p.dil_h = Int32(h == 0 ? dil[0] : 1); p.dil_w = Int32(dil[spatialRank - 1])
    p.pad_top = Int32(h == 0 ? g[0].begin : 0); p.pad_bottom = Int32(h == 0 ? g[0].end : 0)
    p.pad_left = Int32(g[spatialRank - 1].begin); p.pad_right = Int32(g[spatialRank - 1].end)
    p.groups = Int32(a.group)
    return p
}

/// An NCHW convolution over planes one column wide (magika's 5x1 windows over 512 x 1) as the same
/// convolution over one row: the memory of [C][H][1] is that of [C][1][H], and of [O][I][kH][1]
/// that of [O][I][1][kH]. The kernels' paths are built for rows: over the column the 256 -> 512
/// channel layer ran at 46 GFLOP/s, over the row at 152. Other geometries come back unchanged.
func columnAsRow(_ p: mlk_conv) -> mlk_conv {
    guard p.in_w == 1, p.out_w == 1, p.k_w == 1, p.pad_left == 0, p.pad_right == 0, p.in_h > 1 else { return p }
    var q = p
    q.in_h = 1; q.in_w = p.in_h
    q.out_h = 1; q.out_w = p.out_h
    q.k_h = 1; q.k_w = p.k_h
    q.stride_w = p.stride_h; q.stride_h = p.stride_h   // (a stride along a dimension of one is moot; the paths want them equal)
    q.dil_w = p.dil_h; q.dil_h = 1
    q.pad_top = 0; q.pad_bottom = 0
    q.pad_left = p.pad_top; q.pad_right = p.pad_bottom
    return q
}

func outShape(_ p: mlk_conv, rank: Int, nhwc: Bool) -> [Int] {
    let spatial = rank == 4 ? [Int(p.out_h), Int(p.out_w)] : [Int(p.out_w)]
    return nhwc ? [Int(p.batch)] + spatial + [Int(p.out_c)] : [Int(p.batch), Int(p.out_c)] + spatial
}

/// The shape the graph declares for `v`, when static but for a batch left open (taken as 1).
func declaredShape(_ v: ValueID?, _ graph: Graph) -> [Int]? {
    guard let v, let dims = graph.values[v].type.shape.dims, !dims.isEmpty else { return nil }
    var shape: [Int] = []
    for (i, d) in dims.enumerated() {
        guard let known = d.value ?? (i == 0 ? 1 : nil) else { return nil }
        shape.append(known)
    }
    return shape
}

/// Whether a Conv node can run on channel-blocked activations (mlk_conv_blocked): NCHW, OIHW float
/// weights in the mapped file (packed at plan time without a second copy), one group, and the
/// geometry for its declared input shape one mlk_conv_blocked_ok takes. `residual`: the input the
/// planner fused in as a residual, which must have the output's shape.
func convRunsBlocked(_ n: Node, _ graph: Graph, weight: RTensor?, residual: ValueID?) -> Bool {
    guard n.op == .conv, n.dataLayout != .nhwc, (n.kernelLayout ?? .oihw) == .oihw, (n.int("group") ?? 1) == 1,
          n.fusedActivation == nil, n.inputs.count > 1, let wID = n.inputs[1], graph.values[wID].constant?.isFileBacked == true,
          let w = weight, w.dtype == .float32, w.shape.count == 4,
          let xs = declaredShape(n.inputs[0], graph), xs.count == 4,
          let p0 = try? convGeometry(WindowAttributes(n), x: xs, kernel: Array(w.shape.dropFirst(2)), outChannels: w.shape[0], nhwc: false),
          p0.in_c == Int32(w.shape[1]) else { return false }
    var p = columnAsRow(p0)
    guard mlk_conv_blocked_ok(&p) != 0, !convRunsSparse(n, graph, weight: w) else { return false }
    if let r = residual { return declaredShape(r, graph) == outShape(p0, rank: 4, nhwc: false) }
    return true
}

/// An NCHW copy of channel-blocked `t` (channels a multiple of 16), from the run's pool.
func unblocked(_ t: RTensor, _ ctx: RunContext) throws -> RTensor {
    let y = try ctx.alloc(t.shape, .float32)
    mlk_nchw_from_blocked(Int32(t.shape[0]), Int32(t.shape[1]), Int32(t.shape.dropFirst(2).reduce(1, *)), t.floats, y.floats)
    return y
}

/// A conv's [outC][kk] weights packed once at plan time into the 32-channel panels the NHWC GEMM
/// and the NCHW channels-as-vectors path read (mlk_weight_panels_pack), with the weights' own shape
/// (a run that takes another path unpacks them).
struct PrepackedWeights {
    let panels: RTensor
    let shape: [Int]

    /// Packs `w`; the kernel then no longer reads input slot 1 (the planner lets the stored weight
    /// go) and the panels count as its weights.
    init(_ w: RTensor, _ pc: PlanContext) {
        let outC = Int32(w.shape[0]), kk = Int32(w.count / max(w.shape[0], 1))
        panels = RTensor.allocate([Int(mlk_weight_panel_floats(outC, kk))], .float32)
        mlk_weight_panels_pack(outC, kk, w.floats, panels.floats)
        shape = w.shape
        pc.packing.unreadSlots = [1]
        pc.packing.bytes = panels.byteCount
    }

    /// The weights as they were, in a new tensor.
    func unpacked() -> RTensor {
        let w = RTensor.allocate(shape, .float32)
        mlk_weight_panels_unpack(Int32(shape[0]), Int32(w.count / max(shape[0], 1)), panels.floats, w.floats)
        return w
    }
}

/// A pointwise convolution's mostly-zero weights as compressed rows, for the sparse kernel:
/// the work follows the nonzeros (pruned models), where the GEMM does every product.
struct SparseWeights {
    let rows: SparseRows
    let shape: [Int]

    /// The rows of `w` (outputs x inputs) when `p` with that many nonzeros takes the sparse kernel.
    init?(_ w: RTensor, _ p: mlk_conv) {
        guard w.dtype == .float32, w.shape.count == 4, w.shape[2] == 1, w.shape[3] == 1 else { return nil }
        var q = p
        guard mlk_conv_sparse_ok(&q, mlk_count_nonzero(w.floats, w.count)) != 0 else { return nil }
        rows = SparseRows(w.floats, rows: w.shape[0], cols: w.shape[1])
        shape = w.shape
    }

    var values: RTensor { rows.values }
    var bytes: Int { rows.bytes }

    /// The dense weights again (a run whose input shape leaves the sparse kernel's geometry).
    func dense() -> RTensor {
        let w = RTensor.allocate(shape, .float32)
        rows.fill(w.floats)
        return w
    }
}

/// Whether the NCHW convolution runs on the sparse kernel for its declared input (the layout
/// planner keeps its activations in NCHW then).
func convRunsSparse(_ n: Node, _ graph: Graph, weight: RTensor?) -> Bool {
    guard n.op == .conv, n.dataLayout != .nhwc, (n.kernelLayout ?? .oihw) == .oihw, let w = weight, w.dtype == .float32, w.shape.count == 4,
          w.shape[2] == 1, w.shape[3] == 1, let xs = declaredShape(n.inputs.first ?? nil, graph), xs.count == 4,
          var p = try? convGeometry(WindowAttributes(n), x: xs, kernel: [1, 1], outChannels: w.shape[0], nhwc: false) else { return false }
    return mlk_conv_sparse_ok(&p, mlk_count_nonzero(w.floats, w.count)) != 0
}

let convKernels: [(String, KernelFactory)] = {
    var k: [(String, KernelFactory)] = []
    k.append(("Conv", { pc in
        let n = pc.node
        let nhwc = n.dataLayout == .nhwc
        let layout = n.kernelLayout ?? .oihw
        guard [.oihw, .ohwi, .ihwo1].contains(layout) else { throw pc.fail("kernel layout \(layout.rawValue)") }
        let fused = pc.activation
        // The one activation the kernels can apply themselves (the planner's fusion or the node's own).
        let kernelActivation: (kind: Int32, lo: Float, hi: Float)? = {
            switch (fused, n.fusedActivation) {
            case (nil, nil): return (0, 0, 0)
            case (let f?, nil): return f
            case (nil, let a?): return activationKind(a).map { ($0, 0, 0) }
            default: return nil
            }
        }()
        let window = WindowAttributes(n)
        // NHWC fp32 weights the AVX-512 GEMM reads as 32-channel panels: packed here, once,
        // instead of on every run (in the Keras MobileNetV2 the per-run copies took a fifth of its
        // time). The kernel then reads the panels only, and the file's pages of the weights are
        // given back (for the portable path, should a run not take the AVX-512 one, the panels
        // are unpacked again). Only weights that lie in the mapped file, or that the planner made
        // from constants for this node alone (mediapipe's fp16 weights widened, folded just before
        // this node is planned): the planner frees that copy, so the panels take its place.
        // Unpacked, mediapipe's convolutions copied their weights into panels on every run
        // (face_landmark 1 thread 2.00 -> 1.90 ms, hand_landmark_full 8.85 -> 7.60).
        // (The NCHW channels-as-vectors path packs its weights below, once the geometry is known;
        // a conv is one or the other.)
        var prepacked: PrepackedWeights? = nil
        let storedWeight = n.inputs.count > 1 ? n.inputs[1].flatMap { pc.graph.values[$0].constant } : nil
        // Geometry and output shape for an input and weight shape (checked).
        func geometry(_ xs: [Int], _ ws: [Int]) throws -> (mlk_conv, [Int]) {
            guard xs.count == ws.count else { throw RuntimeError.invalid(node: n.label, reason: "input rank \(xs.count), weight rank \(ws.count)") }
            let kernel: [Int], outC: Int
            switch layout {
            case .oihw, .iohw: kernel = Array(ws.dropFirst(2)); outC = ws[0]
            case .ohwi: kernel = Array(ws.dropFirst().dropLast()); outC = ws[0]
            case .ihwo1: kernel = Array(ws.dropFirst().dropLast()); outC = ws[ws.count - 1]
            }
            var p = try convGeometry(window, x: xs, kernel: kernel, outChannels: outC, nhwc: nhwc)
            if layout == .ihwo1 { p.groups = p.in_c }
            guard p.groups > 0, p.in_c % p.groups == 0, p.out_c % p.groups == 0 else {
                throw RuntimeError.invalid(node: n.label, reason: "channels \(p.in_c)->\(p.out_c) do not split into \(p.groups) groups")
            }
            return (nhwc ? p : columnAsRow(p), outShape(p, rank: xs.count, nhwc: nhwc))
        }
        // Worked out here for the input shape the graph declares (a batch left open taken as 1),
        // when the rest of it is static: a run with that shape skips the arithmetic and its arrays
        // (about a microsecond per convolution), and the weights can be packed for its path.
        let plannedX = declaredShape(n.inputs.first ?? nil, pc.graph)
        let plannedW = pc.constants.count > 1 ? pc.constants[1]?.shape : nil
        let planned: (x: [Int], w: [Int], p: mlk_conv, y: [Int])? = {
            guard let xs = plannedX, let ws = plannedW, let (p, y) = try? geometry(xs, ws) else { return nil }
            return (xs, ws, p, y)
        }()
        // (NHWC: not where the planned geometry takes a path that reads the weights as they are,
        // such as the matrix-vector product of a one-pixel output.)
        let readsWeightsAsStored = planned.map { var p = $0.p; return mlk_conv_nhwc_packs(&p) == 0 } ?? false
        if nhwc, layout == .ohwi, window.group == 1, Executor.avx512Available, !readsWeightsAsStored,
           (storedWeight?.isFileBacked == true || pc.madeAtPlanTime.contains(1)),
           let w = pc.constants.count > 1 ? pc.constants[1] : nil, w.dtype == .float32, w.shape.count == 4 || w.shape.count == 3,
           w.shape[0] >= 16 {
            prepacked = PrepackedWeights(w, pc)
        }
        // NCHW fp32 weights of convolutions the AVX-512 channels-as-vectors path runs (3x3 on
        // planes of up to 12544 outputs: all of ResNet50's): packed here into the panels that path
        // reads, instead of transposed block by block on every call (which had kept 7x7 planes
        // off it). As for NHWC, only for weights in the mapped file, whose pages then go back (the
        // panels take their place), or made at plan time for this node.
        // Convolutions the planner put on channel-blocked activations (input, output or both) pack
        // theirs too: that path reads panels only (1x1 convolutions as well).
        let blockedIn = pc.blockedInput, blockedOut = pc.blockedOutput
        // Pruned pointwise weights (at most half nonzero): compressed rows for the sparse kernel,
        // which then reads them only.
        var sparse: SparseWeights? = nil
        if !nhwc, layout == .oihw, !blockedIn, !blockedOut, let planned, let w = pc.constants.count > 1 ? pc.constants[1] : nil,
           let s = SparseWeights(w, planned.p) {
            sparse = s
            pc.packing.unreadSlots = [1]
            pc.packing.bytes = s.bytes
        }
        if sparse == nil, !nhwc, layout == .oihw, Executor.avx512Available, (storedWeight?.isFileBacked == true || pc.madeAtPlanTime.contains(1)),
           var p = planned?.p, mlk_conv_nchw_cot_packs(&p) != 0 || blockedIn || blockedOut,
           let w = pc.constants.count > 1 ? pc.constants[1] : nil, w.dtype == .float32, w.shape.count == 4, w.shape[0] > 0 {
            prepacked = PrepackedWeights(w, pc)
        }
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n)
            let onSparse = sparse != nil && x.shape == planned?.x
                && ((ins.count > 3 ? ins[3] : nil).map { $0.dtype == .float32 && $0.shape == planned?.y } ?? true)
            let w: RTensor
            if let stored = prepacked {
                // For its shape only: the panels are not in the stored order (unpacked below if need be).
                w = RTensor(shape: stored.shape, dtype: .float32, buffer: stored.panels.buffer)
            } else if let sparse {
                // For its shape only on the sparse kernel; the dense weights again off it.
                w = onSparse ? RTensor(shape: sparse.shape, dtype: .float32, buffer: sparse.values.buffer) : sparse.dense()
            } else {
                w = try requireFloat(ins.count > 1 ? ins[1] : nil, node: n)
            }
            let bias = ins.count > 2 ? ins[2] : nil
            let (p0, yShape) = try planned.flatMap { $0.x == x.shape && $0.w == w.shape ? ($0.p, $0.y) : nil }
                ?? geometry(x.shape, w.shape)
            var p = p0
            let outC = Int(p.out_c)
            // A residual the planner fused in (Conv -> Add; NCHW): when no later step reads it, the
            // output is written over it. Its lines are read anyway; storing the sums there spares
            // the cache misses of a second, cold output buffer. Each element's residual is read
            // before its sum is stored, so the bits equal those of a separate output.
            let residual = ins.count > 3 ? ins[3] : nil
            let depthwise = p.groups > 1 && p.groups == p.in_c
            let y: RTensor
            if let r = residual, r.dtype == .float32, r.shape == yShape, !nhwc, !depthwise,
               blockedIn || blockedOut || mlk_conv_nchw_residual_in_place_ok(&p) != 0, let own = ctx.reuse(r) {
                y = own
            } else {
                y = try ctx.alloc(yShape, .float32)
            }
            let b = bias.map { $0.floats }
            // A folded BatchNorm's per-channel scale (planned for standard NCHW convolutions only).
            let scale = ins.count > 4 ? ins[4] : nil
            if let scale, depthwise || nhwc || layout != .oihw || scale.count != outC {
                throw RuntimeError.invalid(node: n.label, reason: "a channel scale for a convolution that cannot apply it")
            }
            // The kernels apply the bias (and residual) and this activation as they store results.
            let act = kernelActivation ?? (0, 0, 0)
            if let sparse, onSparse {
                let scratch = try ctx.scratchFloats(Int(mlk_conv_sparse_scratch(&p)))
                sparse.rows.columns.withUnsafeBufferPointer { c in
                    sparse.rows.starts.withUnsafeBufferPointer { st in
                        mlk_conv_sparse(&p, x.floats, sparse.values.floats, c.baseAddress, st.baseAddress, b, scale?.floats, residual?.floats,
                                        y.floats, scratch, act.kind, act.lo, act.hi)
                    }
                }
            } else if depthwise && nhwc {
                mlk_depthwise_nhwc(&p, x.floats, w.floats, b, y.floats, act.kind, act.lo, act.hi)
            } else if depthwise && layout == .oihw {
                mlk_depthwise_nchw(&p, x.floats, w.floats, b, y.floats, act.kind, act.lo, act.hi)
            } else if nhwc {
                let scratch = try ctx.scratchFloats(Int(mlk_conv_nhwc_scratch(&p)))
                if let r = residual, !(r.dtype == .float32 && r.shape == y.shape) {
                    // Not exactly the output's shape: the Add runs on its own, with broadcasting.
                    let weights = prepacked?.unpacked() ?? w
                    mlk_conv_nhwc(&p, x.floats, weights.floats, b, nil, y.floats, scratch, 0, 0, 0)
                    let sum = try binaryFloat(Int32(MLK_ADD), y, try requireFloat(r, node: n), n, ctx)
                    mlk_activate(sum.floats, sum.count, act.kind, act.lo, act.hi)
                    return [sum]
                }
                // The residual (a fused Add) is added as the GEMM stores its sums, before the activation.
                if let prepacked, mlk_conv_nhwc_packs(&p) != 0 {
                    mlk_conv_nhwc_packed(&p, x.floats, prepacked.panels.floats, b, residual?.floats, y.floats, scratch, act.kind, act.lo, act.hi)
                } else {
                    let weights = prepacked?.unpacked() ?? w
                    mlk_conv_nhwc(&p, x.floats, weights.floats, b, residual?.floats, y.floats, scratch, act.kind, act.lo, act.hi)
                }
            } else if blockedIn || blockedOut {
                // The planner checked that a residual has the output's shape (and layout).
                guard residual.map({ $0.dtype == .float32 && $0.shape == y.shape }) ?? true else {
                    throw RuntimeError.invalid(node: n.label, reason: "a residual of shape \(residual!.shape) for an output of \(y.shape)")
                }
                if let prepacked, mlk_conv_blocked_ok(&p) != 0 {
                    let scratch = try ctx.scratchFloats(Int(mlk_conv_blocked_scratch(&p)))
                    mlk_conv_blocked(&p, x.floats, blockedIn ? 1 : 0, prepacked.panels.floats, b, scale?.floats, residual?.floats,
                                     y.floats, blockedOut ? 1 : 0, scratch, act.kind, act.lo, act.hi)
                } else {
                    // Off that path at run time (another input shape, or the portable kernels): the
                    // NCHW kernels on NCHW copies, the output blocked again.
                    let xn = blockedIn ? try unblocked(x, ctx) : x
                    let rn = blockedOut ? try residual.map { try unblocked($0, ctx) } : residual
                    let yn = blockedOut ? try ctx.alloc(y.shape, .float32) : y
                    let scratch = try ctx.scratchFloats(Int(mlk_conv_nchw_scratch(&p)))
                    let weights = prepacked?.unpacked() ?? w
                    mlk_conv_nchw(&p, xn.floats, weights.floats, b, scale?.floats, rn?.floats, yn.floats, scratch, act.kind, act.lo, act.hi)
                    if blockedOut {
                        mlk_blocked_from_nchw(p.batch, p.out_c, p.out_h * p.out_w, yn.floats, y.floats)
                        ctx.release(yn.buffer)
                    }
                    if blockedIn { ctx.release(xn.buffer) }
                    if blockedOut, let rn { ctx.release(rn.buffer) }
                }
            } else {
                let fitting = residual.map { $0.dtype == .float32 && $0.shape == y.shape } ?? true
                let onPanels = prepacked != nil && fitting && mlk_conv_nchw_cot_packs(&p) != 0
                let scratch = try ctx.scratchFloats(Int(onPanels ? mlk_conv_nchw_packed_scratch(&p) : mlk_conv_nchw_scratch(&p)))
                // Off the panels' path (another input shape, or the portable kernels): the weights back.
                let weights = onPanels ? w : prepacked?.unpacked() ?? w
                // The residual is added before the activation.
                if let r = residual, !fitting {
                    // Not exactly the output's shape: the Add runs on its own, with broadcasting.
                    mlk_conv_nchw(&p, x.floats, weights.floats, b, scale?.floats, nil, y.floats, scratch, 0, 0, 0)
                    let sum = try binaryFloat(Int32(MLK_ADD), y, try requireFloat(r, node: n), n, ctx)
                    mlk_activate(sum.floats, sum.count, act.kind, act.lo, act.hi)
                    return [sum]
                }
                if let prepacked, onPanels {
                    mlk_conv_nchw_packed(&p, x.floats, prepacked.panels.floats, b, scale?.floats, residual?.floats, y.floats, scratch,
                                         act.kind, act.lo, act.hi)
                } else {
                    mlk_conv_nchw(&p, x.floats, weights.floats, b, scale?.floats, residual?.floats, y.floats, scratch, act.kind, act.lo, act.hi)
                }
            }
            if kernelActivation == nil {
                // Two activations (the planner's and the node's own): applied in turn, afterwards.
                applyFused(n, y)
                if let fused { mlk_activate(y.floats, y.count, fused.kind, fused.lo, fused.hi) }
            }
            return [y]
        }
    }))
    for (name, kind) in [("MaxPool", Int32(0)), ("AveragePool", Int32(1)), ("LpPool", Int32(2))] {
        k.append((name, { pc in
            let n = pc.node
            let nhwc = n.dataLayout == .nhwc
            guard let kernel = n.ints("kernel_shape") else { throw pc.fail("no kernel_shape") }
            if name == "MaxPool", n.outputs.count > 1 { throw pc.fail("the Indices output") }
            if name == "MaxPool", (n.int("storage_order") ?? 0) != 0 { throw pc.fail("storage_order 1") }
            if name == "LpPool", (n.int("p") ?? 2) != 2 { throw pc.fail("p other than 2") }
            if name != "MaxPool", let d = n.ints("dilations"), d.contains(where: { $0 != 1 }) { throw pc.fail("dilations") }
            let includePad = Int32(n.int("count_include_pad") ?? 0)
            let window = WindowAttributes(n)
            let blockedOut = pc.blockedOutput && name == "MaxPool"
            return { ins, ctx in
                let x = try requireFloat(ins.first ?? nil, node: n)
                var p = try convGeometry(window, x: x.shape, kernel: kernel, outChannels: nhwc ? x.shape.last! : x.shape[1], nhwc: nhwc)
                p.groups = 1
                let y = try ctx.alloc(outShape(p, rank: x.shape.count, nhwc: nhwc), .float32)
                if blockedOut {
                    // For convolutions reading channel-blocked input (the planner checked the channels).
                    guard p.in_c % 16 == 0, x.shape.count == 4 else { throw RuntimeError.invalid(node: n.label, reason: "blocked output of \(p.in_c) channels") }
                    mlk_maxpool_blocked(&p, x.floats, y.floats, try ctx.scratchFloats(16 * Int(p.out_h * p.out_w)))
                    return [y]
                }
                mlk_pool(kind, nhwc ? 1 : 0, includePad, &p, x.floats, y.floats)
                applyFused(n, y)
                return [y]
            }
        }))
    }
    for name in ["GlobalAveragePool", "GlobalMaxPool"] {
        k.append((name, { pc in
            let n = pc.node
            let blocked = pc.blockedInput && name == "GlobalAveragePool"
            return { ins, ctx in
                let x = try requireFloat(ins.first ?? nil, node: n)
                guard x.shape.count >= 3 else { throw RuntimeError.invalid(node: n.label, reason: "rank \(x.shape.count)") }
                let c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
                let y = try ctx.alloc([x.shape[0], c] + Array(repeating: 1, count: x.shape.count - 2), .float32)
                if name == "GlobalAveragePool" {
                    // Channel-blocked input (the planner's, from a convolution) or NCHW.
                    mlk_global_mean(Int32(x.shape[0] * c), Int32(inner), blocked ? 1 : 0, x.floats, y.floats)
                    return [y]
                }
                mlk_global_max(Int32(x.shape[0] * c), Int32(inner), x.floats, y.floats)
                return [y]
            }
        }))
    }
    return k
}()

/// Transposes NHWC <-> NCHW (4-D), or OHWI weights -> IOHW.
func permute4(_ x: RTensor, _ perm: [Int], _ ctx: RunContext?) throws -> RTensor {
    let shape = perm.map { x.shape[$0] }
    let y = try ctx?.alloc(shape, x.dtype) ?? RTensor.allocate(shape, x.dtype)
    x.shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
        perm.map { Int32($0) }.withUnsafeBufferPointer { p in mlk_transpose(x.raw, y.raw, 4, sh.baseAddress, p.baseAddress, Int32(x.elementSize)) }
    }
    return y
}

let convTransposeKernels: [(String, KernelFactory)] = [
    ("ConvTranspose", { pc in
        let n = pc.node
        let nhwc = n.dataLayout == .nhwc
        let layout = n.kernelLayout ?? .iohw
        guard layout == .iohw || layout == .ohwi else { throw pc.fail("kernel layout \(layout.rawValue)") }
        // TFLite keeps OHWI weights: turn them into IOHW once, at plan time.
        var planWeights: RTensor? = nil
        if layout == .ohwi, let w = pc.constants.count > 1 ? pc.constants[1] : nil, w.shape.count == 4 {
            planWeights = try permute4(w, [3, 0, 1, 2], nil)
        }
        let autoPad = n.string("auto_pad") ?? "NOTSET"
        return { ins, ctx in
            var x = try requireFloat(ins.first ?? nil, node: n)
            guard let w = planWeights ?? (ins.count > 1 ? ins[1] : nil), x.shape.count == 4, w.shape.count == 4 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "2-D transposed convolution only")
            }
            if nhwc { x = try permute4(x, [0, 3, 1, 2], ctx) }
            let group = n.int("group") ?? 1
            let (cin, h, wd) = (x.shape[1], x.shape[2], x.shape[3])
            guard w.shape[0] == cin, cin % group == 0 else { throw RuntimeError.invalid(node: n.label, reason: "weights \(w.shape) for \(cin) input channels") }
            let cout = w.shape[1] * group, kh = w.shape[2], kw = w.shape[3]
            let strides = n.ints("strides") ?? [1, 1], dil = n.ints("dilations") ?? [1, 1]
            let outPad = n.ints("output_padding") ?? [0, 0]
            var pads = n.ints("pads") ?? [0, 0, 0, 0]
            let limit = 1 << 24
            guard strides.count == 2, dil.count == 2, outPad.count == 2, pads.count == 4,
                  (strides + dil).allSatisfy({ $0 >= 1 && $0 < limit }), (pads + outPad).allSatisfy({ $0 >= 0 && $0 < limit }),
                  [cout, kh, kw, h, wd].allSatisfy({ $0 >= 1 && $0 < limit }) else {
                throw RuntimeError.invalid(node: n.label, reason: "transposed-convolution attributes out of range")
            }
            let full = [strides[0] * (h - 1) + outPad[0] + (kh - 1) * dil[0] + 1, strides[1] * (wd - 1) + outPad[1] + (kw - 1) * dil[1] + 1]
            var out = [full[0] - pads[0] - pads[2], full[1] - pads[1] - pads[3]]
            var target: [Int]? = n.ints("output_shape")
            if nhwc, let t = target, t.count == 4 { target = [t[1], t[2]] }
            if target == nil, autoPad.hasPrefix("SAME") { target = [h * strides[0], wd * strides[1]] }
            if let t = target, t.count == 2 {
                for i in 0..<2 {
                    let total = full[i] - t[i]
                    // Floor division, as the ONNX reference does (total can be negative).
                    let small = Int((Double(total) / 2).rounded(.down))
                    // SAME_UPPER (and TFLite SAME) put the larger half at the end.
                    let begin = autoPad == "SAME_UPPER" || nhwc ? small : total - small
                    pads[i] = begin; pads[i + 2] = total - begin
                }
                out = t
            }
            var p = mlk_conv()
            p.batch = Int32(x.shape[0]); p.in_c = Int32(cin); p.in_h = Int32(h); p.in_w = Int32(wd)
            p.out_c = Int32(cout); p.out_h = Int32(out[0]); p.out_w = Int32(out[1])
            p.k_h = Int32(kh); p.k_w = Int32(kw); p.stride_h = Int32(strides[0]); p.stride_w = Int32(strides[1])
            p.dil_h = Int32(dil[0]); p.dil_w = Int32(dil[1]); p.pad_top = Int32(pads[0]); p.pad_left = Int32(pads[1])
            p.groups = Int32(group)
            guard out[0] > 0, out[1] > 0 else { throw RuntimeError.invalid(node: n.label, reason: "output size \(out)") }
            var y = try ctx.alloc([x.shape[0], cout, out[0], out[1]], .float32)
            let scratch = try ctx.scratchFloats((cout / group) * kh * kw * h * wd)
            mlk_conv_transpose_nchw(&p, x.floats, w.floats, ins.count > 2 ? ins[2]?.floats : nil, y.floats, scratch)
            if nhwc { y = try permute4(y, [0, 2, 3, 1], ctx) }
            applyFused(n, y)
            return [y]
        }
    }),
]
