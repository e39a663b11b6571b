import ModelIR

enum TFLiteToONNX {
    static func convert(_ graph: Graph, path: String, options: Converter.Options) throws -> (Graph, Int, ConversionReport) {
        throw ExportError(path, "TFLite -> ONNX is not written yet")
    }
}
