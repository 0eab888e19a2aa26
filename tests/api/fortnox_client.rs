//! The client against the sandbox, over HTTP on loopback, for every call; and
//! fault injection ending in success without duplicated effects.

use crate::fortnox_common::*;
use fortnox_fulfilment::fortnox::types::{DocumentNumber, Quantity, RowUpdate};
use fortnox_fulfilment::fortnox::{ErrorClass, FortnoxError, OrderFilter, OrderQuery, TokenState};
use fortnox_sandbox::{CompanySettings, FaultSpec};
use serde_json::json;

fn doc(n: &str) -> DocumentNumber {
    DocumentNumber::parse(n).expect("document number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_1200_orders() {
    let e = env().await;
    for i in 0..1200 {
        let mut o = json!({"CustomerNumber": "1", "OrderDate": "2026-10-01", "OrderRows": []});
        if i % 3 == 0 {
            o["NotCompleted"] = json!(true);
        }
        e.sb.create_order(TENANT, o).expect("seed");
    }
    let all = e
        .client
        .tenant(MERCHANT)
        .list_orders(&OrderQuery::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1200);
    let mut numbers: Vec<u64> = all.iter().map(|o| o.document_number.number()).collect();
    numbers.dedup();
    assert_eq!(numbers.len(), 1200, "no order twice");
    // limit 500 -> 3 pages
    assert_eq!(e.sb.counters().calls_with("orders", 200), 3);

    let done = e
        .client
        .tenant(MERCHANT)
        .list_orders(&OrderQuery {
            not_completed: Some(false),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(done.len(), 800);
}

#[tokio::test]
async fn order_filters_and_incremental_polling() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);
    e.sb.create_order(TENANT, json!({"OrderDate": "2026-01-01"}))
        .expect("old");
    e.sb.create_order(TENANT, json!({"OrderDate": "2026-06-01"}))
        .expect("new");
    e.sb.create_order(TENANT, json!({"OrderDate": "2026-06-02"}))
        .expect("cancel me");
    e.sb.cancel_order(TENANT, "3").expect("cancel");
    let from = chrono::NaiveDate::from_ymd_opt(2026, 5, 1);
    let l = t
        .list_orders(&OrderQuery {
            from_date: from,
            ..Default::default()
        })
        .await
        .expect("fromdate");
    assert_eq!(l.len(), 2);
    let l = t
        .list_orders(&OrderQuery {
            filter: Some(OrderFilter::Cancelled),
            ..Default::default()
        })
        .await
        .expect("cancelled");
    assert_eq!(
        l.iter()
            .map(|o| o.document_number.to_string())
            .collect::<Vec<_>>(),
        ["3"]
    );
    let later = chrono::Utc::now().naive_utc() + chrono::Duration::minutes(2);
    let l = t
        .list_orders(&OrderQuery {
            last_modified: Some(later),
            ..Default::default()
        })
        .await
        .expect("lastmodified");
    assert!(l.is_empty());
    let earlier = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(2);
    let l = t
        .list_orders(&OrderQuery {
            last_modified: Some(earlier),
            ..Default::default()
        })
        .await
        .expect("lastmodified");
    assert_eq!(l.len(), 3);
}

#[tokio::test]
async fn every_call_round_trips() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);
    let sb_articles = vec![serde_json::from_value(json!({
        "ArticleNumber": "101", "Description": "Hammer", "Type": "STOCK", "StockGoods": true,
        "QuantityInStock": 5, "DefaultStockLocation": "3PL", "EAN": "7300000000017", "Weight": 650
    }))
    .expect("article")];
    e.sb.add_articles(TENANT, sb_articles);
    e.sb.add_ways_of_delivery(
        TENANT,
        vec![
            serde_json::from_value(json!({"Code":"DHL","Description":"DHL Express"})).expect("way"),
        ],
    );
    let created = e.sb.create_order(TENANT, order_json("2")).expect("order");
    let n = created.document_number.clone();

    let o = t.get_order(&n).await.expect("get order");
    assert_eq!(o.order_rows.len(), 2);
    assert_eq!(
        o.order_rows[1].ordered_quantity.map(|q| q.to_string()),
        Some("1.5".into())
    );

    // Deliver 2 of the hammers and 1 of 1.5 nails, keeping every row.
    let updated = t
        .set_delivered_quantities(&n, |row| match row.article_number.as_deref() {
            Some("101") => Some(Quantity::from_i64(2)),
            Some("102") => Some(Quantity::from_i64(1)),
            _ => None,
        })
        .await
        .expect("deliver");
    assert_eq!(updated.order_rows.len(), 2);
    assert_eq!(
        updated.order_rows[0].delivered_quantity,
        Some(Quantity::from_i64(2))
    );
    assert!(
        updated
            .order_rows
            .iter()
            .zip(&o.order_rows)
            .all(|(a, b)| a.row_id != b.row_id),
        "new RowIds"
    );

    // Plain row update keeping RowIds.
    let rows: Vec<RowUpdate> = updated
        .order_rows
        .iter()
        .map(|r| RowUpdate {
            row_id: r.row_id,
            article_number: None,
            description: None,
            ordered_quantity: None,
            delivered_quantity: None,
            price: None,
        })
        .collect();
    let same = t.update_order_rows(&n, rows).await.expect("update rows");
    assert_eq!(same.order_rows.len(), 2);

    let out = t.create_invoice_once(&n).await.expect("invoice");
    assert!(!out.adopted);
    assert_eq!(out.invoice.order_reference.as_deref(), Some(n.as_str()));
    assert_eq!(
        out.invoice.invoice_rows[1].delivered_quantity,
        Some(Quantity::from_i64(1))
    );
    let inv = t
        .get_invoice(&out.invoice.document_number)
        .await
        .expect("get invoice");
    assert_eq!(inv, out.invoice);
    assert_eq!(
        e.sb.counters().back_orders.len(),
        1,
        "0.5 nails left on a back order"
    );
    // A second intent adopts the existing invoice.
    let again = t.create_invoice_once(&n).await.expect("again");
    assert!(again.adopted);
    assert_eq!(e.sb.counters().invoices_for(TENANT, n.as_str()), 1);

    let arts = t.list_articles(Some("active")).await.expect("articles");
    assert_eq!(arts.len(), 1);
    let a = t.get_article("101").await.expect("article");
    assert_eq!(a.default_stock_location.as_deref(), Some("3PL"));
    let a = t
        .update_article_stock("101", Quantity::from_i64(42))
        .await
        .expect("stock");
    assert_eq!(a.quantity_in_stock, Some(Quantity::from_i64(42)));
    assert_eq!(
        e.sb.article(TENANT, "101")
            .and_then(|a| a.quantity_in_stock),
        Some(Quantity::from_i64(42))
    );
    let ways = t.list_ways_of_delivery().await.expect("ways");
    assert_eq!(ways[0].code, "DHL");

    // Counters per resource and status on the client side.
    let c = e.client.counters();
    assert!(c.count("orders", 200) >= 3);
    assert_eq!(c.count("orders/createinvoice", 200), 1);
}

