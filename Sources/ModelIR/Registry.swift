/// One registry keyed by op name from the tables of an op's families (one table per family
/// file); where two families name the same op, the first listed wins.
public func mergeFamilies<Entry>(_ families: [[String: Entry]]) -> [String: Entry] {
    var table: [String: Entry] = [:]
    for family in families { table.merge(family) { first, _ in first } }
    return table
}
