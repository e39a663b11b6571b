import Foundation

/// A device described as data: peak arithmetic rate per element type, DRAM
/// bandwidth, caches and per-kernel launch overhead, each with its source.
/// Built-in profiles ship as JSON resources (Profiles/*.json); a user can pass
/// their own file with the same fields.
public struct HardwareProfile: Codable, Sendable {
    public struct Cache: Codable, Sendable {
        public var level: String
        public var bytes: Int
        public var perCore: Bool?
        public var cores: Int?
    }

    public var id: String
    public var name: String
    public var kind: String
    /// FLOP/s by dtype name (`float32`, `float16`, `int8`, ...).
    public var peakFlopsPerSecond: [String: Double]
    public var dramBytesPerSecond: Double
    public var caches: [Cache]
    public var launchOverheadSeconds: Double
    /// Where each figure comes from.
    public var sources: [String: String]
    /// Cost models fitted by `modellens calibrate`, by thread count ("1", "2", ...) and kernel
    /// class (`KernelFeatures.kernelClass`). Absent: the prediction is the roofline.
    public var kernels: [String: [String: KernelCostModel]]?
    /// The working set a stream of reads and writes still runs at cache speed on this host, in
    /// bytes (measured: beyond it a triad falls to memory's bandwidth). On a shared machine far
    /// less than the last-level cache's size: on a 2-vCPU slice of a Xeon with a 260 MB L3, 48 MB.
    /// Absent in profiles that did not measure it.
    public var streamingCacheBytes: Int?
    /// Bytes per second at which the executor's batch-1 products read weights that stream from
    /// memory on every run, by thread count ("1", "2", ...; measured with 256 MB of them). A read
    /// stream: faster than the triad behind `dramBytesPerSecond`, whose writes cost a read for
    /// ownership too (AlexNet's classifier read 14.8 GB/s where the triad measured 13). Absent in
    /// older profiles.
    public var weightStreamBytesPerSecond: [String: Double]?

    /// The fitted kernel models for a thread count, if the profile has them.
    public func kernelModels(threads: Int) -> [String: KernelCostModel]? {
        kernels?[String(threads)]
    }

    /// The last-level cache an activation can stay in between layers (the largest shared one), no
    /// more than the measured `streamingCacheBytes` where the profile has it.
    public var lastLevelCacheBytes: Int {
        let listed = caches.filter { $0.perCore != true }.map(\.bytes).max() ?? caches.map(\.bytes).max() ?? 0
        return streamingCacheBytes.map { min($0, listed) } ?? listed
    }

    /// The largest cache a core has to itself (L2 on the usual CPU), 0 when none is listed.
    public var coreCacheBytes: Int {
        caches.filter { $0.perCore != false && $0.level != "L3" }.map(\.bytes).max() ?? 0
    }

    /// Peak for a dtype, falling back to float32.
    public func peak(for dtype: String) -> Double {
        peakFlopsPerSecond[dtype] ?? peakFlopsPerSecond["float32"] ?? 1e9
    }

    /// The built-in profiles, sorted by id.
    public static func builtIn() -> [HardwareProfile] {
        let dir = Bundle.module.resourceURL?.appendingPathComponent("Profiles")
        let urls = dir.flatMap { try? FileManager.default.contentsOfDirectory(at: $0, includingPropertiesForKeys: nil) }?.filter { $0.pathExtension == "json" } ?? []
        return urls.compactMap { try? load($0.path) }.sorted { $0.id < $1.id }
    }

