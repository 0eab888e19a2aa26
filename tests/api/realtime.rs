//! Real-time import from the sandbox's WebSocket API, with polling set to an hour so that
//! only events can import: orders marked done and cancellations arrive within seconds;
//! offsets survive a restart; duplicates, re-deliveries, dropped connections, a muted
//! tenant and one merchant's refused token lose nothing and import nothing twice.
use std::time::{Duration, Instant};

use fortnox_fulfilment::domain::OrderState;
use fortnox_sandbox::SandboxHandle;
use serde_json::{json, Value};

use crate::common::eventually;
use crate::flow::{article, connect_as, Flow, TENANT};

/// Generous for a loaded CI machine; the benchmark measures the real delay.
const WITHIN: Duration = Duration::from_secs(15);

async fn realtime_flow(adjust: impl FnOnce(&mut fortnox_fulfilment::config::Config)) -> Flow {
    let flow = Flow::start_with(|config| {
        config.fortnox.ws_enabled = true;
        config.jobs.import_interval = Duration::from_secs(3600);
        config.jobs.realtime_import_interval = Duration::from_secs(3600);
        adjust(config);
    })
    .await;
    wait_live(&flow, flow.merchant).await;
    // The first import (queued at connect) and the catch-up poll (queued when the
    // connection found no stored offset) may still be waiting to run on a loaded machine:
    // tests that count polls start after them.
    assert!(
        eventually(WITHIN, || async { unfinished_imports(&flow).await == 0 }).await,
        "the imports queued at connect did not finish"
    );
    flow
}

/// Import tasks not yet done (waiting, fetched, or running).
async fn unfinished_imports(flow: &Flow) -> i64 {
    unfinished_jobs(flow)
        .await
        .iter()
        .filter(|(job_type, _, _)| job_type == "import_orders")
        .map(|(_, _, count)| count)
        .sum()
}

async fn realtime_of(flow: &Flow, merchant: i64) -> Value {
    let body = flow
        .gql(
            "query($m: ID!) { fortnoxIntegration(merchantId: $m) { realtime { live since lastEventAt problem } } }",
            json!({ "m": merchant.to_string() }),
        )
        .await;
    body["data"]["fortnoxIntegration"]["realtime"].clone()
}

async fn integration_status(flow: &Flow, merchant: i64) -> String {
    let body = flow
        .gql(
            "query($m: ID!) { fortnoxIntegration(merchantId: $m) { status } }",
            json!({ "m": merchant.to_string() }),
        )
        .await;
    body["data"]["fortnoxIntegration"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn wait_live(flow: &Flow, merchant: i64) {
    assert!(
        eventually(WITHIN, || async {
            realtime_of(flow, merchant).await["live"] == true
        })
        .await,
        "real-time import never went live: {}",
        realtime_of(flow, merchant).await
    );
}

/// Order-list calls (the poll), as opposed to reads of one order.
fn list_calls(sb: &SandboxHandle) -> usize {
    sb.calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path.trim_end_matches('/') == "/3/orders")
        .count()
}

fn reads_of(sb: &SandboxHandle, document: &str) -> usize {
    let path = format!("/3/orders/{document}");
    sb.calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path == path)
        .count()
}

fn one_row(article_number: &str) -> Value {
    json!([{ "ArticleNumber": article_number, "Description": "T-shirt", "OrderedQuantity": "1", "Price": 100, "VAT": 25 }])
}

/// An order created in Fortnox but not yet marked done.
fn draft(flow: &Flow, article_number: &str) -> String {
    let mut order = Flow::order_json(one_row(article_number));
    order["NotCompleted"] = json!(true);
    flow.create_order(order)
}

