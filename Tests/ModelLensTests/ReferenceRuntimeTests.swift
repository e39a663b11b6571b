import Foundation
import ModelImport
import ModelIR
import ModelRuntime
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
    /// Adds and PRelu, against the same references, on both paths.
    func testBothKernelPathsMatchReferenceRuntimes() throws {
        let models = ["mobilenet_v2", "googlenet", "resnet50", "mediapipe__modules__palm_detection__palm_detection_full.tflite",
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
                    // Quantized outputs: within one quantization step of the reference.
                    let steps = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                    report.append(String(format: "%@ %@: %.0f quantization step(s) from the reference", m, name, steps))
                    if steps > 1 { failures.append(String(format: "%@ %@: %.0f quantization steps", m, name, steps)) }
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
