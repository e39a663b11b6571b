/// Memory layout of an activation tensor, stated on ops that care.
public enum DataLayout: String, Sendable {
    /// Batch, channels, height, width (ONNX).
    case nchw = "NCHW"
    /// Batch, height, width, channels (TFLite).
    case nhwc = "NHWC"
}

/// Layout of a convolution kernel.
public enum KernelLayout: String, Sendable {
    /// Output channels, input channels / group, height, width (ONNX Conv).
    case oihw = "OIHW"
    /// Input channels, output channels / group, height, width (ONNX ConvTranspose).
    case iohw = "IOHW"
    /// Output channels, height, width, input channels (TFLite CONV_2D, TRANSPOSE_CONV).
    case ohwi = "OHWI"
    /// 1, height, width, output channels (TFLite DEPTHWISE_CONV_2D).
    case ihwo1 = "1HWO"
}

/// An activation fused into the op that produced a value (TFLite keeps these
/// on the op rather than as separate nodes).
public enum FusedActivation: String, Sendable {
    case relu = "RELU"
    case reluN1To1 = "RELU_N1_TO_1"
    case relu6 = "RELU6"
    case tanh = "TANH"
    case signBit = "SIGN_BIT"
}

/// Identifies a value within its graph.
public typealias ValueID = Int

/// A value flowing through a graph: a graph input, a constant, or a node output.
public struct Value: Sendable {
    public let id: ValueID
    public var name: String
    public var type: TensorType
    /// Set for constants (ONNX initializers and Constant nodes, TFLite tensors with a buffer).
    public var constant: TensorData?
    /// The node that writes this value, if any.
    public var producer: Int?
    /// Quantization of an activation (TFLite); constants carry theirs on `TensorData`.
    public var quantization: QuantizationParams?
    /// False for values that are not tensors (ONNX sequences, maps, optionals).
    public var isTensor: Bool = true

    public init(id: ValueID, name: String, type: TensorType) {
        self.id = id
        self.name = name
        self.type = type
    }
}

/// One operation.
public struct Node: Sendable {
    public var name: String
    /// The canonical, format-neutral op.
    public var op: OpKind
    /// The op as the file names it (`Conv`, `CONV_2D`, a custom code).
    public var sourceOp: String
    /// ONNX domain ("" for the default one); "tflite" or "tflite.custom" for TFLite.
    public var domain: String
    /// The opset (ONNX) or op version (TFLite) the node was written against.
    /// `sourceOp`, `domain` and `version` are provenance, for reports, messages and writers:
    /// importers turn every variant they distinguish into attributes and input slots of the
    /// canonical op, and nothing below them reads these three (a lint test checks).
    public var version: Int
    /// The name reports list a custom op under (an op outside the file format's standard set:
    /// a TFLite custom code, an ONNX op of another domain as `domain:op`); nil for standard ops.
    public var customName: String?
    /// Input values; nil marks an omitted optional input.
    public var inputs: [ValueID?]
    public var outputs: [ValueID]
    public var attributes: [String: Attribute]
    public var dataLayout: DataLayout?
    public var kernelLayout: KernelLayout?
    public var fusedActivation: FusedActivation?
    /// Bodies of control-flow ops (If branches, Loop/Scan bodies, TFLite WHILE/IF subgraphs).
    public var subgraphs: [String: Graph]

    public init(name: String, op: OpKind, sourceOp: String, domain: String = "", version: Int = 0,
                inputs: [ValueID?], outputs: [ValueID], attributes: [String: Attribute] = [:]) {
        self.name = name
        self.op = op
        self.sourceOp = sourceOp
        self.domain = domain
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.subgraphs = [:]
    }

    public func int(_ key: String) -> Int? { attributes[key]?.int }
    public func ints(_ key: String) -> [Int]? { attributes[key]?.ints }
    public func float(_ key: String) -> Double? { attributes[key]?.float }
    public func string(_ key: String) -> String? { attributes[key]?.string }
}

