import Foundation
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// The .onnx files shipped in rapidocr-onnxruntime 1.4.4, nudenet 3.4.2 and
/// magika 1.0.3 import; counts, I/O and symbols match Python `onnx`.
final class ONNXRealModelTests: XCTestCase {
    func testRealONNXModelsMatchPythonONNX() throws {
        let refs = try TestSupport.reference("onnx-models.json")
        XCTAssertEqual(refs.count, 5, "3 rapidocr + 1 nudenet + 1 magika models")
        var inPlace = 0
        for ref in refs {
            let path = ref["path"] as! String
            let short = (path as NSString).lastPathComponent
            let model = try ModelImporter.load(path)
            let g = model.graph
            XCTAssertEqual(g.nodes.count, ref["nodeCount"] as! Int, short)
            XCTAssertEqual(ModelSummary(model).opHistogram, ref["opHistogram"] as! [String: Int], short)
            // Weights in initializers and (rapidocr) Constant nodes both count.
            XCTAssertEqual(ModelSummary(model).parameterCount, ref["parameterCount"] as! Int, short)
            for (ids, key) in [(g.inputs, "inputs"), (g.outputs, "outputs")] {
                let expected = ref[key] as! [[String: Any]]
                XCTAssertEqual(ids.map { g.values[$0].name }, expected.map { $0["name"] as! String }, "\(short) \(key)")
                for (id, e) in zip(ids, expected) {
                    XCTAssertEqual(g.values[id].type.dtype.rawValue, e["dtype"] as? String, "\(short) \(key)")
                    // Symbols (e.g. rapidocr's dynamic height/width) are preserved by name.
                    if key == "inputs" {
                        XCTAssertEqual(TestSupport.encode(g.values[id].type.shape), TestSupport.encode(e["shape"]), "\(short) input")
                    }
                }
            }
            let contradictions = model.warnings.filter { $0.contains("the file declares") }
            XCTAssertEqual(contradictions, [], short)
            // Large float weights are read where they lie in the mapped file, and read right.
            let sums = ref["rawInitializerSums"] as! [String: Double]
            inPlace += sums.count
            let byName = Dictionary(g.values.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for (name, expected) in sums {
                guard let data = byName[name]?.constant else { XCTFail("\(short): no initializer \(name)"); continue }
                XCTAssertTrue(data.isFileBacked, "\(short) \(name): not read in place from the file")
                let sum = data.withBytes { raw in
                    var s = 0.0
                    for i in 0..<(raw.count / 4) { s += Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)) }
                    return s
                }
                XCTAssertEqual(sum, expected, accuracy: 1e-9 * max(1, abs(expected)), "\(short) \(name)")
            }
        }
        XCTAssertGreaterThan(inPlace, 0, "no initializer large enough to be read in place")
    }

    func testSymbolsFlowAndInputShapesCanBeFixed() throws {
        let dir = TestSupport.models.appendingPathComponent("rapidocr")
        guard let det = try? FileManager.default.contentsOfDirectory(atPath: dir.path).first(where: { $0.contains("det") }) else {
            throw XCTSkip("run Tools/fetch-models.sh")
        }
        let path = dir.appendingPathComponent(det).path
        let symbolic = try ModelImporter.load(path)
        let input = symbolic.graph.values[symbolic.graph.inputs[0]]
        XCTAssertNotNil(input.type.shape.dims?.first { if case .symbol = $0 { return true }; return false }, "rapidocr det has symbolic input dims")
        // The batch symbol reaches the output unchanged.
        let out = symbolic.graph.values[symbolic.graph.outputs[0]]
        XCTAssertEqual(out.type.shape.dims?.first, input.type.shape.dims?.first)

        let fixed = try ModelImporter.load(path, options: .init(inputShapes: [input.name: Shape(known: [1, 3, 640, 640])]))
        let unresolved = fixed.graph.nodes.flatMap(\.outputs).filter { fixed.graph.values[$0].type.shape.concrete == nil }
        XCTAssertEqual(unresolved.count, 0, "with a concrete input every value of rapidocr det gets a concrete shape: \(unresolved.prefix(5).map { fixed.graph.values[$0].name })")
        XCTAssertEqual(fixed.graph.values[fixed.graph.outputs[0]].type.shape, Shape(known: [1, 1, 640, 640]))
    }

    /// With concrete input shapes, every value of every real ONNX model gets a
    /// concrete shape (shape arithmetic such as Shape -> Cast -> Div -> Range is folded).
    func testConcreteInputsGiveEveryValueAConcreteShape() throws {
        let cases: [(dir: String, match: String, input: String, shape: [Int], output: [Int])] = [
            ("rapidocr", "det", "x", [1, 3, 640, 640], [1, 1, 640, 640]),
            ("rapidocr", "rec", "x", [1, 3, 48, 320], [1, 40, 6625]),
            ("rapidocr", "cls", "x", [1, 3, 48, 192], [1, 2]),
            ("nudenet", "320n", "images", [1, 3, 320, 320], [1, 22, 2100]),
            ("magika", "model", "bytes", [1, 2048], [1, 214]),
        ]
        for c in cases {
            let dir = TestSupport.models.appendingPathComponent(c.dir)
            guard let f = try? FileManager.default.contentsOfDirectory(atPath: dir.path).first(where: { $0.contains(c.match) && $0.hasSuffix(".onnx") }) else {
                throw XCTSkip("run Tools/fetch-models.sh")
            }
            let model = try ModelImporter.load(dir.appendingPathComponent(f).path, options: .init(inputShapes: [c.input: Shape(known: c.shape)]))
            let g = model.graph
            let open = g.values.filter { $0.isTensor && !$0.name.isEmpty && $0.type.shape.concrete == nil }
            XCTAssertEqual(open.map(\.name), [], "\(f): values left without a concrete shape")
            XCTAssertEqual(g.values[g.outputs[0]].type.shape, Shape(known: c.output), f)
            XCTAssertEqual(model.warnings, [], f)
        }
    }
}
