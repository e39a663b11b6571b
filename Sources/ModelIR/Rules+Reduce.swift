// Shape rules of reductions and index-producing reductions.

let reductions = [
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare", "ReduceAny", "ReduceAll",
]

private func reduce(_ dims: [Dim], axes: [Int]?, keep: Bool, noopWhenEmpty: Bool) throws -> [Dim] {
    let r = dims.count
    var set = Set<Int>()
    if let axes, !axes.isEmpty {
        for a in axes { set.insert(try normalizeAxis(a, rank: r)) }
    } else {
        if noopWhenEmpty { return dims }
        set = Set(0..<r)
    }
    var out: [Dim] = []
    for (i, d) in dims.enumerated() {
        if set.contains(i) { if keep { out.append(.known(1)) } } else { out.append(d) }
    }
    return out
}

let reduceRules: [(String, ShapeRule)] = {
    var rules: [(String, ShapeRule)] = []
    for name in reductions {
        rules.append((name, { ctx in
            guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
            let keep = (ctx.int("keepdims") ?? 1) != 0
            var axes = ctx.ints("axes")
            if axes == nil, ctx.hasInput(1) {
                guard let a = ctx.ints(1) else { return [.of(x.dtype, keep ? d.map { _ in .unknown } : nil)] }
                axes = a
            }
            return [.of(x.dtype, try reduce(d, axes: axes, keep: keep, noopWhenEmpty: (ctx.int("noop_with_empty_axes") ?? 0) != 0))]
        }))
    }
    for name in ["ArgMax", "ArgMin"] {
        rules.append((name, { ctx in
            guard let d = ctx.dims(0) else { return [nil] }
            var axis = ctx.int("axis") ?? 0
            if ctx.hasInput(1) { guard let a = ctx.ints(1)?.first else { return [nil] }; axis = a }
            let keep = (ctx.int("keepdims") ?? 1) != 0
            let dt = DType(rawValue: ctx.node.string("output_dtype_name") ?? "") ?? .int64
            return [.of(dt, try reduce(d, axes: [axis], keep: keep, noopWhenEmpty: false))]
        }))
    }
    return rules
}()

// MARK: - costs (see CostModel.convention)

let reduceCosts: [(String, CostRule)] = (reductions + ["ArgMax", "ArgMin"]).map { name in
    (name, { ctx in (SymCount.zero, ctx.inElements()) })
}
