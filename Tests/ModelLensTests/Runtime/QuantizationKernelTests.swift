import CKernels
import ModelRuntime
import XCTest

/// Per-tensor quantization to int8 / uint8, dequantization, and the QuantizeLinear ->
/// DequantizeLinear pair in one pass, which take 16-wide vectors where the CPU has AVX-512,
/// against the ONNX and TFLite definitions written here one element at a time: q = saturate(
/// round(x / scale) + zero), half to even (ONNX) or half away from zero (TFLite), NaN to the zero
/// point; x' = (q - zero) * scale. Values include exact ties (k + 1/2 steps), NaN, infinities,
/// values that saturate, and lengths that leave a partial vector and span several tasks.
final class QuantizationKernelTests: XCTestCase {
    /// Runs `body` on the portable kernels and, where the CPU has them, the AVX-512 ones, each at
    /// 1 and 2 threads.
    private func eachKernelForm(_ body: (_ avx512: Bool, _ threads: Int) -> Void) {
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            for threads in [1, 2] {
                mlk_set_threads(Int32(threads))
                body(avx512, threads)
            }
        }
    }

    func testVectorFormsMatchTheDefinition() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        var state: UInt64 = 5
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let scale: Float = 0.0234375   // 3/128: k / 2 * scale is exact, so ties stay ties
        let n = 40_003
        let x: [Float] = (0..<n).map { _ in
            switch next() % 8 {
            case 0: return [Float.nan, .infinity, -.infinity, 0, -0.0, 1e30, -1e30][Int(next() % 7)]
            case 1, 2: return Float(Int(next() % 600) - 300) / 2 * scale   // ties and integers
            default: return (Float(next() % 1_000_000) / 1_000_000 - 0.5) * 400 * scale
            }
        }
        func quantized(_ v: Float, zero: Int32, signed: Bool, halfEven: Bool) -> Int32 {
            let q = v / scale
            if q.isNaN { return zero }
            let r = halfEven ? q.rounded(.toNearestOrEven) : q.rounded(.toNearestOrAwayFromZero)
            let (lo, hi): (Float, Float) = signed ? (-128, 127) : (0, 255)
            return Int32(min(max(r + Float(zero), lo), hi))
        }
        eachKernelForm { avx512, threads in
            for (signed, zero) in [(true, Int32(-3)), (false, Int32(128)), (false, Int32(0))] {
                for halfEven in [true, false] {
                    var q = [UInt8](repeating: 0, count: n)
                    mlk_quantize_8(x, n, scale, zero, signed ? 1 : 0, halfEven ? 1 : 0, &q)
                    let bad = (0..<n).first { i in
                        let got = signed ? Int32(Int8(bitPattern: q[i])) : Int32(q[i])
                        return got != quantized(x[i], zero: zero, signed: signed, halfEven: halfEven)
                    }
                    XCTAssertNil(bad.map { "x \(x[$0]) gave \(q[$0])" }, "quantize signed \(signed) zero \(zero) half-even \(halfEven) threads \(threads) avx512 \(avx512)")
                    var y = [Float](repeating: 0, count: n)
                    mlk_dequantize_8(q, signed ? 1 : 0, n, scale, zero, &y)
                    let badD = (0..<n).first { i in
                        let v = signed ? Int32(Int8(bitPattern: q[i])) : Int32(q[i])
                        return y[i].bitPattern != (Float(v - zero) * scale).bitPattern
                    }
                    XCTAssertNil(badD, "dequantize signed \(signed) zero \(zero) threads \(threads) avx512 \(avx512)")
                }
                var pair = [Float](repeating: 0, count: n)
                mlk_quantize_dequantize_8(x, n, scale, zero, signed ? 1 : 0, &pair)
                let badP = (0..<n).first { i in
                    pair[i].bitPattern != (Float(quantized(x[i], zero: zero, signed: signed, halfEven: true) - zero) * scale).bitPattern
                }
                XCTAssertNil(badP.map { "x \(x[$0]) gave \(pair[$0])" }, "quantize-dequantize signed \(signed) zero \(zero) threads \(threads) avx512 \(avx512)")
            }
        }
    }

    /// onnxruntime's QLinearAdd over all 256 x 256 pairs of 8-bit values (and a length that
    /// leaves a partial vector), vector and portable forms, 1 and 2 threads, against its formula
    /// written here: round half to even of fma(a, ra, fma(b, rb, base)), saturated. Scales whose
    /// ratios make exact ties of some pairs, so that the rounding direction is tested.
    func testQLinearAddMatchesOnnxruntimesFormula() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        let n = 256 * 256 + 7
        let a: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0 / 256) }, b: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0) }
        for (signed, sa, sb, sc, za, zb, zc) in [(false, Float(0.02), Float(0.03), Float(0.04), Int32(128), Int32(100), Int32(120)),
                                                 (true, Float(0.5), Float(0.25), Float(1), Int32(-3), Int32(0), Int32(5))] {
            let ra = sa / sc, rb = sb / sc
            let base = Float(zc) - (ra * Float(za) + rb * Float(zb))
            func want(_ i: Int) -> Int32 {
                let fa = signed ? Float(Int8(bitPattern: a[i])) : Float(a[i]), fb = signed ? Float(Int8(bitPattern: b[i])) : Float(b[i])
                let v = base.addingProduct(fb, rb).addingProduct(fa, ra).rounded(.toNearestOrEven)
                return Int32(min(max(v, signed ? -128 : 0), signed ? 127 : 255))
            }
            eachKernelForm { avx512, threads in
                var y = [UInt8](repeating: 0, count: n)
                mlk_qlinear_add_8(a, b, n, signed ? 1 : 0, ra, rb, base, &y)
                let bad = (0..<n).first { i in (signed ? Int32(Int8(bitPattern: y[i])) : Int32(y[i])) != want(i) }
                XCTAssertNil(bad.map { "a \(a[$0]) b \(b[$0]) gave \(y[$0]), want \(want($0))" }, "signed \(signed) threads \(threads) avx512 \(avx512)")
            }
        }
    }

    /// onnxruntime's requantization of integer sums (here floats holding integers) per channel
    /// of NCHW planes: every sum from -70000 to 70000 in steps that include exact ties of the
    /// scale, vector and portable forms, against clamp(round half to even(v * scale)) + zero.
    func testRequantizedPlanesMatchOnnxruntimesRounding() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        let channels = 3, plane = 7001
        let sums: [Float] = (0..<(2 * channels * plane)).map { Float(($0 % plane) * 20 - 70000 + ($0 / plane)) }
        let scales: [Float] = [0.001953125, 0.0123, 0.5]   // 2^-9 and 0.5 make ties
        for (signed, zero) in [(false, Int32(128)), (true, Int32(-5))] {
            func want(_ i: Int) -> Int32 {
                let v = (sums[i] * scales[(i / plane) % channels]).rounded(.toNearestOrEven) + Float(zero)
                return Int32(min(max(v, signed ? -128 : 0), signed ? 127 : 255))
            }
            eachKernelForm { avx512, threads in
                var y = [UInt8](repeating: 0, count: sums.count)
                mlk_requantize_planes(sums, Int32(2 * channels), plane, Int32(channels), scales, Int32(channels), zero, signed ? 1 : 0, &y)
                let bad = sums.indices.first { i in (signed ? Int32(Int8(bitPattern: y[i])) : Int32(y[i])) != want(i) }
                XCTAssertNil(bad.map { "sum \(sums[$0]) gave \(y[$0]), want \(want($0))" }, "signed \(signed) threads \(threads) avx512 \(avx512)")
            }
        }
    }

    /// onnxruntime's QLinearMul over all 256 x 256 pairs of 8-bit values, and with one b for a
    /// whole row (a squeeze-excitation gate), vector and portable forms, against round half to
    /// even of (float)((a - za)(b - zb)) * scale, plus zc, saturated.
    func testQLinearMulMatchesOnnxruntimesFormula() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        let n = 256 * 256 + 5
        let a: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0 / 256) }, b: [UInt8] = (0..<n).map { UInt8(truncatingIfNeeded: $0) }
        for (signed, za, zb, scale, zc) in [(false, Int32(128), Int32(3), Float(0.0625), Int32(100)), (true, Int32(-2), Int32(5), Float(0.01), Int32(-7))] {
            func value(_ x: UInt8) -> Int32 { signed ? Int32(Int8(bitPattern: x)) : Int32(x) }
            func want(_ x: UInt8, _ w: UInt8) -> Int32 {
                let v = (Float((value(x) - za) * (value(w) - zb)) * scale).rounded(.toNearestOrEven) + Float(zc)
                return Int32(min(max(v, signed ? -128 : 0), signed ? 127 : 255))
            }
            eachKernelForm { avx512, threads in
                var y = [UInt8](repeating: 0, count: n)
                mlk_qlinear_mul_8(a, b, n, signed ? 1 : 0, za, zb, scale, zc, &y)
                let bad = (0..<n).first { value(y[$0]) != want(a[$0], b[$0]) }
                XCTAssertNil(bad.map { "a \(a[$0]) b \(b[$0]) gave \(y[$0])" }, "signed \(signed) avx512 \(avx512) threads \(threads)")
                // Rows of 49 (a 7x7 plane), each gated by its own b.
                let rows = n / 49, gates: [UInt8] = (0..<rows).map { UInt8(truncatingIfNeeded: $0 * 37) }
                let at: [Int] = (0..<rows).map { $0 }
                mlk_qlinear_mul_rows_8(a, gates, at, Int32(rows), 49, signed ? 1 : 0, za, zb, scale, zc, &y)
                let badRow = (0..<(rows * 49)).first { value(y[$0]) != want(a[$0], gates[$0 / 49]) }
                XCTAssertNil(badRow.map { "a \(a[$0]) gave \(y[$0]) in row \($0 / 49)" }, "signed \(signed) avx512 \(avx512) threads \(threads), rows")
            }
        }
    }
    /// mlk_map_8 (QLinearSigmoid, QLinearLeakyRelu, QLinearConcat's tables): every byte value,
    /// in lengths that leave a partial vector and span several tasks, on both kernel forms.
    func testTableLookupsMatchTheTable() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        let table = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for n in [1, 63, 64, 200, 40_001] {
            let x = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 256) }
            eachKernelForm { avx512, threads in
                var y = [UInt8](repeating: 0, count: n)
                mlk_map_8(x, n, table, &y)
                XCTAssertEqual(y, x.map { table[Int($0)] }, "n \(n) avx512 \(avx512) threads \(threads)")
            }
        }
    }
}
