//! [`AuditStore`] on SQLite: the audit log.

use super::*;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        self.write("append_audit", move |c| {
            let mut st = c
                .prepare_cached(
                    "INSERT INTO audit_events (at, project_id, action, actor, subject, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(map_err)?;
            for e in &events {
                st.execute(params![
                    e.at.0,
                    e.project_id.map(|p| p.to_string()),
                    e.action,
                    e.actor,
                    e.subject,
                    serde_json::to_string(&e.detail).map_err(unavailable)?
                ])
                .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_events(
        &self,
        filter: AuditFilter,
        page: AuditPage,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.read("audit_events", move |c| {
            let mut st = c.prepare_cached(
                "SELECT at, project_id, action, actor, subject, detail FROM audit_events
                 WHERE at >= ?1 AND (?2 IS NULL OR project_id = ?2)
                 ORDER BY seq LIMIT ?3 OFFSET ?4",
            )?;
            let rows = st.query_map(
                params![
                    filter.since.0,
                    filter.project.map(|p| p.to_string()),
                    page.limit as i64,
                    page.offset.min(i64::MAX as u64) as i64
                ],
                audit_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn count_audit_events(&self, filter: AuditFilter) -> StoreResult<u64> {
        self.read("count_audit_events", move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit_events WHERE at >= ?1 AND (?2 IS NULL OR project_id = ?2)",
                params![filter.since.0, filter.project.map(|p| p.to_string())],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
        .await
    }
}
