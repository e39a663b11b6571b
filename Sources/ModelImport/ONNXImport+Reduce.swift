import ModelIR

extension ONNXImport {
    static let reduceMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                   "ReduceLogSumExp", "ReduceSumSquare"] {
            t[op] = { node, _ in setDefault(&node, "keepdims", .int(1)) }
        }
        for op in ["ArgMax", "ArgMin"] {
            t[op] = { node, _ in
                setDefault(&node, "axis", .int(0)); setDefault(&node, "keepdims", .int(1)); setDefault(&node, "select_last_index", .int(0))
            }
        }
        t["CumSum"] = { node, _ in setDefault(&node, "axis", .int(0)) }
        return t
    }()
}
