//! Throwaway PostgreSQL databases for tests, made with `psql` from an admin URL.
//!
//! `NETRUNBOOK_TEST_DATABASE_URL` names a role that may create databases (`.ci/run` starts the
//! machine's cluster and sets it: see the README's test command). Each [`TestDatabase`] is a new
//! database, dropped again when the value is. Without the variable a PostgreSQL test says so and is
//! skipped, unless `NETRUNBOOK_REQUIRE_POSTGRES=1` (set by `.ci/run`), which makes that a failure.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new, empty database, or `None` (with a line on stderr) when PostgreSQL is not configured
    /// for the tests and not required.
    pub fn create(test: &str) -> Option<TestDatabase> {
        let admin = match std::env::var("NETRUNBOOK_TEST_DATABASE_URL") {
            Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
            _ => {
                assert!(
                    std::env::var("NETRUNBOOK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "NETRUNBOOK_REQUIRE_POSTGRES=1 but NETRUNBOOK_TEST_DATABASE_URL is not set"
                );
                eprintln!("{test}: skipped: set NETRUNBOOK_TEST_DATABASE_URL to a PostgreSQL role that may create databases");
                return None;
            }
        };
        let name = format!(
            "nrb_{}_{}_{}",
            test.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(30)
                .collect::<String>()
                .to_lowercase(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let url = with_database(&admin, &name);
        Some(TestDatabase { admin, name, url })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Run SQL in the database (for tests that look at rows or change them behind the bot's back).
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// `admin` with its database replaced by `name` (URL form only).
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Run `sql` with psql against `url`; its output, trimmed. Panics with psql's error.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql runs (install postgresql-client)");
    assert!(
        out.status.success(),
        "psql failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
