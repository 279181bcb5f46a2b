//! Every document validates against Shopify's real Admin schema, and its
//! requested cost (Shopify's documented rules) stays under the 1,000 a single
//! query may cost.

use std::collections::BTreeSet;

use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name};
use shipsync_shopify::operations;

const SINGLE_QUERY_MAX: u64 = 1000;
const MUTATION_COST: u64 = 10;

fn validated(name: &str, document: &str) -> Valid<ExecutableDocument> {
    shipsync_shopify_schema::validate(document)
        .unwrap_or_else(|e| panic!("{name} does not validate against Shopify's schema:\n{e}"))
}

#[test]
fn every_document_validates_against_the_real_schema() {
    for (name, document) in operations::ALL {
        let doc = validated(name, document);
        let op = doc.operations.get(Some(name)).unwrap_or_else(|e| {
            panic!("{name}: the document's operation is not named {name}: {e:?}")
        });
        assert_eq!(op.name.as_ref().map(Name::as_str), Some(*name));
        assert_eq!(
            doc.operations.len(),
            1,
            "{name}: one operation per document"
        );
        // Data goes in variables only: no string literals in any document.
        assert!(!document.contains('"'), "{name} contains a string literal");
    }
}

#[test]
fn names_are_unique() {
    let mut names: Vec<&str> = operations::ALL.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), operations::ALL.len());
}

/// The requested cost of every document, as documented beside it in
/// `operations.rs` and listed in `operations::COSTS` (what a call reserves
/// before Shopify has answered one), and all of them within Shopify's single-query maximum.
#[test]
fn requested_costs_match_the_comments_and_stay_under_the_maximum() {
    let expected = operations::COSTS;
    assert_eq!(expected.len(), operations::ALL.len());
    for (name, document) in operations::ALL {
        let doc = validated(name, document);
        let Ok(op) = doc.operations.get(Some(name)) else {
            panic!("{name}: no such operation");
        };
        let cost = if op.operation_type.is_mutation() {
            MUTATION_COST
        } else {
            selection_cost(name, &op.selection_set)
        };
        assert!(cost <= SINGLE_QUERY_MAX, "{name} costs {cost}");
        let documented = expected.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
        assert_eq!(
            documented,
            Some(cost),
            "{name}: cost {cost} differs from its comment"
        );
    }
}

/// Scalars and enums 0, objects 1, connections 2 + first × node, lists with
/// `first` first × item; `pageInfo` counted as an object.
fn selection_cost(op: &str, set: &SelectionSet) -> u64 {
    set.selections
        .iter()
        .map(|s| match s {
            Selection::Field(f) => field_cost(op, f),
            Selection::InlineFragment(i) => selection_cost(op, &i.selection_set),
            Selection::FragmentSpread(_) => panic!("{op}: fragments are not costed here"),
        })
        .sum()
}

fn first(op: &str, f: &Field) -> u64 {
    let value = f
        .arguments
        .iter()
        .find(|a| a.name == "first")
        .and_then(|a| a.value.to_i32())
        .unwrap_or_else(|| panic!("{op}: {} needs a literal `first`", f.name));
    u64::try_from(value).unwrap_or_else(|_| panic!("{op}: negative first"))
}

fn field_cost(op: &str, f: &Field) -> u64 {
    if f.selection_set.selections.is_empty() {
        return 0;
    }
    let inner = f.definition.ty.inner_named_type().as_str();
    if inner.ends_with("Connection") {
        let n = first(op, f);
        let parts: u64 = f
            .selection_set
            .selections
            .iter()
            .map(|s| match s {
                Selection::Field(c) if c.name == "nodes" => {
                    n * (1 + selection_cost(op, &c.selection_set))
                }
                Selection::Field(c) if c.name == "pageInfo" => 1,
                _ => panic!("{op}: only nodes and pageInfo are costed in a connection"),
            })
            .sum();
        2 + parts
    } else if f.definition.ty.is_list() && f.arguments.iter().any(|a| a.name == "first") {
        first(op, f) * (1 + selection_cost(op, &f.selection_set))
    } else if f.definition.ty.is_list() {
        // A plain list without `first` (e.g. `accessScopes`): Shopify
        // counts its object once.
        1 + selection_cost(op, &f.selection_set)
    } else {
        1 + selection_cost(op, &f.selection_set)
    }
}

