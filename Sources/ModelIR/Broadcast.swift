/// numpy broadcasting over concrete shapes, as the executor's elementwise kernels see their
/// operands: the analysis asks the kernels which loop such operands take with the same strides.
public enum Broadcast {
    /// The broadcast shape of `a` and `b`; nil when they do not broadcast.
    public static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let x = i < r - a.count ? 1 : a[i - (r - a.count)]
            let y = i < r - b.count ? 1 : b[i - (r - b.count)]
            if x != y && x != 1 && y != 1 { return nil }
            out[i] = x == 1 ? y : x
        }
        return out
    }

    /// Element strides of `shape` seen through broadcasting to `target` (0 along broadcast axes).
    public static func strides(_ shape: [Int], to target: [Int]) -> [Int] {
        let r = target.count
        var strides = [Int](repeating: 0, count: r)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            let ti = i + (r - shape.count)
            strides[ti] = shape[i] == 1 ? 0 : s
            s *= shape[i]
        }
        return strides
    }
}
