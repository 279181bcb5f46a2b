//! Sales orders received from shipsync: validation as Deposco does it, and
//! what the sandbox keeps of them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::render::stable_id;
use crate::spec::{ItemSpec, KitSpec, LineSpec, PackageSpec, ShipmentSpec};

/// A sales order as received (the body is kept as sent, plus ids), and
/// where it is in Deposco's lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalesOrderRecord {
    pub id: u64,
    pub number: String,
    pub customer_order_number: Option<String>,
    /// The `orderStatus` the creating body asked for, as sent (`None`: it
    /// named none). Updates do not change it; see [`Self::status`].
    pub order_status: Option<String>,
    /// Deposco's `orderStatus` now: `New` or `Hold` at creation, then moved
    /// by status changes, cancellations, shipments and the warehouse control.
    #[serde(default = "new_status")]
    pub status: String,
    pub lines: Vec<SalesOrderLine>,
    /// The body received for this order, with `self.id` and line ids added;
    /// after updates, the last header and every line as last posted.
    pub body: Value,
    pub created_date: Timestamp,
    pub updated_date: Timestamp,
    /// How many times it was posted (creates and updates).
    pub times_posted: u32,
}

fn new_status() -> String {
    "New".to_owned()
}

/// One order line and its quantities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalesOrderLine {
    pub id: u64,
    pub line_number: String,
    pub sku: String,
    /// `orderPackQuantity`: raised by updates, never lowered (cancelled
    /// units are counted in `canceled_quantity`).
    pub quantity: f64,
    pub customer_line_number: Option<String>,
    /// `canceledPackQuantity`.
    #[serde(default)]
    pub canceled_quantity: f64,
    /// `shippedPackQuantity`: what the sandbox's `Shipped` shipments of this
    /// order carry for the line.
    #[serde(default)]
    pub shipped_quantity: f64,
    /// Units waiting for stock (set with the warehouse control); the only
    /// units that can be cancelled while the order is Partially Released.
    #[serde(default)]
    pub back_ordered: f64,
    /// `orderLineStatus` (read-only in Deposco; derived by the sandbox).
    #[serde(default = "new_status")]
    pub status: String,
}

impl SalesOrderLine {
    /// Units neither cancelled nor shipped.
    pub fn open(&self) -> f64 {
        self.quantity - self.canceled_quantity - self.shipped_quantity
    }
}

/// Deposco's limits on sales orders.
pub(crate) struct OrderRules<'a> {
    pub business_unit: &'a str,
    pub items: Option<&'a BTreeMap<String, ItemSpec>>,
    pub require_ship_to: bool,
}

pub(crate) const MAX_LINES: usize = 100;
const MAX_NUMBER_LEN: usize = 50;

/// A validated order body: number, lines, and the body with ids filled in.
pub(crate) struct ValidOrder {
    pub number: String,
    pub customer_order_number: Option<String>,
    pub order_status: Option<String>,
    pub lines: Vec<SalesOrderLine>,
    pub body: Value,
}

