//! [`KeyStore`] on PostgreSQL: keys and the master-key check.

use super::*;

#[async_trait]
impl KeyStore for PgStore {
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.fetch_all(
            "list_keys",
            concat!(
                "SELECT ",
                key_cols!(),
                " FROM keys ORDER BY created_at, kid"
            ),
            &[],
            key_row,
        )
        .await
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<()> {
        self.execute(
            "insert_key",
            concat!(
                "INSERT INTO keys (",
                key_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &key.kid,
                &key.purpose.as_str(),
                &key.state.as_str(),
                &key.wrapped,
                &key.created_at.0,
                &key.activated_at.map(|t| t.0),
                &key.retired_at.map(|t| t.0),
                &key.sealed,
            ],
        )
        .await
        .map(drop)
    }

    async fn activate_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let _t = self.time("activate_key");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            st.execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])
                .await?;
            let row = st
                .query_opt(
                    &tx,
                    "SELECT purpose FROM keys WHERE kid = $1 AND state = 'pending' FOR UPDATE",
                    &[&kid],
                )
                .await?;
            let Some(row) = row else {
                return Err(Fail::Store(StoreError::NotFound));
            };
            let purpose: String = row.try_get(0)?;
            st.execute(
                &tx,
                "UPDATE keys SET state = 'retired', retired_at = $2
                 WHERE purpose = $1 AND state = 'active'",
                &[&purpose, &at.0],
            )
            .await?;
            st.execute(
                &tx,
                "UPDATE keys SET state = 'active', activated_at = $2 WHERE kid = $1",
                &[&kid, &at.0],
            )
            .await?;
        });
        db.finish(r)
    }

    async fn retire_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let n = self
            .execute(
                "retire_key",
                "UPDATE keys SET state = 'retired', retired_at = $2
                 WHERE kid = $1 AND state IN ('pending', 'active')",
                &[&kid, &at.0],
            )
            .await?;
        found(n)
    }

    async fn destroy_key(&self, kid: &str) -> StoreResult<()> {
        let n = self
            .execute(
                "destroy_key",
                "UPDATE keys SET state = 'destroyed', wrapped = ''::bytea
                 WHERE kid = $1 AND state <> 'destroyed'",
                &[&kid],
            )
            .await?;
        found(n)
    }

    async fn add_seal_counts(&self, counts: Vec<(String, u64)>) -> StoreResult<()> {
        let _t = self.time("add_seal_counts");
        // One update per key, in kid order: two nodes flushing counts for the same keys then
        // lock the rows in the same order and cannot deadlock.
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for (kid, n) in counts {
            let sum = sums.entry(kid).or_default();
            *sum = sum.saturating_add(n.min(i64::MAX as u64) as i64);
        }
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            for (kid, n) in &sums {
                st.execute(
                    &tx,
                    "UPDATE keys SET sealed = sealed + $2 WHERE kid = $1",
                    &[kid, n],
                )
                .await?;
            }
        });
        db.finish(r)
    }

    async fn master_key_check(&self) -> StoreResult<Option<MasterKeyCheck>> {
        self.fetch_maybe(
            "master_key_check",
            "SELECT value, recorded_at FROM master_key_check WHERE id = 1",
            &[],
            check_row,
        )
        .await
    }

    async fn record_master_key_check(&self, check: MasterKeyCheck) -> StoreResult<MasterKeyCheck> {
        self.execute(
            "record_master_key_check",
            "INSERT INTO master_key_check (id, value, recorded_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&check.value.as_slice(), &check.recorded_at.0],
        )
        .await?;
        // A separate statement: it sees the row a concurrent first writer committed, which the
        // insert's own snapshot may not.
        self.fetch_one(
            "master_key_check",
            "SELECT value, recorded_at FROM master_key_check WHERE id = 1",
            &[],
            check_row,
        )
        .await
    }
}

/// Advisory lock serialising key activations, so that two nodes activating two keys of one
/// purpose at once cannot both leave theirs active.
const KEY_LOCK: i64 = 0x0174_6573_7365_7261;
