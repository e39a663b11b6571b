import Foundation
@testable import ModelImport
import ModelIR
import ModelLensTestSupport
import XCTest

/// Bad input gives a clear error naming the file and the problem; never a
/// crash, hang or runaway memory.
final class BadInputTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("modellens-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    func expectImportError(_ path: String, contains fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ModelImporter.load(path)
            XCTFail("\(path) imported, expected an error containing '\(fragment)'", file: file, line: line)
        } catch let e as ImportError {
            XCTAssertEqual(e.path, path, file: file, line: line)
            XCTAssertTrue(e.description.contains(fragment), "'\(e)' lacks '\(fragment)'", file: file, line: line)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    func testEmptyFiles() throws {
        for ext in ["onnx", "tflite"] {
            let p = tmp.appendingPathComponent("empty.\(ext)").path
            FileManager.default.createFile(atPath: p, contents: Data())
            expectImportError(p, contains: "empty")
        }
    }

    func testMissingFileAndDirectory() {
        expectImportError(tmp.appendingPathComponent("nope.onnx").path, contains: "no such file")
        expectImportError(tmp.path, contains: "directory")
    }

    func testHugeDeclaredTensorIsRefusedWithoutAllocating() {
        // 2^40 float elements declared, 16 bytes present.
        expectImportError(TestSupport.samples.appendingPathComponent("bad/huge_tensor.onnx").path, contains: "raw_data holds 16 bytes")
    }

    func testCycleIsReported() {
        expectImportError(TestSupport.samples.appendingPathComponent("bad/cycle.onnx").path, contains: "cycle")
    }

    func testUndefinedInputIsReported() {
        expectImportError(TestSupport.samples.appendingPathComponent("bad/undefined_input.onnx").path, contains: "'nowhere'")
    }

    func testTFLiteBufferOffsetPastTheEnd() {
        expectImportError(TestSupport.samples.appendingPathComponent("bad/buffer_offset.tflite").path, contains: "outside the file")
    }

    /// A sparse weight's CSR segments made to run backwards (segment 0 from 1 to 0) in a copy of
    /// a real sparse model: the import checks every segment and index once, since the weight is
    /// expanded later, whenever read, where an error could no longer be reported.
    func testSparseWeightWithBackwardSegmentsIsRefused() throws {
        let path = TestSupport.models.appendingPathComponent("mediapipe/mediapipe__modules__face_detection__face_detection_full_range_sparse.tflite").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("run Tools/fetch-models.sh") }
        let model = try ModelImporter.load(path)
        var found: (offset: Int, width: Int)?
        for v in model.graph.values {
            guard case .expanded(let e)? = v.constant?.storage, let sparse = e as? SparseConstant,
                  let d = sparse.dims.first(where: { $0.format == 1 && $0.segments_count >= 2 }),
                  let base = sparse.file.mappedBytes.baseAddress, let segments = d.segments else { continue }
            found = (segments - base, SparseConstant.width(d.segments_type))
            break
        }
        guard let (offset, width) = found, width > 0 else { return XCTFail("no CSR dimension in \(path)") }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        for b in 0..<2 * width { bytes[offset + b] = 0 }
        bytes[offset] = 1   // segments[0] = 1, segments[1] = 0 (little-endian)
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("modellens-backward-segments-\(getpid()).tflite")
        try Data(bytes).write(to: bad)
        defer { try? FileManager.default.removeItem(at: bad) }
        expectImportError(bad.path, contains: "segment 0 out of range")
    }

    func testExternalDataLeavingTheModelDirectoryIsRefused() {
        expectImportError(TestSupport.samples.appendingPathComponent("bad/external_escape.onnx").path, contains: "leaves the model's directory")
    }

    /// A few MB nesting If graphs 100,000 deep (Graph > Node > Attribute > Graph ...): protobuf-c
    /// would recurse until the stack overflows; the importer refuses it with an error instead.
    func testDeeplyNestedGraphsAreRefused() throws {
        func varint(_ v: Int) -> [UInt8] {
            var n = UInt64(v), out: [UInt8] = []
            repeat { let b = UInt8(n & 0x7f); n >>= 7; out.append(n == 0 ? b : b | 0x80) } while n != 0
            return out
        }
        let name: [UInt8] = [0x0a, 11] + Array("then_branch".utf8)   // AttributeProto.name
        let type: [UInt8] = varint(20 << 3) + varint(5)              // AttributeProto.type = GRAPH
        let op: [UInt8] = [0x22, 2] + Array("If".utf8)               // NodeProto.op_type
        let depth = 100_000
        var lengths: [(graph: Int, attr: Int, node: Int)] = []
        var graph = 0
        for _ in 0..<depth {
            let attr = name.count + type.count + 1 + varint(graph).count + graph
            let node = op.count + 1 + varint(attr).count + attr
            lengths.append((graph, attr, node))
            graph = 1 + varint(node).count + node
        }
        var body: [UInt8] = []
        body.reserveCapacity(graph)
        for l in lengths.reversed() {
            body += [0x0a] + varint(l.node) + op + [0x2a] + varint(l.attr) + name + type + [0x32] + varint(l.graph)
        }
        let model: [UInt8] = [0x08, 0x08, 0x3a] + varint(body.count) + body + [0x42, 0x02, 0x10, 0x0d]
        let path = tmp.appendingPathComponent("deep.onnx").path
        FileManager.default.createFile(atPath: path, contents: Data(model))
        expectImportError(path, contains: "nest")
        if FileManager.default.isExecutableFile(atPath: TestSupport.binary.path) {
            let r = try TestSupport.run(["inspect", path])
            XCTAssertFalse(r.signaled)
            XCTAssertEqual(r.status, 1, r.stderr)
        }
    }

    func testRandomBytes() throws {
        var rng = SplitMix(seed: 42)
        for i in 0..<200 {
            let n = Int(rng.next() % 4096)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for ext in ["onnx", "tflite"] {
                let p = tmp.appendingPathComponent("random\(i).\(ext)").path
                FileManager.default.createFile(atPath: p, contents: Data(bytes))
                // Random bytes may, rarely, decode as a (meaningless) protobuf: either way no crash.
                do { _ = try ModelImporter.load(p) } catch is ImportError {} catch { XCTFail("\(error)") }
            }
        }
    }

    /// Real files cut at every 1/64 of their length.
    func testTruncatedRealFiles() throws {
        let files = [TestSupport.samples.appendingPathComponent("tiny_cnn.onnx"),
                     TestSupport.samples.appendingPathComponent("tiny_cnn.tflite")] + realModels(limit: 3)
        for url in files {
            let data = try Data(contentsOf: url)
            for k in 0..<64 {
                let cut = data.count * k / 64
                let p = tmp.appendingPathComponent("cut\(k).\(url.pathExtension)").path
                FileManager.default.createFile(atPath: p, contents: data.prefix(cut))
                do {
                    _ = try ModelImporter.load(p)
                    // protobuf can end cleanly at a field boundary: then the result must still be a well-formed model.
                } catch let e as ImportError {
                    XCTAssertEqual(e.path, p)
                } catch { XCTFail("\(url.lastPathComponent) cut at \(cut): \(error)") }
            }
        }
    }

    /// At least 2,000 mutations of real model files, each imported by the
    /// `modellens` process: it must exit 0 or 1, never die from a signal, hang
    /// or exceed a 2 GiB address-space limit.
    func testMutatedRealFilesNeverKillTheProcess() throws {
        guard FileManager.default.isExecutableFile(atPath: TestSupport.binary.path) else {
            throw XCTSkip("build the modellens executable first (swift build)")
        }
        let sources = [TestSupport.samples.appendingPathComponent("tiny_cnn.onnx"),
                       TestSupport.samples.appendingPathComponent("tiny_cnn.tflite")] + realModels(limit: 4, maxBytes: 1_500_000)
        var rng = SplitMix(seed: 2026)
        let jobs = try mutants(of: sources, each: max(2000 / sources.count + 1, 1), prefix: "m", &rng)
        XCTAssertGreaterThanOrEqual(jobs.count, 2000)
        let result = runMutations(jobs, command: { ["inspect", $0, "--json"] }, memoryLimitKB: 2 * 1024 * 1024, timeout: 20, namesFile: true)
        expectNoProblems(result, "mutations", runs: jobs.count, show: 20)
    }

    /// Mutated small models through `modellens run --random`: the executor must stop cleanly
    /// (exit 0 or 1) on whatever shapes and attributes the mutations produce.
    func testMutatedModelsNeverKillTheExecutor() throws {
        guard FileManager.default.isExecutableFile(atPath: TestSupport.binary.path) else { throw XCTSkip("build modellens first") }
        let sources = ["tiny_cnn.onnx", "tiny_cnn.tflite", "mobilenet_int8.tflite", "tiny_cnn_qdq.onnx"].map { TestSupport.samples.appendingPathComponent($0) }
        var rng = SplitMix(seed: 99)
        let jobs = try mutants(of: sources, each: 150, prefix: "r", &rng)
        let result = runMutations(jobs, command: { ["run", $0, "--random", "--threads", "1"] }, memoryLimitKB: 4 * 1024 * 1024,
                                  timeout: 30, namesFile: false)
        expectNoProblems(result, "executor mutations", runs: jobs.count, show: 10)
    }

    /// Mutated real models (mediapipe, rapidocr, magika) through `analyze`, `run` and `convert`
    /// under a 4 GiB address-space limit: each stops with exit 0 or 1, never a signal or a hang.
    /// (Writers' atomicity: ConvertTests.)
    func testMutatedRealModelsNeverKillAnalyzeRunOrConvert() throws {
        guard FileManager.default.isExecutableFile(atPath: TestSupport.binary.path) else { throw XCTSkip("build modellens first") }
        let sources = realModels(limit: 3, maxBytes: 600_000)
        guard sources.count >= 2 else { throw XCTSkip("run Tools/fetch-models.sh") }
        var rng = SplitMix(seed: 22)
        for (command, perModel) in [("analyze", 40), ("run", 40), ("convert", 25)] {
            let jobs = try mutants(of: sources, each: perModel, prefix: command, &rng)
            let result = runMutations(jobs, command: { path in
                switch command {
                case "run": return ["run", path, "--random", "--threads", "1"]
                case "convert": return ["convert", path, path + (path.hasSuffix(".onnx") ? ".tflite" : ".onnx")]
                default: return ["analyze", path]
                }
            }, memoryLimitKB: 4 * 1024 * 1024, timeout: 60, namesFile: false)
            expectNoProblems(result, "\(command) mutations", runs: jobs.count, show: 10)
        }
    }

    /// A shape that needs more memory than the process may have is refused at plan time, before
    /// anything is allocated, with the tensor named; under a 4 GiB address-space limit the budget
    /// follows the limit.
    func testHostileShapeIsRefusedAtPlanTimeWithTheTensorNamed() throws {
        let model = TestSupport.samples.appendingPathComponent("tiny_cnn.onnx").path
        // 3 x 20000 x 20000 floats in (4.5 GiB), 8 channels of the same out of the first conv.
        let r = try TestSupport.run(["run", model, "--random", "--threads", "1", "--input-shape", "input=1,3,20000,20000"],
                                    memoryLimitKB: 4 * 1024 * 1024, timeout: 60)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertFalse(r.signaled)
        XCTAssertTrue(r.stderr.contains("memory budget") && r.stderr.contains("'c1'") && r.stderr.contains(model), r.stderr)
        // The same model within a budget set by hand, and a budget too small for it.
        let ok = try TestSupport.run(["run", model, "--random", "--max-memory", "64M"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let small = try TestSupport.run(["run", model, "--random", "--max-memory", "16K"])
        XCTAssertEqual(small.status, 1, small.stderr)
        XCTAssertTrue(small.stderr.contains("16.0 KB"), small.stderr)
        let bad = try TestSupport.run(["run", model, "--random", "--max-memory", "lots"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
    }

    /// Inputs too small for a model (nudenet's 320x320 detector given 1x1) make its Concat join
    /// tensors whose spatial sizes differ: a named error, not a copy past the smaller buffer
    /// (which read whatever lay beyond it: outputs changed from run to run).
    func testConcatOfMismatchedShapesIsRefused() throws {
        let model = TestSupport.models.appendingPathComponent("nudenet/nudenet__320n.onnx").path
        guard FileManager.default.fileExists(atPath: model) else { throw XCTSkip("run Tools/fetch-models.sh") }
        let r = try TestSupport.run(["run", model, "--random", "--threads", "1"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("/model.11/Concat") && r.stderr.contains("differ off axis 1"), r.stderr)
    }

    // MARK: helpers

    /// Prints the exit-code histogram and the first `show` problems, and fails on any problem.
    func expectNoProblems(_ result: (codes: [Int32: Int], problems: [String]), _ label: String, runs: Int, show: Int,
                          file: StaticString = #filePath, line: UInt = #line) {
        print("\(label): \(runs) runs, exit codes \(result.codes.sorted { $0.key < $1.key })")
        for p in result.problems.prefix(show) { print("  \(p)") }
        XCTAssertEqual(result.problems.count, 0, label, file: file, line: line)
    }

    /// `each` mutations of every file in `sources`, in order, with the paths they will be written to.
    func mutants(of sources: [URL], each: Int, prefix: String, _ rng: inout SplitMix) throws -> [(URL, Data)] {
        var jobs: [(URL, Data)] = []
        for src in sources {
            let data = try Data(contentsOf: src)
            for i in 0..<each { jobs.append((tmp.appendingPathComponent("\(prefix)\(jobs.count)-\(i).\(src.pathExtension)"), mutate(data, &rng))) }
        }
        return jobs
    }

    /// Writes each mutated file, runs `modellens ARGS... FILE` on it in parallel under a memory limit,
    /// and returns the exit-code histogram and every run that died from a signal, hung, exited with
    /// another code or (when `namesFile`) failed without naming the file. Failing inputs are kept in
    /// .build/fuzz-failures for reproduction.
    func runMutations(_ jobs: [(URL, Data)], command: (String) -> [String], memoryLimitKB: Int, timeout: TimeInterval,
                      namesFile: Bool) -> (codes: [Int32: Int], problems: [String]) {
        let lock = NSLock()
        var problems: [String] = []
        var codes: [Int32: Int] = [:]
        DispatchQueue.concurrentPerform(iterations: jobs.count) { i in
            let (url, data) = jobs[i]
            FileManager.default.createFile(atPath: url.path, contents: data)
            let r = try? TestSupport.run(command(url.path), memoryLimitKB: memoryLimitKB, timeout: timeout)
            try? FileManager.default.removeItem(at: url)
            lock.lock()
            defer { lock.unlock() }
            guard let r else { problems.append("\(url.lastPathComponent): could not run"); return }
            codes[r.status, default: 0] += 1
            if r.signaled || r.timedOut || !(r.status == 0 || r.status == 1) {
                problems.append("\(url.lastPathComponent): status \(r.status) signaled=\(r.signaled) timedOut=\(r.timedOut) \(r.stderr.suffix(300))")
                let keep = TestSupport.root.appendingPathComponent(".build/fuzz-failures")
                try? FileManager.default.createDirectory(at: keep, withIntermediateDirectories: true)
                FileManager.default.createFile(atPath: keep.appendingPathComponent(url.lastPathComponent).path, contents: data)
            }
            if namesFile && r.status == 1 && !r.stderr.contains(url.path) {
                problems.append("\(url.lastPathComponent): error does not name the file: \(r.stderr.prefix(200))")
            }
        }
        return (codes, problems)
    }

    func realModels(limit: Int, maxBytes: Int = 3_000_000) -> [URL] {
        var out: [URL] = []
        for dir in ["rapidocr", "mediapipe", "magika"] {
            let d = TestSupport.models.appendingPathComponent(dir)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []
            for f in files.sorted() where f.hasSuffix(".onnx") || f.hasSuffix(".tflite") {
                let url = d.appendingPathComponent(f)
                let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? .max
                if size <= maxBytes { out.append(url); break }
            }
        }
        return Array(out.prefix(limit))
    }

    func mutate(_ data: Data, _ rng: inout SplitMix) -> Data {
        var b = [UInt8](data)
        guard !b.isEmpty else { return data }
        let kind = rng.next() % 6
        let count = 1 + Int(rng.next() % 8)
        for _ in 0..<count {
            let at = Int(rng.next() % UInt64(b.count))
            switch kind {
            case 0: b[at] ^= UInt8(1 << (rng.next() % 8))                          // bit flip
            case 1: b[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][Int(rng.next() % 5)]   // boundary byte
            case 2: b[at] = UInt8(truncatingIfNeeded: rng.next())                   // random byte
            case 3:                                                                 // overwrite 4 bytes with a large int
                let v = [UInt32.max, 0x7fff_ffff, 0x8000_0000, 0x0010_0000][Int(rng.next() % 4)]
                for k in 0..<4 where at + k < b.count { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
            case 4:                                                                 // delete a chunk
                let n = min(Int(rng.next() % 64) + 1, b.count - at)
                b.removeSubrange(at..<(at + n))
                if b.isEmpty { return Data([0]) }
            default:                                                                // duplicate a chunk
                let n = min(Int(rng.next() % 64) + 1, b.count - at)
                b.insert(contentsOf: b[at..<(at + n)], at: at)
            }
        }
        return Data(b)
    }
}

/// A small deterministic generator for reproducible mutations.
