import CKernels
import Foundation
import ModelIR

/// A kernel bound to one node at plan time.
public typealias Kernel = (_ inputs: [RTensor?], _ ctx: RunContext) throws -> [RTensor]

/// What a kernel factory may look at when planning: the node, its graph, and
/// constant inputs (already as runtime tensors).
public struct PlanContext {
    public let node: Node
    public let graph: Graph
    public let constants: [RTensor?]
    /// An activation the planner fused into this node (kind as in mlk_activate, with clip bounds).
    var activation: (kind: Int32, lo: Float, hi: Float)? = nil
    /// The planner keeps this Conv's input, or its output and residual, channel-blocked
    /// ([C/16][H][W][16] per image; see Executor.blockedValues).
    public var blockedInput = false
    public var blockedOutput = false
    /// The planner keeps this integer convolution's 8-bit input, or its output, channels-last
    /// ([N][H][W][C]; see Executor.channelsLastValues).
    public var channelsLastInput = false
    public var channelsLastOutput = false
    /// Input slots holding a constant the planner made (a folded DEQUANTIZE of fp16 weights) that
    /// only this node reads: a kernel that packs its own copy lets the planner free it.
    public var madeAtPlanTime: Set<Int> = []
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
///
/// ```swift
/// let model = try ModelImporter.load("mobilenet_v2.onnx")
/// let exec = try Executor(model: model, threads: 2)          // plans; refuses what it cannot run
/// let x = RTensor.make([Float](repeating: 0, count: 3 * 224 * 224), shape: [1, 3, 224, 224])
/// let outputs = try exec.run(["input": x])                   // by graph output name
/// print(outputs["logits"]!.shape, exec.kernelSteps.count)
/// ```
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
    public internal(set) var fusedNodes: [Int: String] = [:]
    /// The fusion plan the executor applied.
    public internal(set) var fusion = FusionPlan()

    /// The kernels a run executes, in order, each with the nodes fused into it (nodes folded at
    /// plan time and views of fused nodes' outputs left out): what `analyze` reports as kernels.
    public var kernelSteps: [KernelStep] {
        fusion.kernelSteps(steps.map(\.node).filter { fusedNodes[$0] == nil })
    }
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

    /// Nodes computing on quantized tensors (int8/uint8 values with a scale and zero point), other
    /// than the ones that convert or only move bytes. (Only TFLite's importer gives values
    /// quantization parameters; ONNX spells quantization out in QuantizeLinear / DequantizeLinear.)
    func needsQuantizedWrapper(_ node: Node) -> Bool {
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
        let channelsLast = channelsLastValues(stepInputs: stepInputs, isStep: { i in
            !(graph.nodes[i].outputs.count == 1 && alias[graph.nodes[i].outputs[0]] != nil) }, outputs: outputSet)
        let foldContext = RunContext()
        // Nodes computed from constants alone (mediapipe's DEQUANTIZE of every fp16 weight, shape
        // arithmetic) are folded when their first reader is planned, not where they stand: TFLite
        // files list all the DEQUANTIZEs first, and folded in order all widened weights were alive
        // at once, so a convolution could not pack its weight without holding one more copy.
        var producer: [ValueID: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for o in n.outputs { producer[o] = i } }
        var foldable = [Bool](repeating: false, count: graph.nodes.count)
        var folded = [Bool](repeating: false, count: graph.nodes.count)
        for (i, node) in graph.nodes.enumerated() where fusedNodes[i] == nil && (!node.inputs.isEmpty || node.op.rawValue == "Constant") {
            foldable[i] = stepInputs(i).allSatisfy { v in
                guard let v else { return true }
                if v >= graph.values.count || graph.values[v].constant != nil { return true }
                return producer[v].map { foldable[$0] } ?? false
            }
        }
        func foldInputs(of i: Int) throws {
            for case let v? in stepInputs(i) where v < graph.values.count {
                if let j = producer[v], foldable[j], !folded[j] {
                    folded[j] = true
                    try foldInputs(of: j)
                    try planNode(j)
                }
            }
        }
        func planNode(_ i: Int) throws {
            let node = plannedNode(i)
            if fusedNodes[i] != nil {
                if node.outputs.count == 1 && alias[node.outputs[0]] != nil { return }
                // A view of its (already transformed) input.
                let viewOf = Array(stepInputs(i).prefix(1))
                let release = viewOf.compactMap { $0 }.filter { lastUse[$0] == i && graph.values[$0].constant == nil }
                steps.append(Step(node: i, kernel: { ins, _ in [ins[0]!] }, inputs: viewOf, outputs: node.outputs, release: release))
                return
            }
            guard let factory = fusion.unaryChain[i].flatMap({ KernelRegistry.table[$0.op] }) ?? KernelRegistry.table[node.op.rawValue] else {
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
            pc.madeAtPlanTime = Set(inputs.indices.filter { k in
                guard let v = inputs[k], v < graph.values.count else { return false }
                return graph.values[v].constant == nil && constants[v] != nil && consumerCount[v] == 1 && !outputSet.contains(v)
            })
            if node.op == .conv || node.op.rawValue == "GlobalAveragePool" || node.op.rawValue == "MaxPool" {
                pc.blockedInput = inputs.first.flatMap { $0 }.map(blocked.contains) ?? false
                pc.blockedOutput = node.outputs.first.map(blocked.contains) ?? false
            }
            if node.op.rawValue == "QLinearConv" {
                pc.channelsLastInput = inputs.first.flatMap { $0 }.map(channelsLast.contains) ?? false
                pc.channelsLastOutput = node.outputs.first.map(channelsLast.contains) ?? false
            }
            var kernel: Kernel
            let quantized = needsQuantizedWrapper(node)
            let integerConv = quantized ? IntegerConv.make(pc)
                : node.op.rawValue == "QLinearConv" ? IntegerConv.qlinear(pc)
                : node.op.rawValue == "QGemm" ? IntegerConv.qgemm(pc) : nil
            if let integer = integerConv {
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
                return
            }
            let release = inputs.compactMap { $0 }.filter { $0 < graph.values.count && lastUse[$0] == i && graph.values[$0].constant == nil && constants[$0] == nil }
            steps.append(Step(node: i, kernel: kernel, inputs: inputs, outputs: node.outputs, release: Array(Set(release))))
        }
        for i in graph.nodes.indices where !foldable[i] {
            try foldInputs(of: i)
            try planNode(i)
        }
        // Folds no step reads (graph outputs, dead nodes): in order, as before.
        for i in graph.nodes.indices where foldable[i] && !folded[i] {
            folded[i] = true
            try planNode(i)
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
    /// `recycleOutputs`: the outputs' buffers stay in the executor's pool, and the next run
    /// writes over them (the caller reads them before then, or not at all). A benchmark's runs
    /// then allocate nothing: outputs handed to the caller are allocated afresh every run, which
    /// a calibration network with 18 outputs pays in 18 kernels and a model with one in one.
    public func run(_ inputs: [String: RTensor], profile: Bool = false, recycleOutputs: Bool = false) throws -> [String: RTensor] {
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
            if !recycleOutputs { ctx.handOff(t.buffer) }
        }
        ctx.reclaim()
        if owner { runContext = ctx }
        return out
    }
}
