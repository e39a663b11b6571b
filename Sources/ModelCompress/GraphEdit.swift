import ModelIR

/// Adding the values a split layer needs to a graph: names that do not collide with the
/// graph's, constants with their data, activations with their type.
struct GraphEdit {
    let graph: Graph

    func unique(_ base: String) -> String {
        var name = base, k = 1
        while graph.value(named: name) != nil { name = "\(base)_\(k)"; k += 1 }
        return name
    }

    func constant(_ name: String, _ values: [Float], _ shape: [Int]) -> ValueID {
        let id = graph.addValue(name: unique(name), type: TensorType(dtype: .float32, shape: Shape(known: shape)))
        graph.values[id].constant = Weights.tensor(values, shape)
        return id
    }

    func constant(_ name: String, _ data: TensorData) -> ValueID {
        let id = graph.addValue(name: unique(name), type: TensorType(dtype: data.dtype, shape: Shape(known: data.shape)))
        graph.values[id].constant = data
        return id
    }

    /// An activation shaped like `like` with `size` along `axis` (unknown shapes stay unknown).
    func activation(_ name: String, like: ValueID, axis: Int, size: Int) -> ValueID {
        let t = graph.values[like].type
        var dims = t.shape.dims
        if var d = dims, axis < d.count {
            d[axis] = .known(size)
            dims = d
        }
        return graph.addValue(name: unique(name), type: TensorType(dtype: t.dtype, shape: Shape(dims)))
    }

    /// An activation of the given dims (unknown where nil).
    func activation(_ name: String, dtype: DType, dims: [Int?]) -> ValueID {
        graph.addValue(name: unique(name), type: TensorType(dtype: dtype, shape: Shape(dims.map { $0.map { .known($0) } ?? .unknown })))
    }
}
