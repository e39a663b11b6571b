import ModelIR
import ModelRuntime

/// ONNX form -> TFLite form.
///
/// Layouts: every value carries a permutation `p` (TFLite axis i holds ONNX axis p[i];
/// nil = same order). Convolutions, pools and the ops around them work on NHWC
/// (p = [0, 2, 3, 1]); elementwise ops, Concat, Slice, reductions and Transpose follow
/// their inputs' layout with their axes and constants remapped, and Reshape keeps it
/// when it only regroups the channel axes. A Transpose is inserted only where a value
/// must change layout: at 4-D inputs and outputs (when the IO layout is kept), and
/// before a Reshape or Flatten that mixes spatial and channel axes.
final class ONNXToTFLite: LayoutConverter {
    static let channelsLast = [0, 2, 3, 1]

    /// Conv node index -> (weights, bias, the BatchNorm's output) after folding.
    var bnFold: [Int: (w: TensorData, b: TensorData, output: ValueID, bn: Int)] = [:]
    var skip = Set<Int>()

    override func transposeNode(_ x: ValueID, _ perm: [Int], name: String, dtype: DType, shape: [Int]) -> ValueID {
        let p = newConstant(name + "/perm", TensorOps.make(int32: perm))
        let r = newValue(name, dtype, shape)
        out.nodes.append(Node(name: name, op: OpKind("Transpose"), sourceOp: "TRANSPOSE", domain: "tflite", version: 1, inputs: [x, p], outputs: [r]))
        return r
    }

    override func reshapeNode(_ x: ValueID, _ shape: [Int], name: String, dtype: DType) -> ValueID {
        emitReshape(x, shape, name: name, dtype: dtype, onnxOp: "(layout)")
    }

    static func convert(_ model: Model, path: String, options: Converter.Options) throws -> (Graph, ConversionReport) {
        // A copy of the graph where Shape and Size of values with known sizes are constants;
        // then the shape arithmetic after them (and any other constant subgraph) is computed
        // once with the runtime's kernels.
        let g = Graph(name: model.graph.name)
        g.values = model.graph.values
        g.nodes = model.graph.nodes
        g.inputs = model.graph.inputs
        g.outputs = model.graph.outputs
        for node in g.nodes where node.sourceOp == "Shape" || node.sourceOp == "Size" {
            guard let x = node.inputs.first ?? nil, let s = g.values[x].type.shape.concrete, let o = node.outputs.first else { continue }
            if node.sourceOp == "Size" {
                g.values[o].constant = TensorOps.make(int64: [s.reduce(1, *)], [])
                continue
            }
            let r = s.count
            var start = node.int("start") ?? 0, end = node.int("end") ?? r
            if start < 0 { start += r }
            if end < 0 { end += r }
            start = min(max(start, 0), r); end = min(max(end, start), r)
            g.values[o].constant = TensorOps.make(int64: Array(s[start..<end]))
        }
        let copy = Model(format: .onnx, path: model.path, fileSize: model.fileSize, graph: g)
        copy.opsets = model.opsets
        let c = ONNXToTFLite(g, path: path, options: options)
        c.report.sourceFormat = "onnx"
        c.report.targetFormat = "tflite"
        if let exec = try? Executor(model: copy, threads: 1, keepFoldedValues: true) { c.folded = exec.foldedValues }
        try c.run()
        return (c.out, c.report)
    }

    @discardableResult
    func emit(_ builtin: String, _ inputs: [ValueID?], _ node: Node, output: ValueID? = nil, shape: [Int], dtype: DType = .float32,
              perm: [Int]?, attrs: [String: Attribute] = [:], name: String? = nil, version: Int = 1) -> ValueID {
        let o = output ?? node.outputs[0]
        let id = newValue(name ?? src.values[o].name, dtype, LayoutConverter.apply(perm, shape))
        var n = Node(name: name ?? (node.name.isEmpty ? src.values[o].name : node.name), op: OpKind(builtin), sourceOp: builtin,
                     domain: "tflite", version: version, inputs: inputs, outputs: [id], attributes: attrs)
        if ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"].contains(builtin),
           n.attributes["fused_activation_function"] == nil {
            n.attributes["fused_activation_function"] = .string("NONE")
        }
        out.nodes.append(n)
        if name == nil { map[o] = (id, perm) }
        report.opsMapped["\(node.sourceOp) -> \(builtin)", default: 0] += 1
        return id
    }

    func emitReshape(_ input: ValueID, _ target: [Int], name: String, dtype: DType, onnxOp: String) -> ValueID {
        let s = newConstant(name + "/shape", TensorOps.make(int32: target))
        let r = newValue(name, dtype, target)
        out.nodes.append(Node(name: name, op: .reshape, sourceOp: "RESHAPE", domain: "tflite", version: 1, inputs: [input, s], outputs: [r],
                              attributes: ["new_shape": .ints(target)]))
        report.opsMapped["\(onnxOp) -> RESHAPE", default: 0] += 1
        return r
    }

