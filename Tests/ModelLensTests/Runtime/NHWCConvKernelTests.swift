import CKernels
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// NHWC convolutions against a direct sum, and with weights packed at plan time.
/// (The helpers and geometry generators are ConvKernelTests'.)
extension ConvKernelTests {
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
}