/// A computation graph: values, and nodes in topological order.
public final class Graph: @unchecked Sendable {
    public var name: String
    public var values: [Value] = []
    public var nodes: [Node] = []
    public var inputs: [ValueID] = []
    public var outputs: [ValueID] = []
    private var byName: [String: ValueID] = [:]

    public init(name: String) { self.name = name }

    /// Adds a value. A name already present returns the existing id, unless
    /// `distinct` is set (TFLite tensors are told apart by index, not name).
    @discardableResult
    public func addValue(name: String, type: TensorType, distinct: Bool = false) -> ValueID {
        if !distinct, !name.isEmpty, let id = byName[name] { return id }
        let id = values.count
        values.append(Value(id: id, name: name, type: type))
        if !name.isEmpty, byName[name] == nil { byName[name] = id }
        return id
    }

    public func value(named name: String) -> ValueID? { byName[name] }

    public subscript(id: ValueID) -> Value {
        get { values[id] }
        set { values[id] = newValue }
    }

    /// Constants: values with data.
    public var constants: [Value] { values.filter { $0.constant != nil } }

    /// Every graph nested in node attributes, recursively (If/Loop/Scan bodies).
    public var nestedGraphs: [Graph] {
        var out: [Graph] = []
        for n in nodes {
            for (_, g) in n.subgraphs.sorted(by: { $0.key < $1.key }) {
                out.append(g)
                out.append(contentsOf: g.nestedGraphs)
            }
        }
        return out
    }
}

/// Errors found in a graph's structure.
public enum GraphError: Error, CustomStringConvertible {
    case cycle(involving: [String])
    case undefinedValue(node: String, value: String)

    public var description: String {
        switch self {
        case .cycle(let names):
            return "the graph has a cycle: \(names.count) nodes cannot be ordered (" + names.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
                + (names.count > 5 ? " and \(names.count - 5) more" : "") + ")"
        case .undefinedValue(let node, let value):
            return "node '\(node)' reads value '\(value)', which no node, input or initializer defines"
        }
    }
}

extension Graph {
    /// Orders nodes so that every node comes after the producers of its inputs
    /// (Kahn's algorithm, stable: file order wherever the file was already
    /// sorted). Throws `GraphError.cycle` when no such order exists.
    public func sortTopologically() throws {
        let n = nodes.count
        var producerOf: [ValueID: Int] = [:]
        for (i, node) in nodes.enumerated() {
            for o in node.outputs { producerOf[o] = i }
        }
        // Most files are already sorted: keep their order untouched then.
        let alreadySorted = nodes.enumerated().allSatisfy { i, node in
            node.inputs.allSatisfy { v in v.flatMap { producerOf[$0] }.map { $0 < i } ?? true }
        }
        if !alreadySorted {
            var indegree = [Int](repeating: 0, count: n)
            var consumers = [[Int]](repeating: [], count: n)
            for (i, node) in nodes.enumerated() {
                var seen = Set<Int>()
                for case let v? in node.inputs {
                    if let p = producerOf[v], seen.insert(p).inserted {
                        indegree[i] += 1
                        consumers[p].append(i)
                    }
                }
            }
            var order = (0..<n).filter { indegree[$0] == 0 }
            var head = 0
            while head < order.count {
                let i = order[head]
                head += 1
                for c in consumers[i] {
                    indegree[c] -= 1
                    if indegree[c] == 0 { order.append(c) }
                }
            }
            if order.count != n {
                let stuck = (0..<n).filter { indegree[$0] > 0 }.map {
                    nodes[$0].name.isEmpty ? "#\($0) \(nodes[$0].sourceOp)" : nodes[$0].name
                }
                throw GraphError.cycle(involving: stuck)
            }
            nodes = order.map { nodes[$0] }
        }
        for (i, node) in nodes.enumerated() {
            for o in node.outputs { values[o].producer = i }
        }
    }
}
