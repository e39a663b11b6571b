/// What `modellens inspect` reports: counts and totals over a model, computed
/// once from the IR. Parameters are the elements of every constant tensor
/// (ONNX initializers and Constant nodes, TFLite buffers) in every graph of
/// the file, broken down by element type.
public struct ModelSummary: Sendable {
    public struct DTypeTotal: Sendable {
        public var tensors = 0
        public var elements = 0
        public var bytes = 0
    }

    public var nodeCount: Int
    /// Op name exactly as in the file (ONNX op_type, TFLite builtin name or custom code) -> count, main graph.
    public var opHistogram: [String: Int]
    /// Canonical op -> count, main graph.
    public var canonicalHistogram: [String: Int]
    public var parameterCount: Int
    public var parameterBytes: Int
    public var parametersByDType: [DType: DTypeTotal]
    /// Custom / non-standard ops (TFLite custom codes, ONNX ops of other domains), all graphs.
    public var customOps: [String: Int]
    /// Constants widened from float16 by a DEQUANTIZE node (TFLite fp16 models).
    public var fp16DequantizedWeights: Int
    /// Nodes whose weights are quantized per axis.
    public var perAxisQuantizedTensors: Int
    public var subgraphs: [(name: String, nodes: Int)]

    public init(_ model: Model) {
        let g = model.graph
        nodeCount = g.nodes.count
        opHistogram = [:]
        canonicalHistogram = [:]
        for n in g.nodes {
            opHistogram[n.sourceOp, default: 0] += 1
            canonicalHistogram[n.op.rawValue, default: 0] += 1
        }
        parameterCount = 0
        parameterBytes = 0
        parametersByDType = [:]
        customOps = [:]
        fp16DequantizedWeights = 0
        perAxisQuantizedTensors = 0
        subgraphs = []
        for graph in model.allGraphs {
            subgraphs.append((graph.name, graph.nodes.count))
            for v in graph.values {
                guard let c = v.constant else { continue }
                parameterCount += c.elementCount
                parameterBytes += c.byteCount
                parametersByDType[c.dtype, default: DTypeTotal()].tensors += 1
                parametersByDType[c.dtype, default: DTypeTotal()].elements += c.elementCount
                parametersByDType[c.dtype, default: DTypeTotal()].bytes += c.byteCount
                if c.quantization?.isPerAxis == true { perAxisQuantizedTensors += 1 }
            }
            for n in graph.nodes {
                if let custom = n.customName { customOps[custom, default: 0] += 1 }
                if n.int("fp16_weights") == 1 { fp16DequantizedWeights += 1 }
            }
        }
    }
}
