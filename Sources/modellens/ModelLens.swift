import ArgumentParser
import Foundation
import ModelAnalysis
import ModelImport
import ModelIR

/// Exit codes: 0 success, 1 a model that cannot be read, 2 usage errors.
@main
struct ModelLensMain {
    static func main() {
        do {
            var command = try ModelLens.parseAsRoot()
            try command.run()
        } catch let error as ImportError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        } catch let error as CommandError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            exit(error.code)
        } catch {
            let code = ModelLens.exitCode(for: error)
            let text = ModelLens.fullMessage(for: error)
            if code == .success {
                print(text)
                exit(0)
            }
            FileHandle.standardError.write(Data((text + "\n").utf8))
            // Every argument-parsing or validation failure is a usage error.
            exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

struct CommandError: Error {
    var message: String
    var code: Int32
}

/// A built-in profile id or a JSON file; an unknown one is a usage error (exit 2).
func resolveProfile(_ idOrPath: String) throws -> HardwareProfile {
    do { return try HardwareProfile.resolve(idOrPath) } catch { throw CommandError(message: "\(error)", code: 2) }
}

struct ModelLens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "modellens",
        abstract: "Look inside ONNX and TFLite model files.",
        discussion: """
            ModelLens reads .onnx and .tflite files into one format-neutral graph and \
            reports what is inside: inputs and outputs with their (symbolic) shapes, \
            operators, parameters by type, subgraphs and custom ops.

            Examples:
              modellens inspect mobilenet.tflite
              modellens inspect model.onnx --json
              modellens inspect model.onnx --input-shape input=1,3,224,224
              modellens analyze model.onnx --profile gtx-1060
              modellens profiles

            Exit status: 0 on success, 1 when a model cannot be read (the message \
            names the file and the problem), 2 for usage errors.
            """,
        subcommands: [Inspect.self, Analyze.self, Compare.self, Scale.self, Study.self, Run.self, Profile.self, Calibrate.self, Convert.self, Compress.self, Profiles.self, Ops.self, NodeTestsCommand.self]
    )
}
