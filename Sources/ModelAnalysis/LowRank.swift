import CKernels
import ModelIR

/// Effective rank of fully-connected and 1x1-convolution weights: the fewest
/// singular values holding 99% of the spectral energy (sum of squares), and
/// what splitting the layer into two factors of that rank would save
/// (parameters and MACs scale by r (m + n) / (m n)).
public struct LowRankFinding: Sendable {
    public var node: Int
    public var rows: Int
    public var cols: Int
    public var effectiveRank: Int
    public var paramsSaved: Int
    public var macsSaved: Int
}

public enum LowRank {
    public static let energy = 0.99

    /// Analyses every Gemm / MatMul / FullyConnected / 1x1 Conv (group 1) whose float32 weight
    /// has at most `limit` elements (singular values of large matrices take seconds).
    public static func analyze(_ r: AnalysisReport, limit: Int = 4 << 20) -> (findings: [LowRankFinding], skipped: [String]) {
        let g = r.model.graph
        var out: [LowRankFinding] = []
        var skipped: [String] = []
        for a in r.nodes where a.macs > 0 {
            let node = g.nodes[a.index]
            guard node.inputs.count > 1, let wid = node.inputs[1], let w = g.values[wid].constant, w.dtype == .float32 else { continue }
            var m = 0, n = 0
            switch node.op.rawValue {
            case "Gemm", "FullyConnected", "MatMul":
                guard w.shape.count == 2 else { continue }
                (m, n) = (w.shape[0], w.shape[1])
            case "Conv":
                guard (node.int("group") ?? 1) == 1, w.shape.count == 4 else { continue }
                let spatial = node.kernelLayout == .ohwi ? [w.shape[1], w.shape[2]] : [w.shape[2], w.shape[3]]
                guard spatial == [1, 1] else { continue }
                (m, n) = (w.shape[0], w.shape[node.kernelLayout == .ohwi ? 3 : 1])
            default: continue
            }
            guard m > 1, n > 1 else { continue }
            if m * n > limit { skipped.append("\(a.name) (\(m)x\(n))"); continue }
            guard let sv = singularValues(w, m, n) else { continue }
            let total = sv.reduce(0) { $0 + Double($1) * Double($1) }
            var acc = 0.0, rank = sv.count
            for (i, s) in sv.enumerated() {
                acc += Double(s) * Double(s)
                if acc >= energy * total { rank = i + 1; break }
            }
            let before = m * n, after = rank * (m + n)
            let saved = max(0, before - after)
            out.append(LowRankFinding(node: a.index, rows: m, cols: n, effectiveRank: rank, paramsSaved: saved,
                                      macsSaved: before == 0 ? 0 : Int(Double(a.macs) * Double(saved) / Double(before))))
        }
        return (out, skipped)
    }

    static func singularValues(_ w: TensorData, _ m: Int, _ n: Int) -> [Float]? {
        guard w.byteCount >= m * n * 4 else { return nil }
        var s = [Float](repeating: 0, count: min(m, n))
        let ok: Bool = w.withBytes { raw in
            // OIHW / OHWI 1x1 kernels and [out, in] matrices are m x n row-major as stored.
            let copy = [Float](unsafeUninitializedCapacity: m * n) { buf, count in
                memcpyFloats(raw, into: buf, count: m * n)
                count = m * n
            }
            return copy.withUnsafeBufferPointer { mlk_singular_values($0.baseAddress, Int32(m), Int32(n), &s) == 0 }
        }
        return ok ? s : nil
    }

    static func memcpyFloats(_ raw: UnsafeRawBufferPointer, into buf: UnsafeMutableBufferPointer<Float>, count: Int) {
        for i in 0..<count { buf[i] = raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self) }
    }
}
