//! What an edited set of mappings would change (issue 15, item 6), before
//! it is saved: the merchant's latest stored orders and shipments run
//! through the same code a real send uses ([`sales_order_dto`] for orders,
//! the aliases, the recipes, [`ledger::attribute`] and
//! [`Engine::tracking_for`] for shipments), once with the mappings in force and once with the edited
//! ones. Nothing is written and nothing is sent: only stored records are
//! read (the store order as last pulled, the shipment's last version).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};
use shipsync_core::ShipmentVersion;
use shipsync_core::ledger::{self, KitPolicy, OrderLine, Recipes, ShipmentInput};
use shipsync_core::mappings::Mappings;
use shipsync_core::states::{OrderStatus, ShipmentStatus};
use shipsync_db::merchants;
use shipsync_db::orders::{self as db_orders, OrderFilter, OrderRecord};
use shipsync_db::shipments::{self as db_shipments, ShipmentFilter, ShipmentRow};
use shipsync_shopify::StoreOrderForWarehouse;

use crate::Engine;
use crate::edit::{EditError, EditResult};
use crate::orders::dto::sales_order_dto;
use crate::orders::push::to_send;
use crate::orders::stored_store_order;

/// How many records a preview looks at when the caller does not say.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most records one preview looks at (of each kind).
pub const MAX_LIMIT: i64 = 500;

/// The reason an order's error carries when its shipping method has no
/// rule (the text [`sales_order_dto`] refuses with): only such an error is
/// one a change of the rules can clear.
const UNMAPPED: &str = "unmapped shipping method";

/// The field of a shipment the ledger cannot send, with its reason.
const LEDGER_ERROR: &str = "ledger_error";

/// One value an edit would change in what a record sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Which value: a `SalesOrderDTO` field (`shipVia`, `shipVendor`,
    /// `shipMethod`, `orderLines[<lineNumber>].item`), `error`, or for a
    /// shipment `lines[<line_number>].store_sku`, `store_lines[<line id>]`
    /// (units the ledger gives the store line), `ledger_error`,
    /// `kit[<sku>].recipe`, `carrier`, `tracking_url`.
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// A record whose output (or state) an edit would change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewItem {
    /// `order` or `shipment`.
    pub kind: &'static str,
    /// The record's id (`ord_…`, `shp_…`).
    pub id: String,
    /// The store order's name, to show a person.
    pub name: String,
    pub changes: Vec<Change>,
    pub status_before: String,
    pub status_after: String,
}

/// The answer of a preview: only records whose output or state differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    pub items: Vec<PreviewItem>,
}

