import Foundation
import MoatCore
import MoatCrypto
import MoatProto
import MoatRPC

/// `moat.v1.TwoFactor`: the session user's second factor.
struct TwoFactorHandler: Moat_V1_TwoFactorService {
    let accounts: AccountService

    func beginEnrollment(request: Moat_V1_BeginEnrollmentRequest, context: RequestContext) async throws
        -> Moat_V1_BeginEnrollmentResponse
    {
        let enrollment = try await accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: try await accounts.tenant(context), token: context.authorization, password: request.password,
            client: context.clientDetails)
        return .with {
            $0.secret = enrollment.secretBase32
            $0.otpauthUri = enrollment.uri
            $0.qrSvg = enrollment.qrCode.svg(quietZone: 4, moduleSize: 8)
            $0.qrModules = Data(enrollment.qrCode.packedRows)
            $0.qrSize = UInt32(enrollment.qrCode.size)
            $0.expiresAtUnix = enrollment.expiresAt.seconds
            $0.algorithm = "SHA1"
            $0.digits = 6
            $0.periodSeconds = 30
        }
    }

    func confirmEnrollment(request: Moat_V1_ConfirmEnrollmentRequest, context: RequestContext) async throws
        -> Moat_V1_ConfirmEnrollmentResponse
    {
        let (codes, enabledAt) = try await accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: try await accounts.tenant(context), token: context.authorization, code: request.code,
            client: context.clientDetails)
        return .with {
            $0.recoveryCodes = codes
            $0.enabledAtUnix = enabledAt.seconds
        }
    }

    func disable(request: Moat_V1_DisableTwoFactorRequest, context: RequestContext) async throws
        -> Moat_V1_DisableTwoFactorResponse
    {
        try await accounts.twoFactor.disableTwoFactor(
            tenant: try await accounts.tenant(context), token: context.authorization, code: request.code,
            password: request.password, client: context.clientDetails)
        return Moat_V1_DisableTwoFactorResponse()
    }

    func status(request: Moat_V1_TwoFactorStatusRequest, context: RequestContext) async throws
        -> Moat_V1_TwoFactorStatusResponse
    {
        let status = try await accounts.twoFactor.twoFactorStatus(
            tenant: try await accounts.tenant(context), token: context.authorization)
        return .with {
            $0.enabled = status.enabled
            $0.enabledAtUnix = status.enabledAt?.seconds ?? 0
            $0.recoveryCodesRemaining = UInt32(clamping: status.recoveryCodesRemaining)
            $0.pendingEnrollmentExpiresAtUnix = status.pendingEnrollmentExpiresAt?.seconds ?? 0
            $0.lockedUntilUnix = status.lockedUntil?.seconds ?? 0
        }
    }

    func regenerateRecoveryCodes(request: Moat_V1_RegenerateRecoveryCodesRequest, context: RequestContext)
        async throws -> Moat_V1_RegenerateRecoveryCodesResponse
    {
        let codes = try await accounts.twoFactor.regenerateRecoveryCodes(
            tenant: try await accounts.tenant(context), token: context.authorization, code: request.code,
            client: context.clientDetails)
        return .with { $0.recoveryCodes = codes }
    }

    func verify(request: Moat_V1_VerifyTwoFactorRequest, context: RequestContext) async throws
        -> Moat_V1_VerifyTwoFactorResponse
    {
        try await accounts.twoFactor.verifyTwoFactor(
            tenant: try await accounts.tenant(context), token: context.authorization, code: request.code,
            client: context.clientDetails)
        return Moat_V1_VerifyTwoFactorResponse()
    }
}
