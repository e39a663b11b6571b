// Shape rules of control-flow ops, from their bodies' output types (bodies are inferred first).

/// Two types of one value from different branches: per dimension, equal sizes stay, others become unknown.
private func join(_ a: TensorType, _ b: TensorType) -> TensorType {
    guard let da = a.shape.dims, let db = b.shape.dims, da.count == db.count else {
        return TensorType(dtype: a.dtype == b.dtype ? a.dtype : .undefined, shape: .unknownRank)
    }
    return TensorType(dtype: a.dtype == b.dtype ? a.dtype : .undefined, shape: Shape(zip(da, db).map { $0 == $1 ? $0 : .unknown }))
}

let controlFlowRules: [(String, ShapeRule)] = [
    ("If", { ctx in
        guard let then = ctx.node.subgraphs["then_branch"], let other = ctx.node.subgraphs["else_branch"] else { return [] }
        return ctx.node.outputs.indices.map { k -> TensorType? in
            guard k < then.outputs.count, k < other.outputs.count else { return nil }
            return join(then.values[then.outputs[k]].type, other.values[other.outputs[k]].type)
        }
    }),
    // Scan: state outputs keep the state inputs' types; scan outputs stack the body's per-step
    // outputs along a new first axis of the sequence length.
    ("Scan", { ctx in
        let n = ctx.node
        // The form with a batch axis and a sequence_lens input (ONNX opset 8): left to the file's
        // declarations.
        if n.int("batch_axis") == 1 { return n.outputs.map { _ in nil } }
        let scanInputs = n.int("num_scan_inputs") ?? 1
        let states = max(0, n.inputs.count - scanInputs)
        var steps: Dim = .unknown
        if states < n.inputs.count, let d = ctx.dims(states)?.first { steps = d }
        let body = n.subgraphs["body"]
        return n.outputs.indices.map { k -> TensorType? in
            if k < states { return ctx.type(k) }
            guard let body, k < body.outputs.count, let dims = body.values[body.outputs[k]].type.shape.dims else { return nil }
            return TensorType(dtype: body.values[body.outputs[k]].type.dtype, shape: Shape([steps] + dims))
        }
    }),
    // Loop: loop-carried values keep the types of their initial values (inputs 2...).
    ("Loop", { ctx in
        let carried = max(0, ctx.node.inputs.count - 2)
        return ctx.node.outputs.indices.map { k in k < carried ? ctx.type(k + 2) : nil }
    }),
    ("SequenceLength", { _ in [TensorType(dtype: .int64, shape: .scalar)] }),
]

// MARK: - costs (see CostModel.convention)

/// Control flow counts nothing of its own; what its bodies compute is not counted yet (a loop's
/// trip count is often known only at run time).
let controlFlowCosts: [(String, CostRule)] = controlFlowRules.map { name, _ in (name, { _ in (SymCount.zero, SymCount.zero) }) }
