//! Turns a stored shipment into Deposco's shapes: the current REST DTO
//! (`OutboundShipmentDTO`), the integration-API XML (`Shipment.xsd`) and its
//! JSON mirror. The field layout follows `docs/deposco.md` and the fixtures in
//! `crates/shipsync-deposco/tests/fixtures/`; this code is written from those
//! documents alone, independently of the product's parser.

use std::cell::Cell;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::spec::{PackageSpec, ShipmentRecord};

/// The body shapes a shipment webhook can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A bare `OutboundShipmentDTO`.
    Current,
    /// `{"outboundShipment": …}`.
    Wrapped,
    /// `{"data": […]}`.
    #[serde(rename = "data", alias = "data_list")]
    DataList,
    /// Integration-API XML, `<shipments xmlns="http://integration.deposco.com/shipment">`.
    Xml,
    /// The JSON mirror of the XML, `{"shipments":{"shipment":[…]}}`.
    Mirror,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Current,
        Shape::Wrapped,
        Shape::DataList,
        Shape::Xml,
        Shape::Mirror,
    ];

    /// The name used by the control endpoint and the CLI: `current`, `wrapped`, `data`, `xml`, `mirror`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Current => "current",
            Shape::Wrapped => "wrapped",
            Shape::DataList => "data",
            Shape::Xml => "xml",
            Shape::Mirror => "mirror",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Shape::Xml => "application/xml",
            _ => "application/json",
        }
    }
}

impl std::str::FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Shape::ALL
            .into_iter()
            .find(|shape| shape.name() == s || (s == "data_list" && *shape == Shape::DataList))
            .ok_or_else(|| {
                format!("unknown shape {s:?}; use current, wrapped, data, xml or mirror")
            })
    }
}

/// How JSON quantities are written. Live Deposco sometimes sends `2.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantityStyle {
    /// `2`
    #[default]
    Integer,
    /// `2.0`
    Float,
    /// Alternating `2` and `2.0` within a body (deterministic, so failures reproduce).
    Mixed,
}

