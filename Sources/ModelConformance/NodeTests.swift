import Foundation
import ModelImport
import ModelIR
import ModelRuntime

/// Runs ONNX backend node tests (model.onnx + test_data_set_*/input_N.pb, output_N.pb)
/// on the native executor and compares with the tests' expected outputs, at the
/// tolerance the ONNX backend test runner uses (rtol 1e-3, atol 1e-7).
public enum NodeTests {
    public enum Outcome: String, Sendable {
        case pass, fail, unsupported
    }

    public struct Result: Sendable {
        public var name: String
        public var ops: [String]
        public var outcome: Outcome
        public var detail: String
    }

    public static let rtol: Float = 1e-3
    public static let atol: Float = 1e-7

    public static func runAll(roots: [String]) -> [Result] {
        var out: [Result] = []
        for root in roots {
            for dir in testDirectories(root) { out.append(run(dir)) }
        }
        return out
    }

    public static func testDirectories(_ root: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var dirs: [String] = []
        while let p = e.nextObject() as? String {
            if p.hasSuffix("/model.onnx") || p == "model.onnx" { dirs.append((root as NSString).appendingPathComponent((p as NSString).deletingLastPathComponent)) }
        }
        return dirs.sorted()
    }

    public static func run(_ dir: String) -> Result {
        let name = dir.components(separatedBy: "/").suffix(2).joined(separator: "/")
        let model: Model
        do { model = try ModelImporter.load((dir as NSString).appendingPathComponent("model.onnx")) } catch {
            return Result(name: name, ops: [], outcome: .fail, detail: "import: \(error)")
        }
        let ops = Array(Set(model.graph.nodes.map(\.sourceOp))).sorted()
        let executor: Executor
        do { executor = try Executor(model: model) } catch let e as RuntimeError {
            if case .unsupported = e { return Result(name: name, ops: ops, outcome: .unsupported, detail: e.description) }
            return Result(name: name, ops: ops, outcome: .fail, detail: e.description)
        } catch { return Result(name: name, ops: ops, outcome: .fail, detail: "\(error)") }
        let sets = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("test_data_set_") }.sorted()
        guard !sets.isEmpty else { return Result(name: name, ops: ops, outcome: .unsupported, detail: "no test data") }
        for set in sets {
            let sd = (dir as NSString).appendingPathComponent(set)
            var inputs: [String: RTensor] = [:]
            do {
                for (k, id) in model.graph.inputs.enumerated() {
                    let p = (sd as NSString).appendingPathComponent("input_\(k).pb")
                    guard FileManager.default.fileExists(atPath: p) else {
                        return Result(name: name, ops: ops, outcome: .unsupported, detail: "input \(k) is not a tensor file (sequence or optional)")
                    }
                    inputs[model.graph.values[id].name] = reinterpretBFloat16(try tensor(p), declared: model.graph.values[id].type.dtype)
                }
                let outs = try executor.run(inputs)
                for (k, id) in model.graph.outputs.enumerated() {
                    let p = (sd as NSString).appendingPathComponent("output_\(k).pb")
                    guard FileManager.default.fileExists(atPath: p) else {
                        return Result(name: name, ops: ops, outcome: .unsupported, detail: "output \(k) is not a tensor file")
                    }
                    let want = reinterpretBFloat16(try tensor(p), declared: model.graph.values[id].type.dtype)
                    guard let got = outs[model.graph.values[id].name] else { return Result(name: name, ops: ops, outcome: .fail, detail: "no output \(k)") }
                    if let problem = compare(got, want) {
                        return Result(name: name, ops: ops, outcome: .fail, detail: "\(set) output \(k): \(problem)")
                    }
                }
            } catch let e as RuntimeError {
                if case .unsupported = e { return Result(name: name, ops: ops, outcome: .unsupported, detail: e.description) }
                return Result(name: name, ops: ops, outcome: .fail, detail: e.description)
            } catch {
                // Unreadable test data (e.g. a dtype tensors cannot hold yet) counts as unsupported.
                return Result(name: name, ops: ops, outcome: .unsupported, detail: "\(error)")
            }
        }
        return Result(name: name, ops: ops, outcome: .pass, detail: "")
    }

    static func tensor(_ path: String) throws -> RTensor {
        let data = try ONNXTensorFile.load(path)
        guard data.dtype != .string else { throw RuntimeError.unsupported(op: "string", node: path, reason: "string tensors") }
        let copy = RTensor.allocate(data.shape, data.dtype)
        data.withBytes { if let base = $0.baseAddress { copy.raw.copyMemory(from: base, byteCount: min($0.count, copy.buffer.capacity)) } }
        return copy
    }

    /// Some node tests store bfloat16 tensors as uint16 bit patterns; read them as what the model declares.
    static func reinterpretBFloat16(_ t: RTensor, declared: DType) -> RTensor {
        guard t.dtype == .uint16, declared == .bfloat16 else { return t }
        return RTensor(shape: t.shape, dtype: .bfloat16, buffer: t.buffer)
    }

    /// nil when equal within tolerance.
    static func compare(_ got: RTensor, _ want: RTensor) -> String? {
        if got.shape != want.shape { return "shape \(got.shape), expected \(want.shape)" }
        if got.dtype != want.dtype { return "type \(got.dtype.rawValue), expected \(want.dtype.rawValue)" }
        let a = got.toFloats(), b = want.toFloats()
        for i in 0..<a.count {
            let x = a[i], y = b[i]
            if x.isNaN && y.isNaN { continue }
            if x == y { continue }
            if abs(x - y) > atol + rtol * abs(y) || x.isNaN != y.isNaN { return "element \(i): \(x), expected \(y)" }
        }
        return nil
    }
}
