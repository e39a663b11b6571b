import Foundation
import ModelIR

/// Every JSON report: keys sorted (stable diffs), pretty-printed, slashes unescaped.
public func renderJSON(_ object: Any) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// Renders an analysis as an aligned table, JSON, CSV or Markdown.
public enum AnalysisFormat: String, CaseIterable, Sendable {
    case table, json, csv, markdown, html
}

public enum AnalysisRenderer {
    public static func render(_ r: AnalysisReport, format: AnalysisFormat, perLayer: Bool, top: Int, listKernels: Bool = false,
                              lowRank: [LowRankFinding]? = nil, lowRankSkipped: [String] = []) -> String {
        if let lowRank, format == .json {
            var obj = jsonObject(r)
            obj["lowRank"] = [
                "energy": LowRank.energy,
                "layers": lowRank.map { ["node": r.nodes[$0.node].name, "rows": $0.rows, "cols": $0.cols, "effectiveRank": $0.effectiveRank,
                                         "paramsSaved": $0.paramsSaved, "macsSaved": $0.macsSaved] },
                "skipped": lowRankSkipped,
            ]
            return renderJSON(obj)
        }
        if let lowRank, format == .table || format == .markdown {
            var rows = [["node", "weight", "effective rank", "params saved", "MACs saved"]]
            for f in lowRank.sorted(by: { $0.paramsSaved > $1.paramsSaved }) {
                rows.append([r.nodes[f.node].name, "\(f.rows)x\(f.cols)", String(f.effectiveRank), h(f.paramsSaved), h(f.macsSaved)])
            }
            let saved = lowRank.reduce(0) { $0 + $1.paramsSaved }, macs = lowRank.reduce(0) { $0 + $1.macsSaved }
            return render(r, format: format, perLayer: perLayer, top: top, listKernels: listKernels) + "\n\nlow-rank (\(Int(LowRank.energy * 100))% of spectral energy): \(lowRank.count) layers; a split would save \(h(saved)) params and \(h(macs)) MACs"
                + (lowRankSkipped.isEmpty ? "" : "; skipped as too large: " + lowRankSkipped.joined(separator: ", ")) + "\n" + align(rows)
        }
        switch format {
        case .json: return json(r)
        case .csv: return csv(r)
        case .markdown: return markdown(r, perLayer: perLayer, top: top)
        case .table: return table(r, perLayer: perLayer, top: top, listKernels: listKernels)
        case .html: return HTMLReport.render(r)
        }
    }

    static func ms(_ s: Double) -> Double { s * 1000 }
    static func fmt(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }
    static func h(_ v: Int) -> String { SymCount.human(v) }

    static func selected(_ r: AnalysisReport, perLayer: Bool, top: Int) -> [NodeAnalysis] {
        if perLayer { return r.nodes }
        return Array(r.nodes.sorted { $0.predictedSeconds > $1.predictedSeconds }.prefix(top))
    }

    static func header(_ r: AnalysisReport) -> [String] {
        let bound = r.bindings.isEmpty ? "" : " (symbols bound: " + r.bindings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")"
        return ["model:    \(r.model.path) (\(r.model.format.rawValue))",
                "profile:  \(r.profile.id) — \(r.profile.name)\(bound)",
                "predict:  \(methodLine(r))",
                "counting: \(CostModel.convention)"]
    }

    static func methodLine(_ r: AnalysisReport) -> String {
        if r.method == "calibrated" {
            let fallback = r.rooflineKernels > 0 ? "; \(r.rooflineKernels) kernel(s) of classes it has no model for by the roofline" : ""
            return "the profile's calibrated kernel models, \(r.threads) thread(s)\(fallback)"
        }
        let others = (r.profile.kernels ?? [:]).keys.sorted()
        let note = others.isEmpty ? "calibrate one with `modellens calibrate`" : "the profile has kernel models for \(others.joined(separator: ", ")) thread(s), not \(r.threads)"
        return "roofline over the profile's peak and bandwidth (no kernel models: \(note))"
    }

    static func symbolicLine(_ r: AnalysisReport) -> String? {
        guard r.symbolicMACs.constant == nil else { return nil }
        return "symbolic: MACs \(r.symbolicMACs), FLOPs \(r.symbolicFLOPs), params \(r.symbolicParams)"
    }

