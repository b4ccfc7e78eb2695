import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Secrets (passwords, reset tokens) come from a no-echo prompt on the
// terminal or from standard input, never from the command line, where they
// would land in shell history and `ps`.

/// Reading secrets from the terminal or standard input.
enum Secrets {
    /// The longest secret accepted, in bytes (the daemon allows 1024
    /// characters; this leaves room for any UTF-8).
    static let maxBytes = 8192

    /// Prompts for a secret once, without echo. `stdinFlag` is the option
    /// that reads it from standard input instead, for the error without a
    /// terminal.
    static func prompt(_ prompt: String, stdinFlag: String = "--password-stdin") throws -> String {
        let secret = try TerminalPrompt.readHidden(prompt: prompt, stdinFlag: stdinFlag)
        guard !secret.isEmpty else { throw CommandFailure.failed("nothing was entered") }
        return secret
    }

    /// Prompts for a new secret twice, without echo; both must match.
    static func promptNew(
        _ prompt: String, again: String = "Repeat to confirm: ", stdinFlag: String = "--password-stdin"
    ) throws -> String {
        let first = try Secrets.prompt(prompt, stdinFlag: stdinFlag)
        let second = try TerminalPrompt.readHidden(prompt: again, stdinFlag: stdinFlag)
        guard first == second else { throw CommandFailure.failed("the passwords do not match") }
        return first
    }

    /// Reads `names.count` secrets from standard input, one a line; with a
    /// single secret the whole input is it, minus one trailing newline.
    /// `flag` names the option that asked, for error messages.
    static func readStdin(_ names: [String], flag: String) throws -> [String] {
        if isatty(STDIN_FILENO) == 1 {
            throw CommandFailure.usage(
                "\(flag): standard input is a terminal and would echo; pipe the secret in, or leave out \(flag)")
        }
        let limit = (maxBytes + 2) * names.count
        var data = Data()
        do {
            while let chunk = try FileHandle.standardInput.read(upToCount: 4096), !chunk.isEmpty {
                data += chunk
                guard data.count <= limit else {
                    throw CommandFailure.usage("\(flag): standard input is too long")
                }
            }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure.failed("\(flag): cannot read standard input: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CommandFailure.usage("\(flag): standard input is not UTF-8")
        }
        let values: [String]
        if names.count == 1 {
            values = [stripNewline(text)]
        } else {
            // "\r\n" is a single Character, so it is a separator of its own.
            var lines = text.split(omittingEmptySubsequences: false, whereSeparator: isLineBreak).map(String.init)
            if lines.last == "" { lines.removeLast() }  // after the final newline
            guard lines.count == names.count else {
                throw CommandFailure.usage(
                    "\(flag): expected \(names.count) lines on standard input (\(names.joined(separator: ", ")))"
                        + ", got \(lines.count)")
            }
            values = lines
        }
        for (name, value) in zip(names, values) where value.isEmpty {
            throw CommandFailure.usage("\(flag): the \(name) on standard input is empty")
        }
        return values
    }

    /// Reads one secret from standard input: all of it, minus one trailing
    /// newline.
    static func readStdin(_ name: String, flag: String) throws -> String {
        try readStdin([name], flag: flag).first ?? ""
    }

    /// `text` without one trailing `\n` (or `\r\n`, a single Character).
    static func stripNewline(_ text: String) -> String {
        guard let last = text.last, isLineBreak(last) else { return text }
        return String(text.dropLast())
    }

    private static func isLineBreak(_ character: Character) -> Bool {
        character == "\n" || character == "\r\n"
    }
}

// MARK: - The terminal

/// What a signal handler needs to give the terminal its echo back. A plain
/// pointer, so the handler touches no Swift runtime state (no exclusivity
/// checks, no allocation).
private struct EchoRestore {
    var fd: Int32
    var saved: termios
}

private nonisolated(unsafe) let echoRestore: UnsafeMutablePointer<EchoRestore> = {
    let pointer = UnsafeMutablePointer<EchoRestore>.allocate(capacity: 1)
    pointer.initialize(to: EchoRestore(fd: -1, saved: termios()))
    return pointer
}()

/// The signals that would otherwise leave the terminal without echo.
private let fatalSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

/// A C signal handler.
private typealias SignalHandler = @convention(c) (Int32) -> Void

/// Installs `handler` for `signo` (nil: the default action) and returns the
/// one it replaces.
private func setSignalHandler(_ signo: Int32, _ handler: SignalHandler?) -> SignalHandler? {
    signal(signo, handler)
}

/// Runs on SIGINT and friends while echo is off: restore the terminal, then
/// die of the signal as if we had not caught it. Async-signal-safe calls only.
private func restoreEchoAndDie(_ signo: Int32) {
    let fd = echoRestore.pointee.fd
    if fd >= 0 {
        _ = tcsetattr(fd, TCSANOW, &echoRestore.pointee.saved)
        var newline: UInt8 = 10
        _ = write(fd, &newline, 1)
    }
    _ = setSignalHandler(signo, nil)
    var set = sigset_t()
    _ = sigemptyset(&set)
    _ = sigaddset(&set, signo)
    _ = pthread_sigmask(SIG_UNBLOCK, &set, nil)
    _ = raise(signo)
    _exit(128 + signo)
}

/// A no-echo prompt on the controlling terminal, like getpass(3).
enum TerminalPrompt {
    /// Writes `prompt` to the terminal and reads one line with echo off.
    /// Echo comes back on every way out: return, error, or SIGINT, SIGTERM,
    /// SIGHUP, SIGQUIT while waiting.
    static func readHidden(prompt: String, stdinFlag: String) throws -> String {
        // The controlling terminal, so prompts work with stdin or stdout
        // redirected; else stdin if it is a terminal.
        var fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        let ownsFD = fd >= 0
        if !ownsFD {
            guard isatty(STDIN_FILENO) == 1 else {
                throw CommandFailure.usage(
                    "no terminal to ask for the password on; pass it on standard input with \(stdinFlag)")
            }
            fd = STDIN_FILENO
        }
        defer { if ownsFD { _ = close(fd) } }

        var saved = termios()
        guard tcgetattr(fd, &saved) == 0 else {
            throw CommandFailure.failed("cannot read the terminal's settings: \(String(cString: strerror(errno)))")
        }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO | ECHONL)
        quiet.c_lflag |= tcflag_t(ICANON)

