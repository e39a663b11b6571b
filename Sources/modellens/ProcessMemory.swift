import CKernels
import Foundation

/// What this process holds that a model can account for, read in ways that do not depend on the
/// CPU: bytes in use from malloc, and the resident pages of one mapped file. (The resident set
/// also counts code pages, thread stacks and OpenBLAS's buffers, whose size follows the CPU
/// model: a bound on it fitted on one machine fails on another.)
enum ProcessMemory {
    /// Bytes in use from malloc (glibc's main arena and its separately mapped chunks); nil where
    /// the C library cannot tell.
    static func heapInUse() -> Int? {
        let n = mlk_heap_in_use()
        return n < 0 ? nil : Int(n)
    }

    /// Resident bytes of every mapping of `path` in this process (/proc/self/smaps: the pages of
    /// the file a kernel or the importer touched and that are still mapped); nil where there is
    /// no /proc.
    static func residentBytes(ofFile path: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/smaps", encoding: .utf8) else { return nil }
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var total = 0, inTarget = false
        for line in text.split(separator: "\n") {
            if let first = line.first, first.isHexDigit, line.contains("-") {
                // A mapping's header: "start-end perms offset dev inode   pathname".
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                inTarget = fields.count == 6 && fields[5].trimmingCharacters(in: .whitespaces) == target
            } else if inTarget, line.hasPrefix("Rss:") {
                total += (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
            }
        }
        return total
    }
}