pub(crate) const XML_NAMESPACE: &str = "http://integration.deposco.com/shipment";
const XSI_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Rendering options that come from the sandbox configuration.
pub(crate) struct Renderer<'a> {
    pub business_unit: &'a str,
    pub quantities: QuantityStyle,
    /// In the mirror, write a single child as an object instead of a one-element list.
    pub mirror_collapse_single: bool,
    toggle: Cell<bool>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(
        business_unit: &'a str,
        quantities: QuantityStyle,
        mirror_collapse_single: bool,
    ) -> Self {
        Self {
            business_unit,
            quantities,
            mirror_collapse_single,
            toggle: Cell::new(false),
        }
    }

    fn qty(&self, n: u32) -> Node {
        let float = match self.quantities {
            QuantityStyle::Integer => false,
            QuantityStyle::Float => true,
            QuantityStyle::Mixed => {
                let t = !self.toggle.get();
                self.toggle.set(t);
                t
            }
        };
        if float {
            Node::Float(f64::from(n))
        } else {
            Node::Int(i64::from(n))
        }
    }

    /// The webhook body for one shipment.
    pub(crate) fn body(&self, record: &ShipmentRecord, shape: Shape) -> Vec<u8> {
        match shape {
            Shape::Current => self.shipment(record, None).to_json_bytes(),
            Shape::Wrapped => Node::obj()
                .with("outboundShipment", self.shipment(record, None))
                .to_json_bytes(),
            Shape::DataList => Node::obj()
                .with("data", vec![self.shipment(record, None)])
                .to_json_bytes(),
            Shape::Xml => self.xml(std::slice::from_ref(record)).into_bytes(),
            Shape::Mirror => self.mirror(std::slice::from_ref(record)).to_json_bytes(),
        }
    }

    /// Several shipments in one body (`Data`, `Xml`, `Mirror`; the single-DTO shapes take the first).
    pub(crate) fn batch_body(&self, records: &[ShipmentRecord], shape: Shape) -> Vec<u8> {
        match shape {
            Shape::DataList => Node::obj()
                .with(
                    "data",
                    records
                        .iter()
                        .map(|r| self.shipment(r, None))
                        .collect::<Vec<_>>(),
                )
                .to_json_bytes(),
            Shape::Xml => self.xml(records).into_bytes(),
            Shape::Mirror => self.mirror(records).to_json_bytes(),
            Shape::Current | Shape::Wrapped => records
                .first()
                .map(|r| self.body(r, shape))
                .unwrap_or_default(),
        }
    }

    /// `OutboundShipmentDTO`. `line_limit` truncates the nested `shipmentLines`
    /// (the REST API does; webhooks carry them all).
    pub(crate) fn shipment(&self, record: &ShipmentRecord, line_limit: Option<usize>) -> Node {
        let spec = &record.spec;
        let lines = self.shipment_lines(record);
        let total = lines.len();
        let shown: Vec<Node> = match line_limit {
            Some(limit) => lines.into_iter().take(limit).collect(),
            None => lines,
        };
        let complete = shown.len() == total;
        let pages = match line_limit {
            Some(limit) if limit > 0 => total.div_ceil(limit).max(1),
            _ => 1,
        };
        let shipment_lines = collection(shown, complete, pages);

        let containers: Vec<Node> = spec
            .packages
            .iter()
            .map(|p| self.container(record, p))
            .collect();
        let container_pages = usize::from(!containers.is_empty());

        let order_header = Node::obj()
            .with(
                "id",
                stable_id(&["order", self.business_unit, &spec.order_number]),
            )
            .with(
                "businessKey",
                Node::obj().with("number", &spec.order_number),
            )
            .with("number", &spec.order_number)
            .with_opt("customerOrderNumber", spec.customer_order_number.as_ref());

        Node::obj()
            .with("self", Node::obj().with("id", record.id))
            .with("number", &record.number)
            .with(
                "businessUnit",
                Node::obj().with("businessKey", Node::obj().with("code", self.business_unit)),
            )
            .with("status", &spec.status)
            .with_opt("shipVendor", spec.ship_vendor.as_ref())
            .with_opt("shipVia", spec.ship_via.as_ref())
            .with_opt("shipMethod", spec.ship_method.as_ref())
            .with_opt("trackingNumber", spec.header_tracking())
            .with_opt("trackingUrl", spec.tracking_url.as_ref())
            .with(
                "shipmentDates",
                Node::obj().with(
                    "actualShipDate",
                    record.actual_ship_date().map(|t| t.to_string()),
                ),
            )
            .with("orderHeaders", collection(vec![order_header], true, 1))
            .with("shipmentLines", shipment_lines)
            .with(
                "shippedContainers",
                collection(containers, true, container_pages),
            )
            .with("createdDate", record.created_date.to_string())
            .with("updatedDate", record.updated_date.to_string())
    }

    /// The shipment lines (all of them), as the sub-resource and the nested list show them.
    pub(crate) fn shipment_lines(&self, record: &ShipmentRecord) -> Vec<Node> {
        let spec = &record.spec;
        let order = spec.order_number.as_str();
        spec.lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let mut order_line = Node::obj()
                    .with(
                        "id",
                        order_line_id(self.business_unit, order, line.line_number),
                    )
                    .with(
                        "businessKey",
                        Node::obj().with("lineNumber", line.line_number.to_string()),
                    );
                if let Some(kit) = &line.kit {
                    order_line = order_line.with(
                        "relatedOrderLine",
                        Node::obj()
                            .with(
                                "id",
                                order_line_id(self.business_unit, order, kit.kit_line_number),
                            )
                            .with(
                                "businessKey",
                                Node::obj().with("lineNumber", kit.kit_line_number.to_string()),
                            )
                            .with("item", item_ref(&kit.kit_sku))
                            .with("orderPackQuantity", self.qty(kit.kit_ordered))
                            .with(
                                "orderLineDetails",
                                Node::obj().with(
                                    "customerLineNumber",
                                    kit.kit_customer_line_number.as_ref(),
                                ),
                            ),
                    );
                }
                Node::obj()
                    .with("number", (i + 1).to_string())
                    .with("orderLine", order_line)
                    .with(
                        "orderLineDetails",
                        Node::obj().with("customerLineNumber", line.customer_line_number.as_ref()),
                    )
                    .with("item", item_ref(&line.sku))
                    .with("orderPackQuantity", self.qty(line.ordered))
                    .with("shippedPackQuantity", self.qty(line.shipped))
            })
            .collect()
    }

    fn container(&self, record: &ShipmentRecord, package: &PackageSpec) -> Node {
        let lines: Vec<Node> = package
            .lines
            .iter()
            .map(|(line_number, quantity)| {
                let sku = record
                    .spec
                    .lines
                    .iter()
                    .find(|l| l.line_number == *line_number)
                    .map_or("", |l| l.sku.as_str());
                Node::obj()
                    .with("item", item_ref(sku))
                    .with("shippedPackQuantity", self.qty(*quantity))
                    .with("externalLineNumber", line_number.to_string())
            })
            .collect();
        Node::obj()
            .with("number", &package.number)
            .with("lpnNumber", package.lpn.as_ref().unwrap_or(&package.number))
            .with("trackingNumber", &package.tracking_number)
            .with_opt("shipVendor", package.ship_vendor.as_ref())
            .with("status", container_status(&record.spec.status))
            .with("shippedContainerLines", lines)
    }

    fn xml(&self, records: &[ShipmentRecord]) -> String {
        let mut x = XmlWriter::default();
        x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.raw(&format!(
            "<shipments xmlns=\"{XML_NAMESPACE}\" xmlns:xsi=\"{XSI_NAMESPACE}\">\n"
        ));
        x.depth = 1;
        for record in records {
            let spec = &record.spec;
            x.open("shipment");
            x.leaf("shipmentNumber", &record.number);
            x.leaf("shipmentStatus", &spec.status);
            x.leaf_opt("shipVendor", spec.ship_vendor.as_deref());
            x.leaf_opt("shipVia", spec.ship_via.as_deref());
            x.leaf_opt("shipMethod", spec.ship_method.as_deref());
            x.leaf_opt("trackingNumber", spec.header_tracking());
            x.leaf_opt(
                "actualShipDate",
                record.actual_ship_date().map(|t| t.to_string()).as_deref(),
            );
            x.open("orders");
            x.open("order");
            x.leaf("orderNumber", &spec.order_number);
            x.leaf_opt("customerOrderNumber", spec.customer_order_number.as_deref());
            x.leaf("orderType", "Sales Order");
            x.leaf("orderStatus", &order_status(record));
            x.open("lines");
            for row in rows(record) {
                x.open("line");
                x.leaf("lineNumber", &row.line_number.to_string());
                x.leaf("lineStatus", &row.status);
                match &row.customer_line_number {
                    Some(c) => x.leaf("customerLineNumber", c),
                    None => x.nil("customerLineNumber"),
                }
                x.leaf("itemNumber", &row.sku);
                x.leaf("orderPackQuantity", &row.ordered.to_string());
                x.leaf("shippedPackQuantity", &row.shipped.to_string());
                x.leaf_opt("trackingNumber", row.tracking.as_deref());
                if let Related::Kit(n) = row.related {
                    x.leaf("relatedLineNumber", &n.to_string());
                }
                if let Some(c) = &row.container {
                    x.open("container");
                    match &c.lpn {
                        Some(lpn) => x.leaf("lpn", lpn),
                        None => x.leaf("number", &c.number),
                    }
                    x.leaf("trackingNumber", &c.tracking_number);
                    x.leaf_opt("shipVendor", c.ship_vendor.as_deref());
                    x.leaf_opt("shipMethod", c.ship_method.as_deref());
                    x.close("container");
                }
                x.close("line");
            }
            x.close("lines");
            x.close("order");
            x.close("orders");
            x.close("shipment");
        }
        x.raw("</shipments>\n");
        x.out
    }

    fn mirror(&self, records: &[ShipmentRecord]) -> Node {
        let nil = || Node::obj().with("@nil", "true");
        let shipments: Vec<Node> = records
            .iter()
            .map(|record| {
                let spec = &record.spec;
                let lines: Vec<Node> = rows(record)
                    .into_iter()
                    .map(|row| {
                        let mut line = Node::obj()
                            .with("lineNumber", row.line_number.to_string())
                            .with("lineStatus", row.status)
                            .with(
                                "customerLineNumber",
                                row.customer_line_number.map_or_else(nil, Node::Str),
                            )
                            .with("itemNumber", row.sku)
                            .with("orderPackQuantity", self.qty(row.ordered))
                            .with("shippedPackQuantity", self.qty(row.shipped))
                            .with_opt("trackingNumber", row.tracking);
                        line = match row.related {
                            Related::Absent => line,
                            Related::NotKit => line.with("relatedLineNumber", nil()),
                            Related::Kit(n) => line.with("relatedLineNumber", n.to_string()),
                        };
                        if let Some(c) = row.container {
                            let container = match c.lpn {
                                Some(lpn) => Node::obj().with("lpn", lpn),
                                None => Node::obj().with("number", c.number),
                            };
                            line = line.with(
                                "container",
                                container
                                    .with("trackingNumber", c.tracking_number)
                                    .with_opt("shipVendor", c.ship_vendor)
                                    .with_opt("shipMethod", c.ship_method),
                            );
                        }
                        line
                    })
                    .collect();
                let order = Node::obj()
                    .with("orderNumber", &spec.order_number)
                    .with_opt("customerOrderNumber", spec.customer_order_number.as_ref())
                    .with("orderType", "Sales Order")
                    .with("orderStatus", order_status(record))
                    .with("lines", Node::obj().with("line", self.many(lines)));
                Node::obj()
                    .with("shipmentNumber", &record.number)
                    .with("shipmentStatus", &spec.status)
                    .with_opt("shipVendor", spec.ship_vendor.as_ref())
                    .with_opt("shipVia", spec.ship_via.as_ref())
                    .with_opt("shipMethod", spec.ship_method.as_ref())
                    .with_opt("trackingNumber", spec.header_tracking())
                    .with_opt(
                        "actualShipDate",
                        record.actual_ship_date().map(|t| t.to_string()),
                    )
                    .with("orders", Node::obj().with("order", self.many(vec![order])))
            })
            .collect();
        Node::obj().with(
            "shipments",
            Node::obj().with("shipment", self.many(shipments)),
        )
    }

    /// A repeated element in the mirror: a list, or a lone object when collapsing.
    fn many(&self, mut items: Vec<Node>) -> Node {
        if self.mirror_collapse_single && items.len() == 1 {
            items.remove(0)
        } else {
            Node::List(items)
        }
    }
}

