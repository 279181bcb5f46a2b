//! Field resolvers over the sandbox state, for apollo-compiler's executor.
//!
//! apollo-compiler walks the validated operation (aliases, fragments,
//! `__typename`, variables, argument defaults, null propagation); this module
//! only answers "what is field F of object O". Objects are cheap handles
//! (indexes into the state), so the executor may resolve them repeatedly.

use std::cell::RefCell;
use std::rc::Rc;

use apollo_compiler::resolvers::{FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue, serde_json_bytes};
use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::model::{Address, FulfillmentInput, State, TrackingInput, UserError, gid, parse_gid};
use crate::search::{FulfillmentOrderQuery, OrderQuery};
use crate::webhooks::{self, AppKey};

/// Shopify's maximum page size for connections and list arguments.
const MAX_PAGE: i64 = 250;

/// The state, borrowed for one request. A `RefCell` because mutation
/// resolvers change it while the executor holds shared references.
pub(crate) struct Ctx {
    pub st: RefCell<State>,
    /// The access scopes of the request's token.
    pub scopes: Vec<String>,
    /// Fields refused for a missing scope: (message, Shopify's
    /// `requiredAccess`), so the HTTP layer can give their errors the
    /// `ACCESS_DENIED` code (the executor's errors carry only a message).
    pub denied: RefCell<Vec<(String, String)>>,
    /// The app the token belongs to: whose webhook subscriptions it sees.
    pub app: AppKey,
    /// [`SandboxConfig::allow_http_webhooks`](crate::SandboxConfig).
    pub allow_http_webhooks: bool,
}

impl Ctx {
    pub fn new(st: State, scopes: Vec<String>, app: AppKey, allow_http_webhooks: bool) -> Self {
        Ctx {
            st: RefCell::new(st),
            scopes,
            denied: RefCell::new(Vec::new()),
            app,
            allow_http_webhooks,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Obj<'c> {
    ctx: &'c Ctx,
    kind: Kind,
}

impl<'c> Obj<'c> {
    pub fn query(ctx: &'c Ctx) -> Self {
        Obj {
            ctx,
            kind: Kind::Query,
        }
    }
    pub fn mutation(ctx: &'c Ctx) -> Self {
        Obj {
            ctx,
            kind: Kind::Mutation,
        }
    }
}

#[derive(Clone)]
enum Kind {
    Query,
    Mutation,
    Order(usize),
    LineItem(usize, usize),
    LineItemGroup(usize, usize),
    ProductVariant(usize, usize),
    FulfillmentOrder(usize, usize),
    FoLineItem(usize, usize, usize),
    AssignedLocation(u64),
    Location(u64),
    Fulfillment(usize, usize),
    FulfillmentLineItem(usize, usize, usize),
    TrackingInfo(Option<String>, Option<String>, Option<String>),
    MailingAddress(Rc<Address>),
    /// The shipping line of order `.0`.
    ShippingLine(usize),
    /// (order, fulfillment order, hold) indexes.
    FulfillmentHold(usize, usize, usize),
    WebhookSubscription(u64),
    WebhookEndpoint(Rc<str>),
    ApiVersion,
    /// `WebhookSubscriptionCreatePayload` / `…DeletePayload`: the
    /// subscription made, the id deleted, the user errors.
    WebhookPayload(
        &'static str,
        Option<u64>,
        Option<String>,
        Rc<Vec<UserError>>,
    ),
    Connection(Rc<Conn>),
    Edge(Rc<str>, String, Box<Kind>),
    PageInfo(Rc<PageInfo>),
    Payload(&'static str, Option<(usize, usize)>, Rc<Vec<UserError>>),
    UserError(UserError),
    Shop,
    AppInstallation,
    AccessScope(Rc<str>),
}

struct Conn {
    type_name: String,
    edge_type: Rc<str>,
    items: Vec<(String, Kind)>,
    page: Rc<PageInfo>,
}

struct PageInfo {
    has_next: bool,
    has_prev: bool,
    start: Option<String>,
    end: Option<String>,
}

type Res<'a> = Result<ResolvedValue<'a>, FieldError>;

fn err(message: impl Into<String>) -> FieldError {
    FieldError {
        message: message.into(),
    }
}

fn leaf<'a>(v: impl Into<JsonValue>) -> Res<'a> {
    Ok(ResolvedValue::leaf(v))
}

fn opt<'a, T: Into<JsonValue>>(v: Option<T>) -> Res<'a> {
    Ok(match v {
        Some(v) => ResolvedValue::leaf(v),
        None => ResolvedValue::null(),
    })
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn arg_i64(info: &ResolveInfo<'_>, name: &str) -> Option<i64> {
    info.arguments().get(name).and_then(JsonValue::as_i64)
}

fn arg_str<'i>(info: &ResolveInfo<'i>, name: &str) -> Option<&'i str> {
    info.arguments().get(name).and_then(JsonValue::as_str)
}

fn arg_bool(info: &ResolveInfo<'_>, name: &str) -> Option<bool> {
    info.arguments().get(name).and_then(JsonValue::as_bool)
}

fn arg_as<T: for<'de> Deserialize<'de>>(
    info: &ResolveInfo<'_>,
    name: &str,
) -> Result<T, FieldError> {
    let v = info
        .arguments()
        .get(name)
        .cloned()
        .unwrap_or(JsonValue::Null);
    serde_json_bytes::from_value(v).map_err(|e| err(format!("argument {name}: {e}")))
}

/// Sort key of a connection item: (primary value, id as tie-breaker).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Key(i64, u64);

fn cursor(key: &Key) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", key.0, key.1))
}

fn decode_cursor(c: &str) -> Result<Key, FieldError> {
    let bad = || err(format!("Invalid cursor for current pagination sort: {c}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(c)
        .map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok(Key(
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
    ))
}

/// Page size from `first`/`last`, which Shopify requires (one of them) and
/// caps at 250.
fn page_size(info: &ResolveInfo<'_>) -> Result<(Option<usize>, Option<usize>), FieldError> {
    let first = arg_i64(info, "first");
    let last = arg_i64(info, "last");
    if first.is_none() && last.is_none() {
        return Err(err("you must provide one of first or last"));
    }
    let check = |n: Option<i64>, name: &str| -> Result<Option<usize>, FieldError> {
        match n {
            None => Ok(None),
            Some(n) if (0..=MAX_PAGE).contains(&n) => Ok(usize::try_from(n).ok()),
            Some(n) => Err(err(format!(
                "The value of `{name}` must be between 0 and {MAX_PAGE}, got {n}."
            ))),
        }
    };
    Ok((check(first, "first")?, check(last, "last")?))
}

/// Builds a Relay connection. `items` must be sorted ascending by key;
/// `reverse` flips the order as Shopify's `reverse:` argument does.
fn connection<'a>(
    ctx: &'a Ctx,
    info: &ResolveInfo<'_>,
    node_type: &str,
    mut items: Vec<(Key, Kind)>,
) -> Res<'a> {
    let (first, last) = page_size(info)?;
    let reverse = arg_bool(info, "reverse").unwrap_or(false);
    if reverse {
        items.reverse();
    }
    let after = arg_str(info, "after").map(decode_cursor).transpose()?;
    let before = arg_str(info, "before").map(decode_cursor).transpose()?;
    // "After c" in list order: greater keys ascending, smaller keys reversed.
    let beyond = |k: &Key, c: &Key| if reverse { k < c } else { k > c };
    let mut start = match &after {
        Some(c) => items
            .iter()
            .position(|(k, _)| beyond(k, c))
            .unwrap_or(items.len()),
        None => 0,
    };
    let mut end = match &before {
        Some(c) => items
            .iter()
            .position(|(k, _)| k == c || beyond(k, c))
            .unwrap_or(items.len()),
        None => items.len(),
    };
    end = end.max(start);
    if let Some(n) = first {
        end = end.min(start + n);
    }
    if let Some(n) = last {
        start = start.max(end.saturating_sub(n));
    }
    let has_prev = start > 0;
    let has_next = end < items.len();
    let page: Vec<(String, Kind)> = items
        .drain(start..end)
        .map(|(k, kind)| (cursor(&k), kind))
        .collect();
    let page_info = PageInfo {
        has_next,
        has_prev,
        start: page.first().map(|p| p.0.clone()),
        end: page.last().map(|p| p.0.clone()),
    };
    Ok(ResolvedValue::object(Obj {
        ctx,
        kind: Kind::Connection(Rc::new(Conn {
            type_name: format!("{node_type}Connection"),
            edge_type: format!("{node_type}Edge").into(),
            items: page,
            page: Rc::new(page_info),
        })),
    }))
}

impl<'c> Obj<'c> {
    fn obj<'a>(&self, kind: Kind) -> Res<'a>
    where
        'c: 'a,
    {
        Ok(ResolvedValue::object(Obj {
            ctx: self.ctx,
            kind,
        }))
    }

