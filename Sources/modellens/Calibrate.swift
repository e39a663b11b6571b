import ArgumentParser
import CKernels
import Foundation
import ModelAnalysis
import ModelCalibration

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit this machine's kernel cost models, for predictions you can trust.",
        discussion: """
            Times a designed sample of small networks on the executor (inverted residual blocks, \
            3x3 and strided convolutions, stems, pooling, a classifier head, common activations \
            and data movement; NCHW as from ONNX and NHWC as from TFLite), kernel by kernel, in \
            interleaved rounds (each kernel's time is the minimum of its round medians, scaled so \
            that a network's kernels sum to its best round), and fits \
            one cost model per kernel class: seconds = call + flops/rate + bytes/bandwidth + \
            weight bytes/bandwidth, every term non-negative. It also measures, per thread count, \
            the rate a batch-1 product streams weights from memory: what a model too large for \
            the cache pays for its weights on every run. Writes a hardware profile (this host's \
            measured peak and bandwidth, plus a `kernels` section per thread count) that \
            `analyze`, `profile`, `study` and `compare` take with --profile.

            1-thread timings are pinned to one CPU, as the benchmarks are. Each thread count is \
            timed in two passes, the other counts' between them, and the faster kept: a shared \
            host's speed moves with its other tenants. When the machine is too \
            busy for repeatable timings (round medians differ by more than --max-spread), nothing \
            is written: run it again when the machine is quiet, or pass --allow-unstable.

            With --from-timings, nothing is timed here: the profile is fitted to the latencies of \
            a runtime or device ModelLens does not run (LiteRT on a phone, onnxruntime on a server). \
            Each CSV row is `model,milliseconds[,op_profile]`: a model file, its measured median, and \
            optionally onnxruntime's per-op profile of it (the JSON that \
            `SessionOptions.enable_profiling` writes). The --base profile's kernel models (or its \
            roofline) give each kernel's time up to one factor per kernel family (\(TimingsFit.families.joined(separator: ", "))) \
            plus a per-kernel overhead; the fit finds those \(TimingsFit.parameters) numbers and prints \
            its residuals. A per-op profile gives one sample per kernel (the runtime's ops summed \
            where it splits what ModelLens fuses), and a class with \(TimingsFit.minClassSamples) or more samples (or \
            \(TimingsFit.minAgreeingSamples) that agree) a factor of its own. With fewer than \(3 * TimingsFit.parameters) samples (models or kernels) one \
            factor serves all families; it needs at least three.

            Examples:
              modellens calibrate -o host.json
              modellens calibrate --threads 1,2 -o host.json
              modellens analyze resnet50.onnx --profile host.json --threads 2
              modellens calibrate --from-timings ort.csv --base host.json -o ort.json
            """
    )

    @Option(help: "Thread counts to calibrate, comma-separated (1,2).") var threads: String = "1"
    @Flag(help: "A third of the networks (about a quarter of the time).") var quick = false
    @Option(name: [.customShort("o"), .long], help: "Write the profile to this JSON file (default: print it).") var output: String?
    @Option(help: "Largest tolerated spread of round medians (0.05 = 5%).") var maxSpread: Double = 0.05
    @Flag(help: "Write the profile even when the timings were unstable (the profile records it).") var allowUnstable = false
    @Option(help: "table or json (the summary on standard output when -o is given).") var format: String = "table"
    @Option(name: .customLong("from-timings"), help: ArgumentHelp("Fit to measured latencies instead: a CSV of model,milliseconds[,op_profile].", valueName: "csv")) var fromTimings: String?
    @Option(help: "With --from-timings: the profile to start from (built-in id or JSON file).") var base: String = HardwareProfile.defaultID
    @Option(help: ArgumentHelp("Also write every kernel timed (network, kernel, class, its features, seconds) to this CSV: what each class's fit saw.", valueName: "csv")) var samples: String?

    func run() throws {
        let counts = threads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else { throw ValidationError("--threads takes thread counts separated by commas, e.g. 1,2") }
        guard format == "table" || format == "json" else { throw ValidationError("--format must be table or json") }
        guard maxSpread > 0 else { throw ValidationError("--max-spread must be positive") }
        var progress = Progress("calibrate", total: 1)
        if let fromTimings {
            guard counts.count == 1, let n = counts[0] else { throw ValidationError("--from-timings fits one thread count: pass --threads N") }
            try fitTimings(fromTimings, threads: n, progress: &progress)
            return
        }
        var profile = HostMeasurement.measure(threads: 1) { progress.update($0) }
        profile.id = "host-calibrated"
        profile.kernels = [:]
        var summaries: [[String: Any]] = []
        var unstable: [String] = []
        var sampleRows = ["threads,network,kernel,class,flops,bytes,weight_bytes,spill_bytes,rows,channel_alignment,lane_use,seconds"]
        // Every thread count is timed in two passes, the other counts' passes between them (back
        // to back if it is the only count), and the pass whose networks ran faster is kept. A
        // shared host's speed moves with its other tenants for a minute at a time, which round
        // medians within one pass do not show: two calibrations in a row (AMD EPYC, Zen 4) once
        // took 30 s and 25 s for the same 2-thread rounds, each spreading 1% within itself, and the
        // slow one put 2-thread predictions a median 19% over the models' measured times; two
        // 1-thread calibrations minutes apart put a study's models a median 5.4% over and 0.7%
        // under (77% and 87% of 99 within 10%).
        let numbers = counts.compactMap { $0 }
        let order = numbers.filter { $0 > 1 } + numbers.filter { $0 == 1 }
        let passes = order + order
        var kept: [Int: Calibration.Result] = [:]
        var passSeconds: [Int: [Double]] = [:]
        var built: [Int: Calibration.Networks] = [:]
        var written: Calibration.Models?
        for (i, n) in passes.enumerated() {
            var options = Calibration.Options()
            options.threads = n
            options.quick = quick
            if quick { (options.rounds, options.runsPerRound) = (3, 4) }
            else { options.rounds = 3 }
            let pass = passes[..<i].contains(n) ? ", pass 2/2" : ", pass 1/2"
            let result: Calibration.Result
            do {
                result = try withPinnedCPU(n == 1) {
                    let started = Date()
                    let models = try written ?? Calibration.models(options) { progress.update($0) }
                    written = models
                    let networks = try built[n] ?? Calibration.build(models, threads: n, host: profile) { progress.update("\(n) thread(s)\(pass): \($0)") }
                    built[n] = networks
                    var r = try Calibration.run(options, networks) { progress.update("\(n) thread(s)\(pass): \($0)") }
                    r.seconds = Date().timeIntervalSince(started)
                    return r
                }
            } catch {
                progress.finish()
                throw CommandError(message: "calibrate: \(error)", code: 1)
            }
            passSeconds[n, default: []].append(result.networkSeconds)
            if let other = kept[n], other.networkSeconds <= result.networkSeconds { continue }
            kept[n] = result
        }
        for n in numbers {
            guard let result = kept[n] else { continue }
            profile.kernels?[String(n)] = result.models
            for k in result.kernels {
                let f = k.features
                sampleRows.append("\(n),\(k.network),\(csvField(k.kernel)),\(f.kernelClass),\(f.flops),\(f.bytesRead + f.bytesWritten),\(f.weightBytes),\(f.spill),\(f.rows),\(f.channelAlignment),\(f.laneUse),\(k.seconds)")
            }
            if profile.weightStreamBytesPerSecond?[String(n)] == nil {
                progress.update("\(n) thread(s): measuring weights streamed by a batch-1 product (256 MB)")
                if let rate = HostMeasurement.weightStream(threads: n) {
                    profile.weightStreamBytesPerSecond = (profile.weightStreamBytesPerSecond ?? [:]).merging([String(n): rate]) { $1 }
                }
            }
            let twoPasses = (passSeconds[n] ?? []).count > 1
                ? String(format: "; the faster of two passes, whose networks took %@ s", (passSeconds[n] ?? []).map { String(format: "%.2f", $0) }.joined(separator: " and "))
                : ""
            profile.sources["kernels.\(n)"] = String(format: "modellens calibrate %@: %d kernels of %d networks, %d rounds, %.0f s; round medians spread %.1f%%%@",
                                                     ISO8601DateFormatter().string(from: Date()), result.samples, result.networks,
                                                     result.rounds, result.seconds, result.spread * 100, twoPasses)
            if result.spread > maxSpread { unstable.append(String(format: "%d thread(s): round medians differ by %.1f%% (more than %.0f%%)", n, result.spread * 100, maxSpread * 100)) }
            summaries.append(["threads": n, "samples": result.samples, "networks": result.networks, "seconds": result.seconds,
                              "spread": result.spread, "classes": result.models.keys.sorted()])
            progress.finish()
            if format == "table" || output == nil {
                printSummary(result, threads: n)
            }
        }
        // Memory bandwidth on a shared host moves by a quarter within minutes (12.2 and 15.8 GB/s
        // for the same weights in two calibrations in a row): each rate is the best of two
        // measurements a calibration apart.
        for n in counts.compactMap({ $0 }) {
            progress.update("\(n) thread(s): measuring weights streamed by a batch-1 product again")
            if let again = HostMeasurement.weightStream(threads: n) {
                let first = profile.weightStreamBytesPerSecond?[String(n)] ?? 0
                profile.weightStreamBytesPerSecond?[String(n)] = max(again, first)
            }
        }
        progress.finish()
        if !unstable.isEmpty {
            let message = "the machine was too busy for repeatable timings: \(unstable.joined(separator: "; ")); a profile from them would mispredict"
            guard allowUnstable else { throw CommandError(message: "calibrate: \(message); nothing written (run again on a quiet machine, or pass --allow-unstable)", code: 1) }
            profile.sources["warning"] = message
            FileHandle.standardError.write(Data("calibrate: warning: \(message)\n".utf8))
        }
        if let samples {
            do { try Data((sampleRows.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: samples), options: .atomic) } catch {
                throw CommandError(message: "\(samples): cannot write the samples: \(error.localizedDescription)", code: 1)
            }
        }
        profile.name = profile.name.replacingOccurrences(of: "(measured, 1 thread(s))", with: "(calibrated)")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(profile)
        guard let output else {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        do { try data.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
            throw CommandError(message: "\(output): cannot write the profile: \(error.localizedDescription)", code: 1)
        }
        if format == "json" { print(renderJSON(["output": output, "calibrations": summaries])) }
        FileHandle.standardError.write(Data("calibrate: saved \(output); use it with `modellens analyze MODEL --profile \(output) --threads N`\n".utf8))
    }

    func fitTimings(_ csv: String, threads n: Int, progress: inout Progress) throws {
        let baseProfile = try resolveProfile(base)
        let result: TimingsFit.Result
        do {
            let rows = try TimingsFit.readCSV(csv)
            result = try TimingsFit.fit(rows, base: baseProfile, threads: n) { progress.update($0) }
        } catch let e as TimingsFit.FitError {
            progress.finish()
            throw CommandError(message: "calibrate: \(csv): \(e)", code: 1)
        }
        progress.finish()
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(result.profile)
        if format == "json" {
            print(renderJSON(["factors": result.factors, "classFactors": result.classFactors, "perKernelSeconds": result.perKernelSeconds, "samples": result.samples,
                              "opSamples": result.opSamples, "output": output ?? NSNull(),
                              "alignmentSplits": result.alignmentSplits,
                              "residuals": result.residuals.map { ["model": $0.model, "measuredMs": $0.measuredMs, "baseMs": $0.baseMs, "fittedMs": $0.fittedMs] }]))
        } else {
            print("fitted to \(result.residuals.count) model(s) and \(result.opSamples) per-op sample(s), base \(baseProfile.id), \(n) thread(s)"
                  + (result.sharedFactor ? " (one factor for all families: fewer than \(3 * TimingsFit.parameters) samples):" : ":"))
            print("  " + TimingsFit.families.map { String(format: "%@ x%.3g", $0, result.factors[$0] ?? 0) }.joined(separator: ", ")
                  + String(format: "; %.2f us per kernel", result.perKernelSeconds * 1e6))
            if !result.classFactors.isEmpty {
                print("  classes with a factor of their own (\(TimingsFit.minClassSamples)+ per-op samples, or \(TimingsFit.minAgreeingSamples)+ that agree), on top of their family's: "
                      + result.classFactors.sorted { $0.key < $1.key }.map { String(format: "%@ x%.3g", $0.key, $0.value) }.joined(separator: ", "))
            }
            if !result.alignmentSplits.isEmpty {
                print("  convolutions fitted apart by channel alignment, below " + result.alignmentSplits.map(String.init).joined(separator: ", ")
                      + " (classes ending .under<N>)")
            }
            print()
            var rows = [["model", "measured ms", "base ms", "fitted ms", "fitted/measured"]]
            for r in result.residuals {
                rows.append([(r.model as NSString).lastPathComponent, String(format: "%.3f", r.measuredMs), String(format: "%.3f", r.baseMs),
                             String(format: "%.3f", r.fittedMs), String(format: "%.2f", r.fittedMs / r.measuredMs)])
            }
            print(InspectReport.table(rows, indent: "  "))
        }
        guard let output else {
            if format != "json" { print(String(decoding: data, as: UTF8.self)) }
            return
        }
        do { try data.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
            throw CommandError(message: "\(output): cannot write the profile: \(error.localizedDescription)", code: 1)
        }
        FileHandle.standardError.write(Data("calibrate: saved \(output)\n".utf8))
    }

    func printSummary(_ r: Calibration.Result, threads: Int) {
        print(String(format: "%d thread(s): %d kernels timed in %d networks (%.0f s); round medians spread %.1f%%", threads, r.samples, r.networks, r.seconds, r.spread * 100))
        var rows = [["class", "samples", "per call us", "GFLOP/s", "GB/s act.", "GB/s weights", "median |error|"]]
        func rate(_ c: Double?, _ unit: Double) -> String { c.map { $0 > 0 ? String(format: "%.1f", 1 / $0 / unit) : "-" } ?? "-" }
        for (cls, m) in r.models.sorted(by: { $0.key < $1.key }) where cls != KernelCostModel.dispatchClass {
            rows.append([cls, "\(m.samples)", m.coefficients["call"].map { String(format: "%.1f", $0 * 1e6) } ?? "-",
                         rate(m.coefficients["flops"], 1e9), rate(m.coefficients["bytes"], 1e9), rate(m.coefficients["weightBytes"], 1e9),
                         String(format: "%.0f%%", m.medianAbsError * 100)])
        }
        print(InspectReport.table(rows, indent: "  "))
        if let d = r.models[KernelCostModel.dispatchClass] {
            print(String(format: "  between kernels: %.2f us per kernel + %.1f%% of the kernels' time (off by a median %.1f%% of a network's time)",
                         (d.coefficients["call"] ?? 0) * 1e6, (d.coefficients["share"] ?? 0) * 100, d.medianAbsError * 100))
        }
        let errors = r.residuals.map { abs($0.predicted / $0.measured - 1) }.sorted()
        if !errors.isEmpty { print(String(format: "  all kernels: median |predicted/measured - 1| %.1f%%\n", errors[errors.count / 2] * 100)) }
    }
}

/// Runs `body` with the calling thread pinned to one CPU (mlk_pin_thread) when `pin` is set.
func withPinnedCPU<T>(_ pin: Bool, _ body: () throws -> T) rethrows -> T {
    guard pin, mlk_pin_thread() != 0 else { return try body() }
    defer { mlk_unpin_thread() }
    return try body()
}

/// A CSV field: quoted where it holds a comma or a quote.
private func csvField(_ s: String) -> String {
    s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}
