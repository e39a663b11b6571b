import ModelIR

extension TFLiteToONNX {
    /// MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD -> Reduce*.
    static let reduceLowerings: [String: Lowering] = [
        "MEAN": { c, node in try c.lowerReduce(node) },
        "SUM": { c, node in try c.lowerReduce(node) },
        "REDUCE_MAX": { c, node in try c.lowerReduce(node) },
        "REDUCE_MIN": { c, node in try c.lowerReduce(node) },
        "REDUCE_PROD": { c, node in try c.lowerReduce(node) },
    ]

    /// Reductions with constant axes.
    func lowerReduce(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        guard let x, node.inputs.count > 1, let axesData = constant(node.inputs[1])?.integers() else { throw fail(node, "the axes must be constant") }
        let names = ["MEAN": "ReduceMean", "SUM": "ReduceSum", "REDUCE_MAX": "ReduceMax", "REDUCE_MIN": "ReduceMin", "REDUCE_PROD": "ReduceProd"]
        let s = try shape(x)
        let axes = axesData.map { $0 < 0 ? $0 + s.count : $0 }
        let keep = (node.int("keep_dims") ?? 0) != 0
        let p = map[x]?.perm
        let (target, outPerm) = LayoutConverter.reduction(axes: axes, rank: s.count, layout: p, keep: keep)
        var attrs: [String: Attribute] = ["keepdims": .int(keep ? 1 : 0)]
        let input = try get(x, p)
        if op == "SUM" {
            // ReduceSum takes its axes as an input from opset 13.
            try emit("ReduceSum", [input, newConstant(node.name + "/axes", TensorOps.make(int64: target))], node, shape: try shape(node.outputs[0]), perm: outPerm, attrs: attrs)
        } else {
            attrs["axes"] = .ints(target)
            try emit(names[op]!, [input], node, shape: try shape(node.outputs[0]), perm: outPerm, attrs: attrs)
        }
    }
}
