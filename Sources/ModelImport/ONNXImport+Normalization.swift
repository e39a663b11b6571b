import ModelIR

extension ONNXImport {
    static let normalizationMappings: [String: Mapping] = [
        "BatchNormalization": { node, _ in setDefault(&node, "epsilon", .float(1e-5)); setDefault(&node, "momentum", .float(0.9)) },
        "InstanceNormalization": { node, _ in setDefault(&node, "epsilon", .float(1e-5)) },
        "LayerNormalization": { node, _ in
            setDefault(&node, "axis", .int(-1)); setDefault(&node, "epsilon", .float(1e-5)); setDefault(&node, "stash_type", .int(1))
            nameType(&node, code: "stash_type", as: "stash_type_dtype")
        },
        "LRN": { node, _ in
            setDefault(&node, "alpha", .float(0.0001)); setDefault(&node, "beta", .float(0.75)); setDefault(&node, "bias", .float(1))
        },
    ]
}
