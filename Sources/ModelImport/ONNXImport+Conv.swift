import ModelIR

extension ONNXImport {
    /// Convolutions and pooling: NCHW data, OIHW (IOHW for ConvTranspose) weights.
    static let convMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        for op in ["Conv", "ConvInteger", "QLinearConv"] {
            t[op] = { node, _ in
                setDefault(&node, "group", .int(1))
                setDefault(&node, "auto_pad", .string("NOTSET"))
                node.dataLayout = .nchw
                node.kernelLayout = .oihw
            }
        }
        t["ConvTranspose"] = { node, _ in
            setDefault(&node, "group", .int(1))
            setDefault(&node, "auto_pad", .string("NOTSET"))
            node.dataLayout = .nchw
            node.kernelLayout = .iohw
        }
        for op in ["MaxPool", "AveragePool", "LpPool"] {
            t[op] = { node, _ in
                setDefault(&node, "auto_pad", .string("NOTSET"))
                setDefault(&node, "ceil_mode", .int(0))
                switch op {
                case "AveragePool": setDefault(&node, "count_include_pad", .int(0))
                case "MaxPool": setDefault(&node, "storage_order", .int(0))
                default: setDefault(&node, "p", .int(2))
                }
                node.dataLayout = .nchw
            }
        }
        for op in ["GlobalAveragePool", "GlobalMaxPool"] { t[op] = { node, _ in node.dataLayout = .nchw } }
        return t
    }()
}
