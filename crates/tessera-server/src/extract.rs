//! Our own extractors, so that malformed input comes back in the Fabric error format instead of
//! axum's plain-text rejections.
//!
//! Bodies are read as a JSON object first (not JSON → 400; not an object → 422), then fields are
//! taken one by one through [`Fields`], which collects a 422 item per bad field. This is what
//! lets one response list several problems at once, as the original does.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use tessera_core::clock::UnixTime;
use tessera_core::ids::{ProjectId, ResourceId};
use tessera_core::token::PrincipalKind;

use crate::error::{FabricError, FieldError};
use crate::json_body::JsonError;
use crate::state::AppState;

/// A JSON object body.
#[derive(Debug)]
pub struct JsonBody(pub Map<String, Value>);

impl FromRequest<AppState> for JsonBody {
    type Rejection = FabricError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // JSON only (fabric-api.md §13 item 16). A missing Content-Type is read as JSON, since
        // some hand-written clients omit it; anything else is refused before reading the body.
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if mime != "application/json" && !mime.ends_with("+json") {
                return Err(FieldError {
                    code: "invalid_content_type",
                    message: "Invalid content type.".into(),
                    attribute: None,
                }
                .into());
            }
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // An empty body on a POST is an empty object: every required field will then be
            // reported missing, which is more useful than "Bad Request".
            return Ok(JsonBody(Map::new()));
        }
        match crate::json_body::parse(&bytes) {
            Ok(Value::Object(m)) => Ok(JsonBody(m)),
            Ok(_) => Err(FieldError {
                code: "invalid_parameter",
                message: "The request body must be a JSON object".into(),
                attribute: None,
            }
            .into()),
            // A duplicate member name makes the body mean different things to different
            // parsers (json_body.rs): it is as malformed as a missing brace.
            Err(JsonError::Syntax | JsonError::Duplicate { .. }) => Err(FabricError::BadRequest),
            Err(JsonError::OutOfRange { member }) => Err(FieldError::new(
                "invalid_parameter",
                &member,
                format!(
                    "{} is a number out of range",
                    crate::error::humanize(&member)
                ),
            )
            .into()),
        }
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy the address it forwarded
/// (`--trusted-proxies`, `proxies.rs`). Read only by the handlers that key on it (logins, the
/// embed exchange), so token grants do not pay for it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Tessera's accept loop always records the peer; a router served any other way (a
        // test's) has none, and its requests share the unspecified address.
        let client = client_address(state, &parts.extensions, &parts.headers);
        Ok(ClientAddr(
            client.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
        ))
    }
}

/// The client of a request with `extensions` and `headers`, if its peer is known.
pub fn client_address(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> Option<std::net::IpAddr> {
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?;
    Some(state.config.trusted_proxies.client(peer.0.ip(), headers))
}

/// A path parameter. A path that cannot be read as one (its id is not UTF-8 once
/// percent-decoded, say) names nothing, so it is the dialect's 404 like any unknown id, not
/// axum's plain-text 400.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for PathParam<T> {
    type Rejection = FabricError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParam(v))
            .map_err(|_| FabricError::NotFound)
    }
}

/// A raw body of any content type, with the size limit's rejection answered as a Fabric 413
/// instead of axum's plain text.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = FabricError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    FabricError::PayloadTooLarge
                } else {
                    FabricError::BadRequest
                }
            })
    }
}

/// Where a requested expiry must lie: after `now`, at most `max_lifetime` seconds ahead.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryWindow {
    /// The request's time.
    pub now: UnixTime,
    /// The longest lifetime a token may be given, in seconds.
    pub max_lifetime: i64,
}

/// Typed access to a JSON object's fields, collecting an error per bad field.
pub struct Fields {
    map: Map<String, Value>,
    /// Errors found so far.
    pub errors: Vec<FieldError>,
}