#[tokio::test]
async fn document_errors_keep_fortnox_message_and_code() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);
    let err = t.get_order(&doc("77")).await.expect_err("missing");
    assert_eq!(err.class(), ErrorClass::Document);
    assert_eq!(err.fortnox_code(), Some(2000439));
    assert!(err.is_not_found());
    let o = e.sb.create_order(TENANT, json!({"DeliveryState":"registration","OrderRows":[{"ArticleNumber":"1","OrderedQuantity":"1"}]})).expect("o");
    let err = t
        .set_delivered_quantities(&o.document_number, |_| Some(Quantity::from_i64(1)))
        .await
        .expect_err("locked");
    match &err {
        FortnoxError::Document {
            status: 400,
            code: Some(2000850),
            message,
        } => assert!(message.contains("Leverans")),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        e.sb.counters().calls_with("orders", 400),
        1,
        "a document error is not retried"
    );
}

#[tokio::test]
async fn faults_500_429_and_timeouts_end_in_success() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    e.sb.inject(FaultSpec {
        fail_next: Some(3),
        status: Some(500),
        ..Default::default()
    });
    t.get_order(&doc("1")).await.expect("after 500s");
    e.sb.inject(FaultSpec {
        burst_429: Some(4),
        ..Default::default()
    });
    t.list_orders(&OrderQuery::default())
        .await
        .expect("after 429s");
    e.sb.inject(FaultSpec {
        latency_ms: Some(3000),
        latency_calls: Some(1),
        ..Default::default()
    });
    t.get_order(&doc("1")).await.expect("after a timeout");
    let c = e.sb.counters();
    assert_eq!(c.calls_with("orders", 500), 3);
    assert_eq!(c.calls_with("orders", 429), 4);
    assert_eq!(
        e.client.counters().count("orders", 0),
        1,
        "one timed-out attempt"
    );
}