    // MARK: the pass

    func run() throws {
        for n in src.nodes { for case let v? in n.inputs { consumers[v, default: 0] += 1 } }
        for v in src.outputs { consumers[v, default: 0] += 1 }
        planBatchNormFolding()
        planChannelShuffles()
        for v in src.inputs {
            let val = src.values[v]
            guard val.constant == nil else { continue }
            let s = try shape(v)
            if s.count == 4 && !options.keepIOLayout && val.type.dtype.isFloatingPoint {
                let id = newValue(val.name, val.type.dtype, LayoutConverter.apply(ONNXToTFLite.channelsLast, s))
                map[v] = (id, ONNXToTFLite.channelsLast)
            } else {
                map[v] = (newValue(val.name, val.type.dtype, s), nil)
            }
            out.inputs.append(map[v]!.id)
        }
        for (i, node) in src.nodes.enumerated() where !skip.contains(i) {
            if node.outputs.allSatisfy({ constant($0) != nil }) { continue }  // folded
            try lower(node, index: i)
        }
        for v in src.outputs {
            let name = src.values[v].name
            let want: [Int]? = options.keepIOLayout ? nil : map[v]?.perm
            let id = try get(v, want)
            // The output keeps the ONNX name; an internal value that had it is renamed.
            for k in out.values.indices where out.values[k].name == name && k != id { out.values[k].name = name + "/internal" }
            out.values[id].name = name
            out.outputs.append(id)
        }
        fuseActivations()
        removeDeadNodes()
        report.transposesKept = out.nodes.filter { $0.sourceOp == "TRANSPOSE" }.count - report.transposesInserted
    }

    /// Conv -> BatchNormalization with constant parameters, the conv's output read only by the BN.
    func planBatchNormFolding() {
        var producer: [ValueID: Int] = [:]
        for (i, n) in src.nodes.enumerated() { for o in n.outputs { producer[o] = i } }
        for (j, bn) in src.nodes.enumerated() where bn.sourceOp == "BatchNormalization" && bn.outputs.count == 1 {
            guard let x = bn.inputs.first ?? nil, let ci = producer[x], src.nodes[ci].sourceOp == "Conv", consumers[x] == 1,
                  !src.outputs.contains(x), bn.inputs.count == 5,
                  let gamma = constant(bn.inputs[1]).flatMap(TensorOps.floats), let beta = constant(bn.inputs[2]).flatMap(TensorOps.floats),
                  let mean = constant(bn.inputs[3]).flatMap(TensorOps.floats), let variance = constant(bn.inputs[4]).flatMap(TensorOps.floats) else { continue }
            let conv = src.nodes[ci]
            guard conv.inputs.count >= 2, let wData = constant(conv.inputs[1]), wData.shape.count == 4, var w = TensorOps.floats(wData) else { continue }
            let o = wData.shape[0]
            guard gamma.count == o, beta.count == o, mean.count == o, variance.count == o else { continue }
            var b = conv.inputs.count > 2 ? (constant(conv.inputs[2]).flatMap(TensorOps.floats) ?? []) : []
            if b.isEmpty { b = [Float](repeating: 0, count: o) }
            let eps = Float(bn.float("epsilon") ?? 1e-5)
            let per = w.count / o
            for c in 0..<o {
                let s = gamma[c] / (variance[c] + eps).squareRoot()
                for k in 0..<per { w[c * per + k] *= s }
                b[c] = (b[c] - mean[c]) * s + beta[c]
            }
            bnFold[ci] = (TensorOps.make(w, wData.shape), TensorOps.make(b, [o]), bn.outputs[0], j)
            skip.insert(j)
            report.constantsFolded += 1
            report.opsMapped["BatchNormalization -> (folded into CONV_2D)", default: 0] += 1
        }
    }

    /// Reshape [N, C, H, W] -> [N, g, C/g, H, W], Transpose (0, 2, 1, 3, 4), Reshape back to
    /// [N, C, H, W] (ShuffleNet's channel shuffle) is one permutation of the channels: a single
    /// GATHER on the NHWC channel axis instead of two reshapes and a transpose.
    var shuffles: [Int: (input: ValueID, output: ValueID, indices: [Int])] = [:]

