import CKernels
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// Max pooling, global means and maxima, and the batch-1 matrix-vector product.
/// (The helpers and geometry generators are ConvKernelTests'.)
extension ConvKernelTests {
    /// NCHW max pooling, AVX-512 against the portable loop, bit for bit: 3x3 stride 2 with a left
    /// pad of 1 (ResNet's, which takes the rows' maximum first and then the windows across) and
    /// other windows, odd and even sizes, a ceil-mode extra column, inputs holding NaN (which must
    /// come out as NaN), -inf and -0.
    func testAVX512MaxPoolingAgreesWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true) }
        var rng = Rng(s: 112)
        var checked = 0, resnet = 0
        while checked < 300 {
            let ours = rng.next(2) == 0
            let c = 1 + rng.next(3), h = 2 + rng.next(40), wd = 2 + rng.next(70)
            let k = ours ? 3 : 2 + rng.next(3), s = ours ? 2 : 1 + rng.next(2)
            let (pt, pl, pb, pr) = ours ? (rng.next(2), 1, rng.next(3), rng.next(3))
                                        : (rng.next(k), rng.next(k), rng.next(k), rng.next(k))
            guard h + pt + pb >= k, wd + pl + pr >= k else { continue }
            let oh = (h + pt + pb - k) / s + 1
            let ow = (wd + pl + pr - k) / s + 1 + (rng.next(3) == 0 && (wd + pl + pr - k) % s != 0 ? 1 : 0)
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(c), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: Int32(k), k_w: Int32(k), stride_h: Int32(s), stride_w: Int32(s),
                             dil_h: 1, dil_w: 1, pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                             pad_right: Int32(pr), groups: 1)
            let x: [Float] = (0..<(c * h * wd)).map { _ in
                switch rng.next(40) {
                case 0: return .nan
                case 1: return -.infinity
                case 2: return -0.0
                default: return rng.float()
                }
            }
            var portable = [Float](repeating: 7, count: c * oh * ow), fast = portable
            Executor.preferAVX512(false)
            mlk_pool(0, 0, 0, &p, x, &portable)
            Executor.preferAVX512(true)
            mlk_pool(0, 0, 0, &p, x, &fast)
            let label = "max pool \(c)x\(h)x\(wd) k\(k) s\(s) pads \(pt),\(pl),\(pb),\(pr) -> \(oh)x\(ow)"
            XCTAssertEqual(portable.map { $0.isNaN }, fast.map { $0.isNaN }, "\(label): NaN outputs differ")
            XCTAssertEqual(portable.map { $0.isNaN ? 0 : $0 }, fast.map { $0.isNaN ? 0 : $0 }, label)
            checked += 1
            resnet += ours ? 1 : 0
        }
        XCTAssertGreaterThan(resnet, 100)
    }

    /// NHWC max pooling (TFLite's), AVX-512 rows of channel vectors against the portable loop, bit
    /// for bit: 1-40 channels (a partial vector), windows 1-4 with stride 1-3, dilation 1-2, pads,
    /// two images, 1 and 2 threads; NaN inputs are passed over by both, -inf and -0 kept.
    func testAVX512NHWCMaxPoolingAgreesWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 113)
        var checked = 0
        while checked < 200 {
            let c = 1 + rng.next(40), h = 1 + rng.next(20), wd = 1 + rng.next(20), n = 1 + rng.next(2)
            let kh = 1 + rng.next(4), kw = 1 + rng.next(4), s = 1 + rng.next(3), d = 1 + rng.next(2)
            let (pt, pl, pb, pr) = (rng.next(kh), rng.next(kw), rng.next(kh), rng.next(kw))
            let eh = (kh - 1) * d + 1, ew = (kw - 1) * d + 1
            guard h + pt + pb >= eh, wd + pl + pr >= ew else { continue }
            let oh = (h + pt + pb - eh) / s + 1, ow = (wd + pl + pr - ew) / s + 1
            var p = mlk_conv(batch: Int32(n), in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(c), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: Int32(kh), k_w: Int32(kw), stride_h: Int32(s), stride_w: Int32(s),
                             dil_h: Int32(d), dil_w: Int32(d), pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                             pad_right: Int32(pr), groups: 1)
            let x: [Float] = (0..<(n * c * h * wd)).map { _ in
                switch rng.next(40) {
                case 0: return .nan
                case 1: return -.infinity
                case 2: return -0.0
                default: return rng.float()
                }
            }
            var portable = [Float](repeating: 7, count: n * c * oh * ow), fast = portable
            Executor.preferAVX512(false)
            mlk_pool(0, 1, 0, &p, x, &portable)
            Executor.preferAVX512(true)
            mlk_set_threads(Int32(1 + rng.next(2)))
            mlk_pool(0, 1, 0, &p, x, &fast)
            let label = "NHWC max pool \(n)x\(h)x\(wd)x\(c) k\(kh)x\(kw) s\(s) d\(d) pads \(pt),\(pl),\(pb),\(pr)"
            XCTAssertEqual(portable.map(\.bitPattern), fast.map(\.bitPattern), label)
            checked += 1
        }
    }

    /// Average pooling, AVX-512 against the portable loop: NCHW planes (stride 1-2, up to 8 chunks
    /// of 16 outputs and several rows at once, planes wider than 128 outputs in blocks; sums
    /// multiplied by reciprocals: within 1e-6 relative) and NHWC rows of channel vectors (any
    /// stride, dilation 1: bit for bit), windows 1-5 with pads, with and without
    /// count_include_pad, 1 and 2 threads.
    func testAVX512AveragePoolingAgreesWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 114)
        var checked = 0
        while checked < 200 {
            let nhwc = checked % 2 == 1
            let c = 1 + rng.next(nhwc ? 40 : 4), h = 1 + rng.next(24), wd = 1 + rng.next(nhwc ? 20 : checked % 8 == 0 ? 300 : 70)
            let kh = 1 + rng.next(5), kw = 1 + rng.next(5), s = 1 + rng.next(nhwc ? 3 : 2), includePad = Int32(rng.next(2))
            let (pt, pl, pb, pr) = (rng.next(kh), rng.next(kw), rng.next(kh), rng.next(kw))
            guard h + pt + pb >= kh, wd + pl + pr >= kw else { continue }
            let oh = (h + pt + pb - kh) / s + 1, ow = (wd + pl + pr - kw) / s + 1
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(c), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: Int32(kh), k_w: Int32(kw), stride_h: Int32(s), stride_w: Int32(s),
                             dil_h: 1, dil_w: 1, pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                             pad_right: Int32(pr), groups: 1)
            let x = (0..<(c * h * wd)).map { _ in rng.float() }
            var portable = [Float](repeating: 7, count: c * oh * ow), fast = portable
            Executor.preferAVX512(false)
            mlk_pool(1, nhwc ? 1 : 0, includePad, &p, x, &portable)
            Executor.preferAVX512(true)
            mlk_set_threads(Int32(1 + rng.next(2)))
            mlk_pool(1, nhwc ? 1 : 0, includePad, &p, x, &fast)
            let label = "\(nhwc ? "NHWC" : "NCHW") average pool \(c)x\(h)x\(wd) k\(kh)x\(kw) s\(s) pads \(pt),\(pl),\(pb),\(pr) include_pad \(includePad)"
            if nhwc {
                XCTAssertEqual(portable.map(\.bitPattern), fast.map(\.bitPattern), label)
            } else {
                let worst = zip(portable, fast).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-6, label)
            }
            checked += 1
        }
        // One output column at any stride (Keras's global pools as k x k, stride k), max and average.
        for k in 2...7 {
            let c = 3, h = k + 1
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(k), out_c: Int32(c), out_h: Int32((h - k) / k + 1),
                             out_w: 1, k_h: Int32(k), k_w: Int32(k), stride_h: Int32(k), stride_w: Int32(k),
                             dil_h: 1, dil_w: 1, pad_top: 0, pad_left: 0, pad_bottom: 0, pad_right: 0, groups: 1)
            XCTAssertEqual(mlk_pool_loop(1, 0, &p), Int32(MLK_POOL_PLANES))
            let x = (0..<(c * h * k)).map { _ in rng.float() }
            for kind: Int32 in [0, 1] {
                var portable = [Float](repeating: 7, count: c * Int(p.out_h)), fast = portable
                Executor.preferAVX512(false)
                mlk_pool(kind, 0, 0, &p, x, &portable)
                Executor.preferAVX512(true)
                mlk_pool(kind, 0, 0, &p, x, &fast)
                let worst = zip(portable, fast).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-6, "\(kind == 0 ? "max" : "average") pool \(k)x\(k) stride \(k), one output column")
            }
        }
    }

    /// A fully-connected layer at batch 1 (mlk_sgemm with one row of A and B transposed, the
    /// AVX-512 matrix-vector path): against a double-precision sum for lengths with and without a
    /// tail of k and row counts around the 8-row blocks, with alpha and beta (and beta 0 over an
    /// output holding NaN, which must not be read); bit for bit on 1 and 2 threads.
    func testMatrixVectorProductsMatchADirectSum() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 77)
        for (n, k) in [(1000, 1280), (7, 16), (9, 17), (300, 1), (257, 100), (16, 2048), (3, 5)] {
            let x = (0..<k).map { _ in rng.float() }, w = (0..<(n * k)).map { _ in rng.float() }
            let y0 = (0..<n).map { _ in rng.float() }
            for (alpha, beta) in [(Float(1), Float(0)), (Float(0.5), Float(2))] {
                var outs: [[Float]] = []
                for threads in [1, 2] {
                    mlk_set_threads(Int32(threads))
                    var y = beta == 0 ? [Float](repeating: .nan, count: n) : y0
                    mlk_sgemm(0, 1, 1, Int32(n), Int32(k), alpha, x, Int32(k), w, Int32(k), beta, &y, Int32(n))
                    outs.append(y)
                }
                XCTAssertTrue(outs[0] == outs[1], "\(n)x\(k): 1 and 2 threads differ")
                let worst = (0..<n).map { j -> Double in
                    var d = 0.0, mag = 0.0
                    for q in 0..<k { d += Double(x[q]) * Double(w[j * k + q]); mag += abs(Double(x[q]) * Double(w[j * k + q])) }
                    let want = Double(alpha) * d + Double(beta) * (beta == 0 ? 0 : Double(y0[j]))
                    return abs(Double(outs[0][j]) - want) / max(1, mag)
                }.max() ?? 0
                XCTAssertLessThan(worst, 1e-6, "\(n)x\(k) alpha \(alpha) beta \(beta)")
            }
        }
    }

    /// Global average pooling (mlk_global_mean), NCHW and channel-blocked, AVX-512 and portable,
    /// 1 and 2 threads: against a double-precision mean, on planes with and without a tail of 16
    /// (49, 1, 17, 64), and more planes than one task takes (1280 of 49, 96 of 784).
    func testGlobalMeansMatchADirectSum() throws {
        var rng = Rng(s: 5)
        defer { mlk_set_threads(1) }
        for (planes, inner, threads) in [(1280, 49, 1), (1280, 49, 2), (96, 784, 2), (32, 1, 2), (48, 17, 1), (16, 64, 2)] {
            mlk_set_threads(Int32(threads))
            let x = (0..<(planes * inner)).map { _ in rng.float() * 100 }
            var xb = [Float](repeating: 0, count: x.count)
            mlk_blocked_from_nchw(1, Int32(planes), Int32(inner), x, &xb)
            let want = (0..<planes).map { i in Float((0..<inner).reduce(0.0) { $0 + Double(x[i * inner + $1]) } / Double(inner)) }
            for avx in Executor.avx512Available ? [true, false] : [false] {
                Executor.preferAVX512(avx)
                defer { Executor.preferAVX512(Executor.avx512Available) }
                var y = [Float](repeating: .nan, count: planes), yb = y
                mlk_global_mean(Int32(planes), Int32(inner), 0, x, &y)
                mlk_global_mean(Int32(planes), Int32(inner), 1, xb, &yb)
                let label = "\(planes) planes of \(inner) (\(avx ? "AVX-512" : "portable"), \(threads) thread(s))"
                XCTAssertLessThanOrEqual(zip(y, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 1, 1e-7, label)
                XCTAssertLessThanOrEqual(zip(yb, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 1, 1e-7, "\(label), blocked")
            }
        }
    }

    /// Global max pooling (mlk_global_max), AVX-512 and portable, 1 and 2 threads: against the
    /// largest value found one by one, NaN passed over, on planes with and without a tail of 16
    /// (and more planes than one task takes).
    func testGlobalMaximaMatchALinearScan() throws {
        defer { mlk_set_threads(1); Executor.preferAVX512(Executor.avx512Available) }
        var rng = Rng(s: 9)
        for (planes, inner) in [(1280, 49), (32, 1), (48, 17), (16, 64), (3, 508), (2, 20000)] {
            var x = (0..<(planes * inner)).map { _ in rng.float() * 100 - 50 }
            for i in stride(from: 7, to: x.count, by: 97) { x[i] = .nan }
            let want = (0..<planes).map { i in (0..<inner).reduce(-Float.infinity) { m, k in x[i * inner + k] > m ? x[i * inner + k] : m } }
            for avx in Executor.avx512Available ? [true, false] : [false] {
                Executor.preferAVX512(avx)
                for threads: Int32 in [1, 2] {
                    mlk_set_threads(threads)
                    var y = [Float](repeating: .nan, count: planes)
                    mlk_global_max(Int32(planes), Int32(inner), x, &y)
                    XCTAssertEqual(y, want, "\(planes) planes of \(inner) (\(avx ? "AVX-512" : "portable"), \(threads) threads)")
                }
            }
        }
    }
}