/// Guards the guard: a plausible but wrong document must fail validation.
#[test]
fn the_validator_rejects_what_shopify_would() {
    let wrong = "mutation M($f: ID!, $t: FulfillmentTrackingInput!) {
      fulfillmentTrackingInfoUpdate(fulfillmentId: $f, trackingInfo: $t) { userErrors { message } }
    }";
    assert!(shipsync_shopify_schema::validate(wrong).is_err());
}

/// The topics shipsync subscribes to are values of Shopify's
/// `WebhookSubscriptionTopic`.
#[test]
fn order_topics_are_real_webhook_topics() {
    let schema = shipsync_shopify_schema::schema();
    let Some(apollo_compiler::schema::ExtendedType::Enum(topics)) =
        schema.types.get("WebhookSubscriptionTopic")
    else {
        panic!("WebhookSubscriptionTopic is not an enum of the schema");
    };
    for topic in shipsync_shopify::webhook::ORDER_TOPICS {
        assert!(
            topics.values.keys().any(|v| v.as_str() == topic),
            "{topic} is not a WebhookSubscriptionTopic"
        );
    }
}

/// The field paths selected under `path` (field names from the operation's
/// root, e.g. `["order", "lineItems", "nodes"]`), arguments ignored.
fn selected_paths(name: &str, document: &str, path: &[&str]) -> BTreeSet<String> {
    let doc = validated(name, document);
    let Ok(op) = doc.operations.get(Some(name)) else {
        panic!("{name}: no such operation");
    };
    let mut set = &op.selection_set;
    for step in path {
        set = set
            .selections
            .iter()
            .find_map(|s| match s {
                Selection::Field(f) if f.name == *step => Some(&f.selection_set),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name}: no {step} in {path:?}"));
    }
    let mut out = BTreeSet::new();
    collect_paths(set, "", &mut out);
    out
}

fn collect_paths(set: &SelectionSet, prefix: &str, out: &mut BTreeSet<String>) {
    for s in &set.selections {
        if let Selection::Field(f) = s {
            let path = format!("{prefix}{}", f.name);
            collect_paths(&f.selection_set, &format!("{path}."), out);
            out.insert(path);
        }
    }
}

/// Documents whose answers the client reads with one shape select the same
/// fields: the one order, the page of orders, the fulfillment orders read
/// after the first page, and the line items read after the first page.
#[test]
fn the_warehouse_documents_select_the_same_order() {
    use operations::{
        ORDER, ORDER_FOR_WAREHOUSE, ORDERS_FOR_WAREHOUSE, WAREHOUSE_FULFILLMENT_ORDERS,
    };
    let one = selected_paths("OrderForWarehouse", ORDER_FOR_WAREHOUSE, &["order"]);
    let listed = selected_paths(
        "OrdersForWarehouse",
        ORDERS_FOR_WAREHOUSE,
        &["orders", "nodes"],
    );
    assert_eq!(one, listed);
    assert_eq!(
        selected_paths(
            "OrderForWarehouse",
            ORDER_FOR_WAREHOUSE,
            &["order", "fulfillmentOrders"]
        ),
        selected_paths(
            "WarehouseFulfillmentOrders",
            WAREHOUSE_FULFILLMENT_ORDERS,
            &["order", "fulfillmentOrders"]
        ),
    );
    assert_eq!(
        selected_paths(
            "OrderForWarehouse",
            ORDER_FOR_WAREHOUSE,
            &["order", "lineItems"]
        ),
        selected_paths("Order", ORDER, &["order", "lineItems"]),
    );
}