/// Checks a `POST /orders/salesOrders` body; `Err` is Deposco's error message.
pub(crate) fn validate(body: Value, rules: &OrderRules<'_>) -> Result<ValidOrder, String> {
    let mut order = match body {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("salesOrder") => {
            map.remove("salesOrder").unwrap_or(Value::Null)
        }
        other => other,
    };
    let Some(obj) = order.as_object_mut() else {
        return Err("Request body must be a SalesOrder object".to_owned());
    };

    let bu = match obj.get("businessUnit") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => v
            .pointer("/businessKey/code")
            .and_then(Value::as_str)
            .map(str::to_owned),
        None => None,
    };
    let Some(bu) = bu.filter(|b| !b.is_empty()) else {
        return Err("businessUnit is required".to_owned());
    };
    if bu != rules.business_unit {
        return Err(format!("Business unit {bu} not found"));
    }

    let number = match obj.get("number") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("number is required".to_owned()),
    };
    if number.chars().count() > MAX_NUMBER_LEN {
        return Err(format!(
            "number exceeds the maximum length of {MAX_NUMBER_LEN} characters"
        ));
    }
    if let Some(c) = obj.get("customerOrderNumber").and_then(Value::as_str)
        && c.chars().count() > MAX_NUMBER_LEN
    {
        return Err(format!(
            "customerOrderNumber exceeds the maximum length of {MAX_NUMBER_LEN} characters"
        ));
    }
    if rules.require_ship_to {
        for field in ["shipToContact", "shipToAddress"] {
            if !obj.get(field).is_some_and(Value::is_object) {
                return Err(format!("{field} is required"));
            }
        }
    }

    let lines_value = match obj.get_mut("orderLines") {
        Some(Value::Array(a)) => a,
        Some(Value::Object(o)) => match o.get_mut("data") {
            Some(Value::Array(a)) => a,
            _ => return Err("orderLines is required".to_owned()),
        },
        _ => return Err("orderLines is required".to_owned()),
    };
    if lines_value.is_empty() {
        return Err("orderLines is required".to_owned());
    }
    if lines_value.len() > MAX_LINES {
        return Err(format!(
            "An order may have at most {MAX_LINES} order lines; got {}",
            lines_value.len()
        ));
    }

    let mut lines = Vec::with_capacity(lines_value.len());
    for (i, line) in lines_value.iter_mut().enumerate() {
        let Some(line_obj) = line.as_object_mut() else {
            return Err(format!("orderLines[{i}] must be an object"));
        };
        let sku = line_obj
            .get("item")
            .and_then(|v| v.pointer("/businessKey/number"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("orderLines[{i}].item.businessKey.number is required"))?
            .to_owned();
        if let Some(items) = rules.items
            && !items.contains_key(&sku)
        {
            return Err(format!("Item {sku} not found"));
        }
        let quantity = match line_obj.get("orderPackQuantity") {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("orderLines[{i}].orderPackQuantity is required"))?;
        if quantity.is_nan() || quantity <= 0.0 {
            return Err(format!(
                "orderLines[{i}].orderPackQuantity must be greater than 0"
            ));
        }
        let line_number = match line_obj.get("lineNumber") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => (i + 1).to_string(),
        };
        if lines
            .iter()
            .any(|l: &SalesOrderLine| l.line_number == line_number)
        {
            return Err(format!("Duplicate lineNumber {line_number}"));
        }
        let customer_line_number = line_obj
            .get("customerLineNumber")
            .or_else(|| {
                line_obj
                    .get("orderLineDetails")
                    .and_then(|d| d.get("customerLineNumber"))
            })
            .and_then(Value::as_str)
            .map(str::to_owned);
        // Same id as the shipment renderer gives this order line.
        let id = stable_id(&["orderLine", rules.business_unit, &number, &line_number]);
        line_obj.insert("id".to_owned(), json!(id));
        line_obj.insert("lineNumber".to_owned(), json!(line_number));
        lines.push(SalesOrderLine {
            id,
            line_number,
            sku,
            quantity,
            customer_line_number,
            canceled_quantity: 0.0,
            shipped_quantity: 0.0,
            back_ordered: 0.0,
            status: new_status(),
        });
    }
    // One form for the stored body, whichever the client sent.
    let rows = std::mem::take(lines_value);
    obj.insert("orderLines".to_owned(), Value::Array(rows));

    let id = stable_id(&["order", rules.business_unit, &number]);
    obj.insert("self".to_owned(), json!({ "id": id }));
    let customer_order_number = obj
        .get("customerOrderNumber")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let order_status = obj
        .get("orderStatus")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(ValidOrder {
        number,
        customer_order_number,
        order_status,
        lines,
        body: order,
    })
}

/// The order as `GET` shows it: `orderLines` as a collection, truncated to `limit` rows.
pub(crate) fn order_json(order: &SalesOrderRecord, limit: usize) -> Value {
    let mut body = order.body.clone();
    let lines: Vec<Value> = order_lines_json(order);
    let total = lines.len();
    let shown: Vec<Value> = lines.into_iter().take(limit).collect();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("orderStatus".to_owned(), json!(order.status));
        obj.insert(
            "orderLines".to_owned(),
            json!({
                "data": shown,
                "links": [],
                "complete": shown.len() == total,
                "pages": if limit == 0 { 1 } else { total.div_ceil(limit).max(1) },
            }),
        );
        obj.insert(
            "createdDate".to_owned(),
            json!(order.created_date.to_string()),
        );
        obj.insert(
            "updatedDate".to_owned(),
            json!(order.updated_date.to_string()),
        );
    }
    body
}

