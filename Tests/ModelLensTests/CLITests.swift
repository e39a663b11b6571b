import Foundation
import XCTest

/// End to end: the `modellens` executable, its exit codes and its JSON.
final class CLITests: XCTestCase {
    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: TestSupport.binary.path) else {
            throw XCTSkip("build the modellens executable first (swift build)")
        }
    }

    func json(_ r: TestSupport.RunResult) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    func testInspectJSONHasTheDocumentedFields() throws {
        let r = try TestSupport.run(["inspect", TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r)
        for key in ["format", "nodeCount", "opHistogram", "inputs", "outputs", "parameterCount", "subgraphCount"] {
            XCTAssertNotNil(j[key], "missing \(key)")
        }
        XCTAssertEqual(j["format"] as? String, "onnx")
        XCTAssertEqual(j["nodeCount"] as? Int, 9)
        XCTAssertEqual((j["opHistogram"] as? [String: Int])?["Conv"], 2)
        let input = try XCTUnwrap((j["inputs"] as? [[String: Any]])?.first)
        XCTAssertEqual(input["name"] as? String, "input")
        XCTAssertEqual(input["dtype"] as? String, "float32")
        XCTAssertEqual((input["shape"] as? [Any]).map { $0.map { "\($0)" } }, ["batch", "3", "32", "32"])
        // 8*3*3*3 + 8 + 4*8 + 8*1*3*3 + 10*8 + 10 weights, checked against the script that made the file.
        XCTAssertEqual(j["parameterCount"] as? Int, 216 + 8 + 32 + 72 + 80 + 10)
        XCTAssertEqual(j["subgraphCount"] as? Int, 1)
    }

    func testTFLiteJSONUsesBuiltinNames() throws {
        let r = try TestSupport.run(["inspect", TestSupport.samples.appendingPathComponent("tiny_cnn.tflite").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r)
        XCTAssertEqual(j["format"] as? String, "tflite")
        XCTAssertEqual(j["opHistogram"] as? [String: Int], ["DEQUANTIZE": 1, "CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "ADD": 1, "MEAN": 1])
        XCTAssertEqual(j["fp16DequantizedWeights"] as? Int, 1)
    }

    func testInputShapeFixesSymbols() throws {
        let r = try TestSupport.run(["inspect", TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, "--json",
                                     "--input-shape", "input=4,3,32,32"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try XCTUnwrap((try json(r)["outputs"] as? [[String: Any]])?.first)
        XCTAssertEqual(out["shape"] as? [Int], [4, 10])
    }

    func testUnreadableModelExitsOneAndNamesTheFile() throws {
        let bad = TestSupport.samples.appendingPathComponent("bad/cycle.onnx").path
        let r = try TestSupport.run(["inspect", bad])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(bad) && r.stderr.contains("cycle"), r.stderr)
        XCTAssertEqual(r.stdout, "", "no partial output on bad input")
    }

    func testUsageErrorsExitTwo() throws {
        let sample = TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path
        for args in [["inspect"], ["inspect", sample, "--no-such-flag"], ["frobnicate"],
                     ["inspect", sample, "--input-shape", "input"], ["inspect", sample, "--input-shape", "nosuchinput=1,2"]] {
            let r = try TestSupport.run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.isEmpty)
        }
    }

    func testHelpTeachesAndExitsZero() throws {
        let r = try TestSupport.run(["inspect", "--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("--input-shape") && r.stdout.contains("Examples"), r.stdout)
    }
}
