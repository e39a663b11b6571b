import CTFLite
import ModelIR

/// TFLite builtin operators -> canonical ops, with canonical attributes (`strides`,
/// `dilations`, `auto_pad`, `kernel_shape`, `group`, `axis`, coordinate modes, ...) next to the
/// option fields the file had (writers read those), and the NHWC / OHWI / 1HWO layouts stated
/// on the node. One table per op family (TFLiteImport+Conv.swift, +Resize, +Elementwise, ...),
/// keyed by builtin name; a builtin in none stays opaque.
public enum TFLiteImport {
    /// Adjusts a node of builtin operator `builtin`, whose values are in `graph`.
    typealias Mapping = (_ node: inout Node, _ builtin: String, _ graph: Graph) -> Void

    static let mappings: [String: Mapping] = mergeFamilies([convMappings, resizeMappings, elementwiseMappings, linalgMappings, tensorMappings, reduceMappings,
                                                          normalizationMappings, controlFlowMappings])

    /// A mapping that only names the canonical op.
    static func named(_ op: String) -> Mapping { { node, _, _ in node.op = OpKind(op) } }

    public static func lower(_ node: inout Node, builtin: String, graph: Graph) {
        if let act = node.attributes["fused_activation_function"]?.string, act != "NONE" {
            node.fusedActivation = FusedActivation(rawValue: act)
        }
        mappings[builtin]?(&node, builtin, graph)
    }

    static func int(_ node: Node, _ key: String) -> Int? { node.attributes[key]?.int }

    /// TFLite's padding option as auto_pad.
    static func padding(_ node: Node) -> Attribute { .string(node.attributes["padding"]?.string == "VALID" ? "VALID" : "SAME_UPPER") }

    /// The last (channel) dimension of an NHWC value, where known.
    static func channels(_ v: ValueID?, _ graph: Graph) -> Int? { v.flatMap { graph.values[$0].type.shape.dims?.last?.value } }

    /// Canonical op -> the TFLite builtins lowered onto it: every builtin of the schema is put
    /// through `lower` on a node without inputs, so this is what the importer does, not a list
    /// kept beside it. Builtins left opaque (no canonical op yet) are not listed.
    public static var builtinsByCanonicalOp: [String: [String]] {
        var out: [String: [String]] = [:]
        let graph = Graph(name: "probe")
        var code: Int32 = 0
        while let name = mltfl_builtin_name(code).map({ String(cString: $0) }) {
            code += 1
            guard name != "CUSTOM", !name.isEmpty, !name.hasPrefix("PLACEHOLDER") else { continue }
            var node = Node(name: name, op: .opaque, sourceOp: name, domain: "tflite", version: 1, inputs: [], outputs: [])
            lower(&node, builtin: name, graph: graph)
            if node.op != .opaque { out[node.op.rawValue, default: []].append(name) }
        }
        return out
    }
}
