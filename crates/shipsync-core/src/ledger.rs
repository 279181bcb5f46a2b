//! The per-line ledger: how much of each store order line the warehouse has
//! shipped, attributed to the shipment that shipped it, with kit roll-up.
//!
//! Rules: `../../docs/kits-and-partials.md` (copied from shared/docs). Every
//! function here is pure and recomputes from all known shipments, never by
//! adding deltas, so a repeat can never double-count.
//!
//! # How [`attribute`] matches warehouse lines to store lines
//!
//! Shipments are taken in the order given (first received first); only those
//! whose status is `Shipped` count, the others get `Ok(vec![])`. For each
//! shipment line with units, in this order of precedence:
//!
//! 1. **Kit link** (`line.kit`): the kit's store line by
//!    `kit.store_line_id`, else every order line whose SKU is `kit.sku`.
//!    The line is then a *component* of that kit line.
//! 2. **`store_line_id`** (`customerLineNumber`) equal to an order line id.
//!    Ids compare exactly, or the warehouse value equals the last `/` segment
//!    of the store id (`123` matches `gid://shopify/LineItem/123`). If that
//!    order line has a different SKU and this SKU is a known component of it
//!    (recipe or kit link), the line is a component of it; otherwise plain.
//! 3. **SKU** equal to one or more order lines' SKU: plain units.
//! 4. **Recipe**: the SKU is a known component (in `recipes` or in a kit link
//!    of any given shipment) of a kit SKU that is an order line. If it is a
//!    component of several *different* kit SKUs of the order, that is an
//!    error (nothing is guessed).
//! 5. Otherwise the shipment is in error: "SKU X matches no line of the
//!    order".
//!
//! When several order lines are candidates (same SKU, or same kit SKU), the
//! units fill them in order up to their ordered quantity (for kit components:
//! ordered kits × per kit), counting what earlier accepted shipments and
//! earlier lines of the same shipment already put there; whatever is left
//! goes to the last candidate, where it shows as an over-shipment.
//!
//! # Kits
//!
//! The recipe of a kit line is `recipes[kit sku]` overlaid with the `per_kit`
//! of every kit link (in any given shipment, whatever its status) that points
//! at the line; links win, a later link wins over an earlier one. A
//! component seen in a link without `per_kit` and not in the recipe, a
//! `per_kit` of 0, or an empty recipe make the recipe incomplete: every
//! shipment carrying components of that line is in error naming the kit SKU.
//!
//! Store units of a line = min(ordered, plain units + kits), where kits are
//! computed from the cumulative component units per [`KitPolicy`]. A
//! shipment's share = units through it − units through the previous
//! accepted shipments (floored at 0).
//!
//! # Errors
//!
//! A shipment is in error (with every problem listed, `; `-separated) when a
//! line cannot be tied, a kit recipe is incomplete, or it takes a line above
//! what was ordered (plain units above ordered, or component units above
//! ordered kits × per kit). An erroneous shipment counts as absent for the
//! shipments after it (its units are not cumulated).
//!
//! # Carriers and packages
//!
//! A shipment line's units are followed through its packages
//! (`PackageLine.line_number`, else the package line's SKU when exactly one
//! shipment line has it), in package order, capped at the line's quantity.
//! Units no package lists go to the only package when there is exactly one;
//! otherwise they are "unpackaged": their package keys are those of the
//! packages that list no lines at all, their carrier the one those packages
//! agree on, else the header carrier.
//!
//! A package's carrier is `package.carrier`, else `version.carrier` (empty
//! text counts as absent). A plain line's share is split by carrier in
//! package order (one [`LineShare`] per carrier, in order of first
//! appearance). A kit line's share is **one** [`LineShare`] whose carrier is
//! the one that carried the most of the line's component units in this
//! shipment (ties: the first in package order); its `package_keys` are all
//! packages of this shipment that carried its components, whatever their
//! carrier, so every tracking number reaches the store.
//!
//! Shares come in order-line order, zero quantities omitted.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::shipment::{ShipmentVersion, WarehouseStatus};

pub use crate::states::KitPolicy;

/// A store order line as the ledger needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The store's line id (Shopify `gid://shopify/LineItem/…`).
    pub id: String,
    pub sku: Option<String>,
    /// Units ordered (after store-side removals).
    pub quantity: u64,
    /// Units the store removed from the line after it was ordered (an
    /// edit). Shipping them is not an over-shipment: the warehouse may ship
    /// what it had before the edit reached it; those units are simply not
    /// the store's to fulfill (store units stay at most `quantity`).
    pub removed: u64,
}

/// Known kit recipes: kit SKU → component SKU → units per kit.
pub type Recipes = BTreeMap<String, BTreeMap<String, u64>>;

/// One shipment known for the order, in stable order (first received first).
#[derive(Debug, Clone)]
pub struct ShipmentInput<'a> {
    /// The shipment's id in shipsync (`shp_…`).
    pub key: &'a str,
    /// Its newest version.
    pub version: &'a ShipmentVersion,
}

/// What one shipment contributes to one store line, per carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineShare {
    pub store_line_id: String,
    /// Store units (kits for a kit line) this shipment shipped on the line.
    pub quantity: u64,
    /// Carrier as the warehouse wrote it (package carrier, else header).
    pub carrier: Option<String>,
    /// Keys of the packages that carried these units (sorted, unique).
    pub package_keys: Vec<String>,
}

/// Why a shipment cannot go to the store; the message names what a person
/// must fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerProblem {
    pub message: String,
}

/// The outcome for one shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentShares {
    pub key: String,
    pub result: Result<Vec<LineShare>, LedgerProblem>,
}

