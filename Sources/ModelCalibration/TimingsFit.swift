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
/// one sample per kernel of ours that its ops ran in (t(kernel) = s_family × base(kernel) + c,
/// the runtime's ops summed where it splits what we fuse), and a class with `minClassSamples`
/// of them its own factor on top of its family's. With fewer than three samples per parameter,
/// one factor scales everything the base predicts (its dispatch included), so that a handful of
/// whole-model timings is fitted, not interpolated. The fitted profile is the base with each
/// class's coefficients scaled by its family's factor, and c as its dispatch cost per kernel
/// (`KernelCostModel.dispatchClass`).
public enum TimingsFit {
    /// Families whose kernels another runtime may run at a different speed from ours as a whole:
    /// onnxruntime's elementwise ops run at about twice our time and its shape ops at ours, and
    /// one factor for both (the `other` family before the split) came out at 0.08.
    public static let families = ["conv", "depthwise", "gemm", "elementwise", "pool", "movement", "other"]
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
        /// Convolutions with channels not a multiple of these were fitted apart
        /// (`<class>.under<N>`, N the smallest above a kernel's alignment).
        public var alignmentSplits: [Int]
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
        if cls.hasPrefix("elementwise") { return 3 }
        if cls.hasPrefix("pool") { return 4 }
        if cls.hasPrefix("movement") || cls.hasPrefix("shape") { return 5 }
        return 6
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
        var modelKernels: [[Kernel]] = []
        var opRows: [(kernel: Kernel, seconds: Double)] = []
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
            var kernelByName: [String: Int] = [:]
            var kernels: [Kernel] = []
            for (step, f) in zip(report.kernels, report.kernelFeatures) {
                classesSeen[f.kernelClass] = f.fallbackClasses
                let t = baseModel(base, threads: threads, f).seconds(f)
                columns[family(f.kernelClass)] += t
                columns[parameters - 1] += 1
                // A runtime names a kernel after one of its nodes, or (onnxruntime's NCHWc kernels,
                // fused groups) after the value the group outputs.
                for n in [step.node] + step.fused {
                    kernelByName[report.nodes[n].name] = kernels.count
                    for o in model.graph.nodes[n].outputs { kernelByName[model.graph.values[o].name] = kernels.count }
                }
                kernels.append(Kernel(cls: f.kernelClass, fam: family(f.kernelClass), t: t, alignment: f.channelAlignment))
            }
            modelKernels.append(kernels)
            x.append(columns)
            y.append(row.milliseconds / 1000)
            weight.append(1)
            let modelRow = x.count - 1
            perModel.append((row, columns))
            if let op = row.opProfile {
                // The runtime's ops summed per kernel of ours: where it runs a Relu or a Clip apart
                // from the convolution we fuse it into, both are that kernel's time.
                var seconds: [Int: Double] = [:]
                for (name, s) in try OpProfile.read(op) where s > 0 {
                    guard let k = OpProfile.candidates(name).lazy.compactMap({ kernelByName[$0] }).first else { continue }
                    seconds[k, default: 0] += s
                }
                weight[modelRow] = Double(max(1, seconds.count))
                for (k, s) in seconds.sorted(by: { $0.key < $1.key }) {
                    opRows.append((kernels[k], s))
                    var c = [Double](repeating: 0, count: parameters)
                    c[kernels[k].fam] = kernels[k].t
                    c[parameters - 1] = 1
                    x.append(c)
                    y.append(s)
                    weight.append(1)
                    opSamples += 1
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
        var splits: [Int] = []
        func kernelSeconds(_ k: Kernel) -> Double { (classFactors[k.key(splits)] ?? classFactors[k.cls] ?? 1) * coef[k.fam] * k.t }
        if shared {
            // Few samples: one factor for everything the base predicts, its dispatch included.
            let dispatch = base.kernelModels(threads: threads)?[KernelCostModel.dispatchClass]?.coefficients["call"] ?? 0
            let collapsed = x.map { [$0[0..<(parameters - 1)].reduce(0, +) + dispatch * $0[parameters - 1]] }
            guard let c = CostFit.nonNegativeRelativeFit(collapsed, y, weights: weight), c[0] > 0 else { throw FitError("the timings do not determine the factor") }
            coef = [Double](repeating: c[0], count: parameters - 1) + [dispatch * c[0]]
        } else {
            guard let c = CostFit.nonNegativeRelativeFit(x, y, weights: weight) else { throw FitError("the timings do not determine the parameters (every model the same mix of kernels?)") }
            coef = c
            // A family none of the timed models ran keeps the base's proportions: the median of
            // the fitted families' factors.
            let ran = (0..<(parameters - 1)).filter { j in x.contains { $0[j] > 0 } }
            let typical = median(ran.map { coef[$0] }.filter { $0 > 0 })
            for j in 0..<(parameters - 1) where !ran.contains(j) && typical.isFinite { coef[j] = typical }
            // Within a family the runtime's kernels need not keep our kernels' proportions
            // (onnxruntime's 1x1 and 3x3 convolutions, its LayerNorm against our chain of
            // reductions): a class with enough per-op samples gets its own factor on top of its
            // family's, the median of its samples' measured time less the per-kernel cost over
            // their family's share.
            // Another runtime's blocked layouts may take only channels aligned to its vector
            // width (onnxruntime's NCHWc on AVX-512: multiples of 16; its 1x1 convolutions over 8
            // or 24 channels ran at 1.3x the time of aligned ones, relative to ours, and over 2 or
            // 4 channels at 3-6x). Splits (below 4, 8, ... 64 channels) are added one at a time
            // while one improves the per-op samples' fit by 1%; a bucket with too few samples of
            // a class stays in the class.
            func factorsBy(splits: [Int]) -> (factors: [String: Double], loss: Double) {
                var byKey: [String: [Double]] = [:]
                for r in opRows {
                    // The factor scales the family's share; the per-kernel cost stays as it is.
                    let scaled = coef[r.kernel.fam] * r.kernel.t
                    if scaled > 0 { byKey[r.kernel.key(splits), default: []].append(max(0, r.seconds - coef[parameters - 1]) / scaled) }
                }
                for (key, ratios) in byKey where !settled(ratios) {
                    if let r = opRows.first(where: { $0.kernel.key(splits) == key }), r.kernel.cls != key {
                        byKey[r.kernel.cls, default: []].append(contentsOf: ratios)
                        byKey[key] = nil
                    }
                }
                var factors: [String: Double] = [:]
                for (key, ratios) in byKey where settled(ratios) { factors[key] = median(ratios) }
                let loss = opRows.reduce(0.0) { sum, r in
                    let f = factors[r.kernel.key(splits)] ?? factors[r.kernel.cls] ?? 1
                    let fitted = f * coef[r.kernel.fam] * r.kernel.t + coef[parameters - 1]
                    return fitted > 0 ? sum + abs(log(r.seconds / fitted)) : sum
                }
                return (factors, loss)
            }
            var best = factorsBy(splits: [])
            while true {
                let tries = KernelFeatures.alignmentSplits.filter { !splits.contains($0) }.map { a in (a, factorsBy(splits: (splits + [a]).sorted())) }
                guard let t = tries.min(by: { $0.1.loss < $1.1.loss }), t.1.loss < 0.99 * best.loss else { break }
                best = t.1
                splits = (splits + [t.0]).sorted()
            }
            classFactors = best.factors
            // Per-op rows set the mix; the whole-model latencies set the scale and the cost per
            // kernel. A runtime's per-op times leave out what it does between ops and the ops it
            // names differently, and its profiler adds its own cost to every op it times
            // (onnxruntime's, a few microseconds: ShuffleNet's 180 shape ops summed to more than a
            // run). So k × (the kernels' fitted time) + c' × kernels is fitted to the models alone.
            if opSamples > 0 {
                let columns = modelKernels.map { kernels in
                    [kernels.reduce(0) { $0 + kernelSeconds($1) }, Double(kernels.count)]
                }
                let ms = perModel.map { $0.row.milliseconds / 1000 }
                if let kc = CostFit.nonNegativeRelativeFit(columns, ms), kc[0] > 0 {
                    for j in 0..<(parameters - 1) { coef[j] *= kc[0] }
                    coef[parameters - 1] = kc[1]
                } else {
                    // Too few models for two numbers: one scale, their median measured / predicted.
                    let k = median(zip(columns, ms).map { $1 / max(1e-30, $0[0] + coef[parameters - 1] * $0[1]) })
                    if k.isFinite, k > 0 { coef = coef.map { $0 * k } }
                }
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
            func scaled(_ factor: Double) -> KernelCostModel {
                var m = baseModel(base, threads: threads, f)
                m.coefficients = m.coefficients.mapValues { $0 * coef[family(cls)] * factor }.filter { $0.value > 0 }
                return m
            }
            fitted[cls] = scaled(classFactors[cls] ?? 1)
            for a in splits {
                if let under = classFactors[KernelFeatures.unalignedClass(cls, below: a)] { fitted[KernelFeatures.unalignedClass(cls, below: a)] = scaled(under) }
            }
        }
        // The wider classes stand in for kernels of classes no model in the timings had.
        for cls in ["elementwise", "movement", "pool", "reduce", "resize", "gemm"] where fitted[cls] == nil {
            var m = base.kernelModels(threads: threads)?[cls] ?? rooflineModel(base)
            m.coefficients = m.coefficients.mapValues { $0 * coef[family(cls)] }.filter { $0.value > 0 }
            fitted[cls] = m
        }
        fitted[KernelCostModel.dispatchClass] = KernelCostModel(coefficients: ["call": coef[parameters - 1]], samples: x.count, medianAbsError: 0)
        profile.kernels = [String(threads): fitted]
        profile.sources["kernels.\(threads)"] = "modellens calibrate --from-timings: \(rows.count) model(s), \(opSamples) per-op sample(s); base \(base.id); factors " +
            zip(families, coef).map { String(format: "%@ %.3g", $0, $1) }.joined(separator: ", ") + String(format: ", %.2f us per kernel", coef[parameters - 1] * 1e6) +
            (classFactors.isEmpty ? "" : "; classes " + classFactors.sorted { $0.key < $1.key }.map { String(format: "%@ x%.3g", $0.key, $0.value) }.joined(separator: ", "))
        let residuals = zip(perModel, modelKernels).map { m, kernels in
            Residual(model: m.row.model, measuredMs: m.row.milliseconds, baseMs: m.columns[0..<(parameters - 1)].reduce(0, +) * 1000,
                     fittedMs: (kernels.reduce(0) { $0 + kernelSeconds($1) } + coef[parameters - 1] * Double(kernels.count)) * 1000)
        }
        var factors: [String: Double] = [:]
        for (k, f) in families.enumerated() { factors[f] = coef[k] }
        return Result(profile: profile, factors: factors, classFactors: classFactors, perKernelSeconds: coef[parameters - 1], samples: x.count,
                      opSamples: opSamples, residuals: residuals, sharedFactor: shared, alignmentSplits: splits)
    }

    /// One kernel of a timed model: its class, family, time by the base profile, and channel
    /// alignment.
    struct Kernel {
        var cls: String
        var fam: Int
        var t: Double
        var alignment: Int
        /// The class whose factor it takes when kernels below each of `splits` (ascending) channels
        /// are fitted apart: the smallest split above its alignment.
        func key(_ splits: [Int]) -> String {
            guard alignment > 0, let s = splits.first(where: { alignment < $0 }) else { return cls }
            return KernelFeatures.unalignedClass(cls, below: s)
        }
    }

    /// Per-op samples a kernel class needs for a factor of its own, or `minAgreeingSamples` that
    /// agree: their median's standard error (1.25 sigma / sqrt(n) of the log ratios) within 10%.
    /// ResNeXt's six grouped convolutions of 16 channels a group ran on onnxruntime at 0.26-0.27
    /// of our time, its seven of 4 and 8 at 0.9-1.3: two settled factors, not one of 0.9 for both.
    public static let minClassSamples = 8
    public static let minAgreeingSamples = 3

    static func settled(_ ratios: [Double]) -> Bool {
        if ratios.count >= minClassSamples { return true }
        let logs = ratios.filter { $0 > 0 }.map { Foundation.log($0) }
        guard logs.count >= minAgreeingSamples, logs.count == ratios.count else { return false }
        let mean = logs.reduce(0, +) / Double(logs.count)
        let sd = (logs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(logs.count - 1)).squareRoot()
        return 1.25 * sd / Double(logs.count).squareRoot() <= 0.1
    }

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

    /// The model's node or value names an onnxruntime kernel may stand for, most literal first:
    /// its graph optimisations rename what they rewrite (`fused <node>` for a Gemm with its
    /// activation, `<node>_token_12` for QDQ groups and inserted transposes, `<node>_nchwc` for
    /// blocked convolutions, `<node>/QuickGeluFusion/` for a Sigmoid and Mul made one).
    static func candidates(_ name: String) -> [String] {
        var out = [name]
        var n = name
        while true {
            var m = n
            if m.hasPrefix("fused ") { m.removeFirst("fused ".count) }
            if m.hasSuffix("_nchwc") { m.removeLast("_nchwc".count) }
            if let r = m.range(of: "_token_", options: .backwards), !m[r.upperBound...].isEmpty, m[r.upperBound...].allSatisfy(\.isNumber) {
                m = String(m[..<r.lowerBound])
            }
            if m.hasSuffix("/") {
                let trimmed = m.dropLast()
                if let slash = trimmed.lastIndex(of: "/"), trimmed[trimmed.index(after: slash)...].hasSuffix("Fusion") { m = String(trimmed[..<slash]) }
            }
            if m == n || m.isEmpty { break }
            out.append(m)
            n = m
        }
        return out
    }
}
