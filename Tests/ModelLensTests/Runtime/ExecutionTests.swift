import Foundation
import ModelConformance
import ModelImport
import ModelIR
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// The native executor against the ONNX backend node tests' own inputs,
/// expected outputs and tolerance. Every test whose ops all have kernels must
/// pass; ops without a kernel (or attribute combinations a kernel refuses) are
/// reported as unsupported, never computed wrongly.
final class ExecutionTests: XCTestCase {
    func nodeTestRoots() -> [String] {
        var roots: [String] = []
        let wheel = TestSupport.root.appendingPathComponent(".venv/lib/python3.11/site-packages/onnx/backend/test/data/node").path
        if FileManager.default.fileExists(atPath: wheel) { roots.append(wheel) }
        if FileManager.default.fileExists(atPath: "/usr/share/libonnx-testdata/data") { roots.append("/usr/share/libonnx-testdata/data") }
        return roots
    }

    func testNodeTestsPassForEverySupportedOp() throws {
        let roots = nodeTestRoots()
        if roots.isEmpty { throw XCTSkip("no node tests installed (Tools/setup.sh installs them)") }
        // Both kernel sets: the AVX-512 ones (where the CPU has them) and the portable ones.
        defer { Executor.preferAVX512(true) }
        for avx512 in [true, false] {
            Executor.preferAVX512(avx512)
            let results = NodeTests.runAll(roots: roots)
            let pass = results.filter { $0.outcome == .pass }.count
            let fail = results.filter { $0.outcome == .fail }
            let unsupported = results.filter { $0.outcome == .unsupported }.count
            let kernels = avx512 && Executor.avx512Available ? "AVX-512" : "portable"
            print("node tests on the executor (\(kernels) kernels): \(results.count) tests, \(pass) pass, \(fail.count) fail, \(unsupported) unsupported")
            for f in fail.prefix(30) { print("  FAIL \(f.name): \(f.detail)") }
            XCTAssertEqual(fail.count, 0)
            XCTAssertGreaterThan(pass, 1930, "the executor should cover most common ops")
        }
    }

