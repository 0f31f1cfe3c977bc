//! The part of the OpenAPI description still written as a table, while the operations move to
//! typed handlers with `#[utoipa::path]` annotations (see `super`). An operation or schema the
//! derived document already holds is taken from there; this table supplies only the rest.

use serde_json::{json, Map, Value};
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::model::Role;
use tessera_core::service::{MAX_ALLOWED_ADDRESSES, SCOPE_SAT_REFRESH};

use super::schemas::*;

/// An HTTP method of a documented operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The upper-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The lower-case name OpenAPI uses as the key of a path item.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// An authentication scheme an operation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic with the project id and one of its API tokens.
    Basic,
    /// `Authorization: Bearer` with a subscriber's access token (SAT).
    Bearer,
    /// `Authorization: Bearer` with an Accounts API access token (a compact JWS from
    /// `POST /v1/tokens`); the account's role decides which operations it may call.
    AccountsBearer,
    /// No credentials (any `Authorization` header is ignored).
    None,
}

/// A schema: a reference to a named component, or one built in place.
#[derive(Debug, Clone, Copy)]
pub enum Schema {
    /// `#/components/schemas/<name>`.
    Ref(&'static str),
    /// A schema used by one operation only.
    Inline(fn() -> Value),
}

impl Schema {
    /// The schema's JSON.
    pub fn build(self) -> Value {
        match self {
            Schema::Ref(name) => schema_ref(name),
            Schema::Inline(f) => f(),
        }
    }
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A `{name}` segment of the path.
    Path,
    /// The query string.
    Query,
}

/// A path or query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// Where it travels.
    pub location: Location,
    /// What it means, including what happens when it is wrong.
    pub description: &'static str,
    /// Its schema.
    pub schema: Schema,
}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub struct RequestBody {
    /// Accepted media types, all with the same schema.
    pub media: &'static [&'static str],
    /// The body's schema.
    pub schema: Schema,
    /// Whether a body must be sent. `false` where the server reads a missing (empty) body as
    /// an empty object and can succeed on it (a merge that changes nothing, an optional name),
    /// so the document does not call a request it accepts invalid.
    pub required: bool,
}

/// A response header.
#[derive(Debug, Clone, Copy)]
pub struct ReplyHeader {
    /// Header name.
    pub name: &'static str,
    /// What it carries.
    pub description: &'static str,
    /// Its value's schema.
    pub schema: Schema,
}

/// One documented response.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// When it is sent.
    pub description: &'static str,
    /// Media type and schema of the body; `None` for an empty body.
    pub body: Option<(&'static str, Schema)>,
    /// Headers beyond `X-Request-Id` (which every response carries and the document adds).
    pub headers: &'static [ReplyHeader],
}

/// One documented operation: the unit shared by the document, the page and the tests.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// HTTP method.
    pub method: Method,
    /// Path in axum's form; `{id}` placeholders are also OpenAPI's form.
    pub path: &'static str,
    /// Unique `operationId`, also the operation's anchor on the HTML page.
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// What a client cannot guess from the schemas.
    pub description: &'static str,
    /// Its section (one of [`TAGS`]).
    pub tag: &'static str,
    /// Accepted authentication; `[Auth::None]` means public.
    pub auth: &'static [Auth],
    /// Path and query parameters.
    pub params: &'static [Param],
    /// The request body, if the operation reads one.
    pub request: Option<RequestBody>,
    /// Every response, success first.
    pub responses: &'static [Reply],
}

/// The sections of the document, in page order, with their descriptions.
pub const TAGS: &[(&str, &str)] = &[
    (
        "Tokens",
        "Fabric token grants (T1–T5): subscriber, refresh, guest, invite and click-to-call embed \
         tokens. Tokens are compact JWE, opaque to clients.",
    ),
    (
        "Subscribers",
        "A project's end users (S1–S6). A subscriber's resource id and subscriber id are the \
         same UUID.",
    ),
    (
        "Conference rooms",
        "Rooms store whatever members clients send beside `name` and `display_name`.",
    ),
    (
        "Resources",
        "Every resource of the project, whatever its kind.",
    ),
    (
        "Addresses",
        "Each resource has one address; addresses are what guest, invite and embed tokens are \
         restricted to.",
    ),
    (
        "OAuth 2.0",
        "Token introspection (RFC 7662) and revocation (RFC 7009) for resource servers and \
         project backends.",
    ),
    (
        "Accounts",
        "The Accounts API's login, compatible with VMware Cloud Foundation SDDC Manager's \
         `/v1/tokens`: an account's name and password, or a service account's API key, buy a \
         one-hour access token (a compact JWS) and a refresh id. Public. Every error under \
         `/v1` is an `AccountsError`.",
    ),
    (
        "Management",
        "The management plane under `/v1`: accounts, roles, Fabric projects and their API \
         tokens, keys and the audit log. Every operation needs an Accounts access token \
         (`Authorization: Bearer`), and its description names the least role it needs: VIEWER \
         may call every GET, OPERATOR also manages projects and their API tokens, ADMIN also \
         users and keys. Lists are pages (`elements` and `pageMetadata`).",
    ),
    ("Service", "Health and this documentation."),
];

// ---- Reusable pieces of the operations table -------------------------------------------------

const JSON: &str = "application/json";
const JSON_ONLY: &[&str] = &[JSON];

const fn json_body(schema: &'static str) -> Option<RequestBody> {
    Some(RequestBody {
        media: JSON_ONLY,
        schema: Schema::Ref(schema),
        required: true,
    })
}

/// A JSON body the operation may also be called without (see [`RequestBody::required`]).
const fn optional_json_body(schema: &'static str) -> Option<RequestBody> {
    Some(RequestBody {
        media: JSON_ONLY,
        schema: Schema::Ref(schema),
        required: false,
    })
}

const fn ok(status: u16, description: &'static str, schema: Schema) -> Reply {
    Reply {
        status,
        description,
        body: Some((JSON, schema)),
        headers: &[],
    }
}

/// A `{"error": …}` response.
const fn err(status: u16, description: &'static str) -> Reply {
    Reply {
        status,
        description,
        body: Some((JSON, Schema::Ref("FabricError"))),
        headers: &[],
    }
}

/// A 422 `{"errors": […]}` response.
const fn invalid(description: &'static str) -> Reply {
    Reply {
        status: 422,
        description,
        body: Some((JSON, Schema::Ref("FabricValidationErrors"))),
        headers: &[],
    }
}

