import Foundation
import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// ONNX external data is mapped, not copied, and reads the same bytes as the
/// embedded copy of the same model.
final class ExternalDataTests: XCTestCase {
    func testExternalWeightsAreMappedAndEqualTheEmbeddedOnes() throws {
        let embedded = try ModelImporter.load(TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path)
        let external = try ModelImporter.load(TestSupport.samples.appendingPathComponent("external/tiny_cnn_external.onnx").path)
        let a = embedded.graph.values.filter { $0.constant != nil }
        XCTAssertEqual(a.count, 9)
        for v in a {
            guard let id = external.graph.value(named: v.name), let c = external.graph.values[id].constant else {
                XCTFail("\(v.name) missing from the external-data model"); continue
            }
            XCTAssertTrue(c.isBorrowed, "\(v.name) should point into the mapped weights file")
            XCTAssertEqual(c.shape, v.constant!.shape)
            let same = c.withBytes { x in v.constant!.withBytes { y in x.elementsEqual(y) } }
            XCTAssertTrue(same, "\(v.name) bytes differ")
        }
        XCTAssertEqual(ModelSummary(external).parameterCount, ModelSummary(embedded).parameterCount)
    }
}
