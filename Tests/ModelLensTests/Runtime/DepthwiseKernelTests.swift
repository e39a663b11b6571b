import CKernels
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// Depthwise convolutions (NCHW planes, 3x3 paths, NHWC rows and flat rows): the AVX-512 kernels against the portable ones.
/// (The helpers and geometry generators are ConvKernelTests'.)
extension ConvKernelTests {
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

    /// The AVX-512 NHWC depthwise kernel (channels as vectors; eight output pixels at a time inside
    /// the row for 3- and 5-wide windows, four at a time with taps checked near the row's ends)
    /// against the portable loop: 3-80 channels (a 16-channel tail,
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

    /// The count of short pixel groups (1-4 pixels) the NHWC row kernel runs, which the cost
    /// model prices apart from its eight-pixel spans, against counts by hand: a 3x3 "same" row of
    /// 112 has 3 (1 pixel at the left end, 4 and 3 at the right), a row of 7 has 3 (1, 4, 2), a
    /// TF "same" stride-2 row of 56 from 112 has 2 (4, 4 after six spans), a 7x7 window (no spans)
    /// over 56 pixels 15 (3, twelve of 4, 4, 1); each per 32-channel block and row. The flat path
    /// (8 channels, stride 1) has none.
    func testNHWCDepthwiseCountsItsShortPixelGroups() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: only the portable path runs") }
        func groups(c: Int, w: Int, k: Int, s: Int, pads: (Int, Int)) -> Int {
            let ow = (w + pads.0 + pads.1 - k) / s + 1
            var p = mlk_conv(batch: 1, in_c: Int32(c), in_h: Int32(w), in_w: Int32(w), out_c: Int32(c), out_h: Int32(ow),
                             out_w: Int32(ow), k_h: Int32(k), k_w: Int32(k), stride_h: Int32(s), stride_w: Int32(s),
                             dil_h: 1, dil_w: 1, pad_top: Int32(pads.0), pad_left: Int32(pads.0), pad_bottom: Int32(pads.1),
                             pad_right: Int32(pads.1), groups: Int32(c))
            return mlk_depthwise_nhwc_short_groups(&p)
        }
        XCTAssertEqual(groups(c: 144, w: 112, k: 3, s: 1, pads: (1, 1)), 3 * 5 * 112)
        XCTAssertEqual(groups(c: 960, w: 7, k: 3, s: 1, pads: (1, 1)), 3 * 30 * 7)
        XCTAssertEqual(groups(c: 96, w: 112, k: 3, s: 2, pads: (0, 1)), 2 * 3 * 56)
        XCTAssertEqual(groups(c: 96, w: 56, k: 7, s: 1, pads: (3, 3)), 15 * 3 * 56)
        XCTAssertEqual(groups(c: 8, w: 56, k: 3, s: 1, pads: (1, 1)), 0)
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
                    mlk_conv_nhwc(&p, x, w, b, nil, y, &scratch, act, 0, 6)
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
}