    fn list<'a>(&self, kinds: Vec<Kind>) -> Res<'a>
    where
        'c: 'a,
    {
        let ctx = self.ctx;
        Ok(ResolvedValue::list(
            kinds
                .into_iter()
                .map(move |kind| ResolvedValue::object(Obj { ctx, kind })),
        ))
    }

    /// Refuses `field` unless the request's scopes allow `need` (see
    /// `access.rs`).
    fn need(&self, field: &str, need: Need) -> Result<(), FieldError> {
        if access::allows(&self.ctx.scopes, need) {
            return Ok(());
        }
        let message = access::denied_message(field, need);
        self.ctx
            .denied
            .borrow_mut()
            .push((message.clone(), access::required_access(need)));
        Err(err(message))
    }

    /// Whether the request may see the sandbox's fulfillment orders, once
    /// it may see fulfillment orders at all.
    fn sees_fos(&self) -> bool {
        access::sees_fulfillment_orders(&self.ctx.scopes)
    }

    /// Resolves a GID for `node`/`nodes` (named `field`), checking the
    /// scopes its type needs: an error when they are missing, `None` for
    /// what does not exist or what the scopes hide.
    fn node_kind_checked(&self, field: &str, id: &str) -> Result<Option<Kind>, FieldError> {
        let kind = self.node_kind(id);
        match &kind {
            Some(Kind::Order(..) | Kind::LineItem(..) | Kind::Fulfillment(..)) => {
                self.need(field, Need::Orders)?;
            }
            Some(Kind::FulfillmentOrder(..)) => {
                self.need(field, Need::ReadFulfillmentOrders)?;
                if !self.sees_fos() {
                    return Ok(None);
                }
            }
            _ => {}
        }
        Ok(kind)
    }

