-- families(project_id) duplicated the leading column of families_subject(project_id, subject):
-- every family insert paid for a fifth B-tree that no query needed.
DROP INDEX IF EXISTS families_project;