    func planChannelShuffles() {
        var readers: [ValueID: [Int]] = [:]
        for (i, n) in src.nodes.enumerated() { for case let v? in n.inputs { readers[v, default: []].append(i) } }
        for (i, r1) in src.nodes.enumerated() where r1.sourceOp == "Reshape" {
            guard let x = r1.inputs.first ?? nil, let a = try? shape(x), a.count == 4, let b = try? shape(r1.outputs[0]), b.count == 5,
                  b[0] == a[0], b[1] * b[2] == a[1], b[3] == a[2], b[4] == a[3],
                  let t = readers[r1.outputs[0]], t.count == 1, src.nodes[t[0]].sourceOp == "Transpose", src.nodes[t[0]].ints("perm") == [0, 2, 1, 3, 4],
                  let r = readers[src.nodes[t[0]].outputs[0]], r.count == 1, src.nodes[r[0]].sourceOp == "Reshape",
                  (try? shape(src.nodes[r[0]].outputs[0])) == a, !src.outputs.contains(r1.outputs[0]), !src.outputs.contains(src.nodes[t[0]].outputs[0]) else { continue }
            let g = b[1], per = b[2]
            // Output channel j = (k, m) with k < per, m < g reads input channel m * per + k.
            let indices = (0..<a[1]).map { j in (j % g) * per + j / g }
            shuffles[i] = (x, src.nodes[r[0]].outputs[0], indices)
            skip.insert(t[0])
            skip.insert(r[0])
        }
    }

    // MARK: ops

    func lower(_ node: Node, index: Int) throws {
        let op = node.sourceOp
        if let shuffle = shuffles[index] {
            let p = map[shuffle.input]?.perm ?? ONNXToTFLite.channelsLast
            let axis = TensorOps.inverse(p)[1]
            let indices = newConstant(node.name + "/channel_order", TensorOps.make(int32: shuffle.indices))
            emit("GATHER", [try get(shuffle.input, p), indices], node, output: shuffle.output, shape: try shape(shuffle.output),
                 perm: p, attrs: ["axis": .int(axis), "batch_dims": .int(0)])
            report.opsMapped["Reshape + Transpose + Reshape (channel shuffle) -> GATHER", default: 0] += 1
            report.opsMapped["Reshape -> GATHER"] = nil
            return
        }
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { throw fail(node, "ops of domain '\(node.domain)' have no TFLite counterpart") }
        let x = node.inputs.first ?? nil
        switch op {
        case "Identity", "Dropout":
            guard let x else { throw fail(node, "no input") }
            if let m = map[x] { map[node.outputs[0]] = m } else { map[node.outputs[0]] = (try get(x, nil), nil) }
        case "Conv":
            try lowerConv(node, index: index)
        case "BatchNormalization":
            try lowerBatchNorm(node)
        case "Relu", "Sigmoid", "Tanh", "HardSwish", "Exp", "Log", "Sqrt", "Neg", "Abs", "Elu", "Floor", "Ceil", "Sin", "Cos", "Reciprocal", "Erf":
            let names = ["Relu": "RELU", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "HardSwish": "HARD_SWISH", "Exp": "EXP", "Log": "LOG",
                         "Sqrt": "SQRT", "Neg": "NEG", "Abs": "ABS", "Elu": "ELU", "Floor": "FLOOR", "Ceil": "CEIL", "Sin": "SIN", "Cos": "COS"]
            guard let x, let b = names[op] else { throw fail(node, "no TFLite counterpart") }
            let p = map[x]?.perm
            emit(b, [try get(x, p)], node, shape: try shape(node.outputs[0]), perm: p)
        case "LeakyRelu":
            guard let x else { throw fail(node, "no input") }
            let p = map[x]?.perm
            emit("LEAKY_RELU", [try get(x, p)], node, shape: try shape(node.outputs[0]), perm: p, attrs: ["alpha": .float(node.float("alpha") ?? 0.01)])
        case "Clip":
            try lowerClip(node)
        case "HardSigmoid":
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
        case "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu":
            try lowerBinary(node)
        case "MaxPool", "AveragePool":
            try lowerPool(node)
        case "GlobalAveragePool", "GlobalMaxPool":
            guard let x else { throw fail(node, "no input") }
            let axes = newConstant(node.name + "/axes", TensorOps.make(int32: [1, 2]))
            emit(op == "GlobalAveragePool" ? "MEAN" : "REDUCE_MAX", [try get(x, ONNXToTFLite.channelsLast), axes], node,
                 shape: try shape(node.outputs[0]), perm: ONNXToTFLite.channelsLast, attrs: ["keep_dims": .int(1)])
        case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd":
            try lowerReduce(node)
        case "Flatten", "Reshape", "Squeeze", "Unsqueeze":
            try lowerReshape(node)
        case "Transpose":
            try lowerTranspose(node)
        case "Concat":
            try lowerConcat(node)
        case "Slice":
            try lowerSlice(node)
        case "Gemm", "MatMul":
            try lowerDense(node)
        case "ConvTranspose":
            try lowerConvTranspose(node)
        case "Resize", "Upsample":
            try lowerResize(node)
        case "Split":
            try lowerSplit(node)
        case "Softmax", "LogSoftmax":
            guard let x else { throw fail(node, "no input") }
            let p = map[x]?.perm
            let s = try shape(node.outputs[0])
            var axis = node.int("axis") ?? -1
            if axis < 0 { axis += s.count }
            let tflAxis = LayoutConverter.targetAxis(axis, p)
            // Before opset 13 Softmax flattens from `axis`: the same as the last axis when axis is the last one.
            guard tflAxis == s.count - 1 else { throw fail(node, "softmax over axis \(axis) that is not the last one (TFLite's SOFTMAX works on the last axis)") }
            emit(op == "Softmax" ? "SOFTMAX" : "LOG_SOFTMAX", [try get(x, p)], node, shape: s, perm: p, attrs: op == "Softmax" ? ["beta": .float(1)] : [:])
        default:
            throw fail(node, "no TFLite counterpart in ModelLens yet")
        }
    }

