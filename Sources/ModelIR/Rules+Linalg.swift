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
