import ModelIR
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// NCHW convolutions over planes one column wide (magika's 5x1 windows over 512 x 1) run as the
/// same convolution over one row (columnAsRow): against a direct sum written here, with pads,
/// strides and dilations along the column, on 1 and 2 threads.
final class ColumnConvTests: XCTestCase {
    func testConvolutionsOverAColumnMatchADirectSum() throws {
        var rng = Rng(s: 5)
        for trial in 0..<12 {
            let cin = [3, 16, 40][trial % 3], cout = [8, 32, 48][trial % 3], h = 20 + rng.next(60)
            let k = 1 + rng.next(5), stride = 1 + rng.next(2), dil = 1 + rng.next(2)
            let padTop = rng.next(k), padBottom = rng.next(k)
            let span = (k - 1) * dil + 1
            guard h + padTop + padBottom >= span else { continue }
            let oh = (h + padTop + padBottom - span) / stride + 1
            let g = Graph(name: "column")
            let x = g.addValue(name: "x", type: TensorType(dtype: .float32, shape: Shape(known: [1, cin, h, 1])))
            g.inputs = [x]
            let wv = (0..<(cout * cin * k)).map { _ in rng.float() }, bv = (0..<cout).map { _ in rng.float() }
            let w = g.addValue(name: "w", type: TensorType(dtype: .float32, shape: Shape(known: [cout, cin, k, 1])))
            let b = g.addValue(name: "b", type: TensorType(dtype: .float32, shape: Shape(known: [cout])))
            g[w].constant = TensorData(dtype: .float32, shape: [cout, cin, k, 1], storage: .owned(wv.flatMap { withUnsafeBytes(of: $0, Array.init) }))
            g[b].constant = TensorData(dtype: .float32, shape: [cout], storage: .owned(bv.flatMap { withUnsafeBytes(of: $0, Array.init) }))
            let y = g.addValue(name: "y", type: TensorType(dtype: .float32, shape: Shape(known: [1, cout, oh, 1])))
            g.nodes.append(Node(name: "conv", op: .conv, sourceOp: "Conv", inputs: [x, w, b], outputs: [y],
                                attributes: ["kernel_shape": .ints([k, 1]), "strides": .ints([stride, 1]), "dilations": .ints([dil, 1]),
                                             "pads": .ints([padTop, 0, padBottom, 0])]))
            g.outputs = [y]
            let model = Model(format: Model.Format(rawValue: "onnx"), path: "column", fileSize: 0, graph: g)
            let xv = (0..<(cin * h)).map { _ in rng.float() }
            var want = [Double](repeating: 0, count: cout * oh)
            for o in 0..<cout {
                for r in 0..<oh {
                    var s = Double(bv[o])
                    for c in 0..<cin {
                        for t in 0..<k {
                            let ih = r * stride - padTop + t * dil
                            if ih >= 0 && ih < h { s += Double(wv[(o * cin + c) * k + t]) * Double(xv[c * h + ih]) }
                        }
                    }
                    want[o * oh + r] = s
                }
            }
            var results: [[Float]] = []
            for threads in [1, 2] {
                let out = try Executor(model: model, threads: threads).run(["x": .make(xv, shape: [1, cin, h, 1])])
                let got = try XCTUnwrap(out["y"])
                XCTAssertEqual(got.shape, [1, cout, oh, 1])
                let worst = zip(got.toFloats(), want).map { abs(Double($0) - $1) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "\(cin)->\(cout) over \(h)x1, k \(k) stride \(stride) dilation \(dil) pads \(padTop),\(padBottom)")
                results.append(got.toFloats())
            }
            XCTAssertEqual(results[0], results[1], "1 and 2 threads differ")
        }
    }
}
