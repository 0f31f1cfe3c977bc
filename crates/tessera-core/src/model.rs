//! Domain records. These are not wire types: the server converts them to each dialect's JSON
//! by hand at its edge.

use uuid::Uuid;

use crate::clock::{Clock, UnixTime};
use crate::ids::{AddressId, ApiTokenId, EmbedId, FamilyId, OperatorId, ProjectId, ResourceId};
use crate::keyring::{KeyPurpose, KeyState};
use crate::token::PrincipalKind;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id, also the Basic-auth user name.
    pub id: ProjectId,
    /// A human name.
    pub name: String,
    /// Creation time.
    pub created_at: UnixTime,
}

/// A project API token as stored: never the secret itself, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Record id (for listing and revoking).
    pub id: ApiTokenId,
    /// Owning project.
    pub project_id: ProjectId,
    /// Optional human name.
    pub name: String,
    /// Keyed hash of the secret.
    pub hash: [u8; 32],
    /// Creation time.
    pub created_at: UnixTime,
    /// Set once revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<UnixTime>,
}

/// The kind of a Fabric resource, which is also its address's display type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A subscriber (end user).
    Subscriber,
    /// A conference room.
    Room,
    /// An application.
    App,
}

impl ResourceKind {
    /// Stable text form, equal to the Fabric address `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Subscriber => "subscriber",
            ResourceKind::Room => "room",
            ResourceKind::App => "app",
        }
    }

    /// Parses [`ResourceKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscriber" => Some(ResourceKind::Subscriber),
            "room" => Some(ResourceKind::Room),
            "app" => Some(ResourceKind::App),
            _ => None,
        }
    }

    /// The address context: subscribers are private, rooms and applications public.
    pub fn context(self) -> &'static str {
        match self {
            ResourceKind::Subscriber => "private",
            ResourceKind::Room | ResourceKind::App => "public",
        }
    }
}

/// A subscriber's profile. Unset fields are empty strings, as the wire contract prefers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberProfile {
    /// Email address (the reference of subscribers created by token requests).
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Display name.
    pub display_name: String,
    /// Job title.
    pub job_title: String,
    /// Time zone.
    pub timezone: String,
    /// Country.
    pub country: String,
    /// Region.
    pub region: String,
    /// Company name.
    pub company_name: String,
}

/// A partial update of a subscriber profile: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberPatch {
    /// New email.
    pub email: Option<String>,
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New job title.
    pub job_title: Option<String>,
    /// New time zone.
    pub timezone: Option<String>,
    /// New country.
    pub country: Option<String>,
    /// New region.
    pub region: Option<String>,
    /// New company name.
    pub company_name: Option<String>,
}

impl SubscriberPatch {
    /// Whether the patch changes nothing (a token request that names only the reference).
    pub fn is_empty(&self) -> bool {
        *self == SubscriberPatch::default()
    }

    /// Applies the patch to a profile.
    pub fn apply(&self, p: &mut SubscriberProfile) {
        let set = |dst: &mut String, src: &Option<String>| {
            if let Some(v) = src {
                dst.clone_from(v);
            }
        };
        set(&mut p.email, &self.email);
        set(&mut p.first_name, &self.first_name);
        set(&mut p.last_name, &self.last_name);
        set(&mut p.display_name, &self.display_name);
        set(&mut p.job_title, &self.job_title);
        set(&mut p.timezone, &self.timezone);
        set(&mut p.country, &self.country);
        set(&mut p.region, &self.region);
        set(&mut p.company_name, &self.company_name);
    }
}

/// A Fabric resource: a subscriber, room or application.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Resource id (for subscribers, also the subscriber id).
    pub id: ResourceId,
    /// Owning project.
    pub project_id: ProjectId,
    /// What it is.
    pub kind: ResourceKind,
    /// Short name, used in its address.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// Last update time.
    pub updated_at: UnixTime,
    /// The subscriber profile, for subscribers.
    pub subscriber: Option<SubscriberProfile>,
    /// Free-form fields a client stored on a room or application (a JSON object).
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A Fabric address: the unit of permission for restricted tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Address id.
    pub id: AddressId,
    /// Owning project.
    pub project_id: ProjectId,
    /// The resource it reaches.
    pub resource_id: ResourceId,
    /// The resource's kind (the address display type).
    pub kind: ResourceKind,
    /// Name within its context (`/private/<name>`).
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Whether it refuses calls.
    pub locked: bool,
    /// Cover image URL (may be empty).
    pub cover_url: String,
    /// Preview image URL (may be empty).
    pub preview_url: String,
    /// Creation time.
    pub created_at: UnixTime,
}

