import ArgumentParser
import Foundation
import ModelAnalysis
import ModelImport
import ModelIR
import ModelTransform

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cost per layer and in total, structure, and a roofline estimate for a hardware profile.",
        discussion: """
            For every node: MACs, FLOPs, parameters, bytes read (weights and activations) and \
            written, arithmetic intensity (FLOPs per byte), the DRAM bytes a cache-aware model \
            expects, the time the profile predicts and whether the node is compute- or memory-bound. \
            Structure: depthwise / pointwise / grouped / standard convolutions, residual \
            connections (with the bytes the bypassed tensor keeps alive), branch merges \
            (Inception), dense concatenation (DenseNet), squeeze-excitation, BatchNorm that \
            folds into its conv, weight element types and zero weights.

            Counting convention: \(CostModel.convention)

            Symbolic sizes (e.g. `batch`) are bound to 1 unless --bind or --input-shape says \
            otherwise; the symbolic totals are printed too.

            Examples:
              modellens analyze resnet50.onnx
              modellens analyze model.tflite --profile qcs605-adreno615 --per-layer
              modellens analyze model.onnx --format json --bind batch=8
              modellens analyze model.onnx --profile my-board.json --format csv > layers.csv
              modellens analyze model.onnx --format html > report.html
            """
    )

    @Argument(help: "The .onnx or .tflite file.")
    var model: String

    @Option(help: "A built-in profile id (see `modellens profiles`), or a JSON file such as `modellens calibrate` writes.")
    var profile: String = HardwareProfile.defaultID
    @Option(help: "Threads to predict for (a calibrated profile has models per thread count; see `modellens calibrate`).")
    var threads: Int = 1

    @Option(help: "Output format: table, json, csv, markdown or html (one self-contained page with a roofline plot).")
    var format: String = "table"

    @Flag(help: "List every node (the table and markdown show the top ones otherwise).")
    var perLayer = false

    @Flag(help: "List the kernels the executor runs, each with the nodes fused into it (folded BatchNorms, activations, residual adds); the JSON always has them.")
    var kernels = false

    @Option(help: "How many of the slowest nodes to list.")
    var top: Int = 10

    @Option(name: .customLong("input-shape"), parsing: .singleValue, help: ArgumentHelp("Fix an input's shape: NAME=D1,D2,... Repeatable.", valueName: "name=dims"))
    var inputShapes: [String] = []

    @Option(parsing: .singleValue, help: ArgumentHelp("Bind a symbolic size: SYMBOL=N (e.g. batch=8). Repeatable.", valueName: "symbol=n"))
    var bind: [String] = []

    @Flag(help: "Print import and analysis time to standard error.")
    var timing = false

    @Flag(help: "Also find the effective rank (99% spectral energy) of FC and 1x1-conv weights, and what a low-rank split would save (LAPACK; slow for large layers).")
    var rank = false

    @Option(help: "With --rank: skip weight matrices with more elements than this.")
    var rankLimit: Int = 4 << 20

    func run() throws {
        guard let fmt = AnalysisFormat(rawValue: format) else {
            throw ValidationError("--format must be one of \(AnalysisFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        var bindings: [String: Int] = [:]
        for b in bind {
            let parts = b.split(separator: "=")
            guard parts.count == 2, let v = Int(parts[1]), v >= 0 else { throw ValidationError("--bind expects SYMBOL=N, got '\(b)'") }
            bindings[String(parts[0])] = v
        }
        let shapes = try Inspect.parseShapes(inputShapes)
        let hw = try resolveProfile(profile)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let model = try ModelImporter.load(self.model, options: .init(inputShapes: shapes))
        let t1 = DispatchTime.now().uptimeNanoseconds
        let report = ModelAnalyzer.analyze(model, profile: hw, bindings: bindings, threads: threads)
        let t2 = DispatchTime.now().uptimeNanoseconds
        if rank {
            let (findings, skipped) = LowRank.analyze(report, limit: rankLimit)
            print(AnalysisRenderer.render(report, format: fmt, perLayer: perLayer, top: top, listKernels: kernels, lowRank: findings, lowRankSkipped: skipped))
        } else {
            print(AnalysisRenderer.render(report, format: fmt, perLayer: perLayer, top: top, listKernels: kernels))
        }
        if timing {
            FileHandle.standardError.write(Data(String(format: "timing: import %.2f ms, analysis %.2f ms\n", Double(t1 - t0) / 1e6, Double(t2 - t1) / 1e6).utf8))
        }
    }
}

struct Profiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in hardware profiles.",
        discussion: """
            Each profile is a JSON file with peak FLOP/s per element type, DRAM bandwidth, cache \
            sizes, per-kernel launch overhead, and the source of each figure. Pass one to \
            `analyze --profile ID`, or write your own file with the same fields and pass its path.

            Examples:
              modellens profiles
              modellens profiles --show gtx-1060
              modellens profiles --measure -o host.json
            """
    )

    @Option(help: "Print one profile's JSON, sources included.")
    var show: String?

    @Flag(help: "Measure this host (FMA peak, library sgemm, streaming bandwidth, caches) and print its profile.")
    var measure = false

    @Option(name: [.customShort("o"), .long], help: "With --measure: also save the profile to this JSON file (use it with --profile).")
    var output: String?

    @Option(help: "With --measure: threads for the sgemm measurement.")
    var threads: Int = 1

    func run() throws {
        if measure {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            let p = HostMeasurement.measure(threads: threads) { FileHandle.standardError.write(Data("profiles: \($0)...\n".utf8)) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try enc.encode(p)
            print(String(decoding: data, as: UTF8.self))
            if let output {
                do { try data.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
                    throw CommandError(message: "\(output): cannot write the profile: \(error.localizedDescription)", code: 1)
                }
                FileHandle.standardError.write(Data("profiles: saved \(output); use it with `modellens analyze MODEL --profile \(output)`\n".utf8))
            }
            return
        }
        if let id = show {
            let p: HardwareProfile
            do { p = try HardwareProfile.resolve(id) } catch { throw CommandError(message: "\(error)", code: 2) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(p), as: UTF8.self))
            return
        }
        var rows = [["id", "kind", "fp32 GFLOP/s", "DRAM GB/s", "LLC", "launch us", "name"]]
        for p in HardwareProfile.builtIn() {
            rows.append([p.id, p.kind, String(format: "%.0f", p.peak(for: "float32") / 1e9), String(format: "%.1f", p.dramBytesPerSecond / 1e9),
                         InspectReport.bytes(p.lastLevelCacheBytes), String(format: "%.0f", p.launchOverheadSeconds * 1e6), p.name])
        }
        print(InspectReport.table(rows, indent: ""))
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put two models side by side.",
        discussion: """
            Totals (nodes, MACs, FLOPs, parameters, bytes, DRAM traffic, predicted time), \
            per-canonical-op deltas, and the layers (by name) found in only one model. Works \
            for two versions of a model and for the .onnx and .tflite of one model (compared \
            by canonical op, since names differ across formats).

            Examples:
              modellens compare resnet50_v1.onnx resnet50_v2.onnx
              modellens compare model.onnx model.tflite --format json
            """
    )

    @Argument(help: "The first model (A).")
    var a: String
    @Argument(help: "The second model (B).")
    var b: String
    @Option(help: "A built-in profile id or a JSON file.")
    var profile: String = HardwareProfile.defaultID
    @Option(help: "Threads to predict for (a calibrated profile has models per thread count; see `modellens calibrate`).")
    var threads: Int = 1
    @Option(help: "table or json.")
    var format: String = "table"

    func run() throws {
        guard format == "table" || format == "json" else { throw ValidationError("--format must be table or json") }
        let hw = try resolveProfile(profile)
        let ra = ModelAnalyzer.analyze(try ModelImporter.load(a), profile: hw, threads: threads)
        let rb = ModelAnalyzer.analyze(try ModelImporter.load(b), profile: hw, threads: threads)
        print(Comparison(ra, rb).render(json: format == "json"))
    }
}

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a channel-scaled copy of a CNN (width multiplier).",
        discussion: """
            Every convolution and hidden fully-connected layer keeps round(width x channels) \
            channels (at least one); depthwise convolutions follow their input; the input and \
            the final classifier keep their sizes. Weights are cut to the leading channels, so \
            the copy is the original network slimmed, for analysis (and later execution). \
            The file is written under a temporary name and renamed when complete.

            Examples:
              modellens scale resnet50.onnx --width 0.5 -o resnet50_w050.onnx
              modellens analyze resnet50_w050.onnx
            """
    )

    @Argument(help: "The .onnx model (a CNN).")
    var model: String
    @Option(help: "The width multiplier, e.g. 0.5 or 1.25.")
    var width: Double
    @Option(name: [.customShort("o"), .long], help: "Where to write the scaled .onnx.")
    var output: String

    func run() throws {
        do {
            let r = try WidthScaler.scale(model, width: width, output: output)
            print("wrote \(r.output) (width \(width), \(r.scaledTensors) weight tensors cut)")
        } catch let e as WidthScaler.ScaleError {
            throw CommandError(message: e.description, code: 1)
        }
    }
}

