import Foundation
import ModelIR

/// The memory a plan may take, checked before anything runs: a hostile or mistaken shape (a
/// corrupted file asking for a [1, 16, 16, 7471160] tensor) stops with the tensor named instead of
/// failing an allocation halfway through a run.
public enum MemoryBudget {
    /// The default budget: the machine's physical memory, or the process's address-space limit
    /// (`ulimit -v`) where that is lower.
    public static var machine: Int {
        var budget = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            budget = min(budget, Int(clamping: limit.rlim_cur))
        }
        return budget
    }

    /// Parses a size such as 512M, 8G, 1.5GB or a plain number of bytes.
    public static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let k = 1024.0
        let units: [(String, Double)] = [("TB", k * k * k * k), ("GB", k * k * k), ("MB", k * k), ("KB", k),
                                         ("T", k * k * k * k), ("G", k * k * k), ("M", k * k), ("K", k), ("B", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count)), v > 0, v * scale < 9e18 else { return nil }
            return Int(v * scale)
        }
        guard let v = Int(t), v > 0 else { return nil }
        return v
    }

    static func describe(_ bytes: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(bytes), i = 0
        while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(bytes) B" : String(format: "%.1f %@", v, units[i])
    }
}

extension Executor {
    /// Bytes of a value as shape inference gave it, a symbol (`batch`) counted as 1 so that the
    /// figure is a lower bound whatever the inputs; nil when a dimension is unknown (its size is
    /// then checked when it is allocated).
    func staticBytes(_ v: ValueID) -> Int? {
        guard v < graph.values.count, let dims = graph.values[v].type.shape.dims else { return nil }
        var bytes = max(1, (graph.values[v].type.dtype.bitWidth ?? 8) / 8)
        for d in dims {
            if case .symbol = d { continue }
            guard let n = d.value, n >= 0 else { return nil }
            let (r, o) = bytes.multipliedReportingOverflow(by: n)
            if o { return Int.max }
            bytes = r
        }
        return bytes
    }

    /// Walks the steps in order as the run loop will, each output taking its bytes and each value
    /// giving them back after its last reader, and refuses the plan when the weights plus the live
    /// activations at any point exceed `budget`: the message names the largest tensor then alive.
    func checkMemory(budget: Int) throws {
        var live: [ValueID: Int] = [:]
        var total = kernelWeightBytes
        for v in graph.inputs { if let b = staticBytes(v) { live[v] = b; total += b } }
        for step in steps {
            for o in step.outputs where live[o] == nil {
                guard let b = staticBytes(o) else { continue }
                live[o] = b
                let (sum, overflow) = total.addingReportingOverflow(b)
                total = overflow ? Int.max : sum
            }
            if total > budget {
                var largest = ""
                if let big = live.max(by: { $0.value < $1.value }) {
                    let value = graph.values[big.key]
                    largest = "; the largest tensor alive is '\(value.name)' \(value.type) (\(MemoryBudget.describe(big.value)))"
                }
                throw RuntimeError.invalid(node: graph.nodes[step.node].label, reason: "the plan needs \(MemoryBudget.describe(total)) at this step "
                    + "(weights \(MemoryBudget.describe(kernelWeightBytes))), more than the memory budget of \(MemoryBudget.describe(budget))"
                    + largest + ". A shape in the file may be wrong; --max-memory sets the budget")
            }
            for v in step.release { if let b = live.removeValue(forKey: v) { total -= b } }
        }
    }
}
