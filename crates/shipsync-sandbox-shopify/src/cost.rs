//! Query cost and the leaky bucket, modelled on Shopify's rules.
//!
//! Cost model (a simplification of Shopify's documented one): scalar and enum
//! fields cost 0, object fields 1, connections 2 plus the page size times the
//! cost of one node, other list fields their size times the element cost,
//! `PageInfo` 0, and every mutation root field 10. The requested cost uses the
//! `first`/`last` arguments; the actual cost counts what the response really
//! holds, and the difference is refunded to the bucket, as Shopify does.

use std::time::Instant;

use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::response::JsonMap;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{ExecutableDocument, Schema};
use serde::{Deserialize, Serialize};

/// Leaky-bucket parameters (Shopify's Standard plan by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleConfig {
    pub maximum_available: f64,
    pub restore_rate: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            maximum_available: 1000.0,
            restore_rate: 100.0,
        }
    }
}

/// Shopify refuses any single query above this cost, whatever the bucket holds.
pub const MAX_SINGLE_QUERY_COST: f64 = 1000.0;

#[derive(Debug)]
pub(crate) struct Bucket {
    config: ThrottleConfig,
    available: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(config: ThrottleConfig) -> Self {
        Bucket {
            config,
            available: config.maximum_available,
            at: Instant::now(),
        }
    }

    pub fn currently_available(&mut self) -> f64 {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.config.restore_rate;
        self.available = (self.available + refill).min(self.config.maximum_available);
        self.at = now;
        self.available
    }

    /// Takes `cost` if the bucket holds it; false (and nothing taken) if not.
    pub fn try_take(&mut self, cost: f64) -> bool {
        if cost > self.currently_available() {
            return false;
        }
        self.available -= cost;
        true
    }

    pub fn refund(&mut self, amount: f64) {
        self.currently_available();
        self.available = (self.available + amount.max(0.0)).min(self.config.maximum_available);
    }

    /// Empties the bucket (for tests of throttling behaviour).
    pub fn drain(&mut self) {
        self.currently_available();
        self.available = 0.0;
    }

    pub fn status(&mut self) -> serde_json::Value {
        let available = self.currently_available();
        serde_json::json!({
            "maximumAvailable": self.config.maximum_available,
            "currentlyAvailable": available.floor(),
            "restoreRate": self.config.restore_rate,
        })
    }
}

pub(crate) struct CostModel<'a> {
    pub schema: &'a Schema,
    pub document: &'a ExecutableDocument,
    pub variables: &'a JsonMap,
}

impl CostModel<'_> {
    /// Cost of a mutation: 10 per root field.
    pub fn mutation(&self, set: &SelectionSet) -> f64 {
        10.0 * self.root_fields(set) as f64
    }

    fn root_fields(&self, set: &SelectionSet) -> usize {
        set.selections
            .iter()
            .map(|s| match s {
                Selection::Field(_) => 1,
                Selection::FragmentSpread(f) => self
                    .document
                    .fragments
                    .get(&f.fragment_name)
                    .map_or(0, |frag| self.root_fields(&frag.selection_set)),
                Selection::InlineFragment(f) => self.root_fields(&f.selection_set),
            })
            .sum()
    }

    /// Cost of a selection set on one object. With `data` (that object's
    /// response data) list sizes are the real ones; without, the requested ones.
    pub fn selection(
        &self,
        set: &SelectionSet,
        data: Option<&serde_json::Value>,
        page: Option<f64>,
    ) -> f64 {
        let mut cost = 0.0;
        for sel in &set.selections {
            cost += match sel {
                Selection::Field(f) => self.field(f, data, page),
                Selection::FragmentSpread(f) => self
                    .document
                    .fragments
                    .get(&f.fragment_name)
                    .map_or(0.0, |frag| self.selection(&frag.selection_set, data, page)),
                Selection::InlineFragment(f) => self.selection(&f.selection_set, data, page),
            };
        }
        cost
    }

    fn field(&self, f: &Field, data: Option<&serde_json::Value>, page: Option<f64>) -> f64 {
        let type_name = f.ty().inner_named_type();
        let composite = matches!(
            self.schema.types.get(type_name),
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
        );
        if !composite || type_name == "PageInfo" {
            return 0.0;
        }
        let value = match data {
            Some(d) => match d.get(f.response_key().as_str()) {
                Some(v) if !v.is_null() => Some(v),
                // Null or absent in the response: nothing was loaded.
                _ => return 0.0,
            },
            None => None,
        };
        let requested = self.page_argument(f).or(page);
        if type_name.ends_with("Connection") {
            // The connection object itself; its nodes/edges are priced by
            // the page size handed down.
            return 2.0 + self.selection(&f.selection_set, value, requested);
        }
        if f.ty().is_list() {
            return match value.and_then(|v| v.as_array()) {
                Some(items) => items
                    .iter()
                    .map(|item| 1.0 + self.selection(&f.selection_set, Some(item), None))
                    .sum(),
                None => {
                    requested.unwrap_or(1.0) * (1.0 + self.selection(&f.selection_set, None, None))
                }
            };
        }
        1.0 + self.selection(&f.selection_set, value, None)
    }

    fn page_argument(&self, f: &Field) -> Option<f64> {
        f.arguments
            .iter()
            .find(|a| a.name == "first" || a.name == "last")
            .and_then(|a| match a.value.as_ref() {
                apollo_compiler::ast::Value::Int(i) => i.try_to_i32().ok().map(f64::from),
                apollo_compiler::ast::Value::Variable(v) => {
                    self.variables.get(v.as_str()).and_then(|v| v.as_f64())
                }
                _ => None,
            })
    }
}
