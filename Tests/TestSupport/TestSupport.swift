import Foundation
import ModelImport
import ModelIR
import XCTest

/// Paths, reference data and the CLI, shared by the tests.
public enum TestSupport {
    public static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static var refdata: URL { root.appendingPathComponent(".refdata") }
    public static var samples: URL { root.appendingPathComponent("SampleModels") }
    public static var models: URL { root.appendingPathComponent(".models") }

    /// Loads a reference file written by Tools/make-reference.py.
    public static func reference(_ name: String) throws -> [[String: Any]] {
        let url = refdata.appendingPathComponent(name)
        guard let data = try? Data(contentsOf: url) else {
            throw XCTSkip("missing \(url.path): run `make test` (it runs Tools/setup.sh, Tools/fetch-models.sh and Tools/make-reference.py first)")
        }
        return (try JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
    }

    /// Our shape as the reference writes it: ints, symbol strings, "?" for unknown.
    public static func encode(_ s: Shape) -> [String]? {
        s.dims?.map { d in
            switch d {
            case .known(let v): return String(v)
            case .symbol(let n): return n
            case .unknown: return "?"
            }
        }
    }

    /// A reference shape; a negative dim_value (Paddle exports write -1 for
    /// "dynamic") counts as unknown, which is how ModelLens reads it.
    public static func encode(_ any: Any?) -> [String]? {
        guard let a = any as? [Any] else { return nil }
        return a.map { if let i = $0 as? Int, i < 0 { return "?" }; return "\($0)" }
    }

    /// The modellens executable next to the test bundle.
    public static var binary: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("modellens")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return root.appendingPathComponent(".build/debug/modellens")
    }

    public struct RunResult {
        public var status: Int32
        public var signaled: Bool
        public var stdout: String
        public var stderr: String
        public var timedOut: Bool
    }

    /// Runs `modellens` with arguments, optionally under a virtual-memory limit (KiB) and with
    /// extra environment variables.
    public static func run(_ args: [String], memoryLimitKB: Int? = nil, timeout: TimeInterval = 30,
                    environment: [String: String] = [:]) throws -> RunResult {
        let p = Process()
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let limit = memoryLimitKB {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "ulimit -v \(limit); exec \"$0\" \"$@\"", binary.path] + args
        } else {
            p.executableURL = binary
            p.arguments = args
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        var outData = Data(), errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        var timedOut = false
        while p.isRunning {
            if Date() > deadline { p.terminate(); timedOut = true; break }
            usleep(2000)
        }
        p.waitUntilExit()
        group.wait()
        return RunResult(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                         stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self),
                         timedOut: timedOut)
    }
}
