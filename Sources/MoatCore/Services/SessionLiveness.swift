/// Whether a session may be used, and if not why. Every "not live" is the
/// same UNAUTHENTICATED `SESSION_INVALID` on the wire; the cases exist for
/// tests and logs.
public enum SessionVerdict: Sendable, Equatable {
    case live
    /// The session belongs to another tenant than the one asked about.
    case otherTenant
    case revoked
    /// Its tenant is scheduled for deletion.
    case tenantNotActive
    /// Its user is disabled or scheduled for deletion.
    case userNotActive
    case lifetimeExpired
    case idleExpired
}

/// The one rule of session liveness: idle timeout, absolute lifetime,
/// revocation, the user active, the tenant active. The session cache, the
/// store path of Validate and `authenticate` all judge with
/// ``verdict(session:lastActive:userStatus:tenant:tenantStatus:at:)``; the
/// stores' retention delete (`deleteEndedSessions`) implements
/// ``hasEnded(_:before:)`` in its own terms and is tested against it.
public enum SessionLiveness {
    /// Judges a session at `now`.
    ///
    /// - Parameters:
    ///   - lastActive: the last activity to judge idleness by, when newer
    ///     than the session's stored one (activity not yet flushed).
    ///   - userStatus: the session's user's status.
    ///   - tenant: the tenant the call names.
    ///   - tenantStatus: that tenant's status.
    @inlinable
    public static func verdict(
        session: Session, lastActive: Timestamp? = nil, userStatus: UserStatus, tenant: TenantID,
        tenantStatus: TenantStatus, at now: Timestamp
    ) -> SessionVerdict {
        guard session.tenantID == tenant else { return .otherTenant }
        guard session.revokedAt == nil else { return .revoked }
        guard tenantStatus == .active else { return .tenantNotActive }
        guard userStatus == .active else { return .userNotActive }
        guard now < session.absoluteExpiresAt else { return .lifetimeExpired }
        let idleSince = max(session.lastActiveAt, lastActive ?? session.lastActiveAt)
        guard now < idleSince.adding(seconds: session.idleTimeoutSeconds) else { return .idleExpired }
        return .live
    }

    /// Whether the session ended before `cutoff`: revoked before it, or
    /// past its absolute lifetime or idle timeout (by its stored activity)
    /// at the last moment before it. What retention may delete.
    public static func hasEnded(_ session: Session, before cutoff: Timestamp) -> Bool {
        if let revokedAt = session.revokedAt, revokedAt < cutoff { return true }
        var unrevoked = session
        unrevoked.revokedAt = nil
        let verdict = Self.verdict(
            session: unrevoked, userStatus: .active, tenant: session.tenantID, tenantStatus: .active,
            at: Timestamp(milliseconds: cutoff.milliseconds - 1))
        return verdict == .lifetimeExpired || verdict == .idleExpired
    }
}
