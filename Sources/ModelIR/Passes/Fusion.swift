/// Which nodes run inside another node's kernel: BatchNorm folded into the convolution before
/// it, Relu / Relu6 / Clip applied as a Conv, BatchNorm or Add stores its results, and a residual
/// Add performed by the convolution that produces one of its operands. The executor plans its
/// kernels from this, the analysis reports them, and the ONNX -> TFLite converter folds the same
/// BatchNorms with the same arithmetic (`BatchNormFold`).
public struct FusionPlan: Sendable {
    /// Conv index -> the BatchNormalization folded into it.
    public var batchNorm: [Int: Int] = [:]
    /// Index of the node whose kernel applies it -> the activation node.
    public var activation: [Int: Int] = [:]
    /// Conv index -> the Add it performs and that Add's other operand (the residual).
    public var residual: [Int: (add: Int, other: ValueID)] = [:]
    /// Every node whose work another's kernel does -> that node (for an activation moved with its
    /// Add onto a conv: the Add).
    public var fusedInto: [Int: Int] = [:]
    /// First node of a chain of elementwise nodes that one unary kernel runs -> that kernel's op
    /// and input: "SiLU" for Sigmoid(x) * x, "Gelu" for GELU written out as x / sqrt(2) (or
    /// x * 1/sqrt(2)) -> Erf -> + 1 -> * x -> * 0.5 (or * 0.5 -> * x), "HardSwish" for
    /// x + 3 -> Clip(0, 6) -> * x -> / 6 (or / 6 -> * x; / 6 also as * 1/6), "QuantizeDequantize"
    /// for QuantizeLinear -> DequantizeLinear with the same per-tensor parameters. The chain's
    /// other nodes are in `fusedInto`.
    public var unaryChain: [Int: (op: String, input: ValueID)] = [:]
    /// Conv index -> the inputs of the QLinearConv it runs as (x, x_scale, x_zero_point, w,
    /// w_scale, w_zero_point, y_scale, y_zero_point, bias; nil where absent): a QDQ model's
    /// DequantizeLinear -> Conv -> QuantizeLinear, computed on integers as onnxruntime's QDQ
    /// transformer fuses it. The QuantizeLinear (and each DequantizeLinear only the Conv reads)
    /// is in `fusedInto`.
    public var quantizedConv: [Int: [ValueID?]] = [:]
    /// Add index -> the inputs of the QLinearAdd it runs as (a, a_scale, a_zero_point, b,
    /// b_scale, b_zero_point, y_scale, y_zero_point): DequantizeLinear, DequantizeLinear -> Add
    /// -> QuantizeLinear, as onnxruntime's QDQ transformer fuses it.
    public var quantizedAdd: [Int: [ValueID?]] = [:]
    /// Gemm index -> the inputs of the QGemm it runs as (a, a_scale, a_zero_point, b, b_scale,
    /// b_zero_point, c, and y_scale, y_zero_point where a QuantizeLinear follows, else nil):
    /// DequantizeLinear -> Gemm (int8 weights, int32 bias) -> QuantizeLinear or a float output.
    public var quantizedGemm: [Int: [ValueID?]] = [:]

    /// What the plan needs to know of constant values (the executor also counts values it
    /// computed at plan time, such as fp16 weights widened; the analysis the file's constants).
    public struct Constants {
        /// Element type and shape of a constant, nil for a value computed at run time.
        public var type: (ValueID) -> (dtype: DType, shape: [Int])?
        /// A small constant's elements as floats (BatchNorm parameters, Clip bounds).
        public var floats: (ValueID) -> [Float]?

        public init(type: @escaping (ValueID) -> (dtype: DType, shape: [Int])?, floats: @escaping (ValueID) -> [Float]?) {
            self.type = type
            self.floats = floats
        }

        /// The graph's own constants.
        public static func of(_ graph: Graph) -> Constants {
            Constants(type: { v in graph.values[v].constant.map { ($0.dtype, $0.shape) } },
                      floats: { v in graph.values[v].constant?.doubles(limit: 1 << 20)?.map(Float.init) })
        }
    }

    public init() {}

