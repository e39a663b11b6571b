import Foundation
import ModelAnalysis
import ModelIR
import ModelImport

/// Fits a profile to timings of a runtime or device ModelLens does not run (onnxruntime on a
/// server, LiteRT on a phone): whole-model latencies, and optionally the runtime's per-op
/// profile. The base profile's kernel models give each kernel's time up to a factor per kernel
/// family; the fit finds those factors and a per-kernel overhead:
///
///     t(model) = Σ_family s_family × Σ_{kernels of the family} base(kernel) + c × kernels
///
/// with every s and c non-negative, minimising the squared relative error. A per-op profile gives
/// one sample per kernel it names (t(kernel) = s_family × base(kernel) + c), and a class with
/// `minClassSamples` of them its own factor on top of its family's. With fewer than
/// three samples per parameter, one factor scales everything the base predicts (its dispatch
/// included), so that a handful of whole-model timings is fitted, not interpolated. The fitted profile is the base
/// with each class's coefficients scaled by its family's factor, and c as its dispatch cost per
/// kernel (`KernelCostModel.dispatchClass`).
public enum TimingsFit {
    public static let families = ["conv", "depthwise", "gemm", "other"]
    public static var parameters: Int { families.count + 1 }

    public struct Row: Sendable {
        public var line: Int
        public var model: String
        public var milliseconds: Double
        public var opProfile: String?
    }

    public struct FitError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    public struct Residual: Sendable {
        public var model: String
        public var measuredMs: Double
        public var baseMs: Double
        public var fittedMs: Double
    }

    public struct Result {
        public var profile: HardwareProfile
        public var factors: [String: Double]
        /// Classes with enough per-op samples: their factor on top of their family's.
        public var classFactors: [String: Double]
        public var perKernelSeconds: Double
        public var samples: Int
        public var opSamples: Int
        public var residuals: [Residual]
        /// One factor for all families (too few samples for one each).
        public var sharedFactor: Bool
    }

