//! What the client returns, and the pure pieces of reading Deposco's JSON:
//! collections and their `next` links, dates, item components.

use jiff::Timestamp;
use serde_json::{Value, json};
use shipsync_core::ShipmentVersion;

use super::DeposcoError;
use crate::webhook::{ParseError, parse_json_value};

/// One page of `GET /shipments/outboundShipments`.
#[derive(Debug, Clone)]
pub struct ShipmentPage {
    /// The shipments of the page that parsed, in Deposco's order (newest first).
    pub shipments: Vec<PulledShipment>,
    /// Records of the page that did not parse: keep them for the user
    /// (`needs_attention`) rather than dropping them silently.
    pub failed: Vec<FailedShipment>,
    /// The `next` link, absolute (it carries `searchId`): pass it to
    /// [`super::DeposcoClient::shipments_page`] for the next page. `None` when
    /// the search is complete.
    pub next: Option<String>,
    /// Deposco says this is the last page (or gave no `next` link).
    pub complete: bool,
    /// Records on the page as Deposco sent them (`shipments` + `failed`).
    pub raw_count: usize,
}

/// A shipment read from the REST API, with its full line list.
#[derive(Debug, Clone)]
pub struct PulledShipment {
    pub version: ShipmentVersion,
    /// `updatedDate`, parsed (for the pull cursor and the client-side
    /// `updatedAfter` filter: Deposco may ignore filters).
    pub updated_date: Option<Timestamp>,
    /// The record as read, truncated nested lists replaced by the full ones
    /// (what was parsed; kept for the record and for re-deriving).
    pub raw: Value,
}

/// A shipment record that [`crate::webhook::parse_json_value`] refused.
#[derive(Debug, Clone)]
pub struct FailedShipment {
    /// Its number, when it has one.
    pub number: Option<String>,
    pub updated_date: Option<Timestamp>,
    pub raw: Value,
    pub error: ParseError,
}

/// An item (`ItemDTO`); a kit when it has components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub number: String,
    /// The kit recipe: component SKU and units per one kit.
    pub components: Vec<KitComponent>,
    pub kit_order_only: bool,
    pub kit_stock_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitComponent {
    pub sku: String,
    /// Units of `sku` in one unit of the kit.
    pub quantity: u64,
}

/// One line of a sales order (`SalesOrderLineDTO`) with its quantities, as
/// needed to cancel or change it.
///
/// **Assumption** (orders-lifecycle.md lists the fields, not their
/// arithmetic): `order_pack_quantity` stays what was ordered and cancelled
/// units are counted in `canceled_pack_quantity`, so the units still to ship
/// are [`Self::open_quantity`]. A quantity Deposco leaves out is read as 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesOrderLine {
    /// Deposco's id of the line: what a cancellation names.
    pub id: String,
    /// `lineNumber`, as shipsync numbered the line when it posted the order.
    pub line_number: String,
    pub sku: String,
    /// The store's line id shipsync sent (`customerLineNumber`).
    pub customer_line_number: Option<String>,
    pub order_pack_quantity: f64,
    pub canceled_pack_quantity: f64,
    pub shipped_pack_quantity: f64,
    /// `orderLineStatus` (New, Back Ordered, Released, Partial Released,
    /// Picking, Complete, Canceled), when Deposco gives it.
    pub status: Option<String>,
}

impl SalesOrderLine {
    /// Units neither cancelled nor shipped: the most a cancellation can take.
    pub fn open_quantity(&self) -> f64 {
        (self.order_pack_quantity - self.canceled_pack_quantity - self.shipped_pack_quantity)
            .max(0.0)
    }
}

/// `{"data":[…], "links":[{"rel","href"}], "complete": bool}`.
pub(crate) struct Collection {
    pub data: Vec<Value>,
    /// The raw `next` href, when the collection is not complete.
    pub next: Option<String>,
    pub complete: bool,
}

