import MoatCore
import MoatServer

/// Fuzzes the user-agent parser (and the device family the new-device
/// notice derives from it).
///
/// Invariants: it never crashes; only the first
/// `UserAgentInfo.maxExaminedBytes` bytes matter (anything appended changes
/// nothing); the result and the family are the same on a second parse; the
/// summary is never empty.
public enum UserAgentFuzzer {
    /// Runs one input.
    public static func run(_ data: [UInt8]) throws(FuzzViolation) {
        let agent = String(decoding: data, as: UTF8.self)
        let info = UserAgentInfo.parse(agent)
        guard UserAgentInfo.parse(agent) == info else { throw FuzzViolation("parsing is not repeatable") }
        guard !info.summary.isEmpty else { throw FuzzViolation("empty summary") }
        if agent.utf8.count >= UserAgentInfo.maxExaminedBytes {
            let padded = agent + " (Windows NT 10.0) Chrome/131.0 Mobile Safari/537"
            guard UserAgentInfo.parse(padded) == info else {
                throw FuzzViolation("bytes past the examined prefix changed the result")
            }
        }
        let family = DeviceFamily.parsed(agent)
        guard family.os == (info.os ?? ""), family.browser == (info.browser ?? ""),
            family.deviceType == info.deviceType.rawValue
        else { throw FuzzViolation("the device family disagrees with the parser") }
    }
}
