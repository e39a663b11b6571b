import ModelIR

extension TFLiteImport {
    /// Elementwise builtins: arithmetic with broadcasting (ADD, ...), activations, comparisons,
    /// logic, selection, quantize / dequantize, softmax, cast.
    static let elementwiseMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        let direct = [
            "ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "POW": "Pow", "MAXIMUM": "Max", "MINIMUM": "Min",
            "SQUARED_DIFFERENCE": "SquaredDifference", "FLOOR_DIV": "FloorDiv", "FLOOR_MOD": "FloorMod", "ADD_N": "Sum",
            "LOGISTIC": "Sigmoid", "TANH": "Tanh", "RELU": "Relu", "RELU6": "Relu6", "RELU_N1_TO_1": "ReluN1To1",
            "LEAKY_RELU": "LeakyRelu", "PRELU": "PRelu", "HARD_SWISH": "HardSwish", "ELU": "Elu", "GELU": "Gelu",
            "EXP": "Exp", "LOG": "Log", "SQRT": "Sqrt", "RSQRT": "Rsqrt", "SQUARE": "Square", "ABS": "Abs", "NEG": "Neg",
            "SIN": "Sin", "COS": "Cos", "FLOOR": "Floor", "CEIL": "Ceil", "ROUND": "Round", "SIGN": "Sign",
            "EQUAL": "Equal", "NOT_EQUAL": "NotEqual", "LESS": "Less", "LESS_EQUAL": "LessOrEqual", "GREATER": "Greater",
            "GREATER_EQUAL": "GreaterOrEqual", "LOGICAL_AND": "And", "LOGICAL_OR": "Or", "LOGICAL_NOT": "Not",
            "SELECT": "Where", "SELECT_V2": "Where", "QUANTIZE": "Quantize",
        ]
        for (builtin, op) in direct { t[builtin] = named(op) }
        t["DEQUANTIZE"] = { node, _, graph in
            node.op = .dequantize
            // fp16 weights stored as float16 constants and widened at load time.
            if let src = node.inputs.first ?? nil, let c = graph.values[src].constant, c.dtype == .float16 {
                node.attributes["fp16_weights"] = .int(1)
            }
        }
        for builtin in ["SOFTMAX", "LOG_SOFTMAX"] {
            t[builtin] = { node, builtin, _ in
                node.op = OpKind(builtin == "SOFTMAX" ? "Softmax" : "LogSoftmax")
                node.attributes["axis"] = .int(-1)
            }
        }
        t["CAST"] = { node, _, graph in
            node.op = OpKind("Cast")
            if let out = node.outputs.first { node.attributes["to"] = .string(graph.values[out].type.dtype.rawValue) }
            // Casts to bfloat16 truncate, as ModelLens has always run them (not compared with
            // LiteRT: no model at hand casts to bfloat16).
            node.attributes["bfloat16_rounding"] = .string("truncate")
        }
        return t
    }()
}
