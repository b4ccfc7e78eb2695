import Foundation
import MoatClient
import MoatCore
import XCTest

@testable import MoatServer

/// `moat.v1.Events` and `Users.ListSecurityEvents` over the socket.
final class EventsEndToEndTests: XCTestCase {
    func testPollAckListAndDeleteOverTheSocket() async throws {
        let moat = try await AccountsFixture()
        let created = try await moat.createTenant("acme")
        try await moat.createTenant("globex", owner: "owner@globex.example")
        let events = moat.client.events

        let all = try await events.poll(.with { $0.consumer = "mail" })
        XCTAssertEqual(all.events.map(\.type), ["tenant.created", "user.created", "tenant.created", "user.created"])
        XCTAssertEqual(all.events.map(\.sequence), [1, 2, 3, 4])
        XCTAssertEqual(all.cursor, 0)
        let first = try XCTUnwrap(all.events.first)
        XCTAssertEqual(first.tenantID, created.tenant.id)
        XCTAssertEqual(first.subject, created.tenant.id)
        XCTAssertEqual(first.payloadType, "moat.v1.TenantCreated")
        XCTAssertGreaterThan(first.createdAtUnixMs, 1_700_000_000_000)
        let payload = try Moat_V1_TenantCreated(serializedBytes: first.payload)
        XCTAssertEqual(payload.slug, "acme")
        XCTAssertEqual(payload.ownerUserID, created.owner.id)
        XCTAssertEqual(all.events[1].payloadType, "moat.v1.UserCreated")
        XCTAssertEqual(all.events[1].subject, created.owner.id)

        let acked = try await events.ack(.with {
            $0.consumer = "mail"
            $0.sequence = 2
        })
        XCTAssertEqual(acked.cursor, 2)
        let rest = try await events.poll(.with { $0.consumer = "mail" })
        XCTAssertEqual(rest.events.map(\.sequence), [3, 4])

        let filtered = try await events.poll(.with {
            $0.consumer = "globex-users"
            $0.typePrefix = "user."
            $0.tenant = "globex"
        })
        XCTAssertEqual(filtered.events.map(\.sequence), [4])
        XCTAssertEqual(filtered.lastSequenceScanned, 4)

        await expectRPCError(.invalidArgument, "SEQUENCE_INVALID") {
            _ = try await events.ack(.with {
                $0.consumer = "mail"
                $0.sequence = 5
            })
        }
        await expectRPCError(.notFound, "CONSUMER_NOT_FOUND") {
            _ = try await events.ack(.with {
                $0.consumer = "nobody"
                $0.sequence = 1
            })
        }
        await expectRPCError(.invalidArgument, "CONSUMER_NAME_INVALID") {
            _ = try await events.poll(.with { $0.consumer = "Not OK" })
        }
        await expectRPCError(.invalidArgument, "MAX_EVENTS_INVALID") {
            _ = try await events.poll(.with {
                $0.consumer = "mail"
                $0.maxEvents = 1001
            })
        }
        await expectRPCError(.notFound, "TENANT_NOT_FOUND") {
            _ = try await events.poll(.with {
                $0.consumer = "mail"
                $0.tenant = "initech"
            })
        }

        let listed = try await events.listConsumers()
        XCTAssertEqual(listed.newestSequence, 4)
        XCTAssertEqual(listed.consumers.map(\.name), ["globex-users", "mail"])
        XCTAssertEqual(listed.consumers.map(\.cursor), [0, 2])
        XCTAssertEqual(listed.consumers.map(\.lag), [4, 2])
        XCTAssertGreaterThan(listed.consumers[1].lastAckAtUnix, 0)
        XCTAssertGreaterThan(listed.consumers[1].lastPollAtUnix, 0)
        XCTAssertEqual(listed.consumers[0].lastAckAtUnix, 0)

        _ = try await events.deleteConsumer(.with { $0.consumer = "globex-users" })
        await expectRPCError(.notFound, "CONSUMER_NOT_FOUND") {
            _ = try await events.deleteConsumer(.with { $0.consumer = "globex-users" })
        }
        let remaining = try await events.listConsumers()
        XCTAssertEqual(remaining.consumers.map(\.name), ["mail"])

        // Administrator callers only.
        for method in Moat_V1_Events.Method.all { XCTAssertEqual(method.access, .admin, method.path) }
        try await moat.stop()
    }

    func testALongPollIsAnsweredWhenAnEventCommitsAndShutdownWakesIt() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        let events = moat.client.events
        let start = try await events.poll(.with { $0.consumer = "mail" })
        _ = try await events.ack(.with {
            $0.consumer = "mail"
            $0.sequence = start.lastSequenceScanned
        })
        let signal = moat.daemon.eventSignal