    /// Explicit (top, left, bottom, right) pads of a conv or pool, and whether TFLite's SAME gives them.
    func padding(_ node: Node, input: [Int], output: [Int], kernel: [Int], strides: [Int], dilations: [Int]) -> (pads: [Int], same: Bool) {
        var pads = node.ints("pads") ?? [0, 0, 0, 0]
        if pads.count != 4 { pads = [0, 0, 0, 0] }
        let auto = node.string("auto_pad") ?? "NOTSET"
        var sameWants = [Int](repeating: 0, count: 4)
        for d in 0..<2 {
            let inSize = input[2 + d], outSame = (inSize + strides[d] - 1) / strides[d]
            let total = max((outSame - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - inSize, 0)
            sameWants[d] = total / 2
            sameWants[d + 2] = total - total / 2
        }
        if auto == "SAME_UPPER" { return (sameWants, true) }
        if auto == "SAME_LOWER" { pads = [sameWants[2], sameWants[3], sameWants[0], sameWants[1]] }
        if auto == "VALID" { pads = [0, 0, 0, 0] }
        // ceil_mode: extra rows and columns at the end so a VALID window count gives the ONNX output.
        for d in 0..<2 {
            let effective = (kernel[d] - 1) * dilations[d] + 1
            let have = input[2 + d] + pads[d] + pads[d + 2]
            let needed = (output[2 + d] - 1) * strides[d] + effective
            if needed > have { pads[d + 2] += needed - have }
        }
        let sameOut = output[2] == (input[2] + strides[0] - 1) / strides[0] && output[3] == (input[3] + strides[1] - 1) / strides[1]
        return (pads, pads == sameWants && sameOut && pads != [0, 0, 0, 0])
    }

    /// A PAD (or PADV2 with `value`) on an NHWC value; returns the padded value.
    func pad(_ x: ValueID, _ pads: [Int], onnxShape: [Int], node: Node, value: Float? = nil) -> ValueID {
        let paddings = newConstant(node.name + "/paddings", TensorOps.make(int32: [0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0], [4, 2]))
        var s = onnxShape
        s[2] += pads[0] + pads[2]
        s[3] += pads[1] + pads[3]
        var ins = [x, paddings]
        if let value { ins.append(newConstant(node.name + "/pad_value", TensorOps.make([value], []))) }
        return emit(value == nil ? "PAD" : "PADV2", ins, node, shape: s, perm: ONNXToTFLite.channelsLast, name: node.name + "/pad")
    }

    func lowerConv(_ node: Node, index: Int) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 2, let wID = node.inputs[1], var w = constant(wID), w.shape.count == 4 else {
            throw fail(node, "only 2-D convolutions with constant weights convert")
        }
        var b = node.inputs.count > 2 ? constant(node.inputs[2]) : nil
        var output = node.outputs[0]
        if let f = bnFold[index] { w = f.w; b = f.b; output = f.output }
        let inShape = try shape(x), outShape = try shape(output)
        let o = w.shape[0], group = node.int("group") ?? 1, cin = inShape[1]
        let kernel = [w.shape[2], w.shape[3]]
        let strides = node.ints("strides") ?? [1, 1], dilations = node.ints("dilations") ?? [1, 1]
        var input = try get(x, ONNXToTFLite.channelsLast)
        let (pads, same) = padding(node, input: inShape, output: outShape, kernel: kernel, strides: strides, dilations: dilations)
        var paddingName = "VALID"
        if same { paddingName = "SAME" } else if pads != [0, 0, 0, 0] { input = pad(input, pads, onnxShape: inShape, node: node) }
        var attrs: [String: Attribute] = ["padding": .string(paddingName), "stride_h": .int(strides[0]), "stride_w": .int(strides[1]),
                                          "dilation_h_factor": .int(dilations[0]), "dilation_w_factor": .int(dilations[1])]
        let builtin: String
        let weights: TensorData
        if group == 1 {
            builtin = "CONV_2D"
            weights = TensorOps.permute(w, [0, 2, 3, 1])
        } else if group == cin && w.shape[1] == 1 {
            builtin = "DEPTHWISE_CONV_2D"
            weights = TensorOps.permute(w, [1, 2, 3, 0])
            attrs["depth_multiplier"] = .int(o / cin)
        } else {
            throw fail(node, "grouped convolution (group \(group) of \(cin) channels) has no TFLite builtin")
        }
        report.constantsFolded += 1
        let wID2 = newConstant(src.values[wID].name + "/tflite", weights)
        let bias = b ?? TensorOps.make([Float](repeating: 0, count: o), [o])
        let bID = newConstant((node.name.isEmpty ? src.values[output].name : node.name) + "/bias", bias.dtype == .float32 ? bias : TensorOps.make(TensorOps.floats(bias) ?? [], [o]))
        emit(builtin, [input, wID2, bID], node, output: output, shape: outShape, perm: ONNXToTFLite.channelsLast, attrs: attrs,
             version: builtin == "CONV_2D" ? 1 : 2)
    }

