import CKernels
import Foundation
import ModelIR

/// Row-major element strides of `shape`.
func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
    return s
}

/// Element offsets into a tensor of `shape` addressed by the index tuples in the last axis of
/// `indices` (GatherND / ScatterND); negative indices count from the end.
func ndOffsets(_ indices: RTensor, _ shape: [Int], _ n: Node) throws -> [Int] {
    let q = indices.shape.last ?? 0
    let st = strides(shape)
    let idx = indices.integers()
    return try (0..<(indices.count / max(q, 1))).map { t in
        var off = 0
        for d in 0..<q {
            var c = idx[t * q + d]
            if c < 0 { c += shape[d] }
            guard c >= 0 && c < shape[d] else { throw RuntimeError.invalid(node: n.label, reason: "index out of range") }
            off += c * st[d]
        }
        return off
    }
}

func scatterElements(_ pc: PlanContext) throws -> Kernel {
    let n = pc.node
    let reduction = n.string("reduction") ?? "none"
    guard ["none", "add", "mul", "max", "min"].contains(reduction) else { throw pc.fail("reduction \(reduction)") }
    return { ins, ctx in
        guard ins.count == 3, let data = ins[0], let idxT = ins[1], let upd = ins[2], idxT.shape == upd.shape, idxT.shape.count == data.shape.count else {
            throw RuntimeError.invalid(node: n.label, reason: "Scatter needs data, indices and updates of one shape")
        }
        let r = data.shape.count
        let axis = try normalize(n.int("axis") ?? 0, r, n)
        let y = try ctx.alloc(data.shape, data.dtype)
        let e = data.elementSize
        y.raw.copyMemory(from: data.raw, byteCount: data.count * e)
        let st = strides(data.shape), ist = strides(idxT.shape)
        let idx = idxT.integers()
        for t in 0..<idxT.count {
            var off = 0
            for d in 0..<r {
                var c = (t / ist[d]) % idxT.shape[d]
                if d == axis { c = idx[t] < 0 ? idx[t] + data.shape[d] : idx[t] }
                guard c >= 0 && c < data.shape[d] else { throw RuntimeError.invalid(node: n.label, reason: "index out of range") }
                off += c * st[d]
            }
            if reduction == "none" {
                (y.raw + off * e).copyMemory(from: upd.raw + t * e, byteCount: e)
            } else {
                let a = y.double(off), b = upd.double(t)
                let v = reduction == "add" ? a + b : reduction == "mul" ? a * b : reduction == "max" ? max(a, b) : min(a, b)
                y.store(v, at: off)
            }
        }
        return [y]
    }
}

