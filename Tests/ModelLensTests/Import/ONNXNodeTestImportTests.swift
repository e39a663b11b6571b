import Foundation
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// Every model of the ONNX backend node tests (the onnx 1.22.0 wheel and
/// Debian's libonnx-testdata) imports, and what we see equals what Python
/// `onnx` reports (Tools/make-reference.py).
final class ONNXNodeTestImportTests: XCTestCase {
    func testEveryNodeTestModelImportsAndMatchesPythonONNX() throws {
        let refs = try TestSupport.reference("onnx-node-tests.json")
        XCTAssertGreaterThanOrEqual(refs.count, 1765 + 1072, "expected every node test of both sources")
        var failures: [String] = []
        var shapeChecked = 0, shapeUncovered = 0, shapeMismatch: [String] = []
        for ref in refs {
            let path = ref["path"] as! String
            let short = path.components(separatedBy: "/").suffix(3).joined(separator: "/")
            let model: Model
            do {
                model = try ModelImporter.load(path)
            } catch {
                failures.append("\(short): import failed: \(error)")
                continue
            }
            let g = model.graph
            if g.nodes.count != ref["nodeCount"] as! Int {
                failures.append("\(short): \(g.nodes.count) nodes, onnx says \(ref["nodeCount"]!)")
            }
            if model.subgraphCount != ref["subgraphCount"] as! Int {
                failures.append("\(short): \(model.subgraphCount) graphs, onnx has \(ref["subgraphCount"]!)")
            }
            let ops = (ref["opTypes"] as! [String])
            if g.nodes.map(\.sourceOp).sorted() != ops.sorted() {
                failures.append("\(short): op types differ")
            }
            for (side, ids, key) in [("input", g.inputs, "inputs"), ("output", g.outputs, "outputs")] {
                let expected = ref[key] as! [[String: Any]]
                if ids.map({ g.values[$0].name }) != expected.map({ $0["name"] as! String }) {
                    failures.append("\(short): \(side) names \(ids.map { g.values[$0].name }) != \(expected.map { $0["name"]! })")
                    continue
                }
                for (id, e) in zip(ids, expected) where e["tensor"] as? Bool == true {
                    let v = g.values[id]
                    // A graph input's declared type is what onnx reports; outputs may be refined by inference.
                    if v.type.dtype.rawValue != e["dtype"] as! String {
                        failures.append("\(short): \(side) '\(v.name)' dtype \(v.type.dtype.rawValue) != \(e["dtype"]!)")
                    }
                    let want = TestSupport.encode(e["shape"])
                    if side == "input", TestSupport.encode(v.type.shape) != want {
                        failures.append("\(short): input '\(v.name)' shape \(v.type.shape) != \(want ?? [])")
                    }
                }
            }
            // Shape inference agrees with onnx.shape_inference wherever that gives a concrete shape.
            if let inferred = ref["inferred"] as? [String: [String: Any]] {
                for (name, info) in inferred {
                    guard let shape = info["shape"] as? [Any], shape.allSatisfy({ $0 is Int }) else { continue }
                    guard let id = g.value(named: name) else { continue }
                    let ours = g.values[id].type.shape
                    let want = shape.map { "\($0)" }
                    if let c = ours.concrete {
                        shapeChecked += 1
                        if c.map(String.init) != want { shapeMismatch.append("\(short): '\(name)' \(ours) != \(want)") }
                    } else {
                        shapeUncovered += 1
                    }
                }
            }
        }
        // The rules alone: forget every shape the file declares for node outputs
        // and infer again. Where both sides are concrete they must agree.
        var ruleChecked = 0, ruleUnknown = 0, ruleMismatch: [String] = []
        for ref in refs {
            guard let inferred = ref["inferred"] as? [String: [String: Any]],
                  let model = try? ModelImporter.load(ref["path"] as! String) else { continue }
            let g = model.graph
            for n in g.nodes { for o in n.outputs where g.values[o].constant == nil { g.values[o].type = TensorType(dtype: .undefined, shape: .unknownRank) } }
            ShapeInference.run(g)
            let short = (ref["path"] as! String).components(separatedBy: "/").suffix(3).joined(separator: "/")
            for n in g.nodes {
                for o in n.outputs {
                    let v = g.values[o]
                    guard let info = inferred[v.name], let shape = info["shape"] as? [Any], shape.allSatisfy({ $0 is Int }) else { continue }
                    let want = shape.map { "\($0)" }
                    if let c = v.type.shape.concrete {
                        ruleChecked += 1
                        if c.map(String.init) != want { ruleMismatch.append("\(short): \(n.sourceOp) '\(v.name)' \(v.type.shape) != \(want)") }
                    } else {
                        ruleUnknown += 1
                    }
                }
            }
        }
        print("shape rules alone (declared node-output shapes dropped): \(ruleChecked) outputs agree-checked, \(ruleMismatch.count) differ, \(ruleUnknown) not computed")
        for f in ruleMismatch.prefix(60) { print("  RULE \(f)") }
        print("node tests: \(refs.count) models, \(failures.count) import/compare failures; inferred shapes: \(shapeChecked) concrete and equal-checked, \(shapeMismatch.count) differ, \(shapeUncovered) left unknown by ModelLens")
        for f in failures.prefix(40) { print("  FAIL \(f)") }
        for f in shapeMismatch.prefix(40) { print("  SHAPE \(f)") }
        XCTAssertEqual(failures.count, 0, "node test imports differing from onnx (first ones printed above)")
        XCTAssertEqual(shapeMismatch.count, 0, "inferred shapes differing from onnx.shape_inference (printed above)")
        XCTAssertEqual(ruleMismatch.count, 0, "shape rules contradicting onnx.shape_inference (printed above)")
        XCTAssertEqual(shapeUncovered, 0, "values onnx.shape_inference makes concrete that ModelLens leaves unknown")
    }
}
