import ModelIR

extension TFLiteToONNX {
    /// Elementwise ops: binary ops with broadcasting, activations, softmax.
    static let elementwiseLowerings: [String: Lowering] = [
        "ADD": { c, node in try c.lowerBinary(node) },
        "SUB": { c, node in try c.lowerBinary(node) },
        "MUL": { c, node in try c.lowerBinary(node) },
        "DIV": { c, node in try c.lowerBinary(node) },
        "MAXIMUM": { c, node in try c.lowerBinary(node) },
        "MINIMUM": { c, node in try c.lowerBinary(node) },
        "POW": { c, node in try c.lowerBinary(node) },
        "PRELU": { c, node in try c.lowerBinary(node) },
        "SQUARED_DIFFERENCE": { c, node in try c.lowerBinary(node) },
        "LOGISTIC": { c, node in try c.lowerUnary(node) },
        "RELU": { c, node in try c.lowerUnary(node) },
        "TANH": { c, node in try c.lowerUnary(node) },
        "HARD_SWISH": { c, node in try c.lowerUnary(node) },
        "EXP": { c, node in try c.lowerUnary(node) },
        "LOG": { c, node in try c.lowerUnary(node) },
        "SQRT": { c, node in try c.lowerUnary(node) },
        "NEG": { c, node in try c.lowerUnary(node) },
        "ABS": { c, node in try c.lowerUnary(node) },
        "ELU": { c, node in try c.lowerUnary(node) },
        "FLOOR": { c, node in try c.lowerUnary(node) },
        "CEIL": { c, node in try c.lowerUnary(node) },
        "RELU6": { c, node in try c.lowerUnary(node) },
        "RELU_N1_TO_1": { c, node in try c.lowerUnary(node) },
        "LEAKY_RELU": { c, node in try c.lowerUnary(node) },
        "SOFTMAX": { c, node in try c.lowerSoftmax(node) },
    ]

    func lowerBinary(_ node: Node) throws {
        let names = ["ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "MAXIMUM": "Max", "MINIMUM": "Min", "POW": "Pow", "PRELU": "PRelu"]
        guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1] else { throw fail(node, "takes two inputs") }
        let s = try shape(node.outputs[0])
        let (ins, p) = try broadcastOperands(node, [a, b], outShape: s)
        if node.sourceOp == "SQUARED_DIFFERENCE" {
            let d = newValue(node.name + "/difference", src.values[node.outputs[0]].type.dtype, LayoutConverter.apply(p, s))
            append("Sub", ins, [d], name: node.name + "/difference")
            try emit("Mul", [d, d], node, shape: s, perm: p)
            return
        }
        try emit(names[node.sourceOp]!, ins, node, shape: s, perm: p)
    }

    /// Activations and unary math; RELU6 and RELU_N1_TO_1 become Clip.
    func lowerUnary(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        guard let x else { throw fail(node, "no input") }
        let p = map[x]?.perm
        let s = try shape(node.outputs[0])
        let input = try get(x, p)
        let names = ["LOGISTIC": "Sigmoid", "RELU": "Relu", "TANH": "Tanh", "HARD_SWISH": "HardSwish", "EXP": "Exp", "LOG": "Log", "SQRT": "Sqrt",
                     "NEG": "Neg", "ABS": "Abs", "ELU": "Elu", "FLOOR": "Floor", "CEIL": "Ceil", "LEAKY_RELU": "LeakyRelu"]
        if op == "RELU6" || op == "RELU_N1_TO_1" {
            let lo = newConstant(node.name + "/min", TensorOps.make([op == "RELU6" ? 0 : -1], []))
            let hi = newConstant(node.name + "/max", TensorOps.make([op == "RELU6" ? 6 : 1], []))
            try emit("Clip", [input, lo, hi], node, shape: s, perm: p)
        } else if let n = names[op] {
            try emit(n, [input], node, shape: s, perm: p, attrs: op == "LEAKY_RELU" ? ["alpha": .float(node.float("alpha") ?? 0.2)] : [:])
        } else {
            throw fail(node, "no ONNX counterpart at opset \(TFLiteToONNX.opset)")
        }
    }

    /// SOFTMAX (beta 1) -> Softmax over the last axis.
    func lowerSoftmax(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        guard let x else { throw fail(node, "no input") }
        let s = try shape(x)
        guard (node.float("beta") ?? 1) == 1 else { throw fail(node, "softmax with beta \(node.float("beta")!)") }
        try emit("Softmax", [try get(x, nil)], node, shape: s, perm: nil, attrs: ["axis": .int(s.count - 1)])
    }
}
