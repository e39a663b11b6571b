import CKernels
import ModelLensTestSupport
import ModelRuntime
import XCTest

/// mlk_binary's whole-tensor and repeated-row forms (a per-channel slope, bias or scale over NHWC
/// pixels), which take 16-wide vectors where the CPU has AVX-512, against one Float operation per
/// element written here: rows of 1-40 channels (a partial vector at each row's end), both forms, 1
/// and 2 threads, with NaN, infinities and signed zeros among the values. Equal bits are asked for
/// (NaN: any NaN).
final class BinaryKernelTests: XCTestCase {
    func testRowAndWholeTensorOpsMatchScalarArithmetic() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        let ops: [(Int32, String, (Float, Float) -> Float)] = [
            (Int32(MLK_ADD), "Add", { $0 + $1 }), (Int32(MLK_SUB), "Sub", { $0 - $1 }), (Int32(MLK_MUL), "Mul", { $0 * $1 }),
            (Int32(MLK_DIV), "Div", { $0 / $1 }), (Int32(MLK_PRELU), "PRelu", { $0 < 0 ? $0 * $1 : $0 }),
        ]
        var state: UInt64 = 11
        func value() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            switch state >> 59 {
            case 0: return [Float.nan, .infinity, -.infinity, 0, -0.0][Int(state >> 20) % 5]
            default: return Float(Int64(state >> 33) - (1 << 30)) / Float(1 << 26)
            }
        }
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            for inner in [1, 3, 15, 16, 17, 24, 32, 40] {
                let rows = 700 + inner   // over one task of 16384 elements for most widths
                let a = (0..<(rows * inner)).map { _ in value() }
                let whole = (0..<(rows * inner)).map { _ in value() }
                let row = (0..<inner).map { _ in value() }
                for (op, name, f) in ops {
                    for threads in [1, 2] {
                        mlk_set_threads(Int32(threads))
                        let shape = [rows, inner]
                        for repeated in [false, true] {
                            let b = repeated ? row : whole
                            let bs = repeated ? [0, 1] : [inner, 1]
                            var y = [Float](repeating: 0, count: rows * inner)
                            mlk_binary(op, 2, shape, a, [inner, 1], b, bs, &y)
                            let bad = (0..<y.count).first { i in
                                let e = f(a[i], b[repeated ? i % inner : i])
                                return e.isNaN ? !y[i].isNaN : e.bitPattern != y[i].bitPattern
                            }
                            XCTAssertNil(bad, "\(name) rows of \(inner) repeated \(repeated) threads \(threads) avx512 \(avx512)")
                        }
                    }
                }
            }
        }
    }

    /// mlk_binary with numpy broadcasting over 4-D shapes (each operand's dimensions either the
    /// output's or 1: a squeeze-excitation scale [1, C, 1, 1] against [1, C, H, W], a bias or a
    /// PRelu slope per channel, a row against a column), against an index walk with one Float operation per element.
    func testBroadcastOpsMatchAnIndexWalk() {
        defer { mlk_set_threads(1) }
        var state: UInt64 = 3
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33) % n
        }
        let ops: [(Int32, (Float, Float) -> Float)] = [(Int32(MLK_ADD), { $0 + $1 }), (Int32(MLK_MUL), { $0 * $1 }), (Int32(MLK_DIV), { $0 / $1 }),
                                                       (Int32(MLK_PRELU), { $0 < 0 ? $0 * $1 : $0 })]
        for trial in 0..<200 {
            let shape = (0..<4).map { _ in [1, 2, 3, 7, 16, 17][next(6)] }
            let aDims = shape.map { next(3) == 0 ? 1 : $0 }, bDims = shape.map { next(3) == 0 ? 1 : $0 }
            func strides(_ dims: [Int]) -> [Int] {
                var s = [Int](repeating: 0, count: 4), step = 1
                for d in stride(from: 3, through: 0, by: -1) { s[d] = dims[d] == 1 ? 0 : step; step *= dims[d] }
                return s
            }
            let sa = strides(aDims), sb = strides(bDims)
            let a = (0..<aDims.reduce(1, *)).map { _ in Float(next(2000) - 1000) / 64 }
            let b = (0..<bDims.reduce(1, *)).map { _ in Float(next(2000) + 1) / 64 }
            let (op, f) = ops[trial % ops.count]
            let total = shape.reduce(1, *)
            var want = [Float](repeating: 0, count: total)
            for i in 0..<total {
                var rem = i, oa = 0, ob = 0
                for d in stride(from: 3, through: 0, by: -1) { let k = rem % shape[d]; rem /= shape[d]; oa += k * sa[d]; ob += k * sb[d] }
                want[i] = f(a[oa], b[ob])
            }
            for threads: Int32 in [1, 2] {
                mlk_set_threads(threads)
                var y = [Float](repeating: .nan, count: total)
                mlk_binary(op, 4, shape.map { CLong($0) }, a, sa.map { CLong($0) }, b, sb.map { CLong($0) }, &y)
                XCTAssertEqual(y, want, "shape \(shape), a \(aDims), b \(bDims), op \(op), \(threads) threads")
            }
        }
    }

    /// The loop mlk_binary_loop names for the operand layouts models have (the analysis classes
    /// binary kernels by it): same shape, a per-channel vector over NHWC pixels, a scalar, a
    /// per-channel value over NCHW planes and a scale that comes first.
    func testBinaryLoopFollowsTheOperandsLayout() {
        func loop(_ op: Int32, _ shape: [Int], _ a: [Int], _ b: [Int]) -> Int32 {
            mlk_binary_loop(op, Int32(shape.count), shape.map { CLong($0) }, a.map { CLong($0) }, b.map { CLong($0) }, nil)
        }
        let (add, prelu) = (Int32(MLK_ADD), Int32(MLK_PRELU))
        let nchw = [1, 32, 14, 14], whole = [6272, 196, 14, 1]
        XCTAssertEqual(loop(add, nchw, whole, whole), Int32(MLK_BINARY_FLAT))
        // PRelu of two whole tensors: no flat loop (arithmetic only), one row of the whole.
        XCTAssertEqual(loop(prelu, nchw, whole, whole), Int32(MLK_BINARY_ROWS))
        XCTAssertEqual(loop(add, nchw, whole, [0, 0, 0, 0]), Int32(MLK_BINARY_SCALAR))
        // A [C, 1, 1] slope or bias over NCHW planes: one value a row, rows walked.
        XCTAssertEqual(loop(prelu, nchw, whole, [0, 1, 0, 0]), Int32(MLK_BINARY_WALK))
        // A [C] slope over NHWC pixels [1, 14, 14, 32]: the row repeated.
        XCTAssertEqual(loop(prelu, [1, 14, 14, 32], [6272, 448, 32, 1], [0, 0, 0, 1]), Int32(MLK_BINARY_ROWS))
        // A squeeze-excitation scale first: a is not the whole tensor.
        XCTAssertEqual(loop(Int32(MLK_MUL), nchw, [0, 1, 0, 0], whole), Int32(MLK_BINARY_WALK))
        // The rows those loops go through: 32 planes of 196; 196 pixels of 32 channels; one pass.
        var rows = 0
        XCTAssertEqual(mlk_binary_loop(prelu, 4, nchw.map { CLong($0) }, whole.map { CLong($0) }, [0, 1, 0, 0], &rows), Int32(MLK_BINARY_WALK))
        XCTAssertEqual(rows, 32)
        XCTAssertEqual(mlk_binary_loop(prelu, 4, [1, 14, 14, 32], [6272, 448, 32, 1], [0, 0, 0, 1], &rows), Int32(MLK_BINARY_ROWS))
        XCTAssertEqual(rows, 196)
        XCTAssertEqual(mlk_binary_loop(add, 4, nchw.map { CLong($0) }, whole.map { CLong($0) }, [0, 0, 0, 0], &rows), Int32(MLK_BINARY_SCALAR))
        XCTAssertEqual(rows, 1)
        // A scalar over more elements than one task takes (split like the flat loop), 1 and 2
        // threads: the elements of Swift's arithmetic.
        defer { mlk_set_threads(1) }
        let shape = [1, 64, 30, 30], n = shape.reduce(1, *)
        let a = (0..<n).map { Float($0 % 977) / 64 - 7 }, three: [Float] = [3]
        for (op, f) in [(Int32(MLK_ADD), { (x: Float) in x + 3 }), (Int32(MLK_DIV), { (x: Float) in x / 3 }), (Int32(MLK_PRELU), { (x: Float) in x < 0 ? x * 3 : x })] {
            for threads: Int32 in [1, 2] {
                mlk_set_threads(threads)
                var y = [Float](repeating: .nan, count: n)
                mlk_binary(op, 4, shape.map { CLong($0) }, a, [57600, 900, 30, 1], three, [0, 0, 0, 0], &y)
                XCTAssertEqual(y, a.map(f), "op \(op), \(threads) threads")
            }
        }
    }

    /// Integer comparisons and arithmetic with broadcasting (mlk_binary_int: shape arithmetic,
    /// one-hot encodings), int32 and int64, against the same op on Swift integers element by element.
    func testIntegerBinaryOpsMatchSwiftArithmetic() throws {
        var rng = Rng(s: 13)
        typealias IntOp = (code: Int32, name: String, f: (Int64, Int64) -> Int64, compare: Bool)
        func flag(_ b: Bool) -> Int64 { b ? 1 : 0 }
        var ops: [IntOp] = []
        ops.append((Int32(MLK_IADD), "add", { $0 &+ $1 }, false))
        ops.append((Int32(MLK_ISUB), "sub", { $0 &- $1 }, false))
        ops.append((Int32(MLK_IMAX), "max", { max($0, $1) }, false))
        ops.append((Int32(MLK_IMIN), "min", { min($0, $1) }, false))
        ops.append((Int32(MLK_IEQ), "eq", { flag($0 == $1) }, true))
        ops.append((Int32(MLK_INE), "ne", { flag($0 != $1) }, true))
        ops.append((Int32(MLK_IGT), "gt", { flag($0 > $1) }, true))
        ops.append((Int32(MLK_ILT), "lt", { flag($0 < $1) }, true))
        ops.append((Int32(MLK_IGE), "ge", { flag($0 >= $1) }, true))
        ops.append((Int32(MLK_ILE), "le", { flag($0 <= $1) }, true))
        // [rows, cols] against [rows, cols], [1, cols] (a repeated row) and [rows, 1] (a repeated column).
        let (rows, cols) = (37, 257)
        for elem in [4, 8] {
            let a = (0..<(rows * cols)).map { _ in Int64(rng.next(9)) - 4 }
            let b = (0..<(rows * cols)).map { _ in Int64(rng.next(9)) - 4 }
            func bytes(_ v: [Int64]) -> [UInt8] {
                elem == 8 ? v.withUnsafeBytes { Array($0) } : v.map { Int32($0) }.withUnsafeBytes { Array($0) }
            }
            let ab = bytes(a), bb = bytes(b)
            for (bStrides, label) in [([cols, 1], "whole"), ([0, 1], "row"), ([1, 0], "column")] {
                for (op, name, f, compare) in ops {
                    let ye = compare ? 1 : elem
                    var y = [UInt8](repeating: 0xCD, count: rows * cols * ye)
                    mlk_binary_int(op, 2, [CLong(rows), CLong(cols)], ab, [CLong(cols), 1], Int32(elem), bb, bStrides.map { CLong($0) },
                                   Int32(elem), &y, Int32(ye))
                    let bad = (0..<(rows * cols)).first { i in
                        let (r, c) = (i / cols, i % cols)
                        let want = f(a[i], b[r * bStrides[0] + c * bStrides[1]])
                        let got: Int64 = y.withUnsafeBytes { p in
                            ye == 1 ? Int64(p[i]) : ye == 4 ? Int64(p.load(fromByteOffset: i * 4, as: Int32.self)) : p.load(fromByteOffset: i * 8, as: Int64.self)
                        }
                        return got != want
                    }
                    XCTAssertNil(bad, "\(name) int\(elem * 8) against a \(label)")
                }
            }
        }
    }
}
