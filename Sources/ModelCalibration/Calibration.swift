import Foundation
import ModelAnalysis
import ModelExport
import ModelIR
import ModelImport
import ModelRuntime

/// Calibrates a hardware profile on this machine: times the benchmark networks on the executor
/// (NCHW as imported from ONNX, NHWC as converted to TFLite), kernel by kernel, and fits one
/// cost model per kernel class. The protocol repeats on a noisy machine: every network is
/// warmed up, then timed in `rounds` rounds interleaved across networks, and each kernel's time
/// is the minimum of its round medians.
public struct Calibration {
    public struct Options: Sendable {
        public var threads = 1
        public var quick = false
        public var rounds = 5
        public var runsPerRound = 7
        public init() {}
    }

    public struct Result {
        public var models: [String: KernelCostModel]
        /// Kernels timed, and networks.
        public var samples: Int
        public var networks: Int
        /// How far the timing can be trusted: over networks, the median of (second-smallest /
        /// smallest round median of the network's time − 1). The protocol keeps the smallest; when
        /// the next one is close, the smallest was no lucky outlier and a rerun finds it again.
        public var spread: Double
        public var seconds: Double
        /// Rounds, and the networks' time: over networks, the smallest of its round medians,
        /// summed (what two passes of one thread count are compared by).
        public var rounds = 0
        public var networkSeconds = 0.0
        /// Per-kernel time of each class, measured and predicted by the fit, for the report.
        public var residuals: [(kernelClass: String, measured: Double, predicted: Double)]
        /// Every kernel timed: its network, features and time (what the fits saw).
        public var kernels: [(network: String, kernel: String, features: KernelFeatures, seconds: Double)] = []
    }

    public struct CalibrationError: Error, CustomStringConvertible {
        public let description: String
    }

    struct Timed {
        var name: String
        var executor: Executor
        var feeds: [String: RTensor]
        var kernels: [KernelStep]
        var features: [KernelFeatures]
        var kernelNames: [String]
        var rounds: [[Double]] = []    // per round, per kernel: median seconds
        var totals: [Double] = []      // per round: median of the whole run (with per-kernel timing)
    }

    /// The benchmark networks, written and imported as a user's model would be (NCHW, from
    /// ONNX) and converted to TFLite (NHWC): what every thread count plans and times.
    public struct Models {
        fileprivate var models: [(name: String, model: Model)]
        public var count: Int { models.count }
    }

    /// The benchmark networks planned and analysed for one thread count, built once and timed in
    /// each pass (building takes 8-12 s on a 2-core host, a third of a pass).
    public final class Networks {
        let threads: Int
        fileprivate var timed: [Timed]
        fileprivate init(threads: Int, timed: [Timed]) { self.threads = threads; self.timed = timed }
    }