const E400_BODY: Reply = err(400, "The body is not valid JSON.");
const E401: Reply = Reply {
    status: 401,
    description: "Credentials are missing or wrong.",
    body: Some((JSON, Schema::Ref("FabricError"))),
    headers: &[ReplyHeader {
        name: "WWW-Authenticate",
        description: "`Basic realm=\"tessera\"`.",
        schema: Schema::Inline(string),
    }],
};
const E413: Reply = err(
    413,
    "The body exceeds the configured limit (`--body-limit`, 64 KiB by default).",
);
const E500: Reply = err(
    500,
    "An internal error; it is logged with a reference id and the body says nothing more.",
);
/// A 204 with an empty body.
const fn empty(description: &'static str) -> Reply {
    Reply {
        status: 204,
        description,
        body: None,
        headers: &[],
    }
}

const NO_CONTENT: Reply = empty("Deleted.");

const BASIC: &[Auth] = &[Auth::Basic];
const BASIC_OR_BEARER: &[Auth] = &[Auth::Basic, Auth::Bearer];
const PUBLIC: &[Auth] = &[Auth::None];
const ACCOUNTS: &[Auth] = &[Auth::AccountsBearer];

// ---- Reusable pieces of the Accounts API (/v1) ----------------------------------------------

/// An Accounts API error: every 4xx and 5xx under `/v1` is an `AccountsError`.
const fn v1_err(status: u16, description: &'static str) -> Reply {
    Reply {
        status,
        description,
        body: Some((JSON, Schema::Ref("AccountsError"))),
        headers: &[],
    }
}

const V1_400: Reply = v1_err(
    400,
    "Bad input (`INVALID_REQUEST`), or a body that is not JSON or has a member of the wrong \
     type (`MALFORMED_REQUEST_BODY`).",
);
const V1_400_PAGING: Reply = v1_err(
    400,
    "`pageNumber` not a non-negative integer, `pageSize` outside 1–1000, or a query string \
     that cannot be decoded (`INVALID_REQUEST`).",
);
const V1_401: Reply = Reply {
    status: 401,
    description: "The bearer access token is missing, invalid or expired, or its user is \
                  disabled or deleted (`Unauthorized`).",
    body: Some((JSON, Schema::Ref("AccountsError"))),
    headers: &[ReplyHeader {
        name: "WWW-Authenticate",
        description: "`Bearer`.",
        schema: Schema::Inline(string),
    }],
};
const V1_403: Reply = v1_err(403, "The caller's role is too weak (`Forbidden`).");
const V1_404: Reply = v1_err(404, "No such record (`NOT_FOUND`).");
const V1_413: Reply = v1_err(
    413,
    "The body exceeds the configured limit (`--body-limit`, 64 KiB by default; \
     `PAYLOAD_TOO_LARGE`).",
);
const V1_500: Reply = v1_err(
    500,
    "An internal error (`INTERNAL_SERVER_ERROR`), logged with the body's `referenceToken`; \
     the body says nothing more.",
);

/// The refresh id, as `PATCH /v1/tokens/access-token/refresh` and
/// `DELETE /v1/tokens/refresh-token` read it whatever the `Content-Type`. The document lists
/// JSON and plain text rather than `*/*`: the server reads JSON or a bare id, not any encoding
/// of the schema (a YAML string, say, is malformed), and `*/*` promised that.
const REFRESH_ID_BODY: Option<RequestBody> = Some(RequestBody {
    media: &[JSON, "text/plain"],
    schema: Schema::Ref("RefreshTokenIdBody"),
    required: true,
});

const V1_PAGE_NUMBER: Param = Param {
    name: "pageNumber",
    location: Location::Query,
    description: "Zero-based page number; 0 by default.",
    schema: Schema::Inline(v1_page_number_schema),
};
const V1_PAGE_SIZE: Param = Param {
    name: "pageSize",
    location: Location::Query,
    description: "Elements per page, 1 to 1000; 100 by default.",
    schema: Schema::Inline(v1_page_size_schema),
};
const V1_PAGING: &[Param] = &[V1_PAGE_NUMBER, V1_PAGE_SIZE];

const USER_ID: Param = Param {
    name: "id",
    location: Location::Path,
    description: "User id.",
    schema: Schema::Inline(uuid),
};
const PROJECT_ID: Param = Param {
    name: "id",
    location: Location::Path,
    description: "Project id (also the Fabric API's Basic user name).",
    schema: Schema::Inline(uuid),
};
const API_TOKEN_ID: Param = Param {
    name: "tokenId",
    location: Location::Path,
    description: "API token record id (not the secret).",
    schema: Schema::Inline(uuid),
};

