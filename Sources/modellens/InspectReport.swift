import Foundation
import ModelAnalysis
import ModelIR

/// Renders `inspect` output: aligned text for people, JSON for scripts.
enum InspectReport {
    static func shapeJSON(_ s: Shape) -> Any {
        guard let dims = s.dims else { return NSNull() }
        return dims.map { d -> Any in
            switch d {
            case .known(let v): return v
            case .symbol(let name): return name
            case .unknown: return "?"
            }
        }
    }

    static func valueJSON(_ v: Value) -> [String: Any] {
        ["name": v.name, "dtype": v.type.dtype.rawValue, "shape": shapeJSON(v.type.shape)]
    }

    static func formatName(_ m: Model) -> String { m.format == .onnx ? "ONNX" : "TFLite" }

    static func json(_ m: Model, _ s: ModelSummary, includeValues: Bool, stats: ImportStats? = nil) -> String {
        let g = m.graph
        var byDtype: [String: Any] = [:]
        for (dt, t) in s.parametersByDType {
            byDtype[dt.rawValue] = ["tensors": t.tensors, "elements": t.elements, "bytes": t.bytes]
        }
        var obj: [String: Any] = [
            "file": m.path,
            "fileBytes": m.fileSize,
            "format": m.format.rawValue,
            "formatVersion": m.formatVersion,
            "producer": m.producer,
            "opsets": m.opsets,
            "nodeCount": s.nodeCount,
            "opHistogram": s.opHistogram,
            "canonicalOpHistogram": s.canonicalHistogram,
            "inputs": g.inputs.map { valueJSON(g.values[$0]) },
            "outputs": g.outputs.map { valueJSON(g.values[$0]) },
            "parameterCount": s.parameterCount,
            "parameterBytes": s.parameterBytes,
            "parametersByDtype": byDtype,
            "subgraphCount": m.subgraphCount,
            "subgraphs": s.subgraphs.map { ["name": $0.name, "nodeCount": $0.nodes] },
            "customOps": s.customOps,
            "fp16DequantizedWeights": s.fp16DequantizedWeights,
            "perAxisQuantizedTensors": s.perAxisQuantizedTensors,
            "warnings": m.warnings,
        ]
        if let stats { obj["importStats"] = stats.json }
        if includeValues {
            obj["values"] = g.values.filter { !$0.name.isEmpty }.map { valueJSON($0) }
        }
        return renderJSON(obj)
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(n), i = 0
        while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }

    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0, i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func table(_ rows: [[String]], indent: String = "  ") -> String {
        guard let width = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: width)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            indent + r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func text(_ m: Model, _ s: ModelSummary, includeValues: Bool) -> String {
        let g = m.graph
        var out: [String] = []
        let version = m.format == .onnx ? "IR version \(m.formatVersion)" : "schema version \(m.formatVersion)"
        out.append("\(m.path)  (\(formatName(m)), \(version), \(bytes(m.fileSize)))")
        if !m.producer.isEmpty { out.append("producer:    \(m.producer)") }
        if !m.opsets.isEmpty {
            out.append("opsets:      " + m.opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", "))
        }
        out.append("nodes:       \(s.nodeCount) in the main graph" + (m.subgraphCount > 1 ? ", \(m.subgraphCount) graphs in all" : ""))
        out.append("")
        out.append("inputs:")
        out.append(table(g.inputs.map { let v = g.values[$0]; return [v.name, v.type.dtype.rawValue, v.type.shape.description] }))
        out.append("outputs:")
        out.append(table(g.outputs.map { let v = g.values[$0]; return [v.name, v.type.dtype.rawValue, v.type.shape.description] }))
        out.append("")
        out.append("parameters:  \(grouped(s.parameterCount)) (\(bytes(s.parameterBytes)))")
        if !s.parametersByDType.isEmpty { out.append(table(s.parametersByDType.sorted { $0.value.bytes > $1.value.bytes }.map {
            [$0.key.rawValue, grouped($0.value.elements), bytes($0.value.bytes), "\($0.value.tensors) tensor" + ($0.value.tensors == 1 ? "" : "s")]
        })) }
        if s.fp16DequantizedWeights > 0 {
            out.append("  \(s.fp16DequantizedWeights) float16 weight tensors are widened to float32 by DEQUANTIZE")
        }
        if s.perAxisQuantizedTensors > 0 {
            out.append("  \(s.perAxisQuantizedTensors) constant tensors are quantized per axis")
        }
        out.append("")
        out.append("ops:")
        out.append(table(s.opHistogram.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { [$0.key, String($0.value)] }))
        if m.subgraphCount > 1 {
            out.append("")
            out.append("subgraphs:")
            out.append(table(s.subgraphs.enumerated().map { i, sg in ["#\(i)", sg.name.isEmpty ? "(unnamed)" : sg.name, "\(sg.nodes) nodes"] }))
        }
        if !s.customOps.isEmpty {
            out.append("")
            out.append("custom ops (kept as opaque nodes):")
            out.append(table(s.customOps.sorted { $0.key < $1.key }.map { [$0.key, String($0.value)] }))
        }
        if includeValues {
            out.append("")
            out.append("values:")
            out.append(table(g.values.filter { !$0.name.isEmpty }.map { [$0.name, $0.type.dtype.rawValue, $0.type.shape.description] }))
        }
        if !m.warnings.isEmpty {
            out.append("")
            out.append("warnings:")
            for w in m.warnings.prefix(20) { out.append("  - \(w)") }
            if m.warnings.count > 20 { out.append("  ... and \(m.warnings.count - 20) more (see --json)") }
        }
        return out.joined(separator: "\n")
    }
}
