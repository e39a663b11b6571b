import Foundation
import ModelImport
import ModelIR
import ModelRuntime
import ModelLensTestSupport
import XCTest

/// The executor against onnxruntime (.onnx) and ai-edge-litert (.tflite) on the
/// same seeded random inputs (Tools/make-run-references.py): every output within
/// 1e-4 of the reference, relative to the output's largest magnitude (or within twice
/// the reference's own spread across its kernel variants, where that is larger).
final class ReferenceRuntimeTests: XCTestCase {
    /// Ops that are custom to mediapipe (not TFLite builtins) or not implemented yet; a model
    /// using them must fail to plan with a message naming the op, and is listed, not compared.
    static let allowedUnsupported = ["Landmarks2TransformMatrix", "TransformLandmarks", "TransformTensorBilinear",
                                     "Convolution2DTransposeBias"]

    func testOutputsMatchReferenceRuntimes() throws {
        let (report, skipped, failures) = try compareWithReferences()
        for r in report { print("  \(r)") }
        for s in skipped { print("  SKIP \(s)") }
        for f in failures { print("  FAIL \(f)") }
        XCTAssertEqual(failures.count, 0)
        XCTAssertGreaterThanOrEqual(report.count, 20)
    }

    /// The portable kernels (OpenBLAS sgemm, scalar depthwise) stay correct on CPUs that have the
    /// AVX-512 ones too: a few models covering NCHW and NHWC convolutions, depthwise, residual
    /// Adds and PRelu, against the same references, on both paths. depthwise_cases (a sample)
    /// holds depthwise convolutions at the edges of the AVX-512 paths: odd sizes, stride 2 with
    /// asymmetric pads, dilation 2, a 5x5 kernel with depth multiplier 2.
    func testBothKernelPathsMatchReferenceRuntimes() throws {
        let models = ["depthwise_cases", "mobilenet_v2", "googlenet", "resnet50", "mediapipe__modules__palm_detection__palm_detection_full.tflite",
                      "mediapipe__modules__pose_landmark__pose_landmark_full.tflite"]
        defer { Executor.preferAVX512(true) }
        for avx512 in [false, true] {
            Executor.preferAVX512(avx512)
            let (report, _, failures) = try compareWithReferences(only: models)
            print("kernels: \(avx512 && Executor.avx512Available ? "AVX-512" : "portable (OpenBLAS)")")
            for r in report { print("  \(r)") }
            for f in failures { print("  FAIL \(f)") }
            XCTAssertEqual(failures.count, 0)
            XCTAssertGreaterThanOrEqual(report.count, models.count)
        }
    }

