public import MoatCore

extension DeviceFamily {
    /// The family the user-agent parser reads from a user agent: what the
    /// new-device notice compares and shows (OS and browser, no versions).
    @Sendable public static func parsed(_ userAgent: String) -> DeviceFamily {
        let agent = UserAgentInfo.parse(userAgent)
        return DeviceFamily(deviceType: agent.deviceType.rawValue, os: agent.os ?? "", browser: agent.browser ?? "")
    }
}
