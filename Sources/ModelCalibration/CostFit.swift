import Foundation
import ModelAnalysis

/// Fits a kernel class's cost model: seconds = Σ c_term × term with every c ≥ 0, minimising the
/// squared *relative* error (each sample weighted by 1 / its time, so a 10 µs kernel counts as
/// much as a 10 ms one). With six terms the non-negative least-squares solution is found
/// exactly by solving the unconstrained problem on every subset of terms and keeping the best
/// feasible one (a term no sample has, such as `rows` outside broadcasting ops and NHWC
/// depthwise, is left out).
public enum CostFit {
    static let terms = ["call", "flops", "bytes", "weightBytes", "spillBytes", "rows"]

    /// `weights`: whether the class has weights to stream (convolutions, matrix products). Other
    /// ops' constant inputs (axes, a scalar) are a few bytes that would only stand in for `call`
    /// and, fitted so, turn a larger constant into a large cost.
    static func fit(_ samples: [(features: KernelFeatures, seconds: Double)], weights: Bool = true) -> KernelCostModel? {
        let usable = samples.filter { $0.seconds > 0 }
        guard usable.count > terms.count else { return nil }
        let x = usable.map { s in terms.map { $0 == "weightBytes" && !weights ? 0 : s.features.terms[$0] ?? 0 } }
        let y = usable.map(\.seconds)
        guard let coef = nonNegativeRelativeFit(x, y) else { return nil }
        let errors = zip(x, y).map { s -> Double in abs(zip(s.0, coef).reduce(0) { $0 + $1.0 * $1.1 } / s.1 - 1) }.sorted()
        var coefficients: [String: Double] = [:]
        for (j, t) in terms.enumerated() where coef[j] > 0 { coefficients[t] = coef[j] }
        return KernelCostModel(coefficients: coefficients, samples: usable.count, medianAbsError: errors[errors.count / 2])
    }

    /// Classes with at most this many samples choose their terms by leave-one-out error.
    static let crossValidatedBelow = 60

    /// argmin over c ≥ 0 of Σ w_i ((x_i · c) / y_i − 1)², for a few columns (every subset is tried).
    /// With few samples the subset is chosen by its leave-one-out error instead of its error on
    /// the samples it was fitted to: on eight samples five terms fit the noise, and two
    /// calibrations in a row had given one class (NCHW 3x3 convolutions off Winograd) fits 1.7x
    /// apart.
    static func nonNegativeRelativeFit(_ x: [[Double]], _ y: [Double], weights: [Double]? = nil) -> [Double]? {
        let w = weights ?? [Double](repeating: 1, count: y.count)
        guard let width = x.first?.count, width > 0, width <= 12 else { return nil }
        // Scale columns to comparable magnitudes before solving.
        let scale = (0..<width).map { j in max(1e-30, x.map { abs($0[j]) }.max() ?? 1) }
        let crossValidate = x.count <= crossValidatedBelow
        var best: (coef: [Double], loss: Double)?
        for mask in 1..<(1 << width) {
            let cols = (0..<width).filter { mask & (1 << $0) != 0 }
            guard cols.allSatisfy({ j in x.contains { $0[j] != 0 } }) else { continue }
            guard let sol = weightedLeastSquares(x, y, w, cols: cols, scale: scale), sol.allSatisfy({ $0 >= 0 }) else { continue }
            var coef = [Double](repeating: 0, count: width)
            for (k, j) in cols.enumerated() { coef[j] = sol[k] / scale[j] }
            var loss = 0.0
            if crossValidate {
                guard x.count > cols.count + 1 else { continue }
                for i in x.indices {
                    var held = w
                    held[i] = 0
                    guard let s = weightedLeastSquares(x, y, held, cols: cols, scale: scale) else { loss = .infinity; break }
                    let p = zip(cols, s).reduce(0) { $0 + x[i][$1.0] / scale[$1.0] * max(0, $1.1) }
                    loss += w[i] * (p / y[i] - 1) * (p / y[i] - 1)
                }
            } else {
                for i in x.indices {
                    let p = zip(x[i], coef).reduce(0) { $0 + $1.0 * $1.1 }
                    loss += w[i] * (p / y[i] - 1) * (p / y[i] - 1)
                }
            }
            if best == nil || loss < best!.loss { best = (coef, loss) }
        }
        return best?.coef
    }

    /// min Σ w ((x·c)/y − 1)² over the columns `cols` (pre-divided by `scale`): normal equations,
    /// Gaussian elimination with partial pivoting. Nil when singular.
    /// Whether a class's kernels have weights to stream.
    static func hasWeights(_ kernelClass: String) -> Bool { kernelClass.hasPrefix("conv") || kernelClass.hasPrefix("gemm") }

    static func weightedLeastSquares(_ x: [[Double]], _ y: [Double], _ w: [Double], cols: [Int], scale: [Double]) -> [Double]? {
        let p = cols.count
        var a = [[Double]](repeating: [Double](repeating: 0, count: p + 1), count: p)
        for k in x.indices {
            let r = cols.map { x[k][$0] / scale[$0] / y[k] }
            for i in 0..<p {
                for j in 0..<p { a[i][j] += w[k] * r[i] * r[j] }
                a[i][p] += w[k] * r[i]
            }
        }
        for col in 0..<p {
            guard let pivot = (col..<p).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }), abs(a[pivot][col]) > 1e-12 else { return nil }
            a.swapAt(col, pivot)
            for r in 0..<p where r != col {
                let f = a[r][col] / a[col][col]
                for c in col...p { a[r][c] -= f * a[col][c] }
            }
        }
        return (0..<p).map { a[$0][p] / a[$0][$0] }
    }
}
