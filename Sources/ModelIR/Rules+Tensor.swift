// Shape rules of ops that move, cut, join or describe tensors rather than
// compute on elements. Several of them also compute the integer *contents*
// of their output (Shape, Gather of a shape, Concat, ...), which is how a
// symbolic batch size survives an exporter's Shape -> Gather -> Concat ->
// Reshape chain.

private func sliceRange(count n: Int, start: Int, end: Int, step: Int) -> [Int] {
    guard step != 0 else { return [] }
    func clamp(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v, lo), hi) }
    var s = start < 0 ? start + n : start
    var e = end < 0 ? end + n : end
    if step > 0 {
        s = clamp(s, 0, n); e = clamp(e, 0, n)
        return s < e ? Array(stride(from: s, to: e, by: step)) : []
    }
    s = clamp(s, -1, n - 1); e = clamp(e, -1, n - 1)
    return s > e ? Array(stride(from: s, to: e, by: step)) : []
}

private func sliceCount(_ n: Int, start: Int, end: Int, step: Int) -> Int {
    guard step != 0 else { return 0 }
    let s0 = start < 0 ? start + n : start
    let e0 = end < 0 ? end + n : end
    if step > 0 {
        let s = min(max(s0, 0), n), e = min(max(e0, 0), n)
        return e > s ? (e - s + step - 1) / step : 0
    }
    let s = min(max(s0, -1), n - 1), e = min(max(e0, -1), n - 1)
    return s > e ? (s - e + (-step) - 1) / (-step) : 0
}

