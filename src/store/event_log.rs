//! The order event log as consumers read it: in position order, resumable from a cursor.
//!
//! A position is (`tx_position`, `id`); see the migration `m20261129_000003_event_log` for
//! why ids alone are not enough on PostgreSQL. A read hands out only *settled* events:
//! on PostgreSQL those of transactions older than the oldest transaction still running
//! (`pg_snapshot_xmin` of the statement's own snapshot), which can no longer be joined by
//! an event with a smaller position; on SQLite every committed event, since one
//! transaction writes at a time and ids commit in order. So a reader that has seen
//! position N is never later handed one below N.
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use entity::order_event;
use tokio::sync::watch;

use super::orders::TenantScope;
use super::{numbered_placeholders, Pool, Store, StoreError};
use crate::domain::OrderState;
use entity::{EventKind, EventPayload};

/// PostgreSQL: queued by the first event of a transaction, delivered to every process's
/// event feed when (and only if) it commits. NOTIFYs of one transaction are folded into one.
pub(crate) const NOTIFY_EVENTS_WRITTEN: &str = "SELECT pg_notify('order_events', '')";
/// The channel of `NOTIFY_EVENTS_WRITTEN`.
pub const EVENTS_CHANNEL: &str = "order_events";

/// Where an event stands in the log. Ordered as the log is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub tx: i64,
    pub id: i64,
}

impl Position {
    /// Before every event.
    pub const START: Position = Position { tx: 0, id: 0 };

    pub fn of(event: &order_event::Model) -> Position {
        Position {
            tx: event.tx_position,
            id: event.id,
        }
    }

    /// The cursor handed out: 32 hex digits, so that cursors compare as text in the same
    /// order as the events (a receiver can order and de-duplicate by it).
    pub fn cursor(self) -> String {
        format!("{:016x}{:016x}", self.tx as u64, self.id as u64)
    }

    /// A cursor from `cursor()`; None for anything else.
    pub fn parse(cursor: &str) -> Option<Position> {
        if cursor.len() != 32 || !cursor.is_ascii() {
            return None;
        }
        let tx = u64::from_str_radix(&cursor[..16], 16).ok()?;
        let id = u64::from_str_radix(&cursor[16..], 16).ok()?;
        Some(Position {
            tx: i64::try_from(tx).ok()?,
            id: i64::try_from(id).ok()?,
        })
    }
}

/// Which events a reader wants. Empty lists mean "all".
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub scope: Option<TenantScope>,
    pub merchant_id: Option<i64>,
    pub order_id: Option<i64>,
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    pub fn matches(&self, event: &order_event::Model) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|scope| scope.allows(event.merchant_id))
            && self.merchant_id.is_none_or(|m| m == event.merchant_id)
            && self.order_id.is_none_or(|o| o == event.order_id)
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}

/// One read of the feed: the settled events, and whether committed events wait behind a
/// transaction still running (read again soon: no NOTIFY may announce its end).
pub struct FeedBatch {
    pub events: Vec<order_event::Model>,
    pub held_back: bool,
}

const COLUMNS: &str = "id, order_id, merchant_id, kind, from_state, to_state, cause, actor, \
    message, forced, created_at, tx_position, payload";
/// The oldest transaction still running, as the statement's snapshot sees it.
const PG_HORIZON: &str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

type Row = (
    i64,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    bool,
    DateTime<Utc>,
    i64,
    Option<sqlx::types::Json<EventPayload>>,
);

#[derive(Clone)]
enum Bind {
    Int(i64),
    Text(&'static str),
}

impl Store {
    /// Settled events after `after` that pass `filter`, in log order, at most `limit`.
    pub async fn events_after(
        &self,
        filter: &EventFilter,
        after: Position,
        limit: u64,
    ) -> Result<Vec<order_event::Model>, StoreError> {
        let Some((conditions, binds)) = self.filter_conditions(filter) else {
            return Ok(Vec::new());
        };
        let (sql, binds) = self.after_position(COLUMNS, &conditions, binds, after, limit);
        let rows: Vec<Row> = self.fetch_rows(&sql, binds).await?;
        rows.into_iter().map(decode).collect()
    }

