//! [`FamilyStore`] on PostgreSQL: grants and token families.

use super::*;

#[async_trait]
impl FamilyStore for PgStore {
    async fn grant_subscriber(&self, grant: GrantWrite) -> StoreResult<ResourceId> {
        let GrantWrite {
            project,
            upsert,
            family,
            at,
        } = grant;
        let _t = self.time("grant_subscriber");
        let key = identity_key(&upsert.reference);
        // The reference may be the subscriber id itself; ids are stored as UUID, so it is
        // compared only when it is one in canonical form (SQLite compares the text).
        let key_id = key
            .parse::<ResourceId>()
            .ok()
            .filter(|id| id.to_string() == key)
            .map(|id| id.0);
        let mut db = self.db().await?;
        // A reference match wins over an email match, which wins over an id match: three
        // point lookups, each on its own index. One statement with an OR of the three ran as a
        // prepared statement, whose generic plan (chosen while the table was small) scanned
        // every subscriber of the project.
        const BY_REFERENCE: &str =
            "SELECT id FROM subscribers WHERE project_id = $1 AND reference_key = $2";
        const BY_EMAIL: &str =
            "SELECT id FROM subscribers WHERE project_id = $1 AND email_key = $2";
        const BY_ID: &str = "SELECT id FROM subscribers WHERE project_id = $1 AND id = $2";
        let r = retrying!(db, |client, st| {
            // The look-ups run outside a transaction: inside one (read committed) they
            // locked nothing either, and a subscriber created meanwhile makes the insert
            // below fail on a unique index, after which the whole grant runs again.
            let lookups: [Option<(&'static str, &(dyn ToSql + Sync))>; 3] = [
                Some((BY_REFERENCE, &key)),
                Some((BY_EMAIL, &key)),
                key_id.as_ref().map(|id| (BY_ID, id as &(dyn ToSql + Sync))),
            ];
            let mut existing = None;
            for (sql, value) in lookups.into_iter().flatten() {
                existing = st.query_opt(&*client, sql, &[&project.0, value]).await?;
                if existing.is_some() {
                    break;
                }
            }
            let Some(row) = existing else {
                // A new subscriber is one statement, so one round trip and its own
                // transaction, instead of a transaction of six (begin, four inserts,
                // commit): round trips are what limits this grant on PostgreSQL.
                let family = Family {
                    subject: upsert.create.resource.id.0,
                    ..family.clone()
                };
                insert_resource(
                    &*client,
                    st,
                    &upsert.create,
                    Some(&upsert.reference),
                    Some(&family),
                )
                .await
                .map_err(Fail::raced)?;
                return Ok(upsert.create.resource.id);
            };
            let id = ResourceId(row.try_get(0)?);
            let family = Family {
                subject: id.0,
                ..family.clone()
            };
            // Nothing to write about the subscriber: the grant is the family's insert alone,
            // one statement instead of a transaction of four round trips.
            if !upsert.changes_existing() {
                insert_family(&*client, st, &family).await?;
                return Ok(id);
            }
            let tx = client.transaction().await?;
            update_subscriber_row(
                &tx,
                st,
                project,
                id,
                &upsert.patch,
                upsert.password_hash.as_deref(),
                at,
            )
            .await?;
            if upsert.password_hash.is_some() {
                revoke_subject(&tx, st, project, id, at).await?;
            }
            insert_family(&tx, st, &family).await?;
            tx.commit().await?;
            Ok(id)
        });
        db.finish(r)
    }

    async fn create_family(&self, family: Family) -> StoreResult<()> {
        let _t = self.time("create_family");
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Unavailable("the family writer has stopped".into());
        self.families
            .send((family, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()> {
        let _t = self.time("insert_families");
        insert_family_rows(&self.pool, &families).await
    }

    async fn get_family(&self, id: FamilyId) -> StoreResult<Family> {
        self.fetch_one(
            "get_family",
            concat!("SELECT ", family_cols!(), " FROM families WHERE id = $1"),
            &[&id.0],
            family_row,
        )
        .await
    }

    async fn rotate_family(&self, rotation: Rotation) -> StoreResult<RotateOutcome> {
        let _t = self.time("rotate_family");
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Unavailable("the rotation writer has stopped".into());
        let job = RotateJob { rotation, reply };
        self.rotations.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()> {
        self.execute(
            "revoke_family",
            "UPDATE families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id.0, &at.0],
        )
        .await
        .map(drop)
    }

    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts> {
        let _t = self.time("purge");
        let limit = i64::from(request.limit);
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let bounded: [&(dyn ToSql + Sync); 2] = [&request.before.0, &limit];
            let families = st.execute(&tx, PURGE_FAMILIES, &bounded).await?;
            let sessions = st.execute(&tx, PURGE_SESSIONS, &bounded).await?;
            let audit_events = match request.audit_before {
                Some(before) => st.execute(&tx, PURGE_AUDIT, &[&before.0, &limit]).await?,
                None => 0,
            };
            let keys_destroyed = st
                .execute(
                    &tx,
                    "UPDATE keys SET state = 'destroyed', wrapped = ''::bytea
                     WHERE state = 'retired' AND retired_at < $1",
                    &[&request.retired_before.0],
                )
                .await?;
            PurgeCounts {
                families,
                sessions,
                audit_events,
                keys_destroyed,
            }
        });
        db.finish(r)
    }

    async fn count_families(&self) -> StoreResult<u64> {
        self.fetch_one(
            "count_families",
            "SELECT COUNT(*) FROM families",
            &[],
            count_row,
        )
        .await
    }
}

// Families whose newest token has expired can never be used again; revoked ones are kept
// until their tokens expire so that reuse of a revoked chain still reads as reuse in logs. Each
// DELETE takes at most `$2` rows through its index (see `FamilyStore::purge`). Every node
// purges; SKIP LOCKED lets nodes that purge at the same time take different rows instead of
// queueing on each other's row locks.
const PURGE_FAMILIES: &str = "DELETE FROM families WHERE id IN
    (SELECT id FROM families WHERE tokens_expire_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Expired operator sessions, as [`PURGE_FAMILIES`] deletes families.
const PURGE_SESSIONS: &str = "DELETE FROM operator_sessions WHERE hash IN
    (SELECT hash FROM operator_sessions WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
/// Audit events older than the retention, as [`PURGE_FAMILIES`] deletes families.
const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE seq IN
    (SELECT seq FROM audit_events WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// A family to insert and where its result goes.
pub(crate) type FamilyJob = (Family, tokio::sync::oneshot::Sender<StoreResult<()>>);

/// The most families one statement inserts.
const FAMILY_BATCH: usize = 256;

/// Group commit for grants on PostgreSQL: takes every queued [`FamilyStore::create_family`], inserts
/// them with one statement in one transaction, and answers each caller after the commit.
/// Guest, invite and embed grants are one insert each; one statement and one commit per
/// grant made PostgreSQL's per-statement and per-commit work the limit, and sharing them
/// lets one WAL flush cover a batch. While a batch commits the next one gathers. Should a
/// batch fail (a family of a project deleted meanwhile), its families are retried one by one
/// so that each caller gets its own answer.
pub(crate) async fn family_batches(
    pool: Arc<Pool>,
    mut queue: tokio::sync::mpsc::Receiver<FamilyJob>,
) {
    let mut batch: Vec<FamilyJob> = Vec::with_capacity(FAMILY_BATCH);
    while next_batch(&mut queue, &mut batch, FAMILY_BATCH).await {
        match insert_family_rows(&pool, batch.iter().map(|(f, _)| f)).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            // One family, or no connection (a pool that stayed busy, a server gone): one by one
            // would only fail again, each after its own wait.
            Err(e) if batch.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (family, reply) in batch.drain(..) {
                    let one = insert_family_rows(&pool, [&family]).await;
                    let _ = reply.send(one);
                }
            }
        }
    }
}

/// Inserts families with one `UNNEST` statement (one round trip, autocommitted: all or none).
async fn insert_family_rows<'a>(
    pool: &Pool,
    families: impl IntoIterator<Item = &'a Family>,
) -> StoreResult<()> {
    let mut cols = FamilyColumns::default();
    for f in families {
        cols.push(f);
    }
    let mut db = pool.conn().await?;
    let r = async {
        let (c, st) = db.parts();
        st.execute(
            &*c,
            "INSERT INTO families (id, project_id, kind, subject, generation, created_at,
                 expires_at, rotated_at, revoked_at, tokens_expire_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[],
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])",
            &[
                &cols.id,
                &cols.project_id,
                &cols.kind,
                &cols.subject,
                &cols.generation,
                &cols.created_at,
                &cols.expires_at,
                &cols.rotated_at,
                &cols.revoked_at,
                &cols.tokens_expire_at,
            ],
        )
        .await?;
        Ok(())
    }
    .await;
    db.finish(r)
}

/// A refresh rotation to decide and where its outcome goes.
pub(crate) struct RotateJob {
    rotation: Rotation,
    reply: tokio::sync::oneshot::Sender<StoreResult<RotateOutcome>>,
}

/// Group commit for refresh rotations on PostgreSQL: every queued rotation is tried in one
/// conditional `UPDATE … FROM UNNEST(…)` (one statement, one commit). The condition is the
/// single-row one: the family of that project, at that generation, alive. Rows the statement
/// rotated are answered `Rotated`; the others (a spent generation, a revoked or unknown
/// family) are classified by a fresh read, off this loop. Two rotations of one family in one
/// batch join the same row, which PostgreSQL updates once, so exactly one of them wins; a
/// rotation racing another node's waits for the row lock and re-checks the condition, as the
/// single-row update did.
pub(crate) async fn rotation_batches(
    pool: Arc<Pool>,
    mut queue: tokio::sync::mpsc::Receiver<RotateJob>,
) {
    let mut batch: Vec<RotateJob> = Vec::with_capacity(FAMILY_BATCH);
    while next_batch(&mut queue, &mut batch, FAMILY_BATCH).await {
        let rotated = match rotate_rows(&pool, &batch).await {
            Ok(rotated) => rotated,
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
                continue;
            }
        };
        for (job, family) in batch.drain(..).zip(rotated) {
            match family {
                Some(f) => {
                    let _ = job.reply.send(Ok(RotateOutcome::Rotated(f)));
                }
                None => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let outcome = classify(&pool, job.rotation).await;
                        let _ = job.reply.send(outcome);
                    });
                }
            }
        }
    }
}

