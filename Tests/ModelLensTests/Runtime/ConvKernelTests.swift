import CKernels
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// The AVX-512 convolution paths (packed im2col, direct with shared padding, stride-2 phases,
/// subsampled 1x1, residual written in place) against the portable one (OpenBLAS sgemm over
/// im2col) on random NCHW geometries: odd sizes, kernels 1-5, dilation 1-2, stride 1-2,
/// asymmetric pads, a bias and a residual, 1 and 2 threads. Scratch and output are followed by
/// guard floats that no path may write (a tile sized for out_c rows but written in rows rounded
/// up to 12 overran the scratch with 2 threads).
final class ConvKernelTests: XCTestCase {
    static let guardFloats = 64
    static let guardValue: Float = -12345.5

    /// Runs one convolution into a fresh output; fails the test if a guard float changed.
    func convolve(_ p: mlk_conv, _ x: [Float], _ w: [Float], _ b: [Float], _ res: [Float]?, inPlace: Bool,
                  _ label: String) -> [Float] {
        var p = p
        let n = Int(p.out_c * p.out_h * p.out_w)
        var y = [Float](repeating: Self.guardValue, count: n + Self.guardFloats)
        if inPlace, let res { for i in 0..<n { y[i] = res[i] } }
        var scratch = [Float](repeating: Self.guardValue, count: Int(mlk_conv_nchw_scratch(&p)) + Self.guardFloats)
        let scratchCount = scratch.count - Self.guardFloats
        y.withUnsafeMutableBufferPointer { yp in
            scratch.withUnsafeMutableBufferPointer { sp in
                if inPlace {
                    mlk_conv_nchw(&p, x, w, b, nil, yp.baseAddress, yp.baseAddress, sp.baseAddress, 1, 0, 0)
                } else if let res {
                    mlk_conv_nchw(&p, x, w, b, nil, res, yp.baseAddress, sp.baseAddress, 1, 0, 0)
                } else {
                    mlk_conv_nchw(&p, x, w, b, nil, nil, yp.baseAddress, sp.baseAddress, 1, 0, 0)
                }
            }
        }
        XCTAssertTrue(scratch[scratchCount...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its scratch")
        XCTAssertTrue(y[n...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
        return Array(y[..<n])
    }

    /// One group, a k x k window, stride s, the same pad on every side, no dilation.
    func square(_ ci: Int, _ h: Int, _ wd: Int, _ co: Int, _ oh: Int, _ ow: Int, k: Int, s: Int, pad: Int) -> mlk_conv {
        mlk_conv(batch: 1, in_c: Int32(ci), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(co), out_h: Int32(oh),
                 out_w: Int32(ow), k_h: Int32(k), k_w: Int32(k), stride_h: Int32(s), stride_w: Int32(s), dil_h: 1,
                 dil_w: 1, pad_top: Int32(pad), pad_left: Int32(pad), pad_bottom: Int32(pad), pad_right: Int32(pad),
                 groups: 1)
    }

    /// A window over a ci x h x wd input with co outputs, drawn from `rng` in this order: kernel
    /// height and width 1-5, dilation and stride 1-2, pads 0-2 (top, left, bottom, right); nil
    /// where the dilated window does not fit in the padded input.
    func randomWindow(_ rng: inout Rng, ci: Int, co: Int, h: Int, wd: Int, groups: Int = 1) -> mlk_conv? {
        let kh = 1 + rng.next(5), kw = 1 + rng.next(5), d = 1 + rng.next(2), s = 1 + rng.next(2)
        let (pt, pl, pb, pr) = (rng.next(3), rng.next(3), rng.next(3), rng.next(3))
        guard h + pt + pb >= (kh - 1) * d + 1, wd + pl + pr >= (kw - 1) * d + 1 else { return nil }
        let oh = (h + pt + pb - (kh - 1) * d - 1) / s + 1, ow = (wd + pl + pr - (kw - 1) * d - 1) / s + 1
        return mlk_conv(batch: 1, in_c: Int32(ci), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(co), out_h: Int32(oh),
                        out_w: Int32(ow), k_h: Int32(kh), k_w: Int32(kw), stride_h: Int32(s), stride_w: Int32(s),
                        dil_h: Int32(d), dil_w: Int32(d), pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                        pad_right: Int32(pr), groups: Int32(groups))
    }

    func windowLabel(_ p: mlk_conv) -> String {
        "\(p.in_c)->\(p.out_c) \(p.in_h)x\(p.in_w) k\(p.k_h)x\(p.k_w) d\(p.dil_h) s\(p.stride_h) pads \(p.pad_top),\(p.pad_left),\(p.pad_bottom),\(p.pad_right)"
    }

    /// Random input, weights, bias and (half the time) a residual for `p` (one group), drawn in
    /// that order.
    func operands(_ p: mlk_conv, _ rng: inout Rng) -> (x: [Float], w: [Float], b: [Float], res: [Float]?) {
        let ci = Int(p.in_c), co = Int(p.out_c)
        let x = (0..<(ci * Int(p.in_h) * Int(p.in_w))).map { _ in rng.float() }
        let w = (0..<(co * ci * Int(p.k_h) * Int(p.k_w))).map { _ in rng.float() }
        let b = (0..<co).map { _ in rng.float() }
        let res = rng.next(2) == 0 ? (0..<(co * Int(p.out_h) * Int(p.out_w))).map { _ in rng.float() } : nil
        return (x, w, b, res)
    }

    /// Runs `body` (one kernel call writing `n` floats at the pointer it gets) on the portable path
    /// and then the AVX-512 one, each into an output followed by guard floats; fails the test if
    /// either wrote past `n`. Returns both outputs' first `n` floats.
    func portableAndFast(_ n: Int, _ label: String, _ body: (UnsafeMutablePointer<Float>) -> Void)
        -> (portable: [Float], fast: [Float]) {
        var portable = [Float](repeating: Self.guardValue, count: n + Self.guardFloats), fast = portable
        Executor.preferAVX512(false)
        portable.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        Executor.preferAVX512(true)
        fast.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        XCTAssertTrue(portable[n...].allSatisfy { $0 == Self.guardValue }, label + ": the portable path wrote past its output")
        XCTAssertTrue(fast[n...].allSatisfy { $0 == Self.guardValue }, label + ": wrote past its output")
        return (Array(portable[..<n]), Array(fast[..<n]))
    }

    /// Runs `p` on the portable path and then the AVX-512 paths at `threads`, asserts that they
    /// agree within 1e-4 relative, and returns the AVX-512 result.
    func agreeWithPortable(_ p: mlk_conv, _ x: [Float], _ w: [Float], _ b: [Float], _ res: [Float]?, threads: Int,
                           _ label: String) -> [Float] {
        mlk_set_threads(Int32(threads))
        Executor.preferAVX512(false)
        let portable = convolve(p, x, w, b, res, inPlace: false, label + " portable")
        Executor.preferAVX512(true)
        let fast = convolve(p, x, w, b, res, inPlace: false, label + " AVX-512")
        let worst = zip(portable, fast).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-4, label)
        return fast
    }

    func testAVX512ConvolutionPathsAgreeWithPortableOnRandomGeometries() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 2026)
        var checked = 0, inPlaceChecked = 0
        while checked < 300 {
            let ci = 1 + rng.next(20), co = 1 + rng.next(40), h = 1 + rng.next(30), wd = 1 + rng.next(30)
            guard let p = randomWindow(&rng, ci: ci, co: co, h: h, wd: wd) else { continue }
            let (x, w, b, res) = operands(p, &rng)
            let threads = 1 + rng.next(2)
            let label = "\(windowLabel(p)) \(threads) thread(s)"
            let fast = agreeWithPortable(p, x, w, b, res, threads: threads, label)
            var q = p
            if res != nil, mlk_conv_nchw_residual_in_place_ok(&q) != 0 {
                let overwritten = convolve(p, x, w, b, res, inPlace: true, label + " in place")
                XCTAssertEqual(overwritten, fast, "\(label): the residual overwritten in place gives other bits")
                inPlaceChecked += 1
            }
            checked += 1
        }
        XCTAssertGreaterThan(inPlaceChecked, 50)
    }

    /// Convolutions whose output planes have 32q + 17 pixels (7x7, 9x9, 1x49, 1x113) with enough
    /// output channels to take the packed GEMM (1x1 with 128 or more, 3x3 with 512 or more): its
    /// last 49 columns then run as 48 + 1 (one column summed along k, `micro49`), in row halves of
    /// 6, over one or several blocks of 256 rows of k, with stride 2 too, a residual, 1 and 2 threads.
    func testAVX512ConvolutionsOnPlanesOf49ColumnsAgreeWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 49)
        let planes = [(7, 7), (9, 9), (1, 49), (1, 113), (7, 7)]
        for _ in 0..<30 {
            let (oh, ow) = planes[rng.next(planes.count)]
            // A third are 3x3 "same" with 512 or more output channels (packed too on such planes).
            let k = rng.next(3) == 0 ? 3 : 1, pad = k / 2
            let s = 1 + rng.next(2), ci = k == 3 ? 1 + rng.next(80) : 1 + rng.next(600)
            let co = k == 3 ? 512 + rng.next(40) : 128 + rng.next(170)
            let p = square(ci, oh * s, ow * s, co, oh, ow, k: k, s: s, pad: pad)
            let (x, w, b, res) = operands(p, &rng)
            let threads = 1 + rng.next(2)
            let label = "\(k)x\(k) \(ci)->\(co) \(oh)x\(ow) s\(s) \(threads) thread(s)"
            _ = agreeWithPortable(p, x, w, b, res, threads: threads, label)
        }
    }

    /// 3x3 and 5x5 convolutions with 16 or more input and 32 or more output channels on planes of
    /// 65 or more outputs: the channels-as-vectors path, whose sums ([pixels][32]) are stored
    /// transposed into the output, 16 x 16 blocks in registers and the ragged pixels and channels
    /// gathered; stride 1 and 2, a residual, 1 and 2 threads.
    func testAVX512ChannelsAsVectorsConvolutionsAgreeWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 32)
        var checked = 0
        while checked < 30 {
            let k = rng.next(4) == 0 ? 5 : 3, s = 1 + rng.next(2), pad = k / 2
            let oh = 3 + rng.next(30), ow = 3 + rng.next(30)
            guard oh * ow > 64 else { continue }
            let h = (oh - 1) * s + 1, wd = (ow - 1) * s + 1
            let ci = 16 + rng.next(60), co = 32 + rng.next(60)
            let p = square(ci, h, wd, co, oh, ow, k: k, s: s, pad: pad)
            let (x, w, b, res) = operands(p, &rng)
            let threads = 1 + rng.next(2)
            let label = "\(k)x\(k) \(ci)->\(co) \(h)x\(wd) -> \(oh)x\(ow) s\(s) \(threads) thread(s)"
            _ = agreeWithPortable(p, x, w, b, res, threads: threads, label)
            checked += 1
        }
    }

    /// The direct path with one block of k writes its output in tiles of 2048 columns (512 or 1024
    /// where B would span more than 512 KB) when that leaves two tiles per thread: 1x1 convolutions with 160 or fewer output channels and 256 or
    /// fewer input channels (read in place) on 56x56, 112x112, 1x2050 and 1x4100 planes (a last
    /// tile of 4 columns, summed along k), with a residual, 1 and 2 threads; and stems (padded,
    /// stride 2, few input channels), whose wide tiles store their kept columns into place.
    func testAVX512WideOutputTilesAgreeWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 2048)
        let planes = [(56, 56), (112, 112), (1, 2050), (1, 4100)]
        for _ in 0..<16 {
            let (oh, ow) = planes[rng.next(planes.count)]
            let ci = 1 + rng.next(oh == 112 ? 32 : 256), co = 1 + rng.next(160)
            let p = square(ci, oh, ow, co, oh, ow, k: 1, s: 1, pad: 0)
            let (x, w, b, res) = operands(p, &rng)
            let threads = 1 + rng.next(2)
            _ = agreeWithPortable(p, x, w, b, res, threads: threads, "1x1 \(ci)->\(co) \(oh)x\(ow) \(threads) thread(s)")
        }
        // Stems (padded, stride 2, one block of k): their wide tiles store the kept columns straight
        // into the output, in 2048-column tiles too.
        for (ci, h, co, k, pad) in [(3, 224, 32, 3, 1), (3, 200, 16, 7, 3), (2, 151, 40, 5, 2)] {
            let oh = (h + 2 * pad - k) / 2 + 1
            let p = square(ci, h, h, co, oh, oh, k: k, s: 2, pad: pad)
            let x = (0..<(ci * h * h)).map { _ in rng.float() }
            let w = (0..<(co * ci * k * k)).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            _ = agreeWithPortable(p, x, w, b, nil, threads: 1, "stem \(ci)->\(co) \(h)x\(h) k\(k) s2")
        }
    }

    /// A 1x1 convolution of a single pixel (squeeze-and-excitation layers) runs as a matrix-vector
    /// product whose rows are shared among threads: against the portable path, with a bias and a
    /// residual, and bit for bit the same at 1, 2 and 3 threads.
    func testOnePixelConvolutionsAgreeWithPortableAtAnyThreadCount() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 960)
        for (ci, co) in [(960, 240), (240, 960), (672, 168), (72, 24), (13, 7), (1, 300)] {
            let p = square(ci, 1, 1, co, 1, 1, k: 1, s: 1, pad: 0)
            let (x, w, b, res) = operands(p, &rng)
            let first = agreeWithPortable(p, x, w, b, res, threads: 1, "1x1 pixel \(ci)->\(co)")
            for threads in [2, 3] {
                let y = agreeWithPortable(p, x, w, b, res, threads: threads, "1x1 pixel \(ci)->\(co), \(threads) threads")
                XCTAssertTrue(y == first, "1x1 pixel \(ci)->\(co): \(threads) threads differ from 1")
            }
        }
    }

    /// How the 1x1 paths share their work among threads (column tiles of equal work, 784 columns as
    /// 192 + 192 | 192 + 192 + 16; output channels of a single tile in chunks that divide evenly,
    /// 160 as 84 + 76 rather than 60 + 60 + 40) leaves every output the sum it is on 1 thread, bit
    /// for bit: packed im2col (more than 160 output channels) and B read in place (160 or fewer).
    func testOneByOneConvolutionResultsIdenticalForAnyThreadCount() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 784)
        for (ci, h, wd, co) in [(64, 28, 28, 192), (24, 17, 17, 176), (40, 30, 30, 200), (48, 14, 14, 256), (96, 7, 7, 160),
                                (72, 7, 7, 120), (32, 28, 28, 96)] {
            let p = square(ci, h, wd, co, h, wd, k: 1, s: 1, pad: 0)
            let (x, w, b, res) = operands(p, &rng)
            var first: [Float]? = nil
            for threads in [1, 2, 3] {
                mlk_set_threads(Int32(threads))
                let y = convolve(p, x, w, b, res, inPlace: false, "1x1 \(ci)->\(co) \(h)x\(wd), \(threads) threads")
                if let first {
                    XCTAssertTrue(y == first, "1x1 \(ci)->\(co) \(h)x\(wd): \(threads) threads differ from 1")
                } else {
                    first = y
                }
            }
        }
    }

    /// 1x1 convolutions whose output planes have 32q + t pixels, t = 1...4 (14x14, 10x10, 1x33,
    /// 1x66, 5x7, 2x2, 1x1): the GEMM's last t columns are then summed along k (`microtail`), on
    /// packed B (161 or more output channels) and on B read in place (160 or fewer), over one or
    /// several blocks of k. Stride 2 gathers the packed rows from the input (even and odd input
    /// sizes), with a residual, 1 and 2 threads.
    func testAVX512ConvolutionsOnPlanesWithFewTrailingColumnsAgreeWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 196)
        let planes = [(14, 14), (10, 10), (1, 33), (1, 66), (5, 7), (2, 2), (1, 1), (14, 14)]
        var strided = 0
        for _ in 0..<40 {
            let (oh, ow) = planes[rng.next(planes.count)]
            let s = 1 + rng.next(2), odd = s == 2 && rng.next(2) == 0 ? 1 : 0
            let ci = 1 + rng.next(700), co = rng.next(3) == 0 ? 1 + rng.next(160) : 161 + rng.next(200)
            let h = oh * s - odd, wd = ow * s - odd
            let p = square(ci, h, wd, co, oh, ow, k: 1, s: s, pad: 0)
            let (x, w, b, res) = operands(p, &rng)
            let threads = 1 + rng.next(2)
            let label = "1x1 \(ci)->\(co) \(h)x\(wd) -> \(oh)x\(ow) s\(s) \(threads) thread(s)"
            _ = agreeWithPortable(p, x, w, b, res, threads: threads, label)
            strided += s == 2 ? 1 : 0
        }
        XCTAssertGreaterThan(strided, 10)
    }
}
