import CKernels
import Foundation
import ModelRuntime
import XCTest

/// Softmax and LogSoftmax over the middle axis of [outer, axis, inner] against a double-precision
/// sum written here: contiguous rows (inner 1) of 1-300 elements and strided axes (inner up to 600,
/// YOLOv8's 16 bins over many columns), values from -80 to 80, on the AVX-512 kernels where the
/// CPU has them and the portable ones, 1 and 2 threads. A NaN in a row makes the row NaN.
final class SoftmaxKernelTests: XCTestCase {
    func testSoftmaxMatchesDoublePrecision() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        var state: UInt64 = 5
        func value() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(state >> 33) - (1 << 30)) / Float(1 << 30) * 80
        }
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            for (outer, axis, inner) in [(3, 1, 1), (2, 17, 1), (5, 300, 1), (1, 16, 600), (2, 4, 33), (3, 1, 20), (1, 80, 17)] {
                let x = (0..<(outer * axis * inner)).map { _ in value() }
                for log: Int32 in [0, 1] {
                    for threads: Int32 in [1, 2] {
                        mlk_set_threads(threads)
                        var y = [Float](repeating: 0, count: x.count)
                        mlk_softmax(x, &y, outer, axis, inner, log)
                        var worst = 0.0
                        for o in 0..<outer { for i in 0..<inner {
                            let at = { (k: Int) in (o * axis + k) * inner + i }
                            let mx = (0..<axis).map { Double(x[at($0)]) }.max()!
                            let sum = (0..<axis).reduce(0.0) { $0 + Foundation.exp(Double(x[at($1)]) - mx) }
                            for k in 0..<axis {
                                let d = Double(x[at(k)]) - mx
                                let e = log == 1 ? d - Foundation.log(sum) : Foundation.exp(d) / sum
                                worst = max(worst, abs(Double(y[at(k)]) - e) / max(1, abs(e)))
                            }
                        } }
                        XCTAssertLessThan(worst, 2e-6, "[\(outer), \(axis), \(inner)] log \(log) threads \(threads) avx512 \(avx512)")
                    }
                }
                var withNaN = x
                withNaN[0] = .nan
                var y = [Float](repeating: 0, count: x.count)
                mlk_softmax(withNaN, &y, outer, axis, inner, 0)
                XCTAssertTrue((0..<axis).allSatisfy { y[$0 * inner].isNaN }, "[\(outer), \(axis), \(inner)]: NaN row avx512 \(avx512)")
            }
        }
    }
}
