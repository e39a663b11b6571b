import CKernels
@testable import ModelCalibration
import ModelAnalysis
import ModelImport
import ModelIR
import ModelLensTestSupport
import ModelRuntime
import XCTest

/// `calibrate` and calibrated profiles: the fit, the prediction from fitted kernel models, bad
/// profiles, and the command itself (structure only: timings are for `Tools/study.py`).
final class CalibrationTests: XCTestCase {
    /// Samples made from known costs (with ±2% noise) give those costs back.
    func testFitRecoversTheCostsThatMadeTheSamples() throws {
        var rng = SplitMix(seed: 3)
        let truth: [String: Double] = ["call": 2e-6, "flops": 1 / 80e9, "bytes": 1 / 20e9]
        var samples: [(features: KernelFeatures, seconds: Double)] = []
        for _ in 0..<60 {
            var f = KernelFeatures(kernelClass: "conv.pointwise.nchw")
            f.cacheBytes = 1 << 40   // nothing spills: the spill term stays out of the fit
            // Sizes spread over six decades, as a network's kernels are: the per-call cost shows
            // on the small ones, the rates on the large.
            func logUniform(_ lo: Double, _ hi: Double) -> Int { Int(lo * pow(hi / lo, Double(rng.next() % 10_000) / 10_000)) }
            f.flops = logUniform(1e3, 1e9)
            f.bytesRead = logUniform(1e2, 1e7)
            f.bytesWritten = logUniform(1e2, 1e7)
            let noise = 1 + (Double(rng.next() % 4001) / 100_000 - 0.02)
            samples.append((f, truth.reduce(0) { $0 + $1.value * f.terms[$1.key]! } * noise))
        }
        let m = try XCTUnwrap(CostFit.fit(samples))
        XCTAssertEqual(m.samples, 60)
        for (term, c) in truth { XCTAssertEqual(m.coefficients[term] ?? 0, c, accuracy: c * 0.05, term) }
        XCTAssertLessThan(m.coefficients["weightBytes"] ?? 0, 1e-12)
        XCTAssertLessThan(m.medianAbsError, 0.02)
        // Fewer samples than terms + 1: no fit.
        XCTAssertNil(CostFit.fit(Array(samples.prefix(4))))
    }

    /// Networks' overheads made from a known cost per kernel and share of their time (with ±10%
    /// noise) give both back; a share alone, or a call alone, is not mistaken for the other.
    func testDispatchFitSeparatesTheCostPerKernelFromTheShareOfTheRun() {
        var rng = SplitMix(seed: 5)
        func noise() -> Double { 1 + (Double(rng.next() % 2001) / 10_000 - 0.1) }
        func networks(call: Double, share: Double) -> [(kernels: Double, seconds: Double, overhead: Double)] {
            (0..<60).map { i in
                let kernels = Double(40 + i % 20), seconds = 2e-4 * pow(250, Double(i) / 59)
                return (kernels, seconds, (call * kernels + share * seconds) * noise())
            }
        }
        let both = Calibration.dispatchModel(networks(call: 4e-7, share: 0.02))
        XCTAssertEqual(both.coefficients["call"] ?? 0, 4e-7, accuracy: 0.4e-7)
        XCTAssertEqual(both.coefficients["share"] ?? 0, 0.02, accuracy: 0.002)
        XCTAssertLessThan(both.medianAbsError, 0.01)
        let call = Calibration.dispatchModel(networks(call: 1e-6, share: 0))
        XCTAssertEqual(call.coefficients["call"] ?? 0, 1e-6, accuracy: 1e-7)
        XCTAssertLessThan(call.coefficients["share"] ?? 0, 0.001)
        let share = Calibration.dispatchModel(networks(call: 0, share: 0.03))
        XCTAssertEqual(share.coefficients["share"] ?? 0, 0.03, accuracy: 0.003)
        XCTAssertLessThan(share.coefficients["call"] ?? 0, 2e-8)
    }

