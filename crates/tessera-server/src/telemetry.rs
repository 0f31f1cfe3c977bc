//! Tracing, installed once by the binary. Filter with `RUST_LOG` (default `info`).
//!
//! Nothing secret is ever recorded: handlers never put request bodies, tokens or credentials
//! in fields, and secret types print as `[redacted]` if one slips into a `Debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr (stdout is for command output). Colours
/// only on a terminal: escape codes in a log file or a collector are noise, and styling every
/// request's span fields cost about as much CPU as parsing its HTTP request.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Who a refused request spoke for, when only the handler knows (the username of a failed
/// operator login, which is in the body): put on the response's extensions for
/// [`log_refusal`]. Never a secret.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

/// Whether a status is one operators want to see at the default level: refused credentials
/// (401), refused roles (403), locks (423), rate limits (429), and every server error.
pub fn is_refusal(status: u16) -> bool {
    matches!(status, 401 | 403 | 423 | 429) || status >= 500
}

/// The principal a request names in its `Authorization` header, without its secret: the
/// user part of Basic credentials (a project id), or only the scheme for a Bearer token.
fn header_principal(auth: Option<&axum::http::HeaderValue>) -> Option<String> {
    let (scheme, rest) = auth?.to_str().ok()?.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let text = crate::extract::decode_basic(rest)?;
        let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
        Some(format!("project:{}", shorten(user)))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some("bearer".into())
    } else {
        None
    }
}

/// At most 64 characters of a client-chosen name (logged with `Debug`, so control
/// characters are escaped and cannot forge log lines).
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Logs a request that ended in a refusal or a server error, at `info` (`warn` for 5xx):
/// request id, route, status, client address and, where known, the principal — the caller
/// of a failed login or the project of refused Basic credentials, never the secret. Called
/// only for such statuses, so the grants' hot path pays nothing for it.
pub fn log_refusal(
    request_id: &str,
    route: &str,
    status: u16,
    client: Option<std::net::IpAddr>,
    auth: Option<&axum::http::HeaderValue>,
    principal: Option<&Principal>,
) {
    let principal = principal
        .map(|p| shorten(&p.0))
        .or_else(|| header_principal(auth));
    let client = client.map(|c| c.to_string());
    if status >= 500 {
        tracing::warn!(
            request_id,
            route,
            status,
            client,
            principal,
            "request failed"
        );
    } else {
        tracing::info!(
            request_id,
            route,
            status,
            client,
            principal,
            "request refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_never_carry_the_secret() {
        use base64::Engine;
        let basic = |s: &str| {
            let v = base64::engine::general_purpose::STANDARD.encode(s);
            axum::http::HeaderValue::from_str(&format!("Basic {v}")).unwrap()
        };
        let p = header_principal(Some(&basic("0b1c-project:s3cret-token"))).unwrap();
        assert_eq!(p, "project:0b1c-project");
        assert!(!p.contains("s3cret"));
        let bearer = axum::http::HeaderValue::from_static("Bearer eyJhbGciOi.secret.sig");
        assert_eq!(header_principal(Some(&bearer)).as_deref(), Some("bearer"));
        assert_eq!(header_principal(None), None);
        let long = "x".repeat(500);
        assert_eq!(header_principal(Some(&basic(&long))).unwrap().len(), 8 + 64);
    }
}
