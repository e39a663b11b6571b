/// What a shape rule sees of one node: its input types, small integer
/// contents of inputs where known (constants, or shape arithmetic such as
/// `Shape -> Gather -> Concat`), and its attributes.
public struct RuleContext {
    public let node: Node
    public let inputTypes: [TensorType?]
    let inputValues: [[Dim]?]
    let inputConstants: [TensorData?]
    /// Integer contents computed for outputs (Shape, Gather of a shape, ...).
    public var outputValues: [Int: [Dim]] = [:]

    public func type(_ i: Int) -> TensorType? { i < inputTypes.count ? inputTypes[i] : nil }
    public func dims(_ i: Int) -> [Dim]? { type(i)?.shape.dims }
    public func hasInput(_ i: Int) -> Bool { i < node.inputs.count && node.inputs[i] != nil }
    /// Symbolic integer contents of input `i` (e.g. a Reshape's target shape).
    public func values(_ i: Int) -> [Dim]? { i < inputValues.count ? inputValues[i] : nil }
    /// Known integer contents of input `i`.
    public func ints(_ i: Int) -> [Int]? {
        guard let v = values(i) else { return nil }
        var out: [Int] = []
        for d in v {
            guard let x = d.value else { return nil }
            out.append(x)
        }
        return out
    }
    /// The constant tensor behind input `i`, if it is one.
    public func constant(_ i: Int) -> TensorData? { i < inputConstants.count ? inputConstants[i] : nil }
    public var attributes: [String: Attribute] { node.attributes }
    public func int(_ k: String) -> Int? { node.int(k) }
    public func ints(_ k: String) -> [Int]? { node.ints(k) }
}

/// Raised by a rule when the node's inputs contradict its op (wrong rank,
/// mismatched sizes). Shape inference turns it into a warning.
public struct ShapeRuleError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Computes output types from input types; nil entries mean "unknown".
public typealias ShapeRule = (inout RuleContext) throws -> [TensorType?]

/// The table from op to shape rule, assembled from the op families.
public enum ShapeRules {
    public static let table: [OpKind: ShapeRule] = {
        var t: [OpKind: ShapeRule] = [:]
        for family in [elementwiseRules, convRules, linalgRules, tensorRules, resizeRules, reduceRules, controlFlowRules] {
            for (name, rule) in family { t[OpKind(name)] = rule }
        }
        return t
    }()
}

/// Shape inference over a graph, in topological order.
///
/// Shapes the file declares are a starting point: a value whose shape a rule
/// can compute gets the computed one (symbols such as `batch` flow through),
/// and the file's declaration is kept where no rule applies or the rule
/// cannot decide. A computed shape that contradicts a concrete declared one is
/// reported as a warning and the computed shape wins.
public enum ShapeInference {
    /// Per-run statistics, for tests and `inspect`.
    public struct Report: Sendable {
        public var warnings: [String] = []
        /// Node outputs whose shape a rule computed.
        public var computed = 0
        /// Node outputs left as the file declared them.
        public var declaredOnly = 0
    }

    /// Runs inference on `graph`, first fixing the named inputs' shapes.
    @discardableResult
    public static func run(_ graph: Graph, inputShapes: [String: Shape] = [:]) -> Report {
        var report = Report()
        for (name, shape) in inputShapes {
            guard let id = graph.value(named: name) else {
                report.warnings.append("--input-shape names '\(name)', which is not an input of the graph")
                continue
            }
            graph.values[id].type.shape = shape
        }
        infer(graph, report: &report)
        return report
    }