    /// MobileNetV2's kernels sort into the classes its published architecture implies (paper 002's
    /// table: 17 bottlenecks, each a 3x3 depthwise, stride 2 at the first block of 4 stages; a
    /// 1x1 expansion in all but the first, a 1x1 projection in each, the final 1x1 conv to 1280;
    /// one 3x3 stride-2 stem; one classifier), in both layouts.
    func testMobileNetV2KernelClassesFollowItsArchitecture() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        let model = try ModelImporter.load(path, options: .init(inputShapes: ["input": Shape(known: [1, 3, 224, 224])]))
        let r = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve(HardwareProfile.defaultID))
        var count: [String: Int] = [:]
        for f in r.kernelFeatures { count[f.kernelClass, default: 0] += 1 }
        XCTAssertEqual(count["conv.depthwise.k3.nchw"], 13, "\(count)")
        XCTAssertEqual(count["conv.depthwise.s2.k3.nchw"], 4, "\(count)")
        XCTAssertEqual(count["conv.pointwise.nchw"], 16 + 17 + 1, "\(count)")
        // The stem: packed or not (".unpacked") as the kernels' own predicate says.
        XCTAssertEqual(count.filter { $0.key.hasPrefix("conv.spatial.nchw") }.values.reduce(0, +), 1, "\(count)")
        XCTAssertEqual(count["gemm.Gemm"], 1, "\(count)")
        // Every depthwise kernel has one input and one output channel per group, 3x3.
        for f in r.kernelFeatures where f.kernelClass.hasPrefix("conv.depthwise") {
            XCTAssertEqual([f.inChannels, f.outChannels, f.kernelH, f.kernelW], [1, 1, 3, 3])
        }
    }

    /// Convolutions to one output pixel run as the matrix-vector product of a batch-1
    /// fully-connected layer, and are classed so: MobileNetV3-Small's squeeze-and-excitation
    /// blocks (9 of its 11 bottlenecks in the paper's Table 2, each a reduce and an expand 1x1
    /// convolution on the pooled pixel) give 18 such kernels, standing in for by the Gemm class.
    func testOnePixelConvolutionsAreClassedAsMatrixVectorProducts() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: one-pixel convolutions run the portable path") }
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v3_small.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        let model = try ModelImporter.load(path, options: .init(inputShapes: ["input": Shape(known: [1, 3, 224, 224])]))
        let r = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve(HardwareProfile.defaultID))
        let gemv = r.kernelFeatures.filter { $0.kernelClass == "conv.gemv" }
        XCTAssertEqual(gemv.count, 18)
        for f in gemv {
            XCTAssertEqual([f.kernelH, f.kernelW, f.outH, f.outW], [1, 1, 1, 1])
            XCTAssertEqual(f.fallbackClasses.first, "gemm.Gemm")
        }
    }

    /// NHWC convolutions with short sums (one group, kH * kW * C <= 64) are classed apart where the
    /// core issues one 512-bit FMA a cycle, since they run another GEMM there; elsewhere they keep
    /// the packed GEMM's class. palm_detection's 1x1 layers from 32-64 channels and its 1x1 layers
    /// from 128 and more, with the choice forced both ways.
    func testShortSumNHWCConvolutionsFollowTheGEMMThatRuns() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: the packed GEMM is not used") }
        let path = TestSupport.models.appendingPathComponent("mediapipe/mediapipe__modules__palm_detection__palm_detection_full.tflite").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        defer { mlk_set_fma512_pipes(0) }
        let model = try ModelImporter.load(path)
        for pipes: Int32 in [1, 2] {
            mlk_set_fma512_pipes(pipes)
            let r = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve(HardwareProfile.defaultID))
            var short = 0, long = 0
            for f in r.kernelFeatures where f.kernelClass.hasPrefix("conv.pointwise.nhwc") {
                let k = f.kernelH * f.kernelW * f.inChannels
                XCTAssertEqual(f.kernelClass.hasSuffix(".short"), pipes == 1 && k <= 64, "\(f.kernelClass), k = \(k), \(pipes) pipe(s)")
                if k <= 64 { short += 1 } else { long += 1 }
            }
            XCTAssertGreaterThan(short, 0)
            XCTAssertGreaterThan(long, 0)
        }
    }

    /// The convolutions that run on the integer kernels are classed apart (conv.int8.*), with
    /// their float class standing in where no integer one is fitted: a QDQ sample's fused
    /// convolutions, a QOperator sample's QLinearConvs and a full-integer TFLite sample's
    /// CONV_2D / DEPTHWISE_CONV_2D; the same network in float keeps the float classes.
    func testIntegerConvolutionsHaveTheirOwnClasses() throws {
        func classes(_ file: String) throws -> [String: Int] {
            let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent(file).path)
            let r = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve(HardwareProfile.defaultID))
            var count: [String: Int] = [:]
            for f in r.kernelFeatures where f.kernelClass.hasPrefix("conv.") {
                count[f.kernelClass, default: 0] += 1
                if f.kernelClass.hasPrefix("conv.int8.") { XCTAssertTrue(f.fallbackClasses.first?.hasPrefix("conv.") ?? false, "\(file): \(f.fallbackClasses)") }
            }
            return count
        }
        XCTAssertEqual(try classes("tiny_cnn_qdq.onnx"), ["conv.int8.spatial": 1, "conv.int8.depthwise": 1])
        XCTAssertEqual(try classes("tiny_cnn_qop.onnx"), ["conv.int8.spatial": 1, "conv.int8.depthwise": 1])
        XCTAssertFalse(try classes("tiny_cnn.onnx").keys.contains { $0.hasPrefix("conv.int8") })
        let int8 = try classes("mobilenet_int8.tflite")
        XCTAssertEqual(int8.values.reduce(0, +), 7, "\(int8)")
        XCTAssertTrue(int8.keys.allSatisfy { $0.hasPrefix("conv.int8.") }, "\(int8)")
    }

    /// Pooling kernels are classed by the loop the kernels' own predicate picks (mlk_pool_loop):
    /// ResNet50's 3x3 stride-2 max pool (one column of padding) has its own; GoogLeNet's 13 (3x3
    /// stride 2 without padding, 3x3 stride 1 branch pools, 2x2) run the general one.
    func testPoolingKernelClassesFollowTheLoopThatRuns() throws {
        guard Executor.avx512Available else { throw XCTSkip("no AVX-512 on this CPU: every pool runs the portable loop") }
        var classes: [String: [String: Int]] = [:]
        for name in ["resnet50", "googlenet"] {
            let path = TestSupport.models.appendingPathComponent("torchvision/\(name).onnx").path
            guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
            let model = try ModelImporter.load(path, options: .init(inputShapes: ["input": Shape(known: [1, 3, 224, 224])]))
            let r = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve(HardwareProfile.defaultID))
            for f in r.kernelFeatures where f.kernelClass.hasPrefix("pool.") { classes[name, default: [:]][f.kernelClass, default: 0] += 1 }
        }
        XCTAssertEqual(classes["resnet50"], ["pool.MaxPool.3x3s2": 1, "pool.GlobalAveragePool": 1])
        XCTAssertEqual(classes["googlenet"], ["pool.MaxPool": 13, "pool.GlobalAveragePool": 1])
    }

    /// With kernel models for the thread count asked, each kernel is predicted by its class's
    /// model (or its wider class's); without, the roofline, and the report says which.
    func testCalibratedProfilePredictsEachKernelByItsClass() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        var profile = try HardwareProfile.resolve(HardwareProfile.defaultID)
        let conv = KernelCostModel(coefficients: ["call": 1e-6, "flops": 1e-11], samples: 10, medianAbsError: 0.05)
        let other = KernelCostModel(coefficients: ["call": 3e-6, "bytes": 1e-10], samples: 10, medianAbsError: 0.05)
        profile.kernels = ["1": ["conv.pointwise.nchw": conv, "conv.spatial.nchw": conv, "conv.depthwise.nchw": conv,
                                 "elementwise": other, "movement": other, "pool": other, "gemm": other, "reduce": other, "resize": other]]
        let r = ModelAnalyzer.analyze(model, profile: profile, threads: 1)
        XCTAssertEqual(r.method, "calibrated")
        var expected = 0.0
        for (step, f) in zip(r.kernels, r.kernelFeatures) where r.nodes[step.node].predictedSeconds > 0 || f.flops > 0 {
            guard let m = f.model(in: profile.kernels!["1"]!) else { continue }
            let terms = f.terms
            let hand = m.coefficients.reduce(0) { $0 + $1.value * terms[$1.key]! }
            XCTAssertEqual(r.nodes[step.node].predictedSeconds, hand, accuracy: 1e-15, r.nodes[step.node].name)
            expected += hand
        }
        XCTAssertGreaterThan(expected, 0)
        // The cost between kernels: a per-kernel call plus a share of each kernel's time.
        profile.kernels!["1"]![KernelCostModel.dispatchClass] = KernelCostModel(coefficients: ["call": 5e-7, "share": 0.02], samples: 10, medianAbsError: 0)
        let dispatched = ModelAnalyzer.analyze(model, profile: profile, threads: 1)
        for (a, b) in zip(r.kernels, dispatched.kernels) where r.nodes[a.node].predictedSeconds > 0 {
            XCTAssertEqual(dispatched.nodes[b.node].predictedSeconds, r.nodes[a.node].predictedSeconds * 1.02 + 5e-7, accuracy: 1e-15)
        }
        // Two threads: the profile has no models for them, so the roofline, said so.
        let r2 = ModelAnalyzer.analyze(model, profile: profile, threads: 2)
        XCTAssertEqual(r2.method, "roofline")
        XCTAssertTrue(AnalysisRenderer.render(r2, format: .table, perLayer: false, top: 3).contains("not 2"))
    }

    /// A profile file that is not JSON, lacks a field or carries a negative cost is refused with
    /// the file and the field named.
    func testBadProfilesNameTheFileAndTheField() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calib-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try JSONEncoder().encode(try HardwareProfile.resolve(HardwareProfile.defaultID))
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: good) as? [String: Any])
        func check(_ name: String, _ data: Data, mentions: String) throws {
            let p = dir.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try HardwareProfile.load(p), name) { e in
                XCTAssertTrue("\(e)".contains(p), "\(e)")
                XCTAssertTrue("\(e)".contains(mentions), "\(e)")
            }
        }
        try check("truncated.json", good.prefix(good.count / 2), mentions: "not valid JSON")
        obj.removeValue(forKey: "dramBytesPerSecond")
        try check("missing.json", try JSONSerialization.data(withJSONObject: obj), mentions: "'dramBytesPerSecond'")
        obj["dramBytesPerSecond"] = 1e10
        obj["kernels"] = ["1": ["gemm": ["coefficients": ["flops": -1e-11], "samples": 9, "medianAbsError": 0.1]]]
        try check("negative.json", try JSONSerialization.data(withJSONObject: obj), mentions: "kernels.1.gemm.coefficients.flops")
        obj["kernels"] = ["one": [String: Any]()]
        try check("threads.json", try JSONSerialization.data(withJSONObject: obj), mentions: "kernels.one")
        obj["kernels"] = ["1": ["gemm": ["coefficients": ["cycles": 1e-11], "samples": 9, "medianAbsError": 0.1]]]
        try check("term.json", try JSONSerialization.data(withJSONObject: obj), mentions: "unknown term")
        obj["kernels"] = ["1": ["gemm": ["coefficients": ["share": 0.02], "samples": 9, "medianAbsError": 0.1]]]
        try check("share.json", try JSONSerialization.data(withJSONObject: obj), mentions: "kernels.1.gemm.coefficients.share': unknown term")
        obj.removeValue(forKey: "kernels")
        obj["weightStreamBytesPerSecond"] = ["1": 0.0]
        try check("stream.json", try JSONSerialization.data(withJSONObject: obj), mentions: "weightStreamBytesPerSecond.1")
    }

    /// `calibrate --quick` writes a profile that loads, with a model for every conv class in both
    /// layouts, that `analyze` then uses; on a machine whose timings moved more than it
    /// tolerates, it writes nothing.
    func testCalibrateWritesAProfileThatAnalyzeUses() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calibrate-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("host.json").path
        let samples = dir.appendingPathComponent("samples.csv").path
        let r = try TestSupport.run(["calibrate", "--quick", "-o", out, "--allow-unstable", "--samples", samples], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        // Every kernel timed, one row each: as many as the summary says, with positive seconds.
        let rows = try String(contentsOfFile: samples, encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertGreaterThan(rows.count, 500)
        XCTAssertTrue(rows.allSatisfy { ($0.split(separator: ",").last.flatMap { Double($0) } ?? 0) > 0 })
        XCTAssertTrue(r.stdout.contains("\(rows.count) kernels timed"), r.stdout)
        let p = try HardwareProfile.load(out)
        XCTAssertGreaterThan(p.weightStreamBytesPerSecond?["1"] ?? 0, 1e9, "weights streamed from memory, 1 thread")
        let models = try XCTUnwrap(p.kernelModels(threads: 1))
        for layout in ["nchw", "nhwc"] {
            for cls in ["conv.pointwise", "conv.3x3s1", "conv.spatial", "conv.depthwise", "conv.depthwise.s2"] {
                let m = try XCTUnwrap(models["\(cls).\(layout)"], "\(cls).\(layout)")
                XCTAssertGreaterThan(m.samples, m.coefficients.count)
                XCTAssertTrue(m.coefficients.values.allSatisfy { $0 >= 0 })
            }
        }
        XCTAssertTrue(r.stdout.contains("median |error|"), r.stdout)
        let a = try TestSupport.run(["analyze", TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, "--profile", out])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stdout.contains("calibrated kernel models, 1 thread(s)"), a.stdout)
        let refused = dir.appendingPathComponent("refused.json").path
        let u = try TestSupport.run(["calibrate", "--quick", "-o", refused, "--max-spread", "0.0000001"], timeout: 600)
        XCTAssertEqual(u.status, 1)
        XCTAssertTrue(u.stderr.contains("too busy for repeatable timings"), u.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: refused))
    }
}

