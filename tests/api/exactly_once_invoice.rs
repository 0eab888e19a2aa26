//! Exactly one invoice even when the invoice job is slow rather than dead: answers held back
//! for three leases while `retryOrder` is pressed, and a worker frozen (lease renewal
//! stopped) at each step of the invoice job while another job takes the order over. The
//! sandbox is the ground truth: it keeps every invoice Fortnox would hold.
use crate::common;

use std::time::Duration;

use crate::flow::{Flow, TENANT};
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::jobs::faults::InvoicePoint;
use fortnox_sandbox::FaultSpec;
use serde_json::{json, Value};

const LEASE_SECS: u64 = 2;
/// Three leases: long enough that a lease not renewed runs out and another job takes over.
const HOLD: Duration = Duration::from_secs(3 * LEASE_SECS);
const WAIT: Duration = Duration::from_secs(40);

fn row(article: &str, quantity: &str) -> Value {
    json!({"ArticleNumber": article, "Description": format!("Item {article}"), "OrderedQuantity": quantity, "Price": 100, "VAT": 25})
}

async fn start() -> Flow {
    let flow = Flow::start_with(|config| {
        config.jobs.lease = Duration::from_secs(LEASE_SECS);
        // Only `retryOrder` (pressed by the tests) may start a second job.
        config.jobs.reconcile_idle = Duration::from_secs(3600);
    })
    .await;
    flow.standard_setup().await;
    flow
}

/// An order in SENT, ready to be shipped; returns its document number and id.
async fn sent_order(flow: &Flow) -> (String, i64) {
    let document = flow.create_order(Flow::order_json(json!([row("ART-1", "2")])));
    flow.sync().await;
    assert!(
        flow.wait_for(&document, OrderState::Sent, WAIT).await,
        "{}",
        flow.order_json_of(&document).await
    );
    let id = flow.order_id(&document).await.expect("imported");
    (document, id)
}

