import CKernels
import Foundation
import ModelRuntime
import XCTest

/// The vector forms of the unary ops (exp, sigmoid, tanh, erf, GELU, ELU, hard-swish, ...)
/// against libm in double precision, over every float of a dense grid from -30 to 30, the
/// neighbourhoods of the branch points, huge and tiny magnitudes, infinities and NaN.
final class UnaryKernelTests: XCTestCase {
    struct Case {
        let op: Int32
        let name: String
        let alpha: Float, beta: Float
        let reference: (Double) -> Double
    }

    static let cases: [Case] = [
        Case(op: Int32(MLK_EXP), name: "Exp", alpha: 0, beta: 0, reference: { Foundation.exp($0) }),
        Case(op: Int32(MLK_SIGMOID), name: "Sigmoid", alpha: 0, beta: 0, reference: { 1 / (1 + Foundation.exp(-$0)) }),
        Case(op: Int32(MLK_SILU), name: "SiLU", alpha: 0, beta: 0, reference: { $0 / (1 + Foundation.exp(-$0)) }),
        Case(op: Int32(MLK_TANH), name: "Tanh", alpha: 0, beta: 0, reference: { Foundation.tanh($0) }),
        Case(op: Int32(MLK_ERF), name: "Erf", alpha: 0, beta: 0, reference: { Foundation.erf($0) }),
        Case(op: Int32(MLK_GELU), name: "Gelu", alpha: 0, beta: 0, reference: { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }),
        Case(op: Int32(MLK_GELU_TANH), name: "Gelu(tanh)", alpha: 0, beta: 0,
             reference: { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }),
        Case(op: Int32(MLK_ELU), name: "Elu", alpha: 0.7, beta: 0, reference: { $0 < 0 ? 0.7 * (Foundation.exp($0) - 1) : $0 }),
        Case(op: Int32(MLK_HARDSWISH), name: "HardSwish", alpha: 0, beta: 0, reference: { $0 * min(max($0 / 6 + 0.5, 0), 1) }),
        Case(op: Int32(MLK_HARDSIGMOID), name: "HardSigmoid", alpha: 0.2, beta: 0.5,
             reference: { min(max(Double(Float(0.2)) * $0 + 0.5, 0), 1) }),
        Case(op: Int32(MLK_LEAKYRELU), name: "LeakyRelu", alpha: 0.01, beta: 0, reference: { $0 < 0 ? Double(Float(0.01)) * $0 : $0 }),
    ]

    static func inputs() -> [Float] {
        var xs: [Float] = stride(from: -30.0, through: 30.0, by: 1.0 / 512).map { Float($0) }
        for point: Float in [0, 0.3, 0.5, 4, 88, 89, -87, -104] {   // the kernels' branch points and clamps
            for s: Float in [1, -1] {
                var v = point * s
                for _ in 0..<40 { xs.append(v); v = v.nextUp }
                v = point * s
                for _ in 0..<40 { xs.append(v); v = v.nextDown }
            }
        }
        xs += [1e-30, -1e-30, 1e-8, -1e-8, 3e-4, -3e-4, 100, -100, 1e30, -1e30, .infinity, -.infinity,
               .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        return xs
    }

    /// Relative error at most 2e-6 (1e-6 absolute where the result is below 1: GELU and ELU near
    /// their zeros, where onnxruntime's own polynomials are no closer), NaN for NaN, and the same
    /// result on 1 and 2 threads and through the portable path.
    func testVectorUnaryOpsMatchDoublePrecision() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only libm's scalar path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var xs = Self.inputs()
        xs += [.nan, -.nan]
        for c in Self.cases {
            var y = [Float](repeating: 0, count: xs.count)
            Executor.preferAVX512(true)
            mlk_set_threads(1)
            mlk_unary(c.op, xs, &y, xs.count, c.alpha, c.beta)
            var worst: (err: Double, x: Float) = (0, 0)
            for (x, v) in zip(xs, y) {
                if x.isNaN { XCTAssertTrue(v.isNaN, "\(c.name)(NaN) = \(v)"); continue }
                let want = c.reference(Double(x))
                if want.isInfinite || abs(want) > Double(Float.greatestFiniteMagnitude) {   // beyond float: infinite
                    XCTAssertEqual(v, want > 0 ? .infinity : -.infinity, "\(c.name)(\(x))")
                    continue
                }
                let err = abs(Double(v) - want) / max(abs(want), 0.5)
                if err > worst.err { worst = (err, x) }
            }
            XCTAssertLessThan(worst.err, 2e-6, "\(c.name): worst at x = \(worst.x)")

            // Far from zero the scalar libm path agrees to the same tolerance.
            var portable = [Float](repeating: 0, count: xs.count)
            Executor.preferAVX512(false)
            mlk_unary(c.op, xs, &portable, xs.count, c.alpha, c.beta)
            for (i, x) in xs.enumerated() where x.isFinite && abs(x) < 80 {
                let tol = 2e-6 * max(abs(Double(portable[i])), 0.5)
                XCTAssertLessThanOrEqual(abs(Double(y[i]) - Double(portable[i])), tol, "\(c.name)(\(x)): vector \(y[i]), libm \(portable[i])")
            }

            // A long row splits into tasks; the split is fixed, so 2 threads give the same bits.
            let long = (0..<100_003).map { Float($0 % 977) / 40 - 12 }
            var one = [Float](repeating: 0, count: long.count), two = one
            Executor.preferAVX512(true)
            mlk_set_threads(1)
            mlk_unary(c.op, long, &one, long.count, c.alpha, c.beta)
            mlk_set_threads(2)
            mlk_unary(c.op, long, &two, long.count, c.alpha, c.beta)
            XCTAssertEqual(one, two, "\(c.name): 1 and 2 threads differ")
        }
    }
}
