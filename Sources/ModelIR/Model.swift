/// A model file after import: its main graph plus what the file says about itself.
public final class Model: @unchecked Sendable {
    /// The format of the file the model was read from: provenance, for reports and writers.
    /// The importers name the formats (ModelImport's `Model.Format.onnx`, `.tflite`).
    public struct Format: RawRepresentable, Hashable, Sendable, Codable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
    }

    public let format: Format
    /// ONNX: the IR version; TFLite: the schema version.
    public var formatVersion: Int
    /// ONNX: producer name and version; TFLite: the model's description.
    public var producer: String
    /// ONNX: domain ("" is the default) -> opset version. Empty for TFLite.
    public var opsets: [String: Int]
    public var graph: Graph
    /// TFLite subgraphs after the main one (WHILE/IF bodies, signatures).
    public var extraGraphs: [Graph]
    public var metadata: [(key: String, value: String)]
    /// Things the importer noticed and did not fail on.
    public var warnings: [String]
    public let path: String
    public let fileSize: Int

    public init(format: Format, path: String, fileSize: Int, graph: Graph) {
        self.format = format
        self.path = path
        self.fileSize = fileSize
        self.graph = graph
        self.formatVersion = 0
        self.producer = ""
        self.opsets = [:]
        self.extraGraphs = []
        self.metadata = []
        self.warnings = []
    }

    /// Every graph: the main one, the file's extra subgraphs, and all nested
    /// control-flow bodies.
    public var allGraphs: [Graph] {
        var out = [graph] + graph.nestedGraphs
        for g in extraGraphs { out.append(g); out += g.nestedGraphs }
        return out
    }

    /// Number of graphs in the file: TFLite's subgraphs, or for ONNX the main
    /// graph plus every If/Loop/Scan body (recursively).
    public var subgraphCount: Int { allGraphs.count }
}