    static func infer(_ graph: Graph, report: inout Report) {
        // Integer contents known so far, by value id.
        var known: [ValueID: [Dim]] = [:]
        for v in graph.values {
            guard let c = v.constant, c.shape.count <= 1 else { continue }
            if let ints = c.integers(limit: 64) {
                known[v.id] = ints.map { .known($0) }
            } else if c.dtype.isFloatingPoint, let d = c.doubles(limit: 64), d.allSatisfy({ $0.rounded() == $0 && abs($0) < 1e15 }) {
                // Exporters often compute shapes in float; whole numbers count.
                known[v.id] = d.map { .known(Int($0)) }
            }
        }
        for (index, node) in graph.nodes.enumerated() {
            guard let rule = ShapeRules.table[node.op] else {
                report.declaredOnly += node.outputs.count
                continue
            }
            // Control flow: bodies read outer values by name; give them the outer types known
            // now, and infer the bodies again before the node's rule reads their outputs.
            for (_, body) in node.subgraphs {
                var refreshed = false
                for v in body.values where v.producer == nil && v.constant == nil && !body.inputs.contains(v.id) {
                    if let outer = graph.value(named: v.name), graph.values[outer].type != v.type, graph.values[outer].type.shape.dims != nil {
                        body.values[v.id].type = graph.values[outer].type
                        refreshed = true
                    }
                }
                if refreshed { var sub = Report(); infer(body, report: &sub) }
            }
            let inTypes = node.inputs.map { $0.map { graph.values[$0].type } }
            let inValues = node.inputs.map { $0.flatMap { known[$0] } }
            let inConstants = node.inputs.map { $0.flatMap { graph.values[$0].constant } }
            var ctx = RuleContext(node: node, inputTypes: inTypes, inputValues: inValues, inputConstants: inConstants)
            let result: [TensorType?]
            do {
                result = try rule(&ctx)
            } catch {
                report.warnings.append("node '\(node.name)' (\(node.sourceOp)): \(error)")
                report.declaredOnly += node.outputs.count
                continue
            }
            if ctx.outputValues[0] == nil, node.outputs.count == 1,
               let folded = IntegerFolding.fold(node, inputs: inValues, integerTyped: inTypes.first??.dtype.isFloatingPoint == false) {
                ctx.outputValues[0] = folded
            }
            for (k, out) in node.outputs.enumerated() {
                if let v = ctx.outputValues[k] { known[out] = v }
                guard k < result.count, let computed = result[k] else {
                    report.declaredOnly += 1
                    continue
                }
                let declared = graph.values[out].type
                graph.values[out].type = merge(computed: computed, declared: declared)
                report.computed += 1
                if let d = declared.shape.concrete, let c = computed.shape.concrete, d != c, !graph.values[out].name.isEmpty {
                    report.warnings.append("node '\(node.name)' (\(node.sourceOp)) output '\(graph.values[out].name)': the file declares \(declared.shape), inference gives \(computed.shape)")
                }
            }
            _ = index
        }
    }

    /// The computed type, with gaps filled from the declaration.
    static func merge(computed: TensorType, declared: TensorType) -> TensorType {
        var out = computed
        if out.dtype == .undefined { out.dtype = declared.dtype }
        guard let cd = computed.shape.dims else {
            out.shape = declared.shape
            return out
        }
        if let dd = declared.shape.dims, dd.count == cd.count {
            out.shape = Shape(zip(cd, dd).map { c, d in
                switch (c, d) {
                case (.known, _): return c
                case (_, .known): return d
                case (.symbol, _): return c
                case (.unknown, _): return d
                }
            })
        }
        return out
    }
}

// MARK: - helpers shared by the rule families

/// Normalises a possibly negative axis against a rank.
func normalizeAxis(_ axis: Int, rank: Int) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0, a < max(rank, 1) || (rank == 0 && a == 0) else {
        throw ShapeRuleError("axis \(axis) is out of range for rank \(rank)")
    }
    return a
}

/// numpy-style broadcasting of several shapes.
func broadcast(_ shapes: [[Dim]]) throws -> [Dim] {
    let rank = shapes.map(\.count).max() ?? 0
    var out = [Dim](repeating: .known(1), count: rank)
    for s in shapes {
        let offset = rank - s.count
        for (i, d) in s.enumerated() {
            let cur = out[offset + i]
            out[offset + i] = try broadcastDim(cur, d)
        }
    }
    return out
}

func broadcastDim(_ a: Dim, _ b: Dim) throws -> Dim {
    switch (a, b) {
    case (.known(1), _): return b
    case (_, .known(1)): return a
    case (.known(let x), .known(let y)):
        if x != y { throw ShapeRuleError("cannot broadcast sizes \(x) and \(y)") }
        return a
    case (.known, _): return a
    case (_, .known): return b
    case (.symbol(let x), .symbol(let y)) where x == y: return a
    default: return .unknown
    }
}

/// Multiplies dims; symbolic products stay unknown unless a factor is 0.
func dimProduct(_ dims: ArraySlice<Dim>) -> Dim {
    var n = 1
    for d in dims {
        guard let v = d.value else {
            if dims.count == 1 { return d }
            return .unknown
        }
        let (r, o) = n.multipliedReportingOverflow(by: v)
        if o { return .unknown }
        n = r
    }
    return .known(n)
}

extension TensorType {
    static func of(_ dtype: DType, _ dims: [Dim]?) -> TensorType { TensorType(dtype: dtype, shape: Shape(dims)) }
}

