//! Scenario 2: the order lists the API serves, with 100,000 stored orders, each beside the
//! SQL the store runs for it (built by the store's own query builders where it has them) run
//! straight on a pool; and the server process's resident memory before and after.
use std::time::{Duration, Instant};

use entity::{order, order_event, order_line};
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::store::orders::{OrderFilter, OrderSummary, TenantScope};
use fortnox_fulfilment::store::{numbered_placeholders, Pool, Store};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde_json::{json, Value};

use crate::harness::{self, Api, Backend, BenchDb, ServerProcess};

pub struct ListSettings {
    pub orders: usize,
    pub merchants: usize,
    pub runs: usize,
    /// All runs of the API first, then all of the SQL (the method before 2026-11-30),
    /// instead of the two taking turns.
    pub serial: bool,
}

/// The API's page when `first` is not given (src/graphql/pagination.rs), read with one
/// row more to know whether another page follows.
const PAGE: usize = 50;

pub struct ListRow {
    pub name: String,
    pub graphql: Duration,
    pub sql: Duration,
    /// Rows the SQL returned, to show both sides read the same page.
    pub sql_rows: usize,
}

pub struct ListFigures {
    pub orders: usize,
    pub insert: Duration,
    /// How long the server on the full database took to be quiet after it started.
    pub settled: Duration,
    pub rows: Vec<ListRow>,
    /// The server process's resident memory on an empty database, after one request.
    pub rss_idle_kib: u64,
    /// A server started on the database with the orders stored, once it is quiet, before
    /// the lists are asked for.
    pub rss_stored_kib: u64,
    pub rss_after_kib: u64,
    /// The server process's peak resident memory (VmHWM).
    pub rss_peak_kib: u64,
}

/// The server runs as a process of its own, so that its memory is measured alone: first
/// on the empty database (idle), then, once this process has inserted the orders (set-based
/// SQL on its own pool), a new one on the full database, as a deployment would start it.
/// (A server running during the insert would spend the measurement taking the 600,000
/// inserted events through its event feed and webhook fan-out, a backlog no running
/// service meets at once.) The reference SQL runs on this process's pool.
pub async fn run(backend: &Backend, settings: &ListSettings) -> anyhow::Result<ListFigures> {
    let db = BenchDb::create(backend, "lists").await?;
    let result = measure(&db.url, settings).await;
    db.drop_database().await;
    result
}

