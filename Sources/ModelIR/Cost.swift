/// What one node costs, in counts that may stay symbolic (`SymCount`).
public struct OpCost: Sendable {
    public var macs = SymCount.zero
    public var flops = SymCount.zero
    /// Learned weights: elements of constant weight inputs (see `CostModel.convention`).
    public var params = SymCount.zero
    public var weightBytes = SymCount.zero
    public var activationBytesRead = SymCount.zero
    public var bytesWritten = SymCount.zero

    public init() {}

    public var bytesRead: SymCount { weightBytes + activationBytesRead }
}

/// What a cost rule sees of a node.
public struct CostContext {
    public let node: Node
    public let inputs: [TensorType?]
    public let outputs: [TensorType]
    /// Whether input i is a weight (a constant, or a constant decoded at load time).
    public let isWeight: [Bool]

    public func input(_ i: Int) -> TensorType? { i < inputs.count ? inputs[i] : nil }
    public func dims(_ i: Int) -> [Dim]? { input(i)?.shape.dims }
    public func inElements(_ i: Int = 0) -> SymCount { input(i)?.shape.dims.map { SymCount(product: $0) } ?? SymCount(product: [.unknown]) }
    public func outElements(_ i: Int = 0) -> SymCount {
        guard i < outputs.count, let d = outputs[i].shape.dims else { return SymCount(product: [.unknown]) }
        return SymCount(product: d)
    }
    public func hasInput(_ i: Int) -> Bool { i < node.inputs.count && node.inputs[i] != nil }
}

/// A cost rule gives MACs and FLOPs; parameters and bytes are derived from
/// the node's inputs and outputs the same way for every op.
public typealias CostRule = (CostContext) -> (macs: SymCount, flops: SymCount)

public enum CostModel {
    /// The counting convention, stated once (printed by `analyze --help` and in every report).
    public static let convention = """
        MACs count multiply-accumulates of Conv/ConvTranspose (kernel volume x input channels per \
        group, per output element), Gemm/MatMul/FullyConnected/BatchMatMul (M x N x K) and \
        LSTM/GRU/RNN gates over the sequence. FLOPs = 2 x MACs for those ops, + 1 per output element \
        for a bias add and for a fused activation. BatchNormalization: 2 FLOPs per element (0 once \
        folded into the conv before it). Every other elementwise op (Add, Mul, Relu, Clip, Sigmoid, \
        HardSwish, ...): 1 FLOP per output element, whatever the function. Softmax/LogSoftmax: 3 per \
        element; Layer/Instance/GroupNorm: 5 per element. MaxPool/AveragePool: kernel area per output \
        element; global pooling and Reduce*: 1 per input element. Resize: 4 per output element when \
        linear, 0 when nearest. Data movement (Reshape, Transpose, Concat, Slice, Gather, Pad, ...): \
        0 FLOPs. Parameters: elements of constant weight inputs (weights, biases, BatchNorm scale and \
        bias, PRelu slopes, constant operands); BatchNorm running mean/variance, Clip bounds \
        and int64 shape/index constants are not parameters. Bytes: each input and output once at its stored \
        element size (weights separately from activations); no cache reuse assumed (see the DRAM \
        model for that).
        """

    public static let table: [OpKind: CostRule] = {
        var t: [OpKind: CostRule] = [:]
        for family in [elementwiseCosts, convCosts, linalgCosts, tensorCosts, resizeCosts, reduceCosts, controlFlowCosts] {
            for (name, rule) in family { t[OpKind(name)] = rule }
        }
        return t
    }()

    /// Ops whose constant inputs beyond the first are indices or shapes, not weights.
    static let movement: Set<String> = [
        "Reshape", "Transpose", "Slice", "Gather", "GatherElements", "GatherND", "Pad", "Resize",
        "Squeeze", "Unsqueeze", "Expand", "Tile", "Split", "Shape", "Size", "ConstantOfShape", "Range",
        "Concat", "Flatten", "ExpandDims", "StridedSlice", "SliceBySize", "OneHot", "TopK", "ScatterND",
        "ScatterElements", "Identity", "Cast", "DepthToSpace", "SpaceToDepth", "Dropout",
    ]

    /// The cost of `node` in `graph`. `weights` marks values to treat as weights
    /// (constants, and by default TFLite's DEQUANTIZE outputs of constants).
    public static func cost(of node: Node, in graph: Graph, weights: Set<ValueID>) -> OpCost {
        let inTypes = node.inputs.map { $0.map { graph.values[$0].type } }
        let outTypes = node.outputs.map { graph.values[$0].type }
        let isWeight = node.inputs.map { $0.map { weights.contains($0) } ?? false }
        let ctx = CostContext(node: node, inputs: inTypes, outputs: outTypes, isWeight: isWeight)
        var c = OpCost()
        if let rule = table[node.op] {
            let r = rule(ctx)
            c.macs = r.macs
            c.flops = r.flops
        }
        if node.fusedActivation != nil { c.flops += ctx.outElements() }
        let op = node.op.rawValue
        for (i, input) in node.inputs.enumerated() {
            guard let v = input else { continue }
            let t = graph.values[v].type
            let bytes = elementBytes(t)
            if isWeight[i] {
                c.weightBytes += bytes
                // BatchNorm statistics and Clip's bounds are not learned weights.
                let isStat = (op == "BatchNormalization" && (i == 3 || i == 4)) || (op == "Clip" && i > 0)
                let isIndex = t.dtype == .int64 || (movement.contains(op) && i > 0)
                if !isStat && !isIndex { c.params += t.shape.dims.map { SymCount(product: $0) } ?? .zero }
            } else {
                c.activationBytesRead += bytes
            }
        }
        for t in outTypes { c.bytesWritten += elementBytes(t) }
        return c
    }

    static func elementBytes(_ t: TensorType) -> SymCount {
        guard let dims = t.shape.dims else { return SymCount(product: [.unknown]) }
        let bits = t.dtype.bitWidth ?? 32
        return SymCount(product: dims) * bits / 8
    }
}
