//! Export and import of a whole installation: SQLite's column types to and from the
//! backend-neutral [`Cell`]s of `tessera_core::export`.

use async_trait::async_trait;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use tessera_core::export::{
    encode_row, not_empty, Cell, ColumnType, ExportRow, ExportTable, EXPORT_TABLES,
    TRANSIENT_TABLES,
};
use tessera_core::store::{StoreError, StoreResult, TransferStore};
use uuid::Uuid;

use crate::{map_err, SqliteStore};

/// A stored value as a cell of a column of type `ty`; `None` if it is not one.
fn read_cell(v: ValueRef<'_>, ty: ColumnType) -> Option<Cell> {
    let text = |t: &[u8]| std::str::from_utf8(t).ok().map(str::to_string);
    Some(match (ty, v) {
        (_, ValueRef::Null) => Cell::Null,
        (ColumnType::Uuid, ValueRef::Text(t)) => Cell::Uuid(Uuid::parse_str(&text(t)?).ok()?),
        (ColumnType::Text, ValueRef::Text(t)) => Cell::Text(text(t)?),
        (ColumnType::Json, ValueRef::Text(t)) => Cell::Json(text(t)?),
        (ColumnType::Integer, ValueRef::Integer(n)) => Cell::Integer(n),
        (ColumnType::Flag, ValueRef::Integer(n)) => Cell::Flag(n != 0),
        (ColumnType::Bytes, ValueRef::Blob(b)) => Cell::Bytes(b.to_vec()),
        // Embeds keep their addresses as a JSON array of UUID strings.
        (ColumnType::UuidList, ValueRef::Text(t)) => {
            let list: Vec<String> = serde_json::from_slice(t).ok()?;
            Cell::UuidList(
                list.iter()
                    .map(|s| Uuid::parse_str(s).ok())
                    .collect::<Option<_>>()?,
            )
        }
        _ => return None,
    })
}

/// A cell as SQLite stores it (the same representation the store's own writes use).
fn sql_value(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Uuid(u) => Value::Text(u.to_string()),
        Cell::Text(s) | Cell::Json(s) => Value::Text(s.clone()),
        Cell::Integer(n) => Value::Integer(*n),
        Cell::Flag(b) => Value::Integer(i64::from(*b)),
        Cell::Bytes(b) => Value::Blob(b.clone()),
        Cell::UuidList(l) => Value::Text(
            serde_json::Value::Array(
                l.iter()
                    .map(|u| serde_json::Value::String(u.to_string()))
                    .collect(),
            )
            .to_string(),
        ),
    }
}

fn export_table(c: &Connection, t: &ExportTable) -> rusqlite::Result<Vec<ExportRow>> {
    // Names come from EXPORT_TABLES only.
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        t.column_list(),
        t.name,
        t.key()
    );
    let mut st = c.prepare(&sql)?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut cells = Vec::with_capacity(t.columns.len());
        for (i, col) in t.columns.iter().enumerate() {
            let cell = read_cell(r.get_ref(i)?, col.ty).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    r.get_ref(i)
                        .map(|v| v.data_type())
                        .unwrap_or(rusqlite::types::Type::Null),
                    format!("bad value in {}.{}", t.name, col.name).into(),
                )
            })?;
            cells.push(cell);
        }
        out.push(encode_row(t, cells));
    }
    Ok(out)
}

/// Every table, read in one transaction (one snapshot: WAL readers see the database as of
/// their first read, whatever the writer commits meanwhile).
pub(crate) fn export_all(c: &Connection) -> rusqlite::Result<Vec<(&'static str, Vec<ExportRow>)>> {
    let tx = c.unchecked_transaction()?;
    let out = EXPORT_TABLES
        .iter()
        .map(|t| Ok((t.name, export_table(&tx, t)?)))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(out)
}

/// Inserts a decoded export. Runs as one writer job, so everything it writes is rolled back
/// when it fails.
pub(crate) fn import_all(c: &Connection, rows: &[Vec<Vec<Cell>>]) -> StoreResult<()> {
    refuse_unless_empty(c)?;
    for t in TRANSIENT_TABLES {
        c.execute(&format!("DELETE FROM {t}"), [])
            .map_err(map_err)?;
    }
    for (t, rows) in EXPORT_TABLES.iter().zip(rows) {
        if rows.is_empty() {
            continue;
        }
        let params: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.name,
            t.column_list(),
            params.join(", ")
        );
        let mut st = c.prepare(&sql).map_err(map_err)?;
        for (i, cells) in rows.iter().enumerate() {
            st.execute(rusqlite::params_from_iter(cells.iter().map(sql_value)))
                .map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, msg)
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        StoreError::Invalid(format!(
                            "{} row {}: {}",
                            t.name,
                            i + 1,
                            msg.unwrap_or_else(|| f.to_string())
                        ))
                    }
                    other => map_err(other),
                })?;
        }
    }
    // New audit events take the largest `seq` + 1, so they continue after the imported ones.
    Ok(())
}

/// `Invalid` if any exported table (but the transient ones) already holds a row.
fn refuse_unless_empty(c: &Connection) -> StoreResult<()> {
    for t in EXPORT_TABLES
        .iter()
        .filter(|t| !TRANSIENT_TABLES.contains(&t.name))
    {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", t.name);
        let any: bool = c.query_row(&sql, [], |r| r.get(0)).map_err(map_err)?;
        if any {
            return Err(not_empty(t.name));
        }
    }
    Ok(())
}

#[async_trait]
impl TransferStore for SqliteStore {
    async fn export_all(&self) -> StoreResult<Vec<(&'static str, Vec<ExportRow>)>> {
        self.read("export_all", export_all).await
    }

    async fn import_all(&self, tables: Vec<(String, Vec<ExportRow>)>) -> StoreResult<()> {
        // Decoded before the writer: a job may run twice, the decoding need not.
        let rows = tessera_core::export::decode_tables(tables).map_err(StoreError::Invalid)?;
        self.write("import_all", move |c| import_all(c, &rows))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    /// The export's column list is the schema's: a migration that adds or renames a column
    /// fails here until `EXPORT_TABLES` follows it.
    #[test]
    fn export_tables_match_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let mut st = c
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version' ORDER BY name",
            )
            .unwrap();
        let mut tables: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut listed: Vec<String> = EXPORT_TABLES.iter().map(|t| t.name.to_string()).collect();
        tables.sort();
        listed.sort();
        assert_eq!(tables, listed);
        for t in EXPORT_TABLES {
            let mut st = c
                .prepare(&format!(
                    "SELECT name, type FROM pragma_table_info('{}')",
                    t.name
                ))
                .unwrap();
            let cols: Vec<(String, String)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let want: Vec<(String, String)> = t
                .columns
                .iter()
                .map(|c| {
                    let ty = match c.ty {
                        ColumnType::Uuid
                        | ColumnType::Text
                        | ColumnType::Json
                        | ColumnType::UuidList => "TEXT",
                        ColumnType::Integer | ColumnType::Flag => "INTEGER",
                        ColumnType::Bytes => "BLOB",
                    };
                    (c.name.to_string(), ty.to_string())
                })
                .collect();
            assert_eq!(cols, want, "table {}", t.name);
        }
    }
}
