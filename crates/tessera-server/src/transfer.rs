//! `tessera admin export` / `import`: a whole installation as JSON lines, to move it from one
//! database to another (SQLite to PostgreSQL, or back).
//!
//! The first line is the header `{"tessera_export": 1, "schema_version": N}`; every other line
//! is one row, `{"table": "…", "row": {…}}`, in the backend-neutral format of
//! [`tessera_core::export`], tables in dependency order. Key material stays wrapped under the
//! master key, so neither command needs the key, and the target must be served with the
//! master key of the source. Import writes everything in one transaction, and only into a
//! database that holds no installation yet.

use std::io::{BufRead, Write};

use serde_json::{json, Map, Value};
use tessera_core::export::{decode_row, export_table, ExportRow, EXPORT_TABLES};
use tessera_core::store::StoreError;

use crate::config::Database;
use crate::startup::{migrate, open_store, StartError};

/// The version of the export format (the header's `tessera_export`).
pub const FORMAT: i64 = 1;

/// What `import` says about the master key.
pub const MASTER_KEY_NOTE: &str = "serve this database with the master key of the installation \
     it was exported from: the imported keys are still wrapped under it";

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The database could not be opened.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A line of the input is not what an export contains.
    #[error("line {line}: {message}")]
    Input {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The input is empty, or there is no database file to export.
    #[error("{0}")]
    Refused(String),
    /// The store refused or failed (a target that is not empty, a row the schema refuses).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Rows per table, as the summaries print them (every table, also empty ones).
fn counts<'a>(tables: impl Iterator<Item = (&'a str, usize)>) -> Value {
    let mut m: Map<String, Value> = EXPORT_TABLES
        .iter()
        .map(|t| (t.name.to_string(), json!(0)))
        .collect();
    for (name, n) in tables {
        let sum = m.get(name).and_then(Value::as_u64).unwrap_or(0) + n as u64;
        m.insert(name.to_string(), json!(sum));
    }
    Value::Object(m)
}

