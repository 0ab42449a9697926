//! Throwaway PostgreSQL databases for tests, made with `psql` from an admin URL.
//!
//! `NETRUNBOOK_TEST_DATABASE_URL` names a role that may create databases (`.ci/run` starts the
//! machine's cluster and sets it: see the README's test command). Each [`TestDatabase`] is a new
//! database, dropped again when the value is. Without the variable a PostgreSQL test says so and is
//! skipped, unless `NETRUNBOOK_REQUIRE_POSTGRES=1` (set by `.ci/run`), which makes that a failure.
//!
//! A [`PrivateCluster`] is a PostgreSQL server of one test's own (`initdb` in a temporary directory,
//! `pg_ctl` on a free port of 127.0.0.1), for a test that stops and starts the database under a
//! running bot without touching the machine's shared cluster. It is skipped like [`TestDatabase`].

use std::path::{Path, PathBuf};
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

/// The admin URL of the tests' PostgreSQL, or `None` (with a line on stderr) when it is not
/// configured and not required.
fn admin_url(test: &str) -> Option<String> {
    match std::env::var("NETRUNBOOK_TEST_DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().to_string()),
        _ => {
            assert!(
                std::env::var("NETRUNBOOK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "NETRUNBOOK_REQUIRE_POSTGRES=1 but NETRUNBOOK_TEST_DATABASE_URL is not set"
            );
            eprintln!(
                "{test}: skipped: set NETRUNBOOK_TEST_DATABASE_URL to a PostgreSQL role that may create databases"
            );
            None
        }
    }
}

impl TestDatabase {
    /// A new, empty database, or `None` (with a line on stderr) when PostgreSQL is not configured
    /// for the tests and not required.
    pub fn create(test: &str) -> Option<TestDatabase> {
        let admin = admin_url(test)?;
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

/// A PostgreSQL server of one test's own: `initdb` (trust authentication, superuser `netrunbook`)
/// in a new temporary directory, served on a free port of 127.0.0.1 with its socket in that
/// directory, so the test may stop and start it at will ([`PrivateCluster::stop`],
/// [`PrivateCluster::start`]). Stopped and removed when dropped.
///
/// The server programs come from `NETRUNBOOK_TEST_PG_BINDIR`, else `pg_config --bindir`, else the
/// `PATH`. PostgreSQL refuses to run as root: as root, the directory is given to the `postgres` user
/// and the programs run as that user (`runuser`).
#[derive(Debug)]
pub struct PrivateCluster {
    base: PathBuf,
    bindir: Option<PathBuf>,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    /// A new cluster, running; `None` (with a line on stderr) when PostgreSQL is not configured for
    /// the tests (`NETRUNBOOK_TEST_DATABASE_URL`) and not required, as for [`TestDatabase`]. Panics
    /// when it cannot be made.
    pub fn create(test: &str) -> Option<PrivateCluster> {
        admin_url(test)?;
        let base = std::env::temp_dir().join(format!(
            "nrb-pg-{}-{}-{}",
            test.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        let as_postgres = is_root();
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:").arg(&base),
                "chown the cluster directory",
            );
        }
        let bindir = pg_bindir();
        let port = free_port();
        let cluster = PrivateCluster {
            base,
            bindir,
            port,
            as_postgres,
        };
        let mut initdb = cluster.program("initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "-U",
            "netrunbook",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        run(&mut initdb, "initdb");
        cluster.start();
        Some(cluster)
    }

    /// The URL of its `postgres` database (as `netrunbook`, no password).
    pub fn url(&self) -> String {
        format!("postgres://netrunbook@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    /// Start the server and wait until it takes connections (`pg_ctl start -w`).
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.base.display()
        );
        let mut start = self.program("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.base.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        run(&mut start, "pg_ctl start");
    }

    /// Stop the server the way an operator restarting it does (`pg_ctl stop -m fast`: clients are
    /// disconnected, open transactions rolled back) and wait until it is down.
    pub fn stop(&self) {
        let mut stop = self.program("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run(&mut stop, "pg_ctl stop");
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn program(&self, name: &str) -> Command {
        let path = self
            .bindir
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let mut stop = self.program("pg_ctl");
        stop.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Run `c` to completion; panics with its output when it fails.
fn run(c: &mut Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: cannot run {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process runs as root (`id -u`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Where `initdb` and `pg_ctl` are (see [`PrivateCluster`]); `None`: the `PATH`.
fn pg_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NETRUNBOOK_TEST_PG_BINDIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && Path::new(&dir).join("initdb").exists()).then_some(dir)
}

/// A port of 127.0.0.1 that nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}
