import ModelIR

/// The value bookkeeping both converters share. Every target value carries a
/// layout: a permutation `p` where target axis i holds source axis p[i] (nil =
/// the source's order). `get` hands out a source value in the layout an op
/// needs, permuting constants at conversion time and inserting a transpose
/// (counted in the report) only where a computed value must change layout.
class LayoutConverter {
    let src: Graph
    let path: String
    let options: Converter.Options
    let out = Graph(name: "main")
    var report = ConversionReport(source: "", target: "", sourceFormat: "", targetFormat: "")
    /// Source value -> (target value, layout).
    var map: [ValueID: (id: ValueID, perm: [Int]?)] = [:]
    /// Cached transposed copies: (source value, layout) -> target value.
    var transposed: [String: ValueID] = [:]
    var consumers: [ValueID: Int] = [:]
    var folded: [ValueID: TensorData] = [:]

    init(_ graph: Graph, path: String, options: Converter.Options) {
        src = graph
        self.path = path
        self.options = options
    }

    /// Appends a transpose of target value `x` by `perm`; returns its output.
    func transposeNode(_ x: ValueID, _ perm: [Int], name: String, dtype: DType, shape: [Int]) -> ValueID { fatalError("abstract") }
    /// Appends a reshape of target value `x` to `shape`; returns its output.
    func reshapeNode(_ x: ValueID, _ shape: [Int], name: String, dtype: DType) -> ValueID { fatalError("abstract") }

    func fail(_ node: Node, _ reason: String) -> ExportError {
        ExportError(path, "node '\(node.name)' (\(node.sourceOp)): \(reason)")
    }

    func constant(_ v: ValueID?) -> TensorData? {
        guard let v else { return nil }
        return src.values[v].constant ?? folded[v]
    }

    func shape(_ v: ValueID) throws -> [Int] {
        if let c = constant(v) { return c.shape }
        guard let s = src.values[v].type.shape.concrete else {
            throw ExportError(path, "value '\(src.values[v].name)' has shape \(src.values[v].type.shape); fix the inputs' sizes with --input-shape")
        }
        return s
    }

    // MARK: values

    func newValue(_ name: String, _ dtype: DType, _ shape: [Int]) -> ValueID {
        out.addValue(name: name, type: TensorType(dtype: dtype, shape: Shape(known: shape)), distinct: true)
    }

    func newConstant(_ name: String, _ data: TensorData) -> ValueID {
        let id = newValue(name, data.dtype, data.shape)
        out.values[id].constant = data
        return id
    }

    static func apply(_ perm: [Int]?, _ shape: [Int]) -> [Int] { perm.map { $0.map { shape[$0] } } ?? shape }

    static func isIdentity(_ p: [Int]) -> Bool { p.enumerated().allSatisfy { $0.offset == $0.element } }

    /// Whether a tensor of ONNX shape `shape` has the same element order in layout `perm`.
    static func orderEquivalent(_ shape: [Int], _ perm: [Int]?) -> Bool {
        guard let perm else { return true }
        let big = perm.filter { shape[$0] > 1 }
        return zip(big, big.dropFirst()).allSatisfy { $0 < $1 }
    }

