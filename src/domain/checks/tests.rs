//! Unit tests of the order checks: a passing order, then one test per failure.
use super::*;
use rust_decimal::Decimal;

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn qty(text: &str) -> RowQuantity {
    RowQuantity::parse(text)
}

fn row(position: i32, article: Option<&str>, quantity: &str) -> OrderRowToCheck {
    OrderRowToCheck {
        position,
        row_id: Some(100 + i64::from(position)),
        article_number: article.map(str::to_owned),
        description: format!("Row {position}"),
        ordered_quantity: qty(quantity),
    }
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// An order that passes: two stock rows, a service row, a text row, a full customer address.
fn good_order() -> OrderToCheck {
    OrderToCheck {
        rows: vec![
            row(1, Some("ABC-1"), "2"),
            row(2, Some("FRAKT"), "1"),
            row(3, None, "0"),
            row(4, Some("XYZ-9"), "1.5"),
        ],
        address: OrderAddressFields {
            customer_name: some("Anna Andersson"),
            address1: some("Storgatan 1"),
            zip_code: some("111 22"),
            city: some("Stockholm"),
            country: some("Sverige"),
            ..OrderAddressFields::default()
        },
        way_of_delivery: some("DHL"),
        way_of_delivery_description: None,
        delivery_state: some("delivery"),
        warehouse_ready: false,
    }
}

fn context() -> CheckContext {
    CheckContext {
        product_skus: ["ABC-1", "XYZ-9"].map(str::to_owned).into(),
        non_stock_article_numbers: ["FRAKT"].map(str::to_owned).into(),
        ignore_missing_products: false,
        shipping_rules: vec![
            ShippingRule {
                id: 1,
                pattern: "DHL*".into(),
                shipping_method_id: 10,
            },
            ShippingRule {
                id: 2,
                pattern: "PN*".into(),
                shipping_method_id: 20,
            },
        ],
        way_of_delivery_descriptions: [("PNO".to_owned(), "PostNord Ombud".to_owned())].into(),
    }
}

/// The single reason of an order that is `good_order` but for one change.
fn only_reason(order: &OrderToCheck, ctx: &CheckContext) -> String {
    let outcome = check_order(order, ctx);
    assert_eq!(
        outcome.reasons.len(),
        1,
        "expected exactly one reason, got {:#?}",
        outcome.reasons
    );
    outcome.reasons[0].clone()
}

#[test]
fn a_good_order_passes_with_its_stock_lines_method_and_address() {
    let outcome = check_order(&good_order(), &context());
    assert!(outcome.passes(), "{:#?}", outcome.reasons);
    assert!(outcome.warnings.is_empty());
    assert_eq!(
        outcome.lines_to_ship,
        vec![
            LineToShip {
                position: 1,
                row_id: Some(101),
                article_number: "ABC-1".into(),
                quantity: decimal("2")
            },
            LineToShip {
                position: 4,
                row_id: Some(104),
                article_number: "XYZ-9".into(),
                quantity: decimal("1.5")
            },
        ]
    );
    assert_eq!(outcome.shipping_rule_id, Some(1));
    assert_eq!(outcome.shipping_method_id, Some(10));
    assert_eq!(outcome.address.name, some("Anna Andersson"));
    assert_eq!(outcome.address.country_code, some("SE"));
}

// --- rows ---------------------------------------------------------------------------

#[test]
fn a_missing_product_is_a_reason_naming_article_row_and_fix() {
    let mut order = good_order();
    order.rows[3].article_number = some("NOPE-7");
    assert_eq!(
        only_reason(&order, &context()),
        "Article NOPE-7 on row 4 is not in the product catalogue: create the product or turn on ignoreMissingProducts"
    );
}

#[test]
fn article_numbers_match_exactly() {
    let mut order = good_order();
    order.rows[0].article_number = some("abc-1");
    assert!(only_reason(&order, &context())
        .starts_with("Article abc-1 on row 1 is not in the product catalogue"));
    order.rows[0].article_number = some(" ABC-1 ");
    assert!(
        check_order(&order, &context()).passes(),
        "surrounding whitespace is not part of the number"
    );
}

#[test]
fn with_ignore_missing_products_the_row_is_left_out_with_a_warning() {
    let mut order = good_order();
    order.rows[3].article_number = some("NOPE-7");
    let ctx = CheckContext {
        ignore_missing_products: true,
        ..context()
    };
    let outcome = check_order(&order, &ctx);
    assert!(outcome.passes(), "{:#?}", outcome.reasons);
    assert_eq!(
        outcome
            .lines_to_ship
            .iter()
            .map(|line| line.position)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(
        outcome.warnings,
        vec!["Article NOPE-7 on row 4 is not in the product catalogue and is left out of the warehouse order and the invoice because ignoreMissingProducts is on"]
    );
}

#[test]
fn with_ignore_missing_products_a_left_out_row_is_not_checked_further() {
    let mut order = good_order();
    order.rows[3] = row(4, Some("NOPE-7"), "0");
    let ctx = CheckContext {
        ignore_missing_products: true,
        ..context()
    };
    assert!(check_order(&order, &ctx).passes());
}

#[test]
fn with_ignore_missing_products_an_order_left_with_nothing_is_a_reason() {
    let mut order = good_order();
    order.rows[0].article_number = some("NOPE-1");
    order.rows[3].article_number = some("NOPE-4");
    let ctx = CheckContext {
        ignore_missing_products: true,
        ..context()
    };
    let outcome = check_order(&order, &ctx);
    assert_eq!(outcome.warnings.len(), 2);
    assert!(outcome.lines_to_ship.is_empty());
    assert_eq!(outcome.reasons.len(), 1, "{:#?}", outcome.reasons);
    assert!(
        outcome.reasons[0].starts_with("Nothing is left to ship"),
        "{}",
        outcome.reasons[0]
    );
    assert!(outcome.reasons[0].contains("create the products or cancel the order"));
}

#[test]
fn an_order_without_stock_rows_is_a_reason() {
    for rows in [
        vec![],
        vec![
            row(1, Some("FRAKT"), "1"),
            row(2, None, "1"),
            row(3, Some("  "), "1"),
        ],
    ] {
        let order = OrderToCheck {
            rows,
            ..good_order()
        };
        assert_eq!(
            only_reason(&order, &context()),
            "The order has no rows with stock articles to ship: add them to the order in Fortnox, or cancel the order"
        );
    }
}

#[test]
fn rows_without_article_or_for_non_stock_articles_are_ignored_even_with_bad_quantities() {
    let mut order = good_order();
    order.rows.push(row(5, Some("FRAKT"), "-1"));
    order.rows.push(row(6, None, "abc"));
    let outcome = check_order(&order, &context());
    assert!(outcome.passes(), "{:#?}", outcome.reasons);
    assert_eq!(outcome.lines_to_ship.len(), 2);
}

#[test]
fn a_zero_quantity_is_a_reason() {
    let mut order = good_order();
    order.rows[0].ordered_quantity = qty("0.00");
    assert_eq!(
        only_reason(&order, &context()),
        "Row 1 (article ABC-1) has quantity 0: quantities must be positive, so correct the ordered quantity in Fortnox or remove the row"
    );
}

#[test]
fn a_negative_quantity_is_a_reason() {
    let mut order = good_order();
    order.rows[3].ordered_quantity = qty("-2");
    assert!(only_reason(&order, &context())
        .starts_with("Row 4 (article XYZ-9) has quantity -2: quantities must be positive"));
}

#[test]
fn an_unparseable_quantity_is_a_reason_quoting_it() {
    let mut order = good_order();
    order.rows[0].ordered_quantity = qty(" two ");
    assert_eq!(
        only_reason(&order, &context()),
        "Row 1 (article ABC-1) has quantity 'two', which is not a number: correct the ordered quantity in Fortnox"
    );
}

#[test]
fn a_missing_quantity_is_a_reason() {
    let mut order = good_order();
    order.rows[0].ordered_quantity = RowQuantity::from_json(&serde_json::Value::Null);
    assert_eq!(
        only_reason(&order, &context()),
        "Row 1 (article ABC-1) has no quantity: fill in the ordered quantity in Fortnox"
    );
}

#[test]
fn a_missing_product_with_a_bad_quantity_gives_both_reasons() {
    let mut order = good_order();
    order.rows[0] = row(1, Some("NOPE-1"), "0");
    let reasons = check_order(&order, &context()).reasons;
    assert_eq!(reasons.len(), 2, "{reasons:#?}");
    assert!(reasons[0].starts_with("Article NOPE-1 on row 1"));
    assert!(reasons[1].starts_with("Row 1 (article NOPE-1) has quantity 0"));
}

#[test]
fn quantities_are_read_from_fortnox_strings_and_numbers() {
    assert_eq!(RowQuantity::parse("1"), RowQuantity::Number(decimal("1")));
    assert_eq!(
        RowQuantity::parse(" 1.12 "),
        RowQuantity::Number(decimal("1.12"))
    );
    assert_eq!(
        RowQuantity::parse("1e2"),
        RowQuantity::Number(decimal("100"))
    );
    assert_eq!(
        RowQuantity::parse("1,5"),
        RowQuantity::Unparseable("1,5".into()),
        "no guessing about commas"
    );
    assert_eq!(
        RowQuantity::parse(""),
        RowQuantity::Unparseable(String::new())
    );
    assert_eq!(
        RowQuantity::from_json(&serde_json::json!("2.50")),
        RowQuantity::Number(decimal("2.50"))
    );
    assert_eq!(
        RowQuantity::from_json(&serde_json::json!(3)),
        RowQuantity::Number(decimal("3"))
    );
    assert_eq!(
        RowQuantity::from_json(&serde_json::json!(1.25)),
        RowQuantity::Number(decimal("1.25"))
    );
    assert_eq!(
        RowQuantity::from_json(&serde_json::json!(true)),
        RowQuantity::Unparseable("true".into())
    );
}

// --- address ------------------------------------------------------------------------

#[test]
fn each_missing_customer_address_field_is_a_reason_naming_the_fortnox_field() {
    type Blank = fn(&mut OrderAddressFields);
    let cases: [(Blank, &str); 5] = [
        (
            |a| a.customer_name = None,
            "The delivery address has no name: fill in CustomerName in Fortnox",
        ),
        (
            |a| a.address1 = some(" "),
            "The delivery address has no street address: fill in Address1 in Fortnox",
        ),
        (
            |a| a.zip_code = None,
            "The delivery address has no zip code: fill in ZipCode in Fortnox",
        ),
        (
            |a| a.city = None,
            "The delivery address has no city: fill in City in Fortnox",
        ),
        (
            |a| a.country = None,
            "The delivery address has no country: fill in Country in Fortnox",
        ),
    ];
    for (blank, expected) in cases {
        let mut order = good_order();
        blank(&mut order.address);
        let reason = only_reason(&order, &context());
        assert!(reason.starts_with(expected), "{reason}");
        assert!(
            reason.ends_with("or fill in the order's delivery address starting with DeliveryName"),
            "{reason}"
        );
    }
}

#[test]
fn a_missing_delivery_address_field_names_the_delivery_field() {
    let mut order = good_order();
    order.address.delivery_name = some("Bertil Berg");
    order.address.delivery_address1 = some("Hämeenkatu 5");
    order.address.delivery_city = some("Tampere");
    order.address.delivery_country = some("Suomi");
    assert_eq!(
        only_reason(&order, &context()),
        "The delivery address has no zip code: fill in DeliveryZipCode in Fortnox (the order's delivery address is used because DeliveryName is filled in)"
    );
}

#[test]
fn every_missing_address_field_is_reported_at_once() {
    let order = OrderToCheck {
        address: OrderAddressFields::default(),
        ..good_order()
    };
    let reasons = check_order(&order, &context()).reasons;
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
}

#[test]
fn an_unknown_country_is_a_reason_not_a_guess() {
    let mut order = good_order();
    order.address.country = some("Atlantis");
    let outcome = check_order(&order, &context());
    assert_eq!(
        outcome.reasons,
        vec!["Country 'Atlantis' cannot be mapped to a country code: correct the country name in Country in Fortnox (for example Sverige, Finland or Tyskland)"]
    );
    assert_eq!(outcome.address.country_code, None);
}

// --- way of delivery ----------------------------------------------------------------

#[test]
fn a_way_of_delivery_without_a_rule_is_a_reason() {
    let order = OrderToCheck {
        way_of_delivery: some("XYZ"),
        ..good_order()
    };
    assert_eq!(
        only_reason(&order, &context()),
        "Way of delivery 'XYZ' matches no shipping rule: add a shipping rule for it"
    );
}

#[test]
fn the_reason_quotes_the_description_when_known() {
    let order = OrderToCheck {
        way_of_delivery: some("XYZ"),
        way_of_delivery_description: some("Budbil"),
        ..good_order()
    };
    assert_eq!(
        only_reason(&order, &context()),
        "Way of delivery 'XYZ' (Budbil) matches no shipping rule: add a shipping rule for it"
    );
}

#[test]
fn an_order_without_a_way_of_delivery_is_a_reason_unless_a_catch_all_exists() {
    for missing in [None, some(""), some("  ")] {
        let order = OrderToCheck {
            way_of_delivery: missing,
            ..good_order()
        };
        assert!(only_reason(&order, &context()).starts_with(
            "The order has no way of delivery: choose one in Fortnox (WayOfDelivery)"
        ));
        let mut ctx = context();
        ctx.shipping_rules.push(ShippingRule {
            id: 3,
            pattern: "*".into(),
            shipping_method_id: 30,
        });
        assert_eq!(check_order(&order, &ctx).shipping_method_id, Some(30));
    }
}

#[test]
fn rules_match_the_description_from_the_context() {
    let order = OrderToCheck {
        way_of_delivery: some("PNO"),
        ..good_order()
    };
    let mut ctx = context();
    ctx.shipping_rules = vec![ShippingRule {
        id: 5,
        pattern: "*ombud".into(),
        shipping_method_id: 50,
    }];
    let outcome = check_order(&order, &ctx);
    assert!(outcome.passes(), "{:#?}", outcome.reasons);
    assert_eq!(
        (outcome.shipping_rule_id, outcome.shipping_method_id),
        (Some(5), Some(50))
    );
}

#[test]
fn the_orders_own_description_comes_before_the_contexts() {
    let order = OrderToCheck {
        way_of_delivery: some("PNO"),
        way_of_delivery_description: some("Hemleverans"),
        ..good_order()
    };
    let mut ctx = context();
    ctx.shipping_rules = vec![ShippingRule {
        id: 5,
        pattern: "*ombud".into(),
        shipping_method_id: 50,
    }];
    assert!(only_reason(&order, &ctx)
        .starts_with("Way of delivery 'PNO' (Hemleverans) matches no shipping rule"));
}

#[test]
fn a_rule_conflict_is_a_reason_naming_the_tied_rules() {
    let mut ctx = context();
    ctx.shipping_rules.push(ShippingRule {
        id: 7,
        pattern: "dhl*".into(),
        shipping_method_id: 70,
    });
    let outcome = check_order(&good_order(), &ctx);
    assert_eq!(
        outcome.reasons,
        vec!["Way of delivery 'DHL' matches shipping rules that are equally specific but choose different shipping methods: rule 1 'DHL*' (shipping method 10), rule 7 'dhl*' (shipping method 70). Remove all but one of them, or add a more specific rule"]
    );
    assert_eq!(outcome.shipping_method_id, None);
}

// --- Fortnox's delivery state -------------------------------------------------------

#[test]
fn delivery_state_delivery_and_the_old_zero_pass() {
    for state in ["delivery", "Delivery", " delivery ", "0"] {
        let order = OrderToCheck {
            delivery_state: some(state),
            ..good_order()
        };
        assert!(check_order(&order, &context()).passes(), "{state}");
    }
    assert!(delivery_state_allows_delivery(Some("0")));
    assert!(!delivery_state_allows_delivery(None));
}

#[test]
fn another_delivery_state_is_a_reason() {
    for state in ["reservation", "registration", "1"] {
        let order = OrderToCheck {
            delivery_state: some(state),
            ..good_order()
        };
        assert_eq!(
            only_reason(&order, &context()),
            format!("DeliveryState is '{state}': set Stock status to Delivery on the order in Fortnox, or Fortnox cannot take the delivered quantities and will create a back order")
        );
    }
}

#[test]
fn a_missing_delivery_state_is_a_reason() {
    for missing in [None, some(""), some(" ")] {
        let order = OrderToCheck {
            delivery_state: missing,
            ..good_order()
        };
        assert!(only_reason(&order, &context())
            .starts_with("The order has no DeliveryState: set Stock status to Delivery"));
    }
}

#[test]
fn an_order_already_delivery_done_is_a_reason() {
    let order = OrderToCheck {
        warehouse_ready: true,
        ..good_order()
    };
    assert!(only_reason(&order, &context())
        .starts_with("The order is already marked Delivery done (WarehouseReady) in Fortnox: Fortnox cannot take the delivered quantities"));
}

// --- all together -------------------------------------------------------------------

#[test]
fn every_failure_is_reported_in_one_go_in_a_stable_order() {
    let order = OrderToCheck {
        rows: vec![row(1, Some("NOPE-1"), "1"), row(2, Some("ABC-1"), "0")],
        address: OrderAddressFields {
            country: some("Atlantis"),
            ..OrderAddressFields::default()
        },
        way_of_delivery: some("XYZ"),
        way_of_delivery_description: None,
        delivery_state: some("reservation"),
        warehouse_ready: true,
    };
    let reasons = check_order(&order, &context()).reasons;
    let starts = [
        "Article NOPE-1 on row 1",
        "Row 2 (article ABC-1) has quantity 0",
        "The delivery address has no name",
        "The delivery address has no street address",
        "The delivery address has no zip code",
        "The delivery address has no city",
        "Country 'Atlantis' cannot be mapped",
        "Way of delivery 'XYZ' matches no shipping rule",
        "DeliveryState is 'reservation'",
        "The order is already marked Delivery done",
    ];
    assert_eq!(reasons.len(), starts.len(), "{reasons:#?}");
    for (reason, start) in reasons.iter().zip(starts) {
        assert!(
            reason.starts_with(start),
            "{reason:?} should start with {start:?}"
        );
    }
}

#[test]
fn no_reason_contains_a_semicolon_so_callers_can_join_them() {
    let order = OrderToCheck {
        rows: vec![row(1, Some("NOPE-1"), "x"), row(2, Some("ABC-1"), "")],
        address: OrderAddressFields {
            delivery_name: some("B"),
            ..OrderAddressFields::default()
        },
        way_of_delivery: None,
        way_of_delivery_description: None,
        delivery_state: None,
        warehouse_ready: true,
    };
    let outcome = check_order(&order, &context());
    assert!(outcome.reasons.len() >= 8, "{:#?}", outcome.reasons);
    for text in outcome.reasons.iter().chain(&outcome.warnings) {
        assert!(!text.contains(';'), "{text}");
    }
}

#[test]
fn lines_to_ship_serialize_for_storage() {
    let line = LineToShip {
        position: 2,
        row_id: Some(7),
        article_number: "ABC-1".into(),
        quantity: decimal("1.5"),
    };
    let json = serde_json::to_value(&line).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"position": 2, "row_id": 7, "article_number": "ABC-1", "quantity": "1.5"})
    );
    assert_eq!(serde_json::from_value::<LineToShip>(json).unwrap(), line);
}
