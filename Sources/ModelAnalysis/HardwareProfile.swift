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

    /// The last-level cache an activation can stay in between layers (the largest shared one).
    public var lastLevelCacheBytes: Int {
        caches.filter { $0.perCore != true }.map(\.bytes).max() ?? caches.map(\.bytes).max() ?? 0
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
        do {
            return try JSONDecoder().decode(HardwareProfile.self, from: data)
        } catch {
            throw ProfileError("\(path): not a hardware profile (\(error))")
        }
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

public struct ProfileError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
