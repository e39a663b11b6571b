/// A node attribute, after lowering. ONNX attributes keep their ONNX names;
/// TFLite builtin options keep their schema field names (`stride_w`,
/// `fused_activation_function`) and the importer adds canonical ones
/// (`strides`, `pads`, `group`, ...) for the ops it lowers.
public indirect enum Attribute: Sendable {
    case int(Int)
    case float(Double)
    case string(String)
    case ints([Int])
    case floats([Double])
    case strings([String])
    case tensor(TensorData)
    case tensors([TensorData])
    case graph(Graph)
    case graphs([Graph])
    /// A value kept by name only (type protos, sparse tensors, nested tables).
    case opaque(String)

    public var int: Int? {
        switch self {
        case .int(let v): return v
        case .float(let v) where v.rounded() == v && abs(v) < 9e18: return Int(v)
        default: return nil
        }
    }
    public var float: Double? {
        switch self {
        case .float(let v): return v
        case .int(let v): return Double(v)
        default: return nil
        }
    }
    public var ints: [Int]? {
        switch self {
        case .ints(let v): return v
        case .int(let v): return [v]
        default: return nil
        }
    }
    public var floats: [Double]? {
        if case .floats(let v) = self { return v }
        return nil
    }
    public var string: String? {
        if case .string(let v) = self { return v }
        return nil
    }
    public var strings: [String]? {
        if case .strings(let v) = self { return v }
        return nil
    }
    public var tensor: TensorData? {
        if case .tensor(let v) = self { return v }
        return nil
    }
}