    static func align(_ rows: [[String]], rightFrom: Int = 1) -> String {
        guard let n = rows.map(\.count).max() else { return "" }
        var w = [Int](repeating: 0, count: n)
        for r in rows { for (i, c) in r.enumerated() { w[i] = max(w[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in
                let pad = String(repeating: " ", count: w[i] - c.count)
                return i >= rightFrom ? pad + c : c + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }.joined(separator: "\n")
    }

    static func table(_ r: AnalysisReport, perLayer: Bool, top: Int, listKernels: Bool) -> String {
        var out = header(r)
        out.append("")
        let t = r.totals
        out.append("totals:   \(h(t.macs)) MACs, \(h(t.flops)) FLOPs, \(h(t.params)) params; read \(h(t.bytesRead))B (weights \(h(t.weightBytes))B), written \(h(t.bytesWritten))B; DRAM \(h(t.dramBytes))B; predicted \(fmt(ms(t.predictedSeconds))) ms")
        if let s = symbolicLine(r) { out.append(s) }
        let p = r.patterns
        out.append("patterns: \(p.residualConnections) residual connections, \(p.depthwiseConvs) depthwise / \(p.pointwiseConvs) pointwise / \(p.groupedConvs) grouped / \(p.standardConvs) standard convs, \(p.branches) branch merges, \(p.denseConcats) dense concats, \(p.squeezeExcitations) squeeze-excitations, \(p.foldableBatchNorms) foldable BatchNorms")
        if !r.weightDTypes.isEmpty {
            out.append("weights:  " + r.weightDTypes.sorted { $0.value > $1.value }.map { "\($0.key): \(h($0.value))" }.joined(separator: ", ")
                       + (r.skippableMACs > 0 ? "; a sparse kernel could skip \(h(r.skippableMACs)) MACs (zero weights)" : "; no zero weights to skip"))
        }
        let fusedCount = r.kernels.reduce(0) { $0 + $1.fused.count }
        out.append("kernels:  \(r.kernels.count) run (\(fusedCount) nodes fused into them, \(r.foldedAtLoad) computed at load time)"
                   + (listKernels ? "" : "; --kernels lists them"))
        out.append("")
        out.append("by op type:")
        var rows = [["op", "nodes", "MACs", "FLOPs", "params", "DRAM B", "pred ms", "share"]]
        for (op, o) in r.byOpType.sorted(by: { $0.value.predictedSeconds > $1.value.predictedSeconds }) {
            rows.append([op, String(o.nodes), h(o.macs), h(o.flops), h(o.params), h(o.dramBytes), fmt(ms(o.predictedSeconds)),
                         fmt(100 * o.predictedSeconds / max(t.predictedSeconds, 1e-12), 1) + "%"])
        }
        out.append(align(rows))
        out.append("")
        out.append(perLayer ? "per layer:" : "top \(top) layers by predicted time (--per-layer for all):")
        rows = [["node", "op", "MACs", "FLOPs", "params", "read B", "written B", "FLOP/B", "DRAM B", "pred ms", "bound", "tags"]]
        for a in selected(r, perLayer: perLayer, top: top) {
            rows.append([a.name, a.op, h(a.macs), h(a.flops), h(a.params), h(a.bytesRead), h(a.bytesWritten), fmt(a.intensity, 1),
                         h(a.dramBytes), fmt(ms(a.predictedSeconds)), a.bound, a.tags.joined(separator: ",")])
        }
        out.append(align(rows, rightFrom: 2))
        if listKernels {
            out.append("")
            out.append("kernels (in run order, with the nodes fused into each):")
            rows = [["#", "node", "op", "fused"]]
            for (k, step) in r.kernels.enumerated() {
                let fused = step.fused.map { "\(r.nodes[$0].name) (\(r.nodes[$0].op))" }.joined(separator: ", ")
                rows.append([String(k + 1), r.nodes[step.node].name, r.nodes[step.node].op, fused])
            }
            out.append(align(rows, rightFrom: 4))
        }
        return out.joined(separator: "\n")
    }

    static func markdown(_ r: AnalysisReport, perLayer: Bool, top: Int) -> String {
        var out = ["# Analysis of `\((r.model.path as NSString).lastPathComponent)`", ""]
        out += header(r).map { "- " + $0 }
        out.append("")
        let t = r.totals
        out.append("| MACs | FLOPs | params | bytes read | bytes written | DRAM bytes | predicted ms |")
        out.append("|---|---|---|---|---|---|---|")
        out.append("| \(t.macs) | \(t.flops) | \(t.params) | \(t.bytesRead) | \(t.bytesWritten) | \(t.dramBytes) | \(fmt(ms(t.predictedSeconds))) |")
        out.append("")
        out.append("| node | op | MACs | FLOPs | params | read B | written B | FLOP/B | pred ms | bound | tags |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for a in selected(r, perLayer: perLayer, top: top) {
            out.append("| \(a.name) | \(a.op) | \(a.macs) | \(a.flops) | \(a.params) | \(a.bytesRead) | \(a.bytesWritten) | \(fmt(a.intensity, 1)) | \(fmt(ms(a.predictedSeconds))) | \(a.bound) | \(a.tags.joined(separator: ", ")) |")
        }
        return out.joined(separator: "\n")
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func csv(_ r: AnalysisReport) -> String {
        // The convention heads every report; in CSV as a comment line (skip it with `comment='#'`).
        var out = ["# counting: " + CostModel.convention.replacingOccurrences(of: "\n", with: " "), "index,name,op,canonical,macs,flops,params,weight_bytes,activation_bytes_read,bytes_written,intensity,dram_bytes,predicted_ms,bound,tags"]
        for a in r.nodes {
            out.append([String(a.index), csvField(a.name), csvField(a.op), a.canonical, String(a.macs), String(a.flops), String(a.params),
                        String(a.weightBytes), String(a.activationBytesRead), String(a.bytesWritten), fmt(a.intensity, 4),
                        String(a.dramBytes), fmt(ms(a.predictedSeconds), 6), a.bound, csvField(a.tags.joined(separator: " "))].joined(separator: ","))
        }
        return out.joined(separator: "\n")
    }

    static func totalsJSON(_ t: Totals) -> [String: Any] {
        ["macs": t.macs, "flops": t.flops, "params": t.params, "bytesRead": t.bytesRead, "bytesWritten": t.bytesWritten,
         "weightBytes": t.weightBytes, "activationBytesRead": t.activationBytesRead, "dramBytes": t.dramBytes,
         "predictedMs": ms(t.predictedSeconds), "nodes": t.nodes]
    }

    public static func jsonObject(_ r: AnalysisReport) -> [String: Any] {
        var totals = totalsJSON(r.totals)
        totals["symbolic"] = ["macs": r.symbolicMACs.description, "flops": r.symbolicFLOPs.description, "params": r.symbolicParams.description]
        let p = r.patterns
        let g = r.model.graph
        return [
            "convention": CostModel.convention,
            "model": ["file": r.model.path, "format": r.model.format.rawValue],
            "profile": ["id": r.profile.id, "name": r.profile.name],
            "prediction": ["method": r.method, "threads": r.threads, "rooflineKernels": r.rooflineKernels],
            "bindings": r.bindings,
            "totals": totals,
            "byOpType": r.byOpType.mapValues(totalsJSON),
            "patterns": ["residualConnections": p.residualConnections, "depthwiseConvs": p.depthwiseConvs,
                         "pointwiseConvs": p.pointwiseConvs, "groupedConvs": p.groupedConvs, "standardConvs": p.standardConvs,
                         "branches": p.branches, "denseConcats": p.denseConcats, "squeezeExcitations": p.squeezeExcitations,
                         "foldableBatchNorms": p.foldableBatchNorms],
            "skips": r.structure.skips.map { s -> [String: Any] in
                let t = g.values[s.bypassed].type
                let bytes = t.shape.dims.map { SymCount(product: $0).evaluate(r.bindings) * (t.dtype.bitWidth ?? 32) / 8 } ?? 0
                return ["merge": r.nodes[s.merge].name, "bypassed": g.values[s.bypassed].name, "span": s.span, "kind": s.kind, "bypassedBytes": bytes]
            },
            "weights": ["dtypes": r.weightDTypes, "skippableMACs": r.skippableMACs],
            "kernels": zip(r.kernels, r.kernelFeatures).map { step, f -> [String: Any] in
                ["node": r.nodes[step.node].name, "op": r.nodes[step.node].op, "fused": step.fused.map { r.nodes[$0].name },
                 "class": f.kernelClass, "predictedMs": ms(r.nodes[step.node].predictedSeconds)].merging(
                    f.channelAlignment > 0 ? ["channelAlignment": f.channelAlignment] : [:]) { a, _ in a }
            },
            "computedAtLoad": r.foldedAtLoad,
            "nodes": r.nodes.map { a -> [String: Any] in
                var o: [String: Any] = ["name": a.name, "op": a.op, "canonical": a.canonical, "macs": a.macs, "flops": a.flops,
                                        "params": a.params, "bytesRead": a.bytesRead, "weightBytes": a.weightBytes,
                                        "activationBytesRead": a.activationBytesRead, "bytesWritten": a.bytesWritten,
                                        "intensity": a.intensity, "dramBytes": a.dramBytes, "predictedMs": ms(a.predictedSeconds),
                                        "bound": a.bound, "tags": a.tags]
                if let d = a.weightDType { o["weightDtype"] = d }
                if let s = a.weightSparsity { o["weightSparsity"] = s }
                return o
            },
        ]
    }

    static func json(_ r: AnalysisReport) -> String {
        renderJSON(jsonObject(r))
    }
}