/// Every operation Tessera serves. The router is written separately (axum needs handlers, this
/// table needs prose); the coverage tests hold the two together.
pub static OPERATIONS: &[Operation] = &[
    // ---- Tokens
    Operation {
        method: Method::Post,
        path: "/api/fabric/subscribers/tokens",
        id: "createSubscriberToken",
        summary: "Create a subscriber token (T1)",
        description: "Creates the subscriber named by `reference` (its email becomes the \
                      reference) or updates the profile fields given, then issues an access \
                      token and a refresh token. Answers 200, not 201, as the original does.",
        tag: "Tokens",
        auth: BASIC,
        params: &[],
        request: json_body("SubscriberTokenRequest"),
        responses: &[
            ok(
                200,
                "The subscriber's tokens.",
                Schema::Ref("SubscriberTokenResponse"),
            ),
            E400_BODY,
            E401,
            E413,
            invalid(
                "A bad field: e.g. `missing_required_parameter` (`reference`), \
                 `invalid_parameter` (`expire_at`, `password`, `scope`, `fingerprint`), \
                 `provided_id_is_unrecognized` (`application_id`), `invalid_content_type`.",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/api/fabric/subscribers/tokens/refresh",
        id: "refreshSubscriberToken",
        summary: "Refresh a subscriber token (T2)",
        description: "Rotates a refresh token: both tokens are replaced and the presented one is \
                      spent. Presenting a spent refresh token again within the grace window is \
                      answered as an honest retry; after it, the whole session family is revoked.",
        tag: "Tokens",
        auth: BASIC,
        params: &[],
        request: json_body("RefreshRequest"),
        responses: &[
            ok(201, "The new token pair.", Schema::Ref("TokenPair")),
            E400_BODY,
            E401,
            E413,
            invalid(
                "`missing_required_parameter`, `not_a_refresh_token` (an access token was \
                 given), `token_expired`, or `token_invalid` (unknown, spent, revoked, or \
                 another project's), all on `refresh_token`.",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/api/fabric/guests/tokens",
        id: "createGuestToken",
        summary: "Create a guest token (T3)",
        description: "Issues a token pair for an anonymous visitor that may reach only the \
                      listed addresses of the project.",
        tag: "Tokens",
        auth: BASIC,
        params: &[],
        request: json_body("GuestTokenRequest"),
        responses: &[
            ok(201, "The guest's token pair.", Schema::Ref("TokenPair")),
            E400_BODY,
            E401,
            E413,
            invalid(
                "`allowed_addresses` missing or empty (`missing_required_parameter`), too long \
                 (`allowed_address_limit_exceeded`), not UUIDs \
                 (`unrecognized_fabric_addresses`), or not all the project's \
                 (`must_belong_to_project`); or a bad `expire_at`.",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/api/fabric/subscriber/invites",
        id: "createInviteToken",
        summary: "Create an invite token (T4)",
        description: "Issues an access token (no refresh token) for one subscriber address. With \
                      Basic credentials any subscriber address of the project qualifies; with a \
                      subscriber's Bearer SAT only that subscriber's own address does.",
        tag: "Tokens",
        auth: BASIC_OR_BEARER,
        params: &[],
        request: json_body("InviteRequest"),
        responses: &[
            ok(201, "The invite token.", Schema::Ref("TokenOnly")),
            E400_BODY,
            E401,
            E413,
            invalid(
                "`address_id` missing, malformed, or not an address the caller may invite to \
                 (`invalid_parameter`, \"Address is invalid\"); or a bad `expires_at`.",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/api/fabric/embeds/tokens",
        id: "createEmbedToken",
        summary: "Exchange a click-to-call widget token (T5)",
        description: "Public: any `Authorization` header is ignored. Exchanges a widget's `c2c_` \
                      token for a short-lived access token restricted to the widget's \
                      addresses. Rate-limited per client address.",
        tag: "Tokens",
        auth: PUBLIC,
        params: &[],
        request: json_body("EmbedRequest"),
        responses: &[
            ok(201, "The guest access token.", Schema::Ref("TokenOnly")),
            E400_BODY,
            err(403, "The widget is disabled."),
            err(404, "No widget has this token."),
            E413,
            invalid(
                "`token` missing (`missing_required_parameter`) or without the `c2c_` prefix \
                 (`token_has_invalid_prefix`).",
            ),
            Reply {
                status: 429,
                description: "Too many exchanges from this client address \
                              (`--embed-rate-per-minute`).",
                body: Some((JSON, Schema::Ref("FabricError"))),
                headers: &[ReplyHeader {
                    name: "Retry-After",
                    description: "Seconds until the next exchange is allowed.",
                    schema: Schema::Inline(positive),
                }],
            },
            E500,
        ],
    },
    // ==== Accounts API (/v1) =================================================================
    // An SDDC Manager-compatible login (tag "Accounts", public) and the management plane (tag
    // "Management", Accounts bearer token and a role). Every error is an `AccountsError`.
    // ---- Accounts
    Operation {
        method: Method::Post,
        path: "/v1/tokens",
        id: "createAccessToken",
        summary: "Log in: create an access token and a refresh id",
        description: "Public: any `Authorization` header is ignored. Takes an `apiKey` (a \
                      SERVICE user's) or a `username` and `password`; `apiKey` wins when both \
                      are sent. Five failed logins for one account from one client address \
                      within 180 s lock that pair for 900 s, answered like wrong credentials; \
                      other addresses can still log in, and a per-address failure limit stops \
                      guessing across accounts.",
        tag: "Accounts",
        auth: PUBLIC,
        params: &[],
        request: json_body("TokenCreationSpec"),
        responses: &[
            ok(
                200,
                "The access token and the refresh id.",
                Schema::Ref("AccountsTokenPair"),
            ),
            v1_err(
                400,
                "No usable credentials (`TOKEN_SPEC_INVALID`), or a body that is not JSON or \
                 has a member of the wrong type (`MALFORMED_REQUEST_BODY`).",
            ),
            v1_err(
                401,
                "Wrong or unknown credentials, or a disabled or locked account, all answered \
                 alike (`INVALID_CREDENTIALS`).",
            ),
            V1_413,
            V1_500,
        ],
    },
    Operation {
        method: Method::Patch,
        path: "/v1/tokens/access-token/refresh",
        id: "refreshAccessToken",
        summary: "Refresh an access token",
        description: "Public. Mints a new access token from a refresh id. The refresh id is not \
                      rotated: it can be used again until 24 h after the login that issued it, \
                      unless it is invalidated first.",
        tag: "Accounts",
        auth: PUBLIC,
        params: &[],
        request: REFRESH_ID_BODY,
        responses: &[
            ok(
                200,
                "The new access token, as a JSON string.",
                Schema::Inline(access_token),
            ),
            v1_err(
                400,
                "No refresh id (`REFRESH_TOKEN_REQUIRED`), or a body that starts like JSON but \
                 is not a JSON string or an object with a string `id` \
                 (`MALFORMED_REQUEST_BODY`).",
            ),
            v1_err(
                404,
                "The refresh id is unknown, expired or invalidated \
                 (`REFRESH_TOKEN_NOT_FOUND`).",
            ),
            V1_413,
            V1_500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/v1/tokens/refresh-token",
        id: "invalidateRefreshToken",
        summary: "Invalidate a refresh id (log out)",
        description: "Public. The refresh id mints no more access tokens; access tokens it has \
                      already minted stay valid until they expire.",
        tag: "Accounts",
        auth: PUBLIC,
        params: &[],
        request: REFRESH_ID_BODY,
        responses: &[
            empty("Invalidated; an unknown refresh id is answered 204 too."),
            v1_err(
                400,
                "No refresh id (`REFRESH_TOKEN_REQUIRED`), or one not shaped like a refresh id \
                 (`MALFORMED_REQUEST_BODY`).",
            ),
            V1_413,
            V1_500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/v1/tokens/jwks",
        id: "getAccessTokenKeys",
        summary: "The public keys that verify access tokens (JWKS)",
        description: "Public. The Ed25519 keys that verify EdDSA-signed access tokens, for \
                      services that verify them themselves. Empty when the server signs with \
                      HS256, whose secret is never published.",
        tag: "Accounts",
        auth: PUBLIC,
        params: &[],
        request: None,
        responses: &[ok(200, "The key set.", Schema::Ref("JWKS"))],
    },
    // ---- Management
    Operation {
        method: Method::Get,
        path: "/v1/roles",
        id: "listRoles",
        summary: "List roles",
        description: "Role: VIEWER or above. ADMIN, OPERATOR and VIEWER; each may do all that \
                      the next may.",
        tag: "Management",
        auth: ACCOUNTS,
        params: V1_PAGING,
        request: None,
        responses: &[
            ok(200, "A page of roles.", Schema::Ref("RolePage")),
            V1_400_PAGING,
            V1_401,
            V1_500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/v1/users",
        id: "listUsers",
        summary: "List users",
        description: "Role: VIEWER or above. API keys are never listed.",
        tag: "Management",
        auth: ACCOUNTS,
        params: V1_PAGING,
        request: None,
        responses: &[
            ok(200, "A page of users.", Schema::Ref("UserPage")),
            V1_400_PAGING,
            V1_401,
            V1_500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/v1/users",
        id: "createUsers",
        summary: "Create users",
        description: "Role: ADMIN. One to 100 users; every element is checked before any user \
                      is created. A USER logs in with its name and `password`, which it \
                      therefore needs; a SERVICE user takes no password and logs in with the \
                      `apiKey` of its element in this reply, the only place it is ever shown \
                      (Tessera keeps only a hash, so unlike SDDC Manager it cannot show it \
                      again).",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[],
        request: Some(RequestBody {
            media: JSON_ONLY,
            schema: Schema::Inline(user_create_array),
            required: true,
        }),
        responses: &[
            ok(
                201,
                "A page of the new users.",
                Schema::Ref("UserCreatedPage"),
            ),
            V1_400,
            V1_401,
            V1_403,
            v1_err(
                409,
                "A user of that name exists already (`USER_ALREADY_EXISTS`).",
            ),
            V1_413,
            V1_500,
        ],
    },
    Operation {
        method: Method::Patch,
        path: "/v1/users/{id}",
        id: "updateUser",
        summary: "Disable, enable or change the role of a user",
        description: "Role: ADMIN. Only the members sent change. Disabling a user invalidates \
                      its refresh ids at once, and its access tokens stop working at their next \
                      use. An administrator cannot disable or demote itself (400).",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[USER_ID],
        request: optional_json_body("UserPatch"),
        responses: &[
            ok(200, "The updated user.", Schema::Ref("User")),
            V1_400,
            V1_401,
            V1_403,
            V1_413,
            V1_404,
            V1_500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/v1/users/{id}",
        id: "deleteUser",
        summary: "Delete a user",
        description: "Role: ADMIN. Also invalidates the user's refresh ids. An administrator \
                      cannot delete itself (400).",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[USER_ID],
        request: None,
        responses: &[
            NO_CONTENT,
            v1_err(
                400,
                "The caller tried to delete itself (`INVALID_REQUEST`).",
            ),
            V1_401,
            V1_403,
            V1_404,
            V1_500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/v1/projects",
        id: "listProjects",
        summary: "List Fabric projects",
        description: "Role: VIEWER or above.",
        tag: "Management",
        auth: ACCOUNTS,
        params: V1_PAGING,
        request: None,
        responses: &[
            ok(200, "A page of projects.", Schema::Ref("ProjectPage")),
            V1_400_PAGING,
            V1_401,
            V1_500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/v1/projects",
        id: "createProject",
        summary: "Create a Fabric project",
        description: "Role: OPERATOR or ADMIN. The project comes with a first API token: the \
                      project id and the token are the HTTP Basic credentials of the Fabric \
                      API. The token is shown only in this reply.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[],
        request: json_body("ProjectCreate"),
        responses: &[
            ok(
                201,
                "The new project and its API token.",
                Schema::Ref("ProjectCreated"),
            ),
            V1_400,
            V1_401,
            V1_403,
            V1_413,
            V1_500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/v1/projects/{id}",
        id: "getProject",
        summary: "Get a Fabric project",
        description: "Role: VIEWER or above.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[PROJECT_ID],
        request: None,
        responses: &[
            ok(200, "The project.", Schema::Ref("Project")),
            V1_401,
            V1_404,
            V1_500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/v1/projects/{id}",
        id: "deleteProject",
        summary: "Delete a Fabric project",
        description: "Role: OPERATOR or ADMIN. The project's resources, API tokens and \
                      sessions go with it.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[PROJECT_ID],
        request: None,
        responses: &[NO_CONTENT, V1_401, V1_403, V1_404, V1_500],
    },
    Operation {
        method: Method::Get,
        path: "/v1/projects/{id}/api-tokens",
        id: "listProjectApiTokens",
        summary: "List a project's API tokens",
        description: "Role: VIEWER or above. Records only, never the secrets; a revoked token \
                      has a `revocationTimestamp`.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[PROJECT_ID, V1_PAGE_NUMBER, V1_PAGE_SIZE],
        request: None,
        responses: &[
            ok(200, "A page of API tokens.", Schema::Ref("ApiTokenPage")),
            V1_400_PAGING,
            V1_401,
            v1_err(404, "No such project (`NOT_FOUND`)."),
            V1_500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/v1/projects/{id}/api-tokens",
        id: "createProjectApiToken",
        summary: "Create an API token for a project",
        description: "Role: OPERATOR or ADMIN. The secret is shown only in this reply.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[PROJECT_ID],
        request: optional_json_body("ApiTokenCreate"),
        responses: &[
            ok(
                201,
                "The new token, with its secret.",
                Schema::Ref("ApiTokenCreated"),
            ),
            V1_400,
            V1_401,
            V1_403,
            V1_413,
            v1_err(404, "No such project (`NOT_FOUND`)."),
            V1_500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/v1/projects/{id}/api-tokens/{tokenId}",
        id: "revokeProjectApiToken",
        summary: "Revoke a project's API token",
        description: "Role: OPERATOR or ADMIN. The token authenticates nothing from then on.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[PROJECT_ID, API_TOKEN_ID],
        request: None,
        responses: &[
            empty("Revoked."),
            V1_401,
            V1_403,
            v1_err(
                404,
                "No such project, or no such token in it (`NOT_FOUND`).",
            ),
            V1_500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/v1/keys",
        id: "listKeys",
        summary: "List the server's keys",
        description: "Role: VIEWER or above. Life-cycle records only, never key material.",
        tag: "Management",
        auth: ACCOUNTS,
        params: V1_PAGING,
        request: None,
        responses: &[
            ok(200, "A page of keys.", Schema::Ref("KeyPage")),
            V1_400_PAGING,
            V1_401,
            V1_500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/v1/keys/rotate",
        id: "rotateKeys",
        summary: "Rotate the keys",
        description: "Role: ADMIN. Creates one pending key per purpose; the server promotes a \
                      pending key to active once every node has had time to load it, and \
                      retires the key it replaces.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[],
        request: None,
        responses: &[
            ok(
                200,
                "A page of the new pending keys (`kid`, `purpose` and `state`).",
                Schema::Ref("KeyPage"),
            ),
            V1_401,
            V1_403,
            V1_500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/v1/audit-events",
        id: "listAuditEvents",
        summary: "Read the audit log",
        description: "Role: VIEWER or above. Oldest first. Events never carry a secret.",
        tag: "Management",
        auth: ACCOUNTS,
        params: &[
            Param {
                name: "projectId",
                location: Location::Query,
                description: "Only the events of this project.",
                schema: Schema::Inline(uuid),
            },
            Param {
                name: "since",
                location: Location::Query,
                description: "Only the events from this instant on: RFC 3339, or Unix \
                              seconds.",
                schema: Schema::Inline(since_schema),
            },
            V1_PAGE_NUMBER,
            V1_PAGE_SIZE,
        ],
        request: None,
        responses: &[
            ok(
                200,
                "A page of audit events.",
                Schema::Ref("AuditEventPage"),
            ),
            v1_err(
                400,
                "Bad `projectId`, `since`, `pageNumber` or `pageSize` (`INVALID_REQUEST`).",
            ),
            V1_401,
            V1_500,
        ],
    },
    // ---- Service
    Operation {
        method: Method::Get,
        path: "/healthz",
        id: "health",
        summary: "Health check",
        description: "200 once the server is ready.",
        tag: "Service",
        auth: PUBLIC,
        params: &[],
        request: None,
        responses: &[ok(200, "Ready.", Schema::Ref("Healthz"))],
    },
    Operation {
        method: Method::Get,
        path: "/openapi.json",
        id: "openapiDocument",
        summary: "This API as an OpenAPI 3.1 document",
        description: "Generated from the same table as `/docs`.",
        tag: "Service",
        auth: PUBLIC,
        params: &[],
        request: None,
        responses: &[ok(
            200,
            "The OpenAPI document.",
            Schema::Inline(openapi_object),
        )],
    },
    Operation {
        method: Method::Get,
        path: "/docs",
        id: "apiDocs",
        summary: "This API as a web page",
        description: "Self-contained HTML rendered from the OpenAPI document; it loads nothing \
                      else.",
        tag: "Service",
        auth: PUBLIC,
        params: &[],
        request: None,
        responses: &[Reply {
            status: 200,
            description: "The page.",
            body: Some(("text/html; charset=utf-8", Schema::Inline(string))),
            headers: &[],
        }],
    },
];

// ---- Schema builders -------------------------------------------------------------------------

fn token_schemas(s: &mut Map<String, Value>) {
    let mut t1 = Map::new();
    t1.insert(
        "reference".into(),
        json!({
            "type": "string", "maxLength": 1024, "pattern": NOT_BLANK,
            "description": "Identifies the subscriber in the project, often an email. A new \
                            subscriber gets it as its email; an existing one (matched by the \
                            reference it was created with, then by email, then by id; ASCII \
                            case-insensitively and otherwise byte for byte, with no Unicode \
                            case mapping or normalisation) is updated with the fields given.",
        }),
    );
    t1.insert(
        "expire_at".into(),
        or_null(expiry(
            "When the access token expires; two hours from now by default.",
        )),
    );
    t1.insert(
        "expires_at".into(),
        or_null(expiry("Alias of `expire_at`.")),
    );
    t1.insert(
        "application_id".into(),
        or_null(json!({ "type": "string", "format": "uuid",
                "description": "An application of the project to bind the token to." })),
    );
    t1.insert("password".into(), password());
    t1.extend(profile_properties("time_zone"));
    t1.insert(
        "fingerprint".into(),
        or_null(json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
                "description": "Binds the token to a device (base64url of 32 bytes)." })),
    );
    t1.insert(
        "scope".into(),
        or_null(json!({ "type": "string", "enum": [SCOPE_SAT_REFRESH],
                "description": "Lets the holder refresh from the browser; without \
                                `fingerprint` the token lives at most 60 s." })),
    );
    s.insert(
        "SubscriberTokenRequest".into(),
        json!({
            "type": "object",
            "required": ["reference"],
            "description": "Unknown members are ignored.",
            "properties": t1,
        }),
    );
    s.insert(
        "SubscriberTokenResponse".into(),
        json!({
            "type": "object",
            "required": ["subscriber_id", "token", "refresh_token"],
            "properties": {
                "subscriber_id": uuid(),
                "token": { "type": "string", "description": "Access token (JWE, `typ` SAT)." },
                "refresh_token": { "type": "string",
                                   "description": "Refresh token (JWE, `typ` Refresh)." },
            },
        }),
    );
    s.insert(
        "RefreshRequest".into(),
        json!({
            "type": "object",
            "required": ["refresh_token"],
            "properties": { "refresh_token": {
                "type": "string", "pattern": NOT_BLANK,
                "description": "A refresh token this project issued; any other is a 422 \
                                `token_invalid`.",
            } },
        }),
    );
    s.insert(
        "TokenPair".into(),
        json!({
            "type": "object",
            "required": ["token", "refresh_token"],
            "properties": {
                "token": { "type": "string", "description": "Access token (JWE, `typ` SAT)." },
                "refresh_token": { "type": "string",
                                   "description": "Refresh token (JWE, `typ` Refresh)." },
            },
        }),
    );
    s.insert(
        "GuestTokenRequest".into(),
        json!({
            "type": "object",
            "required": ["allowed_addresses"],
            "properties": {
                "allowed_addresses": {
                    "type": "array", "items": uuid(),
                    "minItems": 1, "maxItems": MAX_ALLOWED_ADDRESSES,
                    "description": "Address ids of the project the guest may reach \
                                    (duplicates count once).",
                },
                "expire_at": or_null(expiry("When the access token expires; two hours from \
                                             now by default.")),
                "expires_at": or_null(expiry("Alias of `expire_at`.")),
            },
        }),
    );
    s.insert(
        "InviteRequest".into(),
        json!({
            "type": "object",
            "required": ["address_id"],
            "properties": {
                "address_id": { "type": "string", "format": "uuid",
                                "description": "A subscriber address." },
                "expires_at": or_null(expiry("When the token expires (note the `s`); two \
                                              hours from now by default.")),
                "expire_at": or_null(expiry("Alias of `expires_at`.")),
            },
        }),
    );
    s.insert(
        "EmbedRequest".into(),
        json!({
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": { "type": "string", "pattern": "^c2c_[0-9a-fA-F]{32}$",
                           "description": "The widget's public token." },
            },
        }),
    );
    s.insert(
        "TokenOnly".into(),
        json!({
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": { "type": "string", "description": "Access token (JWE, `typ` SAT)." },
            },
        }),
    );
}

fn error_and_service_schemas(s: &mut Map<String, Value>) {
    s.insert(
        "FabricError".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": { "error": { "type": "string", "examples": ["Unauthorized"] } },
        }),
    );
    s.insert(
        "FabricValidationError".into(),
        json!({
            "type": "object",
            "required": ["type", "code", "message", "attribute", "url"],
            "properties": {
                "type": { "const": "validation_error" },
                "code": { "type": "string", "examples": ["missing_required_parameter"] },
                "message": string(),
                "attribute": { "type": ["string", "null"],
                               "description": "The field, or null when the error is not \
                                               about one." },
                "url": { "type": "string", "description": "The code's documentation." },
            },
        }),
    );
    s.insert(
        "FabricValidationErrors".into(),
        json!({
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array", "minItems": 1,
                    "items": schema_ref("FabricValidationError"),
                    "description": "One item per bad field.",
                },
            },
        }),
    );
    s.insert(
        "Healthz".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "const": "ok" } },
        }),
    );
}

// ---- Schemas of the Accounts API (/v1) -------------------------------------------------------

fn v1_page_number_schema() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 0 })
}

fn v1_page_size_schema() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 })
}

fn nullable_date_time() -> Value {
    json!({ "type": ["string", "null"], "format": "date-time" })
}

/// What `since` parses: Unix seconds (an `i64`, so at most 18 digits here to stay clear of
/// overflow) or an RFC 3339 date-time.
fn since_schema() -> Value {
    json!({
        "type": "string",
        "anyOf": [{ "pattern": "^[+-]?[0-9]{1,18}$" }, { "format": "date-time" }],
        "examples": ["2027-01-15T08:00:00Z", "1800000000"],
    })
}

fn access_token() -> Value {
    json!({
        "type": "string",
        "description": "A compact JWS: header `alg` HS256 or EdDSA and a `kid`; claims `jti`, \
                        `iss` \"vcf-auth\", `aud` \"sddc-services\", `sub`, `user` and `name` \
                        (all the user name), `scope` (the role's permission strings, e.g. \
                        `USER_READ`), `iat`, `nbf` and `exp` (`iat` + 3600, in seconds).",
        "examples": ["eyJhbGciOiJIUzI1NiIsImtpZCI6Ii4uLiJ9.eyJqdGkiOiIuLi4ifQ.c2ln"],
    })
}

fn user_create_array() -> Value {
    json!({ "type": "array", "items": schema_ref("UserCreate"), "minItems": 1, "maxItems": 100 })
}

/// A page whose `elements` are `item`s.
fn page_of(item: &str) -> Value {
    json!({
        "allOf": [
            schema_ref("Page"),
            { "properties": { "elements": { "type": "array", "items": schema_ref(item) } } },
        ],
    })
}

fn accounts_error_schema(s: &mut Map<String, Value>) {
    s.insert(
        "AccountsError".into(),
        json!({
            "type": "object",
            "required": ["message"],
            "description": "SDDC Manager's `Error` object: the body of every 4xx and 5xx under \
                            `/v1`. Tessera sends every member.",
            "properties": {
                "errorCode": {
                    "type": "string",
                    "examples": ["TOKEN_SPEC_INVALID", "MALFORMED_REQUEST_BODY",
                                 "INVALID_CREDENTIALS", "REFRESH_TOKEN_REQUIRED",
                                 "REFRESH_TOKEN_NOT_FOUND", "Unauthorized", "Forbidden",
                                 "NOT_FOUND", "INVALID_REQUEST", "USER_ALREADY_EXISTS",
                                 "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE",
                                 "INTERNAL_SERVER_ERROR"],
                },
                "errorType": { "type": "string", "examples": ["ERROR"] },
                "arguments": { "type": "array", "items": string() },
                "context": { "type": "object", "additionalProperties": string() },
                "message": { "type": "string", "description": "What went wrong." },
                "remediationMessage": { "type": "string",
                                        "description": "What to do about it; may be empty." },
                "causes": {
                    "type": "array",
                    "items": { "type": "object",
                               "properties": { "type": string(), "message": string() } },
                },
                "nestedErrors": { "type": "array", "items": schema_ref("AccountsError") },
                "referenceToken": {
                    "type": "string",
                    "description": "Identifies this occurrence of the error; quote it when \
                                    reporting one.",
                    "examples": ["AB12CD"],
                },
            },
        }),
    );
    s.insert(
        "Page".into(),
        json!({
            "type": "object",
            "required": ["elements", "pageMetadata"],
            "properties": {
                "elements": { "type": "array" },
                "pageMetadata": schema_ref("PageMetadata"),
            },
        }),
    );
    s.insert(
        "PageMetadata".into(),
        json!({
            "type": "object",
            "required": ["pageNumber", "pageSize", "totalElements", "totalPages"],
            "properties": {
                "pageNumber": { "type": "integer", "minimum": 0, "description": "Zero-based." },
                "pageSize": non_negative(),
                "totalElements": non_negative(),
                "totalPages": non_negative(),
            },
        }),
    );
    for item in [
        "Role",
        "User",
        "UserCreated",
        "Project",
        "ApiToken",
        "Key",
        "AuditEvent",
    ] {
        s.insert(format!("{item}Page"), page_of(item));
    }
}

fn accounts_token_schemas(s: &mut Map<String, Value>) {
    s.insert(
        "TokenCreationSpec".into(),
        json!({
            "type": "object",
            "description": "Either `apiKey`, or `username` and `password`; `apiKey` wins when \
                            both are sent. Empty strings count as absent; unknown members are \
                            ignored.",
            "anyOf": [
                { "required": ["apiKey"], "properties": { "apiKey": { "minLength": 1 } } },
                { "required": ["username", "password"],
                  "properties": { "username": { "minLength": 1 },
                                  "password": { "minLength": 1 } } },
            ],
            "properties": {
                "username": string(),
                "password": { "type": "string", "format": "password" },
                "apiKey": { "type": "string", "description": "A SERVICE user's API key." },
                "idToken": { "type": "string",
                             "description": "SDDC Manager's SSO login. Tessera has no SSO: \
                                             an `idToken` without `apiKey` is always a 401." },
            },
        }),
    );
    s.insert(
        "RefreshTokenId".into(),
        json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": { "type": "string",
                        "pattern": format!("^{UUID_PATTERN}$"),
                        "description": "The refresh id (UUID-shaped). Reusable until 24 h \
                                        after the login, unless invalidated." },
            },
        }),
    );
    s.insert(
        "RefreshTokenIdBody".into(),
        json!({
            "description": "The refresh id as a JSON string (`\"<id>\"`), as `{\"id\": \
                            \"<id>\"}`, or bare (not JSON; surrounding whitespace is trimmed), \
                            whatever the `Content-Type`.",
            "oneOf": [
                { "type": "string",
                  "pattern": format!("^[\\t\\n\\x0B\\f\\r ]*{UUID_PATTERN}[\\t\\n\\x0B\\f\\r ]*$"),
                  "examples": ["4f8a0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"] },
                schema_ref("RefreshTokenId"),
            ],
        }),
    );
    s.insert(
        "AccountsTokenPair".into(),
        json!({
            "type": "object",
            "required": ["accessToken", "refreshToken"],
            "description": "SDDC Manager's `TokenPair`.",
            "properties": {
                "accessToken": access_token(),
                "refreshToken": schema_ref("RefreshTokenId"),
            },
        }),
    );
    s.insert(
        "JWK".into(),
        json!({
            "type": "object",
            "required": ["kty", "crv", "x", "kid", "alg", "use"],
            "properties": {
                "kty": { "const": "OKP" },
                "crv": { "const": "Ed25519" },
                "x": { "type": "string", "description": "The public key, base64url." },
                "kid": { "type": "string", "description": "Matches the JWS header's `kid`." },
                "alg": { "const": "EdDSA" },
                "use": { "const": "sig" },
            },
        }),
    );
    s.insert(
        "JWKS".into(),
        json!({
            "type": "object",
            "required": ["keys"],
            "properties": { "keys": { "type": "array", "items": schema_ref("JWK") } },
        }),
    );
}

