import CONNX
import Foundation
import ModelImport
import ModelIR

/// What went wrong writing or converting a model: the file and the reason.
public struct ExportError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// ONNX's TensorProto.DataType code for a dtype (0 = undefined).
func onnxCode(_ d: DType) -> Int32 {
    switch d {
    case .float32: return 1
    case .uint8: return 2
    case .int8: return 3
    case .uint16: return 4
    case .int16: return 5
    case .int32: return 6
    case .int64: return 7
    case .string: return 8
    case .bool: return 9
    case .float16: return 10
    case .float64: return 11
    case .uint32: return 12
    case .uint64: return 13
    case .complex64: return 14
    case .complex128: return 15
    case .bfloat16: return 16
    case .float8e4m3fn: return 17
    case .float8e4m3fnuz: return 18
    case .float8e5m2: return 19
    case .float8e5m2fnuz: return 20
    case .uint4: return 21
    case .int4: return 22
    case .float4e2m1: return 23
    case .float8e8m0: return 24
    case .uint2: return 25
    case .int2: return 26
    default: return 0
    }
}

/// Writes a graph in ONNX form (each node's `sourceOp` an ONNX op type, its
/// attributes ONNX attributes) as a .onnx file through protobuf-c.
///
/// Constants without a producing node become initializers, stored as
/// raw_data that points at the tensor's bytes (no copy for borrowed weights).
/// Over `externalThreshold` bytes of weights in all, tensors of 1 KiB or more
/// go to `OUT.data` beside the model (ONNX's external data; protobuf caps a
/// message at 2 GB). The file is written under a temporary name and renamed.
public struct ONNXWriter {
    public var opsets: [String: Int]
    public var producer = "modellens"
    public var irVersion: Int?
    public var externalThreshold = 1_800_000_000

    public init(opsets: [String: Int]) { self.opsets = opsets }

    /// The IR version ONNX pairs with an opset of the default domain.
    static func irVersion(forOpset o: Int) -> Int {
        o <= 8 ? 3 : o <= 9 ? 4 : o <= 10 ? 5 : o <= 11 ? 6 : o <= 14 ? 7 : o <= 18 ? 8 : o <= 20 ? 9 : 10
    }

    public func write(_ graph: Graph, to path: String) throws {
        let arena = CArena()
        let weightBytes = graph.constants.reduce(0) { $0 + ($1.constant?.byteCount ?? 0) }
        var external: ExternalData? = nil
        if weightBytes > externalThreshold {
            external = try ExternalData(path: path + ".data")
        }
        let gp = try buildGraph(graph, arena: arena, external: &external, path: path)
        try external?.close()
        let model = arena.make(Onnx__ModelProto.self) { onnx__model_proto__init($0) }
        let mainOpset = opsets[""] ?? 13
        model.pointee.has_ir_version = 1
        model.pointee.ir_version = Int64(irVersion ?? ONNXWriter.irVersion(forOpset: mainOpset))
        model.pointee.producer_name = arena.string(producer)
        model.pointee.graph = gp
        let ids = opsets.sorted { $0.key < $1.key }.map { (domain, version) -> UnsafeMutablePointer<Onnx__OperatorSetIdProto>? in
            arena.make(Onnx__OperatorSetIdProto.self) {
                onnx__operator_set_id_proto__init($0)
                $0.pointee.domain = arena.string(domain)
                $0.pointee.has_version = 1
                $0.pointee.version = Int64(version)
            }
        }
        model.pointee.n_opset_import = ids.count
        model.pointee.opset_import = arena.array(ids)
        var err = [CChar](repeating: 0, count: 512)
        if ml_onnx_save(model, path, &err, err.count) != 0 {
            if external != nil { unlink(path + ".data") }
            throw ExportError(path, String(cString: err))
        }
    }

