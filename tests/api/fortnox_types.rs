//! Parsing: tolerant where Fortnox is loose, strict where a mistake costs money.

use fortnox_fulfilment::fortnox::types::*;
use rust_decimal::Decimal;
use std::str::FromStr;

fn q(s: &str) -> Quantity {
    Quantity(Decimal::from_str(s).expect("decimal"))
}

const RECORDED_ORDER: &str = r#"{"Order":{"@url":"https://api.fortnox.se/3/orders/7","Cancelled":false,"CustomerNumber":"1",
 "DeliveryState":"delivery","DocumentNumber":"7","InvoiceReference":"0","Language":"SV",
 "NotCompleted":false,"OrderDate":"2023-01-30",
 "OrderRows":[{"AccountNumber":3001,"ArticleNumber":"101","DeliveredQuantity":"0",
   "Description":"Hammer","Discount":0,"DiscountType":"PERCENT","OrderedQuantity":"1",
   "Price":100,"ReservedQuantity":"0","RowId":5,"StockPointCode":null,"Unit":"","VAT":25}],
 "OrderType":"Order","Sent":false,"WarehouseReady":false,"WayOfDelivery":"",
 "StockPointCode":null}}"#;

#[test]
fn recorded_order_parses() {
    let o: OrderEnvelope = decode(RECORDED_ORDER.as_bytes()).expect("recorded order");
    let o = o.order;
    assert_eq!(o.document_number.as_str(), "7");
    assert!(o.in_delivery_state());
    assert_eq!(o.invoice(), None);
    assert_eq!(o.order_rows[0].row_id, Some(5));
    assert_eq!(o.order_rows[0].ordered_quantity, Some(q("1")));
    assert_eq!(o.order_rows[0].vat, Some(q("25")));
    assert_eq!(o.delivery_date, None);
}