        let waiting = Task {
            try await events.poll(
                .with {
                    $0.consumer = "mail"
                    $0.waitMs = 20_000
                }, options: CallOptions(timeout: .seconds(30)))
        }
        let pollWaits = await signal.untilWaiting(1)
        XCTAssertTrue(pollWaits, "a poll is waiting")
        XCTAssertEqual(signal.waiterCount, 1, "the poll waits in the daemon")
        let started = ContinuousClock.now
        _ = try await moat.client.tenants.updatePolicy(.with {
            $0.tenant = "acme"
            $0.maxSessionsPerUser = 3
        })
        let woken = try await waiting.value
        XCTAssertEqual(woken.events.map(\.type), ["tenant.policy_updated"])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))

        // The wait is capped by the call's deadline: a 1 s call asking for
        // 20 s answers empty in time instead of failing DEADLINE_EXCEEDED.
        _ = try await events.ack(.with {
            $0.consumer = "mail"
            $0.sequence = woken.lastSequenceScanned
        })
        let short = try await events.poll(
            .with {
                $0.consumer = "mail"
                $0.waitMs = 20_000
            }, options: CallOptions(timeout: .seconds(1)))
        XCTAssertEqual(short.events, [])

        // A graceful shutdown answers a waiting poll at once (empty).
        let other = MoatClient(socketPath: moat.daemon.configuration.socketPath)
        let parked = Task {
            try await other.events.poll(
                .with {
                    $0.consumer = "mail"
                    $0.waitMs = 25_000
                }, options: CallOptions(timeout: .seconds(30)))
        }
        let parkedWaits = await signal.untilWaiting(1)
        XCTAssertTrue(parkedWaits, "a poll is waiting")
        XCTAssertEqual(signal.waiterCount, 1)
        let stopping = ContinuousClock.now
        await moat.daemon.shutdown()
        let parkedAnswer = try await parked.value
        XCTAssertEqual(parkedAnswer.events, [])
        XCTAssertLessThan(ContinuousClock.now - stopping, .seconds(10), "the drain did not wait out the poll")
        XCTAssertEqual(signal.waiterCount, 0)
        await other.close()
        try await moat.stop()
    }

    func testSecurityLogOverTheSocket() async throws {
        let moat = try await AccountsFixture()
        let created = try await moat.createTenant("acme")
        try await moat.createTenant("globex", owner: "owner@globex.example")
        let member = try await moat.client.users.create(
            .with {
                $0.email = "member@example.com"
                $0.password = "member password 1"
            }, options: CallOptions(tenant: "acme"))
        await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
            _ = try await moat.signIn("acme", "member@example.com", "wrong password 99")
        }
        let session = try await moat.signIn("acme", "member@example.com", "member password 1")
        let own = try await moat.client.users.listSecurityEvents(
            options: CallOptions(tenant: "acme", authorization: session.sessionToken))
        XCTAssertEqual(own.events.map(\.kind), ["sign_in.succeeded", "sign_in.failed"])
        let newest = try XCTUnwrap(own.events.first)
        XCTAssertEqual(newest.ip, "203.0.113.9")
        XCTAssertEqual(newest.browser, "Firefox 132")
        XCTAssertEqual(newest.os, "Linux")
        XCTAssertEqual(newest.deviceType, "desktop")
        XCTAssertGreaterThan(newest.createdAtUnix, 0)

        let paged = try await moat.client.users.listSecurityEvents(
            .with { $0.pageSize = 1 }, options: CallOptions(tenant: "acme", authorization: session.sessionToken))
        XCTAssertEqual(paged.events.count, 1)
        XCTAssertFalse(paged.nextPageToken.isEmpty)

        // The administrator process reads anyone's by id; a member may not.
        let byAdmin = try await moat.client.users.listSecurityEvents(
            .with { $0.userID = member.id }, options: CallOptions(tenant: "acme"))
        XCTAssertEqual(byAdmin.events.count, 2)
        await expectRPCError(.permissionDenied, "ROLE_REQUIRED") {
            _ = try await moat.client.users.listSecurityEvents(
                .with { $0.userID = created.owner.id },
                options: CallOptions(tenant: "acme", authorization: session.sessionToken))
        }
        // Another tenant's user is not found from here.
        let globexOwner = try await moat.client.users.list(options: CallOptions(tenant: "globex")).users[0]
        await expectRPCError(.notFound, "USER_NOT_FOUND") {
            _ = try await moat.client.users.listSecurityEvents(
                .with { $0.userID = globexOwner.id }, options: CallOptions(tenant: "acme"))
        }
        // This session in the other tenant: not a session there.
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.listSecurityEvents(
                options: CallOptions(tenant: "globex", authorization: session.sessionToken))
        }
        try await moat.stop()
    }

    func testEveryEventTypeNamesTheMessageTheEncoderWrites() throws {
        let user = UserID.random()
        let tenant = TenantID.random()
        let team = TeamID.random()
        let invitation = InvitationID.random()
        let samples: [DomainEvent] = [
            .tenantCreated(tenantID: tenant, slug: "s", name: "n", ownerID: user, ownerEmail: "e@x.test"),
            .tenantPolicyUpdated(tenantID: tenant), .userCreated(userID: user, email: "e@x.test", role: .member),
            .userDisabled(userID: user, email: "e@x.test"), .userEnabled(userID: user, email: "e@x.test"),
            .passwordChanged(userID: user, email: "e@x.test", ip: "", userAgent: "", revokedSessions: 1),
            .passwordResetRequested(
                userID: user, email: "e@x.test", token: "t", expiresAt: Timestamp(seconds: 1), ip: "", userAgent: "",
                restoresAccount: true),
            .passwordReset(userID: user, email: "e@x.test", revokedSessions: 0),
            .passwordResetUnknownEmail(email: "e@x.test", ip: ""),
            .sessionRevoked(sessionID: SessionID.random(), userID: user, reason: "r"),
            .sessionNewDevice(
                userID: user, email: "e@x.test", sessionID: SessionID.random(), deviceType: "desktop", os: "macOS",
                browser: "Safari", ip: "192.0.2.1", location: "l", deviceName: "d", signedInAt: Timestamp(seconds: 5)),
            .twoFactorEnabled(userID: user, email: "e@x.test", replaced: true),
            .twoFactorDisabled(userID: user, email: "e@x.test", method: "password"),
            .twoFactorRecoveryCodesRegenerated(userID: user, email: "e@x.test"),
            .twoFactorRecoveryCodeUsed(userID: user, email: "e@x.test", remaining: 7),
            .accountDeletionScheduled(userID: user, email: "e@x.test", purgeAfter: Timestamp(seconds: 99)),
            .accountRestored(userID: user, email: "e@x.test"),
            .accountPurged(userID: user, tenantID: tenant, email: "e@x.test"),
            .tenantDeletionScheduled(tenantID: tenant, slug: "s", name: "n", purgeAfter: Timestamp(seconds: 99)),
            .tenantDeletionCancelled(tenantID: tenant, slug: "s", name: "n"),
            .tenantPurged(tenantID: tenant, slug: "s", name: "n", users: 3),
            .teamCreated(teamID: team, name: "t", ownerID: user, actorID: user),
            .teamRenamed(teamID: team, previousName: "a", name: "t", actorID: nil),
            .teamDeleted(teamID: team, name: "t", memberIDs: [user], actorID: user),
            .teamInvitationCreated(
                invitationID: invitation, teamID: team, teamName: "t", email: "e@x.test", role: .admin, token: "k",
                expiresAt: Timestamp(seconds: 99), inviterID: user, inviterEmail: "i@x.test"),
            .teamInvitationRevoked(invitationID: invitation, teamID: team, email: "e@x.test", reason: "revoked", actorID: nil),
            .teamMemberAdded(teamID: team, userID: user, email: "e@x.test", role: .member, invitationID: invitation),
            .teamMemberRoleChanged(teamID: team, userID: user, previousRole: .member, role: .admin, actorID: nil),
            .teamMemberRemoved(teamID: team, userID: user, role: .member, actorID: nil),
            .teamMemberLeft(teamID: team, userID: user, role: .member),
            .teamOwnershipTransferred(teamID: team, fromUserID: nil, toUserID: user, actorID: nil),
        ]
        XCTAssertEqual(Set(samples.map(\.type)), Set(EventPayloadTypes.byEventType.keys))
        for event in samples {
            let name = EventPayloadTypes.name(forEventType: event.type)
            let bytes = ProtobufEventEncoder().encode(event)
            XCTAssertFalse(bytes.isEmpty, event.type)
            switch name {
            case Moat_V1_TenantCreated.protoMessageName:
                XCTAssertEqual(try Moat_V1_TenantCreated(serializedBytes: bytes).tenantID, tenant.rawValue)
            case Moat_V1_TenantPolicyUpdated.protoMessageName:
                XCTAssertEqual(try Moat_V1_TenantPolicyUpdated(serializedBytes: bytes).tenantID, tenant.rawValue)
            case Moat_V1_UserCreated.protoMessageName:
                XCTAssertEqual(try Moat_V1_UserCreated(serializedBytes: bytes).role, "member")
            case Moat_V1_UserStatusChanged.protoMessageName:
                XCTAssertEqual(try Moat_V1_UserStatusChanged(serializedBytes: bytes).userID, user.rawValue)
            case Moat_V1_PasswordChanged.protoMessageName:
                XCTAssertEqual(try Moat_V1_PasswordChanged(serializedBytes: bytes).revokedSessions, 1)
            case Moat_V1_PasswordResetRequested.protoMessageName:
                XCTAssertEqual(try Moat_V1_PasswordResetRequested(serializedBytes: bytes).token, "t")
                XCTAssertTrue(try Moat_V1_PasswordResetRequested(serializedBytes: bytes).restoresAccount)
            case Moat_V1_SessionNewDevice.protoMessageName:
                let notice = try Moat_V1_SessionNewDevice(serializedBytes: bytes)
                XCTAssertEqual([notice.os, notice.browser, notice.ip], ["macOS", "Safari", "192.0.2.1"])
                XCTAssertEqual(notice.signedInAtUnix, 5)
            case Moat_V1_PasswordReset.protoMessageName:
                XCTAssertEqual(try Moat_V1_PasswordReset(serializedBytes: bytes).userID, user.rawValue)
            case Moat_V1_PasswordResetUnknownEmail.protoMessageName:
                XCTAssertEqual(try Moat_V1_PasswordResetUnknownEmail(serializedBytes: bytes).email, "e@x.test")
            case Moat_V1_SessionRevoked.protoMessageName:
                XCTAssertEqual(try Moat_V1_SessionRevoked(serializedBytes: bytes).reason, "r")
            case Moat_V1_TwoFactorEnabled.protoMessageName:
                XCTAssertTrue(try Moat_V1_TwoFactorEnabled(serializedBytes: bytes).replaced)
            case Moat_V1_TwoFactorDisabled.protoMessageName:
                XCTAssertEqual(try Moat_V1_TwoFactorDisabled(serializedBytes: bytes).method, "password")
            case Moat_V1_TwoFactorRecoveryCodesRegenerated.protoMessageName:
                XCTAssertEqual(try Moat_V1_TwoFactorRecoveryCodesRegenerated(serializedBytes: bytes).userID, user.rawValue)
            case Moat_V1_TwoFactorRecoveryCodeUsed.protoMessageName:
                XCTAssertEqual(try Moat_V1_TwoFactorRecoveryCodeUsed(serializedBytes: bytes).remaining, 7)
            case Moat_V1_AccountDeletionScheduled.protoMessageName:
                XCTAssertEqual(try Moat_V1_AccountDeletionScheduled(serializedBytes: bytes).purgeAfterUnix, 99)
            case Moat_V1_AccountRestored.protoMessageName:
                XCTAssertEqual(try Moat_V1_AccountRestored(serializedBytes: bytes).userID, user.rawValue)
            case Moat_V1_AccountPurged.protoMessageName:
                let purged = try Moat_V1_AccountPurged(serializedBytes: bytes)
                XCTAssertEqual(purged.tenantID, tenant.rawValue)
                XCTAssertEqual(purged.delete.count, 5)
            case Moat_V1_TenantDeletionScheduled.protoMessageName:
                XCTAssertEqual(try Moat_V1_TenantDeletionScheduled(serializedBytes: bytes).purgeAfterUnix, 99)
            case Moat_V1_TenantDeletionCancelled.protoMessageName:
                XCTAssertEqual(try Moat_V1_TenantDeletionCancelled(serializedBytes: bytes).slug, "s")
            case Moat_V1_TenantPurged.protoMessageName:
                let purged = try Moat_V1_TenantPurged(serializedBytes: bytes)
                XCTAssertEqual(purged.users, 3)
                XCTAssertEqual(purged.delete.count, 5)
            case Moat_V1_TeamCreated.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamCreated(serializedBytes: bytes).teamID, team.rawValue)
            case Moat_V1_TeamRenamed.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamRenamed(serializedBytes: bytes).name, "t")
            case Moat_V1_TeamDeleted.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamDeleted(serializedBytes: bytes).teamID, team.rawValue)
            case Moat_V1_TeamInvitationCreated.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamInvitationCreated(serializedBytes: bytes).token, "k")
            case Moat_V1_TeamInvitationRevoked.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamInvitationRevoked(serializedBytes: bytes).reason, "revoked")
            case Moat_V1_TeamMemberAdded.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamMemberAdded(serializedBytes: bytes).userID, user.rawValue)
            case Moat_V1_TeamMemberRoleChanged.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamMemberRoleChanged(serializedBytes: bytes).role, "admin")
            case Moat_V1_TeamMemberRemoved.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamMemberRemoved(serializedBytes: bytes).userID, user.rawValue)
            case Moat_V1_TeamOwnershipTransferred.protoMessageName:
                XCTAssertEqual(try Moat_V1_TeamOwnershipTransferred(serializedBytes: bytes).toUserID, user.rawValue)
            default:
                XCTFail("\(event.type): no payload type (\(name))")
            }
        }
    }
}
