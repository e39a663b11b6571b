import CTFLite
import ModelIR

/// TFLite builtin operators -> canonical ops, with canonical attributes
/// (`strides`, `dilations`, `auto_pad`, `kernel_shape`, `group`, `axis`, ...)
/// next to the option fields the file had, and the NHWC / OHWI / 1HWO
/// layouts stated on the node.
public enum TFLiteLowering {
    /// Builtins that map one-to-one onto a canonical op with no attribute work.
    static let direct: [String: String] = [
        "ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "POW": "Pow", "MAXIMUM": "Max", "MINIMUM": "Min",
        "SQUARED_DIFFERENCE": "SquaredDifference", "FLOOR_DIV": "FloorDiv", "FLOOR_MOD": "FloorMod",
        "LOGISTIC": "Sigmoid", "TANH": "Tanh", "RELU": "Relu", "RELU6": "Relu6", "RELU_N1_TO_1": "ReluN1To1",
        "LEAKY_RELU": "LeakyRelu", "PRELU": "PRelu", "HARD_SWISH": "HardSwish", "ELU": "Elu", "GELU": "Gelu",
        "EXP": "Exp", "LOG": "Log", "SQRT": "Sqrt", "RSQRT": "Rsqrt", "SQUARE": "Square", "ABS": "Abs", "NEG": "Neg",
        "SIN": "Sin", "COS": "Cos", "FLOOR": "Floor", "CEIL": "Ceil", "ROUND": "Round", "SIGN": "Sign",
        "EQUAL": "Equal", "NOT_EQUAL": "NotEqual", "LESS": "Less", "LESS_EQUAL": "LessOrEqual", "GREATER": "Greater",
        "GREATER_EQUAL": "GreaterOrEqual", "LOGICAL_AND": "And", "LOGICAL_OR": "Or", "LOGICAL_NOT": "Not",
        "SELECT": "Where", "SELECT_V2": "Where", "DEQUANTIZE": "Dequantize", "QUANTIZE": "Quantize",
        "TRANSPOSE": "Transpose", "GATHER_ND": "GatherND", "TILE": "Tile", "BROADCAST_TO": "Expand",
        "EXPAND_DIMS": "ExpandDims", "L2_NORMALIZATION": "L2Normalization", "CUMSUM": "CumSum", "ADD_N": "Sum",
        "LOCAL_RESPONSE_NORMALIZATION": "LocalResponseNormalization", "BATCH_MATMUL": "BatchMatMul",
        "STRIDED_SLICE": "StridedSlice", "SLICE": "SliceBySize", "PACK": "Pack", "UNPACK": "Unpack",
        "ZEROS_LIKE": "ZerosLike", "FILL": "Fill", "RANGE": "Range", "REVERSE_V2": "ReverseV2",
        "SCATTER_ND": "ScatterNDTF", "DENSIFY": "Densify", "WHERE": "NonZeroTF", "ONE_HOT": "OneHotTF", "MIRROR_PAD": "Pad",
    ]

