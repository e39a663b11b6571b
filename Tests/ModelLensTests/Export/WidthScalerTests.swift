import Foundation
import ModelAnalysis
import ModelImport
import ModelIR
import ModelTransform
import ModelLensTestSupport
import XCTest

final class WidthScalerTests: XCTestCase {
    let profile = try! HardwareProfile.resolve(HardwareProfile.defaultID)
    var out: String!

    override func setUp() {
        out = FileManager.default.temporaryDirectory.appendingPathComponent("scaled-\(UUID().uuidString).onnx").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: out) }

    func testTinyCNNAtHalfWidth() throws {
        _ = try WidthScaler.scale(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, width: 0.5, output: out)
        let m = try ModelImporter.load(out)
        let g = m.graph
        XCTAssertEqual(g.values[g.value(named: "conv1.w")!].constant?.shape, [4, 3, 3, 3])
        XCTAssertEqual(g.values[g.value(named: "dw.w")!].constant?.shape, [4, 1, 3, 3])
        XCTAssertEqual(g.nodes.first { $0.name == "dwconv" }?.int("group"), 4, "depthwise follows its input")
        XCTAssertEqual(g.values[g.value(named: "fc.w")!].constant?.shape, [10, 4], "the classifier keeps its 10 outputs")
        XCTAssertEqual(g.values[g.outputs[0]].type.shape.dims?.last, .known(10))
        XCTAssertEqual(m.warnings, [])
        let r = ModelAnalyzer.analyze(m, profile: profile)
        XCTAssertEqual(r.totals.macs, 4 * 27 * 32 * 32 + 4 * 9 * 16 * 16 + 40)
        XCTAssertEqual(r.patterns.depthwiseConvs, 1)
        XCTAssertEqual(r.patterns.residualConnections, 1)
    }

    func testResNet50HalfWidthQuartersTheMACs() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/resnet50.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run Tools/export-torchvision.py") }
        _ = try WidthScaler.scale(path, width: 0.5, output: out)
        let full = ModelAnalyzer.analyze(try ModelImporter.load(path), profile: profile)
        let half = ModelAnalyzer.analyze(try ModelImporter.load(out), profile: profile)
        let ratio = Double(half.totals.macs) / Double(full.totals.macs)
        XCTAssertEqual(ratio, 0.25, accuracy: 0.02, "MACs scale with width squared (the stem's 3 inputs and the 1000 outputs stay)")
        XCTAssertEqual(half.patterns.residualConnections, 16)
        XCTAssertEqual(half.model.graph.nodes.count, full.model.graph.nodes.count)
    }

    func testUnscalableModelWritesNothing() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/shufflenet_v2_x1_0.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run Tools/export-torchvision.py") }
        XCTAssertThrowsError(try WidthScaler.scale(path, width: 0.5, output: out)) { e in
            XCTAssertTrue("\(e)".contains("cannot follow channels"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Widths above 1 repeat channels: MACs grow with the square of the width.
    func testWideningRepeatsChannels() throws {
        _ = try WidthScaler.scale(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, width: 2, output: out)
        let m = try ModelImporter.load(out)
        let g = m.graph
        XCTAssertEqual(g.values[g.value(named: "conv1.w")!].constant?.shape, [16, 3, 3, 3])
        XCTAssertEqual(g.values[g.value(named: "fc.w")!].constant?.shape, [10, 16])
        let r = ModelAnalyzer.analyze(m, profile: profile)
        XCTAssertEqual(r.totals.macs, 16 * 27 * 32 * 32 + 16 * 9 * 16 * 16 + 160)
    }
}