    /// ResNet50 keeps every activation between its max pool and its global average pool
    /// channel-blocked (1 + 16 blocks x 3 convolutions + 4 downsamplings = 53 values); MobileNetV2
    /// (1x1 convolutions beside depthwise ones) and DenseNet121 (1x1s reading Concat output) keep
    /// none. A plan made for the AVX-512 kernels and run on the portable ones converts around each
    /// blocked convolution: the logits then agree with the blocked run within 1e-4.
    func testResNet50RunsOnChannelBlockedActivations() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: nothing is blocked") }
        func model(_ name: String) throws -> Model {
            try ModelImporter.load(TestSupport.models.appendingPathComponent("torchvision/\(name).onnx").path)
        }
        defer { Executor.preferAVX512(true) }
        Executor.preferAVX512(true)
        let exec = try Executor(model: try model("resnet50"), threads: 1)
        XCTAssertEqual(exec.blockedValueCount, 53)
        for name in ["mobilenet_v2", "densenet121"] {
            XCTAssertEqual(try Executor(model: try model(name), threads: 1).blockedValueCount, 0, name)
        }
        let x = RTensor.make((0..<(3 * 224 * 224)).map { Float($0 % 251) / 251 - 0.5 }, shape: [1, 3, 224, 224])
        let blocked = try XCTUnwrap(exec.run(["input": x]).values.first).toFloats()
        Executor.preferAVX512(false)
        let converted = try XCTUnwrap(exec.run(["input": x]).values.first).toFloats()
        let scale = blocked.map(abs).max() ?? 1
        let worst = zip(blocked, converted).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst / scale, 1e-4)
        XCTAssertEqual(blocked.count, 1000)
    }

    /// The full-integer sample runs its convolutions, depthwise convolutions and fully-connected
    /// layer on the integer kernels, on the AVX-512 VNNI path and the portable one. Both give LiteRT's
    /// reference kernels' output for the reference input; its ADDs and MEAN compute in float, so
    /// for other inputs a value may be a step apart (Tools/compare-layers.py shows it per layer).
    func testInt8ModelRunsOnIntegerKernels() throws {
        let path = TestSupport.samples.appendingPathComponent("mobilenet_int8.tflite").path
        let model = try ModelImporter.load(path)
        let exec = try Executor(model: model, threads: 2)
        let convs = model.graph.nodes.filter { $0.op == .conv || $0.op.rawValue == "FullyConnected" }
        XCTAssertEqual(convs.count, 8, "the Keras model: a stem conv, 3 depthwise + 3 pointwise, a dense layer")
        XCTAssertEqual(exec.integerNodes, convs.count, "every conv / depthwise / fully-connected node on the integer kernels")
        XCTAssertEqual(exec.floatQuantizedNodes, 3, "two ADDs and a MEAN compute in float")
        defer { Executor.preferAVX512(true) }
        let (_, _, failures) = try compareWithReferences(only: ["mobilenet_int8.tflite"])
        XCTAssertEqual(failures, [])
        Executor.preferAVX512(false)
        let (report, _, portableFailures) = try compareWithReferences(only: ["mobilenet_int8.tflite"])
        XCTAssertEqual(portableFailures, [])
        XCTAssertEqual(report.count, 1)
        XCTAssertTrue(report.first?.contains("0 of 10 differ") ?? false, report.first ?? "no report")
    }

    /// onnxruntime's QDQ and QOperator samples run their convolutions and their fully-connected
    /// layer on the integer kernels (DequantizeLinear -> Conv / Gemm -> QuantizeLinear fused into
    /// one, as onnxruntime's default session fuses them; QLinearConv and QGemm as they stand), on
    /// the VNNI path and the portable one, and give onnxruntime's outputs.
    func testQuantizedOnnxConvolutionsRunOnIntegerKernels() throws {
        defer { Executor.preferAVX512(true) }
        for (file, layers) in [("tiny_cnn_qdq", 3), ("tiny_cnn_qop", 3)] {
            let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent(file + ".onnx").path)
            let exec = try Executor(model: model, threads: 2)
            XCTAssertEqual(exec.integerNodes, layers, "\(file): two convolutions and a Gemm on the integer kernels")
            for avx512 in [true, false] {
                Executor.preferAVX512(avx512)
                let (report, _, failures) = try compareWithReferences(only: [file])
                XCTAssertEqual(failures, [], "\(file) avx512 \(avx512)")
                XCTAssertEqual(report.count, 1, "\(file): reference data")
                XCTAssertTrue(report.allSatisfy { $0.contains("max abs diff 0,") }, "\(file): \(report)")
            }
        }
    }

    /// Runs every model with reference data (or the named ones) and compares each output.
    func compareWithReferences(only: [String]? = nil) throws -> (report: [String], skipped: [String], failures: [String]) {
        let dir = TestSupport.refdata.appendingPathComponent("runs")
        guard var models = try? FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), !models.isEmpty else {
            throw XCTSkip("run Tools/make-run-references.py (make test does)")
        }
        if let only { models = models.filter { only.contains($0) } }
        var failures: [String] = [], skipped: [String] = [], report: [String] = []
        for m in models {
            let d = dir.appendingPathComponent(m)
            guard let metaData = FileManager.default.contents(atPath: d.appendingPathComponent("meta.json").path),
                  let meta = try JSONSerialization.jsonObject(with: metaData) as? [String: Any] else { continue }
            let path = TestSupport.root.appendingPathComponent(meta["model"] as! String).path
            let inputsMeta = meta["inputs"] as! [[String: Any]]
            var shapes: [String: Shape] = [:]
            for i in inputsMeta { shapes[i["name"] as! String] = Shape(known: i["shape"] as! [Int]) }
            let model = try ModelImporter.load(path, options: .init(inputShapes: shapes))
            let exec: Executor
            do { exec = try Executor(model: model, threads: 1) } catch let e as RuntimeError {
                if Self.allowedUnsupported.contains(where: { "\(e)".contains("op \($0) ") }) { skipped.append("\(m): \(e)"); continue }
                failures.append("\(m): \(e)"); continue
            }
            var feeds: [String: RTensor] = [:]
            for (k, i) in inputsMeta.enumerated() { feeds[i["name"] as! String] = try NPY.read(d.appendingPathComponent("input_\(k).npy").path) }
            let outs = try exec.run(feeds)
            for (k, o) in (meta["outputs"] as! [[String: Any]]).enumerated() {
                let want = try NPY.read(d.appendingPathComponent("output_\(k).npy").path)
                // TFLite reports outputs by index; names can differ from the graph's, so fall back to position.
                let name = o["name"] as! String
                let got = outs[name] ?? outs[model.graph.values[model.graph.outputs[k]].name]
                guard let got else { failures.append("\(m): no output \(name)"); continue }
                guard got.shape == want.shape else { failures.append("\(m) \(name): shape \(got.shape) vs \(want.shape)"); continue }
                let a = got.toFloats(), b = want.toFloats()
                if want.dtype == .int8 || want.dtype == .uint8 {
                    // Quantized outputs: within one quantization step of the reference (LiteRT's default
                    // interpreter, XNNPACK, rounds its requantization in float) and, where LiteRT's
                    // reference kernels ran too, equal to theirs: the integer kernels do their arithmetic.
                    let steps = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                    var line = String(format: "%@ %@: %.0f quantization step(s) from the reference", m, name, steps)
                    if steps > 1 { failures.append(String(format: "%@ %@: %.0f quantization steps", m, name, steps)) }
                    if let f = o["referenceKernels"] as? String {
                        // Equal where every quantized node runs on the integer kernels; within a step
                        // where some compute in float (MEAN, ADD: TFLite's integer versions round
                        // differently now and then).
                        let exact = try NPY.read(d.appendingPathComponent(f).path).toFloats()
                        let differing = zip(a, exact).filter { $0 != $1 }.count
                        let refSteps = zip(a, exact).map { abs($0 - $1) }.max() ?? 0
                        line += ", \(differing) of \(a.count) differ from LiteRT's reference kernels"
                        if exec.integerNodes > 0 && (exec.floatQuantizedNodes == 0 ? differing > 0 : refSteps > 1) {
                            failures.append("\(m) \(name): \(differing) elements differ from LiteRT's reference kernels, up to \(refSteps) steps")
                        }
                    }
                    report.append(line)
                    continue
                }
                let scale = max(b.map { abs($0) }.max() ?? 0, 1e-6)
                var worst: Float = 0
                for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
                let rel = worst / scale
                // Where the reference disagrees with itself (kernel variants) by more, allow twice that.
                let spread = Float(o["spread"] as? Double ?? 0)
                let tolerance = max(1e-4, 2 * spread)
                report.append(String(format: "%@ %@: max abs diff %.3g, relative %.3g (reference spread %.3g)", m, name, worst, rel, spread))
                if !(rel <= tolerance) { failures.append(String(format: "%@ %@: relative difference %.3g > %.3g", m, name, rel, tolerance)) }
            }
        }
        return (report, skipped, failures)
    }
}
