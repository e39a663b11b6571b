import CTFLite
import Foundation
import ModelIR

/// Owns the mapped, verified TFLite file; constant tensors borrow from it.
/// The mapped .tflite file (read-only, private: see FileBackedStorage).
final class TFLiteFile: FileBackedStorage {
    let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }
    var mappedBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mltfl_file_data(handle), count: Int(mltfl_file_size(handle)))
    }
    deinit { mltfl_close(handle) }
}

/// TFLite's TensorType codes.
func dtypeFromTFLite(_ code: Int32) -> DType {
    switch code {
    case 0: return .float32
    case 1: return .float16
    case 2: return .int32
    case 3: return .uint8
    case 4: return .int64
    case 5: return .string
    case 6: return .bool
    case 7: return .int16
    case 8: return .complex64
    case 9: return .int8
    case 10: return .float64
    case 11: return .complex128
    case 12: return .uint64
    case 13: return .resource
    case 14: return .variant
    case 15: return .uint32
    case 16: return .uint16
    case 17: return .int4
    case 18: return .bfloat16
    case 19: return .int2
    case 20: return .uint4
    case 21: return .float8e4m3fn
    case 22: return .float8e5m2
    default: return .undefined
    }
}

struct SparsityError: Error { let reason: String }

/// A sparse constant (TFLite's CSR-style format, no blocks), kept as the file stores it: its
/// values and index vectors stay in the mapping and are expanded to the dense form whenever the
/// tensor is read, so the model never holds the dense bytes (pose_detection's would be twice
/// its file). Every index is checked against the shape once, when the tensor is imported.
final class SparseConstant: ExpandedStorage {
    let file: TFLiteFile
    let values: UnsafeRawBufferPointer
    let shape: [Int]
    let order: [Int]
    let dims: [mltfl_sparse_dim]
    let strides: [Int]
    let elementSize: Int
    let byteCount: Int

