import ModelIR

extension ONNXImport {
    /// Elementwise ops. Binary arithmetic (Add, Sub, Mul, Div, ...) maps by name: ONNX's
    /// multidirectional broadcasting is the canonical one, nothing to adjust.
    static let elementwiseMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        for op in ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "PRelu"] { t[op] = { _, _ in } }
        for op in ["Softmax", "LogSoftmax", "Hardmax"] {
            t[op] = { node, opset in
                setDefault(&node, "axis", .int(opset >= 13 ? -1 : 1))
                // Before opset 13 the input is coerced to 2-D at `axis`.
                if opset > 0 && opset < 13 { node.attributes["flatten_to_2d"] = .int(1) }
            }
        }
        t["Cast"] = { node, opset in
            if let to = node.attributes["to"]?.int { node.attributes["to"] = .string(dtypeFromONNX(Int32(truncatingIfNeeded: to)).rawValue) }
            truncatesBFloat16(&node, opset)
        }
        t["CastLike"] = { node, opset in truncatesBFloat16(&node, opset) }
        t["LeakyRelu"] = { node, _ in setDefault(&node, "alpha", .float(0.01)) }
        for op in ["Elu", "Celu"] { t[op] = { node, _ in setDefault(&node, "alpha", .float(1)) } }
        t["Selu"] = { node, _ in
            setDefault(&node, "alpha", .float(1.67326319217681884765625))
            setDefault(&node, "gamma", .float(1.05070102214813232421875))
        }
        t["HardSigmoid"] = { node, _ in
            setDefault(&node, "alpha", .float(0.2))
            setDefault(&node, "beta", .float(0.5))
        }
        t["Dropout"] = { node, opset in if opset < 12 { setDefault(&node, "ratio", .float(0.5)) } }
        for op in ["QuantizeLinear", "DequantizeLinear"] { t[op] = { node, _ in nameType(&node, code: "output_dtype", as: "output_dtype_name", unlessZero: true) } }
        for op in ["Bernoulli", "RandomNormalLike", "RandomUniformLike", "RandomNormal", "RandomUniform", "Multinomial"] {
            t[op] = { node, _ in nameType(&node, code: "dtype", as: "dtype_name") }
        }
        return t
    }()

    /// Casts to bfloat16 truncate before opset 19 and round to nearest even since.
    static func truncatesBFloat16(_ node: inout Node, _ opset: Int) {
        if opset > 0 && opset < 19 { node.attributes["bfloat16_rounding"] = .string("truncate") }
    }
}
