import ModelIR

extension TFLiteImport {
    /// Convolutions (OHWI weights; depthwise 1HWO with group = channels) and pooling, on NHWC.
    static let convMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        for builtin in ["CONV_2D", "DEPTHWISE_CONV_2D"] {
            t[builtin] = { node, builtin, graph in
                node.op = .conv
                node.dataLayout = .nhwc
                node.attributes["strides"] = .ints([int(node, "stride_h") ?? 1, int(node, "stride_w") ?? 1])
                // Schema default for absent dilation factors is 1.
                node.attributes["dilations"] = .ints([int(node, "dilation_h_factor") ?? 1, int(node, "dilation_w_factor") ?? 1])
                node.attributes["auto_pad"] = padding(node)
                let cin = node.inputs.first.flatMap { channels($0, graph) }
                if builtin == "CONV_2D" {
                    node.kernelLayout = .ohwi
                    let kin = node.inputs.count > 1 ? channels(node.inputs[1], graph) : nil
                    if let cin, let kin, kin > 0 { node.attributes["group"] = .int(max(1, cin / kin)) }
                    else { node.attributes["group"] = .int(1) }
                } else {
                    node.kernelLayout = .ihwo1
                    node.attributes["group"] = .int(cin ?? 1)
                }
            }
        }
        t["TRANSPOSE_CONV"] = { node, _, graph in
            // Inputs: output_shape, weights (OHWI), input, bias? -> X, W, B?
            node.op = .convTranspose
            node.dataLayout = .nhwc
            node.kernelLayout = .ohwi
            let ins = node.inputs
            if ins.count >= 3 {
                if let shapeID = ins[0], let os = graph.values[shapeID].constant?.integers(limit: 8) {
                    node.attributes["output_shape"] = .ints(os)
                }
                node.inputs = [ins[2], ins[1]] + (ins.count > 3 ? [ins[3]] : [])
            }
            node.attributes["strides"] = .ints([int(node, "stride_h") ?? 1, int(node, "stride_w") ?? 1])
            node.attributes["auto_pad"] = padding(node)
            node.attributes["group"] = .int(1)
        }
        for builtin in ["AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"] {
            t[builtin] = { node, builtin, _ in
                node.op = OpKind(builtin == "MAX_POOL_2D" ? "MaxPool" : builtin == "AVERAGE_POOL_2D" ? "AveragePool" : "LpPool")
                node.dataLayout = .nhwc
                node.attributes["kernel_shape"] = .ints([int(node, "filter_height") ?? 1, int(node, "filter_width") ?? 1])
                node.attributes["strides"] = .ints([int(node, "stride_h") ?? 1, int(node, "stride_w") ?? 1])
                node.attributes["auto_pad"] = padding(node)
            }
        }
        return t
    }()
}
