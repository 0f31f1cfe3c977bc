//! The OpenAPI 3.1 description of Tessera's HTTP interface, and the routes that serve it
//! (`GET /openapi.json`, and `GET /docs` rendered by [`crate::docs`]).
//!
//! [`OPERATIONS`] is the single source of truth: the JSON document ([`document`]), the HTML page
//! and the route-coverage tests ([`route_table`]) are all derived from it, so a route added to
//! the router without an entry here fails the tests instead of going undocumented. Schemas are
//! written by hand, like every wire type in this crate (the domain types carry no serde, and the
//! wire JSON is built by hand in `fabric/`), so there is nothing to derive them from; where a
//! limit is a public constant of the core it is read from there rather than copied.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::model::{ResourceKind, Role};
use tessera_core::service::{MAX_ALLOWED_ADDRESSES, SCOPE_SAT_REFRESH};
use tessera_core::token::PrincipalKind;

use crate::state::AppState;

/// An HTTP method of a documented operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
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
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The lower-case name OpenAPI uses as the key of a path item.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
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
const FORM: &str = "application/x-www-form-urlencoded";
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
const E400_QUERY: Reply = err(400, "The query string cannot be decoded.");
const E400_OAUTH: Reply = err(
    400,
    "A malformed request (RFC 6749 §5.2 `invalid_request`): a JSON body that is not an object \
     or names a member twice, a `token` or `token_type_hint` that is neither a string nor \
     null, or a form naming `token` twice.",
);
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
const E404: Reply = err(
    404,
    "No such record in the caller's project (a malformed id is answered the same way).",
);
const E413: Reply = err(
    413,
    "The body exceeds the configured limit (`--body-limit`, 64 KiB by default).",
);
const E500: Reply = err(
    500,
    "An internal error; it is logged with a reference id and the body says nothing more.",
);
const E422_LIST: Reply = invalid(
    "Bad paging: `page_size` outside 1–1000, `page_number` not a non-negative integer, \
     `page_token` malformed (`page_token_is_invalid`) or missing when `page_number` > 0 \
     (`page_token_required`).",
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

const PAGE_SIZE: Param = Param {
    name: "page_size",
    location: Location::Query,
    description: "Items per page, 1 to 1000; 50 by default.",
    schema: Schema::Inline(page_size_schema),
};
const PAGE_NUMBER: Param = Param {
    name: "page_number",
    location: Location::Query,
    description: "0-based page number; pages after the first need `page_token`. Follow \
                  `links.next` rather than building it.",
    schema: Schema::Inline(page_number_schema),
};
const PAGE_TOKEN: Param = Param {
    name: "page_token",
    location: Location::Query,
    description: "Opaque continuation token from `links.next` (`PA` + the last id seen).",
    schema: Schema::Inline(page_token_schema),
};
const PAGING: &[Param] = &[PAGE_SIZE, PAGE_NUMBER, PAGE_TOKEN];

const RESOURCE_ID: Param = Param {
    name: "id",
    location: Location::Path,
    description: "Resource id.",
    schema: Schema::Inline(uuid),
};
const SUBSCRIBER_ID: Param = Param {
    name: "id",
    location: Location::Path,
    description: "Subscriber id (the same UUID as its resource id).",
    schema: Schema::Inline(uuid),
};
const ROOM_ID: Param = Param {
    name: "id",
    location: Location::Path,
    description: "Conference room (resource) id.",
    schema: Schema::Inline(uuid),
};
const ADDRESS_ID: Param = Param {
    name: "id",
    location: Location::Path,
    description: "Address id.",
    schema: Schema::Inline(uuid),
};

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
    // ---- Subscribers
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/subscribers",
        id: "listSubscribers",
        summary: "List subscribers (S1)",
        description: "Oldest first.",
        tag: "Subscribers",
        auth: BASIC,
        params: PAGING,
        request: None,
        responses: &[
            ok(200, "A page of subscribers.", Schema::Ref("SubscriberList")),
            E400_QUERY,
            E401,
            E422_LIST,
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/api/fabric/resources/subscribers",
        id: "createSubscriber",
        summary: "Create a subscriber (S2)",
        description: "Also creates the subscriber's address (`/private/<email>`). Without a \
                      password the subscriber has none to log in with.",
        tag: "Subscribers",
        auth: BASIC,
        params: &[],
        request: Some(RequestBody {
            media: JSON_ONLY,
            schema: Schema::Inline(subscriber_create_request),
            required: true,
        }),
        responses: &[
            ok(
                201,
                "The new subscriber.",
                Schema::Ref("SubscriberResponse"),
            ),
            E400_BODY,
            E401,
            E413,
            invalid(
                "`email` missing, a bad `password` (8 to 72 characters), a non-string field, \
                 or `email` already taken in the project (`not_unique_within_project`).",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/subscribers/{id}",
        id: "getSubscriber",
        summary: "Get a subscriber (S3)",
        description: "",
        tag: "Subscribers",
        auth: BASIC,
        params: &[SUBSCRIBER_ID],
        request: None,
        responses: &[
            ok(200, "The subscriber.", Schema::Ref("SubscriberResponse")),
            E401,
            E404,
            E500,
        ],
    },
    Operation {
        method: Method::Put,
        path: "/api/fabric/resources/subscribers/{id}",
        id: "updateSubscriber",
        summary: "Update a subscriber (S4)",
        description: "A merge: only the members sent change. Changing the password revokes the \
                      subscriber's sessions.",
        tag: "Subscribers",
        auth: BASIC,
        params: &[SUBSCRIBER_ID],
        request: optional_json_body("SubscriberRequest"),
        responses: &[
            ok(
                200,
                "The updated subscriber.",
                Schema::Ref("SubscriberResponse"),
            ),
            E400_BODY,
            E401,
            E404,
            E413,
            invalid(
                "An empty `email`, a bad `password`, a non-string field, or an `email` taken \
                 by another subscriber.",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/api/fabric/resources/subscribers/{id}",
        id: "deleteSubscriber",
        summary: "Delete a subscriber (S5)",
        description: "Also deletes its address and revokes its sessions.",
        tag: "Subscribers",
        auth: BASIC,
        params: &[SUBSCRIBER_ID],
        request: None,
        responses: &[NO_CONTENT, E401, E404, E500],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/subscribers/{id}/addresses",
        id: "listSubscriberAddresses",
        summary: "List a subscriber's addresses (S6)",
        description: "",
        tag: "Subscribers",
        auth: BASIC,
        params: &[SUBSCRIBER_ID, PAGE_SIZE, PAGE_NUMBER, PAGE_TOKEN],
        request: None,
        responses: &[
            ok(
                200,
                "A page of addresses.",
                Schema::Ref("FabricAddressList"),
            ),
            E400_QUERY,
            E401,
            E404,
            E422_LIST,
            E500,
        ],
    },
    // ---- Conference rooms
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/conference_rooms",
        id: "listConferenceRooms",
        summary: "List conference rooms",
        description: "Oldest first.",
        tag: "Conference rooms",
        auth: BASIC,
        params: PAGING,
        request: None,
        responses: &[
            ok(
                200,
                "A page of conference rooms.",
                Schema::Ref("ConferenceRoomList"),
            ),
            E400_QUERY,
            E401,
            E422_LIST,
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/api/fabric/resources/conference_rooms",
        id: "createConferenceRoom",
        summary: "Create a conference room",
        description: "Also creates the room's address (`/public/<name>`).",
        tag: "Conference rooms",
        auth: BASIC,
        params: &[],
        request: Some(RequestBody {
            media: JSON_ONLY,
            schema: Schema::Inline(room_create_request),
            required: true,
        }),
        responses: &[
            ok(201, "The new room.", Schema::Ref("ConferenceRoomResponse")),
            E400_BODY,
            E401,
            E413,
            invalid("`name` missing or a non-string `name`/`display_name`."),
            E500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/conference_rooms/{id}",
        id: "getConferenceRoom",
        summary: "Get a conference room",
        description: "",
        tag: "Conference rooms",
        auth: BASIC,
        params: &[ROOM_ID],
        request: None,
        responses: &[
            ok(200, "The room.", Schema::Ref("ConferenceRoomResponse")),
            E401,
            E404,
            E500,
        ],
    },
    Operation {
        method: Method::Put,
        path: "/api/fabric/resources/conference_rooms/{id}",
        id: "updateConferenceRoom",
        summary: "Update a conference room",
        description: "A merge: only the members sent change.",
        tag: "Conference rooms",
        auth: BASIC,
        params: &[ROOM_ID],
        request: optional_json_body("ConferenceRoomRequest"),
        responses: &[
            ok(
                200,
                "The updated room.",
                Schema::Ref("ConferenceRoomResponse"),
            ),
            E400_BODY,
            E401,
            E404,
            E413,
            invalid("An empty `name` or a non-string `name`/`display_name`."),
            E500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/api/fabric/resources/conference_rooms/{id}",
        id: "deleteConferenceRoom",
        summary: "Delete a conference room",
        description: "Also deletes its address.",
        tag: "Conference rooms",
        auth: BASIC,
        params: &[ROOM_ID],
        request: None,
        responses: &[NO_CONTENT, E401, E404, E500],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/conference_rooms/{id}/addresses",
        id: "listConferenceRoomAddresses",
        summary: "List a conference room's addresses",
        description: "",
        tag: "Conference rooms",
        auth: BASIC,
        params: &[ROOM_ID, PAGE_SIZE, PAGE_NUMBER, PAGE_TOKEN],
        request: None,
        responses: &[
            ok(
                200,
                "A page of addresses.",
                Schema::Ref("FabricAddressList"),
            ),
            E400_QUERY,
            E401,
            E404,
            E422_LIST,
            E500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/conference_room/{id}/addresses",
        id: "listConferenceRoomAddressesSingular",
        summary: "List a conference room's addresses (singular path)",
        description: "The same as `/api/fabric/resources/conference_rooms/{id}/addresses`, at the \
                      path the Python SDK's room `list_addresses` uses.",
        tag: "Conference rooms",
        auth: BASIC,
        params: &[ROOM_ID, PAGE_SIZE, PAGE_NUMBER, PAGE_TOKEN],
        request: None,
        responses: &[
            ok(
                200,
                "A page of addresses.",
                Schema::Ref("FabricAddressList"),
            ),
            E400_QUERY,
            E401,
            E404,
            E422_LIST,
            E500,
        ],
    },
    // ---- Resources
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources",
        id: "listResources",
        summary: "List resources",
        description: "Every resource of the project, oldest first.",
        tag: "Resources",
        auth: BASIC,
        params: PAGING,
        request: None,
        responses: &[
            ok(200, "A page of resources.", Schema::Ref("ResourceList")),
            E400_QUERY,
            E401,
            E422_LIST,
            E500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/{id}",
        id: "getResource",
        summary: "Get a resource",
        description: "",
        tag: "Resources",
        auth: BASIC,
        params: &[RESOURCE_ID],
        request: None,
        responses: &[
            ok(200, "The resource.", Schema::Ref("Resource")),
            E401,
            E404,
            E500,
        ],
    },
    Operation {
        method: Method::Delete,
        path: "/api/fabric/resources/{id}",
        id: "deleteResource",
        summary: "Delete a resource",
        description: "Whatever its kind; deleting a subscriber revokes its sessions.",
        tag: "Resources",
        auth: BASIC,
        params: &[RESOURCE_ID],
        request: None,
        responses: &[NO_CONTENT, E401, E404, E500],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/resources/{id}/addresses",
        id: "listResourceAddresses",
        summary: "List a resource's addresses (A3)",
        description: "",
        tag: "Resources",
        auth: BASIC,
        params: &[RESOURCE_ID, PAGE_SIZE, PAGE_NUMBER, PAGE_TOKEN],
        request: None,
        responses: &[
            ok(
                200,
                "A page of addresses.",
                Schema::Ref("FabricAddressList"),
            ),
            E400_QUERY,
            E401,
            E404,
            E422_LIST,
            E500,
        ],
    },
    // ---- Addresses
    Operation {
        method: Method::Get,
        path: "/api/fabric/addresses",
        id: "listAddresses",
        summary: "List addresses (A1)",
        description: "Basic credentials see every address of the project; a subscriber's \
                      Bearer SAT sees rooms and applications plus its own address.",
        tag: "Addresses",
        auth: BASIC_OR_BEARER,
        params: &[
            PAGE_SIZE,
            PAGE_NUMBER,
            PAGE_TOKEN,
            Param {
                name: "type",
                location: Location::Query,
                description: "Only addresses of this type. A type no address has (`call`, say) \
                              matches nothing; one longer than 32 characters is a 422.",
                schema: Schema::Inline(address_type_filter),
            },
            Param {
                name: "display_name",
                location: Location::Query,
                description: "Only addresses with this display name.",
                schema: Schema::Inline(string),
            },
        ],
        request: None,
        responses: &[
            ok(
                200,
                "A page of addresses.",
                Schema::Ref("FabricAddressList"),
            ),
            E400_QUERY,
            E401,
            invalid(
                "Bad paging (see the list endpoints) or an over-long `type` \
                 (`invalid_parameter`).",
            ),
            E500,
        ],
    },
    Operation {
        method: Method::Get,
        path: "/api/fabric/addresses/{id}",
        id: "getAddress",
        summary: "Get an address (A2)",
        description: "A subscriber's Bearer SAT sees another subscriber's address as 404.",
        tag: "Addresses",
        auth: BASIC_OR_BEARER,
        params: &[ADDRESS_ID],
        request: None,
        responses: &[
            ok(200, "The address.", Schema::Ref("FabricAddress")),
            E401,
            E404,
            E500,
        ],
    },
    // ---- OAuth 2.0
    Operation {
        method: Method::Post,
        path: "/oauth2/introspect",
        id: "introspectToken",
        summary: "Introspect a token (RFC 7662)",
        description: "Tells a project backend or resource server whether an access token is \
                      active: sealed by Tessera, unexpired, of the caller's project, and its \
                      session family not revoked. Anything else is exactly `{\"active\": false}`.",
        tag: "OAuth 2.0",
        auth: BASIC,
        params: &[],
        request: Some(RequestBody {
            media: &[FORM, JSON],
            schema: Schema::Ref("IntrospectionRequest"),
            // An empty body is answered like a missing `token`.
            required: false,
        }),
        responses: &[
            ok(
                200,
                "The token's state. A missing `token` or one Tessera did not issue is \
                 inactive, not an error.",
                Schema::Ref("IntrospectionResponse"),
            ),
            E400_OAUTH,
            E401,
            E413,
            E500,
        ],
    },
    Operation {
        method: Method::Post,
        path: "/oauth2/revoke",
        id: "revokeToken",
        summary: "Revoke a token (RFC 7009)",
        description: "Revokes the token's session family, so the family's refresh and access \
                      tokens stop working. An unknown or already revoked token is answered 200 \
                      too, as RFC 7009 requires.",
        tag: "OAuth 2.0",
        auth: BASIC,
        params: &[],
        request: Some(RequestBody {
            media: &[FORM, JSON],
            schema: Schema::Ref("RevocationRequest"),
            // An empty body is answered like a missing `token`.
            required: false,
        }),
        responses: &[
            Reply {
                status: 200,
                description: "Revoked (or nothing to revoke). Empty body.",
                body: None,
                headers: &[],
            },
            E400_OAUTH,
            E401,
            E413,
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
    Operation {
        method: Method::Get,
        path: "/metrics",
        id: "metrics",
        summary: "Prometheus metrics",
        description: "Requests by route and status with latency histograms, tokens issued by \
                      kind, refreshes by result, reuse detections, introspections by result, \
                      operator logins, store operation latency, and each key's age and \
                      encryption count, in the Prometheus text format 0.0.4. Unauthenticated, \
                      like `/healthz`: expose it only where your scraper can reach it.",
        tag: "Service",
        auth: PUBLIC,
        params: &[],
        request: None,
        responses: &[Reply {
            status: 200,
            description: "The metrics.",
            body: Some(("text/plain; version=0.0.4", Schema::Inline(string))),
            headers: &[],
        }],
    },
];

/// Every `(method, path)` the table documents, e.g. `("GET", "/api/fabric/addresses/{id}")`,
/// for tests that compare it with what the router serves.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    OPERATIONS
        .iter()
        .map(|op| (op.method.as_str(), op.path))
        .collect()
}

// ---- Schema builders -------------------------------------------------------------------------

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

/// A string without NUL, which `Fields::string` refuses (not every store can keep it).
const NO_NUL: &str = "^[^\\x00]*$";

/// A string with at least one character that is not white space and no NUL: what the server
/// reads as present after trimming a required name. The white space is Rust's
/// `char::is_whitespace`, spelled out because `\s` means different sets in different regex
/// dialects (Python's includes U+001C to U+001F, ECMAScript's lacks U+0085).
const NOT_BLANK: &str = concat!(
    "^[^\\x00]*",
    "[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
    "[^\\x00]*$"
);

/// `v`, or `null`: Fabric bodies read a `null` member as an absent one (the SDKs send `None`
/// as `null`), so every optional member of a Fabric request accepts it.
fn or_null(mut v: Value) -> Value {
    match v.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            v["type"] = json!([t, "null"]);
        }
        Some(Value::Array(ts)) => ts.push("null".into()),
        _ => {}
    }
    if let Some(Value::Array(e)) = v.get_mut("enum") {
        e.push(Value::Null);
    }
    v
}

/// A required Fabric name: present, not blank, at most 1024 characters.
fn name_text(description: &str) -> Value {
    json!({ "type": "string", "maxLength": 1024, "pattern": NOT_BLANK,
            "description": description })
}

/// Free text as `Fields::string` reads it: at most 1024 characters (longer values are refused,
/// not truncated) and no NUL.
fn text(description: &str) -> Value {
    let mut v = json!({ "type": "string", "maxLength": 1024, "pattern": NO_NUL });
    if !description.is_empty() {
        v["description"] = description.into();
    }
    v
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn non_negative() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn positive() -> Value {
    json!({ "type": "integer", "minimum": 1 })
}

/// A page number as the server parses it: a `u64`.
fn page_number_schema() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })
}

fn page_size_schema() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 })
}

/// `PA` and a hyphenated UUID, which is all the server parses back.
fn page_token_schema() -> Value {
    json!({ "type": "string", "pattern": format!("^PA{UUID_PATTERN}$") })
}

/// A hyphenated UUID, unanchored.
const UUID_PATTERN: &str = "[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}";

fn address_types() -> Vec<&'static str> {
    [
        ResourceKind::Subscriber,
        ResourceKind::Room,
        ResourceKind::App,
    ]
    .map(ResourceKind::as_str)
    .to_vec()
}

