import ModelIR
import ModelRuntime
import XCTest

/// TFLite PACK and UNPACK (as in Keras EfficientNet's squeeze-excitation reshapes): numpy.stack
/// and its inverse, written out index by index here, and integers of mixed width packed as the
/// output's declared type.
final class PackKernelTests: XCTestCase {
    func testPackStacksAndUnpackSplitsAlongAnAxis() throws {
        for axis in [0, 1, 2, -1] {
            let g = Graph(name: "pack")
            let f32 = { (shape: [Int]) in TensorType(dtype: .float32, shape: Shape(known: shape)) }
            let a = g.addValue(name: "a", type: f32([2, 3])), b = g.addValue(name: "b", type: f32([2, 3]))
            g.inputs = [a, b]
            let ax = (axis + 3) % 3
            var packedShape = [2, 3]
            packedShape.insert(2, at: ax)
            let packed = g.addValue(name: "packed", type: f32(packedShape))
            g.nodes.append(Node(name: "pack", op: OpKind("Pack"), sourceOp: "PACK", inputs: [a, b], outputs: [packed],
                                attributes: ["axis": .int(axis)]))
            let u0 = g.addValue(name: "u0", type: f32([2, 3])), u1 = g.addValue(name: "u1", type: f32([2, 3]))
            g.nodes.append(Node(name: "unpack", op: OpKind("Unpack"), sourceOp: "UNPACK", inputs: [packed], outputs: [u0, u1],
                                attributes: ["axis": .int(axis), "num": .int(2)]))
            g.outputs = [packed, u0, u1]
            let model = Model(format: Model.Format(rawValue: "tflite"), path: "pack", fileSize: 0, graph: g)
            let av: [Float] = [1, 2, 3, 4, 5, 6], bv: [Float] = [10, 20, 30, 40, 50, 60]
            let out = try Executor(model: model).run(["a": .make(av, shape: [2, 3]), "b": .make(bv, shape: [2, 3])])
            let y = try XCTUnwrap(out["packed"])
            XCTAssertEqual(y.shape, packedShape, "axis \(axis)")
            // y[..., k, ...] = (a, b)[k] at the other indices.
            for i in 0..<2 {
                for j in 0..<3 {
                    for (k, src) in [av, bv].enumerated() {
                        var idx = [i, j]
                        idx.insert(k, at: ax)
                        let flat = (idx[0] * packedShape[1] + idx[1]) * packedShape[2] + idx[2]
                        XCTAssertEqual(y.toFloats()[flat], src[i * 3 + j], "axis \(axis) at \(idx)")
                    }
                }
            }
            XCTAssertEqual(out["u0"]?.toFloats(), av, "axis \(axis)")
            XCTAssertEqual(out["u1"]?.toFloats(), bv, "axis \(axis)")
        }
    }
}
