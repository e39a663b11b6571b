import ModelIR

extension TFLiteImport {
    /// RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR: Resize on NHWC data with the new [height, width]
    /// as input 1. align_corners and half_pixel_centers become the canonical coordinate and
    /// nearest modes (TFLite's reference kernels: half-pixel centres round nearest half up).
    static let resizeMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        for builtin in ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"] {
            t[builtin] = { node, builtin, _ in
                let nearest = builtin == "RESIZE_NEAREST_NEIGHBOR"
                node.op = OpKind("Resize")
                node.dataLayout = .nhwc
                node.attributes["mode"] = .string(nearest ? "nearest" : "linear")
                let align = (int(node, "align_corners") ?? 0) != 0, half = (int(node, "half_pixel_centers") ?? 0) != 0
                node.attributes["coordinate_transformation_mode"] =
                    .string(align ? "align_corners" : half ? (nearest ? "tf_half_pixel_for_nn" : "half_pixel") : "asymmetric")
                node.attributes["nearest_mode"] = .string(align || half ? "round_prefer_ceil" : "floor")
            }
        }
        return t
    }()
}
