//! Every HTTP status the Fabric dialect answers with is chosen here, and nowhere else.
//!
//! Handlers return [`FabricError`]; its `IntoResponse` renders the dialect's bodies:
//! `{"error": "..."}` for 400/401/403/404/413/429/500 and `{"errors": [...]}` for 422
//! (fabric-api.md §1.2, §9). Internal errors are logged with a reference id and answered with a
//! generic message, so nothing about the cause (or any secret) leaks to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::service::{Rule, ServiceError, MAX_ALLOWED_ADDRESSES};
use tessera_core::store::StoreError;

/// Where the error `url` of every 422 item points (fabric-api.md §13 item 20).
const ERROR_DOCS: &str =
    "https://developer.signalwire.com/rest/signalwire-rest/overview/error-codes#";

/// One 422 item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Machine code, e.g. `missing_required_parameter`.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// The field, when the error is about one.
    pub attribute: Option<String>,
}

impl FieldError {
    /// A field error.
    pub fn new(code: &'static str, attribute: &str, message: impl Into<String>) -> Self {
        FieldError {
            code,
            message: message.into(),
            attribute: Some(attribute.to_string()),
        }
    }

    /// `missing_required_parameter` for `attribute`.
    pub fn missing(attribute: &str) -> Self {
        FieldError::new(
            "missing_required_parameter",
            attribute,
            format!("{} is required", humanize(attribute)),
        )
    }

    /// `invalid_parameter` for `attribute`.
    pub fn invalid(attribute: &str, what: &str) -> Self {
        FieldError::new(
            "invalid_parameter",
            attribute,
            format!("{} {what}", humanize(attribute)),
        )
    }
}

/// `expires_at` → `Expires At`, the way the original messages name fields.
pub fn humanize(attr: &str) -> String {
    attr.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Fabric error response.
#[derive(Debug)]
pub enum FabricError {
    /// 400: the body is not JSON.
    BadRequest,
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 403: a disabled widget.
    Forbidden,
    /// 404: no such thing (in this project).
    NotFound,
    /// 405: the path exists with other methods.
    MethodNotAllowed,
    /// 413: the body exceeds the limit.
    PayloadTooLarge,
    /// 429: rate-limited; retry after this many seconds.
    TooManyRequests(u64),
    /// 408: the request (its body) did not arrive in time.
    RequestTimeout,
    /// 503: the request could not be answered within the request deadline, or the database
    /// is unavailable (no connection free in time, the server gone; the cause is logged).
    Unavailable,
    /// 422: one or more field errors.
    Validation(Vec<FieldError>),
    /// 500: logged with a reference id, answered generically.
    Internal(String),
}

impl From<FieldError> for FabricError {
    fn from(e: FieldError) -> Self {
        FabricError::Validation(vec![e])
    }
}

impl From<StoreError> for FabricError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<tessera_core::keys::KeyLoadError> for FabricError {
    fn from(e: tessera_core::keys::KeyLoadError) -> Self {
        match e {
            tessera_core::keys::KeyLoadError::Store(s) => s.into(),
            other => FabricError::Internal(other.to_string()),
        }
    }
}

impl From<ServiceError> for FabricError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized => FabricError::Unauthorized,
            ServiceError::NotFound => FabricError::NotFound,
            ServiceError::Forbidden => FabricError::Forbidden,
            ServiceError::Rule(rule) => FabricError::Validation(vec![rule_error(rule)]),
            ServiceError::Store(StoreError::Unavailable(cause)) => {
                store_unavailable(&cause);
                FabricError::Unavailable
            }
            ServiceError::Store(e) => FabricError::Internal(e.to_string()),
            ServiceError::NoKey => FabricError::Internal("no active key".into()),
        }
    }
}

/// The Fabric code, message and attribute for each domain rule.
fn rule_error(rule: Rule) -> FieldError {
    match rule {
        Rule::TooManyAddresses => FieldError::new(
            "allowed_address_limit_exceeded",
            "allowed_addresses",
            format!("maximum number of allowed addresses is {MAX_ALLOWED_ADDRESSES}"),
        ),
        Rule::NoAddresses => FieldError::missing("allowed_addresses"),
        Rule::AddressesNotInProject => FieldError::new(
            "must_belong_to_project",
            "allowed_addresses",
            "The addresses must belong to the project",
        ),
        Rule::InvalidInviteAddress => {
            FieldError::new("invalid_parameter", "address_id", "Address is invalid")
        }
        Rule::UnknownApplication => FieldError::new(
            "provided_id_is_unrecognized",
            "application_id",
            "Application is unrecognized",
        ),
        Rule::NotARefreshToken => FieldError::new(
            "not_a_refresh_token",
            "refresh_token",
            "Invalid token type. You must use a Refresh token.",
        ),
        Rule::TokenExpired => {
            FieldError::new("token_expired", "refresh_token", "Token has expired.")
        }
        Rule::TokenInvalid => {
            FieldError::new("token_invalid", "refresh_token", "Token is invalid.")
        }
        Rule::EmbedTokenPrefix => FieldError::new(
            "token_has_invalid_prefix",
            "token",
            "Token has an invalid prefix.",
        ),
        Rule::EmailTaken => FieldError::new(
            "not_unique_within_project",
            "email",
            "Email has already been taken",
        ),
    }
}