    public static func lower(_ node: inout Node, builtin: String, graph: Graph) {
        let a = node.attributes
        func ints(_ k: String) -> Int? { a[k]?.int }
        func padding() -> Attribute { .string(a["padding"]?.string == "VALID" ? "VALID" : "SAME_UPPER") }
        func channels(_ v: ValueID?) -> Int? { v.flatMap { graph.values[$0].type.shape.dims?.last?.value } }
        if let act = a["fused_activation_function"]?.string, act != "NONE" {
            node.fusedActivation = FusedActivation(rawValue: act)
        }
        if let name = direct[builtin] { node.op = OpKind(name) }
        switch builtin {
        case "CONV_2D", "DEPTHWISE_CONV_2D":
            node.op = .conv
            node.dataLayout = .nhwc
            node.attributes["strides"] = .ints([ints("stride_h") ?? 1, ints("stride_w") ?? 1])
            // Schema default for absent dilation factors is 1.
            node.attributes["dilations"] = .ints([ints("dilation_h_factor") ?? 1, ints("dilation_w_factor") ?? 1])
            node.attributes["auto_pad"] = padding()
            let cin = node.inputs.first.flatMap { channels($0) }
            if builtin == "CONV_2D" {
                node.kernelLayout = .ohwi
                let kin = node.inputs.count > 1 ? channels(node.inputs[1]) : nil
                if let cin, let kin, kin > 0 { node.attributes["group"] = .int(max(1, cin / kin)) }
                else { node.attributes["group"] = .int(1) }
            } else {
                node.kernelLayout = .ihwo1
                node.attributes["group"] = .int(cin ?? 1)
            }
        case "TRANSPOSE_CONV":
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
            node.attributes["strides"] = .ints([ints("stride_h") ?? 1, ints("stride_w") ?? 1])
            node.attributes["auto_pad"] = padding()
            node.attributes["group"] = .int(1)
        case "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D":
            node.op = OpKind(builtin == "MAX_POOL_2D" ? "MaxPool" : builtin == "AVERAGE_POOL_2D" ? "AveragePool" : "LpPool")
            node.dataLayout = .nhwc
            node.attributes["kernel_shape"] = .ints([ints("filter_height") ?? 1, ints("filter_width") ?? 1])
            node.attributes["strides"] = .ints([ints("stride_h") ?? 1, ints("stride_w") ?? 1])
            node.attributes["auto_pad"] = padding()
        case "FULLY_CONNECTED":
            node.op = .fullyConnected
        case "CONCATENATION":
            node.op = .concat
            node.attributes["axis"] = .int(ints("axis") ?? 0)
        case "RESHAPE":
            node.op = .reshape
        case "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR":
            node.op = OpKind("Resize")
            node.dataLayout = .nhwc
            node.attributes["mode"] = .string(builtin == "RESIZE_BILINEAR" ? "linear" : "nearest")
        case "SOFTMAX", "LOG_SOFTMAX":
            node.op = OpKind(builtin == "SOFTMAX" ? "Softmax" : "LogSoftmax")
            node.attributes["axis"] = .int(-1)
        case "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL":
            let names = ["MEAN": "ReduceMean", "SUM": "ReduceSum", "REDUCE_MAX": "ReduceMax", "REDUCE_MIN": "ReduceMin",
                         "REDUCE_PROD": "ReduceProd", "REDUCE_ANY": "ReduceAny", "REDUCE_ALL": "ReduceAll"]
            node.op = OpKind(names[builtin]!)
            node.attributes["keepdims"] = .int(ints("keep_dims") ?? 0)
        case "PAD", "PADV2", "MIRROR_PAD":
            node.op = OpKind("Pad")
            node.attributes["pairs_layout"] = .int(1)
            if builtin == "MIRROR_PAD" { node.attributes["mode"] = .string(a["mode"]?.string == "SYMMETRIC" ? "symmetric" : "reflect") }
        case "GATHER":
            node.op = OpKind("Gather")
            node.attributes["axis"] = .int(ints("axis") ?? 0)
        case "SPLIT":
            // Inputs: axis (constant), value -> value; axis as attribute.
            node.op = OpKind("Split")
            if node.inputs.count == 2, let axisID = node.inputs[0] {
                if let axis = graph.values[axisID].constant?.integers(limit: 1)?.first { node.attributes["axis"] = .int(axis) }
                node.inputs = [node.inputs[1]]
            }
        case "SPLIT_V":
            // Inputs: value, size_splits, axis (constant) -> value, split.
            node.op = OpKind("Split")
            if node.inputs.count == 3, let axisID = node.inputs[2] {
                if let axis = graph.values[axisID].constant?.integers(limit: 1)?.first { node.attributes["axis"] = .int(axis) }
                node.inputs = Array(node.inputs.prefix(2))
            }
        case "SQUEEZE":
            node.op = OpKind("Squeeze")
            if let dims = a["squeeze_dims"]?.ints { node.attributes["axes"] = .ints(dims) }
        case "SHAPE":
            node.op = OpKind("Shape")
        case "CAST":
            node.op = OpKind("Cast")
            if let out = node.outputs.first { node.attributes["to"] = .string(graph.values[out].type.dtype.rawValue) }
            // Casts to bfloat16 truncate, as ModelLens has always run them (not compared with
            // LiteRT: no model at hand casts to bfloat16).
            node.attributes["bfloat16_rounding"] = .string("truncate")
        case "ARG_MAX", "ARG_MIN":
            node.op = OpKind(builtin == "ARG_MAX" ? "ArgMax" : "ArgMin")
            node.attributes["keepdims"] = .int(0)
            if let out = node.outputs.first { node.attributes["output_dtype_name"] = .string(graph.values[out].type.dtype.rawValue) }
        case "TOPK_V2":
            node.op = OpKind("TopK")
        case "DEPTH_TO_SPACE", "SPACE_TO_DEPTH":
            node.op = OpKind(builtin == "DEPTH_TO_SPACE" ? "DepthToSpace" : "SpaceToDepth")
            node.dataLayout = .nhwc
            if let b = ints("block_size") { node.attributes["blocksize"] = .int(b) }
        case "DEQUANTIZE":
            // fp16 weights stored as float16 constants and widened at load time.
            if let src = node.inputs.first ?? nil, let c = graph.values[src].constant, c.dtype == .float16 {
                node.attributes["fp16_weights"] = .int(1)
            }
        case "WHILE":
            node.op = OpKind("While")
        case "IF":
            node.op = .ifOp
        case "CALL_ONCE":
            node.op = OpKind("CallOnce")
        default:
            break
        }
    }
}

extension TFLiteLowering {
    /// Canonical op -> the TFLite builtins lowered onto it: every builtin of the schema is put
    /// through `lower` on a node without inputs, so this is what the importer does, not a list
    /// kept beside it. Builtins left opaque (no canonical op yet) are not listed.
    public static var builtinsByCanonicalOp: [String: [String]] {
        var out: [String: [String]] = [:]
        let graph = Graph(name: "probe")
        var code: Int32 = 0
        while let name = mltfl_builtin_name(code).map({ String(cString: $0) }) {
            code += 1
            guard name != "CUSTOM", !name.hasPrefix("PLACEHOLDER") else { continue }
            var node = Node(name: name, op: .opaque, sourceOp: name, domain: "tflite", version: 1, inputs: [], outputs: [])
            lower(&node, builtin: name, graph: graph)
            if node.op != .opaque { out[node.op.rawValue, default: []].append(name) }
        }
        return out
    }
}
