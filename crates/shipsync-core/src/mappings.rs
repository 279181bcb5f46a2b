//! A merchant's mappings (issue 15): how the store's shipping methods become
//! Deposco's, which warehouse item a store SKU is, what a kit is made of,
//! and what the store calls a warehouse carrier. One document per merchant
//! (the contract's `GET/PUT/PATCH /api/v1/merchants/{id}/mappings`), checked
//! as a whole: a bad rule is refused naming it, and nothing is applied.
//!
//! Pure: the engine stores the document and applies it when it sends an
//! order (ship method, item numbers), matches a shipment (aliases, recipes)
//! and tells the store (carriers).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ShipmentVersion;
use crate::ledger::Recipes;

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Mappings {
    pub ship_methods: ShipMethods,
    pub sku_aliases: Vec<SkuAlias>,
    pub kit_recipes: Vec<KitRecipe>,
    pub carriers: Vec<CarrierMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ShipMethods {
    /// In order; the first that matches wins.
    pub rules: Vec<ShipMethodRule>,
    /// What an order whose shipping line matches no rule gets; `None`: such
    /// an order goes to `error` until a rule exists.
    pub default: Option<ShipTarget>,
}

/// One rule: a store shipping line's fields → Deposco's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipMethodRule {
    #[serde(rename = "match")]
    pub matches: ShipMatch,
    /// Compare ignoring case and surrounding spaces (default true).
    #[serde(default = "yes")]
    pub case_insensitive: bool,
    pub ship_via: String,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
}

fn yes() -> bool {
    true
}

/// The fields of a store shipping line a rule looks at; `None` matches
/// anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ShipMatch {
    pub title: Option<String>,
    pub code: Option<String>,
    pub carrier_identifier: Option<String>,
    pub source: Option<String>,
}

/// What Deposco gets: `shipVia`, and the carrier and service when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipTarget {
    pub ship_via: String,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
}

/// A store SKU that the warehouse knows under another item number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuAlias {
    pub store_sku: String,
    pub warehouse_item: String,
}

/// A kit (bundle) SKU and what one kit is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitRecipe {
    pub kit_sku: String,
    pub components: Vec<KitComponent>,
    /// Where it came from; a person's wins over a learned one.
    #[serde(default = "person")]
    pub source: RecipeSource,
}

fn person() -> RecipeSource {
    RecipeSource::Person
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitComponent {
    pub sku: String,
    pub quantity: u64,
}

/// Where a kit recipe came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipeSource {
    /// Set by a person (API, UI, import): wins over a learned one.
    Person,
    /// Learned from a Deposco webhook's kit links.
    Webhook,
    /// Learned from Deposco's item data.
    Items,
}

impl RecipeSource {
    /// The word stored and shown (`person`, `webhook`, `items`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Webhook => "webhook",
            Self::Items => "items",
        }
    }
}

impl std::str::FromStr for RecipeSource {
    type Err = crate::states::UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "person" => Ok(Self::Person),
            "webhook" => Ok(Self::Webhook),
            "items" => Ok(Self::Items),
            _ => Err(crate::states::UnknownState {
                what: "RecipeSource",
                value: s.to_string(),
            }),
        }
    }
}

/// What the store calls a warehouse carrier, and where its tracking lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierMapping {
    pub warehouse_carrier: String,
    pub store_company: String,
    /// A URL with `{tracking_number}` where the number goes; `None`: the
    /// store's own link for the company.
    #[serde(default)]
    pub tracking_url_template: Option<String>,
}

/// A store order's shipping line, as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShippingLine {
    pub title: Option<String>,
    pub code: Option<String>,
    pub carrier_identifier: Option<String>,
    pub source: Option<String>,
}

/// Why a document is refused: the rule (a JSON-pointer-like path such as
/// `ship_methods.rules[2]`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub rule: String,
    pub message: String,
}

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