#[tokio::test]
async fn orders_marked_done_and_cancelled_in_fortnox_arrive_within_seconds() {
    let flow = realtime_flow(|_| {}).await;
    let sb = flow.sb();
    // No products: the orders stop in RESERVED, before the warehouse, so they can be
    // cancelled there.
    let drafts: Vec<String> = (0..5).map(|_| draft(&flow, "ART-1")).collect();
    let lists_before = list_calls(&sb);
    let mut slowest = Duration::ZERO;
    for document in &drafts {
        let started = Instant::now();
        sb.mark_done(TENANT, document).expect("mark done");
        assert!(
            eventually(WITHIN, || async { flow.order_id(document).await.is_some() }).await,
            "order {document} was not imported from its event"
        );
        slowest = slowest.max(started.elapsed());
    }
    println!("slowest import after marking done: {slowest:?}");
    for document in &drafts {
        assert!(
            flow.wait_for(document, OrderState::Reserved, WITHIN).await,
            "{document}: {:?}",
            flow.state_of(document).await
        );
    }
    sb.cancel_order(TENANT, &drafts[0])
        .expect("cancel in Fortnox");
    assert!(
        flow.wait_for(&drafts[0], OrderState::Cancelled, WITHIN)
            .await,
        "the cancellation did not arrive: {:?}",
        flow.state_of(&drafts[0]).await
    );
    assert_eq!(
        list_calls(&sb),
        lists_before,
        "events imported the orders; no poll listed Fortnox's orders"
    );
    let status = realtime_of(&flow, flow.merchant).await;
    assert!(
        status["lastEventAt"].is_string() && status["since"].is_string(),
        "{status}"
    );
    flow.stop().await;
}

#[tokio::test]
async fn the_happy_path_stays_within_its_fortnox_calls_and_an_idle_merchant_is_not_polled() {
    // Calls per order within a deadline, against Fortnox's rate limit.
    let _gate = crate::common::timing_gate().await;
    let logs = crate::common::CapturedLogs::start("info,sqlx=warn,apalis=warn");
    let flow = realtime_flow(|config| {
        // The normal poll would list every second; a live merchant is polled only hourly.
        config.jobs.import_interval = Duration::from_secs(120);
    })
    .await;
    flow.standard_setup().await;
    let sb = flow.sb();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lists_before = list_calls(&sb);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        list_calls(&sb),
        lists_before,
        "a live, idle merchant costs no list calls"
    );
    let calls_before = crate::pipeline::api_calls(&sb.counters());
    let documents: Vec<String> = (0..20)
        .map(|_| flow.create_order(Flow::order_json(one_row("ART-1"))))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while flow.count_in(OrderState::Invoiced).await < documents.len()
        && tokio::time::Instant::now() < deadline
    {
        flow.ship_sent(None).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let invoiced = flow.count_in(OrderState::Invoiced).await;
    if invoiced < documents.len() {
        panic!(
            "{invoiced} of {} orders invoiced without a sync; {}\nthe service's last log lines:\n{}",
            documents.len(),
            stuck_pipeline_report(&flow, &documents).await,
            logs.tail(150)
        );
    }
    // Let the echoes of our own writes (delivered quantities, invoices) arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = crate::pipeline::api_calls(&sb.counters()) - calls_before;
    let per_order = calls as f64 / documents.len() as f64;
    println!("Fortnox calls per order with real-time import: {per_order:.2}");
    assert!(per_order <= 3.05, "{per_order:.2} calls per order");
    flow.stop().await;
}

/// What a run that did not finish left behind: each order's state, the real-time
/// connection's status, the jobs not done and the sandbox's calls by resource.
async fn stuck_pipeline_report(flow: &Flow, documents: &[String]) -> String {
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for document in documents {
        *states
            .entry(format!("{:?}", flow.state_of(document).await))
            .or_default() += 1;
    }
    let counters = flow.sb().counters();
    format!(
        "orders by state {states:?}; real-time {}; jobs not done {:?}; sandbox calls {:?}",
        realtime_of(flow, flow.merchant).await,
        unfinished_jobs(flow).await,
        counters.calls
    )
}

