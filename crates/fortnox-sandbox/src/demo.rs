//! `--seed demo`: one realistic Fortnox account, tenant `demo`, which the
//! authorize page approves for by default.

use serde_json::json;

use super::handle::SandboxHandle;
use super::state::CompanySettings;
use fortnox::types::{Article, Quantity, WayOfDelivery};

pub const DEMO_TENANT: &str = "demo";
/// The demo tenant's company (made up, like the organisation number).
pub const DEMO_COMPANY_NAME: &str = "Järnhandeln Demo AB";
pub const DEMO_ORGANIZATION_NUMBER: &str = "559900-0417";
pub const DEMO_DATABASE_NUMBER: i64 = 1_042_317;
/// Orders seeded; seven stop in RESERVED (one per reason) and one is not done.
pub const DEMO_ORDERS: usize = 50;

const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("Hammare 500 g", "HAM", 189, 650),
    ("Skruvmejsel PZ2", "SKR", 59, 120),
    ("Tumstock 2 m", "TUM", 79, 180),
    ("Vattenpass 60 cm", "VAT", 249, 700),
    ("Arbetshandskar L", "HAN", 49, 90),
    ("Skyddsglasögon", "GLA", 99, 60),
    ("Borrsats 13 delar", "BOR", 299, 450),
    ("Sticksåg 650 W", "SAG", 899, 2300),
    ("Målarpensel 50 mm", "PEN", 39, 40),
    ("Spackelspade", "SPA", 45, 110),
];

fn articles() -> Vec<Article> {
    let mut out = Vec::new();
    for (i, (name, prefix, price, weight)) in PRODUCTS.iter().enumerate() {
        for (j, variant) in ["", " (2-pack)", " (5-pack)"].iter().enumerate() {
            let number = format!("{prefix}-{:03}", i * 10 + j + 1);
            out.push(Article {
                url: None,
                article_number: number,
                description: Some(format!("{name}{variant}")),
                ean: Some(format!("73{:011}", 100_000 + i * 10 + j)),
                article_type: Some("STOCK".into()),
                stock_goods: Some(true),
                active: Some(true),
                unit: Some("st".into()),
                weight: Some(Quantity::from_i64(weight * (j as i64 * 2).max(1))),
                width: Some(Quantity::from_i64(100 + 10 * i as i64)),
                height: Some(Quantity::from_i64(50)),
                depth: Some(Quantity::from_i64(30)),
                sales_price: Some(Quantity::from_i64(price * (j as i64 * 2).max(1))),
                purchase_price: Some(Quantity::from_i64(price / 2)),
                quantity_in_stock: Some(Quantity::from_i64(20 + 7 * i as i64)),
                reserved_quantity: Some(Quantity::ZERO),
                disposable_quantity: None,
                stock_place: Some(format!("A{}", i + 1)),
                default_stock_point: Some("LAGER1".into()),
                default_stock_location: Some(if i % 3 == 0 {
                    "3PL".into()
                } else {
                    "HUVUD".into()
                }),
            });
        }
    }
    // A service article and an inactive one, which the product sync skips.
    let mut service = out[0].clone();
    service.article_number = "FRAKT".into();
    service.description = Some("Frakt".into());
    service.article_type = Some("SERVICE".into());
    service.stock_goods = Some(false);
    service.ean = None;
    out.push(service);
    let mut old = out[1].clone();
    old.article_number = "UTGATT-1".into();
    old.description = Some("Utgången hammare".into());
    old.active = Some(false);
    out.push(old);
    out
}

fn ways() -> Vec<WayOfDelivery> {
    [
        ("DHL", "DHL Express", "DHL Express"),
        ("DHL-PARCEL", "DHL Parcel Connect", "DHL Parcel Connect"),
        ("PN", "PostNord MyPack Collect", "PostNord MyPack Collect"),
        ("PNH", "PostNord MyPack Home", "PostNord MyPack Home"),
        ("BUD", "Bud", "Courier"),
        ("HÄMT", "Hämtas av kund", "Customer pickup"),
    ]
    .iter()
    .map(|(c, d, e)| WayOfDelivery {
        url: None,
        code: c.to_string(),
        description: Some(d.to_string()),
        description_english: Some(e.to_string()),
    })
    .collect()
}

