//! Row mapping: PostgreSQL rows to domain records. Only this crate knows column layouts.
//!
//! Every `*_cols!` macro lists the columns its mapper reads, in order, so a query and its
//! mapper cannot drift apart silently: a mismatch fails the first test that reads the row. They
//! are macros, not constants, so that `concat!` can build each query as one `&'static str`
//! (the key of the per-connection statement cache).

use tessera_core::clock::UnixTime;
use tessera_core::ids::*;
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::model::*;
use tessera_core::store::StoreError;
use tessera_core::token::PrincipalKind;
use tokio_postgres::Row;

use crate::Fail;

/// A value the database holds that this build cannot read (a corrupt or foreign row).
fn bad(what: &str) -> Fail {
    Fail::Store(StoreError::Unavailable(format!(
        "bad {what} in a stored row"
    )))
}

fn hash(v: Vec<u8>) -> Result<[u8; 32], Fail> {
    v.try_into().map_err(|_| bad("hash"))
}

fn opt_time(v: Option<i64>) -> Option<UnixTime> {
    v.map(UnixTime)
}

/// JSON object columns; anything but an object reads as empty, as in the SQLite store.
fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

macro_rules! project_cols {
    () => {
        "id, name, created_at"
    };
}
pub(crate) use project_cols;

pub(crate) fn project_row(r: &Row) -> Result<Project, Fail> {
    Ok(Project {
        id: ProjectId(r.try_get(0)?),
        name: r.try_get(1)?,
        created_at: UnixTime(r.try_get(2)?),
    })
}

macro_rules! api_token_cols {
    () => {
        "id, project_id, name, hash, created_at, revoked_at"
    };
}
pub(crate) use api_token_cols;

pub(crate) fn api_token_row(r: &Row) -> Result<ApiToken, Fail> {
    Ok(ApiToken {
        id: ApiTokenId(r.try_get(0)?),
        project_id: ProjectId(r.try_get(1)?),
        name: r.try_get(2)?,
        hash: hash(r.try_get(3)?)?,
        created_at: UnixTime(r.try_get(4)?),
        revoked_at: opt_time(r.try_get(5)?),
    })
}

macro_rules! key_cols {
    () => {
        "kid, purpose, state, wrapped, created_at, activated_at, retired_at, sealed"
    };
}
pub(crate) use key_cols;

/// A row of `master_key_check` (value, recorded_at).
pub(crate) fn check_row(r: &Row) -> Result<MasterKeyCheck, Fail> {
    Ok(MasterKeyCheck {
        value: hash(r.try_get(0)?)?,
        recorded_at: UnixTime(r.try_get(1)?),
    })
}

pub(crate) fn key_row(r: &Row) -> Result<StoredKey, Fail> {
    let purpose: &str = r.try_get(1)?;
    let state: &str = r.try_get(2)?;
    Ok(StoredKey {
        kid: r.try_get(0)?,
        purpose: KeyPurpose::parse(purpose).ok_or_else(|| bad("key purpose"))?,
        state: KeyState::parse(state).ok_or_else(|| bad("key state"))?,
        wrapped: r.try_get(3)?,
        created_at: UnixTime(r.try_get(4)?),
        activated_at: opt_time(r.try_get(5)?),
        retired_at: opt_time(r.try_get(6)?),
        sealed: r.try_get(7)?,
    })
}

/// Resource columns, with the subscriber row left-joined as `s` (null for rooms and apps).
macro_rules! resource_cols {
    () => {
        "r.id, r.project_id, r.kind, r.name, r.display_name, r.data,
    r.created_at, r.updated_at, s.id, s.email, s.first_name, s.last_name, s.display_name,
    s.job_title, s.timezone, s.country, s.region, s.company_name"
    };
}
pub(crate) use resource_cols;

pub(crate) fn resource_row(r: &Row) -> Result<Resource, Fail> {
    let kind: &str = r.try_get(2)?;
    let subscriber = match r.try_get::<_, Option<uuid::Uuid>>(8)? {
        Some(_) => Some(SubscriberProfile {
            email: r.try_get(9)?,
            first_name: r.try_get(10)?,
            last_name: r.try_get(11)?,
            display_name: r.try_get(12)?,
            job_title: r.try_get(13)?,
            timezone: r.try_get(14)?,
            country: r.try_get(15)?,
            region: r.try_get(16)?,
            company_name: r.try_get(17)?,
        }),
        None => None,
    };
    Ok(Resource {
        id: ResourceId(r.try_get(0)?),
        project_id: ProjectId(r.try_get(1)?),
        kind: ResourceKind::parse(kind).ok_or_else(|| bad("resource kind"))?,
        name: r.try_get(3)?,
        display_name: r.try_get(4)?,
        created_at: UnixTime(r.try_get(6)?),
        updated_at: UnixTime(r.try_get(7)?),
        subscriber,
        data: object(r.try_get(5)?),
    })
}

