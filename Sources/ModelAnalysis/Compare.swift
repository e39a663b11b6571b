import Foundation
import ModelIR

/// Two analyses side by side: totals, per-op-type deltas (by canonical op, so
/// an .onnx and a .tflite of one model line up), and layers only in one of them.
public struct Comparison: Sendable {
    public struct Row: Sendable {
        public var key: String
        public var a: Int
        public var b: Int
        public var delta: Int { b - a }
    }

    public var a: AnalysisReport
    public var b: AnalysisReport
    public var totals: [Row]
    public var byOp: [(op: String, nodes: Row, macs: Row, params: Row)]
    public var onlyInA: [String]
    public var onlyInB: [String]
    /// Whether layers were matched by name (same format) or not at all (names differ by format).
    public var matchedByName: Bool

    public init(_ a: AnalysisReport, _ b: AnalysisReport) {
        self.a = a
        self.b = b
        let ta = a.totals, tb = b.totals
        totals = [
            Row(key: "nodes", a: ta.nodes, b: tb.nodes), Row(key: "MACs", a: ta.macs, b: tb.macs), Row(key: "FLOPs", a: ta.flops, b: tb.flops),
            Row(key: "params", a: ta.params, b: tb.params), Row(key: "weight bytes", a: ta.weightBytes, b: tb.weightBytes),
            Row(key: "activation bytes read", a: ta.activationBytesRead, b: tb.activationBytesRead),
            Row(key: "bytes written", a: ta.bytesWritten, b: tb.bytesWritten), Row(key: "DRAM bytes", a: ta.dramBytes, b: tb.dramBytes),
            Row(key: "predicted us", a: Int(ta.predictedSeconds * 1e6), b: Int(tb.predictedSeconds * 1e6)),
        ]
        func group(_ r: AnalysisReport) -> [String: (Int, Int, Int)] {
            var out: [String: (Int, Int, Int)] = [:]
            for n in r.nodes {
                let v = out[n.canonical] ?? (0, 0, 0)
                out[n.canonical] = (v.0 + 1, v.1 + n.macs, v.2 + n.params)
            }
            return out
        }
        let ga = group(a), gb = group(b)
        byOp = Set(ga.keys).union(gb.keys).sorted().map { op in
            let x = ga[op] ?? (0, 0, 0), y = gb[op] ?? (0, 0, 0)
            return (op, Row(key: "nodes", a: x.0, b: y.0), Row(key: "MACs", a: x.1, b: y.1), Row(key: "params", a: x.2, b: y.2))
        }
        matchedByName = a.model.format == b.model.format
        if matchedByName {
            let na = Set(a.nodes.map(\.name)), nb = Set(b.nodes.map(\.name))
            onlyInA = a.nodes.map(\.name).filter { !nb.contains($0) }
            onlyInB = b.nodes.map(\.name).filter { !na.contains($0) }
        } else {
            onlyInA = []
            onlyInB = []
        }
    }

    public func render(json: Bool) -> String {
        if json {
            func row(_ r: Row) -> [String: Any] { ["a": r.a, "b": r.b, "delta": r.delta] }
            let obj: [String: Any] = [
                "a": a.model.path, "b": b.model.path, "profile": a.profile.id,
                "totals": Dictionary(uniqueKeysWithValues: totals.map { ($0.key, row($0)) }),
                "byOpType": Dictionary(uniqueKeysWithValues: byOp.map { ($0.op, ["nodes": row($0.nodes), "macs": row($0.macs), "params": row($0.params)]) }),
                "onlyInA": onlyInA, "onlyInB": onlyInB, "matchedByName": matchedByName,
            ]
            return renderJSON(obj)
        }
        func pct(_ r: Row) -> String { r.a == 0 ? (r.b == 0 ? "" : "new") : String(format: "%+.1f%%", 100 * Double(r.delta) / Double(r.a)) }
        var out = ["A: \(a.model.path)", "B: \(b.model.path)", "profile: \(a.profile.id); counting convention as in `modellens analyze --help`", ""]
        var rows = [["", "A", "B", "B - A", ""]]
        for r in totals { rows.append([r.key, SymCount.human(r.a), SymCount.human(r.b), SymCount.human(r.delta), pct(r)]) }
        out.append(AnalysisRenderer.align(rows))
        out.append("")
        out.append("by canonical op:")
        rows = [["op", "nodes A", "nodes B", "MACs A", "MACs B", "params A", "params B"]]
        for o in byOp {
            rows.append([o.op, String(o.nodes.a), String(o.nodes.b), SymCount.human(o.macs.a), SymCount.human(o.macs.b),
                         SymCount.human(o.params.a), SymCount.human(o.params.b)])
        }
        out.append(AnalysisRenderer.align(rows))
        out.append("")
        if matchedByName {
            out.append("layers only in A (\(onlyInA.count)): " + onlyInA.prefix(20).joined(separator: ", ") + (onlyInA.count > 20 ? ", ..." : ""))
            out.append("layers only in B (\(onlyInB.count)): " + onlyInB.prefix(20).joined(separator: ", ") + (onlyInB.count > 20 ? ", ..." : ""))
        } else {
            out.append("the two files are of different formats: layers are compared by canonical op, not by name")
        }
        return out.joined(separator: "\n")
    }
}