fn user_schemas(s: &mut Map<String, Value>) {
    s.insert(
        "Role".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "description"],
            "properties": {
                "id": { "type": "string", "examples": Role::ALL.map(Role::id),
                        "description": "Stable across installations." },
                "name": { "type": "string", "enum": Role::ALL.map(Role::as_str) },
                "description": string(),
            },
        }),
    );
    s.insert(
        "RoleReference".into(),
        json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": { "type": "string",
                        "enum": Role::ALL.map(Role::id).into_iter()
                            .chain(Role::ALL.map(Role::as_str)).collect::<Vec<_>>(),
                        "description": "A role's `id` from `GET /v1/roles`; its `name` is \
                                        accepted too (both ASCII case-insensitively)." },
            },
        }),
    );
    let user_type = json!({ "type": "string", "enum": ["USER", "SERVICE"],
                            "description": "A USER logs in with a password, a SERVICE user \
                                            with an API key." });
    s.insert(
        "User".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "domain", "type", "role", "creationTimestamp", "disabled"],
            "properties": {
                "id": uuid(),
                "name": { "type": "string", "description": "The login name." },
                "domain": { "type": ["string", "null"] },
                "type": user_type,
                "role": schema_ref("RoleReference"),
                "creationTimestamp": date_time(),
                "disabled": { "type": "boolean" },
            },
        }),
    );
    s.insert(
        "UserCreated".into(),
        json!({
            "allOf": [
                schema_ref("User"),
                { "properties": { "apiKey": {
                    "type": "string",
                    "description": "SERVICE users only, and only in this reply: the key to log \
                                    in with.",
                } } },
            ],
        }),
    );
    s.insert(
        "UserCreate".into(),
        json!({
            "type": "object",
            "required": ["name", "type", "role"],
            // A USER needs a password, a SERVICE user must not send one ("" counts as none).
            "if": { "required": ["type"], "properties": { "type": { "const": "SERVICE" } } },
            "then": { "properties": { "password": { "const": "" } } },
            "else": { "required": ["password"],
                      "properties": { "password": { "minLength": 1 } } },
            "properties": {
                "name": { "type": "string", "pattern": format!("^{USERNAME_CHARS}+$"),
                          "description": "The login name, unique (ASCII \
                                          case-insensitively and otherwise byte for byte): 1 \
                                          to 256 bytes without whitespace or control \
                                          characters." },
                "domain": { "type": ["string", "null"],
                            "pattern": format!("^{USERNAME_CHARS}*$"),
                            "description": "Empty or null for none; otherwise like `name`." },
                "type": user_type,
                "role": schema_ref("RoleReference"),
                "password": { "type": "string", "format": "password",
                              "description": "Required for a USER (Tessera keeps its own \
                                              passwords); refused for a SERVICE user." },
            },
        }),
    );
    s.insert(
        "UserPatch".into(),
        json!({
            "type": "object",
            "description": "`disabled`, `role`, both, or neither (nothing changes); a null \
                            member counts as absent.",
            "properties": {
                "disabled": { "type": ["boolean", "null"],
                              "description": "Disabling invalidates the user's refresh ids." },
                "role": { "anyOf": [schema_ref("RoleReference"), { "type": "null" }] },
            },
        }),
    );
}

