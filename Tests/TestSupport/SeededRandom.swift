/// Seeded generators: the same inputs and geometries on every run and every machine.

/// A 64-bit linear congruential generator (Knuth's MMIX constants), as the kernel tests draw
/// their geometries: changing it changes which cases they run.
public struct Rng {
    public var s: UInt64
    public init(s: UInt64) { self.s = s }
    /// A value in [0, n).
    public mutating func next(_ n: Int) -> Int {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Int((s >> 33) % UInt64(n))
    }
    /// A float in [-1, 1], in steps of 0.001.
    public mutating func float() -> Float { Float(next(2001)) / 1000 - 1 }
}

/// SplitMix64, for the bad-input mutations.
public struct SplitMix {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
