//! Database migrations. Run at start-up and by `fortnox-fulfilment migrate`.
pub use sea_orm_migration::prelude::*;

mod m20261127_000001_initial;
mod m20261128_000001_invoice_fencing;
mod m20261128_000002_edges;
mod m20261128_000003_order_list_indexes;
mod m20261129_000001_shared_rate_log;
mod m20261129_000002_order_state_counts;
mod m20261129_000003_event_log;
mod m20261129_000004_webhooks;
mod m20261129_000005_realtime;
mod m20261129_000006_rate_log_late_answers;
mod m20261129_000007_order_state_deltas;
mod m20261130_000001_catalog_version;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261128_000001_invoice_fencing::Migration),
            Box::new(m20261128_000002_edges::Migration),
            Box::new(m20261128_000003_order_list_indexes::Migration),
            Box::new(m20261129_000001_shared_rate_log::Migration),
            Box::new(m20261129_000002_order_state_counts::Migration),
            Box::new(m20261129_000003_event_log::Migration),
            Box::new(m20261129_000004_webhooks::Migration),
            Box::new(m20261129_000005_realtime::Migration),
            Box::new(m20261129_000006_rate_log_late_answers::Migration),
            Box::new(m20261129_000007_order_state_deltas::Migration),
            Box::new(m20261130_000001_catalog_version::Migration),
        ]
    }
}
