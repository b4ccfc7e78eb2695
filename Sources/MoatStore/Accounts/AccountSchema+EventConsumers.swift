extension AccountSchema {
    /// Version 3: the event stream's consumers.
    ///
    /// The one table besides `meta` without `tenant_id`, deliberately: a
    /// consumer (the mail sender, the billing worker) is a daemon-wide reader
    /// of every tenant's events, not tenant data. `cursor` is the highest
    /// acknowledged `events.sequence`; there is no foreign key to `events`
    /// because retention deletes acknowledged events.
    public static let version3 = Migration(
        version: 3, name: "create_event_consumers",
        sql: """
            CREATE TABLE event_consumers (
                name           TEXT PRIMARY KEY NOT NULL,
                cursor         INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0),
                created_at     INTEGER NOT NULL,
                last_polled_at INTEGER,
                last_acked_at  INTEGER
            ) STRICT;
            """)
}
