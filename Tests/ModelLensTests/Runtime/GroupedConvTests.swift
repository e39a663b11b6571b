import ModelIR
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// NCHW grouped convolutions (RegNet, ResNeXt: 3-32 channels a group, as many outputs or twice as
/// many) through the executor against a direct sum written here: the direct kernel for groups of
/// up to 16 outputs and the im2col tiles beyond (and on the portable path), on small and large
/// planes (down to 5 columns), with pads, strides 1 and 2, on 1 and 2 threads.
final class GroupedConvTests: XCTestCase {
    func testGroupedConvolutionsMatchADirectSum() throws {
        var rng = Rng(s: 17)
        defer { Executor.preferAVX512(true) }
        // The last 6 trials have planes of at most 8 columns (RegNet's 7x7), which the direct
        // kernel takes two rows at a time: odd and even heights, strides 1 and 2.
        for trial in 0..<26 {
            let narrow = trial >= 20
            let groups = 2 + rng.next(5), per = [8, 16, 4, 3, 32][trial % 5], k = [3, 5, 1][trial % 3]
            let outPer = per * (trial % 4 == 3 ? 2 : 1)
            let stride = narrow ? 1 + trial % 2 : 1 + rng.next(2)
            let cin = groups * per, cout = groups * outPer, h = narrow ? [7, 8, 14, 13, 5, 16][trial - 20] : 5 + rng.next(40)
            let wd = narrow ? [7, 8, 14, 15, 6, 16][trial - 20] : 5 + rng.next(40)
            let pad = k / 2
            let oh = (h + 2 * pad - k) / stride + 1, ow = (wd + 2 * pad - k) / stride + 1
            let g = Graph(name: "grouped")
            let x = g.addValue(name: "x", type: TensorType(dtype: .float32, shape: Shape(known: [1, cin, h, wd])))
            g.inputs = [x]
            let wv = (0..<(cout * per * k * k)).map { _ in rng.float() }, bv = (0..<cout).map { _ in rng.float() }
            let w = g.addValue(name: "w", type: TensorType(dtype: .float32, shape: Shape(known: [cout, per, k, k])))
            let b = g.addValue(name: "b", type: TensorType(dtype: .float32, shape: Shape(known: [cout])))
            g[w].constant = TensorData(dtype: .float32, shape: [cout, per, k, k], storage: .owned(wv.flatMap { withUnsafeBytes(of: $0, Array.init) }))
            g[b].constant = TensorData(dtype: .float32, shape: [cout], storage: .owned(bv.flatMap { withUnsafeBytes(of: $0, Array.init) }))
            let y = g.addValue(name: "y", type: TensorType(dtype: .float32, shape: Shape(known: [1, cout, oh, ow])))
            g.nodes.append(Node(name: "conv", op: .conv, sourceOp: "Conv", inputs: [x, w, b], outputs: [y],
                                attributes: ["kernel_shape": .ints([k, k]), "strides": .ints([stride, stride]), "group": .int(groups),
                                             "pads": .ints([pad, pad, pad, pad])]))
            g.outputs = [y]
            let model = Model(format: Model.Format(rawValue: "onnx"), path: "grouped", fileSize: 0, graph: g)
            let xv = (0..<(cin * h * wd)).map { _ in rng.float() }
            var want = [Double](repeating: 0, count: cout * oh * ow)
            for o in 0..<cout {
                let gi = o / outPer
                for r in 0..<oh {
                    for c in 0..<ow {
                        var s = Double(bv[o])
                        for ci in 0..<per {
                            for kh in 0..<k {
                                for kw in 0..<k {
                                    let ih = r * stride - pad + kh, iw = c * stride - pad + kw
                                    guard ih >= 0, ih < h, iw >= 0, iw < wd else { continue }
                                    s += Double(wv[((o * per + ci) * k + kh) * k + kw]) * Double(xv[((gi * per + ci) * h + ih) * wd + iw])
                                }
                            }
                        }
                        want[(o * oh + r) * ow + c] = s
                    }
                }
            }
            var results: [[Float]] = []
            for (threads, avx512) in [(1, true), (2, true), (1, false)] {
                Executor.preferAVX512(avx512)
                let got = try XCTUnwrap(try Executor(model: model, threads: threads).run(["x": .make(xv, shape: [1, cin, h, wd])])["y"])
                let worst = zip(got.toFloats(), want).map { abs(Double($0) - $1) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "\(groups) groups of \(per) -> \(outPer), \(k)x\(k) stride \(stride) on \(h)x\(wd), avx512 \(avx512)")
                results.append(got.toFloats())
            }
            XCTAssertEqual(results[0], results[1], "1 and 2 threads differ")
        }
    }
}
