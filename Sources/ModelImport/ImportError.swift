import ModelIR

/// Why a model file could not be imported. The message names the file.
public struct ImportError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String

    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}
