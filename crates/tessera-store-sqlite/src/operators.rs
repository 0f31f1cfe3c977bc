//! [`OperatorStore`] on SQLite: operators and their sessions.

use super::*;

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn create_operator(&self, op: Operator) -> StoreResult<()> {
        self.write("create_operator", move |c| {
            c.execute(
                "INSERT INTO operators (id, username, username_key, domain, kind, role,
                     password_hash, api_key_hash, disabled, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    op.id.to_string(),
                    op.username,
                    identity_key(&op.username),
                    op.domain,
                    op.kind.as_str(),
                    op.role.as_str(),
                    op.password_hash,
                    op.api_key_hash.as_ref().map(|h| &h[..]),
                    op.disabled,
                    op.created_at.0
                ],
            )
            .map(|_| ())
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict("username".into()),
                other => other,
            })
        })
        .await
    }

    async fn get_operator(&self, id: OperatorId) -> StoreResult<Operator> {
        self.read("get_operator", move |c| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators WHERE id = ?1"
            ))?
            .query_row([id.to_string()], operator_row)
        })
        .await
    }

    async fn find_operator(&self, username: &str) -> StoreResult<Option<Operator>> {
        let key = identity_key(username);
        self.read("find_operator", move |c| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators WHERE username_key = ?1"
            ))?
            .query_row([key], operator_row)
            .optional()
        })
        .await
    }

    async fn find_operator_by_key(&self, hash: [u8; 32]) -> StoreResult<Option<Operator>> {
        self.read("find_operator_by_key", move |c| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators WHERE api_key_hash = ?1"
            ))?
            .query_row([&hash[..]], operator_row)
            .optional()
        })
        .await
    }

    async fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        self.read("list_operators", |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([], operator_row)?;
            rows.collect()
        })
        .await
    }

    async fn update_operator(&self, id: OperatorId, patch: OperatorPatch) -> StoreResult<Operator> {
        self.write("update_operator", move |c| {
            let id = id.to_string();
            let n = c
                .execute(
                    "UPDATE operators SET disabled = COALESCE(?2, disabled), role = COALESCE(?3, role)
                     WHERE id = ?1",
                    params![id, patch.disabled, patch.role.map(Role::as_str)],
                )
                .map_err(map_err)?;
            found(n)?;
            if patch.disabled == Some(true) {
                c.execute("DELETE FROM operator_sessions WHERE operator_id = ?1", [&id])
                    .map_err(map_err)?;
            }
            c.query_row(
                &format!("SELECT {OPERATOR_COLS} FROM operators WHERE id = ?1"),
                [&id],
                operator_row,
            )
            .map_err(map_err)
        })
        .await
    }

    async fn set_operator_password(&self, id: OperatorId, hash: String) -> StoreResult<()> {
        self.write("set_operator_password", move |c| {
            c.execute(
                "UPDATE operators SET password_hash = ?2 WHERE id = ?1",
                params![id.to_string(), hash],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn delete_operator(&self, id: OperatorId) -> StoreResult<()> {
        self.write("delete_operator", move |c| {
            let n = c
                .execute("DELETE FROM operators WHERE id = ?1", [id.to_string()])
                .map_err(map_err)?;
            found(n)
        })
        .await
    }

    async fn create_operator_session(&self, s: OperatorSession) -> StoreResult<()> {
        self.write("create_operator_session", move |c| {
            c.prepare_cached(
                "INSERT INTO operator_sessions (hash, operator_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    &s.hash[..],
                    s.operator_id.to_string(),
                    s.created_at.0,
                    s.expires_at.0
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn find_operator_session(&self, hash: [u8; 32]) -> StoreResult<Option<OperatorSession>> {
        self.read("find_operator_session", move |c| {
            c.prepare_cached(
                "SELECT hash, operator_id, created_at, expires_at FROM operator_sessions WHERE hash = ?1",
            )?
            .query_row([&hash[..]], operator_session_row)
            .optional()
        })
        .await
    }

    async fn delete_operator_session(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.write("delete_operator_session", move |c| {
            c.execute("DELETE FROM operator_sessions WHERE hash = ?1", [&hash[..]])
                .map(|_| ())
                .map_err(map_err)
        })
        .await
    }
}
