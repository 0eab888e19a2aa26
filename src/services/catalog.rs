//! Use cases of the merchant's catalogue: products, shipping rules, and the preview of
//! where each Fortnox way of delivery goes. A change that may fix RESERVED orders (a new
//! product, a rule added or removed) re-checks them.
use std::collections::HashMap;

use entity::product;

use super::{Result, ServiceError, Services};
use crate::auth::Principal;
use crate::domain::shipping::{self, match_way_of_delivery, RuleMatch};
use crate::store::catalog::{NewProduct, ProductUpdate, RuleWithMethod};
use entity::IntegrationStatus;

/// Where one of the merchant's Fortnox ways of delivery goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WayOfDeliveryMapping {
    pub code: String,
    pub description: Option<String>,
    pub outcome: MappingOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappingOutcome {
    Matched(RuleWithMethod),
    NoMatch,
    /// Equally specific rules choose different methods; every tied rule, by id.
    Conflict(Vec<RuleWithMethod>),
}

impl Services {
    /// Creates a product for a merchant in the actor's scope.
    pub async fn create_product(
        &self,
        actor: &Principal,
        new: NewProduct,
    ) -> Result<product::Model> {
        self.merchant_in_scope(actor, new.merchant_id).await?;
        let merchant_id = new.merchant_id;
        let product = self.store.create_product(new).await?;
        self.recheck_reserved_orders(merchant_id).await;
        Ok(product)
    }

    pub async fn update_product(
        &self,
        actor: &Principal,
        id: i64,
        update: ProductUpdate,
    ) -> Result<product::Model> {
        Ok(self.store.update_product(&actor.scope, id, update).await?)
    }

    /// A merchant's shipping rules, most specific first.
    pub async fn shipping_rules(
        &self,
        actor: &Principal,
        merchant_id: i64,
    ) -> Result<Vec<RuleWithMethod>> {
        self.merchant_in_scope(actor, merchant_id).await?;
        Ok(self.store.merchant_rules_with_methods(merchant_id).await?)
    }

    pub async fn add_shipping_rule(
        &self,
        actor: &Principal,
        merchant_id: i64,
        pattern: &str,
        shipping_method_code: &str,
    ) -> Result<RuleWithMethod> {
        self.merchant_in_scope(actor, merchant_id).await?;
        let rule = self
            .store
            .add_shipping_rule(merchant_id, pattern, shipping_method_code)
            .await?;
        self.recheck_reserved_orders(merchant_id).await;
        Ok(rule)
    }

    /// Removes a rule; removing one of two conflicting rules settles the conflict.
    pub async fn remove_shipping_rule(&self, actor: &Principal, id: i64) -> Result<RuleWithMethod> {
        let removed = self.store.remove_shipping_rule(&actor.scope, id).await?;
        self.recheck_reserved_orders(removed.rule.merchant_id).await;
        Ok(removed)
    }

    /// For every way of delivery in the merchant's Fortnox (read live, sorted by code), the
    /// rule and method it maps to, or why it maps to none. The description tried is the
    /// Swedish one, or the English one when that is all there is, as in the order checks.
    pub async fn way_of_delivery_mappings(
        &self,
        actor: &Principal,
        merchant_id: i64,
    ) -> Result<Vec<WayOfDeliveryMapping>> {
        self.merchant_in_scope(actor, merchant_id).await?;
        self.require_fortnox_connected(merchant_id).await?;
        let tenant = self.fortnox.tenant(merchant_id.to_string());
        let ways = self
            .live_reads
            .ways_of_delivery(merchant_id, async { tenant.list_ways_of_delivery().await })
            .await?;
        let mut ways: Vec<(String, Option<String>)> = ways
            .iter()
            .map(|w| {
                let description = w.description.clone().or(w.description_english.clone());
                (w.code.clone(), description)
            })
            .collect();
        ways.sort_by(|a, b| a.0.cmp(&b.0));
        let rules = self.store.merchant_rules_with_methods(merchant_id).await?;
        Ok(map_ways_of_delivery(&rules, &ways))
    }

    /// Refuses, with what to do, when the merchant's Fortnox cannot be called.
    pub(crate) async fn require_fortnox_connected(&self, merchant_id: i64) -> Result<()> {
        match self.store.integration(merchant_id).await?.map(|i| i.status) {
            Some(IntegrationStatus::Connected) => Ok(()),
            Some(IntegrationStatus::NeedsReauthorization) => {
                Err(ServiceError::FortnoxNeedsReauthorization {
                    reason: "the refresh token is no longer valid".into(),
                })
            }
            _ => Err(ServiceError::FortnoxNotConnected),
        }
    }
}

fn describe(rule: &RuleWithMethod) -> String {
    format!(
        "rule {} '{}' → {}",
        rule.rule.id, rule.rule.pattern, rule.method.code
    )
}