impl Collection {
    pub(crate) fn parse(value: Value) -> Result<Self, DeposcoError> {
        let Value::Object(mut obj) = value else {
            return Err(DeposcoError::Malformed(format!(
                "a collection must be a JSON object with data[], got {}",
                kind(&value)
            )));
        };
        let data = match obj.remove("data") {
            Some(Value::Array(rows)) => rows,
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                return Err(DeposcoError::Malformed(format!(
                    "collection data is {} instead of a list",
                    kind(&other)
                )));
            }
        };
        let next = next_href(obj.get("links"));
        // Deposco: continue until `complete` is true or there is no next link.
        let complete = obj
            .get("complete")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || next.is_none();
        Ok(Self {
            data,
            next: if complete { None } else { next },
            complete,
        })
    }
}

fn next_href(links: Option<&Value>) -> Option<String> {
    let links = match links? {
        Value::Array(list) => list.iter().collect::<Vec<_>>(),
        single @ Value::Object(_) => vec![single],
        _ => return None,
    };
    links
        .into_iter()
        .find(|l| {
            l.get("rel")
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case("next"))
        })
        .and_then(|l| l.get("href"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A single record may come bare or wrapped (`{"outboundShipment": …}`).
pub(crate) fn unwrap_record(value: Value, wrapper: &str) -> Value {
    match value {
        Value::Object(mut obj) if obj.len() == 1 && obj.contains_key(wrapper) => {
            obj.remove(wrapper).unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Text of an id or number that may be a JSON string or number (`42.0` → `42`).
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// Deposco's id of a record: `self.id`, else `id`.
pub(crate) fn record_id(record: &Value) -> Option<String> {
    text(record.pointer("/self/id")).or_else(|| text(record.get("id")))
}

/// A record's number: `number`, else `businessKey.number`, else `key`.
pub(crate) fn record_number(record: &Value, key: &str) -> Option<String> {
    text(record.get("number"))
        .or_else(|| text(record.pointer("/businessKey/number")))
        .or_else(|| text(record.get(key)))
}

/// A nested collection (`shipmentLines`, `orderLines`) that Deposco cut short.
pub(crate) fn is_truncated(record: &Value, field: &str) -> bool {
    record
        .get(field)
        .and_then(|c| c.get("complete"))
        .and_then(Value::as_bool)
        == Some(false)
}

/// Replaces a truncated nested collection with the full list.
pub(crate) fn splice(record: &mut Value, field: &str, rows: Vec<Value>) {
    if let Some(obj) = record.as_object_mut() {
        obj.insert(
            field.to_owned(),
            json!({ "data": rows, "links": [], "complete": true, "pages": 1 }),
        );
    }
}

/// Deposco dates: RFC 3339 (`Z` or an offset, with or without fractions,
/// `+0000` too), a date-time without offset (UTC), or epoch milliseconds.
pub(crate) fn timestamp(v: Option<&Value>) -> Option<Timestamp> {
    match v? {
        Value::String(s) => parse_time(s.trim()),
        Value::Number(n) => {
            let n = n.as_i64()?;
            // Seconds would be before 1973 as milliseconds: tell them apart.
            if n.abs() >= 100_000_000_000 {
                Timestamp::from_millisecond(n).ok()
            } else {
                Timestamp::from_second(n).ok()
            }
        }
        _ => None,
    }
}

fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let utc = |dt: jiff::civil::DateTime| dt.to_zoned(jiff::tz::TimeZone::UTC).ok();
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(utc)
        .map(|z| z.timestamp())
}

/// `updatedAfter` as sent: RFC 3339 to the second, rounded down (the caller
/// overlaps its cursor anyway; rounding down never skips a shipment).
pub(crate) fn query_time(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// A shipment record (nested lines already complete) → what the pull returns.
pub(crate) fn pulled(raw: Value) -> Result<PulledShipment, FailedShipment> {
    let updated_date = timestamp(raw.get("updatedDate"));
    let parsed = parse_json_value(&raw).and_then(|mut versions| {
        if versions.len() == 1 {
            Ok(versions.remove(0))
        } else {
            Err(ParseError::Unmapped(format!(
                "one shipment record gave {} shipments",
                versions.len()
            )))
        }
    });
    match parsed {
        Ok(version) => Ok(PulledShipment {
            version,
            updated_date,
            raw,
        }),
        Err(error) => Err(FailedShipment {
            number: record_number(&raw, "shipmentNumber"),
            updated_date,
            raw,
            error,
        }),
    }
}

/// A number that may come as a JSON number or a numeric string.
fn quantity(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|q| q.is_finite())
}

/// `SalesOrderLineDTO` → [`SalesOrderLine`]; `Err` says what is missing.
pub(crate) fn sales_order_line(row: &Value) -> Result<SalesOrderLine, String> {
    let id = record_id(row).ok_or("no id")?;
    let line_number = text(row.get("lineNumber"))
        .or_else(|| text(row.pointer("/businessKey/lineNumber")))
        .ok_or_else(|| format!("line {id}: no lineNumber"))?;
    let sku = row
        .get("item")
        .and_then(|item| {
            text(item.pointer("/businessKey/number")).or_else(|| text(item.get("number")))
        })
        .ok_or_else(|| format!("line {id}: no item number"))?;
    let order_pack_quantity = quantity(row.get("orderPackQuantity"))
        .ok_or_else(|| format!("line {id}: no orderPackQuantity"))?;
    Ok(SalesOrderLine {
        customer_line_number: text(row.get("customerLineNumber"))
            .or_else(|| text(row.pointer("/orderLineDetails/customerLineNumber"))),
        order_pack_quantity,
        canceled_pack_quantity: quantity(row.get("canceledPackQuantity")).unwrap_or(0.0),
        shipped_pack_quantity: quantity(row.get("shippedPackQuantity")).unwrap_or(0.0),
        status: text(row.get("orderLineStatus")),
        id,
        line_number,
        sku,
    })
}

/// The `OrderCancellationDTO` for `(order line id, units)`: `None` when
/// there are no lines (the whole order). Numeric ids go as numbers, whole
/// units as integers (the DTO's `canceledPackQuantity` is an integer).
pub(crate) fn cancellation_body(lines: &[(String, Option<f64>)]) -> Option<Value> {
    if lines.is_empty() {
        return None;
    }
    let rows: Vec<Value> = lines
        .iter()
        .map(|(id, units)| {
            let id = id.trim();
            let id = id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n));
            let mut row = json!({ "orderLine": { "id": id } });
            if let (Some(units), Some(obj)) = (units, row.as_object_mut()) {
                obj.insert("canceledPackQuantity".into(), whole_as_integer(*units));
            }
            row
        })
        .collect();
    Some(json!({ "orderLines": rows }))
}

fn whole_as_integer(q: f64) -> Value {
    if q.fract() == 0.0 && q.abs() < 1e15 {
        // Whole and in range: exact as an integer.
        #[allow(clippy::cast_possible_truncation)]
        let whole = q as i64;
        json!(whole)
    } else {
        json!(q)
    }
}

/// `ItemDTO` → [`Item`]. `number` is what was asked for, used when the
/// record does not repeat it.
pub(crate) fn item(record: &Value, number: &str) -> Result<Item, DeposcoError> {
    let components = match record.get("components") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(Value::Object(obj)) => match obj.get("data") {
            Some(Value::Array(list)) => list.iter().collect(),
            _ => vec![record.get("components").unwrap_or(&Value::Null)],
        },
        Some(other) => {
            return Err(DeposcoError::Malformed(format!(
                "item {number}: components is {}",
                kind(other)
            )));
        }
    };
    let components = components
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            component(c).map_err(|e| {
                DeposcoError::Malformed(format!("item {number}: components[{i}]: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let flag = |name: &str| record.get(name).and_then(Value::as_bool).unwrap_or(false);
    Ok(Item {
        number: record_number(record, "itemNumber").unwrap_or_else(|| number.to_owned()),
        components,
        kit_order_only: flag("kitOrderOnly"),
        kit_stock_only: flag("kitStockOnly"),
    })
}

fn component(c: &Value) -> Result<KitComponent, String> {
    let sub = c
        .get("subComponent")
        .or_else(|| c.get("item"))
        .or_else(|| c.get("component"));
    let sku = sub
        .and_then(|s| {
            text(s.pointer("/businessKey/number"))
                .or_else(|| text(s.get("number")))
                .or_else(|| text(s.get("itemNumber")))
        })
        .ok_or("no subComponent item number")?;
    let quantity = match c.get("quantity") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{sku}: no quantity"))?;
    if !(quantity >= 1.0 && quantity.fract() == 0.0 && quantity <= 1e9) {
        return Err(format!(
            "{sku}: quantity {quantity} is not a whole number of units"
        ));
    }
    // Checked above: a whole number from 1 to 10⁹.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let quantity = quantity as u64;
    Ok(KitComponent { sku, quantity })
}

/// The message Deposco put in an error answer: `errors[].errorMessage`
/// (joined), else an OAuth `error_description`/`error`, else `message`, else
/// the start of the body.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let messages: Vec<String> = value
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| {
                        text(e.get("errorMessage"))
                            .or_else(|| text(e.get("message")))
                            .or_else(|| e.as_str().map(str::to_owned))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
        for key in ["error_description", "error", "message", "errorMessage"] {
            if let Some(m) = text(value.get(key)) {
                return Some(m);
            }
        }
    }
    let body = String::from_utf8_lossy(body);
    let body = body.trim();
    (!body.is_empty()).then(|| body.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_next_and_complete() {
        let c = Collection::parse(json!({
            "data": [{"a": 1}], "complete": false,
            "links": [{"rel": "self", "href": "x"}, {"rel": "next", "href": "http://h/p?searchId=1&page=2"}]
        }))
        .unwrap();
        assert_eq!(c.data.len(), 1);
        assert_eq!(c.next.as_deref(), Some("http://h/p?searchId=1&page=2"));
        assert!(!c.complete);

        // complete wins over a stray next link; no next link means complete.
        let c = Collection::parse(json!({"data": [], "complete": true,
            "links": [{"rel": "next", "href": "x"}]}))
        .unwrap();
        assert!(c.complete && c.next.is_none());
        let c = Collection::parse(json!({"data": [], "links": []})).unwrap();
        assert!(c.complete);

        assert!(Collection::parse(json!([1])).is_err());
        assert!(Collection::parse(json!({"data": 3})).is_err());
    }

    #[test]
    fn dates() {
        let t = |s: &str| timestamp(Some(&json!(s))).map(|t| t.as_second());
        let expected = Some(1_780_003_445);
        assert_eq!(t("2026-05-28T21:24:05Z"), expected);
        assert_eq!(t("2026-05-28T21:24:05.000Z"), expected);
        assert_eq!(t("2026-05-28T23:24:05+02:00"), expected);
        assert_eq!(t("2026-05-28T21:24:05+0000"), expected);
        assert_eq!(t("2026-05-28T21:24:05"), expected);
        assert_eq!(
            timestamp(Some(&json!(1_780_003_445_000_i64))).map(|t| t.as_second()),
            expected
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(
            query_time("2026-05-28T21:24:05.9Z".parse().unwrap()),
            "2026-05-28T21:24:05Z"
        );
    }

    #[test]
    fn items_and_components() {
        let record = json!({
            "businessKey": {"number": "GIFTSET-01"}, "kitOrderOnly": true,
            "components": [
                {"subComponent": {"businessKey": {"number": "CANDLE-VAN"}}, "quantity": 1},
                {"subComponent": {"businessKey": {"number": "SOAP-LAV"}}, "quantity": "2.0"}
            ]
        });
        let item = item(&record, "GIFTSET-01").unwrap();
        assert_eq!(item.number, "GIFTSET-01");
        assert!(item.kit_order_only);
        assert_eq!(
            item.components,
            vec![
                KitComponent {
                    sku: "CANDLE-VAN".into(),
                    quantity: 1
                },
                KitComponent {
                    sku: "SOAP-LAV".into(),
                    quantity: 2
                },
            ]
        );
        let bad = json!({"components": [{"subComponent": {"number": "X"}, "quantity": 1.5}]});
        assert!(
            matches!(super::item(&bad, "K"), Err(DeposcoError::Malformed(m)) if m.contains("1.5"))
        );
        let plain = super::item(&json!({"number": "MUG"}), "MUG").unwrap();
        assert!(plain.components.is_empty());
    }

    #[test]
    fn error_messages() {
        let m = |b: &str| error_message(b.as_bytes());
        assert_eq!(
            m(r#"{"errors":[{"errorMessage":"Item X not found"},{"errorMessage":"again"}]}"#)
                .as_deref(),
            Some("Item X not found; again")
        );
        assert_eq!(
            m(r#"{"error":"invalid_grant","error_description":"revoked"}"#).as_deref(),
            Some("revoked")
        );
        assert_eq!(m("  ").as_deref(), None);
        assert_eq!(m("Bad Gateway").as_deref(), Some("Bad Gateway"));
    }

    #[test]
    fn sales_order_lines() {
        let line = sales_order_line(&json!({
            "id": 123456789, "lineNumber": "2",
            "item": {"businessKey": {"number": "MUG"}},
            "customerLineNumber": "gid://shopify/LineItem/9",
            "orderPackQuantity": 3, "canceledPackQuantity": "1.0", "shippedPackQuantity": 1,
            "orderLineStatus": "Released"
        }))
        .unwrap();
        assert_eq!(line.id, "123456789");
        assert_eq!(line.line_number, "2");
        assert_eq!(line.sku, "MUG");
        assert_eq!(
            line.customer_line_number.as_deref(),
            Some("gid://shopify/LineItem/9")
        );
        assert_eq!(line.open_quantity(), 1.0);
        assert_eq!(line.status.as_deref(), Some("Released"));

        // Deposco's other spellings; absent quantities are 0.
        let line = sales_order_line(&json!({
            "self": {"id": 5}, "businessKey": {"lineNumber": 1},
            "item": {"number": "A"}, "orderPackQuantity": 2,
            "orderLineDetails": {"customerLineNumber": "c"}
        }))
        .unwrap();
        assert_eq!((line.id.as_str(), line.line_number.as_str()), ("5", "1"));
        assert_eq!(line.customer_line_number.as_deref(), Some("c"));
        assert_eq!(line.open_quantity(), 2.0);
        assert_eq!(line.status, None);

        assert!(sales_order_line(&json!({"lineNumber": "1"})).is_err());
        let no_quantity = json!({"id": 1, "lineNumber": "1", "item": {"number": "A"}});
        assert!(
            sales_order_line(&no_quantity)
                .unwrap_err()
                .contains("orderPackQuantity")
        );
    }

    #[test]
    fn cancellation_bodies() {
        assert_eq!(cancellation_body(&[]), None);
        assert_eq!(
            cancellation_body(&[("17".into(), Some(2.0)), ("x-1".into(), None)]),
            Some(json!({"orderLines": [
                {"orderLine": {"id": 17}, "canceledPackQuantity": 2},
                {"orderLine": {"id": "x-1"}}
            ]}))
        );
    }

    #[test]
    fn wrapped_and_ids() {
        let v = unwrap_record(
            json!({"outboundShipment": {"self": {"id": 7.0}}}),
            "outboundShipment",
        );
        assert_eq!(record_id(&v).as_deref(), Some("7"));
        assert!(is_truncated(
            &json!({"shipmentLines": {"complete": false}}),
            "shipmentLines"
        ));
        assert!(!is_truncated(
            &json!({"shipmentLines": []}),
            "shipmentLines"
        ));
    }
}
