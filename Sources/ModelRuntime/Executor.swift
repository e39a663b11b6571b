import CKernels
import Foundation
import ModelIR

/// What a kernel gets at run time: an allocator backed by the plan's buffer
/// pool, and scratch space (im2col).
public final class RunContext {
    var pool: [RBuffer] = []
    /// The capacities of `pool`'s buffers, in the same order. The search for a buffer reads these
    /// few lines rather than each buffer object, whose lines a run's kernels have long evicted.
    var poolCapacity: [Int] = []
    var scratch = RBuffer(capacity: 1 << 16)
    public private(set) var arenaBytes = 1 << 16
    public private(set) var peakArenaBytes = 0
    /// Buffers this context allocated and still owns (only these go back to the pool: inputs,
    /// weights and outputs handed to the caller never do). Held strongly, so that no other
    /// buffer can take the identifier of one while it is listed; each such buffer names this
    /// context (`RBuffer.context`), which the run loop tests instead of looking it up here.
    var allocated: [ObjectIdentifier: RBuffer] = [:]

    /// Largest single tensor a run may allocate (hostile shapes stop with an error instead).
    public static let maxTensorBytes = 8 << 30

    /// A tensor of `shape`, reusing a released buffer when one is large enough.
    public func alloc(_ shape: [Int], _ dtype: DType) throws -> RTensor {
        var elements = 1
        for d in shape {
            let (r, o) = elements.multipliedReportingOverflow(by: max(d, 0))
            guard d >= 0, !o else { throw RuntimeError.input("tensor shape \(shape) is negative or too large") }
            elements = r
        }
        let (total, o) = elements.multipliedReportingOverflow(by: max(1, (dtype.bitWidth ?? 8) / 8))
        guard !o, total <= RunContext.maxTensorBytes else { throw RuntimeError.input("tensor shape \(shape) needs more than \(RunContext.maxTensorBytes >> 30) GiB") }
        let bytes = max(1, total)
        // The smallest free buffer that fits, and of those the one released last: its lines are
        // the likeliest to be in cache still, so the writes that follow do not go out to DRAM.
        var best = -1
        var i = poolCapacity.count - 1
        while i >= 0 {
            let c = poolCapacity[i]
            if c >= bytes && c <= bytes * 2 + 4096 && (best < 0 || c < poolCapacity[best]) { best = i }
            i -= 1
        }
        if best >= 0 {
            poolCapacity.remove(at: best)
            return RTensor(shape: shape, dtype: dtype, buffer: pool.remove(at: best))
        }
        let b = try RBuffer(allocating: bytes)
        b.context = ObjectIdentifier(self)
        arenaBytes += b.capacity
        peakArenaBytes = max(peakArenaBytes, arenaBytes)
        allocated[ObjectIdentifier(b)] = b
        return RTensor(shape: shape, dtype: dtype, buffer: b)
    }

    func release(_ b: RBuffer) {
        if b.context == ObjectIdentifier(self) {
            pool.append(b)
            poolCapacity.append(b.capacity)
        }
    }

    /// Buffers of the running step's inputs that no later step reads and no other value shares:
    /// a kernel may write its output over one of them (`reuse`). Set by the executor per step
    /// (rarely more than one: a short array, searched by identity).
    var donated: [RBuffer] = []

    /// `t` itself, to be overwritten as this step's output, when the executor has donated its
    /// buffer (then only once); nil otherwise.
    public func reuse(_ t: RTensor) -> RTensor? {
        guard let i = donated.firstIndex(where: { $0 === t.buffer }) else { return nil }
        donated.remove(at: i)
        reusedInputs += 1
        return t
    }

    /// How many outputs this context's runs wrote over an input (`reuse`).
    public private(set) var reusedInputs = 0

    /// Gives `b` (a run's output) to the caller: the context forgets it and no longer counts it.
    func handOff(_ b: RBuffer) {
        if allocated.removeValue(forKey: ObjectIdentifier(b)) != nil {
            arenaBytes -= b.capacity
            b.context = nil
        }
    }