/// `calibrate --from-timings`: a profile fitted to a runtime's measured latencies.
final class TimingsFitTests: XCTestCase {
    func profileWithKernelModels() throws -> HardwareProfile {
        var profile = try HardwareProfile.resolve(HardwareProfile.defaultID)
        let conv = KernelCostModel(coefficients: ["call": 1e-6, "flops": 1e-11], samples: 10, medianAbsError: 0.05)
        let other = KernelCostModel(coefficients: ["call": 3e-6, "bytes": 1e-10], samples: 10, medianAbsError: 0.05)
        var models: [String: KernelCostModel] = [:]
        for layout in ["nchw", "nhwc"] {
            for c in ["pointwise", "spatial", "depthwise", "3x3s1", "grouped"] { models["conv.\(c).\(layout)"] = conv }
        }
        for c in ["elementwise", "movement", "pool", "gemm", "reduce", "resize", "convtranspose"] { models[c] = other }
        profile.kernels = ["1": models]
        return profile
    }

    func write(_ text: String, _ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("timings-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let p = dir.appendingPathComponent(name).path
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    /// Latencies that are twice what the base predicts come back as a factor of 2 (few models:
    /// one factor shared by the families), and the fitted profile predicts them.
    func testWholeModelTimingsGiveTheirFactorBack() throws {
        let base = try profileWithKernelModels()
        let files = ["tiny_cnn.onnx", "depthwise_cases.onnx", "tiny_cnn.tflite", "tiny_int8.tflite"].map { TestSupport.samples.appendingPathComponent($0).path }
        var csv = "model,milliseconds\n"
        var truth: [String: Double] = [:]
        for f in files {
            let ms = ModelAnalyzer.analyze(try ModelImporter.load(f), profile: base).totals.predictedSeconds * 1000 * 2
            truth[f] = ms
            csv += "\(f),\(ms)\n"
        }
        let rows = try TimingsFit.readCSV(try write(csv, "double.csv"))
        XCTAssertEqual(rows.count, 4)
        let r = try TimingsFit.fit(rows, base: base, threads: 1)
        XCTAssertTrue(r.sharedFactor)
        for f in TimingsFit.families { XCTAssertEqual(r.factors[f]!, 2, accuracy: 0.02, f) }
        for f in files {
            let p = ModelAnalyzer.analyze(try ModelImporter.load(f), profile: r.profile).totals.predictedSeconds * 1000
            XCTAssertEqual(p, truth[f]!, accuracy: truth[f]! * 0.02, f)
        }
    }

    /// onnxruntime's own per-op profile of MobileNetV2 (Tools/make-run-references.py): its node
    /// names find the kernels they ran as, one sample each, and the fit reproduces the profile's
    /// total within 25%.
    func testOnnxruntimeProfileGivesOneSamplePerKernel() throws {
        let trace = TestSupport.refdata.appendingPathComponent("ort-profiles/mobilenet_v2.json").path
        let model = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: trace), FileManager.default.fileExists(atPath: model) else { throw XCTSkip("run make reference") }
        // The trace's total per run, read here independently: the median of each node's kernel time, summed.
        let events = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [[String: Any]])
        var byNode: [String: [Double]] = [:]
        for e in events where e["cat"] as? String == "Node" {
            if let n = e["name"] as? String, n.hasSuffix("_kernel_time"), let d = e["dur"] as? Double { byNode[n, default: []].append(d) }
        }
        let totalMs = byNode.values.reduce(0) { $0 + $1.sorted()[$1.count / 2] } / 1000
        XCTAssertGreaterThan(byNode.count, 40)
        let rows = try TimingsFit.readCSV(try write("\(model),\(totalMs),\(trace)\n", "ort.csv"))
        let r = try TimingsFit.fit(rows, base: try profileWithKernelModels(), threads: 1)
        XCTAssertGreaterThanOrEqual(r.opSamples, 40, "onnxruntime node names should name MobileNetV2's kernels")
        XCTAssertFalse(r.sharedFactor)
        XCTAssertGreaterThan(r.factors["conv"]!, 0)
        XCTAssertGreaterThan(r.factors["depthwise"]!, 0)
        let fitted = ModelAnalyzer.analyze(try ModelImporter.load(model), profile: r.profile).totals.predictedSeconds * 1000
        XCTAssertEqual(fitted, totalMs, accuracy: totalMs * 0.25)
    }