/// The order lines as Deposco shows them: each as last posted, with its id,
/// quantities and `orderLineStatus` as they are now.
pub(crate) fn order_lines_json(order: &SalesOrderRecord) -> Vec<Value> {
    let posted: &[Value] = match order.body.get("orderLines") {
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    order
        .lines
        .iter()
        .map(|line| {
            let mut row = posted
                .iter()
                .find(|r| r.get("lineNumber").and_then(Value::as_str) == Some(&line.line_number))
                .cloned()
                .unwrap_or_else(|| json!({ "item": { "businessKey": { "number": line.sku } } }));
            if let Some(obj) = row.as_object_mut() {
                obj.insert("id".to_owned(), json!(line.id));
                obj.insert("lineNumber".to_owned(), json!(line.line_number));
                obj.insert("orderPackQuantity".to_owned(), quantity_json(line.quantity));
                obj.insert(
                    "canceledPackQuantity".to_owned(),
                    quantity_json(line.canceled_quantity),
                );
                obj.insert(
                    "shippedPackQuantity".to_owned(),
                    quantity_json(line.shipped_quantity),
                );
                obj.insert("orderLineStatus".to_owned(), json!(line.status));
            }
            row
        })
        .collect()
}

/// Whole quantities as integers, as Deposco's examples show them.
fn quantity_json(q: f64) -> Value {
    if q.fract() == 0.0 && q.abs() < 1e15 {
        // Whole and in range: exact as an integer.
        #[allow(clippy::cast_possible_truncation)]
        let whole = q as i64;
        json!(whole)
    } else {
        json!(q)
    }
}

/// Ships every line of `order` in full (less cancelled units; lines cancelled
/// in full are left out) in one package; kit items (registered with
/// components) become component lines pointing at the kit line.
pub(crate) fn ship_in_full(
    order: &SalesOrderRecord,
    items: &BTreeMap<String, ItemSpec>,
    tracking: &str,
) -> ShipmentSpec {
    let mut spec = ShipmentSpec::new(order.number.clone());
    spec.customer_order_number = order.customer_order_number.clone();
    spec.tracking_number = Some(tracking.to_owned());
    let suffix: Vec<char> = tracking.chars().rev().take(7).collect();
    let lpn: String = suffix.into_iter().rev().collect();
    let mut package = PackageSpec::new(format!("LPN{lpn}"), tracking);
    let mut next_component_line = order
        .lines
        .iter()
        .filter_map(|l| l.line_number.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    for (i, line) in order.lines.iter().enumerate() {
        if line.quantity - line.canceled_quantity <= 0.0 {
            continue;
        }
        let line_number = line
            .line_number
            .parse::<u32>()
            .unwrap_or(u32::try_from(i + 1).unwrap_or(u32::MAX));
        // Quantities are whole units in practice; a fractional pack quantity rounds down.
        let quantity = (line.quantity - line.canceled_quantity) as u32;
        match items
            .get(&line.sku)
            .filter(|item| !item.components.is_empty())
        {
            Some(kit_item) => {
                let kit = KitSpec {
                    kit_line_number: line_number,
                    kit_sku: line.sku.clone(),
                    kit_ordered: quantity,
                    kit_customer_line_number: line.customer_line_number.clone(),
                };
                for component in &kit_item.components {
                    let n = next_component_line;
                    next_component_line += 1;
                    let units = component.quantity * quantity;
                    spec.lines
                        .push(LineSpec::new(n, component.sku.clone(), units).kit(kit.clone()));
                    package.lines.push((n, units));
                }
            }
            None => {
                let mut l = LineSpec::new(line_number, line.sku.clone(), quantity);
                l.customer_line_number = line.customer_line_number.clone();
                spec.lines.push(l);
                package.lines.push((line_number, quantity));
            }
        }
    }
    spec.packages.push(package);
    spec
}

/// Units shipped per order line number by `shipments` of one order (only
/// those whose status is `Shipped`). A kit line counts whole kits: the least
/// any of its component lines shipped, in kits.
pub(crate) fn shipped_units<'a>(
    shipments: impl Iterator<Item = &'a ShipmentSpec>,
) -> BTreeMap<String, f64> {
    let mut shipped: BTreeMap<String, f64> = BTreeMap::new();
    for spec in shipments.filter(|s| s.status.eq_ignore_ascii_case("Shipped")) {
        let mut kits: BTreeMap<u32, f64> = BTreeMap::new();
        for line in &spec.lines {
            match &line.kit {
                Some(kit) if line.ordered > 0 => {
                    let whole = (f64::from(line.shipped) * f64::from(kit.kit_ordered)
                        / f64::from(line.ordered))
                    .floor();
                    let entry = kits.entry(kit.kit_line_number).or_insert(whole);
                    *entry = entry.min(whole);
                }
                Some(_) => {}
                None => {
                    *shipped.entry(line.line_number.to_string()).or_default() +=
                        f64::from(line.shipped);
                }
            }
        }
        for (kit_line, units) in kits {
            *shipped.entry(kit_line.to_string()).or_default() += units;
        }
    }
    shipped
}
