//! The backend-neutral row format of `tessera admin export` / `import`, which moves a whole
//! installation between databases (SQLite to PostgreSQL, or back).
//!
//! Every table of the schema is listed in [`EXPORT_TABLES`] with its columns and each column's
//! [`ColumnType`]. A row is a JSON object, column name → value, written the same way whichever
//! backend it came from:
//!
//! | type | written as |
//! |---|---|
//! | [`ColumnType::Uuid`] | the canonical hyphenated lower-case string |
//! | [`ColumnType::Text`] | a string |
//! | [`ColumnType::Integer`] | a number |
//! | [`ColumnType::Flag`] | `true` / `false` (`0` / `1` accepted on import) |
//! | [`ColumnType::Bytes`] | `{"$hex": "…"}` (lower-case hex) |
//! | [`ColumnType::Json`] | the document's text, as a string (a JSON value accepted on import) |
//! | [`ColumnType::UuidList`] | an array of UUID strings |
//!
//! and SQL `NULL` as `null`. Each store converts between [`Cell`]s and its own column types;
//! this module converts between cells and JSON, so both backends read and write one format.
//! Table and column names reach SQL only from these constants, never from the input.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::crypto::{hex, unhex};

/// One exported row: column name → value.
pub type ExportRow = Map<String, Value>;

/// The type of a column, as the export writes it (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// A UUID: `TEXT` in SQLite, `UUID` in PostgreSQL.
    Uuid,
    /// Text.
    Text,
    /// A 64-bit integer (times, counters, generations).
    Integer,
    /// A flag: `INTEGER` 0/1 in SQLite, `BOOLEAN` in PostgreSQL.
    Flag,
    /// Bytes (hashes, wrapped key material): `BLOB` / `BYTEA`.
    Bytes,
    /// A JSON document: `TEXT` in SQLite, `JSON` in PostgreSQL.
    Json,
    /// A list of UUIDs: a JSON array of strings in SQLite, `UUID[]` in PostgreSQL.
    UuidList,
}

/// A column of an exported table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name, the same on every backend.
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
}

/// A table of the export.
#[derive(Debug, PartialEq, Eq)]
pub struct ExportTable {
    /// Its name, the same on every backend.
    pub name: &'static str,
    /// Every column, in schema order. The first is the primary key; rows are exported in its
    /// order (which SQLite and PostgreSQL agree on for every key type used).
    pub columns: &'static [Column],
}

impl ExportTable {
    /// The column names joined for SQL (`a, b, c`).
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        names.join(", ")
    }

    /// The primary key column (rows are exported in its order).
    pub fn key(&self) -> &'static str {
        self.columns.first().map_or("rowid", |c| c.name)
    }
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column { name, ty }
}

use ColumnType::{Bytes, Flag, Integer, Json, Text, Uuid as Id, UuidList};

