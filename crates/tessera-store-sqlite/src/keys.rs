//! [`KeyStore`] on SQLite: keys and the master-key check.

use super::*;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.read("list_keys", |c| {
            let mut st = c.prepare_cached(
                "SELECT kid, purpose, state, wrapped, created_at, activated_at, retired_at, sealed
                 FROM keys ORDER BY created_at, kid",
            )?;
            let rows = st.query_map([], key_row)?;
            rows.collect()
        })
        .await
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<()> {
        self.write("insert_key", move |c| {
            c.execute(
                "INSERT INTO keys (kid, purpose, state, wrapped, created_at, activated_at, retired_at, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.kid,
                    key.purpose.as_str(),
                    key.state.as_str(),
                    key.wrapped,
                    key.created_at.0,
                    key.activated_at.map(|t| t.0),
                    key.retired_at.map(|t| t.0),
                    key.sealed
                ],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn activate_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let kid = kid.to_string();
        self.write("activate_key", move |c| {
            let purpose: String = c
                .query_row(
                    "SELECT purpose FROM keys WHERE kid = ?1 AND state = 'pending'",
                    [&kid],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            c.execute(
                "UPDATE keys SET state = 'retired', retired_at = ?2 WHERE purpose = ?1 AND state = 'active'",
                params![purpose, at.0],
            )
            .map_err(map_err)?;
            c.execute(
                "UPDATE keys SET state = 'active', activated_at = ?2 WHERE kid = ?1",
                params![kid, at.0],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn retire_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let kid = kid.to_string();
        self.write("retire_key", move |c| {
            let n = c
                .execute(
                    "UPDATE keys SET state = 'retired', retired_at = ?2
                     WHERE kid = ?1 AND state IN ('pending', 'active')",
                    params![kid, at.0],
                )
                .map_err(map_err)?;
            found(n)
        })
        .await
    }

    async fn destroy_key(&self, kid: &str) -> StoreResult<()> {
        let kid = kid.to_string();
        self.write("destroy_key", move |c| {
            let n = c
                .execute(
                    "UPDATE keys SET state = 'destroyed', wrapped = x'' WHERE kid = ?1 AND state != 'destroyed'",
                    [&kid],
                )
                .map_err(map_err)?;
            found(n)
        })
        .await
    }

    async fn add_seal_counts(&self, counts: Vec<(String, u64)>) -> StoreResult<()> {
        self.write("add_seal_counts", move |c| {
            let mut st = c
                .prepare_cached("UPDATE keys SET sealed = sealed + ?2 WHERE kid = ?1")
                .map_err(map_err)?;
            for (kid, n) in &counts {
                st.execute(params![kid, *n as i64]).map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn master_key_check(&self) -> StoreResult<Option<MasterKeyCheck>> {
        self.read("master_key_check", |c| {
            c.prepare_cached("SELECT value, recorded_at FROM master_key_check WHERE id = 1")?
                .query_row([], check_row)
                .optional()
        })
        .await
    }

    async fn record_master_key_check(&self, check: MasterKeyCheck) -> StoreResult<MasterKeyCheck> {
        self.write("record_master_key_check", move |c| {
            c.execute(
                "INSERT INTO master_key_check (id, value, recorded_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
                params![check.value.to_vec(), check.recorded_at.0],
            )
            .map_err(map_err)?;
            c.query_row(
                "SELECT value, recorded_at FROM master_key_check WHERE id = 1",
                [],
                check_row,
            )
            .map_err(map_err)
        })
        .await
    }
}
