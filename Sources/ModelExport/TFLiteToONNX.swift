import ModelIR
import ModelRuntime

/// TFLite form -> ONNX form (opset 14). The mirror of ONNXToTFLite: convolutions,
/// pools, resizes and the ops around them run NCHW (layout [0, 3, 1, 2] of the NHWC
/// source), kernels are permuted to OIHW once, fused activations become their own
/// nodes, fp16 weights (DEQUANTIZE) and densified sparse weights become float32
/// initializers.
final class TFLiteToONNX: LayoutConverter {
    static let opset = 14
    static let channelsFirst = [0, 3, 1, 2]

    override func transposeNode(_ x: ValueID, _ perm: [Int], name: String, dtype: DType, shape: [Int]) -> ValueID {
        let r = newValue(name, dtype, shape)
        append("Transpose", [x], [r], name: name, attrs: ["perm": .ints(perm)])
        return r
    }

    override func reshapeNode(_ x: ValueID, _ shape: [Int], name: String, dtype: DType) -> ValueID {
        let s = newConstant(name + "/shape", TensorOps.make(int64: shape))
        let r = newValue(name, dtype, shape)
        append("Reshape", [x, s], [r], name: name)
        return r
    }

    func append(_ op: String, _ inputs: [ValueID?], _ outputs: [ValueID], name: String, attrs: [String: Attribute] = [:]) {
        out.nodes.append(Node(name: name, op: OpKind(op), sourceOp: op, domain: "", version: TFLiteToONNX.opset, inputs: inputs, outputs: outputs, attributes: attrs))
    }

    static func convert(_ model: Model, path: String, options: Converter.Options) throws -> (Graph, Int, ConversionReport) {
        let c = TFLiteToONNX(model.graph, path: path, options: options)
        c.report.sourceFormat = "tflite"
        c.report.targetFormat = "onnx"
        // fp16 DEQUANTIZE and DENSIFY of constants: computed once with the runtime's kernels.
        if let exec = try? Executor(model: model, threads: 1, keepFoldedValues: true) { c.folded = exec.foldedValues }
        try c.run()
        return (c.out, opset, c.report)
    }

    func run() throws {
        for v in src.inputs where src.values[v].constant == nil {
            let val = src.values[v]
            let s = try shape(v)
            if s.count == 4 && !options.keepIOLayout && val.type.dtype.isFloatingPoint {
                map[v] = (newValue(val.name, val.type.dtype, LayoutConverter.apply(TFLiteToONNX.channelsFirst, s)), TFLiteToONNX.channelsFirst)
            } else {
                map[v] = (newValue(val.name, val.type.dtype, s), nil)
            }
            out.inputs.append(map[v]!.id)
        }
        for node in src.nodes {
            if node.outputs.allSatisfy({ constant($0) != nil }) {
                report.opsMapped["\(node.sourceOp) -> (folded into a constant)", default: 0] += 1
                report.constantsFolded += 1
                continue
            }
            try lower(node)
        }
        for v in src.outputs {
            let name = src.values[v].name
            let id = try get(v, options.keepIOLayout ? nil : map[v]?.perm)
            for k in out.values.indices where out.values[k].name == name && k != id { out.values[k].name = name + "/internal" }
            out.values[id].name = name
            out.outputs.append(id)
        }
        report.transposesKept = out.nodes.filter { $0.sourceOp == "Transpose" }.count - report.transposesInserted
        // ONNX needs unique names: the writer makes them so; names are also node names here.
    }

    /// Emits `op` for source `node`, then its fused activation; maps the node's output.
    @discardableResult
    func emit(_ op: String, _ inputs: [ValueID?], _ node: Node, shape: [Int], perm: [Int]?, attrs: [String: Attribute] = [:], dtype: DType? = nil) throws -> ValueID {
        let o = node.outputs[0]
        let outShape = LayoutConverter.apply(perm, shape)
        let type = dtype ?? src.values[o].type.dtype
        let name = src.values[o].name
        var id = newValue(name, type, outShape)
        append(op, inputs, [id], name: name.isEmpty ? op : name, attrs: attrs)
        report.opsMapped["\(node.sourceOp) -> \(op)", default: 0] += 1
        if let act = node.fusedActivation {
            let pre = id
            out.values[pre].name = name + "/pre_activation"
            id = newValue(name, type, outShape)
            switch act {
            case .relu: append("Relu", [pre], [id], name: name + "/relu")
            case .relu6, .reluN1To1:
                let lo = newConstant(name + "/min", TensorOps.make([act == .relu6 ? 0 : -1], []))
                let hi = newConstant(name + "/max", TensorOps.make([act == .relu6 ? 6 : 1], []))
                append("Clip", [pre, lo, hi], [id], name: name + "/clip")
            case .tanh: append("Tanh", [pre], [id], name: name + "/tanh")
            case .signBit: throw fail(node, "the SIGN_BIT activation has no ONNX counterpart")
            }
            report.opsMapped["(fused \(act.rawValue)) -> \(act == .relu ? "Relu" : act == .tanh ? "Tanh" : "Clip")", default: 0] += 1
        }
        map[o] = (id, perm)
        return id
    }