    /// True for Relu, Relu6 and Clip whose given bounds are constants: what a kernel can apply as
    /// it stores.
    public static func isFusableActivation(_ node: Node, _ constants: Constants) -> Bool {
        switch node.op.rawValue {
        case "Relu", "Relu6": return true
        case "Clip":
            for slot in 1...2 where node.inputs.count > slot {
                if let v = node.inputs[slot], constants.floats(v)?.first == nil { return false }
            }
            return true
        default: return false
        }
    }

    /// The node that alone reads `value`, which is no graph output: where a kernel may run its
    /// reader's work as it stores `value`.
    public struct Readers {
        var consumers: [ValueID: [Int]] = [:]
        let outputs: Set<ValueID>

        public init(_ nodes: [Node], outputs: [ValueID]) {
            for (i, n) in nodes.enumerated() { for case let v? in n.inputs { consumers[v, default: []].append(i) } }
            self.outputs = Set(outputs)
        }

        public func sole(_ value: ValueID) -> Int? {
            guard !outputs.contains(value), let c = consumers[value], c.count == 1 else { return nil }
            return c[0]
        }

        /// The activation that alone reads `value`, as its first input: the pattern every fusion of
        /// an activation into the kernel before it matches (`isActivation` says which ops count).
        public func soleActivation(_ value: ValueID, in nodes: [Node], _ isActivation: (Node) -> Bool) -> Int? {
            guard let k = sole(value), nodes[k].inputs.first == value, isActivation(nodes[k]) else { return nil }
            return k
        }
    }

