import CKernels
import Foundation
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// mlk_copy_strided (Transpose, Slice, Expand): against an element-by-element index walk, for
/// permutations, reversed and stepped slices, broadcasts and element sizes 1-8, on 1 and 2 threads
/// (large copies split into tasks).
final class StridedCopyTests: XCTestCase {
    /// Transpositions of 4-byte elements (the input's unit stride on the output's second-to-last
    /// dimension: NCHW <-> NHWC), which go in 16 x 16 blocks, on both kernel paths, 1 and 2
    /// threads, with ragged edges and several bands of rows per image.
    func testTranspositionsMatchAnIndexWalk() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            for (n, c, hw) in [(1, 96, 3136), (2, 37, 700), (1, 1000, 19), (3, 16, 16), (1, 5, 4), (2, 700, 37)] {
                for toChannelsLast in [true, false] {
                    // Output [n][hw][c] from x[n][c][hw], or [n][c][hw] from x[n][hw][c].
                    let (rows, cols) = toChannelsLast ? (hw, c) : (c, hw)
                    let shape = [n, rows, cols], strides = [c * hw, 1, rows]
                    let x = (0..<(n * c * hw)).map { Float($0) }
                    var want = [Float](repeating: 0, count: x.count)
                    for b in 0..<n { for i in 0..<rows { for k in 0..<cols { want[(b * rows + i) * cols + k] = x[b * c * hw + k * rows + i] } } }
                    for threads: Int32 in [1, 2] {
                        mlk_set_threads(threads)
                        var got = [Float](repeating: -1, count: x.count)
                        mlk_copy_strided(x, &got, 3, shape.map { CLong($0) }, strides.map { CLong($0) }, 4)
                        XCTAssertEqual(got, want, "n \(n) c \(c) hw \(hw) to channels-last \(toChannelsLast), \(threads) thread(s), avx512 \(avx512)")
                    }
                }
            }
        }
    }


    func testStridedCopiesMatchAnIndexWalk() {
        defer { mlk_set_threads(1) }
        var rng = Rng(s: 31)
        for trial in 0..<300 {
            let big = trial % 10 == 0   // 16K-80K elements: several tasks
            let rank = big ? 3 : 1 + rng.next(5)
            let shape = (0..<rank).map { _ in big ? 25 + rng.next(18) : 1 + rng.next(7) }
            let elem = [1, 2, 4, 8, 4, 3][rng.next(6)]
            // Source strides: a transpose (a permutation of the dense strides), with some dimensions
            // broadcast (stride 0) or reversed (negative, starting at the far end).
            var perm = Array(0..<rank)
            for i in stride(from: rank - 1, to: 0, by: -1) { perm.swapAt(i, rng.next(i + 1)) }
            var dense = [Int](repeating: 1, count: rank)
            for d in stride(from: rank - 2, through: 0, by: -1) { dense[d] = dense[d + 1] * shape[perm[d + 1]] }
            var strides = [Int](repeating: 0, count: rank)
            for d in 0..<rank { strides[perm[d]] = dense[d] }
            var offset = 0
            for d in 0..<rank {
                switch rng.next(6) {
                case 0: strides[d] = 0
                case 1: offset += (shape[d] - 1) * strides[d]; strides[d] = -strides[d]
                default: break
                }
            }
            let srcCount = shape.reduce(1, *)
            let src = (0..<(srcCount * elem)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            let count = shape.reduce(1, *)
            var want = [UInt8](repeating: 0, count: count * elem)
            var idx = [Int](repeating: 0, count: rank)
            for t in 0..<count {
                var off = offset
                for d in 0..<rank { off += idx[d] * strides[d] }
                for b in 0..<elem { want[t * elem + b] = src[off * elem + b] }
                var d = rank - 1
                while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
            }
            for threads: Int32 in [1, 2] {
                mlk_set_threads(threads)
                var got = [UInt8](repeating: 0xAB, count: count * elem)
                src.withUnsafeBytes { s in
                    got.withUnsafeMutableBytes { g in
                        mlk_copy_strided(s.baseAddress! + offset * elem, g.baseAddress!, Int32(rank), shape.map { CLong($0) },
                                         strides.map { CLong($0) }, Int32(elem))
                    }
                }
                XCTAssertEqual(got, want, "shape \(shape) strides \(strides) elem \(elem), \(threads) thread(s)")
            }
        }
    }
    /// mlk_transpose_bytes (an 8-bit image's NCHW <-> NHWC): 16 x 16 tiles in registers, a
    /// matrix of few rows (an image's three channels) in tiles whose stores overlap, and ragged
    /// edges, against an index walk, on both kernel paths and 1 and 2 threads.
    func testByteTranspositionsMatchAnIndexWalk() {
        defer { mlk_set_threads(1); Executor.preferAVX512(true) }
        for avx512 in [false, true] where !avx512 || Executor.avx512Available {
            Executor.preferAVX512(avx512)
            for (rows, cols) in [(3, 50176), (3, 47), (1, 40), (15, 33), (16, 16), (24, 3136), (3136, 24), (37, 50), (144, 49)] {
                let x = (0..<(rows * cols)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 251) }
                var want = [UInt8](repeating: 0, count: x.count)
                for i in 0..<rows { for k in 0..<cols { want[k * rows + i] = x[i * cols + k] } }
                for threads: Int32 in [1, 2] {
                    mlk_set_threads(threads)
                    var got = [UInt8](repeating: 0xAA, count: x.count)
                    mlk_transpose_bytes(rows, cols, x, &got)
                    XCTAssertEqual(got, want, "\(rows) x \(cols), \(threads) thread(s), avx512 \(avx512)")
                }
            }
        }
    }
}
