import ArgumentParser
import Foundation
import ModelAnalysis
import ModelExport
import ModelImport
import ModelIR
import ModelRuntime

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert between ONNX and TFLite (or rewrite within one format), optionally verified by running both.",
        discussion: """
            The output format follows OUT's extension (.onnx or .tflite). ONNX -> TFLite turns \
            NCHW activations into NHWC once, at the model's edges (one Transpose per 4-D input \
            and output, none inside), permutes kernels to OHWI / 1HWO, folds BatchNormalization \
            into the preceding convolution and maps Conv, ConvTranspose, Gemm/MatMul, pools, Pad, \
            Concat, Split, Slice, Resize, Softmax, reductions and the activations onto TFLite \
            builtins (the list is in Docs/guide/convert.md; `modellens ops` prints it). TFLite -> ONNX does the reverse. \
            Converting to the same format rewrites the file through ModelLens' writer.

            An op with no counterpart stops the conversion with a message naming the node and \
            the op, and nothing is written; the output appears only when it is complete.

            --verify runs IN and OUT on the same seeded random inputs with the native executor \
            and prints the largest absolute and relative difference per output (relative to the \
            output's largest magnitude); a difference over --tolerance fails the command (exit 1) \
            and the output is removed.

            Examples:
              modellens convert mobilenet_v2.onnx mobilenet_v2.tflite --verify
              modellens convert face_detection.tflite face_detection.onnx --verify --json
              modellens convert resnet50.onnx resnet50_nhwc.tflite --keep-io-layout false
            """
    )

    @Argument(help: "The model to convert (.onnx or .tflite).") var input: String
    @Argument(help: "The file to write; its extension chooses the format.") var output: String
    @Flag(help: "Run both models on the same random inputs and compare their outputs.") var verify = false
    @Option(help: "Largest relative difference --verify accepts.") var tolerance: Double = 1e-4
    @Option(name: .customLong("keep-io-layout"), help: "Keep the source's layout (NCHW/NHWC) at inputs and outputs: true or false.") var keepIOLayout: Bool = true
    @Option(name: .customLong("input-shape"), parsing: .singleValue, help: ArgumentHelp("Fix an input's shape: NAME=D1,D2,...", valueName: "name=dims")) var inputShapes: [String] = []
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        guard tolerance > 0 else { throw ValidationError("--tolerance must be positive") }
        var shapes = try Inspect.parseShapes(inputShapes)
        var m = try ModelImporter.load(input, options: .init(inputShapes: shapes))
        let fixed = fixSymbolicInputs(m, &shapes, for: output)
        if !fixed.isEmpty { m = try ModelImporter.load(input, options: .init(inputShapes: shapes)) }
        var options = Converter.Options()
        options.keepIOLayout = keepIOLayout
        var report: ConversionReport
        do {
            report = try Converter.convert(m, to: output, options: options)
            if !fixed.isEmpty { report.notes.append("symbolic input sizes fixed to 1 (use --input-shape for others): " + fixed.joined(separator: "; ")) }
        } catch let e as ExportError {
            throw CommandError(message: "\(input) -> \(e)", code: 1)
        }
        var checks: [[String: Any]] = []
        var failed: [String] = []
        if verify {
            do {
                checks = try verifyConversion(m, output: output, changesLayout: !keepIOLayout && m.format.rawValue != (output as NSString).pathExtension.lowercased())
            } catch {
                unlink(output)
                throw CommandError(message: "\(input) -> \(output): verification could not run: \(error); the output was removed", code: 1)
            }
            failed = checks.filter { ($0["relative"] as? Double ?? .infinity) > tolerance }.map { $0["output"] as? String ?? "?" }
        }
        if json {
            var obj: [String: Any] = ["source": report.source, "target": report.target, "sourceFormat": report.sourceFormat,
                                      "targetFormat": report.targetFormat, "nodesBefore": report.nodesBefore, "nodesAfter": report.nodesAfter,
                                      "opsMapped": report.opsMapped, "transposesInserted": report.transposesInserted,
                                      "transposesKept": report.transposesKept, "constantsFolded": report.constantsFolded,
                                      "bytesBefore": report.bytesBefore, "bytesAfter": report.bytesAfter, "notes": report.notes]
            if verify { obj["verification"] = ["tolerance": tolerance, "outputs": checks, "passed": failed.isEmpty] as [String: Any] }
            print(renderJSON(obj))
        } else {
            print("\(report.source) (\(report.sourceFormat), \(report.nodesBefore) nodes, \(InspectReport.bytes(report.bytesBefore)))")
            print("  -> \(report.target) (\(report.targetFormat), \(report.nodesAfter) nodes, \(InspectReport.bytes(report.bytesAfter)))")
            if !report.opsMapped.isEmpty {
                print("ops mapped:")
                for (k, v) in report.opsMapped.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) { print("  \(v)× \(k)") }
            }
            print("transposes inserted: \(report.transposesInserted); kept from the source: \(report.transposesKept); constants folded: \(report.constantsFolded)")
            for n in report.notes { print("note: \(n)") }
            if verify {
                print("verification (native executor, seeded random inputs, tolerance \(tolerance) relative):")
                for c in checks {
                    print(String(format: "  %@  max abs diff %.3g  relative %.3g  %@", c["output"] as? String ?? "?", c["maxAbs"] as? Double ?? .nan,
                                 c["relative"] as? Double ?? .nan, (c["relative"] as? Double ?? .infinity) <= tolerance ? "ok" : "FAILED"))
                }
            }
        }
        if !failed.isEmpty {
            unlink(output)
            throw CommandError(message: "\(output): outputs differ beyond \(tolerance): \(failed.joined(separator: ", ")); the output was removed", code: 1)
        }
    }
}