    /// `filter` as conditions on `order_events` (`AND ...`) with their binds, settled events
    /// only; `None` when it can match nothing (a scope of no merchants).
    fn filter_conditions(&self, filter: &EventFilter) -> Option<(String, Vec<Bind>)> {
        let mut conditions = String::new();
        let mut binds = Vec::new();
        if let Some(TenantScope::Merchants(ids)) = &filter.scope {
            if ids.is_empty() {
                return None;
            }
            conditions.push_str(&format!(
                " AND merchant_id IN ({})",
                placeholders(ids.len())
            ));
            binds.extend(ids.iter().map(|id| Bind::Int(*id)));
        }
        if let Some(merchant_id) = filter.merchant_id {
            conditions.push_str(" AND merchant_id = ?");
            binds.push(Bind::Int(merchant_id));
        }
        if let Some(order_id) = filter.order_id {
            conditions.push_str(" AND order_id = ?");
            binds.push(Bind::Int(order_id));
        }
        if !filter.kinds.is_empty() {
            conditions.push_str(&format!(
                " AND kind IN ({})",
                placeholders(filter.kinds.len())
            ));
            binds.extend(filter.kinds.iter().map(|kind| Bind::Text(kind.as_str())));
        }
        if self.is_postgres() {
            conditions.push_str(&format!(" AND tx_position < {PG_HORIZON}"));
        }
        Some((conditions, binds))
    }

    /// `SELECT <columns> FROM order_events` of the events after `after` that meet
    /// `conditions` (`AND ...`, with `binds`), in log order, at most `limit`; with its binds.
    /// PostgreSQL reads `(tx_position, id) > (?, ?)` as one index range. SQLite takes only
    /// its first column as the range, and there every event has tx_position 0, so it would
    /// read the whole log up to the position (40 ms at 600,000 events, on every poll):
    /// there the two halves of the comparison are two ranges, each one index search.
    fn after_position(
        &self,
        columns: &str,
        conditions: &str,
        binds: Vec<Bind>,
        after: Position,
        limit: u64,
    ) -> (String, Vec<Bind>) {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if self.is_postgres() {
            let sql = format!(
                "SELECT {columns} FROM order_events WHERE (tx_position, id) > (?, ?){conditions} \
                 ORDER BY tx_position, id LIMIT ?"
            );
            let mut all = vec![Bind::Int(after.tx), Bind::Int(after.id)];
            all.extend(binds);
            all.push(Bind::Int(limit));
            return (sql, all);
        }
        let sql = format!(
            "SELECT * FROM (SELECT {columns} FROM order_events \
                 WHERE tx_position = ? AND id > ?{conditions} ORDER BY tx_position, id LIMIT ?) \
             UNION ALL \
             SELECT * FROM (SELECT {columns} FROM order_events \
                 WHERE tx_position > ?{conditions} ORDER BY tx_position, id LIMIT ?) \
             ORDER BY tx_position, id LIMIT ?"
        );
        let mut all = vec![Bind::Int(after.tx), Bind::Int(after.id)];
        all.extend(binds.iter().cloned());
        all.push(Bind::Int(limit));
        all.push(Bind::Int(after.tx));
        all.extend(binds);
        all.push(Bind::Int(limit));
        all.push(Bind::Int(limit));
        (sql, all)
    }

    /// One event by its id, settled or not.
    pub async fn event_by_id(&self, id: i64) -> Result<Option<order_event::Model>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM order_events WHERE id = ?");
        let rows: Vec<Row> = self.fetch_rows(&sql, vec![Bind::Int(id)]).await?;
        rows.into_iter().next().map(decode).transpose()
    }

    /// The next events of the whole log after `after`, for the feed that fans them out.
    pub async fn feed_batch(&self, after: Position, limit: u64) -> Result<FeedBatch, StoreError> {
        // One statement: the events and the horizon come from the same snapshot.
        let horizon = if self.is_postgres() {
            PG_HORIZON
        } else {
            "NULL"
        };
        let (sql, binds) = self.after_position(
            &format!("{COLUMNS}, {horizon} AS horizon"),
            "",
            Vec::new(),
            after,
            limit,
        );
        let rows: Vec<RowWithHorizon> = self.fetch_rows(&sql, binds).await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut held_back = false;
        for RowWithHorizon(row, horizon) in rows {
            // Ordered by tx_position: from the first unsettled row on, none is settled.
            if horizon.is_some_and(|horizon| row.11 >= horizon) {
                held_back = true;
                break;
            }
            events.push(decode(row)?);
        }
        Ok(FeedBatch { events, held_back })
    }

    /// The position of the newest settled event: a feed starting now continues after it.
    pub async fn event_log_head(&self) -> Result<Position, StoreError> {
        let sql = match self.pool {
            Pool::Postgres(_) => format!(
                "SELECT tx_position, id FROM order_events WHERE tx_position < {PG_HORIZON} \
                 ORDER BY tx_position DESC, id DESC LIMIT 1"
            ),
            Pool::Sqlite(_) => {
                "SELECT tx_position, id FROM order_events ORDER BY tx_position DESC, id DESC LIMIT 1"
                    .to_owned()
            }
        };
        let head: Option<(i64, i64)> = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(head.map_or(Position::START, |(tx, id)| Position { tx, id }))
    }

