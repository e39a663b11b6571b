// Shape rules of matrix products.

/// numpy.matmul shapes, with 1-D operands promoted and batch dims broadcast.
func matmulShape(_ a: [Dim], _ b: [Dim]) throws -> [Dim] {
    guard !a.isEmpty, !b.isEmpty else { throw ShapeRuleError("matmul of a scalar") }
    let aa = a.count == 1 ? [.known(1)] + a : a
    let bb = b.count == 1 ? b + [.known(1)] : b
    if let k1 = aa.last?.value, let k2 = bb[bb.count - 2].value, k1 != k2 {
        throw ShapeRuleError("inner dimensions differ: \(k1) and \(k2)")
    }
    let batch = try broadcast([Array(aa.dropLast(2)), Array(bb.dropLast(2))])
    var out = batch
    if a.count != 1 { out.append(aa[aa.count - 2]) }
    if b.count != 1 { out.append(bb[bb.count - 1]) }
    return out
}

let linalgRules: [(String, ShapeRule)] = [
    ("MatMul", { ctx in
        guard let a = ctx.type(0), let ad = a.shape.dims, let bd = ctx.dims(1) else { return [nil] }
        return [.of(a.dtype, try matmulShape(ad, bd))]
    }),
    ("MatMulInteger", { ctx in
        guard let ad = ctx.dims(0), let bd = ctx.dims(1) else { return [nil] }
        return [.of(.int32, try matmulShape(ad, bd))]
    }),
    ("QLinearMatMul", { ctx in
        guard let ad = ctx.dims(0), let bd = ctx.dims(3) else { return [nil] }
        return [.of(ctx.type(7)?.dtype ?? .uint8, try matmulShape(ad, bd))]
    }),
    ("BatchMatMul", { ctx in
        guard let a = ctx.type(0), var ad = a.shape.dims, var bd = ctx.dims(1), ad.count >= 2, bd.count >= 2 else { return [nil] }
        if (ctx.int("adj_x") ?? 0) != 0 { ad.swapAt(ad.count - 1, ad.count - 2) }
        if (ctx.int("adj_y") ?? 0) != 0 { bd.swapAt(bd.count - 1, bd.count - 2) }
        return [.of(a.dtype, try matmulShape(ad, bd))]
    }),
    ("Gemm", { ctx in
        guard let a = ctx.type(0), let ad = a.shape.dims, let bd = ctx.dims(1), ad.count == 2, bd.count == 2 else { return [nil] }
        let m = (ctx.int("transA") ?? 0) != 0 ? ad[1] : ad[0]
        let n = (ctx.int("transB") ?? 0) != 0 ? bd[0] : bd[1]
        return [.of(a.dtype, [m, n])]
    }),
    // onnxruntime's QGemm: A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale,
    // y_zero_point; 8-bit output with y_zero_point, float without.
    ("QGemm", { ctx in
        guard let ad = ctx.dims(0), let bd = ctx.dims(3), ad.count == 2, bd.count == 2 else { return [nil] }
        let m = (ctx.int("transA") ?? 0) != 0 ? ad[1] : ad[0]
        let n = (ctx.int("transB") ?? 0) != 0 ? bd[0] : bd[1]
        return [.of(ctx.type(8)?.dtype ?? .float32, [m, n])]
    }),
    // TFLite FULLY_CONNECTED: weights [out, in]; the input is read as
    // [elements / in, in] unless keep_num_dims keeps its leading dims.
    ("FullyConnected", { ctx in
        guard let a = ctx.type(0), let ad = a.shape.dims, let wd = ctx.dims(1), wd.count == 2 else { return [nil] }
        let units = wd[0]
        if (ctx.int("keep_num_dims") ?? 0) != 0 { return [.of(a.dtype, Array(ad.dropLast()) + [units])] }
        guard let inner = wd[1].value, inner > 0, let total = Shape(ad).elementCount else {
            return [.of(a.dtype, [ad.count == 2 ? ad[0] : .unknown, units])]
        }
        return [.of(a.dtype, [.known(total / inner), units])]
    }),
]

// MARK: - costs (see CostModel.convention)

let linalgCosts: [(String, CostRule)] = {
    func withBias(_ macs: SymCount, _ ctx: CostContext, biasInput: Int) -> (SymCount, SymCount) {
        (macs, macs * 2 + (ctx.hasInput(biasInput) ? ctx.outElements() : .zero))
    }
    let matmul: CostRule = { ctx in
        // Output elements x the shared dimension K (the last of A; 1-D A is [K]).
        guard let a = ctx.dims(0), let k = a.last else { return (.zero, .zero) }
        let macs = ctx.outElements() * SymCount(product: [k])
        return (macs, macs * 2)
    }
    let quantMatmul: CostRule = { ctx in
        guard let a = ctx.dims(0), let k = a.last else { return (.zero, .zero) }
        let macs = ctx.outElements() * SymCount(product: [k])
        return (macs, macs * 2)
    }
    return [
        ("MatMul", matmul),
        ("MatMulInteger", quantMatmul),
        ("QLinearMatMul", quantMatmul),
        ("QGemm", { ctx in
            guard let a = ctx.dims(0), a.count == 2 else { return (.zero, .zero) }
            let k = (ctx.node.int("transA") ?? 0) != 0 ? a[0] : a[1]
            let macs = ctx.outElements() * SymCount(product: [k])
            return (macs, macs * 2)
        }),
        ("BatchMatMul", { ctx in
            guard let a = ctx.dims(0), a.count >= 2 else { return (.zero, .zero) }
            let k = (ctx.node.int("adj_x") ?? 0) != 0 ? a[a.count - 2] : a[a.count - 1]
            let macs = ctx.outElements() * SymCount(product: [k])
            return (macs, macs * 2)
        }),
        ("Gemm", { ctx in
            guard let a = ctx.dims(0), a.count == 2 else { return (.zero, .zero) }
            let k = (ctx.node.int("transA") ?? 0) != 0 ? a[0] : a[1]
            return withBias(ctx.outElements() * SymCount(product: [k]), ctx, biasInput: 2)
        }),
        ("FullyConnected", { ctx in
            guard let w = ctx.dims(1), w.count == 2 else { return (.zero, .zero) }
            return withBias(ctx.outElements() * SymCount(product: [w[1]]), ctx, biasInput: 2)
        }),
        // Recurrent layers: gates x hidden x (input + hidden) per step, per direction, over the sequence.
        ("LSTM", { ctx in recurrent(ctx, gates: 4) }),
        ("GRU", { ctx in recurrent(ctx, gates: 3) }),
        ("RNN", { ctx in recurrent(ctx, gates: 1) }),
    ]
}()

/// X is [seq, batch, input] (layout 0); W is [dirs, gates*hidden, input], R is [dirs, gates*hidden, hidden].
private func recurrent(_ ctx: CostContext, gates: Int) -> (SymCount, SymCount) {
    guard let x = ctx.dims(0), x.count == 3, let w = ctx.dims(1), w.count == 3, let r = ctx.dims(2), r.count == 3 else {
        return (.zero, .zero)
    }
    let batchFirst = (ctx.node.int("layout") ?? 0) != 0
    let steps = SymCount(product: [batchFirst ? x[0] : x[0], x[1]])   // seq x batch (either order)
    let perStep = SymCount(product: [w[0], w[1], w[2]]) + SymCount(product: [r[0], r[1], r[2]])
    let macs = steps * perStep
    // Gate nonlinearities and the cell update: a few FLOPs per gate element, counted as 1 each.
    let elementwise = steps * SymCount(product: [w[0], w[1]])
    return (macs, macs * 2 + elementwise)
}