#[tokio::test]
async fn retries_give_up_as_retryable() {
    let e = env().await;
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    e.sb.inject(FaultSpec {
        fail_next: Some(100),
        status: Some(503),
        ..Default::default()
    });
    let err = e
        .client
        .tenant(MERCHANT)
        .get_order(&doc("1"))
        .await
        .expect_err("gives up");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(e.sb.counters().calls_with("orders", 503), 6, "max_attempts");
}

#[tokio::test]
async fn createinvoice_faults_make_exactly_one_invoice() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);
    // 500s before the effect: re-read, nothing there, try again.
    e.sb.create_order(TENANT, order_json("1")).expect("order 1");
    e.sb.inject(FaultSpec {
        fail_next: Some(2),
        status: Some(500),
        path_contains: Some("createinvoice".into()),
        ..Default::default()
    });
    let out = t.create_invoice_once(&doc("1")).await.expect("invoice 1");
    assert!(!out.adopted);
    // 429 burst: surely not processed, retried directly.
    e.sb.create_order(TENANT, order_json("1")).expect("order 3");
    let n3 =
        e.sb.orders(TENANT)
            .last()
            .map(|o| o.document_number.clone())
            .expect("o3");
    e.sb.inject(FaultSpec {
        burst_429: Some(3),
        path_contains: Some("createinvoice".into()),
        ..Default::default()
    });
    t.create_invoice_once(&n3)
        .await
        .expect("invoice after 429s");
    // The effect happens but the answer is too slow: the client times out,
    // re-reads the order, finds InvoiceReference and adopts the invoice.
    e.sb.create_order(TENANT, order_json("1")).expect("order 5");
    let n5 =
        e.sb.orders(TENANT)
            .last()
            .map(|o| o.document_number.clone())
            .expect("o5");
    e.sb.inject(FaultSpec {
        latency_ms: Some(3000),
        latency_calls: Some(1),
        path_contains: Some("createinvoice".into()),
        ..Default::default()
    });
    let out = t
        .create_invoice_once(&n5)
        .await
        .expect("invoice after timeout");
    assert!(
        out.adopted,
        "adopted the invoice made by the timed-out call"
    );

    let c = e.sb.counters();
    for n in ["1", n3.as_str(), n5.as_str()] {
        assert_eq!(c.invoices_for(TENANT, n), 1, "order {n}: one invoice");
    }
    assert_eq!(c.calls_with("orders/createinvoice", 500), 2);
    assert_eq!(c.calls_with("orders/createinvoice", 429), 3);
}

#[tokio::test]
async fn raw_createinvoice_does_not_retry_ambiguous_failures() {
    let e = env().await;
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    e.sb.inject(FaultSpec {
        fail_next: Some(1),
        status: Some(502),
        path_contains: Some("createinvoice".into()),
        ..Default::default()
    });
    let err = e
        .client
        .tenant(MERCHANT)
        .create_invoice_raw(&doc("1"))
        .await
        .expect_err("ambiguous");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(e.sb.counters().calls_to("orders/createinvoice"), 1);
}

/// An order invoiced through the sandbox's control side; its invoice number.
fn invoiced_order(e: &Env) -> (DocumentNumber, DocumentNumber) {
    let order = e.sb.create_order(TENANT, order_json("1")).expect("order");
    let invoice =
        e.sb.create_invoice(TENANT, order.document_number.as_str())
            .expect("invoice");
    (order.document_number, invoice.document_number)
}