    init(_ file: TFLiteFile, _ s: Int32, _ t: Int32, values: UnsafeRawBufferPointer, dtype: DType, shape: [Int]) throws {
        var traversal: UnsafePointer<Int32>?, blockMap: UnsafePointer<Int32>?
        var tc: Int32 = 0, bc: Int32 = 0
        var dims = [mltfl_sparse_dim](repeating: mltfl_sparse_dim(), count: 16)
        let n = Int(mltfl_tensor_sparsity(file.handle, s, t, &traversal, &tc, &blockMap, &bc, &dims, 16))
        guard n == shape.count, bc == 0 else { throw SparsityError(reason: "sparsity with blocks or \(n) dims for a rank-\(shape.count) tensor is not supported") }
        let order = (0..<Int(tc)).map { Int(traversal![$0]) }
        guard order.count == n, Set(order) == Set(0..<n) else { throw SparsityError(reason: "invalid traversal order \(order)") }
        guard let width = dtype.bitWidth, width % 8 == 0, let total = Shape.product(shape), total < (1 << 30) else {
            throw SparsityError(reason: "sparse tensor of \(dtype.rawValue) \(shape)")
        }
        for d in dims.prefix(n) where d.format == 1 {
            guard Self.width(d.segments_type) > 0, Self.width(d.indices_type) > 0, d.segments != nil, d.indices != nil,
                  d.segments_count >= 0, d.indices_count >= 0 else { throw SparsityError(reason: "unreadable CSR vectors") }
        }
        var strides = [Int](repeating: 1, count: n)
        for i in stride(from: n - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        self.file = file
        self.values = values
        self.shape = shape
        self.order = order
        self.dims = Array(dims.prefix(n))
        self.strides = strides
        self.elementSize = width / 8
        self.byteCount = total * width / 8
        try walk(into: nil)
    }

    /// Bytes per element of a SparseIndexVector of this type (1 int32, 2 uint16, 3 uint8; 0 other).
    static func width(_ type: Int32) -> Int {
        switch type {
        case 1: return 4
        case 2: return 2
        case 3: return 1
        default: return 0
        }
    }

    /// Element `j` of a SparseIndexVector (1 int32, 2 uint16, 3 uint8).
    private static func element(_ type: Int32, _ p: UnsafeRawPointer, _ j: Int) -> Int {
        switch type {
        case 1: return Int(p.loadUnaligned(fromByteOffset: j * 4, as: Int32.self))
        case 2: return Int(p.loadUnaligned(fromByteOffset: j * 2, as: UInt16.self))
        default: return Int(p.load(fromByteOffset: j, as: UInt8.self))
        }
    }

    /// Walks the storage: level k runs over traversal dimension order[k]; `pos` indexes the
    /// previous sparse level's entries (the row of the CSR segments), as in TFLite's converter.
    /// Writes each stored value to its dense place in `out`, or only checks the indices when nil.
    private func walk(into out: UnsafeMutableRawPointer?) throws {
        var next = 0
        let e = elementSize, n = shape.count
        func visit(_ level: Int, _ offset: Int, _ pos: Int) throws {
            if level == n {
                guard (next + 1) * e <= values.count else { throw SparsityError(reason: "fewer stored values than the indices need") }
                if let out, let from = values.baseAddress { (out + offset * e).copyMemory(from: from + next * e, byteCount: e) }
                next += 1
                return
            }
            let dim = order[level], d = dims[level]
            if d.format == 0 {
                let size = Int(d.dense_size)
                guard size == shape[dim] else { throw SparsityError(reason: "dense size \(size) for dimension of \(shape[dim])") }
                for i in 0..<size { try visit(level + 1, offset + i * strides[dim], pos * size + i) }
            } else {
                guard pos + 1 < Int(d.segments_count) else { throw SparsityError(reason: "segment \(pos) out of range") }
                let from = Self.element(d.segments_type, d.segments, pos), to = Self.element(d.segments_type, d.segments, pos + 1)
                guard from >= 0, from <= to, to <= Int(d.indices_count) else { throw SparsityError(reason: "segment \(pos) out of range") }
                for j in from..<to {
                    let ix = Self.element(d.indices_type, d.indices, j)
                    guard ix >= 0 && ix < shape[dim] else { throw SparsityError(reason: "index \(ix) outside a dimension of \(shape[dim])") }
                    try visit(level + 1, offset + ix * strides[dim], j)
                }
            }
        }
        try visit(0, 0, 0)
    }

    func expand(into destination: UnsafeMutableRawPointer) {
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        try? walk(into: destination)   // checked at import
    }

    var storedByteCount: Int {
        dims.reduce(values.count) { total, d in
            total + (d.format == 1 ? Self.width(d.segments_type) * Int(d.segments_count) + Self.width(d.indices_type) * Int(d.indices_count) : 0)
        }
    }

    func releaseResidentPages() { releasePages(of: values) }
}

/// Lowers a .tflite file into the IR. The file stays mapped for the model's
/// lifetime; weights are read where they lie.
enum TFLiteImporter {
    static func load(_ path: String) throws -> Model {
        var err = [CChar](repeating: 0, count: 512)
        guard let handle = mltfl_open(path, &err, err.count) else {
            throw ImportError(path, String(cString: err))
        }
        let file = TFLiteFile(handle)
        let subgraphCount = Int(mltfl_subgraph_count(handle))
        guard subgraphCount > 0 else { throw ImportError(path, "the model has no subgraphs") }
        var graphs: [Graph] = []
        var warnings: [String] = []
        for s in 0..<subgraphCount {
            graphs.append(try lowerSubgraph(file, Int32(s), path: path, warnings: &warnings))
        }
        let model = Model(format: .tflite, path: path, fileSize: Int(mltfl_file_size(handle)), graph: graphs[0])
        model.extraGraphs = Array(graphs.dropFirst())
        model.formatVersion = Int(mltfl_version(handle))
        model.producer = cString(mltfl_description(handle))
        for i in 0..<mltfl_metadata_count(handle) {
            var name: UnsafePointer<CChar>?
            var buffer: UInt32 = 0
            if mltfl_metadata(handle, i, &name, &buffer) == 0 {
                model.metadata.append((cString(name), "buffer \(buffer)"))
            }
        }
        for i in 0..<mltfl_signature_count(handle) {
            model.metadata.append(("signature", cString(mltfl_signature_key(handle, i))))
        }
        model.warnings = warnings
        return model
    }