    /// After a run, once its outputs are handed off: every buffer the context still owns is free,
    /// including temporaries a kernel allocated and did not release (or the next run would
    /// allocate them again, and the pool would grow run after run).
    func reclaim() {
        pool = Array(allocated.values)
        poolCapacity = pool.map(\.capacity)
        for b in pool { b.liveValues = 0 }
    }

    /// Scratch of at least `floats` floats, kept between calls. It counts toward the arena: the
    /// largest scratch a run needed is part of the memory the run takes.
    public func scratchFloats(_ floats: Int) throws -> UnsafeMutablePointer<Float> {
        if scratch.capacity < floats * 4 {
            let larger = try RBuffer(allocating: floats * 4)
            arenaBytes += floats * 4 - scratch.capacity
            peakArenaBytes = max(peakArenaBytes, arenaBytes)
            scratch = larger
        }
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
    /// An activation the planner fused into this node (kind as in mlk_activate, with clip bounds).
    public var activation: (kind: Int32, lo: Float, hi: Float)? = nil
    /// The planner keeps this Conv's input, or its output and residual, channel-blocked
    /// ([C/16][H][W][16] per image; see Executor.blockedValues).
    public var blockedInput = false
    public var blockedOutput = false
    /// What the factory did with the constants, for the planner to account for.
    public let packing = PlanPacking()
    public func fail(_ reason: String) -> RuntimeError {
        .unsupported(op: node.sourceOp, node: node.name, reason: reason)
    }
}

/// Set by a kernel factory that packed weights of its own at plan time: the input slots its kernel
/// no longer reads at run time (the planner passes nil there, and a weight read by no other node
/// gives its resident pages back) and the bytes of the packed copies (counted as kernel weights).
public final class PlanPacking {
    public var unreadSlots: [Int] = []
    public var bytes = 0
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
        /// Of `release`, the values read through exactly one input slot (found once, at plan time):
        /// their buffers may be donated to the kernel (see RunContext.reuse) when nothing else
        /// shares them at run time.
        var donatable: [ValueID]

        init(node: Int, kernel: @escaping Kernel, inputs: [ValueID?], outputs: [ValueID], release: [ValueID]) {
            self.node = node
            self.kernel = kernel
            self.inputs = inputs
            self.outputs = outputs
            self.release = release
            donatable = release.filter { v in inputs.lazy.filter { $0 == v }.count == 1 }
        }
    }

    public let model: Model
    let graph: Graph
    var steps: [Step] = []
    var constants: [ValueID: RTensor] = [:]
    /// Constants the planner made (folded BatchNorm weights), with ids after the graph's values.
    var synthetic: [RTensor] = []
    /// Every value a run starts with: the constants and synthetic ones in place, the rest nil
    /// (made once, so that a run copies an array instead of walking a dictionary).
    var planValues: [RTensor?] = []
    /// Nodes whose work another node's kernel now does (folded BatchNorm, fused activations).
    public private(set) var fusedNodes: [Int: String] = [:]
    public let threads: Int
    /// Measured seconds per node of the last run (nil for nodes folded at plan time).
    public private(set) var nodeSeconds: [Double?] = []
    public private(set) var peakArenaBytes = 0
    /// Outputs of the last run written over an input read for the last time (a fused residual).
    public private(set) var lastRunReusedInputs = 0
    /// Bytes of the constants the kernels read (weights as they use them: fp16 widened to fp32,
    /// BatchNorm folded into depthwise weights, ...), counted once each.
    public private(set) var kernelWeightBytes = 0
    /// Weights the integer kernels packed into their own copies (counted in kernelWeightBytes).
    var packedWeightBytes = 0
    /// Values the plan keeps channel-blocked between convolutions (see blockedValues).
    public private(set) var blockedValueCount = 0
    /// Nodes that run on the integer (int8) kernels; the other quantized nodes compute in float.
    public private(set) var integerNodes = 0
    /// Nodes on quantized tensors that compute in float (dequantize, float kernel, requantize):
    /// within a step of an integer kernel, not always equal to it.
    public private(set) var floatQuantizedNodes = 0
    /// The buffer pool, kept from one run to the next: a fresh allocation of every activation on
    /// each run costs a page fault per 4 KB touched (about 1 ms on MobileNetV2's early layers).
    var runContext: RunContext?
    let runLock = NSLock()

