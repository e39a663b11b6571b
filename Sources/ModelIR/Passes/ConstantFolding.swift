/// Nodes computed once, before any run: Constant nodes, and nodes whose every input is a constant
/// or the output of such a node (shape arithmetic, fp16 weights widened by a Dequantize). The
/// executor folds exactly these at plan time; the analysis counts them as no kernel.
public enum ConstantFolding {
    public static func foldable(_ graph: Graph) -> Set<Int> {
        var folded = Set<Int>()
        var constant = Set<ValueID>()
        for (v, value) in graph.values.enumerated() where value.constant != nil { constant.insert(v) }
        for (i, node) in graph.nodes.enumerated() {
            let inputs = node.inputs.compactMap { $0 }
            guard node.op.rawValue == "Constant" || (!node.inputs.isEmpty && inputs.allSatisfy(constant.contains)) else { continue }
            folded.insert(i)
            for o in node.outputs { constant.insert(o) }
        }
        return folded
    }
}
