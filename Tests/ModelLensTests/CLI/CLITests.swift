import Foundation
import ModelLensTestSupport
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

    func testAnalyzeJSONHasTheDocumentedFields() throws {
        let r = try TestSupport.run(["analyze", TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, "--format", "json", "--bind", "batch=2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r)
        XCTAssertNotNil(j["convention"] as? String)
        let totals = try XCTUnwrap(j["totals"] as? [String: Any])
        for k in ["macs", "flops", "params", "bytesRead", "bytesWritten", "predictedMs"] { XCTAssertNotNil(totals[k], k) }
        XCTAssertEqual(totals["macs"] as? Int, 2 * (8 * 27 * 32 * 32 + 8 * 9 * 16 * 16 + 80))
        let nodes = try XCTUnwrap(j["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.count, 9)
        for k in ["name", "op", "macs", "flops", "params", "bytesRead", "bytesWritten", "intensity", "predictedMs", "bound", "tags"] {
            XCTAssertNotNil(nodes[0][k], k)
        }
        let patterns = try XCTUnwrap(j["patterns"] as? [String: Int])
        XCTAssertEqual(patterns["residualConnections"], 1)
        XCTAssertEqual(patterns["depthwiseConvs"], 1)
        XCTAssertEqual(patterns["pointwiseConvs"], 0)
        XCTAssertEqual(patterns["groupedConvs"], 0)
        XCTAssertEqual(patterns["branches"], 0)
    }

    func testAnalyzeFormatsAndProfiles() throws {
        let sample = TestSupport.samples.appendingPathComponent("tiny_cnn.tflite").path
        let csv = try TestSupport.run(["analyze", sample, "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        XCTAssertEqual(csv.stdout.split(separator: "\n").count, 2 + 5, "convention comment, header, 5 nodes")
        XCTAssertTrue(csv.stdout.hasPrefix("# counting: "))
        let md = try TestSupport.run(["analyze", sample, "--format", "markdown", "--profile", "gtx-1060"])
        XCTAssertTrue(md.stdout.contains("| node | op |") && md.stdout.contains("gtx-1060"), md.stdout)
        let html = try TestSupport.run(["analyze", sample, "--format", "html"])
        XCTAssertTrue(html.stdout.hasPrefix("<!DOCTYPE html>") && html.stdout.contains("<svg") && html.stdout.contains("<circle"), "roofline plot")
        XCTAssertFalse(html.stdout.contains("http://") && html.stdout.contains("<script src"), "self-contained")
        let table = try TestSupport.run(["analyze", sample])
        XCTAssertTrue(table.stdout.contains("counting:") && table.stdout.contains("FLOPs = 2 x MACs"), "the convention heads every report")
        XCTAssertEqual(try TestSupport.run(["analyze", sample, "--profile", "no-such-board"]).status, 2)
        XCTAssertEqual(try TestSupport.run(["analyze", sample, "--format", "yaml"]).status, 2)
        let list = try TestSupport.run(["profiles"])
        for id in ["odroid-xu4-mali-t628", "jetson-tk1", "gtx-1060", "qcs605-adreno615", "nvidia-h100-sxm"] { XCTAssertTrue(list.stdout.contains(id), id) }
        let help = try TestSupport.run(["analyze", "--help"])
        XCTAssertTrue(help.stdout.contains("FLOPs = 2 x MACs"), "the convention is in --help")
    }

    func testCompareTwoVersions() throws {
        let r = try TestSupport.run(["compare", TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path,
                                     TestSupport.samples.appendingPathComponent("external/tiny_cnn_external.onnx").path, "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r)
        let macs = try XCTUnwrap((j["totals"] as? [String: Any])?["MACs"] as? [String: Int])
        XCTAssertEqual(macs["delta"], 0, "the same network with external weights")
        XCTAssertEqual(j["onlyInA"] as? [String], [])
    }

    func testMeasuredHostProfileCanBeUsed() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("host-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let m = try TestSupport.run(["profiles", "--measure", "-o", path], timeout: 120)
        XCTAssertEqual(m.status, 0, m.stderr)
        let p = try json(m)
        let peaks = try XCTUnwrap(p["peakFlopsPerSecond"] as? [String: Double])
        XCTAssertGreaterThan(peaks["float32"] ?? 0, 1e9, "sgemm should reach more than 1 GFLOP/s on any machine")
        XCTAssertGreaterThan(peaks["float32-fma"] ?? 0, peaks["float32"] ?? 0, "the FMA peak bounds sgemm")
        XCTAssertGreaterThan(p["dramBytesPerSecond"] as? Double ?? 0, 1e8)
        let a = try TestSupport.run(["analyze", TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path, "--profile", path, "--format", "json"])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual((try json(a)["profile"] as? [String: String])?["id"], "host-measured")
    }
}
