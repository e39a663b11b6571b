import CONNX
import Foundation
import ModelIR

/// Owns a decoded ModelProto; tensors borrow their raw_data from it. Where the model was loaded
/// mapped (ml_onnx_load_mapped), the large raw_data lie in the file's mapping, which this object
/// keeps until the message is freed.
final class ONNXMessage {
    let model: UnsafeMutablePointer<Onnx__ModelProto>
    var mapping = ml_mapping()
    init(_ model: UnsafeMutablePointer<Onnx__ModelProto>, mapping: ml_mapping = ml_mapping()) {
        self.model = model
        self.mapping = mapping
    }
    deinit {
        if mapping.data != nil {
            ml_onnx_free_mapped(model, &mapping)
            ml_unmap_file(&mapping)
        } else {
            ml_onnx_free(model)
        }
    }
    /// Whether `p` lies in the mapping.
    func maps(_ p: UnsafeRawPointer) -> Bool {
        guard let base = mapping.data else { return false }
        return p >= UnsafeRawPointer(base) && p < UnsafeRawPointer(base) + mapping.size
    }
}

/// The owner of tensor bytes that lie in an ONNX file's mapping (the message keeps the mapping):
/// file-backed, so that pages of weights no kernel reads where they lie (converted or packed at
/// plan time) can be given back.
final class ONNXFileBytes: FileBackedStorage {
    let message: ONNXMessage
    init(_ message: ONNXMessage) { self.message = message }
    var mappedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: message.mapping.data, count: message.mapping.size) }
    /// Not read in place at run time: the tensors lie back to back at odd offsets, and pages of a
    /// weight that was copied or packed came back mapped (the kernel faulting in a neighbour's page
    /// maps the pages around it too), 1.5-6 MB over ResNet50's memory bound on first runs. A
    /// runtime copies what it reads on every run (as the parsed message's copy was), and packs
    /// from the file without a second resident copy.
    var readInPlace: Bool { false }
}

/// A read-only mapping of an external-data file, shared by the tensors in it.
final class MappedFile: FileBackedStorage {
    var mapping = ml_mapping()
    let path: String
    init(path: String) throws {
        self.path = path
        var err = [CChar](repeating: 0, count: 256)
        if ml_map_file(path, &mapping, &err, err.count) != 0 {
            throw ImportError(path, String(cString: err))
        }
    }
    deinit { ml_unmap_file(&mapping) }
    var mappedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mapping.data, count: mapping.size) }
}