    /// Keep every value folded at plan time (for `foldedValues`), not only those a step reads.
    let keepsFoldedValues: Bool

    /// `keepFoldedValues`: keep every value computed from constants at plan time, also those a
    /// later fold consumed (a converter stores them); a runner keeps only what the steps read.
    /// `memoryBudget`: the bytes the weights and live activations may take at once (default:
    /// `MemoryBudget.machine`); a plan that needs more is refused before it runs.
    public init(model: Model, threads: Int = 1, keepFoldedValues: Bool = false, memoryBudget: Int? = nil) throws {
        self.model = model
        self.graph = model.graph
        self.threads = max(1, threads)
        self.keepsFoldedValues = keepFoldedValues
        mlk_set_threads(Int32(self.threads))
        try plan()
        try checkMemory(budget: memoryBudget ?? MemoryBudget.machine)
    }

    public static var supportedOps: [String] { KernelRegistry.table.keys.sorted() }

    /// True when this CPU can run the AVX-512 kernels.
    public static var avx512Available: Bool { mlk_avx512_available() != 0 }

    /// Chooses between the AVX-512 kernels (where the CPU has them; the default, unless the
    /// environment sets MODELLENS_KERNELS=blas) and the portable ones (OpenBLAS, scalar loops),
    /// for every executor in the process.
    public static func preferAVX512(_ on: Bool) { mlk_prefer_avx512(on ? 1 : 0) }

    /// Values the planner computed from constants alone (shape arithmetic, widened fp16
    /// weights), as owned tensors: what a converter can store as constants instead of ops.
    /// Complete only for an executor made with `keepFoldedValues`.
    public var foldedValues: [ValueID: TensorData] {
        var out: [ValueID: TensorData] = [:]
        for (v, t) in constants where v < graph.values.count && graph.values[v].constant == nil {
            let bytes = Array(UnsafeRawBufferPointer(start: t.raw, count: t.byteCount))
            out[v] = TensorData(dtype: t.dtype, shape: t.shape, storage: .owned(bytes))
        }
        return out
    }

    func constantTensor(_ v: ValueID) -> RTensor? {
        if let t = constants[v] { return t }
        guard let data = graph.values[v].constant else { return nil }
        let t: RTensor
        switch data.storage {
        // Borrowed where the element type's natural alignment holds (fp16 weights of mediapipe's
        // files lie at 2-byte offsets: a copy of them would stay beside their fp32 widening).
        case .borrowed(let p, let owner) where p.baseAddress != nil && (owner as? FileBackedStorage)?.readInPlace != false &&
                                               Int(bitPattern: p.baseAddress!) % min(8, max(1, (data.dtype.bitWidth ?? 8) / 8)) == 0:
            t = RTensor(shape: data.shape, dtype: data.dtype, buffer: RBuffer(borrowing: p.baseAddress!, capacity: p.count, owner: owner))
        case .borrowed(let p, let owner) where owner is FileBackedStorage && p.baseAddress != nil:
            // Bytes in a mapped file at an odd offset, or not to be read in place (ONNX weights): copied,
            // and read through the copy from now on. The file's pages go back slice by slice as they
            // are copied, so that the two are never both resident (VGG16's 411 MB classifier weight
            // would be twice that).
            let b = RBuffer(capacity: p.count)
            let slice = 16 << 20
            for start in stride(from: 0, to: p.count, by: slice) {
                let part = UnsafeRawBufferPointer(rebasing: p[start..<min(p.count, start + slice)])
                (b.pointer + start).copyMemory(from: part.baseAddress!, byteCount: part.count)
                releasePages(of: part)
            }
            t = RTensor(shape: data.shape, dtype: data.dtype, buffer: b)
        default:
            let b = RBuffer(capacity: data.byteCount)
            data.copyBytes(to: b.pointer)
            t = RTensor(shape: data.shape, dtype: data.dtype, buffer: b)
        }
        constants[v] = t
        return t
    }

