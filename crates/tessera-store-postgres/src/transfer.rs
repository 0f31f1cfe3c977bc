//! Export and import of a whole installation: PostgreSQL's column types to and from the
//! backend-neutral [`Cell`]s of `tessera_core::export`.

use async_trait::async_trait;
use tessera_core::export::{
    decode_tables, encode_row, not_empty, Cell, ColumnType, ExportRow, ExportTable, EXPORT_TABLES,
    TRANSIENT_TABLES,
};
use tessera_core::store::{StoreError, StoreResult, TransferStore};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, IsolationLevel, Row, Transaction};
use uuid::Uuid;

use crate::{describe, Fail, PgStore};

/// Most parameters one multi-row `INSERT` binds (PostgreSQL allows 65535).
const MAX_PARAMS: usize = 8192;

/// A typed query parameter.
type Param = Box<dyn ToSql + Sync + Send>;

/// The select list of a table: JSON columns as their exact text.
fn select_list(t: &ExportTable) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Json => format!("{}::text", c.name),
            _ => c.name.to_string(),
        })
        .collect();
    cols.join(", ")
}

fn read_cell(r: &Row, i: usize, ty: ColumnType) -> Result<Cell, tokio_postgres::Error> {
    match ty {
        ColumnType::Uuid => cell(r, i, Cell::Uuid),
        ColumnType::Text => cell(r, i, Cell::Text),
        ColumnType::Json => cell(r, i, Cell::Json),
        ColumnType::Integer => cell(r, i, Cell::Integer),
        ColumnType::Flag => cell(r, i, Cell::Flag),
        ColumnType::Bytes => cell(r, i, Cell::Bytes),
        ColumnType::UuidList => cell(r, i, Cell::UuidList),
    }
}

/// Column `i` read as a nullable `T`: `NULL` as [`Cell::Null`], a value wrapped by `wrap`.
fn cell<'a, T: FromSql<'a>>(
    r: &'a Row,
    i: usize,
    wrap: fn(T) -> Cell,
) -> Result<Cell, tokio_postgres::Error> {
    Ok(r.try_get::<_, Option<T>>(i)?.map_or(Cell::Null, wrap))
}

/// A cell as a parameter of its column's type (a `NULL` is typed too).
fn param(ty: ColumnType, cell: Cell) -> Param {
    match cell {
        Cell::Null => match ty {
            ColumnType::Uuid => Box::new(None::<Uuid>),
            ColumnType::Text | ColumnType::Json => Box::new(None::<String>),
            ColumnType::Integer => Box::new(None::<i64>),
            ColumnType::Flag => Box::new(None::<bool>),
            ColumnType::Bytes => Box::new(None::<Vec<u8>>),
            ColumnType::UuidList => Box::new(None::<Vec<Uuid>>),
        },
        Cell::Uuid(u) => Box::new(u),
        Cell::Text(s) | Cell::Json(s) => Box::new(s),
        Cell::Integer(n) => Box::new(n),
        Cell::Flag(b) => Box::new(b),
        Cell::Bytes(b) => Box::new(b),
        Cell::UuidList(l) => Box::new(l),
    }
}

/// `INSERT INTO t (…) OVERRIDING SYSTEM VALUE VALUES (…), …` for `rows` rows. JSON
/// parameters are sent as text and cast, so the document is stored exactly as exported;
/// `OVERRIDING SYSTEM VALUE` keeps the exported audit `seq` (an identity column).
fn insert_sql(t: &ExportTable, rows: usize) -> String {
    let n = t.columns.len();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let cells: Vec<String> = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let k = r * n + i + 1;
                    match c.ty {
                        ColumnType::Json => format!("${k}::text::json"),
                        _ => format!("${k}"),
                    }
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES {}",
        t.name,
        t.column_list(),
        tuples.join(", ")
    )
}

