import Foundation
import ModelLensTestSupport
import XCTest

/// `modellens run` holds no more memory than the weights as its kernels read them, the planner's
/// arena and what the model's graph, inputs and outputs take. ResNet50 exercises BatchNorm folding
/// (no second copy of the weights), VGG16 a single 411 MB initializer (no copy of it while
/// importing); mediapipe's fp16 models the widening of their weights (no fp16 copy left beside the
/// fp32 one), pose_detection and face_detection_full_range_sparse their sparse weights (no dense
/// form left behind).
///
/// What is measured does not depend on the CPU: the bytes in use from malloc (once imported and
/// after the run) and the model file's resident pages, which a given plan makes the same on any
/// host with the same kernel set. The process's resident set is checked only against a loose
/// bound that a second copy of the weights or of the arena would break: it also counts code
/// pages, thread stacks and OpenBLAS's buffers, which differ from one CPU model to another (a
/// bound of 10% on it held on one host and failed on another, by 0.1 MB of 6.2).
final class RunMemoryTests: XCTestCase {
    struct Usage {
        var weights: Double      // as the kernels read them
        var arena: Double
        var inputs: Double
        var rss: Double          // process peak
        var importedHeap: Double
        var heap: Double         // after the run
        var filePages: Double
    }

    /// The figures of `run`'s summary line, in bytes.
    func measure(_ path: String) throws -> Usage {
        let r = try TestSupport.run(["run", path, "--random", "--threads", "1"], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        guard let line = r.stdout.split(separator: "\n").last(where: { $0.hasPrefix("ran in") }) else {
            throw XCTSkip("no summary line in: \(r.stdout)")
        }
        func value(after label: String) throws -> Double {
            guard let range = line.range(of: label + " ") else { throw XCTSkip("no '\(label)' in: \(line)") }
            let parts = line[range.upperBound...].split(separator: " ")
            guard parts.count >= 2, let v = Double(parts[0]) else { throw XCTSkip("'\(label)' not measured here: \(line)") }
            let unit = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: ",;"))
            let units: [String: Double] = ["B": 1, "KB": 1024, "MB": 1048576, "GB": 1073741824]
            return v * (units[unit] ?? .nan)
        }
        return Usage(weights: try value(after: "in the file,"), arena: try value(after: "peak arena"), inputs: try value(after: "inputs"),
                     rss: try value(after: "process peak RSS"), importedHeap: try value(after: "heap in use"),
                     heap: try value(after: "once imported,"), filePages: try value(after: "file pages resident"))
    }

    /// Checks `model` against the tiny sample `base` of the same format (the same importer and
    /// runtime code, next to no weights):
    /// - importing holds the graph, not the weights: the heap grows by at most 2 MB (MobileNetV2's
    ///   graph takes 0.9) plus 1% of the weights (they stay in the mapped file until the plan
    ///   reads them);
    /// - the plan and the run add at most the weights as the kernels read them, the arena (which
    ///   holds the outputs) and the inputs, and 10% of the weights and arena for the plan's own
    ///   structures; pages of the file still resident count with them;
    /// - the peak resident set stays within 25% over the weights and arena plus 4 MB (code pages,
    ///   thread stacks, OpenBLAS buffers): a second copy of either breaks it.
    func check(_ model: String, against base: Usage, allowance: Double = 2 * 1048576) throws {
        let u = try measure(model)
        let name = (model as NSString).lastPathComponent
        let mb = { (x: Double) in String(format: "%.1f", x / 1048576) }
        let importLimit = allowance + 0.01 * u.weights
        let runLimit = 1.1 * (u.weights + u.arena) + u.inputs - base.inputs
        let rssLimit = 1.25 * (u.weights + u.arena) + 4 * 1048576
        let imported = u.importedHeap - base.importedHeap
        let ran = u.heap - u.importedHeap - (base.heap - base.importedHeap) + u.filePages
        print("\(name): weights \(mb(u.weights)) MB, arena \(mb(u.arena)) MB; heap +\(mb(imported)) MB on import (of \(mb(importLimit))), "
              + "+\(mb(ran)) MB by the run with file pages (of \(mb(runLimit))); peak RSS +\(mb(u.rss - base.rss)) MB (of \(mb(rssLimit)))")
        XCTAssertLessThanOrEqual(imported, importLimit, "\(name): heap after import")
        XCTAssertLessThanOrEqual(ran, runLimit, "\(name): heap and file pages after the run")
        XCTAssertLessThanOrEqual(u.rss - base.rss, rssLimit, "\(name): peak RSS")
    }

    func testONNXModelsHoldTheirWeightsAndArenaOnce() throws {
        let models = ["resnet50.onnx", "vgg16.onnx", "mobilenet_v2.onnx"].map { TestSupport.models.appendingPathComponent("torchvision/\($0)").path }
        guard models.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { throw XCTSkip("run Tools/export-torchvision.py") }
        let base = try measure(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        for m in models { try check(m, against: base) }
    }

    /// Every mediapipe model without a custom op. Their fp16 weights are widened to fp32 at plan
    /// time (counted as weights); the file's fp16 bytes must not stay resident.
    func testTFLiteModelsHoldTheirWeightsAndArenaOnce() throws {
        let names = ["palm_detection__palm_detection_full", "palm_detection__palm_detection_lite", "face_landmark__face_landmark",
                     "face_detection__face_detection_short_range", "face_detection__face_detection_full_range_sparse",
                     "hand_landmark__hand_landmark_full", "hand_landmark__hand_landmark_lite", "holistic_landmark__hand_recrop",
                     "iris_landmark__iris_landmark", "pose_detection__pose_detection", "pose_landmark__pose_landmark_full"]
        let models = names.map { TestSupport.models.appendingPathComponent("mediapipe/mediapipe__modules__\($0).tflite").path }
        guard models.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { throw XCTSkip("run Tools/fetch-models.sh") }
        let base = try measure(TestSupport.samples.appendingPathComponent("tiny_cnn.tflite").path)
        for m in models { try check(m, against: base) }
    }
}