    func addSynthetic(_ t: RTensor) -> ValueID {
        synthetic.append(t)
        return graph.values.count + synthetic.count - 1
    }

    /// Conv -> BatchNormalization (inference, constant parameters) -> Relu / Clip: the BatchNorm
    /// becomes a per-channel scale and shift the conv kernel applies as it stores (folded into a
    /// copy of the weights for depthwise convs), the activation runs inside the conv kernel, and the
    /// absorbed nodes become views of the conv's output. The conv's inputs are then
    /// [x, w, shift, residual, scale] (nil where absent).
    func fusions() -> (inputs: [Int: [ValueID?]], activation: [Int: (Int32, Float, Float)]) {
        var consumers: [ValueID: [Int]] = [:]
        for (i, n) in graph.nodes.enumerated() { for case let v? in n.inputs { consumers[v, default: []].append(i) } }
        let outputs = Set(graph.outputs)
        func single(_ v: ValueID) -> Int? {
            guard !outputs.contains(v), let c = consumers[v], c.count == 1 else { return nil }
            return c[0]
        }
        var newInputs: [Int: [ValueID?]] = [:]
        var activation: [Int: (Int32, Float, Float)] = [:]
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv && conv.fusedActivation == nil {
            guard conv.inputs.count >= 2, let wID = conv.inputs[1], let w = constantTensor(wID), w.dtype == .float32, w.shape.count == 4,
                  let out = conv.outputs.first else { continue }
            var tail = out
            if let j = single(out), graph.nodes[j].op == .batchNormalization, graph.nodes[j].outputs.count == 1,
               (graph.nodes[j].int("training_mode") ?? 0) == 0, graph.nodes[j].inputs.count == 5,
               let params = Optional(graph.nodes[j].inputs.dropFirst().compactMap { $0.flatMap { constantTensor($0) } }), params.count == 4,
               params.allSatisfy({ $0.dtype == .float32 }) {
                let layout = conv.kernelLayout ?? .oihw
                let outC = layout == .ihwo1 ? w.shape[3] : w.shape[0]
                guard params.allSatisfy({ $0.count == outC }) else { continue }
                let eps = Float(graph.nodes[j].float("epsilon") ?? 1e-5)
                let (s, b, m, v) = (params[0].toFloats(), params[1].toFloats(), params[2].toFloats(), params[3].toFloats())
                let a = (0..<outC).map { s[$0] / (v[$0] + eps).squareRoot() }
                let oldBias = conv.inputs.count > 2 ? conv.inputs[2].flatMap { constantTensor($0) }?.toFloats() : nil
                let nb = RTensor.make((0..<outC).map { ((oldBias?[$0] ?? 0) - m[$0]) * a[$0] + b[$0] }, shape: [outC])
                if layout == .oihw && (conv.int("group") ?? 1) == 1 && conv.dataLayout != .nhwc {
                    // Standard convolutions keep their weights as they are (no second copy): the kernel
                    // scales each output channel as it stores, y = a * (W x) + shift.
                    newInputs[i] = [conv.inputs[0], wID, addSynthetic(nb), nil, addSynthetic(RTensor.make(a, shape: [outC]))]
                } else {
                    // Depthwise (and TFLite-layout) weights are small: folded into a copy.
                    let nw = RTensor.allocate(w.shape, .float32)
                    let per = w.count / outC
                    for k in 0..<w.count {
                        let o = layout == .ihwo1 ? k % outC : k / per
                        nw.floats[k] = w.floats[k] * a[o]
                    }
                    newInputs[i] = [conv.inputs[0], addSynthetic(nw), addSynthetic(nb)]
                }
                fusedNodes[j] = "folded into \(conv.name)"
                tail = graph.nodes[j].outputs[0]
            }
            if let k = single(tail) {
                let act = graph.nodes[k]
                if let fused = activationKind(act), act.inputs.first == tail {
                    activation[i] = fused
                    fusedNodes[k] = "fused into \(conv.name)"
                }
            }
        }
        // BatchNormalization that is not folded into a conv (DenseNet's, after a Concat) -> Relu / Clip.
        for (i, bn) in graph.nodes.enumerated() where bn.op == .batchNormalization && fusedNodes[i] == nil && bn.outputs.count == 1 {
            guard let out = bn.outputs.first, graph.values[out].type.dtype == .float32,
                  let k = single(out), graph.nodes[k].inputs.first == out, fusedNodes[k] == nil,
                  let fused = activationKind(graph.nodes[k]) else { continue }
            activation[i] = fused
            fusedNodes[k] = "fused into \(bn.name)"
        }
        // Add -> Relu / Clip (residual blocks): the activation runs inside the Add kernel.
        for (i, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && add.inputs.count == 2 {
            guard let out = add.outputs.first, graph.values[out].type.dtype == .float32, graph.values[out].quantization == nil,
                  let k = single(out), graph.nodes[k].inputs.first == out,
                  let fused = activationKind(graph.nodes[k]) else { continue }
            activation[i] = fused
            fusedNodes[k] = "fused into \(add.name)"
        }
        // Conv (-> BatchNorm) -> Add: the other operand becomes the conv's residual input, added as
        // the conv stores its results (then the Add's activation). The conv must be the later of the
        // two producers, so that the residual is ready when it runs.
        var convOfTail: [ValueID: Int] = [:]
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv {
            guard let out = conv.outputs.first else { continue }
            if let j = single(out), fusedNodes[j] != nil, graph.nodes[j].op == .batchNormalization, let bnOut = graph.nodes[j].outputs.first {
                convOfTail[bnOut] = i
            } else {
                convOfTail[out] = i
            }
        }
        for (a, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && add.inputs.count == 2 && fusedNodes[a] == nil {
            guard let out = add.outputs.first, graph.values[out].type.dtype == .float32, graph.values[out].quantization == nil,
                  let u = add.inputs[0], let v = add.inputs[1], u != v else { continue }
            let candidates = [(u, v), (v, u)].compactMap { pair -> (Int, ValueID, ValueID)? in
                guard let c = convOfTail[pair.0], single(pair.0) == a else { return nil }
                return (c, pair.0, pair.1)
            }
            // The other operand must exist before the conv runs: a graph input or constant, or produced earlier.
            guard let (c, tail, other) = candidates.filter({ cand in
                guard let producer = graph.values[cand.2].producer else { return true }
                return producer < cand.0
            }).max(by: { $0.0 < $1.0 }) else { continue }
            let conv = graph.nodes[c]
            guard activation[c] == nil, conv.fusedActivation == nil, conv.dataLayout != .nhwc, (conv.kernelLayout ?? .oihw) == .oihw,
                  (conv.int("group") ?? 1) == 1, conv.inputs.count >= 2 else { continue }
            var ins = newInputs[c] ?? conv.inputs
            while ins.count < 4 { ins.append(nil) }
            ins[3] = other
            newInputs[c] = ins
            newInputs[a] = [tail]
            if let act = activation[a] { activation[c] = act; activation[a] = nil }
            fusedNodes[a] = "fused into \(conv.name)"
        }
        return (newInputs, activation)
    }

    /// Relu, Relu6 or Clip with constant bounds, as an mlk_activate kind.
    func activationKind(_ act: Node) -> (Int32, Float, Float)? {
        switch act.op.rawValue {
        case "Relu": return (1, 0, 0)
        case "Relu6": return (2, 0, 0)
        case "Clip":
            let lo = act.inputs.count > 1 ? act.inputs[1].flatMap { constantTensor($0) }.map { $0.element(0) } : act.float("min").map(Float.init)
            let hi = act.inputs.count > 2 ? act.inputs[2].flatMap { constantTensor($0) }.map { $0.element(0) } : act.float("max").map(Float.init)
            // A bound that is given but not constant cannot be fused.
            if act.inputs.count > 1, act.inputs[1] != nil, lo == nil { return nil }
            if act.inputs.count > 2, act.inputs[2] != nil, hi == nil { return nil }
            return (5, lo ?? -.greatestFiniteMagnitude, hi ?? .greatestFiniteMagnitude)
        default: return nil
        }
    }

    /// TFLite nodes computing on quantized tensors (int8/uint8 with scale and zero point), other
    /// than the ones that convert or only move bytes.
    func needsQuantizedWrapper(_ node: Node) -> Bool {
        guard node.domain == "tflite" else { return false }
        let bytesOnly: Set<String> = ["Reshape", "Squeeze", "ExpandDims", "Transpose", "Dequantize", "Quantize", "Identity", "Shape"]
        if bytesOnly.contains(node.op.rawValue) { return false }
        return (node.inputs.compactMap { $0 } + node.outputs).contains { v in
            let val = graph.values[v]
            return Quant.isQuantizedType(val.type.dtype) && (val.quantization ?? val.constant?.quantization) != nil
        }
    }

    /// A constant no step reads where it lies any more: its pages in a mapped file go back to the
    /// system, and the runtime tensor made of it (a copy, or a result folded at plan time) goes,
    /// unless folded values are kept.
    func letGo(_ v: ValueID) {
        graph.values[v].constant?.releaseResidentPages()
        if !keepsFoldedValues || graph.values[v].constant != nil { constants[v] = nil }
    }

    func plan() throws {
        let (fusedInputs, fusedActivations) = fusions()
        var consumerCount: [ValueID: Int] = [:]
        for n in graph.nodes { for case let v? in n.inputs { consumerCount[v, default: 0] += 1 } }
        let outputSet = Set(graph.outputs)
        // A node whose work another node's kernel does (fusedNodes) passes its input on unchanged:
        // its output is another name for that value, and the steps that read it read the value
        // itself (no step of its own: in MobileNetV2 97 of 152 steps were such views). Kept as a
        // step where its output is a graph output (so that the run returns it under its name).
        var alias: [ValueID: ValueID] = [:]
        func resolve(_ v: ValueID?) -> ValueID? {
            guard var v else { return nil }
            while let a = alias[v] { v = a }
            return v
        }
        for (i, node) in graph.nodes.enumerated() where fusedNodes[i] != nil && node.outputs.count == 1 && !outputSet.contains(node.outputs[0]) {
            if let source = resolve((fusedInputs[i] ?? node.inputs).first ?? nil) { alias[node.outputs[0]] = source }
        }
        func stepInputs(_ i: Int) -> [ValueID?] { (fusedInputs[i] ?? graph.nodes[i].inputs).map(resolve) }
        var lastUse: [ValueID: Int] = [:]
        for (i, n) in graph.nodes.enumerated() where !(n.outputs.count == 1 && alias[n.outputs[0]] != nil) {
            for case let v? in stepInputs(i) { lastUse[v] = i }
        }
        for o in graph.outputs { lastUse[o] = Int.max }
        let blocked = blockedValues(stepInputs: stepInputs, isStep: { i in
            !(graph.nodes[i].outputs.count == 1 && alias[graph.nodes[i].outputs[0]] != nil) }, outputs: outputSet)
        blockedValueCount = blocked.count
        let foldContext = RunContext()
        for (i, node) in graph.nodes.enumerated() {
            if fusedNodes[i] != nil {
                if node.outputs.count == 1 && alias[node.outputs[0]] != nil { continue }
                // A view of its (already transformed) input.
                let viewOf = Array(stepInputs(i).prefix(1))
                let release = viewOf.compactMap { $0 }.filter { lastUse[$0] == i && graph.values[$0].constant == nil }
                steps.append(Step(node: i, kernel: { ins, _ in [ins[0]!] }, inputs: viewOf, outputs: node.outputs, release: release))
                continue
            }
            guard let factory = KernelRegistry.table[node.op.rawValue] else {
                throw RuntimeError.unsupported(op: node.sourceOp, node: node.name.isEmpty ? "#\(i)" : node.name,
                                               reason: node.op == .opaque ? "custom or unknown op" : "no kernel for this op yet")
            }
            if node.fusedActivation == .signBit || node.fusedActivation == .tanh && node.op != .conv {
                throw RuntimeError.unsupported(op: node.sourceOp, node: node.name, reason: "fused activation \(node.fusedActivation!.rawValue)")
            }
            var inputs = stepInputs(i)
            let consts = inputs.map { $0.flatMap { $0 >= graph.values.count ? synthetic[$0 - graph.values.count] : constantTensor($0) } }
            var pc = PlanContext(node: node, graph: graph, constants: consts)
            pc.activation = fusedActivations[i]
            if node.op == .conv || node.op.rawValue == "GlobalAveragePool" || node.op.rawValue == "MaxPool" {
                pc.blockedInput = inputs.first.flatMap { $0 }.map(blocked.contains) ?? false
                pc.blockedOutput = node.outputs.first.map(blocked.contains) ?? false
            }
            var kernel: Kernel
            let quantized = needsQuantizedWrapper(node)
            if quantized, let integer = IntegerConv.make(pc) {
                kernel = integer.kernel
                integerNodes += 1
                if !integer.readsWeights {
                    // The kernel packed its own copy: the step reads only the activation, and the
                    // stored weights (read by no other node) give their resident pages back.
                    packedWeightBytes += integer.weightBytes
                    for case let v? in inputs.dropFirst() where v < graph.values.count && consumerCount[v] == 1 {
                        graph.values[v].constant?.releaseResidentPages()
                    }
                    inputs = Array(inputs.prefix(1))
                }
            } else if quantized {
                let wrapped = try quantizedWrapper(pc, factory: factory)
                floatQuantizedNodes += 1
                kernel = quantizedAddKernel(pc, fallback: wrapped) ?? wrapped
            } else {
                kernel = try factory(pc)
                if !pc.packing.unreadSlots.isEmpty {
                    packedWeightBytes += pc.packing.bytes
                    // As for folded nodes: a weight no other node reads gives its pages back, and a
                    // converted copy of it (fp16 widened at plan time) goes.
                    for slot in pc.packing.unreadSlots where slot < inputs.count {
                        if let v = inputs[slot], v < graph.values.count, consumerCount[v] == 1, !outputSet.contains(v) { letGo(v) }
                        inputs[slot] = nil
                    }
                }
            }
            let allConstant = zip(inputs, consts).allSatisfy { $0.0 == nil || $0.1 != nil }
            if allConstant && !node.inputs.isEmpty || node.op.rawValue == "Constant" {
                // Fold once now.
                let outs = try kernel(consts, foldContext)
                for (k, o) in node.outputs.enumerated() where k < outs.count { constants[o] = outs[k] }
                // Values read only by this node are not read again: stored weights (fp16 widened
                // to fp32) give their pages in a mapped file back to the system, and copies of
                // them or earlier folded results (a dequantized weight this node transposes) go.
                for case let v? in inputs where v < graph.values.count && consumerCount[v] == 1 && lastUse[v] == i && !outputSet.contains(v) {
                    letGo(v)
                }
                continue
            }
            let release = inputs.compactMap { $0 }.filter { $0 < graph.values.count && lastUse[$0] == i && graph.values[$0].constant == nil && constants[$0] == nil }
            steps.append(Step(node: i, kernel: kernel, inputs: inputs, outputs: node.outputs, release: Array(Set(release))))
        }
        nodeSeconds = Array(repeating: nil, count: graph.nodes.count)
        planValues = [RTensor?](repeating: nil, count: graph.values.count + synthetic.count)
        for (v, t) in constants { planValues[v] = t }
        for (k, t) in synthetic.enumerated() { planValues[graph.values.count + k] = t }
        var used = Set<ValueID>()
        for step in steps { for case let v? in step.inputs { used.insert(v) } }
        kernelWeightBytes = packedWeightBytes + used.reduce(0) { total, v in
            let t = v >= graph.values.count ? synthetic[v - graph.values.count] : constants[v]
            return total + (t?.byteCount ?? 0)
        }
        releaseUnreadFilePages(used: used)
    }

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
            if node.op == .conv {
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
        var blocked = Set<ValueID>()
        for i in convs.union(pools) {
            guard let out = graph.nodes[i].outputs.first, !outputs.contains(out), let r = readers[out], !r.isEmpty,
                  r.allSatisfy(readsBlocked) else { continue }
            blocked.insert(out)
        }
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

    /// Gives back the pages of the model's mapped files that no step reads where they lie: the
    /// format's metadata, weights that were converted or packed, tensors too small to own a page
    /// (importing and planning touched them all). A page touched again later is read back from
    /// the file.
    func releaseUnreadFilePages(used: Set<ValueID>) {
        var files: [ObjectIdentifier: FileBackedStorage] = [:]
        for v in graph.values {
            if case .borrowed(_, let owner as FileBackedStorage)? = v.constant?.storage { files[ObjectIdentifier(owner)] = owner }
        }
        guard !files.isEmpty else { return }
        var keep: [Range<Int>] = []
        for v in used {
            guard let t = v >= graph.values.count ? synthetic[v - graph.values.count] : constants[v], !t.buffer.owned else { continue }
            let start = Int(bitPattern: t.buffer.pointer)
            keep.append(start..<start + t.buffer.capacity)
        }
        for file in files.values { releasePages(of: file.mappedBytes, except: keep) }
    }

    /// Runs the graph. `inputs` by graph-input name; every non-constant input is required.
    public func run(_ inputs: [String: RTensor], profile: Bool = false) throws -> [String: RTensor] {
        mlk_set_threads(Int32(threads))
        var values = planValues
        for id in graph.inputs where values[id] == nil {
            let name = graph.values[id].name
            guard let t = inputs[name] else { throw RuntimeError.input("missing input '\(name)'") }
            values[id] = t
        }
        // Concurrent runs of one executor: the first keeps the pool, the others get their own.
        let owner = runLock.try()
        let ctx = owner ? (runContext ?? RunContext()) : RunContext()
        defer { if owner { runLock.unlock() } }
        if owner { runContext = nil }   // put back only after a run that completed
        let reusedBefore = ctx.reusedInputs
        // Values alive per buffer (`RBuffer.liveValues`, counted for the buffers this context owns:
        // views such as Reshape, Identity and in-place ops share buffers). No dictionary, no
        // array allocated per step: after each kernel the caches hold its data, not the loop's.
        let ctxID = ObjectIdentifier(ctx)
        var ins: [RTensor?] = []
        ins.reserveCapacity(8)
        for step in steps {
            ins.removeAll(keepingCapacity: true)
            for v in step.inputs { ins.append(v.flatMap { values[$0] }) }
            // Inputs read for the last time here, by one slot, whose buffer the context owns and no
            // other live value shares: the kernel may take one over for its output.
            for v in step.donatable {
                if let b = values[v]?.buffer, b.context == ctxID, b.liveValues == 1 { ctx.donated.append(b) }
            }
            let t0 = profile ? DispatchTime.now().uptimeNanoseconds : 0
            let outs = try step.kernel(ins, ctx)
            if !ctx.donated.isEmpty { ctx.donated.removeAll(keepingCapacity: true) }
            if profile { nodeSeconds[step.node] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            for (k, o) in step.outputs.enumerated() where k < outs.count {
                values[o] = outs[k]
                let b = outs[k].buffer
                if b.context == ctxID { b.liveValues += 1 }
            }
            for v in step.release {
                if let b = values[v]?.buffer, b.context == ctxID {
                    b.liveValues -= 1
                    if b.liveValues <= 0 { b.liveValues = 0; ctx.release(b) }
                }
                values[v] = nil
            }
        }
        peakArenaBytes = ctx.peakArenaBytes
        lastRunReusedInputs = ctx.reusedInputs - reusedBefore
        var out: [String: RTensor] = [:]
        for o in graph.outputs {
            guard let t = values[o] else { throw RuntimeError.input("output '\(graph.values[o].name)' was not computed") }
            out[graph.values[o].name] = t
            ctx.handOff(t.buffer)
        }
        ctx.reclaim()
        if owner { runContext = ctx }
        return out
    }
}
