//! The schema's migrations, embedded in the binary and applied in order at open: in one transaction
//! holding an advisory lock, so replicas starting together apply each once, and a failed migration
//! leaves the schema as it was. `schema_migrations` records what was applied.

use deadpool_postgres::Object;

use crate::store::StoreError;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock key held while migrating ("netrunbk" as a number: any fixed key would do).
const LOCK_KEY: i64 = 0x6e65_7472_756e_626b;

/// Bring the schema to [`SCHEMA_VERSION`]; an error when the database's is newer.
pub(crate) async fn apply(client: &mut Object) -> Result<(), StoreError> {
    let err = |what| move |source| StoreError::Database { what, source };
    let tx = client.transaction().await.map_err(err("migrating the schema"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(err("locking the schema for migration"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(err("migrating the schema"))?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(err("reading the schema version"))?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Schema(format!(
            "the database's schema is version {current}, newer than this netrunbook's {SCHEMA_VERSION}: run the newer release (or a database of its own)"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)
            .await
            .map_err(err("applying a schema migration"))?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
            .await
            .map_err(err("recording a schema migration"))?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().await.map_err(err("migrating the schema"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_schema_version() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i32 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(SCHEMA_VERSION));
    }
}
