import Foundation
import ModelIR

/// One self-contained HTML page: header and convention, totals and patterns, a
/// roofline plot (SVG, log-log: arithmetic intensity against attainable
/// GFLOP/s, one dot per node) and per-layer bars of predicted time.
public enum HTMLReport {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    public static func render(_ r: AnalysisReport) -> String {
        let t = r.totals
        let p = r.patterns
        let ops = r.byOpType.sorted { $0.value.predictedSeconds > $1.value.predictedSeconds }.map(\.key)
        func color(_ op: String) -> String { palette[(ops.firstIndex(of: op) ?? 9) % palette.count] }
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>ModelLens: \(esc((r.model.path as NSString).lastPathComponent))</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
        h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
        .muted { color: #666; font-size: 12px; }
        table { border-collapse: collapse; font-size: 12px; } td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
        td:first-child, th:first-child { text-align: left; }
        .cards { display: flex; gap: 12px; flex-wrap: wrap; } .card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; min-width: 120px; }
        .card b { display: block; font-size: 18px; }
        .bar { height: 11px; display: inline-block; vertical-align: middle; }
        .legend span { display: inline-block; margin-right: 12px; font-size: 12px; } .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
        </style></head><body>
        <h1>\(esc((r.model.path as NSString).lastPathComponent))</h1>
        <div class="muted">\(esc(r.model.format.rawValue)) · profile \(esc(r.profile.id)) — \(esc(r.profile.name))</div>
        <p class="muted"><b>Counting:</b> \(esc(CostModel.convention))</p>
        <div class="cards">
        <div class="card">MACs<b>\(SymCount.human(t.macs))</b></div>
        <div class="card">FLOPs<b>\(SymCount.human(t.flops))</b></div>
        <div class="card">parameters<b>\(SymCount.human(t.params))</b></div>
        <div class="card">bytes read / written<b>\(SymCount.human(t.bytesRead))B / \(SymCount.human(t.bytesWritten))B</b></div>
        <div class="card">DRAM traffic<b>\(SymCount.human(t.dramBytes))B</b></div>
        <div class="card">predicted<b>\(String(format: "%.3f", t.predictedSeconds * 1000)) ms</b></div>
        </div>
        <p>\(p.residualConnections) residual connections · \(p.depthwiseConvs) depthwise, \(p.pointwiseConvs) pointwise, \(p.groupedConvs) grouped, \(p.standardConvs) standard convolutions · \(p.branches) branch merges · \(p.denseConcats) dense concatenations · \(p.squeezeExcitations) squeeze-excitations · \(p.foldableBatchNorms) foldable BatchNorms</p>
        <h2>Roofline</h2>
        \(roofline(r, color: color))
        <div class="legend">\(ops.prefix(10).map { "<span><i style=\"background:\(color($0))\"></i>\(esc($0))</span>" }.joined())</div>
        <h2>Predicted time per layer</h2>
        \(bars(r, color: color))
        </body></html>
        """
        html += "\n"
        return html
    }

    /// Log-log roofline: x = FLOP/byte (DRAM bytes of the node), y = GFLOP/s attained if the prediction holds.
    static func roofline(_ r: AnalysisReport, color: (String) -> String) -> String {
        let w = 900.0, h = 420.0, left = 70.0, bottom = 40.0, top = 10.0, right = 20.0
        let peak = r.profile.peak(for: "float32") / 1e9
        let bw = r.profile.dramBytesPerSecond / 1e9
        let xmin = 0.01, xmax = 10000.0
        let ymin = max(peak / 1e5, 1e-3), ymax = peak * 2
        func x(_ v: Double) -> Double { left + (log10(max(v, xmin)) - log10(xmin)) / (log10(xmax) - log10(xmin)) * (w - left - right) }
        func y(_ v: Double) -> Double { h - bottom - (log10(max(v, ymin)) - log10(ymin)) / (log10(ymax) - log10(ymin)) * (h - bottom - top) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" style=\"border:1px solid #ddd\">"
        // Grid and axes.
        var decade = xmin
        while decade <= xmax {
            s += "<line x1=\"\(x(decade))\" y1=\"\(top)\" x2=\"\(x(decade))\" y2=\"\(h - bottom)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(x(decade))\" y=\"\(h - bottom + 14)\" font-size=\"10\" text-anchor=\"middle\">\(decade < 1 ? String(decade) : String(Int(decade)))</text>"
            decade *= 10
        }
        var yd = pow(10, floor(log10(ymin)))
        while yd <= ymax {
            if yd >= ymin {
                s += "<line x1=\"\(left)\" y1=\"\(y(yd))\" x2=\"\(w - right)\" y2=\"\(y(yd))\" stroke=\"#eee\"/>"
                s += "<text x=\"\(left - 6)\" y=\"\(y(yd) + 3)\" font-size=\"10\" text-anchor=\"end\">\(yd < 1 ? String(format: "%g", yd) : String(Int(yd)))</text>"
            }
            yd *= 10
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 6)\" font-size=\"12\" text-anchor=\"middle\">arithmetic intensity (FLOPs per DRAM byte)</text>"
        s += "<text x=\"14\" y=\"\((top + h - bottom) / 2)\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 \((top + h - bottom) / 2))\">GFLOP/s</text>"
        // Roofs: bandwidth slope up to the ridge, then the compute ceiling.
        let ridge = peak / bw
        s += "<polyline fill=\"none\" stroke=\"#333\" stroke-width=\"2\" points=\"\(x(xmin)),\(y(bw * xmin)) \(x(ridge)),\(y(peak)) \(x(xmax)),\(y(peak))\"/>"
        s += "<text x=\"\(x(ridge) + 6)\" y=\"\(y(peak) - 4)\" font-size=\"11\">peak \(String(format: "%.0f", peak)) GFLOP/s · \(String(format: "%.1f", bw)) GB/s</text>"
        for n in r.nodes where n.flops > 0 && n.predictedSeconds > 0 {
            let intensity = Double(n.flops) / Double(max(n.dramBytes, 1))
            let attained = Double(n.flops) / n.predictedSeconds / 1e9
            let radius = 2.5 + min(6, log10(Double(max(n.flops, 1))) - 4)
            s += "<circle cx=\"\(x(intensity))\" cy=\"\(y(attained))\" r=\"\(max(2, radius))\" fill=\"\(color(n.op))\" fill-opacity=\"0.75\"><title>\(esc(n.name)) (\(esc(n.op))): \(SymCount.human(n.flops)) FLOPs, \(SymCount.human(n.dramBytes)) DRAM bytes, \(String(format: "%.3f", n.predictedSeconds * 1000)) ms, \(n.bound)-bound</title></circle>"
        }
        return s + "</svg>"
    }

    static func bars(_ r: AnalysisReport, color: (String) -> String) -> String {
        let shown = r.nodes.filter { $0.predictedSeconds > 0 }
        let maxT = shown.map(\.predictedSeconds).max() ?? 1
        var s = "<table><tr><th>node</th><th>op</th><th>MACs</th><th>DRAM B</th><th>ms</th><th style=\"text-align:left\">predicted time</th><th>tags</th></tr>"
        for n in shown.prefix(400) {
            let width = Int(300 * n.predictedSeconds / maxT)
            s += "<tr><td>\(esc(n.name))</td><td>\(esc(n.op))</td><td>\(SymCount.human(n.macs))</td><td>\(SymCount.human(n.dramBytes))</td>"
            s += "<td>\(String(format: "%.3f", n.predictedSeconds * 1000))</td>"
            s += "<td style=\"text-align:left\"><span class=\"bar\" style=\"width:\(max(width, 1))px;background:\(color(n.op))\"></span></td><td>\(esc(n.tags.joined(separator: ", ")))</td></tr>"
        }
        if shown.count > 400 { s += "<tr><td colspan=\"7\">… \(shown.count - 400) more (see --format csv)</td></tr>" }
        return s + "</table>"
    }
}