macro_rules! address_cols {
    () => {
        "id, project_id, resource_id, kind, name, display_name, locked, cover_url, preview_url, created_at"
    };
}
pub(crate) use address_cols;

pub(crate) fn address_row(r: &Row) -> Result<Address, Fail> {
    let kind: &str = r.try_get(3)?;
    Ok(Address {
        id: AddressId(r.try_get(0)?),
        project_id: ProjectId(r.try_get(1)?),
        resource_id: ResourceId(r.try_get(2)?),
        kind: ResourceKind::parse(kind).ok_or_else(|| bad("address kind"))?,
        name: r.try_get(4)?,
        display_name: r.try_get(5)?,
        locked: r.try_get(6)?,
        cover_url: r.try_get(7)?,
        preview_url: r.try_get(8)?,
        created_at: UnixTime(r.try_get(9)?),
    })
}

macro_rules! family_cols {
    () => {
        "id, project_id, kind, subject, generation, created_at, \
     expires_at, rotated_at, revoked_at, tokens_expire_at"
    };
}
pub(crate) use family_cols;

pub(crate) fn family_row(r: &Row) -> Result<Family, Fail> {
    let kind: &str = r.try_get(2)?;
    Ok(Family {
        id: FamilyId(r.try_get(0)?),
        project_id: ProjectId(r.try_get(1)?),
        kind: PrincipalKind::parse(kind).ok_or_else(|| bad("principal kind"))?,
        subject: r.try_get(3)?,
        generation: r.try_get(4)?,
        created_at: UnixTime(r.try_get(5)?),
        expires_at: UnixTime(r.try_get(6)?),
        rotated_at: opt_time(r.try_get(7)?),
        revoked_at: opt_time(r.try_get(8)?),
        tokens_expire_at: UnixTime(r.try_get(9)?),
    })
}

macro_rules! embed_cols {
    () => {
        "id, project_id, token_hash, addresses, enabled, created_at"
    };
}
pub(crate) use embed_cols;

pub(crate) fn embed_row(r: &Row) -> Result<Embed, Fail> {
    let addresses: Vec<uuid::Uuid> = r.try_get(3)?;
    Ok(Embed {
        id: EmbedId(r.try_get(0)?),
        project_id: ProjectId(r.try_get(1)?),
        token_hash: hash(r.try_get(2)?)?,
        addresses: addresses.into_iter().map(AddressId).collect(),
        enabled: r.try_get(4)?,
        created_at: UnixTime(r.try_get(5)?),
    })
}

macro_rules! audit_cols {
    () => {
        "at, project_id, action, actor, subject, detail"
    };
}
pub(crate) use audit_cols;

pub(crate) fn audit_row(r: &Row) -> Result<AuditEvent, Fail> {
    Ok(AuditEvent {
        at: UnixTime(r.try_get(0)?),
        project_id: r.try_get::<_, Option<uuid::Uuid>>(1)?.map(ProjectId),
        action: r.try_get(2)?,
        actor: r.try_get(3)?,
        subject: r.try_get(4)?,
        detail: object(r.try_get(5)?),
    })
}

macro_rules! operator_cols {
    () => {
        "id, username, domain, kind, role, password_hash, api_key_hash, disabled, created_at"
    };
}
pub(crate) use operator_cols;

pub(crate) fn operator_row(r: &Row) -> Result<Operator, Fail> {
    let kind: &str = r.try_get(3)?;
    let role: &str = r.try_get(4)?;
    Ok(Operator {
        id: OperatorId(r.try_get(0)?),
        username: r.try_get(1)?,
        domain: r.try_get(2)?,
        kind: OperatorKind::parse(kind).ok_or_else(|| bad("operator kind"))?,
        role: Role::parse(role).ok_or_else(|| bad("role"))?,
        password_hash: r.try_get(5)?,
        api_key_hash: r.try_get::<_, Option<Vec<u8>>>(6)?.map(hash).transpose()?,
        disabled: r.try_get(7)?,
        created_at: UnixTime(r.try_get(8)?),
    })
}

macro_rules! operator_session_cols {
    () => {
        "hash, operator_id, created_at, expires_at"
    };
}
pub(crate) use operator_session_cols;

pub(crate) fn operator_session_row(r: &Row) -> Result<OperatorSession, Fail> {
    Ok(OperatorSession {
        hash: hash(r.try_get(0)?)?,
        operator_id: OperatorId(r.try_get(1)?),
        created_at: UnixTime(r.try_get(2)?),
        expires_at: UnixTime(r.try_get(3)?),
    })
}
