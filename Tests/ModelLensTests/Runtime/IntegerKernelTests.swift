import CKernels
import ModelRuntime
import XCTest

/// The integer convolution, depthwise and fully-connected kernels (VNNI and portable, 1 and 2
/// threads) against the two requantizations written here one output at a time: acc = bias +
/// sum (x - x_zero) * w in 64-bit integers, then TFLite's MultiplyByQuantizedMultiplier (the shift
/// left, the rounding doubling high multiply with its sign-dependent nudge and truncation, the
/// rounding right shift half away from zero), the output zero point and the clamp; or
/// onnxruntime's MlasRequantizeOutput (float(acc) * scale, clamped, rounded half to even).
/// Multipliers span both signs of the shift, zero points both ends of their types, and shapes
/// partial vectors, padding, strides and a first layer's three channels.
final class IntegerKernelTests: XCTestCase {
    private var state: UInt64 = 11
    private func next() -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int(state >> 33)
    }

    /// TFLite's MultiplyByQuantizedMultiplier, as gemmlowp writes it.
    private func multiply(_ x: Int32, _ mult: Int32, _ shift: Int32) -> Int32 {
        let left = max(shift, 0), right = max(-shift, 0)
        let a = Int64(Int32(truncatingIfNeeded: Int64(x) << Int64(left)))
        let ab = a * Int64(mult)
        let nudge: Int64 = ab >= 0 ? 1 << 30 : 1 - (1 << 30)
        let high = Int32(truncatingIfNeeded: (ab + nudge) / (1 << 31))   // Swift's division truncates toward zero
        guard right > 0 else { return high }
        let mask = Int32((1 << right) - 1)
        let remainder = high & mask, threshold = (mask >> 1) + (high < 0 ? 1 : 0)
        return (high >> right) + (remainder > threshold ? 1 : 0)
    }

    private struct Case {
        var p: mlk_conv
        var depthwise: Bool
        var signedIn: Bool
        var x: [UInt8], w: [Int8], bias: [Int32]
        var mult: [Int32], shift: [Int32]
        var fscale: [Float]?   // onnxruntime's requantization
        var q: mlk_qconv
    }

    private func makeCase(_ geometry: (c: Int, h: Int, w: Int, o: Int, k: Int, s: Int, pad: Int), depthwise: Bool, signedIn: Bool,
                          onnx: Bool = false) -> Case {
        var p = mlk_conv()
        p.batch = 1; p.in_c = Int32(geometry.c); p.in_h = Int32(geometry.h); p.in_w = Int32(geometry.w)
        p.out_c = Int32(depthwise ? geometry.c : geometry.o)
        p.k_h = Int32(geometry.k); p.k_w = Int32(geometry.k); p.stride_h = Int32(geometry.s); p.stride_w = Int32(geometry.s)
        p.dil_h = 1; p.dil_w = 1
        p.pad_top = Int32(geometry.pad); p.pad_left = Int32(geometry.pad); p.pad_bottom = Int32(geometry.pad); p.pad_right = Int32(geometry.pad)
        p.out_h = (p.in_h + 2 * p.pad_top - p.k_h) / p.stride_h + 1
        p.out_w = (p.in_w + 2 * p.pad_left - p.k_w) / p.stride_w + 1
        p.groups = depthwise ? p.in_c : 1
        let outC = Int(p.out_c), taps = geometry.k * geometry.k
        let x = (0..<(geometry.c * geometry.h * geometry.w)).map { _ in UInt8(truncatingIfNeeded: next()) }
        let w = (0..<(depthwise ? taps * outC : outC * taps * geometry.c)).map { _ in Int8(truncatingIfNeeded: next() % 255 - 127) }
        let bias = (0..<outC).map { _ in Int32(next() % 40_001 - 20_000) }
        var mult = [Int32](repeating: 0, count: outC), shift = [Int32](repeating: 0, count: outC)
        var fscale = [Float](repeating: 0, count: outC)
        for o in 0..<outC {
            // Multipliers that keep most outputs inside the type's range (2^-15 to 2^-6 for sums of
            // up to a few hundred thousand), a quarter of them exact powers of two, whose products
            // fall on ties of both roundings, and one in sixteen in [1, 2): a left shift.
            let r = next() % 16
            let m = r == 0 ? 1 + Double(next() % 1000) / 1000
                : r < 5 ? pow(2.0, -Double(7 + next() % 9))
                : pow(2.0, -15.0 + 9.0 * Double(next() % 1_000_000) / 1_000_000)
            mlk_quantize_multiplier(m, &mult[o], &shift[o])
            fscale[o] = Float(m)
        }
        var q = mlk_qconv()
        q.in_signed = signedIn ? 1 : 0
        q.in_zero = signedIn ? Int32(next() % 256 - 128) : Int32(next() % 256)
        q.out_zero = signedIn ? -128 + Int32(next() % 8) : Int32(next() % 256)
        q.act_min = signedIn ? -128 : 0; q.act_max = signedIn ? 127 : 255
        if next() % 2 == 0 { q.act_min = q.out_zero; q.act_max = min(q.act_max, q.out_zero + 90) }   // a fused ReLU6's clamp
        return Case(p: p, depthwise: depthwise, signedIn: signedIn, x: x, w: w, bias: bias, mult: mult, shift: shift,
                    fscale: onnx ? fscale : nil, q: q)
    }

    /// The definition: NHWC input, OHWI weights (1HWO for depthwise), padding reads the zero point.
    private func expected(_ t: Case) -> [UInt8] {
        let p = t.p, c = Int(p.in_c), outC = Int(p.out_c), kh = Int(p.k_h), kw = Int(p.k_w)
        var y: [UInt8] = []
        for oh in 0..<Int(p.out_h) {
            for ow in 0..<Int(p.out_w) {
                for o in 0..<outC {
                    var acc = Int64(t.bias[o])
                    for i in 0..<kh {
                        for j in 0..<kw {
                            let ih = oh * Int(p.stride_h) - Int(p.pad_top) + i, iw = ow * Int(p.stride_w) - Int(p.pad_left) + j
                            guard ih >= 0, ih < Int(p.in_h), iw >= 0, iw < Int(p.in_w) else { continue }
                            func value(_ ci: Int) -> Int64 {
                                let b = t.x[(ih * Int(p.in_w) + iw) * c + ci]
                                return (t.signedIn ? Int64(Int8(bitPattern: b)) : Int64(b)) - Int64(t.q.in_zero)
                            }
                            if t.depthwise {
                                acc += value(o) * Int64(t.w[(i * kw + j) * outC + o])
                            } else {
                                for ci in 0..<c { acc += value(ci) * Int64(t.w[((o * kh + i) * kw + j) * c + ci]) }
                            }
                        }
                    }
                    if let fs = t.fscale {
                        let lo = Float(t.q.act_min - t.q.out_zero), hi = Float(t.q.act_max - t.q.out_zero)
                        let f = min(max(Float(Int32(acc)) * fs[o], lo), hi)
                        y.append(UInt8(truncatingIfNeeded: Int32(f.rounded(.toNearestOrEven)) + t.q.out_zero))
                        continue
                    }
                    let v = t.q.out_zero + multiply(Int32(acc), t.mult[o], t.shift[o])
                    y.append(UInt8(truncatingIfNeeded: min(max(v, t.q.act_min), t.q.act_max)))
                }
            }
        }
        return y
    }

    private func run(_ t: Case) -> [UInt8] {
        guard let fs = t.fscale else { return run(t, fscale: nil) }
        return fs.withUnsafeBufferPointer { run(t, fscale: $0.baseAddress) }
    }

    private func run(_ t: Case, fscale: UnsafePointer<Float>?) -> [UInt8] {
        var p = t.p, q = t.q
        q.fscale = fscale
        var y = [UInt8](repeating: 0, count: Int(p.out_h * p.out_w * p.out_c))
        if t.depthwise {
            mlk_qdepthwise_nhwc(&p, &q, t.x, t.w, t.bias, t.mult, t.shift, &y)
            return y
        }
        let k = Int(p.k_h * p.k_w * p.in_c), outC = Int(p.out_c)
        var packed = [Int8](repeating: 0, count: Int(mlk_qconv_packed_size(Int32(outC), Int32(k))))
        var biasEff = [Int32](repeating: 0, count: outC)
        mlk_qconv_pack(Int32(outC), Int32(k), t.w, t.bias, q.in_zero + (t.signedIn ? 128 : 0), &packed, &biasEff)
        var scratch = [UInt8](repeating: 0, count: Int(mlk_qconv_scratch(&p)) + 1)
        mlk_qconv_nhwc(&p, &q, t.x, packed, biasEff, t.mult, t.shift, &y, &scratch)
        return y
    }

    func testIntegerKernelsMatchTFLitesArithmetic() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        let shapes: [(c: Int, h: Int, w: Int, o: Int, k: Int, s: Int, pad: Int)] = [
            (3, 17, 19, 32, 3, 2, 1),    // a first layer: three channels, im2col
            (24, 9, 13, 40, 1, 1, 0),    // 1x1: the GEMM reads the input in place
            (20, 6, 7, 17, 3, 1, 1),     // channels that fill no whole vector
            (40, 1, 1, 10, 1, 1, 0),     // a fully-connected layer
            (64, 2, 3, 96, 1, 1, 0),     // few rows, many channels: panel pairs shared among threads
            (32, 3, 3, 70, 3, 1, 1),     // the same through im2col, a partial last pair
        ]
        let depthwiseShapes: [(c: Int, h: Int, w: Int, o: Int, k: Int, s: Int, pad: Int)] = [
            (37, 11, 14, 0, 3, 1, 1), (32, 12, 12, 0, 3, 2, 1), (16, 9, 10, 0, 5, 1, 2),
        ]
        var cases: [Case] = []
        for signedIn in [true, false] {
            for onnx in [false, true] {
                cases += shapes.map { makeCase($0, depthwise: false, signedIn: signedIn, onnx: onnx) }
                cases += depthwiseShapes.map { makeCase($0, depthwise: true, signedIn: signedIn, onnx: onnx) }
            }
        }
        let want = cases.map(expected)
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            for threads in [1, 2] {
                mlk_set_threads(Int32(threads))
                for (t, w) in zip(cases, want) {
                    let got = run(t)
                    let bad = zip(got, w).filter { $0 != $1 }.count
                    XCTAssertEqual(bad, 0, "\(t.depthwise ? "depthwise" : "conv") c \(t.p.in_c) o \(t.p.out_c) k \(t.p.k_h) s \(t.p.stride_h) signed \(t.signedIn) onnx \(t.fscale != nil) avx512 \(avx512) threads \(threads): \(bad) of \(w.count) differ")
                }
            }
        }
    }
    /// A fully-connected layer with float outputs (onnxruntime's QGemm without an output scale):
    /// float(sum) * scale per column, bit for bit, VNNI and portable, K a multiple of 4 (the GEMM
    /// reads the input in place) or not (rows copied out).
    func testFloatOutputsAreTheSumsTimesTheScale() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        for k in [40, 27] {
            var t = makeCase((k, 5, 3, 37, 1, 1, 0), depthwise: false, signedIn: false, onnx: true)
            let fs = t.fscale!
            var want = [Float]()
            for r in 0..<15 {
                for o in 0..<37 {
                    var acc = Int64(t.bias[o])
                    for ci in 0..<k { acc += (Int64(t.x[r * k + ci]) - Int64(t.q.in_zero)) * Int64(t.w[o * k + ci]) }
                    want.append(Float(Int32(acc)) * fs[o])
                }
            }
            t.q.float_out = 1
            for avx512 in [false, true] where !avx512 || Executor.avx512Available {
                Executor.preferAVX512(avx512)
                for threads: Int32 in [1, 2] {
                    mlk_set_threads(threads)
                    var p = t.p, q = t.q
                    var packed = [Int8](repeating: 0, count: Int(mlk_qconv_packed_size(37, Int32(k))))
                    var biasEff = [Int32](repeating: 0, count: 37)
                    mlk_qconv_pack(37, Int32(k), t.w, t.bias, q.in_zero, &packed, &biasEff)
                    var scratch = [UInt8](repeating: 0, count: Int(mlk_qconv_scratch(&p)) + 1)
                    var y = [Float](repeating: .nan, count: 15 * 37)
                    fs.withUnsafeBufferPointer { f in
                        q.fscale = f.baseAddress
                        y.withUnsafeMutableBytes { out in
                            mlk_qconv_nhwc(&p, &q, t.x, packed, biasEff, t.mult, t.shift, out.baseAddress, &scratch)
                        }
                    }
                    XCTAssertEqual(y.map(\.bitPattern), want.map(\.bitPattern), "K \(k) avx512 \(avx512) threads \(threads)")
                }
            }
        }
    }
}
