import Foundation

/// Memory for C messages built from Swift (protobuf-c structs): every block is
/// zeroed on allocation and freed together when the arena goes away.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    /// Objects whose bytes a message points at without copying (borrowed weights).
    private var kept: [AnyObject] = []

    deinit { for b in blocks { free(b) } }

    /// A zeroed `T`, passed to `setup` (a protobuf-c `__init` function, usually).
    func make<T>(_ type: T.Type, _ setup: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let raw = calloc(1, MemoryLayout<T>.stride)!
        blocks.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: 1)
        setup(p)
        return p
    }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// A C array holding `items`; nil when empty.
    func array<T>(_ items: [T]) -> UnsafeMutablePointer<T>? {
        guard !items.isEmpty else { return nil }
        let raw = calloc(items.count, MemoryLayout<T>.stride)!
        blocks.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: items.count)
        p.initialize(from: items, count: items.count)
        return p
    }

    /// A copy of `bytes` that lives as long as the arena.
    func bytes(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
        guard bytes.count > 0 else { return nil }
        let raw = malloc(bytes.count)!
        blocks.append(raw)
        raw.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        return raw.bindMemory(to: UInt8.self, capacity: bytes.count)
    }

    func keep(_ object: AnyObject) { kept.append(object) }
}
