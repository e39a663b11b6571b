import ArgumentParser
import Foundation
import ModelImport
import ModelIR
import ModelAnalysis
import ModelRuntime

/// --max-memory's value in bytes (nil: the default budget).
func parseMemoryBudget(_ text: String?) throws -> Int? {
    guard let text else { return nil }
    guard let bytes = MemoryBudget.parse(text) else { throw ValidationError("--max-memory expects a size such as 512M, 8G or a number of bytes, got '\(text)'") }
    return bytes
}

/// Inputs from --input name=file.npy, or random ones (--random) for every input not given.
func prepareInputs(_ model: Model, specs: [String], random: Bool, seed: UInt64 = 1) throws -> [String: RTensor] {
    var given: [String: RTensor] = [:]
    for s in specs {
        guard let eq = s.firstIndex(of: "=") else { throw ValidationError("--input expects NAME=FILE.npy, got '\(s)'") }
        given[String(s[..<eq])] = try NPY.read(String(s[s.index(after: eq)...]))
    }
    var state = seed
    for id in model.graph.inputs {
        let v = model.graph.values[id]
        if given[v.name] != nil { continue }
        guard random else { throw CommandError(message: "input '\(v.name)' \(v.type) has no value: pass --input \(v.name)=file.npy or --random", code: 2) }
        guard let dims = v.type.shape.dims else { throw CommandError(message: "input '\(v.name)' has unknown rank: give --input-shape", code: 2) }
        let shape = dims.map { $0.value ?? 1 }
        let t = RTensor.allocate(shape, v.type.dtype == .undefined ? .float32 : v.type.dtype)
        for i in 0..<t.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(state >> 40) / Float(1 << 24)
            switch t.dtype {
            case .float32: t.floats[i] = u * 2 - 1
            case .int64: t.raw.storeBytes(of: Int64(u * 10), toByteOffset: i * 8, as: Int64.self)
            case .int32: t.raw.storeBytes(of: Int32(u * 10), toByteOffset: i * 4, as: Int32.self)
            case .uint8: t.raw.storeBytes(of: UInt8(u * 255), toByteOffset: i, as: UInt8.self)
            case .int8: t.raw.storeBytes(of: Int8(u * 254 - 127), toByteOffset: i, as: Int8.self)
            default: throw CommandError(message: "cannot make random \(t.dtype.rawValue) for '\(v.name)'", code: 2)
            }
        }
        given[v.name] = t
    }
    return given
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on the native CPU executor and write its outputs as .npy.",
        discussion: """
            Inputs come from .npy files (--input NAME=FILE.npy) or are random (--random, uniform in \
            [-1, 1) for floats); symbolic sizes are 1 unless --input-shape fixes them. Outputs are \
            written to OUTDIR as NAME.npy. An op without a kernel names itself and its node, and \
            nothing runs. The summary line gives the weights (in the file, and as the kernels read \
            them), the peak arena, the inputs' bytes, the process's peak RSS, the bytes in use from malloc after the \
            run and the model file's resident pages.

            Kernels: AVX-512 ones where the CPU has them, else portable ones (OpenBLAS). Set \
            MODELLENS_KERNELS=blas in the environment to use the portable ones anyway. Results do \
            not depend on --threads.

            With --all-values, every value a node computes is written too, as NNNN.npy in node \
            order, with values.tsv mapping each file to its value's name: for comparing a model \
            layer by layer with another runtime (Tools/compare-layers.py does it against LiteRT \
            and onnxruntime). Fusions that would hide one of those values are then not applied, \
            so float results can differ from a plain run in the last bits.

            Examples:
              modellens run model.onnx --random -o out/
              modellens run model.tflite --input input_1=image.npy --threads 2 -o out/
              modellens run model.tflite --random --all-values -o layers/
            """
    )

    @Argument(help: "The .onnx or .tflite file.") var model: String
    @Option(name: .customLong("input"), parsing: .singleValue, help: ArgumentHelp("An input: NAME=FILE.npy. Repeatable.", valueName: "name=file")) var inputs: [String] = []
    @Flag(help: "Random values for inputs not given.") var random = false
    @Flag(name: .customLong("all-values"), help: "Also write every node's output to OUTDIR (NNNN.npy, listed in values.tsv).") var allValues = false
    @Option(help: "Threads (OpenBLAS); default: all cores.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: [.customShort("o"), .long], help: "Folder for the outputs (.npy).") var output: String?
    @Option(name: .customLong("input-shape"), parsing: .singleValue, help: ArgumentHelp("Fix an input's shape: NAME=D1,D2,...", valueName: "name=dims")) var inputShapes: [String] = []
    @Option(name: .customLong("max-memory"), help: ArgumentHelp("Refuse a plan whose weights and live tensors need more than this (512M, 8G, bytes); default: the machine's memory or `ulimit -v`.", valueName: "size")) var maxMemory: String?

    func run() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if allValues && output == nil { throw ValidationError("--all-values needs a folder: -o OUTDIR") }
        let m = try ModelImporter.load(model, options: .init(inputShapes: try Inspect.parseShapes(inputShapes)))
        let importedHeap = ProcessMemory.heapInUse()
        let modelOutputs = m.graph.outputs
        var intermediates: [ValueID] = []
        if allValues {
            // Every tensor a node computes becomes a graph output, so the executor keeps it.
            var seen = Set<ValueID>()
            for n in m.graph.nodes {
                for o in n.outputs where m.graph.values[o].isTensor && seen.insert(o).inserted { intermediates.append(o) }
            }
            m.graph.outputs += intermediates.filter { !modelOutputs.contains($0) }
        }
        let exec: Executor
        do { exec = try Executor(model: m, threads: threads, memoryBudget: try parseMemoryBudget(maxMemory)) } catch let e as RuntimeError { throw CommandError(message: "\(model): \(e)", code: 1) }
        let ins = try prepareInputs(m, specs: inputs, random: random)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let outs: [String: RTensor]
        do { outs = try exec.run(ins) } catch let e as RuntimeError { throw CommandError(message: "\(model): \(e)", code: 1) }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        if let output { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
        if let output, allValues {
            var index = ["file\tvalue"]
            for (k, id) in intermediates.enumerated() {
                let name = m.graph.values[id].name
                guard let t = outs[name] else { continue }
                let file = String(format: "%04d.npy", k)
                try NPY.write(t, to: (output as NSString).appendingPathComponent(file))
                index.append("\(file)\t\(name)")
            }
            try (index.joined(separator: "\n") + "\n").write(toFile: (output as NSString).appendingPathComponent("values.tsv"), atomically: true, encoding: .utf8)
        }
        for id in modelOutputs {
            let name = m.graph.values[id].name
            guard let t = outs[name] else { continue }
            let values = t.toFloats()
            let finite = values.filter(\.isFinite)
            print("\(name)  \(t.dtype.rawValue)\(t.shape)  min \(finite.min() ?? .nan)  max \(finite.max() ?? .nan)  mean \(finite.isEmpty ? .nan : finite.reduce(0, +) / Float(finite.count))")
            if let output {
                let safe = name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" }
                try NPY.write(t, to: (output as NSString).appendingPathComponent(String(safe) + ".npy"))
            }
        }
        let weights = m.graph.values.compactMap(\.constant).reduce(0) { $0 + $1.storedByteCount }
        let known = { (n: Int?) in n.map(InspectReport.bytes) ?? "?" }
        print(String(format: "ran in %.2f ms on %d thread(s); weights %@ in the file, %@ as the kernels read them; peak arena %@; inputs %@; process peak RSS %@; heap in use %@ once imported, %@ after the run; file pages resident %@",
                     ms, threads, InspectReport.bytes(weights), InspectReport.bytes(exec.kernelWeightBytes),
                     InspectReport.bytes(exec.peakArenaBytes), InspectReport.bytes(ins.values.reduce(0) { $0 + $1.byteCount }),
                     InspectReport.bytes(ImportStats.peakRSS()), known(importedHeap),
                     known(ProcessMemory.heapInUse()), known(ProcessMemory.residentBytes(ofFile: model))))
    }
}

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a model layer by layer on the native executor, next to the analysis' prediction.",
        discussion: """
            Runs the model --warmup times, then --runs times with per-kernel timing, on random inputs \
            (or --input files). Prints each kernel's median measured time (a kernel runs a node and \
            the nodes fused into it: folded BatchNorms, activations, residual adds) beside the time \
            the hardware profile predicts (roofline with the DRAM model; default: this host's built-in \
            profile, or pass `--profile host.json` from `modellens profiles --measure`), the totals \
            and their ratio. A progress line goes to standard error.

            Examples:
              modellens profile resnet50.onnx --runs 20 --threads 1
              modellens profile model.tflite --format json > profile.json
            """
    )

    @Argument(help: "The .onnx or .tflite file.") var model: String
    @Option(help: "Timed runs.") var runs: Int = 50
    @Option(help: "Untimed runs first.") var warmup: Int = 5
    @Option(help: "Threads (OpenBLAS); default: all cores.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "A built-in profile id or a JSON file for the prediction.") var profile: String = HardwareProfile.defaultID
    @Option(help: "table or json.") var format: String = "table"
    @Option(name: .customLong("input"), parsing: .singleValue, help: ArgumentHelp("An input: NAME=FILE.npy. Repeatable.", valueName: "name=file")) var inputs: [String] = []
    @Option(name: .customLong("input-shape"), parsing: .singleValue, help: ArgumentHelp("Fix an input's shape: NAME=D1,D2,...", valueName: "name=dims")) var inputShapes: [String] = []
    @Option(name: .customLong("max-memory"), help: ArgumentHelp("Refuse a plan whose weights and live tensors need more than this (512M, 8G, bytes); default: the machine's memory or `ulimit -v`.", valueName: "size")) var maxMemory: String?
    @Option(help: "How many of the slowest layers to list (table).") var top: Int = 15

    func run() throws {
        guard runs >= 1, warmup >= 0, threads >= 1, top >= 1 else { throw ValidationError("--runs, --threads and --top must be positive, --warmup not negative") }
        guard format == "table" || format == "json" else { throw ValidationError("--format must be table or json") }
        let hw = try resolveProfile(profile)
        let m = try ModelImporter.load(model, options: .init(inputShapes: try Inspect.parseShapes(inputShapes)))
        let exec: Executor
        do { exec = try Executor(model: m, threads: threads, memoryBudget: try parseMemoryBudget(maxMemory)) } catch let e as RuntimeError { throw CommandError(message: "\(model): \(e)", code: 1) }
        let feeds = try prepareInputs(m, specs: inputs, random: true)
        var perNode = [[Double]](repeating: [], count: m.graph.nodes.count)
        var totals: [Double] = []
        var progress = Progress("profile", total: warmup + runs)
        for i in 0..<(warmup + runs) {
            progress.update(i + 1, String(format: "%@ run %d/%d", i < warmup ? "warm-up" : "timed", i < warmup ? i + 1 : i - warmup + 1, i < warmup ? warmup : runs))
            let t0 = DispatchTime.now().uptimeNanoseconds
            do { _ = try exec.run(feeds, profile: i >= warmup) } catch let e as RuntimeError { throw CommandError(message: "\(model): \(e)", code: 1) }
            guard i >= warmup else { continue }
            totals.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            for (k, s) in exec.nodeSeconds.enumerated() { if let s { perNode[k].append(s * 1000) } }
        }
        progress.finish()
        func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] }
        let analysis = ModelAnalyzer.analyze(m, profile: hw, threads: threads)
        let measured = perNode.map(median)
        let medianMs = median(totals)
        let predictedMs = analysis.totals.predictedSeconds * 1000
        // One row per kernel the executor ran (the analysis' KernelPlan, equal to the executor's
        // plan): its node, the nodes fused into it, their measured and predicted time.
        struct KernelRow { var name: String, op: String, fused: [String], measured: Double, predicted: Double, macs: Int, flops: Int, dram: Int, bound: String, features: KernelFeatures }
        let kernels = zip(analysis.kernels, analysis.kernelFeatures).map { step, features -> KernelRow in
            let a = analysis.nodes[step.node]
            let group = [step.node] + step.fused
            return KernelRow(name: a.name, op: a.op, fused: step.fused.map { analysis.nodes[$0].name },
                             measured: group.reduce(0) { $0 + measured[$1] }, predicted: a.predictedSeconds * 1000,
                             macs: group.reduce(0) { $0 + analysis.nodes[$1].macs }, flops: group.reduce(0) { $0 + analysis.nodes[$1].flops },
                             dram: a.dramBytes, bound: a.bound, features: features)
        }
        if format == "json" {
            let nodes: [[String: Any]] = kernels.map { k in
                ["name": k.name, "op": k.op, "fused": k.fused, "measuredMs": k.measured, "predictedMs": k.predicted,
                 "macs": k.macs, "flops": k.flops, "dramBytes": k.dram, "bound": k.bound, "class": k.features.kernelClass,
                 "bytesRead": k.features.bytesRead, "bytesWritten": k.features.bytesWritten, "weightBytes": k.features.weightBytes,
                 "geometry": [k.features.inChannels, k.features.outChannels, k.features.groups, k.features.kernelH, k.features.kernelW,
                              k.features.outH, k.features.outW, k.features.stride]]
            }
            let obj: [String: Any] = ["model": model, "threads": threads, "runs": runs, "warmup": warmup, "medianMs": medianMs,
                                      "predictedMs": predictedMs, "profile": hw.id, "prediction": analysis.method, "nodes": nodes]
            print(renderJSON(obj))
            return
        }
        print("model: \(model); \(threads) thread(s), median of \(runs) runs after \(warmup) warm-up; prediction: \(hw.id) (\(analysis.method))")
        print("\(kernels.count) kernels (\(analysis.kernels.reduce(0) { $0 + $1.fused.count }) nodes fused into them); the slowest \(min(top, kernels.count)):\n")
        var rows = [["kernel", "op", "fused", "measured ms", "predicted ms", "measured/predicted", "GFLOP/s", "bound"]]
        for k in kernels.sorted(by: { $0.measured > $1.measured }).prefix(top) {
            rows.append([k.name, k.op, k.fused.isEmpty ? "" : "+\(k.fused.count)", String(format: "%.3f", k.measured), String(format: "%.3f", k.predicted),
                         k.predicted > 0 ? String(format: "%.2f", k.measured / k.predicted) : "-",
                         k.measured > 0 ? String(format: "%.1f", Double(k.flops) / k.measured / 1e6) : "-", k.bound])
        }
        print(InspectReport.table(rows, indent: ""))
        let sumKernels = kernels.reduce(0) { $0 + $1.measured }
        print(String(format: "\ntotal: measured %.3f ms (median; kernels sum to %.3f ms), predicted %.3f ms, measured/predicted %.2f", medianMs, sumKernels, predictedMs, predictedMs > 0 ? medianMs / predictedMs : 0))
    }
}
