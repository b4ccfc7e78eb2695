import Logging
import MoatStore
import MoatTransport
import NIOCore
import ServiceLifecycle

/// Keeps systemd informed while moatd runs: `WATCHDOG=1` at half of
/// `WATCHDOG_USEC` with a `STATUS=` line, and `STOPPING=1` as soon as a
/// graceful shutdown starts.
///
/// A ping is sent only after a probe went through every event loop and the
/// store's writer thread, so a wedged loop or writer stops the pings and
/// systemd restarts the daemon; a timer alone would keep pinging.
struct SystemdNotifyService: Service {
    let notifier: SystemdNotifier
    let watchdogInterval: Duration?
    let eventLoops: any EventLoopGroup
    let store: StoreBackend
    let server: UnixSocketServer
    let socketDescription: String
    let logger: Logger

    func run() async throws {
        // Without a watchdog, refresh the status line now and then.
        let every = watchdogInterval.map { $0 / 2 } ?? .seconds(30)
        while !Task.isShuttingDownGracefully {
            if watchdogInterval != nil {
                do {
                    try await probe()
                } catch {
                    // Cancelled by the shutdown, or the store is closing:
                    // no ping; the next round decides.
                    logger.warning("watchdog probe failed; not pinging", metadata: ["moat.error": "\(error)"])
                }
                if Task.isShuttingDownGracefully { break }
                notifier.send("WATCHDOG=1\nSTATUS=\(status())")
            } else {
                notifier.send("STATUS=\(status())")
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: every) }
            } catch {
                break
            }
        }
        notifier.send("STOPPING=1\nSTATUS=Draining \(server.connectionCount) connections")
    }

    /// Runs a no-op on every event loop and an empty write on the writer
    /// thread; returns once all of them ran.
    private func probe() async throws {
        for loop in eventLoops.makeIterator() {
            try await loop.submit {}.get()
        }
        try await store.probeWrite()
    }

    private func status() -> String {
        "Serving on \(socketDescription); \(server.connectionCount) connections"
    }
}
