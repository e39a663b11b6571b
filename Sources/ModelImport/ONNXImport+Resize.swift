import ModelIR

extension ONNXImport {
    /// Resize in today's form, inputs (X, roi, scales, sizes). Resize-10 and Upsample took
    /// (X, scales); Upsample's nearest takes the floor of the asymmetric source coordinate.
    static let resizeMappings: [String: Mapping] = [
        "Resize": { node, opset in
            setDefault(&node, "mode", .string("nearest"))
            setDefault(&node, "coordinate_transformation_mode", .string(opset >= 11 ? "half_pixel" : "asymmetric"))
            setDefault(&node, "nearest_mode", .string("round_prefer_floor"))
            setDefault(&node, "cubic_coeff_a", .float(-0.75))
            if opset > 0 && opset < 11 { node.inputs = resizeSlots(node.inputs) }
        },
        "Upsample": { node, _ in
            setDefault(&node, "mode", .string("nearest"))
            node.op = OpKind(canonicalName("Upsample"))
            node.inputs = resizeSlots(node.inputs)
            setDefault(&node, "coordinate_transformation_mode", .string("asymmetric"))
            setDefault(&node, "nearest_mode", .string("floor"))
        },
    ]

    /// (X, scales) -> (X, roi: none, scales).
    static func resizeSlots(_ inputs: [ValueID?]) -> [ValueID?] {
        guard inputs.count >= 2 else { return inputs }
        return [inputs[0], nil] + inputs[1...]
    }

    /// The inputs a node has in its file's opset: what the writer puts back for the older forms.
    public static func fileInputs(_ node: Node) -> [ValueID?] {
        let older = node.sourceOp == "Upsample" || (node.sourceOp == "Resize" && node.version > 0 && node.version < 11)
        guard older, node.inputs.count >= 3, node.inputs[1] == nil else { return node.inputs }
        return [node.inputs[0]] + node.inputs[2...]
    }
}
