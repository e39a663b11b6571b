import CKernels
import Foundation
import ModelIR

/// Resize, nearest and linear, on 4-D NCHW or NHWC data (mlk_resize).
let resizeKernels: [(String, KernelFactory)] = [
    ("Resize", { pc in try resizeKernel(pc) }),
]

func resizeKernel(_ pc: PlanContext) throws -> Kernel {
    let n = pc.node
    let nhwc = n.dataLayout == .nhwc
    let modeName = n.string("mode") ?? "nearest"
    guard modeName == "nearest" || modeName == "linear" || modeName == "bilinear" else { throw pc.fail("mode \(modeName)") }
    let coordNames = ["half_pixel": 0, "asymmetric": 1, "align_corners": 2, "pytorch_half_pixel": 3, "tf_half_pixel_for_nn": 4]
    let coordName = n.string("coordinate_transformation_mode") ?? "half_pixel"
    guard let coord = coordNames[coordName] else { throw pc.fail("coordinate mode \(coordName)") }
    let nearestNames = ["round_prefer_floor": 0, "round_prefer_ceil": 1, "floor": 2, "ceil": 3]
    let nearestName = n.string("nearest_mode") ?? "round_prefer_floor"
    guard let nearest = nearestNames[nearestName] else { throw pc.fail("nearest mode \(nearestName)") }
    if n.ints("axes") != nil { throw pc.fail("the axes attribute") }
    if let policy = n.string("keep_aspect_ratio_policy"), policy != "stretch" { throw pc.fail("keep_aspect_ratio_policy \(policy)") }
    if (n.int("antialias") ?? 0) != 0 { throw pc.fail("antialias") }
    if n.float("extrapolation_value") != nil && coordName == "tf_crop_and_resize" { throw pc.fail("tf_crop_and_resize") }
    return { ins, ctx in
        let x = try requireFloat(ins.first ?? nil, node: n)
        guard x.shape.count == 4 else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "rank \(x.shape.count) (4-D only)") }
        let (h, w) = nhwc ? (x.shape[1], x.shape[2]) : (x.shape[2], x.shape[3])
        var oh = h, ow = w, sh: Float = 1, sw: Float = 1
        if nhwc {
            guard let size = ins.count > 1 ? ins[1]?.integers() : nil, size.count == 2 else { throw RuntimeError.invalid(node: n.label, reason: "missing size") }
            (oh, ow) = (size[0], size[1])
            sh = Float(oh) / Float(h); sw = Float(ow) / Float(w)
        } else {
            // Inputs (X, roi, scales, sizes); older forms were given these slots at import.
            let sizes = ins.count > 3 ? ins[3]?.integers() : nil
            let scales = n.attributes["scales"]?.floats.map { $0.map(Float.init) } ?? (ins.count > 2 ? ins[2]?.toFloats() : nil)
            if let sizes, sizes.count == 4 {
                guard sizes[0] == x.shape[0], sizes[1] == x.shape[1] else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "resizing batch or channels") }
                (oh, ow) = (sizes[2], sizes[3]); sh = Float(oh) / Float(h); sw = Float(ow) / Float(w)
            } else if let scales, scales.count == 4 {
                guard scales[0] == 1, scales[1] == 1 else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "scaling batch or channels") }
                sh = scales[2]; sw = scales[3]
                let fh = (Float(h) * sh).rounded(.down), fw = (Float(w) * sw).rounded(.down)
                guard fh.isFinite, fw.isFinite, fh >= 0, fw >= 0, fh < 1e6, fw < 1e6, sh > 0, sw > 0 else {
                    throw RuntimeError.invalid(node: n.label, reason: "scales \(scales) give no usable size")
                }
                oh = Int(fh); ow = Int(fw)
            } else { throw RuntimeError.invalid(node: n.label, reason: "neither scales nor sizes") }
        }
        let c = nhwc ? x.shape[3] : x.shape[1]
        let y = try ctx.alloc(nhwc ? [x.shape[0], oh, ow, c] : [x.shape[0], c, oh, ow], .float32)
        // Coordinate transforms use the unrounded resized length (in x scale) when scales are given.
        mlk_resize(x.floats, y.floats, nhwc ? 1 : 0, x.shape[0], c, h, w, oh, ow, sh, sw, Float(h) * sh, Float(w) * sw,
                   modeName == "nearest" ? 0 : 1, Int32(coord), Int32(nearest))
        return [y]
    }
}
