import ModelIR

/// What older opsets spelled differently, turned into today's form of the op at import: input
/// slots where the later opsets have them, and attributes for behaviour the op's name and
/// attributes no longer tell apart. Below the importer nothing reads an opset.
/// (Facts from the ONNX operator specification; the writer undoes them, see `fileForm`.)
public enum ONNXOpsetVariants {
    /// Attributes this file adds (never in a file: the writer drops them).
    public static let addedAttributes: Set<String> = ["flatten_to_2d", "bfloat16_rounding", "batch_axis"]

    /// The canonical op an ONNX op name imports as.
    public static func canonicalName(_ onnxName: String) -> String { onnxName == "Upsample" ? "Resize" : onnxName }

    public static func normalize(_ node: inout Node, opset: Int) {
        switch node.sourceOp {
        case "Upsample":
            // Resize's older spelling, (X, scales): nearest takes the floor of the asymmetric
            // source coordinate.
            node.op = OpKind("Resize")
            node.inputs = resizeSlots(node.inputs)
            if node.attributes["coordinate_transformation_mode"] == nil { node.attributes["coordinate_transformation_mode"] = .string("asymmetric") }
            if node.attributes["nearest_mode"] == nil { node.attributes["nearest_mode"] = .string("floor") }
        case "Resize" where opset > 0 && opset < 11:
            // Resize-10 takes (X, scales); from opset 11 (X, roi, scales, sizes).
            node.inputs = resizeSlots(node.inputs)
        case "Softmax", "LogSoftmax", "Hardmax":
            // Before opset 13 the input is coerced to 2-D at `axis`.
            if opset > 0 && opset < 13 { node.attributes["flatten_to_2d"] = .int(1) }
        case "Cast", "CastLike":
            // Casts to bfloat16 truncate before opset 19 and round to nearest even since.
            if opset > 0 && opset < 19 { node.attributes["bfloat16_rounding"] = .string("truncate") }
        case "Scan" where opset > 0 && opset < 9:
            // Opset 8's Scan has a batch axis and a sequence_lens input.
            node.attributes["batch_axis"] = .int(1)
        default:
            break
        }
    }

    /// (X, scales) -> (X, roi: none, scales).
    static func resizeSlots(_ inputs: [ValueID?]) -> [ValueID?] {
        guard inputs.count >= 2 else { return inputs }
        return [inputs[0], nil] + inputs[1...]
    }

    /// The inputs a node has in its file's opset: the inverse of `normalize` for writers.
    public static func fileInputs(_ node: Node) -> [ValueID?] {
        let older = node.sourceOp == "Upsample" || (node.sourceOp == "Resize" && node.version > 0 && node.version < 11)
        guard older, node.inputs.count >= 3, node.inputs[1] == nil else { return node.inputs }
        return [node.inputs[0]] + node.inputs[2...]
    }
}