async fn measure(database_url: &str, settings: &ListSettings) -> anyhow::Result<ListFigures> {
    let admin = harness::token(Role::Admin, vec![])?;
    let warehouse = harness::token(Role::Warehouse, vec![])?;
    // One request first, so that the idle figure includes what serving costs at rest. The
    // server migrates the database before it answers.
    let rss_idle_kib = {
        let idle = ServerProcess::start(database_url, &[]).await?;
        idle.api
            .graphql_ok(&admin, "{ merchants { id } }", json!({}))
            .await?;
        idle.status_kib("VmRSS:")
    };
    let store = Store::connect(database_url).await?;

    let pool = &store.pool;
    let mut merchants = Vec::with_capacity(settings.merchants);
    for i in 0..settings.merchants {
        merchants.push(store.create_merchant(&format!("List {i}")).await?.id);
    }
    let inserting = Instant::now();
    let per_merchant = settings.orders.div_ceil(settings.merchants.max(1));
    for merchant in &merchants {
        insert_orders(pool, *merchant, per_merchant).await?;
    }
    insert_lines_and_events(pool).await?;
    if let Pool::Postgres(pool) = pool {
        // Autovacuum would gather statistics soon after a load like this. On SQLite the
        // server gathers them when it starts (a bounded `PRAGMA optimize`).
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    let insert = inserting.elapsed();
    let server = ServerProcess::start(database_url, &[]).await?;
    server
        .api
        .graphql_ok(&admin, "{ merchants { id } }", json!({}))
        .await?;
    // Its first reconciler pass and first polls, before anything is measured.
    let settled = server.settle(7, Duration::from_secs(120)).await;
    let rss_stored_kib = server.status_kib("VmRSS:");
    let orders = scalar(pool, "SELECT COUNT(*) FROM orders").await? as usize;

    let merchant = merchants[0];
    let invoiced_order = scalar(
        pool,
        "SELECT COALESCE(MAX(id), 0) FROM orders WHERE state = 'INVOICED'",
    )
    .await?;
    let backend = match pool {
        Pool::Sqlite(_) => DbBackend::Sqlite,
        Pool::Postgres(_) => DbBackend::Postgres,
    };
    let fields = "id merchantId state fortnoxDocumentNumber wayOfDelivery updatedAt";
    let probe = Probe {
        api: &server.api,
        pool,
        runs: settings.runs,
        serial: settings.serial,
    };
    let mut rows = Vec::new();
    // What any request costs (HTTP, the token, GraphQL) against the cheapest statement: the
    // floor under every list's figure.
    rows.push(
        probe
            .row(
                "floor: `{ __typename }` against `SELECT 1`",
                &admin,
                "{ __typename }",
                json!({}),
                &[Sql {
                    text: "SELECT 1".into(),
                    binds: vec![],
                }],
            )
            .await?,
    );

    let page = |merchant: Option<i64>, states: &[OrderState]| {
        let mut binds = Vec::new();
        if let Some(m) = merchant {
            binds.push(Bind::Int(m));
        }
        binds.extend(states.iter().map(|s| Bind::Text(s.as_str().into())));
        binds.push(Bind::Int(PAGE as i64 + 1));
        Sql {
            text: page_sql(backend, merchant.is_some(), states),
            binds,
        }
    };
    rows.push(
        probe
            .row(
                "orders of one merchant",
                &admin,
                &format!("query($m: ID!) {{ orders(merchantId: $m) {{ edges {{ node {{ {fields} }} }} }} }}"),
                json!({ "m": merchant.to_string() }),
                &[page(Some(merchant), &[])],
            )
            .await?,
    );
    rows.push(
        probe
            .row(
                "orders in state INVOICED",
                &admin,
                &format!("{{ orders(states: [INVOICED]) {{ edges {{ node {{ {fields} }} }} }} }}"),
                json!({}),
                &[page(None, &[OrderState::Invoiced])],
            )
            .await?,
    );
    rows.push(
        probe
            .row(
                "orders of one merchant in state INVOICED",
                &admin,
                &format!("query($m: ID!) {{ orders(merchantId: $m, states: [INVOICED]) {{ edges {{ node {{ {fields} }} }} }} }}"),
                json!({ "m": merchant.to_string() }),
                &[page(Some(merchant), &[OrderState::Invoiced])],
            )
            .await?,
    );
    // The warehouse's list: SENT orders with their pick lines (one more query, batched
    // by the lines loader, for the page's orders).
    let sent_ids = page_ids(pool, &page(None, &[OrderState::Sent])).await?;
    rows.push(
        probe
            .row(
                "warehouse: SENT orders with pick lines",
                &warehouse,
                "{ orders(states: [SENT]) { edges { node { id lines { id pickQuantity } } } } }",
                json!({}),
                &[
                    page(None, &[OrderState::Sent]),
                    Sql {
                        text: lines_sql(backend, sent_ids.len().min(PAGE)),
                        binds: sent_ids
                            .iter()
                            .take(PAGE)
                            .map(|id| Bind::Int(*id))
                            .collect(),
                    },
                ],
            )
            .await?,
    );
    rows.push(
        probe
            .row(
                "events of one order",
                &admin,
                "query($id: ID!) { order(id: $id) { events { kind fromState toState cause actor createdAt } } }",
                json!({ "id": invoiced_order.to_string() }),
                &[
                    Sql {
                        text: order_sql(backend),
                        binds: vec![Bind::Int(invoiced_order), Bind::Int(1)],
                    },
                    Sql {
                        text: events_sql(backend),
                        binds: vec![Bind::Int(invoiced_order)],
                    },
                ],
            )
            .await?,
    );
    Ok(ListFigures {
        orders,
        insert,
        settled,
        rows,
        rss_idle_kib,
        rss_stored_kib,
        rss_after_kib: server.status_kib("VmRSS:"),
        rss_peak_kib: server.status_kib("VmHWM:"),
    })
}

/// The page query of `Store::orders_page`, from the store's own builder (scope: all
/// merchants, as for an admin or the warehouse).
fn page_sql(backend: DbBackend, by_merchant: bool, states: &[OrderState]) -> String {
    let filter = OrderFilter {
        merchant_id: by_merchant.then_some(0),
        states: states.to_vec(),
    };
    Store::orders_page_query(&TenantScope::All, &filter, None, PAGE as u64 + 1)
        .into_partial_model::<OrderSummary>()
        .into_statement(backend)
        .sql
}

/// `Store::lines_of_orders` for `orders` orders.
fn lines_sql(backend: DbBackend, orders: usize) -> String {
    order_line::Entity::find()
        .filter(order_line::Column::OrderId.is_in(vec![0i64; orders]))
        .order_by_asc(order_line::Column::OrderId)
        .order_by_asc(order_line::Column::Position)
        .build(backend)
        .sql
}

/// `Store::order` (sea-orm's `one` reads with LIMIT 1).
fn order_sql(backend: DbBackend) -> String {
    order::Entity::find_by_id(0i64).limit(1).build(backend).sql
}

/// `Store::events_of_orders` for one order (the events loader).
fn events_sql(backend: DbBackend) -> String {
    order_event::Entity::find()
        .filter(order_event::Column::OrderId.is_in([0i64]))
        .order_by_asc(order_event::Column::Id)
        .build(backend)
        .sql
}

enum Bind {
    Int(i64),
    Text(String),
}

struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn sqlite(&self) -> SqliteQuery<'_> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.text.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.as_str()),
            };
        }
        query
    }

    fn postgres(&self) -> PgQuery<'_> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.text.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.as_str()),
            };
        }
        query
    }
}

