import CKernels
import Foundation
import ModelIR

/// What a kernel gets at run time: an allocator backed by the plan's buffer
/// pool, and scratch space (im2col).
public final class RunContext {
    var pool: [RBuffer] = []
    var scratch = RBuffer(capacity: 1 << 16)
    public private(set) var arenaBytes = 0
    public private(set) var peakArenaBytes = 0
    /// Buffers this run allocated (only these go back to the pool: inputs and weights never do).
    var allocated = Set<ObjectIdentifier>()

    /// A tensor of `shape`, reusing a released buffer when one is large enough.
    public func alloc(_ shape: [Int], _ dtype: DType) -> RTensor {
        let bytes = max(1, shape.reduce(1, *) * max(1, (dtype.bitWidth ?? 8) / 8))
        if let i = pool.indices.filter({ pool[$0].capacity >= bytes && pool[$0].capacity <= bytes * 2 + 4096 })
            .min(by: { pool[$0].capacity < pool[$1].capacity }) {
            let b = pool.remove(at: i)
            return RTensor(shape: shape, dtype: dtype, buffer: b)
        }
        arenaBytes += bytes
        peakArenaBytes = max(peakArenaBytes, arenaBytes)
        let b = RBuffer(capacity: bytes)
        allocated.insert(ObjectIdentifier(b))
        return RTensor(shape: shape, dtype: dtype, buffer: b)
    }

    func release(_ b: RBuffer) { if allocated.contains(ObjectIdentifier(b)) { pool.append(b) } }

    /// Scratch of at least `floats` floats, kept between calls.
    public func scratchFloats(_ floats: Int) -> UnsafeMutablePointer<Float> {
        if scratch.capacity < floats * 4 { scratch = RBuffer(capacity: floats * 4) }
        return scratch.pointer.assumingMemoryBound(to: Float.self)
    }
}

/// A kernel bound to one node at plan time.
public typealias Kernel = (_ inputs: [RTensor?], _ ctx: RunContext) throws -> [RTensor]

/// What a kernel factory may look at when planning: the node, its graph, and
/// constant inputs (already as runtime tensors).
public struct PlanContext {
    public let node: Node
    public let graph: Graph
    public let constants: [RTensor?]
    public func fail(_ reason: String) -> RuntimeError {
        .unsupported(op: node.sourceOp, node: node.name, reason: reason)
    }
}

public typealias KernelFactory = (PlanContext) throws -> Kernel

/// Executes a model's main graph on the CPU.
///
/// Plan: nodes in topological order, a kernel chosen per node; nodes whose
/// inputs are all constants (fp16 DEQUANTIZE of weights, shape arithmetic) run
/// once at plan time; weights are used where they lie (borrowed from the mapped
/// file or parsed message) and only converted when a kernel needs another form;
/// buffers are released after their last reader and reused (first fit).
public final class Executor {
    struct Step {
        var node: Int
        var kernel: Kernel
        var inputs: [ValueID?]
        var outputs: [ValueID]
        var release: [ValueID]
    }

    public let model: Model
    let graph: Graph
    var steps: [Step] = []
    var constants: [ValueID: RTensor] = [:]
    public let threads: Int
    /// Measured seconds per node of the last run (nil for nodes folded at plan time).
    public private(set) var nodeSeconds: [Double?] = []
    public private(set) var peakArenaBytes = 0

    public init(model: Model, threads: Int = 1) throws {
        self.model = model
        self.graph = model.graph
        self.threads = max(1, threads)
        mlk_set_threads(Int32(self.threads))
        try plan()
    }

    public static var supportedOps: [String] { KernelRegistry.table.keys.sorted() }

