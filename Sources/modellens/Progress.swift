import Foundation

/// A progress line on standard error: rewritten in place (`\r`) on a terminal; elsewhere (a log,
/// a pipe, CI) plain lines, at most one per tenth of the work, so that they neither run together
/// into one line nor flood the log.
struct Progress {
    let label: String
    let total: Int
    let terminal = isatty(STDERR_FILENO) != 0
    private var lastDecile = -1
    private var lastLine = 0.0

    init(_ label: String, total: Int) {
        self.label = label
        self.total = max(1, total)
    }

    /// Reports `done` of `total` steps, with what is being done now.
    mutating func update(_ done: Int, _ what: String) {
        if terminal {
            FileHandle.standardError.write(Data("\r\(label): \(what)\u{1B}[K".utf8))
            return
        }
        let decile = done * 10 / total
        guard decile != lastDecile || done == total else { return }
        lastDecile = decile
        FileHandle.standardError.write(Data("\(label): \(what)\n".utf8))
    }

    /// Reports work whose total is not known ahead: in place on a terminal; elsewhere at most one
    /// line every five seconds.
    mutating func update(_ what: String) {
        if terminal {
            FileHandle.standardError.write(Data("\r\(label): \(what)\u{1B}[K".utf8))
            return
        }
        let now = Date().timeIntervalSince1970
        guard now - lastLine >= 5 else { return }
        lastLine = now
        FileHandle.standardError.write(Data("\(label): \(what)\n".utf8))
    }

    /// Ends the line on a terminal.
    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
