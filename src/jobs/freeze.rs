//! Test support: places in the invoice job where a test freezes the worker, to prove that
//! a job outliving its lease never makes a silent second invoice.
//!
//! Two ways in: `FaultPoints::freeze_invoice_at` (in-process tests; the job stops renewing
//! its lease and sleeps, as a frozen process would), and, in debug builds only, the
//! environment variable `FF_TEST_SIGSTOP_AT=<point>[,<point>...]`, which makes the process
//! stop itself with SIGSTOP the first time it reaches each named point, so a test of the
//! real binary can pause it at an exact step and resume it with SIGCONT. Release builds
//! ignore the variable.
use super::JobContext;
use crate::store::leases::Lease;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvoicePoint {
    BeforeRowsPut,
    AfterRowsPut,
    AfterIntent,
    AfterCreateInvoice,
}

impl InvoicePoint {
    pub const ALL: [InvoicePoint; 4] = [
        InvoicePoint::BeforeRowsPut,
        InvoicePoint::AfterRowsPut,
        InvoicePoint::AfterIntent,
        InvoicePoint::AfterCreateInvoice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InvoicePoint::BeforeRowsPut => "invoice.before_rows_put",
            InvoicePoint::AfterRowsPut => "invoice.after_rows_put",
            InvoicePoint::AfterIntent => "invoice.after_intent",
            InvoicePoint::AfterCreateInvoice => "invoice.after_createinvoice",
        }
    }
}

pub(super) async fn at(ctx: &JobContext, lease: &mut Lease, point: InvoicePoint) {
    if let Some(duration) = ctx.faults.take_freeze(point) {
        tracing::warn!(
            order_id = lease.order_id,
            point = point.name(),
            ?duration,
            "fault injected: worker frozen"
        );
        lease.stop_renewing();
        tokio::time::sleep(duration).await;
    }
    #[cfg(debug_assertions)]
    sigstop_if_asked(lease.order_id, point);
}

#[cfg(debug_assertions)]
fn sigstop_if_asked(order_id: i64, point: InvoicePoint) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static PENDING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let pending = PENDING.get_or_init(|| {
        Mutex::new(
            std::env::var("FF_TEST_SIGSTOP_AT")
                .unwrap_or_default()
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        )
    });
    let hit = pending
        .lock()
        .map(|mut set| set.remove(point.name()))
        .unwrap_or(false);
    if !hit {
        return;
    }
    tracing::warn!(
        order_id,
        point = point.name(),
        "FF_TEST_SIGSTOP_AT: stopping this process (SIGSTOP); SIGCONT resumes it"
    );
    let pid = std::process::id().to_string();
    if let Err(error) = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
    {
        tracing::error!(%error, "FF_TEST_SIGSTOP_AT: could not stop the process");
    }
}
