//! `/metrics` over HTTP/1.1, served by hyper.
//!
//! hyper parses the requests (it is already in the build through
//! etcd-client), so Starling's own code never reads untrusted bytes off
//! this socket. What Starling adds is the limits a scrape endpoint on a
//! router needs: a cap on open connections, on header size and count, on
//! how long a client may take to send its headers (or sit idle between
//! keep-alive requests), and on a connection's whole life; and at most a
//! few renders at once, so a burst of scrapes queues here instead of
//! crowding the BGP sessions' tasks.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::metrics::{Sources, render};

/// Open connections; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;
/// Renders at once: each takes the status lock and asks the instance.
const MAX_RENDERS: usize = 2;
/// To send a request's headers, or to start the next one on a kept-alive
/// connection. Prometheus scrapes every 15 s or more, so its idle
/// connections are closed between scrapes and it simply reconnects.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection's whole life, whatever it does (a client that never
/// reads its response holds a connection no longer than this).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// hyper's read buffer, which bounds the request head (its minimum).
const MAX_HEAD_BYTES: usize = 8192;
const MAX_HEADERS: usize = 64;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn serve(listener: TcpListener, sources: Arc<Sources>) -> tokio::task::JoinHandle<()> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let renders = Arc::new(Semaphore::new(MAX_RENDERS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = connections.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: back off, keep serving.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (sources, renders) = (sources.clone(), renders.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    respond(request, sources.clone(), renders.clone())
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .max_headers(MAX_HEADERS)
                    .serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "metrics: connection ended"),
                    Err(_) => tracing::debug!("metrics: connection outlived its limit"),
                }
                drop(permit);
            });
        }
    })
}

async fn respond(
    request: Request<Incoming>,
    sources: Arc<Sources>,
    renders: Arc<Semaphore>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(reply(StatusCode::NOT_FOUND, "try /metrics\n".to_owned()));
    }
    // hyper answers HEAD with GET's headers and no body.
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let Ok(_turn) = renders.acquire().await else {
        return Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".into(),
        ));
    };
    let response = match render(&sources).await {
        Ok(text) => reply(StatusCode::OK, text),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    Ok(response)
}
