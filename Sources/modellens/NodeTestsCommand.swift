import ArgumentParser
import Foundation
import ModelConformance

struct NodeTestsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node-tests",
        abstract: "Run ONNX backend node tests on the native executor and print pass / fail / unsupported by op.",
        discussion: """
            Each DIR is searched for model.onnx files with test_data_set_* folders beside them \
            (the onnx wheel's onnx/backend/test/data/node, Debian's /usr/share/libonnx-testdata/data). \
            Outputs are compared at the ONNX test runner's tolerance (rtol 1e-3, atol 1e-7).

            Example:
              modellens node-tests /usr/share/libonnx-testdata/data --markdown
            """
    )

    @Argument(help: "Folders holding node tests.")
    var dirs: [String]
    @Flag(help: "Print the by-op table as Markdown.")
    var markdown = false
    @Flag(help: "List every failing test with the reason.")
    var failures = false

    func run() throws {
        let results = NodeTests.runAll(roots: dirs)
        var byOp: [String: (pass: Int, fail: Int, unsupported: Int)] = [:]
        for r in results {
            // A test counts under each op its model uses (expanded function tests use several).
            for op in r.ops.isEmpty ? ["(import)"] : r.ops {
                var v = byOp[op] ?? (0, 0, 0)
                switch r.outcome {
                case .pass: v.pass += 1
                case .fail: v.fail += 1
                case .unsupported: v.unsupported += 1
                }
                byOp[op] = v
            }
        }
        let total = (results.filter { $0.outcome == .pass }.count, results.filter { $0.outcome == .fail }.count, results.filter { $0.outcome == .unsupported }.count)
        if markdown {
            print("| op | pass | fail | unsupported |\n|---|---|---|---|")
            for (op, v) in byOp.sorted(by: { $0.key < $1.key }) { print("| \(op) | \(v.pass) | \(v.fail) | \(v.unsupported) |") }
        } else {
            var rows = [["op", "pass", "fail", "unsupported"]]
            for (op, v) in byOp.sorted(by: { $0.key < $1.key }) { rows.append([op, String(v.pass), String(v.fail), String(v.unsupported)]) }
            print(InspectReport.table(rows, indent: ""))
        }
        print("\n\(results.count) tests: \(total.0) pass, \(total.1) fail, \(total.2) unsupported")
        if failures { for r in results where r.outcome == .fail { print("FAIL \(r.name): \(r.detail)") } }
    }
}