/// What an address belongs to. Fixed for the address's life: renaming its resource changes
/// neither, so a cache may keep it until the address is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressOwner {
    /// Owning project.
    pub project_id: ProjectId,
    /// The resource it reaches.
    pub resource_id: ResourceId,
    /// The resource's kind.
    pub kind: ResourceKind,
}

/// A new resource with its one address, created together.
#[derive(Debug, Clone)]
pub struct NewResource {
    /// The resource.
    pub resource: Resource,
    /// Its address.
    pub address: Address,
    /// For subscribers: the argon2id PHC string of the password.
    pub password_hash: Option<String>,
}

/// An address name from free text: lower-case letters, digits and dashes, never empty.
pub fn address_name(source: &str) -> String {
    // Unicode lowercasing is harmless here, unlike for references (`ids::identity_key`): an
    // address name is a label, neither unique nor looked up; addresses are found by id.
    let mut out = String::with_capacity(source.len());
    for c in source.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "resource".into()
    } else {
        out
    }
}

impl NewResource {
    /// A new resource of `kind` with its one address. Ids are time-ordered so that listings,
    /// which page by id, follow creation order.
    pub fn build(
        clock: &dyn Clock,
        project: ProjectId,
        kind: ResourceKind,
        name_source: &str,
        display_name: String,
        subscriber: Option<SubscriberProfile>,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> NewResource {
        let now = clock.now();
        let id = ResourceId::ordered(clock.now_millis());
        let name = address_name(name_source);
        NewResource {
            address: Address {
                id: AddressId::ordered(clock.now_millis()),
                project_id: project,
                resource_id: id,
                kind,
                name: name.clone(),
                display_name: display_name.clone(),
                locked: false,
                cover_url: String::new(),
                preview_url: String::new(),
                created_at: now,
            },
            resource: Resource {
                id,
                project_id: project,
                kind,
                name,
                display_name,
                created_at: now,
                updated_at: now,
                subscriber,
                data,
            },
            password_hash: None,
        }
    }
}

/// A room update: fields present replace, `data` members are merged in.
#[derive(Debug, Clone, Default)]
pub struct RoomPatch {
    /// New name.
    pub name: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// Members to merge into the stored fields.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A token request's subscriber upsert, keyed on `reference` (compared by
/// [`crate::ids::identity_key`], first with references, then with emails) or on the
/// subscriber id when the reference is one (fabric-api.md §13 item 9).
#[derive(Debug, Clone)]
pub struct SubscriberUpsert {
    /// The reference as given.
    pub reference: String,
    /// Fields to set or update.
    pub patch: SubscriberPatch,
    /// A new password hash, when the request carried a non-empty password.
    pub password_hash: Option<String>,
    /// The resource to create when no subscriber matches (its id, name, address, times).
    pub create: NewResource,
}

/// The write of a subscriber grant: what [`crate::store::FamilyStore::grant_subscriber`] writes in one
/// transaction.
#[derive(Debug, Clone)]
pub struct GrantWrite {
    /// The project of the subscriber and the family.
    pub project: ProjectId,
    /// The subscriber to find or create.
    pub upsert: SubscriberUpsert,
    /// The family to open (its subject is set by the store).
    pub family: Family,
    /// When.
    pub at: UnixTime,
}

impl SubscriberUpsert {
    /// Whether an existing subscriber must be written: most token requests name only the
    /// reference, and then the subscriber (its `updated_at` too) is left as it is.
    pub fn changes_existing(&self) -> bool {
        !self.patch.is_empty() || self.password_hash.is_some()
    }
}

/// A session family: one grant and all of its refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Family id (carried by every token of the family).
    pub id: FamilyId,
    /// Owning project.
    pub project_id: ProjectId,
    /// Principal kind.
    pub kind: PrincipalKind,
    /// The subject (subscriber id or guest id).
    pub subject: Uuid,
    /// The generation the current refresh token may spend.
    pub generation: i64,
    /// Creation time.
    pub created_at: UnixTime,
    /// Absolute expiry: nothing in the family works after it.
    pub expires_at: UnixTime,
    /// When the newest token of the family expires; after it (and the leeway) the family is
    /// dead weight and the cleanup purges it. Stores keep it no later than `expires_at` (see
    /// [`Family::stored_tokens_expire_at`]), which is what lets the purge look at it alone.
    pub tokens_expire_at: UnixTime,
    /// When the generation last advanced (for the grace window).
    pub rotated_at: Option<UnixTime>,
    /// Set once revoked.
    pub revoked_at: Option<UnixTime>,
}

impl Family {
    /// `tokens_expire_at` as stores write it: never later than `expires_at`, since no token
    /// of the family works after that. The purge relies on it to find dead families through
    /// one index.
    pub fn stored_tokens_expire_at(&self) -> UnixTime {
        self.tokens_expire_at.min(self.expires_at)
    }
}

/// A refresh spending one generation of a family: what [`crate::store::FamilyStore::rotate_family`]
/// is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The project the family must belong to.
    pub project: ProjectId,
    /// The family.
    pub id: FamilyId,
    /// The generation the refresh token spends.
    pub generation: i64,
    /// When.
    pub at: UnixTime,
    /// When the tokens about to be issued will expire.
    pub tokens_expire_at: UnixTime,
}

