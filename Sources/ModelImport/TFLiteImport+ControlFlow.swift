import ModelIR

extension TFLiteImport {
    static let controlFlowMappings: [String: Mapping] = [
        "WHILE": named("While"),
        "IF": { node, _, _ in node.op = .ifOp },
        "CALL_ONCE": named("CallOnce"),
    ]
}