/// Runs `sql` on the pool and returns the rows it read (fetched, not decoded into models).
async fn run_sql(pool: &Pool, sql: &Sql) -> anyhow::Result<usize> {
    Ok(match pool {
        Pool::Sqlite(pool) => sql.sqlite().fetch_all(pool).await?.len(),
        Pool::Postgres(pool) => sql.postgres().fetch_all(pool).await?.len(),
    })
}

/// The ids of a page (sea-orm selects the entity's columns in order: the id first).
async fn page_ids(pool: &Pool, page: &Sql) -> anyhow::Result<Vec<i64>> {
    use sqlx::Row;
    Ok(match pool {
        Pool::Sqlite(pool) => page
            .sqlite()
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?,
        Pool::Postgres(pool) => page
            .postgres()
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?,
    })
}

/// Times one list both ways.
struct Probe<'a> {
    api: &'a Api,
    pool: &'a Pool,
    runs: usize,
    serial: bool,
}

impl Probe<'_> {
    async fn time_api(
        &self,
        token: &str,
        query: &str,
        variables: &Value,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.api.graphql_ok(token, query, variables.clone()).await?;
        Ok(started.elapsed())
    }

    /// How long the statements took together, and the rows they read.
    async fn time_sql(&self, sql: &[Sql]) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        let mut rows = 0;
        for statement in sql {
            rows += run_sql(self.pool, statement).await?;
        }
        Ok((started.elapsed(), rows))
    }

    async fn row(
        &self,
        name: &str,
        token: &str,
        query: &str,
        variables: Value,
        sql: &[Sql],
    ) -> anyhow::Result<ListRow> {
        // Warm-up: connections and prepared statements, on both sides.
        for _ in 0..2 {
            self.api.graphql_ok(token, query, variables.clone()).await?;
            for statement in sql {
                run_sql(self.pool, statement).await?;
            }
        }
        // The two sides take turns, so that a slow moment of the machine falls on both
        // alike (in two separate series of runs, the figures of one list moved by half
        // between runs of the benchmark on a noisy machine). Taking turns also means that
        // neither side runs with the caches and the database connection the previous run
        // of the same statement left warm: both answer as to a client that asks now and
        // then, and the SQL's figure is higher than in a series of its own.
        let mut graphql = Vec::with_capacity(self.runs);
        let mut direct = Vec::with_capacity(self.runs);
        let mut sql_rows = 0;
        if self.serial {
            for _ in 0..self.runs {
                graphql.push(self.time_api(token, query, &variables).await?);
            }
            for _ in 0..self.runs {
                let (took, rows) = self.time_sql(sql).await?;
                direct.push(took);
                sql_rows = rows;
            }
        } else {
            for _ in 0..self.runs {
                graphql.push(self.time_api(token, query, &variables).await?);
                let (took, rows) = self.time_sql(sql).await?;
                direct.push(took);
                sql_rows = rows;
            }
        }
        graphql.sort();
        direct.sort();
        Ok(ListRow {
            name: name.into(),
            graphql: harness::quantile(&graphql, 0.5).unwrap_or_default(),
            sql: harness::quantile(&direct, 0.5).unwrap_or_default(),
            sql_rows,
        })
    }
}

