import CKernels
import ModelLensTestSupport
import XCTest

/// The sparse kernels (compressed rows of pruned weights) against the dense ones on the same
/// weights. The 1x1 convolution: planes whose last block of 64 pixels is partial (49, 196,
/// 3136 + 5), 1-3 images, scale, bias, residual and Relu6; the fully-connected layer: rows
/// whose nonzeros are not a multiple of 16, several input rows, alpha and an existing sum. The
/// same bits with 1, 2 and 3 threads, and nothing written past the output or the scratch.
final class SparseKernelTests: XCTestCase {
    func testSparseMatchesDenseAndAnyThreadCount() throws {
        var rng = Rng(s: 41)
        let guardValue: Float = -12345.5
        defer { mlk_set_threads(1) }
        for (ci, co, h, w, batch, density) in [(16, 96, 56, 56, 1, 0.1), (160, 960, 7, 7, 1, 0.3), (96, 24, 14, 14, 2, 0.2),
                                                (24, 144, 3, 1047, 1, 0.15), (7, 5, 9, 11, 3, 0.25)] {
            var p = mlk_conv(batch: Int32(batch), in_c: Int32(ci), in_h: Int32(h), in_w: Int32(w), out_c: Int32(co), out_h: Int32(h),
                             out_w: Int32(w), k_h: 1, k_w: 1, stride_h: 1, stride_w: 1, dil_h: 1, dil_w: 1, pad_top: 0, pad_left: 0,
                             pad_bottom: 0, pad_right: 0, groups: 1)
            var weights = (0..<(co * ci)).map { _ in rng.float() }
            for i in weights.indices where Double(rng.next(1000)) >= density * 1000 { weights[i] = 0 }
            let nonzero = mlk_count_nonzero(weights, weights.count)
            XCTAssertEqual(mlk_conv_sparse_ok(&p, nonzero), 1, "\(ci)->\(co) at \(density)")
            var values = [Float](repeating: 0, count: max(1, nonzero)), columns = [Int32](repeating: 0, count: max(1, nonzero))
            var starts = [Int32](repeating: 0, count: co + 1)
            mlk_sparse_pack(Int32(co), Int32(ci), weights, &values, &columns, &starts)
            let plane = h * w, n = batch * co * plane
            let x = (0..<(batch * ci * plane)).map { _ in rng.float() }
            let res = (0..<n).map { _ in rng.float() }, bias = (0..<co).map { _ in rng.float() }, scale = (0..<co).map { _ in 0.5 + rng.float() }
            // Dense reference: the NCHW kernel, one image at a time.
            var dense = [Float](repeating: 0, count: n)
            var one = p
            one.batch = 1
            var scratch = [Float](repeating: 0, count: Int(mlk_conv_nchw_scratch(&one)))
            for b in 0..<batch {
                let xi = Array(x[(b * ci * plane)..<((b + 1) * ci * plane)]), ri = Array(res[(b * co * plane)..<((b + 1) * co * plane)])
                var yi = [Float](repeating: 0, count: co * plane)
                mlk_conv_nchw(&one, xi, weights, bias, scale, ri, &yi, &scratch, 2, 0, 0)
                for i in 0..<(co * plane) { dense[b * co * plane + i] = yi[i] }
            }
            var first: [Float]? = nil
            for threads in [1, 2, 3] {
                mlk_set_threads(Int32(threads))
                var y = [Float](repeating: guardValue, count: n + 64)
                var s = [Float](repeating: guardValue, count: Int(mlk_conv_sparse_scratch(&p)) + 64)
                let sc = s.count - 64
                columns.withUnsafeBufferPointer { c in
                    starts.withUnsafeBufferPointer { st in
                        mlk_conv_sparse(&p, x, values, c.baseAddress, st.baseAddress, bias, scale, res, &y, &s, 2, 0, 0)
                    }
                }
                XCTAssertTrue(y[n...].allSatisfy { $0 == guardValue }, "wrote past its output")
                XCTAssertTrue(s[sc...].allSatisfy { $0 == guardValue }, "wrote past its scratch")
                let out = Array(y[..<n])
                if let first { XCTAssertEqual(out, first, "\(ci)->\(co) \(h)x\(w): \(threads) threads differ from 1") } else { first = out }
                let worst = zip(out, dense).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-5 * max(1, dense.map(abs).max() ?? 1), "\(ci)->\(co) \(h)x\(w) at \(density)")
            }
        }
        // Dense enough, strided or padded: not the sparse kernel's.
        var p = mlk_conv(batch: 1, in_c: 8, in_h: 4, in_w: 4, out_c: 8, out_h: 4, out_w: 4, k_h: 1, k_w: 1, stride_h: 1, stride_w: 1,
                         dil_h: 1, dil_w: 1, pad_top: 0, pad_left: 0, pad_bottom: 0, pad_right: 0, groups: 1)
        XCTAssertEqual(mlk_conv_sparse_ok(&p, 40), 0)
        p.stride_h = 2; p.stride_w = 2; p.out_h = 2; p.out_w = 2
        XCTAssertEqual(mlk_conv_sparse_ok(&p, 4), 0)
    }

    func testSparseFullyConnectedMatchesSgemm() throws {
        var rng = Rng(s: 43)
        defer { mlk_set_threads(1) }
        for (rows, units, inner, density) in [(1, 1000, 1280, 0.1), (3, 70, 33, 0.3), (2, 4096, 512, 0.05)] {
            var w = (0..<(units * inner)).map { _ in rng.float() }
            for i in w.indices where Double(rng.next(1000)) >= density * 1000 { w[i] = 0 }
            let nonzero = mlk_count_nonzero(w, w.count)
            XCTAssertEqual(mlk_gemm_sparse_ok(Int32(units), Int32(inner), nonzero), 1)
            var values = [Float](repeating: 0, count: max(1, nonzero)), columns = [Int32](repeating: 0, count: max(1, nonzero))
            var starts = [Int32](repeating: 0, count: units + 1)
            mlk_sparse_pack(Int32(units), Int32(inner), w, &values, &columns, &starts)
            let x = (0..<(rows * inner)).map { _ in rng.float() }, y0 = (0..<(rows * units)).map { _ in rng.float() }
            var dense = y0
            mlk_sgemm(0, 1, Int32(rows), Int32(units), Int32(inner), 0.5, x, Int32(inner), w, Int32(inner), 1, &dense, Int32(units))
            var first: [Float]? = nil
            for threads in [1, 2, 3] {
                mlk_set_threads(Int32(threads))
                var y = y0 + [Float](repeating: -12345.5, count: 16)
                columns.withUnsafeBufferPointer { c in
                    starts.withUnsafeBufferPointer { st in
                        mlk_gemm_sparse(Int32(rows), Int32(units), Int32(inner), x, values, c.baseAddress, st.baseAddress, 0.5, &y)
                    }
                }
                XCTAssertTrue(y[(rows * units)...].allSatisfy { $0 == -12345.5 }, "wrote past its output")
                let out = Array(y[..<(rows * units)])
                if let first { XCTAssertEqual(out, first, "\(units)x\(inner): \(threads) threads differ from 1") } else { first = out }
                let worst = zip(out, dense).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4 * max(1, dense.map(abs).max() ?? 1), "\(units)x\(inner) at \(density)")
            }
        }
        XCTAssertEqual(mlk_gemm_sparse_ok(10, 10, 40), 0)
    }
}
