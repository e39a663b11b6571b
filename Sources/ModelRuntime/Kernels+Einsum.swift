import CKernels
import Foundation
import ModelIR

let einsumKernels: [(String, KernelFactory)] = [
    ("Einsum", { pc in
        let n = pc.node
        guard let eq = n.string("equation")?.replacingOccurrences(of: " ", with: ""), !eq.contains(".") else { throw pc.fail("ellipsis equations") }
        let parts = eq.components(separatedBy: "->")
        let inputs = parts[0].components(separatedBy: ",").map { Array($0) }
        return { ins, ctx in
            let xs = ins.compactMap { $0 }
            guard xs.count == inputs.count, xs.allSatisfy({ $0.dtype == .float32 || $0.dtype == .float64 }) else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "operands")
            }
            var size: [Character: Int] = [:]
            for (x, labels) in zip(xs, inputs) {
                guard labels.count == x.shape.count else { throw RuntimeError.invalid(node: n.label, reason: "equation does not fit shapes") }
                for (l, d) in zip(labels, x.shape) {
                    if let s = size[l], s != d { throw RuntimeError.invalid(node: n.label, reason: "size of \(l) differs") }
                    size[l] = d
                }
            }
            // Implicit output: labels appearing once, sorted.
            let outLabels: [Character] = parts.count > 1 ? Array(parts[1])
                : size.keys.filter { l in inputs.joined().filter { $0 == l }.count == 1 }.sorted()
            let all = outLabels + size.keys.filter { !outLabels.contains($0) }.sorted()
            let dims = all.map { size[$0] ?? 1 }
            let total = dims.reduce(1, *)
            guard total < 1 << 26 else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "too large for the direct loop") }
            let y = try ctx.alloc(outLabels.map { size[$0] ?? 1 }, xs[0].dtype)
            let outCount = y.count
            var acc = [Double](repeating: 0, count: outCount)
            let inStrides = zip(xs, inputs).map { x, labels -> [Int] in
                let st = strides(x.shape)
                return all.map { l in labels.indices.filter { labels[$0] == l }.reduce(0) { $0 + st[$1] } }
            }
            let outStrides: [Int] = { let st = strides(outLabels.map { size[$0] ?? 1 }); return all.map { l in outLabels.firstIndex(of: l).map { st[$0] } ?? 0 } }()
            var idx = [Int](repeating: 0, count: all.count)
            for _ in 0..<total {
                var prod = 1.0
                for (x, st) in zip(xs, inStrides) {
                    var off = 0
                    for d in 0..<all.count { off += idx[d] * st[d] }
                    prod *= x.double(off)
                }
                var o = 0
                for d in 0..<all.count { o += idx[d] * outStrides[d] }
                acc[o] += prod
                var d = all.count - 1
                while d >= 0 { idx[d] += 1; if idx[d] < dims[d] { break }; idx[d] = 0; d -= 1 }
            }
            for i in 0..<outCount { y.store(acc[i], at: i) }
            return [y]
        }
    }),
]
