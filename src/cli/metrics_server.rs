//! The `/metrics` endpoint of `pagekv run --metrics-listen`: a small HTTP server on its own
//! thread that encodes the live registry on every scrape, for as long as the run lasts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use pagekv::report::live_metrics::encode_registry;
use prometheus_client::registry::Registry;

use super::CliError;

/// A running endpoint; dropping it stops the server and joins its thread.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The address it listens on (the port the OS chose, for `:0`).
    pub addr: SocketAddr,
}

/// Parses `--metrics-listen`, refusing a non-loopback address unless `allow_remote`.
pub fn parse_listen(text: &str, allow_remote: bool) -> Result<SocketAddr, CliError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        CliError::input(format!(
            "--metrics-listen '{text}' is not an address and port like 127.0.0.1:9464"
        ))
    })?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(CliError::input(format!(
            "--metrics-listen {addr} would serve metrics beyond this machine; add \
             --metrics-allow-remote to mean it"
        )));
    }
    Ok(addr)
}

impl MetricsServer {
    /// Listens on `addr` and serves `registry` at `/metrics` (404 elsewhere).
    pub fn start(addr: SocketAddr, registry: Arc<Registry>) -> Result<Self, CliError> {
        let server = tiny_http::Server::http(addr).map_err(|e| {
            CliError::input(format!(
                "--metrics-listen {addr}: cannot listen there ({e})"
            ))
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::spawn(move || {
            let content_type = tiny_http::Header::from_bytes(
                &b"Content-Type"[..],
                &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
            )
            .ok();
            for request in serving.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let mut response = tiny_http::Response::from_string(encode_registry(&registry));
                    if let Some(h) = content_type.clone() {
                        response.add_header(h);
                    }
                    response
                } else {
                    tiny_http::Response::from_string("pagekv serves /metrics only\n")
                        .with_status_code(404)
                };
                // A scraper that hung up is not the run's problem.
                let _ = request.respond(response);
            }
        });
        Ok(Self {
            server,
            thread: Some(thread),
            addr,
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
