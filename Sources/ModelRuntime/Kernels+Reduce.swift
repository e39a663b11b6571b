import CKernels
import Foundation
import ModelIR

let reduceKernels: [(String, KernelFactory)] = {
    var k: [(String, KernelFactory)] = []
    for name in ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"] {
        k.append((name, { pc in
            let n = pc.node
            let keep = (n.int("keepdims") ?? 1) != 0
            let noop = (n.int("noop_with_empty_axes") ?? 0) != 0
            return { ins, ctx in
                let x = try requireFloat(ins.first ?? nil, node: n)
                let r = x.shape.count
                var axes = n.ints("axes") ?? (ins.count > 1 ? ins[1]?.integers() : nil) ?? []
                if axes.isEmpty {
                    if noop { return [x] }
                    axes = Array(0..<r)
                }
                let set = Set(try axes.map { try normalize($0, r, n) })
                let outShapeKeep = x.shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }
                let outShape = keep ? outShapeKeep : x.shape.enumerated().filter { !set.contains($0.offset) }.map(\.element)
                let y = try ctx.alloc(outShape, .float32)
                // Reduced axes side by side (global pooling as a Mean over H and W, ...): one pass.
                let sorted = set.sorted()
                if let kind = ["ReduceSum": Int32(0), "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3][name],
                   let a0 = sorted.first, let a1 = sorted.last, a1 - a0 + 1 == sorted.count {
                    let outer = x.shape[..<a0].reduce(1, *), red = x.shape[a0...a1].reduce(1, *), inner = x.shape[(a1 + 1)...].reduce(1, *)
                    mlk_reduce_contiguous(x.floats, outer, red, inner, kind, y.floats)
                    return [y]
                }
                let total = outShapeKeep.reduce(1, *)
                var acc = [Double](repeating: name == "ReduceMax" ? -.infinity : name == "ReduceMin" ? .infinity : name == "ReduceProd" ? 1 : 0, count: total)
                var ostride = [Int](repeating: 1, count: r)
                for i in stride(from: r - 2, through: 0, by: -1) { ostride[i] = ostride[i + 1] * outShapeKeep[i + 1] }
                var idx = [Int](repeating: 0, count: r)
                var mx = [Double](repeating: -.infinity, count: name == "ReduceLogSumExp" ? total : 0)
                if name == "ReduceLogSumExp" {
                    var id2 = [Int](repeating: 0, count: r)
                    for t in 0..<x.count {
                        var o = 0
                        for d in 0..<r where !set.contains(d) { o += id2[d] * ostride[d] }
                        mx[o] = max(mx[o], Double(x.floats[t]))
                        var d = r - 1
                        while d >= 0 { id2[d] += 1; if id2[d] < x.shape[d] { break }; id2[d] = 0; d -= 1 }
                    }
                }
                for t in 0..<x.count {
                    var o = 0
                    for d in 0..<r where !set.contains(d) { o += idx[d] * ostride[d] }
                    let v = Double(x.floats[t])
                    switch name {
                    case "ReduceMax": acc[o] = max(acc[o], v)
                    case "ReduceMin": acc[o] = min(acc[o], v)
                    case "ReduceProd": acc[o] *= v
                    case "ReduceL1": acc[o] += abs(v)
                    case "ReduceL2", "ReduceSumSquare": acc[o] += v * v
                    case "ReduceLogSumExp": acc[o] += exp(v - mx[o])
                    default: acc[o] += v
                    }
                    var d = r - 1
                    while d >= 0 { idx[d] += 1; if idx[d] < x.shape[d] { break }; idx[d] = 0; d -= 1 }
                }
                let count = Double(set.map { x.shape[$0] }.reduce(1, *))
                for i in 0..<total {
                    var v = acc[i]
                    switch name {
                    case "ReduceMean": v /= max(count, 1)
                    case "ReduceL2": v = v.squareRoot()
                    case "ReduceLogSum": v = log(v)
                    case "ReduceLogSumExp": v = log(v) + mx[i]
                    default: break
                    }
                    y.floats[i] = Float(v)
                }
                return [y]
            }
        }))
    }
    for name in ["ArgMax", "ArgMin"] {
        k.append((name, { pc in
            let n = pc.node
            let keep = (n.int("keepdims") ?? 1) != 0, last = (n.int("select_last_index") ?? 0) != 0
            let outType = DType(rawValue: n.string("output_dtype_name") ?? "") ?? .int64
            return { ins, ctx in
                let x = try requireFloat(ins.first ?? nil, node: n)
                var axisValue = n.int("axis") ?? 0
                if ins.count > 1, let a = ins[1]?.integers().first { axisValue = a }
                let axis = try normalize(axisValue, x.shape.count, n)
                let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
                var shape = x.shape
                if keep { shape[axis] = 1 } else { shape.remove(at: axis) }
                let y = try ctx.alloc(shape, outType)
                for o in 0..<outer {
                    for i in 0..<inner {
                        var best = 0
                        var bv = x.floats[o * len * inner + i]
                        for j in 1..<max(len, 1) {
                            let v = x.floats[(o * len + j) * inner + i]
                            let better = name == "ArgMax" ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv)
                            if better { best = j; bv = v }
                        }
                        if outType == .int32 { y.raw.storeBytes(of: Int32(best), toByteOffset: (o * inner + i) * 4, as: Int32.self) }
                        else { y.raw.storeBytes(of: Int64(best), toByteOffset: (o * inner + i) * 8, as: Int64.self) }
                    }
                }
                return [y]
            }
        }))
    }
    return k
}()