fn address_type_filter() -> Value {
    json!({ "type": "string", "maxLength": 32, "examples": address_types() })
}

fn openapi_object() -> Value {
    json!({ "type": "object", "description": "An OpenAPI 3.1 document." })
}

/// An expiry as `Fields::expiry` reads it (fabric-api.md §13 item 4).
fn expiry(description: &str) -> Value {
    json!({
        "type": ["number", "string"],
        "description": format!(
            "{description} Unix seconds (an integral float or a numeric string is accepted \
             too) or an RFC 3339 date-time; it must lie in the future and at most the \
             configured maximum lifetime ahead (24 h by default), e.g. now + 3600. The \
             window moves with the clock, so the schema cannot state it and gives no example: \
             any fixed instant is refused once it has passed."
        ),
    })
}

fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "links"],
        "properties": {
            "data": { "type": "array", "items": schema_ref(item) },
            "links": schema_ref("PageLinks"),
        },
    })
}

/// The profile members a subscriber request may set.
fn profile_properties(tz: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for f in [
        "first_name",
        "last_name",
        "display_name",
        "job_title",
        "country",
        "region",
        "company_name",
    ] {
        m.insert(f.into(), or_null(text("")));
    }
    m.insert(tz.into(), or_null(text("The subscriber's time zone.")));
    m
}