    func lowerBatchNorm(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count == 5,
              let gamma = constant(node.inputs[1]).flatMap(TensorOps.floats), let beta = constant(node.inputs[2]).flatMap(TensorOps.floats),
              let mean = constant(node.inputs[3]).flatMap(TensorOps.floats), let variance = constant(node.inputs[4]).flatMap(TensorOps.floats) else {
            throw fail(node, "only inference BatchNormalization with constant parameters converts")
        }
        let s = try shape(x)
        let p: [Int]? = s.count == 4 ? ONNXToTFLite.channelsLast : nil
        guard s.count == 4 || s.count == 2 else { throw fail(node, "BatchNormalization on rank \(s.count)") }
        let eps = Float(node.float("epsilon") ?? 1e-5)
        let scale = zip(gamma, variance).map { $0 / ($1 + eps).squareRoot() }
        let shift = (0..<scale.count).map { beta[$0] - mean[$0] * scale[$0] }
        let c = scale.count
        let sc = newConstant(node.name + "/scale", TensorOps.make(scale, [c]))
        let sh = newConstant(node.name + "/shift", TensorOps.make(shift, [c]))
        report.constantsFolded += 2
        let t = emit("MUL", [try get(x, p), sc], node, shape: s, perm: p, name: node.name + "/scaled")
        emit("ADD", [t, sh], node, shape: s, perm: p)
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

    func lowerBinary(_ node: Node) throws {
        let names = ["Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Max": "MAXIMUM", "Min": "MINIMUM", "Pow": "POW", "PRelu": "PRELU"]
        guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1], let builtin = names[node.sourceOp] else {
            throw fail(node, "takes two inputs here")
        }
        let s = try shape(node.outputs[0])
        let (ins, p) = try broadcastOperands(node, [a, b], outShape: s)
        emit(builtin, ins, node, shape: s, perm: p)
    }

    func lowerPool(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, let kernel = node.ints("kernel_shape"), kernel.count == 2 else {
            throw fail(node, "only 2-D pooling converts")
        }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let strides = node.ints("strides") ?? [1, 1], dilations = node.ints("dilations") ?? [1, 1]
        guard dilations == [1, 1] else { throw fail(node, "dilated pooling has no TFLite builtin") }
        var input = try get(x, ONNXToTFLite.channelsLast)
        let (pads, same) = padding(node, input: inShape, output: outShape, kernel: kernel, strides: strides, dilations: dilations)
        let isMax = node.sourceOp == "MaxPool"
        var paddingName = "VALID"
        if same && (isMax || node.int("count_include_pad") ?? 0 == 0) {
            paddingName = "SAME"
        } else if pads != [0, 0, 0, 0] {
            guard isMax || node.int("count_include_pad") == 1 else {
                throw fail(node, "average pooling with padding \(pads) that excludes the pad from the count has no TFLite form")
            }
            input = pad(input, pads, onnxShape: inShape, node: node, value: isMax ? -Float.greatestFiniteMagnitude : nil)
        }
        emit(isMax ? "MAX_POOL_2D" : "AVERAGE_POOL_2D", [input], node, shape: outShape, perm: ONNXToTFLite.channelsLast,
             attrs: ["padding": .string(paddingName), "stride_h": .int(strides[0]), "stride_w": .int(strides[1]),
                     "filter_height": .int(kernel[0]), "filter_width": .int(kernel[1])])
    }

    func lowerReduce(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let names = ["ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM", "ReduceProd": "REDUCE_PROD"]
        let s = try shape(x)
        var axes = node.ints("axes") ?? (node.inputs.count > 1 ? constant(node.inputs[1])?.integers() : nil) ?? Array(0..<s.count)
        axes = axes.map { $0 < 0 ? $0 + s.count : $0 }
        let keep = (node.int("keepdims") ?? 1) != 0
        let p = map[x]?.perm
        let (tflAxes, outPerm) = LayoutConverter.reduction(axes: axes, rank: s.count, layout: p, keep: keep)
        let a = newConstant(node.name + "/axes", TensorOps.make(int32: tflAxes))
        emit(names[node.sourceOp]!, [try get(x, p), a], node, shape: try shape(node.outputs[0]), perm: outPerm, attrs: ["keep_dims": .int(keep ? 1 : 0)])
    }

    /// Channels-last layout of a rank-`r` value whose axes 1...k are channel axes.
    static func channelsLast(rank r: Int, channelAxes k: Int) -> [Int] { [0] + Array((k + 1)..<r) + Array(1...k) }

