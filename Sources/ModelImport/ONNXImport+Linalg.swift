import ModelIR

extension ONNXImport {
    static let linalgMappings: [String: Mapping] = [
        "Gemm": { node, _ in
            setDefault(&node, "alpha", .float(1)); setDefault(&node, "beta", .float(1))
            setDefault(&node, "transA", .int(0)); setDefault(&node, "transB", .int(0))
        },
    ]
}
