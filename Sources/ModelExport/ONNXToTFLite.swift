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

    /// How one canonical op becomes TFLite builtins (node, its index in the source graph).
    typealias Lowering = (ONNXToTFLite, Node, Int) throws -> Void

    /// Every op this converter writes, from the family files (ONNXToTFLite+Conv.swift, ...).
    static let lowerings: [String: Lowering] = mergeFamilies([convLowerings, elementwiseLowerings, resizeLowerings, tensorLowerings,
                                                              reduceLowerings, linalgLowerings])

    /// The canonical ops `lower` handles.
    static var writtenOps: Set<String> { Set(lowerings.keys) }

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
    /// BatchNorms folded into the convolution before them (ModelIR's FusionPlan, which the
    /// executor plans with too), their arithmetic folded into the written weights and bias.
    func planBatchNormFolding() {
        let plan = FusionPlan.make(src, .init(type: { v in self.constant(v).map { ($0.dtype, $0.shape) } },
                                              floats: { v in self.constant(v).flatMap(TensorOps.floats) }))
        for (ci, j) in plan.batchNorm.sorted(by: { $0.key < $1.key }) {
            let conv = src.nodes[ci], bn = src.nodes[j]
            guard let wData = constant(conv.inputs[1]), var w = TensorOps.floats(wData), (conv.kernelLayout ?? .oihw) == .oihw else { continue }
            let p = bn.inputs.dropFirst().compactMap { constant($0).flatMap(TensorOps.floats) }
            guard p.count == 4 else { continue }
            let o = wData.shape[0]
            let bias = conv.inputs.count > 2 ? constant(conv.inputs[2]).flatMap(TensorOps.floats) : nil
            let (scale, shift) = BatchNormFold.fold(gamma: p[0], beta: p[1], mean: p[2], variance: p[3],
                                                    epsilon: Float(bn.float("epsilon") ?? 1e-5), bias: bias?.isEmpty == false ? bias : nil)
            let per = w.count / o
            for c in 0..<o { for k in 0..<per { w[c * per + k] *= scale[c] } }
            bnFold[ci] = (TensorOps.make(w, wData.shape), TensorOps.make(shift, [o]), bn.outputs[0], j)
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
        guard let lowering = ONNXToTFLite.lowerings[node.op.rawValue] else { throw fail(node, "no TFLite counterpart in ModelLens yet") }
        try lowering(self, node, index)
    }

    // MARK: clean-up

    /// RELU / RELU6 / RELU_N1_TO_1 after an op that can fuse them, its input read by nothing else.
    func fuseActivations() {
        // The same pattern as the executor's fusions (FusionPlan.Readers), over the TFLite builtins
        // written: the activation goes into the producer's fused_activation_function option.
        let readers = FusionPlan.Readers(out.nodes, outputs: out.outputs)
        let activations: Set<String> = ["RELU", "RELU6", "RELU_N1_TO_1"]
        let fusable: Set<String> = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"]
        var removed = Set<Int>()
        for pi in out.nodes.indices where fusable.contains(out.nodes[pi].sourceOp) && out.nodes[pi].string("fused_activation_function") == "NONE" {
            guard let x = out.nodes[pi].outputs.first,
                  let k = readers.soleActivation(x, in: out.nodes, { activations.contains($0.sourceOp) }) else { continue }
            out.nodes[pi].attributes["fused_activation_function"] = .string(out.nodes[k].sourceOp)
            out.nodes[pi].outputs = out.nodes[k].outputs
            removed.insert(k)
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