    /// Reads `model,milliseconds[,op_profile]` rows (a header row and `#` comments are skipped;
    /// paths are relative to the CSV's folder).
    public static func readCSV(_ path: String) throws -> [Row] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw FitError("\(path): cannot read the timings file")
        }
        let dir = (path as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") || dir.isEmpty ? p : (dir as NSString).appendingPathComponent(p) }
        var rows: [Row] = []
        var first = true
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 2 || fields.count == 3, !fields[0].isEmpty else {
                throw FitError("\(path) line \(i + 1): expected model,milliseconds[,op_profile], got \(fields.count) field(s)")
            }
            defer { first = false }
            guard let ms = Double(fields[1]) else {
                if first { continue }  // a header row
                throw FitError("\(path) line \(i + 1): '\(fields[1])' is not a number of milliseconds")
            }
            guard ms > 0, ms.isFinite else { throw FitError("\(path) line \(i + 1): milliseconds must be positive, got \(fields[1])") }
            rows.append(Row(line: i + 1, model: resolve(fields[0]), milliseconds: ms,
                            opProfile: fields.count == 3 && !fields[2].isEmpty ? resolve(fields[2]) : nil))
        }
        guard !rows.isEmpty else { throw FitError("\(path): no timings (rows of model,milliseconds[,op_profile])") }
        return rows
    }

    static func family(_ cls: String) -> Int {
        if cls.hasPrefix("conv.depthwise") { return 1 }
        if cls.hasPrefix("conv") { return 0 }
        if cls.hasPrefix("gemm") { return 2 }
        return 3
    }

    /// The base's model for a kernel class, or the roofline's costs summed (a profile without
    /// kernel models): a call, FLOPs at the peak, every byte at the DRAM bandwidth.
    static func baseModel(_ base: HardwareProfile, threads: Int, _ f: KernelFeatures) -> KernelCostModel {
        if let m = base.kernelModels(threads: threads), let k = f.model(in: m) { return k }
        return rooflineModel(base)
    }

    static func rooflineModel(_ p: HardwareProfile) -> KernelCostModel {
        KernelCostModel(coefficients: ["call": p.launchOverheadSeconds, "flops": 1 / p.peak(for: "float32"),
                                       "bytes": 1 / p.dramBytesPerSecond, "weightBytes": 1 / p.dramBytesPerSecond],
                        samples: 0, medianAbsError: 0)
    }

    public static func fit(_ rows: [Row], base: HardwareProfile, threads: Int, progress: (String) -> Void = { _ in }) throws -> Result {
        var x: [[Double]] = [], y: [Double] = [], weight: [Double] = []
        var perModel: [(row: Row, columns: [Double])] = []
        // Each model's kernels (class, family, base seconds), and each per-op sample's.
        var modelKernels: [[(cls: String, fam: Int, t: Double)]] = []
        var opRows: [(cls: String, fam: Int, t: Double, seconds: Double)] = []
        var opSamples = 0
        var classesSeen: [String: [String]] = [:]
        for (k, row) in rows.enumerated() {
            progress("model \(k + 1)/\(rows.count): \((row.model as NSString).lastPathComponent)")
            let model: Model
            do { model = try ModelImporter.load(row.model) } catch {
                throw FitError("line \(row.line): model '\(row.model)': \(error)")
            }
            let report = ModelAnalyzer.analyze(model, profile: base, threads: threads)
            var columns = [Double](repeating: 0, count: parameters)
            var kernelColumns: [String: (String, Int, Double)] = [:]
            var kernels: [(cls: String, fam: Int, t: Double)] = []
            for (step, f) in zip(report.kernels, report.kernelFeatures) {
                classesSeen[f.kernelClass] = f.fallbackClasses
                let t = baseModel(base, threads: threads, f).seconds(f)
                columns[family(f.kernelClass)] += t
                columns[parameters - 1] += 1
                kernels.append((f.kernelClass, family(f.kernelClass), t))
                // A runtime names a kernel after one of its nodes, or (onnxruntime's NCHWc kernels,
                // fused groups) after the value the group outputs.
                for n in [step.node] + step.fused {
                    kernelColumns[report.nodes[n].name] = (f.kernelClass, family(f.kernelClass), t)
                    for o in model.graph.nodes[n].outputs { kernelColumns[model.graph.values[o].name] = (f.kernelClass, family(f.kernelClass), t) }
                }
            }
            modelKernels.append(kernels)
            x.append(columns)
            y.append(row.milliseconds / 1000)
            weight.append(1)
            let modelRow = x.count - 1
            perModel.append((row, columns))
            if let op = row.opProfile {
                var matched = 0
                defer { weight[modelRow] = Double(max(1, matched)) }
                for (name, seconds) in try OpProfile.read(op) {
                    let plain = name.hasSuffix("_nchwc") ? String(name.dropLast("_nchwc".count)) : name
                    guard let (cls, fam, t) = kernelColumns[name] ?? kernelColumns[plain], seconds > 0 else { continue }
                    opRows.append((cls, fam, t, seconds))
                    var c = [Double](repeating: 0, count: parameters)
                    c[fam] = t
                    c[parameters - 1] = 1
                    x.append(c)
                    y.append(seconds)
                    weight.append(1)
                    opSamples += 1
                    matched += 1
                }
            }
        }
        // A model's own latency weighs as much as all its per-op rows together: the ops a
        // runtime reports under names we cannot place, and its time between ops, are in it alone.
        let shared = x.count < 3 * parameters
        guard x.count >= (shared ? 3 : parameters) else {
            throw FitError("\(x.count) sample(s): give at least 3 models, or per-op profiles")
        }
        var coef: [Double]
        var classFactors: [String: Double] = [:]
        if shared {
            // Few samples: one factor for everything the base predicts, its dispatch included.
            let dispatch = base.kernelModels(threads: threads)?[KernelCostModel.dispatchClass]?.coefficients["call"] ?? 0
            let collapsed = x.map { [$0[0..<(parameters - 1)].reduce(0, +) + dispatch * $0[parameters - 1]] }
            guard let c = CostFit.nonNegativeRelativeFit(collapsed, y, weights: weight), c[0] > 0 else { throw FitError("the timings do not determine the factor") }
            coef = [Double](repeating: c[0], count: parameters - 1) + [dispatch * c[0]]
        } else {
            guard let c = CostFit.nonNegativeRelativeFit(x, y, weights: weight) else { throw FitError("the timings do not determine the parameters (every model the same mix of kernels?)") }
            coef = c
            // Within a family the runtime's kernels need not keep our kernels' proportions
            // (onnxruntime's 1x1 and 3x3 convolutions, its LayerNorm against our chain of
            // reductions): a class with enough per-op samples gets its own factor on top of its
            // family's, the median of its samples' measured / fitted time.
            var byClass: [String: [Double]] = [:]
            for r in opRows {
                let fitted = coef[r.fam] * r.t + coef[parameters - 1]
                if fitted > 0 { byClass[r.cls, default: []].append(r.seconds / fitted) }
            }
            for (cls, ratios) in byClass where ratios.count >= minClassSamples { classFactors[cls] = median(ratios) }
            // Per-op rows set the mix; the whole-model latencies set the scale. A runtime's per-op
            // times leave out what it does between ops and the ops it names differently, so a fit
            // dominated by them runs short: one factor k, the median over the models of measured /
            // predicted (the median: a small model's overheads should not set a large one's scale).
            if opSamples > 0 {
                let r = zip(perModel, modelKernels).map { m, kernels in
                    (m.row.milliseconds / 1000) / max(1e-30, kernels.reduce(0) { $0 + (classFactors[$1.cls] ?? 1) * coef[$1.fam] * $1.t } + coef[parameters - 1] * Double(kernels.count))
                }
                let k = median(r)
                if k.isFinite, k > 0 { coef = coef.map { $0 * k } }
            }
        }
        var profile = base
        profile.id = "fitted-from-timings"
        profile.name = "\(base.name), fitted to \(rows.count) measured model(s)"
        var fitted: [String: KernelCostModel] = [:]
        var classes = classesSeen
        for (cls, _) in base.kernelModels(threads: threads) ?? [:] where cls != KernelCostModel.dispatchClass && classes[cls] == nil { classes[cls] = [] }
        for (cls, fallbacks) in classes {
            let f = KernelFeatures(kernelClass: cls, fallbackClasses: fallbacks)
            var m = baseModel(base, threads: threads, f)
            let s = coef[family(cls)] * (classFactors[cls] ?? 1)
            m.coefficients = m.coefficients.mapValues { $0 * s }.filter { $0.value > 0 }
            fitted[cls] = m
        }
        // The wider classes stand in for kernels of classes no model in the timings had.
        for (cls, fb) in [("elementwise", 3), ("movement", 3), ("pool", 3), ("reduce", 3), ("resize", 3), ("gemm", 2)] where fitted[cls] == nil {
            var m = base.kernelModels(threads: threads)?[cls] ?? rooflineModel(base)
            m.coefficients = m.coefficients.mapValues { $0 * coef[fb] }.filter { $0.value > 0 }
            fitted[cls] = m
        }
        fitted[KernelCostModel.dispatchClass] = KernelCostModel(coefficients: ["call": coef[parameters - 1]], samples: x.count, medianAbsError: 0)
        profile.kernels = [String(threads): fitted]
        profile.sources["kernels.\(threads)"] = "modellens calibrate --from-timings: \(rows.count) model(s), \(opSamples) per-op sample(s); base \(base.id); factors " +
            zip(families, coef).map { String(format: "%@ %.3g", $0, $1) }.joined(separator: ", ") + String(format: ", %.2f us per kernel", coef[parameters - 1] * 1e6) +
            (classFactors.isEmpty ? "" : "; classes " + classFactors.sorted { $0.key < $1.key }.map { String(format: "%@ x%.3g", $0.key, $0.value) }.joined(separator: ", "))
        let residuals = zip(perModel, modelKernels).map { m, kernels in
            Residual(model: m.row.model, measuredMs: m.row.milliseconds, baseMs: m.columns[0..<(parameters - 1)].reduce(0, +) * 1000,
                     fittedMs: (kernels.reduce(0) { $0 + (classFactors[$1.cls] ?? 1) * coef[$1.fam] * $1.t } + coef[parameters - 1] * Double(kernels.count)) * 1000)
        }
        var factors: [String: Double] = [:]
        for (k, f) in families.enumerated() { factors[f] = coef[k] }
        return Result(profile: profile, factors: factors, classFactors: classFactors, perKernelSeconds: coef[parameters - 1], samples: x.count,
                      opSamples: opSamples, residuals: residuals, sharedFactor: shared)
    }

    /// Per-op samples a kernel class needs for a factor of its own.
    public static let minClassSamples = 8

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// A runtime's per-op profile: the seconds each node took, median over the runs it holds.
enum OpProfile {
    /// onnxruntime's JSON trace (`SessionOptions.enable_profiling`): events of category "Node"
    /// named `<node>_kernel_time` with their duration in microseconds.
    static func read(_ path: String) throws -> [(String, Double)] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TimingsFit.FitError("\(path): cannot read the op profile") }
        guard let events = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
            throw TimingsFit.FitError("\(path): not an onnxruntime profile (a JSON array of trace events); LiteRT's op profiling output is not read yet")
        }
        var byNode: [String: [Double]] = [:]
        for e in events where (e["cat"] as? String) == "Node" {
            guard let name = e["name"] as? String, name.hasSuffix("_kernel_time"), let dur = (e["dur"] as? NSNumber)?.doubleValue else { continue }
            byNode[String(name.dropLast("_kernel_time".count)), default: []].append(dur / 1e6)
        }
        return byNode.map { ($0.key, $0.value.sorted()[$0.value.count / 2]) }
    }
}