#[tokio::test]
async fn credit_invoice_credits_once_and_adopts_an_existing_credit() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);
    let (order, invoice) = invoiced_order(&e);

    let out = t.credit_invoice(&invoice).await.expect("credit");
    assert!(!out.adopted);
    let credit = out.credit_invoice;
    assert!(credit.is_credit());
    assert_eq!(credit.credits(), Some(invoice.clone()));
    assert_eq!(credit.order_reference.as_deref(), Some(order.as_str()));
    let original = t.get_invoice(&invoice).await.expect("original");
    assert_eq!(original.credited_by(), Some(credit.document_number.clone()));

    // A second intent adopts the credit invoice without another credit call.
    let again = t.credit_invoice(&invoice).await.expect("again");
    assert!(again.adopted);
    assert_eq!(again.credit_invoice, credit);
    let c = e.sb.counters();
    assert_eq!(c.calls_to("invoices/credit"), 1);
    assert_eq!(c.credits_for(TENANT, order.as_str()), 1);
    assert_eq!(e.sb.invoices_of_order(TENANT, order.as_str()).len(), 2);

    // Credited by hand in Fortnox: adopted too.
    let (order2, invoice2) = invoiced_order(&e);
    let by_hand =
        e.sb.credit_invoice(TENANT, invoice2.as_str())
            .expect("by hand");
    let out = t.credit_invoice(&invoice2).await.expect("adopt");
    assert!(out.adopted);
    assert_eq!(out.credit_invoice, by_hand);
    assert_eq!(e.sb.counters().credits_for(TENANT, order2.as_str()), 1);
    assert_eq!(e.sb.counters().calls_to("invoices/credit"), 1);

    // A credit invoice cannot be credited: Fortnox's refusal comes back.
    let err = t
        .credit_invoice(&credit.document_number)
        .await
        .expect_err("credit of a credit");
    assert_eq!(err.class(), ErrorClass::Document);
    assert_eq!(err.fortnox_code(), Some(2000853));
    let err = t.credit_invoice(&doc("99999")).await.expect_err("unknown");
    assert!(err.is_not_found());

    // The client counts the credit calls like every other call.
    let counters = e.client.counters();
    assert_eq!(counters.count("invoices/credit", 200), 1);
    assert_eq!(counters.count("invoices/credit", 400), 1);
    assert!(counters.count("invoices", 200) >= 5);
}