    public static func make(_ graph: Graph, _ constants: Constants) -> FusionPlan {
        var plan = FusionPlan()
        let readers = Readers(graph.nodes, outputs: graph.outputs)
        let single = readers.sole
        let fusable = { (n: Node) in isFusableActivation(n, constants) }
        // Conv -> BatchNormalization (inference, constant float parameters, one per output channel)
        // -> Relu / Clip.
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv && conv.fusedActivation == nil {
            guard conv.inputs.count >= 2, let wID = conv.inputs[1], let w = constants.type(wID), w.dtype == .float32, w.shape.count == 4,
                  let out = conv.outputs.first else { continue }
            var tail = out
            if let j = single(out), graph.nodes[j].op == .batchNormalization, graph.nodes[j].outputs.count == 1,
               (graph.nodes[j].int("training_mode") ?? 0) == 0, graph.nodes[j].inputs.count == 5 {
                let params = graph.nodes[j].inputs.dropFirst().compactMap { $0.flatMap(constants.type) }
                let outC = (conv.kernelLayout ?? .oihw) == .ihwo1 ? w.shape[3] : w.shape[0]
                if params.count == 4, params.allSatisfy({ $0.dtype == .float32 && $0.shape.reduce(1, *) == outC }) {
                    plan.batchNorm[i] = j
                    plan.fusedInto[j] = i
                    tail = graph.nodes[j].outputs[0]
                } else if params.count == 4, params.allSatisfy({ $0.dtype == .float32 }) {
                    continue   // parameters of another size: neither folded nor fused
                }
            }
            if let k = readers.soleActivation(tail, in: graph.nodes, fusable) {
                plan.activation[i] = k
                plan.fusedInto[k] = i
            }
        }
        // BatchNormalization not folded into a conv (DenseNet's, after a Concat) -> Relu / Clip.
        for (i, bn) in graph.nodes.enumerated() where bn.op == .batchNormalization && plan.fusedInto[i] == nil && bn.outputs.count == 1 {
            guard let out = bn.outputs.first, graph.values[out].type.dtype == .float32,
                  let k = readers.soleActivation(out, in: graph.nodes, fusable), plan.fusedInto[k] == nil else { continue }
            plan.activation[i] = k
            plan.fusedInto[k] = i
        }
        findQuantizedOps(graph, constants, readers, &plan)
        // Elementwise chains that one unary kernel runs (before the Adds take their Clips).
        findUnaryChains(graph, constants, readers, &plan)
        // Add -> Relu / Clip (residual blocks).
        for (i, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && add.inputs.count == 2
            && plan.fusedInto[i] == nil && plan.unaryChain[i] == nil && plan.quantizedAdd[i] == nil {
            guard let out = add.outputs.first, graph.values[out].type.dtype == .float32, graph.values[out].quantization == nil,
                  let k = readers.soleActivation(out, in: graph.nodes, fusable) else { continue }
            plan.activation[i] = k
            plan.fusedInto[k] = i
        }
        // Conv (-> BatchNorm) -> Add: the other operand becomes the conv's residual, added as the
        // conv stores its results (then the Add's activation). The conv must be the later of the
        // two producers, so that the residual is ready when it runs; convs of one group with OIHW
        // weights (NCHW) or OHWI weights (NHWC, TFLite's residual blocks) take a residual.
        var convOfTail: [ValueID: Int] = [:]
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv {
            guard let out = conv.outputs.first else { continue }
            if let j = single(out), plan.fusedInto[j] != nil, graph.nodes[j].op == .batchNormalization, let bnOut = graph.nodes[j].outputs.first {
                convOfTail[bnOut] = i
            } else {
                convOfTail[out] = i
            }
        }
        for (a, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && add.inputs.count == 2
            && plan.fusedInto[a] == nil && plan.quantizedAdd[a] == nil {
            guard let out = add.outputs.first, graph.values[out].type.dtype == .float32, graph.values[out].quantization == nil,
                  let u = add.inputs[0], let v = add.inputs[1], u != v else { continue }
            let candidates = [(u, v), (v, u)].compactMap { pair -> (Int, ValueID, ValueID)? in
                guard let c = convOfTail[pair.0], single(pair.0) == a else { return nil }
                return (c, pair.0, pair.1)
            }
            // The other operand must exist before the conv runs: a graph input or constant, or produced earlier.
            guard let (c, _, other) = candidates.filter({ cand in
                guard let producer = graph.values[cand.2].producer else { return true }
                return producer < cand.0
            }).max(by: { $0.0 < $1.0 }) else { continue }
            let conv = graph.nodes[c]
            let layoutTakesResidual = conv.dataLayout == .nhwc ? conv.kernelLayout == .ohwi : (conv.kernelLayout ?? .oihw) == .oihw
            guard plan.activation[c] == nil, conv.fusedActivation == nil, layoutTakesResidual,
                  (conv.int("group") ?? 1) == 1, conv.inputs.count >= 2 else { continue }
            plan.residual[c] = (a, other)
            if let k = plan.activation.removeValue(forKey: a) { plan.activation[c] = k }
            plan.fusedInto[a] = c
        }
        return plan
    }
}

extension FusionPlan {
    /// SiLU, GELU and hard-swish written out as elementwise ops (as torch exports nn.SiLU and
    /// nn.GELU below opset 20, paddle2onnx hard-swish): each chain becomes one kernel, as
    /// onnxruntime fuses them. Also QuantizeLinear -> DequantizeLinear with one scale and zero
    /// point: "QuantizeDequantize".
    static func findUnaryChains(_ graph: Graph, _ constants: Constants, _ readers: Readers, _ plan: inout FusionPlan) {
        func scalar(_ v: ValueID?) -> Float? {
            guard let v, let t = constants.type(v), t.dtype == .float32, t.shape.reduce(1, *) == 1 else { return nil }
            return constants.floats(v)?.first
        }
        func isFloat(_ v: ValueID) -> Bool { graph.values[v].type.dtype == .float32 && graph.values[v].quantization == nil }
        /// The node that alone reads `value`, of op `op`, not fused yet, with `value` as one of its two inputs; and its other input.
        func next(_ value: ValueID, _ op: String) -> (node: Int, other: ValueID)? {
            guard let k = readers.sole(value), plan.fusedInto[k] == nil, plan.unaryChain[k] == nil else { return nil }
            let n = graph.nodes[k]
            guard n.op.rawValue == op, n.fusedActivation == nil, n.outputs.count == 1, isFloat(n.outputs[0]) else { return nil }
            if op == "Erf" || op == "Sigmoid" || op == "Clip" { return n.inputs.first == value ? (k, value) : nil }
            guard n.inputs.count == 2, let a = n.inputs[0], let b = n.inputs[1], a != b || op == "Mul" else { return nil }
            if a == value { return (k, b) }
            if b == value && op != "Div" { return (k, a) }
            return nil
        }
        func near(_ v: Float?, _ target: Float) -> Bool { v.map { abs($0 - target) <= 1e-4 * abs(target) } ?? false }
        /// A Clip's constant bounds (inputs from opset 11, attributes before), nil where one is missing or not constant.
        func clipBounds(_ n: Node) -> (Float, Float)? {
            let lo = n.inputs.count > 1 ? scalar(n.inputs[1]) : n.float("min").map(Float.init)
            let hi = n.inputs.count > 2 ? scalar(n.inputs[2]) : n.float("max").map(Float.init)
            guard let lo, let hi else { return nil }
            return (lo, hi)
        }
        // 8-bit values a fused integer op reads.
        let quantizedConvInputs = Set(plan.quantizedConv.values.compactMap { $0.first ?? nil })
            .union(plan.quantizedAdd.values.flatMap { [$0[0], $0[3]] }.compactMap { $0 })
            .union(plan.quantizedGemm.values.compactMap { $0.first ?? nil })
        for (i, node) in graph.nodes.enumerated() where plan.fusedInto[i] == nil && node.outputs.count == 1 {
            let out = node.outputs[0]
            switch node.op.rawValue {
            case "Sigmoid":
                guard let x = node.inputs.first ?? nil, isFloat(x), let m = next(out, "Mul"), m.other == x else { continue }
                plan.unaryChain[i] = ("SiLU", x)
                plan.fusedInto[m.node] = i
            case "Add":
                // Hard-swish: x + 3 -> Clip(0, 6) -> * x -> / 6, or -> / 6 -> * x.
                guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1] else { continue }
                let x: ValueID
                if near(scalar(b), 3) { x = a } else if near(scalar(a), 3) { x = b } else { continue }
                guard isFloat(x), scalar(x) == nil, let clip = next(out, "Clip"), let bounds = clipBounds(graph.nodes[clip.node]), bounds == (0, 6) else { continue }
                let clipOut = graph.nodes[clip.node].outputs[0]
                func sixth(_ v: ValueID) -> (node: Int, out: ValueID)? {
                    if let d = next(v, "Div"), near(scalar(d.other), 6) { return (d.node, graph.nodes[d.node].outputs[0]) }
                    if let m = next(v, "Mul"), near(scalar(m.other), 1.0 / 6) { return (m.node, graph.nodes[m.node].outputs[0]) }
                    return nil
                }
                var rest: [Int] = []
                if let m = next(clipOut, "Mul"), m.other == x, let d = sixth(graph.nodes[m.node].outputs[0]) {
                    rest = [m.node, d.node]
                } else if let d = sixth(clipOut), let m = next(d.out, "Mul"), m.other == x {
                    rest = [d.node, m.node]
                } else { continue }
                plan.unaryChain[i] = ("HardSwish", x)
                for k in [clip.node] + rest { plan.fusedInto[k] = i }
            case "Div", "Mul":
                guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1] else { continue }
                let x: ValueID
                if node.op.rawValue == "Div", near(scalar(b), Float(2).squareRoot()) { x = a }
                else if node.op.rawValue == "Mul", near(scalar(b), Float(0.5).squareRoot()) { x = a }
                else if node.op.rawValue == "Mul", near(scalar(a), Float(0.5).squareRoot()) { x = b }
                else { continue }
                guard isFloat(x), scalar(x) == nil, let erf = next(out, "Erf"), let add = next(graph.nodes[erf.node].outputs[0], "Add"),
                      near(scalar(add.other), 1), let m1 = next(graph.nodes[add.node].outputs[0], "Mul"),
                      let m2 = next(graph.nodes[m1.node].outputs[0], "Mul") else { continue }
                // (x * (erf + 1)) * 0.5, or ((erf + 1) * 0.5) * x.
                guard (m1.other == x && near(scalar(m2.other), 0.5)) || (near(scalar(m1.other), 0.5) && m2.other == x) else { continue }
                plan.unaryChain[i] = ("Gelu", x)
                for k in [erf.node, add.node, m1.node, m2.node] { plan.fusedInto[k] = i }
            case "QuantizeLinear":
                // A float value quantized and at once dequantized with the same parameters (QDQ
                // models between float ops): one pass, float to float, no int8 copy in between;
                // not where a quantized conv reads the 8-bit values too.
                guard !quantizedConvInputs.contains(out),
                      let x = node.inputs.first ?? nil, isFloat(x), node.inputs.count == 3, let q = perTensorQuantization(node),
                      let dq = readers.sole(out), plan.fusedInto[dq] == nil, plan.unaryChain[dq] == nil else { continue }
                let d = graph.nodes[dq]
                guard d.op.rawValue == "DequantizeLinear", d.inputs.count == 3, d.inputs[0] == out, d.outputs.count == 1,
                      isFloat(d.outputs[0]), perTensorQuantization(d) == q else { continue }
                plan.unaryChain[i] = ("QuantizeDequantize", x)
                plan.fusedInto[dq] = i
            default: continue
            }
        }
        /// A (De)QuantizeLinear's constant per-tensor scale and 8-bit zero point, and whether it is signed.
        func perTensorQuantization(_ n: Node) -> [Float]? {
            guard (n.int("block_size") ?? 0) == 0, let s = n.inputs[1], let z = n.inputs[2], let st = constants.type(s), let zt = constants.type(z),
                  st.dtype == .float32, st.shape.reduce(1, *) == 1, [DType.int8, .uint8].contains(zt.dtype), zt.shape.reduce(1, *) == 1,
                  let scale = constants.floats(s)?.first, let zero = constants.floats(z)?.first, scale > 0, scale.isFinite else { return nil }
            return [scale, zero, zt.dtype == .int8 ? 1 : 0]
        }
    }
}