    static func lowerSubgraph(_ file: TFLiteFile, _ s: Int32, path: String, warnings: inout [String]) throws -> Graph {
        let h = file.handle
        let graph = Graph(name: cString(mltfl_subgraph_name(h, s)))
        var err = [CChar](repeating: 0, count: 512)
        let tensorCount = Int(mltfl_tensor_count(h, s))
        // Tensors -> values, one per index.
        for t in 0..<tensorCount {
            var info = mltfl_tensor()
            guard mltfl_get_tensor(h, s, Int32(t), &info) == 0 else { throw ImportError(path, "cannot read tensor \(t)") }
            let name = cString(info.name)
            let dtype = dtypeFromTFLite(info.type)
            var dims: [Dim]? = nil
            if info.rank >= 0 {
                let shape = (0..<Int(info.rank)).map { Int(info.shape[$0]) }
                var sig: [Int]? = nil
                if info.signature_rank == info.rank, let p = info.signature {
                    sig = (0..<Int(info.signature_rank)).map { Int(p[$0]) }
                }
                dims = shape.enumerated().map { i, v in
                    if let sig, sig[i] < 0 { return .unknown }
                    return v >= 0 ? .known(v) : .unknown
                }
            }
            let id = graph.addValue(name: name, type: TensorType(dtype: dtype, shape: Shape(dims)), distinct: true)
            var quant: QuantizationParams? = nil
            if info.scale_count > 0 {
                let scales = (0..<Int(info.scale_count)).map { info.scale[$0] }
                let zps = (0..<Int(info.zero_point_count)).map { info.zero_point[$0] }
                quant = QuantizationParams(scales: scales, zeroPoints: zps, axis: scales.count > 1 ? Int(info.quantized_dimension) : nil)
            }
            graph.values[id].quantization = quant
            if info.buffer > 0 {
                var data: UnsafePointer<UInt8>?
                var size: UInt64 = 0
                guard mltfl_buffer(h, info.buffer, &data, &size, &err, err.count) == 0 else {
                    throw ImportError(path, "tensor '\(name)': " + String(cString: err))
                }
                if size > 0 && info.has_sparsity != 0 {
                    let shape = dims?.compactMap(\.value) ?? []
                    let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: Int(size))
                    do {
                        let sparse = try SparseConstant(file, s, Int32(t), values: bytes, dtype: dtype, shape: shape)
                        graph.values[id].constant = TensorData(dtype: dtype, shape: shape, storage: .expanded(sparse), quantization: quant)
                    } catch let e as SparsityError {
                        throw ImportError(path, "tensor '\(name)': \(e.reason)")
                    }
                } else if size > 0 {
                    let shape = dims?.compactMap(\.value) ?? []
                    if info.has_sparsity == 0, dtype != .string, let count = Shape.product(shape),
                       let need = dtype.byteCount(elements: count), need != Int(size) {
                        throw ImportError(path, "tensor '\(name)' declares shape \(shape) of \(dtype.rawValue) (\(need) bytes) but its buffer \(info.buffer) holds \(size) bytes")
                    }
                    let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: Int(size))
                    graph.values[id].constant = TensorData(dtype: dtype, shape: shape, storage: .borrowed(bytes, owner: file), quantization: quant)
                }
            }
        }
        func tensorIndex(_ i: Int32, _ what: String) throws -> ValueID {
            guard i >= 0, Int(i) < tensorCount else {
                throw ImportError(path, "\(what) refers to tensor \(i), but subgraph \(s) has \(tensorCount) tensors")
            }
            return Int(i)
        }
        var io: UnsafePointer<Int32>?
        let nIn = mltfl_subgraph_io(h, s, 0, &io)
        for k in 0..<Int(nIn) { graph.inputs.append(try tensorIndex(io![k], "subgraph input \(k)")) }
        let nOut = mltfl_subgraph_io(h, s, 1, &io)
        for k in 0..<Int(nOut) { graph.outputs.append(try tensorIndex(io![k], "subgraph output \(k)")) }

