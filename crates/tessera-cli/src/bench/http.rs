//! A minimal HTTP/1.1 keep-alive client for the load generator.
//!
//! A general client (reqwest, hyper's) spends more CPU per request than a token grant costs the
//! server, and on a 2-core machine the load generator shares the cores with the server: every
//! microsecond it spends is one the server does not get. This client writes prebuilt request
//! bytes and parses only the status line and `Content-Length`, reusing one buffer per
//! connection, which is all the workloads need.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: its status and body, borrowed from the connection's buffer.
pub(crate) struct Response<'a> {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: &'a [u8],
}

impl Response<'_> {
    /// The body as JSON (for set-up calls, not on the measured path).
    pub fn json(&self) -> io::Result<serde_json::Value> {
        serde_json::from_slice(self.body).map_err(|e| bad(format!("response is not JSON: {e}")))
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Finds `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of a `"name":"value"` member in a flat JSON body, without a JSON parse (token
/// strings hold no escapes).
pub(crate) fn json_str<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = find(body, key.as_bytes())? + key.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[start..start + len]).ok()
}

impl Conn {
    /// Opens a connection (Nagle off: requests are single writes and latency matters).
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Replaces a broken connection with a new one.
    pub async fn reconnect(&mut self) -> io::Result<()> {
        *self = Conn::connect(self.addr).await?;
        Ok(())
    }

    /// Sends one request and reads its response.
    pub async fn call(&mut self, request: &[u8]) -> io::Result<Response<'_>> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            let from = self.buf.len().saturating_sub(3);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(i) = find(&self.buf[from..], b"\r\n\r\n") {
                break from + i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head too large"));
            }
        };
        let head = &self.buf[..head_end];
        let status = head
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("no status line"))?;
        let mut length = None;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = line.split_at(colon);
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(&value[1..])
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                return Err(bad(
                    "chunked responses are not supported by the bench client",
                ));
            }
        }
        let length = length.ok_or_else(|| bad("no Content-Length"))?;
        while self.buf.len() < head_end + length {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(Response {
            status,
            body: &self.buf[head_end..head_end + length],
        })
    }
}

/// Builds request bytes once, so the measured loop only writes them.
pub(crate) fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if method != "GET" || !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// A JSON `POST`, with an `Authorization` header when `auth` is given.
pub(crate) fn post_json(path: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    match auth {
        Some(a) => request(
            "POST",
            path,
            &[("Authorization", a), ("Content-Type", "application/json")],
            body,
        ),
        None => request("POST", path, &[("Content-Type", "application/json")], body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_carry_length_and_headers() {
        let r = request("POST", "/x", &[("Content-Type", "application/json")], "{}");
        let text = String::from_utf8(r).unwrap();
        assert_eq!(
            text,
            "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let get = String::from_utf8(request("GET", "/healthz", &[], "")).unwrap();
        assert_eq!(get, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }

    #[test]
    fn json_str_reads_flat_members() {
        let body = br#"{"token":"a.b.c","refresh_token":"d.e.f"}"#;
        assert_eq!(json_str(body, "token"), Some("a.b.c"));
        assert_eq!(json_str(body, "refresh_token"), Some("d.e.f"));
        assert_eq!(json_str(body, "missing"), None);
    }
}