/// Spends each job's generation if it is current; returns, job by job, the family as the
/// rotation left it, or `None` where nothing was rotated.
async fn rotate_rows(pool: &Pool, jobs: &[RotateJob]) -> StoreResult<Vec<Option<Family>>> {
    let idx: Vec<i64> = (0..jobs.len() as i64).collect();
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.rotation.id.0).collect();
    let projects: Vec<uuid::Uuid> = jobs.iter().map(|j| j.rotation.project.0).collect();
    let generations: Vec<i64> = jobs.iter().map(|j| j.rotation.generation).collect();
    let ats: Vec<i64> = jobs.iter().map(|j| j.rotation.at.0).collect();
    let expiries: Vec<i64> = jobs.iter().map(|j| j.rotation.tokens_expire_at.0).collect();
    let mut db = pool.conn().await?;
    let r = async {
        let (c, st) = db.parts();
        let rows = st
            .query(
                &*c,
                "UPDATE families AS f SET generation = f.generation + 1, rotated_at = v.at,
                     tokens_expire_at = LEAST(v.tea, f.expires_at)
                 FROM UNNEST($1::int8[], $2::uuid[], $3::uuid[], $4::int8[], $5::int8[],
                     $6::int8[]) AS v(idx, id, project_id, generation, at, tea)
                 WHERE f.id = v.id AND f.project_id = v.project_id
                   AND f.generation = v.generation
                   AND f.revoked_at IS NULL AND f.expires_at > v.at
                 RETURNING f.id, f.project_id, f.kind, f.subject, f.generation, f.created_at,
                     f.expires_at, f.rotated_at, f.revoked_at, f.tokens_expire_at, v.idx",
                &[&idx, &ids, &projects, &generations, &ats, &expiries],
            )
            .await?;
        let mut rotated = vec![None; jobs.len()];
        for row in &rows {
            let idx: i64 = row.try_get(10)?;
            rotated[idx as usize] = Some(family_row(row)?);
        }
        Ok(rotated)
    }
    .await;
    db.finish(r)
}

