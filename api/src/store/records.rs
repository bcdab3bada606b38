//! Call records written behind the call: a call hands each change of its legs' rows to one
//! writer task, which applies whatever has queued up in one transaction (one commit, one WAL
//! append, for many calls), so no call waits on the database. A reader that must see every change
//! made so far (the Voice API listing or fetching calls) awaits [`CallRecords::flush`].
//! The changes are folded per leg and written as whole rows, a leg's row when it ends (or,
//! for a leg that lasts, a little after it starts), so most legs cost one row of one
//! statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::entity::call::{self, Column, Entity};

/// Changes folded into one transaction at most.
const BATCH: usize = 1024;

/// A change to one leg's row.
#[derive(Debug)]
enum Op {
    Insert(Box<call::Model>),
    Answered {
        uuid: String,
        at: DateTime<Utc>,
    },
    Finished {
        uuid: String,
        status: String,
        detail: Option<String>,
        ended: DateTime<Utc>,
        duration: Option<i32>,
        quality: Option<String>,
        sip_code: Option<i32>,
    },
    Flush(oneshot::Sender<()>),
}

/// How a leg ended, as its row keeps it.
pub struct Finish<'a> {
    pub status: &'a str,
    pub detail: Option<String>,
    pub answered: Option<DateTime<Utc>>,
    pub ended: DateTime<Utc>,
    pub quality: Option<&'a domains::quality::Quality>,
    pub sip_code: Option<u16>,
}

/// The handle calls and readers share; cloning it is cheap.
#[derive(Clone)]
pub struct CallRecords {
    tx: mpsc::UnboundedSender<Op>,
}

impl CallRecords {
    /// Starts the writer on `db`, on the current runtime.
    pub fn start(db: DatabaseConnection) -> CallRecords {
        Self::start_on(&tokio::runtime::Handle::current(), db)
    }

    /// Starts the writer on `db` on `runtime` (the one `db` was opened on).
    pub fn start_on(runtime: &tokio::runtime::Handle, db: DatabaseConnection) -> CallRecords {
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(write_behind(db, rx));
        CallRecords { tx }
    }

    pub fn insert(&self, row: call::Model) {
        self.send(Op::Insert(Box::new(row)));
    }

    pub fn answered(&self, uuid: &str, at: DateTime<Utc>) {
        self.send(Op::Answered { uuid: uuid.to_owned(), at });
    }

    /// The leg's terminal status; its duration in whole seconds when it was answered.
    pub fn finished(&self, uuid: &str, f: Finish<'_>) {
        let duration = f.answered.map(|a| i32::try_from((f.ended - a).num_seconds().max(0)).unwrap_or(i32::MAX));
        let quality = f.quality.and_then(|q| serde_json::to_string(q).ok());
        self.send(Op::Finished {
            uuid: uuid.to_owned(),
            status: f.status.to_owned(),
            detail: f.detail,
            ended: f.ended,
            duration,
            quality,
            sip_code: f.sip_code.map(i32::from),
        });
    }

    /// Returns once every change handed over before this call is committed (or failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        self.send(Op::Flush(done));
        let _ = wait.await;
    }

    fn send(&self, op: Op) {
        if self.tx.send(op).is_err() {
            tracing::error!("call record writer is gone; record change lost");
        }
    }
}

