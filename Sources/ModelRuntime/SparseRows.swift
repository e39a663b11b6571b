import CKernels

/// A matrix's nonzeros by row (compressed sparse rows, mlk_sparse_pack): what the sparse
/// kernels read for pruned weights, with each value's column.
struct SparseRows {
    let values: RTensor
    let columns: [Int32], starts: [Int32]
    let cols: Int

    /// The nonzeros of the rows x cols row-major matrix at `m`.
    init(_ m: UnsafePointer<Float>, rows: Int, cols: Int) {
        let nonzero = mlk_count_nonzero(m, rows * cols)
        values = RTensor.allocate([max(1, nonzero)], .float32)
        var columns = [Int32](repeating: 0, count: max(1, nonzero)), starts = [Int32](repeating: 0, count: rows + 1)
        mlk_sparse_pack(Int32(rows), Int32(cols), m, values.floats, &columns, &starts)
        (self.columns, self.starts, self.cols) = (columns, starts, cols)
    }

    var bytes: Int { values.byteCount + 4 * (columns.count + starts.count) }

    /// Writes the dense matrix (zeros included) to `m`.
    func fill(_ m: UnsafeMutablePointer<Float>) {
        let rows = starts.count - 1
        m.update(repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for k in Int(starts[r])..<Int(starts[r + 1]) { m[r * cols + Int(columns[k])] = values.floats[k] }
        }
    }
}
