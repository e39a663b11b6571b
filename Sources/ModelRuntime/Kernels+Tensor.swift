import CKernels
import Foundation
import ModelIR

/// Copies along one axis: the tensor seen as [outer, axisLen * inner] rows.
private func rows(_ shape: [Int], axis: Int) -> (outer: Int, inner: Int) {
    (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
}

private func ints(_ t: RTensor?) -> [Int]? { t?.integers() }

let tensorKernels: [(String, KernelFactory)] = [
    ("Constant", { pc in
        let n = pc.node
        guard let data = n.attributes["value"]?.tensor else { throw pc.fail("a Constant without a tensor value") }
        let b = RBuffer(capacity: data.byteCount)
        data.withBytes { if let base = $0.baseAddress { b.pointer.copyMemory(from: base, byteCount: $0.count) } }
        let t = RTensor(shape: data.shape, dtype: data.dtype, buffer: b)
        return { _, _ in [t] }
    }),
    ("Reshape", { pc in
        let n = pc.node
        let allowZero = (n.int("allowzero") ?? 0) != 0
        let attrShape = n.ints("shape") ?? n.ints("new_shape")
        return { ins, _ in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            guard var target = (ins.count > 1 ? ints(ins[1]) : nil) ?? attrShape else { throw RuntimeError.invalid(node: n.label, reason: "no target shape") }
            for i in target.indices where target[i] == 0 && !allowZero { target[i] = i < x.shape.count ? x.shape[i] : 1 }
            if let k = target.firstIndex(of: -1) {
                let rest = target.enumerated().filter { $0.offset != k }.map(\.element).reduce(1, *)
                target[k] = rest == 0 ? 0 : x.count / rest
            }
            guard target.reduce(1, *) == x.count, target.allSatisfy({ $0 >= 0 }) else {
                throw RuntimeError.invalid(node: n.label, reason: "cannot reshape \(x.shape) to \(target)")
            }
            return [view(x, target)]
        }
    }),
    ("Flatten", { pc in
        let n = pc.node
        return { ins, _ in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            var axis = n.int("axis") ?? 1
            if axis < 0 { axis += x.shape.count }
            return [view(x, [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)])]
        }
    }),
    ("Squeeze", { pc in
        let n = pc.node
        return { ins, _ in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let axes = try (n.ints("axes") ?? (ins.count > 1 ? ints(ins[1]) : nil)).map { try $0.map { try normalize($0, x.shape.count, n) } }
            let shape = x.shape.enumerated().filter { i, d in axes.map { !$0.contains(i) } ?? (d != 1) }.map(\.element)
            return [view(x, shape)]
        }
    }),
    ("Unsqueeze", { pc in
        let n = pc.node
        return { ins, _ in
            guard let x = ins.first ?? nil, let axes0 = n.ints("axes") ?? (ins.count > 1 ? ints(ins[1]) : nil) else {
                throw RuntimeError.invalid(node: n.label, reason: "missing axes")
            }
            let rank = x.shape.count + axes0.count
            let axes = Set(try axes0.map { try normalize($0, rank, n) })
            var it = x.shape.makeIterator()
            return [view(x, (0..<rank).map { axes.contains($0) ? 1 : it.next() ?? 1 })]
        }
    }),
    ("ExpandDims", { pc in
        let n = pc.node
        return { ins, _ in
            guard let x = ins.first ?? nil, let a = ints(ins.count > 1 ? ins[1] : nil)?.first else { throw RuntimeError.invalid(node: n.label, reason: "missing axis") }
            var s = x.shape
            s.insert(1, at: try normalize(a, s.count + 1, n))
            return [view(x, s)]
        }
    }),
    ("Transpose", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let perm = n.ints("perm") ?? ints(ins.count > 1 ? ins[1] : nil) ?? Array((0..<x.shape.count).reversed())
            guard perm.count == x.shape.count, Set(perm) == Set(0..<x.shape.count), perm.count <= 8 else {
                throw RuntimeError.invalid(node: n.label, reason: "perm \(perm) for rank \(x.shape.count)")
            }
            let y = try ctx.alloc(perm.map { x.shape[$0] }, x.dtype)
            if x.count > 0 {
                x.shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
                    perm.map { Int32($0) }.withUnsafeBufferPointer { p in
                        mlk_transpose(x.raw, y.raw, Int32(perm.count), sh.baseAddress, p.baseAddress, Int32(x.elementSize))
                    }
                }
            }
            return [y]
        }
    }),
    ("Concat", { pc in
        let n = pc.node
        return { ins, ctx in
            let xs = ins.compactMap { $0 }
            guard let first = xs.first else { throw RuntimeError.invalid(node: n.label, reason: "no inputs") }
            let axis = try normalize(n.int("axis") ?? 0, first.shape.count, n)
            var shape = first.shape
            shape[axis] = xs.reduce(0) { $0 + $1.shape[axis] }
            let y = try ctx.alloc(shape, first.dtype)
            let (outer, inner) = rows(shape, axis: axis)
            let e = first.elementSize
            for x in xs {
                guard x.shape.count == shape.count, x.dtype == first.dtype else { throw RuntimeError.invalid(node: n.label, reason: "inputs differ in rank or type") }
                // The copy reads inner elements per row of each input: a shape that differs off the
                // axis would read past its buffer.
                guard x.shape.indices.allSatisfy({ $0 == axis || x.shape[$0] == first.shape[$0] }) else {
                    throw RuntimeError.invalid(node: n.label, reason: "inputs \(first.shape) and \(x.shape) differ off axis \(axis)")
                }
            }
            // One copy of the output shared among the threads (DenseNet's and Inception's
            // concatenations ran on one, and at 2 threads took 1.8-3.6x the time predicted).
            let sources: [UnsafeRawPointer?] = xs.map { UnsafeRawPointer($0.raw) }
            let bytes = xs.map { $0.shape[axis] * inner * e }
            sources.withUnsafeBufferPointer { p in mlk_concat(y.raw, Int32(xs.count), p.baseAddress, bytes, outer) }
            applyFused(n, y)
            return [y]
        }
    }),
    ("Pack", { pc in
        let n = pc.node
        let declared = n.outputs.first.map { pc.graph.values[$0].type.dtype }
        return { ins, ctx in
            var xs = ins.compactMap { $0 }
            guard !xs.isEmpty, xs.count == ins.count else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            // Shape arithmetic mixes the executor's int64 shapes with the file's int32 constants:
            // integers are packed as the output's declared type.
            let integers: Set<DType> = [.int32, .int64]
            if let to = declared, integers.contains(to), xs.contains(where: { $0.dtype != to && integers.contains($0.dtype) }) {
                xs = try xs.map { $0.dtype == to ? $0 : try castAny($0, to: to, ctx) }
            }
            let first = xs[0]
            guard xs.allSatisfy({ $0.shape == first.shape && $0.dtype == first.dtype }) else {
                throw RuntimeError.invalid(node: n.label, reason: "inputs differ in shape or type")
            }
            let axis = try normalize(n.int("axis") ?? 0, first.shape.count + 1, n)
            var shape = first.shape
            shape.insert(xs.count, at: axis)
            let y = try ctx.alloc(shape, first.dtype)
            let outer = first.shape[..<axis].reduce(1, *), chunk = first.shape[axis...].reduce(1, *) * first.elementSize
            for o in 0..<outer {
                for (k, x) in xs.enumerated() {
                    (y.raw + (o * xs.count + k) * chunk).copyMemory(from: x.raw + o * chunk, byteCount: chunk)
                }
            }
            return [y]
        }
    }),
    ("Unpack", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, !x.shape.isEmpty else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let axis = try normalize(n.int("axis") ?? 0, x.shape.count, n)
            let parts = x.shape[axis]
            guard parts == n.outputs.count else { throw RuntimeError.invalid(node: n.label, reason: "\(parts) slices for \(n.outputs.count) outputs") }
            var shape = x.shape
            shape.remove(at: axis)
            let outer = x.shape[..<axis].reduce(1, *), chunk = x.shape[(axis + 1)...].reduce(1, *) * x.elementSize
            return try (0..<parts).map { k in
                let y = try ctx.alloc(shape, x.dtype)
                for o in 0..<outer { (y.raw + o * chunk).copyMemory(from: x.raw + (o * parts + k) * chunk, byteCount: chunk) }
                return y
            }
        }
    }),
    ("Split", { pc in
        let n = pc.node
        let outputs = n.outputs.count
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let axis = try normalize(n.int("axis") ?? 0, x.shape.count, n)
            let len = x.shape[axis]
            var sizes = n.ints("split") ?? (ins.count > 1 ? ints(ins[1]) : nil)
            if sizes == nil {
                let parts = n.int("num_outputs") ?? n.int("num_splits") ?? outputs
                let chunk = (len + parts - 1) / max(parts, 1)
                sizes = (0..<outputs).map { max(0, min(chunk, len - $0 * chunk)) }
            }
            guard let s = sizes, s.reduce(0, +) == len, s.count == outputs else { throw RuntimeError.invalid(node: n.label, reason: "split sizes \(sizes ?? []) for \(len)") }
            let (outer, inner) = rows(x.shape, axis: axis)
            let e = x.elementSize
            var start = 0
            return try s.map { size in
                var shape = x.shape
                shape[axis] = size
                let y = try ctx.alloc(shape, x.dtype)
                for o in 0..<outer { (y.raw + o * size * inner * e).copyMemory(from: x.raw + (o * len + start) * inner * e, byteCount: size * inner * e) }
                start += size
                return y
            }
        }
    }),
    ("Slice", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let r = x.shape.count
            let starts = n.ints("starts") ?? ints(ins.count > 1 ? ins[1] : nil) ?? []
            let ends = n.ints("ends") ?? ints(ins.count > 2 ? ins[2] : nil) ?? []
            let axes = n.ints("axes") ?? ints(ins.count > 3 ? ins[3] : nil) ?? Array(0..<starts.count)
            let steps = ints(ins.count > 4 ? ins[4] : nil) ?? Array(repeating: 1, count: starts.count)
            var begin = [Int](repeating: 0, count: r), step = [Int](repeating: 1, count: r), size = x.shape
            for (k, a0) in axes.enumerated() where k < starts.count && k < ends.count {
                let a = try normalize(a0, r, n)
                let d = x.shape[a], st = k < steps.count ? steps[k] : 1
                guard st != 0 else { throw RuntimeError.invalid(node: n.label, reason: "step 0") }
                var s = starts[k] < 0 ? starts[k] + d : starts[k]
                var e = ends[k] < 0 ? ends[k] + d : ends[k]
                if st > 0 { s = min(max(s, 0), d); e = min(max(e, 0), d); size[a] = e > s ? (e - s + st - 1) / st : 0 }
                else { s = min(max(s, -1), d - 1); e = min(max(e, -1), d - 1); size[a] = s > e ? (s - e - st - 1) / (-st) : 0 }
                begin[a] = s; step[a] = st
            }
            return [try gatherStrided(x, begin: begin, step: step, size: size, ctx)]
        }
    }),
    // TFLite SLICE: begin and size (-1 = to the end).
    ("SliceBySize", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let b = ints(ins.count > 1 ? ins[1] : nil), let s = ints(ins.count > 2 ? ins[2] : nil), b.count == x.shape.count, s.count == b.count else {
                throw RuntimeError.invalid(node: n.label, reason: "SLICE needs begin and size for every axis")
            }
            let size = zip(zip(b, s), x.shape).map { bs, d in bs.1 < 0 ? d - bs.0 : bs.1 }
            return [try gatherStrided(x, begin: b, step: Array(repeating: 1, count: b.count), size: size, ctx)]
        }
    }),
    ("Gather", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let idxT = ins.count > 1 ? ins[1] : nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let axis = try normalize(n.int("axis") ?? 0, x.shape.count, n)
            let idx = idxT.integers()
            let (outer, inner) = rows(x.shape, axis: axis)
            let len = x.shape[axis], e = x.elementSize
            let y = try ctx.alloc(Array(x.shape[..<axis]) + idxT.shape + Array(x.shape[(axis + 1)...]), x.dtype)
            let within = try idx.map { i0 -> Int in
                let i = i0 < 0 ? i0 + len : i0
                guard i >= 0 && i < len else { throw RuntimeError.invalid(node: n.label, reason: "index \(i0) out of range \(len)") }
                return i
            }
            mlk_gather(x.raw, y.raw, outer, len, inner, within, within.count, Int32(e))
            return [y]
        }
    }),
    ("Expand", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let s = ints(ins.count > 1 ? ins[1] : nil), let shape = broadcastShapes(x.shape, s) else {
                throw RuntimeError.invalid(node: n.label, reason: "shape does not broadcast")
            }
            return [try broadcastCopy(x, to: shape, ctx)]
        }
    }),
    ("Tile", { pc in
        let n = pc.node
        return { ins, ctx in
            guard let x = ins.first ?? nil, let reps = ints(ins.count > 1 ? ins[1] : nil), reps.count == x.shape.count else {
                throw RuntimeError.invalid(node: n.label, reason: "repeats must match the rank")
            }
            let shape = zip(x.shape, reps).map { $0 * $1 }
            let y = try ctx.alloc(shape, x.dtype)
            let e = x.elementSize
            var idx = [Int](repeating: 0, count: shape.count)
            var xs = [Int](repeating: 1, count: shape.count)
            for i in stride(from: shape.count - 2, through: 0, by: -1) { xs[i] = xs[i + 1] * x.shape[i + 1] }
            for t in 0..<shape.reduce(1, *) {
                var off = 0
                for d in 0..<shape.count { off += (idx[d] % x.shape[d]) * xs[d] }
                (y.raw + t * e).copyMemory(from: x.raw + off * e, byteCount: e)
                var d = shape.count - 1
                while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
            }
            return [y]
        }
    }),
    ("Pad", { pc in
        let n = pc.node
        let mode = n.string("mode") ?? "constant"
        guard ["constant", "reflect", "edge"].contains(mode) else { throw pc.fail("mode \(mode)") }
        return { ins, ctx in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let r = x.shape.count
            guard var pads = n.ints("pads") ?? ints(ins.count > 1 ? ins[1] : nil) else { throw RuntimeError.invalid(node: n.label, reason: "no pads") }
            if (n.int("pairs_layout") ?? 0) != 0, pads.count == 2 * r { pads = (0..<r).map { pads[2 * $0] } + (0..<r).map { pads[2 * $0 + 1] } }
            if ins.count > 3, let axesT = ins[3] {
                let axes = try axesT.integers().map { try normalize($0, r, n) }
                var full = [Int](repeating: 0, count: 2 * r)
                for (k, a) in axes.enumerated() { full[a] = pads[k]; full[a + r] = pads[k + axes.count] }
                pads = full
            }
            guard pads.count == 2 * r else { throw RuntimeError.invalid(node: n.label, reason: "\(pads.count) pads for rank \(r)") }
            let value: Float = ins.count > 2 ? (ins[2]?.element(0) ?? 0) : Float(n.float("value") ?? 0)
            guard x.dtype == .float32 || (mode == "constant" && value == 0) else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "non-float padding") }
            let shape = (0..<r).map { x.shape[$0] + pads[$0] + pads[$0 + r] }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw RuntimeError.invalid(node: n.label, reason: "negative size") }
            let y = try ctx.alloc(shape, x.dtype)
            let e = x.elementSize
            if mode == "constant", pads.allSatisfy({ $0 >= 0 }), r > 0, r <= 8 {
                // In C, row by row over the last padded axis, shared among the threads (in Swift
                // TFLite's PAD before a convolution ran on one thread, 0.24 ms for 32x224x224).
                // The fill: `value` for floats, else zeros (checked above); 8 bytes cover any element.
                var fill: (Float, Float) = (x.dtype == .float32 ? value : 0, 0)
                let before = Array(pads[..<r])
                withUnsafeBytes(of: &fill) { mlk_pad_constant(x.raw, y.raw, Int32(r), x.shape, shape, before, Int32(e), $0.baseAddress) }
                return [y]
            }
            var xs = [Int](repeating: 1, count: r)
            for i in stride(from: r - 2, through: 0, by: -1) { xs[i] = xs[i + 1] * x.shape[i + 1] }
            var idx = [Int](repeating: 0, count: r)
            for t in 0..<shape.reduce(1, *) {
                var off = 0, inside = true
                for d in 0..<r {
                    var s = idx[d] - pads[d]
                    let len = x.shape[d]
                    if s < 0 || s >= len {
                        switch mode {
                        case "edge": s = min(max(s, 0), len - 1)
                        case "reflect":
                            if len == 1 { s = 0 } else {
                                let period = 2 * (len - 1)
                                var m = s % period
                                if m < 0 { m += period }
                                s = m < len ? m : period - m
                            }
                        default: inside = false
                        }
                    }
                    off += s * xs[d]
                }
                if inside && x.count > 0 { (y.raw + t * e).copyMemory(from: x.raw + off * e, byteCount: e) }
                else if x.dtype == .float32 { y.floats[t] = value } else { memset(y.raw + t * e, 0, e) }
                var d = r - 1
                while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
            }
            return [y]
        }
    }),
    ("Shape", { pc in
        let n = pc.node
        return { ins, _ in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            let r = x.shape.count
            var s = n.int("start") ?? 0, e = n.int("end") ?? r
            if s < 0 { s += r }; if e < 0 { e += r }
            s = min(max(s, 0), r); e = min(max(e, 0), r)
            let part = s < e ? Array(x.shape[s..<e]) : []
            return [RTensor.make(int64: part.map { Int64($0) }, shape: [part.count])]
        }
    }),
    ("Size", { pc in
        let n = pc.node
        return { ins, _ in
            guard let x = ins.first ?? nil else { throw RuntimeError.invalid(node: n.label, reason: "missing input") }
            return [RTensor.make(int64: [Int64(x.count)], shape: [])]
        }
    }),
    ("ConstantOfShape", { pc in
        let n = pc.node
        let value = n.attributes["value"]?.tensor
        return { ins, ctx in
            guard let shape = ints(ins.first ?? nil) else { throw RuntimeError.invalid(node: n.label, reason: "missing shape") }
            let dtype = value?.dtype ?? .float32
            let y = try ctx.alloc(shape, dtype)
            let e = y.elementSize
            var bytes = [UInt8](repeating: 0, count: e)
            value?.withBytes { raw in for i in 0..<min(e, raw.count) { bytes[i] = raw[i] } }
            for i in 0..<y.count { (y.raw + i * e).copyMemory(from: bytes, byteCount: e) }
            return [y]
        }
    }),
    ("Range", { pc in
        let n = pc.node
        return { ins, ctx in
            guard ins.count == 3, let s = ins[0], let l = ins[1], let d = ins[2] else { throw RuntimeError.invalid(node: n.label, reason: "Range needs 3 inputs") }
            guard [.float32, .int64, .int32, .float64].contains(s.dtype) else { throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "type \(s.dtype.rawValue)") }
            let start = Double(s.element(0)), limit = Double(l.element(0)), delta = Double(d.element(0))
            let steps = ((limit - start) / delta).rounded(.up)
            guard delta != 0, steps.isFinite, steps < 1e9 else { throw RuntimeError.invalid(node: n.label, reason: "Range(\(start), \(limit), \(delta)) has no finite length") }
            let count = max(0, Int(steps))
            let y = try ctx.alloc([count], s.dtype)
            for i in 0..<count {
                let v = start + Double(i) * delta
                switch s.dtype {
                case .float32: y.floats[i] = Float(v)
                case .int64: y.raw.storeBytes(of: Int64(s.raw.load(as: Int64.self)) + Int64(i) * d.raw.load(as: Int64.self), toByteOffset: i * 8, as: Int64.self)
                case .int32: y.raw.storeBytes(of: Int32(v), toByteOffset: i * 4, as: Int32.self)
                case .float64: y.raw.storeBytes(of: v, toByteOffset: i * 8, as: Double.self)
                default: throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "type \(s.dtype.rawValue)")
                }
            }
            return [y]
        }
    }),
    // TFLite STRIDED_SLICE: begin, end, strides with begin/end/shrink-axis masks.
    ("StridedSlice", { pc in
        let n = pc.node
        if (n.int("ellipsis_mask") ?? 0) != 0 || (n.int("new_axis_mask") ?? 0) != 0 { throw pc.fail("ellipsis or new-axis masks") }
        if (n.int("offset") ?? 0) != 0 { throw pc.fail("offset mode") }
        let beginMask = n.int("begin_mask") ?? 0, endMask = n.int("end_mask") ?? 0, shrink = n.int("shrink_axis_mask") ?? 0
        return { ins, ctx in
            guard let x = ins.first ?? nil, let b = ins.count > 1 ? ins[1]?.integers() : nil, let e = ins.count > 2 ? ins[2]?.integers() : nil else {
                throw RuntimeError.invalid(node: n.label, reason: "STRIDED_SLICE needs begin and end")
            }
            let st = (ins.count > 3 ? ins[3]?.integers() : nil) ?? Array(repeating: 1, count: b.count)
            let r = x.shape.count
            var begin = [Int](repeating: 0, count: r), step = [Int](repeating: 1, count: r), size = x.shape, keep = [Int]()
            for a in 0..<r {
                guard a < b.count else { keep.append(x.shape[a]); continue }
                let d = x.shape[a], s = a < st.count ? st[a] : 1
                guard s != 0 else { throw RuntimeError.invalid(node: n.label, reason: "stride 0") }
                var lo = beginMask & (1 << a) != 0 ? (s > 0 ? 0 : d - 1) : (b[a] < 0 ? b[a] + d : b[a])
                var hi = endMask & (1 << a) != 0 ? (s > 0 ? d : -1) : (e[a] < 0 ? e[a] + d : e[a])
                if shrink & (1 << a) != 0 { hi = lo + 1; step[a] = 1; begin[a] = min(max(lo, 0), d - 1); size[a] = 1; continue }
                if s > 0 { lo = min(max(lo, 0), d); hi = min(max(hi, 0), d); size[a] = hi > lo ? (hi - lo + s - 1) / s : 0 }
                else { lo = min(max(lo, -1), d - 1); hi = min(max(hi, -1), d - 1); size[a] = lo > hi ? (lo - hi - s - 1) / (-s) : 0 }
                begin[a] = lo; step[a] = s; keep.append(size[a])
            }
            let y = try gatherStrided(x, begin: begin, step: step, size: size, ctx)
            return [view(y, (0..<r).filter { shrink & (1 << $0) == 0 }.map { size[$0] })]
        }
    }),
    ("DepthToSpace", { pc in try depthSpace(pc, toSpace: true) }),
    ("SpaceToDepth", { pc in try depthSpace(pc, toSpace: false) }),
]

