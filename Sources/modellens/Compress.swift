import ArgumentParser
import CKernels
import Foundation
import ModelAnalysis
import ModelCompress
import ModelExport
import ModelImport
import ModelIR
import ModelRuntime

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a model (low-rank and CP splits, pruning, int8) and show what it really saves.",
        discussion: """
            Reads IN, applies the methods given, writes OUT (its extension picks the format: \
            .onnx, or .tflite through the ONNX -> TFLite converter) and prints, before and after: \
            file size, parameters, nonzero weights, MACs (and those the kernels do, where sparse \
            kernels skip zero weights) and the predicted latency (--profile). With --verify it \
            also runs both models on the executor: their measured latency (--threads, --runs; \
            rounds interleaved, the minimum of the round medians) and how far the compressed \
            model's outputs stray from the original's: the largest difference relative to the \
            output's largest magnitude, the cosine similarity and, for outputs that look like class \
            scores ([batch, classes], 10 classes or more), top-1 and top-5 agreement.

            Methods, applied in this order:
              --prune-channels R   remove the share R of each convolution's filters with the \
            smallest L1 norms, and the matching input channels of the layers that read them \
            (through activations, BatchNorm, pooling and depthwise layers, which lose the same \
            channels). Outputs that meet an Add, a Concat or a reshape keep their channels \
            (ResNet's bottlenecks shrink inside). Smaller and faster on any kernel.
              --lowrank R          split fully-connected layers (Gemm, MatMul with a constant \
            matrix) and 1x1 convolutions into two of rank R by SVD: R (m + n) weights instead \
            of m n. Layers where R saves nothing are left as they were and named.
              --lowrank-energy E   the same with, per layer, the smallest rank whose singular \
            values keep the share E of the weight's energy (0.9, 0.99, ...).
              --cp R               split k x k convolutions by a rank-R CP decomposition \
            (alternating least squares) into 1x1 -> depthwise k x 1 -> depthwise 1 x k -> 1x1: \
            R (O + I + 2k) weights instead of O I k k (paper 003 §2.2).
              --prune S            set the share S of each layer's weights with the smallest \
            magnitudes to zero (one threshold per layer). The file stays dense and as large; on \
            dense kernels zeros save no time (the report shows it). The executor runs 1x1 \
            convolutions with at most 35% nonzero weights on a sparse kernel.
              --quantize int8      post-training static quantization in onnxruntime's QDQ \
            form: int8 weights per output channel, int32 biases, uint8 activations around \
            each layer over the ranges --calibration DIR's inputs give (min/max). Writes .onnx.

            --layers REGEX limits the methods to layers whose node name matches; a rank at or \
            above such a layer's own is refused with the allowed range. Low-rank splits need an \
            ONNX model (convert a .tflite first); pruning works on both formats.

            Fidelity inputs: --samples DIR (each .npy file one input for the model's first \
            input), else four seeded random inputs (uniform in [-1, 1)); random inputs say \
            little about top-1 agreement on real data.

            Nothing is written when a method cannot be applied as asked; OUT appears only complete.

            Examples:
              modellens compress vgg16.onnx vgg16_lr.onnx --lowrank-energy 0.9 --verify
              modellens compress mobilenet_v2.onnx mnv2_p50.onnx --prune 0.5 --verify --json
              modellens compress resnet50.onnx r50.onnx --lowrank 64 --layers 'layer4' --verify
              modellens compress mobilenet_v2.onnx mnv2_int8.onnx --quantize int8 --calibration images_npy/
            """
    )

    @Argument(help: "The model to compress (.onnx or .tflite).") var input: String
    @Argument(help: "The file to write; its extension chooses the format.") var output: String
    @Option(name: .customLong("prune-channels"), help: ArgumentHelp("Remove this share of each prunable convolution's filters (smallest L1 norms).", valueName: "share")) var pruneChannels: Double?
    @Option(help: ArgumentHelp("Split FC and 1x1-conv layers to this rank.", valueName: "rank")) var lowrank: Int?
    @Option(name: .customLong("lowrank-energy"), help: ArgumentHelp("Split to the rank keeping this share of each layer's energy.", valueName: "share")) var lowrankEnergy: Double?
    @Option(help: ArgumentHelp("Split k x k convolutions by CP decomposition of this rank.", valueName: "rank")) var cp: Int?
    @Option(help: ArgumentHelp("Zero this share of each layer's weights (smallest magnitudes).", valueName: "sparsity")) var prune: Double?
    @Option(help: ArgumentHelp("Post-training quantization: int8 (static; needs --calibration) or fp16 (weights).", valueName: "int8|fp16")) var quantize: String?
    @Option(help: ArgumentHelp("A folder of .npy inputs whose activation ranges set the int8 scales.", valueName: "dir")) var calibration: String?
    @Option(help: ArgumentHelp("Only layers whose node name matches this regular expression.", valueName: "regex")) var layers: String?
    @Flag(help: "Run both models: measured latency and output fidelity.") var verify = false
    @Option(help: ArgumentHelp("With --verify: a folder of .npy inputs for the fidelity check.", valueName: "dir")) var samples: String?
    @Option(help: "Threads for the measured latency.") var threads: Int = 1
    @Option(help: "Timed runs per round for the measured latency (3 rounds).") var runs: Int = 10
    @Option(help: "A built-in profile id or a JSON file for the predicted latency.") var profile: String = HardwareProfile.defaultID
    @Option(name: .customLong("input-shape"), parsing: .singleValue, help: ArgumentHelp("Fix an input's shape: NAME=D1,D2,...", valueName: "name=dims")) var inputShapes: [String] = []
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        var options = CompressionOptions(prune: prune, lowRank: lowrank, lowRankEnergy: lowrankEnergy, cp: cp, layers: layers)
        options.quantize = quantize
        options.pruneChannels = pruneChannels
        guard !options.isEmpty else { throw ValidationError("give at least one method: --lowrank R, --lowrank-energy E, --cp R, --prune S, --prune-channels R or --quantize int8") }
        guard threads >= 1, runs >= 1 else { throw ValidationError("--threads and --runs must be positive") }
        let ext = (output as NSString).pathExtension.lowercased()
        guard ext == "onnx" || ext == "tflite" else { throw ValidationError("OUT must end in .onnx or .tflite (the format follows the extension)") }
        var shapes = try Inspect.parseShapes(inputShapes)
        let hw = try resolveProfile(profile)
        var original = try ModelImporter.load(input, options: .init(inputShapes: shapes))
        let fixed = fixSymbolicInputs(original, &shapes, for: output)
        if !fixed.isEmpty { original = try ModelImporter.load(input, options: .init(inputShapes: shapes)) }
        let model = try ModelImporter.load(input, options: .init(inputShapes: shapes))
        var calibrationFeeds: [[String: RTensor]] = []
        if let quantize, quantize != "int8" && quantize != "fp16" {
            throw CommandError(message: "--quantize takes int8 or fp16, not '\(quantize)' (int8-dynamic is not written yet)", code: 2)
        }
        if quantize == "fp16" {
            guard ext == "onnx" else { throw CommandError(message: "--quantize fp16 writes .onnx (float16 weights behind a Cast); .tflite is not written yet", code: 2) }
        } else if quantize != nil {
            guard ext == "onnx" else { throw CommandError(message: "--quantize int8 writes QDQ .onnx; full-integer .tflite is not written yet", code: 2) }
            guard (model.opsets[""] ?? 0) >= 13 else {
                throw CommandError(message: "\(input): opset \(model.opsets[""] ?? 0); per-channel DequantizeLinear needs opset 13 or later", code: 2)
            }
            guard let calibration else { throw CommandError(message: "--quantize int8 needs --calibration DIR (.npy inputs)", code: 2) }
            calibrationFeeds = try inputsFromFolder(calibration, model)
        }
        let log: CompressionLog
        do { log = try Compressor.apply(model, options, calibration: calibrationFeeds) } catch let e as CompressionError {
            throw CommandError(message: "\(input): \(e)", code: 2)
        }
        do { try Converter.convert(model, to: output) } catch let e as ExportError {
            throw CommandError(message: "\(input) -> \(e)", code: 1)
        }
        // Everything after this point reads the file as written.
        let written: Model
        do { written = try ModelImporter.load(output, options: .init(inputShapes: shapes)) } catch {
            unlink(output)
            throw CommandError(message: "\(output): the written model does not load back (\(error)); it was removed", code: 1)
        }
        let before = ModelAnalyzer.analyze(original, profile: hw, threads: threads)
        let after = ModelAnalyzer.analyze(written, profile: hw, threads: threads)
        var fidelity: [OutputFidelity] = []
        var latency: (before: Double, after: Double)?
        if verify {
            do {
                let feeds = try fidelityInputs(original)
                fidelity = try compareOutputs(original, written, feeds: feeds)
                latency = try measureLatency(original, written, feeds: feeds[0])
            } catch let e as CommandError {
                throw e
            } catch {
                throw CommandError(message: "\(output): the models could not be run for --verify: \(error)", code: 1)
            }
        }
        func side(_ m: Model, _ r: AnalysisReport, _ measured: Double?) -> [String: Any] {
            var o: [String: Any] = ["file": m.path, "bytes": m.fileSize, "parameters": r.totals.params, "nonzeroWeights": ModelAnalyzer.nonzeroWeights(m.graph), "macs": r.totals.macs,
                                    "predictedMs": r.totals.predictedSeconds * 1000]
            o["effectiveMacs"] = r.kernelFeatures.reduce(0) { $0 + $1.macs }
            o["sparseKernels"] = r.kernelFeatures.filter { $0.kernelClass.contains(".sparse.") }.count
            if let measured { o["measuredMs"] = measured }
            return o
        }
        if json {
            var obj: [String: Any] = [
                "before": side(original, before, latency?.before), "after": side(written, after, latency?.after),
                "profile": hw.id, "threads": threads,
                "changes": log.changes.map { ["layer": $0.layer, "op": $0.op, "method": $0.method, "detail": $0.detail,
                                              "parametersBefore": $0.parametersBefore, "parametersAfter": $0.parametersAfter] as [String: Any] },
                "skipped": log.skipped.map { ["layer": $0.layer, "op": $0.op, "method": $0.method, "reason": $0.reason] },
            ]
            if verify { obj["fidelity"] = fidelity.map(\.json) }
            if !fixed.isEmpty { obj["notes"] = ["symbolic input sizes fixed to 1 (use --input-shape for others): " + fixed.joined(separator: "; ")] }
            print(renderJSON(obj))
            return
        }
        print("\(input) -> \(output)")
        if !fixed.isEmpty { print("note: symbolic input sizes fixed to 1 (use --input-shape for others): " + fixed.joined(separator: "; ")) }
        let changedBy = Dictionary(grouping: log.changes, by: \.method)
        for (method, changes) in changedBy.sorted(by: { $0.key < $1.key }) {
            let b = changes.reduce(0) { $0 + $1.parametersBefore }, a = changes.reduce(0) { $0 + $1.parametersAfter }
            print("\(method): \(changes.count) layer(s), their weights \(SymCount.human(b)) -> \(SymCount.human(a))\(method == "prune" ? " nonzero" : "")")
            for c in changes.prefix(12) { print("  \(c.layer) (\(c.op)): \(c.detail)") }
            if changes.count > 12 { print("  ... and \(changes.count - 12) more (--json lists all)") }
        }
        if log.changes.isEmpty { print("no layer changed") }
        if !log.skipped.isEmpty {
            print("left as they were: \(log.skipped.count) layer(s)")
            for s in log.skipped.prefix(8) { print("  \(s.layer) (\(s.op), \(s.method)): \(s.reason)") }
            if log.skipped.count > 8 { print("  ... and \(log.skipped.count - 8) more (--json lists all)") }
        }
        print()
        var rows: [[String]] = [["", "before", "after", "after/before"]]
        func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? String(format: "%.3f", a / b) : "-" }
        rows.append(["file", InspectReport.bytes(original.fileSize), InspectReport.bytes(written.fileSize), ratio(Double(written.fileSize), Double(original.fileSize))])
        rows.append(["parameters", SymCount.human(before.totals.params), SymCount.human(after.totals.params), ratio(Double(after.totals.params), Double(before.totals.params))])
        let (nzBefore, nzAfter) = (ModelAnalyzer.nonzeroWeights(original.graph), ModelAnalyzer.nonzeroWeights(written.graph))
        rows.append(["nonzero weights", SymCount.human(nzBefore), SymCount.human(nzAfter), ratio(Double(nzAfter), Double(nzBefore))])
        rows.append(["MACs", SymCount.human(before.totals.macs), SymCount.human(after.totals.macs), ratio(Double(after.totals.macs), Double(before.totals.macs))])
        let (effBefore, effAfter) = (before.kernelFeatures.reduce(0) { $0 + $1.macs }, after.kernelFeatures.reduce(0) { $0 + $1.macs })
        if effBefore != before.totals.macs || effAfter != after.totals.macs {
            let sparse = after.kernelFeatures.filter { $0.kernelClass.contains(".sparse.") }.count
            rows.append(["MACs the kernels do\(sparse > 0 ? " (\(sparse) sparse)" : "")", SymCount.human(effBefore), SymCount.human(effAfter), ratio(Double(effAfter), Double(effBefore))])
        }
        rows.append(["predicted ms (\(hw.id))", String(format: "%.3f", before.totals.predictedSeconds * 1000), String(format: "%.3f", after.totals.predictedSeconds * 1000),
                     ratio(after.totals.predictedSeconds, before.totals.predictedSeconds)])
        if let latency {
            rows.append(["measured ms (\(threads) thread\(threads == 1 ? "" : "s"))", String(format: "%.3f", latency.before), String(format: "%.3f", latency.after), ratio(latency.after, latency.before)])
        }
        let widths = (0..<4).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for r in rows {
            print(r.enumerated().map { c, s in c == 0 ? s.padding(toLength: widths[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[c] - s.count) + s }.joined(separator: "  "))
        }
        if verify {
            print("\nfidelity against the original (\(samples == nil ? "4 seeded random inputs" : "the inputs in \(samples!)")):")
            for f in fidelity {
                var line = String(format: "  %@: max relative error %.3g, cosine %.6f", f.output, f.relative, f.cosine)
                if let t1 = f.top1, let t5 = f.top5 { line += String(format: ", top-1 agreement %.1f%%, top-5 %.1f%% (%d rows)", 100 * t1, 100 * t5, f.rows) }
                print(line)
            }
        }
    }

    /// One input set per sample (--samples) or four seeded random ones.
    func fidelityInputs(_ m: Model) throws -> [[String: RTensor]] {
        guard let samples else { return try (1...4).map { try prepareInputs(m, specs: [], random: true, seed: UInt64($0)) } }
        return try inputsFromFolder(samples, m)
    }

    /// One input set per .npy file of `dir`, for the model's first input (others random).
    func inputsFromFolder(_ dir: String, _ m: Model) throws -> [[String: RTensor]] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".npy") }.sorted()
        guard !files.isEmpty else { throw CommandError(message: "\(dir): no .npy files there", code: 2) }
        guard let first = m.graph.inputs.first(where: { m.graph.values[$0].constant == nil }) else { throw CommandError(message: "\(input): the model has no inputs", code: 1) }
        let v = m.graph.values[first]
        return try files.map { f in
            var feeds = try prepareInputs(m, specs: [], random: true)
            let path = (dir as NSString).appendingPathComponent(f)
            let t: RTensor
            do { t = try NPY.read(path) } catch { throw CommandError(message: "\(path): \(error)", code: 1) }
            if let dims = v.type.shape.dims, dims.count != t.shape.count || zip(dims, t.shape).contains(where: { $0.value != nil && $0.value != $1 }) {
                throw CommandError(message: "\(path): shape \(t.shape), the input '\(v.name)' is \(v.type.shape)", code: 2)
            }
            feeds[v.name] = t
            return feeds
        }
    }

    func measureLatency(_ a: Model, _ b: Model, feeds: [String: RTensor]) throws -> (before: Double, after: Double) {
        let ea = try Executor(model: a, threads: threads), eb = try Executor(model: b, threads: threads)
        let pinned = threads == 1 && mlk_pin_thread() == 1
        defer { if pinned { mlk_unpin_thread() } }
        var medians: [[Double]] = [[], []]
        var progress = Progress("compress", total: 6)
        for round in 0..<3 {
            for (k, e) in [ea, eb].enumerated() {
                progress.update(round * 2 + k + 1, "timing the \(k == 0 ? "original" : "compressed") model, round \(round + 1)/3")
                _ = try e.run(feeds)
                var t: [Double] = []
                for _ in 0..<runs {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = try e.run(feeds)
                    t.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                }
                medians[k].append(t.sorted()[t.count / 2])
            }
        }
        progress.finish()
        return (medians[0].min() ?? 0, medians[1].min() ?? 0)
    }
}

