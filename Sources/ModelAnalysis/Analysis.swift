import Foundation
import ModelIR

/// One node's costs and prediction.
public struct NodeAnalysis: Sendable {
    public var index: Int
    public var name: String
    /// The op as the file names it, and the canonical op.
    public var op: String
    public var canonical: String
    public var cost: OpCost
    /// Counts with every symbol bound (see `AnalysisReport.bindings`).
    public var macs = 0, flops = 0, params = 0, weightBytes = 0, activationBytesRead = 0, bytesWritten = 0
    /// Bytes this node moves to or from DRAM under the cache model.
    public var dramBytes = 0
    public var predictedSeconds = 0.0
    /// "compute", "memory" or "none" (no work: views, load-time decoding).
    public var bound = "none"
    public var tags: [String] = []
    public var weightDType: String?
    /// Share of zeros in the weights, and whether they follow 2:4 structure.
    public var weightSparsity: Double?
    public var twoFour = false

    public var bytesRead: Int { weightBytes + activationBytesRead }
    /// FLOPs per byte read or written.
    public var intensity: Double { flops == 0 ? 0 : Double(flops) / Double(max(1, bytesRead + bytesWritten)) }
}

public struct Totals: Sendable {
    public var macs = 0, flops = 0, params = 0, weightBytes = 0, activationBytesRead = 0, bytesWritten = 0, dramBytes = 0
    public var predictedSeconds = 0.0
    public var nodes = 0
    public var bytesRead: Int { weightBytes + activationBytesRead }

    mutating func add(_ n: NodeAnalysis) {
        macs += n.macs; flops += n.flops; params += n.params; weightBytes += n.weightBytes
        activationBytesRead += n.activationBytesRead; bytesWritten += n.bytesWritten; dramBytes += n.dramBytes
        predictedSeconds += n.predictedSeconds; nodes += 1
    }
}

/// Counts of structural patterns (numbers, as the JSON report gives them).
public struct Patterns: Sendable {
    public var residualConnections = 0, depthwiseConvs = 0, pointwiseConvs = 0, groupedConvs = 0, standardConvs = 0
    public var branches = 0, denseConcats = 0, squeezeExcitations = 0, foldableBatchNorms = 0
}

public struct AnalysisReport: Sendable {
    public var model: Model
    public var profile: HardwareProfile
    public var bindings: [String: Int]
    public var nodes: [NodeAnalysis]
    public var totals: Totals
    /// Totals with symbols left in (e.g. MACs `4.1 G × batch`).
    public var symbolicMACs: SymCount
    public var symbolicFLOPs: SymCount
    public var symbolicParams: SymCount
    public var byOpType: [String: Totals]
    public var patterns: Patterns
    public var structure: StructureReport
    /// MACs of weight-bearing ops whose weights are zero: what a sparse kernel could skip.
    public var skippableMACs: Int
    public var weightDTypes: [String: Int]
    /// The kernels the executor runs, each with the nodes fused into it (KernelPlan).
    public var kernels: [KernelStep]
    /// Class and work of each kernel of `kernels`, in the same order.
    public var kernelFeatures: [KernelFeatures]
    /// Nodes computed once at load time (no kernel at run time).
    public var foldedAtLoad: Int
    /// The thread count predicted for, and how: "calibrated" (the profile's fitted kernel
    /// models for that count; kernels of a class it has no model for fall back to the roofline)
    /// or "roofline".
    public var threads: Int
    public var method: String
    /// Kernels predicted by the roofline although the profile has fitted models (no model for
    /// their class or its wider class).
    public var rooflineKernels: Int
    public var convention: String { CostModel.convention }
}