    func lower(_ node: Node) throws {
        guard node.domain == "tflite" else { throw fail(node, "custom op '\(node.sourceOp)' has no ONNX counterpart") }
        if node.sourceOp == "DEQUANTIZE", let c = constant(node.inputs.first ?? nil), c.dtype == .float16, let f = TensorOps.floats(c) {
            // fp16 weights (when the runtime could not fold them: models with custom ops).
            folded[node.outputs[0]] = TensorOps.make(f, c.shape)
            report.opsMapped["DEQUANTIZE -> (folded into a constant)", default: 0] += 1
            report.constantsFolded += 1
            return
        }
        let x = node.inputs.first ?? nil
        let op = node.sourceOp
        switch op {
        case "CONV_2D", "DEPTHWISE_CONV_2D":
            try lowerConv(node)
        case "MAX_POOL_2D", "AVERAGE_POOL_2D":
            guard let x else { throw fail(node, "no input") }
            let inShape = try shape(x), outShape = try shape(node.outputs[0])
            let k = [node.int("filter_height") ?? 1, node.int("filter_width") ?? 1]
            let s = [node.int("stride_h") ?? 1, node.int("stride_w") ?? 1]
            var attrs: [String: Attribute] = ["kernel_shape": .ints(k), "strides": .ints(s),
                                              "pads": .ints(pads(node, inShape, k, s, [1, 1]))]
            if op == "AVERAGE_POOL_2D" { attrs["count_include_pad"] = .int(0) }
            try emit(op == "MAX_POOL_2D" ? "MaxPool" : "AveragePool", [try get(x, TFLiteToONNX.channelsFirst)], node, shape: outShape,
                     perm: TFLiteToONNX.channelsFirst, attrs: attrs)
        case "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "POW", "PRELU", "SQUARED_DIFFERENCE":
            try lowerBinary(node)
        case "LOGISTIC", "RELU", "TANH", "HARD_SWISH", "EXP", "LOG", "SQRT", "NEG", "ABS", "ELU", "FLOOR", "CEIL", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "GELU":
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
        case "CONCATENATION":
            let c = try concatOperands(node)
            try emit("Concat", c.values, node, shape: c.shape, perm: c.layout, attrs: ["axis": .int(c.axis)])
        case "RESHAPE", "SQUEEZE", "EXPAND_DIMS":
            guard let x else { throw fail(node, "no input") }
            let inShape = try shape(x), outShape = try shape(node.outputs[0])
            let p = map[x]?.perm
            let input = try get(x, LayoutConverter.orderEquivalent(inShape, p) ? p : nil)
            let s = newConstant(node.name + "/shape", TensorOps.make(int64: outShape))
            try emit("Reshape", [input, s], node, shape: outShape, perm: nil)
        case "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD":
            guard let x, node.inputs.count > 1, let axesData = constant(node.inputs[1])?.integers() else { throw fail(node, "the axes must be constant") }
            let names = ["MEAN": "ReduceMean", "SUM": "ReduceSum", "REDUCE_MAX": "ReduceMax", "REDUCE_MIN": "ReduceMin", "REDUCE_PROD": "ReduceProd"]
            let s = try shape(x)
            let axes = axesData.map { $0 < 0 ? $0 + s.count : $0 }
            let keep = (node.int("keep_dims") ?? 0) != 0
            let p = map[x]?.perm
            let (target, outPerm) = LayoutConverter.reduction(axes: axes, rank: s.count, layout: p, keep: keep)
            var attrs: [String: Attribute] = ["keepdims": .int(keep ? 1 : 0)]
            let input = try get(x, p)
            if op == "SUM" {
                // ReduceSum takes its axes as an input from opset 13.
                try emit("ReduceSum", [input, newConstant(node.name + "/axes", TensorOps.make(int64: target))], node, shape: try shape(node.outputs[0]), perm: outPerm, attrs: attrs)
            } else {
                attrs["axes"] = .ints(target)
                try emit(names[op]!, [input], node, shape: try shape(node.outputs[0]), perm: outPerm, attrs: attrs)
            }
        case "PAD", "PADV2":
            guard let x, node.inputs.count >= 2, let pd = constant(node.inputs[1])?.integers() else { throw fail(node, "the paddings must be constant") }
            let s = try shape(x)
            let p = map[x]?.perm
            let order = p ?? Array(0..<s.count)
            let begins = order.map { pd[$0 * 2] }, ends = order.map { pd[$0 * 2 + 1] }
            var ins: [ValueID?] = [try get(x, p), newConstant(node.name + "/pads", TensorOps.make(int64: begins + ends))]
            if op == "PADV2", node.inputs.count > 2, let v = node.inputs[2] { ins.append(try get(v, nil)) }
            try emit("Pad", ins, node, shape: try shape(node.outputs[0]), perm: p, attrs: ["mode": .string("constant")])
        case "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR":
            guard let x else { throw fail(node, "no input") }
            let outShape = try shape(node.outputs[0])
            let align = (node.int("align_corners") ?? 0) != 0, half = (node.int("half_pixel_centers") ?? 0) != 0
            let bilinear = op == "RESIZE_BILINEAR"
            var attrs: [String: Attribute] = ["mode": .string(bilinear ? "linear" : "nearest"),
                                              "coordinate_transformation_mode": .string(align ? "align_corners" : half ? (bilinear ? "half_pixel" : "tf_half_pixel_for_nn") : "asymmetric")]
            if !bilinear { attrs["nearest_mode"] = .string(align ? "round_prefer_ceil" : "floor") }
            let sizes = newConstant(node.name + "/sizes", TensorOps.make(int64: LayoutConverter.apply(TFLiteToONNX.channelsFirst, outShape)))
            try emit("Resize", [try get(x, TFLiteToONNX.channelsFirst), nil, nil, sizes], node, shape: outShape, perm: TFLiteToONNX.channelsFirst, attrs: attrs)
        case "DEPTH_TO_SPACE", "SPACE_TO_DEPTH":
            guard let x else { throw fail(node, "no input") }
            var attrs: [String: Attribute] = ["blocksize": .int(node.int("block_size") ?? 1)]
            if op == "DEPTH_TO_SPACE" { attrs["mode"] = .string("DCR") }
            try emit(op == "DEPTH_TO_SPACE" ? "DepthToSpace" : "SpaceToDepth", [try get(x, TFLiteToONNX.channelsFirst)], node,
                     shape: try shape(node.outputs[0]), perm: TFLiteToONNX.channelsFirst, attrs: attrs)
        case "FULLY_CONNECTED":
            try lowerDense(node)
        case "SOFTMAX":
            guard let x else { throw fail(node, "no input") }
            let s = try shape(x)
            guard (node.float("beta") ?? 1) == 1 else { throw fail(node, "softmax with beta \(node.float("beta")!)") }
            try emit("Softmax", [try get(x, nil)], node, shape: s, perm: nil, attrs: ["axis": .int(s.count - 1)])
        case "STRIDED_SLICE":
            try lowerStridedSlice(node)
        case "TRANSPOSE_CONV":
            // Imported as X, W (OHWI), B? with the output shape as an attribute.
            guard let x, node.inputs.count >= 2, let wID = node.inputs[1], let w = constant(wID), w.shape.count == 4 else {
                throw fail(node, "only transposed convolutions with constant weights convert")
            }
            let inShape = try shape(x), outShape = try shape(node.outputs[0])
            let strides = [node.int("stride_h") ?? 1, node.int("stride_w") ?? 1]
            var weights = TensorOps.permute(w, [3, 0, 1, 2])  // OHWI -> IOHW
            if weights.dtype != .float32, let f = TensorOps.floats(weights) { weights = TensorOps.make(f, weights.shape) }
            report.constantsFolded += 1
            let k = [w.shape[1], w.shape[2]]
            var pads = [0, 0, 0, 0]
            for d in 0..<2 {
                let total = max((inShape[1 + d] - 1) * strides[d] + k[d] - outShape[1 + d], 0)
                pads[d] = total / 2
                pads[d + 2] = total - total / 2
            }
            var ins: [ValueID?] = [try get(x, TFLiteToONNX.channelsFirst), newConstant(src.values[wID].name + "/iohw", weights)]
            if node.inputs.count > 2, let b = node.inputs[2], let bd = constant(b) {
                ins.append(newConstant(src.values[b].name, bd.dtype == .float32 ? bd : TensorOps.make(TensorOps.floats(bd) ?? [], bd.shape)))
            }
            try emit("ConvTranspose", ins, node, shape: outShape, perm: TFLiteToONNX.channelsFirst,
                     attrs: ["kernel_shape": .ints(k), "strides": .ints(strides), "pads": .ints(pads)])
        case "GATHER":
            guard let x, node.inputs.count > 1, let idx = node.inputs[1], let indices = constant(idx)?.integers() else { throw fail(node, "the indices must be constant") }
            let s = try shape(x)
            var axis = node.int("axis") ?? 0
            if axis < 0 { axis += s.count }
            let p = map[x]?.perm
            let target = LayoutConverter.targetAxis(axis, p)
            let indexShape = constant(idx)!.shape
            guard indexShape.count <= 1 || p == nil else { throw fail(node, "multi-dimensional indices on a permuted tensor") }
            try emit("Gather", [try get(x, p), newConstant(node.name + "/indices", TensorOps.make(int64: indices, indexShape))], node,
                     shape: try shape(node.outputs[0]), perm: indexShape.count == 1 ? p : nil, attrs: ["axis": .int(target)])
        case "TRANSPOSE":
            guard let x, node.inputs.count > 1, let q = constant(node.inputs[1])?.integers() else { throw fail(node, "the permutation must be constant") }
            let p = map[x]?.perm
            let inv = TensorOps.inverse(p ?? Array(0..<q.count))
            let t = q.map { inv[$0] }
            try emit("Transpose", [try get(x, p)], node, shape: try shape(node.outputs[0]), perm: nil, attrs: ["perm": .ints(t)])
        default:
            throw fail(node, "no ONNX counterpart in ModelLens yet")
        }
    }

