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

impl From<ServiceError> for FabricError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized => FabricError::Unauthorized,
            ServiceError::NotFound => FabricError::NotFound,
            ServiceError::Forbidden => FabricError::Forbidden,
            ServiceError::Rule(rule) => FabricError::Validation(vec![rule_error(rule)]),
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
