/// Element type of a tensor, format-neutral.
///
/// Raw values are the names ModelLens prints and writes to JSON (lower case,
/// numpy-like: `float32`, `int8`, ...).
public enum DType: String, Sendable, CaseIterable, Codable {
    case float32, float16, bfloat16, float64
    case int8, uint8, int16, uint16, int32, uint32, int64, uint64
    case int4, uint4, int2, uint2
    case float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0, float4e2m1
    case bool, string, complex64, complex128
    case resource, variant
    case undefined

    /// Storage size of one element in bits (sub-byte types are packed);
    /// nil where elements have no fixed size (strings, resources).
    public var bitWidth: Int? {
        switch self {
        case .float64, .int64, .uint64, .complex64: return 64
        case .complex128: return 128
        case .float32, .int32, .uint32: return 32
        case .float16, .bfloat16, .int16, .uint16: return 16
        case .int8, .uint8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0:
            return 8
        case .int4, .uint4, .float4e2m1: return 4
        case .int2, .uint2: return 2
        case .string, .resource, .variant, .undefined: return nil
        }
    }

    /// Bytes needed for `count` elements (sub-byte types round up), nil on
    /// overflow or for variable-size types.
    public func byteCount(elements count: Int) -> Int? {
        guard let bits = bitWidth, count >= 0 else { return nil }
        let (total, overflow) = count.multipliedReportingOverflow(by: bits)
        if overflow { return nil }
        return (total + 7) / 8
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2,
             .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            return true
        default: return false
        }
    }
}
