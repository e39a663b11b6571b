import ModelIR

/// Unstructured magnitude pruning, one threshold per layer (paper 003 §2.1): in each layer the
/// `sparsity` share of weights with the smallest magnitudes become zero. The file stays dense,
/// so it is no smaller and, on dense kernels, no faster: the report shows exactly that.
enum MagnitudePruning {
    static func apply(_ g: Graph, sparsity: Double, selected: (Node) -> Bool, log: inout CompressionLog) {
        var done = Set<ValueID>()
        for node in g.nodes where Compressor.layerOps.contains(node.op.rawValue) && selected(node) {
            guard let (id, w) = Compressor.weight(of: node, in: g) else { continue }
            // A weight shared by two layers is pruned once.
            guard done.insert(id).inserted else { continue }
            guard var values = Weights.floats(w) else {
                log.skipped.append(LayerSkip(layer: node.name, op: node.op.rawValue, method: "prune", reason: "weights are \(w.dtype.rawValue), not float32"))
                continue
            }
            let n = values.count
            let cut = Int((Double(n) * sparsity).rounded())
            guard cut > 0 else { continue }
            let magnitudes = values.map(abs).sorted()
            let threshold = magnitudes[cut - 1]
            // Ties at the threshold: zero in order until the count is reached, so every layer
            // gets the sparsity asked for, not more.
            var zeroed = 0
            for i in 0..<n where abs(values[i]) < threshold && zeroed < cut {
                values[i] = 0
                zeroed += 1
            }
            for i in 0..<n where zeroed < cut && values[i] != 0 && abs(values[i]) == threshold {
                values[i] = 0
                zeroed += 1
            }
            g.values[id].constant = Weights.tensor(values, w.shape)
            let nonzero = values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            log.changes.append(LayerChange(layer: node.name, op: node.op.rawValue, method: "prune",
                                           detail: String(format: "sparsity %.2f", 1 - Double(nonzero) / Double(max(1, n))),
                                           parametersBefore: n, parametersAfter: nonzero))
        }
    }
}