/// A character `valid_username` allows: neither a control character (Unicode Cc) nor white
/// space (Rust's `char::is_whitespace`), spelled out for the same reason as [`NOT_BLANK`].
const USERNAME_CHARS: &str = concat!(
    "[^\\x00-\\x20\\x7F-\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F",
    "\\u3000]"
);

fn project_schemas(s: &mut Map<String, Value>) {
    s.insert(
        "ProjectCreate".into(),
        json!({
            "type": "object",
            "required": ["name"],
            "properties": { "name": {
                "type": "string", "maxLength": 256, "pattern": NOT_BLANK,
                "description": "1 to 256 characters, not all white space, without NUL.",
            } },
        }),
    );
    s.insert(
        "Project".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "creationTimestamp"],
            "properties": {
                "id": { "type": "string", "format": "uuid",
                        "description": "Also the Fabric API's Basic user name." },
                "name": string(),
                "creationTimestamp": date_time(),
            },
        }),
    );
    s.insert(
        "ProjectCreated".into(),
        json!({
            "allOf": [
                schema_ref("Project"),
                { "required": ["apiToken"],
                  "properties": { "apiToken": schema_ref("ApiTokenCreated") } },
            ],
        }),
    );
    s.insert(
        "ApiTokenCreate".into(),
        json!({
            "type": "object",
            "description": "The body may also be empty.",
            "properties": { "name": {
                "type": ["string", "null"], "maxLength": 256, "pattern": NO_NUL,
                "description": "At most 256 characters, without NUL; empty by default.",
            } },
        }),
    );
    s.insert(
        "ApiToken".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "creationTimestamp", "revocationTimestamp"],
            "properties": {
                "id": uuid(),
                "name": { "type": "string", "description": "Empty when none was given." },
                "creationTimestamp": date_time(),
                "revocationTimestamp": nullable_date_time(),
            },
        }),
    );
    s.insert(
        "ApiTokenCreated".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "creationTimestamp", "token"],
            "properties": {
                "id": uuid(),
                "name": string(),
                "creationTimestamp": date_time(),
                "token": { "type": "string",
                           "description": "The secret, shown only once: the Fabric API's \
                                           Basic password, with the project id as user name." },
            },
        }),
    );
}

