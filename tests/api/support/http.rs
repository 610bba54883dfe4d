//! The little HTTP/1.1 the test servers speak: one request per connection, `Connection: close`.
//! [`read_request`] and [`write_response`] serve both [`MiniServer`] and the fake registry.
//!
//! [`MiniServer`] runs a handler on its own thread (own tokio runtime), so it works from
//! `#[tokio::test]` (any flavor) and from sync tests alike: the real registry's token server and
//! notification receiver, and tests that need a scripted upstream.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as read by [`read_request`].
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    /// Request target as sent (path + query).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The value of the header `name` (any case) in `headers`.
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// Decoded query pairs in order (repeated keys kept).
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(v).expect("serialize json"),
        }
    }
}

pub type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// Minimal HTTP/1.1 server (one request per connection, `Connection: close`) on 127.0.0.1:0,
/// running a current-thread tokio runtime on a dedicated thread; stopped on Drop.
pub struct MiniServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MiniServer {
    pub fn start(name: &str, handler: Handler) -> MiniServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mini server");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("mini server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            acc = listener.accept() => {
                                if let Ok((stream, _)) = acc {
                                    let h = handler.clone();
                                    tokio::spawn(async move {
                                        let _ = tokio::time::timeout(
                                            Duration::from_secs(30),
                                            serve_connection(stream, h),
                                        )
                                        .await;
                                    });
                                }
                            }
                        }
                    }
                });
            })
            .expect("spawn mini server thread");
        MiniServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MiniServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    handler: Handler,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let response = handler(&request);
    write_response(&mut stream, &request, &response, Framing::Exact).await
}

/// Reads one request: the head up to the blank line (at most 1 MiB), then `Content-Length`
/// bytes of body. `None` when the peer closes (or sends too much) before the head is complete.
pub async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<Option<HttpRequest>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1 << 20 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut req_line = lines.next().unwrap_or("").split(' ');
    let method = req_line.next().unwrap_or("").to_string();
    let target = req_line.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = header_value(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(Some(HttpRequest {
        method,
        target,
        headers,
        body,
    }))
}

/// How a response tells the length of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` = body length.
    Exact,
    /// No `Content-Length`: the body ends when the connection closes.
    CloseDelimited,
    /// `Content-Length: n` but only the body is sent, then the connection closes.
    Declared(u64),
}

/// Writes `response` to `request` with `Connection: close` (no body for a HEAD request), then
/// closes the connection.
pub async fn write_response(
    stream: &mut tokio::net::TcpStream,
    request: &HttpRequest,
    response: &HttpResponse,
    framing: Framing,
) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    match framing {
        Framing::Exact => out.push_str(&format!("Content-Length: {}\r\n", response.body.len())),
        Framing::Declared(n) => out.push_str(&format!("Content-Length: {n}\r\n")),
        Framing::CloseDelimited => {}
    }
    out.push_str("Connection: close\r\n\r\n");
    stream.write_all(out.as_bytes()).await?;
    if request.method != "HEAD" {
        stream.write_all(&response.body).await?;
    }
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}
