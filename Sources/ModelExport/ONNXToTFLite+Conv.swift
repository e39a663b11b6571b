import ModelIR
import ModelRuntime

extension ONNXToTFLite {
    /// Convolutions, BatchNorm and pooling (window ops, NHWC in TFLite).
    static let convLowerings: [String: Lowering] = [
        "Conv": { c, node, index in try c.lowerConv(node, index: index) },
        "ConvTranspose": { c, node, index in try c.lowerConvTranspose(node) },
        "BatchNormalization": { c, node, index in try c.lowerBatchNorm(node) },
        "MaxPool": { c, node, index in try c.lowerPool(node) },
        "AveragePool": { c, node, index in try c.lowerPool(node) },
        "GlobalAveragePool": { c, node, index in try c.lowerGlobalPool(node) },
        "GlobalMaxPool": { c, node, index in try c.lowerGlobalPool(node) },
    ]

    /// Explicit (top, left, bottom, right) pads of a conv or pool, and whether TFLite's SAME gives them.
    func padding(_ node: Node, input: [Int], output: [Int], kernel: [Int], strides: [Int], dilations: [Int]) -> (pads: [Int], same: Bool) {
        var pads = node.ints("pads") ?? [0, 0, 0, 0]
        if pads.count != 4 { pads = [0, 0, 0, 0] }
        let auto = node.string("auto_pad") ?? "NOTSET"
        var sameWants = [Int](repeating: 0, count: 4)
        for d in 0..<2 {
            let g = SlidingWindow.geometry(input[2 + d], kernel: kernel[d], stride: strides[d], dilation: dilations[d],
                                           padBegin: 0, padEnd: 0, autoPad: "SAME_UPPER", ceilMode: false)
            sameWants[d] = g.begin
            sameWants[d + 2] = g.end
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

    /// Global pooling as MEAN / REDUCE_MAX over H and W of NHWC.
    func lowerGlobalPool(_ node: Node) throws {
        let x = node.inputs.first ?? nil
        let op = node.op.rawValue
        guard let x else { throw fail(node, "no input") }
        let axes = newConstant(node.name + "/axes", TensorOps.make(int32: [1, 2]))
        emit(op == "GlobalAveragePool" ? "MEAN" : "REDUCE_MAX", [try get(x, ONNXToTFLite.channelsLast), axes], node,
             shape: try shape(node.outputs[0]), perm: ONNXToTFLite.channelsLast, attrs: ["keep_dims": .int(1)])
    }
}