/// `count` orders of one merchant in one statement, spread over the states no job waits in
/// (mostly INVOICED, as in a service that has run a while; SENT, RESERVED, CANCELLED), so
/// that a server started on them has nothing to catch up on, with a Fortnox snapshot of a
/// realistic size. Set-based SQL: `insert_order` (one transaction per order, with its
/// job) would take minutes for 100,000 and queue 100,000 jobs this scenario does not want.
async fn insert_orders(pool: &Pool, merchant: i64, count: usize) -> anyhow::Result<()> {
    let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
        INSERT INTO orders (merchant_id, fortnox_document_number, state, reasons, delivery_address, \
            way_of_delivery, tracking_numbers, fortnox_snapshot, created_at, updated_at) \
        SELECT ?, CAST(i AS TEXT), \
            CASE i % 20 WHEN 0 THEN 'RESERVED' WHEN 1 THEN 'RESERVED' \
                WHEN 3 THEN 'SENT' WHEN 4 THEN 'SENT' WHEN 5 THEN 'CANCELLED' ELSE 'INVOICED' END, \
            ?, ?, 'DHL', ?, ?, ?, ? FROM n";
    let now = chrono::Utc::now();
    let address = json!({
        "name": "Anna Andersson", "street": "Storgatan 1", "street2": null,
        "zip_code": "111 22", "city": "Stockholm", "country": "Sverige", "country_code": "SE"
    });
    let snapshot = snapshot();
    macro_rules! bind_all {
        ($query:expr) => {
            $query
                .bind(count as i64)
                .bind(merchant)
                .bind(sqlx::types::Json(json!([])))
                .bind(sqlx::types::Json(&address))
                .bind(sqlx::types::Json(json!(["TRACK-1"])))
                .bind(sqlx::types::Json(&snapshot))
                .bind(now)
                .bind(now)
        };
    }
    match pool {
        Pool::Sqlite(pool) => {
            bind_all!(sqlx::query(sql)).execute(pool).await?;
        }
        Pool::Postgres(pool) => {
            let sql = sqlx::AssertSqlSafe(numbered_placeholders(sql));
            bind_all!(sqlx::query(sql)).execute(pool).await?;
        }
    }
    Ok(())
}