    func testTinyCNNRunsAndBatchFollowsTheInput() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        let exec = try Executor(model: model)
        let x = RTensor.make((0..<(2 * 3 * 32 * 32)).map { Float($0 % 17) / 17 }, shape: [2, 3, 32, 32])
        let y = try exec.run(["input": x])["logits"]!
        XCTAssertEqual(y.shape, [2, 10])
        XCTAssertTrue(y.toFloats().allSatisfy(\.isFinite))
    }

    /// The executor keeps its buffer pool from one run to the next; the outputs it handed out
    /// must stay untouched by later runs, and the same input must give the same bits again.
    func testOutputsOfEarlierRunsSurviveLaterRuns() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        let exec = try Executor(model: model)
        let x1 = RTensor.make((0..<(3 * 32 * 32)).map { Float($0 % 17) / 17 }, shape: [1, 3, 32, 32])
        let x2 = RTensor.make((0..<(3 * 32 * 32)).map { Float($0 % 5) - 2 }, shape: [1, 3, 32, 32])
        let y1 = try exec.run(["input": x1])["logits"]!
        let first = y1.toFloats(), arena = exec.peakArenaBytes
        let y2 = try exec.run(["input": x2])["logits"]!
        XCTAssertNotEqual(y2.toFloats(), first, "different inputs should give different logits")
        XCTAssertEqual(y1.toFloats(), first, "a later run wrote into an earlier run's output")
        XCTAssertEqual(try exec.run(["input": x1])["logits"]!.toFloats(), first)
        XCTAssertEqual(exec.peakArenaBytes, arena, "the pool grew from one run to the next")
    }

    /// Runs that recycle their outputs (a benchmark's) write each run's output into the buffer of
    /// the run before, with the same results as runs that hand their outputs over.
    func testRecycledOutputsAreWrittenInPlaceWithTheSameResults() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        let exec = try Executor(model: model)
        let x1 = RTensor.make((0..<(3 * 32 * 32)).map { Float($0 % 17) / 17 }, shape: [1, 3, 32, 32])
        let x2 = RTensor.make((0..<(3 * 32 * 32)).map { Float($0 % 5) - 2 }, shape: [1, 3, 32, 32])
        let handed = try exec.run(["input": x2])["logits"]!.toFloats()
        let y1 = try exec.run(["input": x1], recycleOutputs: true)["logits"]!
        let first = y1.toFloats()
        let y2 = try exec.run(["input": x2], recycleOutputs: true)["logits"]!
        XCTAssertEqual(y2.buffer.pointer, y1.buffer.pointer, "a recycled output's buffer was not reused")
        XCTAssertEqual(y2.toFloats(), handed)
        XCTAssertEqual(try exec.run(["input": x1])["logits"]!.toFloats(), first)
    }

    /// `run --all-values` writes every value a node computes, listed in values.tsv in node order;
    /// the model's output among them equals the one a plain run writes.
    func testRunAllValuesWritesEveryNodeOutput() throws {
        let path = TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("allvalues-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try TestSupport.run(["run", path, "--random", "--all-values", "-o", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try String(contentsOf: dir.appendingPathComponent("values.tsv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: "\t").map(String.init) }
        let model = try ModelImporter.load(path)
        XCTAssertEqual(rows.map { $0[1] }, model.graph.nodes.flatMap { $0.outputs }.map { model.graph.values[$0].name })
        let logits = try XCTUnwrap(rows.first { $0[1] == "logits" })
        let viaList = try NPY.read(dir.appendingPathComponent(logits[0]).path)
        let plain = try NPY.read(dir.appendingPathComponent("logits.npy").path)
        XCTAssertEqual(viaList.shape, plain.shape)
        XCTAssertEqual(viaList.toFloats(), plain.toFloats())
        let noFolder = try TestSupport.run(["run", path, "--random", "--all-values"])
        XCTAssertNotEqual(noFolder.status, 0)
        XCTAssertTrue(noFolder.stderr.contains("-o OUTDIR"), noFolder.stderr)
    }

    /// Kernels that allocate temporaries (quantized ops computing in float dequantize their inputs)
    /// do not make the pool grow from run to run.
    func testTemporariesGoBackToThePoolAfterARun() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("mobilenet_int8.tflite").path)
        let exec = try Executor(model: model)
        let input = model.graph.values[model.graph.inputs[0]]
        let x = RTensor.allocate([1, 48, 48, 3], .int8)
        for i in 0..<x.count { x.raw.storeBytes(of: Int8(truncatingIfNeeded: i * 37), toByteOffset: i, as: Int8.self) }
        _ = try exec.run([input.name: x])
        let arena = exec.peakArenaBytes
        for _ in 0..<4 { _ = try exec.run([input.name: x]) }
        XCTAssertEqual(exec.peakArenaBytes, arena, "the pool grew from one run to the next")
    }

    func testUnsupportedOpNamesItselfAndTheNode() throws {
        let model = try ModelImporter.load(TestSupport.models.appendingPathComponent("mediapipe/mediapipe__modules__selfie_segmentation__selfie_segmentation.tflite").path)
        XCTAssertThrowsError(try Executor(model: model)) { e in
            XCTAssertTrue("\(e)".contains("Convolution2DTransposeBias"), "\(e)")
        }
    }

    /// A convolution with a fused residual that no later step reads writes its output over that
    /// residual. The results equal those of a run where every residual is also a graph output
    /// (kept, so never overwritten): MobileNetV2's residual convolutions sum 144 and 192 products
    /// (overwritten in place) and 384 and 576 (the kernel sums those in blocks and may not).
    func testResidualOverwrittenInPlaceGivesTheSameResults() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) not fetched (make models)") }
        let options = ModelImporter.Options(inputShapes: ["input": Shape(known: [1, 3, 224, 224])])
        let plain = try ModelImporter.load(path, options: options)
        let kept = try ModelImporter.load(path, options: options)
        let residuals = kept.graph.nodes.filter { $0.op.rawValue == "Add" }.compactMap { $0.inputs.first ?? nil }
        XCTAssertEqual(residuals.count, 10)
        kept.graph.outputs += residuals
        let input = plain.graph.values[plain.graph.inputs[0]]
        let x = RTensor.make((0..<(3 * 224 * 224)).map { Float(($0 * 7919) % 1000) / 500 - 1 }, shape: [1, 3, 224, 224])
        let out = plain.graph.values[plain.graph.outputs[0]].name
        let e1 = try Executor(model: plain), e2 = try Executor(model: kept)
        let y1 = try e1.run([input.name: x])[out]!.toFloats(), y2 = try e2.run([input.name: x])[out]!.toFloats()
        if Executor.avx512Available && ProcessInfo.processInfo.environment["MODELLENS_KERNELS"] != "blas" {
            XCTAssertGreaterThan(e1.lastRunReusedInputs, 0, "no output was written over its residual")
        }
        XCTAssertEqual(e2.lastRunReusedInputs, 0, "a residual that is a graph output was overwritten")
        XCTAssertEqual(y1.count, y2.count)
        XCTAssertTrue(y1 == y2, "outputs differ, by up to \(zip(y1, y2).map { abs($0 - $1) }.max() ?? 0)")
    }

    /// Results are identical for any thread count (OpenBLAS splits rows and columns, never the sum).
    func testResultsIdenticalForAnyThreadCount() throws {
        var paths = ["tiny_cnn.onnx", "convnext_block.onnx"].map { TestSupport.samples.appendingPathComponent($0).path }
        // hand_landmark_full: 7x7 layers of 1152 channels whose NHWC GEMM shares channels among tasks.
        for m in ["torchvision/mobilenet_v2.onnx", "torchvision/resnet50.onnx", "mediapipe/mediapipe__modules__palm_detection__palm_detection_full.tflite",
                  "mediapipe/mediapipe__modules__hand_landmark__hand_landmark_full.tflite"] {
            let p = TestSupport.models.appendingPathComponent(m).path
            if FileManager.default.fileExists(atPath: p) { paths.append(p) }
        }
        for path in paths {
            let model = try ModelImporter.load(path, options: .init(inputShapes: path.hasSuffix(".onnx") ? ["input": Shape(known: [1, 3, 224, 224])] : [:]))
            let input = model.graph.values[model.graph.inputs[0]]
            let shape = input.type.shape.dims!.map { $0.value ?? 1 }
            let x = RTensor.make((0..<shape.reduce(1, *)).map { Float(($0 * 7919) % 1000) / 500 - 1 }, shape: shape)
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                let y = try Executor(model: model, threads: threads).run([input.name: x])
                results.append(y[model.graph.values[model.graph.outputs[0]].name]!.toFloats())
            }
            XCTAssertEqual(results[0], results[1], "\(path): 1 vs 2 threads")
            XCTAssertEqual(results[0], results[2], "\(path): 1 vs 3 threads")
        }
    }
}
