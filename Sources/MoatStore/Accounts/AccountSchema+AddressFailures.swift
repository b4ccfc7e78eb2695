extension AccountSchema {
    /// Version 6: failed sign-ins per client address, so the credential-
    /// stuffing throttle survives a restart.
    ///
    /// Daemon-wide like `meta` (an address is counted across tenants), so no
    /// `tenant_id`. One row per address bucket with an open or recently
    /// ended window; rows whose window ended are deleted as failures are
    /// counted (`address_failures_by_start`), which bounds the table by the
    /// addresses that failed within one window.
    public static let version6 = Migration(
        version: 6, name: "address_failures",
        sql: """
            CREATE TABLE address_failures (
                address      TEXT PRIMARY KEY,
                window_start INTEGER NOT NULL,
                failures     INTEGER NOT NULL CHECK (failures >= 0)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX address_failures_by_start ON address_failures (window_start);
            """)
}
