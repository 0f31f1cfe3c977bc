//! Row mapping: SQL rows to domain records. Only this crate knows column layouts.

use rusqlite::Row;
use tessera_core::clock::UnixTime;
use tessera_core::ids::*;
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::model::*;
use tessera_core::token::PrincipalKind;
use uuid::Uuid;

fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("bad {what}").into(),
    )
}

pub(crate) fn uuid_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let s: String = r.get(i)?;
    Uuid::parse_str(&s).map_err(|_| bad(i, "uuid"))
}

fn hash_col(r: &Row<'_>, i: usize) -> rusqlite::Result<[u8; 32]> {
    let v: Vec<u8> = r.get(i)?;
    v.try_into().map_err(|_| bad(i, "hash"))
}

/// A row of `master_key_check` (value, recorded_at).
pub(crate) fn check_row(r: &Row<'_>) -> rusqlite::Result<MasterKeyCheck> {
    Ok(MasterKeyCheck {
        value: hash_col(r, 0)?,
        recorded_at: UnixTime(r.get(1)?),
    })
}

fn opt_time(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<UnixTime>> {
    Ok(r.get::<_, Option<i64>>(i)?.map(UnixTime))
}

pub(crate) const API_TOKEN_COLS: &str = "id, project_id, name, hash, created_at, revoked_at";

pub(crate) fn api_token_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: ApiTokenId(uuid_col(r, 0)?),
        project_id: ProjectId(uuid_col(r, 1)?),
        name: r.get(2)?,
        hash: hash_col(r, 3)?,
        created_at: UnixTime(r.get(4)?),
        revoked_at: opt_time(r, 5)?,
    })
}

pub(crate) const PROJECT_COLS: &str = "id, name, created_at";

pub(crate) fn project_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: ProjectId(uuid_col(r, 0)?),
        name: r.get(1)?,
        created_at: UnixTime(r.get(2)?),
    })
}

pub(crate) const OPERATOR_COLS: &str =
    "id, username, domain, kind, role, password_hash, api_key_hash, disabled, created_at";

pub(crate) fn operator_row(r: &Row<'_>) -> rusqlite::Result<Operator> {
    let kind: String = r.get(3)?;
    let role: String = r.get(4)?;
    let key: Option<Vec<u8>> = r.get(6)?;
    Ok(Operator {
        id: OperatorId(uuid_col(r, 0)?),
        username: r.get(1)?,
        domain: r.get(2)?,
        kind: OperatorKind::parse(&kind).ok_or_else(|| bad(3, "operator kind"))?,
        role: Role::parse(&role).ok_or_else(|| bad(4, "role"))?,
        password_hash: r.get(5)?,
        api_key_hash: match key {
            Some(k) => Some(k.try_into().map_err(|_| bad(6, "hash"))?),
            None => None,
        },
        disabled: r.get(7)?,
        created_at: UnixTime(r.get(8)?),
    })
}

pub(crate) fn operator_session_row(r: &Row<'_>) -> rusqlite::Result<OperatorSession> {
    Ok(OperatorSession {
        hash: hash_col(r, 0)?,
        operator_id: OperatorId(uuid_col(r, 1)?),
        created_at: UnixTime(r.get(2)?),
        expires_at: UnixTime(r.get(3)?),
    })
}

pub(crate) fn key_row(r: &Row<'_>) -> rusqlite::Result<StoredKey> {
    let purpose: String = r.get(1)?;
    let state: String = r.get(2)?;
    Ok(StoredKey {
        kid: r.get(0)?,
        purpose: KeyPurpose::parse(&purpose).ok_or_else(|| bad(1, "purpose"))?,
        state: KeyState::parse(&state).ok_or_else(|| bad(2, "state"))?,
        wrapped: r.get(3)?,
        created_at: UnixTime(r.get(4)?),
        activated_at: opt_time(r, 5)?,
        retired_at: opt_time(r, 6)?,
        sealed: r.get(7)?,
    })
}

pub(crate) const RESOURCE_COLS: &str = "r.id, r.project_id, r.kind, r.name, r.display_name, r.data,
    r.created_at, r.updated_at, s.id, s.email, s.first_name, s.last_name, s.display_name,
    s.job_title, s.timezone, s.country, s.region, s.company_name";

