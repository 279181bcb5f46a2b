use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Map, Value, json};
use shipsync_outbound::TargetPolicy;
use url::Url;

use crate::auth::AccessTokens;
use crate::error::ShopifyError;
use crate::model::{
    CreatedFulfillment, FulfillmentRequest, OpenFulfillmentOrdersPage, OrdersPage,
    StoreFulfillment, StoreFulfillmentOrder, StoreFulfillmentOrderLineItem, StoreLineItem,
    StoreOrder, StoreOrderForWarehouse, SubscriptionReport, Tracking, WarehouseFulfillmentOrder,
    WebhookSubscription,
};
use crate::operations as ops;
use crate::throttle::{Budget, CostBudget};
use crate::transport::{BeforeSend, Kind, Timeouts, Tokens, Transport};
use crate::webhook::ORDER_TOPICS;
use crate::wire;

/// Guards against a server that always says "next page".
const MAX_PAGES: usize = 200;

/// Shopify Admin GraphQL client for one store (connection). Clones share the
/// store's cost budget.
#[derive(Clone)]
pub struct ShopifyClient {
    transport: Transport,
}

impl fmt::Debug for ShopifyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifyClient")
            .field("endpoint", &self.transport.endpoint.as_str())
            .field("connection", &self.transport.connection)
            .field("timeouts", &self.transport.timeouts)
            .finish_non_exhaustive()
    }
}

impl ShopifyClient {
    /// An HTTP client suited to Shopify: rustls with ring, `connect` and
    /// `total` timeouts, going only where `policy` allows (see
    /// `shipsync_outbound`). Share one across stores.
    pub fn http_client(
        timeouts: &Timeouts,
        policy: TargetPolicy,
    ) -> Result<reqwest::Client, ShopifyError> {
        shipsync_outbound::client_builder(policy)
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .build()
            .map_err(|e| ShopifyError::Permanent(format!("could not build the HTTP client: {e}")))
    }

    /// `shop_url` is e.g. `https://example.myshopify.com`; `api_version`
    /// e.g. `2026-10`. Calls go to `{shop_url}/admin/api/{api_version}/graphql.json`.
    pub fn new(
        http: reqwest::Client,
        shop_url: &str,
        api_version: &str,
        access_token: SecretString,
    ) -> Result<Self, ShopifyError> {
        let endpoint = endpoint(shop_url, api_version)?;
        Ok(Self {
            transport: Transport {
                http,
                endpoint,
                token: Tokens::Fixed(access_token),
                timeouts: Timeouts::default(),
                budget: Arc::default(),
                connection: None,
            },
        })
    }

    /// Sends the tokens `tokens` gives (expiring ones, refreshed by their
    /// keeper) instead of a fixed one; on a 401 asks it once for another.
    #[must_use]
    pub fn with_tokens(mut self, tokens: Arc<dyn AccessTokens>) -> Self {
        self.transport.token = Tokens::Kept(tokens);
        self
    }

    /// The scopes the store granted the token (`currentAppInstallation.accessScopes`).
    pub async fn access_scopes(&self) -> Result<Vec<String>, ShopifyError> {
        let data: wire::AccessScopesData = self
            .transport
            .execute("AccessScopes", ops::ACCESS_SCOPES, json!({}), Kind::Query)
            .await?;
        Ok(data
            .current_app_installation
            .access_scopes
            .into_iter()
            .map(|s| s.handle)
            .collect())
    }

    /// The store's cost bucket size (`maximumAvailable`), once one of its
    /// answers said it.
    pub fn bucket_size(&self) -> Option<f64> {
        self.transport.budget.maximum_available()
    }

    /// Keeps the store's cost bucket in `bucket` (e.g. one shared by several
    /// processes) instead of a [`crate::LocalBudget`] of this client and its
    /// clones. Learned operation costs start afresh.
    #[must_use]
    pub fn with_cost_budget(mut self, bucket: Arc<dyn CostBudget>) -> Self {
        self.transport.budget = Arc::new(Budget::new(bucket));
        self
    }

