import ModelIR
import ModelRuntime

extension ONNXToTFLite {
    /// Elementwise ops: activations, binary ops with broadcasting, softmax, identity.
    static let elementwiseLowerings: [String: Lowering] = [
        "Relu": { c, node, index in try c.lowerUnary(node) },
        "Sigmoid": { c, node, index in try c.lowerUnary(node) },
        "Tanh": { c, node, index in try c.lowerUnary(node) },
        "HardSwish": { c, node, index in try c.lowerUnary(node) },
        "Exp": { c, node, index in try c.lowerUnary(node) },
        "Log": { c, node, index in try c.lowerUnary(node) },
        "Sqrt": { c, node, index in try c.lowerUnary(node) },
        "Neg": { c, node, index in try c.lowerUnary(node) },
        "Abs": { c, node, index in try c.lowerUnary(node) },
        "Elu": { c, node, index in try c.lowerUnary(node) },
        "Floor": { c, node, index in try c.lowerUnary(node) },
        "Ceil": { c, node, index in try c.lowerUnary(node) },
        "Sin": { c, node, index in try c.lowerUnary(node) },
        "Cos": { c, node, index in try c.lowerUnary(node) },
        "LeakyRelu": { c, node, index in try c.lowerLeakyRelu(node) },
        "Clip": { c, node, index in try c.lowerClip(node) },
        "HardSigmoid": { c, node, index in try c.lowerHardSigmoid(node) },
        "Add": { c, node, index in try c.lowerBinary(node) },
        "Sub": { c, node, index in try c.lowerBinary(node) },
        "Mul": { c, node, index in try c.lowerBinary(node) },
        "Div": { c, node, index in try c.lowerBinary(node) },
        "Max": { c, node, index in try c.lowerBinary(node) },
        "Min": { c, node, index in try c.lowerBinary(node) },
        "Pow": { c, node, index in try c.lowerBinary(node) },
        "PRelu": { c, node, index in try c.lowerBinary(node) },
        "Softmax": { c, node, index in try c.lowerSoftmax(node) },
        "LogSoftmax": { c, node, index in try c.lowerSoftmax(node) },
        "Identity": { c, node, index in try c.lowerIdentity(node) },
        "Dropout": { c, node, index in try c.lowerIdentity(node) },
    ]

    /// Identity and inference-time Dropout: the output is another name for the input.
    func lowerIdentity(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        guard let x else { throw fail(node, "no input") }
        if let m = map[x] { map[node.outputs[0]] = m } else { map[node.outputs[0]] = (try get(x, nil), nil) }
    }

    /// Unary ops with a TFLite builtin of their own.
    func lowerUnary(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.op.rawValue
        let names = ["Relu": "RELU", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "HardSwish": "HARD_SWISH", "Exp": "EXP", "Log": "LOG",
                     "Sqrt": "SQRT", "Neg": "NEG", "Abs": "ABS", "Elu": "ELU", "Floor": "FLOOR", "Ceil": "CEIL", "Sin": "SIN", "Cos": "COS"]
        guard let x, let b = names[op] else { throw fail(node, "no TFLite counterpart") }
        let p = map[x]?.perm
        emit(b, [try get(x, p)], node, shape: try shape(node.outputs[0]), perm: p)
    }

    /// LeakyRelu -> LEAKY_RELU (alpha kept).
    func lowerLeakyRelu(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        guard let x else { throw fail(node, "no input") }
        let p = map[x]?.perm
        emit("LEAKY_RELU", [try get(x, p)], node, shape: try shape(node.outputs[0]), perm: p, attrs: ["alpha": .float(node.float("alpha") ?? 0.01)])
    }

    func lowerClip(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        var lo = node.float("min"), hi = node.float("max")
        if node.inputs.count > 1, let v = node.inputs[1] { lo = constant(v)?.doubles()?.first }
        if node.inputs.count > 2, let v = node.inputs[2] { hi = constant(v)?.doubles()?.first }
        let p = map[x]?.perm
        let s = try shape(node.outputs[0])
        let input = try get(x, p)
        if lo == 0 && hi == 6 {
            emit("RELU6", [input], node, shape: s, perm: p)
        } else if lo == 0 && hi == nil {
            emit("RELU", [input], node, shape: s, perm: p)
        } else if lo == -1 && hi == 1 {
            emit("RELU_N1_TO_1", [input], node, shape: s, perm: p)
        } else {
            var v = input
            if let hi {
                let c = newConstant(node.name + "/max", TensorOps.make([Float(hi)], []))
                v = emit("MINIMUM", [v, c], node, shape: s, perm: p, name: lo == nil ? nil : node.name + "/upper")
            }
            if let lo {
                let c = newConstant(node.name + "/min", TensorOps.make([Float(lo)], []))
                emit("MAXIMUM", [v, c], node, shape: s, perm: p)
            }
        }
    }

    /// HardSigmoid as MUL, ADD, MINIMUM, MAXIMUM.
    func lowerHardSigmoid(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        // max(0, min(1, alpha * x + beta)): MUL, ADD, MINIMUM, MAXIMUM.
        guard let x else { throw fail(node, "no input") }
        let p = map[x]?.perm
        let s = try shape(node.outputs[0])
        let a = newConstant(node.name + "/alpha", TensorOps.make([Float(node.float("alpha") ?? 0.2)], []))
        let b = newConstant(node.name + "/beta", TensorOps.make([Float(node.float("beta") ?? 0.5)], []))
        let one = newConstant(node.name + "/one", TensorOps.make([1], []))
        let zero = newConstant(node.name + "/zero", TensorOps.make([0], []))
        let t1 = emit("MUL", [try get(x, p), a], node, shape: s, perm: p, name: node.name + "/scaled")
        let t2 = emit("ADD", [t1, b], node, shape: s, perm: p, name: node.name + "/shifted")
        let t3 = emit("MINIMUM", [t2, one], node, shape: s, perm: p, name: node.name + "/upper")
        emit("MAXIMUM", [t3, zero], node, shape: s, perm: p)
    }

    func lowerBinary(_ node: Node) throws {
        let names = ["Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Max": "MAXIMUM", "Min": "MINIMUM", "Pow": "POW", "PRelu": "PRELU"]
        guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1], let builtin = names[node.sourceOp] else {
            throw fail(node, "takes two inputs here")
        }
        let s = try shape(node.outputs[0])
        let (ins, p) = try broadcastOperands(node, [a, b], outShape: s)
        emit(builtin, ins, node, shape: s, perm: p)
    }

    /// Softmax and LogSoftmax over the last axis of the TFLite layout.
    func lowerSoftmax(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.op.rawValue
        guard let x else { throw fail(node, "no input") }
        let p = map[x]?.perm
        let s = try shape(node.outputs[0])
        var axis = node.int("axis") ?? -1
        if axis < 0 { axis += s.count }
        let tflAxis = LayoutConverter.targetAxis(axis, p)
        // Before opset 13 Softmax flattens from `axis`: the same as the last axis when axis is the last one.
        guard tflAxis == s.count - 1 else { throw fail(node, "softmax over axis \(axis) that is not the last one (TFLite's SOFTMAX works on the last axis)") }
        emit(op == "Softmax" ? "SOFTMAX" : "LOG_SOFTMAX", [try get(x, p)], node, shape: s, perm: p, attrs: op == "Softmax" ? ["beta": .float(1)] : [:])
    }
}
