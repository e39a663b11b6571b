// Shape rules of elementwise ops: unary maps, broadcasting binaries,
// comparisons, normalisations that keep their input's shape, and casts.

let sameAsInput: [String] = [
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Elu", "Erf", "Exp",
    "Floor", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log", "Neg", "Reciprocal", "Relu", "Round",
    "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
    "Celu", "Mish", "Gelu", "Not", "BitwiseNot", "Softmax", "LogSoftmax", "Hardmax", "LRN", "Clip", "Shrink",
    "Relu6", "ReluN1To1", "Square", "Rsqrt", "Swish", "CumSum", "ReverseSequence", "MeanVarianceNormalization",
    "InstanceNormalization", "LpNormalization", "GroupNormalization", "L2Normalization", "Trilu",
    "ScatterND", "ScatterElements", "Scatter", "EyeLike", "RandomNormalLike", "RandomUniformLike",
    "Bernoulli", "ReverseV2", "SignBit", "FakeQuant", "LocalResponseNormalization", "Erfc",
    "Densify", // TFLite: a sparse constant expanded to its dense shape

]

let broadcasting: [String] = [
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Mod", "BitShift", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor", "PRelu", "SquaredDifference", "FloorDiv", "FloorMod", "Atan2",
]

let comparisons: [String] = [
    "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "NotEqual", "And", "Or", "Xor",
]

let elementwiseRules: [(String, ShapeRule)] = {
    var rules: [(String, ShapeRule)] = []
    for name in sameAsInput {
        rules.append((name, { ctx in
            guard var t = ctx.type(0) else { return [nil] }
            // EyeLike, Bernoulli, Random*Like may choose another element type.
            if let d = ctx.node.string("dtype_name").flatMap(DType.init(rawValue:)) { t.dtype = d }
            return [t]
        }))
    }
    for name in broadcasting {
        rules.append((name, { ctx in
            let types = ctx.inputTypes.compactMap { $0 }
            guard types.count == ctx.node.inputs.compactMap({ $0 }).count, let first = types.first else { return [nil] }
            let dtype = name == "PRelu" || name == "Pow" || name == "BitShift" ? first.dtype : (types.first { $0.dtype != .undefined }?.dtype ?? .undefined)
            let shapes = types.compactMap(\.shape.dims)
            guard shapes.count == types.count else { return [.of(dtype, nil)] }
            return [.of(dtype, try broadcast(shapes))]
        }))
    }
    for name in comparisons {
        rules.append((name, { ctx in
            guard let a = ctx.dims(0), let b = ctx.dims(1) else { return [.of(.bool, nil)] }
            return [.of(.bool, try broadcast([a, b]))]
        }))
    }
    // onnxruntime's QLinearAdd / QLinearMul: a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point.
    for name in ["QLinearAdd", "QLinearMul"] {
        rules.append((name, { ctx in
            guard let a = ctx.type(0) else { return [nil] }
            guard let ad = a.shape.dims, let bd = ctx.dims(3) else { return [.of(a.dtype, nil)] }
            return [.of(a.dtype, try broadcast([ad, bd]))]
        }))
    }
    // onnxruntime's QLinearLeakyRelu: x, x_scale, x_zero_point, y_scale, y_zero_point.
    rules.append(("QLinearLeakyRelu", { ctx in [ctx.type(0)] }))
    rules.append(("QLinearSigmoid", { ctx in [ctx.type(0)] }))
    rules.append(("IsNaN", { ctx in [ctx.type(0).map { .of(.bool, $0.shape.dims) }] }))
    rules.append(("IsInf", { ctx in [ctx.type(0).map { .of(.bool, $0.shape.dims) }] }))
    rules.append(("Where", { ctx in
        guard let c = ctx.dims(0), let x = ctx.type(1), let xd = x.shape.dims, let y = ctx.dims(2) else {
            return [ctx.type(1).map { .of($0.dtype, nil) }]
        }
        return [.of(x.dtype, try broadcast([c, xd, y]))]
    }))
    rules.append(("Cast", { ctx in
        guard let t = ctx.type(0) else { return [nil] }
        let to = ctx.node.attributes["to"]?.string.flatMap(DType.init(rawValue:)) ?? .undefined
        return [.of(to, t.shape.dims)]
    }))
    rules.append(("CastLike", { ctx in
        guard let t = ctx.type(0) else { return [nil] }
        return [.of(ctx.type(1)?.dtype ?? .undefined, t.shape.dims)]
    }))
    rules.append(("Dropout", { ctx in
        guard let t = ctx.type(0) else { return [nil, nil] }
        return [t, .of(.bool, t.shape.dims)]
    }))
    rules.append(("BatchNormalization", { ctx in
        guard let t = ctx.type(0) else { return [nil] }
        // Training mode also writes the running mean and variance, shaped like inputs 3 and 4.
        return Array([t, ctx.type(3), ctx.type(4)].prefix(max(ctx.node.outputs.count, 1)))
    }))
    rules.append(("LayerNormalization", { ctx in
        guard let t = ctx.type(0), let dims = t.shape.dims else { return [ctx.type(0), nil, nil] }
        let axis = try normalizeAxis(ctx.int("axis") ?? -1, rank: dims.count)
        let stat = Array(dims[..<axis]) + [Dim](repeating: .known(1), count: dims.count - axis)
        let statType = DType(rawValue: ctx.node.attributes["stash_type_dtype"]?.string ?? "") ?? .float32
        return [t, .of(statType, stat), .of(statType, stat)]
    }))
    // Quantisation: the stored dtype comes from the zero point (or attribute).
    rules.append(("QuantizeLinear", { ctx in
        guard let t = ctx.type(0) else { return [nil] }
        let out = ctx.type(2)?.dtype ?? DType(rawValue: ctx.node.attributes["output_dtype_name"]?.string ?? "") ?? .uint8
        return [.of(out, t.shape.dims)]
    }))
    rules.append(("DequantizeLinear", { ctx in
        guard let t = ctx.type(0) else { return [nil] }
        let out = DType(rawValue: ctx.node.attributes["output_dtype_name"]?.string ?? "") ?? ctx.type(1)?.dtype ?? .float32
        return [.of(out, t.shape.dims)]
    }))
    rules.append(("Dequantize", { ctx in
        guard let t = ctx.type(0) else { return [nil] }
        return [.of(.float32, t.shape.dims)]
    }))
    rules.append(("Quantize", { ctx in [ctx.type(0).map { .of(.undefined, $0.shape.dims) }] }))
    return rules
}()

