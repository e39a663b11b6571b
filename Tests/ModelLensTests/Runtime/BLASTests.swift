import CKernels
import Foundation
import ModelRuntime
import XCTest

/// The OpenBLAS library the kernels call.
final class BLASTests: XCTestCase {
    /// Debian's OpenBLAS picks its kernels by CPU model and falls back to SSE3 ("Prescott") on
    /// models it does not know (Emerald Rapids, Zen 5), where sgemm then runs 5x slower: the
    /// library must run the kernel set of this CPU's instructions.
    func testOpenBLASRunsTheKernelsOfThisCPU() throws {
        if let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !["SKYLAKEX", "HASWELL"].contains(forced) {
            throw XCTSkip("OPENBLAS_CORETYPE=\(forced) is set in the environment")
        }
        let kernels = String(cString: mlk_blas_kernels()).lowercased()
        if Executor.avx512Available {
            XCTAssertEqual(kernels, "skylakex", "AVX-512 CPU, OpenBLAS kernels \(kernels)")
        } else {
            XCTAssertNotEqual(kernels, "prescott")
        }
    }

    /// Where oneDNN is installed (Tools/setup.sh installs it), it runs the matrix products.
    func testOneDNNRunsMatrixProductsWhereInstalled() throws {
        guard ProcessInfo.processInfo.environment["MODELLENS_GEMM"] == nil else { throw XCTSkip("MODELLENS_GEMM is set") }
        let installed = ["/usr/lib/x86_64-linux-gnu/libdnnl.so.2", "/usr/lib/aarch64-linux-gnu/libdnnl.so.2", "/usr/lib/libdnnl.so.2"]
            .contains { FileManager.default.fileExists(atPath: $0) }
        guard installed else { throw XCTSkip("libdnnl is not installed: OpenBLAS runs the products") }
        XCTAssertEqual(String(cString: mlk_gemm_library()), "oneDNN")
    }

    /// A tall product shares its rows among threads (mlk_sgemm's row tiles) and a wide one its
    /// columns: both equal a double-precision sum, and 1 and 2 threads give the same bits.
    func testTallAndWideProductsMatchADirectSum() {
        defer { mlk_set_threads(1) }
        for (m, n, k) in [(1100, 96, 40), (49, 700, 33), (300, 300, 17)] {
            let a = (0..<(m * k)).map { Float(($0 * 7919) % 201) / 100 - 1 }
            let b = (0..<(k * n)).map { Float(($0 * 104_729) % 173) / 86 - 1 }
            var one = [Float](repeating: .nan, count: m * n), two = one
            mlk_set_threads(1)
            mlk_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &one, Int32(n))
            mlk_set_threads(2)
            mlk_sgemm(0, 0, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &two, Int32(n))
            XCTAssertEqual(one, two, "\(m)x\(n)x\(k): 1 and 2 threads differ")
            var worst: Double = 0
            for i in stride(from: 0, to: m, by: 7) {
                for j in stride(from: 0, to: n, by: 5) {
                    var s: Double = 0
                    for p in 0..<k { s += Double(a[i * k + p]) * Double(b[p * n + j]) }
                    worst = max(worst, abs(Double(one[i * n + j]) - s))
                }
            }
            XCTAssertLessThan(worst, 1e-4, "\(m)x\(n)x\(k)")
        }
    }
}
