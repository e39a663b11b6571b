import ModelIR

extension TFLiteImport {
    static let normalizationMappings: [String: Mapping] = [
        "L2_NORMALIZATION": named("L2Normalization"),
        "LOCAL_RESPONSE_NORMALIZATION": named("LocalResponseNormalization"),
    ]
}
