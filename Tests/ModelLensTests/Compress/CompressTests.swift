import Foundation
import ModelAnalysis
import ModelCompress
import ModelExport
import ModelImport
import ModelIR
import ModelLensTestSupport
import ModelRuntime
import XCTest

/// `modellens compress`: what each method writes (int8 QDQ included) runs in the reference
/// runtimes as on our executor; splits of weights that are exactly of low rank change nothing; pruning removes
/// the smallest weights and exactly the share asked; bad requests leave no file.
final class CompressTests: XCTestCase {
    var outDir: URL!

    override func setUpWithError() throws {
        outDir = FileManager.default.temporaryDirectory.appendingPathComponent("modellens-compress-\(getpid())-\(name.hashValue)")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let outDir { try? FileManager.default.removeItem(at: outDir) }
    }

    func path(_ relative: String) throws -> String {
        let p = TestSupport.root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("missing \(p): run `make test`") }
        return p
    }

    /// Sets a constant to the product of seeded random factors: exactly rank `rank` as an
    /// m x n matrix (`cp`: false) or as a 4-way CP tensor (`cp`: true).
    func makeLowRank(_ m: Model, _ name: String, rank: Int, cp: Bool) throws {
        let id = try XCTUnwrap(m.graph.value(named: name))
        let shape = try XCTUnwrap(m.graph.values[id].constant).shape
        var rng = Rng(s: 7)
        var out = [Float](repeating: 0, count: shape.reduce(1, *))
        if cp {
            let f = shape.map { d in (0..<(d * rank)).map { _ in rng.float() } }
            var i = 0
            for a in 0..<shape[0] { for b in 0..<shape[1] { for c in 0..<shape[2] { for e in 0..<shape[3] {
                var s: Float = 0
                for r in 0..<rank { s += f[0][a * rank + r] * f[1][b * rank + r] * f[2][c * rank + r] * f[3][e * rank + r] }
                out[i] = s
                i += 1
            } } } }
        } else {
            let (rows, cols) = (shape[0], shape.dropFirst().reduce(1, *))
            let u = (0..<(rows * rank)).map { _ in rng.float() }, v = (0..<(rank * cols)).map { _ in rng.float() }
            for i in 0..<rows { for j in 0..<cols { for r in 0..<rank { out[i * cols + j] += u[i * rank + r] * v[r * cols + j] } } }
        }
        m.graph.values[id].constant = TensorData(dtype: .float32, shape: shape, storage: .owned(out.withUnsafeBytes { Array($0) }))
    }

    /// Largest output difference relative to the reference's largest magnitude.
    func relativeDifference(_ a: Model, _ b: Model) throws -> Double {
        let input = a.graph.values[a.graph.inputs[0]]
        let shape = input.type.shape.dims!.map { $0.value ?? 1 }
        var rng = Rng(s: 3)
        let x = RTensor.allocate(shape, .float32)
        for i in 0..<x.count { x.floats[i] = rng.float() }
        let ya = try Executor(model: a).run([input.name: x]), yb = try Executor(model: b).run([b.graph.values[b.graph.inputs[0]].name: x])
        let p = try XCTUnwrap(ya[a.graph.values[a.graph.outputs[0]].name]).toFloats()
        let q = try XCTUnwrap(yb[b.graph.values[b.graph.outputs[0]].name]).toFloats()
        XCTAssertEqual(p.count, q.count)
        let scale = p.map { abs(Double($0)) }.max() ?? 1
        return zip(p, q).map { abs(Double($0) - Double($1)) }.max()! / max(scale, 1e-12)
    }

    func testSplitsOfExactlyLowRankWeightsChangeNothing() throws {
        // (model, constant, layer regex, options): a MatMul, a Gemm and a 3x3 convolution
        // whose weights are built of rank 2, split at rank 2.
        let cases: [(String, String, String, CompressionOptions, Bool)] = [
            ("SampleModels/convnext_block.onnx", "block0.fc1.w", "block0.fc1$", CompressionOptions(lowRank: 2), false),
            ("SampleModels/tiny_cnn.onnx", "fc.w", "^fc$", CompressionOptions(lowRankEnergy: 0.999), false),
            ("SampleModels/tiny_cnn.onnx", "conv1.w", "^conv1$", CompressionOptions(cp: 2), true),
            ("SampleModels/convnext_block.onnx", "stem.w", "^stem$", CompressionOptions(cp: 2), true),
        ]
        for (rel, weight, layer, var options, cp) in cases {
            let src = try path(rel)
            let reference = try ModelImporter.load(src), model = try ModelImporter.load(src)
            try makeLowRank(reference, weight, rank: 2, cp: cp)
            try makeLowRank(model, weight, rank: 2, cp: cp)
            options.layers = layer
            let log = try Compressor.apply(model, options)
            XCTAssertEqual(log.changes.count, 1, "\(rel) \(weight): \(log.skipped)")
            if options.lowRankEnergy != nil { XCTAssertTrue(log.changes.first?.detail.hasPrefix("rank 2 of") ?? false, "\(log.changes)") }
            let out = outDir.appendingPathComponent("split.onnx").path
            try Converter.convert(model, to: out)
            let written = try ModelImporter.load(out)
            XCTAssertGreaterThan(written.graph.nodes.count, reference.graph.nodes.count, rel)
            let d = try relativeDifference(reference, written)
            XCTAssertLessThan(d, cp ? 1e-3 : 1e-5, "\(rel) \(weight): a rank-2 weight split at rank 2")
        }
    }

    func testPruningZeroesTheSmallestWeightsOfEachLayer() throws {
        let src = try path(".models/torchvision/mobilenet_v2.onnx")
        let original = try ModelImporter.load(src), model = try ModelImporter.load(src)
        let log = try Compressor.apply(model, CompressionOptions(prune: 0.3))
        XCTAssertEqual(log.changes.count, 53)  // 52 convolutions and the classifier
        for node in model.graph.nodes where node.op == .conv || node.op == .gemm {
            let id = try XCTUnwrap(node.inputs[1])
            let before = try XCTUnwrap(original.graph.values[id].constant?.doubles(limit: .max))
            let after = try XCTUnwrap(model.graph.values[id].constant?.doubles(limit: .max))
            let zeroed = zip(before, after).filter { $0.1 == 0 && $0.0 != 0 }.map { abs($0.0) }
            let kept = zip(before, after).filter { $0.1 != 0 }.map { abs($0.0) }
            XCTAssertEqual(Double(zeroed.count + before.filter { $0 == 0 }.count), (Double(before.count) * 0.3).rounded(), accuracy: 1, node.name)
            XCTAssertLessThanOrEqual(zeroed.max() ?? 0, kept.min() ?? .infinity, "\(node.name): a larger weight was zeroed than one kept")
            XCTAssertEqual(zip(before, after).filter { $0.1 != 0 && $0.0 != $0.1 }.count, 0, "\(node.name): kept weights changed")
        }
    }

    func testChannelPruningHalvesResNet50InsideItsBottlenecks() throws {
        let src = try path(".models/torchvision/resnet50.onnx")
        let original = try ModelImporter.load(src), model = try ModelImporter.load(src)
        let log = try Compressor.apply(model, CompressionOptions(pruneChannels: 0.45))
        let profile = try HardwareProfile.resolve(HardwareProfile.defaultID)
        let before = ModelAnalyzer.analyze(original, profile: profile), after = ModelAnalyzer.analyze(model, profile: profile)
        let share = Double(after.totals.macs) / Double(before.totals.macs)
        XCTAssertTrue(share > 0.4 && share < 0.5, "MACs \(share) of the original")
        // Every bottleneck's first two convolutions (and the stem) lose filters; the residual
        // stream (conv3 and the downsampling convolutions) keeps its channels.
        XCTAssertEqual(log.changes.count, 16 * 2 + 1)
        // Filters that are zero already: removing them (their bias carried into the readers'
        // bias) leaves the outputs as they were, up to the 3x3 layers' zero-padded borders.
        let zeroed = try ModelImporter.load(src), pruned = try ModelImporter.load(src)
        for m in [zeroed, pruned] {
            for node in m.graph.nodes where node.op == .conv && !node.name.contains("conv3") && !node.name.contains("downsample") {
                let id = node.inputs[1]!
                let w = try XCTUnwrap(m.graph.values[id].constant)
                var f = try XCTUnwrap(w.doubles(limit: .max)).map(Float.init)
                let per = f.count / w.shape[0]
                let norms = (0..<w.shape[0]).map { o in (0..<per).reduce(Float(0)) { $0 + abs(f[o * per + $1]) } }
                for o in (0..<w.shape[0]).sorted(by: { norms[$0] < norms[$1] }).prefix(w.shape[0] / 2) { for k in 0..<per { f[o * per + k] = 0 } }
                m.graph.values[id].constant = TensorData(dtype: .float32, shape: w.shape, storage: .owned(f.withUnsafeBytes { Array($0) }))
            }
        }
        _ = try Compressor.apply(pruned, CompressionOptions(pruneChannels: 0.5))
        XCTAssertLessThan(try relativeDifference(zeroed, pruned), 1e-3)
        for (a, b) in zip(original.graph.nodes, model.graph.nodes) where a.op == .conv {
            let wa = try XCTUnwrap(original.graph.values[a.inputs[1]!].constant).shape, wb = try XCTUnwrap(model.graph.values[b.inputs[1]!].constant).shape
            if a.name.contains("conv3") || a.name.contains("downsample") {
                XCTAssertEqual(wa[0], wb[0], a.name)
            } else {
                XCTAssertLessThan(wb[0], wa[0], a.name)
                XCTAssertEqual(wb[0] % 8, 0, "\(a.name): filters kept in multiples of 8")
            }
        }
    }

    /// Each method's file runs in onnxruntime / LiteRT (reference kernels) as on the executor:
    /// every value within 1e-4 (Tools/compare-layers.py).
    func testCompressedFilesRunInTheReferenceRuntimes() throws {
        let python = TestSupport.root.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else { throw XCTSkip("no .venv: run `make test`") }
        let calTiny = try calibrationFolder("cal_tiny", [1, 3, 32, 32]), calBlock = try calibrationFolder("cal_block", [1, 8, 12, 12])
        let calImage = try calibrationFolder("cal_image", [1, 3, 224, 224])
        let cases: [(String, [String], String)] = [
            (".models/torchvision/mobilenet_v2.onnx", ["--quantize", "int8", "--calibration", calImage], "onnx"),
            (".models/torchvision/resnet50.onnx", ["--quantize", "int8", "--calibration", calImage], "onnx"),   // Add -> Relu -> Q
            ("SampleModels/tiny_cnn.onnx", ["--quantize", "int8", "--calibration", calTiny], "onnx"),
            ("SampleModels/convnext_block.onnx", ["--quantize", "fp16"], "onnx"),
            ("SampleModels/convnext_block.onnx", ["--quantize", "int8", "--calibration", calBlock, "--lowrank", "4"], "onnx"),
            (".models/torchvision/mobilenet_v2.onnx", ["--lowrank-energy", "0.9"], "onnx"),
            (".models/torchvision/mobilenet_v2.onnx", ["--prune", "0.5"], "onnx"),
            (".models/torchvision/mobilenet_v2.onnx", ["--prune", "0.85"], "onnx"),   // on the sparse kernel
            (".models/torchvision/mobilenet_v2.onnx", ["--prune-channels", "0.3"], "onnx"),   // depthwise coupling
            (".models/torchvision/resnet50.onnx", ["--prune-channels", "0.45"], "onnx"),   // bottlenecks, stem -> pool -> two readers
            ("SampleModels/convnext_block.onnx", ["--cp", "4", "--lowrank", "4"], "onnx"),
            ("SampleModels/tiny_cnn.onnx", ["--cp", "3", "--lowrank", "2"], "tflite"),
            ("SampleModels/tiny_cnn.tflite", ["--prune", "0.4"], "tflite"),
        ]
        for (rel, args, ext) in cases {
            let src = try path(rel)
            let out = outDir.appendingPathComponent("out.\(ext)").path
            let r = try TestSupport.run(["compress", src, out] + args + ["--json"], timeout: 120)
            XCTAssertEqual(r.status, 0, "\(rel) \(args): \(r.stderr)")
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertFalse((report["changes"] as? [Any] ?? []).isEmpty, "\(rel) \(args): nothing changed")
            if args.filter({ $0.hasPrefix("--") && $0 != "--calibration" }) == ["--quantize"], let before = report["before"] as? [String: Any], let after = report["after"] as? [String: Any],
               let nb = before["nonzeroWeights"] as? Int, let na = after["nonzeroWeights"] as? Int {
                // int8 and fp16 weights are counted as weights.
                XCTAssertGreaterThan(Double(na), 0.9 * Double(nb), "\(rel) \(args)")
            }
            func compareLayers(_ extra: [String] = []) throws -> (status: Int32, text: String) {
                let p = Process()
                p.executableURL = python
                p.arguments = [TestSupport.root.appendingPathComponent("Tools/compare-layers.py").path, out, "--binary", TestSupport.binary.path] + extra
                let pipe = Pipe()
                p.standardOutput = pipe
                p.standardError = pipe
                try p.run()
                let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                return (p.terminationStatus, text)
            }
            let (status, text) = try compareLayers()
            if args.contains("int8") && ext == "onnx" {
                // The outputs equal onnxruntime's default session, which fuses each
                // DequantizeLinear -> Conv -> QuantizeLinear into an integer convolution as the
                // executor does.
                let fused = try compareLayers(["--optimized"])
                XCTAssertEqual(fused.status, 0, "\(rel) \(args), onnxruntime's fused session: \(fused.text)")
            }
            if args.contains("int8") && (rel.contains("mobilenet_v2") || rel.contains("resnet50")) {
                // Fifty layers deep, a rounding tie decided otherwise carries forward: inside,
                // integer tensors may differ by a few steps; the logits by one at most.
                let logits = try XCTUnwrap(text.split(separator: "\n").first { $0.contains("logits/quantized") }, text)
                XCTAssertTrue(logits.hasSuffix("up to 1 step(s)") || logits.hasSuffix("up to 0 step(s)"), String(logits))
            } else {
                XCTAssertEqual(status, 0, "\(rel) \(args) -> .\(ext): \(text)")
                XCTAssertTrue(text.contains(", 0 differ"), text)
            }
            print("compress \(rel) \(args.joined(separator: " ")) -> .\(ext): \(text.split(separator: "\n").last ?? "")")
        }
    }

    /// Four seeded inputs of `shape` (uniform in [-1, 1]) as .npy files in a new folder.
    func calibrationFolder(_ name: String, _ shape: [Int]) throws -> String {
        let dir = outDir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var rng = Rng(s: 5)
        for k in 0..<4 {
            let t = RTensor.allocate(shape, .float32)
            for i in 0..<t.count { t.floats[i] = rng.float() }
            try NPY.write(t, to: dir.appendingPathComponent("\(k).npy").path)
        }
        return dir.path
    }

    func testBadRequestsLeaveNoFile() throws {
        let src = try path(".models/torchvision/mobilenet_v2.onnx")
        let out = outDir.appendingPathComponent("never.onnx").path
        // A rank at or above an explicitly chosen layer's own: refused with the allowed range.
        var r = try TestSupport.run(["compress", src, out, "--lowrank", "1280", "--layers", "classifier"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("/classifier/classifier.1/Gemm") && r.stderr.contains("allowed 1...999"), r.stderr)
        r = try TestSupport.run(["compress", src, out, "--cp", "100000", "--layers", "features.0/"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("allowed 1..."), r.stderr)
        for args in [["--prune", "1.5"], ["--lowrank", "0"], ["--lowrank-energy", "0"], ["--layers", "(", "--prune", "0.1"], []] {
            r = try TestSupport.run(["compress", src, out] + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("error") || r.stderr.contains("Error"), r.stderr)
        }
        // An output in a folder that does not exist.
        r = try TestSupport.run(["compress", src, outDir.appendingPathComponent("no/such/dir/x.onnx").path, "--prune", "0.1"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // int8 without calibration inputs, or to a .tflite.
        r = try TestSupport.run(["compress", src, out, "--quantize", "int8"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("--calibration"), r.stderr)
        r = try TestSupport.run(["compress", src, outDir.appendingPathComponent("q.tflite").path, "--quantize", "int8", "--calibration", outDir.path])
        XCTAssertEqual(r.status, 2, r.stderr)
        r = try TestSupport.run(["compress", src, out, "--quantize", "int4"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outDir.path), [])
    }
}