    /// torchvision's MobileNetV2, the test profile, and the model's analysis with it.
    func mobileNetV2Analysis() throws -> (path: String, base: HardwareProfile, model: Model, report: AnalysisReport) {
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        let base = try profileWithKernelModels()
        let model = try ModelImporter.load(path)
        return (path, base, model, ModelAnalyzer.analyze(model, profile: base, threads: 1))
    }

    /// Fits `base` to an onnxruntime-style trace of the model at `path` in which every kernel takes
    /// what `r0` (its analysis with `base`) predicts, twice that where `slowed` says so.
    func fitSlowedTrace(_ path: String, _ r0: AnalysisReport, base: HardwareProfile, name: String,
                        slowed: (KernelFeatures) -> Bool) throws -> TimingsFit.Result {
        var events: [[String: Any]] = []
        var total = 0.0
        for (step, f) in zip(r0.kernels, r0.kernelFeatures) {
            let t = r0.nodes[step.node].predictedSeconds * (slowed(f) ? 2 : 1)
            total += t
            events.append(["cat": "Node", "name": "\(r0.nodes[step.node].name)_kernel_time", "dur": t * 1e6])
        }
        let trace = try write(String(decoding: try JSONSerialization.data(withJSONObject: events), as: UTF8.self), "\(name).json")
        return try TimingsFit.fit(try TimingsFit.readCSV(try write("\(path),\(total * 1000),\(trace)\n", "\(name).csv")), base: base, threads: 1)
    }