    public static func load(_ path: String) throws -> HardwareProfile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProfileError("\(path): cannot read the profile file")
        }
        let profile: HardwareProfile
        do {
            profile = try JSONDecoder().decode(HardwareProfile.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ProfileError("\(path): not a hardware profile: field '\(fieldPath(context.codingPath + [key]))' is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ProfileError("\(path): not a hardware profile: field '\(fieldPath(context.codingPath))' has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw ProfileError("\(path): not a hardware profile: field '\(fieldPath(context.codingPath))' is null")
        } catch {
            throw ProfileError("\(path): not a hardware profile: not valid JSON")
        }
        if let problem = profile.problem() { throw ProfileError("\(path): \(problem)") }
        return profile
    }

    static func fieldPath(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// A figure that would make every prediction meaningless (zero or negative rates, a
    /// coefficient that is not a finite non-negative number), named; nil when there is none.
    func problem() -> String? {
        if !(dramBytesPerSecond > 0) || !dramBytesPerSecond.isFinite { return "field 'dramBytesPerSecond' must be a positive number" }
        for (k, v) in peakFlopsPerSecond where !(v > 0) || !v.isFinite { return "field 'peakFlopsPerSecond.\(k)' must be a positive number" }
        if !(launchOverheadSeconds >= 0) { return "field 'launchOverheadSeconds' must not be negative" }
        for (threads, w) in weightStreamBytesPerSecond ?? [:] where !(w > 0) || !w.isFinite || Int(threads) == nil {
            return "field 'weightStreamBytesPerSecond.\(threads)' must be a positive number under a thread count"
        }
        for (threads, models) in kernels ?? [:] {
            guard let t = Int(threads), t >= 1 else { return "field 'kernels.\(threads)': keys are thread counts (1, 2, ...)" }
            for (cls, m) in models {
                for (term, c) in m.coefficients where !(c >= 0) || !c.isFinite {
                    return "field 'kernels.\(threads).\(cls).coefficients.\(term)' must be a finite number, not negative"
                }
                let known = cls == KernelCostModel.dispatchClass ? KernelCostModel.dispatchTerms : KernelFeatures.termNames
                for term in m.coefficients.keys where !known.contains(term) {
                    return "field 'kernels.\(threads).\(cls).coefficients.\(term)': unknown term (known: \(known.sorted().joined(separator: ", ")))"
                }
            }
        }
        return nil
    }

    /// A built-in id, or a path to a JSON file.
    public static func resolve(_ idOrPath: String) throws -> HardwareProfile {
        if idOrPath.hasSuffix(".json") || idOrPath.contains("/") { return try load(idOrPath) }
        let all = builtIn()
        if let p = all.first(where: { $0.id == idOrPath }) { return p }
        throw ProfileError("unknown profile '\(idOrPath)'; built-in profiles: \(all.map(\.id).joined(separator: ", "))")
    }

    public static let defaultID = "host-sapphire-rapids-1core"
}

/// A kernel class's fitted cost: seconds = Σ coefficient × term, over the terms of
/// `KernelFeatures.terms` (`call`: once per kernel; `flops`; `bytes`: activations read and
/// written; `weightBytes`). Each coefficient is seconds per unit, never negative, so each reads
/// as a cost: `flops` is 1 / the attained FLOP rate, `bytes` 1 / the attained bandwidth.
public struct KernelCostModel: Codable, Sendable, Equatable {
    public var coefficients: [String: Double]
    /// Micro-benchmark kernels the fit saw, and the median of |predicted / measured − 1| on them.
    public var samples: Int
    public var medianAbsError: Double

    public init(coefficients: [String: Double], samples: Int, medianAbsError: Double) {
        self.coefficients = coefficients
        self.samples = samples
        self.medianAbsError = medianAbsError
    }

    /// The entry of a profile's kernel models that is no kernel class: what running a kernel
    /// costs beyond the kernel itself, added to every kernel. `call`: the executor's step from
    /// one kernel to the next; `share`: a fraction of the kernel's own time (a whole run's
    /// median exceeds the sum of its kernels' medians by a share of it, 1-3% in the calibration
    /// networks as in real models, from 0.2 to 50 ms).
    public static let dispatchClass = "dispatch"
    public static let dispatchTerms: Set<String> = ["call", "share"]

    /// A kernel's time with the dispatch model's cost added.
    public func dispatched(_ kernelSeconds: Double) -> Double {
        kernelSeconds * (1 + (coefficients["share"] ?? 0)) + (coefficients["call"] ?? 0)
    }

    public func seconds(_ f: KernelFeatures) -> Double {
        let terms = f.terms
        return coefficients.reduce(0) { $0 + $1.value * (terms[$1.key] ?? 0) }
    }
}

public struct ProfileError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