/// Jobs waiting, fetched or running, by type and status.
async fn unfinished_jobs(flow: &Flow) -> Vec<(String, String, i64)> {
    use fortnox_fulfilment::store::Pool;
    const SQLITE: &str = "SELECT job_type, status, COUNT(*) FROM Jobs WHERE status IN ('Pending', 'Queued', 'Running') GROUP BY job_type, status";
    const POSTGRES: &str = "SELECT job_type, status, COUNT(*) FROM apalis.jobs WHERE status IN ('Pending', 'Queued', 'Running') GROUP BY job_type, status";
    match &flow.app.store().pool {
        Pool::Sqlite(pool) => sqlx::query_as(SQLITE).fetch_all(pool).await,
        Pool::Postgres(pool) => sqlx::query_as(POSTGRES).fetch_all(pool).await,
    }
    .expect("count the unfinished jobs")
}

#[tokio::test]
async fn orders_done_while_the_service_was_stopped_are_imported_from_the_stored_offset() {
    let flow = realtime_flow(|_| {}).await;
    let sb = flow.sb();
    let first = flow.create_order(Flow::order_json(one_row("ART-1")));
    assert!(eventually(WITHIN, || async { flow.order_id(&first).await.is_some() }).await);
    let drafts: Vec<String> = (0..3).map(|_| draft(&flow, "ART-1")).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lists_before = list_calls(&sb);
    let mut flow = flow;
    flow.app = flow
        .app
        .restart_after(|| {
            for document in &drafts {
                sb.mark_done(TENANT, document)
                    .expect("mark done while stopped");
            }
        })
        .await;
    for document in &drafts {
        assert!(
            eventually(WITHIN, || async { flow.order_id(document).await.is_some() }).await,
            "{document}, marked done while stopped, was not imported from the replay"
        );
    }
    assert_eq!(
        list_calls(&sb),
        lists_before,
        "the stored offset, not a poll, brought them in"
    );
    flow.stop().await;
}