fn refuse(rule: impl Into<String>, message: impl Into<String>) -> MappingError {
    MappingError {
        rule: rule.into(),
        message: message.into(),
    }
}

/// The placeholder of a tracking URL template.
pub const TRACKING_PLACEHOLDER: &str = "{tracking_number}";

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

impl ShipMatch {
    fn fields(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("title", &self.title),
            ("code", &self.code),
            ("carrier_identifier", &self.carrier_identifier),
            ("source", &self.source),
        ]
    }
}

impl ShipMethodRule {
    /// What Deposco gets by this rule.
    pub fn target(&self) -> ShipTarget {
        ShipTarget {
            ship_via: self.ship_via.clone(),
            carrier: self.carrier.clone(),
            service: self.service.clone(),
        }
    }

    /// Whether this rule takes a shipping line.
    pub fn takes(&self, line: &ShippingLine) -> bool {
        let values = [
            &line.title,
            &line.code,
            &line.carrier_identifier,
            &line.source,
        ];
        self.matches
            .fields()
            .iter()
            .zip(values)
            .all(|((_, want), have)| match (want, have) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(w), Some(h)) if self.case_insensitive => norm(w) == norm(h),
                (Some(w), Some(h)) => w == h,
            })
    }

    /// The match as a comparable key (for conflicts).
    fn key(&self) -> [Option<String>; 4] {
        self.matches.fields().map(|(_, v)| {
            v.as_ref().map(|s| {
                if self.case_insensitive {
                    norm(s)
                } else {
                    s.clone()
                }
            })
        })
    }
}

impl ShipMethods {
    /// What a shipping line becomes: the first rule that takes it, else the
    /// default; `Err` is the message of the order's `error`.
    pub fn target(&self, line: &ShippingLine) -> Result<ShipTarget, String> {
        if let Some(r) = self.rules.iter().find(|r| r.takes(line)) {
            return Ok(r.target());
        }
        self.default.clone().ok_or_else(|| {
            format!(
                "unmapped shipping method '{}': add a mapping (a rule under ship_methods, or a default)",
                line.title
                    .as_deref()
                    .or(line.code.as_deref())
                    .unwrap_or("(none)")
            )
        })
    }

    /// The rules a new merchant starts with: shipsync's former built-in
    /// table (common Shopify titles to Deposco's usual service levels),
    /// and no default.
    pub fn builtin() -> Self {
        const TABLE: &[(&[&str], &str, &str)] = &[
            (
                &[
                    "standard",
                    "standard shipping",
                    "economy",
                    "ground",
                    "free shipping",
                ],
                "Ground",
                "Standard",
            ),
            (
                &["express", "express shipping", "expedited", "priority"],
                "Expedited",
                "Expedited",
            ),
            (
                &["2 day", "2-day", "two day", "second day", "2nd day"],
                "2nd Day Air",
                "2 Day",
            ),
            (
                &["overnight", "next day", "next day air", "1 day"],
                "Next Day Air",
                "Overnight",
            ),
        ];
        let rules = TABLE
            .iter()
            .flat_map(|(titles, via, service)| {
                titles.iter().map(|t| ShipMethodRule {
                    matches: ShipMatch {
                        title: Some((*t).to_string()),
                        ..ShipMatch::default()
                    },
                    case_insensitive: true,
                    ship_via: (*via).to_string(),
                    carrier: None,
                    service: Some((*service).to_string()),
                })
            })
            .collect();
        Self {
            rules,
            default: None,
        }
    }
}

impl Mappings {
    /// A new merchant's mappings: the built-in shipping-method rules.
    pub fn for_new_merchant() -> Self {
        Self {
            ship_methods: ShipMethods::builtin(),
            ..Self::default()
        }
    }

    /// The warehouse item of a store SKU (itself when no alias names it).
    pub fn warehouse_item<'a>(&'a self, store_sku: &'a str) -> &'a str {
        self.sku_aliases
            .iter()
            .find(|a| a.store_sku == store_sku)
            .map_or(store_sku, |a| a.warehouse_item.as_str())
    }

