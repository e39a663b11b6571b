import ModelIR

extension TFLiteToONNX {
    /// Convolutions and pooling (NHWC in TFLite, NCHW in ONNX).
    static let convLowerings: [String: Lowering] = [
        "CONV_2D": { c, node in try c.lowerConv(node) },
        "DEPTHWISE_CONV_2D": { c, node in try c.lowerConv(node) },
        "TRANSPOSE_CONV": { c, node in try c.lowerTransposeConv(node) },
        "MAX_POOL_2D": { c, node in try c.lowerPool(node) },
        "AVERAGE_POOL_2D": { c, node in try c.lowerPool(node) },
    ]

    /// ONNX pads (top, left, bottom, right) for TFLite's padding mode.
    func pads(_ node: Node, _ input: [Int], _ kernel: [Int], _ strides: [Int], _ dilations: [Int]) -> [Int] {
        // An absent padding field is the schema default, SAME.
        guard node.string("padding") != "VALID" else { return [0, 0, 0, 0] }
        var p = [0, 0, 0, 0]
        for d in 0..<2 {
            let g = SlidingWindow.geometry(input[1 + d], kernel: kernel[d], stride: strides[d], dilation: dilations[d],
                                           padBegin: 0, padEnd: 0, autoPad: "SAME_UPPER", ceilMode: false)
            p[d] = g.begin
            p[d + 2] = g.end
        }
        return p
    }

    func lowerConv(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 2, let w = constant(node.inputs[1]), w.shape.count == 4 else {
            throw fail(node, "only convolutions with constant weights convert")
        }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        guard inShape.count == 4, outShape.count == 4 else { throw fail(node, "input and output must be NHWC (rank 4), not \(inShape) -> \(outShape)") }
        let depthwise = node.sourceOp == "DEPTHWISE_CONV_2D"
        // OHWI -> OIHW; 1HWO -> O1HW.
        var weights = TensorOps.permute(w, depthwise ? [3, 0, 1, 2] : [0, 3, 1, 2])
        if weights.dtype != .float32, let f = TensorOps.floats(weights) { weights = TensorOps.make(f, weights.shape) }
        report.constantsFolded += 1
        let kernel = [weights.shape[2], weights.shape[3]]
        let strides = [node.int("stride_h") ?? 1, node.int("stride_w") ?? 1]
        let dilations = [node.int("dilation_h_factor") ?? 1, node.int("dilation_w_factor") ?? 1]
        let group = depthwise ? inShape[3] : max(1, inShape[3] / max(1, w.shape[3]))
        var ins: [ValueID?] = [try get(x, TFLiteToONNX.channelsFirst), newConstant(src.values[node.inputs[1]!].name + "/oihw", weights)]
        if node.inputs.count > 2, let b = node.inputs[2], let bd = constant(b) {
            ins.append(newConstant(src.values[b].name, bd.dtype == .float32 ? bd : TensorOps.make(TensorOps.floats(bd) ?? [], bd.shape)))
        }
        try emit("Conv", ins, node, shape: outShape, perm: TFLiteToONNX.channelsFirst,
                 attrs: ["kernel_shape": .ints(kernel), "strides": .ints(strides), "dilations": .ints(dilations), "group": .int(group),
                         "pads": .ints(pads(node, inShape, kernel, strides, dilations))])
    }

    /// TRANSPOSE_CONV -> ConvTranspose (weights OHWI -> IOHW).
    func lowerTransposeConv(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        // Imported as X, W (OHWI), B? with the output shape as an attribute.
        guard let x, node.inputs.count >= 2, let wID = node.inputs[1], let w = constant(wID), w.shape.count == 4 else {
            throw fail(node, "only transposed convolutions with constant weights convert")
        }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let strides = [node.int("stride_h") ?? 1, node.int("stride_w") ?? 1]
        var weights = TensorOps.permute(w, [3, 0, 1, 2])  // OHWI -> IOHW
        if weights.dtype != .float32, let f = TensorOps.floats(weights) { weights = TensorOps.make(f, weights.shape) }
        report.constantsFolded += 1
        let k = [w.shape[1], w.shape[2]]
        var pads = [0, 0, 0, 0]
        for d in 0..<2 {
            let total = max((inShape[1 + d] - 1) * strides[d] + k[d] - outShape[1 + d], 0)
            pads[d] = total / 2
            pads[d + 2] = total - total / 2
        }
        var ins: [ValueID?] = [try get(x, TFLiteToONNX.channelsFirst), newConstant(src.values[wID].name + "/iohw", weights)]
        if node.inputs.count > 2, let b = node.inputs[2], let bd = constant(b) {
            ins.append(newConstant(src.values[b].name, bd.dtype == .float32 ? bd : TensorOps.make(TensorOps.floats(bd) ?? [], bd.shape)))
        }
        try emit("ConvTranspose", ins, node, shape: outShape, perm: TFLiteToONNX.channelsFirst,
                 attrs: ["kernel_shape": .ints(k), "strides": .ints(strides), "pads": .ints(pads)])
    }

    /// MAX_POOL_2D / AVERAGE_POOL_2D -> MaxPool / AveragePool on NCHW.
    func lowerPool(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        guard let x else { throw fail(node, "no input") }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let k = [node.int("filter_height") ?? 1, node.int("filter_width") ?? 1]
        let s = [node.int("stride_h") ?? 1, node.int("stride_w") ?? 1]
        var attrs: [String: Attribute] = ["kernel_shape": .ints(k), "strides": .ints(s),
                                          "pads": .ints(pads(node, inShape, k, s, [1, 1]))]
        if op == "AVERAGE_POOL_2D" { attrs["count_include_pad"] = .int(0) }
        try emit(op == "MAX_POOL_2D" ? "MaxPool" : "AveragePool", [try get(x, TFLiteToONNX.channelsFirst)], node, shape: outShape,
                 perm: TFLiteToONNX.channelsFirst, attrs: attrs)
    }
}
