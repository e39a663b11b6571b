import ArgumentParser
import Foundation
import ModelImport
import ModelIR
import ModelRuntime

/// Inputs from --input name=file.npy, or random ones (--random) for every input not given.
func prepareInputs(_ model: Model, specs: [String], random: Bool, seed: UInt64 = 1) throws -> [String: RTensor] {
    var given: [String: RTensor] = [:]
    for s in specs {
        guard let eq = s.firstIndex(of: "=") else { throw ValidationError("--input expects NAME=FILE.npy, got '\(s)'") }
        given[String(s[..<eq])] = try NPY.read(String(s[s.index(after: eq)...]))
    }
    var state = seed
    for id in model.graph.inputs {
        let v = model.graph.values[id]
        if given[v.name] != nil { continue }
        guard random else { throw CommandError(message: "input '\(v.name)' \(v.type) has no value: pass --input \(v.name)=file.npy or --random", code: 2) }
        guard let dims = v.type.shape.dims else { throw CommandError(message: "input '\(v.name)' has unknown rank: give --input-shape", code: 2) }
        let shape = dims.map { $0.value ?? 1 }
        let t = RTensor.allocate(shape, v.type.dtype == .undefined ? .float32 : v.type.dtype)
        for i in 0..<t.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(state >> 40) / Float(1 << 24)
            switch t.dtype {
            case .float32: t.floats[i] = u * 2 - 1
            case .int64: t.raw.storeBytes(of: Int64(u * 10), toByteOffset: i * 8, as: Int64.self)
            case .int32: t.raw.storeBytes(of: Int32(u * 10), toByteOffset: i * 4, as: Int32.self)
            case .uint8: t.raw.storeBytes(of: UInt8(u * 255), toByteOffset: i, as: UInt8.self)
            case .int8: t.raw.storeBytes(of: Int8(u * 254 - 127), toByteOffset: i, as: Int8.self)
            default: throw CommandError(message: "cannot make random \(t.dtype.rawValue) for '\(v.name)'", code: 2)
            }
        }
        given[v.name] = t
    }
    return given
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on the native CPU executor and write its outputs as .npy.",
        discussion: """
            Inputs come from .npy files (--input NAME=FILE.npy) or are random (--random, uniform in \
            [-1, 1) for floats); symbolic sizes are 1 unless --input-shape fixes them. Outputs are \
            written to OUTDIR as NAME.npy. An op without a kernel names itself and its node, and \
            nothing runs.

            Examples:
              modellens run model.onnx --random -o out/
              modellens run model.tflite --input input_1=image.npy --threads 2 -o out/
            """
    )

    @Argument(help: "The .onnx or .tflite file.") var model: String
    @Option(name: .customLong("input"), parsing: .singleValue, help: ArgumentHelp("An input: NAME=FILE.npy. Repeatable.", valueName: "name=file")) var inputs: [String] = []
    @Flag(help: "Random values for inputs not given.") var random = false
    @Option(help: "Threads (OpenBLAS); default: all cores.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: [.customShort("o"), .long], help: "Folder for the outputs (.npy).") var output: String?
    @Option(name: .customLong("input-shape"), parsing: .singleValue, help: ArgumentHelp("Fix an input's shape: NAME=D1,D2,...", valueName: "name=dims")) var inputShapes: [String] = []

    func run() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let m = try ModelImporter.load(model, options: .init(inputShapes: try Inspect.parseShapes(inputShapes)))
        let exec: Executor
        do { exec = try Executor(model: m, threads: threads) } catch let e as RuntimeError { throw CommandError(message: "\(model): \(e)", code: 1) }
        let ins = try prepareInputs(m, specs: inputs, random: random)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let outs: [String: RTensor]
        do { outs = try exec.run(ins) } catch let e as RuntimeError { throw CommandError(message: "\(model): \(e)", code: 1) }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        if let output { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
        for id in m.graph.outputs {
            let name = m.graph.values[id].name
            guard let t = outs[name] else { continue }
            let values = t.toFloats()
            let finite = values.filter(\.isFinite)
            print("\(name)  \(t.dtype.rawValue)\(t.shape)  min \(finite.min() ?? .nan)  max \(finite.max() ?? .nan)  mean \(finite.isEmpty ? .nan : finite.reduce(0, +) / Float(finite.count))")
            if let output {
                let safe = name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" }
                try NPY.write(t, to: (output as NSString).appendingPathComponent(String(safe) + ".npy"))
            }
        }
        print(String(format: "ran in %.2f ms on %d thread(s); peak arena %@", ms, threads, InspectReport.bytes(exec.peakArenaBytes)))
    }
}
