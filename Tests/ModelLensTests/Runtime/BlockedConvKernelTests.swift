import CKernels
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// Channels-as-vectors, channel-blocked and Winograd convolutions against the NCHW paths.
/// (The helpers and geometry generators are ConvKernelTests'.)
extension ConvKernelTests {
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
}