async fn retry_order(flow: &Flow, id: i64) {
    let body = flow
        .gql(
            "mutation($id: ID!) { retryOrder(orderId: $id) { id } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert!(body["errors"].is_null(), "retryOrder: {body}");
}

async fn invoice_view(flow: &Flow, id: i64) -> Value {
    flow.gql(
        "query($id: ID!) { order(id: $id) { state invoiceNumber duplicateInvoices { invoiceNumber keptInvoiceNumber creditInvoiceNumber creditError } events { kind cause message } } }",
        json!({ "id": id.to_string() }),
    )
    .await["data"]["order"]
        .clone()
}

/// Every invoice the sandbox holds for the order: (number, credited by).
fn fortnox_invoices(flow: &Flow, document: &str) -> Vec<(String, Option<String>)> {
    flow.sb()
        .invoices_of_order(TENANT, document)
        .into_iter()
        .filter(|i| i.credit != Some(true))
        .map(|i| {
            (
                i.document_number.as_str().to_owned(),
                i.credited_by().map(|c| c.as_str().to_owned()),
            )
        })
        .collect()
}

/// Ships the order, waits until its invoice job is past the point of no return, presses
/// `retryOrder` once a lease that nobody renews would have run out, then waits for the dust
/// to settle. Returns the invoices Fortnox holds.
async fn ship_and_retry_meanwhile(
    flow: &Flow,
    document: &str,
    id: i64,
) -> Vec<(String, Option<String>)> {
    assert_eq!(flow.ship_sent(None).await, 1);
    tokio::time::sleep(Duration::from_secs(LEASE_SECS) + Duration::from_millis(1500)).await;
    retry_order(flow, id).await;
    assert!(
        flow.wait_for(document, OrderState::Invoiced, WAIT).await,
        "{}",
        invoice_view(flow, id).await
    );
    // Let the held answer arrive or the frozen job wake, and any credit job run.
    tokio::time::sleep(HOLD + Duration::from_secs(3)).await;
    common::eventually(Duration::from_secs(15), || async {
        let invoices = fortnox_invoices(flow, document);
        invoices.len() == 1 || invoices.iter().filter(|(_, c)| c.is_none()).count() == 1
    })
    .await;
    fortnox_invoices(flow, document)
}

/// Exactly one invoice, and the order knows it: no duplicate recorded.
async fn assert_one_invoice(flow: &Flow, document: &str, id: i64, what: &str) {
    let invoices = fortnox_invoices(flow, document);
    let view = invoice_view(flow, id).await;
    assert_eq!(invoices.len(), 1, "{what}: {invoices:?} {view}");
    assert_eq!(view["state"], "INVOICED", "{what}: {view}");
    assert_eq!(
        view["invoiceNumber"].as_str(),
        Some(invoices[0].0.as_str()),
        "{what}: {view}"
    );
    assert_eq!(view["duplicateInvoices"], json!([]), "{what}: {view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_fortnox_answers_with_retry_pressed_make_one_invoice() {
    let flow = start().await;
    // (what, the call whose answer is held back: path, method)
    let cases = [
        ("rows PUT", "", "PUT"),
        ("createinvoice", "/createinvoice", "PUT"),
        ("order read after an interrupted attempt", "", "GET"),
    ];
    for (what, suffix, method) in cases {
        let (document, id) = sent_order(&flow).await;
        if method == "GET" {
            // The first attempt "crashes" right after createinvoice, so the next one must
            // read the order first: that read is the one held back.
            flow.app.app.faults.crash_after_invoice(1);
        }
        flow.sb().inject(FaultSpec {
            latency_ms: Some(HOLD.as_millis() as u64),
            latency_calls: Some(1),
            path_contains: Some(format!("/3/orders/{document}{suffix}")),
            method: Some(method.into()),
            ..Default::default()
        });
        let invoices = ship_and_retry_meanwhile(&flow, &document, id).await;
        flow.sb().clear_faults();
        assert_eq!(invoices.len(), 1, "{what}: {invoices:?}");
        assert_one_invoice(&flow, &document, id, what).await;
    }
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_frozen_at_each_invoice_step_never_leaves_a_silent_second_invoice() {
    let flow = start().await;
    for point in InvoicePoint::ALL {
        let (document, id) = sent_order(&flow).await;
        flow.app.app.faults.freeze_invoice_at(point, HOLD);
        let invoices = ship_and_retry_meanwhile(&flow, &document, id).await;
        let view = invoice_view(&flow, id).await;
        match point {
            InvoicePoint::AfterIntent => {
                // The frozen job proved its lease, then slept through it: its createinvoice
                // reaches Fortnox after the other job invoiced. Detected and credited.
                assert_eq!(invoices.len(), 2, "{point:?}: {invoices:?} {view}");
                let kept = view["invoiceNumber"].as_str().expect("invoiced").to_owned();
                let (duplicate, credit) = invoices
                    .iter()
                    .find(|(n, _)| *n != kept)
                    .cloned()
                    .expect("a duplicate");
                let credit = credit.unwrap_or_else(|| panic!("duplicate credited: {view}"));
                assert!(
                    invoices.iter().any(|(n, c)| *n == kept && c.is_none()),
                    "the kept invoice is not credited: {invoices:?}"
                );
                let recorded = &view["duplicateInvoices"];
                assert_eq!(
                    recorded,
                    &json!([{ "invoiceNumber": duplicate, "keptInvoiceNumber": kept, "creditInvoiceNumber": credit, "creditError": null }]),
                    "{view}"
                );
                let events = view["events"].as_array().expect("events");
                assert!(
                    events.iter().any(|e| e["kind"] == "ERROR"
                        && e["cause"] == "duplicate_invoice"
                        && e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(&duplicate) && m.contains(&kept))),
                    "an ERROR event names both invoices: {view}"
                );
                assert!(
                    events
                        .iter()
                        .any(|e| e["cause"] == "duplicate_invoice_credited"
                            && e["message"].as_str().is_some_and(|m| m.contains(&credit))),
                    "the credit is recorded: {view}"
                );
                let metrics = reqwest::get(format!("http://{}/metrics", flow.app.addr))
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("metrics body");
                let detected = metrics
                    .lines()
                    .find_map(|l| l.strip_prefix("invoice_duplicates_detected_total "))
                    .and_then(|v| v.trim().parse::<u64>().ok());
                assert!(detected.is_some_and(|n| n >= 1), "{metrics}");
            }
            _ => assert_one_invoice(&flow, &document, id, &format!("{point:?}")).await,
        }
    }
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_is_reported_but_not_credited_when_the_merchant_turned_credit_off() {
    let flow = start().await;
    let body = flow
        .gql(
            "mutation($m: ID!) { updateFortnoxSettings(merchantId: $m, creditDuplicateInvoices: false) { creditDuplicateInvoices } }",
            json!({ "m": flow.merchant.to_string() }),
        )
        .await;
    assert_eq!(
        body["data"]["updateFortnoxSettings"]["creditDuplicateInvoices"], false,
        "{body}"
    );
    let (document, id) = sent_order(&flow).await;
    flow.app
        .app
        .faults
        .freeze_invoice_at(InvoicePoint::AfterIntent, HOLD);
    let invoices = ship_and_retry_meanwhile(&flow, &document, id).await;
    let settled = common::eventually(WAIT, || async {
        invoice_view(&flow, id).await["duplicateInvoices"][0]["creditError"].is_string()
    })
    .await;
    let view = invoice_view(&flow, id).await;
    assert!(settled, "{view}");
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    assert!(
        invoices.iter().all(|(_, credit)| credit.is_none()),
        "nothing credited: {invoices:?}"
    );
    let duplicate = &view["duplicateInvoices"][0];
    assert_ne!(duplicate["invoiceNumber"], view["invoiceNumber"], "{view}");
    assert!(duplicate["creditInvoiceNumber"].is_null(), "{view}");
    assert!(
        duplicate["creditError"]
            .as_str()
            .is_some_and(|e| e.contains("off")),
        "{view}"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_created_while_an_admin_cancelled_the_order_is_reported() {
    let flow = start().await;
    let (document, id) = sent_order(&flow).await;
    flow.sb().inject(FaultSpec {
        latency_ms: Some(HOLD.as_millis() as u64),
        latency_calls: Some(1),
        path_contains: Some(format!("/3/orders/{document}/createinvoice")),
        method: Some("PUT".into()),
        ..Default::default()
    });
    assert_eq!(flow.ship_sent(None).await, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let body = flow
        .gql(
            "mutation($id: ID!) { forceOrderState(orderId: $id, state: CANCELLED, reason: \"customer called\") { state } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert_eq!(
        body["data"]["forceOrderState"]["state"], "CANCELLED",
        "{body}"
    );
    let reported = common::eventually(WAIT, || async {
        invoice_view(&flow, id).await["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["cause"] == "invoice_after_change"))
    })
    .await;
    let view = invoice_view(&flow, id).await;
    assert!(reported, "{view}");
    assert_eq!(view["state"], "CANCELLED", "{view}");
    assert_eq!(fortnox_invoices(&flow, &document).len(), 1);
    flow.stop().await;
}