fn key_and_audit_schemas(s: &mut Map<String, Value>) {
    let purposes = KeyPurpose::ALL.map(KeyPurpose::as_str);
    let states = [
        KeyState::Pending,
        KeyState::Active,
        KeyState::Retired,
        KeyState::Destroyed,
    ]
    .map(KeyState::as_str);
    s.insert(
        "Key".into(),
        json!({
            "type": "object",
            "required": ["kid", "purpose", "state"],
            "description": "A key's life-cycle record, never its material. `POST \
                            /v1/keys/rotate` answers only `kid`, `purpose` and `state`.",
            "properties": {
                "kid": string(),
                "purpose": { "type": "string", "enum": purposes,
                             "description": "`access` and `refresh` seal Fabric tokens, \
                                             `signing` signs Accounts access tokens." },
                "state": { "type": "string", "enum": states },
                "creationTimestamp": date_time(),
                "activationTimestamp": nullable_date_time(),
                "retirementTimestamp": nullable_date_time(),
                "encryptions": { "type": "integer", "minimum": 0,
                                 "description": "How many tokens it has sealed." },
            },
        }),
    );
    s.insert(
        "AuditEvent".into(),
        json!({
            "type": "object",
            "required": ["timestamp", "projectId", "action", "actor", "subject", "detail"],
            "description": "Who did what to which principal. Never carries a secret.",
            "properties": {
                "timestamp": date_time(),
                "projectId": { "type": ["string", "null"], "format": "uuid" },
                "action": { "type": "string", "examples": ["token.issued", "key.rotated"] },
                "actor": { "type": "string", "examples": ["admin", "system"] },
                "subject": { "type": "string",
                             "description": "A family, subscriber, key or token id." },
                "detail": { "type": "object", "description": "A few non-secret details." },
            },
        }),
    );
}

