//! The Fortnox API client: typed calls, the per-tenant rate limit, retries
//! with backoff, one refresh on 401, tracing and counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::Serialize;

use super::config::{FortnoxConfig, OrderQuery};
use super::error::{FortnoxError, Result};
use super::limiter::{LimiterRegistry, SharedRateLog};
use super::metrics::{resource_of, CallCounters};
use super::oauth::{OAuthClient, OAuthConfig, TokenManager, TokenSet, TokenStore};
use super::types::*;

/// How far a call may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads and idempotent writes: retry 429, 5xx and timeouts.
    Always,
    /// Not idempotent (`createinvoice`): retry only what surely did not reach
    /// Fortnox's logic (429, connection refused); anything ambiguous is
    /// returned so the caller can check before trying again.
    OnlyUnprocessed,
}

/// Whose access token a call sends.
#[derive(Debug, Clone, Copy)]
enum Bearer<'a> {
    /// The merchant's stored tokens: its limiter, one refresh on 401.
    Merchant(&'a str),
    /// A token not (yet) stored, fresh from a code exchange for a merchant: the
    /// merchant's limiter (the token will be the merchant's, and Fortnox counts
    /// this call in its window), no refresh.
    Unsaved { token: &'a str, merchant: &'a str },
}

const COMPANY_INFORMATION: &str = "/3/companyinformation";

/// The result of [`TenantClient::create_invoice_once`].
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceOutcome {
    pub invoice: Invoice,
    /// The order already had an invoice (from an earlier, interrupted attempt
    /// or made by hand) and we adopted it instead of creating another.
    pub adopted: bool,
}

/// The result of [`TenantClient::credit_invoice`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreditOutcome {
    /// The credit invoice: `Credit` true, `CreditInvoiceReference` the
    /// invoice it credits.
    pub credit_invoice: Invoice,
    /// The invoice was already credited (by an earlier attempt whose answer
    /// was lost, or by hand) and that credit invoice was adopted instead of
    /// crediting again.
    pub adopted: bool,
}

/// Shared by every job of the process: one HTTP pool, one limiter per tenant,
/// one token manager.
#[derive(Clone)]
pub struct FortnoxClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    cfg: FortnoxConfig,
    limiters: LimiterRegistry,
    counters: Arc<CallCounters>,
    tokens: TokenManager,
}

impl FortnoxClient {
    /// A client whose rate-limit logs live in this process (one process per
    /// tenant: SQLite).
    pub fn new(cfg: FortnoxConfig, store: Arc<dyn TokenStore>) -> Result<Self> {
        Self::with_rate_log(cfg, store, None)
    }

    /// A client whose rate-limit logs live in `rate_log` when given (several
    /// processes sharing tenants: PostgreSQL), with `cfg.rate_limit`'s figures.
    pub fn with_rate_log(
        cfg: FortnoxConfig,
        store: Arc<dyn TokenStore>,
        rate_log: Option<Arc<dyn SharedRateLog>>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| FortnoxError::Config(format!("http client: {e}")))?;
        let counters = Arc::new(CallCounters::default());
        let oauth = OAuthClient::new(
            http.clone(),
            OAuthConfig {
                auth_base: cfg.auth_base.clone(),
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret.clone(),
                redirect_uri: cfg.redirect_uri.clone(),
                scopes: cfg.scopes.clone(),
            },
            counters.clone(),
        );
        Ok(FortnoxClient {
            inner: Arc::new(Inner {
                http,
                limiters: match (cfg.rate_limit, rate_log) {
                    (Some(limit), Some(log)) => LimiterRegistry::shared(limit, log),
                    (limit, _) => LimiterRegistry::new(limit),
                },
                cfg,
                counters,
                tokens: TokenManager::new(oauth, store),
            }),
        })
    }

    pub fn oauth(&self) -> &OAuthClient {
        self.inner.tokens.oauth()
    }

    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// Calls per (resource, status), status 0 for transport failures.
    pub fn counters(&self) -> Arc<CallCounters> {
        self.inner.counters.clone()
    }

    /// Exchanges the callback's `code` and stores the tokens for `merchant`.
    pub async fn connect(&self, merchant: &str, code: &str) -> Result<TokenSet> {
        let tokens = self.oauth().exchange_code(code).await?;
        self.save_tokens(merchant, &tokens).await?;
        Ok(tokens)
    }

    /// Exchanges the callback's `code` and reads, with the new access token,
    /// which Fortnox company granted it. Stores nothing, so the caller can
    /// check the company (already connected elsewhere?) before it keeps the
    /// tokens with [`Self::save_tokens`]. The read goes the way of every API
    /// call (retries, error classes, counters) but refreshes nothing: a 401
    /// to a token this fresh is `NeedsReauthorization`. If the read fails the
    /// tokens are dropped; the code is spent either way, so the merchant
    /// authorizes again. The read counts in `merchant`'s rate-limit log: the
    /// token becomes the merchant's, and Fortnox counts per token.
    pub async fn exchange_code_for_company(
        &self,
        merchant: &str,
        code: &str,
    ) -> Result<(TokenSet, CompanyInformation)> {
        let tokens = self.oauth().exchange_code(code).await?;
        let env: CompanyInformationEnvelope = self
            .call(
                Bearer::Unsaved {
                    token: &tokens.access_token,
                    merchant,
                },
                Method::GET,
                COMPANY_INFORMATION,
                &[],
                None::<&()>,
                Retry::Always,
            )
            .await?;
        Ok((tokens, env.company_information))
    }

    /// Stores tokens from a code exchange for `merchant` (a new or renewed
    /// connection), e.g. those of [`Self::exchange_code_for_company`].
    pub async fn save_tokens(&self, merchant: &str, tokens: &TokenSet) -> Result<()> {
        self.inner.tokens.store().save(merchant, tokens).await?;
        Ok(())
    }

    /// The API of one merchant's Fortnox.
    pub fn tenant(&self, merchant: impl Into<String>) -> TenantClient {
        TenantClient {
            client: self.clone(),
            merchant: merchant.into(),
        }
    }
}