/// Every table of an installation (schema version 3), parents before children, so that rows
/// imported in this order satisfy every foreign key. `schema_version` is not among them: the
/// export's header carries the version instead.
pub const EXPORT_TABLES: &[ExportTable] = &[
    ExportTable {
        name: "projects",
        columns: &[col("id", Id), col("name", Text), col("created_at", Integer)],
    },
    ExportTable {
        name: "api_tokens",
        columns: &[
            col("id", Id),
            col("project_id", Id),
            col("name", Text),
            col("hash", Bytes),
            col("created_at", Integer),
            col("revoked_at", Integer),
        ],
    },
    ExportTable {
        name: "keys",
        columns: &[
            col("kid", Text),
            col("purpose", Text),
            col("state", Text),
            col("wrapped", Bytes),
            col("created_at", Integer),
            col("activated_at", Integer),
            col("retired_at", Integer),
            col("sealed", Integer),
        ],
    },
    // The check travels with the keys it was recorded for: an import is then checked against
    // the source's master key at once. It does not count as content when an import asks
    // whether the target is empty (see [`TRANSIENT_TABLES`]).
    ExportTable {
        name: "master_key_check",
        columns: &[
            col("id", Integer),
            col("value", Bytes),
            col("recorded_at", Integer),
        ],
    },
    ExportTable {
        name: "resources",
        columns: &[
            col("id", Id),
            col("project_id", Id),
            col("kind", Text),
            col("name", Text),
            col("display_name", Text),
            col("data", Json),
            col("created_at", Integer),
            col("updated_at", Integer),
        ],
    },
    ExportTable {
        name: "subscribers",
        columns: &[
            col("id", Id),
            col("project_id", Id),
            col("reference_key", Text),
            col("email", Text),
            col("email_key", Text),
            col("first_name", Text),
            col("last_name", Text),
            col("display_name", Text),
            col("job_title", Text),
            col("timezone", Text),
            col("country", Text),
            col("region", Text),
            col("company_name", Text),
            col("password_hash", Text),
        ],
    },
    ExportTable {
        name: "addresses",
        columns: &[
            col("id", Id),
            col("project_id", Id),
            col("resource_id", Id),
            col("kind", Text),
            col("name", Text),
            col("display_name", Text),
            col("locked", Flag),
            col("cover_url", Text),
            col("preview_url", Text),
            col("created_at", Integer),
        ],
    },
    ExportTable {
        name: "families",
        columns: &[
            col("id", Id),
            col("project_id", Id),
            col("kind", Text),
            col("subject", Id),
            col("generation", Integer),
            col("created_at", Integer),
            col("expires_at", Integer),
            col("rotated_at", Integer),
            col("revoked_at", Integer),
            col("tokens_expire_at", Integer),
        ],
    },
    ExportTable {
        name: "embeds",
        columns: &[
            col("id", Id),
            col("project_id", Id),
            col("token_hash", Bytes),
            col("addresses", UuidList),
            col("enabled", Flag),
            col("created_at", Integer),
        ],
    },
    ExportTable {
        name: "audit_events",
        columns: &[
            col("seq", Integer),
            col("at", Integer),
            col("project_id", Id),
            col("action", Text),
            col("actor", Text),
            col("subject", Text),
            col("detail", Json),
        ],
    },
    ExportTable {
        name: "operators",
        columns: &[
            col("id", Id),
            col("username", Text),
            col("username_key", Text),
            col("domain", Text),
            col("kind", Text),
            col("role", Text),
            col("password_hash", Text),
            col("api_key_hash", Bytes),
            col("disabled", Flag),
            col("created_at", Integer),
        ],
    },
    ExportTable {
        name: "operator_sessions",
        columns: &[
            col("hash", Bytes),
            col("operator_id", Id),
            col("created_at", Integer),
            col("expires_at", Integer),
        ],
    },
];

/// The table of that name, if the export has one.
pub fn export_table(name: &str) -> Option<&'static ExportTable> {
    EXPORT_TABLES.iter().find(|t| t.name == name)
}

/// One column's value, between the JSON form and a backend's own types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL `NULL` (any type).
    Null,
    /// A UUID.
    Uuid(Uuid),
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A flag.
    Flag(bool),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A JSON document's text (checked to parse as JSON).
    Json(String),
    /// A list of UUIDs.
    UuidList(Vec<Uuid>),
}