/// Every table, read in one REPEATABLE READ transaction (one snapshot).
pub(crate) async fn export_all(
    client: &mut Client,
) -> Result<Vec<(&'static str, Vec<ExportRow>)>, Fail> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut out = Vec::with_capacity(EXPORT_TABLES.len());
    for t in EXPORT_TABLES {
        // Names come from EXPORT_TABLES only.
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            select_list(t),
            t.name,
            t.key()
        );
        let rows = tx.query(sql.as_str(), &[]).await?;
        let mut table = Vec::with_capacity(rows.len());
        for r in &rows {
            let cells = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| read_cell(r, i, c.ty))
                .collect::<Result<Vec<_>, _>>()?;
            table.push(encode_row(t, cells));
        }
        out.push((t.name, table));
    }
    tx.commit().await?;
    Ok(out)
}

/// Checks, decodes and inserts an export in one transaction.
pub(crate) async fn import_all(
    client: &mut Client,
    tables: Vec<(String, Vec<ExportRow>)>,
) -> Result<(), Fail> {
    let rows = decode_tables(tables).map_err(StoreError::Invalid)?;
    let tx = client.transaction().await?;
    // Nothing else writes these tables until this transaction ends (a node started too early
    // would otherwise create keys beside the imported ones); readers are not blocked.
    let names: Vec<&str> = EXPORT_TABLES.iter().map(|t| t.name).collect();
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        names.join(", ")
    ))
    .await?;
    for t in EXPORT_TABLES
        .iter()
        .filter(|t| !TRANSIENT_TABLES.contains(&t.name))
    {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", t.name);
        let any: bool = tx.query_one(sql.as_str(), &[]).await?.try_get(0)?;
        if any {
            return Err(Fail::Store(not_empty(t.name)));
        }
    }
    for t in TRANSIENT_TABLES {
        tx.batch_execute(&format!("DELETE FROM {t}")).await?;
    }
    for (t, rows) in EXPORT_TABLES.iter().zip(rows) {
        insert_rows(&tx, t, rows).await?;
    }
    // New audit events continue after the imported ones.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), m)
         FROM (SELECT MAX(seq) AS m FROM audit_events) AS s WHERE m IS NOT NULL",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_rows(
    tx: &Transaction<'_>,
    t: &ExportTable,
    rows: Vec<Vec<Cell>>,
) -> Result<(), Fail> {
    let per = (MAX_PARAMS / t.columns.len().max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    let mut first = 1;
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Cell>> = rows.by_ref().take(per).collect();
        let n = chunk.len();
        let sql = insert_sql(t, n);
        let params: Vec<Param> = chunk
            .into_iter()
            .flat_map(|cells| t.columns.iter().zip(cells).map(|(c, v)| param(c.ty, v)))
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        tx.execute(sql.as_str(), &refs).await.map_err(|e| {
            // Class 23: a row the schema refuses (duplicate, missing parent, NULL).
            match e.code().map(|c| c.code()) {
                Some(code) if code.starts_with("23") => Fail::Store(StoreError::Invalid(format!(
                    "{} rows {first}–{}: {}",
                    t.name,
                    first + n - 1,
                    describe(&e)
                ))),
                _ => Fail::Pg(e),
            }
        })?;
        first += n;
    }
    Ok(())
}

#[async_trait]
impl TransferStore for PgStore {
    async fn export_all(&self) -> StoreResult<Vec<(&'static str, Vec<ExportRow>)>> {
        let _t = self.time("export_all");
        let mut db = self.db().await?;
        let r = async {
            let (c, _) = db.parts();
            export_all(c).await
        }
        .await;
        db.finish(r)
    }

    async fn import_all(&self, tables: Vec<(String, Vec<ExportRow>)>) -> StoreResult<()> {
        let _t = self.time("import_all");
        let mut db = self.db().await?;
        let r = async {
            let (c, _) = db.parts();
            import_all(c, tables).await
        }
        .await;
        db.finish(r)
    }
}