/// `{"data":[…], "links":[], "complete":…, "pages":…}` as nested in a record.
fn collection(data: Vec<Node>, complete: bool, pages: usize) -> Node {
    Node::obj()
        .with("data", data)
        .with("links", Vec::<Node>::new())
        .with("complete", complete)
        .with("pages", pages as u64)
}

fn item_ref(sku: &str) -> Node {
    Node::obj().with("businessKey", Node::obj().with("number", sku))
}

fn container_status(shipment_status: &str) -> &'static str {
    if shipment_status.eq_ignore_ascii_case("Shipped") {
        "Shipped"
    } else {
        "Packed"
    }
}

fn order_status(record: &ShipmentRecord) -> String {
    let spec = &record.spec;
    if spec.status.eq_ignore_ascii_case("Shipped") {
        if spec.lines.iter().all(|l| l.shipped >= l.ordered) {
            "Complete".to_owned()
        } else {
            "Partially Shipped".to_owned()
        }
    } else {
        spec.status.clone()
    }
}

/// A stable, plausible Deposco id (9 digits) derived from business keys, so
/// the same order line has the same id in every shipment and in sales orders.
pub(crate) fn stable_id(parts: &[&str]) -> u64 {
    // FNV-1a: not for security, only to spread keys over the id space.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    100_000_000 + h % 900_000_000
}