/// Seeds tenant `demo` and makes it the authorize page's default.
pub fn seed(h: &SandboxHandle) -> anyhow::Result<()> {
    h.create_tenant_with_company(
        DEMO_TENANT,
        None,
        CompanySettings {
            company_name: Some(DEMO_COMPANY_NAME.into()),
            organization_number: Some(DEMO_ORGANIZATION_NUMBER.into()),
            database_number: Some(DEMO_DATABASE_NUMBER),
        },
    )?;
    h.set_authorize_tenant(DEMO_TENANT);
    h.add_articles(DEMO_TENANT, articles());
    h.add_ways_of_delivery(DEMO_TENANT, ways());
    let customers = [
        (
            "1",
            "Anna Svensson",
            "Storgatan 1",
            "111 22",
            "Stockholm",
            "Sverige",
        ),
        (
            "2",
            "Byggfirman Berg AB",
            "Industrivägen 14",
            "415 05",
            "Göteborg",
            "Sverige",
        ),
        (
            "3",
            "Oy Rakennus Ab",
            "Mannerheimintie 5",
            "00100",
            "Helsinki",
            "Finland",
        ),
        (
            "4",
            "Lars Nilsson",
            "Kungsgatan 7",
            "211 49",
            "Malmö",
            "Sverige",
        ),
    ];
    let ways = ["DHL", "PN", "PNH", "DHL-PARCEL"];
    for i in 0..DEMO_ORDERS {
        let (cn, name, addr, zip, city, country) = customers[i % customers.len()];
        let mut rows = Vec::new();
        for k in 0..(i % 3 + 1) {
            let a = (i + k * 3) % PRODUCTS.len();
            let variant = (i + k) % 3;
            rows.push(json!({
                "ArticleNumber": format!("{}-{:03}", PRODUCTS[a].1, a * 10 + variant + 1),
                "Description": PRODUCTS[a].0,
                "OrderedQuantity": ((i + k) % 3 + 1).to_string(),
                "Price": PRODUCTS[a].2, "VAT": 25, "Unit": "st"
            }));
        }
        if i % 2 == 0 {
            rows.push(json!({ "ArticleNumber": "FRAKT", "Description": "Frakt", "OrderedQuantity": "1", "Price": 99, "VAT": 25 }));
        }
        let mut order = json!({
            "CustomerNumber": cn, "CustomerName": name,
            "Address1": addr, "ZipCode": zip, "City": city, "Country": country,
            "OrderDate": format!("2026-11-{:02}", 1 + i % 26),
            "WayOfDelivery": ways[i % ways.len()],
            "YourOrderNumber": format!("WEB-{}", 5000 + i),
            "Phone1": "070-123 45 67",
            "EmailInformation": { "EmailAddressTo": "kund@example.com" },
            "OrderRows": rows,
        });
        if i % 5 == 1 {
            order["DeliveryName"] = json!("Lager Väst");
            order["DeliveryAddress1"] = json!("Hamngatan 3");
            order["DeliveryZipCode"] = json!("451 30");
            order["DeliveryCity"] = json!("Uddevalla");
            order["DeliveryCountry"] = json!("Sverige");
        }
        // A few orders are bound to stop in RESERVED, each for a different reason.
        match i {
            5 => {
                let rows = order["OrderRows"].as_array_mut().expect("rows");
                rows.push(json!({ "ArticleNumber": "SAKNAS-99", "Description": "Artikel som saknas", "OrderedQuantity": "1", "Price": 10, "VAT": 25 }));
            }
            11 => order["WayOfDelivery"] = json!("UNKNOWN-CARRIER"),
            17 => order["ZipCode"] = json!(""),
            23 => order["Country"] = json!("Atlantis"),
            29 => order["DeliveryState"] = json!("registration"),
            35 => order["WarehouseReady"] = json!(true),
            41 => order["OrderRows"][0]["OrderedQuantity"] = json!("0"),
            // Not marked as done: never imported.
            47 => order["NotCompleted"] = json!(true),
            _ => {}
        }
        h.create_order(DEMO_TENANT, order)
            .map_err(|e| anyhow::anyhow!("seeding order: {}", e.info.message))?;
    }
    Ok(())
}
