//! Counters of Fortnox calls, per resource and status, for metrics.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// A metric (family) whose HELP and TYPE are served even before its first
/// sample: prometheus-client leaves an empty family out, and the service has
/// always listed its metrics from the start.
#[derive(Debug)]
pub struct Listed<M>(pub M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    resource: String,
    /// 0 stands for "no HTTP status" (timeout, connection error).
    status: u16,
}

/// The calls of one client. Each `FortnoxClient` has its own family (not a
/// process-wide one), so that clients in one process (tests) count apart.
#[derive(Debug, Default)]
pub struct CallCounters {
    calls: Family<CallLabels, Counter>,
}

impl CallCounters {
    pub fn record(&self, resource: &str, status: u16) {
        self.calls.get_or_create(&labels(resource, status)).inc();
    }

    /// Calls to `resource` answered with `status`, e.g. `("orders", 200)`.
    pub fn count(&self, resource: &str, status: u16) -> u64 {
        self.calls
            .get(&labels(resource, status))
            .map_or(0, |c| c.get())
    }

    /// Adds the counters to `registry` as `fortnox_calls_total{resource,status}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "fortnox_calls",
            "Fortnox API calls by resource and HTTP status (0: no response)",
            Listed(self.calls.clone()),
        );
    }
}

fn labels(resource: &str, status: u16) -> CallLabels {
    CallLabels {
        resource: resource.to_string(),
        status,
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
    use super::{resource_of, CallCounters};
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    fn exposition(counters: &CallCounters) -> String {
        let mut registry = Registry::default();
        counters.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).expect("encodes");
        out
    }

    #[test]
    fn calls_are_counted_and_served_by_resource_and_status() {
        let counters = CallCounters::default();
        assert!(exposition(&counters).contains("# TYPE fortnox_calls counter"));
        counters.record("orders", 200);
        counters.record("orders", 200);
        counters.record("orders/createinvoice", 0);
        assert_eq!(counters.count("orders", 200), 2);
        assert_eq!(counters.count("orders", 429), 0);
        let text = exposition(&counters);
        assert!(
            text.contains("fortnox_calls_total{resource=\"orders\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fortnox_calls_total{resource=\"orders/createinvoice\",status=\"0\"} 1"),
            "{text}"
        );
    }

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
