import Foundation

/// The device family a user agent names, as the new-device notice compares
/// it: OS and browser family, no versions (a browser update is not a new
/// device).
public struct DeviceFamily: Sendable, Hashable {
    /// "desktop", "mobile", "tablet", "bot", "unknown"; shown, not compared.
    public var deviceType: String
    /// "Windows", "iOS", ...; empty when unknown.
    public var os: String
    /// "Chrome", "Safari", ...; empty when unknown.
    public var browser: String

    /// Creates a family.
    public init(deviceType: String = "unknown", os: String = "", browser: String = "") {
        self.deviceType = deviceType
        self.os = os
        self.browser = browser
    }

    /// The family the daemon's parser does not supply: the whole user agent
    /// as the browser, so any change in it is a different device.
    @Sendable public static func verbatim(_ userAgent: String) -> DeviceFamily {
        DeviceFamily(browser: userAgent)
    }
}

/// Turns a user agent into its ``DeviceFamily`` (the daemon passes its
/// user-agent parser; the domain knows no user-agent syntax).
public typealias DeviceClassifier = @Sendable (_ userAgent: String) -> DeviceFamily

extension SignInService {
    /// How many security-log lines a sign-in looks through for an earlier
    /// sign-in from the same device; the look-up runs in the sign-in's write.
    static let newDeviceScanLimit = 500

    /// The `session.new_device` event for a sign-in about to be recorded, or
    /// nil when the user signed in from the same device family and network
    /// within the configured days, or has never signed in before (the first
    /// sign-in of an account is how it starts, not news to its owner), or
    /// the notice is off.
    ///
    /// "Same" is OS and browser family (``DeviceFamily``) and the network
    /// (``ClientAddress/network``: the /24 of IPv4, the /48 of IPv6; a missing
    /// or unparseable address is its own network). Past the scan limit
    /// without a match the sign-in counts as new: a missed notice is worse
    /// than an extra one. Call it before appending the sign-in's own log line.
    func newDeviceNotice(_ reader: any AccountStoreReader, user: User, session: Session, now: Timestamp) throws
        -> DomainEvent?
    {
        let days = configuration.newDeviceWindowDays
        guard days > 0 else { return nil }
        let since = now.adding(seconds: -Int64(days) * 86400)
        let family = context.deviceFamily(session.client.userAgent)
        let network = Self.network(session.client.ip)
        var priorSignIn = false
        var scanned = 0
        var before: Int64?
        scan: while scanned < Self.newDeviceScanLimit {
            let pageSize = min(100, Self.newDeviceScanLimit - scanned)
            let page = try reader.securityLog(tenant: session.tenantID, user: user.id, beforeID: before, limit: pageSize)
            for entry in page {
                scanned += 1
                if entry.createdAt < since, priorSignIn { break scan }
                guard entry.kind == .signInSucceeded else { continue }
                priorSignIn = true
                if entry.createdAt < since { break scan }
                if Self.network(entry.ip) == network, context.deviceFamily(entry.userAgent) == family { return nil }
            }
            guard page.count == pageSize, let last = page.last else {
                // The whole log was read: no sign-in at all means a first one.
                if !priorSignIn { return nil }
                break
            }
            before = last.id
        }
        return .sessionNewDevice(
            userID: user.id, email: user.email, sessionID: session.id, deviceType: family.deviceType, os: family.os,
            browser: family.browser, ip: session.client.ip, location: session.client.location,
            deviceName: session.client.deviceName, signedInAt: now)
    }

    static func network(_ ip: String) -> String {
        ClientAddress(ip.trimmingCharacters(in: .whitespaces))?.network ?? "unparsed:\(ip)"
    }

    /// Appends `session.new_device` for the sign-in if it is one (see
    /// ``newDeviceNotice(_:user:session:now:)``).
    func announceIfNewDevice(_ writer: any AccountStoreWriter, user: User, session: Session, now: Timestamp) throws {
        if let notice = try newDeviceNotice(writer, user: user, session: session, now: now) {
            try writer.append(notice, tenant: session.tenantID, at: now)
        }
    }
}
