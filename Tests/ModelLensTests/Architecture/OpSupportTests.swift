import Foundation
import ModelConformance
import ModelLensTestSupport
import XCTest

/// The op tables of the modules stay in step: an op the analysis can shape can also be costed,
/// and the executor runs it or says why not; `modellens ops` prints the same matrix.
final class OpSupportTests: XCTestCase {
    func testEveryOpWithAShapeRuleHasACostAndAKernelOrAReason() {
        let rows = OpSupportMatrix.rows()
        XCTAssertGreaterThan(rows.filter(\.shape).count, 150)
        let noCost = rows.filter { $0.shape && !$0.cost }.map(\.op)
        XCTAssertEqual(noCost, [], "ops with a shape rule and no cost rule")
        let unexplained = rows.filter { $0.shape && !$0.run && $0.note == nil }.map(\.op)
        XCTAssertEqual(unexplained, [], "ops with a shape rule, no kernel and no stated reason (OpSupportMatrix.notRun)")
        let stale = OpSupportMatrix.notRun.keys.filter { op in rows.first { $0.op == op }?.run ?? true }.sorted()
        XCTAssertEqual(stale, [], "reasons given for ops that run (or that no module knows)")
    }

    /// The three families the architecture follows through every module: each row is complete,
    /// read from the importers' mappings, the rules, the kernels and the converters' lowerings.
    func testConvResizeAndAddAreSupportedEverywhere() throws {
        let rows = Dictionary(uniqueKeysWithValues: OpSupportMatrix.rows().map { ($0.op, $0) })
        for (op, onnx, tflite) in [("Conv", ["Conv"], ["CONV_2D", "DEPTHWISE_CONV_2D"]), ("Resize", ["Resize", "Upsample"],
                                   ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"]), ("Add", ["Add"], ["ADD"])] {
            let r = try XCTUnwrap(rows[op])
            XCTAssertEqual(r.onnx, onnx, op)
            XCTAssertEqual(r.tflite, tflite, op)
            XCTAssertTrue(r.shape && r.cost && r.run && r.writeONNX && r.writeTFLite, "\(r)")
        }
        // Ops only one format has import from that format alone.
        XCTAssertEqual(rows["FullyConnected"]?.onnx, [])
        XCTAssertEqual(rows["Gemm"]?.tflite, [])
    }

    func testOpsCommandPrintsTheMatrix() throws {
        let r = try TestSupport.run(["ops", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, OpSupportMatrix.rows().count)
        let conv = try XCTUnwrap(rows.first { $0["op"] as? String == "Conv" })
        XCTAssertEqual(conv["run"] as? Bool, true)
        let table = try TestSupport.run(["ops", "--filter", "resize"])
        XCTAssertEqual(table.status, 0)
        XCTAssertTrue(table.stdout.contains("RESIZE_BILINEAR"), table.stdout)
    }
}