fn components() -> Value {
    let mut schemas = Map::new();
    error_and_service_schemas(&mut schemas);
    token_schemas(&mut schemas);
    accounts_error_schema(&mut schemas);
    accounts_token_schemas(&mut schemas);
    user_schemas(&mut schemas);
    project_schemas(&mut schemas);
    key_and_audit_schemas(&mut schemas);
    json!({
        "schemas": schemas,
        "securitySchemes": {
            "projectBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "User: the project id (UUID). Password: one of the project's API \
                                tokens.",
            },
            "subscriberBearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWE",
                "description": "A subscriber's access token (SAT), as issued by \
                                `POST /api/fabric/subscribers/tokens`; it grants subscriber \
                                scope.",
            },
            "accountsBearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWS",
                "description": "An Accounts access token, as issued by `POST /v1/tokens` (valid \
                                one hour). The user's role decides what it may call: VIEWER \
                                every GET, OPERATOR also projects and their API tokens, ADMIN \
                                also users and keys. The role and the user's state are read at \
                                each call, so a change takes effect at once.",
            },
        },
        "headers": {
            "X-Request-Id": {
                "description": "The caller's request id if it was short and plain, else a new \
                                one; it also appears in the server's logs.",
                "schema": string(),
            },
        },
    })
}

// ---- The document ----------------------------------------------------------------------------

