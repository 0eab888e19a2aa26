//! Webhooks: endpoints, their deliveries and attempts. Merchants, admins and partners
//! manage them for the merchants in their token; the warehouse does not.
use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::limits::MaxChars;
use super::pagination::{page_by_id, Page};
use super::{cost, parse_id, principal, services, Result, RoleGuard};
use crate::services::webhooks::EndpointWithSecret;
use crate::store::webhooks::{self as store, DeliveryStatus};
use entity::EventKind;

/// The longest webhook URL accepted.
const MAX_URL_CHARS: usize = 2000;

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct WebhookEndpoint {
    pub id: ID,
    pub merchant_id: ID,
    pub url: String,
    /// The kinds delivered; empty: every kind.
    pub kinds: Vec<EventKind>,
    /// False once disabled, by its owner or because every delivery failed for a day.
    pub enabled: bool,
    /// Why it was disabled, and what to do.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (null while deliveries succeed).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when deliveries are signed with the previous secret too, after a rotation.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    db_id: i64,
}

impl From<store::WebhookEndpoint> for WebhookEndpoint {
    fn from(e: store::WebhookEndpoint) -> Self {
        let now = Utc::now();
        WebhookEndpoint {
            id: e.id.into(),
            merchant_id: e.merchant_id.into(),
            url: e.url,
            kinds: e.kinds,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            previous_secret_valid_until: e.previous_secret_until.filter(|until| *until > now),
            created_by: e.created_by,
            created_at: e.created_at,
            updated_at: e.updated_at,
            db_id: e.id,
        }
    }
}

#[ComplexObject]
impl WebhookEndpoint {
    /// The delivery log, newest first (`first` at most 200).
    #[graphql(complexity = "cost::page(first) * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<WebhookDeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Page<WebhookDelivery>> {
        let actor = principal(ctx)?;
        let endpoint = self.db_id;
        let fetch = |after_id, limit| async move {
            Ok(services(ctx)
                .webhook_deliveries(actor, endpoint, status.map(Into::into), after_id, limit)
                .await?)
        };
        page_by_id(after, first, fetch, |d: store::WebhookDelivery| {
            Ok((d.id, WebhookDelivery::from(d)))
        })
        .await
    }
}

/// A registered endpoint with its signing secret: the only time the secret is shown.
#[derive(SimpleObject)]
pub struct WebhookEndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_...`: verify each delivery's `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

