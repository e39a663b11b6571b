import CTFLite
import Foundation
import ModelIR

/// TFLite's TensorType code for a dtype, nil where TFLite has none.
func tfliteCode(_ d: DType) -> Int32? {
    switch d {
    case .float32: return 0
    case .float16: return 1
    case .int32: return 2
    case .uint8: return 3
    case .int64: return 4
    case .string: return 5
    case .bool: return 6
    case .int16: return 7
    case .complex64: return 8
    case .int8: return 9
    case .float64: return 10
    case .complex128: return 11
    case .uint64: return 12
    case .resource: return 13
    case .variant: return 14
    case .uint32: return 15
    case .uint16: return 16
    case .int4: return 17
    case .bfloat16: return 18
    default: return nil
    }
}

/// Writes graphs in TFLite form, as the TFLite importer produces them: each
/// node's `sourceOp` a builtin name (or a custom code with domain
/// "tflite.custom"), its builtin-options fields among its attributes, NHWC
/// activations, OHWI / 1HWO kernels. The importer's reorderings are undone
/// here (TRANSPOSE_CONV's output-shape input, SPLIT's and SPLIT_V's axis).
///
/// Constants become buffers, 16-byte aligned; a TensorData shared by several
/// values is stored once. The file is written under a temporary name and renamed.
public struct TFLiteWriter {
    public var description = "modellens"
    /// FlatBuffers cannot address more than 2 GB.
    public static let maxBytes = 2_000_000_000

    public init() {}