/// How long a change to a leg that has not ended may stay unwritten: most legs end sooner and
/// are then written once, whole; a leg that lasts is on disk this long after it starts (or
/// at once when a reader flushes).
const OPEN_ROW_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long changes gather between writes (unless a statement's worth of ended legs gathers
/// sooner or a reader flushes): a few statements a second at any call rate.
const ENDED_ROW_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// The writer: folds each batch of changes into the rows it holds open (a leg from its insert
/// to its terminal status) and writes the rows due with one multi-row upsert, instead of one
/// statement per change: per statement, not per row, is where SQLite's cost is (a round trip
/// to its worker thread, a prepare, a step). Ended legs are due at once; legs still up after
/// [`OPEN_ROW_DELAY`], or all of them when a reader flushes.
async fn write_behind(db: DatabaseConnection, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut writer = Writer::default();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = match tokio::time::timeout(ENDED_ROW_DELAY, rx.recv_many(&mut batch, BATCH)).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(_idle) => 0,
        };
        let flushes = writer.fold(batch.drain(..));
        let (rows, strays) = writer.due(!flushes.is_empty(), std::time::Instant::now());
        if !rows.is_empty() || !strays.is_empty() {
            let statements = upsert(&db, rows).await + apply_strays(&db, strays).await;
            metrics::counter!("voxbridge_call_record_statements_total").increment(statements);
            metrics::counter!("voxbridge_call_record_batches_total").increment(1);
        }
        metrics::counter!("voxbridge_call_record_writes_total").increment((received - flushes.len()) as u64);
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The legs the writer holds, and which of them have changes not yet written.
#[derive(Default)]
struct Writer {
    open: HashMap<String, call::Model>,
    /// Unwritten changes of open legs, by uuid: since when.
    dirty: HashMap<String, std::time::Instant>,
    /// Ended legs, to be written.
    ended: Vec<call::Model>,
    last_write: Option<std::time::Instant>,
    /// Changes to rows the writer does not hold (there are none unless a change comes
    /// without its insert): applied one by one.
    strays: Vec<Op>,
}

impl Writer {
    /// Applies the changes to the rows held; returns the flushes among them.
    fn fold(&mut self, ops: impl Iterator<Item = Op>) -> Vec<oneshot::Sender<()>> {
        let now = std::time::Instant::now();
        let mut flushes = Vec::new();
        for op in ops {
            match op {
                Op::Flush(done) => flushes.push(done),
                // A duplicate uuid is skipped: the first row stays.
                Op::Insert(row) if self.open.contains_key(&row.uuid) => {}
                Op::Insert(row) => {
                    self.dirty.insert(row.uuid.clone(), now);
                    self.open.insert(row.uuid.clone(), *row);
                }
                Op::Answered { uuid, at } => match self.open.get_mut(&uuid) {
                    Some(row) => {
                        row.status = "answered".to_owned();
                        row.start_time = Some(at);
                        row.updated_at = at;
                        self.dirty.entry(uuid).or_insert(now);
                    }
                    None => self.strays.push(Op::Answered { uuid, at }),
                },
                Op::Finished { uuid, status, detail, ended, duration, quality, sip_code } => match self
                    .open
                    .remove(&uuid)
                {
                    Some(mut row) => {
                        row.status = status;
                        row.detail = detail;
                        row.end_time = Some(ended);
                        row.duration = duration;
                        row.quality = quality;
                        row.sip_code = sip_code;
                        row.updated_at = ended;
                        self.dirty.remove(&uuid);
                        self.ended.push(row);
                    }
                    None => self.strays.push(Op::Finished { uuid, status, detail, ended, duration, quality, sip_code }),
                },
            }
        }
        flushes
    }

    /// The rows to write now (every dirty one when `all`), and the stray changes.
    fn due(&mut self, all: bool, now: std::time::Instant) -> (Vec<call::Model>, Vec<Op>) {
        let due = all
            || self.ended.len() >= ROWS_PER_STATEMENT
            || self.last_write.is_none_or(|at| now.saturating_duration_since(at) >= ENDED_ROW_DELAY);
        if !due {
            return (Vec::new(), Vec::new());
        }
        self.last_write = Some(now);
        let mut rows = std::mem::take(&mut self.ended);
        let open = &self.open;
        self.dirty.retain(|uuid, since| {
            let write = all || now.saturating_duration_since(*since) >= OPEN_ROW_DELAY;
            if write && let Some(row) = open.get(uuid) {
                rows.push(row.clone());
            }
            !write
        });
        (rows, std::mem::take(&mut self.strays))
    }
}

/// Rows per upsert statement (far under SQLite's 32,766 and PostgreSQL's 65,535 bound
/// parameters at 16 per row). A statement is built in one go on the writer's runtime, so its
/// size bounds the pause it causes there (about 0.1 ms per 100 rows), which matters when the
/// writer shares the SIP edge's runtime (`CallRecords::start`).
const ROWS_PER_STATEMENT: usize = 100;

/// Writes `rows` whole (insert, or update of the columns a leg changes) in one transaction;
/// returns the statements run. If that fails, each row is tried alone, so one bad row does
/// not lose the others.
async fn upsert(db: &DatabaseConnection, rows: Vec<call::Model>) -> u64 {
    if rows.is_empty() {
        return 0;
    }
    let on_conflict = || {
        OnConflict::column(Column::Uuid)
            .update_columns([
                Column::Status,
                Column::Detail,
                Column::StartTime,
                Column::EndTime,
                Column::Duration,
                Column::Quality,
                Column::SipCode,
                Column::UpdatedAt,
            ])
            .to_owned()
    };
    let together = async {
        let txn = db.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let models = chunk.iter().cloned().map(call::ActiveModel::from);
            Entity::insert_many(models).on_conflict(on_conflict()).exec_without_returning(&txn).await?;
        }
        txn.commit().await
    };
    let statements = rows.len().div_ceil(ROWS_PER_STATEMENT) as u64;
    match together.await {
        Ok(()) => statements,
        Err(e) => {
            tracing::error!(error = %e, rows = rows.len(), "writing call records; retrying row by row");
            for row in &rows {
                let model = call::ActiveModel::from(row.clone());
                if let Err(e) = Entity::insert(model).on_conflict(on_conflict()).exec_without_returning(db).await {
                    tracing::error!(error = %e, uuid = %row.uuid, "call record change refused");
                }
            }
            statements + rows.len() as u64
        }
    }
}

