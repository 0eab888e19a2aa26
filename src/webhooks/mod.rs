//! Sending webhook deliveries: one HTTP client for every endpoint, that will not be turned
//! against the service's own network.
//!
//! Every address it connects to passes `domain::webhooks`: the client resolves host names
//! through [`GuardedResolver`], which refuses a name that resolves to a loopback, private,
//! link-local (cloud metadata) or otherwise non-public address, so a name that pointed
//! somewhere public when it was registered and somewhere private now (DNS rebinding) is
//! refused at delivery. IP literals are checked before the request. Redirects are not
//! followed (a 3xx is a failed attempt) and proxies from the environment are not used, so
//! neither can lead the request elsewhere. Each attempt has a time limit, and at most
//! `RESPONSE_READ_LIMIT` of the answer is read.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhooks::{check_resolved, Destination, DestinationRefused};

/// The most of an answer read; the rest is left unread.
pub const RESPONSE_READ_LIMIT: usize = 16 * 1024;
/// The most of an answer kept in the delivery log.
pub const RESPONSE_EXCERPT: usize = 1024;
/// How long a registration waits for the URL's host name to resolve.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves host names and refuses those that lead to non-public addresses (unless
/// development allows them).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<_> = addresses.iter().map(SocketAddr::ip).collect();
            check_resolved(&host, &ips, allow_private)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// What webhooks need wherever they are handled: the sender, the cipher of the stored
/// secrets, and how long and how often failed deliveries are tried again.
#[derive(Clone)]
pub struct Webhooks {
    pub sender: WebhookSender,
    pub cipher: crate::fortnox::crypto::TokenCipher,
    /// The first retry's delay; it doubles per attempt up to an hour.
    pub retry_base: Duration,
    /// How long a delivery is retried, and how long an endpoint may keep failing before
    /// it is disabled.
    pub retry_for: Duration,
}

#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why the attempt failed before or without an answer (refused destination, timeout,
    /// connection error).
    pub error: Option<String>,
    pub latency: Duration,
    /// The start of the answer's body.
    pub response_excerpt: Option<String>,
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: String, latency: Duration) -> AttemptOutcome {
        AttemptOutcome {
            status: None,
            error: Some(error),
            latency,
            response_excerpt: None,
        }
    }
}

impl WebhookSender {
    pub fn new(timeout: Duration, allow_private: bool) -> Result<WebhookSender, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!(
                "fortnox-fulfilment-webhooks/",
                env!("CARGO_PKG_VERSION")
            ))
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()?;
        Ok(WebhookSender {
            client,
            allow_private,
        })
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a URL as a registration does: the scheme, an IP literal, and what the name
    /// resolves to now.
    pub async fn check(&self, url: &str) -> Result<Destination, DestinationRefused> {
        let destination = Destination::parse(url, self.allow_private)?;
        if let Some(host) = destination.domain() {
            let port = destination.url.port_or_known_default().unwrap_or(443);
            // A slow name server must not hold the request open.
            let lookup = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)));
            let ips: Vec<_> = lookup
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| DestinationRefused::Unresolved(host.to_owned()))?
                .map(|a| a.ip())
                .collect();
            check_resolved(host, &ips, self.allow_private)?;
        }
        Ok(destination)
    }

    /// POSTs `body` with `headers` to `url`; never an error, the outcome says what happened.
    pub async fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> AttemptOutcome {
        let started = Instant::now();
        // The resolver checks names; this checks the scheme and IP literals.
        let destination = match Destination::parse(url, self.allow_private) {
            Ok(destination) => destination,
            Err(refused) => {
                return AttemptOutcome::failed(format!("refused: {refused}"), started.elapsed())
            }
        };
        let mut request = self
            .client
            .post(destination.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return AttemptOutcome::failed(describe(error), started.elapsed()),
        };
        let status = response.status().as_u16();
        let mut read = Vec::new();
        // Read up to the limit; a slow or endless answer ends at the client's timeout.
        while read.len() < RESPONSE_READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    return AttemptOutcome {
                        status: Some(status),
                        error: Some(format!("reading the answer: {}", describe(error))),
                        latency: started.elapsed(),
                        response_excerpt: excerpt(&read),
                    }
                }
            }
        }
        AttemptOutcome {
            status: Some(status),
            error: None,
            latency: started.elapsed(),
            response_excerpt: excerpt(&read),
        }
    }
}

/// The error and its causes in one line (reqwest's own message hides the cause, e.g. the
/// resolver's refusal), without the URL: it is kept in the delivery log and logged, and a
/// URL may carry a token in its path.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn excerpt(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let cut = &body[..body.len().min(RESPONSE_EXCERPT)];
    Some(String::from_utf8_lossy(cut).into_owned())
}