/// A conversion to the other format changes the layout, which needs concrete sizes: the
/// symbolic ones of `m`'s inputs (a batch size) not given in `shapes` become 1 there. Returns
/// what was fixed ("input [batch, 3, 32, 32] -> [1, 3, 32, 32]"); empty when nothing was.
func fixSymbolicInputs(_ m: Model, _ shapes: inout [String: Shape], for output: String) -> [String] {
    guard m.format.rawValue != (output as NSString).pathExtension.lowercased() else { return [] }
    var fixed: [String] = []
    for id in m.graph.inputs where m.graph.values[id].constant == nil {
        let v = m.graph.values[id]
        guard let dims = v.type.shape.dims, !v.type.shape.isConcrete, shapes[v.name] == nil else { continue }
        shapes[v.name] = Shape(known: dims.map { $0.value ?? 1 })
        fixed.append("\(v.name) \(v.type.shape) -> \(shapes[v.name]!)")
    }
    return fixed
}

/// Runs the source model and the converted file on the same inputs; one entry per output.
func verifyConversion(_ source: Model, output: String, changesLayout: Bool) throws -> [[String: Any]] {
    let target = try ModelImporter.load(output)
    let ea = try Executor(model: source, threads: 1)
    let eb = try Executor(model: target, threads: 1)
    let feedsA = try prepareInputs(source, specs: [], random: true)
    guard source.graph.inputs.count == target.graph.inputs.count, source.graph.outputs.count == target.graph.outputs.count else {
        throw CommandError(message: "the converted model has \(target.graph.inputs.count) inputs and \(target.graph.outputs.count) outputs, the source \(source.graph.inputs.count) and \(source.graph.outputs.count)", code: 1)
    }
    // NCHW <-> NHWC when the edges changed layout.
    let toTarget = source.format == .onnx ? [0, 2, 3, 1] : [0, 3, 1, 2]
    let toSource = source.format == .onnx ? [0, 3, 1, 2] : [0, 2, 3, 1]
    var feedsB: [String: RTensor] = [:]
    for (a, b) in zip(source.graph.inputs, target.graph.inputs) {
        let t = feedsA[source.graph.values[a].name]!
        feedsB[target.graph.values[b].name] = changesLayout && t.shape.count == 4 ? permute(t, toTarget) : t
    }
    let outA = try ea.run(feedsA)
    let outB = try eb.run(feedsB)
    var checks: [[String: Any]] = []
    for (a, b) in zip(source.graph.outputs, target.graph.outputs) {
        let name = source.graph.values[a].name
        guard let x = outA[name], var y = outB[target.graph.values[b].name] else { continue }
        if changesLayout && y.shape.count == 4 { y = permute(y, toSource) }
        guard x.shape == y.shape else {
            checks.append(["output": name, "maxAbs": Double.infinity, "relative": Double.infinity, "reason": "shape \(y.shape) instead of \(x.shape)"])
            continue
        }
        let xs = x.toFloats(), ys = y.toFloats()
        var worst = 0.0, scale = 1e-6
        for i in 0..<xs.count {
            worst = max(worst, Double(abs(xs[i] - ys[i])))
            scale = max(scale, Double(abs(xs[i])))
        }
        checks.append(["output": name, "maxAbs": worst, "relative": worst / scale])
    }
    return checks
}

/// A copy of `t` with its axes permuted (out.shape[i] = t.shape[perm[i]]).
func permute(_ t: RTensor, _ perm: [Int]) -> RTensor {
    let out = RTensor.allocate(perm.map { t.shape[$0] }, t.dtype)
    permuteElements(t.raw, into: out.raw, shape: t.shape, perm: perm, elementSize: t.elementSize)
    return out
}
