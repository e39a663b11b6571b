import ModelIR

extension TFLiteToONNX {
    /// FULLY_CONNECTED -> Gemm / MatMul.
    static let linalgLowerings: [String: Lowering] = [
        "FULLY_CONNECTED": { c, node in try c.lowerDense(node) },
    ]

    func lowerDense(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 2, let w = constant(node.inputs[1]), w.shape.count == 2 else {
            throw fail(node, "only constant weights convert")
        }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let units = w.shape[0], depth = w.shape[1]
        let p = map[x]?.perm
        var input = try get(x, LayoutConverter.orderEquivalent(inShape, p) ? p : nil)
        let rows = inShape.reduce(1, *) / max(1, depth)
        if inShape != [rows, depth] {
            input = reshapeNode(input, [rows, depth], name: node.name + "/rows", dtype: .float32)
        }
        let weights = w.dtype == .float32 ? w : TensorOps.make(TensorOps.floats(w) ?? [], w.shape)
        var ins: [ValueID?] = [input, newConstant(src.values[node.inputs[1]!].name, weights)]
        if node.inputs.count > 2, let b = node.inputs[2], let bd = constant(b) {
            ins.append(newConstant(src.values[b].name, bd.dtype == .float32 ? bd : TensorOps.make(TensorOps.floats(bd) ?? [], bd.shape)))
        }
        if outShape == [rows, units] {
            try emit("Gemm", ins, node, shape: outShape, perm: nil, attrs: ["transB": .int(1)])
        } else {
            let flat = newValue(node.name + "/gemm", .float32, [rows, units])
            append("Gemm", ins, [flat], name: node.name + "/gemm", attrs: ["transB": .int(1)])
            let s = newConstant(node.name + "/shape", TensorOps.make(int64: outShape))
            try emit("Reshape", [flat, s], node, shape: outShape, perm: nil)
        }
    }
}
