import ModelIR

/// Structural facts about a graph: convolution kinds, skip connections,
/// branches, dense concatenation, squeeze-excitation, foldable BatchNorm.
public struct StructureReport: Sendable {
    public struct Skip: Sendable {
        /// The merge node (Add, Sum, Concat).
        public var merge: Int
        /// The value that bypassed layers, and how many nodes the longer path has.
        public var bypassed: ValueID
        public var span: Int
        /// `identity` (the value itself reaches the merge) or `projection` (through at most 2 nodes).
        public var kind: String
    }

    public var tags: [[String]]
    public var skips: [Skip]
    public var branchMerges: [Int]
    public var denseConcats: [Int]
    public var squeezeExcitations: [Int]
    public var foldableBatchNorms: [Int]

    public func count(_ tag: String) -> Int { tags.filter { $0.contains(tag) }.count }
}

enum Structure {
    static let merges: Set<String> = ["Add", "Sum", "Concat"]

    static func analyze(_ g: Graph) -> StructureReport {
        let n = g.nodes.count
        var tags = [[String]](repeating: [], count: n)
        // Consumers and depth (longest path from the inputs, in nodes).
        var consumers: [ValueID: [Int]] = [:]
        for (i, node) in g.nodes.enumerated() { for case let v? in node.inputs { consumers[v, default: []].append(i) } }
        var depth = [Int](repeating: 0, count: g.values.count)
        for node in g.nodes {
            let d = (node.inputs.compactMap { $0 }.map { depth[$0] }.max() ?? 0) + 1
            for o in node.outputs { depth[o] = d }
        }
        func isActivation(_ v: ValueID) -> Bool {
            g.values[v].constant == nil && (g.values[v].producer.map { g.nodes[$0].op != .dequantize && g.nodes[$0].op.rawValue != "Constant" } ?? true)
        }
        // Ancestor sets of activation values, as bitsets over node indices (computed lazily).
        var ancestorCache: [ValueID: Set<ValueID>] = [:]
        func ancestors(_ v: ValueID) -> Set<ValueID> {
            if let a = ancestorCache[v] { return a }
            var seen = Set<ValueID>()
            var stack = [v]
            while let x = stack.popLast() {
                guard let p = g.values[x].producer else { continue }
                for case let u? in g.nodes[p].inputs where isActivation(u) && seen.insert(u).inserted { stack.append(u) }
            }
            ancestorCache[v] = seen
            return seen
        }

        // Convolutions.
        for (i, node) in g.nodes.enumerated() where node.op == .conv {
            guard let x = node.inputs.first ?? nil, let w = node.inputs.count > 1 ? node.inputs[1] : nil,
                  let xd = g.values[x].type.shape.dims, let wd = g.values[w].type.shape.dims, xd.count >= 3 else { continue }
            let cin = (node.dataLayout == .nhwc ? xd.last : xd[1])?.value ?? 0
            let group = node.int("group") ?? 1
            let kernel: [Dim]
            switch node.kernelLayout ?? .oihw {
            case .oihw, .iohw: kernel = Array(wd.dropFirst(2))
            case .ohwi, .ihwo1: kernel = Array(wd.dropFirst().dropLast())
            }
            if group > 1 && group == cin { tags[i].append("depthwise") }
            else if group > 1 { tags[i].append("grouped") }
            else if kernel.allSatisfy({ $0 == .known(1) }) { tags[i].append("pointwise") }
            else { tags[i].append("standard") }
        }

        var skips: [StructureReport.Skip] = []
        var branchMerges: [Int] = [], denseConcats: [Int] = []
        for (i, node) in g.nodes.enumerated() where merges.contains(node.op.rawValue) {
            let ins = Array(Set(node.inputs.compactMap { $0 }.filter(isActivation)))
            guard ins.count >= 2 else { continue }
            let isConcat = node.op.rawValue == "Concat"
            // An input that is itself an ancestor of another input bypassed the layers between.
            var direct: (ValueID, Int)? = nil
            for a in ins {
                for b in ins where a != b && ancestors(b).contains(a) {
                    let span = depth[b] - depth[a]
                    if direct == nil || span > direct!.1 { direct = (a, span) }
                }
            }
            if let (v, span) = direct {
                if isConcat {
                    denseConcats.append(i)
                    tags[i].append("dense-concat")
                } else {
                    skips.append(.init(merge: i, bypassed: v, span: span, kind: "identity"))
                    tags[i].append("residual-merge")
                }
                continue
            }
            // Otherwise: the nearest common ancestor, and how long each path from it is.
            guard ins.count == 2 || isConcat else { continue }
            let sets = ins.map(ancestors)
            let common = sets.dropFirst().reduce(sets[0]) { $0.intersection($1) }
            guard let fork = common.max(by: { depth[$0] < depth[$1] }) else { continue }
            let lengths = ins.map { depth[$0] - depth[fork] }
            if isConcat {
                if lengths.filter({ $0 >= 1 }).count >= 2 {
                    branchMerges.append(i)
                    tags[i].append("branch-merge")
                }
            } else if let short = lengths.min(), let long = lengths.max(), short <= 2, long > short {
                let bypassed = ins[lengths.firstIndex(of: short)!]
                skips.append(.init(merge: i, bypassed: bypassed, span: long, kind: "projection"))
                tags[i].append("residual-merge")
            }
        }

        // Squeeze-excitation: Mul(x, s) where s derives from a global pooling of x within a few nodes.
        var se: [Int] = []
        for (i, node) in g.nodes.enumerated() where node.op.rawValue == "Mul" {
            let ins = node.inputs.compactMap { $0 }.filter(isActivation)
            guard ins.count == 2 else { continue }
            for (x, s) in [(ins[0], ins[1]), (ins[1], ins[0])] {
                var frontier = [s], steps = 0, found = false
                while !frontier.isEmpty, steps < 8, !found {
                    var next: [ValueID] = []
                    for v in frontier {
                        guard let p = g.values[v].producer else { continue }
                        let pn = g.nodes[p]
                        if ["GlobalAveragePool", "ReduceMean"].contains(pn.op.rawValue), pn.inputs.first == x { found = true }
                        next += pn.inputs.compactMap { $0 }.filter(isActivation)
                    }
                    frontier = next
                    steps += 1
                }
                if found { se.append(i); tags[i].append("squeeze-excitation"); break }
            }
        }

        // BatchNorm right after a Conv whose output nothing else reads: foldable.
        var foldable: [Int] = []
        for (i, node) in g.nodes.enumerated() where node.op == .batchNormalization {
            guard let x = node.inputs.first ?? nil, let p = g.values[x].producer, g.nodes[p].op == .conv,
                  consumers[x]?.count == 1, node.inputs.dropFirst().allSatisfy({ $0.map { g.values[$0].constant != nil } ?? true }) else { continue }
            foldable.append(i)
            tags[i].append("bn-foldable")
        }
        return StructureReport(tags: tags, skips: skips, branchMerges: branchMerges, denseConcats: denseConcats,
                               squeezeExcitations: se, foldableBatchNorms: foldable)
    }
}