    func lowerReshape(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let dtype = src.values[x].type.dtype
        let p = map[x]?.perm
        if let p, !LayoutConverter.orderEquivalent(inShape, p) {
            // Regrouping the channel axes only: stay channels-last.
            let r = inShape.count
            if let k = (1..<r).first(where: { p == ONNXToTFLite.channelsLast(rank: r, channelAxes: $0) }) {
                let spatial = Array(inShape[(k + 1)...])
                let s = spatial.count
                if outShape.count > s + 1, outShape.first == inShape.first, Array(outShape.suffix(s)) == spatial {
                    let q = ONNXToTFLite.channelsLast(rank: outShape.count, channelAxes: outShape.count - 1 - s)
                    let target = LayoutConverter.apply(q, outShape)
                    let shapeID = newConstant(node.name + "/shape", TensorOps.make(int32: target))
                    emit("RESHAPE", [try get(x, p), shapeID], node, shape: outShape, dtype: dtype, perm: q, attrs: ["new_shape": .ints(target)])
                    return
                }
            }
        }
        let input = try get(x, LayoutConverter.orderEquivalent(inShape, p) ? p : nil)
        let shapeID = newConstant(node.name + "/shape", TensorOps.make(int32: outShape))
        emit("RESHAPE", [input, shapeID], node, shape: outShape, dtype: dtype, perm: nil, attrs: ["new_shape": .ints(outShape)])
    }

    func lowerTranspose(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let s = try shape(x)
        let q = node.ints("perm") ?? Array((0..<s.count).reversed())
        let pin = map[x]?.perm ?? Array(0..<s.count)
        let inv = TensorOps.inverse(pin)
        // Output layout: the input's, unless the plain order makes the transpose vanish.
        var candidates: [[Int]?] = [map[x]?.perm, nil]
        if q.count == 4 { candidates.append(ONNXToTFLite.channelsLast) }
        for pout in candidates {
            let po = pout ?? Array(0..<q.count)
            let t = po.map { inv[q[$0]] }
            if LayoutConverter.isIdentity(t) {
                map[node.outputs[0]] = (try get(x, map[x]?.perm), pout)
                report.opsMapped["Transpose -> (absorbed by the layout)", default: 0] += 1
                return
            }
        }
        let pout = map[x]?.perm
        let po = pout ?? Array(0..<q.count)
        let t = po.map { inv[q[$0]] }
        let permID = newConstant(node.name + "/perm", TensorOps.make(int32: t))
        emit("TRANSPOSE", [try get(x, map[x]?.perm), permID], node, shape: try shape(node.outputs[0]), dtype: src.values[x].type.dtype, perm: pout)
    }

    func lowerConcat(_ node: Node) throws {
        let c = try concatOperands(node)
        emit("CONCATENATION", c.values, node, shape: c.shape, dtype: c.dtype, perm: c.layout, attrs: ["axis": .int(c.axis)])
    }

