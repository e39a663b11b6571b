import ModelIR

extension TFLiteToONNX {
    /// RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR -> Resize.
    static let resizeLowerings: [String: Lowering] = [
        "RESIZE_BILINEAR": { c, node in try c.lowerResize(node) },
        "RESIZE_NEAREST_NEIGHBOR": { c, node in try c.lowerResize(node) },
    ]

    /// RESIZE_* -> Resize with sizes, the coordinate mode from align_corners / half_pixel_centers.
    func lowerResize(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        guard let x else { throw fail(node, "no input") }
        let outShape = try shape(node.outputs[0])
        let align = (node.int("align_corners") ?? 0) != 0, half = (node.int("half_pixel_centers") ?? 0) != 0
        let bilinear = op == "RESIZE_BILINEAR"
        var attrs: [String: Attribute] = ["mode": .string(bilinear ? "linear" : "nearest"),
                                          "coordinate_transformation_mode": .string(align ? "align_corners" : half ? (bilinear ? "half_pixel" : "tf_half_pixel_for_nn") : "asymmetric")]
        if !bilinear { attrs["nearest_mode"] = .string(align ? "round_prefer_ceil" : "floor") }
        let sizes = newConstant(node.name + "/sizes", TensorOps.make(int64: LayoutConverter.apply(TFLiteToONNX.channelsFirst, outShape)))
        try emit("Resize", [try get(x, TFLiteToONNX.channelsFirst), nil, nil, sizes], node, shape: outShape, perm: TFLiteToONNX.channelsFirst, attrs: attrs)
    }
}
