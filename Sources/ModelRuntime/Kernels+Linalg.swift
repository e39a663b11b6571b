import CKernels
import Foundation
import ModelIR

let linalgKernels: [(String, KernelFactory)] = [
    ("Gemm", { pc in
        let n = pc.node
        let ta = (n.int("transA") ?? 0) != 0, tb = (n.int("transB") ?? 0) != 0
        let alpha = Float(n.float("alpha") ?? 1), beta = Float(n.float("beta") ?? 1)
        // Pruned weights (at most 35% nonzero): their rows by output unit for the sparse kernel,
        // which reads them only.
        var sparse: SparseRows? = nil
        var weightShape: [Int] = []
        if !ta, let w = pc.constants.count > 1 ? pc.constants[1] : nil, w.dtype == .float32, w.shape.count == 2 {
            let (units, inner) = tb ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
            if mlk_gemm_sparse_ok(Int32(units), Int32(inner), mlk_count_nonzero(w.floats, w.count)) != 0 {
                let rows = tb ? w : RTensor.allocate([units, inner], .float32)
                if !tb { for i in 0..<inner { for j in 0..<units { rows.floats[j * inner + i] = w.floats[i * units + j] } } }
                sparse = SparseRows(rows.floats, rows: units, cols: inner)
                weightShape = w.shape
                pc.packing.unreadSlots = [1]
                pc.packing.bytes = sparse!.bytes
            }
        }
        return { ins, ctx in
            let a = try requireFloat(ins.first ?? nil, node: n)
            let b: RTensor
            if let sparse {
                // For its shape: the sums read the rows (dense again only off the path, below).
                b = RTensor(shape: weightShape, dtype: .float32, buffer: sparse.values.buffer)
            } else {
                b = try requireFloat(ins.count > 1 ? ins[1] : nil, node: n)
            }
            guard a.shape.count == 2, b.shape.count == 2 else { throw RuntimeError.invalid(node: n.label, reason: "Gemm needs 2-D inputs") }
            let m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1]
            let nn = tb ? b.shape[0] : b.shape[1], k2 = tb ? b.shape[1] : b.shape[0]
            guard k == k2 else { throw RuntimeError.invalid(node: n.label, reason: "inner sizes \(k) and \(k2) differ") }
            let y = try ctx.alloc([m, nn], .float32)
            var betaUsed: Float = 0
            if ins.count > 2, let c = ins[2], beta != 0 {
                let cc = try requireFloat(c, node: n)
                guard let s = broadcastShapes(cc.shape, [m, nn]), s == [m, nn] else { throw RuntimeError.invalid(node: n.label, reason: "C does not broadcast") }
                let st = broadcastStrides(cc.shape, to: [m, nn])
                for i in 0..<m { for j in 0..<nn { y.floats[i * nn + j] = cc.floats[i * st[0] + j * st[1]] } }
                betaUsed = beta
            }
            if let sparse {
                if betaUsed == 0 { y.floats.update(repeating: 0, count: m * nn) } else if betaUsed != 1 { for i in 0..<(m * nn) { y.floats[i] *= betaUsed } }
                sparse.columns.withUnsafeBufferPointer { c in
                    sparse.starts.withUnsafeBufferPointer { st in
                        mlk_gemm_sparse(Int32(m), Int32(nn), Int32(k), a.floats, sparse.values.floats, c.baseAddress, st.baseAddress, alpha, y.floats)
                    }
                }
                return [y]
            }
            mlk_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int32(m), Int32(nn), Int32(k), alpha, a.floats, Int32(a.shape[1]), b.floats, Int32(b.shape[1]), betaUsed, y.floats, Int32(nn))
            return [y]
        }
    }),
    ("MatMul", { pc in
        let n = pc.node
        return { ins, ctx in
            let a = try requireFloat(ins.first ?? nil, node: n), b = try requireFloat(ins.count > 1 ? ins[1] : nil, node: n)
            return [try batchedMatMul(a, b, adjA: false, adjB: false, n, ctx)]
        }
    }),
    ("BatchMatMul", { pc in
        let n = pc.node
        let adjA = (n.int("adj_x") ?? 0) != 0, adjB = (n.int("adj_y") ?? 0) != 0
        return { ins, ctx in
            let a = try requireFloat(ins.first ?? nil, node: n), b = try requireFloat(ins.count > 1 ? ins[1] : nil, node: n)
            return [try batchedMatMul(a, b, adjA: adjA, adjB: adjB, n, ctx)]
        }
    }),
    // TFLite FULLY_CONNECTED: y = x W^T + b with W [units, in]; x read as [-1, in].
    ("FullyConnected", { pc in
        let n = pc.node
        let keep = (n.int("keep_num_dims") ?? 0) != 0
        return { ins, ctx in
            let x = try requireFloat(ins.first ?? nil, node: n), w = try requireFloat(ins.count > 1 ? ins[1] : nil, node: n)
            guard w.shape.count == 2, w.shape[1] > 0, x.count % w.shape[1] == 0 else { throw RuntimeError.invalid(node: n.label, reason: "input does not fit weights \(w.shape)") }
            let units = w.shape[0], inner = w.shape[1], rows = x.count / inner
            let y = try ctx.alloc(keep ? Array(x.shape.dropLast()) + [units] : [rows, units], .float32)
            var beta: Float = 0
            if ins.count > 2, let b = ins[2] {
                for r in 0..<rows { (y.floats + r * units).update(from: b.floats, count: units) }
                beta = 1
            }
            mlk_sgemm(0, 1, Int32(rows), Int32(units), Int32(inner), 1, x.floats, Int32(inner), w.floats, Int32(inner), beta, y.floats, Int32(units))
            applyFused(n, y)
            return [y]
        }
    }),
]

