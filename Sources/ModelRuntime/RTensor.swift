import Foundation
import ModelIR

/// Memory a runtime tensor lives in: owned (malloc'd, returned to the pool) or
/// borrowed (a weight where it lies in the model: mapped file or parsed message).
public final class RBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int
    let owned: Bool
    let owner: AnyObject?
    /// The run context that allocated this buffer and owns it now (nil: borrowed, made outside a
    /// run, or handed to a caller). Set and read by that context's runs only; an identifier, so
    /// that testing it never touches the context object.
    var context: ObjectIdentifier? = nil
    /// While `context` runs: how many of the run's live values use this buffer (views share one).
    var liveValues = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 64)
        owned = true
        owner = nil
    }

    /// A buffer of `bytes`, or an error when the system refuses the memory (an address-space
    /// limit, overcommit turned off) instead of the abort of a failed allocation.
    init(allocating bytes: Int) throws {
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 64, max(bytes, 1)) == 0, let p else {
            throw RuntimeError.input("cannot allocate \(MemoryBudget.describe(bytes)): out of memory")
        }
        pointer = p
        capacity = max(bytes, 1)
        owned = true
        owner = nil
        fromMemalign = true
    }

    /// True when `pointer` came from posix_memalign (released with free).
    private var fromMemalign = false

    init(borrowing p: UnsafeRawPointer, capacity: Int, owner: AnyObject) {
        pointer = UnsafeMutableRawPointer(mutating: p)
        self.capacity = capacity
        owned = false
        self.owner = owner
    }

    deinit { if owned { if fromMemalign { free(pointer) } else { pointer.deallocate() } } }
}

/// A tensor during execution: shape, element type and a buffer.
///
/// ```swift
/// let x = RTensor.make([1, 2, 3, 4], shape: [1, 4])     // owned float32
/// let y = try NPY.read("input.npy")                       // from numpy
/// print(x.toFloats(), y.shape)
/// ```
public struct RTensor: @unchecked Sendable {
    public var shape: [Int]
    public var dtype: DType
    public var buffer: RBuffer

    public init(shape: [Int], dtype: DType, buffer: RBuffer) {
        self.shape = shape
        self.dtype = dtype
        self.buffer = buffer
    }

    public var count: Int { shape.reduce(1, *) }
    public var elementSize: Int { (dtype.bitWidth ?? 8) / 8 }
    public var byteCount: Int { count * elementSize }

    public var floats: UnsafeMutablePointer<Float> { buffer.pointer.assumingMemoryBound(to: Float.self) }
    public var raw: UnsafeMutableRawPointer { buffer.pointer }

    /// A new owned tensor (zeroed contents are not guaranteed).
    public static func allocate(_ shape: [Int], _ dtype: DType) -> RTensor {
        RTensor(shape: shape, dtype: dtype, buffer: RBuffer(capacity: max(1, shape.reduce(1, *) * max(1, (dtype.bitWidth ?? 8) / 8))))
    }

    /// A standalone tensor holding `values`.
    public static func make(_ values: [Float], shape: [Int]) -> RTensor {
        let t = RTensor(shape: shape, dtype: .float32, buffer: RBuffer(capacity: values.count * 4))
        values.withUnsafeBytes { t.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return t
    }

    public static func make(int64 values: [Int64], shape: [Int]) -> RTensor {
        let t = RTensor(shape: shape, dtype: .int64, buffer: RBuffer(capacity: values.count * 8))
        values.withUnsafeBytes { if let b = $0.baseAddress { t.raw.copyMemory(from: b, byteCount: $0.count) } }
        return t
    }

    /// Elements as Float (float32/float64/float16/integers/bool), for tests and outputs.
    public func toFloats() -> [Float] {
        (0..<count).map { element($0) }
    }

    func element(_ i: Int) -> Float {
        switch dtype {
        case .float32: return raw.load(fromByteOffset: i * 4, as: Float.self)
        case .float64: return Float(raw.load(fromByteOffset: i * 8, as: Double.self))
        case .float16: return halfToFloat(raw.load(fromByteOffset: i * 2, as: UInt16.self))
        case .int64: return Float(raw.load(fromByteOffset: i * 8, as: Int64.self))
        case .int32: return Float(raw.load(fromByteOffset: i * 4, as: Int32.self))
        case .int8: return Float(raw.load(fromByteOffset: i, as: Int8.self))
        case .uint8, .bool: return Float(raw.load(fromByteOffset: i, as: UInt8.self))
        case .int16: return Float(raw.load(fromByteOffset: i * 2, as: Int16.self))
        case .uint16: return Float(raw.load(fromByteOffset: i * 2, as: UInt16.self))
        case .uint32: return Float(raw.load(fromByteOffset: i * 4, as: UInt32.self))
        case .uint64: return Float(raw.load(fromByteOffset: i * 8, as: UInt64.self))
        case .bfloat16: return Float(bitPattern: UInt32(raw.load(fromByteOffset: i * 2, as: UInt16.self)) << 16)
        default: return .nan
        }
    }

    /// Integer elements (int64/int32/int8/uint8/bool), for shape-like inputs.
    public func integers() -> [Int] {
        (0..<count).map { i in
            switch dtype {
            case .int64: return Int(raw.load(fromByteOffset: i * 8, as: Int64.self))
            case .int32: return Int(raw.load(fromByteOffset: i * 4, as: Int32.self))
            case .int8: return Int(raw.load(fromByteOffset: i, as: Int8.self))
            case .uint8, .bool: return Int(raw.load(fromByteOffset: i, as: UInt8.self))
            case .int16: return Int(raw.load(fromByteOffset: i * 2, as: Int16.self))
            case .uint16: return Int(raw.load(fromByteOffset: i * 2, as: UInt16.self))
            case .uint32: return Int(raw.load(fromByteOffset: i * 4, as: UInt32.self))
            case .uint64: return Int(truncatingIfNeeded: raw.load(fromByteOffset: i * 8, as: UInt64.self))
            case .float32:
                let f = raw.load(fromByteOffset: i * 4, as: Float.self)
                return f.isFinite ? Int(f) : 0
            case .float64:
                let d = raw.load(fromByteOffset: i * 8, as: Double.self)
                return d.isFinite && abs(d) < 9e18 ? Int(d) : 0
            default: return 0
            }
        }
    }
}

func halfToFloat(_ h: UInt16) -> Float {
    let sign: Float = (h >> 15) != 0 ? -1 : 1
    let exp = Int((h >> 10) & 0x1f), mant = Float(h & 0x3ff)
    if exp == 0 { return sign * mant * Float(pow(2.0, -24.0)) }
    if exp == 31 { return mant == 0 ? sign * .infinity : .nan }
    return sign * (1 + mant / 1024) * Float(pow(2.0, Double(exp - 15)))
}

/// Why a model cannot run. Messages name the node and the op.
public enum RuntimeError: Error, CustomStringConvertible {
    case unsupported(op: String, node: String, reason: String)
    case invalid(node: String, reason: String)
    case input(String)

    public var description: String {
        switch self {
        case .unsupported(let op, let node, let reason):
            return "op \(op) (node '\(node)') is not supported: \(reason)"
        case .invalid(let node, let reason): return "node '\(node)': \(reason)"
        case .input(let s): return s
        }
    }
}