/// Costs, structure and predicted time per node of a model, for a hardware profile.
///
/// ```swift
/// let model = try ModelImporter.load("resnet50.onnx")
/// let report = ModelAnalyzer.analyze(model, profile: try HardwareProfile.resolve("odroid-xu4-mali-t628"))
/// print(report.totals.macs, report.kernels.count)
/// print(AnalysisRenderer.render(report, format: .table, perLayer: false, top: 10))
/// ```
public enum ModelAnalyzer {
    /// Ops that are views in every runtime: no data moves.
    static let views: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "ExpandDims", "Constant"]

    public static func analyze(_ model: Model, profile: HardwareProfile, bindings given: [String: Int] = [:], threads: Int = 1) -> AnalysisReport {
        let g = model.graph
        // Weights: constants, and what the executor computes from constants alone before the
        // first run (ConstantFolding): weights decoded (TFLite DEQUANTIZE, ONNX DequantizeLinear,
        // Cast, Densify) or transposed (torch's Linear exports MatMul(x, Transpose(W))), and shape
        // arithmetic. Their nodes cost nothing per run; the reader of their outputs reads weights.
        var weights = Set(g.values.filter { $0.constant != nil }.map(\.id))
        var loadTime = Set<Int>()
        var weightSource: [ValueID: ValueID] = [:]
        for i in ConstantFolding.foldable(g).sorted() where g.nodes[i].op.rawValue != "Constant" {
            let n = g.nodes[i]
            for out in n.outputs {
                weights.insert(out)
                if let src = n.inputs.first ?? nil { weightSource[out] = weightSource[src] ?? src }
            }
            loadTime.insert(i)
        }
        let structure = Structure.analyze(g)
        var bindings = given
        for v in g.values { for case .symbol(let s)? in v.type.shape.dims ?? [] where bindings[s] == nil { bindings[s] = 1 } }

        var nodes: [NodeAnalysis] = []
        var symMACs = SymCount.zero, symFLOPs = SymCount.zero, symParams = SymCount.zero
        var skippable = 0
        var dtypes: [String: Int] = [:]
        for (i, node) in g.nodes.enumerated() {
            var cost = CostModel.cost(of: node, in: g, weights: weights)
            if loadTime.contains(i) || node.op.rawValue == "Constant" { cost = OpCost() }
            var controlTag: String?
            if !node.subgraphs.isEmpty { (cost, controlTag) = controlFlowCost(node, in: g, base: cost) }
            var a = NodeAnalysis(index: i, name: node.name.isEmpty ? "#\(i) \(node.sourceOp)" : node.name,
                                 op: node.sourceOp, canonical: node.op.rawValue, cost: cost)
            a.macs = cost.macs.evaluate(bindings)
            a.flops = cost.flops.evaluate(bindings)
            a.params = cost.params.evaluate(bindings)
            a.weightBytes = cost.weightBytes.evaluate(bindings)
            a.activationBytesRead = cost.activationBytesRead.evaluate(bindings)
            a.bytesWritten = cost.bytesWritten.evaluate(bindings)
            a.tags = structure.tags[i]
            if let controlTag { a.tags.append(controlTag) }
            if loadTime.contains(i) { a.tags.append("load-time") }
            if let fa = node.fusedActivation { a.tags.append("fused-\(fa.rawValue.lowercased())") }
            symMACs += cost.macs; symFLOPs += cost.flops; symParams += cost.params
            // Weight facts from the main weight input (input 1 of weight-bearing ops, else the largest constant).
            let wIDs = node.inputs.enumerated().compactMap { k, v in v.flatMap { weights.contains($0) ? (k, $0) : nil } }
            if let (_, w) = wIDs.max(by: { g.values[$0.1].type.shape.elementCount ?? 0 < g.values[$1.1].type.shape.elementCount ?? 0 }) {
                let source = weightSource[w] ?? w
                if let data = g.values[source].constant {
                    var dt = data.dtype.rawValue
                    if data.quantization?.isPerAxis == true { dt += " per-axis" }
                    if source != w { dt += " (decoded to \(g.values[w].type.dtype.rawValue))" }
                    a.weightDType = dt
                    dtypes[dt, default: 0] += a.params
                    if a.macs > 0, let (zeros, total, twoFour) = zeroStats(data), total > 0 {
                        a.weightSparsity = Double(zeros) / Double(total)
                        a.twoFour = twoFour
                        if twoFour { a.tags.append("2:4-sparse") }
                        skippable += Int(Double(a.macs) * a.weightSparsity!)
                    }
                }
            }
            nodes.append(a)
        }
        let kernelPlan = KernelPlan.make(g)
        predict(&nodes, g, profile: profile, loadTime: loadTime, weights: weights, bindings: bindings, kernels: kernelPlan)
        let features = KernelClassifier.features(kernelPlan.kernels, nodes, in: g, bindings: bindings, cacheBytes: profile.coreCacheBytes,
                                                 folded: kernelPlan.folded)
        var method = "roofline", rooflineKernels = 0
        if let models = profile.kernelModels(threads: threads) {
            method = "calibrated"
            rooflineKernels = predictCalibrated(&nodes, kernelPlan.kernels, features, models: models, profile: profile, threads: threads)
        }

        var totals = Totals()
        var byOp: [String: Totals] = [:]
        for a in nodes {
            totals.add(a)
            byOp[a.op, default: Totals()].add(a)
        }
        var p = Patterns()
        p.residualConnections = structure.skips.count
        p.depthwiseConvs = structure.count("depthwise")
        p.pointwiseConvs = structure.count("pointwise")
        p.groupedConvs = structure.count("grouped")
        p.standardConvs = structure.count("standard")
        p.branches = structure.branchMerges.count
        p.denseConcats = structure.denseConcats.count
        p.squeezeExcitations = structure.squeezeExcitations.count
        p.foldableBatchNorms = structure.foldableBatchNorms.count
        return AnalysisReport(model: model, profile: profile, bindings: bindings, nodes: nodes, totals: totals,
                              symbolicMACs: symMACs, symbolicFLOPs: symFLOPs, symbolicParams: symParams, byOpType: byOp,
                              patterns: p, structure: structure, skippableMACs: skippable, weightDTypes: dtypes,
                              kernels: kernelPlan.kernels,
                              kernelFeatures: features, foldedAtLoad: kernelPlan.folded.count,
                              threads: threads, method: method, rooflineKernels: rooflineKernels)
    }

    /// Nonzero elements of a graph's constants (float32 and float16, and int8 / int32 weights and
    /// biases of a quantized file): what pruning removes, and what a dense file still stores.
    public static func nonzeroWeights(_ g: Graph) -> Int {
        g.constants.reduce(0) { sum, v in
            guard let c = v.constant else { return sum }
            if let (zeros, n, _) = zeroStats(c) { return sum + n - zeros }
            // Integer weights (int8 behind a DequantizeLinear, int32 biases): their nonzero elements.
            guard [DType.int8, .uint8, .int32].contains(c.dtype), let width = c.dtype.bitWidth.map({ $0 / 8 }),
                  c.byteCount >= c.elementCount * width else { return sum }
            return sum + c.withBytes { raw in
                var nonzero = 0
                for i in 0..<c.elementCount {
                    var any: UInt8 = 0
                    for b in 0..<width { any |= raw[i * width + b] }
                    if any != 0 { nonzero += 1 }
                }
                return nonzero
            }
        }
    }

    /// Zeros, elements, and 2:4 structure (every aligned group of 4 along the
    /// innermost dimension has at least 2 zeros) of a float weight tensor.
    static func zeroStats(_ t: TensorData) -> (Int, Int, Bool)? {
        guard t.dtype == .float32 || t.dtype == .float16 else { return nil }
        let n = t.elementCount
        let width = t.dtype == .float32 ? 4 : 2
        guard t.byteCount >= n * width else { return nil }
        let inner = t.shape.last ?? 1
        return t.withBytes { raw -> (Int, Int, Bool) in
            guard let base = raw.baseAddress else { return (0, n, false) }
            let checkGroups = inner % 4 == 0 && n >= 4
            if width == 4, Int(bitPattern: base) % 4 == 0 {
                return countZeros(base.assumingMemoryBound(to: UInt32.self), n, mask: 0x7fff_ffff, checkGroups)
            }
            if width == 2, Int(bitPattern: base) % 2 == 0 {
                return countZeros(base.assumingMemoryBound(to: UInt16.self), n, mask: 0x7fff, checkGroups)
            }
            // Unaligned storage (ONNX raw_data inside a message can be): copy out first.
            let copy = [UInt8](raw.prefix(n * width))
            return copy.withUnsafeBytes { c -> (Int, Int, Bool) in
                width == 4 ? countZeros(c.baseAddress!.assumingMemoryBound(to: UInt32.self), n, mask: 0x7fff_ffff, checkGroups)
                           : countZeros(c.baseAddress!.assumingMemoryBound(to: UInt16.self), n, mask: 0x7fff, checkGroups)
            }
        }
    }

    /// The cost of a graph's nodes, summed (nested control flow included).
    static func graphCost(_ g: Graph) -> OpCost {
        let weights = Set(g.values.filter { $0.constant != nil }.map(\.id))
        var total = OpCost()
        for node in g.nodes {
            var c = CostModel.cost(of: node, in: g, weights: weights)
            if !node.subgraphs.isEmpty { c = controlFlowCost(node, in: g, base: c).0 }
            total.macs += c.macs; total.flops += c.flops; total.params += c.params
            total.weightBytes += c.weightBytes; total.activationBytesRead += c.activationBytesRead; total.bytesWritten += c.bytesWritten
        }
        return total
    }

    /// Loop: the body times the trip count (input 0, when constant; else the symbol `trips`).
    /// Scan: the body times the sequence length (axis 0 of the first scan input). If: the
    /// costlier branch. Parameters of a body count once.
    static func controlFlowCost(_ node: Node, in g: Graph, base: OpCost) -> (OpCost, String) {
        let bodies = node.subgraphs.sorted { $0.key < $1.key }.map { graphCost($0.value) }
        var c = base
        func scaled(_ b: OpCost, _ k: SymCount) -> OpCost {
            var o = OpCost()
            o.macs = b.macs * k; o.flops = b.flops * k; o.params = b.params
            o.weightBytes = b.weightBytes * k; o.activationBytesRead = b.activationBytesRead * k; o.bytesWritten = b.bytesWritten * k
            return o
        }
        func add(_ b: OpCost) {
            c.macs += b.macs; c.flops += b.flops; c.params += b.params
            c.weightBytes += b.weightBytes; c.activationBytesRead += b.activationBytesRead; c.bytesWritten += b.bytesWritten
        }
        switch node.op.rawValue {
        case "Loop":
            var trips = SymCount(terms: [["trips"]: 1])
            if let m = node.inputs.first ?? nil, let n = g.values[m].constant?.integers(limit: 1)?.first { trips = SymCount(n) }
            for b in bodies { add(scaled(b, trips)) }
            return (c, "loop x \(trips)")
        case "Scan":
            let numState = node.inputs.count - (node.int("num_scan_inputs") ?? 1)
            var steps = SymCount(terms: [["steps"]: 1])
            if numState >= 0, numState < node.inputs.count, let x = node.inputs[numState], let d = g.values[x].type.shape.dims?.first {
                steps = SymCount(product: [d])
            }
            for b in bodies { add(scaled(b, steps)) }
            return (c, "scan x \(steps)")
        default:
            if let worst = bodies.max(by: { $0.flops.evaluate() < $1.flops.evaluate() }) { add(worst) }
            return (c, "branches: costlier one counted")
        }
    }

    /// Zeros (+0 or -0) among `n` elements, four at a time; with `groups`, also
    /// whether every aligned group of four holds at least two zeros (2:4).
    static func countZeros<T: FixedWidthInteger>(_ p: UnsafePointer<T>, _ n: Int, mask: T, _ groups: Bool) -> (Int, Int, Bool) {
        var zeros = 0
        var twoFour = groups
        var i = 0
        while i + 4 <= n {
            let z = (p[i] & mask == 0 ? 1 : 0) + (p[i + 1] & mask == 0 ? 1 : 0) + (p[i + 2] & mask == 0 ? 1 : 0) + (p[i + 3] & mask == 0 ? 1 : 0)
            zeros &+= z
            if z < 2 { twoFour = false }
            i += 4
        }
        while i < n {
            if p[i] & mask == 0 { zeros += 1 }
            i += 1
        }
        return (zeros, n, twoFour)
    }

    /// Roofline per node with a cache-aware DRAM model:
    /// * weights come from DRAM unless all weights plus the largest working set fit in the last-level cache;
    /// * an activation is read from cache when it was written recently enough that it and everything
    ///   touched since fit in the last-level cache, from DRAM otherwise (a long skip connection misses);
    /// * an output is written to DRAM when it is larger than the cache, is a graph output, or some
    ///   consumer will have to read it from DRAM.
    /// Time = max(FLOPs / peak, DRAM bytes / bandwidth) + launch overhead, for nodes that do work.
    /// Roofline prediction per kernel the executor runs (KernelPlan): a kernel does its node's work
    /// and that of the nodes fused into it (their FLOPs in its epilogue), reads its node's inputs
    /// and a fused residual's other operand, and writes only the last fused node's output; it pays
    /// one launch overhead. The fused nodes and those computed at load time are predicted at zero
    /// and tagged so. DRAM traffic: an input is read from DRAM unless it was written recently
    /// enough to be in the last-level cache; an output is written to DRAM when it exceeds the cache,
    /// is a graph output, or is read from DRAM later.
    static func predict(_ nodes: inout [NodeAnalysis], _ g: Graph, profile: HardwareProfile, loadTime: Set<Int>,
                        weights: Set<ValueID>, bindings: [String: Int], kernels: (kernels: [KernelStep], folded: Set<Int>)) {
        let llc = profile.lastLevelCacheBytes
        func bytes(_ v: ValueID) -> Int {
            let t = g.values[v].type
            guard let dims = t.shape.dims else { return 0 }
            return SymCount(product: dims).evaluate(bindings) * (t.dtype.bitWidth ?? 32) / 8
        }
        let totalWeights = nodes.reduce(0) { $0 + $1.weightBytes }
        let largestWorkingSet = nodes.map { $0.bytesRead + $0.bytesWritten - $0.weightBytes }.max() ?? 0
        let weightsResident = totalWeights + largestWorkingSet <= llc
        // Bytes touched by the schedule so far, to judge reuse distance.
        var touched = [Int](repeating: 0, count: nodes.count + 1)
        for (i, a) in nodes.enumerated() { touched[i + 1] = touched[i] + a.bytesRead + a.bytesWritten }
        var missReaders = Set<ValueID>()
        // Bytes each node reads from DRAM, per input slot.
        var readFromDRAM = [[Int]](repeating: [], count: nodes.count)
        for (i, node) in g.nodes.enumerated() {
            readFromDRAM[i] = [Int](repeating: 0, count: node.inputs.count)
            guard !loadTime.contains(i), !views.contains(node.op.rawValue) else { continue }
            for (slot, input) in node.inputs.enumerated() {
                guard let v = input, !weights.contains(v) else { continue }
                let size = bytes(v)
                // Follow views back to the producer that did the work.
                var src = v
                while let p = g.values[src].producer, views.contains(g.nodes[p].op.rawValue), let up = g.nodes[p].inputs.first ?? nil { src = up }
                let written = g.values[src].producer.map { touched[$0 + 1] } ?? -1
                let hit = written >= 0 && size + (touched[i] - written) <= llc
                if !hit { readFromDRAM[i][slot] = size; missReaders.insert(src) }
            }
        }
        let outputs = Set(g.outputs)
        func writtenToDRAM(_ node: Node) -> Int {
            node.outputs.reduce(0) { total, o in
                let size = bytes(o)
                return total + (size > llc || outputs.contains(o) || missReaders.contains(o) ? size : 0)
            }
        }
        func roofline(_ a: inout NodeAnalysis, flops: Int, dram: Int, dtype: DType) {
            a.dramBytes = dram
            guard flops > 0 || a.bytesRead + a.bytesWritten > 0 else { a.bound = "none"; return }
            let peak = profile.peak(for: dtype == .int8 || dtype == .uint8 ? "int8" : dtype.rawValue)
            let compute = Double(flops) / peak
            let memory = Double(dram) / profile.dramBytesPerSecond
            a.bound = compute >= memory ? "compute" : "memory"
            a.predictedSeconds = max(compute, memory) + profile.launchOverheadSeconds
        }
        for (i, node) in g.nodes.enumerated() {
            var a = nodes[i]
            defer { nodes[i] = a }
            if loadTime.contains(i) || views.contains(node.op.rawValue) { a.bound = "none"; continue }
            roofline(&a, flops: a.flops, dram: readFromDRAM[i].reduce(0, +) + (weightsResident ? 0 : a.weightBytes) + writtenToDRAM(node),
                     dtype: g.values[node.outputs.first ?? 0].type.dtype)
        }
        // Per kernel: the node's reads, a fused residual Add's read of its other operand, the last
        // fused node's writes, all the group's FLOPs.
        for i in kernels.folded where !loadTime.contains(i) {
            nodes[i].predictedSeconds = 0; nodes[i].dramBytes = 0; nodes[i].bound = "none"; nodes[i].tags.append("load-time")
        }
        for step in kernels.kernels where !step.fused.isEmpty {
            let root = step.node
            let node = g.nodes[root]
            guard !views.contains(node.op.rawValue) else { continue }
            var flops = nodes[root].flops
            var dram = readFromDRAM[root].reduce(0, +) + (weightsResident ? 0 : nodes[root].weightBytes)
            var groupValues = Set(node.outputs)
            for f in step.fused {
                flops += nodes[f].flops
                for (slot, input) in g.nodes[f].inputs.enumerated() where input.map({ !groupValues.contains($0) }) ?? false {
                    dram += readFromDRAM[f][slot]
                }
                groupValues.formUnion(g.nodes[f].outputs)
                nodes[f].predictedSeconds = 0
                nodes[f].dramBytes = 0
                nodes[f].bound = "none"
                nodes[f].tags.append("fused")
            }
            let last = step.fused.last.map { g.nodes[$0] } ?? node
            roofline(&nodes[root], flops: flops, dram: dram + writtenToDRAM(last), dtype: g.values[node.outputs.first ?? 0].type.dtype)
        }
    }
}