    func lowerSlice(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let s = try shape(x)
        var starts: [Int], ends: [Int], axes: [Int], steps: [Int]
        if node.inputs.count >= 3 {
            guard let st = constant(node.inputs[1])?.integers(), let en = constant(node.inputs[2])?.integers() else { throw fail(node, "starts and ends must be constant") }
            starts = st; ends = en
            axes = node.inputs.count > 3 ? (constant(node.inputs[3])?.integers() ?? Array(0..<st.count)) : Array(0..<st.count)
            steps = node.inputs.count > 4 ? (constant(node.inputs[4])?.integers() ?? Array(repeating: 1, count: st.count)) : Array(repeating: 1, count: st.count)
        } else {
            starts = node.ints("starts") ?? []; ends = node.ints("ends") ?? []
            axes = node.ints("axes") ?? Array(0..<starts.count); steps = Array(repeating: 1, count: starts.count)
        }
        var begin = [Int](repeating: 0, count: s.count), end = s, stride = [Int](repeating: 1, count: s.count)
        for (k, a0) in axes.enumerated() {
            let a = a0 < 0 ? a0 + s.count : a0
            guard steps[k] > 0 else { throw fail(node, "negative slice steps are not converted yet") }
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + s[a] : v, 0), s[a]) }
            begin[a] = clamp(starts[k]); end[a] = clamp(ends[k]); stride[a] = steps[k]
        }
        let p = map[x]?.perm
        let order = p ?? Array(0..<s.count)
        let b = newConstant(node.name + "/begin", TensorOps.make(int32: order.map { begin[$0] }))
        let e = newConstant(node.name + "/end", TensorOps.make(int32: order.map { end[$0] }))
        let st = newConstant(node.name + "/strides", TensorOps.make(int32: order.map { stride[$0] }))
        emit("STRIDED_SLICE", [try get(x, p), b, e, st], node, shape: try shape(node.outputs[0]), dtype: src.values[x].type.dtype, perm: p,
             attrs: ["begin_mask": .int(0), "end_mask": .int(0), "ellipsis_mask": .int(0), "new_axis_mask": .int(0), "shrink_axis_mask": .int(0)])
    }

    /// ConvTranspose without cropping (VALID) or cropping to input x stride (SAME) -> TRANSPOSE_CONV,
    /// kept in the importer's form (X, W, B and an `output_shape` attribute; the writer restores the rest).
    func lowerConvTranspose(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, node.inputs.count >= 2, let wID = node.inputs[1], let w = constant(wID), w.shape.count == 4,
              (node.int("group") ?? 1) == 1 else { throw fail(node, "only 2-D, ungrouped transposed convolutions with constant weights convert") }
        let inShape = try shape(x), outShape = try shape(node.outputs[0])
        let strides = node.ints("strides") ?? [1, 1]
        guard (node.ints("dilations") ?? [1, 1]) == [1, 1] else { throw fail(node, "dilated transposed convolution") }
        let k = [w.shape[2], w.shape[3]]
        let full = (0..<2).map { (inShape[2 + $0] - 1) * strides[$0] + k[$0] }
        let padding: String
        if Array(outShape[2...]) == full { padding = "VALID" } else if Array(outShape[2...]) == [inShape[2] * strides[0], inShape[3] * strides[1]] {
            padding = "SAME"
        } else { throw fail(node, "output size \(Array(outShape[2...])) is neither VALID \(full) nor SAME") }
        let weights = TensorOps.permute(w, [1, 2, 3, 0])  // IOHW -> OHWI
        report.constantsFolded += 1
        let o = weights.shape[0]
        let b = node.inputs.count > 2 ? constant(node.inputs[2]) : nil
        let bias = b.flatMap(TensorOps.floats) ?? [Float](repeating: 0, count: o)
        let tflOut = LayoutConverter.apply(ONNXToTFLite.channelsLast, outShape)
        emit("TRANSPOSE_CONV", [try get(x, ONNXToTFLite.channelsLast), newConstant(src.values[wID].name + "/ohwi", weights),
                                newConstant(node.name + "/bias", TensorOps.make(bias, [o]))], node, shape: outShape, perm: ONNXToTFLite.channelsLast,
             attrs: ["padding": .string(padding), "stride_h": .int(strides[0]), "stride_w": .int(strides[1]), "output_shape": .ints(tflOut)], version: 3)
    }

    func lowerResize(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil, try shape(x).count == 4 else { throw fail(node, "only 4-D resizes convert") }
        let outShape = try shape(node.outputs[0]), inShape = try shape(x)
        guard outShape[0] == inShape[0], outShape[1] == inShape[1] else { throw fail(node, "resizing the batch or channel axis") }
        let mode = node.string("mode") ?? "nearest"
        let ct = node.string("coordinate_transformation_mode") ?? (node.sourceOp == "Upsample" ? "asymmetric" : "half_pixel")
        let nearestMode = node.string("nearest_mode") ?? "round_prefer_floor"
        var attrs: [String: Attribute] = ["align_corners": .int(0), "half_pixel_centers": .int(0)]
        let builtin: String
        switch (mode, ct) {
        case ("linear", "align_corners"), ("bilinear", "align_corners"): builtin = "RESIZE_BILINEAR"; attrs["align_corners"] = .int(1)
        case ("linear", "asymmetric"), ("bilinear", "asymmetric"): builtin = "RESIZE_BILINEAR"
        case ("linear", "half_pixel"), ("linear", "pytorch_half_pixel"): builtin = "RESIZE_BILINEAR"; attrs["half_pixel_centers"] = .int(1)
        case ("nearest", "asymmetric") where nearestMode == "floor": builtin = "RESIZE_NEAREST_NEIGHBOR"
        case ("nearest", "tf_half_pixel_for_nn"): builtin = "RESIZE_NEAREST_NEIGHBOR"; attrs["half_pixel_centers"] = .int(1)
        case ("nearest", "asymmetric") where nearestMode == "round_prefer_floor" && outShape[2] == 2 * inShape[2] && outShape[3] == 2 * inShape[3]:
            // Doubling: source coordinates are whole or halves, and rounding halves down is floor.
            builtin = "RESIZE_NEAREST_NEIGHBOR"
        default:
            throw fail(node, "mode \(mode) with coordinate_transformation_mode \(ct) (nearest_mode \(nearestMode)) has no TFLite form here")
        }
        let size = newConstant(node.name + "/size", TensorOps.make(int32: [outShape[2], outShape[3]]))
        emit(builtin, [try get(x, ONNXToTFLite.channelsLast), size], node, shape: outShape, perm: ONNXToTFLite.channelsLast, attrs: attrs)
    }

    func lowerSplit(_ node: Node) throws {
        guard let x = node.inputs.first ?? nil else { throw fail(node, "no input") }
        let s = try shape(x)
        var axis = node.int("axis") ?? 0
        if axis < 0 { axis += s.count }
        let sizes = try node.outputs.map { try shape($0)[axis] }
        let p = map[x]?.perm
        let tflAxis = LayoutConverter.targetAxis(axis, p)
        let sizeID = newConstant(node.name + "/size_splits", TensorOps.make(int32: sizes))
        var outs: [ValueID] = []
        for o in node.outputs {
            let id = newValue(src.values[o].name, src.values[x].type.dtype, LayoutConverter.apply(p, try shape(o)))
            map[o] = (id, p)
            outs.append(id)
        }
        // In the importer's form: value and sizes as inputs, the axis as an attribute (the writer restores its tensor).
        out.nodes.append(Node(name: node.name, op: OpKind("Split"), sourceOp: "SPLIT_V", domain: "tflite", version: 1,
                              inputs: [try get(x, p), sizeID], outputs: outs, attributes: ["axis": .int(tflAxis), "num_splits": .int(outs.count)]))
        report.opsMapped["Split -> SPLIT_V", default: 0] += 1
    }

    func lowerDense(_ node: Node) throws {
        guard node.inputs.count >= 2, let a = node.inputs[0], let bID = node.inputs[1], let bData = constant(bID), bData.shape.count == 2 else {
            throw fail(node, "only a product with a constant 2-D right-hand side converts (FULLY_CONNECTED)")
        }
        let aShape = try shape(a)
        guard aShape.count == 2 else { throw fail(node, "a rank-\(aShape.count) left-hand side") }
        guard (node.int("transA") ?? 0) == 0 else { throw fail(node, "transA = 1") }
        let transB = node.sourceOp == "Gemm" && (node.int("transB") ?? 0) != 0
        var w = transB ? bData : TensorOps.permute(bData, [1, 0])
        let units = w.shape[0]
        let alpha = Float(node.float("alpha") ?? 1), beta = Float(node.float("beta") ?? 1)
        if alpha != 1, let f = TensorOps.floats(w) { w = TensorOps.make(f.map { $0 * alpha }, w.shape) }
        var bias = [Float](repeating: 0, count: units)
        if node.sourceOp == "Gemm", node.inputs.count > 2, let c = node.inputs[2] {
            guard let cd = constant(c), cd.elementCount == units || cd.elementCount == 1, let f = TensorOps.floats(cd) else {
                throw fail(node, "the bias must be a constant of \(units) values")
            }
            bias = f.count == 1 ? Array(repeating: f[0] * beta, count: units) : f.map { $0 * beta }
        }
        report.constantsFolded += 1
        let wID = newConstant(src.values[bID].name + "/tflite", w.dtype == .float32 ? w : TensorOps.make(TensorOps.floats(w) ?? [], w.shape))
        let biasID = newConstant(node.name + "/bias", TensorOps.make(bias, [units]))
        emit("FULLY_CONNECTED", [try get(a, map[a]?.perm.flatMap { LayoutConverter.orderEquivalent(aShape, $0) ? $0 : nil }), wID, biasID], node,
             shape: try shape(node.outputs[0]), perm: nil, attrs: ["keep_num_dims": .int(0), "weights_format": .string("DEFAULT")])
    }

    // MARK: clean-up

    /// RELU / RELU6 / RELU_N1_TO_1 after an op that can fuse them, its input read by nothing else.
    func fuseActivations() {
        var readers: [ValueID: Int] = [:]
        for n in out.nodes { for case let v? in n.inputs { readers[v, default: 0] += 1 } }
        for v in out.outputs { readers[v, default: 0] += 1 }
        var producer: [ValueID: Int] = [:]
        for (i, n) in out.nodes.enumerated() { for o in n.outputs { producer[o] = i } }
        var removed = Set<Int>()
        let fusable: Set<String> = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"]
        for (i, n) in out.nodes.enumerated() where ["RELU", "RELU6", "RELU_N1_TO_1"].contains(n.sourceOp) {
            guard let x = n.inputs.first ?? nil, readers[x] == 1, let pi = producer[x], fusable.contains(out.nodes[pi].sourceOp),
                  out.nodes[pi].string("fused_activation_function") == "NONE" else { continue }
            out.nodes[pi].attributes["fused_activation_function"] = .string(n.sourceOp)
            out.nodes[pi].outputs = n.outputs
            removed.insert(i)
            report.opsMapped["(activation fused into \(out.nodes[pi].sourceOp))", default: 0] += 1
        }
        out.nodes = out.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    func removeDeadNodes() {
        var live = Set(out.outputs)
        var keep = [Bool](repeating: false, count: out.nodes.count)
        for i in stride(from: out.nodes.count - 1, through: 0, by: -1) where out.nodes[i].outputs.contains(where: live.contains) {
            keep[i] = true
            for case let v? in out.nodes[i].inputs { live.insert(v) }
        }
        out.nodes = out.nodes.enumerated().filter { keep[$0.offset] }.map(\.element)
    }
}
