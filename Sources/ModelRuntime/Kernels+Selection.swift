import CKernels
import Foundation
import ModelIR

/// Sorting and selection: top-k, unique values.
let selectionKernels: [(String, KernelFactory)] = [
    ("TopK", { pc in
        let n = pc.node
        let largest = (n.int("largest") ?? 1) != 0, sorted = (n.int("sorted") ?? 1) != 0
        guard sorted else { throw pc.fail("sorted = 0") }
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype == .float32 || x.dtype == .float64 || x.dtype == .int64 || x.dtype == .int32 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "element type")
            }
            let k = (ins.count > 1 ? ins[1]?.integers().first : nil) ?? n.int("k") ?? 1
            let axis = try normalize(n.int("axis") ?? -1, x.shape.count, n)
            let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
            guard k >= 0 && k <= len else { throw RuntimeError.invalid(node: n.label, reason: "k = \(k) for an axis of \(len)") }
            var shape = x.shape
            shape[axis] = k
            let values = try ctx.alloc(shape, x.dtype), indices = try ctx.alloc(shape, .int64)
            for o in 0..<outer {
                for i in 0..<inner {
                    let order = (0..<len).sorted { a, b in
                        let va = x.double((o * len + a) * inner + i), vb = x.double((o * len + b) * inner + i)
                        return largest ? (va > vb || (va == vb && a < b)) : (va < vb || (va == vb && a < b))
                    }
                    for j in 0..<k {
                        let src = (o * len + order[j]) * inner + i, dst = (o * k + j) * inner + i
                        (values.raw + dst * x.elementSize).copyMemory(from: x.raw + src * x.elementSize, byteCount: x.elementSize)
                        indices.raw.storeBytes(of: Int64(order[j]), toByteOffset: dst * 8, as: Int64.self)
                    }
                }
            }
            return [values, indices]
        }
    }),
    // Unique over the flattened tensor (no axis): values, first indices, inverse indices, counts.
    ("Unique", { pc in
        let n = pc.node
        if n.int("axis") != nil { throw pc.fail("the axis attribute") }
        let sorted = (n.int("sorted") ?? 1) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.dtype != .string else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            var first: [Double: Int] = [:], order: [Double] = [], counts: [Double: Int] = [:]
            let values = (0..<x.count).map { x.double($0) }
            for (i, v) in values.enumerated() {
                if first[v] == nil { first[v] = i; order.append(v) }
                counts[v, default: 0] += 1
            }
            let uniq = sorted ? order.sorted() : order
            let position = Dictionary(uniqueKeysWithValues: uniq.enumerated().map { ($1, $0) })
            let y = try ctx.alloc([uniq.count], x.dtype)
            let idx = try ctx.alloc([uniq.count], .int64), inv = try ctx.alloc([x.count], .int64), cnt = try ctx.alloc([uniq.count], .int64)
            for (k, v) in uniq.enumerated() {
                y.store(v, at: k)
                idx.raw.storeBytes(of: Int64(first[v]!), toByteOffset: k * 8, as: Int64.self)
                cnt.raw.storeBytes(of: Int64(counts[v]!), toByteOffset: k * 8, as: Int64.self)
            }
            for (i, v) in values.enumerated() { inv.raw.storeBytes(of: Int64(position[v]!), toByteOffset: i * 8, as: Int64.self) }
            return Array([y, idx, inv, cnt].prefix(max(1, n.outputs.count)))
        }
    }),
]

let detectionKernels: [(String, KernelFactory)] = [
    // Greedy per (batch, class): highest score first, dropping boxes whose IoU with a kept box
    // exceeds the threshold. Output rows (batch, class, box), in selection order.
    ("NonMaxSuppression", { pc in
        let n = pc.node
        let center = (n.int("center_point_box") ?? 0) != 0
        return { ins, ctx in
            guard let boxes = ins.first ?? nil, let scores = ins.count > 1 ? ins[1] : nil, boxes.shape.count == 3, boxes.shape[2] == 4,
                  scores.shape.count == 3, scores.shape[0] == boxes.shape[0], scores.shape[2] == boxes.shape[1] else {
                throw RuntimeError.invalid(node: n.label, reason: "boxes [B, N, 4] and scores [B, C, N] expected")
            }
            let maxOut = (ins.count > 2 ? ins[2]?.integers().first : nil) ?? 0
            let iouT = ins.count > 3 ? Double(ins[3]?.element(0) ?? 0) : 0
            let scoreT: Double? = ins.count > 4 ? ins[4].map { Double($0.element(0)) } : nil
            let B = boxes.shape[0], N = boxes.shape[1], C = scores.shape[1]
            func box(_ b: Int, _ i: Int) -> (Double, Double, Double, Double) {
                let v = (0..<4).map { boxes.double((b * N + i) * 4 + $0) }
                if center { return (v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2) }
                return (min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3]))
            }
            func iou(_ a: (Double, Double, Double, Double), _ c: (Double, Double, Double, Double)) -> Double {
                let h = max(0, min(a.2, c.2) - max(a.0, c.0)), w = max(0, min(a.3, c.3) - max(a.1, c.1))
                let inter = h * w
                let union = (a.2 - a.0) * (a.3 - a.1) + (c.2 - c.0) * (c.3 - c.1) - inter
                return union > 0 ? inter / union : 0
            }
            var selected: [(Int, Int, Int)] = []
            if maxOut > 0 {
                for b in 0..<B {
                    for c in 0..<C {
                        var cand = (0..<N).map { ($0, scores.double((b * C + c) * N + $0)) }
                        if let scoreT { cand = cand.filter { $0.1 > scoreT } }
                        cand.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
                        var kept: [Int] = []
                        for (i, _) in cand where kept.count < maxOut {
                            if kept.allSatisfy({ iou(box(b, $0), box(b, i)) <= iouT }) { kept.append(i) }
                        }
                        selected += kept.map { (b, c, $0) }
                    }
                }
            }
            let y = try ctx.alloc([selected.count, 3], .int64)
            for (k, s) in selected.enumerated() {
                y.raw.storeBytes(of: Int64(s.0), toByteOffset: (k * 3) * 8, as: Int64.self)
                y.raw.storeBytes(of: Int64(s.1), toByteOffset: (k * 3 + 1) * 8, as: Int64.self)
                y.raw.storeBytes(of: Int64(s.2), toByteOffset: (k * 3 + 2) * 8, as: Int64.self)
            }
            return [y]
        }
    }),
]