#[tokio::test]
async fn credit_invoice_faults_credit_exactly_once() {
    let e = env().await;
    let t = e.client.tenant(MERCHANT);

    // 500s before the effect: re-read, not credited, try again.
    let (order1, invoice1) = invoiced_order(&e);
    e.sb.inject(FaultSpec {
        fail_next: Some(2),
        status: Some(500),
        method: Some("PUT".into()),
        path_contains: Some("/credit".into()),
        ..Default::default()
    });
    let out = t.credit_invoice(&invoice1).await.expect("after 500s");
    assert!(!out.adopted);
    assert_eq!(e.sb.counters().calls_with("invoices/credit", 500), 2);

    // The credit happens but its answer is lost (held beyond the client's
    // timeout): re-read, find the credit, adopt it.
    let (order2, invoice2) = invoiced_order(&e);
    e.sb.inject(FaultSpec {
        latency_ms: Some(3000),
        latency_calls: Some(1),
        method: Some("PUT".into()),
        path_contains: Some(format!("/3/invoices/{invoice2}/credit")),
        ..Default::default()
    });
    let out = t.credit_invoice(&invoice2).await.expect("after a timeout");
    assert!(out.adopted, "adopted the credit made by the timed-out call");
    assert_eq!(out.credit_invoice.credits(), Some(invoice2.clone()));
    assert_eq!(e.client.counters().count("invoices/credit", 0), 1);

    // Someone credits by hand between our read and our credit: Fortnox
    // refuses ours, and the re-read adopts theirs.
    let (order3, invoice3) = invoiced_order(&e);
    e.sb.clear_calls();
    e.sb.inject(FaultSpec {
        latency_ms: Some(1000),
        latency_calls: Some(1),
        method: Some("GET".into()),
        path_contains: Some(format!("/3/invoices/{invoice3}")),
        ..Default::default()
    });
    let client = t.clone();
    let pending = {
        let invoice3 = invoice3.clone();
        tokio::spawn(async move { client.credit_invoice(&invoice3).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !e.sb.calls().iter().any(|c| c.method == "GET") {
        assert!(std::time::Instant::now() < deadline, "the first read");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let by_hand =
        e.sb.credit_invoice(TENANT, invoice3.as_str())
            .expect("by hand");
    let out = pending
        .await
        .expect("join")
        .expect("adopted after a refusal");
    assert!(out.adopted);
    assert_eq!(out.credit_invoice, by_hand);
    assert_eq!(e.sb.counters().calls_with("invoices/credit", 400), 1);

    let c = e.sb.counters();
    for order in [&order1, &order2, &order3] {
        assert_eq!(
            c.credits_for(TENANT, order.as_str()),
            1,
            "order {order}: one credit"
        );
        assert_eq!(c.invoices_for(TENANT, order.as_str()), 1);
    }
}

#[tokio::test]
async fn raw_credit_does_not_retry_ambiguous_failures() {
    let e = env().await;
    let (_, invoice) = invoiced_order(&e);
    e.sb.inject(FaultSpec {
        fail_next: Some(1),
        status: Some(502),
        path_contains: Some("/credit".into()),
        ..Default::default()
    });
    let err = e
        .client
        .tenant(MERCHANT)
        .credit_invoice_raw(&invoice)
        .await
        .expect_err("ambiguous");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(e.sb.counters().calls_to("invoices/credit"), 1);
    assert!(e
        .sb
        .invoice(TENANT, invoice.as_str())
        .is_some_and(|i| i.credited_by().is_none()));
}

#[tokio::test]
async fn company_information_of_a_connected_tenant() {
    let e = env().await;
    let company = e
        .client
        .tenant(MERCHANT)
        .company_information()
        .await
        .expect("company");
    assert_eq!(company, e.sb.company(TENANT));
    assert_eq!(company.company_name, format!("Sandbox company {TENANT}"));
    assert!(company.organization_number.is_some());
    assert!(company.tenant_id().is_some());
    assert_eq!(e.client.counters().count("companyinformation", 200), 1);
}

#[tokio::test]
async fn exchange_code_for_company_reads_the_authorized_company_and_saves_nothing() {
    let e = env().await;
    let acme =
        e.sb.create_tenant_with_company(
            "t2",
            None,
            CompanySettings {
                company_name: Some("Acme AB".into()),
                organization_number: Some("556677-8899".into()),
                database_number: Some(123456),
            },
        )
        .expect("tenant t2");
    // Two failures on the read first: it goes the way of every call.
    e.sb.inject(FaultSpec {
        fail_next: Some(2),
        status: Some(503),
        path_contains: Some("/3/companyinformation".into()),
        ..Default::default()
    });
    let code = authorize_code(&e, "t2").await;
    let (tokens, company) = e
        .client
        .exchange_code_for_company(MERCHANT, &code)
        .await
        .expect("exchange and read");
    assert_eq!(company, acme);
    assert_eq!(company.company_name, "Acme AB");
    assert_eq!(company.organization_number.as_deref(), Some("556677-8899"));
    assert_eq!(company.database_number, Some(123456));
    assert_ne!(company, e.sb.company(TENANT), "t2's company, not t1's");
    assert_eq!(e.store.state("m2"), TokenState::Missing, "nothing saved");
    assert_eq!(e.sb.counters().calls_with("companyinformation", 503), 2);
    let counters = e.client.counters();
    assert_eq!(counters.count("companyinformation", 503), 2);
    assert_eq!(counters.count("companyinformation", 200), 1);
    assert_eq!(counters.count("oauth/token", 200), 1);

    // The caller keeps the tokens once it is content with the company.
    e.client.save_tokens("m2", &tokens).await.expect("save");
    assert!(matches!(e.store.state("m2"), TokenState::Active(t) if t == tokens));
    let again = e
        .client
        .tenant("m2")
        .company_information()
        .await
        .expect("with the saved tokens");
    assert_eq!(again, acme);

    // A code is single use, whichever way it is exchanged.
    let err = e
        .client
        .exchange_code_for_company(MERCHANT, &code)
        .await
        .expect_err("code reused");
    assert_eq!(err.class(), ErrorClass::NeedsReauthorization);
}

#[tokio::test]
async fn exchange_code_for_company_does_not_refresh_a_refused_token() {
    let e = env().await;
    let code = authorize_code(&e, "t2").await;
    // Fortnox refuses every access token of the tenant as soon as it is made.
    e.sb.inject(FaultSpec {
        fail_next: Some(1),
        status: Some(401),
        path_contains: Some("/3/companyinformation".into()),
        ..Default::default()
    });
    let err = e
        .client
        .exchange_code_for_company(MERCHANT, &code)
        .await
        .expect_err("401");
    assert_eq!(err.class(), ErrorClass::NeedsReauthorization, "{err}");
    let c = e.sb.counters();
    assert_eq!(c.calls_with("companyinformation", 401), 1);
    assert_eq!(
        c.token_requests.get("refresh_token ok"),
        None,
        "no refresh of tokens nobody saved"
    );
    assert_eq!(e.store.state("m2"), TokenState::Missing);
}
