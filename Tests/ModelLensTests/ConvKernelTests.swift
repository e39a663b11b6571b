import CKernels
import ModelRuntime
import XCTest

/// The AVX-512 convolution paths (packed im2col, direct with shared padding, stride-2 phases,
/// subsampled 1x1, residual written in place) against the portable one (OpenBLAS sgemm over
/// im2col) on random NCHW geometries: odd sizes, kernels 1-5, dilation 1-2, stride 1-2,
/// asymmetric pads, a bias and a residual, 1 and 2 threads. Scratch and output are followed by
/// guard floats that no path may write (a tile sized for out_c rows but written in rows rounded
/// up to 12 overran the scratch with 2 threads).
final class ConvKernelTests: XCTestCase {
    struct Rng {
        var s: UInt64
        mutating func next(_ n: Int) -> Int {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Int((s >> 33) % UInt64(n))
        }
        mutating func float() -> Float { Float(next(2001)) / 1000 - 1 }
    }

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

    /// The AVX-512 depthwise paths (row chunks, the flat path with per-tap masks, two channels at a
    /// time or one, stride-2 planes split into phases first) against the portable loop on random NCHW geometries: planes of
    /// 1-70 rows and columns (phase rows with and without whole 32-column blocks), kernels 1, 3
    /// and 5, stride 1 and 2, asymmetric bottom and right pads. The phase split's masks once went
    /// per row; this holds them to the same results.
    func testAVX512DepthwisePathsAgreeWithPortableOnRandomGeometries() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true) }
        var rng = Rng(s: 77)
        var checked = 0, phased = 0
        while checked < 400 {
            let c = 1 + rng.next(5), h = 1 + rng.next(70), wd = 1 + rng.next(70), k = 1 + 2 * rng.next(3), s = 1 + rng.next(2)
            let (pt, pl, pb, pr) = (k / 2, k / 2, rng.next(k), rng.next(k))
            guard h + pt + pb >= k, wd + pl + pr >= k else { continue }
            let oh = (h + pt + pb - k) / s + 1, ow = (wd + pl + pr - k) / s + 1
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(c), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: Int32(k), k_w: Int32(k), stride_h: Int32(s), stride_w: Int32(s),
                             dil_h: 1, dil_w: 1, pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                             pad_right: Int32(pr), groups: Int32(c))
            let x = (0..<(c * h * wd)).map { _ in rng.float() }
            let w = (0..<(c * k * k)).map { _ in rng.float() }
            let b = (0..<c).map { _ in rng.float() }
            var portable = [Float](repeating: 0, count: c * oh * ow), fast = portable
            Executor.preferAVX512(false)
            mlk_depthwise_nchw(&p, x, w, b, &portable, 0, 0, 0)
            Executor.preferAVX512(true)
            mlk_depthwise_nchw(&p, x, w, b, &fast, 0, 0, 0)
            let worst = zip(portable, fast).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-5, "\(c) channels \(h)x\(wd) k\(k) s\(s) pads \(pt),\(pl),\(pb),\(pr)")
            if s == 2 && oh == (h + 1) / 2 && ow == (wd + 1) / 2 { phased += 1 }
            checked += 1
        }
        XCTAssertGreaterThan(phased, 50, "stride-2 planes of the phase-split shape")
    }

    /// The 3x3 depthwise paths that build their taps in registers (dw3_plane, and dw3_pairs_s2 for
    /// stride 2 on up to 16 columns) against the portable loop: MobileNetV2's plane sizes at
    /// stride 1 and 2, planes of 16, 7 and 1 columns at stride 2, and random planes of 1-9 rows
    /// and 9-300 columns (more than 8 chunks of 16 per row: a chunk group whose first chunk takes
    /// its left neighbour from the group before), bottom and right pads 0 or 1, half with Relu6.
    /// Outputs are followed by guard floats no path may write; a NaN in the input makes every
    /// output whose window holds it NaN (Relu6: its lower bound, on both paths).
    func testAVX512ThreeByThreeDepthwiseAgreesWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true) }
        var rng = Rng(s: 303)
        var shapes: [(h: Int, w: Int, s: Int, pb: Int, pr: Int)] = [(112, 112, 1, 1, 1), (112, 112, 2, 1, 1),
            (56, 56, 1, 1, 1), (56, 56, 2, 1, 1), (28, 28, 1, 1, 1), (28, 28, 2, 1, 1), (17, 17, 1, 1, 1), (17, 17, 2, 1, 1), (14, 14, 2, 1, 1), (7, 7, 2, 1, 1),
            (16, 16, 2, 0, 0), (3, 1, 2, 1, 1)]
        while shapes.count < 120 {
            shapes.append((1 + rng.next(9), 9 + rng.next(292), 1 + rng.next(2), rng.next(2), rng.next(2)))
        }
        for (h, wd, s, pb, pr) in shapes {
            let c = 1 + rng.next(3)
            let oh = (h + 1 + pb - 3) / s + 1, ow = (wd + 1 + pr - 3) / s + 1
            guard oh >= 1, ow >= 1 else { continue }
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(c), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: 3, k_w: 3, stride_h: Int32(s), stride_w: Int32(s), dil_h: 1, dil_w: 1,
                             pad_top: 1, pad_left: 1, pad_bottom: Int32(pb), pad_right: Int32(pr), groups: Int32(c))
            var x = (0..<(c * h * wd)).map { _ in rng.float() * 4 }
            let nanAt = rng.next(x.count)
            x[nanAt] = .nan
            let w = (0..<(c * 9)).map { _ in rng.float() }
            let b = (0..<c).map { _ in rng.float() }
            let n = c * oh * ow, act: Int32 = rng.next(2) == 0 ? 0 : 2
            let label = "\(c) channels \(h)x\(wd) stride \(s) pads 1,1,\(pb),\(pr)"
            let (portable, fast) = portableAndFast(n, label) { mlk_depthwise_nchw(&p, x, w, b, $0, act, 0, 6) }
            // The NaN's plane and position: outputs whose window covers it are NaN on both paths.
            let (nc, ny, nx) = (nanAt / (h * wd), nanAt % (h * wd) / wd, nanAt % wd)
            var worst: Float = 0
            for i in 0..<n {
                let (oc, oy, ox) = (i / (oh * ow), i % (oh * ow) / ow, i % ow)
                if oc == nc && abs(oy * s - ny) <= 1 && abs(ox * s - nx) <= 1 {
                    if act == 0 {
                        XCTAssertTrue(portable[i].isNaN && fast[i].isNaN, label + ": output \(i) holds the NaN")
                    } else {
                        XCTAssertEqual(portable[i], fast[i], label + ": output \(i) holds the NaN, clamped")
                    }
                } else {
                    worst = max(worst, abs(portable[i] - fast[i]) / max(1, abs(portable[i])))
                }
            }
            XCTAssertLessThan(worst, 1e-5, label)
        }
    }

    /// The AVX-512 NHWC depthwise kernel (channels as vectors, four output pixels at a time, taps
    /// checked near the row's ends) against the portable loop: 3-80 channels (a 16-channel tail,
    /// one or two vectors per block of 32), kernels 1, 3 and 5, stride and dilation 1-2, pads 0 to
    /// k - 1 on each side, with and without a bias, Relu6 fused half the time. Outputs are followed
    /// by guard floats no path may write.
    func testAVX512NHWCDepthwiseAgreesWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true) }
        var rng = Rng(s: 1109)
        var checked = 0
        while checked < 300 {
            let c = 3 + rng.next(78), h = 1 + rng.next(20), wd = 1 + rng.next(30), k = 1 + 2 * rng.next(3)
            let s = 1 + rng.next(2), d = 1 + rng.next(2)
            let (pt, pl, pb, pr) = (rng.next(k), rng.next(k), rng.next(k), rng.next(k))
            let span = (k - 1) * d + 1
            guard h + pt + pb >= span, wd + pl + pr >= span, ![4, 8, 16].contains(c) || s == 2 else { continue }
            let oh = (h + pt + pb - span) / s + 1, ow = (wd + pl + pr - span) / s + 1
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(c), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: Int32(k), k_w: Int32(k), stride_h: Int32(s), stride_w: Int32(s),
                             dil_h: Int32(d), dil_w: Int32(d), pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                             pad_right: Int32(pr), groups: Int32(c))
            let x = (0..<(h * wd * c)).map { _ in rng.float() * 4 }
            let w = (0..<(k * k * c)).map { _ in rng.float() }
            let b: [Float]? = rng.next(4) == 0 ? nil : (0..<c).map { _ in rng.float() }
            let act: Int32 = rng.next(2) == 0 ? 0 : 2
            let n = oh * ow * c
            let label = "\(c) channels \(h)x\(wd) k\(k) s\(s) d\(d) pads \(pt),\(pl),\(pb),\(pr)"
            let (portable, fast) = portableAndFast(n, label) { mlk_depthwise_nhwc(&p, x, w, b, $0, act, 0, 6) }
            let worst = zip(portable, fast).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-5, label)
            checked += 1
        }
    }

    /// NHWC depthwise convolutions with 1, 2, 4, 8 or 16 channels at stride 1 take the flat path
    /// (a row of pixels as one array of floats, 128 at a time; blocks whose taps all lie inside
    /// the row load and store whole vectors), and NHWC convolutions with one output channel add
    /// its per-channel sums: both against the portable loops, on rows up to 90 pixels (several
    /// whole blocks), kernels 1-5, dilation 1-2, any pads, Relu6 half the time.
    func testAVX512NHWCFlatDepthwiseAndSingleOutputAgreeWithPortable() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        defer { Executor.preferAVX512(true) }
        var rng = Rng(s: 4711)
        var checked = 0, interior = 0
        while checked < 200 {
            let c = [1, 2, 4, 8, 16][rng.next(5)], h = 1 + rng.next(8), wd = 1 + rng.next(90), k = 1 + 2 * rng.next(3)
            let d = 1 + rng.next(2), single = rng.next(3) == 0
            let (pt, pl, pb, pr) = (rng.next(k), rng.next(k), rng.next(k), rng.next(k))
            let span = (k - 1) * d + 1
            guard h + pt + pb >= span, wd + pl + pr >= span else { continue }
            let oh = h + pt + pb - span + 1, ow = wd + pl + pr - span + 1
            let co = single ? 1 : c
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(co), out_h: Int32(oh),
                             out_w: Int32(ow), k_h: Int32(k), k_w: Int32(k), stride_h: 1, stride_w: 1,
                             dil_h: Int32(d), dil_w: Int32(d), pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb),
                             pad_right: Int32(pr), groups: Int32(single ? 1 : c))
            let x = (0..<(h * wd * c)).map { _ in rng.float() * 4 }
            let w = (0..<(k * k * c)).map { _ in rng.float() }
            let b: [Float]? = rng.next(4) == 0 ? nil : (0..<co).map { _ in rng.float() }
            let act: Int32 = rng.next(2) == 0 ? 0 : 2
            let n = oh * ow * co
            let label = "\(single ? "conv \(c)->1" : "depthwise \(c)") \(h)x\(wd) k\(k) d\(d) pads \(pt),\(pl),\(pb),\(pr)"
            let (portable, fast) = portableAndFast(n, label) { y in
                if single {
                    var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
                    mlk_conv_nhwc(&p, x, w, b, y, &scratch, act, 0, 6)
                } else {
                    mlk_depthwise_nhwc(&p, x, w, b, y, act, 0, 6)
                }
            }
            let worst = zip(portable, fast).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-5, label)
            if (wd - span + 1) * c > 160 + (k - 1) * d * c { interior += 1 }
            checked += 1
        }
        XCTAssertGreaterThan(interior, 20, "rows with whole blocks inside")
    }

    /// NHWC convolutions (TFLite's layout) against a direct sum written here, on random geometries:
    /// 1-20 input channels (the stems' 3 among them), kernels 1-5, stride and dilation 1-2,
    /// asymmetric pads, 1-3 groups, with the AVX-512 kernels and the portable ones. Their im2col
    /// copies a window row in one piece where it lies inside the image: rows clipped at either
    /// edge, dilated or split in groups take the tap-by-tap copy.
    func testNHWCConvolutionsMatchADirectSum() throws {
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 99)
        var checked = 0
        while checked < 120 {
            let g = 1 + rng.next(3), ci = g * (1 + rng.next(7)), co = g * (1 + rng.next(12))
            let h = 1 + rng.next(20), wd = 1 + rng.next(20)
            guard var p = randomWindow(&rng, ci: ci, co: co, h: h, wd: wd, groups: g) else { continue }
            let (kh, kw, s, d, pt, pl) = (Int(p.k_h), Int(p.k_w), Int(p.stride_h), Int(p.dil_h), Int(p.pad_top), Int(p.pad_left))
            let (oh, ow) = (Int(p.out_h), Int(p.out_w))
            let cg = ci / g, og = co / g
            let x = (0..<(h * wd * ci)).map { _ in rng.float() }
            let w = (0..<(co * kh * kw * cg)).map { _ in rng.float() }   // OHWI, I = channels per group
            let b = (0..<co).map { _ in rng.float() }
            var expected = [Float](repeating: 0, count: oh * ow * co)
            for y in 0..<oh { for xo in 0..<ow { for o in 0..<co {
                var sum = Double(b[o])
                let gi = o / og
                for i in 0..<kh { for j in 0..<kw {
                    let iy = y * s - pt + i * d, ix = xo * s - pl + j * d
                    guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                    for c in 0..<cg {
                        sum += Double(x[(iy * wd + ix) * ci + gi * cg + c]) * Double(w[((o * kh + i) * kw + j) * cg + c])
                    }
                } }
                expected[(y * ow + xo) * co + o] = Float(sum)
            } } }
            for avx512 in [false, true] where !avx512 || Executor.avx512Available {
                Executor.preferAVX512(avx512)
                mlk_set_threads(Int32(1 + rng.next(2)))
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
                var out = [Float](repeating: Self.guardValue, count: expected.count + Self.guardFloats)
                mlk_conv_nhwc(&p, x, w, b, &out, &scratch, 0, 0, 0)
                let label = "NHWC \(windowLabel(p)) groups \(g) avx512 \(avx512)"
                XCTAssertTrue(out[expected.count...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
                let worst = zip(expected, out).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, label)
            }
            checked += 1
        }
    }

    /// NHWC convolutions run with weight panels packed once (mlk_weight_panels_pack, as the planner
    /// does for TFLite models) give the bits of the call that packs them itself: 1x1, 3x3 and 5x5
    /// windows, stride 1-2, 16-70 output channels (a last panel part zeros), 1 and 2 threads; and
    /// the weights unpacked from the panels (a run off the AVX-512 path) are the weights.
    func testNHWCConvolutionWithPrepackedWeightsMatchesPackingPerCall() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the packed form is not used") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 4242)
        var checked = 0
        while checked < 60 {
            let ci = 1 + rng.next(40), co = 16 + rng.next(55), h = 1 + rng.next(20), wd = 1 + rng.next(20)
            let k = 1 + 2 * rng.next(3), s = 1 + rng.next(2), pad = rng.next(k)
            guard h + 2 * pad >= k, wd + 2 * pad >= k else { continue }
            var p = square(ci, h, wd, co, (h + 2 * pad - k) / s + 1, (wd + 2 * pad - k) / s + 1, k: k, s: s, pad: pad)
            guard mlk_conv_nhwc_packs(&p) != 0 else { continue }
            let x = (0..<(h * wd * ci)).map { _ in rng.float() }
            let w = (0..<(co * k * k * ci)).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            mlk_set_threads(Int32(1 + rng.next(2)))
            let n = Int(p.out_h * p.out_w) * co
            var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
            var panels = [Float](repeating: -1, count: Int(mlk_weight_panel_floats(Int32(co), Int32(k * k * ci))))
            mlk_weight_panels_pack(Int32(co), Int32(k * k * ci), w, &panels)
            var unpacked = [Float](repeating: 0, count: w.count)
            mlk_weight_panels_unpack(Int32(co), Int32(k * k * ci), panels, &unpacked)
            XCTAssertEqual(unpacked, w, "weights unpacked from their panels")
            var perCall = [Float](repeating: 0, count: n), prepacked = perCall
            mlk_conv_nhwc(&p, x, w, b, &perCall, &scratch, 1, 0, 0)
            mlk_conv_nhwc_packed(&p, x, panels, b, &prepacked, &scratch, 1, 0, 0)
            XCTAssertEqual(perCall, prepacked, "\(ci)->\(co) \(h)x\(wd) k\(k) s\(s) pad \(pad)")
            checked += 1
        }
    }

    /// NCHW convolutions of the channels-as-vectors path run with weight panels packed once
    /// (mlk_weight_panels_pack, as the planner does for ONNX weights in the mapped file) give the bits
    /// of the call that transposes the weights itself: 3x3 and 5x5, stride 1-2, 32-100 output
    /// channels (a last panel part zeros), 16-300 input channels (reductions over more than one
    /// block of 256), a residual and scale, 1 and 2 threads. On planes of 49-64 outputs, which
    /// only the prepacked call takes this way, they agree with the per-call path (another path)
    /// within 1e-4; neither writes past its output or scratch. The weights unpacked from the
    /// panels (a run off that path) are the weights.
    func testChannelsAsVectorsConvolutionWithPrepackedWeightsMatchesPackingPerCall() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the packed form is not used") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 777)
        var checked = 0, smallChecked = 0
        while checked < 40 {
            let k = rng.next(4) == 0 ? 5 : 3, s = 1 + rng.next(2), pad = k / 2
            let small = rng.next(3) == 0
            let oh = small ? 7 + rng.next(3) : 3 + rng.next(30), ow = small ? 7 : 3 + rng.next(30)
            let h = (oh - 1) * s + 1, wd = (ow - 1) * s + 1
            let ci = 16 + rng.next(rng.next(3) == 0 ? 285 : 60), co = 32 + rng.next(69)
            var p = square(ci, h, wd, co, oh, ow, k: k, s: s, pad: pad)
            guard mlk_conv_nchw_cot_packs(&p) != 0 else { continue }
            let (x, w, b, res) = operands(p, &rng)
            let scale = (0..<co).map { _ in rng.float() }
            let kk = ci * k * k
            var panels = [Float](repeating: -1, count: Int(mlk_weight_panel_floats(Int32(co), Int32(kk))))
            mlk_weight_panels_pack(Int32(co), Int32(kk), w, &panels)
            var unpacked = [Float](repeating: 0, count: w.count)
            mlk_weight_panels_unpack(Int32(co), Int32(kk), panels, &unpacked)
            XCTAssertEqual(unpacked, w, "weights unpacked from their panels")
            mlk_set_threads(Int32(1 + rng.next(2)))
            let n = Int(p.out_h * p.out_w) * co, label = "\(k)x\(k) \(ci)->\(co) \(h)x\(wd) s\(s)"
            var scratch = [Float](repeating: 0, count: Int(mlk_conv_nchw_scratch(&p)))
            var perCall = [Float](repeating: 0, count: n)
            mlk_conv_nchw(&p, x, w, b, scale, res, &perCall, &scratch, 1, 0, 0)
            let guarded = Int(mlk_conv_nchw_packed_scratch(&p))
            var packedScratch = [Float](repeating: Self.guardValue, count: guarded + Self.guardFloats)
            var prepacked = [Float](repeating: Self.guardValue, count: n + Self.guardFloats)
            mlk_conv_nchw_packed(&p, x, panels, b, scale, res, &prepacked, &packedScratch, 1, 0, 0)
            XCTAssertTrue(prepacked[n...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
            XCTAssertTrue(packedScratch[guarded...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its scratch")
            if mlk_conv_winograd_ok(&p) != 0 {
                // Winograd on the panels (testWinogradConvolutionsMatchTheDirectPath).
                let size = max(1, perCall.map { abs($0) }.max() ?? 0)
                XCTAssertLessThan((zip(perCall, prepacked).map { abs($0 - $1) }.max() ?? 0) / size, 2e-5, "\(label) (Winograd)")
            } else if oh * ow > 64 {
                XCTAssertEqual(perCall, Array(prepacked[..<n]), label)
            } else {
                let worst = zip(perCall, prepacked).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, label)
                smallChecked += 1
            }
            checked += 1
        }
        XCTAssertGreaterThan(smallChecked, 3, "planes of 49-64 outputs")
    }

    /// Channel-blocked activations (mlk_conv_blocked): every combination of blocked and NCHW input
    /// and output (the residual in the output's layout) against mlk_conv_nchw_packed (3x3 and 5x5:
    /// bit for bit, the same sums) and mlk_conv_nchw (1x1 at stride 1 and 2: within 1e-4, the GEMM
    /// sums in another order), on random geometries with 16k channels, 1 and 2 threads; guard floats
    /// after output and scratch. Also the layout conversions and max pooling into blocks.
    func testChannelBlockedConvolutionsMatchTheNCHWPaths() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the blocked path is not used") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 4242)
        func blocked(_ t: [Float], _ c: Int, _ hw: Int) -> [Float] {
            var out = [Float](repeating: 0, count: t.count)
            mlk_blocked_from_nchw(1, Int32(c), Int32(hw), t, &out)
            return out
        }
        var checked = 0, pointwise = 0, winograd = 0
        while checked < 48 {
            let k = [1, 1, 3, 3, 5][rng.next(5)], s = 1 + rng.next(2), pad = k / 2
            let oh = 7 + rng.next(24), ow = 7 + rng.next(24)
            let h = (oh - 1) * s + 1 + (k == 1 ? rng.next(2) : 0), wd = (ow - 1) * s + 1 + (k == 1 ? rng.next(2) : 0)
            let ci = 16 * (1 + rng.next(rng.next(3) == 0 ? 20 : 5)), co = 16 * (2 + rng.next(6))
            var p = square(ci, h, wd, co, oh, ow, k: k, s: s, pad: pad)
            guard mlk_conv_blocked_ok(&p) != 0 else { continue }
            let (x, w, b, res) = operands(p, &rng)
            let scale = (0..<co).map { _ in rng.float() }
            let kk = ci * k * k, outHW = oh * ow, n = co * outHW
            var panels = [Float](repeating: -1, count: Int(mlk_weight_panel_floats(Int32(co), Int32(kk))))
            mlk_weight_panels_pack(Int32(co), Int32(kk), w, &panels)
            mlk_set_threads(Int32(1 + rng.next(2)))
            let label = "\(k)x\(k) \(ci)->\(co) \(h)x\(wd) s\(s)"
            // The NCHW reference.
            var reference = [Float](repeating: 0, count: n)
            if k == 1 {
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nchw_scratch(&p)))
                mlk_conv_nchw(&p, x, w, b, scale, res, &reference, &scratch, 1, 0, 0)
            } else {
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nchw_packed_scratch(&p)))
                mlk_conv_nchw_packed(&p, x, panels, b, scale, res, &reference, &scratch, 1, 0, 0)
            }
            let xBlocked = blocked(x, ci, h * wd), resBlocked = res.map { blocked($0, co, outHW) }
            for (inB, outB) in [(false, true), (true, false), (true, true)] {
                let guarded = Int(mlk_conv_blocked_scratch(&p))
                var scratch = [Float](repeating: Self.guardValue, count: guarded + Self.guardFloats)
                var y = [Float](repeating: Self.guardValue, count: n + Self.guardFloats)
                let r = outB ? resBlocked : res
                mlk_conv_blocked(&p, inB ? xBlocked : x, inB ? 1 : 0, panels, b, scale, r, &y, outB ? 1 : 0, &scratch, 1, 0, 0)
                let tag = "\(label) in \(inB ? "blocked" : "NCHW") out \(outB ? "blocked" : "NCHW")"
                XCTAssertTrue(y[n...].allSatisfy { $0 == Self.guardValue }, "\(tag): wrote past its output")
                XCTAssertTrue(scratch[guarded...].allSatisfy { $0 == Self.guardValue }, "\(tag): wrote past its scratch")
                var got = Array(y[..<n])
                if outB {
                    var back = [Float](repeating: 0, count: n)
                    mlk_nchw_from_blocked(1, Int32(co), Int32(outHW), got, &back)
                    got = back
                }
                if k == 1 {
                    let worst = zip(reference, got).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                    XCTAssertLessThan(worst, 1e-4, tag)
                } else {
                    // (Winograd's geometries too: the packed NCHW reference runs it as well, and the
                    // layouts change only where values are read and stored.)
                    if mlk_conv_winograd_ok(&p) != 0 { winograd += 1 }
                    XCTAssertTrue(got == reference, "\(tag): \(zip(got, reference).filter { $0 != $1 }.count) of \(n) values differ")
                }
            }
            if k == 1 { pointwise += 1 }
            checked += 1
        }
        XCTAssertGreaterThan(pointwise, 8, "1x1 convolutions")
        XCTAssertGreaterThan(winograd, 2, "Winograd convolutions")
        // Max pooling (3x3 stride 2 pad 1, ResNet50's) into blocks equals pooling then converting.
        mlk_set_threads(1)
        for (c, h) in [(16, 9), (64, 56), (32, 15)] {
            let o = (h + 2 - 3) / 2 + 1
            var p = square(c, h, h, c, o, o, k: 3, s: 2, pad: 1)
            let x = (0..<(c * h * h)).map { _ in rng.float() }
            var pooled = [Float](repeating: 0, count: c * o * o), y = pooled
            mlk_pool(0, 0, 0, &p, x, &pooled)
            var scratch = [Float](repeating: 0, count: 16 * o * o)
            mlk_maxpool_blocked(&p, x, &y, &scratch)
            XCTAssertTrue(y == blocked(pooled, c, o * o), "max pool \(c)x\(h)x\(h) into blocks")
            var back = [Float](repeating: 0, count: y.count)
            mlk_nchw_from_blocked(1, Int32(c), Int32(o * o), y, &back)
            XCTAssertTrue(back == pooled, "blocks back to NCHW")
        }
    }

    /// 3x3 "same" convolutions of stride 1 with packed weights run as Winograd F(2x2, 3x3)
    /// (mlk_conv_winograd_ok), in every layout: mlk_conv_blocked with input and output blocked or
    /// NCHW, and mlk_conv_nchw_packed. Against the direct NCHW path (mlk_conv_nchw) on ResNet50's,
    /// DenseNet121's and random shapes (odd planes, so that the last tile row and column hang over;
    /// a last panel of 16 channels; two images; input channels past one block of k), with bias,
    /// scale, residual (also written over in place, as the executor does) and ReLU, on 1 and 2
    /// threads, with guard floats after output and scratch.
    func testWinogradConvolutionsMatchTheDirectPath() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the blocked path is not used") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 2323)
        var shapes = [(64, 64, 56, 56), (128, 128, 28, 28), (256, 256, 14, 14), (128, 32, 28, 28), (48, 80, 15, 17), (272, 32, 14, 15)]
        for _ in 0..<6 { shapes.append((16 * (1 + rng.next(8)), 16 * (2 + rng.next(6)), 14 + rng.next(20), 14 + rng.next(20))) }
        for (i, (ci, co, h, wd)) in shapes.enumerated() {
            let batch = i % 3 == 2 ? 2 : 1
            var p = square(ci, h, wd, co, h, wd, k: 3, s: 1, pad: 1)
            p.batch = Int32(batch)
            XCTAssertEqual(mlk_conv_winograd_ok(&p), 1, "\(ci)->\(co) \(h)x\(wd)")
            let hw = h * wd, n = batch * co * hw
            let x = (0..<(batch * ci * hw)).map { _ in rng.float() }
            let w = (0..<(co * ci * 9)).map { _ in rng.float() }, b = (0..<co).map { _ in rng.float() }
            let scale = (0..<co).map { _ in 0.5 + rng.float() / 4 }, res = (0..<n).map { _ in rng.float() }
            var panels = [Float](repeating: 0, count: Int(mlk_weight_panel_floats(Int32(co), Int32(ci * 9))))
            mlk_weight_panels_pack(Int32(co), Int32(ci * 9), w, &panels)
            func blocked(_ t: [Float], _ c: Int) -> [Float] {
                var out = [Float](repeating: 0, count: t.count)
                mlk_blocked_from_nchw(Int32(batch), Int32(c), Int32(hw), t, &out)
                return out
            }
            let xB = blocked(x, ci), resB = blocked(res, co)
            var reference: [[Float]] = []
            for useRes in [false, true] {
                var r = [Float](repeating: 0, count: n)
                var direct = [Float](repeating: 0, count: Int(mlk_conv_nchw_scratch(&p)))
                mlk_conv_nchw(&p, x, w, b, scale, useRes ? res : nil, &r, &direct, 1, 0, 0)
                reference.append(r)
            }
            let size = max(1, reference.flatMap { $0 }.map { abs($0) }.max() ?? 0)
            for threads in [1, 2] {
                mlk_set_threads(Int32(threads))
                // (input blocked, output blocked); nil: mlk_conv_nchw_packed.
                for layouts in [(true, true), (false, true), (true, false), (false, false), nil] as [(Bool, Bool)?] {
                    for (useRes, inPlace) in [(false, false), (true, false), (true, true)] {
                        let (inB, outB) = layouts ?? (false, false)
                        let label = "\(batch)x\(ci)->\(co) \(h)x\(wd) \(threads) threads "
                            + (layouts.map { "in \($0.0 ? "blocked" : "NCHW") out \($0.1 ? "blocked" : "NCHW")" } ?? "packed NCHW")
                            + " residual \(useRes) in place \(inPlace)"
                        let guarded = Int(layouts == nil ? mlk_conv_nchw_packed_scratch(&p) : mlk_conv_blocked_scratch(&p))
                        var scratch = [Float](repeating: Self.guardValue, count: guarded + Self.guardFloats)
                        var y = [Float](repeating: Self.guardValue, count: n + Self.guardFloats)
                        let r = outB ? resB : res
                        if inPlace { y.replaceSubrange(0..<n, with: r) }
                        y.withUnsafeMutableBufferPointer { yp in
                            let rp: UnsafePointer<Float>? = inPlace ? UnsafePointer(yp.baseAddress) : nil
                            r.withUnsafeBufferPointer { rb in
                                let residual = inPlace ? rp : useRes ? rb.baseAddress : nil
                                if layouts == nil {
                                    mlk_conv_nchw_packed(&p, x, panels, b, scale, residual, yp.baseAddress, &scratch, 1, 0, 0)
                                } else {
                                    mlk_conv_blocked(&p, inB ? xB : x, inB ? 1 : 0, panels, b, scale, residual, yp.baseAddress,
                                                     outB ? 1 : 0, &scratch, 1, 0, 0)
                                }
                            }
                        }
                        XCTAssertTrue(y[n...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
                        XCTAssertTrue(scratch[guarded...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its scratch")
                        var got = Array(y[..<n])
                        if outB { mlk_nchw_from_blocked(Int32(batch), Int32(co), Int32(hw), Array(y[..<n]), &got) }
                        let worst = zip(reference[useRes ? 1 : 0], got).map { abs($0 - $1) }.max() ?? 0
                        XCTAssertLessThan(worst / size, 2e-5, label)
                    }
                }
            }
        }
        // Off: stride 2, 5x5, a pad of 0, planes under 196 outputs.
        for (k, s, pad, hw) in [(3, 2, 1, 28), (5, 1, 2, 28), (3, 1, 0, 28), (3, 1, 1, 13)] {
            let o = (hw + 2 * pad - k) / s + 1
            var p = square(64, hw, hw, 64, o, o, k: k, s: s, pad: pad)
            XCTAssertEqual(mlk_conv_winograd_ok(&p), 0, "\(k)x\(k) s\(s) pad \(pad) on \(hw)x\(hw)")
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

    /// Global average pooling (mlk_global_mean), NCHW and channel-blocked, AVX-512 and portable:
    /// against a double-precision mean, on planes with and without a tail of 16 (49, 1, 17, 64).
    func testGlobalMeansMatchADirectSum() throws {
        var rng = Rng(s: 5)
        for (planes, inner) in [(1280, 49), (32, 1), (48, 17), (16, 64)] {
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
                let label = "\(planes) planes of \(inner) (\(avx ? "AVX-512" : "portable"))"
                XCTAssertLessThanOrEqual(zip(y, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 1, 1e-7, label)
                XCTAssertLessThanOrEqual(zip(yb, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 1, 1e-7, "\(label), blocked")
            }
        }
    }
}