/// Evaluates small integer computations on shape values (at most 64
/// elements): the arithmetic exporters emit between `Shape` and `Reshape`,
/// `Range`, `Expand` or `ConstantOfShape`. Symbols pass through where the
/// result is the same symbol (`x * 1`, `x + 0`, casts).
enum IntegerFolding {
    static let limit = 64

    /// `integerTyped`: the operands are integers (Div truncates) rather than floats holding whole numbers.
    static func fold(_ node: Node, inputs: [[Dim]?], integerTyped: Bool) -> [Dim]? {
        func vals(_ i: Int) -> [Dim]? { i < inputs.count ? inputs[i] : nil }
        switch node.op.rawValue {
        case "Identity", "Cast", "Floor", "Ceil", "Round", "Squeeze", "Unsqueeze", "Flatten", "Reshape":
            guard let a = vals(0), a.count <= limit else { return nil }
            return a
        case "Neg":
            guard let a = vals(0) else { return nil }
            return elementwise([a]) { .known(-$0[0]) }
        case "Abs":
            guard let a = vals(0) else { return nil }
            return elementwise([a]) { .known(abs($0[0])) }
        case "Add", "Sub", "Mul", "Div", "Max", "Min", "Mod", "Equal", "Less", "Greater":
            guard let a = vals(0), let b = vals(1) else { return nil }
            let op = node.op.rawValue
            // Identities keep symbols: x + 0, x - 0, x * 1, x / 1.
            if b.count == 1, case .known(let k) = b[0], a.count <= limit,
               (k == 0 && (op == "Add" || op == "Sub")) || (k == 1 && (op == "Mul" || op == "Div")) { return a }
            if a.count == 1, case .known(let k) = a[0], b.count <= limit,
               (k == 0 && op == "Add") || (k == 1 && op == "Mul") { return b }
            return elementwise([a, b]) { x in
                let (p, q) = (x[0], x[1])
                switch op {
                case "Add": return .known(p &+ q)
                case "Sub": return .known(p &- q)
                case "Mul": return .known(p &* q)
                case "Div":
                    // Integer division truncates toward zero; a float division must come out whole.
                    guard q != 0 else { return .unknown }
                    return integerTyped || p % q == 0 ? .known(p / q) : .unknown
                case "Mod": return q == 0 ? .unknown : .known(p % q)
                case "Max": return .known(max(p, q))
                case "Min": return .known(min(p, q))
                case "Equal": return .known(p == q ? 1 : 0)
                case "Less": return .known(p < q ? 1 : 0)
                default: return .known(p > q ? 1 : 0)
                }
            }
        case "Where":
            guard let c = vals(0), let x = vals(1), let y = vals(2) else { return nil }
            let n = max(c.count, x.count, y.count)
            guard n <= limit, [c.count, x.count, y.count].allSatisfy({ $0 == 1 || $0 == n }) else { return nil }
            return (0..<n).map { i in
                guard let cv = c[c.count == 1 ? 0 : i].value else { return .unknown }
                return cv != 0 ? x[x.count == 1 ? 0 : i] : y[y.count == 1 ? 0 : i]
            }
        case "Range":
            guard let s = vals(0)?.first?.value, let l = vals(1)?.first?.value, let d = vals(2)?.first?.value, d != 0 else { return nil }
            let n = max(0, Int((Double(l - s) / Double(d)).rounded(.up)))
            guard n <= limit else { return nil }
            return (0..<n).map { .known(s + $0 * d) }
        case "ConstantOfShape":
            guard let shape = vals(0), let count = Shape(shape).elementCount, count <= limit else { return nil }
            let fill = node.attributes["value"]?.tensor?.doubles(limit: 1)?.first ?? 0
            guard fill.rounded() == fill else { return nil }
            return Array(repeating: .known(Int(fill)), count: count)
        default:
            return nil
        }
    }

    /// Broadcasts 1-element operands against the others; all sizes must agree otherwise.
    static func elementwise(_ operands: [[Dim]], _ f: ([Int]) -> Dim) -> [Dim]? {
        let n = operands.map(\.count).max() ?? 0
        guard n <= limit, operands.allSatisfy({ $0.count == 1 || $0.count == n }) else { return nil }
        return (0..<n).map { i in
            var xs: [Int] = []
            for o in operands {
                guard let v = o[o.count == 1 ? 0 : i].value else { return .unknown }
                xs.append(v)
            }
            return f(xs)
        }
    }
}
