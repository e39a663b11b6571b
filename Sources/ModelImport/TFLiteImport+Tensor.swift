import ModelIR

extension TFLiteImport {
    /// Data movement: reshapes, concatenation, gathers, splits, padding, depth/space, slices.
    static let tensorMappings: [String: Mapping] = {
        var t: [String: Mapping] = [:]
        let direct = [
            "TRANSPOSE": "Transpose", "GATHER_ND": "GatherND", "TILE": "Tile", "BROADCAST_TO": "Expand", "EXPAND_DIMS": "ExpandDims",
            "STRIDED_SLICE": "StridedSlice", "SLICE": "SliceBySize", "PACK": "Pack", "UNPACK": "Unpack", "ZEROS_LIKE": "ZerosLike",
            "FILL": "Fill", "RANGE": "Range", "REVERSE_V2": "ReverseV2", "SCATTER_ND": "ScatterNDTF", "DENSIFY": "Densify",
            "WHERE": "NonZeroTF", "ONE_HOT": "OneHotTF", "SHAPE": "Shape", "TOPK_V2": "TopK",
        ]
        for (builtin, op) in direct { t[builtin] = named(op) }
        t["CONCATENATION"] = { node, _, _ in
            node.op = .concat
            node.attributes["axis"] = .int(int(node, "axis") ?? 0)
        }
        t["RESHAPE"] = { node, _, _ in node.op = .reshape }
        for builtin in ["PAD", "PADV2", "MIRROR_PAD"] {
            t[builtin] = { node, builtin, _ in
                node.op = OpKind("Pad")
                node.attributes["pairs_layout"] = .int(1)
                if builtin == "MIRROR_PAD" { node.attributes["mode"] = .string(node.attributes["mode"]?.string == "SYMMETRIC" ? "symmetric" : "reflect") }
            }
        }
        t["GATHER"] = { node, _, _ in
            node.op = OpKind("Gather")
            node.attributes["axis"] = .int(int(node, "axis") ?? 0)
        }
        t["SPLIT"] = { node, _, graph in
            // Inputs: axis (constant), value -> value; axis as attribute.
            node.op = OpKind("Split")
            if node.inputs.count == 2, let axisID = node.inputs[0] {
                if let axis = graph.values[axisID].constant?.integers(limit: 1)?.first { node.attributes["axis"] = .int(axis) }
                node.inputs = [node.inputs[1]]
            }
        }
        t["SPLIT_V"] = { node, _, graph in
            // Inputs: value, size_splits, axis (constant) -> value, split.
            node.op = OpKind("Split")
            if node.inputs.count == 3, let axisID = node.inputs[2] {
                if let axis = graph.values[axisID].constant?.integers(limit: 1)?.first { node.attributes["axis"] = .int(axis) }
                node.inputs = Array(node.inputs.prefix(2))
            }
        }
        t["SQUEEZE"] = { node, _, _ in
            node.op = OpKind("Squeeze")
            if let dims = node.attributes["squeeze_dims"]?.ints { node.attributes["axes"] = .ints(dims) }
        }
        for builtin in ["DEPTH_TO_SPACE", "SPACE_TO_DEPTH"] {
            t[builtin] = { node, builtin, _ in
                node.op = OpKind(builtin == "DEPTH_TO_SPACE" ? "DepthToSpace" : "SpaceToDepth")
                node.dataLayout = .nhwc
                if let b = int(node, "block_size") { node.attributes["blocksize"] = .int(b) }
            }
        }
        return t
    }()
}