    /// A per-op profile in which MobileNetV2's 3x3 stride-1 depthwise kernels take twice what the
    /// base predicts and every other kernel what it predicts: that class gets its own factor, and
    /// the fitted profile predicts its kernels at twice the base and the 1x1 convolutions at once.
    func testAClassWithEnoughPerOpSamplesGetsItsOwnFactor() throws {
        let (path, base, model, r0) = try mobileNetV2Analysis()
        let r = try fitSlowedTrace(path, r0, base: base, name: "classes") { $0.kernelClass == "conv.depthwise.k3.nchw" }
        XCTAssertNotNil(r.classFactors["conv.depthwise.k3.nchw"], "\(r.classFactors)")
        let r1 = ModelAnalyzer.analyze(model, profile: r.profile, threads: 1)
        for (step, f) in zip(r1.kernels, r1.kernelFeatures) where f.kernelClass == "conv.depthwise.k3.nchw" || f.kernelClass == "conv.pointwise.nchw" {
            let want = r0.nodes[step.node].predictedSeconds * (f.kernelClass == "conv.depthwise.k3.nchw" ? 2 : 1)
            XCTAssertEqual(r1.nodes[step.node].predictedSeconds, want, accuracy: want * 0.1, "\(r1.nodes[step.node].name) (\(f.kernelClass))")
        }
    }