/// Gathers, scatters and masks by index: element, N-dimensional, one-hot, non-zero, compress, triangle.
let indexingKernels: [(String, KernelFactory)] = [
    ("GatherElements", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let it = ins.count > 1 ? ins[1] : nil, it.shape.count == x.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "indices must have the data's rank")
            }
            let r = x.shape.count
            let axis = try normalize(n.int("axis") ?? 0, r, n)
            let idx = it.integers()
            let y = try ctx.alloc(it.shape, x.dtype)
            var xs = [Int](repeating: 1, count: r)
            for i in stride(from: r - 2, through: 0, by: -1) { xs[i] = xs[i + 1] * x.shape[i + 1] }
            var pos = [Int](repeating: 0, count: r)
            let e = x.elementSize
            for t in 0..<it.count {
                var off = 0
                for d in 0..<r {
                    var c = pos[d]
                    if d == axis {
                        c = idx[t] < 0 ? idx[t] + x.shape[d] : idx[t]
                        guard c >= 0 && c < x.shape[d] else { throw RuntimeError.invalid(node: n.label, reason: "index \(idx[t]) out of range") }
                    } else if c >= x.shape[d] { throw RuntimeError.invalid(node: n.label, reason: "indices larger than the data") }
                    off += c * xs[d]
                }
                (y.raw + t * e).copyMemory(from: x.raw + off * e, byteCount: e)
                var d = r - 1
                while d >= 0 { pos[d] += 1; if pos[d] < it.shape[d] { break }; pos[d] = 0; d -= 1 }
            }
            return [y]
        }
    }),
    ("OneHot", { pc in
        let n = pc.node
        return { ins, ctx in
            guard ins.count == 3, let idxT = ins[0], let depthT = ins[1], let vals = ins[2], vals.count == 2 else {
                throw RuntimeError.invalid(node: n.label, reason: "OneHot needs indices, depth and [off, on]")
            }
            let depth = Int(depthT.double(0))
            guard depth > 0, depth < 1 << 24 else { throw RuntimeError.invalid(node: n.label, reason: "depth \(depth)") }
            let r = idxT.shape.count + 1
            let axis = try normalize(n.int("axis") ?? -1, r, n)
            var shape = idxT.shape
            shape.insert(depth, at: axis)
            let y = try ctx.alloc(shape, vals.dtype)
            let e = vals.elementSize
            let outer = idxT.shape[..<axis].reduce(1, *), inner = idxT.shape[axis...].reduce(1, *)
            let idx = (0..<idxT.count).map { Int(idxT.double($0)) }
            for o in 0..<outer {
                for d in 0..<depth {
                    for i in 0..<inner {
                        var v = idx[o * inner + i]
                        if v < 0 { v += depth }
                        let dst = (o * depth + d) * inner + i
                        (y.raw + dst * e).copyMemory(from: vals.raw + (v == d ? e : 0), byteCount: e)
                    }
                }
            }
            return [y]
        }
    }),
    ("NonZero", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let st = strides(x.shape)
            let hits = (0..<x.count).filter { x.double($0) != 0 }
            let r = max(x.shape.count, 1)
            let y = try ctx.alloc([x.shape.count, hits.count], .int64)
            for (j, flat) in hits.enumerated() {
                for d in 0..<x.shape.count {
                    y.raw.storeBytes(of: Int64((flat / st[d]) % x.shape[d]), toByteOffset: (d * hits.count + j) * 8, as: Int64.self)
                }
            }
            _ = r
            return [y]
        }
    }),
    ("ScatterElements", { pc in try scatterElements(pc) }),
    ("Scatter", { pc in try scatterElements(pc) }),
    ("ScatterND", { pc in
        let n = pc.node
        let reduction = n.string("reduction") ?? "none"
        guard reduction == "none" else { throw pc.fail("reduction \(reduction)") }
        return { ins, ctx in
            guard ins.count == 3, let data = ins[0], let idxT = ins[1], let upd = ins[2], let q = idxT.shape.last, q <= data.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "ScatterND needs data, indices, updates")
            }
            let y = try ctx.alloc(data.shape, data.dtype)
            let e = data.elementSize
            y.raw.copyMemory(from: data.raw, byteCount: data.count * e)
            let slice = data.shape[q...].reduce(1, *)
            for (t, off) in try ndOffsets(idxT, data.shape, n).enumerated() {
                guard (t + 1) * slice <= upd.count else { throw RuntimeError.invalid(node: n.label, reason: "updates too short") }
                (y.raw + off * e).copyMemory(from: upd.raw + t * slice * e, byteCount: slice * e)
            }
            return [y]
        }
    }),
    ("GatherND", { pc in
        let n = pc.node
        let batchDims = n.int("batch_dims") ?? 0
        guard batchDims == 0 else { throw pc.fail("batch_dims") }
        return { ins, ctx in
            guard let data = ins.first ?? nil, let idxT = ins.count > 1 ? ins[1] : nil, let q = idxT.shape.last, q <= data.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "GatherND needs data and indices")
            }
            let slice = data.shape[q...].reduce(1, *)
            let y = try ctx.alloc(Array(idxT.shape.dropLast()) + Array(data.shape[q...]), data.dtype)
            let e = data.elementSize
            for (t, off) in try ndOffsets(idxT, data.shape, n).enumerated() {
                (y.raw + t * slice * e).copyMemory(from: data.raw + off * e, byteCount: slice * e)
            }
            return [y]
        }
    }),
    ("Compress", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x0 = ins.first ?? nil, let cond = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let flags = cond.integers().map { $0 != 0 }
            let x = n.int("axis") == nil ? view(x0, [x0.count]) : x0
            let axis = try normalize(n.int("axis") ?? 0, x.shape.count, n)
            let len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.shape[..<axis].reduce(1, *)
            let keep = (0..<min(len, flags.count)).filter { flags[$0] }
            var shape = x.shape
            shape[axis] = keep.count
            let y = try ctx.alloc(shape, x.dtype)
            let e = x.elementSize
            for o in 0..<outer {
                for (j, k) in keep.enumerated() {
                    (y.raw + ((o * keep.count + j) * inner) * e).copyMemory(from: x.raw + ((o * len + k) * inner) * e, byteCount: inner * e)
                }
            }
            return [y]
        }
    }),
    ("Trilu", { pc in
        let n = pc.node
        let upper = (n.int("upper") ?? 1) != 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, x.shape.count >= 2 else { throw RuntimeError.invalid(node: n.label, reason: "rank 2 or more") }
            let k = (ins.count > 1 ? ins[1]?.integers().first : nil) ?? 0
            let rows = x.shape[x.shape.count - 2], cols = x.shape[x.shape.count - 1]
            let y = try ctx.alloc(x.shape, x.dtype)
            let e = x.elementSize
            y.raw.copyMemory(from: x.raw, byteCount: x.count * e)
            for t in 0..<x.count {
                let j = t % cols, i = (t / cols) % rows
                let keep = upper ? j - i >= k : j - i <= k
                if !keep { memset(y.raw + t * e, 0, e) }
            }
            return [y]
        }
    }),
]
