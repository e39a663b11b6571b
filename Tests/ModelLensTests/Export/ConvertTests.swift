import Foundation
import ModelAnalysis
import ModelExport
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// Conversions checked by the reference runtimes: Tools/verify-conversion.py runs the source
/// with its runtime (onnxruntime / ai-edge-litert) and the converted file with the other on
/// the same random inputs, and runs onnx.checker on .onnx outputs.
final class ConvertTests: XCTestCase {
    static let tolerance = 1e-4
    static var python: URL { TestSupport.root.appendingPathComponent(".venv/bin/python") }

    var outDir: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: ConvertTests.python.path) else {
            throw XCTSkip("no .venv: run `make test` (Tools/setup.sh installs onnxruntime and ai-edge-litert)")
        }
        outDir = FileManager.default.temporaryDirectory.appendingPathComponent("modellens-convert-\(getpid())-\(name.hashValue)")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let outDir { try? FileManager.default.removeItem(at: outDir) }
    }

    func model(_ relative: String) throws -> String {
        let p = TestSupport.root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("missing \(p): run `make test`") }
        return p
    }

    /// Imports with every symbolic input size fixed (to `shape`, or 1), then converts.
    @discardableResult
    func convert(_ src: String, _ dst: String, shape: [Int]? = nil) throws -> ConversionReport {
        var m = try ModelImporter.load(src)
        var shapes: [String: Shape] = [:]
        for id in m.graph.inputs where m.graph.values[id].constant == nil {
            let v = m.graph.values[id]
            if let dims = v.type.shape.dims, !v.type.shape.isConcrete { shapes[v.name] = Shape(known: shape ?? dims.map { $0.value ?? 1 }) }
        }
        if !shapes.isEmpty { m = try ModelImporter.load(src, options: .init(inputShapes: shapes)) }
        return try Converter.convert(m, to: dst)
    }

    /// Runs Tools/verify-conversion.py; returns its JSON.
    func verify(_ src: String, _ dst: String, shape: [Int]? = nil, extra: [String] = []) throws -> [String: Any] {
        let p = Process()
        p.executableURL = ConvertTests.python
        p.arguments = [TestSupport.root.appendingPathComponent("Tools/verify-conversion.py").path, src, dst] + (shape.map { ["--shape", $0.map(String.init).joined(separator: ",")] } ?? []) + extra
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        group.wait()
        let errData = errBox.data
        guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            let tail = String(decoding: errData, as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
            throw XCTSkip("verify-conversion.py failed for \(dst): \(tail)")
        }
        return obj
    }

    /// Every output within max(1e-4, 2 x the source runtime's own spread) relative, or under
    /// 1e-6 absolute (outputs whose values are themselves near zero).
    func assertMatches(_ result: [String: Any], _ label: String, exact: Bool = false) -> [String] {
        var lines: [String] = []
        let outputs = result["outputs"] as? [[String: Any]] ?? []
        XCTAssertFalse(outputs.isEmpty, "\(label): no outputs compared")
        for (k, o) in outputs.enumerated() {
            guard let rel = o["relative"] as? Double, let abs = o["maxAbs"] as? Double else {
                XCTFail("\(label) output \(k): shapes differ \(o)")
                continue
            }
            let spread = o["spread"] as? Double ?? 0
            lines.append(String(format: "%@ output %d: max abs %.3g, relative %.3g (source spread %.3g)", label, k, abs, rel, spread))
            if exact {
                XCTAssertEqual(abs, 0, "\(label) output \(k): a same-format rewrite must give identical outputs")
            } else {
                XCTAssertTrue(rel <= max(ConvertTests.tolerance, 2 * spread) || abs <= 1e-6,
                              "\(label) output \(k): relative difference \(rel) (max abs \(abs), source spread \(spread))")
            }
        }
        return lines
    }

    func testONNXRoundTripIsExact() throws {
        for rel in ["SampleModels/tiny_cnn.onnx", "SampleModels/tiny_cnn_qdq.onnx", ".models/torchvision/mobilenet_v2.onnx",
                    ".models/rapidocr/rapidocr_onnxruntime__models__ch_ppocr_mobile_v2.0_cls_infer.onnx"] {
            let src = try model(rel)
            let dst = outDir.appendingPathComponent((rel as NSString).lastPathComponent).path
            let m = try ModelImporter.load(src)
            try Converter.convert(m, to: dst)
            let back = try ModelImporter.load(dst)
            XCTAssertEqual(back.graph.nodes.map(\.sourceOp), m.graph.nodes.map(\.sourceOp), rel)
            XCTAssertEqual(back.opsets, m.opsets, rel)
            let r = try verify(src, dst, shape: rel.contains("cls") ? [1, 3, 48, 192] : nil)
            XCTAssertEqual(r["checker"] as? String, "passed", rel)
            _ = assertMatches(r, rel, exact: true)
        }
    }

    func testExternalData() throws {
        // Weights past the threshold go to OUT.data (ONNX external data); onnxruntime reads them.
        let src = try model(".models/torchvision/mobilenet_v2.onnx")
        let m = try ModelImporter.load(src)
        let dst = outDir.appendingPathComponent("external.onnx").path
        var w = ONNXWriter(opsets: m.opsets)
        w.externalThreshold = 1_000_000
        try w.write(m.graph, to: dst)
        let model = (try FileManager.default.attributesOfItem(atPath: dst)[.size] as? Int) ?? 0
        let data = (try FileManager.default.attributesOfItem(atPath: dst + ".data")[.size] as? Int) ?? 0
        XCTAssertLessThan(model, 200_000, "the .onnx holds the graph, not the weights")
        XCTAssertGreaterThan(data, 13_000_000)
        let r = try verify(src, dst)
        XCTAssertEqual(r["checker"] as? String, "passed")
        _ = assertMatches(r, "external data", exact: true)
    }

    func testTFLiteRoundTripIsExact() throws {
        let dir = TestSupport.models.appendingPathComponent("mediapipe")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tflite") }.sorted()) ?? []
        guard files.count == 14 else { throw XCTSkip("the 14 mediapipe models are missing: run `make test`") }
        var checked = 0
        for f in files + ["../../SampleModels/mobilenet_int8.tflite"] {
            let src = dir.appendingPathComponent(f).standardized.path
            let dst = outDir.appendingPathComponent((f as NSString).lastPathComponent).path
            let m = try ModelImporter.load(src)
            try Converter.convert(m, to: dst)
            let back = try ModelImporter.load(dst)
            // DENSIFY of a constant is stored dense instead (LiteRT refuses DENSIFY on dense data).
            XCTAssertEqual(back.graph.nodes.map(\.sourceOp), m.graph.nodes.map(\.sourceOp).filter { $0 != "DENSIFY" }, f)
            XCTAssertEqual(back.graph.values.filter { $0.quantization != nil || $0.constant?.quantization != nil }.count,
                           m.graph.values.filter { $0.quantization != nil || $0.constant?.quantization != nil }.count, "\(f): quantized tensors")
            if m.graph.nodes.contains(where: { $0.domain == "tflite.custom" }) { continue }  // LiteRT lacks mediapipe's custom ops
            _ = assertMatches(try verify(src, dst), f, exact: true)
            checked += 1
        }
        XCTAssertEqual(checked, 12)
    }

    func testONNXToTFLiteMatchesOnnxruntime() throws {
        var lines: [String] = []
        for (rel, shape) in [(".models/torchvision/mobilenet_v2.onnx", nil), (".models/torchvision/resnet50.onnx", nil),
                             (".models/torchvision/googlenet.onnx", nil), (".models/torchvision/shufflenet_v2_x1_0.onnx", nil),
                             (".models/rapidocr/rapidocr_onnxruntime__models__ch_ppocr_mobile_v2.0_cls_infer.onnx", [1, 3, 48, 192]),
                             // Resize (nearest, doubling) and ConvTranspose -> TRANSPOSE_CONV.
                             (".models/rapidocr/rapidocr_onnxruntime__models__ch_PP-OCRv4_det_infer.onnx", [1, 3, 320, 320]) as (String, [Int]?)] {
            let src = try model(rel)
            let stem = ((rel as NSString).lastPathComponent as NSString).deletingPathExtension
            let dst = outDir.appendingPathComponent(stem + ".tflite").path
            let report = try convert(src, dst, shape: shape)
            let r = try verify(src, dst, shape: shape)
            lines += assertMatches(r, stem)
            let m = try ModelImporter.load(src)
            let edges = m.graph.inputs.filter { m.graph.values[$0].constant == nil }.count + m.graph.outputs.count
            XCTAssertLessThanOrEqual(r["transposes"] as? Int ?? 99, edges, "\(stem): Transpose ops in the output")
            XCTAssertEqual(report.transposesInserted, r["transposes"] as? Int, stem)

            // ONNX -> TFLite -> ONNX keeps the MACs; parameters differ only by folded BatchNorm statistics.
            let back = outDir.appendingPathComponent(stem + "_back.onnx").path
            try convert(dst, back)
            let hw = HardwareProfile.builtIn()[0]
            func totals(_ p: String) throws -> Totals { ModelAnalyzer.analyze(try ModelImporter.load(p, options: .init(inputShapes: shape.map { [m.graph.values[m.graph.inputs[0]].name: Shape(known: $0)] } ?? [:])), profile: hw, bindings: ["batch": 1]).totals }
            let a = try totals(src), b = try totals(dst), c = try totals(back)
            XCTAssertEqual(a.macs, b.macs, "\(stem): MACs ONNX vs TFLite")
            XCTAssertEqual(b.macs, c.macs, "\(stem): MACs TFLite vs ONNX again")
            // The analysis counts index constants (axes, shapes) as parameters too, and those differ
            // between the formats (MEAN's axes are a tensor, ReduceMean's an attribute), as do scalars
            // (fused RELU6 becomes Clip with two); weights (constants of more than one element) do not.
            func floatWeights(_ p: String) throws -> Int {
                try ModelImporter.load(p).graph.values.filter { $0.constant?.dtype.isFloatingPoint == true && ($0.constant?.elementCount ?? 0) > 1 }.reduce(0) { $0 + ($1.constant?.elementCount ?? 0) }
            }
            XCTAssertEqual(try floatWeights(dst), try floatWeights(back), "\(stem): floating-point weights TFLite vs ONNX again")
            lines.append("\(stem): MACs \(a.macs) / \(b.macs) / \(c.macs); params \(a.params) / \(b.params) / \(c.params); \(r["ops"] ?? "?") TFLite ops")
        }
        print(lines.joined(separator: "\n"))
    }

    func testTFLiteToONNXMatchesLiteRT() throws {
        let dir = TestSupport.models.appendingPathComponent("mediapipe")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tflite") }.sorted()) ?? []
        guard files.count == 14 else { throw XCTSkip("the 14 mediapipe models are missing: run `make test`") }
        var lines: [String] = [], converted = 0, refused: [String] = []
        for f in files {
            let src = dir.appendingPathComponent(f).path
            let dst = outDir.appendingPathComponent((f as NSString).deletingPathExtension + ".onnx").path
            let m = try ModelImporter.load(src)
            if let custom = m.graph.nodes.first(where: { $0.domain == "tflite.custom" }) {
                // Named in the error, and nothing written.
                XCTAssertThrowsError(try convert(src, dst)) { e in XCTAssertTrue("\(e)".contains(custom.sourceOp), "\(e)") }
                XCTAssertFalse(FileManager.default.fileExists(atPath: dst))
                refused.append(custom.sourceOp)
                continue
            }
            let report = try convert(src, dst)
            let r = try verify(src, dst)
            XCTAssertEqual(r["checker"] as? String, "passed", f)
            lines += assertMatches(r, f)
            let a = ModelAnalyzer.analyze(m, profile: HardwareProfile.builtIn()[0]).totals
            let b = ModelAnalyzer.analyze(try ModelImporter.load(dst), profile: HardwareProfile.builtIn()[0]).totals
            XCTAssertEqual(a.macs, b.macs, "\(f): MACs")
            // Detection heads reshape NHWC conv outputs into anchors: that order needs NHWC, so
            // each head gets a Transpose in ONNX (palm detection: 4, pose detection: 6).
            lines.append("\(f): \(report.transposesInserted) Transpose ops inserted, \(report.nodesAfter) nodes")
            converted += 1
        }
        XCTAssertEqual(converted, 11)
        XCTAssertEqual(refused.count, 3)
        print(lines.joined(separator: "\n"))
    }

    func testBadInputLeavesNoFile() throws {
        // An op with no TFLite counterpart: the error names the node and op; nothing is written.
        let src = try model("SampleModels/tiny_cnn.onnx")
        let m = try ModelImporter.load(src, options: .init(inputShapes: ["input": Shape(known: [1, 3, 32, 32])]))
        m.graph.nodes[m.graph.nodes.count - 1].sourceOp = "Einsum"
        m.graph.nodes[m.graph.nodes.count - 1].op = OpKind("Einsum")
        let dst = outDir.appendingPathComponent("x.tflite").path
        XCTAssertThrowsError(try Converter.convert(m, to: dst)) { e in XCTAssertTrue("\(e)".contains("Einsum"), "\(e)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dst))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outDir.path), [], "no temporary file left behind")
        // Through the CLI: a truncated model, a wrong extension, an unwritable place.
        let bad = try TestSupport.run(["convert", TestSupport.samples.appendingPathComponent("bad/cycle.onnx").path, dst])
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dst))
        let ext = try TestSupport.run(["convert", src, outDir.appendingPathComponent("x.pb").path])
        XCTAssertEqual(ext.status, 1)
        XCTAssertTrue(ext.stderr.contains(".onnx or .tflite"), ext.stderr)
        let nowhere = try TestSupport.run(["convert", src, "/nonexistent-dir/x.tflite"])
        XCTAssertEqual(nowhere.status, 1, nowhere.stderr)
        XCTAssertTrue(nowhere.stderr.contains("/nonexistent-dir/x.tflite"), nowhere.stderr)
    }

    func testCLIVerifyAndJSON() throws {
        let src = try model("SampleModels/tiny_cnn.onnx")
        let dst = outDir.appendingPathComponent("tiny.tflite").path
        let r = try TestSupport.run(["convert", src, dst, "--verify", "--json"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let v = obj?["verification"] as? [String: Any]
        XCTAssertEqual(v?["passed"] as? Bool, true, r.stdout)
        XCTAssertEqual(obj?["transposesInserted"] as? Int, 1)
        XCTAssertNotNil((obj?["opsMapped"] as? [String: Int])?["Conv -> CONV_2D"])
        // NHWC at the edges: no Transpose at all, and still equal (the check transposes the inputs).
        let nhwc = try TestSupport.run(["convert", src, dst, "--verify", "--json", "--keep-io-layout", "false"], timeout: 120)
        XCTAssertEqual(nhwc.status, 0, nhwc.stderr)
        let o2 = try JSONSerialization.jsonObject(with: Data(nhwc.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(o2?["transposesInserted"] as? Int, 0)
        XCTAssertEqual((o2?["verification"] as? [String: Any])?["passed"] as? Bool, true)
        let lr = try verify(src, dst, shape: nil, extra: ["--layout-changed"])
        XCTAssertEqual(lr["transposes"] as? Int, 0)
        _ = assertMatches(lr, "tiny_cnn NHWC")
        // A tolerance nothing can meet fails the command and removes the output.
        let strict = try TestSupport.run(["convert", src, dst, "--verify", "--tolerance", "1e-30"], timeout: 120)
        XCTAssertEqual(strict.status, 1, strict.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dst))
    }
}