/// y[i] = x[begin + i * step] along every axis.
func gatherStrided(_ x: RTensor, begin: [Int], step: [Int], size: [Int], _ ctx: RunContext) throws -> RTensor {
    let r = x.shape.count
    let y = try ctx.alloc(size, x.dtype)
    guard size.reduce(1, *) > 0 else { return y }
    var xs = [Int](repeating: 1, count: r)
    for i in stride(from: r - 2, through: 0, by: -1) { xs[i] = xs[i + 1] * x.shape[i + 1] }
    let offset = (0..<r).reduce(0) { $0 + begin[$1] * xs[$1] }
    copyStrided(x.raw + offset * x.elementSize, into: y, strides: (0..<r).map { xs[$0] * step[$0] })
    return y
}

func broadcastCopy(_ x: RTensor, to shape: [Int], _ ctx: RunContext) throws -> RTensor {
    let y = try ctx.alloc(shape, x.dtype)
    guard y.count > 0 else { return y }
    copyStrided(x.raw, into: y, strides: broadcastStrides(x.shape, to: shape))
    return y
}

/// y = the elements of `base` at the given element strides, in y's shape (mlk_copy_strided up to
/// rank 8, an element loop beyond).
func copyStrided(_ base: UnsafeRawPointer, into y: RTensor, strides: [Int]) {
    let r = y.shape.count, e = y.elementSize
    guard r > 8 else {
        y.shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
            strides.map { CLong($0) }.withUnsafeBufferPointer { st in
                mlk_copy_strided(base, y.raw, Int32(r), sh.baseAddress, st.baseAddress, Int32(e))
            }
        }
        return
    }
    var idx = [Int](repeating: 0, count: r)
    for t in 0..<y.count {
        var off = 0
        for d in 0..<r { off += idx[d] * strides[d] }
        (y.raw + t * e).copyMemory(from: base + off * e, byteCount: e)
        var d = r - 1
        while d >= 0 { idx[d] += 1; if idx[d] < y.shape[d] { break }; idx[d] = 0; d -= 1 }
    }
}