    /// Resolves a GID to a `Node` implementer the sandbox serves.
    fn node_kind(&self, id: &str) -> Option<Kind> {
        let st = self.ctx.st.borrow();
        let (ty, n) = parse_gid(id)?;
        match ty {
            "Order" => st.find_order(n).map(Kind::Order),
            "FulfillmentOrder" => st.find_fo(n).map(|(o, f)| Kind::FulfillmentOrder(o, f)),
            "Fulfillment" => st
                .find_fulfillment(n)
                .filter(|&(o, f)| st.orders[o].fulfillments[f].visible())
                .map(|(o, f)| Kind::Fulfillment(o, f)),
            "LineItem" => st.find_line(n).map(|(o, l)| Kind::LineItem(o, l)),
            "Location" => st.locations.contains_key(&n).then_some(Kind::Location(n)),
            _ => None,
        }
    }
}

impl ObjectValue for Obj<'_> {
    fn type_name(&self) -> &str {
        match &self.kind {
            Kind::Query => "QueryRoot",
            Kind::Mutation => "Mutation",
            Kind::Order(..) => "Order",
            Kind::LineItem(..) => "LineItem",
            Kind::LineItemGroup(..) => "LineItemGroup",
            Kind::ProductVariant(..) => "ProductVariant",
            Kind::FulfillmentOrder(..) => "FulfillmentOrder",
            Kind::FoLineItem(..) => "FulfillmentOrderLineItem",
            Kind::AssignedLocation(..) => "FulfillmentOrderAssignedLocation",
            Kind::Location(..) => "Location",
            Kind::Fulfillment(..) => "Fulfillment",
            Kind::FulfillmentLineItem(..) => "FulfillmentLineItem",
            Kind::TrackingInfo(..) => "FulfillmentTrackingInfo",
            Kind::MailingAddress(..) => "MailingAddress",
            Kind::ShippingLine(..) => "ShippingLine",
            Kind::FulfillmentHold(..) => "FulfillmentHold",
            Kind::WebhookSubscription(..) => "WebhookSubscription",
            Kind::WebhookEndpoint(..) => "WebhookHttpEndpoint",
            Kind::ApiVersion => "ApiVersion",
            Kind::WebhookPayload(t, ..) => t,
            Kind::Connection(c) => &c.type_name,
            Kind::Edge(t, ..) => t,
            Kind::PageInfo(..) => "PageInfo",
            Kind::Payload(t, ..) => t,
            Kind::UserError(..) => "UserError",
            Kind::Shop => "Shop",
            Kind::AppInstallation => "AppInstallation",
            Kind::AccessScope(..) => "AccessScope",
        }
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Res<'a> {
        let field = info.field_name();
        let resolved = match &self.kind {
            Kind::Query => self.query_field(field, info),
            Kind::Mutation => self.mutation_field(field, info),
            Kind::Connection(c) => match field {
                "nodes" => self.list(c.items.iter().map(|i| i.1.clone()).collect()),
                "edges" => self.list(
                    c.items
                        .iter()
                        .map(|(cur, k)| {
                            Kind::Edge(c.edge_type.clone(), cur.clone(), Box::new(k.clone()))
                        })
                        .collect(),
                ),
                "pageInfo" => self.obj(Kind::PageInfo(c.page.clone())),
                _ => not_served(),
            },
            Kind::Edge(_, cur, node) => match field {
                "cursor" => leaf(cur.as_str()),
                "node" => self.obj((**node).clone()),
                _ => not_served(),
            },
            Kind::PageInfo(p) => match field {
                "hasNextPage" => leaf(p.has_next),
                "hasPreviousPage" => leaf(p.has_prev),
                "startCursor" => opt(p.start.clone()),
                "endCursor" => opt(p.end.clone()),
                _ => not_served(),
            },
            Kind::TrackingInfo(company, number, url) => match field {
                "company" => opt(company.clone()),
                "number" => opt(number.clone()),
                "url" => opt(url.clone()),
                _ => not_served(),
            },
            Kind::MailingAddress(a) => self.address_field(field, a),
            Kind::WebhookEndpoint(uri) => match field {
                "callbackUrl" => leaf(&**uri),
                _ => not_served(),
            },
            Kind::ApiVersion => match field {
                "handle" => leaf(crate::API_VERSION),
                "displayName" => leaf(crate::API_VERSION),
                "supported" => leaf(true),
                _ => not_served(),
            },
            Kind::WebhookPayload(_, created, deleted, errors) => match field {
                "webhookSubscription" => match created {
                    Some(id) => self.obj(Kind::WebhookSubscription(*id)),
                    None => Ok(ResolvedValue::null()),
                },
                "deletedWebhookSubscriptionId" => opt(deleted.clone()),
                "userErrors" => self.list(errors.iter().cloned().map(Kind::UserError).collect()),
                _ => not_served(),
            },
            Kind::WebhookSubscription(id) => {
                let st = self.ctx.st.borrow();
                let Some(sub) = st.subscriptions.iter().find(|s| s.id == *id) else {
                    return Ok(ResolvedValue::null());
                };
                match field {
                    "id" => leaf(gid("WebhookSubscription", sub.id)),
                    "legacyResourceId" => leaf(sub.id.to_string()),
                    "topic" => leaf(sub.topic.as_str()),
                    "uri" | "callbackUrl" => leaf(sub.uri.as_str()),
                    "format" => leaf("JSON"),
                    "createdAt" | "updatedAt" => leaf(time(sub.created_at)),
                    "includeFields" | "metafieldNamespaces" | "metafields" => {
                        Ok(ResolvedValue::list(Vec::<ResolvedValue<'a>>::new()))
                    }
                    "filter" | "name" => opt(None::<String>),
                    "apiVersion" => self.obj(Kind::ApiVersion),
                    "endpoint" => self.obj(Kind::WebhookEndpoint(Rc::from(sub.uri.as_str()))),
                    _ => not_served(),
                }
            }
            Kind::Payload(_, fulfillment, errors) => match field {
                "fulfillment" => match fulfillment {
                    Some((o, f)) => self.obj(Kind::Fulfillment(*o, *f)),
                    None => Ok(ResolvedValue::null()),
                },
                "userErrors" => self.list(errors.iter().cloned().map(Kind::UserError).collect()),
                _ => not_served(),
            },
            Kind::UserError(e) => match field {
                "field" => match &e.field {
                    Some(f) => Ok(ResolvedValue::list(
                        f.iter()
                            .map(|s| ResolvedValue::leaf(s.as_str()))
                            .collect::<Vec<_>>(),
                    )),
                    None => Ok(ResolvedValue::null()),
                },
                "message" => leaf(e.message.as_str()),
                _ => not_served(),
            },
            Kind::AssignedLocation(loc) => match field {
                "location" => self.obj(Kind::Location(*loc)),
                "name" => leaf(self.ctx.st.borrow().location_name(*loc)),
                "countryCode" => leaf("US"),
                "address1" | "address2" | "city" | "phone" | "province" | "zip" => {
                    opt(None::<String>)
                }
                _ => not_served(),
            },
            Kind::Shop => match field {
                "name" => leaf(crate::SHOP_NAME),
                _ => not_served(),
            },
            Kind::AppInstallation => match field {
                "id" => leaf(gid("AppInstallation", 1)),
                "accessScopes" => self.list(
                    self.ctx
                        .scopes
                        .iter()
                        .map(|s| Kind::AccessScope(Rc::from(s.as_str())))
                        .collect(),
                ),
                _ => not_served(),
            },
            Kind::AccessScope(handle) => match field {
                "handle" => leaf(&**handle),
                "description" => leaf(format!("The {handle} access scope.")),
                _ => not_served(),
            },
            Kind::Location(loc) => match field {
                "id" => leaf(gid("Location", *loc)),
                "legacyResourceId" => leaf(loc.to_string()),
                "name" => leaf(self.ctx.st.borrow().location_name(*loc)),
                _ => not_served(),
            },
            _ => self.state_field(field, info),
        };
        resolved.map_err(|e| {
            if e.message.is_empty() {
                err(format!(
                    "the Shopify sandbox does not implement {}.{field}",
                    self.type_name()
                ))
            } else {
                e
            }
        })
    }
}

/// A field the schema has but the sandbox does not serve: an error with an
/// empty message, replaced by a descriptive one in `resolve_field` (which
/// knows the type and field names).
fn not_served<'a>() -> Res<'a> {
    Err(err(""))
}

impl<'c> Obj<'c> {
    fn query_field<'a>(&'a self, field: &str, info: &'a ResolveInfo<'a>) -> Res<'a>
    where
        'c: 'a,
    {
        match field {
            "shop" => self.obj(Kind::Shop),
            "currentAppInstallation" => self.obj(Kind::AppInstallation),
            "orders" => {
                self.need(field, Need::Orders)?;
                let query = match arg_str(info, "query") {
                    Some(q) => Some(OrderQuery::parse(q).map_err(err)?),
                    None => None,
                };
                let sort = arg_str(info, "sortKey").unwrap_or("PROCESSED_AT");
                let st = self.ctx.st.borrow();
                let mut items: Vec<(Key, Kind)> = st
                    .orders
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| query.as_ref().is_none_or(|q| q.matches(o)))
                    .map(|(i, o)| {
                        let primary = match sort {
                            "CREATED_AT" | "PROCESSED_AT" => o.created_at.as_second(),
                            "UPDATED_AT" => o.updated_at.as_second(),
                            "ORDER_NUMBER" => o
                                .name
                                .chars()
                                .filter(char::is_ascii_digit)
                                .collect::<String>()
                                .parse()
                                .unwrap_or(0),
                            // ID, RELEVANCE and keys the sandbox does not model.
                            _ => 0,
                        };
                        (Key(primary, o.id), Kind::Order(i))
                    })
                    .collect();
                drop(st);
                items.sort_by(|a, b| a.0.cmp(&b.0));
                connection(self.ctx, info, "Order", items)
            }
            "fulfillmentOrders" => {
                // The store's fulfillment orders the app may see, filtered
                // by `query:` (see `FulfillmentOrderQuery`); closed ones
                // (CLOSED, CANCELLED) only with `includeClosed: true`.
                self.need(field, Need::ReadFulfillmentOrders)?;
                let query =
                    FulfillmentOrderQuery::parse(arg_str(info, "query").unwrap_or_default())
                        .map_err(err)?;
                let closed_too = arg_bool(info, "includeClosed").unwrap_or(false);
                let by_updated = arg_str(info, "sortKey") == Some("UPDATED_AT");
                let visible = self.sees_fos();
                let st = self.ctx.st.borrow();
                let mut items: Vec<(Key, Kind)> = st
                    .orders
                    .iter()
                    .enumerate()
                    .filter(|_| visible)
                    .flat_map(|(oi, o)| o.fos.iter().enumerate().map(move |(fi, f)| (oi, fi, f)))
                    .filter(|(_, _, f)| {
                        closed_too || !matches!(f.status.as_str(), "CLOSED" | "CANCELLED")
                    })
                    .filter(|(_, _, f)| query.matches(&f.facts()))
                    .map(|(oi, fi, f)| {
                        let primary = if by_updated {
                            f.updated_at.as_second()
                        } else {
                            0
                        };
                        (Key(primary, f.id), Kind::FulfillmentOrder(oi, fi))
                    })
                    .collect();
                drop(st);
                items.sort_by(|a, b| a.0.cmp(&b.0));
                connection(self.ctx, info, "FulfillmentOrder", items)
            }
            "order" | "fulfillmentOrder" | "fulfillment" | "location" | "node" => {
                let id = arg_str(info, "id").unwrap_or_default();
                let want = match field {
                    "order" => Some("Order"),
                    "fulfillmentOrder" => Some("FulfillmentOrder"),
                    "fulfillment" => Some("Fulfillment"),
                    "location" => Some("Location"),
                    _ => None,
                };
                // A typed lookup needs its type's scope even when the id
                // names nothing.
                match field {
                    "order" | "fulfillment" => self.need(field, Need::Orders)?,
                    "fulfillmentOrder" => self.need(field, Need::ReadFulfillmentOrders)?,
                    _ => {}
                }
                let kind = if want.is_none_or(|w| parse_gid(id).is_some_and(|(t, _)| t == w)) {
                    self.node_kind_checked(field, id)?
                } else {
                    None
                };
                match kind {
                    Some(k) => self.obj(k),
                    None => Ok(ResolvedValue::null()),
                }
            }
            "webhookSubscriptions" => {
                let topics: Option<Vec<String>> = arg_as(info, "topics")?;
                let uri = arg_str(info, "uri").or_else(|| arg_str(info, "callbackUrl"));
                if arg_str(info, "query").is_some() {
                    return Err(err(
                        "the Shopify sandbox does not implement webhookSubscriptions(query:); use topics: and uri:",
                    ));
                }
                if arg_str(info, "format").is_some_and(|f| f != "JSON") {
                    return connection(self.ctx, info, "WebhookSubscription", Vec::new());
                }
                let by_id = arg_str(info, "sortKey") == Some("ID");
                let st = self.ctx.st.borrow();
                let mut items: Vec<(Key, Kind)> = st
                    .subscriptions
                    .iter()
                    .filter(|s| s.app == self.ctx.app)
                    .filter(|s| topics.as_ref().is_none_or(|t| t.contains(&s.topic)))
                    .filter(|s| uri.is_none_or(|u| u == s.uri))
                    .map(|s| {
                        let primary = if by_id { 0 } else { s.created_at.as_second() };
                        (Key(primary, s.id), Kind::WebhookSubscription(s.id))
                    })
                    .collect();
                drop(st);
                items.sort_by(|a, b| a.0.cmp(&b.0));
                connection(self.ctx, info, "WebhookSubscription", items)
            }
            "webhookSubscription" => {
                let id = arg_str(info, "id").unwrap_or_default();
                let st = self.ctx.st.borrow();
                let found = parse_gid(id)
                    .filter(|(k, _)| *k == "WebhookSubscription")
                    .and_then(|(_, n)| {
                        st.subscriptions
                            .iter()
                            .find(|s| s.id == n && s.app == self.ctx.app)
                    })
                    .map(|s| s.id);
                drop(st);
                match found {
                    Some(n) => self.obj(Kind::WebhookSubscription(n)),
                    None => Ok(ResolvedValue::null()),
                }
            }
            "nodes" => {
                let ids: Vec<String> = arg_as(info, "ids")?;
                let ctx = self.ctx;
                let kinds = ids
                    .iter()
                    .map(|id| self.node_kind_checked(field, id))
                    .collect::<Result<Vec<Option<Kind>>, FieldError>>()?;
                Ok(ResolvedValue::list(kinds.into_iter().map(
                    move |k| match k {
                        Some(kind) => ResolvedValue::object(Obj { ctx, kind }),
                        None => ResolvedValue::null(),
                    },
                )))
            }
            _ => not_served(),
        }
    }