/// The longest free-text field we store, in characters; longer values are refused, not
/// truncated. Characters, not bytes: the error message says characters, and the OpenAPI
/// document's `maxLength` (JSON Schema counts code points) must mean the same limit.
const MAX_TEXT: usize = 1024;

impl Fields {
    /// Wraps a body.
    pub fn new(map: Map<String, Value>) -> Self {
        Fields {
            map,
            errors: Vec::new(),
        }
    }

    /// The raw value (null counts as absent, as the SDK drops `None`).
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// The remaining members, for resources that store what clients send.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    /// An optional string.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.raw(name) {
            None => None,
            // NUL cannot be stored as text by every backend (PostgreSQL refuses it), and no
            // legitimate name or email contains one.
            Some(Value::String(s)) if s.contains('\0') => {
                self.errors
                    .push(FieldError::invalid(name, "must not contain NUL characters"));
                None
            }
            Some(Value::String(s)) if s.chars().count() <= MAX_TEXT => Some(s.clone()),
            Some(Value::String(_)) => {
                self.errors.push(FieldError::invalid(
                    name,
                    &format!("is too long (maximum is {MAX_TEXT} characters)"),
                ));
                None
            }
            Some(_) => {
                self.errors.push(FieldError::new(
                    "not_a_string",
                    name,
                    format!("{} must be a string", crate::error::humanize(name)),
                ));
                None
            }
        }
    }

    /// Reads a body whose one member of interest is the required string `name`.
    pub fn only_required_string(
        body: Map<String, Value>,
        name: &str,
    ) -> Result<String, FabricError> {
        let mut f = Fields::new(body);
        let value = f.required_string(name);
        f.finish()?;
        value.ok_or_else(|| FieldError::missing(name).into())
    }

    /// A required, non-empty string.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        let missing = self.raw(name).is_none()
            || matches!(self.raw(name), Some(Value::String(s)) if s.trim().is_empty());
        if missing {
            self.errors.push(FieldError::missing(name));
            return None;
        }
        self.string(name)
    }

    /// An optional UUID of type `T`.
    pub fn uuid<T: std::str::FromStr>(&mut self, name: &str) -> Option<T> {
        let s = self.string(name)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.errors.push(FieldError::invalid(name, "is invalid"));
                None
            }
        }
    }

    /// A password: absent or empty means unchanged; otherwise 8 to 72 characters (both bounds
    /// in characters, as the messages and the document's `minLength`/`maxLength` say).
    pub fn password(&mut self, name: &str) -> Option<String> {
        let pw = self.string(name).filter(|p| !p.is_empty())?;
        let n = pw.chars().count();
        if n < 8 {
            self.errors.push(FieldError::invalid(
                name,
                "is too short (minimum is 8 characters)",
            ));
            None
        } else if n > 72 {
            // argon2 would take more, but the original caps at 72 (a bcrypt heritage) and
            // clients expect the same answer.
            self.errors.push(FieldError::invalid(
                name,
                "is too long (maximum is 72 characters)",
            ));
            None
        } else {
            Some(pw)
        }
    }

    /// An expiry given as integer seconds, an integral float, a numeric string or an RFC 3339
    /// string (fabric-api.md §13 item 4), checked to lie in `window`.
    pub fn expiry(&mut self, names: &[&str], window: ExpiryWindow) -> Option<UnixTime> {
        let ExpiryWindow {
            now,
            max_lifetime: max,
        } = window;
        let (name, v) = names
            .iter()
            .find_map(|n| self.raw(n).map(|v| (*n, v.clone())))?;
        // A whole number outside i64 (or a float beyond it) is a time, just not one in the
        // window: say which side it is on rather than "must be an integer".
        enum Read {
            Time(i64),
            TooLate,
            TooEarly,
            NotAnInteger,
        }
        let whole = |f: f64| {
            if f.fract() != 0.0 || !f.is_finite() {
                Read::NotAnInteger
            } else if f >= i64::MAX as f64 {
                Read::TooLate
            } else if f <= i64::MIN as f64 {
                Read::TooEarly
            } else {
                Read::Time(f as i64)
            }
        };
        let read = match &v {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(t), _) => Read::Time(t),
                (None, Some(f)) => whole(f),
                (None, None) => Read::NotAnInteger,
            },
            Value::String(s) => {
                let s = s.trim();
                let digits = s.strip_prefix('-').unwrap_or(s);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    match s.parse::<i64>() {
                        Ok(t) => Read::Time(t),
                        Err(_) if s.starts_with('-') => Read::TooEarly,
                        Err(_) => Read::TooLate,
                    }
                } else {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_or(Read::NotAnInteger, |t| Read::Time(t.unix_timestamp()))
                }
            }
            _ => Read::NotAnInteger,
        };
        let limit = now.0.saturating_add(max);
        let t = match read {
            Read::Time(t) => t,
            Read::NotAnInteger => {
                self.errors
                    .push(FieldError::invalid(name, "must be an integer"));
                return None;
            }
            Read::TooEarly => i64::MIN,
            Read::TooLate => i64::MAX,
        };
        if t <= now.0 {
            self.errors.push(FieldError::invalid(
                name,
                &format!("must be greater than {}", now.0),
            ));
            return None;
        }
        if t > limit {
            self.errors.push(FieldError::invalid(
                name,
                &format!("must be less than or equal to {limit}"),
            ));
            return None;
        }
        Some(UnixTime(t))
    }

    /// Fails with every collected error, if any.
    pub fn finish(&mut self) -> Result<(), FabricError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(FabricError::Validation(std::mem::take(&mut self.errors)))
        }
    }
}