func depthSpace(_ pc: PlanContext, toSpace: Bool) throws -> Kernel {
    let n = pc.node
    guard let b = n.int("blocksize") ?? n.int("block_size"), b > 0 else { throw pc.fail("no blocksize") }
    let crd = n.string("mode") == "CRD"
    let nhwc = n.dataLayout == .nhwc
    return { ins, ctx in
        guard let x = ins.first ?? nil, x.shape.count == 4 else { throw RuntimeError.invalid(node: n.label, reason: "4-D input") }
        // Express both as reshape + transpose over NCHW (or NHWC) indices.
        let (N, C, H, W) = nhwc ? (x.shape[0], x.shape[3], x.shape[1], x.shape[2]) : (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let outC = toSpace ? C / (b * b) : C * b * b, outH = toSpace ? H * b : H / b, outW = toSpace ? W * b : W / b
        guard toSpace ? C % (b * b) == 0 : (H % b == 0 && W % b == 0) else { throw RuntimeError.invalid(node: n.label, reason: "sizes do not divide by the block") }
        let y = try ctx.alloc(nhwc ? [N, outH, outW, outC] : [N, outC, outH, outW], x.dtype)
        // A 6-D transpose: x read as [N, ...] with the block split out, y written as the output
        // with the block split out, one strided copy (element by element, pose_detection's three
        // took 1.2 ms).
        let xView: [Int], perm: [Int], yView: [Int]
        switch (toSpace, nhwc, crd) {
        case (true, false, false): xView = [N, b, b, outC, H, W]; perm = [0, 3, 4, 1, 5, 2]          // y[n, c, h, bh, w, bw]
        case (true, false, true): xView = [N, outC, b, b, H, W]; perm = [0, 1, 4, 2, 5, 3]
        case (true, true, false): xView = [N, H, W, b, b, outC]; perm = [0, 1, 3, 2, 4, 5]           // y[n, h, bh, w, bw, c]
        case (true, true, true): xView = [N, H, W, outC, b, b]; perm = [0, 1, 4, 2, 5, 3]
        case (false, false, _): xView = [N, C, outH, b, outW, b]; perm = [0, 3, 5, 1, 2, 4]          // y[n, bh, bw, c, h, w]
        case (false, true, _): xView = [N, outH, b, outW, b, C]; perm = [0, 1, 3, 2, 4, 5]           // y[n, h, w, bh, bw, c]
        }
        yView = perm.map { xView[$0] }
        var xStrides = [Int](repeating: 1, count: 6)
        for i in stride(from: 4, through: 0, by: -1) { xStrides[i] = xStrides[i + 1] * xView[i + 1] }
        copyStrided(x.raw, into: RTensor(shape: yView, dtype: y.dtype, buffer: y.buffer), strides: perm.map { xStrides[$0] })
        return [y]
    }
}
