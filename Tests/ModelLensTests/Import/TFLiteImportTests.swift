import Foundation
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// Every .tflite file of the mediapipe 0.10.14 wheel imports; operators,
/// op names, tensors, shapes and dtypes equal what the `tflite` package and
/// ai-edge-litert's Interpreter report.
final class TFLiteImportTests: XCTestCase {
    func testMediapipeModelsMatchTFLiteAndLiteRT() throws {
        let refs = try TestSupport.reference("tflite.json")
        XCTAssertEqual(refs.filter { ($0["path"] as! String).contains("/mediapipe/") }.count, 14, "mediapipe 0.10.14 ships 14 .tflite files")
        XCTAssertTrue(refs.contains { ($0["path"] as! String).hasSuffix("tiny_int8.tflite") }, "the int8 sample is part of the reference")
        var failures: [String] = []
        for ref in refs {
            let path = ref["path"] as! String
            let short = (path as NSString).lastPathComponent
            let model: Model
            do { model = try ModelImporter.load(path) } catch {
                failures.append("\(short): import failed: \(error)")
                continue
            }
            let subgraphs = ref["subgraphs"] as! [[String: Any]]
            let graphs = [model.graph] + model.extraGraphs
            if graphs.count != subgraphs.count { failures.append("\(short): \(graphs.count) subgraphs != \(subgraphs.count)") }
            for (g, sref) in zip(graphs, subgraphs) {
                let ops = sref["ops"] as! [String]
                // TFLite stores operators in execution order; we keep it.
                if g.nodes.map(\.sourceOp) != ops {
                    failures.append("\(short): op names differ (\(g.nodes.count) vs \(ops.count))")
                }
                let tensors = sref["tensors"] as! [[String: Any]]
                if g.values.count != tensors.count { failures.append("\(short): \(g.values.count) tensors != \(tensors.count)") }
                for (v, t) in zip(g.values, tensors) {
                    if v.name != t["name"] as! String { failures.append("\(short): tensor name \(v.name) != \(t["name"]!)") }
                    if v.type.dtype.rawValue != t["dtype"] as! String {
                        failures.append("\(short): tensor '\(v.name)' dtype \(v.type.dtype.rawValue) != \(t["dtype"]!)")
                    }
                    let shape = (t["shape"] as! [Int])
                    let sig = (t["signature"] as? [Int]) ?? shape
                    let want = zip(shape, sig).map { $1 < 0 ? "?" : String($0) }
                    if TestSupport.encode(v.type.shape) != want {
                        failures.append("\(short): tensor '\(v.name)' shape \(v.type.shape) != \(want)")
                    }
                }
                if g.inputs != sref["inputs"] as! [Int] { failures.append("\(short): inputs differ") }
                if g.outputs != sref["outputs"] as! [Int] { failures.append("\(short): outputs differ") }
            }
            // The runtime's view: names, dtypes and shape signatures by tensor index.
            if let lite = ref["litert"] as? [String: Any] {
                for t in lite["tensors"] as! [[String: Any]] {
                    let i = t["index"] as! Int
                    guard i < model.graph.values.count else { failures.append("\(short): litert tensor \(i) missing"); continue }
                    let v = model.graph.values[i]
                    if v.name != t["name"] as! String { failures.append("\(short): litert name \(t["name"]!) != \(v.name)") }
                    if v.type.dtype.rawValue != t["dtype"] as! String {
                        failures.append("\(short): litert dtype of '\(v.name)' \(t["dtype"]!) != \(v.type.dtype.rawValue)")
                    }
                    // Quantization: scales, zero points and (per-axis) the quantized dimension.
                    let scales = t["scales"] as? [Double] ?? []
                    let q = v.quantization
                    if scales.isEmpty != (q == nil) {
                        failures.append("\(short): '\(v.name)' quantization presence differs from litert")
                    } else if let q {
                        if q.scales.count != scales.count || zip(q.scales, scales).contains(where: { abs(Double($0) - $1) > 1e-12 * max(1, abs($1)) }) {
                            failures.append("\(short): '\(v.name)' scales \(q.scales) != \(scales)")
                        }
                        if q.zeroPoints.map(Int.init) != (t["zeroPoints"] as? [Int] ?? []) { failures.append("\(short): '\(v.name)' zero points differ") }
                        if q.isPerAxis, q.axis != t["quantizedDimension"] as? Int { failures.append("\(short): '\(v.name)' quantized dimension differs") }
                        if let c = v.constant, c.quantization?.scales != q.scales { failures.append("\(short): '\(v.name)' constant lacks its quantization") }
                    }
                    let want = (t["signature"] as! [Int]).map { $0 < 0 ? "?" : String($0) }
                    if TestSupport.encode(v.type.shape) != want { failures.append("\(short): litert signature of '\(v.name)' \(want) != \(v.type.shape)") }
                }
                if model.graph.inputs != lite["inputs"] as! [Int] { failures.append("\(short): litert inputs differ") }
                if model.graph.outputs != lite["outputs"] as! [Int] { failures.append("\(short): litert outputs differ") }
            } else {
                failures.append("\(short): ai-edge-litert could not build an interpreter: \(ref["litertError"] ?? "?")")
            }
            // Our NHWC shape rules must not contradict the shapes the file declares.
            let contradictions = model.warnings.filter { $0.contains("the file declares") }
            if !contradictions.isEmpty { failures.append("\(short): \(contradictions.count) shape-rule contradictions, e.g. \(contradictions[0])") }
        }
        for f in failures.prefix(40) { print("  FAIL \(f)") }
        XCTAssertEqual(failures.count, 0, "differences from tflite / ai-edge-litert (printed above)")
    }

