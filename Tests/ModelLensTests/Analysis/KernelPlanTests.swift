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