    public static func models(_ options: Options, progress: (String) -> Void) throws -> Models {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("modellens-calibrate-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let points = BenchmarkNetworks.design(quick: options.quick)
        var models: [(name: String, model: Model)] = []
        for (i, p) in points.enumerated() {
            progress("writing network \(i + 1)/\(points.count) (\(p.channels) channels at \(p.resolution)x\(p.resolution))")
            func imported(_ net: BenchmarkNetwork, _ name: String) throws -> Model {
                let path = dir.appendingPathComponent("\(name).onnx").path
                var writer = ONNXWriter(opsets: net.model.opsets)
                writer.irVersion = 8
                try writer.write(net.model.graph, to: path)
                return try ModelImporter.load(path)
            }
            let net = BenchmarkNetworks.network(p, seed: UInt64(1000 + i))
            let onnx = try imported(net, net.name)
            let tflitePath = dir.appendingPathComponent("\(net.name).tflite").path
            var convert = Converter.Options()
            convert.keepIOLayout = false
            try Converter.convert(try imported(BenchmarkNetworks.network(p, seed: UInt64(1000 + i), forTFLite: true), "\(net.name)-tflite"),
                                  to: tflitePath, options: convert)
            let tflite = try ModelImporter.load(tflitePath)
            models.append(("\(net.name)-nchw", onnx))
            models.append(("\(net.name)-nhwc", tflite))
        }
        return Models(models: models)
    }

    /// `host`: this machine's measured profile (its caches place each kernel's spill).
    public static func build(_ models: Models, threads: Int, host: HardwareProfile, progress: (String) -> Void) throws -> Networks {
        var timed: [Timed] = []
        for (i, (name, m)) in models.models.enumerated() {
            progress("planning network \(i + 1)/\(models.count)")
            let exec = try Executor(model: m, threads: threads)
            let report = ModelAnalyzer.analyze(m, profile: host, threads: threads)
            timed.append(Timed(name: name, executor: exec, feeds: inputs(m),
                               kernels: report.kernels, features: report.kernelFeatures,
                               kernelNames: report.kernels.map { report.nodes[$0.node].name }))
        }
        return Networks(threads: threads, timed: timed)
    }

    /// Times networks built by `build` (for the same thread count) and fits the classes.
    public static func run(_ options: Options, _ networks: Networks, progress: (String) -> Void) throws -> Result {
        precondition(networks.threads == options.threads, "networks built for \(networks.threads) thread(s), timed with \(options.threads)")
        let start = Date()
        var timed = networks.timed
        for i in timed.indices { (timed[i].rounds, timed[i].totals) = ([], []) }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        for i in timed.indices { for _ in 0..<2 { _ = try timed[i].executor.run(timed[i].feeds, recycleOutputs: true) } }
        for round in 0..<options.rounds {
            for i in timed.indices {
                progress("round \(round + 1)/\(options.rounds): network \(i + 1)/\(timed.count)")
                var perKernel = [[Double]](repeating: [], count: timed[i].kernels.count)
                var totals: [Double] = []
                for _ in 0..<options.runsPerRound {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = try timed[i].executor.run(timed[i].feeds, profile: true, recycleOutputs: true)
                    totals.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                    let seconds = timed[i].executor.nodeSeconds
                    for (k, step) in timed[i].kernels.enumerated() {
                        perKernel[k].append(([step.node] + step.fused).reduce(0) { $0 + (seconds[$1] ?? 0) })
                    }
                }
                timed[i].rounds.append(perKernel.map(median))
                timed[i].totals.append(median(totals))
            }
        }
        var byClass: [String: [(features: KernelFeatures, seconds: Double)]] = [:]
        var byFallback: [String: [(features: KernelFeatures, seconds: Double)]] = [:]
        var samples = 0
        var kernels: [(network: String, kernel: String, features: KernelFeatures, seconds: Double)] = []
        for t in timed {
            // Each kernel's minimum over the rounds (the steadiest estimate of it), scaled so that
            // the network's kernels sum to what they took in its best round (the smallest median
            // of whole runs): a model's latency is measured so (the minimum of its round medians),
            // and the kernels' own minima, each from whichever round was luckiest for it, sum to
            // less than any round took.
            let best = t.totals.indices.min { t.totals[$0] < t.totals[$1] } ?? 0
            let minima = t.features.indices.map { k in t.rounds.map { $0[k] }.min() ?? 0 }
            let scale = t.rounds.isEmpty ? 1 : t.rounds[best].reduce(0, +) / max(1e-12, minima.reduce(0, +))
            for (k, f) in t.features.enumerated() {
                let s = minima[k] * scale
                guard s > 0 else { continue }
                samples += 1
                kernels.append((t.name, t.kernelNames[k], f, s))
                byClass[f.kernelClass, default: []].append((f, s))
                if !Self.notInWiderClass.contains(f.kernelClass) { for fb in f.fallbackClasses { byFallback[fb, default: []].append((f, s)) } }
            }
        }
        // What a run costs beyond its kernels, over the networks: the whole run's time less its
        // kernels' is a cost per kernel (the executor's step from one to the next, about 0.4 us
        // on both hosts measured) plus a share of the run (1-3%: a run's median exceeds the sum of
        // its kernels' medians). Fitted as overhead = call × kernels + share × kernel time,
        // each network's error relative to its time, so that a 0.2 ms network counts as much as a
        // 50 ms one; a per-kernel cost alone had put 1.2 us on every kernel, which the larger
        // networks' share set, and over-predicted models of many small kernels by 15%.
        let overheads = timed.map { t -> (kernels: Double, seconds: Double, overhead: Double) in
            let sums = t.rounds.indices.map { r in t.rounds[r].reduce(0, +) }
            let best = zip(t.totals, sums).min { $0.0 < $1.0 }!
            return (Double(t.kernels.count), best.1, max(0, best.0 - best.1))
        }
        progress("fitting \(byClass.count) kernel classes on \(samples) kernels")
        var models: [String: KernelCostModel] = [:]
        for (cls, s) in byFallback { if let m = CostFit.fit(s, weights: CostFit.hasWeights(cls)) { models[cls] = m } }
        for (cls, s) in byClass { if let m = CostFit.fit(s, weights: CostFit.hasWeights(cls)) { models[cls] = m } }
        models[KernelCostModel.dispatchClass] = dispatchModel(overheads)
        var residuals: [(String, Double, Double)] = []
        for (cls, s) in byClass {
            guard let m = s.first?.features.model(in: models) else { continue }
            for (f, sec) in s { residuals.append((cls, sec, m.seconds(f))) }
        }
        let spreads = timed.map { t -> Double in
            let r = t.totals.sorted()
            return r.count > 1 ? r[1] / max(1e-12, r[0]) - 1 : 0
        }
        var result = Result(models: models, samples: samples, networks: timed.count, spread: median(spreads),
                            seconds: Date().timeIntervalSince(start), residuals: residuals, kernels: kernels)
        result.rounds = options.rounds
        result.networkSeconds = timed.reduce(0) { $0 + ($1.totals.min() ?? 0) }
        return result
    }

    /// The dispatch model, call × kernels + share × kernel time, fitted to the networks' overheads
    /// by least squares relative to each network's time, both coefficients non-negative: CostFit's
    /// fit, relative to the overhead o, weighted by (o / time)², minimises Σ ((fit − o) / time)².
    static func dispatchModel(_ networks: [(kernels: Double, seconds: Double, overhead: Double)]) -> KernelCostModel {
        let rows = networks.filter { $0.seconds > 0 && $0.overhead > 0 }
        let coef = CostFit.nonNegativeRelativeFit(rows.map { [$0.kernels, $0.seconds] }, rows.map(\.overhead),
                                                  weights: rows.map { ($0.overhead / $0.seconds) * ($0.overhead / $0.seconds) }) ?? [0, 0]
        let errors = rows.map { abs((coef[0] * $0.kernels + coef[1] * $0.seconds - $0.overhead) / $0.seconds) }.sorted()
        var coefficients: [String: Double] = [:]
        if coef[0] > 0 { coefficients["call"] = coef[0] }
        if coef[1] > 0 { coefficients["share"] = coef[1] }
        return KernelCostModel(coefficients: coefficients, samples: rows.count, medianAbsError: errors.isEmpty ? 0 : errors[errors.count / 2])
    }

    /// Classes left out of their wider class's fit: the transcendental activations cost 5 to 50
    /// times what arithmetic does per element, and the wider `elementwise` model stands in for
    /// ops not calibrated, most of which are arithmetic (BatchNorm, PRelu, Sub, Div, ...).
    static let notInWiderClass: Set<String> = ["elementwise.Sigmoid", "elementwise.Tanh", "elementwise.HardSwish", "elementwise.Exp",
                                               "elementwise.Logistic", "elementwise.Erf", "elementwise.Gelu"]

    /// Seeded random inputs for a model's float inputs.
    static func inputs(_ m: Model) -> [String: RTensor] {
        var feeds: [String: RTensor] = [:]
        var state: UInt64 = 7
        for id in m.graph.inputs {
            let v = m.graph.values[id]
            let shape = v.type.shape.dims?.map { $0.value ?? 1 } ?? [1]
            let t = RTensor.allocate(shape, .float32)
            for i in 0..<t.count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                t.floats[i] = Float(state >> 40) / Float(1 << 24) * 2 - 1
            }
            feeds[v.name] = t
        }
        return feeds
    }
}