pub(crate) fn resource_row(r: &Row<'_>) -> rusqlite::Result<Resource> {
    let kind: String = r.get(2)?;
    let data: String = r.get(5)?;
    let data = match serde_json::from_str(&data) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let subscriber = match r.get::<_, Option<String>>(8)? {
        Some(_) => Some(SubscriberProfile {
            email: r.get(9)?,
            first_name: r.get(10)?,
            last_name: r.get(11)?,
            display_name: r.get(12)?,
            job_title: r.get(13)?,
            timezone: r.get(14)?,
            country: r.get(15)?,
            region: r.get(16)?,
            company_name: r.get(17)?,
        }),
        None => None,
    };
    Ok(Resource {
        id: ResourceId(uuid_col(r, 0)?),
        project_id: ProjectId(uuid_col(r, 1)?),
        kind: ResourceKind::parse(&kind).ok_or_else(|| bad(2, "kind"))?,
        name: r.get(3)?,
        display_name: r.get(4)?,
        created_at: UnixTime(r.get(6)?),
        updated_at: UnixTime(r.get(7)?),
        subscriber,
        data,
    })
}

pub(crate) const ADDRESS_COLS: &str =
    "id, project_id, resource_id, kind, name, display_name, locked, cover_url, preview_url, created_at";

pub(crate) fn address_row(r: &Row<'_>) -> rusqlite::Result<Address> {
    let kind: String = r.get(3)?;
    Ok(Address {
        id: AddressId(uuid_col(r, 0)?),
        project_id: ProjectId(uuid_col(r, 1)?),
        resource_id: ResourceId(uuid_col(r, 2)?),
        kind: ResourceKind::parse(&kind).ok_or_else(|| bad(3, "kind"))?,
        name: r.get(4)?,
        display_name: r.get(5)?,
        locked: r.get(6)?,
        cover_url: r.get(7)?,
        preview_url: r.get(8)?,
        created_at: UnixTime(r.get(9)?),
    })
}

pub(crate) const FAMILY_COLS: &str =
    "id, project_id, kind, subject, generation, created_at, expires_at, rotated_at, revoked_at, tokens_expire_at";

pub(crate) fn family_row(r: &Row<'_>) -> rusqlite::Result<Family> {
    let kind: String = r.get(2)?;
    Ok(Family {
        id: FamilyId(uuid_col(r, 0)?),
        project_id: ProjectId(uuid_col(r, 1)?),
        kind: PrincipalKind::parse(&kind).ok_or_else(|| bad(2, "kind"))?,
        subject: uuid_col(r, 3)?,
        generation: r.get(4)?,
        created_at: UnixTime(r.get(5)?),
        expires_at: UnixTime(r.get(6)?),
        rotated_at: opt_time(r, 7)?,
        revoked_at: opt_time(r, 8)?,
        tokens_expire_at: UnixTime(r.get(9)?),
    })
}

pub(crate) fn embed_row(r: &Row<'_>) -> rusqlite::Result<Embed> {
    let addrs: String = r.get(3)?;
    let addrs: Vec<String> = serde_json::from_str(&addrs).map_err(|_| bad(3, "addresses"))?;
    let addresses = addrs
        .iter()
        .map(|a| a.parse().map_err(|_| bad(3, "address")))
        .collect::<rusqlite::Result<Vec<AddressId>>>()?;
    Ok(Embed {
        id: EmbedId(uuid_col(r, 0)?),
        project_id: ProjectId(uuid_col(r, 1)?),
        token_hash: hash_col(r, 2)?,
        addresses,
        enabled: r.get(4)?,
        created_at: UnixTime(r.get(5)?),
    })
}

pub(crate) fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let project: Option<String> = r.get(1)?;
    let detail: String = r.get(5)?;
    Ok(AuditEvent {
        at: UnixTime(r.get(0)?),
        project_id: project.and_then(|p| p.parse().ok()),
        action: r.get(2)?,
        actor: r.get(3)?,
        subject: r.get(4)?,
        detail: match serde_json::from_str(&detail) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        },
    })
}
