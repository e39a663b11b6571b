/// One dimension of a shape: a known size, a named symbol (`batch`, `N`) that
/// stands for the same size wherever it appears, or unknown.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case known(Int)
    case symbol(String)
    case unknown

    public var value: Int? {
        if case .known(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .known(let v): return String(v)
        case .symbol(let s): return s
        case .unknown: return "?"
        }
    }
}

/// A possibly symbolic shape. `dims == nil` means even the rank is unknown.
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    public var dims: [Dim]?

    public init(_ dims: [Dim]?) { self.dims = dims }
    public init(known: [Int]) { self.dims = known.map { .known($0) } }

    public static let unknownRank = Shape(nil)
    public static let scalar = Shape(known: [])

    public var rank: Int? { dims?.count }

    /// All sizes, when every dimension is known.
    public var concrete: [Int]? {
        guard let dims else { return nil }
        var out: [Int] = []
        out.reserveCapacity(dims.count)
        for d in dims {
            guard let v = d.value else { return nil }
            out.append(v)
        }
        return out
    }

    public var isConcrete: Bool { concrete != nil }

    /// Element count when concrete; nil when unknown or on overflow.
    public var elementCount: Int? {
        guard let c = concrete else { return nil }
        return Shape.product(c)
    }

    public static func product(_ sizes: [Int]) -> Int? {
        var n = 1
        for s in sizes {
            guard s >= 0 else { return nil }
            let (r, o) = n.multipliedReportingOverflow(by: s)
            if o { return nil }
            n = r
        }
        return n
    }

    public var description: String {
        guard let dims else { return "[*]" }
        return "[" + dims.map(\.description).joined(separator: ", ") + "]"
    }
}

/// The static type of a value: element type plus shape.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: Shape

    public init(dtype: DType, shape: Shape) {
        self.dtype = dtype
        self.shape = shape
    }

    public var description: String { "\(dtype.rawValue)\(shape)" }
}