    /// onnxruntime renames what its graph optimisations rewrite; each form leads back to the
    /// model's node (the names are those of its traces of Keras, torchvision and QDQ models).
    func testOnnxruntimeKernelNamesLeadBackToTheModelsNodes() {
        XCTAssertTrue(OpProfile.candidates("fused /classifier/classifier.1/Gemm").contains("/classifier/classifier.1/Gemm"))
        XCTAssertTrue(OpProfile.candidates("/features/features.0/features.0.0/Conv_token_1").contains("/features/features.0/features.0.0/Conv"))
        XCTAssertTrue(OpProfile.candidates("conv2d_3_nchwc").contains("conv2d_3"))
        XCTAssertTrue(OpProfile.candidates("/features/features.2/block/block.0.2/Mul/QuickGeluFusion/").contains("/features/features.2/block/block.0.2/Mul"))
        XCTAssertEqual(OpProfile.candidates("Relu_token_x"), ["Relu_token_x"], "only a number follows _token_")
        XCTAssertEqual(OpProfile.candidates("BiasGelu").first, "BiasGelu")
    }

    /// MobileNetV2's trace written as onnxruntime splits what ModelLens fuses: each kernel's time
    /// in two events, its convolution's and its Clip's. The fit sums them: one sample per kernel,
    /// and the fitted profile gives the total back.
    func testOpsOfOneKernelAreSummedIntoOneSample() throws {
        let path = TestSupport.models.appendingPathComponent("torchvision/mobilenet_v2.onnx").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run make models") }
        let base = try profileWithKernelModels()
        let r0 = ModelAnalyzer.analyze(try ModelImporter.load(path), profile: base, threads: 1)
        var events: [[String: Any]] = []
        var total = 0.0, split = 0
        for step in r0.kernels {
            let t = r0.nodes[step.node].predictedSeconds
            total += t
            let parts = [step.node] + step.fused.suffix(1)
            if parts.count == 2 { split += 1 }
            for n in parts { events.append(["cat": "Node", "name": "\(r0.nodes[n].name)_kernel_time", "dur": t / Double(parts.count) * 1e6]) }
        }
        XCTAssertGreaterThan(split, 30, "MobileNetV2's convolutions carry a fused Clip")
        let trace = try write(String(decoding: try JSONSerialization.data(withJSONObject: events), as: UTF8.self), "split.json")
        let r = try TimingsFit.fit(try TimingsFit.readCSV(try write("\(path),\(total * 1000),\(trace)\n", "split.csv")), base: base, threads: 1)
        XCTAssertEqual(r.opSamples, r0.kernels.count)
        for (cls, f) in r.classFactors { XCTAssertEqual(f, 1, accuracy: 0.05, cls) }
        let fitted = ModelAnalyzer.analyze(try ModelImporter.load(path), profile: r.profile, threads: 1).totals.predictedSeconds
        XCTAssertEqual(fitted, total, accuracy: total * 0.05)
    }