    /// Replaces the default time limits (`connect` only matters for a client
    /// built by [`ShopifyClient::http_client`]).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.transport.timeouts = timeouts;
        self
    }

    /// Names the store in the logs by its connection (`connection` in the
    /// span of each call).
    #[must_use]
    pub fn with_connection(mut self, connection: &str) -> Self {
        self.transport.connection = Some(connection.into());
        self
    }

    pub fn endpoint(&self) -> &str {
        self.transport.endpoint.as_str()
    }

    /// The shop's name — proves URL, version and token work.
    pub async fn shop_name(&self) -> Result<String, ShopifyError> {
        let data: wire::ShopData = self
            .transport
            .execute("ShopName", ops::SHOP_NAME, json!({}), Kind::Query)
            .await?;
        Ok(data.shop.name)
    }

    /// Orders named `name`, looked up with and without a leading `#`; only
    /// exact matches (ignoring a leading `#`) are returned, fully read.
    pub async fn find_orders_by_name(&self, name: &str) -> Result<Vec<StoreOrder>, ShopifyError> {
        let mut orders = Vec::new();
        for (id, _) in self.find_order_names(name).await? {
            if let Some(order) = self.order(&id).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }

    /// The ids and names of the orders named `name` (as
    /// [`ShopifyClient::find_orders_by_name`]), without reading them: two
    /// searches, no more.
    pub async fn find_order_names(
        &self,
        name: &str,
    ) -> Result<Vec<(String, String)>, ShopifyError> {
        let given = name.trim();
        let bare = strip_hash(given);
        if bare.is_empty() {
            return Ok(Vec::new());
        }
        let other = if given.starts_with('#') {
            bare.to_owned()
        } else {
            format!("#{given}")
        };
        let mut found: Vec<(String, String)> = Vec::new();
        for candidate in [given, other.as_str()] {
            let data: wire::OrderSearchData = self
                .transport
                .execute(
                    "FindOrdersByName",
                    ops::FIND_ORDERS_BY_NAME,
                    json!({ "query": name_search(candidate) }),
                    Kind::Query,
                )
                .await?;
            for order in data.orders.nodes {
                if strip_hash(&order.name) == bare && !found.iter().any(|(id, _)| *id == order.id) {
                    found.push((order.id, order.name));
                }
            }
        }
        Ok(found)
    }

    /// One page of the orders updated at or after `since` (RFC 3339;
    /// Shopify compares to the second, so the bound is inclusive and the
    /// caller must expect orders it saw before), oldest change first, of
    /// every status — cancelled, closed, unpaid and fulfilled ones included:
    /// the caller decides what to import. `after` is the previous page's
    /// [`OrdersPage::next`]. Each order is complete, as
    /// [`ShopifyClient::order_for_warehouse`] reads it.
    pub async fn orders_changed_since(
        &self,
        since: &str,
        after: Option<String>,
    ) -> Result<OrdersPage, ShopifyError> {
        let query = changed_since_query(since)?;
        let data: wire::OrdersForWarehouseData = self
            .transport
            .execute(
                "OrdersForWarehouse",
                ops::ORDERS_FOR_WAREHOUSE,
                json!({ "query": query, "after": after }),
                Kind::Query,
            )
            .await?;
        let next = next_cursor(&data.orders.page_info)?;
        let mut orders: Vec<StoreOrderForWarehouse> = Vec::with_capacity(data.orders.nodes.len());
        for o in data.orders.nodes {
            if orders.iter().any(|x| x.id == o.id) {
                continue;
            }
            orders.push(self.complete_warehouse_order(o).await?);
        }
        Ok(OrdersPage { orders, next })
    }

    /// One order as the Sales Orders channel needs it — header, ship-to,
    /// every line item and every fulfillment order with its holds and
    /// lines — or `None` when the store has no such order. One request when
    /// the order has at most 20 lines and 3 fulfillment orders (what runs
    /// after every order webhook); longer lists are read to their end.
    pub async fn order_for_warehouse(
        &self,
        id: &str,
    ) -> Result<Option<StoreOrderForWarehouse>, ShopifyError> {
        let data: wire::OrderForWarehouseData = self
            .transport
            .execute(
                "OrderForWarehouse",
                ops::ORDER_FOR_WAREHOUSE,
                json!({ "id": id }),
                Kind::Query,
            )
            .await?;
        match data.order {
            Some(o) => Ok(Some(self.complete_warehouse_order(o).await?)),
            None => Ok(None),
        }
    }

    /// The order of a first page, with the line items and fulfillment
    /// orders (and their lines) its page left out.
    async fn complete_warehouse_order(
        &self,
        o: wire::WarehouseOrder,
    ) -> Result<StoreOrderForWarehouse, ShopifyError> {
        let mut line_items: Vec<StoreLineItem> =
            o.line_items.nodes.into_iter().map(Into::into).collect();
        if let Some(cursor) = next_cursor(&o.line_items.page_info)? {
            line_items.extend(self.line_items_after(&o.id, cursor).await?);
        }
        let mut fulfillment_orders = Vec::with_capacity(o.fulfillment_orders.nodes.len());
        for fo in o.fulfillment_orders.nodes {
            fulfillment_orders.push(self.complete_warehouse_fulfillment_order(fo).await?);
        }
        if let Some(cursor) = next_cursor(&o.fulfillment_orders.page_info)? {
            fulfillment_orders.extend(
                self.warehouse_fulfillment_orders_after(&o.id, cursor)
                    .await?,
            );
        }
        let given = |v: Option<String>| v.filter(|t| !t.trim().is_empty());
        let shipping = match o.shipping_line {
            Some(l) => wire::ShippingLine {
                title: given(l.title),
                code: given(l.code),
                source: given(l.source),
                carrier_identifier: given(l.carrier_identifier),
            },
            None => wire::ShippingLine::default(),
        };
        Ok(StoreOrderForWarehouse {
            id: o.id,
            name: o.name,
            updated_at: o.updated_at,
            email: o.email.filter(|e| !e.trim().is_empty()),
            shipping_address: o.shipping_address.map(Into::into),
            shipping_method: shipping.title,
            shipping_code: shipping.code,
            shipping_source: shipping.source,
            shipping_carrier_identifier: shipping.carrier_identifier,
            line_items,
            cancelled_at: o.cancelled_at,
            cancel_reason: o.cancel_reason,
            financial_status: o.display_financial_status,
            fulfillment_status: o.display_fulfillment_status,
            tags: o.tags,
            edited: o.edited,
            fulfillment_orders,
        })
    }

    /// A fulfillment order with the lines its first page left out.
    async fn complete_warehouse_fulfillment_order(
        &self,
        fo: wire::FulfillmentOrderForWarehouse,
    ) -> Result<WarehouseFulfillmentOrder, ShopifyError> {
        let (mut fo, lines_page) = fo.into_model();
        if let Some(cursor) = next_cursor(&lines_page)? {
            let rest = self.fulfillment_order_line_items(&fo.id, cursor).await?;
            fo.lines.extend(rest.into_iter().map(Into::into));
        }
        Ok(fo)
    }

    /// Order `order_id`'s fulfillment orders after `cursor`, each complete.
    async fn warehouse_fulfillment_orders_after(
        &self,
        order_id: &str,
        cursor: String,
    ) -> Result<Vec<WarehouseFulfillmentOrder>, ShopifyError> {
        read_pages(
            "WarehouseFulfillmentOrders",
            Some(cursor),
            move |after| async move {
                let data: wire::WarehouseFulfillmentOrdersData = self
                    .transport
                    .execute(
                        "WarehouseFulfillmentOrders",
                        ops::WAREHOUSE_FULFILLMENT_ORDERS,
                        json!({ "id": order_id, "after": after }),
                        Kind::Query,
                    )
                    .await?;
                let page = data
                    .order
                    .ok_or_else(|| vanished(order_id))?
                    .fulfillment_orders;
                let mut nodes = Vec::with_capacity(page.nodes.len());
                for fo in page.nodes {
                    nodes.push(self.complete_warehouse_fulfillment_order(fo).await?);
                }
                Ok(wire::Page {
                    page_info: page.page_info,
                    nodes,
                })
            },
        )
        .await
    }

    /// The line items of order `id` after `cursor` (the rest of a page that
    /// was cut short).
    async fn line_items_after(
        &self,
        id: &str,
        cursor: String,
    ) -> Result<Vec<StoreLineItem>, ShopifyError> {
        let lines = read_pages("Order", Some(cursor), move |after| async move {
            let page = self.order_page(id, after).await?;
            Ok(page.ok_or_else(|| vanished(id))?.line_items)
        })
        .await?;
        Ok(lines.into_iter().map(Into::into).collect())
    }

    /// One page of order `id`'s line items (`None` when there is no such
    /// order).
    async fn order_page(
        &self,
        id: &str,
        after: Option<String>,
    ) -> Result<Option<wire::Order>, ShopifyError> {
        let data: wire::OrderData = self
            .transport
            .execute(
                "Order",
                ops::ORDER,
                json!({ "id": id, "lineItemsAfter": after }),
                Kind::Query,
            )
            .await?;
        Ok(data.order)
    }

    /// The order with its line items, fulfillment orders and fulfillments,
    /// or `None` when the store has no such order.
    pub async fn order(&self, id: &str) -> Result<Option<StoreOrder>, ShopifyError> {
        self.read_order(id, true).await
    }

    /// The order with its line items and fulfillment orders, without its
    /// fulfillments (`fulfillments` is empty): what fulfilling needs, at a
    /// fraction of the cost. Read them with [`ShopifyClient::fulfillments_of`]
    /// when an earlier attempt must be checked.
    pub async fn order_for_fulfilling(&self, id: &str) -> Result<Option<StoreOrder>, ShopifyError> {
        self.order_to_fulfill(id).await
    }

    /// The order with its line items and fulfillment orders (no
    /// fulfillments), as [`ShopifyClient::order_for_fulfilling`] reads it,
    /// in one request when it has at most 10 lines and 2 fulfillment orders
    /// of at most 10 lines each; `None` when the store has no such order.
    pub async fn order_to_fulfill(&self, id: &str) -> Result<Option<StoreOrder>, ShopifyError> {
        let data: wire::OrderToFulfillData = self
            .transport
            .execute(
                "OrderToFulfill",
                ops::ORDER_TO_FULFILL,
                json!({ "id": id }),
                Kind::Query,
            )
            .await?;
        match data.order {
            Some(o) => Ok(Some(self.complete_to_fulfill(o).await?)),
            None => Ok(None),
        }
    }

    /// The first order named `name` (an exact match, ignoring a leading
    /// `#`), read as [`ShopifyClient::order_to_fulfill`] reads it: searched
    /// as given first, then with or without its `#` only when that found
    /// nothing — one request for the common case. When the search's first
    /// order is not an exact match and there are more (names sharing a
    /// prefix), the exact matches are listed by
    /// [`ShopifyClient::find_order_names`] and the first read.
    pub async fn find_order_to_fulfill(
        &self,
        name: &str,
    ) -> Result<Option<StoreOrder>, ShopifyError> {
        let given = name.trim();
        let bare = strip_hash(given);
        if bare.is_empty() {
            return Ok(None);
        }
        let other = if given.starts_with('#') {
            bare.to_owned()
        } else {
            format!("#{given}")
        };
        for candidate in [given, other.as_str()] {
            let data: wire::OrdersToFulfillData = self
                .transport
                .execute(
                    "OrdersToFulfillByName",
                    ops::ORDERS_TO_FULFILL_BY_NAME,
                    json!({ "query": name_search(candidate) }),
                    Kind::Query,
                )
                .await?;
            let more = data.orders.page_info.has_next_page;
            if let Some(o) = data
                .orders
                .nodes
                .into_iter()
                .find(|o| strip_hash(&o.name) == bare)
            {
                return Ok(Some(self.complete_to_fulfill(o).await?));
            }
            if more {
                // Exact matches beyond the first of near ones: the cheaper
                // search of ids and names, then the first one read.
                for (id, _) in self.find_order_names(name).await? {
                    if let Some(o) = self.order_to_fulfill(&id).await? {
                        return Ok(Some(o));
                    }
                }
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// One page of the store's open fulfillment orders that `query`
    /// selects (Shopify's search syntax for fulfillment orders, e.g.
    /// `status:open assigned_location_id:… updated_at:>='…'`), oldest
    /// change first, after the cursor `after`; see
    /// [`crate::operations::OPEN_FULFILLMENT_ORDERS`].
    pub async fn open_fulfillment_orders(
        &self,
        query: &str,
        after: Option<&str>,
    ) -> Result<OpenFulfillmentOrdersPage, ShopifyError> {
        let data: wire::OpenFulfillmentOrdersData = self
            .transport
            .execute(
                "OpenFulfillmentOrders",
                ops::OPEN_FULFILLMENT_ORDERS,
                json!({ "query": query, "after": after }),
                Kind::Query,
            )
            .await?;
        let next = next_cursor(&data.fulfillment_orders.page_info)?;
        Ok(OpenFulfillmentOrdersPage {
            fulfillment_orders: data
                .fulfillment_orders
                .nodes
                .into_iter()
                .map(wire::OpenFulfillmentOrderNode::into_model)
                .collect(),
            next,
        })
    }

    /// An order read by `order_to_fulfill_fields`, its longer lists
    /// completed page by page.
    async fn complete_to_fulfill(
        &self,
        o: wire::OrderToFulfill,
    ) -> Result<StoreOrder, ShopifyError> {
        let mut order = StoreOrder {
            id: o.id,
            name: o.name,
            updated_at: o.updated_at,
            cancelled_at: o.cancelled_at,
            line_items: o.line_items.nodes.into_iter().map(Into::into).collect(),
            fulfillment_orders: Vec::new(),
            fulfillments: Vec::new(),
        };
        if let Some(cursor) = next_cursor(&o.line_items.page_info)? {
            let rest = self.line_items_after(&order.id, cursor).await?;
            order.line_items.extend(rest);
        }
        for fo in o.fulfillment_orders.nodes {
            let (mut fo, lines_page) = fo.into_store();
            if let Some(cursor) = next_cursor(&lines_page)? {
                let rest = self.fulfillment_order_line_items(&fo.id, cursor).await?;
                fo.line_items.extend(rest);
            }
            order.fulfillment_orders.push(fo);
        }
        if let Some(cursor) = next_cursor(&o.fulfillment_orders.page_info)? {
            let rest = self.fulfillment_orders(&order.id, Some(cursor)).await?;
            order.fulfillment_orders.extend(rest);
        }
        Ok(order)
    }

    /// Every fulfillment of these fulfillment orders (each once, however
    /// many pages), with their tracking and line items. With all of an
    /// order's fulfillment orders: all of the order's fulfillments.
    pub async fn fulfillments_of(
        &self,
        fulfillment_order_ids: &[String],
    ) -> Result<Vec<StoreFulfillment>, ShopifyError> {
        let mut heads: Vec<wire::FulfillmentHead> = Vec::new();
        for fo_id in fulfillment_order_ids {
            for head in self.fulfillment_order_fulfillments(fo_id).await? {
                if !heads.iter().any(|h| h.id == head.id) {
                    heads.push(head);
                }
            }
        }
        let mut result = Vec::with_capacity(heads.len());
        for head in heads {
            result.push(self.fulfillment(head).await?);
        }
        Ok(result)
    }

    async fn read_order(
        &self,
        id: &str,
        with_fulfillments: bool,
    ) -> Result<Option<StoreOrder>, ShopifyError> {
        let Some(page) = self.order_page(id, None).await? else {
            return Ok(None);
        };
        let mut order = StoreOrder {
            id: page.id,
            name: page.name,
            updated_at: page.updated_at,
            cancelled_at: page.cancelled_at,
            line_items: page.line_items.nodes.into_iter().map(Into::into).collect(),
            fulfillment_orders: Vec::new(),
            fulfillments: Vec::new(),
        };
        if let Some(cursor) = next_cursor(&page.line_items.page_info)? {
            order
                .line_items
                .extend(self.line_items_after(id, cursor).await?);
        }
        order.fulfillment_orders = self.fulfillment_orders(id, None).await?;
        if with_fulfillments {
            let fo_ids: Vec<String> = order
                .fulfillment_orders
                .iter()
                .map(|fo| fo.id.clone())
                .collect();
            order.fulfillments = self.fulfillments_of(&fo_ids).await?;
        }
        Ok(Some(order))
    }

    /// The order's fulfillment orders after `first` (all of them when
    /// `None`), each with all its line items.
    async fn fulfillment_orders(
        &self,
        order_id: &str,
        first: Option<String>,
    ) -> Result<Vec<StoreFulfillmentOrder>, ShopifyError> {
        read_pages("OrderFulfillmentOrders", first, move |after| async move {
            let data: wire::FulfillmentOrdersData = self
                .transport
                .execute(
                    "OrderFulfillmentOrders",
                    ops::ORDER_FULFILLMENT_ORDERS,
                    json!({ "id": order_id, "after": after }),
                    Kind::Query,
                )
                .await?;
            let page = data
                .order
                .ok_or_else(|| vanished(order_id))?
                .fulfillment_orders;
            // Completes each fulfillment order's line items before the next
            // page is read.
            let mut nodes = Vec::with_capacity(page.nodes.len());
            for fo in page.nodes {
                let (mut fo, lines_page) = fo.into_store();
                if let Some(cursor) = next_cursor(&lines_page)? {
                    let rest = self.fulfillment_order_line_items(&fo.id, cursor).await?;
                    fo.line_items.extend(rest);
                }
                nodes.push(fo);
            }
            Ok(wire::Page {
                page_info: page.page_info,
                nodes,
            })
        })
        .await
    }

    async fn fulfillment_order_line_items(
        &self,
        fulfillment_order_id: &str,
        first_cursor: String,
    ) -> Result<Vec<StoreFulfillmentOrderLineItem>, ShopifyError> {
        let lines = read_pages(
            "FulfillmentOrderLineItems",
            Some(first_cursor),
            move |after| async move {
                let data: wire::FulfillmentOrderLinesData = self
                    .transport
                    .execute(
                        "FulfillmentOrderLineItems",
                        ops::FULFILLMENT_ORDER_LINE_ITEMS,
                        json!({ "id": fulfillment_order_id, "after": after }),
                        Kind::Query,
                    )
                    .await?;
                Ok(data
                    .fulfillment_order
                    .ok_or_else(|| vanished(fulfillment_order_id))?
                    .line_items)
            },
        )
        .await?;
        Ok(lines.into_iter().map(Into::into).collect())
    }

    async fn fulfillment_order_fulfillments(
        &self,
        fulfillment_order_id: &str,
    ) -> Result<Vec<wire::FulfillmentHead>, ShopifyError> {
        read_pages(
            "FulfillmentOrderFulfillments",
            None,
            move |after| async move {
                let data: wire::FulfillmentOrderFulfillmentsData = self
                    .transport
                    .execute(
                        "FulfillmentOrderFulfillments",
                        ops::FULFILLMENT_ORDER_FULFILLMENTS,
                        json!({ "id": fulfillment_order_id, "after": after }),
                        Kind::Query,
                    )
                    .await?;
                Ok(data
                    .fulfillment_order
                    .ok_or_else(|| vanished(fulfillment_order_id))?
                    .fulfillments)
            },
        )
        .await
    }

    async fn fulfillment(
        &self,
        head: wire::FulfillmentHead,
    ) -> Result<StoreFulfillment, ShopifyError> {
        // The tracking comes with every page: the first page's is kept.
        let first = self.fulfillment_page(&head.id, None).await?;
        let mut fulfillment = StoreFulfillment {
            id: head.id,
            status: head.status,
            created_at: head.created_at,
            tracking: first.tracking_info.into_iter().map(Into::into).collect(),
            line_items: Vec::new(),
        };
        let lines = first.fulfillment_line_items;
        fulfillment
            .line_items
            .extend(lines.nodes.into_iter().map(Into::into));
        if let Some(cursor) = next_cursor(&lines.page_info)? {
            let id = fulfillment.id.as_str();
            let rest = read_pages("Fulfillment", Some(cursor), move |after| async move {
                Ok(self
                    .fulfillment_page(id, after)
                    .await?
                    .fulfillment_line_items)
            })
            .await?;
            fulfillment
                .line_items
                .extend(rest.into_iter().map(Into::into));
        }
        Ok(fulfillment)
    }

    async fn fulfillment_page(
        &self,
        id: &str,
        after: Option<String>,
    ) -> Result<wire::Fulfillment, ShopifyError> {
        let data: wire::FulfillmentData = self
            .transport
            .execute(
                "Fulfillment",
                ops::FULFILLMENT,
                json!({ "id": id, "lineItemsAfter": after }),
                Kind::Query,
            )
            .await?;
        data.fulfillment.ok_or_else(|| vanished(id))
    }

    /// Creates one fulfillment. Not idempotent: on
    /// [`ShopifyError::UnknownOutcome`] re-read the order (fulfillments and
    /// remaining quantities) before trying again.
    pub async fn fulfillment_create(
        &self,
        req: &FulfillmentRequest,
    ) -> Result<CreatedFulfillment, ShopifyError> {
        self.fulfillment_create_recorded(req, None).await
    }

    /// [`ShopifyClient::fulfillment_create`], running `before_send` just
    /// before the request goes out (after any wait for the budget), to
    /// record the attempt with its send time: a process that dies while it
    /// waits has sent nothing and recorded nothing.
    pub async fn fulfillment_create_recorded(
        &self,
        req: &FulfillmentRequest,
        before_send: Option<BeforeSend<'_>>,
    ) -> Result<CreatedFulfillment, ShopifyError> {
        let variables = json!({ "fulfillment": fulfillment_input(req)? });
        let data: wire::FulfillmentCreateData = self
            .transport
            .execute_mutation(
                "FulfillmentCreate",
                ops::FULFILLMENT_CREATE,
                variables,
                before_send,
            )
            .await?;
        let payload = data
            .fulfillment_create
            .ok_or_else(|| no_payload("fulfillmentCreate"))?;
        user_errors(&payload.user_errors)?;
        let created = payload
            .fulfillment
            .ok_or_else(|| no_payload("fulfillmentCreate"))?;
        Ok(CreatedFulfillment {
            id: created.id,
            status: created.status,
        })
    }

    /// Sets the tracking of an existing fulfillment to `tracking` — pass the
    /// merged list: numbers left out are removed from the store.
    pub async fn tracking_update(
        &self,
        fulfillment_id: &str,
        tracking: &Tracking,
        notify_customer: bool,
    ) -> Result<(), ShopifyError> {
        if tracking.is_empty() {
            return Err(ShopifyError::Permanent(
                "a tracking update needs a carrier or a tracking number".into(),
            ));
        }
        let variables = json!({
            "fulfillmentId": fulfillment_id,
            "trackingInfoInput": tracking_input(tracking)?,
            "notifyCustomer": notify_customer,
        });
        let data: wire::TrackingUpdateData = self
            .transport
            .execute(
                "FulfillmentTrackingInfoUpdate",
                ops::FULFILLMENT_TRACKING_INFO_UPDATE,
                variables,
                Kind::Mutation,
            )
            .await?;
        let payload = data
            .fulfillment_tracking_info_update
            .ok_or_else(|| no_payload("fulfillmentTrackingInfoUpdate"))?;
        user_errors(&payload.user_errors)?;
        payload
            .fulfillment
            .map(drop)
            .ok_or_else(|| no_payload("fulfillmentTrackingInfoUpdate"))
    }

    /// This app's webhook subscriptions in the store (every page), only
    /// those delivered to `uri` when it is given. Shopify lists only the
    /// subscriptions made through the API.
    pub async fn webhook_subscriptions(
        &self,
        uri: Option<&str>,
    ) -> Result<Vec<WebhookSubscription>, ShopifyError> {
        let nodes = read_pages("WebhookSubscriptions", None, move |after| async move {
            let data: wire::WebhookSubscriptionsData = self
                .transport
                .execute(
                    "WebhookSubscriptions",
                    ops::WEBHOOK_SUBSCRIPTIONS,
                    json!({ "uri": uri, "after": after }),
                    Kind::Query,
                )
                .await?;
            Ok(data.webhook_subscriptions)
        })
        .await?;
        // Filtered here too: a subscription elsewhere must never be taken
        // for one at `uri`.
        Ok(nodes
            .into_iter()
            .map(WebhookSubscription::from)
            .filter(|s| uri.is_none_or(|u| s.uri == u))
            .collect())
    }

    /// Subscribes `uri` to `topic` (a `WebhookSubscriptionTopic`, e.g.
    /// `ORDERS_CREATE`), JSON bodies. Shopify refuses a second subscription
    /// of the same topic and address: that, and any other refusal, is a
    /// [`ShopifyError::Permanent`] naming the topic and Shopify's message.
    pub async fn webhook_subscription_create(
        &self,
        topic: &str,
        uri: &str,
    ) -> Result<WebhookSubscription, ShopifyError> {
        let data: wire::WebhookSubscriptionCreateData = self
            .transport
            .execute(
                "WebhookSubscriptionCreate",
                ops::WEBHOOK_SUBSCRIPTION_CREATE,
                json!({ "topic": topic, "uri": uri }),
                Kind::Mutation,
            )
            .await?;
        let payload = data
            .webhook_subscription_create
            .ok_or_else(|| no_payload("webhookSubscriptionCreate"))?;
        refused(&payload.user_errors, || {
            format!("Shopify refused the {topic} webhook subscription for {uri}")
        })?;
        payload
            .webhook_subscription
            .map(Into::into)
            .ok_or_else(|| no_payload("webhookSubscriptionCreate"))
    }

    /// Deletes webhook subscription `id`; a refusal is a
    /// [`ShopifyError::Permanent`] with Shopify's message.
    pub async fn webhook_subscription_delete(&self, id: &str) -> Result<(), ShopifyError> {
        let data: wire::WebhookSubscriptionDeleteData = self
            .transport
            .execute(
                "WebhookSubscriptionDelete",
                ops::WEBHOOK_SUBSCRIPTION_DELETE,
                json!({ "id": id }),
                Kind::Mutation,
            )
            .await?;
        let payload = data
            .webhook_subscription_delete
            .ok_or_else(|| no_payload("webhookSubscriptionDelete"))?;
        refused(&payload.user_errors, || {
            format!("Shopify refused to delete webhook subscription {id}")
        })?;
        payload
            .deleted_webhook_subscription_id
            .map(drop)
            .ok_or_else(|| no_payload("webhookSubscriptionDelete"))
    }

    /// Makes sure `uri` receives every topic of [`ORDER_TOPICS`]: lists
    /// the subscriptions at `uri` and creates the missing ones. Safe to run
    /// again at any time (Shopify deletes a subscription after long failure,
    /// so run it at start and with each pull): a create refused because the
    /// subscription exists meanwhile (another process, or an earlier attempt
    /// whose answer was lost) counts as existing.
    pub async fn ensure_order_webhooks(
        &self,
        uri: &str,
    ) -> Result<SubscriptionReport, ShopifyError> {
        let current = self.webhook_subscriptions(Some(uri)).await?;
        let mut report = SubscriptionReport::default();
        for topic in ORDER_TOPICS {
            if let Some(s) = current.iter().find(|s| s.topic == topic) {
                report.existing.push(s.clone());
                continue;
            }
            match self.webhook_subscription_create(topic, uri).await {
                Ok(s) => report.created.push(s),
                Err(refused @ ShopifyError::Permanent(_)) => {
                    let again = self.webhook_subscriptions(Some(uri)).await?;
                    match again.into_iter().find(|s| s.topic == topic) {
                        Some(s) => report.existing.push(s),
                        None => return Err(refused),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Deletes the subscriptions of [`ORDER_TOPICS`] at `uri` (others are
    /// left alone) and returns those deleted.
    pub async fn remove_order_webhooks(
        &self,
        uri: &str,
    ) -> Result<Vec<WebhookSubscription>, ShopifyError> {
        let mut removed = Vec::new();
        for s in self.webhook_subscriptions(Some(uri)).await? {
            if ORDER_TOPICS.contains(&s.topic.as_str()) {
                self.webhook_subscription_delete(&s.id).await?;
                removed.push(s);
            }
        }
        Ok(removed)
    }
}

fn endpoint(shop_url: &str, api_version: &str) -> Result<Url, ShopifyError> {
    let invalid =
        |why: &str| ShopifyError::Permanent(format!("invalid shop URL {shop_url:?}: {why}"));
    let base = Url::parse(shop_url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(base.scheme(), "https" | "http") {
        return Err(invalid("use https://"));
    }
    if base.host_str().is_none() {
        return Err(invalid("no host"));
    }
    if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
        return Err(invalid("give only scheme, host and path"));
    }
    let version_ok = !api_version.is_empty()
        && api_version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !version_ok {
        return Err(ShopifyError::Permanent(format!(
            "invalid API version {api_version:?}: use e.g. 2026-10"
        )));
    }
    let path = format!(
        "{}/admin/api/{api_version}/graphql.json",
        base.path().trim_end_matches('/')
    );
    let mut url = base;
    url.set_path(&path);
    Ok(url)
}

fn strip_hash(name: &str) -> &str {
    let name = name.trim();
    name.strip_prefix('#').unwrap_or(name)
}

/// A `name:` search term. Plain names go as Shopify documents them
/// (`name:#1001`); anything else is quoted so it cannot change the search.
fn name_search(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '#' | '-' | '_' | '.'));
    if plain {
        format!("name:{name}")
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("name:\"{escaped}\"")
    }
}

/// The search of [`ShopifyClient::orders_changed_since`]. `since` goes in
/// quotes, so it is checked to be a plain timestamp first.
///
/// No `status:` term. Shopify's `orders(query:)` documents `status` with
/// the values `open`, `closed`, `cancelled` and `not_closed` and no
/// default (schema 2026-10, `QueryRoot.orders`): without the term, orders
/// of every status match — the REST API's `status=any`, whose default was
/// `open`. `any` is not a documented value of the GraphQL filter, so it is
/// not sent. **Assumption** (not tried against a live store), as in
/// orders-lifecycle.md: the scheduled pull is the fallback that must also
/// find cancelled orders.
fn changed_since_query(since: &str) -> Result<String, ShopifyError> {
    let since = since.trim();
    let plain = !since.is_empty()
        && since
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '+' | '.'));
    if !plain {
        return Err(ShopifyError::Permanent(format!(
            "invalid time {since:?}: use RFC 3339, e.g. 2026-11-01T00:00:00Z"
        )));
    }
    Ok(format!("updated_at:>='{since}'"))
}

fn next_cursor(page: &wire::PageInfo) -> Result<Option<String>, ShopifyError> {
    if !page.has_next_page {
        return Ok(None);
    }
    page.end_cursor
        .clone()
        .map(Some)
        .ok_or_else(|| ShopifyError::Transient {
            reason: "Shopify reported a next page without a cursor".into(),
            retry_after: None,
        })
}

/// Follows a connection from `after` to its last page, one request per page
/// (`read_page` reads the page after a cursor), and refuses to read on after
/// [`MAX_PAGES`] pages (`op` names the document in that error).
async fn read_pages<T, F>(
    op: &str,
    mut after: Option<String>,
    mut read_page: impl FnMut(Option<String>) -> F,
) -> Result<Vec<T>, ShopifyError>
where
    F: Future<Output = Result<wire::Page<T>, ShopifyError>>,
{
    let mut result = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = read_page(after).await?;
        result.extend(page.nodes);
        after = next_cursor(&page.page_info)?;
        if after.is_none() {
            return Ok(result);
        }
    }
    Err(too_many_pages(op))
}

fn vanished(id: &str) -> ShopifyError {
    ShopifyError::Transient {
        reason: format!("{id} disappeared while it was being read"),
        retry_after: None,
    }
}

fn too_many_pages(op: &str) -> ShopifyError {
    ShopifyError::Permanent(format!(
        "{op}: more than {MAX_PAGES} pages; refusing to read on"
    ))
}

fn no_payload(mutation: &str) -> ShopifyError {
    ShopifyError::UnknownOutcome {
        reason: format!("{mutation} returned neither a result nor userErrors"),
    }
}

fn user_errors(errors: &[wire::UserError]) -> Result<(), ShopifyError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ShopifyError::UserErrors(
            errors.iter().map(wire::UserError::describe).collect(),
        ))
    }
}

/// A mutation's `userErrors` as a [`ShopifyError::Permanent`] (sending the
/// same call again will not help) saying `what` was refused, with Shopify's
/// messages.
fn refused(errors: &[wire::UserError], what: impl FnOnce() -> String) -> Result<(), ShopifyError> {
    if errors.is_empty() {
        return Ok(());
    }
    let messages: Vec<String> = errors.iter().map(wire::UserError::describe).collect();
    Err(ShopifyError::Permanent(format!(
        "{}: {}",
        what(),
        messages.join("; ")
    )))
}

fn fulfillment_input(req: &FulfillmentRequest) -> Result<Value, ShopifyError> {
    // Shopify reads an empty list as "everything remaining": never send one.
    if req.items.is_empty() {
        return Err(ShopifyError::Permanent(format!(
            "fulfillment for {} has no line items",
            req.fulfillment_order_id
        )));
    }
    let mut lines = Vec::with_capacity(req.items.len());
    for (id, quantity) in &req.items {
        let quantity = i32::try_from(*quantity)
            .ok()
            .filter(|q| *q > 0)
            .ok_or_else(|| {
                ShopifyError::Permanent(format!("line {id}: quantity {quantity} is not 1..=2^31-1"))
            })?;
        lines.push(json!({ "id": id, "quantity": quantity }));
    }
    let mut input = Map::new();
    input.insert(
        "lineItemsByFulfillmentOrder".into(),
        json!([{
            "fulfillmentOrderId": req.fulfillment_order_id,
            "fulfillmentOrderLineItems": lines,
        }]),
    );
    input.insert("notifyCustomer".into(), Value::Bool(req.notify_customer));
    if !req.tracking.is_empty() {
        input.insert("trackingInfo".into(), tracking_input(&req.tracking)?);
    }
    Ok(Value::Object(input))
}

fn tracking_input(tracking: &Tracking) -> Result<Value, ShopifyError> {
    if !tracking.urls.is_empty() && tracking.numbers.is_empty() {
        return Err(ShopifyError::Permanent(
            "tracking URLs need tracking numbers".into(),
        ));
    }
    let mut input = Map::new();
    if let Some(company) = &tracking.company {
        input.insert("company".into(), json!(company));
    }
    if !tracking.numbers.is_empty() {
        input.insert("numbers".into(), json!(tracking.numbers));
    }
    if !tracking.urls.is_empty() {
        input.insert("urls".into(), json!(tracking.urls));
    }
    Ok(Value::Object(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_built_from_shop_url_and_version() {
        let url = endpoint("https://example.myshopify.com/", "2026-10").map(|u| u.to_string());
        assert_eq!(
            url,
            Ok("https://example.myshopify.com/admin/api/2026-10/graphql.json".to_owned())
        );
        let url = endpoint("http://127.0.0.1:8080/shops/a", "unstable").map(|u| u.to_string());
        assert_eq!(
            url,
            Ok("http://127.0.0.1:8080/shops/a/admin/api/unstable/graphql.json".to_owned())
        );
        assert!(endpoint("example.myshopify.com", "2026-10").is_err());
        assert!(endpoint("ftp://example.com", "2026-10").is_err());
        assert!(endpoint("https://example.com?x=1", "2026-10").is_err());
        assert!(endpoint("https://example.com", "2026-10/../x").is_err());
        assert!(endpoint("https://example.com", "").is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let http = ShopifyClient::http_client(&Timeouts::default(), TargetPolicy::PUBLIC_ONLY);
        let client = http.and_then(|http| {
            ShopifyClient::new(
                http,
                "https://example.myshopify.com",
                "2026-10",
                SecretString::from("shpat_secret"),
            )
        });
        let shown = format!("{client:?}");
        assert!(shown.contains("example.myshopify.com"), "{shown}");
        assert!(!shown.contains("shpat_secret"), "{shown}");
    }

    #[test]
    fn changed_since_query_is_inclusive_and_refuses_anything_but_a_time() {
        assert_eq!(
            changed_since_query("2026-11-01T00:00:00Z").ok().as_deref(),
            Some("updated_at:>='2026-11-01T00:00:00Z'")
        );
        assert!(changed_since_query("2026-11-01' OR name:*").is_err());
        assert!(changed_since_query("").is_err());
    }

    #[test]
    fn name_search_quotes_anything_unusual() {
        assert_eq!(name_search("#1001"), "name:#1001");
        assert_eq!(name_search("SO-1001"), "name:SO-1001");
        assert_eq!(name_search("a b"), "name:\"a b\"");
        assert_eq!(name_search("x\" OR name:*"), "name:\"x\\\" OR name:*\"");
    }

    fn request(items: Vec<(String, u64)>, tracking: Tracking) -> FulfillmentRequest {
        FulfillmentRequest {
            fulfillment_order_id: "gid://shopify/FulfillmentOrder/1".into(),
            items,
            tracking,
            notify_customer: true,
        }
    }

    #[test]
    fn fulfillment_input_uses_lists_and_refuses_empty_or_zero() {
        let req = request(
            vec![("gid://shopify/FulfillmentOrderLineItem/7".into(), 2)],
            Tracking {
                company: Some("UPS".into()),
                numbers: vec!["1Z1".into(), "1Z2".into()],
                urls: vec![],
            },
        );
        assert_eq!(
            fulfillment_input(&req),
            Ok(json!({
                "lineItemsByFulfillmentOrder": [{
                    "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
                    "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/7", "quantity": 2}],
                }],
                "notifyCustomer": true,
                "trackingInfo": {"company": "UPS", "numbers": ["1Z1", "1Z2"]},
            }))
        );
        let no_tracking = request(vec![("a".into(), 1)], Tracking::default());
        assert!(fulfillment_input(&no_tracking).is_ok_and(|v| v.get("trackingInfo").is_none()));
        assert!(fulfillment_input(&request(vec![], Tracking::default())).is_err());
        assert!(fulfillment_input(&request(vec![("a".into(), 0)], Tracking::default())).is_err());
        assert!(
            fulfillment_input(&request(vec![("a".into(), 1 << 40)], Tracking::default())).is_err()
        );
        let urls_only = Tracking {
            company: None,
            numbers: vec![],
            urls: vec!["https://t".into()],
        };
        assert!(fulfillment_input(&request(vec![("a".into(), 1)], urls_only)).is_err());
    }
}
