-- families(project_id, subject) serves one query: revoking a subscriber's families when its
-- password changes or it is deleted. Guest, invite and embed families have fresh random
-- subjects that nothing looks up, so only subscriber families are indexed now: one index
-- entry fewer per guest, invite and embed grant. Deleting a project scans families instead.
DROP INDEX IF EXISTS families_subject;
CREATE INDEX families_subscriber ON families(project_id, subject) WHERE kind = 'subscriber';