/// Which audit events a read or a count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this project's events (`None`: every project's).
    pub project: Option<ProjectId>,
    /// Only events recorded at or after this.
    pub since: UnixTime,
}

/// A page of audit events by position: the audit log is read oldest first, by offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPage {
    /// How many matching events to skip.
    pub offset: u64,
    /// The most events to return.
    pub limit: u32,
}

/// The result of trying to spend a refresh generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The generation was current and is now spent; the family moved to the returned one.
    Rotated(Family),
    /// The generation was not current (already spent, or never issued). The family as it is
    /// now is returned so the caller can apply the grace window or revoke it.
    Stale(Family),
    /// The family is revoked or past its absolute expiry.
    Dead,
    /// No such family in this project.
    NotFound,
}

/// A click-to-call widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embed {
    /// Widget id.
    pub id: EmbedId,
    /// Owning project.
    pub project_id: ProjectId,
    /// Keyed hash of its public `c2c_` token.
    pub token_hash: [u8; 32],
    /// The addresses its guests may reach.
    pub addresses: Vec<AddressId>,
    /// Disabled widgets answer 403.
    pub enabled: bool,
    /// Creation time.
    pub created_at: UnixTime,
}

/// A key as stored: its material wrapped under the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// Purpose.
    pub purpose: KeyPurpose,
    /// Life-cycle state.
    pub state: KeyState,
    /// Material wrapped by [`crate::crypto::MasterKey::wrap`] (empty once destroyed).
    pub wrapped: Vec<u8>,
    /// Creation time.
    pub created_at: UnixTime,
    /// When it became active.
    pub activated_at: Option<UnixTime>,
    /// When it was retired.
    pub retired_at: Option<UnixTime>,
    /// How many tokens it has sealed (persisted periodically).
    pub sealed: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What a database records to recognise its master key: [`crate::crypto::MasterKey::check_value`]
/// of the key everything in it is wrapped and hashed under, and when that was recorded.
///
/// The value is a keyed hash of a fixed label, so it reveals nothing about the key, and a
/// command can refuse a wrong key before it writes anything with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterKeyCheck {
    /// The check value of the database's master key.
    pub value: [u8; 32],
    /// When it was first recorded: when this database was first opened by a build that keeps
    /// the check (and derives separate JWS subkeys, see [`crate::jws`]).
    pub recorded_at: UnixTime,
}

/// Which of a project's resources to list: what
/// [`crate::store::DirectoryStore::list_resources`] reads.
#[derive(Debug, Clone, Copy)]
pub struct ResourceListing {
    /// The project.
    pub project: ProjectId,
    /// Only resources of this kind, or all.
    pub kind: Option<ResourceKind>,
    /// Which page.
    pub page: Page,
}