    func testMediapipeWeightsAreBorrowedFromTheMappedFile() throws {
        let dir = TestSupport.models.appendingPathComponent("mediapipe")
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path).filter({ $0.hasSuffix(".tflite") }), !files.isEmpty else {
            throw XCTSkip("run Tools/fetch-models.sh")
        }
        for f in files {
            let model = try ModelImporter.load(dir.appendingPathComponent(f).path)
            // Sparse constants (DENSIFY inputs) stay in the file's stored form, expanded when read,
            // and fewer bytes than the dense form; all others are borrowed.
            let densified = Set(model.graph.nodes.filter { $0.sourceOp == "DENSIFY" }.compactMap { $0.inputs.first ?? nil })
            let constants = model.graph.values.filter { $0.constant != nil }
            XCTAssertFalse(constants.isEmpty, f)
            for v in constants {
                let c = v.constant!
                if densified.contains(v.id) {
                    guard case .expanded = c.storage else { XCTFail("\(f): sparse '\(v.name)' is not kept sparse"); continue }
                    XCTAssertLessThan(c.storedByteCount, c.byteCount, "\(f): '\(v.name)'")
                    XCTAssertEqual(c.byteCount, c.elementCount * 2, "\(f): '\(v.name)' (fp16)")
                } else {
                    XCTAssertTrue(c.isBorrowed, "\(f): '\(v.name)' is not borrowed")
                }
            }
        }
    }

    func testFP16WeightsBehindDequantizeAreRecognised() throws {
        // The mediapipe models store weights as float16 and widen them with DEQUANTIZE.
        let dir = TestSupport.models.appendingPathComponent("mediapipe")
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path).filter({ $0.hasSuffix(".tflite") }), !files.isEmpty else {
            throw XCTSkip("run Tools/fetch-models.sh")
        }
        var total = 0
        for f in files {
            let model = try ModelImporter.load(dir.appendingPathComponent(f).path)
            let s = ModelSummary(model)
            let dequantizeOfHalf = model.graph.nodes.filter {
                $0.sourceOp == "DEQUANTIZE" && ($0.inputs.first ?? nil).map { model.graph.values[$0].constant?.dtype == .float16 } == true
            }.count
            XCTAssertEqual(s.fp16DequantizedWeights, dequantizeOfHalf, f)
            total += s.fp16DequantizedWeights
        }
        XCTAssertGreaterThan(total, 0, "some mediapipe model should carry fp16 weights")
    }

    func testInt8SampleKeepsPerAxisQuantization() throws {
        let model = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_int8.tflite").path)
        let g = model.graph
        let w = try XCTUnwrap(g.value(named: "conv.w").map { g.values[$0] })
        XCTAssertEqual(w.type.dtype, .int8)
        XCTAssertEqual(w.quantization?.axis, 0)
        XCTAssertEqual(w.quantization?.scales.count, 4)
        XCTAssertEqual(ModelSummary(model).perAxisQuantizedTensors, 2, "weights and bias")
        XCTAssertEqual(g.nodes.first?.fusedActivation, .relu6)
        XCTAssertEqual(g.nodes.first?.op, .conv)
    }
}
