import ModelIR

extension ONNXImport {
    static let tensorMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        t["Flatten"] = { node, _ in setDefault(&node, "axis", .int(1)) }
        for op in ["Gather", "GatherElements", "Split"] { t[op] = { node, _ in setDefault(&node, "axis", .int(0)) } }
        t["Pad"] = { node, _ in setDefault(&node, "mode", .string("constant")) }
        t["DepthToSpace"] = { node, _ in setDefault(&node, "mode", .string("DCR")) }
        t["TopK"] = { node, _ in
            setDefault(&node, "axis", .int(-1)); setDefault(&node, "largest", .int(1)); setDefault(&node, "sorted", .int(1))
        }
        t["EyeLike"] = { node, _ in nameType(&node, code: "dtype", as: "dtype_name") }
        return t
    }()
}
