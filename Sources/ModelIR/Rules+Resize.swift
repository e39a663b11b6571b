/// Resize: shape rule and cost. Inputs (X, roi, scales, sizes) as the importers give them, or
/// NHWC data with the new [height, width] as input 1.
let resizeRules: [(String, ShapeRule)] = [
    ("Resize", { ctx in
        guard let x = ctx.type(0), let d = x.shape.dims else { return [nil] }
        let r = d.count
        // TFLite RESIZE_*: input 1 holds the new [height, width] of NHWC data.
        if ctx.node.dataLayout == .nhwc {
            guard let hw = ctx.ints(1), hw.count == 2, r == 4 else { return [.of(x.dtype, [d[0], .unknown, .unknown, d[3]])] }
            return [.of(x.dtype, [d[0], .known(hw[0]), .known(hw[1]), d[3]])]
        }
        let axes = try (ctx.ints("axes") ?? Array(0..<r)).map { try normalizeAxis($0, rank: r) }
        var out = d
        // Inputs (X, roi, scales, sizes); older forms were given these slots at import.
        let scalesIndex = 2
        if ctx.hasInput(3), let sizes = ctx.ints(3) ?? ctx.constant(3)?.integers(limit: 16), !sizes.isEmpty {
            var sz = sizes
            let policy = ctx.node.string("keep_aspect_ratio_policy") ?? "stretch"
            if policy != "stretch" {
                var scale: Double? = nil
                for (k, a) in axes.enumerated() {
                    guard let n = d[a].value, k < sz.count else { continue }
                    let s = Double(sz[k]) / Double(n)
                    scale = scale.map { policy == "not_larger" ? min($0, s) : max($0, s) } ?? s
                }
                if let scale { sz = axes.map { a in Int((Double(d[a].value ?? 0) * scale).rounded(.toNearestOrEven)) } }
            }
            for (k, a) in axes.enumerated() where k < sz.count { out[a] = .known(sz[k]) }
            return [.of(x.dtype, out)]
        }
        let scales: [Double]?
        if let attr = ctx.node.attributes["scales"]?.floats { scales = attr }
        else if ctx.hasInput(scalesIndex) {
            guard let v = ctx.constant(scalesIndex)?.doubles(limit: 16) else { return [.of(x.dtype, d.map { _ in .unknown })] }
            scales = v
        } else { scales = nil }
        guard let scales, !scales.isEmpty else { return [.of(x.dtype, d.map { _ in .unknown })] }
        for (k, a) in axes.enumerated() where k < scales.count {
            out[a] = d[a].value.map { .known(Int((Double($0) * scales[k]).rounded(.down))) } ?? (scales[k] == 1 ? d[a] : .unknown)
        }
        return [.of(x.dtype, out)]
    }),
]

// MARK: - costs (see CostModel.convention)

/// Nearest neighbour moves data only; linear blends 4 inputs per output (2-D), cubic 16.
let resizeCosts: [(String, CostRule)] = [
    ("Resize", { ctx in
        let mode = ctx.node.string("mode") ?? "nearest"
        let per = mode == "linear" ? 4 : mode == "cubic" ? 16 : 0
        return (.zero, ctx.outElements() * per)
    }),
]
