/// A count that may depend on symbolic sizes: a polynomial with integer
/// coefficients over dimension symbols, e.g. `4.1 G × batch`. Costs stay
/// symbolic until the symbols are bound (`evaluate`). Unknown dimensions
/// appear as the symbol `?`. Arithmetic saturates instead of trapping.
public struct SymCount: Hashable, Sendable, CustomStringConvertible {
    /// Monomial (sorted symbol names, repeated for powers) -> coefficient.
    public private(set) var terms: [[String]: Int]

    public init(_ value: Int) { terms = value == 0 ? [:] : [[]: value] }
    public init(terms: [[String]: Int]) { self.terms = terms.filter { $0.value != 0 } }

    public static let zero = SymCount(0)

    /// The product of a shape's dims.
    public init(product dims: [Dim]) {
        var coefficient = 1
        var symbols: [String] = []
        for d in dims {
            switch d {
            case .known(let v): coefficient = SymCount.mul(coefficient, v)
            case .symbol(let s): symbols.append(s)
            case .unknown: symbols.append("?")
            }
        }
        self.init(terms: [symbols.sorted(): coefficient])
    }

    /// The value when no symbol is involved.
    public var constant: Int? {
        if terms.isEmpty { return 0 }
        if terms.count == 1, let c = terms[[]] { return c }
        return nil
    }

    public var isZero: Bool { terms.isEmpty }

    /// Binds symbols (unbound ones, and `?`, count as `default`).
    public func evaluate(_ bindings: [String: Int] = [:], default def: Int = 1) -> Int {
        var total = 0
        for (mono, c) in terms {
            var v = c
            for s in mono { v = SymCount.mul(v, bindings[s] ?? def) }
            total = SymCount.add(total, v)
        }
        return total
    }

    public static func + (a: SymCount, b: SymCount) -> SymCount {
        var t = a.terms
        for (m, c) in b.terms { t[m] = add(t[m] ?? 0, c) }
        return SymCount(terms: t)
    }

    public static func += (a: inout SymCount, b: SymCount) { a = a + b }

    public static func * (a: SymCount, k: Int) -> SymCount {
        SymCount(terms: a.terms.mapValues { mul($0, k) })
    }

    public static func * (a: SymCount, b: SymCount) -> SymCount {
        var t: [[String]: Int] = [:]
        for (m1, c1) in a.terms {
            for (m2, c2) in b.terms {
                let m = (m1 + m2).sorted()
                t[m] = add(t[m] ?? 0, mul(c1, c2))
            }
        }
        return SymCount(terms: t)
    }

    /// Divides every coefficient (for counts known to divide exactly, e.g. by a group count).
    public static func / (a: SymCount, k: Int) -> SymCount {
        guard k != 0 else { return a }
        return SymCount(terms: a.terms.mapValues { $0 / k })
    }

    static func mul(_ a: Int, _ b: Int) -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? ((a < 0) != (b < 0) ? Int.min : Int.max) : r
    }

    static func add(_ a: Int, _ b: Int) -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? (b < 0 ? Int.min : Int.max) : r
    }

    /// `4.1 G × batch + 12.5 M`, largest term first.
    public var description: String {
        if terms.isEmpty { return "0" }
        return terms.sorted { ($0.key.count, $0.value) > ($1.key.count, $1.value) }.map { m, c in
            let n = SymCount.human(c)
            if m.isEmpty { return n }
            return (c == 1 ? m : [n] + m).joined(separator: " × ")
        }.joined(separator: " + ")
    }

    /// 1234567 -> "1.23 M".
    public static func human(_ v: Int) -> String {
        let a = Double(abs(v))
        let (div, unit): (Double, String) = a >= 1e12 ? (1e12, " T") : a >= 1e9 ? (1e9, " G") : a >= 1e6 ? (1e6, " M") : a >= 1e3 ? (1e3, " k") : (1, "")
        if div == 1 { return String(v) }
        let x = Double(v) / div
        let digits = abs(x) >= 100 ? 0 : abs(x) >= 10 ? 1 : 2
        return String(format: "%.\(digits)f", x) + unit
    }
}