let tensorRules: [(String, ShapeRule)] = [
    ("Constant", { ctx in
        // The importer attaches the tensor to the output value; its type is already set.
        guard let t = ctx.node.attributes["value"]?.tensor else { return [nil] }
        if t.shape.count <= 1, let ints = t.integers(limit: 64) { ctx.outputValues[0] = ints.map { .known($0) } }
        return [.of(t.dtype, t.shape.map { .known($0) })]
    }),
    ("Shape", { ctx in
        guard let d = ctx.dims(0) else { return [.of(.int64, [.unknown])] }
        let r = d.count
        var s = ctx.int("start") ?? 0, e = ctx.int("end") ?? r
        if s < 0 { s += r }; if e < 0 { e += r }
        s = min(max(s, 0), r); e = min(max(e, 0), r)
        let part = s < e ? Array(d[s..<e]) : []
        ctx.outputValues[0] = part
        return [.of(.int64, [.known(part.count)])]
    }),
    ("Size", { ctx in
        if let d = ctx.dims(0) { ctx.outputValues[0] = [dimProduct(d[...])] }
        return [.of(.int64, [])]
    }),
    ("Reshape", { ctx in
        guard let x = ctx.type(0) else { return [nil] }
        let target: [Dim]
        if let v = ctx.values(1) { target = v }
        else if let s = ctx.ints("shape") ?? ctx.ints("new_shape"), !ctx.hasInput(1) || ctx.type(1)?.shape.elementCount == 0 { target = s.map { .known($0) } }
        else if let n = ctx.dims(1)?.first?.value { return [.of(x.dtype, [Dim](repeating: .unknown, count: n))] }
        else { return [.of(x.dtype, nil)] }
        let allowZero = (ctx.int("allowzero") ?? 0) != 0
        var out: [Dim] = []
        var inferAt: Int?
        for (i, t) in target.enumerated() {
            switch t {
            case .known(0) where !allowZero:
                out.append(x.shape.dims.flatMap { i < $0.count ? $0[i] : nil } ?? .unknown)
            case .known(-1): inferAt = out.count; out.append(.unknown)
            default: out.append(t)
            }
        }
        if let k = inferAt, let total = x.shape.elementCount {
            var rest = 1
            for (i, d) in out.enumerated() where i != k {
                guard let v = d.value else { rest = 0; break }
                rest *= v
            }
            if rest > 0 { out[k] = .known(total / rest) }
        } else if let k = inferAt, let inDims = x.shape.dims {
            // Symbolic: one unknown factor that matches one input symbol.
            let inKnown = inDims.compactMap(\.value).reduce(1, *)
            let inSymbols = inDims.filter { $0.value == nil }
            let outKnown = out.enumerated().filter { $0.offset != k }.compactMap { $0.element.value }.reduce(1, *)
            let outSymbols = out.enumerated().filter { $0.offset != k && $0.element.value == nil }.map(\.element)
            if inSymbols.count == 1, outSymbols.isEmpty, outKnown > 0, inKnown % outKnown == 0, inKnown / outKnown == 1 {
                out[k] = inSymbols[0]
            } else if inSymbols.count == 1, outSymbols == inSymbols, outKnown > 0, inKnown % outKnown == 0 {
                out[k] = .known(inKnown / outKnown)
            }
        }
        return [.of(x.dtype, out)]
    }),
    ("Flatten", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        let axis = ctx.int("axis") ?? 1
        let a = axis < 0 ? axis + d.count : axis
        guard a >= 0, a <= d.count else { throw ShapeRuleError("axis \(axis) is out of range for rank \(d.count)") }
        return [.of(x.dtype, [dimProduct(d[..<a]), dimProduct(d[a...])])]
    }),
    ("Squeeze", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        var axes = ctx.ints("axes") ?? ctx.ints("squeeze_dims")
        if axes == nil, ctx.hasInput(1) { guard let a = ctx.ints(1) else { return [.of(x.dtype, nil)] }; axes = a }
        let set: Set<Int>
        if let axes, !axes.isEmpty {
            set = Set(try axes.map { try normalizeAxis($0, rank: d.count) })
        } else {
            guard d.allSatisfy({ $0.value != nil }) else { return [.of(x.dtype, nil)] }
            set = Set(d.indices.filter { d[$0] == .known(1) })
        }
        if let v = ctx.values(0) { ctx.outputValues[0] = v }
        return [.of(x.dtype, d.enumerated().filter { !set.contains($0.offset) }.map(\.element))]
    }),
    ("Unsqueeze", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        var axes = ctx.ints("axes")
        if axes == nil { guard let a = ctx.ints(1) else { return [.of(x.dtype, nil)] }; axes = a }
        let rank = d.count + axes!.count
        let set = Set(try axes!.map { try normalizeAxis($0, rank: rank) })
        var out: [Dim] = []
        var it = d.makeIterator()
        for i in 0..<rank { out.append(set.contains(i) ? .known(1) : (it.next() ?? .unknown)) }
        if let v = ctx.values(0) { ctx.outputValues[0] = v }
        return [.of(x.dtype, out)]
    }),
    ("ExpandDims", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims, let a = ctx.ints(1)?.first else { return [nil] }
        let axis = try normalizeAxis(a, rank: d.count + 1)
        var out = d
        out.insert(.known(1), at: axis)
        return [.of(x.dtype, out)]
    }),
    ("Transpose", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        let perm = ctx.ints("perm") ?? ctx.ints(1) ?? Array((0..<d.count).reversed())
        guard perm.count == d.count, perm.allSatisfy({ $0 >= 0 && $0 < d.count }) else {
            throw ShapeRuleError("perm \(perm) does not fit rank \(d.count)")
        }
        return [.of(x.dtype, perm.map { d[$0] })]
    }),
    ("Concat", { ctx in
        let types = ctx.inputTypes.compactMap { $0 }
        guard let first = types.first, let d0 = first.shape.dims, types.count == ctx.node.inputs.compactMap({ $0 }).count else { return [nil] }
        let axis = try normalizeAxis(ctx.int("axis") ?? 0, rank: d0.count)
        var out = d0
        var total: Int? = 0
        for t in types {
            guard let d = t.shape.dims, d.count == d0.count else { return [.of(first.dtype, nil)] }
            if let v = d[axis].value, let s = total { total = s + v } else { total = nil }
            for i in d.indices where i != axis {
                if out[i].value == nil, d[i].value != nil { out[i] = d[i] }
            }
        }
        out[axis] = total.map { .known($0) } ?? .unknown
        // Contents: concatenating 1-D integer vectors (shape arithmetic).
        var joined: [Dim] = []
        var allKnown = d0.count == 1
        for i in ctx.node.inputs.indices { if let v = ctx.values(i) { joined += v } else { allKnown = false } }
        if allKnown { ctx.outputValues[0] = joined }
        return [.of(first.dtype, out)]
    }),
    // onnxruntime's QLinearConcat: y_scale, y_zero_point, then (x, x_scale, x_zero_point) per input.
    ("QLinearConcat", { ctx in
        let slots = Array(stride(from: 2, to: ctx.node.inputs.count, by: 3))
        guard let first = slots.first.flatMap({ ctx.type($0) }), let d0 = first.shape.dims else { return [nil] }
        let axis = try normalizeAxis(ctx.int("axis") ?? 0, rank: d0.count)
        var out = d0
        var total: Int? = 0
        for i in slots {
            guard let d = ctx.dims(i), d.count == d0.count else { return [.of(first.dtype, nil)] }
            if let v = d[axis].value, let s = total { total = s + v } else { total = nil }
        }
        out[axis] = total.map { .known($0) } ?? .unknown
        return [.of(first.dtype, out)]
    }),
    // TFLite PACK: N tensors of one shape stacked along a new axis; UNPACK: the reverse.
    ("Pack", { ctx in
        let types = ctx.inputTypes.compactMap { $0 }
        guard let first = types.first, let d0 = first.shape.dims, types.count == ctx.node.inputs.compactMap({ $0 }).count else { return [nil] }
        let axis = try normalizeAxis(ctx.int("axis") ?? 0, rank: d0.count + 1)
        var out = d0
        out.insert(.known(types.count), at: axis)
        // Contents: scalars packed into a shape vector (shape arithmetic before a Reshape).
        if d0.isEmpty {
            var joined: [Dim] = []
            for i in ctx.node.inputs.indices { if let v = ctx.values(i), v.count == 1 { joined += v } }
            if joined.count == types.count { ctx.outputValues[0] = joined }
        }
        return [.of(first.dtype, out)]
    }),
    ("Unpack", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims, !d.isEmpty else { return Array(repeating: nil, count: ctx.node.outputs.count) }
        let axis = try normalizeAxis(ctx.int("axis") ?? 0, rank: d.count)
        var out = d
        out.remove(at: axis)
        return Array(repeating: .of(x.dtype, out), count: ctx.node.outputs.count)
    }),
    ("Split", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [] }
        let n = ctx.node.outputs.count
        let axis = try normalizeAxis(ctx.int("axis") ?? 0, rank: d.count)
        var sizes = ctx.ints("split")
        if sizes == nil, ctx.hasInput(1) { sizes = ctx.ints(1); if sizes == nil { return Array(repeating: .of(x.dtype, d.enumerated().map { $0.offset == axis ? .unknown : $0.element }), count: n) } }
        if sizes == nil {
            guard let total = d[axis].value else { return Array(repeating: .of(x.dtype, d.enumerated().map { $0.offset == axis ? .unknown : $0.element }), count: n) }
            let parts = ctx.int("num_outputs") ?? n
            let chunk = (total + parts - 1) / max(parts, 1)
            sizes = (0..<n).map { i in max(0, min(chunk, total - i * chunk)) }
        }
        return sizes!.prefix(n).map { s in
            var o = d
            o[axis] = .known(s)
            return .of(x.dtype, o)
        }
    }),
    ("Slice", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        let starts: [Int], ends: [Int]
        var axes: [Int]?, steps: [Int]?
        if let s = ctx.ints("starts"), let e = ctx.ints("ends") {
            starts = s; ends = e; axes = ctx.ints("axes")
        } else {
            guard let s = ctx.ints(1), let e = ctx.ints(2) else {
                return [.of(x.dtype, d.map { _ in .unknown })]
            }
            starts = s; ends = e
            if ctx.hasInput(3) { guard let a = ctx.ints(3) else { return [.of(x.dtype, d.map { _ in .unknown })] }; axes = a }
            if ctx.hasInput(4) { guard let st = ctx.ints(4) else { return [.of(x.dtype, d.map { _ in .unknown })] }; steps = st }
        }
        let ax = axes ?? Array(0..<starts.count)
        var out = d
        for (k, a0) in ax.enumerated() where k < starts.count && k < ends.count {
            let a = try normalizeAxis(a0, rank: d.count)
            let step = steps.map { k < $0.count ? $0[k] : 1 } ?? 1
            guard let n = d[a].value else {
                out[a] = .unknown
                continue
            }
            out[a] = .known(sliceCount(n, start: starts[k], end: ends[k], step: step))
            if d.count == 1, let v = ctx.values(0), v.count == n {
                ctx.outputValues[0] = sliceRange(count: n, start: starts[k], end: ends[k], step: step).map { v[$0] }
            }
        }
        return [.of(x.dtype, out)]
    }),
    ("Gather", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims, let id = ctx.dims(1) else { return [nil] }
        let axis = try normalizeAxis(ctx.int("axis") ?? 0, rank: d.count)
        if d.count == 1, let v = ctx.values(0), let idx = ctx.ints(1) {
            var picked: [Dim] = []
            for i in idx {
                let j = i < 0 ? i + v.count : i
                if j >= 0 && j < v.count { picked.append(v[j]) }
            }
            if picked.count == idx.count { ctx.outputValues[0] = picked }
        }
        return [.of(x.dtype, Array(d[..<axis]) + id + Array(d[(axis + 1)...]))]
    }),
    ("GatherElements", { ctx in
        guard let x = ctx.type(0), let id = ctx.dims(1) else { return [nil] }
        return [.of(x.dtype, id)]
    }),
    ("Expand", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        guard let s = ctx.values(1) else {
            if let n = ctx.dims(1)?.first?.value { return [.of(x.dtype, [Dim](repeating: .unknown, count: max(n, d.count)))] }
            return [.of(x.dtype, nil)]
        }
        return [.of(x.dtype, try broadcast([d, s]))]
    }),
    ("Tile", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        guard let r = ctx.ints(1), r.count == d.count else { return [.of(x.dtype, d.map { _ in .unknown })] }
        return [.of(x.dtype, zip(d, r).map { dim, k in dim.value.map { .known($0 * k) } ?? (k == 1 ? dim : .unknown) })]
    }),
    ("Pad", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        let r = d.count
        var pads = ctx.ints("pads") ?? ctx.ints("paddings")
        if pads == nil { pads = ctx.ints(1) }
        guard var p = pads else { return [.of(x.dtype, d.map { _ in .unknown })] }
        if (ctx.int("pairs_layout") ?? 0) != 0, p.count == 2 * r {
            // TFLite: [[begin, end], ...] -> [begins..., ends...]
            p = (0..<r).map { p[2 * $0] } + (0..<r).map { p[2 * $0 + 1] }
        }
        var axes = Array(0..<r)
        if ctx.hasInput(3) { guard let a = ctx.ints(3) else { return [.of(x.dtype, d.map { _ in .unknown })] }; axes = try a.map { try normalizeAxis($0, rank: r) } }
        guard p.count == 2 * axes.count else { throw ShapeRuleError("\(p.count) pad values for \(axes.count) axes") }
        var out = d
        for (k, a) in axes.enumerated() {
            out[a] = d[a].value.map { .known($0 + p[k] + p[k + axes.count]) } ?? (p[k] + p[k + axes.count] == 0 ? d[a] : .unknown)
        }
        return [.of(x.dtype, out)]
    }),
    ("ConstantOfShape", { ctx in
        let dt = ctx.node.attributes["value"]?.tensor?.dtype ?? .float32
        if let v = ctx.values(0) { return [.of(dt, v)] }
        if let n = ctx.dims(0)?.first?.value { return [.of(dt, [Dim](repeating: .unknown, count: n))] }
        return [.of(dt, nil)]
    }),
    ("Range", { ctx in
        let dt = ctx.type(0)?.dtype ?? .undefined
        guard let s = ctx.ints(0)?.first, let l = ctx.ints(1)?.first, let dl = ctx.ints(2)?.first, dl != 0 else { return [.of(dt, [.unknown])] }
        let n = max(0, Int((Double(l - s) / Double(dl)).rounded(.up)))
        return [.of(dt, [.known(n)])]
    }),
    ("OneHot", { ctx in
        guard let d = ctx.dims(0) else { return [nil] }
        let dt = ctx.type(2)?.dtype ?? .float32
        let depth = ctx.ints(1)?.first.map { Dim.known($0) } ?? .unknown
        let axis = try normalizeAxis(ctx.int("axis") ?? -1, rank: d.count + 1)
        var out = d
        out.insert(depth, at: axis)
        return [.of(dt, out)]
    }),
    ("TopK", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil, nil] }
        let axis = try normalizeAxis(ctx.int("axis") ?? -1, rank: d.count)
        let k = ctx.int("k") ?? ctx.ints(1)?.first
        var out = d
        out[axis] = k.map { .known($0) } ?? .unknown
        return [.of(x.dtype, out), .of(.int64, out)]
    }),
    ("NonZero", { ctx in
        guard let d = ctx.dims(0) else { return [.of(.int64, [.unknown, .unknown])] }
        return [.of(.int64, [.known(d.count), .unknown])]
    }),
    ("NonMaxSuppression", { _ in [.of(.int64, [.unknown, .known(3)])] }),
]

// MARK: - costs (see CostModel.convention)

let tensorCosts: [(String, CostRule)] = {
    var rules: [(String, CostRule)] = tensorRules.map { name, _ in (name, { _ in (SymCount.zero, SymCount.zero) }) }
    return rules
}()