    public func write(_ graphs: [Graph], to path: String) throws {
        let weightBytes = graphs.flatMap(\.constants).reduce(0) { $0 + ($1.constant?.byteCount ?? 0) }
        guard weightBytes < TFLiteWriter.maxBytes - 64_000_000 else {
            throw ExportError(path, "the weights take \(weightBytes) bytes; TFLite files over 2 GB are not written yet")
        }
        let b = mltflw_new()!
        defer { mltflw_free(b) }
        var buffers: [ObjectIdentifier: UInt32] = [:]
        var err = [CChar](repeating: 0, count: 512)
        for graph in graphs {
            var index: [ValueID: Int32] = [:]
            // Sparse constants read as their dense bytes (the importer expands them on read);
            // their DENSIFY ops are dropped and the dense data stored in their place (LiteRT
            // refuses DENSIFY on dense input).
            var densified: [ValueID: TensorData] = [:]
            for node in graph.nodes where node.sourceOp == "DENSIFY" && node.domain == "tflite" {
                if let src = node.inputs.first ?? nil, let c = graph.values[src].constant, let out = node.outputs.first { densified[out] = c }
            }
            func tensor(_ id: ValueID) throws -> Int32 {
                if let i = index[id] { return i }
                let v = graph.values[id]
                guard let type = tfliteCode(v.type.dtype) else {
                    throw ExportError(path, "value '\(v.name)' is \(v.type.dtype.rawValue), which TFLite has no type for")
                }
                var buffer: UInt32 = 0
                if let c = v.constant ?? densified[id] {
                    if let known = buffers[ObjectIdentifier(c)] { buffer = known } else {
                        buffer = c.withBytes { mltflw_buffer(b, $0.baseAddress, UInt64($0.count)) }
                        buffers[ObjectIdentifier(c)] = buffer
                    }
                }
                let dims = (v.constant ?? densified[id]).map { $0.shape.map(Dim.known) } ?? v.type.shape.dims ?? []
                let shape = dims.map { Int32(clamping: $0.value ?? 1) }
                let dynamic = dims.contains { $0.value == nil }
                let signature = dims.map { Int32(clamping: $0.value ?? -1) }
                let q = v.quantization ?? v.constant?.quantization
                let scales = q?.scales ?? []
                let zps = q?.zeroPoints ?? []
                let i = mltflw_tensor(b, v.name, type, shape, Int32(shape.count), dynamic ? signature : nil, dynamic ? Int32(signature.count) : -1,
                                      buffer, scales, Int32(scales.count), zps, Int32(zps.count), Int32(q?.axis ?? 0))
                index[id] = i
                return i
            }
            /// A new int32 constant tensor (for inputs the importer turned into attributes).
            func constantTensor(_ name: String, _ values: [Int]) -> Int32 {
                let data = values.map { Int32(clamping: $0) }
                let buf = data.withUnsafeBytes { mltflw_buffer(b, $0.baseAddress, UInt64($0.count)) }
                return mltflw_tensor(b, name, 2, [Int32(data.count)], 1, nil, -1, buf, nil, 0, nil, 0, 0)
            }
            for node in graph.nodes where !(node.outputs.count == 1 && densified[node.outputs[0]] != nil) {
                let custom = node.domain == "tflite.custom"
                var code = custom ? 32 : mltflw_builtin_code(node.sourceOp)
                if custom { code = 32 }
                guard code >= 0 else {
                    throw ExportError(path, "node '\(node.name)': '\(node.sourceOp)' is not a TFLite builtin operator")
                }
                let opcode = mltflw_opcode(b, code, custom ? node.sourceOp : nil, Int32(max(1, node.version)))
                var ins: [Int32] = try node.inputs.map { try $0.map(tensor) ?? -1 }
                switch node.sourceOp {
                case "TRANSPOSE_CONV":
                    let shape = node.ints("output_shape") ?? []
                    ins = [constantTensor(node.name + "/output_shape", shape)] + [ins[1], ins[0]] + ins.dropFirst(2)
                case "SPLIT":
                    ins = [constantTensor(node.name + "/axis", [node.int("axis") ?? 0])] + ins
                case "SPLIT_V":
                    ins = ins + [constantTensor(node.name + "/axis", [node.int("axis") ?? 0])]
                default: break
                }
                let outs = try node.outputs.map(tensor)
                // Attributes as option fields; the C side keeps those the table has.
                var keep: [Any] = []
                var attrs: [mltfl_attr] = []
                for (key, value) in node.attributes.sorted(by: { $0.key < $1.key }) {
                    var a = mltfl_attr()
                    let name = strdup(key)!
                    keep.append(CStringBox(name))
                    a.name = UnsafePointer(name)
                    switch value {
                    case .int(let i): a.kind = Int32(MLTFL_ATTR_INT.rawValue); a.i = Int64(i)
                    case .float(let f): a.kind = Int32(MLTFL_ATTR_FLOAT.rawValue); a.f = f
                    case .string(let s):
                        let t = strdup(s)!
                        keep.append(CStringBox(t))
                        a.kind = Int32(MLTFL_ATTR_INT.rawValue); a.text = UnsafePointer(t)
                    case .ints(let xs):
                        let box = ArrayBox(xs.map { Int32(clamping: $0) })
                        keep.append(box)
                        a.kind = Int32(MLTFL_ATTR_INTS.rawValue); a.data = UnsafeRawPointer(box.pointer); a.count = Int32(xs.count)
                    case .floats(let xs):
                        let box = ArrayBox(xs.map { Float($0) })
                        keep.append(box)
                        a.kind = Int32(MLTFL_ATTR_FLOATS.rawValue); a.data = UnsafeRawPointer(box.pointer); a.count = Int32(xs.count)
                    default: continue
                    }
                    attrs.append(a)
                }
                let options = custom ? nil : mltflw_options_for(node.sourceOp)
                let customBytes = node.attributes["custom_options"]?.tensor
                let rc: Int32 = withExtendedLifetime(keep) {
                    if let customBytes {
                        return customBytes.withBytes { raw in
                            mltflw_operator(b, opcode, ins, Int32(ins.count), outs, Int32(outs.count), options, attrs, Int32(attrs.count),
                                            raw.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(raw.count), &err, err.count)
                        }
                    }
                    return mltflw_operator(b, opcode, ins, Int32(ins.count), outs, Int32(outs.count), options, attrs, Int32(attrs.count),
                                           nil, 0, &err, err.count)
                }
                guard rc == 0 else { throw ExportError(path, "node '\(node.name)': " + String(cString: err)) }
            }
            let gi = try graph.inputs.map(tensor)
            let go = try graph.outputs.map(tensor)
            mltflw_subgraph(b, graph.name, gi, Int32(gi.count), go, Int32(go.count))
        }
        guard mltflw_finish(b, description, path, &err, err.count) == 0 else {
            throw ExportError(path, String(cString: err))
        }
    }
}

/// Frees a strdup'ed string when dropped.
private final class CStringBox {
    let p: UnsafeMutablePointer<CChar>
    init(_ p: UnsafeMutablePointer<CChar>) { self.p = p }
    deinit { free(p) }
}

/// A stable copy of an array for a C pointer.
private final class ArrayBox<T> {
    let pointer: UnsafeMutablePointer<T>
    let count: Int
    init(_ items: [T]) {
        count = items.count
        pointer = .allocate(capacity: max(1, items.count))
        pointer.initialize(from: items, count: items.count)
    }
    deinit { pointer.deallocate() }
}