    /// The store SKUs a warehouse item stands for (itself when no alias
    /// names it).
    pub fn store_skus<'a>(&'a self, item: &'a str) -> Vec<&'a str> {
        let found: Vec<&str> = self
            .sku_aliases
            .iter()
            .filter(|a| a.warehouse_item == item)
            .map(|a| a.store_sku.as_str())
            .collect();
        if found.is_empty() { vec![item] } else { found }
    }

    /// The store's name for a warehouse carrier, and its tracking URL for a
    /// number, when a mapping names the carrier (compared ignoring case).
    pub fn carrier(&self, warehouse_carrier: &str) -> Option<&CarrierMapping> {
        self.carriers
            .iter()
            .find(|c| norm(&c.warehouse_carrier) == norm(warehouse_carrier))
    }

    /// The store SKU the ledger should see for a warehouse item: of the
    /// store SKUs aliased to it, the one the order has (else the first);
    /// the item itself when no alias names it.
    pub fn store_sku_in<'a>(&'a self, item: &'a str, order_skus: &BTreeSet<&str>) -> &'a str {
        let skus = self.store_skus(item);
        skus.iter()
            .find(|s| order_skus.contains(*s))
            .or(skus.first())
            .copied()
            .unwrap_or(item)
    }

    /// A shipment as the store knows it: every warehouse item number (lines,
    /// kit links, packages) turned back into the store SKU of `order_skus`.
    pub fn in_store_skus(
        &self,
        version: &ShipmentVersion,
        order_skus: &BTreeSet<&str>,
    ) -> ShipmentVersion {
        let mut v = version.clone();
        if self.sku_aliases.is_empty() {
            return v;
        }
        for l in &mut v.lines {
            l.sku = self.store_sku_in(&l.sku, order_skus).to_string();
            if let Some(sku) = l.kit.as_mut().and_then(|k| k.sku.as_mut()) {
                *sku = self.store_sku_in(sku, order_skus).to_string();
            }
        }
        for p in &mut v.packages {
            for l in &mut p.lines {
                l.sku = self.store_sku_in(&l.sku, order_skus).to_string();
            }
        }
        v
    }

    /// The kit recipes the ledger uses: the learned ones, with each kit a
    /// person set replaced by the person's recipe.
    pub fn recipes_over(&self, learned: Recipes) -> Recipes {
        let mut out = learned;
        for k in self
            .kit_recipes
            .iter()
            .filter(|k| k.source == RecipeSource::Person)
        {
            out.insert(
                k.kit_sku.clone(),
                k.components
                    .iter()
                    .map(|c| (c.sku.clone(), c.quantity))
                    .collect(),
            );
        }
        out
    }

    /// The carrier names as the older `carrier_overrides` map had them
    /// (warehouse carrier → store company).
    pub fn carrier_names(&self) -> BTreeMap<String, String> {
        self.carriers
            .iter()
            .map(|c| (c.warehouse_carrier.clone(), c.store_company.clone()))
            .collect()
    }