impl From<EndpointWithSecret> for WebhookEndpointWithSecret {
    fn from(e: EndpointWithSecret) -> Self {
        WebhookEndpointWithSecret {
            endpoint: e.endpoint.into(),
            secret: e.secret,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Given up (retried for the whole retry period, or its endpoint was disabled); can be
    /// re-sent.
    Failed,
}

impl From<WebhookDeliveryStatus> for DeliveryStatus {
    fn from(s: WebhookDeliveryStatus) -> Self {
        match s {
            WebhookDeliveryStatus::Pending => DeliveryStatus::Pending,
            WebhookDeliveryStatus::Delivered => DeliveryStatus::Delivered,
            WebhookDeliveryStatus::Failed => DeliveryStatus::Failed,
        }
    }
}

impl From<DeliveryStatus> for WebhookDeliveryStatus {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => WebhookDeliveryStatus::Pending,
            DeliveryStatus::Delivered => WebhookDeliveryStatus::Delivered,
            DeliveryStatus::Failed => WebhookDeliveryStatus::Failed,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct WebhookDelivery {
    pub id: ID,
    pub endpoint_id: ID,
    /// The event delivered (see `orderEvents`).
    pub event_id: ID,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    db_id: i64,
}

impl From<store::WebhookDelivery> for WebhookDelivery {
    fn from(d: store::WebhookDelivery) -> Self {
        WebhookDelivery {
            id: d.id.into(),
            endpoint_id: d.endpoint_id.into(),
            event_id: d.event_id.into(),
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
            db_id: d.id,
        }
    }
}

#[ComplexObject]
impl WebhookDelivery {
    /// Each attempt: when, the answer's status (or why there was none), how long it took,
    /// and the start of the answer.
    #[graphql(complexity = "cost::LIST * child_complexity")]
    async fn attempt_log(&self, ctx: &Context<'_>) -> Result<Vec<WebhookAttempt>> {
        let attempts = services(ctx).webhook_attempts(self.db_id).await?;
        Ok(attempts.into_iter().map(WebhookAttempt::from).collect())
    }
}

#[derive(SimpleObject)]
pub struct WebhookAttempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// The HTTP status of the answer; null when none came (see `error`).
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The answer's first kilobyte.
    pub response: Option<String>,
}

impl From<store::WebhookAttempt> for WebhookAttempt {
    fn from(a: store::WebhookAttempt) -> Self {
        WebhookAttempt {
            attempt: a.attempt,
            started_at: a.started_at,
            status_code: a.status_code,
            error: a.error,
            latency_ms: a.latency_ms,
            response: a.response_excerpt,
        }
    }
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The webhook endpoints of a merchant, or of every merchant the caller may see.
    #[graphql(
        guard = "RoleGuard::merchant_partner_or_admin()",
        complexity = "cost::LIST * child_complexity"
    )]
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
    ) -> Result<Vec<WebhookEndpoint>> {
        let merchant_id = merchant_id
            .map(|id| parse_id(&id, "merchant"))
            .transpose()?;
        let endpoints = services(ctx)
            .webhook_endpoints(principal(ctx)?, merchant_id)
            .await?;
        Ok(endpoints.into_iter().map(WebhookEndpoint::from).collect())
    }

    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<Option<WebhookEndpoint>> {
        let Ok(id) = parse_id(&id, "webhook endpoint") else {
            return Ok(None);
        };
        match services(ctx).webhook_endpoint(principal(ctx)?, id).await {
            Ok(endpoint) => Ok(Some(endpoint.into())),
            Err(crate::services::ServiceError::NotFound(_)) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint for the merchant's order events (`kinds` narrows them; none:
    /// every kind). The URL must be https and reach a public address. The answer holds the
    /// signing secret; it is not shown again (rotate it to get a new one).
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"url\", MAX_URL_CHARS)"))] url: String,
        kinds: Option<Vec<EventKind>>,
    ) -> Result<WebhookEndpointWithSecret> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let created = services(ctx)
            .create_webhook_endpoint(
                principal(ctx)?,
                merchant_id,
                &url,
                kinds.unwrap_or_default(),
            )
            .await?;
        Ok(created.into())
    }

    /// Changes the URL, the kinds (an empty list: every kind) or whether it is enabled.
    /// Enabling clears the reason it was disabled; re-send its failed deliveries after.
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"url\", MAX_URL_CHARS)"))] url: Option<String>,
        kinds: Option<Vec<EventKind>>,
        enabled: Option<bool>,
    ) -> Result<WebhookEndpoint> {
        let id = parse_id(&id, "webhook endpoint")?;
        let endpoint = services(ctx)
            .update_webhook_endpoint(principal(ctx)?, id, url.as_deref(), kinds, enabled)
            .await?;
        Ok(endpoint.into())
    }

    /// Deletes the endpoint with its delivery log; returns its id.
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let endpoint = parse_id(&id, "webhook endpoint")?;
        services(ctx)
            .delete_webhook_endpoint(principal(ctx)?, endpoint)
            .await?;
        Ok(id)
    }

    /// A new signing secret, shown once. For `overlapHours` (default 24, at most 168)
    /// deliveries carry a signature under the old secret too, so receivers can switch
    /// without rejecting any.
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = 24)] overlap_hours: i32,
    ) -> Result<WebhookEndpointWithSecret> {
        let id = parse_id(&id, "webhook endpoint")?;
        let rotated = services(ctx)
            .rotate_webhook_secret(principal(ctx)?, id, i64::from(overlap_hours))
            .await?;
        Ok(rotated.into())
    }

    /// Sends every failed delivery of the endpoint again at once (after fixing the
    /// receiver and enabling the endpoint); returns how many.
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn resend_failed_webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
    ) -> Result<i32> {
        let id = parse_id(&endpoint_id, "webhook endpoint")?;
        let count = services(ctx)
            .resend_failed_webhook_deliveries(principal(ctx)?, id)
            .await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// Sends a delivery again at once (a failed one once the receiver works, or a
    /// delivered one the receiver lost), with a fresh retry period.
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn resend_webhook_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let id = parse_id(&id, "webhook delivery")?;
        let delivery = services(ctx)
            .resend_webhook_delivery(principal(ctx)?, id)
            .await?;
        Ok(delivery.into())
    }
}