/// numpy.matmul with broadcast batch dimensions.
func batchedMatMul(_ a0: RTensor, _ b0: RTensor, adjA: Bool, adjB: Bool, _ n: Node, _ ctx: RunContext) throws -> RTensor {
    var a = a0.shape, b = b0.shape
    let aVec = a.count == 1, bVec = b.count == 1
    if aVec { a = [1] + a }
    if bVec { b = b + [1] }
    let m = adjA ? a[a.count - 1] : a[a.count - 2], k = adjA ? a[a.count - 2] : a[a.count - 1]
    let k2 = adjB ? b[b.count - 1] : b[b.count - 2], nn = adjB ? b[b.count - 2] : b[b.count - 1]
    guard k == k2 else { throw RuntimeError.invalid(node: n.label, reason: "inner sizes \(k) and \(k2) differ") }
    let ba = Array(a.dropLast(2)), bb = Array(b.dropLast(2))
    guard let batch = broadcastShapes(ba, bb) else { throw RuntimeError.invalid(node: n.label, reason: "batch dims do not broadcast") }
    var outShape = batch
    if !aVec { outShape.append(m) }
    if !bVec { outShape.append(nn) }
    let y = try ctx.alloc(outShape, .float32)
    if bb.isEmpty && !adjA && !aVec {
        // A stack of matrices times one matrix (a Linear layer on [N, H, W, C] activations, as in
        // ConvNeXt and transformers): the stack is one [batch * m, k] matrix, so one GEMM with
        // all its rows instead of a small GEMM per matrix (56 GEMMs of 56 rows ran at 18 GFLOP/s).
        let rows = batch.reduce(1, *) * m
        mlk_sgemm(0, adjB ? 1 : 0, Int32(rows), Int32(nn), Int32(k), 1, a0.floats, Int32(k),
                  b0.floats, Int32(b[b.count - 1]), 0, y.floats, Int32(nn))
        return y
    }
    let sa = broadcastStrides(ba, to: batch), sb = broadcastStrides(bb, to: batch)
    let count = batch.reduce(1, *)
    var idx = [Int](repeating: 0, count: batch.count)
    for t in 0..<count {
        var oa = 0, ob = 0
        for d in 0..<batch.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
        mlk_sgemm(adjA ? 1 : 0, adjB ? 1 : 0, Int32(m), Int32(nn), Int32(k), 1, a0.floats + oa * m * k, Int32(a[a.count - 1]),
                  b0.floats + ob * k * nn, Int32(b[b.count - 1]), 0, y.floats + t * m * nn, Int32(nn))
        var d = batch.count - 1
        while d >= 0 { idx[d] += 1; if idx[d] < batch[d] { break }; idx[d] = 0; d -= 1 }
    }
    return y
}