    fn mutation_field<'a>(&'a self, field: &str, info: &'a ResolveInfo<'a>) -> Res<'a>
    where
        'c: 'a,
    {
        match field {
            "fulfillmentCreate" => {
                self.need(field, Need::WriteFulfillmentOrders)?;
                let input: FulfillmentInput = arg_as(info, "fulfillment")?;
                if !access::fulfills_fulfillment_orders(&self.ctx.scopes) {
                    // Fulfillment orders the scopes do not cover look as if
                    // they did not exist (see access.rs).
                    let id = input
                        .line_items_by_fulfillment_order
                        .first()
                        .map(|g| g.fulfillment_order_id.clone())
                        .unwrap_or_default();
                    return self.payload(
                        "FulfillmentCreatePayload",
                        Err(vec![UserError {
                            field: Some(vec![
                                "fulfillment".into(),
                                "lineItemsByFulfillmentOrder".into(),
                            ]),
                            message: format!("Fulfillment order {id} does not exist."),
                        }]),
                    );
                }
                let result = self.ctx.st.borrow_mut().fulfillment_create(&input);
                self.payload("FulfillmentCreatePayload", result)
            }
            "fulfillmentTrackingInfoUpdate" => {
                self.need(field, Need::WriteFulfillmentOrders)?;
                let id = arg_str(info, "fulfillmentId").unwrap_or_default();
                let tracking: TrackingInput = arg_as(info, "trackingInfoInput")?;
                let notify = arg_bool(info, "notifyCustomer");
                let result = self
                    .ctx
                    .st
                    .borrow_mut()
                    .tracking_update(id, &tracking, notify);
                self.payload("FulfillmentTrackingInfoUpdatePayload", result)
            }
            "webhookSubscriptionCreate" => {
                let topic = arg_str(info, "topic").unwrap_or_default();
                let input: SubscriptionInput = arg_as(info, "webhookSubscription")?;
                self.subscription_create(topic, &input)
            }
            "webhookSubscriptionDelete" => {
                let id = arg_str(info, "id").unwrap_or_default();
                let result = self.ctx.st.borrow_mut().unsubscribe(&self.ctx.app, id);
                let (deleted, errors) = match result {
                    Ok(id) => (Some(id), Vec::new()),
                    Err(e) => (None, e),
                };
                self.obj(Kind::WebhookPayload(
                    "WebhookSubscriptionDeletePayload",
                    None,
                    deleted,
                    Rc::new(errors),
                ))
            }
            _ => not_served(),
        }
    }

    /// `webhookSubscriptionCreate`: the topic must be one the sandbox
    /// raises and the token's scopes must cover it; the address must be
    /// acceptable (see `webhooks.rs`).
    fn subscription_create<'a>(&self, topic: &str, input: &SubscriptionInput) -> Res<'a>
    where
        'c: 'a,
    {
        let Some(&(_, need)) = webhooks::TOPICS.iter().find(|(t, _)| *t == topic) else {
            return Err(err(format!(
                "the Shopify sandbox does not raise {topic} events; it serves {}",
                webhooks::TOPICS
                    .iter()
                    .map(|t| t.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if input.format.as_deref().is_some_and(|f| f != "JSON") {
            return Err(err("the Shopify sandbox delivers JSON webhooks only"));
        }
        let reply = |created: Option<u64>, errors: Vec<UserError>| {
            self.obj(Kind::WebhookPayload(
                "WebhookSubscriptionCreatePayload",
                created,
                None,
                Rc::new(errors),
            ))
        };
        if !access::allows(&self.ctx.scopes, need) {
            return reply(
                None,
                vec![UserError {
                    field: Some(vec!["topic".into()]),
                    message: format!(
                        "You do not have the required access scope for the {topic} topic: {}",
                        access::required_access(need)
                    ),
                }],
            );
        }
        let (uri, address_field) = match (&input.uri, &input.callback_url) {
            (Some(u), _) => (u.as_str(), "uri"),
            (None, Some(u)) => (u.as_str(), "callbackUrl"),
            (None, None) => ("", "uri"),
        };
        match webhooks::check_address(uri, address_field, self.ctx.allow_http_webhooks) {
            Ok(()) => {}
            Err(Ok(e)) => return reply(None, vec![e]),
            Err(Err(message)) => return Err(err(message)),
        }
        let result = self
            .ctx
            .st
            .borrow_mut()
            .subscribe(&self.ctx.app, topic, uri, address_field);
        match result {
            Ok(id) => reply(Some(id), Vec::new()),
            Err(errors) => reply(None, errors),
        }
    }

    fn payload<'a>(
        &self,
        type_name: &'static str,
        result: Result<(usize, usize), Vec<UserError>>,
    ) -> Res<'a>
    where
        'c: 'a,
    {
        let (fulfillment, errors) = match result {
            Ok(f) => (Some(f), Vec::new()),
            Err(e) => (None, e),
        };
        self.obj(Kind::Payload(type_name, fulfillment, Rc::new(errors)))
    }

    fn address_field<'a>(&self, field: &str, a: &Address) -> Res<'a> {
        let v = match field {
            "firstName" => a.first_name.clone(),
            "lastName" => a.last_name.clone(),
            "name" => {
                let parts: Vec<&str> = [&a.first_name, &a.last_name]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            }
            "company" => a.company.clone(),
            "address1" => a.address1.clone(),
            "address2" => a.address2.clone(),
            "city" => a.city.clone(),
            "province" => a.province.clone(),
            "provinceCode" => a.province_code.clone(),
            "zip" => a.zip.clone(),
            "country" => a.country.clone(),
            "countryCodeV2" => a.country_code.clone(),
            "phone" => a.phone.clone(),
            _ => return not_served(),
        };
        opt(v)
    }

    /// Fields of objects that live in the state (orders and what hangs off them).
    fn state_field<'a>(&'a self, field: &str, info: &'a ResolveInfo<'a>) -> Res<'a>
    where
        'c: 'a,
    {
        let st = self.ctx.st.borrow();
        match self.kind {
            Kind::Order(oi) => {
                let o = &st.orders[oi];
                match field {
                    "id" => leaf(gid("Order", o.id)),
                    "legacyResourceId" => leaf(o.id.to_string()),
                    "name" => leaf(o.name.as_str()),
                    "email" => leaf(o.email.as_str()),
                    "phone" | "note" | "closedAt" => opt(None::<String>),
                    "cancelledAt" => opt(o.cancelled_at.map(time)),
                    "cancelReason" => opt(o.cancel_reason.clone()),
                    "createdAt" | "processedAt" => leaf(time(o.created_at)),
                    "updatedAt" => leaf(time(o.updated_at)),
                    "displayFulfillmentStatus" => leaf(o.display_fulfillment_status()),
                    "displayFinancialStatus" => leaf(o.financial_status.as_str()),
                    "fullyPaid" => leaf(o.financial_status == "PAID"),
                    "unpaid" => leaf(matches!(
                        o.financial_status.as_str(),
                        "AUTHORIZED" | "PENDING" | "PARTIALLY_PAID" | "EXPIRED"
                    )),
                    "closed" => leaf(false),
                    "edited" => leaf(o.edited),
                    "tags" => Ok(ResolvedValue::list(
                        o.tags
                            .iter()
                            .map(|t| ResolvedValue::leaf(t.as_str()))
                            .collect::<Vec<_>>(),
                    )),
                    "shippingLines" => {
                        let items = o
                            .shipping_line
                            .iter()
                            .map(|l| (Key(0, l.id), Kind::ShippingLine(oi)))
                            .collect();
                        connection(self.ctx, info, "ShippingLine", items)
                    }
                    "shippingAddress" => {
                        self.obj(Kind::MailingAddress(Rc::new(o.shipping_address.clone())))
                    }
                    "shippingLine" => match &o.shipping_line {
                        Some(_) => self.obj(Kind::ShippingLine(oi)),
                        None => Ok(ResolvedValue::null()),
                    },
                    "lineItems" => {
                        let items = o
                            .lines
                            .iter()
                            .enumerate()
                            .map(|(li, l)| (Key(0, l.id), Kind::LineItem(oi, li)))
                            .collect();
                        connection(self.ctx, info, "LineItem", items)
                    }
                    "fulfillmentOrders" => {
                        self.need(field, Need::ReadFulfillmentOrders)?;
                        let visible = self.sees_fos();
                        let query = FulfillmentOrderQuery::parse(
                            arg_str(info, "query").unwrap_or_default(),
                        )
                        .map_err(err)?;
                        let items = o
                            .fos
                            .iter()
                            .enumerate()
                            .filter(|_| visible)
                            .filter(|(_, f)| query.matches(&f.facts()))
                            .map(|(fi, f)| (Key(0, f.id), Kind::FulfillmentOrder(oi, fi)))
                            .collect();
                        connection(self.ctx, info, "FulfillmentOrder", items)
                    }
                    "fulfillments" => {
                        let limit = arg_i64(info, "first")
                            .and_then(|n| usize::try_from(n).ok())
                            .unwrap_or(usize::MAX);
                        let kinds = (0..o.fulfillments.len())
                            .filter(|&fi| o.fulfillments[fi].visible())
                            .take(limit)
                            .map(|fi| Kind::Fulfillment(oi, fi))
                            .collect();
                        self.list(kinds)
                    }
                    _ => not_served(),
                }
            }
            Kind::LineItem(oi, li) => {
                let o = &st.orders[oi];
                let l = &o.lines[li];
                let unfulfilled = o.unfulfilled_quantity(li);
                match field {
                    "id" => leaf(gid("LineItem", l.id)),
                    "sku" => leaf(l.sku.as_str()),
                    "name" | "title" => leaf(l.name.as_str()),
                    "variantTitle" => opt(None::<String>),
                    "quantity" => leaf(l.quantity),
                    "currentQuantity" => leaf(l.current_quantity),
                    "unfulfilledQuantity" | "fulfillableQuantity" => leaf(unfulfilled),
                    "nonFulfillableQuantity" => leaf(l.quantity.saturating_sub(l.current_quantity)),
                    "requiresShipping" => leaf(l.requires_shipping),
                    "isGiftCard" => leaf(false),
                    "variant" => self.obj(Kind::ProductVariant(oi, li)),
                    "lineItemGroup" => match &l.group {
                        Some(_) => self.obj(Kind::LineItemGroup(oi, li)),
                        None => Ok(ResolvedValue::null()),
                    },
                    _ => not_served(),
                }
            }
            Kind::ProductVariant(oi, li) => {
                let l = &st.orders[oi].lines[li];
                match field {
                    "id" => leaf(gid("ProductVariant", l.variant_id)),
                    "sku" => leaf(l.sku.as_str()),
                    "title" => leaf("Default Title"),
                    "displayName" => leaf(format!("{} - Default Title", l.name)),
                    _ => not_served(),
                }
            }
            Kind::LineItemGroup(oi, li) => {
                let Some(g) = &st.orders[oi].lines[li].group else {
                    return Ok(ResolvedValue::null());
                };
                match field {
                    "id" => leaf(gid("LineItemGroup", g.id)),
                    "title" => leaf(g.title.as_str()),
                    "quantity" => leaf(g.quantity),
                    // The sandbox names a bundle by its title; that is also its SKU.
                    "variantSku" => leaf(g.title.as_str()),
                    "productId" | "variantId" => opt(None::<String>),
                    "customAttributes" => Ok(ResolvedValue::list(Vec::<ResolvedValue<'a>>::new())),
                    _ => not_served(),
                }
            }
            Kind::FulfillmentOrder(oi, fi) => {
                let o = &st.orders[oi];
                let f = &o.fos[fi];
                match field {
                    "id" => leaf(gid("FulfillmentOrder", f.id)),
                    "status" => leaf(f.status.as_str()),
                    "requestStatus" => leaf("UNSUBMITTED"),
                    "createdAt" => leaf(time(f.created_at)),
                    "updatedAt" => leaf(time(f.updated_at)),
                    "orderId" => leaf(gid("Order", o.id)),
                    "orderName" => leaf(o.name.as_str()),
                    "order" => {
                        self.need(field, Need::Orders)?;
                        self.obj(Kind::Order(oi))
                    }
                    "assignedLocation" => self.obj(Kind::AssignedLocation(f.location_id)),
                    "fulfillmentHolds" => self.list(
                        (0..f.holds.len())
                            .map(|hi| Kind::FulfillmentHold(oi, fi, hi))
                            .collect(),
                    ),
                    "lineItems" => {
                        let items = f
                            .lines
                            .iter()
                            .enumerate()
                            .map(|(li, l)| (Key(0, l.id), Kind::FoLineItem(oi, fi, li)))
                            .collect();
                        connection(self.ctx, info, "FulfillmentOrderLineItem", items)
                    }
                    "fulfillments" => {
                        let items = o
                            .fulfillments
                            .iter()
                            .enumerate()
                            .filter(|(_, ff)| ff.fos.contains(&fi) && ff.visible())
                            .map(|(ffi, ff)| (Key(0, ff.id), Kind::Fulfillment(oi, ffi)))
                            .collect();
                        connection(self.ctx, info, "Fulfillment", items)
                    }
                    _ => not_served(),
                }
            }
            Kind::FoLineItem(oi, fi, li) => {
                let o = &st.orders[oi];
                let l = &o.fos[fi].lines[li];
                match field {
                    "id" => leaf(gid("FulfillmentOrderLineItem", l.id)),
                    "totalQuantity" => leaf(l.total),
                    "remainingQuantity" => leaf(l.remaining),
                    "sku" => leaf(o.lines[l.line].sku.as_str()),
                    "productTitle" => leaf(o.lines[l.line].name.as_str()),
                    "requiresShipping" => leaf(o.lines[l.line].requires_shipping),
                    "lineItem" => self.obj(Kind::LineItem(oi, l.line)),
                    _ => not_served(),
                }
            }
            Kind::Fulfillment(oi, fi) => {
                let o = &st.orders[oi];
                let f = &o.fulfillments[fi];
                match field {
                    "id" => leaf(gid("Fulfillment", f.id)),
                    "legacyResourceId" => leaf(f.id.to_string()),
                    "name" => leaf(format!("{}-F{}", o.name, fi + 1)),
                    "status" => leaf(f.status.as_str()),
                    "displayStatus" => leaf("FULFILLED"),
                    "createdAt" => leaf(time(f.created_at)),
                    "updatedAt" => leaf(time(f.updated_at)),
                    "order" => {
                        self.need(field, Need::Orders)?;
                        self.obj(Kind::Order(oi))
                    }
                    "location" => self.obj(Kind::Location(f.location_id)),
                    "trackingInfo" => {
                        let limit = arg_i64(info, "first")
                            .and_then(|n| usize::try_from(n).ok())
                            .unwrap_or(usize::MAX);
                        let company = f.tracking.company.clone();
                        let mut kinds: Vec<Kind> = f
                            .tracking
                            .entries
                            .iter()
                            .map(|(n, u)| {
                                Kind::TrackingInfo(company.clone(), Some(n.clone()), u.clone())
                            })
                            .collect();
                        if kinds.is_empty() && company.is_some() {
                            kinds.push(Kind::TrackingInfo(company, None, None));
                        }
                        kinds.truncate(limit);
                        self.list(kinds)
                    }
                    "fulfillmentLineItems" => {
                        let items = f
                            .lines
                            .iter()
                            .enumerate()
                            .map(|(li, l)| (Key(0, l.id), Kind::FulfillmentLineItem(oi, fi, li)))
                            .collect();
                        connection(self.ctx, info, "FulfillmentLineItem", items)
                    }
                    "fulfillmentOrders" => {
                        self.need(field, Need::ReadFulfillmentOrders)?;
                        let visible = self.sees_fos();
                        let items = f
                            .fos
                            .iter()
                            .filter(|_| visible)
                            .map(|&foi| (Key(0, o.fos[foi].id), Kind::FulfillmentOrder(oi, foi)))
                            .collect();
                        connection(self.ctx, info, "FulfillmentOrder", items)
                    }
                    _ => not_served(),
                }
            }
            Kind::FulfillmentHold(oi, fi, hi) => {
                let h = &st.orders[oi].fos[fi].holds[hi];
                match field {
                    "id" => leaf(gid("FulfillmentHold", h.id)),
                    "reason" => leaf(h.reason.as_str()),
                    "reasonNotes" => opt(h.reason_notes.clone()),
                    "displayReason" => leaf(crate::lifecycle::hold_display_reason(&h.reason)),
                    "handle" => opt(None::<String>),
                    "heldByRequestingApp" => leaf(false),
                    "heldByApp" => Ok(ResolvedValue::null()),
                    _ => not_served(),
                }
            }
            Kind::ShippingLine(oi) => {
                let Some(l) = &st.orders[oi].shipping_line else {
                    return Ok(ResolvedValue::null());
                };
                match field {
                    "id" => leaf(gid("ShippingLine", l.id)),
                    "title" => leaf(l.title.as_str()),
                    "code" => leaf(l.code.as_str()),
                    "source" => leaf(l.source.as_str()),
                    "carrierIdentifier" => opt(None::<String>),
                    "isRemoved" => leaf(false),
                    _ => not_served(),
                }
            }
            Kind::FulfillmentLineItem(oi, fi, li) => {
                let l = &st.orders[oi].fulfillments[fi].lines[li];
                match field {
                    "id" => leaf(gid("FulfillmentLineItem", l.id)),
                    "quantity" => leaf(l.quantity),
                    "lineItem" => self.obj(Kind::LineItem(oi, l.line)),
                    _ => not_served(),
                }
            }
            _ => not_served(),
        }
    }
}

/// `WebhookSubscriptionInput`, decoded from the coerced arguments.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionInput {
    uri: Option<String>,
    callback_url: Option<String>,
    format: Option<String>,
}

/// Converts request variables into apollo's JSON map type.
pub(crate) fn json_map(v: &serde_json::Value) -> Result<JsonMap, String> {
    match JsonValue::from(v.clone()) {
        JsonValue::Null => Ok(JsonMap::new()),
        JsonValue::Object(map) => Ok(map),
        _ => Err("variables must be a JSON object".into()),
    }
}