#[tokio::test]
async fn duplicates_redeliveries_and_dropped_connections_import_each_order_once() {
    let flow = realtime_flow(|_| {}).await;
    flow.standard_setup().await;
    let sb = flow.sb();
    sb.ws_duplicate_events(true);
    sb.ws_reorder_topics(true);
    let mut documents: Vec<String> = (0..6)
        .map(|_| flow.create_order(Flow::order_json(one_row("ART-1"))))
        .collect();
    // Dropped mid-stream; the orders made meanwhile arrive after the reconnect (replayed
    // from the stored offset, whose last event comes again).
    assert!(sb.ws_drop_connections() >= 1);
    documents.extend((0..6).map(|_| flow.create_order(Flow::order_json(one_row("ART-1")))));
    sb.ws_drop_connections();
    documents.extend((0..3).map(|_| flow.create_order(Flow::order_json(one_row("ART-1")))));
    for document in &documents {
        assert!(
            eventually(Duration::from_secs(30), || async {
                flow.order_id(document).await.is_some()
            })
            .await,
            "{document} lost"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for document in &documents {
        // One read per event job, whatever the duplicates; a poll over the gap after a
        // drop may read an order its event job is reading at the same moment.
        assert!(
            (1..=2).contains(&reads_of(&sb, document)),
            "{document} was read {} times",
            reads_of(&sb, document)
        );
        assert!(
            !matches!(
                flow.state_of(document).await,
                None | Some(OrderState::Cancelled)
            ),
            "{document}"
        );
    }
    let stored = flow
        .app
        .store()
        .orders_page(
            &fortnox_fulfilment::store::orders::TenantScope::All,
            &fortnox_fulfilment::store::orders::OrderFilter {
                merchant_id: Some(flow.merchant),
                states: vec![],
            },
            None,
            1000,
        )
        .await
        .expect("orders");
    // (The unique index on merchant and document number makes a second row impossible;
    // what this shows is that none is missing.)
    assert_eq!(stored.len(), documents.len(), "every order stored");
    flow.stop().await;
}

#[tokio::test]
async fn a_tenant_fortnox_sends_no_events_for_is_caught_by_the_stretched_poll() {
    let flow = realtime_flow(|config| {
        config.jobs.realtime_import_interval = Duration::from_secs(3);
    })
    .await;
    let sb = flow.sb();
    sb.ws_mute_tenant(TENANT, true);
    let document = flow.create_order(Flow::order_json(one_row("ART-1")));
    assert!(
        eventually(WITHIN, || async {
            flow.order_id(&document).await.is_some()
        })
        .await,
        "the safety poll did not import an order Fortnox sent no event for"
    );
    assert!(sb
        .ws_events("orders")
        .iter()
        .all(|e| e["entityId"] != document.as_str()));
    flow.stop().await;
}

#[tokio::test]
async fn a_refused_token_leaves_that_merchant_to_polling_and_the_others_live() {
    let flow = realtime_flow(|_| {}).await;
    let sb = flow.sb();
    let other_tenant = "other-shop";
    sb.create_tenant(other_tenant, None);
    sb.add_articles(other_tenant, vec![article("ART-1", true)]);
    let body = flow
        .gql(
            "mutation { createMerchant(name: \"Other AB\") { id } }",
            json!({}),
        )
        .await;
    let other: i64 = body["data"]["createMerchant"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{body}"));
    sb.set_authorize_tenant(other_tenant);
    let connected = connect_as(&flow.app, &flow.admin, other).await;
    assert_eq!(
        connected["data"]["completeFortnoxConnection"]["status"], "CONNECTED",
        "{connected}"
    );
    sb.set_authorize_tenant(TENANT);
    // Added by the next tenant sync (every 30 s) or the reconnect below.
    sb.ws_drop_connections();
    wait_live(&flow, other).await;

    // The other merchant's access is revoked in Fortnox; the connection is re-made, so
    // add-tenants-v1 refuses its token (and its refresh fails).
    sb.revoke_tokens(other_tenant);
    sb.ws_drop_connections();
    // Whichever sees the revocation first says why: the connection (`problem`), or a job
    // or poll whose refresh failed (the integration needs reconnecting, so the connection
    // no longer adds the merchant at all).
    assert!(
        eventually(WITHIN, || async {
            let status = realtime_of(&flow, other).await;
            status["live"] == false
                && (status["problem"].is_string()
                    || integration_status(&flow, other).await == "NEEDS_REAUTHORIZATION")
        })
        .await,
        "{}",
        realtime_of(&flow, other).await
    );
    wait_live(&flow, flow.merchant).await;
    let document = flow.create_order(Flow::order_json(one_row("ART-1")));
    assert!(
        eventually(WITHIN, || async {
            flow.order_id(&document).await.is_some()
        })
        .await,
        "the first merchant's orders still arrive"
    );
    flow.stop().await;
}

#[tokio::test]
async fn an_article_created_in_fortnox_rechecks_the_reserved_orders_waiting_for_it() {
    let flow = realtime_flow(|_| {}).await;
    flow.standard_setup().await;
    let sb = flow.sb();
    let rows = json!([
        { "ArticleNumber": "ART-1", "Description": "T-shirt", "OrderedQuantity": "1", "Price": 100, "VAT": 25 },
        { "ArticleNumber": "GIFT-WRAP", "Description": "Gift wrap", "OrderedQuantity": "1", "Price": 10, "VAT": 25 },
    ]);
    let document = flow.create_order(Flow::order_json(rows));
    assert!(
        flow.wait_for(&document, OrderState::Reserved, WITHIN).await,
        "{:?}",
        flow.state_of(&document).await
    );
    // The merchant creates the article in Fortnox as a service: not a warehouse item.
    sb.add_articles(TENANT, vec![article("GIFT-WRAP", false)]);
    assert!(
        eventually(WITHIN, || async {
            matches!(
                flow.state_of(&document).await,
                Some(OrderState::Validated | OrderState::Sent)
            )
        })
        .await,
        "the reserved order was not checked again: {:?}",
        flow.state_of(&document).await
    );
    flow.stop().await;
}