pub(crate) fn order_line_id(business_unit: &str, order_number: &str, line_number: u32) -> u64 {
    stable_id(&[
        "orderLine",
        business_unit,
        order_number,
        &line_number.to_string(),
    ])
}

/// How a row names its kit in the XML (absent) and the mirror (`@nil`) when it is not a component.
enum Related {
    /// The kit's own line: no element at all.
    Absent,
    /// A plain line: XML omits it, the mirror writes `{"@nil":"true"}`.
    NotKit,
    Kit(u32),
}

struct ContainerRef {
    lpn: Option<String>,
    number: String,
    tracking_number: String,
    ship_vendor: Option<String>,
    ship_method: Option<String>,
}

/// One `<line>` of the integration XML.
struct Row {
    line_number: u32,
    status: String,
    customer_line_number: Option<String>,
    sku: String,
    ordered: u32,
    shipped: u32,
    tracking: Option<String>,
    related: Related,
    container: Option<ContainerRef>,
}

/// The XML's line rows: a kit's own line (shipped 0) before its first
/// component, and a line shipped in several containers once per container
/// with its share (plus a container-less row for any units not packed).
fn rows(record: &ShipmentRecord) -> Vec<Row> {
    let spec = &record.spec;
    let status = if spec.status.eq_ignore_ascii_case("Shipped") {
        "Shipped".to_owned()
    } else {
        spec.status.clone()
    };
    let header_tracking = spec.header_tracking().map(str::to_owned);
    let mut kits_seen: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    for line in &spec.lines {
        if let Some(kit) = &line.kit
            && !kits_seen.contains(&kit.kit_line_number)
        {
            kits_seen.push(kit.kit_line_number);
            out.push(Row {
                line_number: kit.kit_line_number,
                status: status.clone(),
                customer_line_number: kit.kit_customer_line_number.clone(),
                sku: kit.kit_sku.clone(),
                ordered: kit.kit_ordered,
                shipped: 0,
                tracking: None,
                related: Related::Absent,
                container: None,
            });
        }
        let row = |shipped: u32, tracking: Option<String>, container: Option<ContainerRef>| Row {
            line_number: line.line_number,
            status: status.clone(),
            customer_line_number: line.customer_line_number.clone(),
            sku: line.sku.clone(),
            ordered: line.ordered,
            shipped,
            tracking,
            related: line
                .kit
                .as_ref()
                .map_or(Related::NotKit, |k| Related::Kit(k.kit_line_number)),
            container,
        };
        let mut packed = 0;
        for package in &spec.packages {
            for &(_, quantity) in package.lines.iter().filter(|(n, _)| *n == line.line_number) {
                packed += quantity;
                out.push(row(
                    quantity,
                    Some(package.tracking_number.clone()),
                    Some(ContainerRef {
                        lpn: package.lpn.clone(),
                        number: package.number.clone(),
                        tracking_number: package.tracking_number.clone(),
                        ship_vendor: package
                            .ship_vendor
                            .clone()
                            .or_else(|| spec.ship_vendor.clone()),
                        ship_method: spec.ship_method.clone(),
                    }),
                ));
            }
        }
        if packed == 0 || line.shipped > packed {
            out.push(row(
                line.shipped.saturating_sub(packed),
                header_tracking.clone(),
                None,
            ));
        }
    }
    out
}

