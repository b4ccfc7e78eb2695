import Foundation
import Logging
import MoatCore
import MoatProto
import MoatRPC
import MoatTransport
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

@testable import MoatServer

/// Validate's cache hit is answered on the event loop: the daemon's real
/// Validate method, on an `EmbeddedChannel` whose loop nothing runs, answers
/// inside the read, and its async handler never starts.
final class ValidateFastPathTests: XCTestCase {
    private struct FixedClock: WallClock {
        let at: Timestamp
        func now() -> Timestamp { at }
    }

    func testACachedValidateIsAnsweredWithoutATask() async throws {
        let store = MemoryAccountStore(encoder: ProtobufEventEncoder())
        let now = Timestamp(milliseconds: 1_000_000_000)
        let tenant = Tenant(id: .random(), slug: "fast", name: "Fast", policy: TenantPolicy(), createdAt: now)
        let user = User(
            id: .random(), tenantID: tenant.id, email: "fast@example.test", passwordHash: "$argon2id$x", role: .admin,
            createdAt: now)
        let token = OpaqueToken.make()
        let session = Session(
            id: .random(), tenantID: tenant.id, userID: user.id, tokenHash: OpaqueToken.hash(token),
            client: ClientDetails(), createdAt: now, lastActiveAt: now, absoluteExpiresAt: now.adding(seconds: 3600),
            idleTimeoutSeconds: 600, secondFactorSatisfied: false)
        try await store.write { writer in
            try writer.insert(tenant)
            try writer.insert(user)
            try writer.insert(session)
        }
        let hashing = HashingConfiguration()
        let hasher = try PasswordHasher(configuration: hashing, executor: InlineHashingExecutor())
        let accounts = AccountService(store: store, hasher: hasher, clock: FixedClock(at: now))
        // Warm the caches (tenant and session), as a first Validate does.
        _ = try await accounts.validate(tenantReference: tenant.slug, token: token)

        let validate = SessionsHandler(accounts: accounts).validateWithFastPath
        let handlerRuns = Atomic<Int>(0)
        let counted = ServerMethod(
            descriptor: validate.descriptor, fastPath: validate.fastPath,
            handler: { payload, context in
                handlerRuns.add(1, ordering: .relaxed)
                return try await validate.handler(payload, context)
            })
        var router = try Router()
        try router.register(counted)
        let caller = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: false)
        let channel = EmbeddedChannel(
            handler: ServerConnectionHandler(
                router: router, caller: caller, limits: TransportLimits(), logger: Logger(label: "test")))
        defer { _ = try? channel.finish() }

        var request = Moat_Rpc_V1_Request()
        request.id = 9
        request.method = Moat_V1_Sessions.Method.validate.path
        request.tenant = tenant.slug
        request.payload = try Moat_V1_ValidateRequest.with { $0.token = token }.serializedData()
        try channel.writeInbound(ByteBuffer(bytes: try request.serializedBytes() as [UInt8]))

        guard var frame = try channel.readOutbound(as: ByteBuffer.self),
            let length = frame.readInteger(as: UInt32.self), let body = frame.readBytes(length: Int(length))
        else { return XCTFail("the cached Validate was not answered within its read") }
        let response = try Moat_Rpc_V1_Response(serializedBytes: body)
        XCTAssertEqual(response.id, 9)
        XCTAssertEqual(response.status.code, .ok)
        let answer = try Moat_V1_ValidateResponse(serializedBytes: response.payload)
        XCTAssertEqual(answer.sessionID, session.id.rawValue)
        XCTAssertEqual(answer.userID, user.id.rawValue)
        XCTAssertEqual(handlerRuns.load(ordering: .relaxed), 0, "Validate's task ran for a cache hit")
    }
}
