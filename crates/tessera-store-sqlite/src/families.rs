//! [`FamilyStore`] on SQLite: grants and token families.

use super::*;

#[async_trait]
impl FamilyStore for SqliteStore {
    async fn grant_subscriber(&self, grant: GrantWrite) -> StoreResult<ResourceId> {
        self.write("grant_subscriber", move |c| {
            let key = identity_key(&grant.upsert.reference);
            let existing = find_subscriber_id(c, grant.project, &key).map_err(map_err)?;
            let id = match existing {
                Some(id) => {
                    let id = ResourceId(id.parse().map_err(unavailable)?);
                    if grant.upsert.changes_existing() {
                        update_subscriber_row(
                            c,
                            grant.project,
                            id,
                            &grant.upsert.patch,
                            grant.upsert.password_hash.as_deref(),
                            grant.at,
                        )
                        .map_err(map_err)?;
                    }
                    if grant.upsert.password_hash.is_some() {
                        revoke_subject(c, grant.project, id, grant.at).map_err(map_err)?;
                    }
                    id
                }
                None => {
                    insert_resource(c, &grant.upsert.create, Some(&grant.upsert.reference))
                        .map_err(map_err)?;
                    grant.upsert.create.resource.id
                }
            };
            let family = Family {
                subject: id.0,
                ..grant.family.clone()
            };
            insert_family(c, &family).map_err(map_err)?;
            Ok(id)
        })
        .await
    }

    async fn create_family(&self, family: Family) -> StoreResult<()> {
        self.write("create_family", move |c| {
            insert_family(c, &family).map_err(map_err)
        })
        .await
    }

    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()> {
        self.write("insert_families", move |c| {
            families
                .iter()
                .try_for_each(|f| insert_family(c, f))
                .map_err(map_err)
        })
        .await
    }

    async fn get_family(&self, id: FamilyId) -> StoreResult<Family> {
        self.read("get_family", move |c| {
            c.prepare_cached(&format!("SELECT {FAMILY_COLS} FROM families WHERE id = ?1"))?
                .query_row([id.to_string()], family_row)
        })
        .await
    }

    async fn rotate_family(&self, rotation: Rotation) -> StoreResult<RotateOutcome> {
        let Rotation { project, id, .. } = rotation;
        self.write("rotate_family", move |c| {
            // The conditional update is the whole race: only the request that still sees the
            // generation it spends advances it. The writer thread serialises it anyway, but the
            // statement stays correct on a backend with concurrent writers.
            let n = c
                .prepare_cached(
                    "UPDATE families SET generation = generation + 1, rotated_at = ?4,
                         tokens_expire_at = MIN(?5, expires_at)
                     WHERE id = ?1 AND project_id = ?2 AND generation = ?3
                       AND revoked_at IS NULL AND expires_at > ?4",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id.to_string(),
                        project.to_string(),
                        rotation.generation,
                        rotation.at.0,
                        rotation.tokens_expire_at.0
                    ])
                })
                .map_err(map_err)?;
            let fam = c
                .prepare_cached(&format!(
                    "SELECT {FAMILY_COLS} FROM families WHERE id = ?1 AND project_id = ?2"
                ))
                .and_then(|mut st| {
                    st.query_row(params![id.to_string(), project.to_string()], family_row)
                        .optional()
                })
                .map_err(map_err)?;
            Ok(match fam {
                None => RotateOutcome::NotFound,
                Some(f) if n == 1 => RotateOutcome::Rotated(f),
                Some(f) if f.revoked_at.is_some() || f.expires_at <= rotation.at => {
                    RotateOutcome::Dead
                }
                Some(f) => RotateOutcome::Stale(f),
            })
        })
        .await
    }

    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()> {
        self.write("revoke_family", move |c| {
            c.execute(
                "UPDATE families SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.to_string(), at.0],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts> {
        self.write("purge", move |c| {
            // Families whose newest token has expired can never be used again; revoked ones
            // answer "inactive" just as well once deleted, but they are kept until their
            // tokens expire so that reuse of a revoked chain still reads as reuse in logs.
            // Each DELETE takes at most `limit` rows through its index (see `FamilyStore::purge`).
            let delete = |sql: &str, before: i64| -> StoreResult<u64> {
                c.prepare_cached(sql)
                    .and_then(|mut st| st.execute(params![before, request.limit]))
                    .map(|n| n as u64)
                    .map_err(map_err)
            };
            let families = delete(
                "DELETE FROM families WHERE id IN
                     (SELECT id FROM families WHERE tokens_expire_at < ?1 LIMIT ?2)",
                request.before.0,
            )?;
            let sessions = delete(
                "DELETE FROM operator_sessions WHERE hash IN
                     (SELECT hash FROM operator_sessions WHERE expires_at < ?1 LIMIT ?2)",
                request.before.0,
            )?;
            let audit_events = match request.audit_before {
                Some(before) => delete(
                    "DELETE FROM audit_events WHERE seq IN
                         (SELECT seq FROM audit_events WHERE at < ?1 LIMIT ?2)",
                    before.0,
                )?,
                None => 0,
            };
            let keys_destroyed = c
                .execute(
                    "UPDATE keys SET state = 'destroyed', wrapped = x''
                     WHERE state = 'retired' AND retired_at < ?1",
                    [request.retired_before.0],
                )
                .map_err(map_err)? as u64;
            Ok(PurgeCounts {
                families,
                sessions,
                audit_events,
                keys_destroyed,
            })
        })
        .await
    }

    async fn count_families(&self) -> StoreResult<u64> {
        self.read("count_families", |c| {
            c.query_row("SELECT COUNT(*) FROM families", [], |r| r.get::<_, i64>(0))
        })
        .await
        .map(|n| n as u64)
    }
}

fn insert_family(conn: &Connection, f: &Family) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO families (id, project_id, kind, subject, generation, created_at, expires_at, rotated_at, revoked_at, tokens_expire_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        f.id.to_string(),
        f.project_id.to_string(),
        f.kind.as_str(),
        f.subject.to_string(),
        f.generation,
        f.created_at.0,
        f.expires_at.0,
        f.rotated_at.map(|t| t.0),
        f.revoked_at.map(|t| t.0),
        f.stored_tokens_expire_at().0
    ])?;
    Ok(())
}

/// The subscriber a grant's reference names: by reference first, then by email, then by id.
/// Three point lookups on their own indexes; one `OR` of the three made SQLite scan the
/// project's subscribers, which grew with every new reference.
fn find_subscriber_id(
    conn: &Connection,
    project: ProjectId,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    const LOOKUPS: [&str; 3] = [
        "SELECT id FROM subscribers WHERE project_id = ?1 AND reference_key = ?2",
        "SELECT id FROM subscribers WHERE project_id = ?1 AND email_key = ?2",
        "SELECT id FROM subscribers WHERE project_id = ?1 AND id = ?2",
    ];
    let project = project.to_string();
    // Only a UUID can name a subscriber by id: other references skip that lookup.
    let lookups = if key.parse::<uuid::Uuid>().is_ok() {
        &LOOKUPS[..]
    } else {
        &LOOKUPS[..2]
    };
    for sql in lookups {
        let found = conn
            .prepare_cached(sql)?
            .query_row(params![project, key], |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
