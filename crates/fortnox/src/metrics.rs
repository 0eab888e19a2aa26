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
/// -> `orders/createinvoice`, `/3/orders?page=2` -> `orders`. The `/3` prefix
/// is optional (`/orders/7` -> `orders`), so the client's paths and the
/// sandbox's call log give the same names.
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

#[cfg(test)]
mod tests {
    use super::resource_of;

    #[test]
    fn same_resource_with_or_without_the_api_prefix() {
        for (path, want) in [
            ("/3/orders", "orders"),
            ("/orders", "orders"),
            ("/3/orders?page=2&limit=500", "orders"),
            ("/3/orders/7", "orders"),
            ("/orders/7", "orders"),
            ("/3/orders/7/createinvoice", "orders/createinvoice"),
            ("/orders/7/createinvoice", "orders/createinvoice"),
            ("/3/invoices/1001", "invoices"),
            ("/3/invoices/1001/credit", "invoices/credit"),
            ("/invoices/1001/credit", "invoices/credit"),
            ("/oauth-v1/token", "oauth/token"),
            ("/", "root"),
        ] {
            assert_eq!(resource_of(path), want, "{path}");
        }
    }
}
