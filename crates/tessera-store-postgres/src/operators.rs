//! [`OperatorStore`] on PostgreSQL: operators and their sessions.

use super::*;

#[async_trait]
impl OperatorStore for PgStore {
    async fn create_operator(&self, op: Operator) -> StoreResult<()> {
        self.execute(
            "create_operator",
            "INSERT INTO operators (id, username, username_key, domain, kind, role,
                 password_hash, api_key_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &op.id.0,
                &op.username,
                &identity_key(&op.username),
                &op.domain,
                &op.kind.as_str(),
                &op.role.as_str(),
                &op.password_hash,
                &op.api_key_hash.as_ref().map(|h| &h[..]),
                &op.disabled,
                &op.created_at.0,
            ],
        )
        .await
        .map(drop)
        // As in the SQLite store, any constraint the new row breaks reads as a taken name.
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("username".into()),
            other => other,
        })
    }

    async fn get_operator(&self, id: OperatorId) -> StoreResult<Operator> {
        self.fetch_one(
            "get_operator",
            concat!("SELECT ", operator_cols!(), " FROM operators WHERE id = $1"),
            &[&id.0],
            operator_row,
        )
        .await
    }

    async fn find_operator(&self, username: &str) -> StoreResult<Option<Operator>> {
        self.fetch_maybe(
            "find_operator",
            concat!(
                "SELECT ",
                operator_cols!(),
                " FROM operators WHERE username_key = $1"
            ),
            &[&identity_key(username)],
            operator_row,
        )
        .await
    }

    async fn find_operator_by_key(&self, hash: [u8; 32]) -> StoreResult<Option<Operator>> {
        self.fetch_maybe(
            "find_operator_by_key",
            concat!(
                "SELECT ",
                operator_cols!(),
                " FROM operators WHERE api_key_hash = $1"
            ),
            &[&&hash[..]],
            operator_row,
        )
        .await
    }

    async fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        self.fetch_all(
            "list_operators",
            concat!(
                "SELECT ",
                operator_cols!(),
                " FROM operators ORDER BY created_at, id"
            ),
            &[],
            operator_row,
        )
        .await
    }

    async fn update_operator(&self, id: OperatorId, patch: OperatorPatch) -> StoreResult<Operator> {
        let _t = self.time("update_operator");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let row = st
                .query_opt(
                    &tx,
                    concat!(
                        "UPDATE operators SET disabled = COALESCE($2, disabled),
                             role = COALESCE($3, role)
                         WHERE id = $1 RETURNING ",
                        operator_cols!()
                    ),
                    &[&id.0, &patch.disabled, &patch.role.map(Role::as_str)],
                )
                .await?;
            let op = one(row, operator_row)?;
            if patch.disabled == Some(true) {
                st.execute(
                    &tx,
                    "DELETE FROM operator_sessions WHERE operator_id = $1",
                    &[&id.0],
                )
                .await?;
            }
            op
        });
        db.finish(r)
    }

    async fn set_operator_password(&self, id: OperatorId, hash: String) -> StoreResult<()> {
        // Like the SQLite store: no error for an unknown operator.
        self.execute(
            "set_operator_password",
            "UPDATE operators SET password_hash = $2 WHERE id = $1",
            &[&id.0, &hash],
        )
        .await
        .map(drop)
    }

    async fn delete_operator(&self, id: OperatorId) -> StoreResult<()> {
        // Its sessions go with it (ON DELETE CASCADE).
        let n = self
            .execute(
                "delete_operator",
                "DELETE FROM operators WHERE id = $1",
                &[&id.0],
            )
            .await?;
        found(n)
    }

    async fn create_operator_session(&self, s: OperatorSession) -> StoreResult<()> {
        self.execute(
            "create_operator_session",
            concat!(
                "INSERT INTO operator_sessions (",
                operator_session_cols!(),
                ") VALUES ($1, $2, $3, $4)"
            ),
            &[
                &&s.hash[..],
                &s.operator_id.0,
                &s.created_at.0,
                &s.expires_at.0,
            ],
        )
        .await
        .map(drop)
    }

    async fn find_operator_session(&self, hash: [u8; 32]) -> StoreResult<Option<OperatorSession>> {
        self.fetch_maybe(
            "find_operator_session",
            concat!(
                "SELECT ",
                operator_session_cols!(),
                " FROM operator_sessions WHERE hash = $1"
            ),
            &[&&hash[..]],
            operator_session_row,
        )
        .await
    }

    async fn delete_operator_session(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.execute(
            "delete_operator_session",
            "DELETE FROM operator_sessions WHERE hash = $1",
            &[&&hash[..]],
        )
        .await
        .map(drop)
    }
}