    /// Reads a document given as JSON (an API body, an imported file),
    /// naming the section or rule that does not read: an unknown field, a
    /// wrong type. [`Self::validated`] checks the rest.
    pub fn from_json(doc: serde_json::Value) -> Result<Self, MappingError> {
        use serde::de::DeserializeOwned;
        use serde_json::Value;
        fn one<T: DeserializeOwned>(rule: &str, v: Value) -> Result<T, MappingError> {
            serde_json::from_value(v).map_err(|e| refuse(rule, e.to_string()))
        }
        fn list<T: DeserializeOwned>(rule: &str, v: Value) -> Result<Vec<T>, MappingError> {
            match v {
                Value::Null => Ok(Vec::new()),
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| one(&format!("{rule}[{i}]"), x))
                    .collect(),
                _ => Err(refuse(rule, "must be a list")),
            }
        }
        let Value::Object(obj) = doc else {
            return Err(refuse("(document)", "must be a JSON object"));
        };
        let mut m = Self::default();
        for (key, v) in obj {
            match key.as_str() {
                "ship_methods" => {
                    let Value::Object(mut sm) = v else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(refuse("ship_methods", "must be an object"));
                    };
                    if let Some(k) = sm.keys().find(|k| *k != "rules" && *k != "default") {
                        return Err(refuse(
                            format!("ship_methods.{k}"),
                            "unknown field (expected rules, default)",
                        ));
                    }
                    m.ship_methods.rules =
                        list("ship_methods.rules", sm.remove("rules").unwrap_or_default())?;
                    m.ship_methods.default = one(
                        "ship_methods.default",
                        sm.remove("default").unwrap_or_default(),
                    )?;
                }
                "sku_aliases" => m.sku_aliases = list("sku_aliases", v)?,
                "kit_recipes" => m.kit_recipes = list("kit_recipes", v)?,
                "carriers" => m.carriers = list("carriers", v)?,
                other => {
                    return Err(refuse(
                        other,
                        "unknown field (expected ship_methods, sku_aliases, kit_recipes, carriers)",
                    ));
                }
            }
        }
        Ok(m)
    }

    /// Checks the whole document and tidies it (text trimmed, identical
    /// aliases merged). `Err` names the first bad rule.
    pub fn validated(mut self) -> Result<Self, MappingError> {
        let text = |rule: &str, field: &str, v: &mut String, max: usize| {
            *v = v.trim().to_string();
            if v.is_empty() {
                return Err(refuse(format!("{rule}.{field}"), "must not be empty"));
            }
            if v.chars().count() > max {
                return Err(refuse(
                    format!("{rule}.{field}"),
                    format!("must be at most {max} characters"),
                ));
            }
            Ok(())
        };
        let opt_text = |rule: &str, field: &str, v: &mut Option<String>, max: usize| {
            if let Some(s) = v {
                *s = s.trim().to_string();
                if s.is_empty() {
                    *v = None;
                } else if s.chars().count() > max {
                    return Err(refuse(
                        format!("{rule}.{field}"),
                        format!("must be at most {max} characters"),
                    ));
                }
            }
            Ok(())
        };
        let mut seen: BTreeMap<[Option<String>; 4], usize> = BTreeMap::new();
        for (i, r) in self.ship_methods.rules.iter_mut().enumerate() {
            let name = format!("ship_methods.rules[{i}]");
            for (field, v) in [
                ("match.title", &mut r.matches.title),
                ("match.code", &mut r.matches.code),
                (
                    "match.carrier_identifier",
                    &mut r.matches.carrier_identifier,
                ),
                ("match.source", &mut r.matches.source),
            ] {
                opt_text(&name, field, v, 200)?;
            }
            text(&name, "ship_via", &mut r.ship_via, 100)?;
            opt_text(&name, "carrier", &mut r.carrier, 100)?;
            opt_text(&name, "service", &mut r.service, 100)?;
            let key = r.key();
            if key.iter().all(Option::is_none) {
                return Err(refuse(
                    name,
                    "matches every shipping line: give at least one of title, code, carrier_identifier, source (or use ship_methods.default)",
                ));
            }
            if let Some(first) = seen.insert(key, i) {
                return Err(refuse(
                    name,
                    format!("conflicts with ship_methods.rules[{first}]: the same match"),
                ));
            }
        }
        if let Some(d) = &mut self.ship_methods.default {
            text("ship_methods.default", "ship_via", &mut d.ship_via, 100)?;
            opt_text("ship_methods.default", "carrier", &mut d.carrier, 100)?;
            opt_text("ship_methods.default", "service", &mut d.service, 100)?;
        }

        let mut items: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let mut aliases = Vec::new();
        for (i, mut a) in std::mem::take(&mut self.sku_aliases)
            .into_iter()
            .enumerate()
        {
            let name = format!("sku_aliases[{i}]");
            text(&name, "store_sku", &mut a.store_sku, 100)?;
            text(&name, "warehouse_item", &mut a.warehouse_item, 100)?;
            match items.get(&a.store_sku) {
                Some((_, item)) if *item == a.warehouse_item => continue,
                Some((first, item)) => {
                    return Err(refuse(
                        name,
                        format!(
                            "maps store SKU {:?} to {:?}, but sku_aliases[{first}] maps it to {item:?}: one store SKU is one warehouse item",
                            a.store_sku, a.warehouse_item
                        ),
                    ));
                }
                None => {
                    items.insert(a.store_sku.clone(), (i, a.warehouse_item.clone()));
                }
            }
            aliases.push(a);
        }
        self.sku_aliases = aliases;

        let mut kits: BTreeMap<String, usize> = BTreeMap::new();
        for (i, k) in self.kit_recipes.iter_mut().enumerate() {
            let name = format!("kit_recipes[{i}]");
            text(&name, "kit_sku", &mut k.kit_sku, 100)?;
            if k.components.is_empty() {
                return Err(refuse(name, "a kit needs at least one component"));
            }
            let mut comps = BTreeSet::new();
            for (j, c) in k.components.iter_mut().enumerate() {
                let cname = format!("{name}.components[{j}]");
                text(&cname, "sku", &mut c.sku, 100)?;
                if c.quantity == 0 {
                    return Err(refuse(cname, "quantity must be at least 1"));
                }
                if c.sku == k.kit_sku {
                    return Err(refuse(cname, "a kit cannot contain itself"));
                }
                if !comps.insert(c.sku.clone()) {
                    return Err(refuse(
                        cname,
                        format!("component {:?} is listed twice", c.sku),
                    ));
                }
            }
            if let Some(first) = kits.insert(k.kit_sku.clone(), i) {
                return Err(refuse(
                    name,
                    format!(
                        "kit {:?} has a recipe already (kit_recipes[{first}])",
                        k.kit_sku
                    ),
                ));
            }
        }
        if let Some(name) = recipe_cycle(&self.kit_recipes) {
            return Err(name);
        }

        let mut carriers: BTreeMap<String, usize> = BTreeMap::new();
        for (i, c) in self.carriers.iter_mut().enumerate() {
            let name = format!("carriers[{i}]");
            text(&name, "warehouse_carrier", &mut c.warehouse_carrier, 100)?;
            text(&name, "store_company", &mut c.store_company, 100)?;
            opt_text(
                &name,
                "tracking_url_template",
                &mut c.tracking_url_template,
                500,
            )?;
            if let Some(t) = &c.tracking_url_template {
                let https = t.starts_with("https://") || t.starts_with("http://");
                if !https || !t.contains(TRACKING_PLACEHOLDER) {
                    return Err(refuse(
                        format!("{name}.tracking_url_template"),
                        format!("must be an http(s) URL containing {TRACKING_PLACEHOLDER}"),
                    ));
                }
            }
            if let Some(first) = carriers.insert(norm(&c.warehouse_carrier), i) {
                return Err(refuse(
                    name,
                    format!(
                        "carrier {:?} is mapped already (carriers[{first}])",
                        c.warehouse_carrier
                    ),
                ));
            }
        }
        Ok(self)
    }
}

