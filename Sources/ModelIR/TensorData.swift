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

/// Bytes a constant keeps in another form and writes out on demand: a sparse TFLite weight is
/// held as its stored values and indices (in the mapped file) and expanded whenever read, so
/// the model never holds its dense form.
public protocol ExpandedStorage: AnyObject {
    /// Size of the expanded bytes.
    var byteCount: Int { get }
    /// Size of the stored form (values and indices).
    var storedByteCount: Int { get }
    /// Writes the expanded bytes (`byteCount` of them) to `destination`.
    func expand(into destination: UnsafeMutableRawPointer)
    /// Gives the resident pages of the stored form back to the system, where it lies in a file.
    func releaseResidentPages()
}

/// The bytes of a constant tensor.
///
/// Weights are not copied after loading: `TensorData` either owns its bytes
/// (values that had to be converted, e.g. ONNX's typed `float_data` lists),
/// borrows them from a parsed message or a mapped file, holding `owner` so
/// the memory outlives every tensor that points into it, or computes them from
/// a compact stored form each time they are read (`ExpandedStorage`).
public final class TensorData: @unchecked Sendable {
    public enum Storage {
        case owned([UInt8])
        case borrowed(UnsafeRawBufferPointer, owner: AnyObject)
        case expanded(ExpandedStorage)
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
        case .expanded(let e): return e.byteCount
        }
    }

    /// Bytes as the file stores them: `byteCount`, or less for an expanded (sparse) constant.
    public var storedByteCount: Int {
        if case .expanded(let e) = storage { return e.storedByteCount }
        return byteCount
    }

    public var isBorrowed: Bool {
        if case .borrowed = storage { return true }
        return false
    }

    /// Calls `body` with the tensor's bytes, wherever they live (expanded ones in a copy that
    /// lasts for the call).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .owned(let a): return try a.withUnsafeBytes(body)
        case .borrowed(let p, let owner):
            return try withExtendedLifetime(owner) { try body(p) }
        case .expanded(let e):
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: e.byteCount, alignment: 16)
            defer { copy.deallocate() }
            if let base = copy.baseAddress { e.expand(into: base) }
            return try body(UnsafeRawBufferPointer(copy))
        }
    }

    /// Writes the tensor's bytes (`byteCount` of them) to `destination`.
    public func copyBytes(to destination: UnsafeMutableRawPointer) {
        if case .expanded(let e) = storage { e.expand(into: destination); return }
        withBytes { if let base = $0.baseAddress { destination.copyMemory(from: base, byteCount: $0.count) } }
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
public protocol FileBackedStorage: AnyObject {
    /// The whole mapping.
    var mappedBytes: UnsafeRawBufferPointer { get }
    /// Whether a runtime should read these bytes where they lie (TFLite's aligned buffers), rather
    /// than copy what it keeps reading (ONNX raw_data, packed at arbitrary offsets).
    var readInPlace: Bool { get }
}

extension FileBackedStorage {
    public var readInPlace: Bool { true }
}

/// Gives back every whole page of `region` that none of `keep` (address ranges, any order)
/// touches.
public func releasePages(of region: UnsafeRawBufferPointer, except keep: [Range<Int>]) {
    guard let base = region.baseAddress, region.count > 0 else { return }
    var from = Int(bitPattern: base)
    let end = from + region.count
    for r in keep.sorted(by: { $0.lowerBound < $1.lowerBound }) where r.upperBound > from && r.lowerBound < end {
        if r.lowerBound > from { releasePages(of: UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: from), count: r.lowerBound - from)) }
        from = max(from, r.upperBound)
    }
    if end > from { releasePages(of: UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: from), count: end - from)) }
}

/// Gives the whole pages inside `bytes` back to the system (see `FileBackedStorage`).
public func releasePages(of bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + bytes.count) / page * page
    if end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) {
        _ = madvise(pointer, end - start, Int32(MADV_DONTNEED))
    }
}

extension TensorData {
    /// Whether the bytes lie in a mapped model file (pages the system can take back and read again).
    public var isFileBacked: Bool {
        if case .borrowed(_, let owner) = storage { return owner is FileBackedStorage }
        return false
    }

    /// Gives the resident pages of a file-backed constant back to the system (for weights that
    /// have been converted, e.g. fp16 widened to fp32, and are not read again). Whole pages inside
    /// the tensor only; owned storage is left alone.
    public func releaseResidentPages() {
        if case .expanded(let e) = storage { e.releaseResidentPages(); return }
        guard case .borrowed(let p, let owner) = storage, owner is FileBackedStorage else { return }
        releasePages(of: p)
    }
}
