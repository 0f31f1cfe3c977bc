//! [`AuditStore`] on PostgreSQL: the audit log.

use super::*;

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        let mut at = Vec::with_capacity(events.len());
        let mut project = Vec::with_capacity(events.len());
        let mut action = Vec::with_capacity(events.len());
        let mut actor = Vec::with_capacity(events.len());
        let mut subject = Vec::with_capacity(events.len());
        let mut detail = Vec::with_capacity(events.len());
        for e in events {
            at.push(e.at.0);
            project.push(e.project_id.map(|p| p.0));
            action.push(e.action);
            actor.push(e.actor);
            subject.push(e.subject);
            detail.push(serde_json::Value::Object(e.detail));
        }
        // One statement for the whole batch; rows are numbered in the order given.
        self.execute(
            "append_audit",
            "INSERT INTO audit_events (at, project_id, action, actor, subject, detail)
             SELECT at, project_id, action, actor, subject, detail
             FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::json[])
                  WITH ORDINALITY AS e(at, project_id, action, actor, subject, detail, ord)
             ORDER BY ord",
            &[&at, &project, &action, &actor, &subject, &detail],
        )
        .await
        .map(drop)
    }

    async fn audit_events(
        &self,
        filter: AuditFilter,
        page: AuditPage,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.fetch_all(
            "audit_events",
            concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_events
                 WHERE at >= $1 AND ($2::uuid IS NULL OR project_id = $2)
                 ORDER BY seq LIMIT $3 OFFSET $4"
            ),
            &[
                &filter.since.0,
                &filter.project.map(|p| p.0),
                &(page.limit as i64),
                &(page.offset.min(i64::MAX as u64) as i64),
            ],
            audit_row,
        )
        .await
    }

    async fn count_audit_events(&self, filter: AuditFilter) -> StoreResult<u64> {
        self.fetch_one(
            "count_audit_events",
            "SELECT COUNT(*) FROM audit_events
             WHERE at >= $1 AND ($2::uuid IS NULL OR project_id = $2)",
            &[&filter.since.0, &filter.project.map(|p| p.0)],
            count_row,
        )
        .await
    }
}
