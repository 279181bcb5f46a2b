//! The Deposco sales order shipsync posts for a store order.

use serde_json::{Map, Value, json};
use shipsync_core::mappings::{Mappings, ShipTarget, ShippingLine};
use shipsync_shopify::{ShippingAddress, StoreOrderForWarehouse};

/// Deposco takes at most this many lines per sales order.
const MAX_LINES: usize = 100;

/// The Deposco order number of a store order: the name without `#`, after
/// the connection's prefix.
pub fn warehouse_number(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.trim().trim_start_matches('#'))
}

/// The store order's shipping line as the merchant's ship-method rules read
/// it; `None` when the order has none (nothing to map: no `shipVia` sent).
pub fn shipping_line(o: &StoreOrderForWarehouse) -> Option<ShippingLine> {
    let line = ShippingLine {
        title: o.shipping_method.clone(),
        code: o.shipping_code.clone(),
        carrier_identifier: o.shipping_carrier_identifier.clone(),
        source: o.shipping_source.clone(),
    };
    (line != ShippingLine::default()).then_some(line)
}

/// Where a mapped ship method goes in Deposco's `SalesOrderDTO` (see
/// ../shared/docs/orders-lifecycle.md, "Deposco" — `shipVia`, and the
/// carrier and service a shipment later reports back as `shipVendor` and
/// `shipMethod`): `shipVia` always, `shipVendor` for the carrier and
/// `shipMethod` for the service when the rule gives them. The one place
/// these field names are assumed.
fn insert_ship_target(dto: &mut Map<String, Value>, t: &ShipTarget) {
    dto.insert("shipVia".into(), json!(t.ship_via));
    if let Some(carrier) = &t.carrier {
        dto.insert("shipVendor".into(), json!(carrier));
    }
    if let Some(service) = &t.service {
        dto.insert("shipMethod".into(), json!(service));
    }
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
        map.insert(key.to_string(), json!(v));
    }
}

