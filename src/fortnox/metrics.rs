//! In-process counters of Fortnox calls, per resource and status, for metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Status 0 stands for "no HTTP status" (timeout, connection error).
#[derive(Debug, Default)]
pub struct CallCounters {
    counts: Mutex<BTreeMap<(String, u16), u64>>,
}

impl CallCounters {
    pub fn record(&self, resource: &str, status: u16) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((resource.to_string(), status)).or_default() += 1;
    }

    /// `(resource, status) -> count`, e.g. `("orders", 200) -> 12`.
    pub fn snapshot(&self) -> BTreeMap<(String, u16), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn count(&self, resource: &str, status: u16) -> u64 {
        self.snapshot()
            .get(&(resource.to_string(), status))
            .copied()
            .unwrap_or(0)
    }

    pub fn total_with_status(&self, status: u16) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((_, s), _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The resource of a Fortnox path, for counting: `/3/orders/7/createinvoice`
/// -> `orders/createinvoice`, `/3/orders?page=2` -> `orders`.
pub fn resource_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let segs: &[&str] = match segs.first() {
        Some(&"3") => &segs[1..],
        _ => &segs[..],
    };
    match segs {
        [] => "root".to_string(),
        ["oauth-v1", action, ..] => format!("oauth/{action}"),
        [res] | [res, _] => res.to_string(),
        [res, _, action, ..] => format!("{res}/{action}"),
    }
}