    /// Tensor bytes appended to a side file.
    final class ExternalData {
        let path: String
        let handle: FileHandle
        var offset = 0
        init(path: String) throws {
            self.path = path
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw ExportError(path, "cannot create the external data file")
            }
            handle = h
        }
        func append(_ bytes: UnsafeRawBufferPointer) throws -> Int {
            let at = offset
            try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: bytes.baseAddress!), count: bytes.count, deallocator: .none))
            offset += bytes.count
            return at
        }
        func close() throws { try handle.close() }
    }

    /// Unique, non-empty names for the values of a graph (TFLite tensors may share names).
    static func names(_ graph: Graph) -> [String] {
        var used = Set<String>()
        var out: [String] = []
        out.reserveCapacity(graph.values.count)
        for v in graph.values {
            var name = v.name.isEmpty ? "v\(v.id)" : v.name
            if used.contains(name) {
                var k = 1
                while used.contains("\(name)_\(k)") { k += 1 }
                name = "\(name)_\(k)"
            }
            used.insert(name)
            out.append(name)
        }
        return out
    }

    func buildGraph(_ graph: Graph, arena: CArena, external: inout ExternalData?, path: String) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        let names = ONNXWriter.names(graph)
        let gp = arena.make(Onnx__GraphProto.self) { onnx__graph_proto__init($0) }
        gp.pointee.name = arena.string(graph.name.isEmpty ? "main" : graph.name)
        let used = Set(graph.nodes.flatMap { $0.inputs.compactMap { $0 } } + graph.outputs)
        var initializers: [UnsafeMutablePointer<Onnx__TensorProto>?] = []
        for v in graph.values where v.producer == nil && v.constant != nil && used.contains(v.id) {
            initializers.append(try tensor(v.constant!, name: names[v.id], arena: arena, external: &external, path: path))
        }
        gp.pointee.n_initializer = initializers.count
        gp.pointee.initializer = arena.array(initializers)
        let inputs = graph.inputs.map { valueInfo(graph.values[$0].type, name: names[$0], arena: arena) }
        gp.pointee.n_input = inputs.count
        gp.pointee.input = arena.array(inputs)
        let outputs = graph.outputs.map { valueInfo(graph.values[$0].type, name: names[$0], arena: arena) }
        gp.pointee.n_output = outputs.count
        gp.pointee.output = arena.array(outputs)
        var nodes: [UnsafeMutablePointer<Onnx__NodeProto>?] = []
        for node in graph.nodes {
            let np = arena.make(Onnx__NodeProto.self) { onnx__node_proto__init($0) }
            if !node.name.isEmpty { np.pointee.name = arena.string(node.name) }
            np.pointee.op_type = arena.string(node.sourceOp)
            if !node.domain.isEmpty { np.pointee.domain = arena.string(node.domain) }
            let ins = (node.domain.isEmpty ? ONNXImport.fileInputs(node) : node.inputs).map { v -> UnsafeMutablePointer<CChar>? in arena.string(v.map { names[$0] } ?? "") }
            np.pointee.n_input = ins.count
            np.pointee.input = arena.array(ins)
            let outs = node.outputs.map { v -> UnsafeMutablePointer<CChar>? in
                arena.string(graph.values[v].name.isEmpty && !used.contains(v) ? "" : names[v])
            }
            np.pointee.n_output = outs.count
            np.pointee.output = arena.array(outs)
            var attrs: [UnsafeMutablePointer<Onnx__AttributeProto>?] = []
            for (key, value) in ONNXWriter.fileAttributes(node).sorted(by: { $0.key < $1.key }) {
                if let a = try attribute(key, value, arena: arena, external: &external, path: path) { attrs.append(a) }
            }
            // Subgraphs are keyed "name" or "name[k]" for GRAPHS attributes.
            var lists: [String: [(Int, Graph)]] = [:]
            for (key, g) in node.subgraphs.sorted(by: { $0.key < $1.key }) {
                if let open = key.firstIndex(of: "["), key.hasSuffix("]"), let k = Int(key[key.index(after: open)..<key.index(before: key.endIndex)]) {
                    lists[String(key[..<open]), default: []].append((k, g))
                } else {
                    let a = arena.make(Onnx__AttributeProto.self) { onnx__attribute_proto__init($0) }
                    a.pointee.name = arena.string(key)
                    a.pointee.has_type = 1
                    a.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: 5)
                    a.pointee.g = try buildGraph(g, arena: arena, external: &external, path: path)
                    attrs.append(a)
                }
            }
            for (key, items) in lists.sorted(by: { $0.key < $1.key }) {
                let a = arena.make(Onnx__AttributeProto.self) { onnx__attribute_proto__init($0) }
                a.pointee.name = arena.string(key)
                a.pointee.has_type = 1
                a.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: 10)
                let gs = try items.sorted { $0.0 < $1.0 }.map { Optional(try buildGraph($0.1, arena: arena, external: &external, path: path)) }
                a.pointee.n_graphs = gs.count
                a.pointee.graphs = arena.array(gs)
                attrs.append(a)
            }
            np.pointee.n_attribute = attrs.count
            np.pointee.attribute = arena.array(attrs)
            nodes.append(np)
        }
        gp.pointee.n_node = nodes.count
        gp.pointee.node = arena.array(nodes)
        return gp
    }

    /// A node's attributes as the file should hold them: without the defaults, the dtype names
    /// and the opset variants' attributes the importer adds (ONNXImport),
    /// with Cast's `to` as a type code again.
    static func fileAttributes(_ node: Node) -> [String: Attribute] {
        var attrs = node.attributes
        guard node.domain.isEmpty else { return attrs }
        var probe = Node(name: "", op: node.op, sourceOp: node.sourceOp, version: node.version, inputs: [], outputs: [])
        ONNXImport.canonicalize(&probe, opset: node.version)
        for (key, value) in probe.attributes where attrs[key].map({ same($0, value) }) == true { attrs[key] = nil }
        for key in ONNXImport.addedAttributes { attrs[key] = nil }
        if node.sourceOp == "Cast", let to = attrs["to"]?.string, let d = DType(rawValue: to) { attrs["to"] = .int(Int(onnxCode(d))) }
        return attrs
    }

    static func same(_ a: Attribute, _ b: Attribute) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x == y
        case (.float(let x), .float(let y)): return Float(x) == Float(y)
        case (.string(let x), .string(let y)): return x == y
        case (.ints(let x), .ints(let y)): return x == y
        default: return false
        }
    }

    func valueInfo(_ type: TensorType, name: String, arena: CArena) -> UnsafeMutablePointer<Onnx__ValueInfoProto>? {
        let vi = arena.make(Onnx__ValueInfoProto.self) { onnx__value_info_proto__init($0) }
        vi.pointee.name = arena.string(name)
        guard type.dtype != .undefined else { return vi }
        let tt = arena.make(Onnx__TypeProto__Tensor.self) { onnx__type_proto__tensor__init($0) }
        tt.pointee.has_elem_type = 1
        tt.pointee.elem_type = onnxCode(type.dtype)
        if let dims = type.shape.dims {
            let shape = arena.make(Onnx__TensorShapeProto.self) { onnx__tensor_shape_proto__init($0) }
            let ds = dims.map { d -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
                arena.make(Onnx__TensorShapeProto__Dimension.self) {
                    onnx__tensor_shape_proto__dimension__init($0)
                    switch d {
                    case .known(let v):
                        $0.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        $0.pointee.dim_value = Int64(v)
                    case .symbol(let s):
                        $0.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        $0.pointee.dim_param = arena.string(s)
                    case .unknown: break
                    }
                }
            }
            shape.pointee.n_dim = ds.count
            shape.pointee.dim = arena.array(ds)
            tt.pointee.shape = shape
        }
        let tp = arena.make(Onnx__TypeProto.self) { onnx__type_proto__init($0) }
        tp.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        tp.pointee.tensor_type = tt
        vi.pointee.type = tp
        return vi
    }

    func tensor(_ t: TensorData, name: String, arena: CArena, external: inout ExternalData?, path: String) throws -> UnsafeMutablePointer<Onnx__TensorProto> {
        let tp = arena.make(Onnx__TensorProto.self) { onnx__tensor_proto__init($0) }
        tp.pointee.name = arena.string(name)
        tp.pointee.has_data_type = 1
        tp.pointee.data_type = onnxCode(t.dtype)
        tp.pointee.n_dims = t.shape.count
        tp.pointee.dims = arena.array(t.shape.map { Int64($0) })
        guard t.dtype != .string else {
            throw ExportError(path, "constant '\(name)' holds strings, which ModelLens does not keep")
        }
        if let ext = external, t.byteCount >= 1024 {
            let at = try t.withBytes { try ext.append($0) }
            let entries = [("location", (ext.path as NSString).lastPathComponent), ("offset", String(at)), ("length", String(t.byteCount))]
            let es = entries.map { k, v -> UnsafeMutablePointer<Onnx__StringStringEntryProto>? in
                arena.make(Onnx__StringStringEntryProto.self) {
                    onnx__string_string_entry_proto__init($0)
                    $0.pointee.key = arena.string(k)
                    $0.pointee.value = arena.string(v)
                }
            }
            tp.pointee.n_external_data = es.count
            tp.pointee.external_data = arena.array(es)
            tp.pointee.has_data_location = 1
            tp.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
            return tp
        }
        tp.pointee.has_raw_data = 1
        switch t.storage {
        case .borrowed(let p, _):
            arena.keep(t)
            tp.pointee.raw_data = ProtobufCBinaryData(len: p.count, data: UnsafeMutablePointer(mutating: p.baseAddress?.assumingMemoryBound(to: UInt8.self)))
        case .owned, .expanded:
            let copy = t.withBytes { arena.bytes($0) }
            tp.pointee.raw_data = ProtobufCBinaryData(len: t.byteCount, data: copy)
        }
        return tp
    }

    func attribute(_ key: String, _ value: Attribute, arena: CArena, external: inout ExternalData?, path: String) throws -> UnsafeMutablePointer<Onnx__AttributeProto>? {
        let a = arena.make(Onnx__AttributeProto.self) { onnx__attribute_proto__init($0) }
        a.pointee.name = arena.string(key)
        a.pointee.has_type = 1
        func type(_ code: UInt32) { a.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: code) }
        func binary(_ s: String) -> ProtobufCBinaryData {
            let bytes = Array(s.utf8)
            return ProtobufCBinaryData(len: bytes.count, data: bytes.withUnsafeBytes { arena.bytes($0) })
        }
        switch value {
        case .float(let f): type(1); a.pointee.has_f = 1; a.pointee.f = Float(f)
        case .int(let i): type(2); a.pointee.has_i = 1; a.pointee.i = Int64(i)
        case .string(let s): type(3); a.pointee.has_s = 1; a.pointee.s = binary(s)
        case .tensor(let t): type(4); a.pointee.t = try tensor(t, name: "", arena: arena, external: &external, path: path)
        case .floats(let fs): type(6); a.pointee.n_floats = fs.count; a.pointee.floats = arena.array(fs.map { Float($0) })
        case .ints(let xs): type(7); a.pointee.n_ints = xs.count; a.pointee.ints = arena.array(xs.map { Int64($0) })
        case .strings(let ss): type(8); a.pointee.n_strings = ss.count; a.pointee.strings = arena.array(ss.map(binary))
        case .tensors(let ts):
            type(9)
            let tps = try ts.map { Optional(try tensor($0, name: "", arena: arena, external: &external, path: path)) }
            a.pointee.n_tensors = tps.count
            a.pointee.tensors = arena.array(tps)
        case .graph, .graphs, .opaque:
            return nil
        }
        return a
    }
}
