import Synchronization

/// Tenants by id and by slug, in memory. Tenants are few and change
/// rarely; the ``SessionAuthority`` calls ``invalidate(_:)`` with the marks
/// of every committed tenant change, and loads racing with a change are not
/// kept (epoch, as in ``SessionCache``).
final class TenantDirectory: Sendable {
    private struct State {
        var byReference: [String: Tenant] = [:]
        var epoch: UInt64 = 0
    }

    private let state = Mutex(State())

    var epoch: UInt64 { state.withLock { $0.epoch } }

    func lookup(_ reference: String) -> Tenant? {
        state.withLock { state in
            if let tenant = state.byReference[reference] { return tenant }
            return state.byReference[reference.trimmingCharacters(in: .whitespaces).lowercased()]
        }
    }

    func insert(_ tenant: Tenant, loadedAt epoch: UInt64) {
        state.withLock { state in
            guard state.epoch == epoch else { return }
            if state.byReference.count > 100_000 { state.byReference.removeAll() }
            state.byReference[tenant.id.rawValue] = tenant
            state.byReference[tenant.slug] = tenant
        }
    }

    func invalidate(_ tenant: TenantID) {
        state.withLock { state in
            state.epoch &+= 1
            state.byReference = state.byReference.filter { $0.value.id != tenant }
        }
    }

    func invalidateAll() {
        state.withLock { state in
            state.epoch &+= 1
            state.byReference.removeAll()
        }
    }
}