fn person_name(a: &ShippingAddress) -> Option<String> {
    a.name.clone().or_else(|| {
        let parts: Vec<&str> = [&a.first_name, &a.last_name]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// The `SalesOrderDTO` shipsync posts for a store order under the
/// merchant's mappings (ship method, item numbers); `Err` says what a
/// person must fix first. Pure: a preview can call it without sending.
pub fn sales_order_dto(
    number: &str,
    business_unit: &str,
    o: &StoreOrderForWarehouse,
    mappings: &Mappings,
) -> Result<Value, String> {
    let a = o.shipping_address.as_ref().ok_or_else(|| {
        format!(
            "store order {} has no shipping address; Deposco needs one to ship it: add it in the store, then reprocess",
            o.name
        )
    })?;
    let name = person_name(a).or_else(|| a.company.clone());
    let mut contact = Map::new();
    insert_some(&mut contact, "name", name.as_ref());
    insert_some(&mut contact, "firstName", a.first_name.as_ref());
    insert_some(&mut contact, "lastName", a.last_name.as_ref());
    insert_some(&mut contact, "companyName", a.company.as_ref());
    insert_some(&mut contact, "email", o.email.as_ref());
    insert_some(&mut contact, "phone", a.phone.as_ref());
    let mut address = Map::new();
    insert_some(&mut address, "name", name.as_ref());
    insert_some(&mut address, "companyName", a.company.as_ref());
    insert_some(&mut address, "addressLine1", a.address1.as_ref());
    insert_some(&mut address, "addressLine2", a.address2.as_ref());
    insert_some(&mut address, "city", a.city.as_ref());
    insert_some(
        &mut address,
        "stateProvince",
        a.province_code.as_ref().or(a.province.as_ref()),
    );
    insert_some(&mut address, "postalCode", a.zip.as_ref());
    insert_some(
        &mut address,
        "country",
        a.country_code.as_ref().or(a.country.as_ref()),
    );
    insert_some(&mut address, "phone", a.phone.as_ref());
    insert_some(&mut address, "email", o.email.as_ref());
    if !address.contains_key("addressLine1") {
        return Err(format!(
            "the shipping address of store order {} has no street line; fix it in the store, then reprocess",
            o.name
        ));
    }
    let mut lines = Vec::new();
    // A line's number is its position in the store order: stable when the
    // store adds or removes lines later (an edit updates Deposco by it).
    for (position, l) in o
        .line_items
        .iter()
        .enumerate()
        .filter(|(_, l)| l.quantity > 0)
    {
        let sku = l.sku.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            format!(
                "line \"{}\" of store order {} has no SKU, so Deposco cannot know the item: give the variant a SKU in the store, then reprocess",
                l.name, o.name
            )
        })?;
        lines.push(json!({
            "lineNumber": (position + 1).to_string(),
            "item": {"businessKey": {"number": mappings.warehouse_item(sku)}},
            "pack": {"type": "Each", "quantity": 1},
            "orderPackQuantity": l.quantity,
            "customerLineNumber": l.id,
        }));
    }
    if lines.is_empty() {
        return Err(format!(
            "store order {} has nothing left to ship (every line was removed)",
            o.name
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(format!(
            "store order {} has {} lines; Deposco takes at most {MAX_LINES} per order",
            o.name,
            lines.len()
        ));
    }
    let mut dto = Map::new();
    dto.insert(
        "businessUnit".into(),
        json!({"businessKey": {"code": business_unit}}),
    );
    dto.insert("number".into(), json!(number));
    dto.insert("customerOrderNumber".into(), json!(o.name));
    dto.insert("orderStatus".into(), json!("New"));
    dto.insert("shipToContact".into(), Value::Object(contact));
    dto.insert("shipToAddress".into(), Value::Object(address));
    if let Some(line) = shipping_line(o) {
        insert_ship_target(&mut dto, &mappings.ship_methods.target(&line)?);
    }
    dto.insert("orderLines".into(), Value::Array(lines));
    Ok(Value::Object(dto))
}

/// Deposco's id of a sales order it answered with.
pub(super) fn deposco_id(record: &Value) -> Option<String> {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    text(record.pointer("/self/id")).or_else(|| text(record.get("id")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipsync_shopify::StoreLineItem;

    fn order() -> StoreOrderForWarehouse {
        StoreOrderForWarehouse {
            id: "gid://shopify/Order/1".into(),
            name: "#1001".into(),
            updated_at: None,
            email: Some("jo@example.com".into()),
            shipping_address: Some(ShippingAddress {
                first_name: Some("Jo".into()),
                last_name: Some("Doe".into()),
                address1: Some("1 Main St".into()),
                city: Some("Springfield".into()),
                province_code: Some("IL".into()),
                zip: Some("62701".into()),
                country_code: Some("US".into()),
                ..Default::default()
            }),
            shipping_method: Some("Express".into()),
            shipping_code: None,
            shipping_source: None,
            shipping_carrier_identifier: None,
            line_items: vec![
                StoreLineItem {
                    id: "gid://shopify/LineItem/7".into(),
                    sku: Some("A".into()),
                    name: "A".into(),
                    quantity: 2,
                    ordered_quantity: 2,
                    requires_shipping: true,
                    unfulfilled_quantity: Some(2),
                    group: None,
                },
                StoreLineItem {
                    id: "gid://shopify/LineItem/8".into(),
                    sku: Some("B".into()),
                    name: "B".into(),
                    quantity: 0,
                    ordered_quantity: 1,
                    requires_shipping: true,
                    unfulfilled_quantity: Some(0),
                    group: None,
                },
                StoreLineItem {
                    id: "gid://shopify/LineItem/9".into(),
                    sku: Some("C".into()),
                    name: "C".into(),
                    quantity: 1,
                    ordered_quantity: 1,
                    requires_shipping: true,
                    unfulfilled_quantity: Some(1),
                    group: None,
                },
            ],
            cancelled_at: None,
            cancel_reason: None,
            financial_status: Some("PAID".into()),
            fulfillment_status: Some("UNFULFILLED".into()),
            tags: Vec::new(),
            edited: false,
            fulfillment_orders: Vec::new(),
        }
    }

    #[test]
    fn the_dto_carries_the_references_shipments_come_back_with() {
        let dto =
            sales_order_dto("PFX1001", "ACME", &order(), &Mappings::for_new_merchant()).unwrap();
        assert_eq!(dto["number"], "PFX1001");
        assert_eq!(dto["customerOrderNumber"], "#1001");
        assert_eq!(dto["orderStatus"], "New");
        assert_eq!(dto["businessUnit"]["businessKey"]["code"], "ACME");
        assert_eq!(dto["shipToContact"]["name"], "Jo Doe");
        assert_eq!(dto["shipToAddress"]["addressLine1"], "1 Main St");
        assert_eq!(dto["shipToAddress"]["stateProvince"], "IL");
        assert_eq!(dto["shipVia"], "Expedited");
        assert_eq!(dto["shipMethod"], "Expedited");
        let lines = dto["orderLines"].as_array().unwrap();
        // The removed line (quantity 0) is not sent; a line's number is its
        // place in the store order, so that later edits name the same lines.
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["lineNumber"], "1");
        assert_eq!(lines[0]["item"]["businessKey"]["number"], "A");
        assert_eq!(lines[0]["orderPackQuantity"], 2);
        assert_eq!(lines[0]["customerLineNumber"], "gid://shopify/LineItem/7");
        assert_eq!(lines[1]["lineNumber"], "3");
        assert_eq!(lines[1]["customerLineNumber"], "gid://shopify/LineItem/9");
    }

    #[test]
    fn what_deposco_cannot_take_is_refused_with_a_reason() {
        let mut o = order();
        o.line_items[0].sku = None;
        assert!(
            sales_order_dto("1001", "ACME", &o, &Mappings::for_new_merchant())
                .unwrap_err()
                .contains("has no SKU")
        );
        let mut o = order();
        o.shipping_address = None;
        assert!(
            sales_order_dto("1001", "ACME", &o, &Mappings::for_new_merchant())
                .unwrap_err()
                .contains("no shipping address")
        );
    }

    #[test]
    fn the_merchants_mappings_decide_ship_method_and_item_numbers() {
        let m: Mappings = serde_json::from_value(json!({
            "ship_methods": {"rules": [{"match": {"code": "ups_2day"}, "ship_via": "UPS 2nd Day Air",
                                        "carrier": "UPS", "service": "2 Day"}]},
            "sku_aliases": [{"store_sku": "A", "warehouse_item": "100234"}]
        }))
        .unwrap();
        let mut o = order();
        o.shipping_method = Some("Two days".into());
        o.shipping_code = Some("UPS_2DAY".into());
        let dto = sales_order_dto("1001", "ACME", &o, &m).unwrap();
        assert_eq!(dto["shipVia"], "UPS 2nd Day Air");
        assert_eq!(dto["shipVendor"], "UPS");
        assert_eq!(dto["shipMethod"], "2 Day");
        let lines = dto["orderLines"].as_array().unwrap();
        assert_eq!(lines[0]["item"]["businessKey"]["number"], "100234");
        assert_eq!(lines[1]["item"]["businessKey"]["number"], "C");
        // A method no rule takes, without a default: refused with the reason
        // the order's error shows; no shipping line at all: no shipVia.
        o.shipping_code = Some("pickup".into());
        let err = sales_order_dto("1001", "ACME", &o, &m).unwrap_err();
        assert!(err.contains("unmapped shipping method 'Two days'"), "{err}");
        o.shipping_method = None;
        o.shipping_code = None;
        let dto = sales_order_dto("1001", "ACME", &o, &m).unwrap();
        assert!(dto.get("shipVia").is_none());
        assert_eq!(warehouse_number("PFX", "#1001"), "PFX1001");
        assert_eq!(warehouse_number("", "1001"), "1001");
    }
}
