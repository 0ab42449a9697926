//! Reaching PostgreSQL: the database URL (with libpq's `sslmode` values, which tokio-postgres only
//! partly knows), TLS by rustls, the connection pool, and [`Bridge`], which runs the pool's async
//! calls on a runtime of its own so the synchronous [`Store`](crate::store::Store) methods can wait
//! for them from any thread, inside a tokio runtime or not.
//!
//! The URL is a secret (it may hold a password): it never appears in an error or a log line; what is
//! shown is [`Target`], the host, port, database and user.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::store::StoreError;

/// How long a call waits for a pooled connection, and a new connection to be made.
const POOL_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// libpq's `sslmode`: how much of TLS is required and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, not checked (libpq's default).
    Prefer,
    /// TLS, the certificate not checked (checked against `sslrootcert` when one is given, as libpq does).
    Require,
    /// TLS, the certificate chain checked against the roots, not the host name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// Where the database is, for messages: never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub String);

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed database URL.
pub(crate) struct Dsn {
    pub config: tokio_postgres::Config,
    pub ssl: SslMode,
    /// `sslrootcert`: a PEM file of roots, or `system` for the system's.
    pub root_cert: Option<String>,
    pub target: Target,
}

/// Parse `url` (`postgres://user:pass@host:5432/db?sslmode=verify-full&sslrootcert=ca.pem`, or libpq's
/// `key=value` form). Errors never quote the URL.
pub(crate) fn parse(url: &str) -> Result<Dsn, StoreError> {
    let bad = |why: String| StoreError::Config(why);
    let (rest, ssl, root_cert) = split_tls(url).map_err(bad)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(format!("the database URL does not parse: {e}")))?;
    config.ssl_mode(match ssl {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("netrunbook");
    }
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let target = Target(format!(
        "{host}:{port}/{} as {} (sslmode {})",
        config.get_dbname().unwrap_or("?"),
        config.get_user().unwrap_or("?"),
        match ssl {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    ));
    Ok(Dsn {
        config,
        ssl,
        root_cert,
        target,
    })
}

/// Take `sslmode` and `sslrootcert` out of `url`: tokio-postgres knows neither `verify-ca` nor
/// `verify-full`, nor `sslrootcert`. Returns the rest of the URL, the mode (libpq's default `prefer`)
/// and the root certificates' file.
fn split_tls(url: &str) -> Result<(String, SslMode, Option<String>), String> {
    let mode = |v: &str| match v {
        "disable" => Ok(SslMode::Disable),
        "allow" | "prefer" => Ok(SslMode::Prefer),
        "require" => Ok(SslMode::Require),
        "verify-ca" => Ok(SslMode::VerifyCa),
        "verify-full" => Ok(SslMode::VerifyFull),
        other => Err(format!(
            "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
        )),
    };
    let mut ssl = SslMode::Prefer;
    let mut root = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), ssl, root));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "sslmode" => ssl = mode(&v)?,
                "sslrootcert" => root = Some(v),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, ssl, root));
    }
    // key=value form (values with spaces in quotes are passed through untouched)
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => ssl = mode(v.trim_matches('\''))?,
            Some(("sslrootcert", v)) => root = Some(v.trim_matches('\'').to_string()),
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), ssl, root))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The TLS client configuration for `dsn`'s mode.
fn tls_config(dsn: &Dsn) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS setup failed: {e}")))?;
    let check = match (dsn.ssl, &dsn.root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::Nothing,
        (SslMode::Require | SslMode::VerifyCa, _) => Check::Chain,
        (SslMode::VerifyFull, _) => Check::ChainAndName,
    };
    if check == Check::Nothing {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth());
    }
    let roots = Arc::new(roots(dsn.root_cert.as_deref())?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| StoreError::Config(format!("TLS setup failed: {e}")))?;
    if check == Check::ChainAndName {
        return Ok(builder.with_webpki_verifier(webpki).with_no_client_auth());
    }
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
        .with_no_client_auth())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The trusted roots: `sslrootcert`'s PEM file, or the system's (`system` or none given).