/// Builds indented XML like the fixtures.
#[derive(Default)]
struct XmlWriter {
    out: String,
    depth: usize,
}

impl XmlWriter {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>{}</{name}>", escape(text));
    }

    fn leaf_opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    fn nil(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name} xsi:nil=\"true\"/>");
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LineSpec, ShipmentSpec};
    use serde_json::Value;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../shipsync-deposco/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn record(
        spec: ShipmentSpec,
        id: u64,
        number: &str,
        created: &str,
        updated: &str,
    ) -> ShipmentRecord {
        ShipmentRecord {
            id,
            number: number.to_owned(),
            spec,
            created_date: created.parse().unwrap(),
            updated_date: updated.parse().unwrap(),
        }
    }

    fn simple() -> ShipmentRecord {
        record(
            ShipmentSpec::example_simple(),
            558_214,
            "SHP-100045",
            "2026-11-27T21:14:05Z",
            "2026-11-27T21:14:07Z",
        )
    }

    fn kit() -> ShipmentRecord {
        record(
            ShipmentSpec::example_kit(),
            558_215,
            "SHP-100046",
            "2026-11-27T22:02:41Z",
            "2026-11-27T22:02:44Z",
        )
    }

    /// Ids of orders and order lines are the sandbox's own; everything else must match.
    fn strip_ids(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("businessKey") || map.contains_key("relatedOrderLine") {
                    map.remove("id");
                }
                map.values_mut().for_each(strip_ids);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_ids),
            _ => {}
        }
    }

    fn assert_json_matches(rendered: &[u8], fixture_name: &str) {
        let mut ours: Value = serde_json::from_slice(rendered).unwrap();
        let mut theirs: Value = serde_json::from_str(&fixture(fixture_name)).unwrap();
        strip_ids(&mut ours);
        strip_ids(&mut theirs);
        assert_eq!(
            ours,
            theirs,
            "{fixture_name}:\n{}",
            String::from_utf8_lossy(rendered)
        );
    }

    /// (expanded name, attributes, trimmed text) of an element.
    type Element = (String, Vec<(String, String)>, String);

    /// Every element, in document order.
    fn xml_outline(xml: &str) -> Vec<Element> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        doc.descendants()
            .filter(|n| n.is_element())
            .map(|n| {
                let name = format!(
                    "{{{}}}{}",
                    n.tag_name().namespace().unwrap_or(""),
                    n.tag_name().name()
                );
                let attrs = n
                    .attributes()
                    .map(|a| {
                        (
                            format!("{{{}}}{}", a.namespace().unwrap_or(""), a.name()),
                            a.value().to_owned(),
                        )
                    })
                    .collect();
                let text = n.text().map(str::trim).unwrap_or("").to_owned();
                (name, attrs, text)
            })
            .collect()
    }

    #[test]
    fn every_shape_matches_the_fixtures() {
        let r = Renderer::new("ACME", QuantityStyle::Integer, false);
        for (name, rec) in [("simple", simple()), ("kit", kit())] {
            assert_json_matches(
                &r.body(&rec, Shape::Current),
                &format!("{name}.current.json"),
            );
            assert_json_matches(
                &r.body(&rec, Shape::Wrapped),
                &format!("{name}.wrapped.json"),
            );
            assert_json_matches(&r.body(&rec, Shape::Mirror), &format!("{name}.mirror.json"));
            let ours = String::from_utf8(r.body(&rec, Shape::Xml)).unwrap();
            assert_eq!(
                xml_outline(&ours),
                xml_outline(&fixture(&format!("{name}.xml"))),
                "{name}.xml:\n{ours}"
            );
            let data: Value = serde_json::from_slice(&r.body(&rec, Shape::DataList)).unwrap();
            let current: Value = serde_json::from_slice(&r.body(&rec, Shape::Current)).unwrap();
            assert_eq!(data, serde_json::json!({ "data": [current] }));
        }
    }

    #[test]
    fn shape_names_round_trip() {
        for shape in Shape::ALL {
            assert_eq!(shape.name().parse::<Shape>(), Ok(shape));
            let json = serde_json::to_value(shape).unwrap();
            assert_eq!(json, shape.name());
        }
        assert!("yaml".parse::<Shape>().is_err());
    }

    #[test]
    fn kit_components_share_the_kit_line_id() {
        let r = Renderer::new("ACME", QuantityStyle::Integer, false);
        let v: Value = serde_json::from_slice(&r.body(&kit(), Shape::Current)).unwrap();
        let lines = v
            .pointer("/shipmentLines/data")
            .unwrap()
            .as_array()
            .unwrap();
        let kit_ids: Vec<&Value> = lines
            .iter()
            .map(|l| l.pointer("/orderLine/relatedOrderLine/id").unwrap())
            .collect();
        assert_eq!(kit_ids[0], kit_ids[1]);
        assert_ne!(
            lines[0].pointer("/orderLine/id"),
            lines[1].pointer("/orderLine/id")
        );
    }

    #[test]
    fn float_quantities() {
        let r = Renderer::new("ACME", QuantityStyle::Float, false);
        let v: Value = serde_json::from_slice(&r.body(&simple(), Shape::Current)).unwrap();
        assert_eq!(
            v.pointer("/shipmentLines/data/0/orderPackQuantity")
                .unwrap()
                .to_string(),
            "2.0"
        );
        let r = Renderer::new("ACME", QuantityStyle::Mixed, false);
        let text = String::from_utf8(r.body(&simple(), Shape::Current)).unwrap();
        assert!(
            text.contains("\"orderPackQuantity\": 2.0")
                || text.contains("\"shippedPackQuantity\": 2.0")
        );
        assert!(
            text.contains("\"shippedPackQuantity\": 1\n")
                || text.contains("\"shippedPackQuantity\": 1,")
        );
    }

    #[test]
    fn mirror_can_collapse_single_children() {
        let r = Renderer::new("ACME", QuantityStyle::Integer, true);
        let v: Value = serde_json::from_slice(&r.body(&kit(), Shape::Mirror)).unwrap();
        assert!(
            v.pointer("/shipments/shipment/orders/order/lines/line")
                .unwrap()
                .is_array()
        );
        assert_eq!(
            v.pointer("/shipments/shipment/shipmentNumber").unwrap(),
            "SHP-100046"
        );
    }

    #[test]
    fn no_packages_means_header_tracking_only() {
        let spec = ShipmentSpec::new("2001")
            .tracking("1ZHEADER")
            .line(LineSpec::new(1, "A&B", 3));
        let rec = record(
            spec,
            1,
            "SHP-1",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
        );
        let r = Renderer::new("ACME", QuantityStyle::Integer, false);
        let v: Value = serde_json::from_slice(&r.body(&rec, Shape::Current)).unwrap();
        assert_eq!(v["trackingNumber"], "1ZHEADER");
        assert_eq!(
            v.pointer("/shippedContainers/data").unwrap(),
            &serde_json::json!([])
        );
        let xml = String::from_utf8(r.body(&rec, Shape::Xml)).unwrap();
        assert!(xml.contains("<itemNumber>A&amp;B</itemNumber>"));
        assert!(!xml.contains("<container>"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let shipped: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("shippedPackQuantity"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(shipped, ["3"]);
    }

    #[test]
    fn nested_lines_truncate() {
        let mut spec = ShipmentSpec::new("3001");
        for n in 1..=12 {
            spec.lines.push(LineSpec::new(n, format!("SKU-{n}"), 1));
        }
        let rec = record(
            spec,
            1,
            "SHP-1",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
        );
        let r = Renderer::new("ACME", QuantityStyle::Integer, false);
        let v = r.shipment(&rec, Some(10)).to_value();
        assert_eq!(
            v.pointer("/shipmentLines/data")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            10
        );
        assert_eq!(v.pointer("/shipmentLines/complete").unwrap(), false);
        assert_eq!(v.pointer("/shipmentLines/pages").unwrap(), 2);
    }
}