/// Calls on behalf of one merchant.
#[derive(Clone)]
pub struct TenantClient {
    client: FortnoxClient,
    merchant: String,
}

impl TenantClient {
    pub fn merchant(&self) -> &str {
        &self.merchant
    }

    /// Every order matching `q`, all pages.
    pub async fn list_orders(&self, q: &OrderQuery) -> Result<Vec<OrderListItem>> {
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(t) = q.last_modified {
            params.push((
                "lastmodified".into(),
                t.format("%Y-%m-%d %H:%M").to_string(),
            ));
        }
        if let Some(d) = q.from_date {
            params.push(("fromdate".into(), d.format("%Y-%m-%d").to_string()));
        }
        if let Some(f) = q.filter {
            params.push(("filter".into(), f.as_str().into()));
        }
        if let Some(nc) = q.not_completed {
            params.push(("notcompleted".into(), nc.to_string()));
        }
        let mut out = Vec::new();
        let mut page = 1i64;
        loop {
            let list: OrderList = self.list_page("/3/orders", &params, page).await?;
            out.extend(list.orders);
            if page >= list.meta.total_pages {
                return Ok(out);
            }
            page += 1;
        }
    }

    pub async fn get_order(&self, doc: &DocumentNumber) -> Result<Order> {
        let path = format!("/3/orders/{}", doc);
        let env: OrderEnvelope = self
            .call(Method::GET, &path, &[], None::<&()>, Retry::Always)
            .await?;
        Ok(env.order)
    }

    /// Writes rows; `rows` must hold **every** row of the order (rows left out
    /// are deleted). The response has new `RowId`s: use them next time.
    pub async fn update_order_rows(
        &self,
        doc: &DocumentNumber,
        rows: Vec<RowUpdate>,
    ) -> Result<Order> {
        let path = format!("/3/orders/{}", doc);
        let body = OrderRowsUpdate {
            order: OrderRowsUpdateBody { order_rows: rows },
        };
        // Setting absolute quantities is idempotent, so it may be retried.
        let env: OrderEnvelope = self
            .call(Method::PUT, &path, &[], Some(&body), Retry::Always)
            .await?;
        Ok(env.order)
    }

    /// Reads the order and sets `DeliveredQuantity` of the rows in `delivered`
    /// (by `RowId` of that read), sending every other row as `{"RowId":n}`.
    pub async fn set_delivered_quantities(
        &self,
        doc: &DocumentNumber,
        delivered: impl Fn(&OrderRow) -> Option<Quantity>,
    ) -> Result<Order> {
        let order = self.get_order(doc).await?;
        let mut rows = Vec::with_capacity(order.order_rows.len());
        for (i, row) in order.order_rows.iter().enumerate() {
            let row_id = row.row_id.ok_or_else(|| DecodeError {
                path: format!("Order.OrderRows[{i}].RowId"),
                message: "missing".into(),
            })?;
            rows.push(RowUpdate {
                row_id: Some(row_id),
                article_number: None,
                description: None,
                ordered_quantity: None,
                delivered_quantity: delivered(row),
                price: None,
            });
        }
        self.update_order_rows(doc, rows).await
    }