    async fn fetch_rows<T>(&self, sql: &str, binds: Vec<Bind>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        macro_rules! run {
            ($pool:expr, $sql:expr) => {{
                let mut query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe($sql));
                for bind in binds {
                    query = match bind {
                        Bind::Int(v) => query.bind(v),
                        Bind::Text(v) => query.bind(v),
                    };
                }
                query.fetch_all($pool).await?
            }};
        }
        Ok(match &self.pool {
            Pool::Sqlite(pool) => run!(pool, sql.to_owned()),
            Pool::Postgres(pool) => run!(pool, numbered_placeholders(sql)),
        })
    }
}

/// A row of `feed_batch`: the event's columns, then the horizon (NULL on SQLite).
struct RowWithHorizon(Row, Option<i64>);

impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for RowWithHorizon {
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(RowWithHorizon(Row::from_row(row)?, row.try_get(13)?))
    }
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for RowWithHorizon {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(RowWithHorizon(Row::from_row(row)?, row.try_get(13)?))
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn decode(row: Row) -> Result<order_event::Model, StoreError> {
    let (id, order_id, merchant_id, kind, from, to, cause, actor, message, forced, at, tx, payload) =
        row;
    let corrupt = |what: String| StoreError::Corrupt(format!("order event {id}: {what}"));
    let state = |s: Option<String>| -> Result<Option<OrderState>, StoreError> {
        s.map(|s| s.parse::<OrderState>().map_err(|e| corrupt(e.to_string())))
            .transpose()
    };
    let kind = <EventKind as sea_orm::ActiveEnum>::try_from_value(&kind)
        .map_err(|_| corrupt(format!("unknown kind `{kind}`")))?;
    Ok(order_event::Model {
        id,
        order_id,
        merchant_id,
        kind,
        from_state: state(from)?,
        to_state: state(to)?,
        cause,
        actor,
        message,
        forced,
        created_at: at,
        tx_position: tx,
        payload: payload.map(|p| p.0),
    })
}

/// Wakes this process's event feed: after a commit that wrote events, and on PostgreSQL
/// on another process's NOTIFY. Process-wide, like the job wake-ups: events are written
/// from the store, the services and the jobs alike.
static FEED_WAKEUPS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

pub fn wake_feeds() {
    FEED_WAKEUPS.send_modify(|n| *n = n.wrapping_add(1));
}

/// Changes at every `wake_feeds`.
pub fn feed_wakeups() -> watch::Receiver<u64> {
    FEED_WAKEUPS.subscribe()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On SQLite every event has tx_position 0: a read of the log after a position must
    /// still be index searches, not a walk of the log up to it.
    #[tokio::test]
    async fn sqlite_reads_the_log_after_a_position_by_index_searches() {
        let (_dir, store, _) =
            crate::store::temp_sqlite_store(crate::store::JOB_POOL_CONNECTIONS).await;
        let filters = [
            EventFilter::default(),
            EventFilter {
                merchant_id: Some(1),
                ..EventFilter::default()
            },
            EventFilter {
                order_id: Some(1),
                ..EventFilter::default()
            },
        ];
        for filter in filters {
            let (conditions, binds) = store.filter_conditions(&filter).expect("a filter");
            let (sql, binds) = store.after_position(
                "id, tx_position",
                &conditions,
                binds,
                Position { tx: 0, id: 5 },
                500,
            );
            let plan: Vec<(i64, i64, i64, String)> = store
                .fetch_rows(&format!("EXPLAIN QUERY PLAN {sql}"), binds)
                .await
                .expect("explain");
            let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
            assert!(
                plan.iter()
                    .any(|line| line.contains("tx_position=? AND id>?")),
                "the first range is one index search: {plan:#?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|line| line.starts_with("SCAN") && !line.contains("subquery")),
                "no step walks the table or an index (a branch's own result is bounded by \
                 its LIMIT): {plan:#?}"
            );
        }
    }

    #[test]
    fn cursors_compare_as_text_like_positions_and_parse_back() {
        let positions = [
            Position { tx: 0, id: 9 },
            Position { tx: 0, id: 10 },
            Position { tx: 7, id: 2 },
            Position { tx: 7, id: 300 },
            Position { tx: 1 << 40, id: 1 },
        ];
        for pair in positions.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].cursor() < pair[1].cursor(), "{pair:?}");
        }
        for position in positions {
            assert_eq!(Position::parse(&position.cursor()), Some(position));
        }
        for bad in ["", "12", "zz", &"f".repeat(32), &"0".repeat(33)] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }
}
