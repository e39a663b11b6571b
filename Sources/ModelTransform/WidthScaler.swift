import CONNX
import Foundation
import ModelImport
import ModelIR

/// Writes a channel-scaled copy of an ONNX CNN: every convolution and hidden
/// fully-connected layer keeps round(width x channels) of its channels (at
/// least 1), and weights are cut to the leading channels of each axis, so the
/// copy is the original network slimmed. Inputs and the final classifier keep
/// their size. Ops whose channels it cannot follow (a Reshape that moves
/// channels, as in ShuffleNet's channel shuffle) stop it with a message naming
/// the node; nothing is written then.
public enum WidthScaler {
    public struct Result: Sendable {
        public var scaledTensors: Int
        public var output: String
    }

    public struct ScaleError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    static let passThrough: Set<String> = [
        "Relu", "Clip", "Relu6", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "PRelu", "Gelu",
        "Erf", "Identity", "Dropout", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "LRN",
        "BatchNormalization", "InstanceNormalization", "Softmax", "LogSoftmax", "Pad", "Resize", "Upsample", "Cast", "Mish",
        "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "ReduceMean", "Sqrt", "Neg", "Exp", "Log",
    ]

    public static func scale(_ input: String, width: Double, output: String) throws -> Result {
        guard width > 0, width.isFinite else { throw ScaleError("--width must be a positive number") }
        let model = try ModelImporter.load(input)
        guard model.format == .onnx else { throw ScaleError("\(input): scaling writes ONNX; the model is \(model.format.rawValue)") }
        let g = model.graph
        func scaled(_ c: Int) -> Int { max(1, Int((Double(c) * width).rounded())) }
        func dims(_ v: ValueID) -> [Int]? { g.values[v].type.shape.dims?.map { $0.value ?? 1 } }
        func isActivation(_ v: ValueID) -> Bool { g.values[v].constant == nil }

        // Values that reach a graph output without another Conv/Gemm: their channels stay.
        var final = Set(g.outputs)
        for node in g.nodes.reversed() where node.outputs.contains(where: final.contains) {
            if ["Conv", "Gemm", "MatMul"].contains(node.op.rawValue) { continue }
            for case let v? in node.inputs where isActivation(v) { final.insert(v) }
        }

        // New channel (axis 1) counts of activations, and the cuts to make to each constant.
        var channels: [ValueID: Int] = [:]
        var cuts: [String: [Int]] = [:]          // initializer name -> kept size per axis
        var views: [String: [Int]] = [:]         // initializer name -> shape to cut in (Gemm over flattened maps)
        var groupChanges: [Int: Int] = [:]       // node index -> new group
        var flatOrigin: [ValueID: (Int, Int)] = [:]  // flattened value -> (channels, spatial size) before flattening
        for v in g.inputs { if let d = dims(v), d.count >= 2 { channels[v] = d[1] } }
        func cut(_ v: ValueID?, _ keep: [Int], view: [Int]? = nil, node: Node) throws {
            guard let v, let c = g.values[v].constant else { return }
            let name = g.values[v].name
            if let previous = cuts[name], previous != keep {
                throw ScaleError("\(input): initializer '\(name)' is shared by layers that need different cuts (node '\(node.name)')")
            }
            guard c.shape.count == (view ?? c.shape).count || view != nil else { return }
            cuts[name] = keep
            if let view { views[name] = view }
        }
        for (i, node) in g.nodes.enumerated() {
            let label = "node '\(node.name)' (\(node.sourceOp))"
            let acts = node.inputs.compactMap { $0 }.filter(isActivation)
            let inC = acts.first.flatMap { channels[$0] }
            switch node.op.rawValue {
            case "Conv":
                guard let x = acts.first, let cin = channels[x], let wv = node.inputs[1], let w = g.values[wv].constant, w.shape.count >= 3,
                      let out = node.outputs.first, let xd = dims(x) else { throw ScaleError("\(input): \(label): weights must be an initializer") }
                let group = node.int("group") ?? 1
                let o = w.shape[0]
                var newO: Int, newGroup = group, perGroupIn: Int
                if group > 1 && group == xd[1] {                 // depthwise (with a channel multiplier)
                    newGroup = cin
                    newO = cin * (o / group)
                    perGroupIn = 1
                } else if group > 1 {                            // grouped: keep the groups, scale within them
                    guard cin % group == 0 else { throw ScaleError("\(input): \(label): \(cin) channels do not split into \(group) groups") }
                    newO = final.contains(out) ? o : max(group, (scaled(o) / group) * group)
                    perGroupIn = cin / group
                } else {
                    newO = final.contains(out) ? o : scaled(o)
                    perGroupIn = cin
                }
                if newGroup != group { groupChanges[i] = newGroup }
                try cut(wv, [newO, perGroupIn] + Array(w.shape.dropFirst(2)), node: node)
                if node.inputs.count > 2 { try cut(node.inputs[2], [newO], node: node) }
                channels[out] = newO
            case "Gemm", "MatMul":
                guard let x = acts.first, let wv = node.inputs.count > 1 ? node.inputs[1] : nil, let w = g.values[wv].constant, w.shape.count == 2,
                      let out = node.outputs.first else { throw ScaleError("\(input): \(label): weights must be a 2-D initializer") }
                let transB = node.op.rawValue == "Gemm" && (node.int("transB") ?? 0) != 0
                let (n, k) = transB ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
                let newN = final.contains(out) ? n : scaled(n)
                // Features may come from a flattened C x H x W map: cut the C part only.
                let origC = flatOrigin[x]?.0 ?? k
                let spatial = flatOrigin[x]?.1 ?? 1
                let newC = channels[x].map { $0 / spatial } ?? origC
                if transB { try cut(wv, [newN, newC, spatial], view: [n, origC, spatial], node: node) }
                else { try cut(wv, [newC, spatial, newN], view: [origC, spatial, n], node: node) }
                if node.inputs.count > 2 { try cut(node.inputs[2], [newN], node: node) }
                channels[out] = newN
            case "Flatten":
                guard let x = acts.first, let xd = dims(x), xd.count >= 2, let c = channels[x], let out = node.outputs.first else { continue }
                let spatial = xd.dropFirst(2).reduce(1, *)
                flatOrigin[out] = (xd[1], spatial)
                channels[out] = c * spatial
            case "Concat":
                let axis = node.int("axis") ?? 0
                guard axis == 1 || axis == -3 else {
                    throw ScaleError("\(input): \(label): concatenation along axis \(axis) is not scaled")
                }
                channels[node.outputs[0]] = try acts.reduce(0) { sum, v in
                    guard let c = channels[v] else { throw ScaleError("\(input): \(label): an input's channels are unknown") }
                    return sum + c
                }
            default:
                guard passThrough.contains(node.op.rawValue) else {
                    if acts.contains(where: { channels[$0] != nil && dims($0).map { $0[1] } != channels[$0] }) {
                        throw ScaleError("\(input): \(label): cannot follow channels through \(node.sourceOp); nothing written")
                    }
                    for o in node.outputs { if let d = dims(o), d.count >= 2 { channels[o] = d[1] } }
                    continue
                }
                guard let c = inC else { continue }
                for case let v? in node.inputs where !isActivation(v) {
                    let t = g.values[v].type.shape.concrete ?? []
                    let elements = t.reduce(1, *)
                    if elements <= 1 { continue }
                    // Per-channel constants: [C], [C,1,1] or [1,C,1,1] (BatchNorm parameters, scales).
                    if let axis = t.firstIndex(where: { $0 > 1 }), t.filter({ $0 > 1 }).count == 1 {
                        var keep = t
                        keep[axis] = c
                        try cut(v, keep, node: node)
                    } else {
                        throw ScaleError("\(input): \(label): cannot cut constant '\(g.values[v].name)' of shape \(t)")
                    }
                }
                for o in node.outputs { channels[o] = c }
            }
        }
        for o in g.outputs {
            if let d = dims(o), d.count >= 2, let c = channels[o], c != d[1] {
                throw ScaleError("\(input): output '\(g.values[o].name)' would change from \(d[1]) to \(c) channels")
            }
        }
        return try rewrite(input, output: output, cuts: cuts, views: views, groupChanges: groupChanges, graph: g)
    }

