//! Process-wide counters of things an operator must hear about, served on `/metrics`.
//! Process-wide (one set for all apps in a process): tests only check that they rise.
use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// A second Fortnox invoice was found for an order that already had one.
pub static DUPLICATE_INVOICES_DETECTED: LazyLock<Counter> = LazyLock::new(Counter::default);
/// ... and was credited in Fortnox.
pub static DUPLICATE_INVOICES_CREDITED: LazyLock<Counter> = LazyLock::new(Counter::default);
/// An invoice was created for an order that had meanwhile moved to a state other than
/// INVOICED (forced or cancelled by a person): someone must look at it.
pub static INVOICES_FOR_CHANGED_ORDERS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// An order job found its order held by another job and was put off until the lease ends:
/// rare by design (a transition hands the lease on), so a rising count means contention.
pub static ORDER_JOBS_PUT_OFF: LazyLock<Counter> = LazyLock::new(Counter::default);

pub(crate) fn bump(counter: &Counter) {
    counter.inc();
}

/// Adds every counter to `registry` (the encoder appends `_total` to each name).
pub fn register(registry: &mut Registry) {
    registry.register(
        "invoice_duplicates_detected",
        "Second Fortnox invoices found for an order that already had one",
        DUPLICATE_INVOICES_DETECTED.clone(),
    );
    registry.register(
        "invoice_duplicates_credited",
        "Duplicate Fortnox invoices credited automatically",
        DUPLICATE_INVOICES_CREDITED.clone(),
    );
    registry.register(
        "invoices_for_changed_orders",
        "Fortnox invoices created for orders that had meanwhile left SHIPPED for another state than INVOICED",
        INVOICES_FOR_CHANGED_ORDERS.clone(),
    );
    registry.register(
        "order_jobs_put_off",
        "Order jobs that found their order held by another job and waited for its lease",
        ORDER_JOBS_PUT_OFF.clone(),
    );
}
