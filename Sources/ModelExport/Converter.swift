import Foundation
import ModelImport
import ModelIR

/// What a conversion did, for the report `modellens convert` prints.
public struct ConversionReport: Codable, Sendable {
    public var source: String
    public var target: String
    public var sourceFormat: String
    public var targetFormat: String
    public var nodesBefore = 0
    public var nodesAfter = 0
    /// "Conv -> CONV_2D" -> count.
    public var opsMapped: [String: Int] = [:]
    /// Transpose ops the converter added (at the model's edges).
    public var transposesInserted = 0
    /// Transpose ops the source model already had (kept, with their permutation adapted).
    public var transposesKept = 0
    /// Constants computed at conversion time (folded BatchNorm, permuted weights, ...).
    public var constantsFolded = 0
    public var bytesBefore = 0
    public var bytesAfter = 0
    public var notes: [String] = []
}

/// ONNX <-> TFLite conversion; the target format follows the output's extension.
///
/// ```swift
/// let model = try ModelImporter.load("mobilenet_v2.onnx", options: .init(inputShapes: ["input": Shape(known: [1, 3, 224, 224])]))
/// let report = try Converter.convert(model, to: "mobilenet_v2.tflite")
/// print(report.opsMapped)   // e.g. ["Conv -> CONV_2D": 35, ...]
/// ```
/// A model that cannot be converted throws an `ExportError` naming the node and op, and no file
/// is left behind.
public enum Converter {
    public struct Options: Sendable {
        /// Keep the source model's layout at the graph inputs and outputs (NCHW for
        /// ONNX, NHWC for TFLite) with one Transpose per 4-D input and output; when
        /// false, the converted model takes and gives the target format's layout.
        public var keepIOLayout = true
        public init() {}
    }

    /// Writes `model` to `path`, in the format its extension names. Nothing is left
    /// at `path` on failure.
    @discardableResult
    public static func convert(_ model: Model, to path: String, options: Options = Options()) throws -> ConversionReport {
        let ext = (path as NSString).pathExtension.lowercased()
        guard ext == "onnx" || ext == "tflite" else {
            throw ExportError(path, "the output must end in .onnx or .tflite (the format follows the extension)")
        }
        var report = ConversionReport(source: model.path, target: path, sourceFormat: model.format.rawValue, targetFormat: ext)
        report.bytesBefore = model.fileSize
        report.nodesBefore = model.graph.nodes.count
        switch (model.format, ext) {
        case (.onnx, "onnx"):
            var w = ONNXWriter(opsets: model.opsets)
            w.irVersion = model.formatVersion > 0 ? model.formatVersion : nil
            try w.write(model.graph, to: path)
            report.nodesAfter = model.graph.nodes.count
        case (.tflite, "tflite"):
            var w = TFLiteWriter()
            w.description = model.producer.isEmpty ? "modellens" : model.producer
            try w.write([model.graph] + model.extraGraphs, to: path)
            report.nodesAfter = model.graph.nodes.count
        case (.onnx, _):
            let (graph, r) = try ONNXToTFLite.convert(model, path: path, options: options)
            report.merge(r)
            var w = TFLiteWriter()
            w.description = "modellens (from ONNX)"
            try w.write([graph], to: path)
            report.nodesAfter = graph.nodes.count
        default:
            let (graph, opset, r) = try TFLiteToONNX.convert(model, path: path, options: options)
            report.merge(r)
            var w = ONNXWriter(opsets: ["": opset])
            w.producer = "modellens (from TFLite)"
            try w.write(graph, to: path)
            report.nodesAfter = graph.nodes.count
        }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        report.bytesAfter = (attributes?[.size] as? Int) ?? 0
        return report
    }
}

extension ConversionReport {
    mutating func merge(_ other: ConversionReport) {
        for (k, v) in other.opsMapped { opsMapped[k, default: 0] += v }
        transposesInserted += other.transposesInserted
        transposesKept += other.transposesKept
        constantsFolded += other.constantsFolded
        notes += other.notes
    }
}

extension Converter {
    /// Canonical ops the ONNX -> TFLite conversion writes.
    public static var opsWrittenToTFLite: Set<String> { ONNXToTFLite.writtenOps }
    /// TFLite builtins the TFLite -> ONNX conversion writes.
    public static var builtinsWrittenToONNX: Set<String> { TFLiteToONNX.writtenBuiltins }
}
