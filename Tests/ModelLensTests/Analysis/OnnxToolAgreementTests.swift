import Foundation
import ModelAnalysis
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// Per node, MACs and parameters agree with onnx-tool on the torchvision
/// models; the systematic differences (Docs/guide/analyze.md) are asserted exactly.
final class OnnxToolAgreementTests: XCTestCase {
    func testPerNodeMACsAndParamsAgreeWithOnnxTool() throws {
        let refs = try TestSupport.reference("onnx-tool.json")
        if refs.isEmpty { throw XCTSkip("onnx-tool or the torchvision exports are missing: run make test") }
        let profile = try HardwareProfile.resolve(HardwareProfile.defaultID)
        var summary: [String: (nodes: Int, macsEqual: Int, paramsEqual: Int, theirMACs: Int)] = [:]
        var failures: [String] = []
        for ref in refs {
            let path = ref["path"] as! String
            let r = ModelAnalyzer.analyze(try ModelImporter.load(path), profile: profile)
            let ours = Dictionary(r.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let short = (path as NSString).lastPathComponent
            for n in ref["nodes"] as! [[String: Any]] {
                let name = n["name"] as! String, op = n["op"] as! String
                guard let a = ours[name] else {
                    if op != "Constant" { failures.append("\(short): onnx-tool node \(name) not found") }
                    continue
                }
                let macs = n["macs"] as! Int, params = n["params"] as! Int
                var s = summary[op] ?? (0, 0, 0, 0)
                s.nodes += 1
                if macs == a.macs { s.macsEqual += 1 }
                if params == a.params { s.paramsEqual += 1 }
                s.theirMACs += macs
                summary[op] = s
                switch op {
                case "Conv", "Gemm", "MatMul":
                    // onnx-tool adds the bias as one more MAC per output element; here a bias add is FLOPs only.
                    let node = r.model.graph.nodes[a.index]
                    let hasBias = node.inputs.count > 2 && node.inputs[2] != nil
                    let outputElements = a.bytesWritten / 4
                    if macs != a.macs + (hasBias ? outputElements : 0) {
                        failures.append("\(short) \(name): MACs \(a.macs) (+ bias \(hasBias)) vs onnx-tool \(macs)")
                    }
                    if params != a.params { failures.append("\(short) \(name): params \(a.params) vs onnx-tool \(params)") }
                case "BatchNormalization":
                    // onnx-tool also counts the running mean and variance.
                    if params != 2 * a.params { failures.append("\(short) \(name): BN params \(a.params) vs onnx-tool \(params)") }
                default:
                    if params != a.params { failures.append("\(short) \(name) (\(op)): params \(a.params) vs onnx-tool \(params)") }
                    // Elementwise and pooling work is FLOPs here, never MACs.
                    if a.macs != 0 { failures.append("\(short) \(name) (\(op)): \(a.macs) MACs") }
                }
            }
        }
        print("onnx-tool agreement by op type (nodes, MACs equal, params equal, onnx-tool MACs):")
        for (op, s) in summary.sorted(by: { $0.key < $1.key }) { print("  \(op): \(s.nodes) nodes, \(s.macsEqual) MACs equal, \(s.paramsEqual) params equal, onnx-tool MACs \(s.theirMACs)") }
        for f in failures.prefix(30) { print("  FAIL \(f)") }
        XCTAssertEqual(failures.count, 0)
    }
}
