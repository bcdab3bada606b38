//! Call records written behind the call: a call hands each change of its legs' rows to one
//! writer task, which applies whatever has queued up in one transaction (one commit, one WAL
//! append, for many calls), so no call waits on the database. A reader that must see every change
//! made so far (the Voice API listing or fetching calls) awaits [`CallRecords::flush`].

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::entity::call::{self, Column, Entity};

/// Changes applied per transaction at most.
const BATCH: usize = 256;

/// A change to one leg's row.
#[derive(Debug)]
enum Op {
    Insert(Box<call::Model>),
    Answered { uuid: String, at: DateTime<Utc> },
    Finished { uuid: String, status: String, detail: Option<String>, ended: DateTime<Utc>, duration: Option<i32> },
    Flush(oneshot::Sender<()>),
}

/// The handle calls and readers share; cloning it is cheap.
#[derive(Clone)]
pub struct CallRecords {
    tx: mpsc::UnboundedSender<Op>,
}

impl CallRecords {
    /// Starts the writer on `db`.
    pub fn start(db: DatabaseConnection) -> CallRecords {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_behind(db, rx));
        CallRecords { tx }
    }

    pub fn insert(&self, row: call::Model) {
        self.send(Op::Insert(Box::new(row)));
    }

    pub fn answered(&self, uuid: &str, at: DateTime<Utc>) {
        self.send(Op::Answered { uuid: uuid.to_owned(), at });
    }

    /// The leg's terminal status; `duration` in whole seconds when it was answered.
    pub fn finished(
        &self,
        uuid: &str,
        status: &str,
        detail: Option<String>,
        answered: Option<DateTime<Utc>>,
        ended: DateTime<Utc>,
    ) {
        let duration = answered.map(|a| i32::try_from((ended - a).num_seconds().max(0)).unwrap_or(i32::MAX));
        self.send(Op::Finished { uuid: uuid.to_owned(), status: status.to_owned(), detail, ended, duration });
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

async fn write_behind(db: DatabaseConnection, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut flushes = Vec::new();
        let changes: Vec<Op> = batch
            .drain(..)
            .filter_map(|op| match op {
                Op::Flush(done) => {
                    flushes.push(done);
                    None
                }
                other => Some(other),
            })
            .collect();
        let count = changes.len();
        if count > 0 {
            if let Err(e) = apply(&db, changes).await {
                tracing::error!(error = %e, changes = count, "writing call records");
            }
            metrics::counter!("voxbridge_call_record_writes_total").increment(count as u64);
            metrics::counter!("voxbridge_call_record_batches_total").increment(1);
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn apply(db: &DatabaseConnection, changes: Vec<Op>) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    for op in changes {
        // One bad change (say, a duplicate uuid) must not lose the batch's others.
        let result = match op {
            Op::Insert(row) => {
                // A duplicate is skipped, not an error: on PostgreSQL an error would abort
                // the whole transaction.
                let model: call::ActiveModel = (*row).into();
                Entity::insert(model)
                    .on_conflict(OnConflict::column(Column::Uuid).do_nothing().to_owned())
                    .exec_without_returning(&txn)
                    .await
                    .map(|_| ())
            }
            Op::Answered { uuid, at } => Entity::update_many()
                .col_expr(Column::Status, Expr::value("answered"))
                .col_expr(Column::StartTime, Expr::value(at))
                .col_expr(Column::UpdatedAt, Expr::value(at))
                .filter(Column::Uuid.eq(uuid))
                .exec(&txn)
                .await
                .map(|_| ()),
            Op::Finished { uuid, status, detail, ended, duration } => Entity::update_many()
                .col_expr(Column::Status, Expr::value(status))
                .col_expr(Column::Detail, Expr::value(detail))
                .col_expr(Column::EndTime, Expr::value(ended))
                .col_expr(Column::Duration, Expr::value(duration))
                .col_expr(Column::UpdatedAt, Expr::value(ended))
                .filter(Column::Uuid.eq(uuid))
                .exec(&txn)
                .await
                .map(|_| ()),
            Op::Flush(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "call record change refused");
        }
    }
    txn.commit().await
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
            created_at: now,
            updated_at: now,
        }
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
        records.finished("u1", "completed", None, Some(t0), t0 + chrono::Duration::seconds(42));
        records.flush().await;
        let all = Entity::find().all(&db).await.unwrap();
        assert_eq!(all.len(), 300);
        let u1 = Entity::find_by_id("u1".to_owned()).one(&db).await.unwrap().unwrap();
        assert_eq!((u1.status.as_str(), u1.duration), ("completed", Some(42)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
