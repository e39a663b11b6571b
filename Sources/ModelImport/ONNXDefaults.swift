import ModelIR

/// ONNX attribute defaults, by op and opset, made explicit on each node so
/// that nothing downstream needs to know which opset changed what.
/// (Facts from the ONNX operator specification.)
public enum ONNXDefaults {
    public static func apply(to node: inout Node, opset: Int) {
        func set(_ key: String, _ value: Attribute) {
            if node.attributes[key] == nil { node.attributes[key] = value }
        }
        switch node.sourceOp {
        case "Conv", "ConvInteger", "QLinearConv", "ConvTranspose":
            set("group", .int(1))
            set("auto_pad", .string("NOTSET"))
        case "MaxPool", "AveragePool", "LpPool":
            set("auto_pad", .string("NOTSET"))
            set("ceil_mode", .int(0))
            if node.sourceOp == "AveragePool" { set("count_include_pad", .int(0)) }
            if node.sourceOp == "MaxPool" { set("storage_order", .int(0)) }
            if node.sourceOp == "LpPool" { set("p", .int(2)) }
        case "Gemm":
            set("alpha", .float(1)); set("beta", .float(1))
            set("transA", .int(0)); set("transB", .int(0))
        case "Softmax", "LogSoftmax", "Hardmax":
            set("axis", .int(opset >= 13 ? -1 : 1))
        case "Flatten":
            set("axis", .int(1))
        case "Gather", "GatherElements", "Split", "Concat", "ArgMax", "ArgMin", "CumSum":
            if node.sourceOp != "Concat" { set("axis", .int(0)) }
            if node.sourceOp.hasPrefix("Arg") { set("keepdims", .int(1)); set("select_last_index", .int(0)) }
        case "LeakyRelu":
            set("alpha", .float(0.01))
        case "Elu", "Celu":
            set("alpha", .float(1))
        case "Selu":
            set("alpha", .float(1.67326319217681884765625)); set("gamma", .float(1.05070102214813232421875))
        case "HardSigmoid":
            set("alpha", .float(0.2)); set("beta", .float(0.5))
        case "BatchNormalization":
            set("epsilon", .float(1e-5)); set("momentum", .float(0.9))
        case "InstanceNormalization":
            set("epsilon", .float(1e-5))
        case "LayerNormalization":
            set("axis", .int(-1)); set("epsilon", .float(1e-5)); set("stash_type", .int(1))
        case "LRN":
            set("alpha", .float(0.0001)); set("beta", .float(0.75)); set("bias", .float(1))
        case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
             "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
            set("keepdims", .int(1))
        case "Resize":
            set("mode", .string("nearest"))
            set("coordinate_transformation_mode", .string(opset >= 11 ? "half_pixel" : "asymmetric"))
            set("nearest_mode", .string("round_prefer_floor"))
            set("cubic_coeff_a", .float(-0.75))
        case "Upsample":
            set("mode", .string("nearest"))
        case "Pad":
            set("mode", .string("constant"))
        case "DepthToSpace":
            set("mode", .string("DCR"))
        case "TopK":
            set("axis", .int(-1)); set("largest", .int(1)); set("sorted", .int(1))
        case "Dropout":
            if opset < 12 { set("ratio", .float(0.5)) }
        case "Transpose", "Squeeze", "Unsqueeze", "Reshape":
            break
        default:
            break
        }
        // dtype-valued attributes carry ONNX type codes; give rules names.
        switch node.sourceOp {
        case "Cast":
            if let to = node.attributes["to"]?.int { node.attributes["to"] = .string(dtypeFromONNX(Int32(truncatingIfNeeded: to)).rawValue) }
        case "QuantizeLinear", "DequantizeLinear":
            if let d = node.attributes["output_dtype"]?.int, d != 0 {
                node.attributes["output_dtype_name"] = .string(dtypeFromONNX(Int32(truncatingIfNeeded: d)).rawValue)
            }
        case "EyeLike", "Bernoulli", "RandomNormalLike", "RandomUniformLike", "RandomNormal", "RandomUniform", "Multinomial":
            if let d = node.attributes["dtype"]?.int {
                node.attributes["dtype_name"] = .string(dtypeFromONNX(Int32(truncatingIfNeeded: d)).rawValue)
            }
        case "LayerNormalization":
            if let d = node.attributes["stash_type"]?.int {
                node.attributes["stash_type_dtype"] = .string(dtypeFromONNX(Int32(truncatingIfNeeded: d)).rawValue)
            }
        default: break
        }
    }
}
