//! The part of the OpenAPI description still written as a table, while the operations move to
//! typed handlers with `#[utoipa::path]` annotations (see `super`). An operation or schema the
//! derived document already holds is taken from there; this table supplies only the rest.

use serde_json::{json, Map, Value};
use tessera_core::service::{MAX_ALLOWED_ADDRESSES, SCOPE_SAT_REFRESH};
use tessera_core::token::PrincipalKind;

use super::schemas::*;

/// An HTTP method of a documented operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
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
            Method::Delete => "DELETE",
        }
    }

    /// The lower-case name OpenAPI uses as the key of a path item.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
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
     or names a member twice, a `token` that is not a string, or a form naming `token` twice.",
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
    let token_hint = json!({
        "type": "string",
        "examples": ["access_token", "refresh_token"],
        "description": "Accepted and ignored, as RFC 7009 allows; the token itself says \
                        what it is.",
    });
    let token = json!({
        "type": "string",
        "description": "The token. The RFCs require it; a missing or unreadable one (or an \
                        empty body) is answered as an unknown token, not as an error.",
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

fn components() -> Value {
    let mut schemas = Map::new();
    error_and_service_schemas(&mut schemas);
    token_schemas(&mut schemas);
    resource_schemas(&mut schemas);
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
