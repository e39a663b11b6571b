import ModelIR
import ModelRuntime

extension ONNXToTFLite {
    /// Reductions -> MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD.
    static let reduceLowerings: [String: Lowering] = [
        "ReduceMean": { c, node, index in try c.lowerReduce(node) },
        "ReduceMax": { c, node, index in try c.lowerReduce(node) },
        "ReduceMin": { c, node, index in try c.lowerReduce(node) },
        "ReduceSum": { c, node, index in try c.lowerReduce(node) },
        "ReduceProd": { c, node, index in try c.lowerReduce(node) },
    ]

    func lowerReduce(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let names = ["ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM", "ReduceProd": "REDUCE_PROD"]
        let s = try shape(x)
        var axes = node.ints("axes") ?? (node.inputs.count > 1 ? constant(node.inputs[1])?.integers() : nil) ?? Array(0..<s.count)
        axes = axes.map { $0 < 0 ? $0 + s.count : $0 }
        let keep = (node.int("keepdims") ?? 1) != 0
        let p = map[x]?.perm
        let (tflAxes, outPerm) = LayoutConverter.reduction(axes: axes, rank: s.count, layout: p, keep: keep)
        let a = newConstant(node.name + "/axes", TensorOps.make(int32: tflAxes))
        emit(names[node.sourceOp]!, [try get(x, p), a], node, shape: try shape(node.outputs[0]), perm: outPerm, attrs: ["keep_dims": .int(keep ? 1 : 0)])
    }
}