    /// The target value holding source value `v` in layout `want`.
    func get(_ v: ValueID, _ want: [Int]?) throws -> ValueID {
        let srcShape = try shape(v)
        if let c = constant(v), map[v] == nil {
            let key = "\(v)/\(want ?? [])"
            if let id = transposed[key] { return id }
            let data = want.map { TensorOps.permute(c, $0) } ?? c
            if want != nil { report.constantsFolded += 1 }
            let id = newConstant(src.values[v].name + (want == nil ? "" : "/permuted"), data)
            transposed[key] = id
            return id
        }
        guard let (id, have) = map[v] else { throw ExportError(path, "value '\(src.values[v].name)' is used before it is defined") }
        if have == want || LayoutConverter.orderEquivalent(srcShape, have) && LayoutConverter.orderEquivalent(srcShape, want) {
            if have == want { return id }
            // Same bytes, other shape: a reshape, not a transpose.
            let key = "\(v)/\(want ?? [])"
            if let r = transposed[key] { return r }
            let target = LayoutConverter.apply(want, srcShape)
            let r = reshapeNode(id, target, name: src.values[v].name + "/reshaped", dtype: src.values[v].type.dtype)
            transposed[key] = r
            return r
        }
        let key = "\(v)/\(want ?? [])"
        if let r = transposed[key] { return r }
        let inv = TensorOps.inverse(have ?? Array(0..<srcShape.count))
        let w = want ?? Array(0..<srcShape.count)
        let t = w.map { inv[$0] }
        let r = transposeNode(id, t, name: src.values[v].name + "/transposed", dtype: src.values[v].type.dtype, shape: LayoutConverter.apply(want, srcShape))
        report.transposesInserted += 1
        transposed[key] = r
        return r
    }


    // MARK: layouts of ops that follow their inputs

    /// Where source axis `axis` lies in layout `p`.
    static func targetAxis(_ axis: Int, _ p: [Int]?) -> Int { p.map { TensorOps.inverse($0)[axis] } ?? axis }

    /// A reduction over source `axes` (non-negative) of a rank-`rank` value in layout `p`: the
    /// target axes, sorted, and the output's layout (without keepdims the remaining target axes
    /// hold the remaining source axes, renumbered).
    static func reduction(axes: [Int], rank: Int, layout p: [Int]?, keep: Bool) -> (axes: [Int], layout: [Int]?) {
        let target = axes.map { targetAxis($0, p) }.sorted()
        guard !keep, let p else { return (target, p) }
        let remaining = (0..<rank).filter { !axes.contains($0) }
        let rem = p.filter { !axes.contains($0) }.map { remaining.firstIndex(of: $0)! }
        return (target, isIdentity(rem) ? nil : rem)
    }

    /// The operands of a broadcasting elementwise op in one layout: that of the first computed
    /// operand of the output's rank. Lower-rank constants are padded to that rank and permuted
    /// (single values stay as they are); a lower-rank computed operand cannot follow.
    func broadcastOperands(_ node: Node, _ operands: [ValueID], outShape s: [Int]) throws -> (values: [ValueID], layout: [Int]?) {
        var p: [Int]? = nil
        for v in operands where constant(v) == nil && (try? shape(v).count) == s.count { if let vp = map[v]?.perm { p = vp; break } }
        var ins: [ValueID] = []
        for v in operands {
            let vs = try shape(v)
            if let p, vs.count < s.count {
                guard let c = constant(v) else { throw fail(node, "broadcasting a rank-\(vs.count) value against a tensor in another layout") }
                if c.elementCount == 1 { ins.append(try get(v, nil)); continue }
                let full = [Int](repeating: 1, count: s.count - vs.count) + vs
                report.constantsFolded += 1
                ins.append(newConstant(src.values[v].name + "/permuted", TensorOps.permute(TensorOps.reshaped(c, full), p)))
                continue
            }
            ins.append(try get(v, vs.count == s.count ? p : nil))
        }
        return (ins, p)
    }

    /// Concat's inputs in the layout of its first computed input, and the axis in that layout.
    func concatOperands(_ node: Node) throws -> (values: [ValueID], layout: [Int]?, axis: Int, shape: [Int], dtype: DType) {
        let ins = node.inputs.compactMap { $0 }
        guard let first = ins.first(where: { constant($0) == nil }) ?? ins.first else { throw fail(node, "no inputs") }
        let s = try shape(node.outputs[0])
        let p = map[first]?.perm
        var axis = node.int("axis") ?? 0
        if axis < 0 { axis += s.count }
        return (try ins.map { try get($0, p) }, p, LayoutConverter.targetAxis(axis, p), s, src.values[first].type.dtype)
    }
}