impl ResourceListing {
    /// `page` of `project`'s resources of `kind` (all kinds for `None`).
    pub fn new(project: ProjectId, kind: Option<ResourceKind>, page: Page) -> Self {
        ResourceListing {
            project,
            kind,
            page,
        }
    }
}

/// A change to a subscriber: what [`crate::store::DirectoryStore::update_subscriber`] writes.
#[derive(Debug, Clone)]
pub struct SubscriberUpdate {
    /// The subscriber's project.
    pub project: ProjectId,
    /// The subscriber.
    pub id: ResourceId,
    /// The profile fields to replace.
    pub patch: SubscriberPatch,
    /// A new password hash (setting one revokes the subscriber's families).
    pub password_hash: Option<String>,
    /// When.
    pub at: UnixTime,
}

/// A change to a room or an application: what [`crate::store::DirectoryStore::update_room`]
/// writes.
#[derive(Debug, Clone)]
pub struct RoomUpdate {
    /// The resource's project.
    pub project: ProjectId,
    /// The resource.
    pub id: ResourceId,
    /// The kind it must be (another kind is not found).
    pub kind: ResourceKind,
    /// The fields to replace, and `data` to merge.
    pub patch: RoomPatch,
    /// When.
    pub at: UnixTime,
}

/// A resource to delete: what [`crate::store::DirectoryStore::delete_resource`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDeletion {
    /// The resource's project.
    pub project: ProjectId,
    /// The resource.
    pub id: ResourceId,
    /// The kind it must be (another kind is not found).
    pub kind: ResourceKind,
    /// When (subscribers' families are revoked at this time).
    pub at: UnixTime,
}

/// Which addresses a listing should return.
#[derive(Debug, Clone, Default)]
pub struct AddressQuery {
    /// Only this display type.
    pub kind: Option<ResourceKind>,
    /// Only this display name (exact).
    pub display_name: Option<String>,
    /// Only the addresses of this resource.
    pub resource_id: Option<ResourceId>,
    /// Subscriber scope: only non-subscriber addresses plus this subscriber's own.
    pub visible_to: Option<ResourceId>,
}

/// A keyset page request: up to `size` items with ids greater than `after`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Page size (already clamped by the caller).
    pub size: u32,
    /// The last id of the previous page.
    pub after: Option<Uuid>,
}

/// One page of results and whether more follow.
#[derive(Debug, Clone)]
pub struct PageOf<T> {
    /// The items, in id (creation) order.
    pub items: Vec<T>,
    /// Whether a next page exists.
    pub more: bool,
}

/// An audit event: who did what to which principal. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: UnixTime,
    /// The project concerned, if any.
    pub project_id: Option<ProjectId>,
    /// What happened, e.g. `token.issued`, `refresh.reuse_detected`, `key.rotated`.
    pub action: String,
    /// Who acted: `project:<id>`, `admin`, `system`, `operator:<id>`.
    pub actor: String,
    /// What it was done to: a family, subscriber, key or token id.
    pub subject: String,
    /// A few non-secret details as a JSON object.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// What one purge round may remove. Each kind of row is capped at `limit` per round, so that
/// a round is a short transaction: on SQLite it shares the single writer with token grants,
/// and a backlog of a million expired families deleted at once would stall every grant for
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeRequest {
    /// Families whose newest token expired before this, and operator sessions that expired
    /// before it, are removed.
    pub before: UnixTime,
    /// Retired keys retired before this are destroyed.
    pub retired_before: UnixTime,
    /// Audit events recorded before this are removed (`None` keeps them all).
    pub audit_before: Option<UnixTime>,
    /// The most families, sessions and audit events each that one round removes.
    pub limit: u32,
}

/// Row counts after a purge, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Families removed.
    pub families: u64,
    /// Expired operator sessions removed.
    pub sessions: u64,
    /// Audit events removed (older than the retention).
    pub audit_events: u64,
    /// Keys moved from retired to destroyed.
    pub keys_destroyed: u64,
}

impl PurgeCounts {
    /// Whether a round with this `limit` removed as many rows of some kind as it was allowed
    /// to, so that more may be waiting.
    pub fn hit_limit(&self, limit: u32) -> bool {
        let limit = u64::from(limit);
        self.families >= limit || self.sessions >= limit || self.audit_events >= limit
    }

