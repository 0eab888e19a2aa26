//! Process-wide counters of things an operator must hear about, served on `/metrics`.
//! Atomics rather than a metrics crate: three counters do not need a registry.
use std::sync::atomic::{AtomicU64, Ordering};

/// A second Fortnox invoice was found for an order that already had one.
pub static DUPLICATE_INVOICES_DETECTED: AtomicU64 = AtomicU64::new(0);
/// ... and was credited in Fortnox.
pub static DUPLICATE_INVOICES_CREDITED: AtomicU64 = AtomicU64::new(0);
/// An invoice was created for an order that had meanwhile moved to a state other than
/// INVOICED (forced or cancelled by a person): someone must look at it.
pub static INVOICES_FOR_CHANGED_ORDERS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// (name, help, value) of every counter, for the Prometheus text format.
pub fn snapshot() -> [(&'static str, &'static str, u64); 3] {
    [
        (
            "invoice_duplicates_detected_total",
            "Second Fortnox invoices found for an order that already had one.",
            DUPLICATE_INVOICES_DETECTED.load(Ordering::Relaxed),
        ),
        (
            "invoice_duplicates_credited_total",
            "Duplicate Fortnox invoices credited automatically.",
            DUPLICATE_INVOICES_CREDITED.load(Ordering::Relaxed),
        ),
        (
            "invoices_for_changed_orders_total",
            "Fortnox invoices created for orders that had meanwhile left SHIPPED for another state than INVOICED.",
            INVOICES_FOR_CHANGED_ORDERS.load(Ordering::Relaxed),
        ),
    ]
}