/// Folding inference BatchNorm into the convolution before it: y = scale * (W x + bias - mean)
/// + beta with scale = gamma / sqrt(variance + epsilon), per output channel. The executor keeps
/// W and applies `scale` as it stores (or folds it into a copy of small weights); the converter
/// folds it into the written weights. One arithmetic for both, so both give the same numbers.
public enum BatchNormFold {
    /// Per output channel: the factor on the convolution's sums and the bias after it.
    public static func fold(gamma: [Float], beta: [Float], mean: [Float], variance: [Float], epsilon: Float,
                            bias: [Float]?) -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: gamma.count), shift = scale
        for c in 0..<gamma.count {
            let s: Float = gamma[c] / (variance[c] + epsilon).squareRoot()
            let b: Float = bias?[c] ?? 0
            scale[c] = s
            shift[c] = (b - mean[c]) * s + beta[c]
        }
        return (scale, shift)
    }
}

/// One kernel the executor runs: the node it runs for, and the nodes whose work it does too.
public struct KernelStep: Sendable, Equatable {
    public var node: Int
    public var fused: [Int]
    /// The unary op the kernel runs where it stands for an elementwise chain (FusionPlan.unaryChain).
    public var chainOp: String?

    public init(node: Int, fused: [Int], chainOp: String? = nil) {
        self.node = node
        self.fused = fused
        self.chainOp = chainOp
    }
}

extension FusionPlan {
    /// The kernels that run for `stepNodes` (nodes that are steps of their own, in order), each
    /// with the nodes fused into it, directly or through another fused node (an activation that
    /// moved with its Add onto a conv), in node order.
    public func kernelSteps(_ stepNodes: [Int]) -> [KernelStep] {
        func root(_ k: Int) -> Int {
            var r = k
            while let next = fusedInto[r] { r = next }
            return r
        }
        var fused: [Int: [Int]] = [:]
        for k in fusedInto.keys.sorted() { fused[root(k), default: []].append(k) }
        return stepNodes.filter { fusedInto[$0] == nil }.map { KernelStep(node: $0, fused: fused[$0] ?? [], chainOp: unaryChain[$0]?.op) }
    }
}
