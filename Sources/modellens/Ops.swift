import ArgumentParser
import Foundation
import ModelAnalysis
import ModelConformance

struct Ops: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print which ops ModelLens imports, understands, runs and converts.",
        discussion: """
            One row per canonical op (the format-neutral op the importers map file ops onto): the \
            ONNX and TFLite ops that import as it, whether it has a shape rule and a cost rule, \
            whether the CPU executor runs it, and whether `convert` writes it (write ONNX: from a \
            TFLite model; write TFLite: from an ONNX model; a model written back to its own format \
            keeps every op it had). Read from the tables the modules keep, not from a list beside \
            them.

            Examples:
              modellens ops
              modellens ops --filter Conv
              modellens ops --json > ops.json
            """
    )

    @Flag(help: "Print JSON (an array of rows) instead of the table.") var json = false
    @Option(help: "Only ops whose name contains this (case-insensitive).") var filter: String?

    func run() throws {
        var rows = OpSupportMatrix.rows()
        if let filter { rows = rows.filter { $0.op.localizedCaseInsensitiveContains(filter) } }
        if json {
            print(renderJSON(rows.map(\.json)))
            return
        }
        func mark(_ b: Bool) -> String { b ? "yes" : "-" }
        func names(_ list: [String]) -> String {
            list.isEmpty ? "-" : list.count > 2 ? list.prefix(2).joined(separator: ", ") + " +\(list.count - 2)" : list.joined(separator: ", ")
        }
        var table = [["op", "ONNX", "TFLite", "shape", "cost", "run", "write ONNX", "write TFLite", "note"]]
        for r in rows {
            table.append([r.op, names(r.onnx), names(r.tflite), mark(r.shape), mark(r.cost), mark(r.run), mark(r.writeONNX),
                          mark(r.writeTFLite), r.note ?? ""])
        }
        print(InspectReport.table(table, indent: ""))
        let count = { (f: (OpSupport) -> Bool) in rows.filter(f).count }
        print("\n\(rows.count) ops: \(count { !$0.onnx.isEmpty }) import from ONNX, \(count { !$0.tflite.isEmpty }) from TFLite, "
              + "\(count(\.shape)) with a shape rule, \(count(\.cost)) with a cost rule, \(count(\.run)) run, "
              + "\(count(\.writeONNX)) written to ONNX, \(count(\.writeTFLite)) to TFLite")
    }
}
