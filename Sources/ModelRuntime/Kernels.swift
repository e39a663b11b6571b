import CKernels
import Foundation
import ModelIR

/// Op (canonical name) -> kernel factory, assembled from the op families
/// (`Kernels+*.swift`, one file per family).
enum KernelRegistry {
    static let table: [String: KernelFactory] = {
        var t: [String: KernelFactory] = [:]
        for family in [elementwiseKernels, convKernels, convTransposeKernels, linalgKernels, tensorKernels, reduceKernels,
                       quantizationKernels, resizeKernels, castKernels, indexingKernels, einsumKernels, selectionKernels, recurrentKernels,
                       lossKernels, normalizationKernels, bitwiseKernels, cumulativeKernels, integerKernels, qoperatorKernels, qoperatorTableKernels, detectionKernels] {
            for (name, factory) in family { t[name] = factory }
        }
        // float64 / float16 inputs of common elementwise ops run through a Double path.
        for name in ["Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Floor", "Ceil", "Relu", "Sigmoid", "Tanh", "Sin", "Cos",
                     "Sign", "Round", "Erf", "Softsign", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum"] {
            if let base = t[name] { t[name] = widened(name, base) }
        }
        return t
    }()
}

// MARK: helpers shared by the families

func requireFloat(_ t: RTensor?, _ ctx: PlanContext? = nil, node: Node) throws -> RTensor {
    guard let t else { throw RuntimeError.invalid(node: node.name, reason: "missing input") }
    guard t.dtype == .float32 else {
        throw RuntimeError.unsupported(op: node.sourceOp, node: node.name, reason: "element type \(t.dtype.rawValue) (float32 only)")
    }
    return t
}

/// numpy broadcasting of two shapes; nil when they do not broadcast.
func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? { Broadcast.shape(a, b) }

/// Element strides of `shape` seen through broadcasting to `target` (0 along broadcast axes).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] { Broadcast.strides(shape, to: target) }

func normalize(_ axis: Int, _ rank: Int, _ node: Node) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else { throw RuntimeError.invalid(node: node.name, reason: "axis \(axis) out of range for rank \(rank)") }
    return a
}

/// A view of `t` with another shape (same buffer).
func view(_ t: RTensor, _ shape: [Int]) -> RTensor { RTensor(shape: shape, dtype: t.dtype, buffer: t.buffer) }

/// A copy with another element type.
func cast(_ t: RTensor, to dtype: DType, _ ctx: RunContext) throws -> RTensor {
    let y = try ctx.alloc(t.shape, dtype)
    let n = t.count
    for i in 0..<n {
        let v = Double(t.element(i))
        switch dtype {
        case .float32: y.raw.storeBytes(of: Float(v), toByteOffset: i * 4, as: Float.self)
        case .float64: y.raw.storeBytes(of: t.dtype == .float64 ? t.raw.load(fromByteOffset: i * 8, as: Double.self) : v, toByteOffset: i * 8, as: Double.self)
        case .int64:
            let iv: Int64 = t.dtype == .int64 ? t.raw.load(fromByteOffset: i * 8, as: Int64.self) : (v.isFinite ? Int64(clamping: Int(v.rounded(.towardZero))) : 0)
            y.raw.storeBytes(of: iv, toByteOffset: i * 8, as: Int64.self)
        case .int32: y.raw.storeBytes(of: Int32(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i * 4, as: Int32.self)
        case .bool: y.raw.storeBytes(of: UInt8(v != 0 ? 1 : 0), toByteOffset: i, as: UInt8.self)
        case .uint8: y.raw.storeBytes(of: UInt8(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i, as: UInt8.self)
        case .int8: y.raw.storeBytes(of: Int8(clamping: v.isFinite ? Int(v.rounded(.towardZero)) : 0), toByteOffset: i, as: Int8.self)
        default: break
        }
    }
    return y
}

extension Node {
    var label: String { name.isEmpty ? sourceOp : name }
}