/// Who is calling a Fabric endpoint: a project backend (Basic) or one of its subscribers
/// (Bearer SAT). The same as the directory's reader, whose rules decide what each may see.
pub use tessera_core::directory::Reader as Caller;

/// The `user:secret` text of HTTP Basic credentials (what follows `Basic `), if it is base64
/// of UTF-8. Shared by authentication and the refusal log, which keeps only the user.
pub(crate) fn decode_basic(encoded: &str) -> Option<String> {
    String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()
}

async fn authenticate(
    parts: &Parts,
    state: &AppState,
    bearer_ok: bool,
) -> Result<Caller, FabricError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(FabricError::Unauthorized)?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or(FabricError::Unauthorized)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let text = decode_basic(rest).ok_or(FabricError::Unauthorized)?;
        let (user, secret) = text.split_once(':').ok_or(FabricError::Unauthorized)?;
        let project: ProjectId = user.parse().map_err(|_| FabricError::Unauthorized)?;
        state.service.authenticate_project(project, secret).await?;
        Ok(Caller::Project(project))
    } else if bearer_ok && scheme.eq_ignore_ascii_case("bearer") {
        let claims = state.service.authenticate_bearer(rest.trim()).await?;
        // Only subscriber SATs carry subscriber scope; guest, invite and embed tokens are for
        // reaching addresses, not for reading the directory.
        if claims.knd != PrincipalKind::Subscriber {
            return Err(FabricError::Unauthorized);
        }
        Ok(Caller::Subscriber {
            project: claims.pid,
            subscriber: ResourceId(claims.sub),
        })
    } else {
        Err(FabricError::Unauthorized)
    }
}

/// Basic project credentials, required.
#[derive(Debug, Clone, Copy)]
pub struct ProjectAuth(pub ProjectId);

impl FromRequestParts<AppState> for ProjectAuth {
    type Rejection = FabricError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state, false).await? {
            Caller::Project(p) => Ok(ProjectAuth(p)),
            Caller::Subscriber { .. } => Err(FabricError::Unauthorized),
        }
    }
}

/// Basic project credentials or a subscriber's Bearer SAT (addresses and invites).
#[derive(Debug, Clone, Copy)]
pub struct AnyAuth(pub Caller);

impl FromRequestParts<AppState> for AnyAuth {
    type Rejection = FabricError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, true).await.map(AnyAuth)
    }
}