/// A kit whose components lead back to itself through other kits.
fn recipe_cycle(recipes: &[KitRecipe]) -> Option<MappingError> {
    let by_kit: BTreeMap<&str, (usize, &KitRecipe)> = recipes
        .iter()
        .enumerate()
        .map(|(i, r)| (r.kit_sku.as_str(), (i, r)))
        .collect();
    for (i, r) in recipes.iter().enumerate() {
        // Depth-first from this kit through kits only.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(r.kit_sku.as_str(), vec![])];
        let mut visited = BTreeSet::new();
        while let Some((sku, path)) = stack.pop() {
            let Some((_, k)) = by_kit.get(sku) else {
                continue;
            };
            for c in &k.components {
                let mut next = path.clone();
                next.push(c.sku.as_str());
                if c.sku == r.kit_sku {
                    return Some(refuse(
                        format!("kit_recipes[{i}]"),
                        format!(
                            "kit {:?} contains itself through {}",
                            r.kit_sku,
                            next.join(" → ")
                        ),
                    ));
                }
                if visited.insert(c.sku.as_str()) {
                    stack.push((c.sku.as_str(), next));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(title: &str) -> ShippingLine {
        ShippingLine {
            title: Some(title.into()),
            ..ShippingLine::default()
        }
    }

    fn doc(json: serde_json::Value) -> Result<Mappings, String> {
        let m: Mappings = serde_json::from_value(json).map_err(|e| e.to_string())?;
        m.validated().map_err(|e| e.rule)
    }

    #[test]
    fn the_contract_example_reads_and_round_trips() {
        let m = doc(serde_json::json!({"ship_methods": {"rules": [{"match": {"title": "Express", "code": null, "carrier_identifier": null,
                                       "source": null},
                             "case_insensitive": true,
                             "ship_via": "UPS Next Day Air", "carrier": "UPS", "service": "Next Day Air"}],
                  "default": null},
 "sku_aliases": [{"store_sku": "TSHIRT-RED-M", "warehouse_item": "100234"}],
 "kit_recipes": [{"kit_sku": "KIT-1", "components": [{"sku": "A", "quantity": 2}], "source": "person"}],
 "carriers": [{"warehouse_carrier": "UPSN", "store_company": "UPS", "tracking_url_template": null}]}))
        .unwrap();
        let back: Mappings = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            m.ship_methods.target(&line(" express ")).unwrap().ship_via,
            "UPS Next Day Air"
        );
        assert_eq!(m.warehouse_item("TSHIRT-RED-M"), "100234");
        assert_eq!(m.warehouse_item("OTHER"), "OTHER");
        assert_eq!(m.store_skus("100234"), vec!["TSHIRT-RED-M"]);
        assert_eq!(m.carrier("upsn").unwrap().store_company, "UPS");
    }

    #[test]
    fn ship_methods_match_in_order_with_a_default() {
        let rule = |title: Option<&str>, code: Option<&str>, ci: bool, via: &str| ShipMethodRule {
            matches: ShipMatch {
                title: title.map(Into::into),
                code: code.map(Into::into),
                ..ShipMatch::default()
            },
            case_insensitive: ci,
            ship_via: via.into(),
            carrier: None,
            service: None,
        };
        let m = ShipMethods {
            rules: vec![
                rule(Some("Express"), Some("EXP"), false, "exact both"),
                rule(Some("Express"), None, true, "title any case"),
                rule(None, Some("pickup"), true, "by code"),
            ],
            default: None,
        };
        let cases = [
            (Some("Express"), Some("EXP"), Ok("exact both")),
            (Some("express"), Some("EXP"), Ok("title any case")),
            (Some("Express"), Some("exp"), Ok("title any case")),
            (Some("Store pickup"), Some("PICKUP"), Ok("by code")),
            (Some("Free shipping over $50"), None, Err(())),
            (None, None, Err(())),
        ];
        for (title, code, want) in cases {
            let l = ShippingLine {
                title: title.map(Into::into),
                code: code.map(Into::into),
                ..ShippingLine::default()
            };
            let got = m.target(&l).map(|t| t.ship_via).map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{title:?} {code:?}");
        }
        let err = m.target(&line("Free shipping over $50")).unwrap_err();
        assert!(
            err.contains("unmapped shipping method 'Free shipping over $50'"),
            "{err}"
        );
        let with_default = ShipMethods {
            default: Some(ShipTarget {
                ship_via: "Ground".into(),
                carrier: None,
                service: None,
            }),
            ..m
        };
        assert_eq!(
            with_default.target(&line("Anything")).unwrap().ship_via,
            "Ground"
        );
    }

    #[test]
    fn the_builtin_table_is_the_new_merchants_rules() {
        let m = Mappings::for_new_merchant().validated().unwrap();
        let via = |t: &str| m.ship_methods.target(&line(t)).map(|x| x.ship_via.clone());
        assert_eq!(via(" Standard Shipping ").unwrap(), "Ground");
        assert_eq!(via("Overnight").unwrap(), "Next Day Air");
        assert_eq!(via("2-Day").unwrap(), "2nd Day Air");
        assert!(via("UPS Ground").is_err());
    }

    #[test]
    fn bad_documents_name_the_rule() {
        use serde_json::json;
        let cases = [
            (
                json!({"ship_methods": {"rules": [{"match": {}, "ship_via": "X"}]}}),
                "ship_methods.rules[0]",
            ),
            (
                json!({"ship_methods": {"rules": [
                {"match": {"title": "A"}, "ship_via": "X"},
                {"match": {"title": " a "}, "ship_via": "Y"}]}}),
                "ship_methods.rules[1]",
            ),
            (
                json!({"ship_methods": {"rules": [{"match": {"title": "A"}, "ship_via": " "}]}}),
                "ship_methods.rules[0].ship_via",
            ),
            (
                json!({"ship_methods": {"default": {"ship_via": ""}}}),
                "ship_methods.default.ship_via",
            ),
            (
                json!({"sku_aliases": [
                {"store_sku": "S", "warehouse_item": "1"},
                {"store_sku": "S", "warehouse_item": "2"}]}),
                "sku_aliases[1]",
            ),
            (
                json!({"kit_recipes": [{"kit_sku": "K", "components": []}]}),
                "kit_recipes[0]",
            ),
            (
                json!({"kit_recipes": [{"kit_sku": "K", "components": [{"sku": "A", "quantity": 0}]}]}),
                "kit_recipes[0].components[0]",
            ),
            (
                json!({"kit_recipes": [{"kit_sku": "K", "components": [{"sku": "K", "quantity": 1}]}]}),
                "kit_recipes[0].components[0]",
            ),
            (
                json!({"kit_recipes": [
                {"kit_sku": "K", "components": [{"sku": "L", "quantity": 1}]},
                {"kit_sku": "L", "components": [{"sku": "K", "quantity": 1}]}]}),
                "kit_recipes[0]",
            ),
            (
                json!({"kit_recipes": [
                {"kit_sku": "K", "components": [{"sku": "A", "quantity": 1}]},
                {"kit_sku": "K", "components": [{"sku": "B", "quantity": 1}]}]}),
                "kit_recipes[1]",
            ),
            (
                json!({"carriers": [{"warehouse_carrier": "UPSN", "store_company": "UPS",
                                  "tracking_url_template": "https://x/track"}]}),
                "carriers[0].tracking_url_template",
            ),
            (
                json!({"carriers": [
                {"warehouse_carrier": "UPSN", "store_company": "UPS"},
                {"warehouse_carrier": "upsn", "store_company": "UPS"}]}),
                "carriers[1]",
            ),
        ];
        for (json, rule) in cases {
            assert_eq!(doc(json.clone()).unwrap_err(), rule, "{json}");
        }
        // Unknown fields are refused by the reader, naming where.
        let read = |v: serde_json::Value| Mappings::from_json(v).map(|_| ()).map_err(|e| e.rule);
        assert_eq!(read(json!({"ship_method": {}})), Err("ship_method".into()));
        assert_eq!(
            read(
                json!({"sku_aliases": [{"store_sku": "S", "warehouse_item": "1"}, {"store_sku": "S", "item": "1"}]})
            ),
            Err("sku_aliases[1]".into())
        );
        assert_eq!(
            read(json!({"ship_methods": {"rules": [{"match": {"titel": "A"}, "ship_via": "X"}]}})),
            Err("ship_methods.rules[0]".into())
        );
        assert_eq!(
            read(json!({"ship_methods": {"fallback": null}})),
            Err("ship_methods.fallback".into())
        );
        assert_eq!(read(json!({"carriers": {}})), Err("carriers".into()));
        assert_eq!(
            read(json!({"ship_methods": {"default": null}, "kit_recipes": null})),
            Ok(())
        );
        assert!(doc(json!({"ship_method": {}})).is_err());
        assert!(doc(json!({"sku_aliases": [{"store_sku": "S", "item": "1"}]})).is_err());
        // The same alias twice is one.
        let m = doc(json!({"sku_aliases": [
            {"store_sku": "S", "warehouse_item": "1"},
            {"store_sku": " S", "warehouse_item": "1 "}]}))
        .unwrap();
        assert_eq!(m.sku_aliases.len(), 1);
        // Several store SKUs may share one item.
        let m = doc(json!({"sku_aliases": [
            {"store_sku": "S1", "warehouse_item": "1"},
            {"store_sku": "S2", "warehouse_item": "1"}]}))
        .unwrap();
        assert_eq!(m.store_skus("1"), vec!["S1", "S2"]);
    }

    #[test]
    fn aliases_turn_items_back_into_the_orders_store_skus() {
        let m = doc(serde_json::json!({"sku_aliases": [
            {"store_sku": "S1", "warehouse_item": "100"},
            {"store_sku": "S2", "warehouse_item": "100"},
            {"store_sku": "K", "warehouse_item": "KIT-100"}]}))
        .unwrap();
        let order: BTreeSet<&str> = ["S2", "K"].into();
        assert_eq!(m.store_sku_in("100", &order), "S2");
        assert_eq!(m.store_sku_in("100", &BTreeSet::new()), "S1");
        assert_eq!(m.store_sku_in("200", &order), "200");
        let v: ShipmentVersion = serde_json::from_value(serde_json::json!({
            "number": "S-1", "warehouse_id": null, "status": "shipped", "order_refs": ["#1"], "updated_at": null,
            "carrier": null, "service": null, "tracking_url": null, "shipped_at": null,
            "lines": [{"line_number": "1", "sku": "100", "quantity": 1, "ordered_quantity": null,
                       "store_line_id": null,
                       "kit": {"line_number": "0", "sku": "KIT-100", "store_line_id": null,
                               "kit_quantity": null, "per_kit": null}}],
            "packages": [{"key": "shipment", "tracking_number": null, "carrier": null, "service": null,
                          "lines": [{"line_number": "1", "sku": "100", "quantity": 1}]}]
        }))
        .unwrap();
        let s = m.in_store_skus(&v, &order);
        assert_eq!(s.lines[0].sku, "S2");
        assert_eq!(s.lines[0].kit.as_ref().unwrap().sku.as_deref(), Some("K"));
        assert_eq!(s.packages[0].lines[0].sku, "S2");
    }

    #[test]
    fn a_persons_recipe_wins_over_a_learned_one() {
        let m = doc(serde_json::json!({"kit_recipes": [
            {"kit_sku": "K", "components": [{"sku": "A", "quantity": 3}]}]}))
        .unwrap();
        let learned: Recipes = [
            (
                "K".to_string(),
                [("A".to_string(), 2), ("B".to_string(), 1)].into(),
            ),
            ("L".to_string(), [("C".to_string(), 1)].into()),
        ]
        .into();
        let r = m.recipes_over(learned);
        assert_eq!(r["K"], [("A".to_string(), 3)].into());
        assert_eq!(r["L"], [("C".to_string(), 1)].into());
        assert_eq!("items".parse::<RecipeSource>(), Ok(RecipeSource::Items));
        assert!("learned".parse::<RecipeSource>().is_err());
    }
}