    func constantTensor(_ v: ValueID) -> RTensor? {
        if let t = constants[v] { return t }
        guard let data = graph.values[v].constant else { return nil }
        let t: RTensor
        switch data.storage {
        case .borrowed(let p, let owner) where p.baseAddress != nil && Int(bitPattern: p.baseAddress!) % 8 == 0:
            t = RTensor(shape: data.shape, dtype: data.dtype, buffer: RBuffer(borrowing: p.baseAddress!, capacity: p.count, owner: owner))
        default:
            let b = RBuffer(capacity: data.byteCount)
            data.withBytes { if let base = $0.baseAddress { b.pointer.copyMemory(from: base, byteCount: $0.count) } }
            t = RTensor(shape: data.shape, dtype: data.dtype, buffer: b)
        }
        constants[v] = t
        return t
    }

    func plan() throws {
        var lastUse: [ValueID: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for case let v? in n.inputs { lastUse[v] = i } }
        for o in graph.outputs { lastUse[o] = Int.max }
        let foldContext = RunContext()
        for (i, node) in graph.nodes.enumerated() {
            guard let factory = KernelRegistry.table[node.op.rawValue] else {
                throw RuntimeError.unsupported(op: node.sourceOp, node: node.name.isEmpty ? "#\(i)" : node.name,
                                               reason: node.op == .opaque ? "custom or unknown op" : "no kernel for this op yet")
            }
            if node.fusedActivation == .signBit || node.fusedActivation == .tanh && node.op != .conv {
                throw RuntimeError.unsupported(op: node.sourceOp, node: node.name, reason: "fused activation \(node.fusedActivation!.rawValue)")
            }
            let consts = node.inputs.map { $0.flatMap { constantTensor($0) } }
            let kernel = try factory(PlanContext(node: node, graph: graph, constants: consts))
            let allConstant = zip(node.inputs, consts).allSatisfy { $0.0 == nil || $0.1 != nil }
            if allConstant && !node.inputs.isEmpty || node.op.rawValue == "Constant" {
                // Fold once now.
                let outs = try kernel(consts, foldContext)
                for (k, o) in node.outputs.enumerated() where k < outs.count { constants[o] = outs[k] }
                continue
            }
            let release = node.inputs.compactMap { $0 }.filter { lastUse[$0] == i && graph.values[$0].constant == nil && constants[$0] == nil }
            steps.append(Step(node: i, kernel: kernel, inputs: node.inputs, outputs: node.outputs, release: Array(Set(release))))
        }
        nodeSeconds = Array(repeating: nil, count: graph.nodes.count)
    }

    /// Runs the graph. `inputs` by graph-input name; every non-constant input is required.
    public func run(_ inputs: [String: RTensor], profile: Bool = false) throws -> [String: RTensor] {
        mlk_set_threads(Int32(threads))
        var values = [RTensor?](repeating: nil, count: graph.values.count)
        for (v, t) in constants { values[v] = t }
        for id in graph.inputs where values[id] == nil {
            let name = graph.values[id].name
            guard let t = inputs[name] else { throw RuntimeError.input("missing input '\(name)'") }
            values[id] = t
        }
        let ctx = RunContext()
        // Values alive per buffer: views (Reshape, Identity, in-place ops) share buffers.
        var refs: [ObjectIdentifier: Int] = [:]
        for step in steps {
            let ins = step.inputs.map { $0.flatMap { values[$0] } }
            let t0 = profile ? DispatchTime.now().uptimeNanoseconds : 0
            let outs = try step.kernel(ins, ctx)
            if profile { nodeSeconds[step.node] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            for (k, o) in step.outputs.enumerated() where k < outs.count {
                values[o] = outs[k]
                refs[ObjectIdentifier(outs[k].buffer), default: 0] += 1
            }
            for v in step.release {
                if let b = values[v]?.buffer {
                    let id = ObjectIdentifier(b)
                    refs[id, default: 1] -= 1
                    if refs[id]! <= 0 { refs[id] = nil; ctx.release(b) }
                }
                values[v] = nil
            }
        }
        peakArenaBytes = ctx.peakArenaBytes
        var out: [String: RTensor] = [:]
        for o in graph.outputs {
            guard let t = values[o] else { throw RuntimeError.input("output '\(graph.values[o].name)' was not computed") }
            out[graph.values[o].name] = t
        }
        return out
    }
}