#[test]
fn quantities_as_string_or_number() {
    let row = |v: &str| format!(r#"{{"RowId":1,"OrderedQuantity":{v}}}"#);
    for (raw, want) in [
        ("\"1\"", "1"),
        ("\"1.12\"", "1.12"),
        ("1.12", "1.12"),
        ("3", "3"),
    ] {
        let r: OrderRow = decode(row(raw).as_bytes()).expect(raw);
        assert_eq!(r.ordered_quantity, Some(q(want)), "{raw}");
    }
    // The one quantity policy (docs/rules.md): a comma is never guessed at, also from
    // Fortnox, which sends a decimal point; the error names the field.
    let refused = decode::<OrderRow>(row("\"2,5\"").as_bytes()).expect_err("a comma");
    assert!(refused.to_string().contains("OrderedQuantity"), "{refused}");
    let r: OrderRow =
        decode(br#"{"RowId":1,"OrderedQuantity":null,"Unknown":{"x":1}}"#).expect("null");
    assert_eq!(r.ordered_quantity, None);
}

#[test]
fn quantities_serialize_as_numbers() {
    let body = OrderRowsUpdate {
        order: OrderRowsUpdateBody {
            order_rows: vec![
                RowUpdate {
                    row_id: Some(5),
                    article_number: None,
                    description: None,
                    ordered_quantity: None,
                    delivered_quantity: Some(q("1.12")),
                    price: None,
                },
                RowUpdate {
                    row_id: Some(6),
                    article_number: None,
                    description: None,
                    ordered_quantity: None,
                    delivered_quantity: None,
                    price: None,
                },
            ],
        },
    };
    let s = serde_json::to_string(&body).expect("json");
    assert_eq!(
        s,
        r#"{"Order":{"OrderRows":[{"RowId":5,"DeliveredQuantity":1.12},{"RowId":6}]}}"#
    );
    assert_eq!(serde_json::to_string(&q("2.000")).expect("json"), "2");
}

#[test]
fn unparseable_quantity_names_the_field() {
    let raw = RECORDED_ORDER.replace(r#""DeliveredQuantity":"0""#, r#""DeliveredQuantity":"ett""#);
    let err = decode::<OrderEnvelope>(raw.as_bytes()).expect_err("must fail");
    assert_eq!(err.path, "Order.OrderRows[0].DeliveredQuantity");
    assert!(err.to_string().contains("DeliveredQuantity"), "{err}");
}

#[test]
fn document_numbers_and_row_ids_are_strict() {
    for bad in [r#""""#, r#""7a""#, "null", "-1", "1.5"] {
        let raw = RECORDED_ORDER.replace(
            r#""DocumentNumber":"7""#,
            &format!(r#""DocumentNumber":{bad}"#),
        );
        let err = decode::<OrderEnvelope>(raw.as_bytes()).expect_err(bad);
        assert_eq!(err.path, "Order.DocumentNumber", "{bad}");
    }
    let raw = RECORDED_ORDER.replace(r#""DocumentNumber":"7""#, r#""DocumentNumber":7"#);
    assert!(
        decode::<OrderEnvelope>(raw.as_bytes()).is_ok(),
        "a numeric document number is still a number"
    );
    let raw = RECORDED_ORDER.replace(r#""RowId":5"#, r#""RowId":"five""#);
    let err = decode::<OrderEnvelope>(raw.as_bytes()).expect_err("row id");
    assert_eq!(err.path, "Order.OrderRows[0].RowId");
}

#[test]
fn error_information_in_both_casings() {
    let lower: ErrorEnvelope = decode(
        r#"{"ErrorInformation":{"error":1,"message":"Ett ogiltigt filter har använts.","code":2000587}}"#.as_bytes(),
    )
    .expect("lower");
    assert_eq!(lower.error_information.code, Some(2000587));
    assert_eq!(
        lower.error_information.message,
        "Ett ogiltigt filter har använts."
    );
    let upper: ErrorEnvelope = decode(
        r#"{"ErrorInformation":{"Error":1,"Message":"Kan inte hitta ordern.","Code":2000439}}"#
            .as_bytes(),
    )
    .expect("upper");
    assert_eq!(upper.error_information.code, Some(2000439));
    assert_eq!(upper.error_information.message, "Kan inte hitta ordern.");
    let stringly: ErrorEnvelope =
        decode(br#"{"ErrorInformation":{"Error":"1","Message":"x","Code":"2000439"}}"#)
            .expect("string code");
    assert_eq!(stringly.error_information.code, Some(2000439));
}

#[test]
fn list_and_oauth_shapes() {
    let list: OrderList = decode(
        br#"{"MetaInformation":{"@TotalResources":5,"@TotalPages":3,"@CurrentPage":1},
 "Orders":[{"@url":"https://api.fortnox.se/3/orders/3","Cancelled":false,"Currency":"SEK",
   "CustomerName":"Test customer","CustomerNumber":"2","DeliveryDate":"2023-01-27",
   "DocumentNumber":"3","ExternalInvoiceReference1":"","ExternalInvoiceReference2":"",
   "OrderDate":"2023-01-27","OrderType":"Order","Project":"","Sent":false,"Total":0}]}"#,
    )
    .expect("list");
    assert_eq!(list.meta.total_pages, 3);
    assert_eq!(list.orders[0].document_number.as_str(), "3");

    let t: TokenResponse = decode(
        br#"{"access_token":"a","refresh_token":"r","scope":"article invoice order settings","expires_in":3600,"token_type":"bearer"}"#,
    )
    .expect("token");
    assert_eq!(t.expires_in, 3600);
    let e: OAuthErrorBody =
        decode(br#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#)
            .expect("oauth error");
    assert_eq!(e.error, "invalid_grant");

    let w: WayOfDeliveryList = decode(
        br#"{"WayOfDeliveries":[{"@url":"..","Code":"DHL","Description":"DHL Express","DescriptionEnglish":"DHL Express"}]}"#,
    )
    .expect("ways");
    assert_eq!(w.way_of_deliveries[0].code, "DHL");
}

#[test]
fn invoice_reference_zero_or_empty_means_none() {
    assert_eq!(invoice_reference(&Some("0".into())), None);
    assert_eq!(invoice_reference(&Some("".into())), None);
    assert_eq!(invoice_reference(&None), None);
    assert_eq!(
        invoice_reference(&Some("1001".into())).map(|d| d.to_string()),
        Some("1001".into())
    );
}

#[test]
fn stringify_matches_fortnox() {
    let mut v = serde_json::json!({"Order":{"Total":10,"OrderRows":[{"OrderedQuantity":1,"DeliveredQuantity":1.5,"Price":2}]}});
    stringify_quantities(&mut v);
    assert_eq!(v["Order"]["OrderRows"][0]["OrderedQuantity"], "1");
    assert_eq!(v["Order"]["OrderRows"][0]["DeliveredQuantity"], "1.5");
    assert_eq!(v["Order"]["OrderRows"][0]["Price"], 2);
    let mut a = serde_json::json!({"Article":{"QuantityInStock":3,"ReservedQuantity":0}});
    stringify_quantities(&mut a);
    assert_eq!(
        a["Article"]["ReservedQuantity"], 0,
        "only row quantities are strings"
    );
}

fn invoice_with(fields: &str) -> Result<Invoice, DecodeError> {
    let body = format!(
        r#"{{"Invoice":{{"DocumentNumber":"1001","OrderReference":"7","InvoiceRows":[]{fields}}}}}"#
    );
    decode::<InvoiceEnvelope>(body.as_bytes()).map(|e| e.invoice)
}

#[test]
fn invoice_credit_fields_are_optional_and_loose() {
    let d = |s: &str| DocumentNumber::parse(s).expect("number");
    // Absent, null, "0", empty or 0: not credited.
    for fields in [
        "",
        r#","Credit":null,"CreditInvoiceReference":null"#,
        r#","Credit":false,"CreditInvoiceReference":"0""#,
        r#","Credit":"false","CreditInvoiceReference":"""#,
        r#","Credit":false,"CreditInvoiceReference":0"#,
    ] {
        let inv = invoice_with(fields).expect(fields);
        assert!(!inv.is_credit(), "{fields}");
        assert_eq!(inv.credited_by(), None, "{fields}");
        assert_eq!(inv.credits(), None, "{fields}");
    }
    // An original that has been credited, as a string or a number.
    for fields in [
        r#","Credit":false,"CreditInvoiceReference":"1002""#,
        r#","Credit":"false","CreditInvoiceReference":1002"#,
        r#","CreditInvoiceReference":"1002""#,
    ] {
        let inv = invoice_with(fields).expect(fields);
        assert_eq!(inv.credited_by(), Some(d("1002")), "{fields}");
        assert_eq!(inv.credits(), None, "{fields}");
    }
    // The credit invoice points back at the original; it is not "credited".
    for fields in [
        r#","Credit":true,"CreditInvoiceReference":"1000""#,
        r#","Credit":"true","CreditInvoiceReference":1000"#,
    ] {
        let inv = invoice_with(fields).expect(fields);
        assert!(inv.is_credit(), "{fields}");
        assert_eq!(inv.credits(), Some(d("1000")), "{fields}");
        assert_eq!(inv.credited_by(), None, "{fields}");
    }
    let err = invoice_with(r#","Credit":"maybe""#).expect_err("not a boolean");
    assert_eq!(err.path, "Invoice.Credit");
}

#[test]
fn invoice_round_trips_with_and_without_credit_fields() {
    for fields in [
        "",
        r#","Credit":true,"CreditInvoiceReference":"1000""#,
        r#","Credit":false,"CreditInvoiceReference":"0""#,
    ] {
        let inv = invoice_with(fields).expect(fields);
        let json = serde_json::to_vec(&InvoiceEnvelope {
            invoice: inv.clone(),
        })
        .expect("encode");
        let back: InvoiceEnvelope = decode(&json).expect("decode");
        assert_eq!(back.invoice, inv, "{fields}");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        if fields.is_empty() {
            assert!(
                v["Invoice"].get("Credit").is_none(),
                "absent fields stay absent"
            );
        } else {
            assert!(v["Invoice"]["Credit"].is_boolean());
        }
    }
}

#[test]
fn company_information_reads_loosely() {
    let recorded = br#"{"CompanyInformation":{"Address":"Storgatan 1","City":"Stockholm",
     "CountryCode":"SE","DatabaseNumber":123456,"CompanyName":"Acme AB",
     "OrganizationNumber":"556677-8899","VisitAddress":"","VisitCity":"","VisitCountryCode":"",
     "VisitZipCode":"","ZipCode":"111 22","Unknown":{"x":1}}}"#;
    let c: CompanyInformationEnvelope = decode(recorded).expect("recorded");
    let c = c.company_information;
    assert_eq!(c.company_name, "Acme AB");
    assert_eq!(c.organization_number.as_deref(), Some("556677-8899"));
    assert_eq!(c.tenant_id(), Some(123456));
    assert_eq!(c.zip_code.as_deref(), Some("111 22"));

    // A numeric string, nulls and blanks; nothing at all.
    let c: CompanyInformation =
        decode(br#"{"DatabaseNumber":"654321","CompanyName":null,"OrganizationNumber":" "}"#)
            .expect("loose");
    assert_eq!(c.database_number, Some(654321));
    assert_eq!(c.company_name, "");
    assert_eq!(c.organization_number, None);
    let c: CompanyInformation = decode(br#"{"DatabaseNumber":""}"#).expect("blank");
    assert_eq!(c.database_number, None);
    assert_eq!(
        decode::<CompanyInformation>(b"{}").expect("empty"),
        Default::default()
    );

    // The tenant id is never guessed.
    let err =
        decode::<CompanyInformation>(br#"{"DatabaseNumber":"12a"}"#).expect_err("not a number");
    assert!(err.to_string().contains("DatabaseNumber"), "{err}");
}