struct Study: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sweep the width multiplier and tabulate cost and predicted latency (as paper 000 did).",
        discussion: """
            For each width: FLOPs, MACs, parameters, bytes moved, DRAM traffic under the \
            profile's cache model, and the predicted latency. Each width is written to a \
            temporary file by `scale`, imported and analysed. A progress line goes to standard error.

            Examples:
              modellens study mobilenet_v2.onnx --widths 0.25,0.5,0.75,1.0 --profile odroid-xu4-mali-t628
              modellens study vgg16.onnx --widths 0.125,0.25,0.5 --format json
            """
    )

    @Argument(help: "The .onnx model (a CNN).")
    var model: String
    @Option(help: "Comma-separated width multipliers.")
    var widths: String = "0.25,0.5,0.75,1.0"
    @Option(help: "A built-in profile id or a JSON file.")
    var profile: String = HardwareProfile.defaultID
    @Option(help: "Threads to predict for (a calibrated profile has models per thread count; see `modellens calibrate`).")
    var threads: Int = 1
    @Option(help: "table or json.")
    var format: String = "table"

    func run() throws {
        let list = widths.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.count == widths.split(separator: ",").count, list.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--widths expects positive numbers separated by commas, got '\(widths)'")
        }
        guard format == "table" || format == "json" else { throw ValidationError("--format must be table or json") }
        let hw = try resolveProfile(profile)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("modellens-study-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rows: [[String: Any]] = []
        for (k, w) in list.enumerated() {
            FileHandle.standardError.write(Data("study: width \(w) (\(k + 1)/\(list.count))\r".utf8))
            let path = dir.appendingPathComponent("w\(k).onnx").path
            do { _ = try WidthScaler.scale(model, width: w, output: path) } catch let e as WidthScaler.ScaleError {
                throw CommandError(message: e.description, code: 1)
            }
            let r = ModelAnalyzer.analyze(try ModelImporter.load(path), profile: hw, threads: threads)
            try? FileManager.default.removeItem(atPath: path)
            let t = r.totals
            rows.append(["width": w, "macs": t.macs, "flops": t.flops, "params": t.params, "bytesRead": t.bytesRead,
                         "bytesWritten": t.bytesWritten, "dramBytes": t.dramBytes, "predictedMs": t.predictedSeconds * 1000])
        }
        FileHandle.standardError.write(Data("\n".utf8))
        if format == "json" {
            let obj: [String: Any] = ["model": model, "profile": hw.id, "convention": CostModel.convention, "widths": rows]
            print(renderJSON(obj))
            return
        }
        print("model: \(model); profile: \(hw.id)\ncounting: see `modellens analyze --help`\n")
        var table = [["width", "MACs", "FLOPs", "params", "bytes moved", "DRAM bytes", "predicted ms"]]
        for r in rows {
            table.append([String(r["width"] as! Double), SymCount.human(r["macs"] as! Int), SymCount.human(r["flops"] as! Int),
                          SymCount.human(r["params"] as! Int), SymCount.human((r["bytesRead"] as! Int) + (r["bytesWritten"] as! Int)),
                          SymCount.human(r["dramBytes"] as! Int), String(format: "%.3f", r["predictedMs"] as! Double)])
        }
        print(InspectReport.table(table, indent: ""))
    }
}