    /// Applies the cuts to the file's initializers and writes the result.
    static func rewrite(_ input: String, output: String, cuts: [String: [Int]], views: [String: [Int]],
                        groupChanges: [Int: Int], graph: Graph) throws -> Result {
        var err = [CChar](repeating: 0, count: 512)
        guard let proto = ml_onnx_load(input, &err, err.count) else { throw ScaleError("\(input): \(String(cString: err))") }
        defer { ml_onnx_free(proto) }
        guard let gp = proto.pointee.graph else { throw ScaleError("\(input): no graph") }
        var done = 0
        for k in 0..<gp.pointee.n_initializer {
            guard let t = gp.pointee.initializer[k] else { continue }
            let name = String(cString: t.pointee.name)
            guard let keep = cuts[name] else { continue }
            let shape = (0..<t.pointee.n_dims).map { Int(t.pointee.dims[$0]) }
            let view = views[name] ?? shape
            guard t.pointee.data_type == 1, t.pointee.has_raw_data != 0 || t.pointee.raw_data.len > 0 else {
                throw ScaleError("\(input): initializer '\(name)' is not float32 raw data; cannot cut it")
            }
            let raw = UnsafeRawBufferPointer(start: t.pointee.raw_data.data, count: t.pointee.raw_data.len)
            let bytes = slicePrefix(raw, elementSize: 4, shape: view, keep: keep)
            let newData = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: UInt8.self)
            bytes.withUnsafeBytes { newData.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: bytes.count) }
            free(t.pointee.raw_data.data)
            t.pointee.raw_data.data = newData
            t.pointee.raw_data.len = bytes.count
            // New dims: the kept sizes folded back into the stored rank.
            let newShape: [Int]
            if view.count == shape.count { newShape = keep }
            else if shape.count == 2, keep.count == 3 { newShape = views[name]![0] == shape[0] ? [keep[0], keep[1] * keep[2]] : [keep[0] * keep[1], keep[2]] }
            else { newShape = keep }
            for (j, d) in newShape.enumerated() where j < t.pointee.n_dims { t.pointee.dims[j] = Int64(d) }
            done += 1
        }
        for (index, group) in groupChanges {
            guard index < gp.pointee.n_node, let np = gp.pointee.node[index] else { continue }
            for a in 0..<np.pointee.n_attribute where String(cString: np.pointee.attribute[a]!.pointee.name) == "group" {
                np.pointee.attribute[a]!.pointee.i = Int64(group)
            }
        }
        ml_onnx_clear_value_info(gp)
        if ml_onnx_save(proto, output, &err, err.count) != 0 { throw ScaleError("\(output): \(String(cString: err))") }
        return Result(scaledTensors: done, output: output)
    }

    /// Resizes a row-major tensor to `keep[i]` entries along each axis: narrowing keeps the
    /// leading entries; widening repeats the existing ones cyclically (entry j comes from
    /// j mod size), which keeps a widened network well-formed for analysis.
    static func slicePrefix(_ src: UnsafeRawBufferPointer, elementSize: Int, shape: [Int], keep: [Int]) -> [UInt8] {
        let rank = shape.count
        guard rank > 0, keep.count == rank, shape.allSatisfy({ $0 > 0 }),
              src.count >= shape.reduce(1, *) * elementSize else { return Array(src) }
        var strides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        let inner = shape[rank - 1], innerKeep = keep[rank - 1]
        var out = [UInt8]()
        out.reserveCapacity(keep.reduce(1, *) * elementSize)
        var index = [Int](repeating: 0, count: rank)
        let outer = keep.dropLast().reduce(1, *)
        for _ in 0..<outer {
            var offset = 0
            for i in 0..<(rank - 1) { offset += (index[i] % shape[i]) * strides[i] }
            var remaining = innerKeep
            while remaining > 0 {
                let n = min(remaining, inner)
                out.append(contentsOf: src[(offset * elementSize)..<((offset + n) * elementSize)])
                remaining -= n
            }
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < keep[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }
}
