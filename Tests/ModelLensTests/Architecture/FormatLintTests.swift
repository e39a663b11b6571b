import Foundation
import ModelLensTestSupport
import XCTest

/// Below the importers nothing knows a file format: ModelIR, ModelAnalysis, ModelRuntime and
/// ModelCompress do not name a format, read an opset, domain or op version, or branch on the
/// op's name in the file (`sourceOp`). Those stay on the node as provenance, which reports and messages may
/// print; importers turn every variant into attributes and input slots of the canonical op
/// (ONNXImport, TFLiteImport).
final class FormatLintTests: XCTestCase {
    static let modules = ["ModelIR", "ModelAnalysis", "ModelRuntime", "ModelCompress"]

    /// (rule, pattern) pairs matched against code with its comments removed.
    static let rules: [(String, String)] = [
        ("names a file format in a string", #""[^"\n]*(?i:\bonnx\b|\btflite\b)[^"\n]*""#),
        ("imports a format module", #"^\s*import\s+(ModelImport|ModelExport|CONNX|CTFLite)\b"#),
        ("names a format's type", #"\b(ONNX|TFLite|Onnx|Tflite)[A-Z]\w*"#),
        ("names a file format", #"\.(onnx|tflite)\b|\bcase\s+(onnx|tflite)\b"#),
        ("reads a node's domain or version", #"(?<!self)\.(domain|version)\b"#),
        ("reads an opset", #"(?<!self)\.opsets\b|\bopset\b"#),
        ("branches on the op's name in the file", #"sourceOp\s*(==|!=|\.has(Prefix|Suffix)|\.contains)|(==|!=)\s*[\w.]*\.sourceOp\b|switch\s+[\w.]*sourceOp"#),
    ]

    /// The code of a Swift file without its comments (string literals kept).
    static func code(_ text: String) -> [String] {
        var out: [String] = []
        var inBlock = false
        for line in text.components(separatedBy: "\n") {
            var kept = "", inString = false
            var chars = Array(line)[...]
            while let c = chars.first {
                if inBlock {
                    if c == "*", chars.dropFirst().first == "/" { inBlock = false; chars = chars.dropFirst(2); continue }
                    chars = chars.dropFirst(); continue
                }
                if c == "\"" { inString.toggle() }
                if !inString, c == "/", let n = chars.dropFirst().first {
                    if n == "/" { break }
                    if n == "*" { inBlock = true; chars = chars.dropFirst(2); continue }
                }
                kept.append(c)
                chars = chars.dropFirst()
            }
            out.append(kept)
        }
        return out
    }

    static func violations(in text: String, file: String) -> [String] {
        var found: [String] = []
        for (k, line) in code(text).enumerated() {
            for (rule, pattern) in rules where line.range(of: pattern, options: .regularExpression) != nil {
                found.append("\(file):\(k + 1): \(rule): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        return found
    }

    func testNoFormatKnowledgeBelowTheImporters() throws {
        var found: [String] = []
        var files = 0
        for module in FormatLintTests.modules {
            let dir = TestSupport.root.appendingPathComponent("Sources/\(module)")
            let names = try FileManager.default.subpathsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") }.sorted()
            for name in names {
                files += 1
                let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
                found += FormatLintTests.violations(in: text, file: "\(module)/\(name)")
            }
        }
        XCTAssertGreaterThan(files, 40)
        XCTAssertEqual(found, [], "\n" + found.joined(separator: "\n"))
    }

    /// The rules catch what they are for (and leave comments alone).
    func testTheRulesCatchFormatKnowledge() {
        let caught = [#"if node.domain == "" { }"#, #"let legacy = n.version < 13"#, #"guard n.sourceOp == "Upsample" else { }"#,
                      #"let k = "tflite.custom""#, #"import CONNX"#, #"let o = model.opsets[""]"#, #"ONNXDefaults.apply(to: &n)"#,
                      #"if model.format == .tflite { }"#, #"case onnx, tflite"#]
        for line in caught { XCTAssertFalse(FormatLintTests.violations(in: line, file: "x").isEmpty, line) }
        let allowed = [#"// Before opset 13 ONNX coerced the input to 2-D"#, #"throw RuntimeError.unsupported(op: n.sourceOp, node: n.label)"#,
                       #"self.version = version"#, #"let s = "a // b" + x.name"#]
        for line in allowed { XCTAssertEqual(FormatLintTests.violations(in: line, file: "x"), [], line) }
    }
}