    /// A runtime whose 1x1 convolutions take twice our time where their channels are not a
    /// multiple of 64 (MobileNetV2's layers of 16 to 160 channels) and our time elsewhere: the
    /// fit splits the class at 64 channels, and the fitted profile predicts both kinds (and the
    /// 1x1 convolutions' prediction would miss by 2x on one side or the other without the split).
    func testKernelsBelowAChannelAlignmentAreFittedApart() throws {
        let (path, base, model, r0) = try mobileNetV2Analysis()
        func slow(_ f: KernelFeatures) -> Bool { f.kernelClass == "conv.pointwise.nchw" && f.channelAlignment < 64 }
        XCTAssertGreaterThanOrEqual(r0.kernelFeatures.filter(slow).count, 8)
        let r = try fitSlowedTrace(path, r0, base: base, name: "aligned", slowed: slow)
        XCTAssertGreaterThanOrEqual(r0.kernelFeatures.filter { $0.kernelClass == "conv.pointwise.nchw" && !slow($0) }.count, 8)
        // (A split below 32 as well may fit its 7 agreeing samples apart, at the same factor.)
        XCTAssertTrue(r.alignmentSplits.contains(64), "\(r.alignmentSplits) \(r.classFactors)")
        let r1 = ModelAnalyzer.analyze(model, profile: r.profile, threads: 1)
        for (step, f) in zip(r1.kernels, r1.kernelFeatures) where f.kernelClass == "conv.pointwise.nchw" {
            let want = r0.nodes[step.node].predictedSeconds * (slow(f) ? 2 : 1)
            XCTAssertEqual(r1.nodes[step.node].predictedSeconds, want, accuracy: want * 0.1, "\(r1.nodes[step.node].name) (\(f.channelAlignment) channels aligned)")
        }
    }