// MARK: - costs (see CostModel.convention)

private let freeOps: Set<String> = ["Identity", "Dropout", "Cast", "CastLike", "EyeLike", "RandomNormalLike", "RandomUniformLike", "Densify"]

let elementwiseCosts: [(String, CostRule)] = {
    var rules: [(String, CostRule)] = freeOps.sorted().map { ($0, { _ in (.zero, .zero) }) }
    for name in sameAsInput + broadcasting + comparisons + ["IsNaN", "IsInf", "Where", "QuantizeLinear", "DequantizeLinear", "Dequantize", "Quantize"] {
        if freeOps.contains(name) { continue }
        let perElement: Int
        switch name {
        case "Softmax", "LogSoftmax", "Hardmax": perElement = 3
        case "InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization", "LpNormalization", "L2Normalization": perElement = 5
        case "DequantizeLinear", "QuantizeLinear": perElement = 2
        default: perElement = 1
        }
        rules.append((name, { ctx in (.zero, ctx.outElements() * perElement) }))
    }
    // Each operand rescaled to the output's scale and summed (multiplied), then rounded.
    rules.append(("QLinearAdd", { ctx in (.zero, ctx.outElements() * 3) }))
    rules.append(("QLinearMul", { ctx in (.zero, ctx.outElements() * 3) }))
    rules.append(("QLinearLeakyRelu", { ctx in (.zero, ctx.outElements()) }))   // a table lookup
    rules.append(("QLinearSigmoid", { ctx in (.zero, ctx.outElements()) }))
    rules.append(("BatchNormalization", { ctx in (.zero, ctx.outElements() * 2) }))
    rules.append(("LayerNormalization", { ctx in (.zero, ctx.outElements() * 5) }))
    return rules
}()