impl WayOfDeliveryMapping {
    /// One sentence for a person: where orders with this way of delivery go, or what to fix.
    pub fn message(&self) -> String {
        let way = match self.description.as_deref() {
            Some(d) if d != self.code => format!("'{}' ({d})", self.code),
            _ => format!("'{}'", self.code),
        };
        match &self.outcome {
            MappingOutcome::Matched(r) => format!(
                "Orders with way of delivery {way} ship with {} ({} {}) through rule {} '{}'",
                r.method.code, r.method.carrier, r.method.name, r.rule.id, r.rule.pattern
            ),
            MappingOutcome::NoMatch => format!(
                "No shipping rule matches way of delivery {way}: its orders will stop in RESERVED; add a shipping rule (addShippingRule) whose pattern matches the code or the description"
            ),
            MappingOutcome::Conflict(rules) => format!(
                "Way of delivery {way} matches equally specific rules that choose different shipping methods: {}. Its orders will stop in RESERVED; remove all but one of them, or add a more specific rule",
                rules.iter().map(describe).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Maps each way of delivery (code, description) through the rules: the pure part of the
/// preview, with the same matcher and precedence the order checks use.
pub fn map_ways_of_delivery(
    rules: &[RuleWithMethod],
    ways: &[(String, Option<String>)],
) -> Vec<WayOfDeliveryMapping> {
    let matcher_rules: Vec<shipping::ShippingRule> = rules
        .iter()
        .map(|r| shipping::ShippingRule {
            id: r.rule.id,
            pattern: r.rule.pattern.clone(),
            shipping_method_id: r.rule.shipping_method_id,
        })
        .collect();
    let by_id: HashMap<i64, &RuleWithMethod> = rules.iter().map(|r| (r.rule.id, r)).collect();
    ways.iter()
        .map(|(code, description)| {
            let description = description
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty());
            let outcome = match match_way_of_delivery(&matcher_rules, code, description) {
                RuleMatch::Matched { rule_id, .. } => match by_id.get(&rule_id) {
                    Some(rule) => MappingOutcome::Matched((*rule).clone()),
                    None => MappingOutcome::NoMatch,
                },
                RuleMatch::NoMatch => MappingOutcome::NoMatch,
                RuleMatch::Conflict { rule_ids } => MappingOutcome::Conflict(
                    rule_ids
                        .iter()
                        .filter_map(|id| by_id.get(id).map(|r| (*r).clone()))
                        .collect(),
                ),
            };
            WayOfDeliveryMapping {
                code: code.clone(),
                description: description.map(str::to_owned),
                outcome,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use entity::{shipping_method, shipping_rule};

    fn rule(id: i64, pattern: &str, method_id: i64, code: &str) -> RuleWithMethod {
        RuleWithMethod {
            rule: shipping_rule::Model {
                id,
                merchant_id: 1,
                pattern: pattern.into(),
                shipping_method_id: method_id,
                created_at: Utc::now(),
            },
            method: shipping_method::Model {
                id: method_id,
                code: code.into(),
                carrier: "C".into(),
                name: format!("{code} name"),
            },
        }
    }

    #[test]
    fn the_preview_shows_match_no_match_and_conflict() {
        // Most specific first, as the store returns them.
        let rules = vec![
            rule(4, "DHL-EXP*", 13, "DHL_X"),
            rule(3, "Post*", 12, "PN"),
            rule(1, "DHL*", 10, "DHL_A"),
            rule(2, "*DHL", 11, "DHL_B"),
        ];
        let ways = vec![
            ("DHL".to_owned(), None),
            ("P1".to_owned(), Some("PostNord MyPack".to_owned())),
            ("UPS".to_owned(), Some("UPS Standard".to_owned())),
            ("DHL-EXPRESS".to_owned(), Some(" ".to_owned())),
        ];
        let mapped = map_ways_of_delivery(&rules, &ways);
        assert!(
            matches!(&mapped[0].outcome, MappingOutcome::Conflict(tied) if tied.iter().map(|r| r.rule.id).collect::<Vec<_>>() == vec![1, 2])
        );
        assert!(
            mapped[0].message().contains("rule 1 'DHL*'")
                && mapped[0].message().contains("rule 2 '*DHL'"),
            "{}",
            mapped[0].message()
        );
        assert!(matches!(&mapped[1].outcome, MappingOutcome::Matched(r) if r.rule.id == 3));
        assert_eq!(mapped[2].outcome, MappingOutcome::NoMatch);
        assert!(mapped[2].message().contains("addShippingRule"));
        assert!(matches!(&mapped[3].outcome, MappingOutcome::Matched(r) if r.rule.id == 4));
        assert_eq!(mapped[3].description, None);
    }
}
