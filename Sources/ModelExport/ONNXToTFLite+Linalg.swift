import ModelIR
import ModelRuntime

extension ONNXToTFLite {
    /// Gemm and MatMul -> FULLY_CONNECTED.
    static let linalgLowerings: [String: Lowering] = [
        "Gemm": { c, node, index in try c.lowerDense(node) },
        "MatMul": { c, node, index in try c.lowerDense(node) },
    ]

    func lowerDense(_ node: Node) throws {
        guard node.inputs.count >= 2, let a = node.inputs[0], let bID = node.inputs[1], let bData = constant(bID), bData.shape.count == 2 else {
            throw fail(node, "only a product with a constant 2-D right-hand side converts (FULLY_CONNECTED)")
        }
        let aShape = try shape(a)
        guard aShape.count == 2 else { throw fail(node, "a rank-\(aShape.count) left-hand side") }
        guard (node.int("transA") ?? 0) == 0 else { throw fail(node, "transA = 1") }
        let transB = node.sourceOp == "Gemm" && (node.int("transB") ?? 0) != 0
        var w = transB ? bData : TensorOps.permute(bData, [1, 0])
        let units = w.shape[0]
        let alpha = Float(node.float("alpha") ?? 1), beta = Float(node.float("beta") ?? 1)
        if alpha != 1, let f = TensorOps.floats(w) { w = TensorOps.make(f.map { $0 * alpha }, w.shape) }
        var bias = [Float](repeating: 0, count: units)
        if node.sourceOp == "Gemm", node.inputs.count > 2, let c = node.inputs[2] {
            guard let cd = constant(c), cd.elementCount == units || cd.elementCount == 1, let f = TensorOps.floats(cd) else {
                throw fail(node, "the bias must be a constant of \(units) values")
            }
            bias = f.count == 1 ? Array(repeating: f[0] * beta, count: units) : f.map { $0 * beta }
        }
        report.constantsFolded += 1
        let wID = newConstant(src.values[bID].name + "/tflite", w.dtype == .float32 ? w : TensorOps.make(TensorOps.floats(w) ?? [], w.shape))
        let biasID = newConstant(node.name + "/bias", TensorOps.make(bias, [units]))
        emit("FULLY_CONNECTED", [try get(a, map[a]?.perm.flatMap { LayoutConverter.orderEquivalent(aShape, $0) ? $0 : nil }), wID, biasID], node,
             shape: try shape(node.outputs[0]), perm: nil, attrs: ["keep_num_dims": .int(0), "weights_format": .string("DEFAULT")])
    }
}
