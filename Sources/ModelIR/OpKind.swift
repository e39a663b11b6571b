/// A canonical, format-neutral operator.
///
/// The vocabulary follows ONNX's operator names, the broadest standard set;
/// TFLite builtins are lowered onto them (`CONV_2D` and `DEPTHWISE_CONV_2D`
/// become `Conv` with NHWC data and an OHWI or 1HWO kernel, `LOGISTIC` becomes
/// `Sigmoid`, ...). Ops with no ONNX counterpart get names of their own
/// (`FullyConnected`, `StridedSlice`, `Relu6`). Anything not known is `opaque`:
/// kept with the shapes the file gives, never an import failure.
///
/// Each op's shape rule lives in exactly one place: the `ShapeRules` table of
/// its family (`Rules+Elementwise.swift`, `Rules+Conv.swift`, ...).
public struct OpKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ name: String) { self.rawValue = name }
    public var description: String { rawValue }

    /// An op ModelLens does not model (custom TFLite ops, unknown ONNX domains).
    public static let opaque = OpKind("Opaque")

    /// Whether a shape rule exists for this op.
    public var isKnown: Bool { ShapeRules.table[self] != nil }

    // Frequently referenced ops, for code that lowers or inspects them.
    public static let conv = OpKind("Conv")
    public static let convTranspose = OpKind("ConvTranspose")
    public static let gemm = OpKind("Gemm")
    public static let matMul = OpKind("MatMul")
    public static let fullyConnected = OpKind("FullyConnected")
    public static let constant = OpKind("Constant")
    public static let dequantize = OpKind("Dequantize")
    public static let batchNormalization = OpKind("BatchNormalization")
    public static let add = OpKind("Add")
    public static let concat = OpKind("Concat")
    public static let reshape = OpKind("Reshape")
    public static let maxPool = OpKind("MaxPool")
    public static let averagePool = OpKind("AveragePool")
    public static let loop = OpKind("Loop")
    public static let ifOp = OpKind("If")
    public static let scan = OpKind("Scan")
}
