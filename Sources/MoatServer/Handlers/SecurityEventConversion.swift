import MoatCore
import MoatProto

extension Moat_V1_SecurityEvent {
    /// A security-log line, its user agent parsed as on `Session`.
    init(_ entry: SecurityLogEntry) {
        self.init()
        let agent = UserAgentInfo.parse(entry.userAgent)
        id = entry.id
        kind = entry.kind.rawValue
        createdAtUnix = entry.createdAt.seconds
        ip = entry.ip
        userAgent = entry.userAgent
        deviceType = agent.deviceType.rawValue
        os = [agent.os, agent.osVersion].compactMap { $0 }.joined(separator: " ")
        browser = [agent.browser, agent.browserMajorVersion.map(String.init)].compactMap { $0 }.joined(separator: " ")
        detail = entry.detail
    }
}
