import ModelIR
import ModelRuntime

extension ONNXToTFLite {
    /// Resize -> RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR.
    static let resizeLowerings: [String: Lowering] = [
        "Resize": { c, node, index in try c.lowerResize(node) },
    ]

    func lowerResize(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, try shape(x).count == 4 else { throw fail(node, "only 4-D resizes convert") }
        let outShape = try shape(node.outputs[0]), inShape = try shape(x)
        guard outShape[0] == inShape[0], outShape[1] == inShape[1] else { throw fail(node, "resizing the batch or channel axis") }
        let mode = node.string("mode") ?? "nearest"
        let ct = node.string("coordinate_transformation_mode") ?? (node.sourceOp == "Upsample" ? "asymmetric" : "half_pixel")
        let nearestMode = node.string("nearest_mode") ?? "round_prefer_floor"
        var attrs: [String: Attribute] = ["align_corners": .int(0), "half_pixel_centers": .int(0)]
        let builtin: String
        switch (mode, ct) {
        case ("linear", "align_corners"), ("bilinear", "align_corners"): builtin = "RESIZE_BILINEAR"; attrs["align_corners"] = .int(1)
        case ("linear", "asymmetric"), ("bilinear", "asymmetric"): builtin = "RESIZE_BILINEAR"
        case ("linear", "half_pixel"), ("linear", "pytorch_half_pixel"): builtin = "RESIZE_BILINEAR"; attrs["half_pixel_centers"] = .int(1)
        case ("nearest", "asymmetric") where nearestMode == "floor": builtin = "RESIZE_NEAREST_NEIGHBOR"
        case ("nearest", "tf_half_pixel_for_nn"): builtin = "RESIZE_NEAREST_NEIGHBOR"; attrs["half_pixel_centers"] = .int(1)
        case ("nearest", "asymmetric") where nearestMode == "round_prefer_floor" && outShape[2] == 2 * inShape[2] && outShape[3] == 2 * inShape[3]:
            // Doubling: source coordinates are whole or halves, and rounding halves down is floor.
            builtin = "RESIZE_NEAREST_NEIGHBOR"
        default:
            throw fail(node, "mode \(mode) with coordinate_transformation_mode \(ct) (nearest_mode \(nearestMode)) has no TFLite form here")
        }
        let size = newConstant(node.name + "/size", TensorOps.make(int32: [outShape[2], outShape[3]]))
        emit(builtin, [try get(x, ONNXToTFLite.channelsLast), size], node, shape: outShape, perm: ONNXToTFLite.channelsLast, attrs: attrs)
    }
}