fn simple(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "error": text }))).into_response()
}

impl IntoResponse for FabricError {
    fn into_response(self) -> Response {
        match self {
            FabricError::BadRequest => simple(StatusCode::BAD_REQUEST, "Bad Request"),
            FabricError::Unauthorized => {
                let mut r = simple(StatusCode::UNAUTHORIZED, "Unauthorized");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"tessera\""),
                );
                r
            }
            FabricError::Forbidden => simple(StatusCode::FORBIDDEN, "Forbidden"),
            FabricError::NotFound => simple(StatusCode::NOT_FOUND, "Not Found"),
            FabricError::MethodNotAllowed => {
                simple(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            }
            FabricError::PayloadTooLarge => {
                simple(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")
            }
            FabricError::RequestTimeout => simple(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
            FabricError::Unavailable => {
                simple(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            FabricError::TooManyRequests(after) => {
                let mut r = simple(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(after.max(1)));
                r
            }
            FabricError::Validation(errors) => {
                let items: Vec<_> = errors
                    .into_iter()
                    .map(|e| {
                        json!({
                            "type": "validation_error",
                            "code": e.code,
                            "message": e.message,
                            "attribute": e.attribute,
                            "url": format!("{ERROR_DOCS}{}", e.code),
                        })
                    })
                    .collect();
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({ "errors": items })),
                )
                    .into_response()
            }
            FabricError::Internal(cause) => {
                let reference = uuid::Uuid::new_v4();
                tracing::error!(%reference, %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({ "error": "Internal Server Error" })),
                )
                    .into_response()
            }
        }
    }
}

/// An Accounts API (`/v1`) error: the `Error` object of accounts-api.md §8, always JSON and
/// always with a `message` (field clients dereference it unchecked).
#[derive(Debug)]
pub enum V1Error {
    /// 400 with a specific code, e.g. `TOKEN_SPEC_INVALID`, `MALFORMED_REQUEST_BODY`.
    BadRequest(&'static str, String),
    /// 401 `INVALID_CREDENTIALS`: wrong, unknown, disabled or locked; one answer for all.
    InvalidCredentials,
    /// 401 `Unauthorized` on a protected endpoint (the errorCode the SDK sample retries on).
    Unauthorized,
    /// 403 `Forbidden`: the caller's role is too weak.
    Forbidden,
    /// 404 with a specific code, e.g. `REFRESH_TOKEN_NOT_FOUND`.
    NotFound(&'static str, String),
    /// 405 on a known path.
    MethodNotAllowed,
    /// 409 with a specific code: the name is taken.
    Conflict(&'static str, String),
    /// 413: the body exceeds the limit.
    PayloadTooLarge,
    /// 408: the request (its body) did not arrive in time.
    RequestTimeout,
    /// 503: the request could not be answered within the request deadline, or the database
    /// is unavailable (no connection free in time, the server gone; the cause is logged).
    Unavailable,
    /// 500: logged with the reference token, answered generically.
    Internal(String),
}

impl From<StoreError> for V1Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => V1Error::NotFound("NOT_FOUND", "Not found.".into()),
            StoreError::Unavailable(cause) => {
                store_unavailable(&cause);
                V1Error::Unavailable
            }
            other => V1Error::Internal(other.to_string()),
        }
    }
}

/// Logs why the database could not answer. The client gets 503 (worth retrying: the design
/// says a database outage answers 503, never 500, and heals without a restart); the cause,
/// which may name the database host, stays in the log.
fn store_unavailable(cause: &str) {
    tracing::warn!(%cause, "store unavailable; answered 503");
}

impl From<tessera_core::accounts::AccountsError> for V1Error {
    fn from(e: tessera_core::accounts::AccountsError) -> Self {
        use tessera_core::accounts::AccountsError as E;
        match e {
            E::InvalidCredentials => V1Error::InvalidCredentials,
            E::RefreshNotFound => V1Error::NotFound(
                "REFRESH_TOKEN_NOT_FOUND",
                "The refresh token was not found, has expired or was invalidated.".into(),
            ),
            E::Unauthorized => V1Error::Unauthorized,
            E::NoKey => V1Error::Internal("no active signing key".into()),
            E::Store(s) => s.into(),
        }
    }
}

impl From<tessera_core::admin::AdminError> for V1Error {
    fn from(e: tessera_core::admin::AdminError) -> Self {
        use tessera_core::admin::AdminError as E;
        match e {
            E::NotFound(what) => {
                V1Error::NotFound("NOT_FOUND", format!("The {what} was not found."))
            }
            E::Invalid(m) => V1Error::BadRequest("INVALID_REQUEST", m),
            E::Store(s) => s.into(),
        }
    }
}

