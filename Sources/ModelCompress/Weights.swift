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

    /// The principal directions of the m x n row-major weight `w` (outputs x inputs), for
    /// splitting it at any rank: its squared singular values (largest first), and for a rank r
    /// the best rank-r pair, w ≈ second (m x r) · first (r x n), as the projection of w onto
    /// its r leading singular vectors on the smaller side (from the Gram matrix of that side).
    struct Directions {
        let energies: [Double]
        let w: [Float], m: Int, n: Int
        /// Column j the j-th singular vector of the smaller side (k x k, k = min(m, n)).
        let vectors: [Float]

        init?(_ w: [Float], _ m: Int, _ n: Int) {
            (self.w, self.m, self.n) = (w, m, n)
            let k = min(m, n)
            var e = [Float](repeating: 0, count: k), v = [Float](repeating: 0, count: k * k)
            // For m > n the rows' Gram matrix is n x n over w^T.
            let a = m <= n ? w : Weights.transpose(w, rows: m, cols: n)
            let info = a.withUnsafeBufferPointer { mlk_gram_eigen($0.baseAddress, Int32(k), Int32(max(m, n)), &e, &v) }
            guard info == 0 else { return nil }
            energies = e.map(Double.init)
            vectors = v
        }

        func split(rank r: Int) -> (first: [Float], second: [Float]) {
            let k = min(m, n)
            var lead = [Float](repeating: 0, count: k * r)  // k x r: the r leading vectors
            for i in 0..<k { for j in 0..<r { lead[i * r + j] = vectors[i * k + j] } }
            if m <= n {
                // w ≈ U_r (U_rᵀ w): second = U_r (m x r), first = U_rᵀ w (r x n).
                var first = [Float](repeating: 0, count: r * n)
                mlk_sgemm(1, 0, Int32(r), Int32(n), Int32(m), 1, lead, Int32(r), w, Int32(n), 0, &first, Int32(n))
                return (first, lead)
            }
            // w ≈ (w V_r) V_rᵀ: first = V_rᵀ (r x n), second = w V_r (m x r).
            var second = [Float](repeating: 0, count: m * r)
            mlk_sgemm(0, 0, Int32(m), Int32(r), Int32(n), 1, w, Int32(n), lead, Int32(r), 0, &second, Int32(r))
            return (Weights.transpose(lead, rows: n, cols: r), second)
        }
    }

    static func transpose(_ v: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: v.count)
        for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = v[i * cols + j] } }
        return out
    }
}
