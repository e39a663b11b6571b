import ModelAnalysis
import ModelImport
import ModelIR
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// `analyze` reports the kernels the executor runs: the same steps, in the same order, with the
/// same nodes fused into each, from the same IR passes (ConstantFolding, FusionPlan).
final class KernelPlanTests: XCTestCase {
    func testAnalysisKernelsEqualTheExecutorsPlan() throws {
        let models = [("torchvision/resnet50.onnx", 57, 118), ("torchvision/mobilenet_v2.onnx", 0, 0),
                      ("mediapipe/mediapipe__modules__pose_landmark__pose_landmark_full.tflite", 0, 0)]
        for (file, expectKernels, expectFused) in models {
            let path = TestSupport.models.appendingPathComponent(file).path
            guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
            let model = try ModelImporter.load(path, options: .init(inputShapes: file.hasSuffix(".onnx") ? ["input": Shape(known: [1, 3, 224, 224])] : [:]))
            let analysis = KernelPlan.make(model.graph)
            let exec = try Executor(model: model, threads: 1)
            XCTAssertEqual(analysis.kernels, exec.kernelSteps, file)
            XCTAssertGreaterThan(exec.kernelSteps.count, 50, file)
            let fused = analysis.kernels.reduce(0) { $0 + $1.fused.count }
            print("\(file): \(analysis.kernels.count) kernels, \(fused) nodes fused, \(analysis.folded.count) folded at load")
            // ResNet50 (torchvision export, BatchNorms kept): every BatchNorm and Relu runs inside a
            // conv (or the residual Add's), and each of the 16 Adds inside a conv.
            if expectKernels > 0 {
                XCTAssertEqual(analysis.kernels.count, expectKernels, file)
                XCTAssertEqual(fused, expectFused, file)
            }
        }
    }
}

/// SiLU and GELU written out as elementwise ops (torch below opset 20), and hard-swish as
/// paddle2onnx writes it, run as one kernel each, in the executor and in the analysis alike; the
/// outputs match onnxruntime (ReferenceRuntimeTests).
final class UnaryChainTests: XCTestCase {
    func testWrittenOutSiLUAndGELURunAsOneKernelEach() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("convnext_block.onnx").path)
        let exec = try Executor(model: model, threads: 1)
        let analysis = KernelPlan.make(model.graph)
        XCTAssertEqual(analysis.kernels, exec.kernelSteps)
        let chains = exec.kernelSteps.filter { $0.chainOp != nil }
        XCTAssertEqual(chains.map { $0.chainOp! }, ["SiLU", "Gelu", "Gelu", "HardSwish"])
        // Sigmoid + Mul; then Div (or Mul by 1/sqrt 2), Erf, Add, Mul, Mul; Add, Clip, Mul, Div.
        XCTAssertEqual(chains.map { 1 + $0.fused.count }, [2, 5, 5, 4])
        let names = chains.map { c in ([c.node] + c.fused).map { model.graph.nodes[$0].name } }
        XCTAssertEqual(names[0], ["stem.sigmoid", "stem.silu"])
        XCTAssertEqual(Set(names[2]), ["block1.gelu.scale", "block1.gelu.erf", "block1.gelu.add", "block1.gelu.half", "block1.gelu"])
        let ops = Set(exec.kernelSteps.map { model.graph.nodes[$0.node].op.rawValue })
        XCTAssertFalse(ops.contains("Erf"), "an Erf ran as a kernel of its own")

        // Not fused where an intermediate value is also a graph output (run --all-values).
        let graph = model.graph
        graph.outputs.append(graph.nodes.first { $0.name == "block0.gelu.erf" }!.outputs[0])
        let partial = try Executor(model: model, threads: 1)
        XCTAssertEqual(partial.kernelSteps.compactMap(\.chainOp), ["SiLU", "Gelu", "HardSwish"])
    }
}

/// The prediction is per kernel: a node fused into another's kernel costs nothing of its own (its
/// FLOPs count in the kernel, its tensors never reach memory), and `profile` reports the kernels.
final class KernelPredictionTests: XCTestCase {
    func testFusedNodesArePredictedInsideTheirKernel() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        let model = try ModelImporter.load(path, options: .init(inputShapes: ["input": Shape(known: [1, 3, 224, 224])]))
        let r = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve("odroid-xu4-mali-t628"))
        let fused = Set(r.kernels.flatMap(\.fused))
        XCTAssertEqual(fused.count, 97)
        for i in fused {
            XCTAssertEqual(r.nodes[i].predictedSeconds, 0, r.nodes[i].name)
            XCTAssertTrue(r.nodes[i].tags.contains("fused"), r.nodes[i].name)
        }
        // The 35 Clips (ReLU6) of MobileNetV2 run inside convolutions: none is predicted to take time.
        XCTAssertEqual(r.nodes.filter { $0.op == "Clip" }.count, 35)
        XCTAssertTrue(r.nodes.filter { $0.op == "Clip" }.allSatisfy { $0.predictedSeconds == 0 })
        // A kernel's FLOPs are its group's; it is never predicted faster than its compute alone.
        for step in r.kernels where !step.fused.isEmpty {
            let flops = ([step.node] + step.fused).reduce(0) { $0 + r.nodes[$1].flops }
            XCTAssertGreaterThanOrEqual(r.nodes[step.node].predictedSeconds, Double(flops) / r.profile.peak(for: "float32"))
        }
        let total = r.nodes.reduce(0) { $0 + $1.predictedSeconds }
        XCTAssertEqual(r.totals.predictedSeconds, total, accuracy: 1e-12)
    }

    func testProfileReportsKernels() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        let out = try TestSupport.run(["profile", path, "--runs", "2", "--warmup", "1", "--threads", "1", "--format", "json",
                                       "--input-shape", "input=1,3,224,224"], timeout: 120)
        XCTAssertEqual(out.status, 0, out.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let nodes = try XCTUnwrap(obj["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.count, 55)
        XCTAssertEqual(nodes.reduce(0) { $0 + (($1["fused"] as? [String])?.count ?? -1000) }, 97)
        for key in ["medianMs", "predictedMs", "threads", "runs"] { XCTAssertNotNil(obj[key], key) }
        for n in nodes { for key in ["name", "op", "measuredMs", "predictedMs", "fused"] { XCTAssertNotNil(n[key], key) } }
    }
}
