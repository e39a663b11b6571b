import Foundation

/// Affine quantization parameters: real = scale * (q - zeroPoint).
/// One scale means per-tensor; several mean per-axis along `axis`.
public struct QuantizationParams: Sendable, Hashable {
    public var scales: [Float]
    public var zeroPoints: [Int64]
    public var axis: Int?

    public init(scales: [Float], zeroPoints: [Int64], axis: Int?) {
        self.scales = scales
        self.zeroPoints = zeroPoints
        self.axis = axis
    }

    public var isPerAxis: Bool { scales.count > 1 }
}

/// The bytes of a constant tensor.
///
/// Weights are not copied after loading: `TensorData` either owns its bytes
/// (values that had to be converted, e.g. ONNX's typed `float_data` lists) or
/// borrows them from a parsed message or a mapped file, holding `owner` so
/// the memory outlives every tensor that points into it.
public final class TensorData: @unchecked Sendable {
    public enum Storage {
        case owned([UInt8])
        case borrowed(UnsafeRawBufferPointer, owner: AnyObject)
    }

    public let dtype: DType
    public let shape: [Int]
    public let storage: Storage
    public var quantization: QuantizationParams?

    public init(dtype: DType, shape: [Int], storage: Storage, quantization: QuantizationParams? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.quantization = quantization
    }

    public var elementCount: Int { Shape.product(shape) ?? 0 }

    public var byteCount: Int {
        switch storage {
        case .owned(let a): return a.count
        case .borrowed(let p, _): return p.count
        }
    }

    public var isBorrowed: Bool {
        if case .borrowed = storage { return true }
        return false
    }

    /// Calls `body` with the tensor's bytes, wherever they live.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .owned(let a): return try a.withUnsafeBytes(body)
        case .borrowed(let p, let owner):
            return try withExtendedLifetime(owner) { try body(p) }
        }
    }

    /// Integer elements (int8...int64, uint8...uint64, bool), for shape-like
    /// constants; nil for other types or when the bytes are short.
    public func integers(limit: Int = 1 << 20) -> [Int]? {
        let n = elementCount
        guard n <= limit, let need = dtype.byteCount(elements: n), byteCount >= need else { return nil }
        return withBytes { raw -> [Int]? in
            var out: [Int] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                switch dtype {
                case .int64: out.append(Int(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                case .int32: out.append(Int(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case .int16: out.append(Int(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
                case .int8: out.append(Int(raw.loadUnaligned(fromByteOffset: i, as: Int8.self)))
                case .uint8, .bool: out.append(Int(raw.loadUnaligned(fromByteOffset: i, as: UInt8.self)))
                case .uint16: out.append(Int(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                case .uint32: out.append(Int(raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                case .uint64: out.append(Int(truncatingIfNeeded: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                default: return nil
                }
            }
            return out
        }
    }

    /// Floating-point elements as Double (float32/float64/float16), nil otherwise.
    public func doubles(limit: Int = 1 << 20) -> [Double]? {
        let n = elementCount
        guard n <= limit, let need = dtype.byteCount(elements: n), byteCount >= need else { return nil }
        return withBytes { raw -> [Double]? in
            var out: [Double] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                switch dtype {
                case .float32: out.append(Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self)))
                case .float64: out.append(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
                case .float16:
                    let bits = raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                    out.append(Double(halfToFloat(bits)))
                default:
                    if let ints = integers(limit: limit) { return ints.map(Double.init) }
                    return nil
                }
            }
            return out
        }
    }
}

/// IEEE half -> Float, without relying on Float16 (absent on some platforms).
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exp = Int((h >> 10) & 0x1f)
    let mant = UInt32(h & 0x3ff)
    if exp == 0 {
        let v = Float(mant) * Float(sign == 0 ? 1 : -1) / Float(1 << 24)
        return v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}

/// An owner of borrowed tensor bytes that lie in a read-only, private file mapping: their pages
/// can be given back to the system and are read again from the file if touched later.
public protocol FileBackedStorage: AnyObject {}

extension TensorData {
    /// Gives the resident pages of a file-backed constant back to the system (for weights that
    /// have been converted, e.g. fp16 widened to fp32, and are not read again). Whole pages inside
    /// the tensor only; other storage is left alone.
    public func releaseResidentPages() {
        guard case .borrowed(let p, let owner) = storage, owner is FileBackedStorage, let base = p.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + p.count) / page * page
        if end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) {
            _ = madvise(pointer, end - start, Int32(MADV_DONTNEED))
        }
    }
}
