import Foundation
import ModelAnalysis
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// Costs and structure against published figures and independent tools.
final class AnalysisTests: XCTestCase {
    let profile = try! HardwareProfile.resolve(HardwareProfile.defaultID)

    func torchvision(_ name: String) throws -> AnalysisReport {
        let path = TestSupport.models.appendingPathComponent("torchvision/\(name).onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run Tools/export-torchvision.py (make test does)") }
        return ModelAnalyzer.analyze(try ModelImporter.load(path), profile: profile)
    }

    static func convAndFCMACs(_ r: AnalysisReport) -> Int {
        r.nodes.filter { ["Conv", "Gemm", "MatMul", "FullyConnected"].contains($0.canonical) }.reduce(0) { $0 + $1.macs }
    }

    /// torchvision's documentation publishes GFLOPS (multiply-accumulates of conv and linear
    /// layers at 224x224) and parameter counts for each classification model.
    func testTorchvisionMACsWithinOnePercentAndParamsExact() throws {
        let published: [(String, Double, Int)] = [
            ("vgg16", 15.47e9, 138_357_544), ("resnet50", 4.09e9, 25_557_032), ("mobilenet_v2", 0.301e9, 3_504_872),
            ("googlenet", 1.498e9, 6_624_904), ("densenet121", 2.834e9, 7_978_856), ("shufflenet_v2_x1_0", 0.145e9, 2_278_604),
        ]
        for (name, macs, params) in published {
            let r = try torchvision(name)
            let ours = Double(Self.convAndFCMACs(r))
            XCTAssertLessThan(abs(ours - macs) / macs, 0.01, "\(name): \(ours) MACs vs published \(macs)")
            XCTAssertEqual(r.totals.params, params, name)
        }
    }

    func testTorchvisionStructure() throws {
        XCTAssertEqual(try torchvision("resnet50").patterns.residualConnections, 16)
        XCTAssertEqual(try torchvision("vgg16").patterns.residualConnections, 0)
        let mnv2 = try torchvision("mobilenet_v2")
        XCTAssertEqual(mnv2.patterns.residualConnections, 10)
        XCTAssertEqual(mnv2.patterns.depthwiseConvs, 17)
        let googlenet = try torchvision("googlenet")
        XCTAssertEqual(googlenet.patterns.branches, 9, "nine Inception modules, each a 4-way branch merged by Concat")
        XCTAssertEqual(googlenet.patterns.residualConnections, 0)
        let densenet = try torchvision("densenet121")
        XCTAssertEqual(densenet.patterns.residualConnections, 0)
        XCTAssertGreaterThanOrEqual(densenet.patterns.denseConcats, 58, "every dense layer concatenates what came before")
        // 16 units, one depthwise conv each in branch 2, plus one in branch 1 of each of the 3 stride-2 units.
        XCTAssertEqual(try torchvision("shufflenet_v2_x1_0").patterns.depthwiseConvs, 16 + 3)
        // MobileNetV3-Small: squeeze-excitation in 9 of its 11 inverted-residual blocks (torchvision's table).
        XCTAssertEqual(try torchvision("mobilenet_v3_small").patterns.squeezeExcitations, 9)
        XCTAssertEqual(try torchvision("resnet50").patterns.squeezeExcitations, 0)
        // The skip tensor a residual keeps alive: ResNet50's first identity skip is 256 x 56 x 56 float32.
        let resnet = try torchvision("resnet50")
        let skipBytes = resnet.structure.skips.map { s -> Int in
            let t = resnet.model.graph.values[s.bypassed].type
            return SymCount(product: t.shape.dims ?? []).evaluate(["batch": 1]) * 4
        }
        XCTAssertTrue(skipBytes.contains(256 * 56 * 56 * 4))
    }

    /// Paper 002's networks for k = 100 classes, rebuilt by Tools/make-paper-models.py from its
    /// architecture table: parameters match Table 3; FLOPs differ (Docs/guide/analyze.md explains).
    func testPaper002NetworksMatchTable3Parameters() throws {
        for (name, params, residual, depthwise) in [("mobilenet_v2_k100", 2.35e6, 10, 17), ("sm_v2_k100", 1.54e6, 3, 9)] {
            let path = TestSupport.models.appendingPathComponent("paper/\(name).onnx").path
            guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run Tools/make-paper-models.py (make test does)") }
            let r = ModelAnalyzer.analyze(try ModelImporter.load(path), profile: profile)
            XCTAssertLessThan(abs(Double(r.totals.params) - params) / params, 0.005, "\(name): \(r.totals.params) params")
            XCTAssertEqual(r.patterns.residualConnections, residual, name)
            XCTAssertEqual(r.patterns.depthwiseConvs, depthwise, name)
        }
    }

    /// Scan bodies count once per step; Loop bodies once per (constant) trip.
    func testControlFlowBodiesCountPerIteration() throws {
        let node = URL(fileURLWithPath: NSString(string: TestSupport.root.appendingPathComponent(".venv/lib/python3.11/site-packages/onnx/backend/test/data/node").path).resolvingSymlinksInPath)
        let scanPath = node.appendingPathComponent("test_scan9_sum/model.onnx").path
        guard FileManager.default.fileExists(atPath: scanPath) else { throw XCTSkip("onnx 1.22.0 node tests not installed") }
        // test_scan9_sum: a body adding a [2] state and a [2] slice, over a sequence of 3.
        let scan = ModelAnalyzer.analyze(try ModelImporter.load(scanPath), profile: profile)
        XCTAssertEqual(scan.totals.flops, 3 * 2)
        XCTAssertTrue(scan.nodes[0].tags.contains("scan x 3"), "\(scan.nodes[0].tags)")
    }

    func gemmGraph(weights: [Float], m: Int, n: Int) -> Model {
        let g = Graph(name: "fc")
        let x = g.addValue(name: "x", type: TensorType(dtype: .float32, shape: Shape(known: [1, n])))
        let w = g.addValue(name: "w", type: TensorType(dtype: .float32, shape: Shape(known: [m, n])))
        g.values[w].constant = TensorData(dtype: .float32, shape: [m, n], storage: .owned(weights.withUnsafeBytes { Array($0) }))
        let y = g.addValue(name: "y", type: TensorType(dtype: .float32, shape: .unknownRank))
        g.nodes = [Node(name: "fc", op: .gemm, sourceOp: "Gemm", inputs: [x, w], outputs: [y], attributes: ["transB": .int(1)])]
        g.inputs = [x]; g.outputs = [y]
        try! g.sortTopologically()
        ShapeInference.run(g)
        return Model(format: .onnx, path: "fc", fileSize: 0, graph: g)
    }

    /// A weight built as the sum of two outer products has effective rank 2.
    func testLowRankFindsTheRankOfAFactoredWeight() {
        let m = 64, n = 48
        var w = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { w[i * n + j] = Float(i + 1) * Float(j % 7) + Float((i * 3) % 5) * Float(j + 2) } }
        let r = ModelAnalyzer.analyze(gemmGraph(weights: w, m: m, n: n), profile: profile)
        let (findings, skipped) = LowRank.analyze(r)
        XCTAssertEqual(skipped, [])
        XCTAssertEqual(findings.first?.effectiveRank, 2)
        XCTAssertEqual(findings.first?.paramsSaved, m * n - 2 * (m + n))
    }

    /// Paper 003: zeroing weights in a dense format saves no time. The report says how many MACs a
    /// sparse kernel could skip, and the dense prediction does not change.
    func testZeroWeightsAreReportedButDoNotChangeDensePrediction() {
        let m = 256, n = 512
        let dense = (0..<(m * n)).map { Float(($0 % 13) + 1) * 0.01 }
        let pruned = dense.enumerated().map { $0.offset % 4 < 2 ? 0 : $0.element }   // 2:4 structure
        let a = ModelAnalyzer.analyze(gemmGraph(weights: dense, m: m, n: n), profile: profile)
        let b = ModelAnalyzer.analyze(gemmGraph(weights: pruned, m: m, n: n), profile: profile)
        XCTAssertEqual(a.skippableMACs, 0)
        XCTAssertEqual(b.skippableMACs, m * n / 2)
        XCTAssertEqual(b.nodes[0].weightSparsity, 0.5)
        XCTAssertTrue(b.nodes[0].tags.contains("2:4-sparse"))
        XCTAssertEqual(a.totals.predictedSeconds, b.totals.predictedSeconds)
    }

    // MARK: paper 000, Table 1 (D_F feature-map side, M channels in = out, D_K kernel side)

    func convGraph(df: Int, m: Int, dk: Int, group: Int) -> Model {
        let g = Graph(name: "t")
        let x = g.addValue(name: "x", type: TensorType(dtype: .float32, shape: Shape(known: [1, m, df, df])))
        let wShape = [m, m / group, dk, dk]
        let w = g.addValue(name: "w", type: TensorType(dtype: .float32, shape: Shape(known: wShape)))
        g.values[w].constant = TensorData(dtype: .float32, shape: wShape, storage: .owned([UInt8](repeating: 1, count: Shape.product(wShape)! * 4)))
        let y = g.addValue(name: "y", type: TensorType(dtype: .float32, shape: .unknownRank))
        var n = Node(name: "conv", op: .conv, sourceOp: "Conv", inputs: [x, w], outputs: [y],
                     attributes: ["group": .int(group), "pads": .ints([dk / 2, dk / 2, dk / 2, dk / 2])])
        n.dataLayout = .nchw
        n.kernelLayout = .oihw
        g.nodes = [n]
        g.inputs = [x]
        g.outputs = [y]
        try! g.sortTopologically()
        ShapeInference.run(g)
        return Model(format: .onnx, path: "table1", fileSize: 0, graph: g)
    }

    func testPaper000Table1Formulas() {
        for (df, m, dk) in [(56, 64, 3), (14, 256, 3), (28, 32, 5), (7, 1024, 1)] {
            let std = ModelAnalyzer.analyze(convGraph(df: df, m: m, dk: dk, group: 1), profile: profile)
            let dw = ModelAnalyzer.analyze(convGraph(df: df, m: m, dk: dk, group: m), profile: profile)
            let pw = ModelAnalyzer.analyze(convGraph(df: df, m: m, dk: 1, group: 1), profile: profile)
            // "FLOPs" in the paper are multiply-accumulates.
            XCTAssertEqual(std.totals.macs, df * df * m * m * dk * dk)
            XCTAssertEqual(dw.totals.macs, df * df * m * dk * dk)
            XCTAssertEqual(pw.totals.macs, df * df * m * m)
            // Memory access in elements: input and output feature maps plus the kernel.
            func elements(_ r: AnalysisReport) -> Int { (r.totals.bytesRead + r.totals.bytesWritten) / 4 }
            XCTAssertEqual(elements(std), df * df * 2 * m + dk * dk * m * m)
            XCTAssertEqual(elements(dw), df * df * 2 * m + dk * dk * m)
            XCTAssertEqual(elements(pw), df * df * 2 * m + m * m)
            if dk > 1 {
                XCTAssertEqual(std.nodes[0].tags, ["standard"])
                XCTAssertEqual(dw.nodes[0].tags, ["depthwise"])
            }
            XCTAssertEqual(pw.nodes[0].tags, ["pointwise"])
            // Depthwise convolution has far lower arithmetic intensity than standard.
            if dk > 1 { XCTAssertLessThan(dw.nodes[0].intensity * 10, std.nodes[0].intensity) }
        }
    }

    func testSymbolicBatchStaysSymbolicUntilBound() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        let one = ModelAnalyzer.analyze(model, profile: profile)
        let eight = ModelAnalyzer.analyze(model, profile: profile, bindings: ["batch": 8])
        XCTAssertNil(one.symbolicMACs.constant)
        XCTAssertTrue(one.symbolicMACs.description.contains("batch"), one.symbolicMACs.description)
        XCTAssertEqual(eight.totals.macs, one.totals.macs * 8)
        XCTAssertEqual(eight.totals.params, one.totals.params)
        // conv1 8x3x3x3 over 32x32, depthwise 8x1x3x3 over 16x16, fc 8x10.
        XCTAssertEqual(one.totals.macs, 8 * 27 * 32 * 32 + 8 * 9 * 16 * 16 + 80)
        XCTAssertEqual(one.patterns.residualConnections, 1)
        XCTAssertEqual(one.patterns.depthwiseConvs, 1)
        XCTAssertEqual(one.patterns.foldableBatchNorms, 1)
    }

    func testRealModelsAnalyseAndReportFP16Weights() throws {
        var analysed = 0, fp16 = 0
        for dir in ["mediapipe", "rapidocr", "nudenet", "magika"] {
            let d = TestSupport.models.appendingPathComponent(dir)
            for f in (try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? [] where f.hasSuffix(".onnx") || f.hasSuffix(".tflite") {
                let r = ModelAnalyzer.analyze(try ModelImporter.load(d.appendingPathComponent(f).path), profile: profile)
                XCTAssertGreaterThan(r.totals.flops, 0, f)
                XCTAssertGreaterThan(r.totals.predictedSeconds, 0, f)
                XCTAssertTrue(r.nodes.allSatisfy { $0.predictedSeconds.isFinite && $0.macs >= 0 }, f)
                if r.weightDTypes.keys.contains(where: { $0.hasPrefix("float16") }) { fp16 += 1 }
                analysed += 1
            }
        }
        if analysed == 0 { throw XCTSkip("run Tools/fetch-models.sh") }
        XCTAssertEqual(analysed, 14 + 3 + 1 + 1)
        XCTAssertGreaterThanOrEqual(fp16, 10, "the mediapipe models keep fp16 weights behind DEQUANTIZE")
    }
}
