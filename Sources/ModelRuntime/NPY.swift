import Foundation
import ModelIR

/// Reading and writing .npy files (NumPy's format, version 1.0/2.0, little-endian, C order).
public enum NPY {
    static let dtypes: [String: DType] = ["<f4": .float32, "<f8": .float64, "<i8": .int64, "<i4": .int32, "|i1": .int8, "|u1": .uint8, "|b1": .bool, "<f2": .float16, "<i2": .int16]

    public static func read(_ path: String) throws -> RTensor {
        guard let data = FileManager.default.contents(atPath: path) else { throw RuntimeError.input("\(path): cannot read") }
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
            throw RuntimeError.input("\(path): not a .npy file")
        }
        let major = bytes[6]
        let headerLen = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8 : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        let start = major == 1 ? 10 : 12
        guard start + headerLen <= bytes.count else { throw RuntimeError.input("\(path): truncated header") }
        let header = String(decoding: bytes[start..<(start + headerLen)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = field("descr").flatMap({ $0.split(separator: "'").first.map(String.init) }), let dtype = dtypes[descr] else {
            throw RuntimeError.input("\(path): unsupported dtype in \(header)")
        }
        if field("fortran_order")?.hasPrefix("True") == true { throw RuntimeError.input("\(path): Fortran order is not supported") }
        guard let shapeText = field("shape"), let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")") else {
            throw RuntimeError.input("\(path): no shape in header")
        }
        let shape = shapeText[shapeText.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let t = RTensor.allocate(shape, dtype)
        let body = start + headerLen
        guard bytes.count - body >= t.byteCount else { throw RuntimeError.input("\(path): \(bytes.count - body) data bytes for shape \(shape)") }
        bytes.withUnsafeBytes { t.raw.copyMemory(from: $0.baseAddress! + body, byteCount: t.byteCount) }
        return t
    }

    public static func write(_ t: RTensor, to path: String) throws {
        guard let descr = dtypes.first(where: { $0.value == t.dtype })?.key else { throw RuntimeError.input("cannot write \(t.dtype.rawValue) as .npy") }
        let shape = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        out.append(Data(header.utf8))
        out.append(Data(bytes: t.raw, count: t.byteCount))
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