/// Writes an export: the header, then one line per row. Returns `{"exported": {table: rows}}`.
pub fn write_export(
    schema_version: i64,
    tables: Vec<(&'static str, Vec<ExportRow>)>,
    out: &mut dyn Write,
) -> std::io::Result<Value> {
    let summary = counts(tables.iter().map(|(t, rows)| (*t, rows.len())));
    // Written by hand so that `tessera_export` comes first, whatever the map's key order.
    writeln!(
        out,
        r#"{{"tessera_export":{FORMAT},"schema_version":{schema_version}}}"#
    )?;
    for (table, rows) in tables {
        for row in rows {
            // By hand too, so that `table` comes before the row.
            writeln!(
                out,
                r#"{{"table":{},"row":{}}}"#,
                Value::from(table),
                Value::Object(row)
            )?;
        }
    }
    out.flush()?;
    Ok(json!({ "exported": summary }))
}

/// Reads an export made at `schema_version` (the target's), checking the header and every
/// row; returns the rows by table in the order met.
pub fn read_export(
    input: &mut dyn BufRead,
    schema_version: i64,
) -> Result<Vec<(String, Vec<ExportRow>)>, TransferError> {
    let mut tables: Vec<(String, Vec<ExportRow>)> = Vec::new();
    let mut header = false;
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TransferError::Input {
            line: line_no,
            message,
        };
        // The strict reader: a row naming a column twice is refused, not resolved by
        // whichever copy serde_json keeps.
        let v: Value = crate::json_body::parse(line.as_bytes())
            .map_err(|e| bad(format!("not JSON ({e:?})")))?;
        if !header {
            check_header(&v, schema_version).map_err(bad)?;
            header = true;
            continue;
        }
        let Some(obj) = v.as_object().filter(|o| o.len() == 2) else {
            return Err(bad(r#"expected {"table": …, "row": {…}}"#.into()));
        };
        let (Some(name), Some(row)) = (
            obj.get("table").and_then(Value::as_str),
            obj.get("row").and_then(Value::as_object),
        ) else {
            return Err(bad(r#"expected {"table": …, "row": {…}}"#.into()));
        };
        let Some(table) = export_table(name) else {
            return Err(bad(format!("unknown table {name:?}")));
        };
        decode_row(table, row).map_err(bad)?;
        match tables.last_mut() {
            Some((t, rows)) if t == table.name => rows.push(row.clone()),
            _ => tables.push((table.name.to_string(), vec![row.clone()])),
        }
    }
    if !header {
        return Err(TransferError::Refused(
            "the input is empty: expected a Tessera export (from `tessera admin export`)".into(),
        ));
    }
    Ok(tables)
}

/// Checks the header line; the error says what is wrong with it.
fn check_header(v: &Value, schema_version: i64) -> Result<(), String> {
    let Some(format) = v.get("tessera_export").and_then(Value::as_i64) else {
        return Err(r#"not a Tessera export: the first line must be the header {"tessera_export": 1, "schema_version": N}"#.into());
    };
    if format != FORMAT {
        return Err(format!(
            "the export is in format {format}; this Tessera reads format {FORMAT}"
        ));
    }
    match v.get("schema_version").and_then(Value::as_i64) {
        Some(found) if found == schema_version => Ok(()),
        Some(found) => Err(format!(
            "the export is of schema version {found} and the target database is at version \
             {schema_version}: export and import with the same Tessera release"
        )),
        None => Err("not a Tessera export: the header has no schema_version".into()),
    }
}

/// `tessera admin export`: migrates `database` (as every command does), reads it in one
/// snapshot and writes the export to `out`. Returns `{"exported": {table: rows}}`.
pub async fn export_database(
    database: &Database,
    out: &mut dyn Write,
) -> Result<Value, TransferError> {
    // Opening a SQLite database creates the file; an export of a mistyped path would then
    // silently be an empty installation.
    if let Some(path) = database.sqlite_path() {
        if !path.exists() {
            return Err(TransferError::Refused(format!(
                "there is no database at {}",
                path.display()
            )));
        }
    }
    let (_, version) = migrate(database).await?;
    let stores = open_store(database, Default::default()).await?;
    let tables = stores.transfer.export_all().await?;
    Ok(write_export(version, tables, out)?)
}

/// `tessera admin import`: migrates `database`, reads an export of the same schema version
/// from `input` and imports it in one transaction (into an empty installation only).
/// Returns `{"imported": {table: rows}, "note": …}`.
pub async fn import_database(
    database: &Database,
    input: &mut dyn BufRead,
) -> Result<Value, TransferError> {
    let (_, version) = migrate(database).await?;
    let tables = read_export(input, version)?;
    let summary = counts(tables.iter().map(|(t, rows)| (t.as_str(), rows.len())));
    let stores = open_store(database, Default::default()).await?;
    stores.transfer.import_all(tables).await?;
    Ok(json!({ "imported": summary, "note": MASTER_KEY_NOTE }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<(String, Vec<ExportRow>)>, TransferError> {
        read_export(&mut text.as_bytes(), 3)
    }

    fn project_row(id: &str) -> String {
        json!({"table": "projects", "row": {"id": id, "name": "p", "created_at": 1}}).to_string()
    }

    const ID: &str = "01900000-0000-7000-8000-000000000001";

    #[test]
    fn written_exports_read_back() {
        let row = json!({"id": ID, "name": "p", "created_at": 1});
        let tables = vec![
            ("projects", vec![row.as_object().unwrap().clone()]),
            ("keys", vec![]),
        ];
        let mut out = Vec::new();
        let summary = write_export(3, tables, &mut out).unwrap();
        assert_eq!(summary["exported"]["projects"], 1);
        assert_eq!(summary["exported"]["operator_sessions"], 0);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"tessera_export\":1,\"schema_version\":3}\n"));
        let back = read(&text).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "projects");
        assert_eq!(back[0].1[0], *row.as_object().unwrap());
    }

    #[test]
    fn bad_input_is_refused_with_its_line() {
        let header = r#"{"tessera_export": 1, "schema_version": 3}"#;
        let msg = |text: &str| read(text).unwrap_err().to_string();
        assert!(msg("").contains("empty"));
        assert!(msg("\n\n").contains("empty"));
        assert!(msg(&project_row(ID)).starts_with("line 1: not a Tessera export"));
        assert!(msg("garbage").starts_with("line 1: not JSON"));
        assert!(msg(r#"{"tessera_export": 2, "schema_version": 3}"#).contains("format 2"));
        assert!(msg(r#"{"tessera_export": 1, "schema_version": 2}"#).contains("schema version 2"));
        let with = |line: &str| format!("{header}\n\n{line}\n");
        assert!(msg(&with(r#"{"table": "schema_version", "row": {}}"#))
            .starts_with("line 3: unknown table \"schema_version\""));
        assert!(msg(&with(r#"{"table": "projects"}"#)).starts_with("line 3: expected"));
        assert!(
            msg(&with(&project_row("nope"))).starts_with("line 3: projects.id: expected a UUID")
        );
        let fine = read(&with(&project_row(ID))).unwrap();
        assert_eq!(fine[0].1.len(), 1);
        // Only a header: an empty installation.
        assert!(read(header).unwrap().is_empty());
    }
}
