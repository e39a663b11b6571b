import ModelIR

enum ONNXToTFLite {
    static func convert(_ graph: Graph, path: String, options: Converter.Options) throws -> (Graph, ConversionReport) {
        throw ExportError(path, "ONNX -> TFLite is not written yet")
    }
}
