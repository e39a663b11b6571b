import ModelIR

extension TFLiteImport {
    static let linalgMappings: [String: Mapping] = [
        "FULLY_CONNECTED": { node, _, _ in node.op = .fullyConnected },
        "BATCH_MATMUL": named("BatchMatMul"),
    ]
}