fn security(auth: &[Auth]) -> Value {
    if auth == [Auth::None] {
        // An empty list: no credentials are needed.
        return json!([]);
    }
    auth.iter()
        .map(|a| match a {
            Auth::Basic => json!({ "projectBasic": [] }),
            Auth::Bearer => json!({ "subscriberBearer": [] }),
            Auth::AccountsBearer => json!({ "accountsBearer": [] }),
            Auth::None => json!({}),
        })
        .collect()
}

fn parameter(p: &Param) -> Value {
    json!({
        "name": p.name,
        "in": match p.location { Location::Path => "path", Location::Query => "query" },
        "required": p.location == Location::Path,
        "description": p.description,
        "schema": p.schema.build(),
    })
}

fn reply(r: &Reply) -> Value {
    let mut headers = Map::new();
    headers.insert(
        "X-Request-Id".into(),
        json!({ "$ref": "#/components/headers/X-Request-Id" }),
    );
    for h in r.headers {
        headers.insert(
            h.name.into(),
            json!({ "description": h.description, "schema": h.schema.build() }),
        );
    }
    let mut v = json!({ "description": r.description, "headers": headers });
    if let Some((media, schema)) = r.body {
        v["content"] = json!({ media: { "schema": schema.build() } });
    }
    v
}

fn operation(op: &Operation) -> Value {
    let mut v = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": security(op.auth),
        "responses": op.responses.iter()
            .map(|r| (r.status.to_string(), reply(r)))
            .collect::<Map<String, Value>>(),
    });
    if !op.description.is_empty() {
        v["description"] = op.description.into();
    }
    if !op.params.is_empty() {
        v["parameters"] = op.params.iter().map(parameter).collect();
    }
    if let Some(body) = op.request {
        let content: Map<String, Value> = body
            .media
            .iter()
            .map(|m| ((*m).to_string(), json!({ "schema": body.schema.build() })))
            .collect();
        v["requestBody"] = json!({ "required": body.required, "content": content });
    }
    v
}

/// The OpenAPI 3.1 document, built from [`OPERATIONS`].
pub(super) fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let item = paths
            .entry(op.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[op.method.key()] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted token authority speaking SignalWire's Fabric token API. \
                            Errors are `{\"error\": …}`, or `{\"errors\": […]}` for 422; a path \
                            served with other methods answers 405, an unknown path 404. Fabric \
                            request bodies are JSON (a non-JSON `Content-Type` is a 422 \
                            `invalid_content_type`); the OAuth 2.0 endpoints also take forms. \
                            The Accounts API under `/v1` (SDDC Manager-compatible) answers \
                            every error with an `AccountsError` instead.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "tags": TAGS.iter()
            .map(|(name, description)| json!({ "name": name, "description": description }))
            .collect::<Vec<_>>(),
        "paths": paths,
        "components": components(),
    })
}
