import ModelExport
import ModelImport
import ModelIR
import ModelRuntime

/// What ModelLens does with one canonical op, read from the tables each module keeps (the
/// importers' mappings, the shape and cost rules, the kernel registry, the converters'
/// lowerings): `modellens ops` prints it, and a test keeps the tables in step.
public struct OpSupport: Sendable, Equatable {
    public var op: String
    /// ONNX op names that import as this op (the same name, or an older spelling).
    public var onnx: [String]
    /// TFLite builtins that import as this op.
    public var tflite: [String]
    public var shape: Bool
    public var cost: Bool
    public var run: Bool
    /// Written when a TFLite model converts to ONNX (some builtin importing as this op converts).
    public var writeONNX: Bool
    /// Written when an ONNX model converts to TFLite.
    public var writeTFLite: Bool
    /// Why the executor has no kernel for an op with a shape rule.
    public var note: String?

    public var json: [String: Any] {
        var d: [String: Any] = ["op": op, "onnx": onnx, "tflite": tflite, "shape": shape, "cost": cost, "run": run,
                                "writeONNX": writeONNX, "writeTFLite": writeTFLite]
        if let note { d["note"] = note }
        return d
    }
}

public enum OpSupportMatrix {
    /// Ops with a shape rule that the executor does not run, and why.
    public static let notRun: [String: String] = {
        var t: [String: String] = [:]
        for op in ["If", "Loop", "Scan"] { t[op] = "control flow: subgraphs are not executed yet" }
        for op in ["Bernoulli", "RandomNormalLike", "RandomUniformLike"] { t[op] = "random numbers: no reference output to match" }
        t["SequenceLength"] = "sequence values are not run"
        t["FakeQuant"] = "a training-time op"
        for op in ["Atan2", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Erfc", "EyeLike", "FloorDiv", "FloorMod",
                   "GlobalLpPool", "GroupNormalization", "L2Normalization", "LRN", "LocalResponseNormalization", "LpNormalization",
                   "MeanVarianceNormalization", "ReduceAll", "ReduceAny", "ReverseSequence", "ReverseV2", "SignBit", "Swish"] {
            t[op] = "no kernel yet"
        }
        return t
    }()

    /// Every canonical op any module knows, sorted by name.
    public static func rows() -> [OpSupport] {
        let shapes = Set(ShapeRules.table.keys.map(\.rawValue))
        let costs = Set(CostModel.table.keys.map(\.rawValue))
        let kernels = Set(Executor.supportedOps)
        let tflite = TFLiteImport.builtinsByCanonicalOp
        var onnx: [String: [String]] = [:]
        for name in ONNXOperators.names { onnx[ONNXImport.canonicalName(name), default: []].append(name) }
        for name in ONNXImport.microsoftOps { onnx[name, default: []].append("com.microsoft:" + name) }
        let toTFLite = Converter.opsWrittenToTFLite
        let toONNX = Converter.builtinsWrittenToONNX
        let all = shapes.union(costs).union(kernels).union(tflite.keys).union(onnx.keys).union(toTFLite)
        return all.sorted().map { op in
            OpSupport(op: op, onnx: (onnx[op] ?? []).sorted(), tflite: (tflite[op] ?? []).sorted(), shape: shapes.contains(op),
                      cost: costs.contains(op), run: kernels.contains(op),
                      writeONNX: (tflite[op] ?? []).contains(where: toONNX.contains), writeTFLite: toTFLite.contains(op),
                      note: kernels.contains(op) ? nil : notRun[op])
        }
    }
}