fn roots(file: Option<&str>) -> Result<rustls::RootCertStore, StoreError> {
    let mut store = rustls::RootCertStore::empty();
    match file {
        Some(path) if path != "system" => {
            use rustls::pki_types::pem::PemObject;
            let path = PathBuf::from(path);
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| StoreError::Config(format!("cannot read sslrootcert {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Config(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        _ => {
            let native = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(native.certs);
            if store.is_empty() {
                return Err(StoreError::Config(
                    "no system root certificates to check the database's certificate: give sslrootcert=FILE".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `sslmode=require` without roots: encrypted, the certificate not checked (libpq's behaviour).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain checked, the name not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The pool's async calls, run on a runtime of the store's own (two threads), waited for by plain
/// blocking: usable from any thread, a tokio worker among them (the wait blocks that worker for a
/// database round trip, as a sled write blocks it for a disk write).
pub(crate) struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
    /// Durable commits: conversations, marks, the outbox, feedback.
    pub pool: Pool,
    /// `synchronous_commit = off`: the journal, claims and heartbeats. A commit here is visible to
    /// every replica at once and survives the replica; only a crash of the database server itself
    /// can lose its last fraction of a second, as a power loss can lose the end of the sled bot's
    /// unsynced inbox journal. One WAL flush per acknowledged event was the acks' cost otherwise
    /// (BENCHMARKS.md).
    pub quick: Pool,
    pub target: Target,
}

impl Bridge {
    /// The pool for `url`, at most `size` connections. Connects lazily: nothing is dialled here.
    pub(crate) fn new(url: &str, size: usize) -> Result<Bridge, StoreError> {
        let dsn = parse(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("netrunbook-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the database runtime: {e}")))?;
        let tls = match dsn.ssl {
            SslMode::Disable => None,
            _ => Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&dsn)?)),
        };
        let build = |config: tokio_postgres::Config| {
            let manager_config = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            let manager = match &tls {
                None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
                Some(tls) => Manager::from_config(config, tls.clone(), manager_config),
            };
            Pool::builder(manager)
                .max_size(size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(POOL_WAIT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Config(format!("cannot build the connection pool: {e}")))
        };
        let mut quick = dsn.config.clone();
        let options = match quick.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c synchronous_commit=off"),
            _ => "-c synchronous_commit=off".to_string(),
        };
        quick.options(&options);
        Ok(Bridge {
            runtime: Some(runtime),
            pool: build(dsn.config.clone())?,
            quick: build(quick)?,
            target: dsn.target,
        })
    }

    /// Run `f` with the durable pool on the store's runtime and wait for it.
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.run_on(self.pool.clone(), f)
    }

    /// Run `f` with the quick pool (`synchronous_commit = off`: see [`Bridge::quick`]).
    pub(crate) fn run_quick<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.run_on(self.quick.clone(), f)
    }

    fn run_on<T, F, Fut>(&self, pool: Pool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the bridge");
        runtime.spawn(async move {
            let _ = tx.send(f(pool).await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the database task ended".into())))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // dropping a runtime inside another one's context panics; this does not wait
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_ssl_modes_are_taken_out_of_the_url() {
        let (rest, mode, root) =
            split_tls("postgres://u:p@db.example:31000/ibmclouddb?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u:p@db.example:31000/ibmclouddb");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) = split_tls("postgresql://u@h/db?application_name=x&sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://u@h/db?application_name=x");
        assert_eq!(mode, SslMode::Require);
        let (rest, mode, root) = split_tls("host=h dbname=d sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(rest, "host=h dbname=d");
        assert_eq!((mode, root.as_deref()), (SslMode::VerifyCa, Some("/ca.pem")));
        assert_eq!(split_tls("postgres://h/db").unwrap().1, SslMode::Prefer);
    }

    #[test]
    fn a_bad_url_is_an_error_that_never_quotes_the_password() {
        for url in [
            "postgres://user:s3cr3t-pw@h/db?sslmode=sometimes",
            "postgres://user:s3cr3t-pw@h:notaport/db",
        ] {
            let err = parse(url).err().expect("rejected");
            let text = crate::error::error_chain(&err);
            assert!(!text.contains("s3cr3t-pw"), "{text}");
            assert!(text.contains("database URL") || text.contains("sslmode"), "{text}");
        }
    }

    #[test]
    fn the_target_names_host_database_user_and_mode_only() {
        let dsn = parse("postgres://bot:hunter2@db.internal:31000/nrb?sslmode=verify-full").unwrap();
        assert_eq!(dsn.target.0, "db.internal:31000/nrb as bot (sslmode verify-full)");
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let dsn = parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap();
        let Err(err) = tls_config(&dsn) else { panic!("rejected") };
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