    /// Adds another round's counts.
    pub fn add(&mut self, other: PurgeCounts) {
        self.families += other.families;
        self.sessions += other.sessions;
        self.audit_events += other.audit_events;
        self.keys_destroyed += other.keys_destroyed;
    }
}

/// A management role. Each role includes the rights of those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also manages projects and their credentials.
    Operator,
    /// Also manages operators and keys.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The wire name (`ADMIN`, `OPERATOR`, `VIEWER`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Operator => "OPERATOR",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses [`Role::as_str`], case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }

    /// The role's stable id. Clients pick roles by name and send back the id, so any stable
    /// value works (accounts-api.md §6); fixed UUIDs keep ids equal across installations.
    pub fn id(self) -> &'static str {
        match self {
            Role::Viewer => "7c1a5e52-0001-4d0e-9c3a-2f0a0c6e0a01",
            Role::Operator => "7c1a5e52-0002-4d0e-9c3a-2f0a0c6e0a02",
            Role::Admin => "7c1a5e52-0003-4d0e-9c3a-2f0a0c6e0a03",
        }
    }

    /// The role with id `id` (its name is accepted too).
    pub fn from_id(id: &str) -> Option<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.id().eq_ignore_ascii_case(id))
            .or_else(|| Role::parse(id))
    }

    /// A sentence for `GET /v1/roles`.
    pub fn description(self) -> &'static str {
        match self {
            Role::Viewer => "Reads projects, operators, keys and audit events.",
            Role::Operator => "Manages projects and their API tokens; reads everything.",
            Role::Admin => "Manages operators and keys, and everything an operator may.",
        }
    }

    /// The permission strings carried in the access token's `scope` (accounts-api.md A16).
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Role::Admin => &[
                "BACKUP_CONFIG_READ",
                "BACKUP_CONFIG_WRITE",
                "CREDENTIAL_READ",
                "CREDENTIAL_WRITE",
                "USER_READ",
                "USER_WRITE",
                "OTHER_READ",
                "OTHER_WRITE",
            ],
            Role::Operator => &[
                "BACKUP_CONFIG_READ",
                "BACKUP_CONFIG_WRITE",
                "USER_READ",
                "OTHER_READ",
                "OTHER_WRITE",
            ],
            Role::Viewer => &["BACKUP_CONFIG_READ", "USER_READ", "OTHER_READ"],
        }
    }
}

/// Whether an operator is a person (password) or automation (API key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKind {
    /// Logs in with username and password.
    User,
    /// Logs in with an API key.
    Service,
}

impl OperatorKind {
    /// The wire name (`USER`, `SERVICE`).
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorKind::User => "USER",
            OperatorKind::Service => "SERVICE",
        }
    }

    /// Parses [`OperatorKind::as_str`], case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [OperatorKind::User, OperatorKind::Service]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// An operator of the management plane. Credentials are held only as hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct Operator {
    /// Its id.
    pub id: OperatorId,
    /// Login name, unique (ASCII case-insensitively, see [`crate::ids::identity_key`]), e.g.
    /// `admin@local`.
    pub username: String,
    /// The domain part clients send separately, if any.
    pub domain: Option<String>,
    /// Person or service.
    pub kind: OperatorKind,
    /// What it may do.
    pub role: Role,
    /// argon2id PHC string (users).
    pub password_hash: Option<String>,
    /// Keyed hash of the API key (services).
    pub api_key_hash: Option<[u8; 32]>,
    /// A disabled operator cannot log in or use its tokens.
    pub disabled: bool,
    /// Creation time.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("kind", &self.kind)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A change to an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorPatch {
    /// Disable or enable. Disabling also ends its sessions.
    pub disabled: Option<bool>,
    /// A new role.
    pub role: Option<Role>,
}

/// An Accounts refresh id as stored: its keyed hash, whose it is, and when it ends.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorSession {
    /// Keyed hash of the refresh id.
    pub hash: [u8; 32],
    /// The operator.
    pub operator_id: OperatorId,
    /// Issue time.
    pub created_at: UnixTime,
    /// Absolute expiry (not sliding).
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for OperatorSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSession")
            .field("operator_id", &self.operator_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
