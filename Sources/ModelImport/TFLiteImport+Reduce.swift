import ModelIR

extension TFLiteImport {
    static let reduceMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        let names = ["MEAN": "ReduceMean", "SUM": "ReduceSum", "REDUCE_MAX": "ReduceMax", "REDUCE_MIN": "ReduceMin",
                     "REDUCE_PROD": "ReduceProd", "REDUCE_ANY": "ReduceAny", "REDUCE_ALL": "ReduceAll"]
        for (builtin, op) in names {
            t[builtin] = { node, _, _ in
                node.op = OpKind(op)
                node.attributes["keepdims"] = .int(int(node, "keep_dims") ?? 0)
            }
        }
        for builtin in ["ARG_MAX", "ARG_MIN"] {
            t[builtin] = { node, builtin, graph in
                node.op = OpKind(builtin == "ARG_MAX" ? "ArgMax" : "ArgMin")
                node.attributes["keepdims"] = .int(0)
                if let out = node.outputs.first { node.attributes["output_dtype_name"] = .string(graph.values[out].type.dtype.rawValue) }
            }
        }
        t["CUMSUM"] = named("CumSum")
        return t
    }()
}