/// Why a rotation did not happen: the family as it is now (a new statement, so it sees the
/// rotation that beat this one).
async fn classify(pool: &Pool, rotation: Rotation) -> StoreResult<RotateOutcome> {
    let Rotation {
        project, id, at, ..
    } = rotation;
    let mut db = pool.conn().await?;
    let r = async {
        let (c, st) = db.parts();
        let row = st
            .query_opt(
                &*c,
                concat!(
                    "SELECT ",
                    family_cols!(),
                    " FROM families WHERE id = $1 AND project_id = $2"
                ),
                &[&id.0, &project.0],
            )
            .await?;
        Ok(match maybe(row, family_row)? {
            None => RotateOutcome::NotFound,
            Some(f) if f.revoked_at.is_some() || f.expires_at <= at => RotateOutcome::Dead,
            Some(f) => RotateOutcome::Stale(f),
        })
    }
    .await;
    db.finish(r)
}

/// Families as columns, for one `UNNEST` insert of many rows.
#[derive(Default)]
struct FamilyColumns {
    id: Vec<uuid::Uuid>,
    project_id: Vec<uuid::Uuid>,
    kind: Vec<&'static str>,
    subject: Vec<uuid::Uuid>,
    generation: Vec<i64>,
    created_at: Vec<i64>,
    expires_at: Vec<i64>,
    rotated_at: Vec<Option<i64>>,
    revoked_at: Vec<Option<i64>>,
    tokens_expire_at: Vec<i64>,
}

impl FamilyColumns {
    fn push(&mut self, f: &Family) {
        self.id.push(f.id.0);
        self.project_id.push(f.project_id.0);
        self.kind.push(f.kind.as_str());
        self.subject.push(f.subject);
        self.generation.push(f.generation);
        self.created_at.push(f.created_at.0);
        self.expires_at.push(f.expires_at.0);
        self.rotated_at.push(f.rotated_at.map(|t| t.0));
        self.revoked_at.push(f.revoked_at.map(|t| t.0));
        self.tokens_expire_at.push(f.stored_tokens_expire_at().0);
    }
}

async fn insert_family<C: tokio_postgres::GenericClient + Sync>(
    c: &C,
    st: &Statements,
    f: &Family,
) -> Result<(), Fail> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| insert_sql(&[("families", FAMILY_COLUMNS)]));
    st.execute(c, sql, &FamilyValues::new(f).params()).await?;
    Ok(())
}
