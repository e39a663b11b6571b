import ModelIR

extension ONNXImport {
    static let controlFlowMappings: [String: Mapping] = [
        // Opset 8's Scan has a batch axis and a sequence_lens input.
        "Scan": { node, opset in if opset > 0 && opset < 9 { node.attributes["batch_axis"] = .int(1) } },
    ]
}