    /// `PUT /3/orders/{n}/createinvoice`, once. Not idempotent in Fortnox:
    /// an ambiguous failure comes back as `Retryable` without a retry. Prefer
    /// [`Self::create_invoice_once`].
    pub async fn create_invoice_raw(&self, doc: &DocumentNumber) -> Result<Invoice> {
        let path = format!("/3/orders/{}/createinvoice", doc);
        let env: InvoiceEnvelope = self
            .call(Method::PUT, &path, &[], None::<&()>, Retry::OnlyUnprocessed)
            .await?;
        Ok(env.invoice)
    }

    /// Creates the order's invoice unless it already has one: reads
    /// `InvoiceReference` first and again after every ambiguous failure, so one
    /// intent never makes two invoices.
    pub async fn create_invoice_once(&self, doc: &DocumentNumber) -> Result<InvoiceOutcome> {
        self.create_invoice_given(doc, None).await
    }

    /// Like [`Self::create_invoice_once`], starting from an order read just now (for
    /// example the response of the rows update), which saves the first read.
    pub async fn create_invoice_given(
        &self,
        doc: &DocumentNumber,
        fresh: Option<Order>,
    ) -> Result<InvoiceOutcome> {
        let policy = self.client.inner.cfg.retry.clone();
        let mut attempt = 0;
        let mut fresh = fresh;
        loop {
            let order = match fresh.take() {
                Some(order) => order,
                None => self.get_order(doc).await?,
            };
            if let Some(inv) = order.invoice() {
                let invoice = self.get_invoice(&inv).await?;
                return Ok(InvoiceOutcome {
                    invoice,
                    adopted: true,
                });
            }
            match self.create_invoice_raw(doc).await {
                Ok(invoice) => {
                    return Ok(InvoiceOutcome {
                        invoice,
                        adopted: false,
                    })
                }
                Err(e @ FortnoxError::Retryable { .. }) => {
                    attempt += 1;
                    if attempt >= policy.max_attempts {
                        return Err(e);
                    }
                    tracing::warn!(target: "fortnox", order = %doc, error = %e,
                        "createinvoice outcome unknown; re-reading the order before retrying");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn get_invoice(&self, doc: &DocumentNumber) -> Result<Invoice> {
        let path = format!("/3/invoices/{}", doc);
        let env: InvoiceEnvelope = self
            .call(Method::GET, &path, &[], None::<&()>, Retry::Always)
            .await?;
        Ok(env.invoice)
    }

    /// `PUT /3/invoices/{n}/credit`, once. Not idempotent in Fortnox: an
    /// ambiguous failure comes back as `Retryable` without a retry. Prefer
    /// [`Self::credit_invoice`].
    pub async fn credit_invoice_raw(&self, invoice: &DocumentNumber) -> Result<Invoice> {
        let path = format!("/3/invoices/{}/credit", invoice);
        let env: InvoiceEnvelope = self
            .call(Method::PUT, &path, &[], None::<&()>, Retry::OnlyUnprocessed)
            .await?;
        Ok(env.invoice)
    }

    /// Credits `invoice` unless it is credited already, in which case its
    /// credit invoice is adopted. Reads the invoice first, again after every
    /// ambiguous failure, and again when Fortnox refuses the credit (someone
    /// was faster), so one intent never makes two credit invoices.
    pub async fn credit_invoice(&self, invoice: &DocumentNumber) -> Result<CreditOutcome> {
        let policy = self.client.inner.cfg.retry.clone();
        let mut attempt = 0;
        loop {
            let original = self.get_invoice(invoice).await?;
            if let Some(credit) = original.credited_by() {
                return self.adopt_credit(invoice, &credit).await;
            }
            // A credit invoice is sent on as well: Fortnox refuses it with its
            // own message, the clearest error to hand back.
            match self.credit_invoice_raw(invoice).await {
                Ok(credit_invoice) => {
                    return Ok(CreditOutcome {
                        credit_invoice,
                        adopted: false,
                    })
                }
                Err(e @ FortnoxError::Retryable { .. }) => {
                    attempt += 1;
                    if attempt >= policy.max_attempts {
                        return Err(e);
                    }
                    tracing::warn!(target: "fortnox", invoice = %invoice, error = %e,
                        "credit outcome unknown; re-reading the invoice before retrying");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                }
                Err(e @ FortnoxError::Document { status: 400, .. }) => {
                    // Fortnox refuses a second credit: an earlier attempt (or a
                    // person) may have credited it since our read.
                    let again = self.get_invoice(invoice).await?;
                    return match again.credited_by() {
                        Some(credit) => self.adopt_credit(invoice, &credit).await,
                        None => Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn adopt_credit(
        &self,
        invoice: &DocumentNumber,
        credit: &DocumentNumber,
    ) -> Result<CreditOutcome> {
        let credit_invoice = self.get_invoice(credit).await?;
        if credit_invoice.credits().as_ref() != Some(invoice) {
            tracing::warn!(target: "fortnox", invoice = %invoice, credit = %credit,
                credit_reference = ?credit_invoice.credit_invoice_reference,
                is_credit = credit_invoice.is_credit(),
                "the credit invoice Fortnox names does not point back at the invoice");
        }
        Ok(CreditOutcome {
            credit_invoice,
            adopted: true,
        })
    }

    /// Every article (all pages), optionally `active` / `inactive` only.
    pub async fn list_articles(&self, filter: Option<&str>) -> Result<Vec<Article>> {
        let params: Vec<(String, String)> = filter
            .map(|f| vec![("filter".to_string(), f.to_string())])
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut page = 1i64;
        loop {
            let list: ArticleList = self.list_page("/3/articles", &params, page).await?;
            out.extend(list.articles);
            if page >= list.meta.total_pages {
                return Ok(out);
            }
            page += 1;
        }
    }

    pub async fn get_article(&self, number: &str) -> Result<Article> {
        let path = format!("/3/articles/{}", encode_segment(number));
        let env: ArticleEnvelope = self
            .call(Method::GET, &path, &[], None::<&()>, Retry::Always)
            .await?;
        Ok(env.article)
    }

    pub async fn update_article_stock(&self, number: &str, quantity: Quantity) -> Result<Article> {
        let path = format!("/3/articles/{}", encode_segment(number));
        let body = ArticleStockUpdate {
            article: ArticleStockUpdateBody {
                quantity_in_stock: quantity,
            },
        };
        let env: ArticleEnvelope = self
            .call(Method::PUT, &path, &[], Some(&body), Retry::Always)
            .await?;
        Ok(env.article)
    }

    pub async fn list_ways_of_delivery(&self) -> Result<Vec<WayOfDelivery>> {
        let mut out = Vec::new();
        let mut page = 1i64;
        loop {
            let list: WayOfDeliveryList = self.list_page("/3/wayofdeliveries", &[], page).await?;
            out.extend(list.way_of_deliveries);
            // Without MetaInformation the list is one page.
            if list.meta.is_none_or(|m| page >= m.total_pages) {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// The merchant's Fortnox company (`GET /3/companyinformation`; scope
    /// `companyinformation`, which connections made before it was requested
    /// lack: Fortnox then refuses with a `Document` error).
    pub async fn company_information(&self) -> Result<CompanyInformation> {
        let env: CompanyInformationEnvelope = self
            .call(
                Method::GET,
                COMPANY_INFORMATION,
                &[],
                None::<&()>,
                Retry::Always,
            )
            .await?;
        Ok(env.company_information)
    }

    async fn list_page<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        page: i64,
    ) -> Result<T> {
        let mut p = params.to_vec();
        p.push(("page".into(), page.to_string()));
        p.push(("limit".into(), self.client.inner.cfg.page_size.to_string()));
        self.call(Method::GET, path, &p, None::<&()>, Retry::Always)
            .await
    }

    /// One logical call with the merchant's stored tokens.
    async fn call<T: serde::de::DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T> {
        self.client
            .call(
                Bearer::Merchant(&self.merchant),
                method,
                path,
                query,
                body,
                retry,
            )
            .await
    }
}

impl FortnoxClient {
    /// One logical call: token, retries; with a merchant's stored tokens
    /// also the merchant's limiter and one refresh on 401.
    async fn call<T: serde::de::DeserializeOwned, B: Serialize>(
        &self,
        bearer: Bearer<'_>,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T> {
        let inner = &self.inner;
        let body = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| FortnoxError::Config(format!("encode body: {e}")))?,
            ),
            None => None,
        };
        let url = format!("{}{}", inner.cfg.api_base.trim_end_matches('/'), path);
        let resource = resource_of(path);
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut token = match bearer {
            Bearer::Merchant(merchant) => inner.tokens.access_token(merchant).await?,
            Bearer::Unsaved { token, .. } => token.to_string(),
        };
        let merchant = match bearer {
            Bearer::Merchant(merchant) | Bearer::Unsaved { merchant, .. } => merchant,
        };
        loop {
            let grant = inner.limiters.acquire(merchant).await?;
            let mut req = inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(inner.cfg.request_timeout)
                .query(query);
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let started = Instant::now();
            let exchange = async {
                match req.send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let retry_after = retry_after(&resp);
                        match resp.bytes().await {
                            Ok(bytes) => Ok((status, retry_after, bytes)),
                            Err(e) => Err((e, Some(status))),
                        }
                    }
                    Err(e) => Err((e, None)),
                }
            };
            let outcome = inner.limiters.metered(merchant, grant, exchange).await;
            let latency_ms = started.elapsed().as_millis() as u64;
            let status_code = match &outcome {
                Ok((s, _, _)) => s.as_u16(),
                Err(_) => 0,
            };
            inner.counters.record(&resource, status_code);
            tracing::info!(target: "fortnox", method = %method, path, status = status_code, latency_ms,
                merchant = %merchant, attempt, "fortnox call");

            let (failure, retry_after) = match outcome {
                Ok((status, _, bytes)) if status.is_success() => return Ok(decode(&bytes)?),
                Ok((StatusCode::UNAUTHORIZED, _, bytes)) => match bearer {
                    Bearer::Merchant(merchant) if !refreshed => {
                        refreshed = true;
                        token = inner
                            .tokens
                            .refresh_after_unauthorized(merchant, &token)
                            .await?;
                        continue;
                    }
                    Bearer::Merchant(_) => {
                        return Err(FortnoxError::NeedsReauthorization {
                            reason: format!(
                                "Fortnox answered 401 after a refresh: {}",
                                error_message(&bytes)
                            ),
                        })
                    }
                    // Nothing stored to refresh: the new connection failed.
                    Bearer::Unsaved { .. } => {
                        return Err(FortnoxError::NeedsReauthorization {
                            reason: format!(
                                "Fortnox answered 401 to a new access token: {}",
                                error_message(&bytes)
                            ),
                        })
                    }
                },
                Ok((StatusCode::TOO_MANY_REQUESTS, ra, bytes)) => (
                    FortnoxError::Retryable {
                        status: Some(429),
                        message: error_message(&bytes),
                    },
                    ra,
                ),
                Ok((status, ra, bytes)) if status.is_server_error() => {
                    let e = FortnoxError::Retryable {
                        status: Some(status.as_u16()),
                        message: error_message(&bytes),
                    };
                    if retry == Retry::OnlyUnprocessed {
                        return Err(e);
                    }
                    (e, ra)
                }
                Ok((status, _, bytes)) => return Err(document_error(status.as_u16(), &bytes)),
                Err((e, status)) => {
                    let unsent = e.is_connect() && status.is_none();
                    let err = FortnoxError::Retryable {
                        status: status.map(|s| s.as_u16()),
                        message: e.to_string(),
                    };
                    if retry == Retry::OnlyUnprocessed && !unsent {
                        return Err(err);
                    }
                    (err, None)
                }
            };
            attempt += 1;
            if attempt >= inner.cfg.retry.max_attempts {
                return Err(failure);
            }
            tokio::time::sleep(inner.cfg.retry.delay(attempt - 1, retry_after)).await;
        }
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The message of an error body, whatever its shape.
fn error_message(bytes: &[u8]) -> String {
    if let Ok(e) = decode::<ErrorEnvelope>(bytes) {
        return e.error_information.message;
    }
    if let Ok(m) = decode::<MessageBody>(bytes) {
        return m.message;
    }
    String::from_utf8_lossy(bytes).chars().take(200).collect()
}

fn document_error(status: u16, bytes: &[u8]) -> FortnoxError {
    match decode::<ErrorEnvelope>(bytes) {
        Ok(e) => FortnoxError::Document {
            status,
            code: e.error_information.code,
            message: e.error_information.message,
        },
        Err(_) => FortnoxError::Document {
            status,
            code: None,
            message: error_message(bytes),
        },
    }
}

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (article numbers may hold any character).
fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    #[test]
    fn path_segments_keep_unreserved_characters_only() {
        assert_eq!(encode_segment("A-1._~z9"), "A-1._~z9");
        assert_eq!(encode_segment("a/b c?#%"), "a%2Fb%20c%3F%23%25");
        assert_eq!(encode_segment("Å"), "%C3%85");
    }
}