        // Operators.
        let opcodeCount = mltfl_opcode_count(h)
        var attrBuffer = [mltfl_attr](repeating: mltfl_attr(), count: 64)
        for o in 0..<mltfl_operator_count(h, s) {
            var op = mltfl_operator()
            guard mltfl_get_operator(h, s, o, &op) == 0 else { throw ImportError(path, "cannot read operator \(o)") }
            guard op.opcode_index < UInt32(max(opcodeCount, 0)) else {
                throw ImportError(path, "operator \(o) uses opcode \(op.opcode_index), but the model has \(opcodeCount)")
            }
            var builtin: Int32 = 0
            var custom: UnsafePointer<CChar>?
            var version: Int32 = 1
            mltfl_opcode(h, Int32(op.opcode_index), &builtin, &custom, &version)
            let builtinName = mltfl_builtin_name(builtin).map { String(cString: $0) } ?? "BUILTIN_\(builtin)"
            let isCustom = builtinName == "CUSTOM"
            let sourceOp = isCustom ? cString(custom) : builtinName
            var inputs: [ValueID?] = []
            for k in 0..<Int(op.input_count) {
                let i = op.inputs[k]
                inputs.append(i < 0 ? nil : try tensorIndex(i, "operator \(o) input \(k)"))
            }
            var outputs: [ValueID] = []
            for k in 0..<Int(op.output_count) {
                let i = op.outputs[k]
                guard i >= 0 else { continue }
                outputs.append(try tensorIndex(i, "operator \(o) output \(k)"))
            }
            var attrs: [String: Attribute] = [:]
            let n = mltfl_operator_options(h, s, o, &attrBuffer, Int32(attrBuffer.count))
            for k in 0..<Int(n) {
                let a = attrBuffer[k]
                let key = cString(a.name)
                switch a.kind {
                case Int32(MLTFL_ATTR_INT.rawValue):
                    attrs[key] = a.text != nil ? .string(cString(a.text)) : .int(Int(a.i))
                case Int32(MLTFL_ATTR_BOOL.rawValue): attrs[key] = .int(Int(a.i))
                case Int32(MLTFL_ATTR_FLOAT.rawValue): attrs[key] = .float(a.f)
                case Int32(MLTFL_ATTR_INTS.rawValue):
                    let p = a.data?.assumingMemoryBound(to: Int32.self)
                    attrs[key] = .ints((0..<Int(a.count)).map { Int(p![$0]) })
                case Int32(MLTFL_ATTR_FLOATS.rawValue):
                    let p = a.data?.assumingMemoryBound(to: Float.self)
                    attrs[key] = .floats((0..<Int(a.count)).map { Double(p![$0]) })
                case Int32(MLTFL_ATTR_STRING.rawValue): attrs[key] = .string(cString(a.text))
                default: attrs[key] = .opaque(key)
                }
            }
            var node = Node(name: outputs.first.map { graph.values[$0].name } ?? "op\(o)", op: .opaque,
                            sourceOp: sourceOp.isEmpty ? "CUSTOM" : sourceOp,
                            domain: isCustom ? "tflite.custom" : "tflite", version: Int(version),
                            inputs: inputs, outputs: outputs, attributes: attrs)
            if isCustom { node.customName = node.sourceOp }
            if isCustom, op.custom_options_size > 0 {
                node.attributes["custom_options_bytes"] = .int(Int(op.custom_options_size))
                // The bytes themselves (a flexbuffer, usually), borrowed from the file, for writers.
                let bytes = UnsafeRawBufferPointer(start: op.custom_options, count: Int(op.custom_options_size))
                node.attributes["custom_options"] = .tensor(TensorData(dtype: .uint8, shape: [bytes.count], storage: .borrowed(bytes, owner: file)))
            }
            if !isCustom { TFLiteImport.lower(&node, builtin: builtinName, graph: graph) }
            graph.nodes.append(node)
        }
        do {
            try graph.sortTopologically()
        } catch let e as GraphError {
            throw ImportError(path, "subgraph \(s): \(e.description)")
        }
        return graph
    }
}