        writeAll(fd, prompt)
        echoRestore.pointee = EchoRestore(fd: fd, saved: saved)
        let previous = fatalSignals.map { ($0, setSignalHandler($0, restoreEchoAndDie)) }
        guard tcsetattr(fd, TCSAFLUSH, &quiet) == 0 else {
            let reason = String(cString: strerror(errno))
            for (signo, handler) in previous { _ = setSignalHandler(signo, handler) }
            echoRestore.pointee.fd = -1
            throw CommandFailure.failed("cannot turn off the terminal's echo: \(reason)")
        }
        defer {
            _ = tcsetattr(fd, TCSAFLUSH, &saved)
            echoRestore.pointee.fd = -1
            for (signo, handler) in previous { _ = setSignalHandler(signo, handler) }
            writeAll(fd, "\n")  // the newline the user typed was not echoed
        }

        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(fd, &byte, 1)
            if count < 0 {
                if errno == EINTR { continue }
                throw CommandFailure.failed("cannot read the terminal: \(String(cString: strerror(errno)))")
            }
            if count == 0 {
                if bytes.isEmpty { throw CommandFailure.failed("no password given (end of input)") }
                break
            }
            if byte == UInt8(ascii: "\n") { break }
            bytes.append(byte)
            if bytes.count > Secrets.maxBytes { throw CommandFailure.failed("the password is too long") }
        }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        defer { for index in bytes.indices { bytes[index] = 0 } }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw CommandFailure.failed("the password is not valid UTF-8 (check the terminal's encoding)")
        }
        return text
    }

    private static func writeAll(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return -1 }
                return write(fd, base + offset, buffer.count - offset)
            }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
