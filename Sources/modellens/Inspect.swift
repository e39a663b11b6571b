import ArgumentParser
import Foundation
import ModelImport
import ModelIR

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a model file contains.",
        discussion: """
            Prints the format and version, producer, opsets, inputs and outputs \
            (element type and shape; symbolic sizes such as `batch` stay named, \
            `?` is unknown), node count, a histogram of ops as the file names them, \
            parameters (elements of every constant tensor) by element type, \
            subgraphs, custom ops and warnings.

            --json prints one object instead; its fields are documented in \
            Docs/guide/inspect-json.md and are stable: format, formatVersion, producer, \
            opsets, nodeCount, opHistogram, canonicalOpHistogram, inputs, outputs \
            (each name, dtype, shape), parameterCount, parameterBytes, \
            parametersByDtype, subgraphCount, subgraphs, customOps, warnings.

            Examples:
              modellens inspect model.onnx
              modellens inspect model.onnx --input-shape images=1,3,640,640 --json
            """
    )

    @Argument(help: "The .onnx or .tflite file.")
    var model: String

    @Flag(help: "Print one JSON object (for scripts) instead of text.")
    var json = false

    @Option(name: .customLong("input-shape"), parsing: .singleValue,
            help: ArgumentHelp("Fix an input's shape before shape inference: NAME=D1,D2,... (a size or a symbol per dim). Repeatable.",
                               valueName: "name=dims"))
    var inputShapes: [String] = []

    @Flag(help: "Also list every value's inferred type.")
    var values = false

    @Flag(help: "Report import time and memory (peak RSS, RSS once loaded) as `importStats`.")
    var timing = false

    @Option(help: "With --timing: import this many times and report the median (the first import's memory is reported).")
    var runs: Int = 1

    func parsedShapes() throws -> [String: Shape] { try Inspect.parseShapes(inputShapes) }

    /// Parses `NAME=D1,D2,...` specs (sizes, symbols, or `?`).
    static func parseShapes(_ specs: [String]) throws -> [String: Shape] {
        var out: [String: Shape] = [:]
        for spec in specs {
            guard let eq = spec.lastIndex(of: "="), eq != spec.startIndex else {
                throw ValidationError("--input-shape expects NAME=D1,D2,..., got '\(spec)'")
            }
            let name = String(spec[..<eq])
            let dimsText = spec[spec.index(after: eq)...]
            let dims: [Dim] = try dimsText.split(separator: ",", omittingEmptySubsequences: false).map { part in
                let p = part.trimmingCharacters(in: .whitespaces)
                if let v = Int(p) {
                    guard v >= 0 else { throw ValidationError("--input-shape: negative size \(v) in '\(spec)'") }
                    return .known(v)
                }
                guard !p.isEmpty else { throw ValidationError("--input-shape: empty dimension in '\(spec)'") }
                return p == "?" ? .unknown : .symbol(p)
            }
            out[name] = Shape(dimsText.isEmpty ? [] : dims)
        }
        return out
    }

    func run() throws {
        let shapes = try parsedShapes()
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        var stats: ImportStats? = nil
        let start = DispatchTime.now().uptimeNanoseconds
        var model = try ModelImporter.load(self.model, options: .init(inputShapes: shapes))
        if timing {
            var times = [Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6]
            let rssLoaded = ImportStats.currentRSS()
            let peak = ImportStats.peakRSS()
            for _ in 1..<runs {
                let t0 = DispatchTime.now().uptimeNanoseconds
                model = try ModelImporter.load(self.model, options: .init(inputShapes: shapes))
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            stats = ImportStats(runs: runs, medianMs: times.sorted()[times.count / 2], firstMs: times[0],
                                peakRSSBytes: peak, loadedRSSBytes: rssLoaded, fileBytes: model.fileSize)
        }
        for name in shapes.keys where !model.graph.inputs.contains(where: { model.graph.values[$0].name == name }) {
            throw CommandError(message: "\(self.model): --input-shape names '\(name)', but the model's inputs are \(model.graph.inputs.map { "'\(model.graph.values[$0].name)'" }.joined(separator: ", "))", code: 2)
        }
        let summary = ModelSummary(model)
        if json {
            print(InspectReport.json(model, summary, includeValues: values, stats: stats))
        } else {
            print(InspectReport.text(model, summary, includeValues: values))
            if let stats {
                print("\nimport: median \(String(format: "%.2f", stats.medianMs)) ms over \(stats.runs) run(s); peak RSS \(InspectReport.bytes(stats.peakRSSBytes)), RSS once loaded \(InspectReport.bytes(stats.loadedRSSBytes)) (file \(InspectReport.bytes(stats.fileBytes)))")
            }
        }
    }
}

/// Import time and memory of one `inspect --timing` process.
struct ImportStats {
    var runs: Int
    var medianMs: Double
    var firstMs: Double
    var peakRSSBytes: Int
    var loadedRSSBytes: Int
    var fileBytes: Int

    var json: [String: Any] {
        ["runs": runs, "medianMs": medianMs, "firstMs": firstMs, "peakRSSBytes": peakRSSBytes,
         "loadedRSSBytes": loadedRSSBytes, "fileBytes": fileBytes]
    }

    /// Peak resident set size of this process image so far: VmHWM from
    /// /proc/self/status. (getrusage's ru_maxrss is carried across exec from
    /// the parent on Linux, so a child of a big process would report the
    /// parent's peak.) Falls back to getrusage elsewhere.
    static func peakRSS() -> Int {
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kb = Int(line.split(separator: " ").dropFirst().first ?? "") {
            return kb * 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    /// Resident set size now (/proc/self/statm), 0 where unavailable.
    static func currentRSS() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
