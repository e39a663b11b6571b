import CKernels
import Foundation
import ModelIR

/// The plan's choice of activation layouts.
extension Executor {
    /// Values kept channel-blocked between convolutions ([C/16][H][W][16] per image, the layout
    /// the channels-as-vectors kernels compute on; mlk_conv_blocked): outputs of Convs that can run
    /// that way (convRunsBlocked) and of MaxPools over 16k channels, when every step reading them
    /// is such a Conv (reading it as its input or residual) or a GlobalAveragePool, and they are
    /// no graph outputs. Between ResNet50's convolutions this spares each 3x3 the transposition of
    /// its input into blocks and of its output back, and runs the 1x1s on the same kernel without
    /// them. Off with MODELLENS_BLOCKED=0.
    func blockedValues(stepInputs: (Int) -> [ValueID?], isStep: (Int) -> Bool, outputs: Set<ValueID>) -> Set<ValueID> {
        guard ProcessInfo.processInfo.environment["MODELLENS_BLOCKED"] != "0" else { return [] }
        var convs = Set<Int>(), pools = Set<Int>(), pointwise = Set<Int>()
        var readers: [ValueID: [(node: Int, slot: Int)]] = [:]
        for (i, node) in graph.nodes.enumerated() where isStep(i) && fusedNodes[i] == nil {
            let ins = stepInputs(i)
            for (slot, v) in ins.enumerated() { if let v { readers[v, default: []].append((i, slot)) } }
            if node.op == .conv, fusion.quantizedConv[i] == nil {
                let w = ins.count > 1 ? ins[1].flatMap { $0 < graph.values.count ? constantTensor($0) : nil } : nil
                guard convRunsBlocked(node, graph, weight: w, residual: ins.count > 3 ? ins[3] : nil) else { continue }
                convs.insert(i)
                if let w, w.shape.dropFirst(2).allSatisfy({ $0 == 1 }) { pointwise.insert(i) }
            } else if node.op.rawValue == "MaxPool", node.outputs.count == 1, node.dataLayout != .nhwc,
                      let xs = declaredShape(ins.first ?? nil, graph), xs.count == 4, xs[1] % 16 == 0, xs[1] > 0 {
                pools.insert(i)
            }
        }
        func readsBlocked(_ r: (node: Int, slot: Int)) -> Bool {
            convs.contains(r.node) ? r.slot == 0 || r.slot == 3 : graph.nodes[r.node].op.rawValue == "GlobalAveragePool" && r.slot == 0
        }
        var blocked = outputsEveryReaderTakes(convs.union(pools), readers: readers, outputs: outputs, takes: readsBlocked)
        // A fused residual has its conv's output layout; a 1x1 convolution runs blocked only with
        // both its input and output blocked (otherwise it would transpose the other side, where the
        // GEMM reads and writes NCHW as it is: DenseNet's 1x1s before each 3x3 were 5% slower in all).
        var settled = false
        while !settled {
            settled = true
            for i in convs {
                let ins = stepInputs(i)
                guard let out = graph.nodes[i].outputs.first else { continue }
                if ins.count > 3, let r = ins[3], blocked.contains(r) != blocked.contains(out) {
                    blocked.remove(r); blocked.remove(out); settled = false
                }
                if pointwise.contains(i), let x = ins.first ?? nil, blocked.contains(x) != blocked.contains(out) {
                    blocked.remove(x); blocked.remove(out); settled = false
                }
            }
        }
        return blocked
    }
}

extension Executor {
    /// The first outputs of `producers`, other than graph outputs, that some step reads and every
    /// step reading them `takes` (in the layout in question): where a layout plan starts.
    func outputsEveryReaderTakes(_ producers: Set<Int>, readers: [ValueID: [(node: Int, slot: Int)]], outputs: Set<ValueID>,
                                 takes: ((node: Int, slot: Int)) -> Bool) -> Set<ValueID> {
        var kept = Set<ValueID>()
        for i in producers {
            guard let o = graph.nodes[i].outputs.first, !outputs.contains(o), let r = readers[o], !r.isEmpty, r.allSatisfy(takes) else { continue }
            kept.insert(o)
        }
        return kept
    }

    /// 8-bit values kept channels-last ([N][H][W][C]) between integer convolutions: outputs of the
    /// QLinearConvs (and fused QDQ convolutions) the integer kernels run (QLinearConvSpec), and of
    /// QLinearAdds (and fused QDQ Adds) of two same-shaped 4-D values, when every step reading them
    /// is such a convolution reading them as its input or such an Add, and they are no graph
    /// outputs. An Add keeps the layout of its operands: both and its output are channels-last,
    /// or none. Inside such chains (MobileNetV2's expansion -> depthwise -> projection -> residual
    /// Add) the transpositions to and from NCHW around each convolution fall away.
    func channelsLastValues(stepInputs: (Int) -> [ValueID?], isStep: (Int) -> Bool, outputs: Set<ValueID>) -> Set<ValueID> {
        var convs = Set<Int>(), adds = Set<Int>()
        var readers: [ValueID: [(node: Int, slot: Int)]] = [:]
        for i in graph.nodes.indices where isStep(i) && fusedNodes[i] == nil {
            let ins = stepInputs(i)
            for (slot, v) in ins.enumerated() { if let v { readers[v, default: []].append((i, slot)) } }
            let node = plannedNode(i), op = node.op.rawValue
            if op == "QLinearAdd" {
                let shapes = [0, 3].map { ins.count > $0 ? declaredShape(ins[$0], graph) : nil }
                if let a = shapes[0], a.count == 4, a == shapes[1] { adds.insert(i) }
                continue
            }
            guard op == "QLinearConv" else { continue }
            let consts = ins.map { $0.flatMap { $0 < graph.values.count ? constantTensor($0) : nil } }
            if QLinearConvSpec.of(PlanContext(node: node, graph: graph, constants: consts)) != nil { convs.insert(i) }
        }
        func takes(_ r: (node: Int, slot: Int)) -> Bool { convs.contains(r.node) ? r.slot == 0 : adds.contains(r.node) && (r.slot == 0 || r.slot == 3) }
        var kept = outputsEveryReaderTakes(convs.union(adds), readers: readers, outputs: outputs, takes: takes)
        var settled = false
        while !settled {
            settled = true
            for i in adds {
                let ins = stepInputs(i)
                let layout = [ins[0], ins[3], graph.nodes[i].outputs.first].map { $0.map(kept.contains) ?? false }
                if layout.contains(true) && layout.contains(false) {
                    for case let v? in [ins[0], ins[3], graph.nodes[i].outputs.first] { kept.remove(v) }
                    settled = false
                }
            }
        }
        return kept
    }
}
