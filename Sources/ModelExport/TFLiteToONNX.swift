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

    /// How one TFLite builtin becomes ONNX ops.
    typealias Lowering = (TFLiteToONNX, Node) throws -> Void

    /// Every builtin this converter writes, from the family files (TFLiteToONNX+Conv.swift, ...).
    static let lowerings: [String: Lowering] = mergeFamilies([convLowerings, elementwiseLowerings, resizeLowerings, tensorLowerings,
                                                              reduceLowerings, linalgLowerings])

    /// The TFLite builtins `lower` handles (DEQUANTIZE of fp16 weights is folded besides).
    static var writtenBuiltins: Set<String> { Set(lowerings.keys) }

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
        guard let lowering = TFLiteToONNX.lowerings[node.sourceOp] else { throw fail(node, "no ONNX counterpart in ModelLens yet") }
        try lowering(self, node)
    }

}
