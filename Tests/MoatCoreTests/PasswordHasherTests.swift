import MoatCrypto
import Synchronization
import XCTest

@testable import MoatCore

/// Runs `body`, which must fail at once with RESOURCE_EXHAUSTED OVERLOADED.
func assertOverloaded<T>(
    file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    let error = await assertDomainError(.resourceExhausted, "OVERLOADED", file: file, line: line, body)
    XCTAssertEqual(error?.details["retry_after_seconds"], "1", file: file, line: line)
}

/// Argon2id through the hasher: hashes, verifies, answers unknown emails
/// with the same work, and passes a full executor's OVERLOADED through
/// without counting anything. The real bounded pool is MoatServer's
/// `HashingThreadPool` (tested in MoatServerTests).
final class PasswordHasherTests: XCTestCase {
    func hasher(_ parameters: Argon2Parameters, executor: any HashingExecutor = InlineHashingExecutor()) throws
        -> PasswordHasher
    {
        var configuration = HashingConfiguration()
        configuration.parameters = parameters
        return try PasswordHasher(configuration: configuration, executor: executor)
    }

    func testHashVerifyDecoyAndRehash() async throws {
        let hasher = try hasher(.cheap)
        let phc = try await hasher.hash(Array("some-password-1".utf8))
        XCTAssertTrue(phc.hasPrefix("$argon2id$v=19$m=64,t=1,p=1$"))
        let verified = try await hasher.verify(Array("some-password-1".utf8), against: phc)
        XCTAssertTrue(verified)
        let wrong = try await hasher.verify(Array("some-password-2".utf8), against: phc)
        XCTAssertFalse(wrong)
        let garbage = try await hasher.verify(Array("some-password-1".utf8), against: "not a phc")
        XCTAssertFalse(garbage)
        let decoy = try await hasher.verifyDecoy(Array("some-password-1".utf8))
        XCTAssertFalse(decoy)
        let again = try await hasher.hash(Array("some-password-1".utf8))
        XCTAssertNotEqual(again, phc, "fresh salt per hash")

        XCTAssertFalse(hasher.needsRehash(phc))
        XCTAssertTrue(hasher.needsRehash("garbage"))
        let other = try Argon2id.hash(
            password: Array("some-password-1".utf8), parameters: Argon2Parameters(memoryKiB: 128, iterations: 1, parallelism: 1))
        XCTAssertTrue(hasher.needsRehash(other))
    }

    /// Every hashing entry point goes through the executor: the decoy costs
    /// a job like a real verification, and a refusal reaches the caller.
    func testEveryHashRunsOnTheExecutorAndRefusalsPassThrough() async throws {
        let executor = ScriptedHashingExecutor()
        let hasher = try hasher(.cheap, executor: executor)
        let phc = try await hasher.hash(Array("cheap-password-1".utf8))
        _ = try await hasher.verify(Array("cheap-password-1".utf8), against: phc)
        _ = try await hasher.verifyDecoy(Array("cheap-password-1".utf8))
        XCTAssertEqual(executor.jobsRun, 3, "hash, verify and the decoy each ran one job")

        executor.refuse(true)
        await assertOverloaded { try await hasher.hash(Array("second-password".utf8)) }
        await assertOverloaded { try await hasher.verify(Array("cheap-password-1".utf8), against: phc) }
        await assertOverloaded { try await hasher.verifyDecoy(Array("cheap-password-1".utf8)) }
        XCTAssertEqual(executor.jobsRun, 3, "refused jobs never ran")

        executor.refuse(false)
        let verified = try await hasher.verify(Array("cheap-password-1".utf8), against: phc)
        XCTAssertTrue(verified, "accepted again once the executor has room")
    }

    /// An overloaded sign-in is neither a failure nor a lockout step.
    func testOverloadedSignInCountsNothing() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let before = try await world.snapshot()
        world.hashing.refuse(true)

        for password in [Fixture.ownerPassword, "wrong-password-123"] {
            await assertOverloaded { try await world.signIn(tenant, Fixture.ownerEmail, password) }
        }
        await assertOverloaded { try await world.signIn(tenant, "ghost@acme.test", "wrong-password-123") }

        try await assertUnchanged(world, since: before)
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 0)
        let ghost = try await world.store.read { try $0.unknownEmailLockout(tenant: tenant.id, email: "ghost@acme.test") }
        XCTAssertNil(ghost, "the refused attempt was given back")
        world.hashing.refuse(false)
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
    }
}
