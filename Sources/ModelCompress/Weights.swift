import CKernels
import Foundation
import ModelIR

/// Float32 weights read out of and written into the IR's constants.
enum Weights {
    /// The elements of a float32 constant, or nil for any other type (int8, fp16 weights are
    /// left to the quantisation methods).
    static func floats(_ t: TensorData) -> [Float]? {
        guard t.dtype == .float32, t.byteCount >= t.elementCount * 4 else { return nil }
        let n = t.elementCount
        return t.withBytes { raw in
            [Float](unsafeUninitializedCapacity: n) { buf, count in
                if let base = raw.baseAddress, let dst = buf.baseAddress { memcpy(dst, base, n * 4) }
                count = n
            }
        }
    }

    static func tensor(_ values: [Float], _ shape: [Int]) -> TensorData {
        TensorData(dtype: .float32, shape: shape, storage: .owned(values.withUnsafeBytes { Array($0) }))
    }

    /// Thin SVD of the m x n row-major `a`: u (m x k), s (k), vt (k x n) with k = min(m, n).
    static func svd(_ a: [Float], _ m: Int, _ n: Int) -> (u: [Float], s: [Float], vt: [Float])? {
        let k = min(m, n)
        var s = [Float](repeating: 0, count: k), u = [Float](repeating: 0, count: m * k), vt = [Float](repeating: 0, count: k * n)
        let info = a.withUnsafeBufferPointer { mlk_svd($0.baseAddress, Int32(m), Int32(n), &s, &u, &vt) }
        return info == 0 ? (u, s, vt) : nil
    }
}
