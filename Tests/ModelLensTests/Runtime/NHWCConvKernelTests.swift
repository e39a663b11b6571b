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
            let (kh, kw, cg) = (Int(p.k_h), Int(p.k_w), ci / g)
            let x = (0..<(h * wd * ci)).map { _ in rng.float() }
            let w = (0..<(co * kh * kw * cg)).map { _ in rng.float() }   // OHWI, I = channels per group
            let b = (0..<co).map { _ in rng.float() }
            checkNHWC(&p, x, w, b, &rng, "NHWC \(windowLabel(p)) groups \(g)")
            checked += 1
        }
    }

    /// Convolutions with one output pixel (iris_landmark's 2x2x128 -> 15 head, face_landmark's
    /// 3x3x32 -> 1404): a matrix-vector product for fewer than 16 outputs and for 64 or more, the
    /// packed GEMM between. Against the direct sum, 1 and 2 threads, AVX-512 and portable.
    func testOnePixelNHWCConvolutionsMatchADirectSum() throws {
        defer { Executor.preferAVX512(true); mlk_set_threads(1) }
        var rng = Rng(s: 515)
        for co in [1, 5, 15, 16, 40, 64, 213] {
            let ci = 1 + rng.next(130), k = 1 + rng.next(3)
            var p = square(ci, k, k, co, 1, 1, k: k, s: 1, pad: 0)
            let x = (0..<(k * k * ci)).map { _ in rng.float() }
            let w = (0..<(co * k * k * ci)).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            checkNHWC(&p, x, w, b, &rng, "one pixel \(windowLabel(p))")
        }
    }

    /// mlk_conv_nhwc on the portable kernels and (where the CPU has them) the AVX-512 ones, on 1
    /// or 2 threads, against the direct sum: within 1e-4 relative, nothing written past the output.
    func checkNHWC(_ p: inout mlk_conv, _ x: [Float], _ w: [Float], _ b: [Float], _ rng: inout Rng, _ what: String) {
        let expected = directNHWC(p, x, w, b)
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            mlk_set_threads(Int32(1 + rng.next(2)))
            var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
            var out = [Float](repeating: Self.guardValue, count: expected.count + Self.guardFloats)
            mlk_conv_nhwc(&p, x, w, b, nil, &out, &scratch, 0, 0, 0)
            let label = "\(what) avx512 \(avx512)"
            XCTAssertTrue(out[expected.count...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
            let worst = zip(expected, out).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-4, label)
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
            mlk_conv_nhwc(&p, x, w, b, nil, &perCall, &scratch, 1, 0, 0)
            mlk_conv_nhwc_packed(&p, x, panels, b, nil, &prepacked, &scratch, 1, 0, 0)
            XCTAssertEqual(perCall, prepacked, "\(ci)->\(co) \(h)x\(wd) k\(k) s\(s) pad \(pad)")
            checked += 1
        }
    }
    /// Layers with few GEMM tasks (7x7 to 160 or 320 channels with weights too large for one task:
    /// 3 or 5 tasks of 64 channels) are cut by rows too when that shares them evenly among threads;
    /// every output keeps the bits it has on 1 thread.
    func testNHWCConvolutionResultsIdenticalForAnyThreadCount() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the packed GEMM is not used") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 4949)
        for (ci, h, co) in [(960, 7, 160), (576, 7, 160), (480, 7, 320), (576, 14, 160), (400, 5, 96)] {
            var p = square(ci, h, h, co, h, h, k: 1, s: 1, pad: 0)
            let x = (0..<(h * h * ci)).map { _ in rng.float() }
            let w = (0..<(co * ci)).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            var first: [Float]? = nil
            for threads in [1, 2, 3] {
                mlk_set_threads(Int32(threads))
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
                var y = [Float](repeating: 0, count: h * h * co)
                mlk_conv_nhwc(&p, x, w, b, nil, &y, &scratch, 1, 0, 0)
                if let first { XCTAssertTrue(y == first, "\(ci)->\(co) \(h)x\(h): \(threads) threads differ from 1") } else { first = y }
            }
        }
    }

    /// Short sums (k <= 64: 1x1 from up to 64 channels, 3x3 from 5-7) take a GEMM of 12 x 16
    /// tiles where the core issues one 512-bit FMA a cycle, the packed 12 x 32 one elsewhere. Both
    /// sum each output from its bias in k order, so for widths off the packed GEMM's lane-wise end
    /// tiles (32q + 17 from 49 on, 32q + 1..4) they give the same bits, with a residual, a clamp
    /// and partial last columns; and both match the direct sum.
    func testNHWCShortSumsGiveTheSameBitsOnEitherTile() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the packed GEMM is not used") }
        defer { mlk_set_fma512_pipes(0) }
        var rng = Rng(s: 6464)
        for (ci, h, co, k) in [(16, 28, 96, 1), (24, 14, 144, 1), (64, 7, 384, 1), (32, 9, 24, 1), (48, 5, 40, 1), (5, 20, 32, 3), (7, 6, 58, 3)] {
            var p = square(ci, h, h, co, h, h, k: k, s: 1, pad: k / 2)
            let x = (0..<(h * h * ci)).map { _ in rng.float() }
            let w = (0..<(co * ci * k * k)).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            let res = (0..<(h * h * co)).map { _ in rng.float() }
            let expected = zip(directNHWC(p, x, w, b), res).map { min(max($0 + $1, 0), 6) }
            var results: [[Float]] = []
            for pipes: Int32 in [1, 2] {
                mlk_set_fma512_pipes(pipes)
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
                var y = [Float](repeating: 0, count: h * h * co)
                mlk_conv_nhwc(&p, x, w, b, res, &y, &scratch, 2, 0, 6)
                let worst = zip(y, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-5, "\(ci)->\(co) k\(k) \(h)x\(h), \(pipes) pipe(s)")
                results.append(y)
            }
            XCTAssertTrue(results[0] == results[1], "\(ci)->\(co) k\(k) \(h)x\(h): the two tiles differ")
        }
    }

    /// An NHWC convolution (OHWI weights, I the channels per group) summed directly, in Double.
    func directNHWC(_ p: mlk_conv, _ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
        let (h, wd, ci, co, g) = (Int(p.in_h), Int(p.in_w), Int(p.in_c), Int(p.out_c), Int(p.groups))
        let (kh, kw, oh, ow) = (Int(p.k_h), Int(p.k_w), Int(p.out_h), Int(p.out_w))
        let cg = ci / g, og = co / g
        var expected = [Float](repeating: 0, count: oh * ow * co)
        for y in 0..<oh { for xo in 0..<ow { for o in 0..<co {
            var sum = Double(b[o])
            let gi = o / og
            for i in 0..<kh { for j in 0..<kw {
                let iy = y * Int(p.stride_h) - Int(p.pad_top) + i * Int(p.dil_h), ix = xo * Int(p.stride_w) - Int(p.pad_left) + j * Int(p.dil_w)
                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                for c in 0..<cg {
                    sum += Double(x[(iy * wd + ix) * ci + gi * cg + c]) * Double(w[((o * kh + i) * kw + j) * cg + c])
                }
            } }
            expected[(y * ow + xo) * co + o] = Float(sum)
        } } }
        return expected
    }

    /// Stems (1-4 input channels to 2-70 outputs) take the direct kernel, which reads the input
    /// where it lies: pixels inside the row in blocks of 12 with the stride and channels fixed at
    /// compile time for the common ones, pixels near either edge tap by tap. Against the direct
    /// sum, for kernels 2-7 (not square), stride 1-3 per axis, dilation 1-2, asymmetric pads,
    /// rows of 1-40 pixels, weights packed per call and at plan time, a clamp, 1 and 2 threads.
    func testNHWCStemConvolutionsMatchADirectSum() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the direct stem kernel is not used") }
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 2027)
        var checked = 0, blocks = 0
        while checked < 80 {
            let ci = 1 + rng.next(4), co = 2 + rng.next(69), h = 1 + rng.next(12), wd = 1 + rng.next(40)
            let kh = 2 + rng.next(6), kw = 1 + rng.next(7), sh = 1 + rng.next(3), sw = 1 + rng.next(3)
            let dh = 1 + rng.next(2), dw = checked % 4 == 0 ? 2 : 1
            let (pt, pl, pb, pr) = (rng.next(kh), rng.next(kw), rng.next(kh), rng.next(kw))
            let eh = (kh - 1) * dh + 1, ew = (kw - 1) * dw + 1
            guard h + pt + pb >= eh, wd + pl + pr >= ew else { continue }
            var p = mlk_conv(batch: 1, in_c: Int32(ci), in_h: Int32(h), in_w: Int32(wd), out_c: Int32(co),
                             out_h: Int32((h + pt + pb - eh) / sh + 1), out_w: Int32((wd + pl + pr - ew) / sw + 1),
                             k_h: Int32(kh), k_w: Int32(kw), stride_h: Int32(sh), stride_w: Int32(sw), dil_h: Int32(dh),
                             dil_w: Int32(dw), pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb), pad_right: Int32(pr), groups: 1)
            XCTAssertEqual(mlk_conv_nhwc_runs_direct(&p), 1, windowLabel(p))
            if p.out_w >= 14 { blocks += 1 }
            let x = (0..<(h * wd * ci)).map { _ in rng.float() }
            let w = (0..<(co * kh * kw * ci)).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            // Relu6 on the direct sum.
            let expected = directNHWC(p, x, w, b).map { min(max($0, 0), 6) }
            let kk = Int32(kh * kw * ci)
            var panels = [Float](repeating: 0, count: Int(mlk_weight_panel_floats(Int32(co), kk)))
            mlk_weight_panels_pack(Int32(co), kk, w, &panels)
            for prepacked in [false, true] {
                mlk_set_threads(Int32(1 + rng.next(2)))
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
                var out = [Float](repeating: Self.guardValue, count: expected.count + Self.guardFloats)
                if prepacked { mlk_conv_nhwc_packed(&p, x, panels, b, nil, &out, &scratch, 2, 0, 0) }
                else { mlk_conv_nhwc(&p, x, w, b, nil, &out, &scratch, 2, 0, 0) }
                let label = "stem \(windowLabel(p)) stride_w \(sw) dil_w \(dw) prepacked \(prepacked)"
                XCTAssertTrue(out[expected.count...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
                let worst = zip(expected, out).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-5, label)
            }
            checked += 1
        }
        XCTAssertGreaterThan(blocks, 10, "rows long enough for whole 12-pixel blocks")
    }
    /// A residual (the Add the planner fuses into an NHWC convolution) is added before the
    /// activation, on the packed GEMM (added as its sums are stored) and on the other paths
    /// (stems, few outputs, grouped; added afterwards), with weights packed per call and at plan
    /// time: against the direct sum plus the residual, then Relu6.
    func testNHWCConvolutionsAddTheirResidualBeforeTheActivation() throws {
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 77)
        var checked = 0, onGEMM = 0
        while checked < 60 {
            let g = checked % 5 == 4 ? 2 : 1
            let ci = g * (1 + rng.next(checked % 3 == 0 ? 4 : 24)), co = g * (2 + rng.next(40)), h = 1 + rng.next(14), wd = 1 + rng.next(14)
            let k = 1 + 2 * rng.next(2), s = 1 + rng.next(2), pad = rng.next(k)
            guard h + 2 * pad >= k, wd + 2 * pad >= k else { continue }
            var p = square(ci, h, wd, co, (h + 2 * pad - k) / s + 1, (wd + 2 * pad - k) / s + 1, k: k, s: s, pad: pad)
            p.groups = Int32(g)
            let x = (0..<(h * wd * ci)).map { _ in rng.float() }
            let w = (0..<(co * k * k * (ci / g))).map { _ in rng.float() }
            let b = (0..<co).map { _ in rng.float() }
            let direct = directNHWC(p, x, w, b)
            let res = direct.map { _ in 2 * rng.float() }
            let expected = zip(direct, res).map { min(max($0 + $1, 0), 6) }
            let packs = mlk_conv_nhwc_packs(&p) != 0
            if packs && mlk_conv_nhwc_runs_direct(&p) == 0 { onGEMM += 1 }
            for prepacked in packs ? [false, true] : [false] {
                mlk_set_threads(Int32(1 + rng.next(2)))
                var scratch = [Float](repeating: 0, count: Int(mlk_conv_nhwc_scratch(&p)))
                var out = [Float](repeating: Self.guardValue, count: expected.count + Self.guardFloats)
                if prepacked {
                    let kk = Int32(k * k * ci)
                    var panels = [Float](repeating: 0, count: Int(mlk_weight_panel_floats(Int32(co), kk)))
                    mlk_weight_panels_pack(Int32(co), kk, w, &panels)
                    mlk_conv_nhwc_packed(&p, x, panels, b, res, &out, &scratch, 2, 0, 0)
                } else {
                    mlk_conv_nhwc(&p, x, w, b, res, &out, &scratch, 2, 0, 0)
                }
                let label = "residual \(windowLabel(p)) groups \(g) prepacked \(prepacked)"
                XCTAssertTrue(out[expected.count...].allSatisfy { $0 == Self.guardValue }, "\(label): wrote past its output")
                let worst = zip(expected, out).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-5, label)
            }
            checked += 1
        }
        if Executor.avx512Available { XCTAssertGreaterThan(onGEMM, 10, "convolutions on the packed GEMM") }
    }
}
