//! The `webhook_delivery` job: one attempt at one delivery, signed as Standard Webhooks
//! says, and what follows it (delivered, tried again later with backoff, given up, or the
//! endpoint disabled after failing for the whole retry period). And the fan-out, which
//! turns new events of the log into deliveries.
use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use entity::order_event;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::JobContext;
use crate::domain::webhooks::{retry_delay, sign};
use crate::events::EventFeed;
use crate::store::event_log::Position;
use crate::store::jobs_table::DeliverWebhook;
use crate::store::webhooks::{AfterAttempt, DeliveryStatus, WebhookAttempt};
use crate::store::{Store, StoreError};

/// The apalis handler. Only a failure to record the outcome reaches apalis (which then
/// re-runs the task: at least once).
pub(super) async fn deliver_webhook(
    job: DeliverWebhook,
    ctx: Data<JobContext>,
) -> Result<(), BoxDynError> {
    run(&ctx, job).await?;
    Ok(())
}

async fn run(ctx: &JobContext, job: DeliverWebhook) -> Result<(), StoreError> {
    let Some(work) = ctx.store.webhook_delivery_work(job.delivery_id).await? else {
        return Ok(()); // the endpoint was deleted
    };
    if work.delivery.status != DeliveryStatus::Pending {
        return Ok(()); // delivered meanwhile, or given up
    }
    if !work.endpoint.enabled {
        let reason = "the endpoint is disabled: enable it, then re-send this delivery";
        return ctx
            .store
            .fail_webhook_delivery(work.delivery.id, reason)
            .await;
    }
    let webhooks = &ctx.webhooks;
    let now = Utc::now();
    let body = serde_json::to_vec(&payload(&work.event))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The same for every attempt, so that a receiver de-duplicates retries by it.
    let message_id = format!("evt_{}", Position::of(&work.event).cursor());
    let timestamp = now.timestamp();
    let mut secrets = vec![webhooks.cipher.decrypt(&work.endpoint.secret)];
    if let Some(previous) = &work.endpoint.previous_secret {
        if work
            .endpoint
            .previous_secret_until
            .is_some_and(|until| until > now)
        {
            secrets.push(webhooks.cipher.decrypt(previous));
        }
    }
    let signatures: Result<Vec<String>, String> = secrets
        .into_iter()
        .map(|secret| {
            let secret = secret.map_err(|e| {
                format!("the endpoint's signing secret cannot be read ({e}: TOKEN_ENCRYPTION_KEY is unset or changed since it was made): rotate the secret, then enable the endpoint and re-send its failed deliveries")
            })?;
            sign(&secret, &message_id, timestamp, &body)
        })
        .collect();
    let attempt_number = work.delivery.attempts + 1;
    let (outcome, signing_error) = match signatures {
        Ok(signatures) => {
            let headers = [
                ("webhook-id", message_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signatures.join(" ")),
            ];
            (
                webhooks
                    .sender
                    .send(&work.endpoint.url, &headers, body)
                    .await,
                None,
            )
        }
        Err(error) => (
            crate::webhooks::AttemptOutcome {
                status: None,
                error: Some(error.clone()),
                latency: std::time::Duration::ZERO,
                response_excerpt: None,
            },
            Some(error),
        ),
    };
    let attempt = WebhookAttempt {
        delivery_id: work.delivery.id,
        attempt: attempt_number,
        started_at: now,
        status_code: outcome.status.map(i32::from),
        error: outcome.error.clone(),
        latency_ms: i64::try_from(outcome.latency.as_millis()).unwrap_or(i64::MAX),
        response_excerpt: outcome.response_excerpt.clone(),
    };
    let retry_for =
        chrono::Duration::from_std(webhooks.retry_for).unwrap_or(chrono::Duration::days(1));
    let failing_since = work.endpoint.failing_since.unwrap_or(now);
    let after = if outcome.succeeded() {
        AfterAttempt::Delivered
    } else if let Some(error) = signing_error {
        // No delivery to this endpoint can be signed until its owner rotates the secret.
        AfterAttempt::DisableEndpoint(error)
    } else if now - failing_since >= retry_for {
        AfterAttempt::DisableEndpoint(format!(
            "every delivery failed for {} (last: {}): fix the receiver, then enable the endpoint and re-send its failed deliveries",
            human(webhooks.retry_for),
            attempt.error.clone().unwrap_or_else(|| format!("HTTP {}", attempt.status_code.unwrap_or_default()))
        ))
    } else if now - work.delivery.retry_window_start >= retry_for {
        AfterAttempt::GiveUp(format!(
            "retried for {}: re-send it once the receiver works",
            human(webhooks.retry_for)
        ))
    } else {
        let jitter = 0.5 + rand::random::<f64>() / 2.0;
        AfterAttempt::RetryIn(retry_delay(
            webhooks.retry_base,
            attempt_number.unsigned_abs(),
            jitter,
        ))
    };
    if !outcome.succeeded() {
        // The endpoint's id, never its URL (which may carry a token).
        tracing::info!(delivery = work.delivery.id, endpoint = work.endpoint.id, attempt = attempt_number, error = ?attempt.error, status = ?attempt.status_code, next = ?after, "webhook delivery failed");
    }
    // Not recorded when another run of this task got there first: nothing more to do.
    ctx.store
        .record_webhook_attempt(&work, &attempt, &after)
        .await
        .map(|_| ())
}

/// What a receiver gets: Standard Webhooks' `type`, `timestamp` and `data`; `data` is the
/// event as the GraphQL API shows it.
pub fn payload(event: &order_event::Model) -> serde_json::Value {
    let extra = event.payload.clone().unwrap_or_default();
    json!({
        "type": format!("order.{}", event.kind.as_str().to_lowercase()),
        "timestamp": event.created_at,
        "data": {
            "cursor": Position::of(event).cursor(),
            "id": event.id.to_string(),
            "orderId": event.order_id.to_string(),
            "merchantId": event.merchant_id.to_string(),
            "kind": event.kind.as_str(),
            "fromState": event.from_state.map(|s| s.as_str()),
            "toState": event.to_state.map(|s| s.as_str()),
            "cause": event.cause,
            "actor": event.actor,
            "message": event.message,
            "forced": event.forced,
            "reasons": extra.reasons,
            "trackingNumbers": extra.tracking_numbers,
            "invoiceNumber": extra.invoice_number,
            "createdAt": event.created_at,
        }
    })
}

fn human(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} hours", secs / 3600)
    } else {
        format!("{secs} s")
    }
}

const FAN_OUT_SAFETY_POLL: std::time::Duration = std::time::Duration::from_secs(60);
const FAN_OUT_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Fans new events out to deliveries until `shutdown`: whenever the feed publishes (it
/// publishes only settled events, which the fan-out reads), soon after a failure, and
/// every minute anyway. Every process runs it; they take turns on the fan-out cursor.
pub async fn fan_out(
    store: Store,
    feed: EventFeed,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut published = feed.subscribe();
    loop {
        // The feed wakes this for every event (its own safety poll covers lost wake-ups);
        // the timer covers a failed fan-out, and another process's that stopped halfway.
        let mut look_again = FAN_OUT_SAFETY_POLL;
        loop {
            match store.fan_out_webhooks().await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot fan out webhook deliveries; trying again shortly");
                    look_again = FAN_OUT_RETRY;
                    break;
                }
            }
        }
        tokio::select! {
            received = published.recv() => {
                if matches!(received, Err(RecvError::Closed)) {
                    return;
                }
                // Whatever else arrived meanwhile is covered by the next fan-out.
                while published.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(look_again) => {}
            _ = shutdown.changed() => return,
        }
    }
}
