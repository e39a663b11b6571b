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