/// Six random upper-case letters and digits, as VCF shows reference tokens.
fn reference_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    tessera_core::crypto::random_bytes::<6>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn v1_body(status: StatusCode, code: &str, message: &str) -> Response {
    v1_body_ref(status, code, message, reference_token())
}

fn v1_body_ref(status: StatusCode, code: &str, message: &str, reference: String) -> Response {
    let body = json!({
        "errorCode": code,
        "errorType": "ERROR",
        "arguments": [],
        "context": {},
        "message": message,
        "remediationMessage": "",
        "causes": [],
        "nestedErrors": [],
        "referenceToken": reference,
    });
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        match self {
            V1Error::BadRequest(code, m) => v1_body(StatusCode::BAD_REQUEST, code, &m),
            V1Error::InvalidCredentials => v1_body(
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Invalid credentials.",
            ),
            V1Error::Unauthorized => {
                let mut r = v1_body(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "A valid Bearer access token is required.",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            V1Error::Forbidden => v1_body(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The caller's role does not allow this operation.",
            ),
            V1Error::NotFound(code, m) => v1_body(StatusCode::NOT_FOUND, code, &m),
            V1Error::MethodNotAllowed => v1_body(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed.",
            ),
            V1Error::Conflict(code, m) => v1_body(StatusCode::CONFLICT, code, &m),
            V1Error::PayloadTooLarge => v1_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "The request body is too large.",
            ),
            V1Error::RequestTimeout => v1_body(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "The request did not arrive in time.",
            ),
            V1Error::Unavailable => v1_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "The request could not be answered in time; try again.",
            ),
            V1Error::Internal(cause) => {
                let reference = reference_token();
                tracing::error!(%reference, %cause, "internal error");
                v1_body_ref(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_SERVER_ERROR",
                    "Internal server error.",
                    reference,
                )
            }
        }
    }
}

/// Why a request was answered before (or instead of) its handler, by the connection limits
/// in `startup::read_body_first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Content-Length` (or the body read so far) is over the body limit: 413.
    TooLarge,
    /// The body did not arrive within the body-read deadline: 408.
    BodyTimeout,
    /// The body stopped arriving (the client closed or reset the connection): 400.
    BodyBroken,
    /// The handler did not finish within the request deadline: 503.
    Deadline,
}

/// Whether a path is the Accounts API's (`/v1…`); everything else speaks Fabric.
pub fn is_accounts_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// The answer to a request whose handler panicked: the dialect's 500, with the panic logged
/// under the answer's reference (the process goes on serving every other request).
pub fn panic_response(accounts: bool) -> Response {
    let cause = "the handler panicked".to_string();
    if accounts {
        V1Error::Internal(cause).into_response()
    } else {
        FabricError::Internal(cause).into_response()
    }
}

/// The response to a [`Refusal`], in the Accounts dialect if `accounts` (see
/// [`is_accounts_path`]), else Fabric's. The connection is closed after it: the body was not
/// read (or not all of it), so what follows on the connection is not the next request.
pub fn refusal_response(accounts: bool, refusal: Refusal) -> Response {
    let mut r = match (accounts, refusal) {
        (false, Refusal::TooLarge) => FabricError::PayloadTooLarge.into_response(),
        (false, Refusal::BodyTimeout) => FabricError::RequestTimeout.into_response(),
        (false, Refusal::BodyBroken) => FabricError::BadRequest.into_response(),
        (false, Refusal::Deadline) => FabricError::Unavailable.into_response(),
        (true, Refusal::TooLarge) => V1Error::PayloadTooLarge.into_response(),
        (true, Refusal::BodyTimeout) => V1Error::RequestTimeout.into_response(),
        (true, Refusal::BodyBroken) => {
            V1Error::BadRequest("MALFORMED_REQUEST_BODY", "The body cannot be read.".into())
                .into_response()
        }
        (true, Refusal::Deadline) => V1Error::Unavailable.into_response(),
    };
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that cannot answer (no pooled connection free within the wait, the server
    /// gone) is a 503 in both dialects, never a 500: clients retry a 503.
    #[test]
    fn an_unavailable_store_answers_503_in_both_dialects() {
        let down = || StoreError::Unavailable("no PostgreSQL connection became free".into());
        let fabric = FabricError::from(down()).into_response();
        assert_eq!(fabric.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v1 = V1Error::from(down()).into_response();
        assert_eq!(v1.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v1 =
            V1Error::from(tessera_core::accounts::AccountsError::Store(down())).into_response();
        assert_eq!(v1.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Other store failures stay what they were.
        let conflict = FabricError::from(StoreError::Conflict("unique".into())).into_response();
        assert_eq!(conflict.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