impl LedgerProblem {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LedgerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LedgerProblem {}

/// Attributes every shipped unit of the order's shipments to store lines.
///
/// Returns one [`ShipmentShares`] per input, in input order. See the module
/// docs for the matching, kit, error and carrier rules.
pub fn attribute(
    order_lines: &[OrderLine],
    recipes: &Recipes,
    policy: KitPolicy,
    shipments: &[ShipmentInput<'_>],
) -> Vec<ShipmentShares> {
    let ctx = Ctx::new(order_lines, recipes, shipments);
    let mut cum = Cum::new();
    let mut out = Vec::with_capacity(shipments.len());
    for s in shipments {
        let result = if s.version.status == WarehouseStatus::Shipped {
            ctx.one_shipment(policy, s.version, &mut cum)
        } else {
            Ok(Vec::new())
        };
        out.push(ShipmentShares {
            key: s.key.to_string(),
            result,
        });
    }
    out
}

/// Kit recipes a shipment teaches: for each component line with a kit SKU and
/// a `per_kit`, kit SKU → component SKU → per kit.
pub fn recipes_seen(version: &ShipmentVersion) -> Recipes {
    let mut out = Recipes::new();
    for line in &version.lines {
        let Some(kit) = &line.kit else { continue };
        let (Some(kit_sku), Some(per_kit)) = (&kit.sku, kit.per_kit) else {
            continue;
        };
        if per_kit == 0 || kit_sku.is_empty() || line.sku.is_empty() {
            continue;
        }
        out.entry(kit_sku.clone())
            .or_default()
            .insert(line.sku.clone(), per_kit);
    }
    out
}

/// Already acknowledged or in-flight store quantities for one shipment:
/// store line id → units.
pub type Sent = BTreeMap<String, u64>;

/// What the store still has to learn for one shipment: `shares − sent`, per
/// (store line, carrier), dropping non-positive differences (statuses only
/// move forward: nothing is ever un-fulfilled).
///
/// `sent` counts all carriers of a store line together; it is taken from the
/// line's shares in their order (the first carrier's share first).
pub fn still_to_send(shares: &[LineShare], sent: &Sent) -> Vec<LineShare> {
    let mut left: BTreeMap<&str, u64> = sent.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut out = Vec::new();
    for share in shares {
        let already = left.get_mut(share.store_line_id.as_str());
        let taken = match already {
            Some(a) => {
                let t = (*a).min(share.quantity);
                *a -= t;
                t
            }
            None => 0,
        };
        let rest = share.quantity - taken;
        if rest > 0 {
            out.push(LineShare {
                quantity: rest,
                ..share.clone()
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------

/// A cumulative bucket: (order line index, component SKU; `None` = plain).
type Bucket = (usize, Option<String>);
type Cum = BTreeMap<Bucket, u64>;

/// Where one unit came from: a package index, or `None` (unpackaged).
type Source = Option<usize>;

/// Kit line index → component SKU → per kit (`None` = unknown).
type Knowledge = BTreeMap<usize, BTreeMap<String, Option<u64>>>;

struct Ctx<'a> {
    lines: &'a [OrderLine],
    knowledge: Knowledge,
}

/// What a shipment line was tied to.
struct Target {
    candidates: Vec<usize>,
    component: Option<String>,
}

enum Unresolved {
    NoLine(String),
    Other(String),
}

/// Whether a warehouse-side store line id names this store line.
fn same_line_id(store_id: &str, warehouse_value: &str) -> bool {
    let w = warehouse_value.trim();
    if w.is_empty() {
        return false;
    }
    let s = store_id.trim();
    s == w
        || s.rsplit('/')
            .next()
            .is_some_and(|tail| tail == w && s != tail)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|t| !t.trim().is_empty())
}

impl<'a> Ctx<'a> {
    fn new(lines: &'a [OrderLine], recipes: &Recipes, shipments: &[ShipmentInput<'_>]) -> Self {
        let mut ctx = Ctx {
            lines,
            knowledge: Knowledge::new(),
        };
        for (i, l) in lines.iter().enumerate() {
            if let Some(r) = l.sku.as_ref().and_then(|s| recipes.get(s)) {
                let k = ctx.knowledge.entry(i).or_default();
                for (comp, per) in r {
                    k.insert(comp.clone(), Some(*per).filter(|p| *p > 0));
                }
            }
        }
        for s in shipments {
            for line in &s.version.lines {
                let Some(link) = &line.kit else { continue };
                for kit_line in ctx.kit_link_lines(link) {
                    let k = ctx.knowledge.entry(kit_line).or_default();
                    match link.per_kit {
                        Some(p) if p > 0 => {
                            k.insert(line.sku.clone(), Some(p));
                        }
                        Some(_) => {
                            k.insert(line.sku.clone(), None);
                        }
                        None => {
                            k.entry(line.sku.clone()).or_insert(None);
                        }
                    }
                }
            }
        }
        ctx
    }

    fn line_by_id(&self, warehouse_value: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.id == warehouse_value.trim())
            .or_else(|| {
                self.lines
                    .iter()
                    .position(|l| same_line_id(&l.id, warehouse_value))
            })
    }

    fn lines_by_sku(&self, sku: &str) -> Vec<usize> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.sku.as_deref() == Some(sku))
            .map(|(i, _)| i)
            .collect()
    }

    fn kit_link_lines(&self, link: &crate::shipment::KitLink) -> Vec<usize> {
        if let Some(i) = non_empty(&link.store_line_id).and_then(|id| self.line_by_id(id)) {
            return vec![i];
        }
        match non_empty(&link.sku) {
            Some(sku) => self.lines_by_sku(sku),
            None => Vec::new(),
        }
    }

    fn is_component_of(&self, line: usize, sku: &str) -> bool {
        self.knowledge
            .get(&line)
            .is_some_and(|k| k.contains_key(sku))
    }

    fn label(&self, line: usize) -> String {
        let l = &self.lines[line];
        match &l.sku {
            Some(sku) if !sku.is_empty() => sku.clone(),
            _ => l.id.clone(),
        }
    }

    fn resolve(&self, line: &crate::shipment::ShipmentLine) -> Result<Target, Unresolved> {
        // 1. Kit link.
        if let Some(link) = &line.kit {
            let c = self.kit_link_lines(link);
            if !c.is_empty() {
                return Ok(Target {
                    candidates: c,
                    component: Some(line.sku.clone()),
                });
            }
        }
        // 2. customerLineNumber.
        if let Some(i) = non_empty(&line.store_line_id).and_then(|id| self.line_by_id(id)) {
            let own_sku = self.lines[i].sku.as_deref();
            let component =
                own_sku.is_some_and(|s| s != line.sku) && self.is_component_of(i, &line.sku);
            return Ok(Target {
                candidates: vec![i],
                component: component.then(|| line.sku.clone()),
            });
        }
        // 3. SKU.
        let by_sku = self.lines_by_sku(&line.sku);
        if !by_sku.is_empty() {
            return Ok(Target {
                candidates: by_sku,
                component: None,
            });
        }
        // 4. Known component of a kit SKU of the order.
        let kit_lines: Vec<usize> = self
            .knowledge
            .iter()
            .filter(|(_, k)| k.contains_key(&line.sku))
            .map(|(i, _)| *i)
            .collect();
        let kit_names: BTreeSet<String> = kit_lines.iter().map(|i| self.label(*i)).collect();
        match kit_names.len() {
            0 => Err(Unresolved::NoLine(line.sku.clone())),
            1 => Ok(Target {
                candidates: kit_lines,
                component: Some(line.sku.clone()),
            }),
            _ => Err(Unresolved::Other(format!(
                "SKU {} is a component of several kits of the order ({}); cannot tell which",
                line.sku,
                kit_names.into_iter().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Capacity of a bucket: ordered units, or ordered kits × per kit.
    /// `None` when the per-kit quantity is unknown.
    fn capacity(&self, (line, comp): &Bucket) -> Option<u64> {
        let l = &self.lines[*line];
        let ordered = l.quantity.saturating_add(l.removed);
        match comp {
            None => Some(ordered),
            Some(c) => self.per_kit(*line, c).map(|p| ordered.saturating_mul(p)),
        }
    }

    fn per_kit(&self, line: usize, comp: &str) -> Option<u64> {
        self.knowledge.get(&line)?.get(comp).copied().flatten()
    }

    /// The complete recipe of a kit line, or why it is not complete.
    fn recipe(&self, line: usize) -> Result<Vec<(&str, u64)>, String> {
        let name = self.label(line);
        let Some(k) = self.knowledge.get(&line).filter(|k| !k.is_empty()) else {
            return Err(format!("kit {name}: recipe unknown"));
        };
        let missing: Vec<&str> = k
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(c, _)| c.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "kit {name}: recipe incomplete, units per kit unknown for {}",
                missing.join(", ")
            ));
        }
        Ok(k.iter()
            .filter_map(|(c, p)| p.map(|p| (c.as_str(), p)))
            .collect())
    }

    /// Store units of a line given cumulative buckets.
    fn store_units(&self, policy: KitPolicy, line: usize, cum: &Cum) -> u64 {
        let ordered = self.lines[line].quantity;
        let plain = cum.get(&(line, None)).copied().unwrap_or(0);
        let kits = match self.recipe(line) {
            Ok(recipe) => {
                let per_comp = recipe.iter().map(|(c, p)| {
                    let n = cum
                        .get(&(line, Some((*c).to_string())))
                        .copied()
                        .unwrap_or(0);
                    (n, *p)
                });
                match policy {
                    KitPolicy::CompleteKits => per_comp.map(|(n, p)| n / p).min().unwrap_or(0),
                    KitPolicy::FirstComponent => per_comp
                        .map(|(n, p)| n.div_ceil(p))
                        .max()
                        .unwrap_or(0)
                        .min(ordered),
                }
            }
            Err(_) => 0,
        };
        plain.saturating_add(kits).min(ordered)
    }

    fn one_shipment(
        &self,
        policy: KitPolicy,
        v: &ShipmentVersion,
        cum: &mut Cum,
    ) -> Result<Vec<LineShare>, LedgerProblem> {
        let packs = Packaging::new(v);
        let mut new_cum = cum.clone();
        // This shipment's units per bucket, with where they came from.
        let mut alloc: BTreeMap<Bucket, Vec<(Source, u64)>> = BTreeMap::new();
        let mut no_line: Vec<String> = Vec::new();
        let mut problems: Vec<String> = Vec::new();

        for (li, line) in v.lines.iter().enumerate() {
            if line.quantity == 0 {
                continue;
            }
            let target = match self.resolve(line) {
                Ok(t) => t,
                Err(Unresolved::NoLine(sku)) => {
                    if !no_line.contains(&sku) {
                        no_line.push(sku);
                    }
                    continue;
                }
                Err(Unresolved::Other(m)) => {
                    problems.push(m);
                    continue;
                }
            };
            let mut stream = packs.sources[li].clone();
            let n = target.candidates.len();
            for (ci, cand) in target.candidates.iter().enumerate() {
                let bucket: Bucket = (*cand, target.component.clone());
                let have = new_cum.get(&bucket).copied().unwrap_or(0);
                let want = if ci + 1 == n {
                    u64::MAX
                } else {
                    self.capacity(&bucket).unwrap_or(0).saturating_sub(have)
                };
                let taken = take(&mut stream, want);
                let units: u64 = taken.iter().map(|(_, q)| q).sum();
                if units == 0 {
                    continue;
                }
                *new_cum.entry(bucket.clone()).or_insert(0) += units;
                alloc.entry(bucket).or_default().extend(taken);
            }
        }

        if !no_line.is_empty() {
            let (word, verb) = if no_line.len() == 1 {
                ("SKU", "matches")
            } else {
                ("SKUs", "match")
            };
            problems.insert(
                0,
                format!("{word} {} {verb} no line of the order", no_line.join(", ")),
            );
        }

        let touched: BTreeSet<usize> = alloc.keys().map(|(l, _)| *l).collect();
        let kit_lines: BTreeSet<usize> = alloc
            .keys()
            .filter(|(_, c)| c.is_some())
            .map(|(l, _)| *l)
            .collect();
        for l in &kit_lines {
            if let Err(m) = self.recipe(*l) {
                problems.push(m);
            }
        }
        let mut over = Vec::new();
        for bucket in alloc.keys() {
            let shipped = new_cum.get(bucket).copied().unwrap_or(0);
            let Some(cap) = self.capacity(bucket) else {
                continue;
            };
            if shipped <= cap {
                continue;
            }
            let (l, comp) = bucket;
            let name = self.label(*l);
            over.push(match comp {
                None => format!("line {name}: shipped {shipped}, ordered {cap}"),
                Some(c) => format!(
                    "line {name}: component {c} shipped {shipped}, ordered {cap} ({} kits × {})",
                    self.lines[*l].quantity,
                    self.per_kit(*l, c).unwrap_or(0)
                ),
            });
        }
        if !over.is_empty() {
            problems.push(format!("over-shipment: {}", over.join(", ")));
        }
        if !problems.is_empty() {
            return Err(LedgerProblem::new(problems.join("; ")));
        }

        let mut shares = Vec::new();
        for l in touched {
            let before = self.store_units(policy, l, cum);
            let after = self.store_units(policy, l, &new_cum);
            let q = after.saturating_sub(before);
            if q == 0 {
                continue;
            }
            let id = self.lines[l].id.clone();
            if kit_lines.contains(&l) {
                let sources: Vec<(Source, u64)> = alloc
                    .range((l, None)..)
                    .take_while(|((bl, _), _)| *bl == l)
                    .flat_map(|(_, s)| s.iter().cloned())
                    .collect();
                shares.push(packs.kit_share(id, q, &sources));
            } else {
                let mut stream = alloc.get(&(l, None)).cloned().unwrap_or_default();
                let taken = take(&mut stream, q);
                shares.extend(packs.plain_shares(&id, q, &taken));
            }
        }
        *cum = new_cum;
        Ok(shares)
    }
}

/// Takes up to `want` units from the front of a source stream.
fn take(stream: &mut Vec<(Source, u64)>, want: u64) -> Vec<(Source, u64)> {
    let mut out = Vec::new();
    let mut left = want;
    while left > 0 && !stream.is_empty() {
        let (src, q) = stream[0];
        let t = q.min(left);
        out.push((src, t));
        left -= t;
        if t == q {
            stream.remove(0);
        } else {
            stream[0].1 -= t;
        }
    }
    out
}

/// How a shipment's units sit in its packages.
struct Packaging<'v> {
    v: &'v ShipmentVersion,
    /// Per shipment line (by index): where its units are, in package order.
    sources: Vec<Vec<(Source, u64)>>,
    /// Packages that list no lines: where unpackaged units may be.
    unlisted: Vec<usize>,
}

impl<'v> Packaging<'v> {
    fn new(v: &'v ShipmentVersion) -> Self {
        let mut sources: Vec<Vec<(Source, u64)>> = vec![Vec::new(); v.lines.len()];
        let mut used: Vec<u64> = vec![0; v.lines.len()];
        for (pi, p) in v.packages.iter().enumerate() {
            for pl in &p.lines {
                let li = v
                    .lines
                    .iter()
                    .position(|l| l.line_number == pl.line_number)
                    .or_else(|| {
                        let mut it = v
                            .lines
                            .iter()
                            .enumerate()
                            .filter(|(_, l)| l.sku == pl.sku)
                            .map(|(i, _)| i);
                        match (it.next(), it.next()) {
                            (Some(i), None) => Some(i),
                            _ => None,
                        }
                    });
                let Some(li) = li else { continue };
                let room = v.lines[li].quantity.saturating_sub(used[li]);
                let q = pl.quantity.min(room);
                if q == 0 {
                    continue;
                }
                used[li] += q;
                match sources[li].last_mut() {
                    Some((Some(last), n)) if *last == pi => *n += q,
                    _ => sources[li].push((Some(pi), q)),
                }
            }
        }
        let single = (v.packages.len() == 1).then_some(0);
        for (li, l) in v.lines.iter().enumerate() {
            let rest = l.quantity.saturating_sub(used[li]);
            if rest > 0 {
                sources[li].push((single, rest));
            }
        }
        let unlisted = v
            .packages
            .iter()
            .enumerate()
            .filter(|(_, p)| p.lines.is_empty())
            .map(|(i, _)| i)
            .collect();
        Packaging {
            v,
            sources,
            unlisted,
        }
    }

    fn header_carrier(&self) -> Option<String> {
        non_empty(&self.v.carrier).map(str::to_string)
    }

    fn carrier(&self, src: Source) -> Option<String> {
        match src {
            Some(pi) => non_empty(&self.v.packages[pi].carrier)
                .map(str::to_string)
                .or_else(|| self.header_carrier()),
            None => {
                let mut cs = self.unlisted.iter().map(|pi| self.carrier(Some(*pi)));
                match cs.next() {
                    Some(first) if cs.all(|c| c == first) => first,
                    _ => self.header_carrier(),
                }
            }
        }
    }

    fn keys(&self, src: Source) -> Vec<String> {
        match src {
            Some(pi) => vec![self.v.packages[pi].key.clone()],
            None => self
                .unlisted
                .iter()
                .map(|pi| self.v.packages[*pi].key.clone())
                .collect(),
        }
    }

    /// One share per carrier, in order of first appearance.
    fn plain_shares(&self, id: &str, q: u64, taken: &[(Source, u64)]) -> Vec<LineShare> {
        let mut out: Vec<(Option<String>, u64, BTreeSet<String>)> = Vec::new();
        for (src, n) in taken {
            let c = self.carrier(*src);
            let i = match out.iter().position(|(oc, _, _)| *oc == c) {
                Some(i) => i,
                None => {
                    out.push((c, 0, BTreeSet::new()));
                    out.len() - 1
                }
            };
            out[i].1 += n;
            out[i].2.extend(self.keys(*src));
        }
        let got: u64 = out.iter().map(|(_, n, _)| n).sum();
        if got < q {
            // Not reached in practice (a plain line's share equals its
            // units); keep the quantity whole rather than lose units.
            match out.last_mut() {
                Some(last) => last.1 += q - got,
                None => out.push((self.header_carrier(), q - got, BTreeSet::new())),
            }
        }
        out.into_iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(carrier, quantity, keys)| LineShare {
                store_line_id: id.to_string(),
                quantity,
                carrier,
                package_keys: keys.into_iter().collect(),
            })
            .collect()
    }

    /// A kit line's share: the carrier that carried most component units.
    fn kit_share(&self, id: String, q: u64, sources: &[(Source, u64)]) -> LineShare {
        let mut per: Vec<(Option<String>, u64)> = Vec::new();
        let mut keys = BTreeSet::new();
        // Package order, so ties go to the first carrier in package order.
        let mut ordered: Vec<(Source, u64)> = sources.to_vec();
        ordered.sort_by_key(|(s, _)| s.map_or(usize::MAX, |p| p));
        for (src, n) in &ordered {
            let c = self.carrier(*src);
            match per.iter_mut().find(|(oc, _)| *oc == c) {
                Some(e) => e.1 += n,
                None => per.push((c, *n)),
            }
            keys.extend(self.keys(*src));
        }
        let mut best: Option<(Option<String>, u64)> = None;
        for (c, n) in per {
            if best.as_ref().is_none_or(|(_, bn)| n > *bn) {
                best = Some((c, n));
            }
        }
        LineShare {
            store_line_id: id,
            quantity: q,
            carrier: best.map_or_else(|| self.header_carrier(), |(c, _)| c),
            package_keys: keys.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipment::{KitLink, Package, PackageLine, ShipmentLine};

    // ---- builder ------------------------------------------------------

    struct B(ShipmentVersion);

    fn ship(number: &str) -> B {
        B(ShipmentVersion {
            number: number.to_string(),
            warehouse_id: None,
            status: WarehouseStatus::Shipped,
            order_refs: vec!["#1001".into()],
            carrier: Some("UPS".into()),
            service: None,
            tracking_url: None,
            shipped_at: None,
            updated_at: None,
            lines: Vec::new(),
            packages: Vec::new(),
        })
    }

    impl B {
        fn status(mut self, s: WarehouseStatus) -> Self {
            self.0.status = s;
            self
        }
        fn carrier(mut self, c: Option<&str>) -> Self {
            self.0.carrier = c.map(Into::into);
            self
        }
        fn push(
            mut self,
            ln: &str,
            sku: &str,
            qty: u64,
            store: Option<&str>,
            kit: Option<KitLink>,
        ) -> Self {
            self.0.lines.push(ShipmentLine {
                line_number: ln.into(),
                sku: sku.into(),
                quantity: qty,
                ordered_quantity: None,
                store_line_id: store.map(Into::into),
                kit,
            });
            self
        }
        /// A plain line.
        fn line(self, ln: &str, sku: &str, qty: u64) -> Self {
            self.push(ln, sku, qty, None, None)
        }
        /// A plain line carrying a customerLineNumber.
        fn line_for(self, ln: &str, sku: &str, qty: u64, store: &str) -> Self {
            self.push(ln, sku, qty, Some(store), None)
        }
        /// A kit component line with a kit link.
        fn comp(
            self,
            ln: &str,
            sku: &str,
            qty: u64,
            kit_sku: Option<&str>,
            per_kit: Option<u64>,
        ) -> Self {
            let link = KitLink {
                line_number: "K".into(),
                sku: kit_sku.map(Into::into),
                store_line_id: None,
                kit_quantity: None,
                per_kit,
            };
            self.push(ln, sku, qty, None, Some(link))
        }
        fn pkg(
            mut self,
            key: &str,
            tracking: &str,
            carrier: Option<&str>,
            lines: &[(&str, u64)],
        ) -> Self {
            let lines = lines
                .iter()
                .map(|(ln, q)| PackageLine {
                    line_number: ln.to_string(),
                    sku: self
                        .0
                        .lines
                        .iter()
                        .find(|l| l.line_number == *ln)
                        .map(|l| l.sku.clone())
                        .unwrap_or_default(),
                    quantity: *q,
                })
                .collect();
            self.0.packages.push(Package {
                key: key.into(),
                tracking_number: Some(tracking.into()),
                carrier: carrier.map(Into::into),
                service: None,
                lines,
            });
            self
        }
        /// Without packages, one implicit package holding every line.
        fn build(mut self) -> ShipmentVersion {
            if self.0.packages.is_empty() {
                let lines = self
                    .0
                    .lines
                    .iter()
                    .map(|l| PackageLine {
                        line_number: l.line_number.clone(),
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                self.0.packages.push(Package {
                    key: "shipment".into(),
                    tracking_number: Some("T0".into()),
                    carrier: None,
                    service: None,
                    lines,
                });
            }
            self.0
        }
    }

    fn gid(n: u32) -> String {
        format!("gid://shopify/LineItem/{n}")
    }

    fn order(lines: &[(u32, &str, u64)]) -> Vec<OrderLine> {
        lines
            .iter()
            .map(|(n, sku, q)| OrderLine {
                id: gid(*n),
                sku: Some(sku.to_string()),
                quantity: *q,
                removed: 0,
            })
            .collect()
    }

    /// `order` with `removed` units taken off line `n` by a store edit.
    fn edited(mut lines: Vec<OrderLine>, n: u32, removed: u64) -> Vec<OrderLine> {
        for l in &mut lines {
            if l.id == gid(n) {
                l.quantity -= removed;
                l.removed += removed;
            }
        }
        lines
    }

    fn recipe(kit: &str, comps: &[(&str, u64)]) -> Recipes {
        let mut r = Recipes::new();
        r.insert(
            kit.into(),
            comps.iter().map(|(c, p)| (c.to_string(), *p)).collect(),
        );
        r
    }

    fn run(
        order: &[OrderLine],
        recipes: &Recipes,
        policy: KitPolicy,
        ships: &[ShipmentVersion],
    ) -> Vec<ShipmentShares> {
        let keys: Vec<String> = (0..ships.len()).map(|i| format!("shp_{i}")).collect();
        let inputs: Vec<ShipmentInput<'_>> = ships
            .iter()
            .zip(&keys)
            .map(|(v, k)| ShipmentInput { key: k, version: v })
            .collect();
        attribute(order, recipes, policy, &inputs)
    }

    /// Expected share: (store line number, qty, carrier, package keys).
    type S = (u32, u64, Option<&'static str>, &'static [&'static str]);
    /// Expected outcome per shipment: shares, or substrings of the error.
    enum X {
        Ok(Vec<S>),
        Err(&'static [&'static str]),
    }

    struct Case {
        name: &'static str,
        order: Vec<OrderLine>,
        recipes: Recipes,
        policy: KitPolicy,
        ships: Vec<ShipmentVersion>,
        expect: Vec<X>,
    }

    fn check(c: &Case) {
        let got = run(&c.order, &c.recipes, c.policy, &c.ships);
        assert_eq!(got.len(), c.expect.len(), "{}: outcome count", c.name);
        for (i, (g, x)) in got.iter().zip(&c.expect).enumerate() {
            assert_eq!(g.key, format!("shp_{i}"), "{}", c.name);
            match (x, &g.result) {
                (X::Ok(want), Ok(have)) => {
                    let want: Vec<LineShare> = want
                        .iter()
                        .map(|(n, q, carrier, keys)| LineShare {
                            store_line_id: gid(*n),
                            quantity: *q,
                            carrier: carrier.map(Into::into),
                            package_keys: keys.iter().map(|k| k.to_string()).collect(),
                        })
                        .collect();
                    assert_eq!(have, &want, "{}: shipment {i}", c.name);
                }
                (X::Err(parts), Err(p)) => {
                    for part in *parts {
                        assert!(
                            p.message.contains(part),
                            "{}: shipment {i}: {:?} lacks {part:?}",
                            c.name,
                            p.message
                        );
                    }
                }
                (X::Ok(_), Err(p)) => {
                    panic!("{}: shipment {i}: unexpected error {}", c.name, p.message)
                }
                (X::Err(_), Ok(s)) => panic!("{}: shipment {i}: expected error, got {s:?}", c.name),
            }
        }
    }

    const CK: KitPolicy = KitPolicy::CompleteKits;
    const FC: KitPolicy = KitPolicy::FirstComponent;
    const UPS: Option<&str> = Some("UPS");
    const FEDEX: Option<&str> = Some("FedEx");

    fn kit_5_ships() -> Vec<ShipmentVersion> {
        vec![
            ship("S1")
                .comp("2", "COMP-A", 2, Some("KIT-1"), Some(1))
                .comp("3", "COMP-B", 2, Some("KIT-1"), Some(2))
                .pkg("C1", "T1", None, &[("2", 2), ("3", 2)])
                .build(),
            ship("S2")
                .comp("3", "COMP-B", 2, Some("KIT-1"), Some(2))
                .pkg("C2", "T2", None, &[("3", 2)])
                .build(),
        ]
    }

    fn cases() -> Vec<Case> {
        let none = Recipes::new;
        vec![
            Case {
                name: "scenario 1: A×2 in one package",
                order: order(&[(1, "A", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 2)
                        .pkg("C1", "T1", None, &[("1", 2)])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 2, UPS, &["C1"])])],
            },
            Case {
                name: "scenario 2: A×2 then B×1 in two shipments",
                order: order(&[(1, "A", 2), (2, "B", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 2)
                        .pkg("C1", "T1", None, &[("1", 2)])
                        .build(),
                    ship("S2")
                        .line("2", "B", 1)
                        .pkg("C2", "T2", None, &[("2", 1)])
                        .build(),
                ],
                expect: vec![
                    X::Ok(vec![(1, 2, UPS, &["C1"])]),
                    X::Ok(vec![(2, 1, UPS, &["C2"])]),
                ],
            },
            Case {
                name: "scenario 3: A×3 over two packages",
                order: order(&[(1, "A", 3)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 3)
                        .pkg("C2", "T2", None, &[("1", 1)])
                        .pkg("C1", "T1", None, &[("1", 2)])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 3, UPS, &["C1", "C2"])])],
            },
            Case {
                name: "scenario 4: KIT-1×2 from components, complete_kits",
                order: order(&[(1, "KIT-1", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .comp("2", "COMP-A", 2, Some("KIT-1"), Some(1))
                        .comp("3", "COMP-B", 4, Some("KIT-1"), Some(2))
                        .pkg("C1", "T1", None, &[("2", 2), ("3", 4)])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 2, UPS, &["C1"])])],
            },
            Case {
                name: "scenario 4: KIT-1×2 from components, first_component",
                order: order(&[(1, "KIT-1", 2)]),
                recipes: none(),
                policy: FC,
                ships: vec![
                    ship("S1")
                        .comp("2", "COMP-A", 2, Some("KIT-1"), Some(1))
                        .comp("3", "COMP-B", 4, Some("KIT-1"), Some(2))
                        .pkg("C1", "T1", None, &[("2", 2), ("3", 4)])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 2, UPS, &["C1"])])],
            },
            Case {
                name: "scenario 5: complete_kits gives 1 then 1",
                order: order(&[(1, "KIT-1", 2)]),
                recipes: none(),
                policy: CK,
                ships: kit_5_ships(),
                expect: vec![
                    X::Ok(vec![(1, 1, UPS, &["C1"])]),
                    X::Ok(vec![(1, 1, UPS, &["C2"])]),
                ],
            },
            Case {
                name: "scenario 5: first_component gives 2 then nothing",
                order: order(&[(1, "KIT-1", 2)]),
                recipes: none(),
                policy: FC,
                ships: kit_5_ships(),
                expect: vec![X::Ok(vec![(1, 2, UPS, &["C1"])]), X::Ok(vec![])],
            },
            Case {
                name: "scenario 10: over-shipment A×2 for A×1",
                order: order(&[(1, "A", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![ship("S1").line("1", "A", 2).build()],
                expect: vec![X::Err(&["over-shipment", "line A: shipped 2, ordered 1"])],
            },
            Case {
                name: "a line the store removed, shipped anyway: the rest still counts",
                order: edited(order(&[(1, "A", 1), (2, "B", 2)]), 2, 2),
                recipes: none(),
                policy: CK,
                ships: vec![ship("S1").line("1", "A", 1).line("2", "B", 2).build()],
                expect: vec![X::Ok(vec![(1, 1, UPS, &["shipment"])])],
            },
            Case {
                name: "units the store removed from a line, shipped anyway: the store keeps its quantity",
                order: edited(order(&[(1, "A", 3)]), 1, 1),
                recipes: none(),
                policy: CK,
                ships: vec![ship("S1").line("1", "A", 3).build()],
                expect: vec![X::Ok(vec![(1, 2, UPS, &["shipment"])])],
            },
            Case {
                name: "more than was ever ordered is still an over-shipment",
                order: edited(order(&[(1, "A", 3)]), 1, 1),
                recipes: none(),
                policy: CK,
                ships: vec![ship("S1").line("1", "A", 4).build()],
                expect: vec![X::Err(&["over-shipment", "line A: shipped 4, ordered 3"])],
            },
            Case {
                name: "store line by customerLineNumber (gid tail and full gid) beats SKU order",
                order: order(&[(1, "A", 1), (2, "A", 1), (3, "B", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line_for("10", "A", 1, "2")
                        .line_for("11", "B", 1, &gid(3))
                        .build(),
                ],
                expect: vec![X::Ok(vec![
                    (2, 1, UPS, &["shipment"]),
                    (3, 1, UPS, &["shipment"]),
                ])],
            },
            Case {
                name: "store line by SKU when customerLineNumber matches nothing",
                order: order(&[(1, "A", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![ship("S1").line_for("10", "A", 1, "999").build()],
                expect: vec![X::Ok(vec![(1, 1, UPS, &["shipment"])])],
            },
            Case {
                name: "two lines with the same SKU fill in order, then over-ship the last",
                order: order(&[(1, "A", 1), (2, "A", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1").line("1", "A", 2).build(),
                    ship("S2").line("1", "A", 1).build(),
                    ship("S3").line("1", "A", 1).build(),
                ],
                expect: vec![
                    X::Ok(vec![(1, 1, UPS, &["shipment"]), (2, 1, UPS, &["shipment"])]),
                    X::Ok(vec![(2, 1, UPS, &["shipment"])]),
                    X::Err(&["line A: shipped 3, ordered 2"]),
                ],
            },
            Case {
                name: "kit components without kit links tied through known recipes",
                order: order(&[(1, "A", 1), (2, "KIT-1", 2)]),
                recipes: recipe("KIT-1", &[("COMP-A", 1), ("COMP-B", 2)]),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 1)
                        .line("2", "COMP-A", 2)
                        .line("3", "COMP-B", 4)
                        .build(),
                ],
                expect: vec![X::Ok(vec![
                    (1, 1, UPS, &["shipment"]),
                    (2, 2, UPS, &["shipment"]),
                ])],
            },
            Case {
                name: "pulled components tied through a recipe learnt from another shipment's links",
                order: order(&[(1, "KIT-1", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .comp("2", "COMP-A", 1, Some("KIT-1"), Some(1))
                        .comp("3", "COMP-B", 2, Some("KIT-1"), Some(2))
                        .build(),
                    ship("S2")
                        .line("2", "COMP-A", 1)
                        .line("3", "COMP-B", 2)
                        .build(),
                ],
                expect: vec![
                    X::Ok(vec![(1, 1, UPS, &["shipment"])]),
                    X::Ok(vec![(1, 1, UPS, &["shipment"])]),
                ],
            },
            Case {
                name: "kit link by the kit's store line id",
                order: order(&[(1, "KIT-1", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![{
                    let mut v = ship("S1").comp("2", "COMP-A", 1, None, Some(1)).build();
                    v.lines[0].kit.as_mut().unwrap().store_line_id = Some("1".into());
                    v
                }],
                expect: vec![X::Ok(vec![(1, 1, UPS, &["shipment"])])],
            },
            Case {
                name: "untied component: error names the SKU, nothing of the shipment counts",
                order: order(&[(1, "A", 1), (2, "KIT-1", 1)]),
                recipes: recipe("KIT-1", &[("COMP-A", 1)]),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 1)
                        .line("2", "COMP-Z", 1)
                        .line("3", "COMP-Y", 1)
                        .build(),
                    ship("S2").line("1", "A", 1).build(),
                ],
                expect: vec![
                    X::Err(&["SKUs COMP-Z, COMP-Y match no line of the order"]),
                    X::Ok(vec![(1, 1, UPS, &["shipment"])]),
                ],
            },
            Case {
                name: "single unmatched SKU",
                order: order(&[(1, "A", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![ship("S1").line("1", "X", 1).build()],
                expect: vec![X::Err(&["SKU X matches no line of the order"])],
            },
            Case {
                name: "unknown recipe: link without per_kit",
                order: order(&[(1, "KIT-1", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .comp("2", "COMP-A", 1, Some("KIT-1"), Some(1))
                        .comp("3", "COMP-B", 2, Some("KIT-1"), None)
                        .build(),
                ],
                expect: vec![X::Err(&["kit KIT-1", "COMP-B"])],
            },
            Case {
                name: "recipe completes a link without per_kit",
                order: order(&[(1, "KIT-1", 1)]),
                recipes: recipe("KIT-1", &[("COMP-B", 2)]),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .comp("2", "COMP-A", 1, Some("KIT-1"), Some(1))
                        .comp("3", "COMP-B", 2, Some("KIT-1"), None)
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 1, UPS, &["shipment"])])],
            },
            Case {
                name: "component of two different kits of the order is ambiguous",
                order: order(&[(1, "KIT-1", 1), (2, "KIT-2", 1)]),
                recipes: {
                    let mut r = recipe("KIT-1", &[("COMP-A", 1)]);
                    r.append(&mut recipe("KIT-2", &[("COMP-A", 1)]));
                    r
                },
                policy: CK,
                ships: vec![ship("S1").line("2", "COMP-A", 1).build()],
                expect: vec![X::Err(&["COMP-A", "KIT-1, KIT-2"])],
            },
            Case {
                name: "Shipping / New / Rolled Back contribute nothing",
                order: order(&[(1, "A", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .status(WarehouseStatus::Shipping)
                        .line("1", "A", 2)
                        .build(),
                    ship("S2")
                        .status(WarehouseStatus::New)
                        .line("1", "A", 2)
                        .build(),
                    ship("S3")
                        .status(WarehouseStatus::RolledBack)
                        .line("1", "A", 9)
                        .build(),
                    ship("S4").line("1", "A", 2).build(),
                ],
                expect: vec![
                    X::Ok(vec![]),
                    X::Ok(vec![]),
                    X::Ok(vec![]),
                    X::Ok(vec![(1, 2, UPS, &["shipment"])]),
                ],
            },
            Case {
                name: "two carriers in one shipment make two shares",
                order: order(&[(1, "A", 3), (2, "B", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 3)
                        .line("2", "B", 1)
                        .pkg("C1", "T1", None, &[("1", 1), ("2", 1)])
                        .pkg("C2", "T2", FEDEX, &[("1", 1)])
                        .pkg("C3", "T3", None, &[("1", 1)])
                        .build(),
                ],
                expect: vec![X::Ok(vec![
                    (1, 2, UPS, &["C1", "C3"]),
                    (1, 1, FEDEX, &["C2"]),
                    (2, 1, UPS, &["C1"]),
                ])],
            },
            Case {
                name: "an error shipment does not count for later ones",
                order: order(&[(1, "A", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1").line("1", "A", 3).build(),
                    ship("S2").line("1", "A", 2).build(),
                ],
                expect: vec![
                    X::Err(&["line A: shipped 3, ordered 2"]),
                    X::Ok(vec![(1, 2, UPS, &["shipment"])]),
                ],
            },
            Case {
                name: "kit over-shipment counts component units",
                order: order(&[(1, "KIT-1", 1)]),
                recipes: recipe("KIT-1", &[("COMP-A", 1), ("COMP-B", 2)]),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("2", "COMP-A", 1)
                        .line("3", "COMP-B", 3)
                        .build(),
                ],
                expect: vec![X::Err(&[
                    "line KIT-1: component COMP-B shipped 3, ordered 2 (1 kits × 2)",
                ])],
            },
            Case {
                name: "kit over two carriers goes to the one carrying most, keys of all",
                order: order(&[(1, "KIT-1", 1)]),
                recipes: recipe("KIT-1", &[("COMP-A", 1), ("COMP-B", 2)]),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("2", "COMP-A", 1)
                        .line("3", "COMP-B", 2)
                        .pkg("C1", "T1", None, &[("2", 1)])
                        .pkg("C2", "T2", FEDEX, &[("3", 2)])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 1, FEDEX, &["C1", "C2"])])],
            },
            Case {
                name: "units no package lists: single package takes them; no carrier anywhere",
                order: order(&[(1, "A", 2)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .carrier(None)
                        .line("1", "A", 2)
                        .pkg("C1", "T1", None, &[])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 2, None, &["C1"])])],
            },
            Case {
                name: "units no package lists, several packages: keys of the unlisted ones",
                order: order(&[(1, "A", 2), (2, "B", 1)]),
                recipes: none(),
                policy: CK,
                ships: vec![
                    ship("S1")
                        .line("1", "A", 2)
                        .line("2", "B", 1)
                        .pkg("C1", "T1", None, &[("2", 1)])
                        .pkg("C2", "T2", FEDEX, &[])
                        .build(),
                ],
                expect: vec![X::Ok(vec![(1, 2, FEDEX, &["C2"]), (2, 1, UPS, &["C1"])])],
            },
        ]
    }

    #[test]
    fn attribute_table() {
        for c in cases() {
            check(&c);
        }
    }

    /// Scenario 6: a repeat is the same shipment; recomputing gives the same
    /// shares, and once those are sent nothing is left to send.
    #[test]
    fn scenario_6_repeat_changes_nothing() {
        let o = order(&[(1, "A", 1)]);
        let v = ship("S1")
            .line("1", "A", 1)
            .pkg("C1", "T1", None, &[("1", 1)])
            .build();
        let first = run(&o, &Recipes::new(), CK, std::slice::from_ref(&v));
        for _ in 0..2 {
            let again = run(&o, &Recipes::new(), CK, std::slice::from_ref(&v.clone()));
            assert_eq!(again, first);
        }
        let shares = first[0].result.clone().unwrap();
        assert_eq!(still_to_send(&shares, &Sent::new()), shares);
        let sent: Sent = shares
            .iter()
            .map(|s| (s.store_line_id.clone(), s.quantity))
            .collect();
        assert!(still_to_send(&shares, &sent).is_empty());
    }

    /// Scenario 8 (quantity side): the same shipment with a corrected
    /// tracking number changes no quantity.
    #[test]
    fn scenario_8_corrected_tracking_same_quantities() {
        let o = order(&[(1, "A", 1)]);
        let v1 = ship("S1")
            .line("1", "A", 1)
            .pkg("C1", "T1", None, &[("1", 1)])
            .build();
        let v9 = ship("S1")
            .line("1", "A", 1)
            .pkg("C1", "T9", None, &[("1", 1)])
            .build();
        let a = run(&o, &Recipes::new(), CK, &[v1]);
        let b = run(&o, &Recipes::new(), CK, &[v9]);
        assert_eq!(a, b);
        let shares = b[0].result.clone().unwrap();
        let sent: Sent = [(gid(1), 1)].into_iter().collect();
        assert!(still_to_send(&shares, &sent).is_empty());
    }

    #[test]
    fn still_to_send_table() {
        let sh = |line: u32, q: u64, c: Option<&str>| LineShare {
            store_line_id: gid(line),
            quantity: q,
            carrier: c.map(Into::into),
            package_keys: vec![],
        };
        /// (name, shares, sent by store line number, expected).
        type Case = (
            &'static str,
            Vec<LineShare>,
            Vec<(u32, u64)>,
            Vec<LineShare>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing sent",
                vec![sh(1, 2, UPS)],
                vec![],
                vec![sh(1, 2, UPS)],
            ),
            (
                "partly sent",
                vec![sh(1, 3, UPS)],
                vec![(1, 1)],
                vec![sh(1, 2, UPS)],
            ),
            ("all sent", vec![sh(1, 3, UPS)], vec![(1, 3)], vec![]),
            (
                "more sent than shipped never un-fulfils",
                vec![sh(1, 1, UPS)],
                vec![(1, 5)],
                vec![],
            ),
            (
                "sent taken from the line's shares in order",
                vec![sh(1, 1, UPS), sh(1, 2, FEDEX), sh(2, 1, UPS)],
                vec![(1, 2)],
                vec![sh(1, 1, FEDEX), sh(2, 1, UPS)],
            ),
            (
                "other lines' sent ignored",
                vec![sh(1, 1, UPS)],
                vec![(2, 1)],
                vec![sh(1, 1, UPS)],
            ),
        ];
        for (name, shares, sent, want) in cases {
            let sent: Sent = sent.into_iter().map(|(l, q)| (gid(l), q)).collect();
            assert_eq!(still_to_send(&shares, &sent), want, "{name}");
        }
    }

    #[test]
    fn recipes_seen_collects_links_with_sku_and_per_kit() {
        let v = ship("S1")
            .comp("2", "COMP-A", 1, Some("KIT-1"), Some(1))
            .comp("3", "COMP-B", 2, Some("KIT-1"), Some(2))
            .comp("4", "COMP-C", 2, Some("KIT-1"), None)
            .comp("5", "COMP-D", 2, None, Some(2))
            .comp("6", "COMP-E", 3, Some("KIT-2"), Some(3))
            .line("7", "A", 1)
            .build();
        let mut want = recipe("KIT-1", &[("COMP-A", 1), ("COMP-B", 2)]);
        want.append(&mut recipe("KIT-2", &[("COMP-E", 3)]));
        assert_eq!(recipes_seen(&v), want);
    }

    #[test]
    fn line_id_matching() {
        assert!(same_line_id("gid://shopify/LineItem/12", "12"));
        assert!(same_line_id(
            "gid://shopify/LineItem/12",
            "gid://shopify/LineItem/12"
        ));
        assert!(!same_line_id("gid://shopify/LineItem/12", "2"));
        assert!(!same_line_id("gid://shopify/LineItem/12", ""));
        assert!(same_line_id("12", "12"));
    }
}