impl Cell {
    /// The cell as the export writes it.
    pub fn to_json(self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Uuid(u) => Value::String(u.to_string()),
            Cell::Text(s) | Cell::Json(s) => Value::String(s),
            Cell::Integer(n) => Value::from(n),
            Cell::Flag(b) => Value::Bool(b),
            Cell::Bytes(b) => {
                let mut m = Map::new();
                m.insert("$hex".into(), Value::String(hex(&b)));
                Value::Object(m)
            }
            Cell::UuidList(l) => {
                Value::Array(l.iter().map(|u| Value::String(u.to_string())).collect())
            }
        }
    }

    /// Reads a value of a column of type `ty`; the error says what was expected.
    pub fn from_json(ty: ColumnType, v: &Value) -> Result<Cell, String> {
        if v.is_null() {
            return Ok(Cell::Null);
        }
        let bad = |what: &str| Err(format!("expected {what}, found {}", kind(v)));
        match ty {
            ColumnType::Uuid => match v.as_str().map(Uuid::parse_str) {
                Some(Ok(u)) => Ok(Cell::Uuid(u)),
                _ => bad("a UUID string"),
            },
            ColumnType::Text => match v.as_str() {
                Some(s) => Ok(Cell::Text(s.to_string())),
                None => bad("a string"),
            },
            ColumnType::Integer => match v.as_i64() {
                Some(n) => Ok(Cell::Integer(n)),
                None => bad("an integer"),
            },
            ColumnType::Flag => match (v.as_bool(), v.as_i64()) {
                (Some(b), _) => Ok(Cell::Flag(b)),
                (None, Some(0)) => Ok(Cell::Flag(false)),
                (None, Some(1)) => Ok(Cell::Flag(true)),
                _ => bad("true, false, 0 or 1"),
            },
            ColumnType::Bytes => {
                let hex_text = v
                    .as_object()
                    .filter(|m| m.len() == 1)
                    .and_then(|m| m.get("$hex"))
                    .and_then(Value::as_str);
                match hex_text.map(unhex) {
                    Some(Some(b)) => Ok(Cell::Bytes(b)),
                    _ => bad(r#"{"$hex": "<hex digits>"}"#),
                }
            }
            ColumnType::Json => match v {
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(_) => Ok(Cell::Json(s.clone())),
                    Err(_) => bad("JSON text"),
                },
                other => Ok(Cell::Json(other.to_string())),
            },
            ColumnType::UuidList => {
                let parsed;
                let items = match v {
                    Value::Array(a) => a,
                    Value::String(s) => match serde_json::from_str::<Value>(s) {
                        Ok(Value::Array(a)) => {
                            parsed = a;
                            &parsed
                        }
                        _ => return bad("an array of UUID strings"),
                    },
                    _ => return bad("an array of UUID strings"),
                };
                items
                    .iter()
                    .map(|i| i.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                    .collect::<Option<Vec<Uuid>>>()
                    .map(Cell::UuidList)
                    .ok_or_else(|| "expected an array of UUID strings".to_string())
            }
        }
    }
}

/// A JSON value's kind, for messages (never the value: it may be a secret's hash).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A row as the export writes it, from the cells of `table`'s columns in order.
pub fn encode_row(table: &ExportTable, cells: Vec<Cell>) -> ExportRow {
    table
        .columns
        .iter()
        .zip(cells)
        .map(|(c, v)| (c.name.to_string(), v.to_json()))
        .collect()
}

/// The cells of a row of `table`, in column order. Every column must be present and no other.
pub fn decode_row(table: &ExportTable, row: &ExportRow) -> Result<Vec<Cell>, String> {
    if let Some(extra) = row
        .keys()
        .find(|k| !table.columns.iter().any(|c| c.name == k.as_str()))
    {
        return Err(format!("{}: unknown column {extra:?}", table.name));
    }
    table
        .columns
        .iter()
        .map(|c| match row.get(c.name) {
            None => Err(format!("{}.{}: missing", table.name, c.name)),
            Some(v) => {
                Cell::from_json(c.ty, v).map_err(|e| format!("{}.{}: {e}", table.name, c.name))
            }
        })
        .collect()
}

/// The cells of every row of an export, grouped by table in [`EXPORT_TABLES`] order (one
/// entry per table, empty for a table the export lacks), whatever order `tables` gives. The
/// error names an unknown table, or the table, row number and column of a malformed row.
pub fn decode_tables(tables: Vec<(String, Vec<ExportRow>)>) -> Result<Vec<Vec<Vec<Cell>>>, String> {
    let mut out: Vec<Vec<Vec<Cell>>> = EXPORT_TABLES.iter().map(|_| Vec::new()).collect();
    for (name, rows) in tables {
        let Some(i) = EXPORT_TABLES.iter().position(|t| t.name == name) else {
            return Err(format!("unknown table {name:?}"));
        };
        let t = &EXPORT_TABLES[i];
        for (n, row) in rows.iter().enumerate() {
            out[i].push(decode_row(t, row).map_err(|e| format!("row {} of {e}", n + 1))?);
        }
    }
    Ok(out)
}

/// Tables an import replaces instead of refusing to merge: the master-key check a command may
/// have recorded on the empty target (nothing was keyed under it, or the target would not be
/// empty). Each store deletes their rows in the import's transaction before inserting.
pub const TRANSIENT_TABLES: &[&str] = &["master_key_check"];

