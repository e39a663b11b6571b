import ModelIR

/// The kernels the executor runs for a graph, from the same passes it plans with: nodes folded
/// at load time (ConstantFolding) run none, and the FusionPlan puts folded BatchNorms,
/// activations and residual Adds inside the kernel of the node before them. The constants the
/// fusion plan sees are the file's and the outputs of folded nodes (fp16 weights widened), as in
/// the executor.
public enum KernelPlan {
    public static func make(_ graph: Graph) -> (kernels: [KernelStep], folded: Set<Int>) {
        let folded = ConstantFolding.foldable(graph)
        var foldedValues = Set<ValueID>()
        for i in folded { for o in graph.nodes[i].outputs { foldedValues.insert(o) } }
        let constants = FusionPlan.Constants(
            type: { v in
                if let c = graph.values[v].constant { return (c.dtype, c.shape) }
                guard foldedValues.contains(v), let dims = graph.values[v].type.shape.dims else { return nil }
                let shape = dims.compactMap(\.value)
                return shape.count == dims.count ? (graph.values[v].type.dtype, shape) : nil
            },
            floats: { v in graph.values[v].constant?.doubles(limit: 1 << 20)?.map(Float.init) })
        let plan = FusionPlan.make(graph, constants)
        let steps = graph.nodes.indices.filter { !folded.contains($0) }
        return (plan.kernelSteps(steps), folded)
    }
}