/// How far one output of the compressed model strays from the original's, over all inputs.
struct OutputFidelity {
    var output: String
    var relative = 0.0
    var cosine = 1.0
    var top1: Double?
    var top5: Double?
    var rows = 0

    var json: [String: Any] {
        var o: [String: Any] = ["output": output, "maxRelativeError": relative, "cosine": cosine]
        if let top1, let top5 { o["top1Agreement"] = top1; o["top5Agreement"] = top5; o["rows"] = rows }
        return o
    }
}

func compareOutputs(_ a: Model, _ b: Model, feeds: [[String: RTensor]]) throws -> [OutputFidelity] {
    let ea = try Executor(model: a, threads: 1), eb = try Executor(model: b, threads: 1)
    var out: [OutputFidelity] = []
    var dot: [Double] = [], na: [Double] = [], nb: [Double] = [], worst: [Double] = [], scale: [Double] = []
    var top1: [Int] = [], top5: [Int] = [], rows: [Int] = []
    for f in feeds {
        let ra = try ea.run(f), rb = try eb.run(f)
        for (k, (ia, ib)) in zip(a.graph.outputs, b.graph.outputs).enumerated() {
            if out.count <= k {
                out.append(OutputFidelity(output: a.graph.values[ia].name))
                dot.append(0); na.append(0); nb.append(0); worst.append(0); scale.append(1e-30)
                top1.append(0); top5.append(0); rows.append(0)
            }
            guard let x = ra[a.graph.values[ia].name], let y = rb[b.graph.values[ib].name] else { continue }
            guard x.shape == y.shape else {
                throw CommandError(message: "output '\(out[k].output)' has shape \(y.shape) after compression, \(x.shape) before", code: 1)
            }
            let xs = x.toFloats(), ys = y.toFloats()
            for i in 0..<xs.count {
                let (p, q) = (Double(xs[i]), Double(ys[i]))
                dot[k] += p * q; na[k] += p * p; nb[k] += q * q
                worst[k] = max(worst[k], abs(p - q))
                scale[k] = max(scale[k], abs(p))
            }
            // Class scores: [batch, classes] with 10 or more classes.
            if x.shape.count == 2, x.shape[1] >= 10 {
                let c = x.shape[1]
                for r in 0..<x.shape[0] {
                    let ax = Array(xs[(r * c)..<((r + 1) * c)]), ay = Array(ys[(r * c)..<((r + 1) * c)])
                    let bestY = ay.indices.max { ay[$0] < ay[$1] }!
                    let bestX = ax.indices.max { ax[$0] < ax[$1] }!
                    let top5X = Set(ax.indices.sorted { ax[$0] > ax[$1] }.prefix(5))
                    if bestX == bestY { top1[k] += 1 }
                    if top5X.contains(bestY) { top5[k] += 1 }
                    rows[k] += 1
                }
            }
        }
    }
    for k in out.indices {
        out[k].relative = worst[k] / scale[k]
        out[k].cosine = na[k] > 0 && nb[k] > 0 ? dot[k] / (na[k].squareRoot() * nb[k].squareRoot()) : (na[k] == nb[k] ? 1 : 0)
        if rows[k] > 0 {
            out[k].top1 = Double(top1[k]) / Double(rows[k])
            out[k].top5 = Double(top5[k]) / Double(rows[k])
            out[k].rows = rows[k]
        }
    }
    return out
}