@inline(__always) func cString(_ p: UnsafePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

@inline(__always) func cString(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

/// Elements of a protobuf-c repeated message field.
func messages<T>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) -> [UnsafeMutablePointer<T>] {
    guard let p, n > 0 else { return [] }
    return (0..<n).compactMap { p[$0] }
}

/// ONNX's TensorProto.DataType codes.
func dtypeFromONNX(_ code: Int32) -> DType {
    switch code {
    case 1: return .float32
    case 2: return .uint8
    case 3: return .int8
    case 4: return .uint16
    case 5: return .int16
    case 6: return .int32
    case 7: return .int64
    case 8: return .string
    case 9: return .bool
    case 10: return .float16
    case 11: return .float64
    case 12: return .uint32
    case 13: return .uint64
    case 14: return .complex64
    case 15: return .complex128
    case 16: return .bfloat16
    case 17: return .float8e4m3fn
    case 18: return .float8e4m3fnuz
    case 19: return .float8e5m2
    case 20: return .float8e5m2fnuz
    case 21: return .uint4
    case 22: return .int4
    case 23: return .float4e2m1
    case 24: return .float8e8m0
    case 25: return .uint2
    case 26: return .int2
    default: return .undefined
    }
}

/// Lowers an ONNX ModelProto into the IR.
enum ONNXImporter {
    /// Nested graphs deeper than this are refused (hostile files).
    static let maxGraphDepth = 32

    static func load(_ path: String) throws -> Model {
        var err = [CChar](repeating: 0, count: 512)
        var mapping = ml_mapping()
        guard let proto = ml_onnx_load_mapped(path, &mapping, &err, err.count) else {
            throw ImportError(path, String(cString: err))
        }
        let message = ONNXMessage(proto, mapping: mapping)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let p = proto.pointee
        guard let g = p.graph else {
            throw ImportError(path, "not an ONNX model: the ModelProto has no graph (is this an ONNX file?)")
        }
        var opsets: [String: Int] = [:]
        for o in messages(p.n_opset_import, p.opset_import) {
            let domain = cString(o.pointee.domain)
            opsets[domain == "ai.onnx" ? "" : domain] = Int(o.pointee.version)
        }
        if opsets.isEmpty, p.ir_version > 0 && p.ir_version < 3 { opsets[""] = 1 }
        let lowering = Lowering(path: path, message: message, opsets: opsets)
        let graph = try lowering.lowerGraph(g, depth: 0, outer: nil)
        let model = Model(format: .onnx, path: path, fileSize: size, graph: graph)
        model.formatVersion = Int(p.ir_version)
        let producer = cString(p.producer_name)
        let version = cString(p.producer_version)
        model.producer = version.isEmpty ? producer : "\(producer) \(version)"
        model.opsets = opsets
        for e in messages(p.n_metadata_props, p.metadata_props) {
            model.metadata.append((cString(e.pointee.key), cString(e.pointee.value)))
        }
        model.warnings = lowering.warnings
        return model
    }

    final class Lowering {
        let path: String
        /// What borrowed tensor bytes keep alive (the decoded message).
        let message: AnyObject
        let opsets: [String: Int]
        let directory: String
        var warnings: [String] = []
        var externalFiles: [String: MappedFile] = [:]
        /// The owner of bytes that lie in the model file's mapping (nil when nothing does).
        let fileBytes: ONNXFileBytes?

        init(path: String, message: AnyObject, opsets: [String: Int]) {
            self.path = path
            self.message = message
            if let m = message as? ONNXMessage, m.mapping.data != nil { fileBytes = ONNXFileBytes(m) } else { fileBytes = nil }
            self.opsets = opsets
            self.directory = (path as NSString).deletingLastPathComponent
        }

        func fail(_ reason: String) -> ImportError { ImportError(path, reason) }

        // MARK: types

        func tensorType(_ t: UnsafeMutablePointer<Onnx__TypeProto>?) -> (TensorType, isTensor: Bool) {
            guard let t else { return (TensorType(dtype: .undefined, shape: .unknownRank), true) }
            switch t.pointee.value_case {
            case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
                let tt = t.pointee.tensor_type!.pointee
                return (TensorType(dtype: dtypeFromONNX(tt.elem_type), shape: shape(tt.shape)), true)
            case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
                let tt = t.pointee.sparse_tensor_type!.pointee
                return (TensorType(dtype: dtypeFromONNX(tt.elem_type), shape: shape(tt.shape)), true)
            default:
                return (TensorType(dtype: .undefined, shape: .unknownRank), false)
            }
        }

        func shape(_ s: UnsafeMutablePointer<Onnx__TensorShapeProto>?) -> Shape {
            guard let s else { return .unknownRank }
            let dims = messages(s.pointee.n_dim, s.pointee.dim).map { d -> Dim in
                switch d.pointee.value_case {
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                    let v = d.pointee.dim_value
                    return v >= 0 ? .known(Int(v)) : .unknown
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                    let name = cString(d.pointee.dim_param)
                    return name.isEmpty ? .unknown : .symbol(name)
                default: return .unknown
                }
            }
            return Shape(dims)
        }

        // MARK: tensors

        func tensor(_ tp: UnsafeMutablePointer<Onnx__TensorProto>) throws -> TensorData {
            let t = tp.pointee
            let name = cString(t.name)
            let label = name.isEmpty ? "an unnamed tensor" : "tensor '\(name)'"
            let dtype = dtypeFromONNX(t.data_type)
            if dtype == .undefined {
                throw fail("\(label) has unknown data type \(t.data_type)")
            }
            var dims: [Int] = []
            for i in 0..<t.n_dims {
                let d = t.dims[i]
                guard d >= 0 else { throw fail("\(label) has a negative dimension (\(d))") }
                dims.append(Int(d))
            }
            guard let count = Shape.product(dims) else {
                throw fail("\(label) declares shape \(dims), whose element count overflows")
            }
            if dtype == .string {
                guard t.n_string_data == count || count == 0 else {
                    throw fail("\(label) declares \(count) strings but holds \(t.n_string_data)")
                }
                return TensorData(dtype: dtype, shape: dims, storage: .owned([]))
            }
            guard let need = dtype.byteCount(elements: count) else {
                throw fail("\(label) declares \(count) elements of \(dtype.rawValue), too many to address")
            }
            if t.has_data_location != 0 && t.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
                return try external(t, label: label, dtype: dtype, dims: dims, need: need)
            }
            if t.has_raw_data != 0 || t.raw_data.len > 0 {
                let len = t.raw_data.len
                guard len == need else {
                    throw fail("\(label) declares shape \(dims) of \(dtype.rawValue) (\(need) bytes) but raw_data holds \(len) bytes")
                }
                let buffer = UnsafeRawBufferPointer(start: t.raw_data.data, count: len)
                if let fileBytes, let p = buffer.baseAddress, fileBytes.message.maps(p) {
                    return TensorData(dtype: dtype, shape: dims, storage: .borrowed(buffer, owner: fileBytes))
                }
                return TensorData(dtype: dtype, shape: dims, storage: .borrowed(buffer, owner: message))
            }
            // Typed storage: convert to little-endian packed bytes (owned).
            func check(_ have: Int, _ per: Int = 1) throws {
                guard have == count * per || (count == 0 && have == 0) else {
                    throw fail("\(label) declares \(count) elements of \(dtype.rawValue) but holds \(have / max(per, 1))")
                }
            }
            var bytes: [UInt8] = []
            switch dtype {
            case .float32:
                try check(t.n_float_data)
                bytes = Array(UnsafeRawBufferPointer(start: t.float_data, count: t.n_float_data * 4))
            case .complex64:
                try check(t.n_float_data, 2)
                bytes = Array(UnsafeRawBufferPointer(start: t.float_data, count: t.n_float_data * 4))
            case .float64:
                try check(t.n_double_data)
                bytes = Array(UnsafeRawBufferPointer(start: t.double_data, count: t.n_double_data * 8))
            case .complex128:
                try check(t.n_double_data, 2)
                bytes = Array(UnsafeRawBufferPointer(start: t.double_data, count: t.n_double_data * 8))
            case .int64:
                try check(t.n_int64_data)
                bytes = Array(UnsafeRawBufferPointer(start: t.int64_data, count: t.n_int64_data * 8))
            case .uint64, .uint32:
                try check(t.n_uint64_data)
                let width = dtype == .uint64 ? 8 : 4
                bytes.reserveCapacity(count * width)
                for i in 0..<t.n_uint64_data {
                    withUnsafeBytes(of: t.uint64_data[i].littleEndian) { bytes += $0.prefix(width) }
                }
            case .int32:
                try check(t.n_int32_data)
                bytes = Array(UnsafeRawBufferPointer(start: t.int32_data, count: t.n_int32_data * 4))
            case .int8, .uint8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0:
                try check(t.n_int32_data)
                bytes = (0..<t.n_int32_data).map { UInt8(truncatingIfNeeded: t.int32_data[$0]) }
            case .int16, .uint16, .float16, .bfloat16:
                try check(t.n_int32_data)
                bytes.reserveCapacity(count * 2)
                for i in 0..<t.n_int32_data {
                    let v = UInt16(truncatingIfNeeded: t.int32_data[i])
                    bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8))
                }
            case .int4, .uint4, .float4e2m1, .int2, .uint2:
                // Packed several to a byte; int32_data carries the packed bytes.
                bytes = (0..<t.n_int32_data).map { UInt8(truncatingIfNeeded: t.int32_data[$0]) }
                guard bytes.count == need || count == 0 else {
                    throw fail("\(label) declares \(count) elements of \(dtype.rawValue) (\(need) bytes) but holds \(bytes.count) bytes")
                }
            default:
                throw fail("\(label) has data type \(dtype.rawValue), which cannot hold constant data")
            }
            return TensorData(dtype: dtype, shape: dims, storage: .owned(bytes))
        }

        func external(_ t: Onnx__TensorProto, label: String, dtype: DType, dims: [Int], need: Int) throws -> TensorData {
            var location = "", offset = 0, length: Int?
            for e in messages(t.n_external_data, t.external_data) {
                let key = cString(e.pointee.key), value = cString(e.pointee.value)
                switch key {
                case "location": location = value
                case "offset":
                    guard let v = Int(value), v >= 0 else { throw fail("\(label): bad external-data offset '\(value)'") }
                    offset = v
                case "length":
                    guard let v = Int(value), v >= 0 else { throw fail("\(label): bad external-data length '\(value)'") }
                    length = v
                default: break
                }
            }
            guard !location.isEmpty else { throw fail("\(label) is stored externally but names no location") }
            let parts = location.split(separator: "/")
            guard !location.hasPrefix("/"), !parts.contains("..") else {
                throw fail("\(label): external-data location '\(location)' leaves the model's directory")
            }
            let full = (directory as NSString).appendingPathComponent(location)
            let file: MappedFile
            if let f = externalFiles[full] { file = f } else {
                do { file = try MappedFile(path: full) } catch let e as ImportError {
                    throw fail("\(label): external data '\(location)': \(e.reason)")
                }
                externalFiles[full] = file
            }
            let len = length ?? (file.mapping.size - min(offset, file.mapping.size))
            guard len == need else {
                throw fail("\(label) declares \(need) bytes but its external data holds \(len)")
            }
            guard offset <= file.mapping.size, len <= file.mapping.size - offset else {
                throw fail("\(label): external data '\(location)' range \(offset)+\(len) lies past its end (\(file.mapping.size) bytes)")
            }
            let base = file.mapping.data.map { UnsafeRawPointer($0).advanced(by: offset) }
            return TensorData(dtype: dtype, shape: dims, storage: .borrowed(UnsafeRawBufferPointer(start: base, count: len), owner: file))
        }

        // MARK: attributes

        func attribute(_ a: Onnx__AttributeProto, depth: Int, outer: Graph?) throws -> Attribute {
            switch a.type.rawValue {
            case 1: return .float(Double(a.f))
            case 2: return .int(Int(a.i))
            case 3: return .string(String(decoding: UnsafeRawBufferPointer(start: a.s.data, count: a.s.len), as: UTF8.self))
            case 4:
                guard let t = a.t else { throw fail("attribute '\(cString(a.name))' of type TENSOR has no tensor") }
                return .tensor(try tensor(t))
            case 5:
                guard let g = a.g else { throw fail("attribute '\(cString(a.name))' of type GRAPH has no graph") }
                return .graph(try lowerGraph(g, depth: depth + 1, outer: outer))
            case 6: return .floats((0..<a.n_floats).map { Double(a.floats[$0]) })
            case 7: return .ints((0..<a.n_ints).map { Int(a.ints[$0]) })
            case 8:
                return .strings((0..<a.n_strings).map {
                    String(decoding: UnsafeRawBufferPointer(start: a.strings[$0].data, count: a.strings[$0].len), as: UTF8.self)
                })
            case 9: return .tensors(try messages(a.n_tensors, a.tensors).map { try tensor($0) })
            case 10: return .graphs(try messages(a.n_graphs, a.graphs).map { try lowerGraph($0, depth: depth + 1, outer: outer) })
            case 11, 12: return .opaque("sparse tensor")
            case 13, 14: return .opaque("type proto")
            default:
                // IR version 1 files have no `type`: infer it from the filled field.
                if a.n_ints > 0 { return .ints((0..<a.n_ints).map { Int(a.ints[$0]) }) }
                if a.n_floats > 0 { return .floats((0..<a.n_floats).map { Double(a.floats[$0]) }) }
                if a.has_i != 0 { return .int(Int(a.i)) }
                if a.has_f != 0 { return .float(Double(a.f)) }
                if a.has_s != 0 { return .string(String(decoding: UnsafeRawBufferPointer(start: a.s.data, count: a.s.len), as: UTF8.self)) }
                if let t = a.t { return .tensor(try tensor(t)) }
                if let g = a.g { return .graph(try lowerGraph(g, depth: depth + 1, outer: outer)) }
                return .opaque("undefined")
            }
        }

        // MARK: graphs

        func lowerGraph(_ gp: UnsafeMutablePointer<Onnx__GraphProto>, depth: Int, outer: Graph?) throws -> Graph {
            guard depth <= ONNXImporter.maxGraphDepth else {
                throw fail("graphs nest deeper than \(ONNXImporter.maxGraphDepth) levels")
            }
            let gpv = gp.pointee
            let graph = Graph(name: cString(gpv.name))
            // Initializers first: they are constants, and in IR < 4 also listed as inputs.
            var initialized = Set<String>()
            for tp in messages(gpv.n_initializer, gpv.initializer) {
                let name = cString(tp.pointee.name)
                let data = try tensor(tp)
                let id = graph.addValue(name: name, type: TensorType(dtype: data.dtype, shape: Shape(known: data.shape)))
                graph.values[id].constant = data
                initialized.insert(name)
            }
            for sp in messages(gpv.n_sparse_initializer, gpv.sparse_initializer) {
                // Kept as a typed value without dense data.
                let s = sp.pointee
                guard let values = s.values else { continue }
                let name = cString(values.pointee.name)
                let dims = (0..<s.n_dims).map { Dim.known(Int(max(0, s.dims[$0]))) }
                graph.addValue(name: name, type: TensorType(dtype: dtypeFromONNX(values.pointee.data_type), shape: Shape(dims)))
                initialized.insert(name)
                warnings.append("sparse initializer '\(name)' is kept without its data")
            }
            for vi in messages(gpv.n_input, gpv.input) {
                let name = cString(vi.pointee.name)
                let (type, isTensor) = tensorType(vi.pointee.type)
                if initialized.contains(name) {
                    // The declared type of an initializer-backed input refines nothing; keep the data's.
                    continue
                }
                let id = graph.addValue(name: name, type: type)
                graph.values[id].isTensor = isTensor
                graph.inputs.append(id)
            }
            for vi in messages(gpv.n_value_info, gpv.value_info) {
                let name = cString(vi.pointee.name)
                let (type, isTensor) = tensorType(vi.pointee.type)
                if graph.value(named: name) == nil {
                    let id = graph.addValue(name: name, type: type)
                    graph.values[id].isTensor = isTensor
                }
            }
            for vi in messages(gpv.n_output, gpv.output) {
                let name = cString(vi.pointee.name)
                let (type, isTensor) = tensorType(vi.pointee.type)
                if let id = graph.value(named: name) {
                    if graph.values[id].constant == nil { graph.values[id].type = type }
                } else {
                    let id = graph.addValue(name: name, type: type)
                    graph.values[id].isTensor = isTensor
                }
            }
            // Nodes.
            var produced = Set<String>()
            let nodeProtos = messages(gpv.n_node, gpv.node)
            for np in nodeProtos {
                for j in 0..<np.pointee.n_output {
                    let n = cString(np.pointee.output[j])
                    if !n.isEmpty { produced.insert(n) }
                }
            }
            for (index, np) in nodeProtos.enumerated() {
                graph.nodes.append(try lowerNode(np.pointee, index: index, graph: graph, produced: produced,
                                                 initialized: initialized, depth: depth, outer: outer))
            }
            for vi in messages(gpv.n_output, gpv.output) {
                let name = cString(vi.pointee.name)
                if let id = graph.value(named: name) { graph.outputs.append(id) }
            }
            // Outputs that nothing defines.
            for id in graph.outputs {
                let v = graph.values[id]
                if v.constant == nil, !produced.contains(v.name), !graph.inputs.contains(id), outer == nil {
                    throw fail("graph output '\(v.name)' is not produced by any node, input or initializer")
                }
            }
            do {
                try graph.sortTopologically()
            } catch let e as GraphError {
                throw fail(e.description)
            }
            return graph
        }

        func lowerNode(_ n: Onnx__NodeProto, index: Int, graph: Graph, produced: Set<String>, initialized: Set<String>,
                       depth: Int, outer: Graph?) throws -> Node {
            let opType = cString(n.op_type)
            var domain = cString(n.domain)
            if domain == "ai.onnx" { domain = "" }
            let name = cString(n.name)
            let label = name.isEmpty ? "node #\(index) (\(opType))" : "node '\(name)' (\(opType))"
            guard !opType.isEmpty else { throw fail("\(label) has no op_type") }
            var inputs: [ValueID?] = []
            for j in 0..<n.n_input {
                let vname = cString(n.input[j])
                if vname.isEmpty { inputs.append(nil); continue }
                if let id = graph.value(named: vname) {
                    inputs.append(id)
                } else if produced.contains(vname) {
                    inputs.append(graph.addValue(name: vname, type: TensorType(dtype: .undefined, shape: .unknownRank)))
                } else if outer != nil || depth > 0 {
                    // A subgraph may read values of the graphs around it.
                    inputs.append(graph.addValue(name: vname, type: outerType(vname, outer)))
                } else {
                    throw fail("\(label) reads '\(vname)', which no node, input or initializer defines")
                }
            }
            var outputs: [ValueID] = []
            for j in 0..<n.n_output {
                let vname = cString(n.output[j])
                // An omitted optional output still takes a (nameless) slot.
                outputs.append(graph.addValue(name: vname, type: graph.value(named: vname).map { graph.values[$0].type } ?? TensorType(dtype: .undefined, shape: .unknownRank)))
            }
            let opset = opsets[domain] ?? (domain.isEmpty ? (opsets[""] ?? 0) : 0)
            var attrs: [String: Attribute] = [:]
            var subgraphs: [String: Graph] = [:]
            for ap in messages(n.n_attribute, n.attribute) {
                let aname = cString(ap.pointee.name)
                let value = try attribute(ap.pointee, depth: depth, outer: graph)
                switch value {
                case .graph(let g): subgraphs[aname] = g
                case .graphs(let gs): for (k, g) in gs.enumerated() { subgraphs["\(aname)[\(k)]"] = g }
                default: attrs[aname] = value
                }
            }
            let standard = domain.isEmpty || domain == "ai.onnx.ml" || (domain == "com.microsoft" && ONNXImport.microsoftOps.contains(opType))
            var node = Node(name: name, op: standard ? OpKind(opType) : .opaque, sourceOp: opType, domain: domain,
                            version: opset, inputs: inputs, outputs: outputs, attributes: attrs)
            node.subgraphs = subgraphs
            if !standard { node.customName = domain.isEmpty ? opType : "\(domain):\(opType)" }
            if domain.isEmpty { ONNXImport.canonicalize(&node, opset: opset) }
            if opType == "QLinearGlobalAveragePool", domain == "com.microsoft" {
                node.dataLayout = (node.attributes["channels_last"]?.int ?? 0) != 0 ? .nhwc : .nchw
            }
            switch opType {
            case "Constant":
                // Constants keep their node (the file has it) and give their output the data.
                if let t = constantTensor(attrs), let out = outputs.first {
                    graph.values[out].constant = t
                    graph.values[out].type = TensorType(dtype: t.dtype, shape: Shape(known: t.shape))
                    node.attributes["value"] = .tensor(t)
                }
            default: break
            }
            return node
        }

        /// The tensor a Constant node holds, in any of its spellings.
        func constantTensor(_ attrs: [String: Attribute]) -> TensorData? {
            if let t = attrs["value"]?.tensor { return t }
            func make(_ dtype: DType, _ shape: [Int], _ bytes: [UInt8]) -> TensorData {
                TensorData(dtype: dtype, shape: shape, storage: .owned(bytes))
            }
            if let f = attrs["value_float"]?.float { return make(.float32, [], withUnsafeBytes(of: Float(f)) { Array($0) }) }
            if let i = attrs["value_int"]?.int { return make(.int64, [], withUnsafeBytes(of: Int64(i)) { Array($0) }) }
            if let fs = attrs["value_floats"]?.floats { return make(.float32, [fs.count], fs.map { Float($0) }.withUnsafeBytes { Array($0) }) }
            if let is_ = attrs["value_ints"]?.ints { return make(.int64, [is_.count], is_.map { Int64($0) }.withUnsafeBytes { Array($0) }) }
            if attrs["value_string"] != nil { return make(.string, [], []) }
            if let ss = attrs["value_strings"]?.strings { return make(.string, [ss.count], []) }
            return nil
        }

        func outerType(_ name: String, _ outer: Graph?) -> TensorType {
            if let outer, let id = outer.value(named: name) { return outer.values[id].type }
            return TensorType(dtype: .undefined, shape: .unknownRank)
        }
    }
}

/// Owns a decoded TensorProto file.
final class ONNXTensorMessage {
    let tensor: UnsafeMutablePointer<Onnx__TensorProto>
    init(_ t: UnsafeMutablePointer<Onnx__TensorProto>) { tensor = t }
    deinit { ml_onnx_free_tensor(tensor) }
}

/// Reads a serialised ONNX TensorProto file (as the ONNX backend tests store inputs and outputs).
public enum ONNXTensorFile {
    public static func load(_ path: String) throws -> TensorData {
        var err = [CChar](repeating: 0, count: 256)
        guard let t = ml_onnx_load_tensor(path, &err, err.count) else { throw ImportError(path, String(cString: err)) }
        let owner = ONNXTensorMessage(t)
        let lowering = ONNXImporter.Lowering(path: path, message: owner, opsets: [:])
        return try lowering.tensor(t)
    }
}
