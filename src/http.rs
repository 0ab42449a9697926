//! The operations endpoint (hyper 1): `/healthz` (the process answers), `/readyz` (Socket Mode
//! connected and the store open, else 503 saying what is missing) and `/metrics` (Prometheus text).
//! Plus [`get`], the small HTTP/1.1 client behind `netrunbook health` (a container's HEALTHCHECK).
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind `127.0.0.1:0` and spawn it.

use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::metrics::{self, Metrics};

/// The answer to one request. Pure, so the routes are tested without a socket.
pub(crate) fn route(method: &Method, path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match metrics.not_ready() {
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}\n")),
        },
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(metrics.encode())));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found: try /healthz, /readyz or /metrics\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Serve `listener` until `shutdown` resolves (connections in progress finish on their own).
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: impl Future<Output = ()>) {
    match listener.local_addr() {
        Ok(addr) => info!(%addr, "health and metrics endpoint listening"),
        Err(_) => info!("health and metrics endpoint listening"),
    }
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: wait a little rather than spin
                    debug!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = route(req.method(), req.uri().path(), &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// Why [`get`] could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("`{0}` is not an http:// URL with a host")]
    BadUrl(String),
    #[error("cannot connect to {0}")]
    Connect(String, #[source] std::io::Error),
    #[error("no usable answer from {0}")]
    Io(String, #[source] std::io::Error),
    #[error("{0} did not answer with HTTP")]
    NotHttp(String),
}

/// `GET url` over HTTP/1.1 (plain `http://` only), with `timeout` for connecting and for each read
/// and write. Returns the status code and the body (read until the server closes).
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String), GetError> {
    let parsed = url::Url::parse(url).map_err(|_| GetError::BadUrl(url.to_string()))?;
    let host = match (parsed.scheme(), parsed.host_str()) {
        ("http", Some(h)) => h.to_string(),
        _ => return Err(GetError::BadUrl(url.to_string())),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let target = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| GetError::Connect(target.clone(), e))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        GetError::Connect(
            target.clone(),
            last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
        )
    })?;
    let io = |e| GetError::Io(target.clone(), e);
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: netrunbook-health\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| GetError::NotHttp(target.clone()))?;
    Ok((status, body.to_string()))
}

/// The `/healthz` URL of a server listening on `addr` (an unspecified address means this host).
pub fn healthz_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let m = Metrics::new();
        assert_eq!(route(&Method::GET, "/healthz", &m).status(), StatusCode::OK);
        assert_eq!(
            route(&Method::GET, "/readyz", &m).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        m.set_store_open(true);
        m.set_socket_connections(1);
        assert_eq!(route(&Method::GET, "/readyz", &m).status(), StatusCode::OK);
        let metrics = route(&Method::GET, "/metrics", &m);
        assert_eq!(metrics.headers()[CONTENT_TYPE], metrics::CONTENT_TYPE);
        assert_eq!(route(&Method::GET, "/nope", &m).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            route(&Method::POST, "/healthz", &m).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn healthz_urls_point_at_this_host() {
        assert_eq!(
            healthz_url("0.0.0.0:9090".parse().unwrap()),
            "http://127.0.0.1:9090/healthz"
        );
        assert_eq!(healthz_url("[::]:80".parse().unwrap()), "http://[::1]:80/healthz");
        assert_eq!(
            healthz_url("10.1.2.3:9000".parse().unwrap()),
            "http://10.1.2.3:9000/healthz"
        );
    }

    #[tokio::test]
    async fn the_client_talks_to_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(Metrics::new()), async {
            let _ = stopped.await;
        }));
        let url = healthz_url(addr);
        let (status, body) = tokio::task::spawn_blocking(move || get(&url, Duration::from_secs(2)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let url = format!("http://{addr}/readyz");
        let (status, body) = tokio::task::spawn_blocking(move || get(&url, Duration::from_secs(2)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("Socket Mode is not connected"), "{body}");
        let _ = stop.send(());
        server.await.unwrap();
        let url = healthz_url(addr);
        let down = tokio::task::spawn_blocking(move || get(&url, Duration::from_secs(2)))
            .await
            .unwrap();
        assert!(matches!(down, Err(GetError::Connect(..))), "{down:?}");
        assert!(matches!(
            get("https://example.com/", Duration::from_secs(1)),
            Err(GetError::BadUrl(_))
        ));
    }
}