/// The refusal to import into a database that already holds rows (in `table`): an import
/// never merges two installations.
pub fn not_empty(table: &str) -> crate::store::StoreError {
    crate::store::StoreError::Invalid(format!(
        "the target database is not empty ({table} has rows): import only into a database \
         without an installation, e.g. a new one after `tessera admin migrate`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_unique_and_keyed() {
        for (i, t) in EXPORT_TABLES.iter().enumerate() {
            assert!(EXPORT_TABLES[..i].iter().all(|o| o.name != t.name));
            assert!(!t.columns.is_empty());
            assert_eq!(export_table(t.name), Some(t));
        }
        assert_eq!(export_table("schema_version"), None);
        assert_eq!(export_table("projects; DROP TABLE keys"), None);
    }

    #[test]
    fn cells_round_trip_through_json() {
        let u = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00ff);
        let cases = [
            (ColumnType::Uuid, Cell::Uuid(u)),
            (ColumnType::Text, Cell::Text("é\u{1}".into())),
            (ColumnType::Integer, Cell::Integer(i64::MIN)),
            (ColumnType::Flag, Cell::Flag(true)),
            (ColumnType::Bytes, Cell::Bytes(vec![0, 1, 0xab, 0xff])),
            (ColumnType::Bytes, Cell::Bytes(vec![])),
            (ColumnType::Json, Cell::Json(r#"{"a": [1]}"#.into())),
            (ColumnType::UuidList, Cell::UuidList(vec![u, u])),
            (ColumnType::Text, Cell::Null),
        ];
        for (ty, cell) in cases {
            let v = cell.clone().to_json();
            assert_eq!(Cell::from_json(ty, &v), Ok(cell));
        }
        assert_eq!(Cell::Bytes(vec![0xab]).to_json(), json!({"$hex": "ab"}));
    }

    #[test]
    fn import_accepts_both_flag_forms_and_refuses_the_rest() {
        let f = |v: Value| Cell::from_json(ColumnType::Flag, &v);
        assert_eq!(f(json!(1)), Ok(Cell::Flag(true)));
        assert_eq!(f(json!(0)), Ok(Cell::Flag(false)));
        assert_eq!(f(json!(false)), Ok(Cell::Flag(false)));
        assert!(f(json!(2)).is_err());
        assert!(f(json!("true")).is_err());
        let u = |v: Value| Cell::from_json(ColumnType::Uuid, &v);
        // Any accepted spelling is stored canonically.
        assert_eq!(
            u(json!("0190000000007000800000000000000A")).map(Cell::to_json),
            Ok(json!("01900000-0000-7000-8000-00000000000a"))
        );
        assert!(u(json!("nope")).is_err());
        let b = |v: Value| Cell::from_json(ColumnType::Bytes, &v);
        assert!(b(json!({"$hex": "abc"})).is_err());
        assert!(b(json!({"$hex": "zz"})).is_err());
        assert!(b(json!({"$hex": "ab", "x": 1})).is_err());
        assert!(b(json!("ab")).is_err());
        assert!(Cell::from_json(ColumnType::Json, &json!("{")).is_err());
        assert_eq!(
            Cell::from_json(ColumnType::Json, &json!({"k": 1})),
            Ok(Cell::Json(r#"{"k":1}"#.into()))
        );
        assert_eq!(
            Cell::from_json(ColumnType::UuidList, &json!("[]")),
            Ok(Cell::UuidList(vec![]))
        );
        assert!(Cell::from_json(ColumnType::Integer, &json!(1.5)).is_err());
    }

    #[test]
    fn rows_need_exactly_their_columns() {
        let t = export_table("projects").unwrap();
        let ok = json!({"id": Uuid::nil().to_string(), "name": "p", "created_at": 1});
        let row = ok.as_object().unwrap();
        let cells = decode_row(t, row).unwrap();
        assert_eq!(&encode_row(t, cells), row);
        let mut extra = row.clone();
        extra.insert("owner".into(), json!("x"));
        assert!(decode_row(t, &extra)
            .unwrap_err()
            .contains("unknown column"));
        let mut missing = row.clone();
        missing.remove("name");
        assert!(decode_row(t, &missing)
            .unwrap_err()
            .contains("projects.name"));
    }
}
