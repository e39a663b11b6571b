import Foundation
import ModelIR

/// The formats ModelLens reads.
extension Model.Format {
    public static let onnx = Model.Format(rawValue: "onnx")
    public static let tflite = Model.Format(rawValue: "tflite")
}

/// Imports a model, choosing the format from the file's content (TFLite's
/// "TFL3" identifier) and extension.
///
/// ```swift
/// let model = try ModelImporter.load("face_detection.tflite")
/// print(model.format.rawValue, model.graph.nodes.count)
/// let fixed = try ModelImporter.load("detector.onnx", options: .init(inputShapes: ["images": Shape(known: [1, 3, 640, 640])]))
/// ```
/// A file that cannot be read throws an `ImportError` naming the file and the problem.
public enum ModelImporter {
    public struct Options: Sendable {
        /// Inputs whose shapes to fix before shape inference (`--input-shape`).
        public var inputShapes: [String: Shape] = [:]
        public init(inputShapes: [String: Shape] = [:]) { self.inputShapes = inputShapes }
    }

    public static func load(_ path: String, options: Options = Options()) throws -> Model {
        let format = try detectFormat(path)
        let model: Model
        model = format == .tflite ? try TFLiteImporter.load(path) : try ONNXImporter.load(path)
        // Bodies first, innermost first, so that If/Loop/Scan rules can read their outputs' types.
        for g in model.allGraphs.dropFirst().reversed() { ShapeInference.run(g) }
        let report = ShapeInference.run(model.graph, inputShapes: options.inputShapes)
        model.warnings += report.warnings
        return model
    }

    static func detectFormat(_ path: String) throws -> Model.Format {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ImportError(path, "no such file")
        }
        if isDir.boolValue { throw ImportError(path, "is a directory, not a model file") }
        if let h = FileHandle(forReadingAtPath: path) {
            defer { try? h.close() }
            let head = (try? h.read(upToCount: 8)) ?? Data()
            if head.count >= 8, head[4] == 0x54, head[5] == 0x46, head[6] == 0x4C, head[7] == 0x33 { return .tflite }
        } else {
            throw ImportError(path, "cannot open for reading")
        }
        let lower = path.lowercased()
        if lower.hasSuffix(".tflite") || lower.hasSuffix(".lite") { return .tflite }
        return .onnx
    }
}
