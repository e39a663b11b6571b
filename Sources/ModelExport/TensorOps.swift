import ModelIR

/// Small constant-tensor transformations the converters need (weights are permuted,
/// folded and reshaped once, at conversion time).
enum TensorOps {
    /// `t` with axes permuted: out.shape[i] = t.shape[perm[i]].
    static func permute(_ t: TensorData, _ perm: [Int]) -> TensorData {
        let rank = t.shape.count
        precondition(perm.count == rank)
        let outShape = perm.map { t.shape[$0] }
        let e = max(1, (t.dtype.bitWidth ?? 8) / 8)
        let n = t.elementCount
        var out = [UInt8](repeating: 0, count: n * e)
        t.withBytes { src in
            out.withUnsafeMutableBytes { dst in
                if let from = src.baseAddress, let to = dst.baseAddress { permuteElements(from, into: to, shape: t.shape, perm: perm, elementSize: e) }
            }
        }
        return TensorData(dtype: t.dtype, shape: outShape, storage: .owned(out), quantization: t.quantization)
    }

    static func reshaped(_ t: TensorData, _ shape: [Int]) -> TensorData {
        switch t.storage {
        case .owned(let a): return TensorData(dtype: t.dtype, shape: shape, storage: .owned(a), quantization: t.quantization)
        case .borrowed(let p, let owner): return TensorData(dtype: t.dtype, shape: shape, storage: .borrowed(p, owner: owner), quantization: t.quantization)
        case .expanded(let e): return TensorData(dtype: t.dtype, shape: shape, storage: .expanded(e), quantization: t.quantization)
        }
    }

    static func floats(_ t: TensorData) -> [Float]? {
        t.doubles(limit: Int.max)?.map { Float($0) }
    }

    static func make(_ values: [Float], _ shape: [Int]) -> TensorData {
        TensorData(dtype: .float32, shape: shape, storage: .owned(values.withUnsafeBytes { Array($0) }))
    }

    static func make(int32 values: [Int], _ shape: [Int]? = nil) -> TensorData {
        let v = values.map { Int32(clamping: $0) }
        return TensorData(dtype: .int32, shape: shape ?? [v.count], storage: .owned(v.withUnsafeBytes { Array($0) }))
    }

    static func make(int64 values: [Int], _ shape: [Int]? = nil) -> TensorData {
        let v = values.map { Int64($0) }
        return TensorData(dtype: .int64, shape: shape ?? [v.count], storage: .owned(v.withUnsafeBytes { Array($0) }))
    }

    /// The inverse permutation.
    static func inverse(_ p: [Int]) -> [Int] {
        var inv = [Int](repeating: 0, count: p.count)
        for (i, a) in p.enumerated() { inv[a] = i }
        return inv
    }
}

/// Copies the elements of a dense tensor of `shape` into `dst` with its axes permuted
/// (dst's axis i is the source's axis perm[i]); `elementSize` bytes each.
public func permuteElements(_ src: UnsafeRawPointer, into dst: UnsafeMutableRawPointer, shape: [Int], perm: [Int], elementSize e: Int) {
    let rank = shape.count
    let outShape = perm.map { shape[$0] }
    let n = shape.reduce(1, *)
    var inStrides = [Int](repeating: 1, count: rank)
    if rank > 1 { for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] } }
    var index = [Int](repeating: 0, count: rank)
    for o in 0..<n {
        var s = 0
        for i in 0..<rank { s += index[i] * inStrides[perm[i]] }
        dst.advanced(by: o * e).copyMemory(from: src.advanced(by: s * e), byteCount: e)
        var k = rank - 1
        while k >= 0 {
            index[k] += 1
            if index[k] < outShape[k] { break }
            index[k] = 0
            k -= 1
        }
    }
}