fn password() -> Value {
    or_null(json!({
        "type": "string",
        "maxLength": 72,
        "pattern": NO_NUL,
        "anyOf": [{ "const": "" }, { "minLength": 8 }],
        "description": "8 to 72 characters; empty, null or absent leaves the password \
                        unchanged.",
    }))
}

fn subscriber_create_request() -> Value {
    json!({ "allOf": [
        schema_ref("SubscriberRequest"),
        { "required": ["email"], "properties": { "email": { "type": "string" } } },
    ] })
}

fn room_create_request() -> Value {
    json!({ "allOf": [
        schema_ref("ConferenceRoomRequest"),
        { "required": ["name"], "properties": { "name": { "type": "string" } } },
    ] })
}

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

fn resource_schemas(s: &mut Map<String, Value>) {
    let mut req = Map::new();
    req.insert(
        "email".into(),
        or_null(name_text("Unique in the project; required on create.")),
    );
    req.insert("password".into(), password());
    req.extend(profile_properties("timezone"));
    req.insert("time_zone".into(), or_null(text("Alias of `timezone`.")));
    s.insert(
        "SubscriberRequest".into(),
        json!({
            "type": "object",
            "description": "Unknown members are ignored. On update only the members sent change; \
                            a null member counts as absent.",
            "properties": req,
        }),
    );
    let mut inner = Map::new();
    inner.insert("id".into(), uuid());
    for f in [
        "email",
        "first_name",
        "last_name",
        "display_name",
        "job_title",
        "timezone",
        "country",
        "region",
        "company_name",
    ] {
        inner.insert(f.into(), string());
    }
    let required: Vec<&String> = inner.keys().collect();
    let subscriber = json!({
        "type": "object",
        "description": "Unset members are empty strings.",
        "required": required,
        "properties": inner,
    });
    s.insert("Subscriber".into(), subscriber);
    s.insert(
        "SubscriberResponse".into(),
        resource_envelope("subscriber", "subscriber", schema_ref("Subscriber")),
    );
    s.insert(
        "ConferenceRoomRequest".into(),
        json!({
            "type": "object",
            "description": "Members other than `name` and `display_name` are stored as given \
                            (except `id` and `type`). On update only the members sent change.",
            "properties": {
                "name": or_null(name_text("Required on create; names the address \
                                           (`/public/<name>`).")),
                "display_name": or_null(text("Defaults to `name`.")),
            },
            "additionalProperties": true,
        }),
    );
    s.insert(
        "ConferenceRoom".into(),
        kind_object(&["name", "display_name"]),
    );
    s.insert(
        "ConferenceRoomResponse".into(),
        resource_envelope(
            "video_room",
            "conference_room",
            schema_ref("ConferenceRoom"),
        ),
    );
    s.insert("Application".into(), kind_object(&["name"]));
    s.insert(
        "Resource".into(),
        json!({
            "type": "object",
            "description": "Exactly one of `subscriber`, `conference_room` and `application` is \
                            present, as `type` says.",
            "required": ["id", "project_id", "display_name", "type", "created_at", "updated_at"],
            "properties": {
                "id": uuid(),
                "project_id": uuid(),
                "display_name": string(),
                "type": { "type": "string", "enum": ["subscriber", "video_room", "application"] },
                "created_at": date_time(),
                "updated_at": date_time(),
                "subscriber": schema_ref("Subscriber"),
                "conference_room": schema_ref("ConferenceRoom"),
                "application": schema_ref("Application"),
            },
        }),
    );
    s.insert(
        "FabricAddress".into(),
        json!({
            "type": "object",
            "required": ["id", "resource_id", "name", "display_name", "type", "cover_url",
                         "preview_url", "locked", "channels", "created_at"],
            "properties": {
                "id": uuid(),
                "resource_id": uuid(),
                "name": string(),
                "display_name": string(),
                "type": { "type": "string", "enum": address_types() },
                "cover_url": { "type": "string", "description": "May be empty." },
                "preview_url": { "type": "string", "description": "May be empty." },
                "locked": { "type": "boolean", "description": "Whether it refuses calls." },
                "channels": {
                    "type": "object",
                    "required": ["audio", "video", "messaging"],
                    "description": "Dialable forms, `/<context>/<name>?channel=<kind>`; \
                                    subscribers are `private`, rooms and applications `public`.",
                    "properties": { "audio": string(), "video": string(), "messaging": string() },
                },
                "created_at": date_time(),
            },
        }),
    );
    s.insert(
        "PageLinks".into(),
        json!({
            "type": "object",
            "required": ["self", "first"],
            "description": "Absolute URLs built from the request's Host header; each carries \
                            every parameter the next request needs. `next` and `prev` are \
                            omitted when there is no such page.",
            "properties": {
                "self": string(),
                "first": string(),
                "next": string(),
                "prev": string(),
            },
        }),
    );
    s.insert("SubscriberList".into(), list_of("SubscriberResponse"));
    s.insert(
        "ConferenceRoomList".into(),
        list_of("ConferenceRoomResponse"),
    );
    s.insert("ResourceList".into(), list_of("Resource"));
    s.insert("FabricAddressList".into(), list_of("FabricAddress"));
}