async fn apply_strays(db: &DatabaseConnection, strays: Vec<Op>) -> u64 {
    let mut statements = 0;
    for op in strays {
        let result = match op {
            Op::Answered { uuid, at } => Entity::update_many()
                .col_expr(Column::Status, Expr::value("answered"))
                .col_expr(Column::StartTime, Expr::value(at))
                .col_expr(Column::UpdatedAt, Expr::value(at))
                .filter(Column::Uuid.eq(uuid))
                .exec(db)
                .await
                .map(|_| ()),
            Op::Finished { uuid, status, detail, ended, duration, quality, sip_code } => Entity::update_many()
                .col_expr(Column::Status, Expr::value(status))
                .col_expr(Column::SipCode, Expr::value(sip_code))
                .col_expr(Column::Detail, Expr::value(detail))
                .col_expr(Column::EndTime, Expr::value(ended))
                .col_expr(Column::Duration, Expr::value(duration))
                .col_expr(Column::Quality, Expr::value(quality))
                .col_expr(Column::UpdatedAt, Expr::value(ended))
                .filter(Column::Uuid.eq(uuid))
                .exec(db)
                .await
                .map(|_| ()),
            Op::Insert(_) | Op::Flush(_) => Ok(()),
        };
        statements += 1;
        if let Err(e) = result {
            tracing::error!(error = %e, "call record change refused");
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uuid: &str) -> call::Model {
        let now = Utc::now();
        call::Model {
            uuid: uuid.into(),
            conversation_uuid: "CON-1".into(),
            application_id: None,
            direction: "inbound".into(),
            status: "started".into(),
            from_type: "sip".into(),
            from_number: "a".into(),
            to_type: "sip".into(),
            to_number: "b".into(),
            sip_call_id: "c".into(),
            detail: None,
            start_time: None,
            end_time: None,
            duration: None,
            quality: None,
            sip_code: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn ended_legs_are_due_soon_and_open_ones_after_the_delay() {
        let mut w = Writer::default();
        let t0 = Utc::now();
        let ops = vec![
            Op::Insert(Box::new(row("short"))),
            Op::Insert(Box::new(row("long"))),
            Op::Answered { uuid: "long".into(), at: t0 },
            Op::Finished {
                uuid: "short".into(),
                status: "completed".into(),
                detail: None,
                ended: t0,
                duration: None,
                quality: None,
                sip_code: None,
            },
        ];
        let now = std::time::Instant::now();
        w.last_write = Some(now);
        assert!(w.fold(ops.into_iter()).is_empty());
        assert!(w.due(false, now).0.is_empty(), "changes gather a moment");
        let now = now + ENDED_ROW_DELAY;
        let (rows, strays) = w.due(false, now);
        let uuids: Vec<_> = rows.iter().map(|r| (r.uuid.as_str(), r.status.as_str())).collect();
        assert_eq!(uuids, [("short", "completed")], "the ended leg, once, whole");
        assert!(strays.is_empty());
        assert!(w.due(false, now + ENDED_ROW_DELAY).0.is_empty(), "the open leg waits");
        let later = w.due(false, now + OPEN_ROW_DELAY + ENDED_ROW_DELAY);
        assert_eq!(later.0.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["answered"]);
        assert!(w.due(true, now).0.is_empty(), "written, so no longer dirty");
        w.fold(vec![Op::Answered { uuid: "long".into(), at: t0 }].into_iter());
        assert_eq!(w.due(true, now).0.len(), 1, "a flush writes what is dirty at once");
    }

    #[tokio::test]
    async fn changes_land_in_order_and_flush_waits_for_them() {
        let dir = std::env::temp_dir().join(format!("vb-records-{}", uuid::Uuid::new_v4().simple()));
        let db =
            super::super::connect(&format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display())).await.unwrap();
        let records = CallRecords::start(db.clone());
        let t0 = Utc::now();
        for i in 0..300 {
            records.insert(row(&format!("u{i}")));
        }
        records.insert(row("u0")); // a duplicate: skipped
        records.answered("u1", t0);
        let quality = domains::quality::Quality { packets_lost: 12, mos: 3.9, ..Default::default() };
        let ended = t0 + chrono::Duration::seconds(42);
        let finish = Finish {
            status: "completed",
            detail: None,
            answered: Some(t0),
            ended,
            quality: Some(&quality),
            sip_code: Some(200),
        };
        records.finished("u1", finish);
        records.flush().await;
        let all = Entity::find().all(&db).await.unwrap();
        assert_eq!(all.len(), 300);
        let u1 = Entity::find_by_id("u1".to_owned()).one(&db).await.unwrap().unwrap();
        assert_eq!((u1.status.as_str(), u1.duration, u1.sip_code), ("completed", Some(42), Some(200)));
        let stored: domains::quality::Quality = serde_json::from_str(u1.quality.as_deref().unwrap()).unwrap();
        assert_eq!(stored, quality);
        // A leg whose changes come in separate batches: each one lands on the written row.
        let status = |uuid: &'static str| {
            let db = db.clone();
            async move { Entity::find_by_id(uuid.to_owned()).one(&db).await.unwrap().map(|r| (r.status, r.duration)) }
        };
        records.insert(row("late"));
        records.flush().await;
        assert_eq!(status("late").await, Some(("started".to_owned(), None)));
        records.answered("late", t0);
        records.flush().await;
        assert_eq!(status("late").await, Some(("answered".to_owned(), None)));
        let ended = t0 + chrono::Duration::seconds(7);
        records.finished(
            "late",
            Finish { status: "completed", detail: None, answered: Some(t0), ended, quality: None, sip_code: None },
        );
        records.flush().await;
        assert_eq!(status("late").await, Some(("completed".to_owned(), Some(7))));
        // A change to a row the writer did not insert is applied to the table as it stands.
        Entity::insert(call::ActiveModel::from(row("outside"))).exec_without_returning(&db).await.unwrap();
        records.answered("outside", t0);
        records.flush().await;
        assert_eq!(status("outside").await, Some(("answered".to_owned(), None)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