/// A Fortnox order as the import stores it, about 1.5 KB of JSON.
fn snapshot() -> Value {
    let row = |n: u32| {
        json!({
            "RowId": n, "ArticleNumber": format!("ART-{n}"), "Description": "A product of the shop",
            "OrderedQuantity": "2", "DeliveredQuantity": "0", "Price": 100, "VAT": 25,
            "Unit": "st", "Discount": 0, "DiscountType": "PERCENT", "AccountNumber": 3001
        })
    };
    json!({
        "DocumentNumber": "1", "CustomerNumber": "1", "CustomerName": "Anna Andersson",
        "Address1": "Storgatan 1", "ZipCode": "111 22", "City": "Stockholm", "Country": "Sverige",
        "DeliveryName": "Anna Andersson", "DeliveryAddress1": "Storgatan 1",
        "DeliveryZipCode": "111 22", "DeliveryCity": "Stockholm", "DeliveryCountry": "Sverige",
        "WayOfDelivery": "DHL", "Currency": "SEK", "OrderDate": "2026-11-27",
        "DeliveryDate": "2026-11-28", "Total": 262.5, "TotalVAT": 52.5,
        "YourReference": "Anna", "OurReference": "Shop", "Remarks": "Leave at the door",
        "OrderRows": [row(1), row(2)],
    })
}

/// Two lines per order, and the transition events of each order's path to its state.
async fn insert_lines_and_events(pool: &Pool) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    for (position, article, quantity) in [(1, "ART-1", "2"), (2, "ART-2", "1")] {
        let sql = "INSERT INTO order_lines (order_id, position, fortnox_row_id, article_number, \
                description, ordered_quantity, pick_quantity, created_at) \
            SELECT id, ?, ?, ?, 'A product of the shop', ?, ?, ? FROM orders";
        macro_rules! bind_all {
            ($query:expr) => {
                $query
                    .bind(position)
                    .bind(position as i64)
                    .bind(article)
                    .bind(quantity)
                    .bind(quantity)
                    .bind(now)
            };
        }
        execute(pool, sql, |q| bind_all!(q), |q| bind_all!(q)).await?;
    }
    // (from, to, the states whose path passes through this transition)
    const PATHS: [(Option<&str>, &str, &str); 7] = [
        (
            None,
            "IMPORTED",
            "'IMPORTED', 'VALIDATED', 'RESERVED', 'SENT', 'SHIPPED', 'INVOICED', 'CANCELLED'",
        ),
        (
            Some("IMPORTED"),
            "VALIDATED",
            "'VALIDATED', 'SENT', 'SHIPPED', 'INVOICED'",
        ),
        (Some("IMPORTED"), "RESERVED", "'RESERVED'"),
        (Some("IMPORTED"), "CANCELLED", "'CANCELLED'"),
        (Some("VALIDATED"), "SENT", "'SENT', 'SHIPPED', 'INVOICED'"),
        (Some("SENT"), "SHIPPED", "'SHIPPED', 'INVOICED'"),
        (Some("SHIPPED"), "INVOICED", "'INVOICED'"),
    ];
    for (from, to, states) in PATHS {
        let sql = format!(
            "INSERT INTO order_events (order_id, merchant_id, kind, from_state, to_state, cause, \
                actor, message, forced, created_at) \
            SELECT id, merchant_id, 'TRANSITION', ?, ?, 'bench', 'system:bench', NULL, ?, ? \
            FROM orders WHERE state IN ({states})"
        );
        macro_rules! bind_all {
            ($query:expr) => {
                $query.bind(from).bind(to).bind(false).bind(now)
            };
        }
        execute(pool, &sql, |q| bind_all!(q), |q| bind_all!(q)).await?;
    }
    Ok(())
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs one statement written with `?` placeholders on either database, with the binds
/// each side's `bind` closure adds.
async fn execute(
    pool: &Pool,
    sql: &str,
    bind_sqlite: impl for<'q> FnOnce(SqliteQuery<'q>) -> SqliteQuery<'q>,
    bind_postgres: impl for<'q> FnOnce(PgQuery<'q>) -> PgQuery<'q>,
) -> anyhow::Result<u64> {
    Ok(match pool {
        Pool::Sqlite(pool) => bind_sqlite(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())))
            .execute(pool)
            .await?
            .rows_affected(),
        Pool::Postgres(pool) => {
            bind_postgres(sqlx::query(sqlx::AssertSqlSafe(numbered_placeholders(sql))))
                .execute(pool)
                .await?
                .rows_affected()
        }
    })
}

async fn scalar(pool: &Pool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(match pool {
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    })
}
