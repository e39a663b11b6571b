import ModelIR

/// How an ONNX node becomes its canonical op: attribute defaults made explicit (they changed
/// between opsets), older opsets' forms turned into today's input slots and attributes, the data
/// and kernel layouts stated, dtype codes named. One table per op family, keyed by the ONNX op
/// name (ONNXImport+Conv.swift, +Resize, +Elementwise, ...); ops in none map by name unchanged.
/// Below the importer nothing reads an opset. (Facts from the ONNX operator specification.)
public enum ONNXImport {
    /// Adjusts a node of the default domain read at `opset`.
    typealias Mapping = (_ node: inout Node, _ opset: Int) -> Void

    static let mappings: [String: Mapping] = mergeFamilies([convMappings, resizeMappings, elementwiseMappings, linalgMappings, tensorMappings, reduceMappings,
                                                          normalizationMappings, controlFlowMappings])

    /// Attributes the mappings add that a file never holds (the writer drops them).
    public static let addedAttributes: Set<String> = ["flatten_to_2d", "bfloat16_rounding", "batch_axis", "output_dtype_name",
                                                      "dtype_name", "stash_type_dtype"]

    /// Makes `node` (of ONNX's default domain, read at `opset`) canonical.
    public static func canonicalize(_ node: inout Node, opset: Int) {
        mappings[node.sourceOp]?(&node, opset)
    }

    /// onnxruntime's contrib ops (domain com.microsoft) that import as canonical ops of the same
    /// name: the QOperator format's quantized ops that onnxruntime.quantization writes.
    public static let microsoftOps: Set<String> = ["QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QGemm",
                                                       "QLinearConcat", "QLinearLeakyRelu", "QLinearSigmoid"]

    /// The canonical op an ONNX op name imports as.
    public static func canonicalName(_ onnxName: String) -> String { onnxName == "Upsample" ? "Resize" : onnxName }

    /// Sets `key` unless the file gave it.
    static func setDefault(_ node: inout Node, _ key: String, _ value: Attribute) {
        if node.attributes[key] == nil { node.attributes[key] = value }
    }

    /// Adds `named` beside an attribute holding an ONNX type code (`to`, `dtype`, ...): the type's name.
    static func nameType(_ node: inout Node, code key: String, as named: String, unlessZero: Bool = false) {
        guard let d = node.attributes[key]?.int, !(unlessZero && d == 0) else { return }
        node.attributes[named] = .string(dtypeFromONNX(Int32(truncatingIfNeeded: d)).rawValue)
    }
}
