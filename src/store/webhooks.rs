//! Webhook endpoints, deliveries and their attempts; and the fan-out that turns new events
//! of the log into one delivery per matching endpoint, each with its job.
//!
//! Secrets are stored as the caller hands them in (encrypted by the service); this module
//! never sees them in the clear.
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::event_log::{EventFilter, Position};
use super::jobs_table::{webhook_task, DeliverWebhook};
use super::orders::TenantScope;
use super::write::{on_tx, WriteTx};
use super::{Store, StoreError};
use entity::{order_event, EventKind};

/// Deliveries made per fan-out transaction.
const FAN_OUT_BATCH: u64 = 500;
const DISABLED_WHEN_FANNED_OUT: &str =
    "the endpoint was disabled when this event happened: enable it, then re-send its failed deliveries";

#[derive(Clone, Debug)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub merchant_id: i64,
    pub url: String,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    /// Events after this position are delivered to it.
    pub start: Position,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// Whether the event is for this endpoint (enabled or not: a disabled endpoint's
    /// deliveries are recorded as failed, to be re-sent once it is enabled again).
    pub fn wants(&self, event: &order_event::Model) -> bool {
        event.merchant_id == self.merchant_id
            && Position::of(event) > self.start
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Given up: retried for the whole retry period, or its endpoint was disabled.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    fn parse(text: &str) -> Result<DeliveryStatus, StoreError> {
        match text {
            "PENDING" => Ok(DeliveryStatus::Pending),
            "DELIVERED" => Ok(DeliveryStatus::Delivered),
            "FAILED" => Ok(DeliveryStatus::Failed),
            other => Err(StoreError::Corrupt(format!(
                "webhook delivery status `{other}`"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_id: i64,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Retries stop once this is older than the retry period: the delivery's creation, or
    /// its last re-send.
    pub retry_window_start: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct WebhookAttempt {
    pub delivery_id: i64,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
}

/// What a delivery attempt needs: the delivery, its endpoint and its event.
pub struct DeliveryWork {
    pub delivery: WebhookDelivery,
    pub endpoint: WebhookEndpoint,
    pub event: order_event::Model,
}

/// What happens after an attempt.
#[derive(Clone, Debug)]
pub enum AfterAttempt {
    Delivered,
    /// Try again after this long.
    RetryIn(std::time::Duration),
    /// Stop trying this delivery.
    GiveUp(String),
    /// Stop trying, and disable the endpoint with this reason for its owner.
    DisableEndpoint(String),
}

const ENDPOINT_COLUMNS: &str = "id, merchant_id, url, kinds, secret, previous_secret, \
    previous_secret_until, enabled, disabled_reason, failing_since, start_tx, start_id, \
    created_by, created_at, updated_at";

type EndpointRow = (
    i64,
    i64,
    String,
    Json<Vec<String>>,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    bool,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
    i64,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn endpoint(row: EndpointRow) -> Result<WebhookEndpoint, StoreError> {
    let (id, merchant_id, url, kinds, secret, previous_secret, previous_secret_until, enabled) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let kinds = kinds
        .0
        .iter()
        .map(|kind| {
            <EventKind as sea_orm::ActiveEnum>::try_from_value(kind).map_err(|_| {
                StoreError::Corrupt(format!("webhook endpoint {id}: unknown kind `{kind}`"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(WebhookEndpoint {
        id,
        merchant_id,
        url,
        kinds,
        secret,
        previous_secret,
        previous_secret_until,
        enabled,
        disabled_reason: row.8,
        failing_since: row.9,
        start: Position {
            tx: row.10,
            id: row.11,
        },
        created_by: row.12,
        created_at: row.13,
        updated_at: row.14,
    })
}

type AttemptRow = (
    i64,
    i32,
    DateTime<Utc>,
    Option<i32>,
    Option<String>,
    i64,
    Option<String>,
);

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, status, attempts, next_attempt_at, \
    last_error, created_at, retry_window_start, delivered_at";

type DeliveryRow = (
    i64,
    i64,
    i64,
    String,
    i32,
    Option<DateTime<Utc>>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn delivery(row: DeliveryRow) -> Result<WebhookDelivery, StoreError> {
    Ok(WebhookDelivery {
        id: row.0,
        endpoint_id: row.1,
        event_id: row.2,
        status: DeliveryStatus::parse(&row.3)?,
        attempts: row.4,
        next_attempt_at: row.5,
        last_error: row.6,
        created_at: row.7,
        retry_window_start: row.8,
        delivered_at: row.9,
    })
}

fn kind_names(kinds: &[EventKind]) -> Json<Vec<&'static str>> {
    Json(kinds.iter().map(|k| k.as_str()).collect())
}

/// A new endpoint, its secret already encrypted.
pub struct NewEndpoint<'a> {
    pub merchant_id: i64,
    pub url: &'a str,
    pub kinds: &'a [EventKind],
    pub secret: &'a str,
    pub created_by: &'a str,
}

/// Changes to an endpoint; None leaves a field as it is.
#[derive(Default)]
pub struct EndpointChanges<'a> {
    pub url: Option<&'a str>,
    pub kinds: Option<&'a [EventKind]>,
    pub enabled: Option<bool>,
}

impl Store {
    /// Registers the endpoint, unless the merchant already has `max` (then None). It gets
    /// the events the fan-out has not reached yet: the cursor is read in the same
    /// transaction, locked against a fan-out committing meanwhile (SQLite: one writer).
    pub async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint<'_>,
        max: usize,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = Utc::now();
        let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
        if tx.is_postgres() {
            // Two registrations for one merchant count one after the other.
            on_tx!(&mut tx, |conn, sql| {
                sqlx::query(sql("SELECT id FROM merchants WHERE id = ? FOR UPDATE"))
                    .bind(new.merchant_id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
            });
        }
        let existing: i64 = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(
                "SELECT COUNT(*) FROM webhook_endpoints WHERE merchant_id = ?",
            ))
            .bind(new.merchant_id)
            .fetch_one(&mut *conn)
            .await?
        });
        if usize::try_from(existing).unwrap_or(usize::MAX) >= max {
            return Ok(None);
        }
        let (start_tx, start_id): (i64, i64) = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT tx_position, event_id FROM webhook_fanout WHERE id = 1{lock}"
            )))
            .fetch_one(&mut *conn)
            .await?
        });
        let row: EndpointRow = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "INSERT INTO webhook_endpoints (merchant_id, url, kinds, secret, enabled, start_tx, \
                 start_id, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 RETURNING {ENDPOINT_COLUMNS}"
            )))
            .bind(new.merchant_id)
            .bind(new.url)
            .bind(kind_names(new.kinds))
            .bind(new.secret)
            .bind(true)
            .bind(start_tx)
            .bind(start_id)
            .bind(new.created_by)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?
        });
        tx.commit().await?;
        endpoint(row).map(Some)
    }

    /// The endpoints of the merchant, oldest first; or of all the scope's merchants.
    pub async fn webhook_endpoints(
        &self,
        scope: &TenantScope,
        merchant_id: Option<i64>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<EndpointRow> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                 WHERE (? IS NULL OR merchant_id = ?) ORDER BY id"
            )))
            .bind(merchant_id)
            .bind(merchant_id)
            .fetch_all(&mut *conn)
            .await?
        });
        tx.commit().await?;
        rows.into_iter()
            .map(endpoint)
            .filter(|e| e.as_ref().map_or(true, |e| scope.allows(e.merchant_id)))
            .collect()
    }

    /// The endpoint, when it exists and the scope may see it.
    pub async fn webhook_endpoint(
        &self,
        scope: &TenantScope,
        id: i64,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.begin_read().await?;
        let found = endpoint_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(found.filter(|e| scope.allows(e.merchant_id)))
    }

    pub async fn update_webhook_endpoint(
        &self,
        id: i64,
        changes: EndpointChanges<'_>,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = Utc::now();
        let updated = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql("UPDATE webhook_endpoints SET url = COALESCE(?, url), \
                 kinds = COALESCE(?, kinds), enabled = COALESCE(?, enabled), \
                 disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, \
                 failing_since = CASE WHEN ? THEN NULL ELSE failing_since END, \
                 updated_at = ? WHERE id = ?"))
            .bind(changes.url)
            .bind(changes.kinds.map(kind_names))
            .bind(changes.enabled)
            .bind(changes.enabled == Some(true))
            .bind(changes.enabled == Some(true))
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        let found = if updated == 1 {
            endpoint_in(&mut tx, id).await?
        } else {
            None
        };
        tx.commit().await?;
        Ok(found)
    }

    pub async fn delete_webhook_endpoint(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_tx().await?;
        let deleted = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql("DELETE FROM webhook_endpoints WHERE id = ?"))
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Makes `secret` the signing secret; the one it replaces still signs (beside it)
    /// until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        id: i64,
        secret: &str,
        previous_until: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.begin_tx().await?;
        let updated = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE webhook_endpoints SET previous_secret = secret, secret = ?, \
                 previous_secret_until = ?, updated_at = ? WHERE id = ?",
            ))
            .bind(secret)
            .bind(previous_until)
            .bind(Utc::now())
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        let found = if updated == 1 {
            endpoint_in(&mut tx, id).await?
        } else {
            None
        };
        tx.commit().await?;
        Ok(found)
    }

    /// With no endpoint registered (as the caller read with the cursor) no event becomes a
    /// delivery: the cursor moves to the log's head in one step instead of reading every
    /// event on the way (after a restart on a large log, that was minutes of work for
    /// nothing). Checked again and moved in one transaction holding the cursor, as a
    /// registration does (it starts a new endpoint at the cursor), so an endpoint
    /// registered meanwhile keeps every event after its start. False when the cursor moved
    /// or an endpoint came meanwhile: then the events are fanned out as usual.
    async fn skip_to_log_head(&self, cursor: Position) -> Result<bool, StoreError> {
        let head = self.event_log_head().await?;
        if head <= cursor {
            return Ok(true);
        }
        let mut tx = self.begin_tx().await?;
        let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
        let held: Option<(i64, i64)> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT tx_position, event_id FROM webhook_fanout \
                 WHERE id = 1 AND tx_position = ? AND event_id = ?{lock}"
            )))
            .bind(cursor.tx)
            .bind(cursor.id)
            .fetch_optional(&mut *conn)
            .await?
        });
        if held.is_none() || any_webhook_endpoint(&mut tx).await? {
            // Moved by another process meanwhile, or an endpoint came: the usual path.
            tx.commit().await?;
            return Ok(false);
        }
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE webhook_fanout SET tx_position = ?, event_id = ? WHERE id = 1",
            ))
            .bind(head.tx)
            .bind(head.id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(true)
    }

    /// Turns the next settled events of the log into deliveries for the endpoints that
    /// want them, with a job each, and moves the fan-out cursor past them, all in one
    /// transaction; returns how many events it went through.
    pub async fn fan_out_webhooks(&self) -> Result<usize, StoreError> {
        let mut read = self.begin_read().await?;
        let (cursor_tx, cursor_id, any_endpoint): (i64, i64, bool) =
            on_tx!(&mut read, |conn, sql| {
                sqlx::query_as(sql(
                    "SELECT tx_position, event_id, EXISTS (SELECT 1 FROM webhook_endpoints) \
                     FROM webhook_fanout WHERE id = 1",
                ))
                .fetch_one(&mut *conn)
                .await?
            });
        read.commit().await?;
        let cursor = Position {
            tx: cursor_tx,
            id: cursor_id,
        };
        if !any_endpoint && self.skip_to_log_head(cursor).await? {
            return Ok(0);
        }
        // Read before the transaction: settled events are final, whoever reads them, and
        // no write lock is held while reading.
        let events = self
            .events_after(&EventFilter::default(), cursor, FAN_OUT_BATCH)
            .await?;
        let Some(last) = events.last().map(Position::of) else {
            return Ok(0);
        };
        let mut tx = self.begin_tx().await?;
        // Moves the cursor only from where it was read: of two processes fanning out the
        // same events, the second finds it moved (after waiting for the first's commit on
        // PostgreSQL) and leaves them.
        let moved = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE webhook_fanout SET tx_position = ?, event_id = ? \
                 WHERE id = 1 AND tx_position = ? AND event_id = ?",
            ))
            .bind(last.tx)
            .bind(last.id)
            .bind(cursor.tx)
            .bind(cursor.id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        if moved != 1 {
            return Ok(0);
        }
        let rows: Vec<EndpointRow> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints"
            )))
            .fetch_all(&mut *conn)
            .await?
        });
        let endpoints = rows
            .into_iter()
            .map(endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        let now = Utc::now();
        let mut tasks = Vec::new();
        for event in &events {
            for endpoint in endpoints.iter().filter(|e| e.wants(event)) {
                // A disabled endpoint's deliveries wait, failed, for a re-send.
                let (status, next_at, error) = if endpoint.enabled {
                    (DeliveryStatus::Pending, Some(now), None)
                } else {
                    (DeliveryStatus::Failed, None, Some(DISABLED_WHEN_FANNED_OUT))
                };
                let id: Option<i64> = on_tx!(&mut tx, |conn, sql| {
                    sqlx::query_scalar(sql(
                        "INSERT INTO webhook_deliveries (endpoint_id, event_id, status, attempts, \
                         next_attempt_at, last_error, created_at, retry_window_start) \
                         VALUES (?, ?, ?, 0, ?, ?, ?, ?) \
                         ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id",
                    ))
                    .bind(endpoint.id)
                    .bind(event.id)
                    .bind(status.as_str())
                    .bind(next_at)
                    .bind(error)
                    .bind(now)
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?
                });
                if let (Some(delivery_id), true) = (id, endpoint.enabled) {
                    tasks.push(webhook_task(&DeliverWebhook { delivery_id }, None)?);
                }
            }
        }
        tx.push_jobs(tasks).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// The delivery with its endpoint and event, while it still waits to be delivered.
    pub async fn webhook_delivery_work(
        &self,
        delivery_id: i64,
    ) -> Result<Option<DeliveryWork>, StoreError> {
        let mut tx = self.begin_read().await?;
        let row: Option<DeliveryRow> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?"
            )))
            .bind(delivery_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        let Some(found) = row.map(delivery).transpose()? else {
            tx.commit().await?;
            return Ok(None);
        };
        let endpoint = endpoint_in(&mut tx, found.endpoint_id).await?;
        tx.commit().await?;
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        let event = self.event_by_id(found.event_id).await?;
        Ok(event.map(|event| DeliveryWork {
            delivery: found,
            endpoint,
            event,
        }))
    }

    /// Records an attempt and what follows it, in one transaction: the delivery's status,
    /// the endpoint's failing streak (or its disabling), and the next attempt's job.
    /// Nothing is recorded when the delivery moved on meanwhile (another run of the same
    /// task recorded this attempt, or the endpoint was deleted); returns whether it was.
    pub async fn record_webhook_attempt(
        &self,
        work: &DeliveryWork,
        attempt: &WebhookAttempt,
        after: &AfterAttempt,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = Utc::now();
        // The endpoint first, then its delivery: the order a deletion locks them in
        // (PostgreSQL; SQLite has one writer), so the two never wait on each other.
        let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
        let endpoint_exists: Option<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(&format!(
                "SELECT id FROM webhook_endpoints WHERE id = ?{lock}"
            )))
            .bind(work.endpoint.id)
            .fetch_optional(&mut *conn)
            .await?
        });
        if endpoint_exists.is_none() {
            return Ok(false);
        }
        let last_error = attempt.error.clone().or_else(|| {
            attempt
                .status_code
                .map(|code| format!("the endpoint answered HTTP {code}"))
        });
        let (status, next_at, error) = match after {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None, None),
            AfterAttempt::RetryIn(delay) => (
                DeliveryStatus::Pending,
                Some(now + chrono::Duration::from_std(*delay).unwrap_or_default()),
                last_error,
            ),
            AfterAttempt::GiveUp(reason) | AfterAttempt::DisableEndpoint(reason) => (
                DeliveryStatus::Failed,
                None,
                Some(format!("{}; {reason}", last_error.unwrap_or_default())),
            ),
        };
        // Only from the state this attempt started from.
        let updated = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, \
                 last_error = ?, delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END \
                 WHERE id = ? AND status = ? AND attempts = ?",
            ))
            .bind(status.as_str())
            .bind(attempt.attempt)
            .bind(next_at)
            .bind(error.as_deref())
            .bind(matches!(after, AfterAttempt::Delivered))
            .bind(now)
            .bind(work.delivery.id)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(work.delivery.attempts)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        if updated != 1 {
            return Ok(false);
        }
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code, \
                 error, latency_ms, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(attempt.delivery_id)
            .bind(attempt.attempt)
            .bind(attempt.started_at)
            .bind(attempt.status_code)
            .bind(attempt.error.as_deref())
            .bind(attempt.latency_ms)
            .bind(attempt.response_excerpt.as_deref())
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        on_tx!(&mut tx, |conn, sql| {
            let query = match after {
                AfterAttempt::Delivered => sqlx::query(sql(
                    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?",
                ))
                .bind(work.endpoint.id),
                AfterAttempt::DisableEndpoint(reason) => sqlx::query(sql(
                    "UPDATE webhook_endpoints SET enabled = ?, disabled_reason = ?, \
                     failing_since = COALESCE(failing_since, ?), updated_at = ? WHERE id = ?",
                ))
                .bind(false)
                .bind(reason.as_str())
                .bind(attempt.started_at)
                .bind(now)
                .bind(work.endpoint.id),
                _ => sqlx::query(sql(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) \
                     WHERE id = ?",
                ))
                .bind(attempt.started_at)
                .bind(work.endpoint.id),
            };
            query.execute(&mut *conn).await?.rows_affected()
        });
        if let AfterAttempt::RetryIn(delay) = after {
            let task = webhook_task(
                &DeliverWebhook {
                    delivery_id: work.delivery.id,
                },
                Some(*delay),
            )?;
            tx.push_jobs(vec![task]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Marks a delivery failed without an attempt (its endpoint was disabled meanwhile).
    pub async fn fail_webhook_delivery(
        &self,
        delivery_id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE webhook_deliveries SET status = ?, last_error = ?, next_attempt_at = NULL \
                 WHERE id = ? AND status = ?",
            ))
            .bind(DeliveryStatus::Failed.as_str())
            .bind(reason)
            .bind(delivery_id)
            .bind(DeliveryStatus::Pending.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await
    }

    /// The endpoint's deliveries, newest first, after `after_id` (older than it).
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: i64,
        status: Option<DeliveryStatus>,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<DeliveryRow> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = ? \
                 AND (? IS NULL OR status = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
            )))
            .bind(endpoint_id)
            .bind(status.map(DeliveryStatus::as_str))
            .bind(status.map(DeliveryStatus::as_str))
            .bind(after_id)
            .bind(after_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?
        });
        tx.commit().await?;
        rows.into_iter().map(delivery).collect()
    }

    pub async fn webhook_delivery(
        &self,
        delivery_id: i64,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        let mut tx = self.begin_read().await?;
        let row: Option<DeliveryRow> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?"
            )))
            .bind(delivery_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        tx.commit().await?;
        row.map(delivery).transpose()
    }

    /// The attempts of a delivery, first first.
    pub async fn webhook_attempts(
        &self,
        delivery_id: i64,
    ) -> Result<Vec<WebhookAttempt>, StoreError> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<AttemptRow> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(
                "SELECT delivery_id, attempt, started_at, status_code, error, latency_ms, \
                     response_excerpt FROM webhook_attempts WHERE delivery_id = ? ORDER BY id",
            ))
            .bind(delivery_id)
            .fetch_all(&mut *conn)
            .await?
        });
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| WebhookAttempt {
                delivery_id: r.0,
                attempt: r.1,
                started_at: r.2,
                status_code: r.3,
                error: r.4,
                latency_ms: r.5,
                response_excerpt: r.6,
            })
            .collect())
    }

    /// Sends a delivery that is not waiting for an attempt (delivered or failed) again,
    /// with a job at once and a fresh retry period. None when there is no such delivery.
    pub async fn resend_webhook_delivery(
        &self,
        delivery_id: i64,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        self.resend_deliveries("id = ?", delivery_id).await?;
        self.webhook_delivery(delivery_id).await
    }

    /// Sends every failed delivery of the endpoint again; returns how many.
    pub async fn resend_failed_webhook_deliveries(
        &self,
        endpoint_id: i64,
    ) -> Result<usize, StoreError> {
        self.resend_deliveries("endpoint_id = ? AND status = 'FAILED'", endpoint_id)
            .await
    }

    async fn resend_deliveries(&self, which: &str, id: i64) -> Result<usize, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = Utc::now();
        let ids: Vec<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(&format!(
                "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, \
                 retry_window_start = ? WHERE {which} AND status <> ? RETURNING id"
            )))
            .bind(DeliveryStatus::Pending.as_str())
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(DeliveryStatus::Pending.as_str())
            .fetch_all(&mut *conn)
            .await?
        });
        let tasks = ids
            .iter()
            .map(|delivery_id| {
                webhook_task(
                    &DeliverWebhook {
                        delivery_id: *delivery_id,
                    },
                    None,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        tx.push_jobs(tasks).await?;
        tx.commit().await?;
        Ok(ids.len())
    }
}

async fn endpoint_in(tx: &mut WriteTx, id: i64) -> Result<Option<WebhookEndpoint>, StoreError> {
    let row: Option<EndpointRow> = on_tx!(tx, |conn, sql| {
        sqlx::query_as(sql(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    });
    row.map(endpoint).transpose()
}

async fn any_webhook_endpoint(tx: &mut WriteTx) -> Result<bool, StoreError> {
    Ok(on_tx!(tx, |conn, sql| {
        sqlx::query_scalar(sql("SELECT EXISTS (SELECT 1 FROM webhook_endpoints)"))
            .fetch_one(&mut *conn)
            .await?
    }))
}