    /// A class's factor needs 8 per-op samples, or 3 that agree (their median's standard error
    /// within 10%): ResNeXt's 16-channel groups at 0.26-0.27 of our time settle, a scatter does not.
    func testFewSamplesSettleAClassOnlyWhenTheyAgree() {
        XCTAssertTrue(TimingsFit.settled([0.26, 0.27, 0.26, 0.265, 0.27, 0.262]))
        XCTAssertTrue(TimingsFit.settled([1.0, 1.05, 0.98]))
        XCTAssertFalse(TimingsFit.settled([0.5, 1.0, 2.0]))
        XCTAssertFalse(TimingsFit.settled([1.0, 1.0]), "two samples never settle a class")
        XCTAssertTrue(TimingsFit.settled([0.1, 5, 0.3, 2, 9, 0.7, 1, 4]), "eight samples always do")
    }

    func testBadTimingsNameTheFileAndLine() throws {
        let tiny = TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path
        func refused(_ csv: String, _ mentions: String) throws {
            let p = try write(csv, "bad.csv")
            XCTAssertThrowsError(try TimingsFit.fit(try TimingsFit.readCSV(p), base: try profileWithKernelModels(), threads: 1)) { e in
                XCTAssertTrue("\(e)".contains(mentions), "\(e)")
            }
        }
        try refused("model,milliseconds\n\(tiny),12\n\(tiny),abc\n", "line 3: 'abc' is not a number")
        try refused("\(tiny),12,x,y\n", "line 1: expected model,milliseconds[,op_profile]")
        try refused("\(tiny),-3\n", "must be positive")
        try refused("/nonexistent/model.onnx,3\n/nonexistent/model.onnx,4\n/nonexistent/model.onnx,5\n", "model '/nonexistent/model.onnx'")
        try refused("\(tiny),3\n\(tiny),3.1\n", "2 sample(s): give at least 3 models")
        try refused("\(tiny),3,/nonexistent/profile.json\n", "cannot read the op profile")
        try refused("# only a comment\n", "no timings")
    }
}