/// The common resource members plus the kind's own object under `member`.
fn resource_envelope(kind: &str, member: &str, object: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "project_id", "display_name", "type", "created_at", "updated_at",
                     member],
        "properties": {
            "id": uuid(),
            "project_id": uuid(),
            "display_name": string(),
            "type": { "const": kind },
            "created_at": date_time(),
            "updated_at": date_time(),
            member: object,
        },
    })
}

/// A room's or application's own object: its id and names plus the members clients stored.
fn kind_object(names: &[&str]) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), uuid());
    for n in names {
        props.insert((*n).into(), string());
    }
    let required: Vec<&String> = props.keys().collect();
    json!({
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": true,
    })
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
    // Any hint is accepted: the RFCs let a server ignore hints it does not know (the hint
    // registry is open), and the token itself says what it is.
    // `null` counts as absent in a JSON body, as in the Fabric bodies.
    let token_hint = json!({
        "type": ["string", "null"],
        "examples": ["access_token", "refresh_token"],
        "description": "Accepted and ignored, as RFC 7009 allows; the token itself says \
                        what it is.",
    });
    let token = json!({
        "type": ["string", "null"],
        "description": "The token. The RFCs require it; a missing, null or unreadable one \
                        (or an empty body) is answered as an unknown token, not as an error.",
    });
    s.insert(
        "IntrospectionRequest".into(),
        json!({
            "type": "object",
            "description": "A form (`token=…`), as RFC 7662 specifies, or the same members \
                            as a JSON object. `token` must not be given twice (400).",
            "properties": { "token": token, "token_type_hint": token_hint },
        }),
    );
    s.insert(
        "RevocationRequest".into(),
        json!({
            "type": "object",
            "description": "As for introspection.",
            "properties": { "token": token, "token_type_hint": token_hint },
        }),
    );
    let kinds = [
        PrincipalKind::Subscriber,
        PrincipalKind::Guest,
        PrincipalKind::Invite,
        PrincipalKind::Embed,
    ]
    .map(PrincipalKind::as_str);
    s.insert(
        "IntrospectionResponse".into(),
        json!({
            "type": "object",
            "required": ["active"],
            "description": "An inactive token is answered exactly `{\"active\": false}`; the \
                            other members are present only when `active` is true.",
            "properties": {
                "active": { "type": "boolean" },
                "token_type": { "const": "Bearer" },
                "sub": { "type": "string", "description": "The principal's id." },
                "exp": { "type": "integer", "description": "Expiry, Unix seconds." },
                "iat": { "type": "integer", "description": "Issue time, Unix seconds." },
                "jti": { "type": "string", "description": "The token's id." },
                "project_id": uuid(),
                "kind": { "type": "string", "enum": kinds },
                "allowed_addresses": { "type": "array", "items": uuid(),
                                       "description": "For guest, invite and embed tokens." },
                "application_id": { "type": ["string", "null"], "format": "uuid" },
                "family_id": { "type": "string", "format": "uuid",
                               "description": "The session family; revoking it deactivates \
                                               the token." },
            },
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
            // A USER needs a password, a SERVICE user must not send one ("" and null count as
            // none).
            "if": { "required": ["type"], "properties": { "type": { "const": "SERVICE" } } },
            "then": { "properties": { "password": { "enum": ["", null] } } },
            "else": { "required": ["password"],
                      "properties": { "password": { "type": "string", "minLength": 1 } } },
            "properties": {
                "name": { "type": "string", "maxLength": 256,
                          "pattern": format!("^{USERNAME_CHARS}+$"),
                          "description": "The login name, unique (ASCII \
                                          case-insensitively and otherwise byte for byte): 1 \
                                          to 256 characters without whitespace or control \
                                          characters." },
                "domain": { "type": ["string", "null"], "maxLength": 256,
                            "pattern": format!("^{USERNAME_CHARS}*$"),
                            "description": "Empty or null for none; otherwise like `name`." },
                "type": user_type,
                "role": schema_ref("RoleReference"),
                "password": { "type": ["string", "null"], "format": "password",
                              "description": "Required for a USER (Tessera keeps its own \
                                              passwords); refused for a SERVICE user (empty \
                                              or null counts as none)." },
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
    resource_schemas(&mut schemas);
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
pub fn document() -> Value {
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

// ---- Routes ----------------------------------------------------------------------------------

/// The document, serialised once: it depends only on the build.
static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| document().to_string());

/// The page, rendered once for the same reason.
static DOCS_HTML: LazyLock<String> = LazyLock::new(|| crate::docs::render(&document()));

/// The page loads nothing and runs nothing; the policy makes that a promise the browser keeps
/// even if a future edit slips in an external reference.
const DOCS_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `GET /openapi.json` and `GET /docs`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|State(state): State<AppState>| async move {
                // With a configured public URL the document names it as its server, so a
                // client generated from it calls the public address; without one, OpenAPI's
                // default (the document's own origin) applies. Never from the Host header.
                let body = match &state.config.public_url {
                    Some(url) => {
                        let mut doc = document();
                        doc["servers"] = json!([{ "url": url }]);
                        doc.to_string()
                    }
                    None => DOCUMENT_JSON.clone(),
                };
                (
                    [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
                    body,
                )
            }),
        )
        .route(
            "/docs",
            get(|| async {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/html; charset=utf-8"),
                        ),
                        (
                            HeaderName::from_static("content-security-policy"),
                            HeaderValue::from_static(DOCS_CSP),
                        ),
                    ],
                    DOCS_HTML.as_str(),
                )
            }),
        )
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::*;

    fn walk_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn document_is_openapi_3_1_with_project_info() {
        let d = document();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["title"], "Tessera");
        assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
        let schemes = &d["components"]["securitySchemes"];
        assert_eq!(schemes["projectBasic"]["scheme"], "basic");
        assert_eq!(schemes["subscriberBearer"]["scheme"], "bearer");
        assert_eq!(schemes["accountsBearer"]["scheme"], "bearer");
        assert_eq!(schemes["accountsBearer"]["bearerFormat"], "JWS");
    }

    #[test]
    fn every_ref_resolves() {
        let d = document();
        let mut refs = Vec::new();
        walk_refs(&d, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(d.pointer(pointer).is_some(), "dangling {r}");
        }
    }

    #[test]
    fn named_schemas_exist() {
        let d = document();
        for name in [
            "FabricError",
            "FabricValidationErrors",
            "SubscriberTokenRequest",
            "SubscriberTokenResponse",
            "RefreshRequest",
            "TokenPair",
            "GuestTokenRequest",
            "InviteRequest",
            "EmbedRequest",
            "TokenOnly",
            "SubscriberRequest",
            "SubscriberResponse",
            "ConferenceRoomRequest",
            "ConferenceRoomResponse",
            "Resource",
            "FabricAddress",
            "PageLinks",
            "Healthz",
            "IntrospectionRequest",
            "IntrospectionResponse",
            "RevocationRequest",
            "AccountsError",
            "TokenCreationSpec",
            "AccountsTokenPair",
            "RefreshTokenId",
            "RefreshTokenIdBody",
            "Page",
            "PageMetadata",
            "Role",
            "User",
            "UserCreate",
            "UserCreated",
            "UserPatch",
            "Project",
            "ProjectCreate",
            "ProjectCreated",
            "ApiToken",
            "ApiTokenCreate",
            "ApiTokenCreated",
            "Key",
            "AuditEvent",
            "JWK",
            "JWKS",
        ] {
            assert!(
                d["components"]["schemas"][name].is_object(),
                "missing schema {name}"
            );
        }
        let channels = &d["components"]["schemas"]["FabricAddress"]["properties"]["channels"];
        for c in ["audio", "video", "messaging"] {
            assert!(channels["properties"][c].is_object());
        }
        assert!(
            d["components"]["schemas"]["SubscriberResponse"]["properties"]["subscriber"]
                .is_object()
        );
    }

    #[test]
    fn operations_are_unique_and_tagged() {
        let mut routes = HashSet::new();
        let mut ids = HashSet::new();
        let tags: HashSet<&str> = TAGS.iter().map(|(t, _)| *t).collect();
        for op in OPERATIONS {
            assert!(routes.insert((op.method, op.path)), "duplicate {}", op.path);
            assert!(ids.insert(op.id), "duplicate id {}", op.id);
            assert!(tags.contains(op.tag), "unknown tag {}", op.tag);
            assert!(!op.summary.is_empty() && !op.auth.is_empty());
            assert!(
                op.responses.first().is_some_and(|r| r.status / 100 == 2),
                "{} must list its success first",
                op.id
            );
        }
        assert_eq!(route_table().len(), OPERATIONS.len());
    }

    #[test]
    fn path_parameters_match_placeholders() {
        for op in OPERATIONS {
            let placeholders: BTreeSet<&str> = op
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = op
                .params
                .iter()
                .filter(|p| p.location == Location::Path)
                .map(|p| p.name)
                .collect();
            assert_eq!(placeholders, declared, "{}", op.id);
        }
    }

    fn statuses(op: &Operation) -> BTreeSet<u16> {
        op.responses.iter().map(|r| r.status).collect()
    }

    #[test]
    fn error_responses_follow_the_extractors() {
        for op in OPERATIONS {
            let s = statuses(op);
            // One reply per status: the document keys replies by status.
            assert_eq!(s.len(), op.responses.len(), "{} repeats a status", op.id);
            // Credentials are checked by an extractor on every authenticated route; the
            // Accounts login is public but checks the credentials its body carries.
            let authenticated = op.auth != [Auth::None] || op.id == "createAccessToken";
            assert_eq!(s.contains(&401), authenticated, "{} and 401", op.id);
            // `JsonBody` answers 400 for non-JSON, 413 over the limit and 422 for a wrong
            // Content-Type or a non-object, on every route that reads a Fabric body.
            let fabric = op.path.starts_with("/api/fabric/");
            if fabric && op.request.is_some_and(|b| b.media == JSON_ONLY) {
                for code in [400, 413, 422] {
                    assert!(s.contains(&code), "{} lacks {code}", op.id);
                }
            }
            // The `/v1` body readers answer 400 for a bad body and 413 over the limit.
            if op.path.starts_with("/v1/") && op.request.is_some() {
                assert!(s.contains(&400) && s.contains(&413), "{}", op.id);
            }
            // Path ids are looked up, and a malformed one is 404 like an unknown one.
            if op.path.contains("{id}") {
                assert!(s.contains(&404), "{} lacks 404", op.id);
            }
            // Paging is validated on every list.
            if op.params.iter().any(|p| p.name == "page_size") {
                assert!(s.contains(&422) && s.contains(&400), "{}", op.id);
            }
            if op.params.iter().any(|p| p.name == "pageSize") {
                assert!(s.contains(&400), "{}", op.id);
            }
        }
    }

    #[test]
    fn accounts_operations_answer_accounts_errors_and_name_their_role() {
        let d = document();
        let v1: Vec<&Operation> = OPERATIONS
            .iter()
            .filter(|o| o.path.starts_with("/v1/"))
            .collect();
        assert_eq!(v1.len(), 19);
        for op in v1 {
            let json = &d["paths"][op.path][op.method.key()];
            for r in op.responses.iter().filter(|r| r.status >= 400) {
                let schema = &json["responses"][r.status.to_string()]["content"][JSON]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/AccountsError",
                    "{} {}",
                    op.id, r.status
                );
            }
            if op.tag == "Accounts" {
                assert_eq!(op.auth, PUBLIC, "{}", op.id);
                continue;
            }
            assert_eq!(op.tag, "Management", "{}", op.id);
            assert_eq!(op.auth, ACCOUNTS, "{}", op.id);
            assert!(op.description.starts_with("Role: "), "{}", op.id);
            assert_eq!(json["security"], json!([{ "accountsBearer": [] }]));
            let unauthorized = &json["responses"]["401"]["headers"]["WWW-Authenticate"];
            assert!(unauthorized.is_object(), "{}", op.id);
        }
        let refresh = &d["paths"]["/v1/tokens/access-token/refresh"]["patch"];
        assert_eq!(refresh["operationId"], "refreshAccessToken");
    }

    #[test]
    fn embed_exchange_is_public_and_rate_limited() {
        let op = OPERATIONS
            .iter()
            .find(|o| o.id == "createEmbedToken")
            .unwrap();
        let s = statuses(op);
        for code in [201, 403, 404, 422, 429] {
            assert!(s.contains(&code), "{code}");
        }
        assert!(!s.contains(&401));
        assert_eq!(document()["paths"][op.path]["post"]["security"], json!([]));
    }

    #[test]
    fn addresses_list_documents_its_filters() {
        let d = document();
        let params = d["paths"]["/api/fabric/addresses"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: BTreeSet<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
        let want: BTreeSet<&str> = [
            "page_size",
            "page_number",
            "page_token",
            "type",
            "display_name",
        ]
        .into();
        assert_eq!(names, want);
        assert_eq!(
            d["paths"]["/api/fabric/addresses"]["get"]["security"],
            json!([{ "projectBasic": [] }, { "subscriberBearer": [] }])
        );
    }

    #[test]
    fn introspection_takes_form_or_json() {
        let d = document();
        let content = &d["paths"]["/oauth2/introspect"]["post"]["requestBody"]["content"];
        assert!(content[FORM].is_object() && content[JSON].is_object());
        let kinds = &d["components"]["schemas"]["IntrospectionResponse"]["properties"]["kind"];
        assert_eq!(
            kinds["enum"],
            json!(["subscriber", "guest", "invite", "embed"])
        );
    }

    #[test]
    fn served_json_is_the_document() {
        let served: Value = serde_json::from_str(&DOCUMENT_JSON).unwrap();
        assert_eq!(served, document());
    }
}