    /// ONNX pads (top, left, bottom, right) for TFLite's padding mode.
    func pads(_ node: Node, _ input: [Int], _ kernel: [Int], _ strides: [Int], _ dilations: [Int]) -> [Int] {
        // An absent padding field is the schema default, SAME.
        guard node.string("padding") != "VALID" else { return [0, 0, 0, 0] }
        var p = [0, 0, 0, 0]
        for d in 0..<2 {
            let inSize = input[1 + d], out = (inSize + strides[d] - 1) / strides[d]
            let total = max((out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - inSize, 0)
            p[d] = total / 2
            p[d + 2] = total - total / 2
        }
        return p
    }

    func lowerConv(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 2, let w = constant(node.inputs[1]), w.shape.count == 4 else {
            throw fail(node, "only convolutions with constant weights convert")
        }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        guard inShape.count == 4, outShape.count == 4 else { throw fail(node, "input and output must be NHWC (rank 4), not \(inShape) -> \(outShape)") }
        let depthwise = node.sourceOp == "DEPTHWISE_CONV_2D"
        // OHWI -> OIHW; 1HWO -> O1HW.
        var weights = TensorOps.permute(w, depthwise ? [3, 0, 1, 2] : [0, 3, 1, 2])
        if weights.dtype != .float32, let f = TensorOps.floats(weights) { weights = TensorOps.make(f, weights.shape) }
        report.constantsFolded += 1
        let kernel = [weights.shape[2], weights.shape[3]]
        let strides = [node.int("stride_h") ?? 1, node.int("stride_w") ?? 1]
        let dilations = [node.int("dilation_h_factor") ?? 1, node.int("dilation_w_factor") ?? 1]
        let group = depthwise ? inShape[3] : max(1, inShape[3] / max(1, w.shape[3]))
        var ins: [ValueID?] = [try get(x, TFLiteToONNX.channelsFirst), newConstant(src.values[node.inputs[1]!].name + "/oihw", weights)]
        if node.inputs.count > 2, let b = node.inputs[2], let bd = constant(b) {
            ins.append(newConstant(src.values[b].name, bd.dtype == .float32 ? bd : TensorOps.make(TensorOps.floats(bd) ?? [], bd.shape)))
        }
        try emit("Conv", ins, node, shape: outShape, perm: TFLiteToONNX.channelsFirst,
                 attrs: ["kernel_shape": .ints(kernel), "strides": .ints(strides), "dilations": .ints(dilations), "group": .int(group),
                         "pads": .ints(pads(node, inShape, kernel, strides, dilations))])
    }

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

    func lowerDense(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 2, let w = constant(node.inputs[1]), w.shape.count == 2 else {
            throw fail(node, "only constant weights convert")
        }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let units = w.shape[0], depth = w.shape[1]
        let p = map[x]?.perm
        var input = try get(x, LayoutConverter.orderEquivalent(inShape, p) ? p : nil)
        let rows = inShape.reduce(1, *) / max(1, depth)
        if inShape != [rows, depth] {
            input = reshapeNode(input, [rows, depth], name: node.name + "/rows", dtype: .float32)
        }
        let weights = w.dtype == .float32 ? w : TensorOps.make(TensorOps.floats(w) ?? [], w.shape)
        var ins: [ValueID?] = [input, newConstant(src.values[node.inputs[1]!].name, weights)]
        if node.inputs.count > 2, let b = node.inputs[2], let bd = constant(b) {
            ins.append(newConstant(src.values[b].name, bd.dtype == .float32 ? bd : TensorOps.make(TensorOps.floats(bd) ?? [], bd.shape)))
        }
        if outShape == [rows, units] {
            try emit("Gemm", ins, node, shape: outShape, perm: nil, attrs: ["transB": .int(1)])
        } else {
            let flat = newValue(node.name + "/gemm", .float32, [rows, units])
            append("Gemm", ins, [flat], name: node.name + "/gemm", attrs: ["transB": .int(1)])
            let s = newConstant(node.name + "/shape", TensorOps.make(int64: outShape))
            try emit("Reshape", [flat, s], node, shape: outShape, perm: nil)
        }
    }

    func lowerStridedSlice(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 4, let begin = constant(node.inputs[1])?.integers(),
              let end = constant(node.inputs[2])?.integers(), let strides = constant(node.inputs[3])?.integers() else {
            throw fail(node, "begin, end and strides must be constant")
        }
        guard (node.int("ellipsis_mask") ?? 0) == 0, (node.int("new_axis_mask") ?? 0) == 0, (node.int("offset") ?? 0) == 0 else {
            throw fail(node, "ellipsis, new-axis masks and offsets are not converted yet")
        }
        let s = try shape(x)
        let bm = node.int("begin_mask") ?? 0, em = node.int("end_mask") ?? 0, shrink = node.int("shrink_axis_mask") ?? 0
        var starts: [Int] = [], ends: [Int] = [], axes: [Int] = [], steps: [Int] = []
        for a in 0..<min(s.count, begin.count) {
            let st = strides[a]
            guard st != 0 else { throw fail(node, "a zero stride") }
            var b = begin[a], e = end[a]
            if bm & (1 << a) != 0 { b = st > 0 ? 0 : s[a] - 1 }
            if em & (1 << a) != 0 { e = st > 0 ? s[a] : -s[a] - 1 }
            if shrink & (1 << a) != 0 { e = (b < 0 ? b + s[a] : b) + 1; if e == 0 { e = s[a] } }
            starts.append(b); ends.append(e); axes.append(a); steps.append(st)
        }
        let p = map[x]?.perm
        let inv = p.map(TensorOps.inverse)
        let target = axes.map { inv?[$0] ?? $0 }
        let sliced = try shape(node.outputs[0])
        let ins: [ValueID?] = [try get(x, p), newConstant(node.name + "/starts", TensorOps.make(int64: starts)),
                               newConstant(node.name + "/ends", TensorOps.make(int64: ends)), newConstant(node.name + "/axes", TensorOps.make(int64: target)),
                               newConstant(node.name + "/steps", TensorOps.make(int64: steps))]
        if shrink == 0 {
            try emit("Slice", ins, node, shape: sliced, perm: p)
            return
        }
        // Shrunk axes: slice with them kept (size 1), then reshape to the output.
        var full: [Int] = []
        var k = 0
        for a in 0..<s.count {
            if a < starts.count, shrink & (1 << a) != 0 { full.append(1) } else { full.append(k < sliced.count ? sliced[k] : 1); k += 1 }
        }
        let mid = newValue(node.name + "/slice", src.values[x].type.dtype, LayoutConverter.apply(p, full))
        append("Slice", ins, [mid], name: node.name + "/slice")
        let input = LayoutConverter.orderEquivalent(full, p) ? mid : transposeNode(mid, TensorOps.inverse(p ?? Array(0..<full.count)), name: node.name + "/ordered", dtype: src.values[x].type.dtype, shape: full)
        try emit("Reshape", [input, newConstant(node.name + "/shape", TensorOps.make(int64: sliced))], node, shape: sliced, perm: nil)
    }
}
