//! Webhook endpoints as their owners manage them: register (the signing secret is shown
//! once), change, disable, delete, rotate the secret with an overlap, read the delivery
//! log, re-send a delivery. Merchants and admins may do it for every endpoint of the
//! merchants in their token; partners for the endpoints they registered.
use chrono::Utc;

use super::{Result, ServiceError, Services};
use crate::auth::{Principal, Role};
use crate::domain::webhooks::new_secret;
use crate::store::webhooks::{
    DeliveryStatus, EndpointChanges, NewEndpoint, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
};
use entity::EventKind;

/// Endpoints one merchant may have.
pub const MAX_ENDPOINTS_PER_MERCHANT: usize = 20;
/// The longest overlap of an old secret with its successor.
pub const MAX_OVERLAP_HOURS: i64 = 7 * 24;

/// An endpoint with its signing secret, which is shown only here.
pub struct EndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

impl Services {
    pub async fn create_webhook_endpoint(
        &self,
        actor: &Principal,
        merchant_id: i64,
        url: &str,
        kinds: Vec<EventKind>,
    ) -> Result<EndpointWithSecret> {
        self.merchant_in_scope(actor, merchant_id).await?;
        let url = self.checked_url(url).await?;
        let secret = new_secret();
        let encrypted = self.webhooks.cipher.encrypt(&secret);
        // Events from now on; the log before is there to read with orderEvents.
        let endpoint = self
            .store
            .create_webhook_endpoint(
                NewEndpoint {
                    merchant_id,
                    url: &url,
                    kinds: &dedup(kinds),
                    secret: &encrypted,
                    created_by: &actor.actor(),
                },
                MAX_ENDPOINTS_PER_MERCHANT,
            )
            .await?
            .ok_or_else(|| {
                ServiceError::InvalidInput(format!(
                    "this merchant already has {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints: delete one first"
                ))
            })?;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// The endpoints of one merchant (or of every merchant the actor may see) that the
    /// actor manages.
    pub async fn webhook_endpoints(
        &self,
        actor: &Principal,
        merchant_id: Option<i64>,
    ) -> Result<Vec<WebhookEndpoint>> {
        if let Some(merchant_id) = merchant_id {
            self.merchant_in_scope(actor, merchant_id).await?;
        }
        let mut endpoints = self
            .store
            .webhook_endpoints(&actor.scope, merchant_id)
            .await?;
        endpoints.retain(|endpoint| manages(actor, endpoint));
        Ok(endpoints)
    }

    /// The endpoint, if the actor manages it; otherwise "not found", like a missing one.
    pub async fn webhook_endpoint(&self, actor: &Principal, id: i64) -> Result<WebhookEndpoint> {
        self.store
            .webhook_endpoint(&actor.scope, id)
            .await?
            .filter(|endpoint| manages(actor, endpoint))
            .ok_or(ServiceError::NotFound("webhook endpoint"))
    }

    /// Changes the URL, the kinds, or whether it is enabled. Enabling a disabled endpoint
    /// clears its reason; its failed deliveries stay failed until re-sent.
    pub async fn update_webhook_endpoint(
        &self,
        actor: &Principal,
        id: i64,
        url: Option<&str>,
        kinds: Option<Vec<EventKind>>,
        enabled: Option<bool>,
    ) -> Result<WebhookEndpoint> {
        self.webhook_endpoint(actor, id).await?;
        let url = match url {
            Some(url) => Some(self.checked_url(url).await?),
            None => None,
        };
        let kinds = kinds.map(dedup);
        self.store
            .update_webhook_endpoint(
                id,
                EndpointChanges {
                    url: url.as_deref(),
                    kinds: kinds.as_deref(),
                    enabled,
                },
            )
            .await?
            .ok_or(ServiceError::NotFound("webhook endpoint"))
    }

    pub async fn delete_webhook_endpoint(&self, actor: &Principal, id: i64) -> Result<()> {
        self.webhook_endpoint(actor, id).await?;
        if !self.store.delete_webhook_endpoint(id).await? {
            return Err(ServiceError::NotFound("webhook endpoint"));
        }
        Ok(())
    }

    /// A new signing secret, shown once; deliveries carry a signature under the old one
    /// too for `overlap_hours`, so receivers can switch without missing one.
    pub async fn rotate_webhook_secret(
        &self,
        actor: &Principal,
        id: i64,
        overlap_hours: i64,
    ) -> Result<EndpointWithSecret> {
        if !(0..=MAX_OVERLAP_HOURS).contains(&overlap_hours) {
            return Err(ServiceError::InvalidInput(format!(
                "overlapHours must be between 0 and {MAX_OVERLAP_HOURS}"
            )));
        }
        self.webhook_endpoint(actor, id).await?;
        let secret = new_secret();
        let encrypted = self.webhooks.cipher.encrypt(&secret);
        let until = Utc::now() + chrono::Duration::hours(overlap_hours);
        let endpoint = self
            .store
            .rotate_webhook_secret(id, &encrypted, until)
            .await?
            .ok_or(ServiceError::NotFound("webhook endpoint"))?;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// The endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        actor: &Principal,
        endpoint_id: i64,
        status: Option<DeliveryStatus>,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<WebhookDelivery>> {
        self.webhook_endpoint(actor, endpoint_id).await?;
        Ok(self
            .store
            .webhook_deliveries(endpoint_id, status, after_id, limit)
            .await?)
    }

    /// A delivery's attempts; the caller got the delivery through its endpoint.
    pub async fn webhook_attempts(&self, delivery_id: i64) -> Result<Vec<WebhookAttempt>> {
        Ok(self.store.webhook_attempts(delivery_id).await?)
    }

    /// Sends a delivery again at once (a failed one, once the receiver works again, or a
    /// delivered one the receiver lost), with a fresh retry period. One waiting for its
    /// next attempt is left to it.
    pub async fn resend_webhook_delivery(
        &self,
        actor: &Principal,
        delivery_id: i64,
    ) -> Result<WebhookDelivery> {
        let delivery = self
            .store
            .webhook_delivery(delivery_id)
            .await?
            .ok_or(ServiceError::NotFound("webhook delivery"))?;
        let endpoint = self
            .webhook_endpoint(actor, delivery.endpoint_id)
            .await
            .map_err(|_| ServiceError::NotFound("webhook delivery"))?;
        if !endpoint.enabled {
            return Err(ServiceError::InvalidInput(
                "the endpoint is disabled: enable it with updateWebhookEndpoint(enabled: true) first".into(),
            ));
        }
        if delivery.status == DeliveryStatus::Pending {
            return Err(ServiceError::InvalidInput(format!(
                "this delivery is waiting for its next attempt{}: it is sent then",
                delivery
                    .next_attempt_at
                    .map(|at| format!(" at {}", at.to_rfc3339()))
                    .unwrap_or_default()
            )));
        }
        self.store
            .resend_webhook_delivery(delivery_id)
            .await?
            .ok_or(ServiceError::NotFound("webhook delivery"))
    }

    /// Sends every failed delivery of the endpoint again (after it was fixed and enabled);
    /// returns how many.
    pub async fn resend_failed_webhook_deliveries(
        &self,
        actor: &Principal,
        endpoint_id: i64,
    ) -> Result<usize> {
        let endpoint = self.webhook_endpoint(actor, endpoint_id).await?;
        if !endpoint.enabled {
            return Err(ServiceError::InvalidInput(
                "the endpoint is disabled: enable it with updateWebhookEndpoint(enabled: true) first".into(),
            ));
        }
        Ok(self
            .store
            .resend_failed_webhook_deliveries(endpoint_id)
            .await?)
    }

    async fn checked_url(&self, url: &str) -> Result<String> {
        let destination = self
            .webhooks
            .sender
            .check(url)
            .await
            .map_err(|refused| ServiceError::InvalidInput(refused.to_string()))?;
        Ok(destination.url.to_string())
    }
}

/// Merchants and admins manage every endpoint of their merchants; a partner only those
/// it registered, so that one partner tool cannot read or re-point another's.
fn manages(actor: &Principal, endpoint: &WebhookEndpoint) -> bool {
    actor.role != Role::Partner || endpoint.created_by == actor.actor()
}

fn dedup(mut kinds: Vec<EventKind>) -> Vec<EventKind> {
    let mut seen = Vec::with_capacity(kinds.len());
    kinds.retain(|kind| {
        let new = !seen.contains(kind);
        seen.push(*kind);
        new
    });
    kinds
}