/// What one order would send: the ship method fields and each line's
/// item number, or the reason it would not be sent.
fn order_output(o: &OrderRecord, doc: &Mappings) -> Option<Result<Vec<(String, Value)>, String>> {
    let store = stored_store_order(o)?;
    Some(
        sales_order_dto("", "", &to_send(&store, &o.lines), doc).map(|dto| {
            let mut out: Vec<(String, Value)> = ["shipVia", "shipVendor", "shipMethod"]
                .iter()
                .map(|k| {
                    (
                        (*k).to_string(),
                        dto.get(*k).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            for l in dto["orderLines"].as_array().into_iter().flatten() {
                out.push((
                    format!(
                        "orderLines[{}].item",
                        l["lineNumber"].as_str().unwrap_or_default()
                    ),
                    l.pointer("/item/businessKey/number")
                        .cloned()
                        .unwrap_or(Value::Null),
                ));
            }
            out
        }),
    )
}

/// The changes between two outputs, field by field (a field one side lacks
/// is `null` there).
fn changes_between(before: &[(String, Value)], after: &[(String, Value)]) -> Vec<Change> {
    let mut fields: Vec<&String> = before.iter().map(|(k, _)| k).collect();
    for (k, _) in after {
        if !fields.contains(&k) {
            fields.push(k);
        }
    }
    let get = |side: &[(String, Value)], k: &str| {
        side.iter()
            .find(|(f, _)| f == k)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    fields
        .into_iter()
        .filter_map(|k| {
            let (b, a) = (get(before, k), get(after, k));
            (b != a).then(|| Change {
                field: k.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

fn order_item(o: &OrderRecord, current: &Mappings, edited: &Mappings) -> Option<PreviewItem> {
    // Nothing will be sent for these again.
    if matches!(o.status, OrderStatus::Cancelled | OrderStatus::Archived) {
        return None;
    }
    let (Some(before), Some(after)) = (order_output(o, current), order_output(o, edited)) else {
        return None;
    };
    let waiting = o.warehouse_id.is_none();
    let status_after = match (&before, &after) {
        // The error the rules caused clears: the order goes out again.
        (_, Ok(_))
            if o.status == OrderStatus::Error
                && o.error.as_deref().is_some_and(|e| e.contains(UNMAPPED)) =>
        {
            OrderStatus::Queued
        }
        // Not sent yet, and the edited rules no longer take its method.
        (Ok(_), Err(why))
            if waiting
                && why.contains(UNMAPPED)
                && matches!(o.status, OrderStatus::Queued | OrderStatus::New) =>
        {
            OrderStatus::Error
        }
        _ => o.status,
    };
    let as_fields = |r: &Result<Vec<(String, Value)>, String>| match r {
        Ok(f) => f.clone(),
        Err(why) => vec![("error".to_string(), json!(why))],
    };
    let changes = changes_between(&as_fields(&before), &as_fields(&after));
    (!changes.is_empty() || status_after != o.status).then(|| PreviewItem {
        kind: "order",
        id: o.id.clone(),
        name: o.name.clone(),
        changes,
        status_before: o.status.as_str().to_string(),
        status_after: status_after.as_str().to_string(),
    })
}

impl Engine {
    /// What `edited` (a document as PUT takes it; `None`: the stored one)
    /// would change for the merchant's latest `limit` orders and shipments
    /// (each; default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]). A document
    /// that does not validate is refused as PUT refuses it. Reads only.
    pub async fn preview_mappings(
        &self,
        merchant_id: &str,
        edited: Option<Value>,
        limit: Option<i64>,
    ) -> EditResult<Preview> {
        let m = merchants::get(self.db().pool(), merchant_id)
            .await?
            .ok_or(EditError::NotFound("merchant"))?;
        let current = self.mappings_of(&m).await?;
        let edited = match edited {
            Some(doc) => Mappings::from_json(doc)?.validated()?,
            None => current.clone(),
        };
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let mut items = Vec::new();
        let orders = db_orders::list(
            self.db().pool(),
            &OrderFilter {
                merchant_ids: Some(vec![m.id.clone()]),
                ..Default::default()
            },
            None,
            limit,
        )
        .await?;
        items.extend(
            orders
                .iter()
                .filter_map(|o| order_item(o, &current, &edited)),
        );
        let shipments = db_shipments::list(
            self.db().pool(),
            &ShipmentFilter {
                merchant_ids: Some(vec![m.id.clone()]),
                ..Default::default()
            },
            None,
            limit,
        )
        .await?;
        for s in &shipments {
            if let Some(item) = self
                .shipment_item(s, &current, &edited, m.kit_policy)
                .await?
            {
                items.push(item);
            }
        }
        Ok(Preview { items })
    }

    /// What the store would get for one shipment under `doc`: each line's
    /// store SKU (aliases, with the order's SKUs preferred), what the ledger
    /// gives each store line (or why it refuses), the recipe of each kit it
    /// names (a person's over a learned one), and the carrier name and
    /// tracking URL of its fulfillment.
    async fn shipment_output(
        &self,
        s: &ShipmentRow,
        doc: &Mappings,
        policy: KitPolicy,
    ) -> Result<Vec<(String, Value)>, shipsync_db::DbError> {
        let store = self.store_order_of(s).await?;
        let order_skus: BTreeSet<&str> = store
            .iter()
            .flat_map(|o| o.line_items.iter())
            .filter_map(|l| l.sku.as_deref())
            .collect();
        let v = doc.in_store_skus(&s.version, &order_skus);
        let mut out: Vec<(String, Value)> = v
            .lines
            .iter()
            .map(|l| (format!("lines[{}].store_sku", l.line_number), json!(l.sku)))
            .collect();
        let recipes = self.recipes_of(&s.merchant_id, doc).await?;
        if let Some(store) = &store {
            out.extend(self.ledger_output(s, store, doc, &recipes, policy).await?);
        }
        let kits: BTreeSet<&str> = v
            .lines
            .iter()
            .filter_map(|l| l.kit.as_ref().and_then(|k| k.sku.as_deref()))
            .chain(v.lines.iter().map(|l| l.sku.as_str()))
            .collect();
        for kit in kits {
            if let Some(r) = recipes.get(kit) {
                out.push((format!("kit[{kit}].recipe"), json!(r)));
            }
        }
        let pkg_tracking: Vec<(String, String)> = v
            .packages
            .iter()
            .filter_map(|p| {
                p.tracking_number
                    .clone()
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| (p.key.clone(), t))
            })
            .collect();
        let tracking = self.tracking_for(&v, v.carrier.as_deref(), &pkg_tracking, doc);
        out.push(("carrier".into(), json!(tracking.company)));
        out.push(("tracking_url".into(), json!(tracking.urls.first())));
        Ok(out)
    }

    async fn shipment_item(
        &self,
        s: &ShipmentRow,
        current: &Mappings,
        edited: &Mappings,
        policy: KitPolicy,
    ) -> Result<Option<PreviewItem>, shipsync_db::DbError> {
        if s.status == ShipmentStatus::Archived {
            return Ok(None);
        }
        let before = self.shipment_output(s, current, policy).await?;
        let after = self.shipment_output(s, edited, policy).await?;
        let changes = changes_between(&before, &after);
        // A shipment in error because the ledger could not place its units
        // (an alias or a recipe missing) goes to the store once the edited
        // mappings let the ledger place them.
        let refused = |out: &[(String, Value)]| out.iter().any(|(f, _)| f == LEDGER_ERROR);
        let placed = after.iter().any(|(f, _)| f.starts_with("store_lines["));
        let status_after = if s.status == ShipmentStatus::Error
            && refused(&before)
            && !refused(&after)
            && placed
        {
            ShipmentStatus::Completed
        } else {
            s.status
        };
        Ok(
            (!changes.is_empty() || status_after != s.status).then(|| PreviewItem {
                kind: "shipment",
                id: s.id.clone(),
                name: s.order_name.clone(),
                changes,
                status_before: s.status.as_str().to_string(),
                status_after: status_after.as_str().to_string(),
            }),
        )
    }

    /// The ledger's answer for the shipment under `doc`, as the store would
    /// get it: units per store line (`store_lines[<line id>]`), or why it
    /// cannot go (`ledger_error`). Its order's other shipments count, as in
    /// a real run (`shipments::sync`); the store order is the one last
    /// pulled, not the store's live one.
    async fn ledger_output(
        &self,
        s: &ShipmentRow,
        store: &StoreOrderForWarehouse,
        doc: &Mappings,
        recipes: &Recipes,
        policy: KitPolicy,
    ) -> Result<Vec<(String, Value)>, shipsync_db::DbError> {
        let Some(order_id) = &s.order_id else {
            return Ok(Vec::new());
        };
        let order_skus: BTreeSet<&str> = store
            .line_items
            .iter()
            .filter_map(|l| l.sku.as_deref())
            .collect();
        let versions: Vec<(String, ShipmentVersion)> =
            db_shipments::for_order(self.db().pool(), order_id)
                .await?
                .into_iter()
                .filter(|sib| {
                    sib.id == s.id
                        || (sib.status != ShipmentStatus::Archived
                            && sib.connection_id == s.connection_id)
                })
                .map(|sib| (sib.id, doc.in_store_skus(&sib.version, &order_skus)))
                .collect();
        let inputs: Vec<ShipmentInput<'_>> = versions
            .iter()
            .map(|(k, v)| ShipmentInput { key: k, version: v })
            .collect();
        let order_lines: Vec<OrderLine> = store
            .line_items
            .iter()
            .map(crate::shipments::ledger_line)
            .collect();
        let mine = ledger::attribute(&order_lines, recipes, policy, &inputs)
            .into_iter()
            .find(|x| x.key == s.id);
        Ok(match mine.map(|x| x.result) {
            Some(Ok(shares)) => {
                let mut units: BTreeMap<String, u64> = BTreeMap::new();
                for share in shares {
                    *units.entry(share.store_line_id).or_default() += share.quantity;
                }
                units
                    .into_iter()
                    .map(|(line, n)| (format!("store_lines[{line}]"), json!(n)))
                    .collect()
            }
            Some(Err(problem)) => vec![(LEDGER_ERROR.to_string(), json!(problem.message))],
            None => Vec::new(),
        })
    }

    /// The store order a shipment was matched to, as last pulled (`None`:
    /// not matched yet, or never pulled by the Sales Orders channel).
    async fn store_order_of(
        &self,
        s: &ShipmentRow,
    ) -> Result<Option<StoreOrderForWarehouse>, shipsync_db::DbError> {
        let (Some(c), Some(o)) = (&s.connection_id, &s.order_id) else {
            return Ok(None);
        };
        Ok(db_orders::of_store_order(self.db().pool(), c, o)
            .await?
            .as_ref()
            .and_then(stored_store_order))
    }
}
