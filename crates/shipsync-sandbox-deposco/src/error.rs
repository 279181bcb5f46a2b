/// Errors of the sandbox's Rust API (the HTTP side answers with Deposco's error bodies instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no shipment numbered {0:?} in the sandbox; add it with add_shipment first")]
    UnknownShipment(String),
    #[error("no sales order numbered {0:?} in the sandbox; post it to /orders/salesOrders first")]
    UnknownSalesOrder(String),
    #[error("{0:?} is not a Deposco orderStatus; use one of: {list}", list = crate::lifecycle::STATUSES.join(", "))]
    UnknownOrderStatus(String),
    #[error("sales order {order:?} has no order line {line_number:?}")]
    UnknownOrderLine { order: String, line_number: String },
    #[error(
        "cannot back-order {units} units of line {line_number:?} of sales order {order:?}: it has {open} open"
    )]
    BackOrder {
        order: String,
        line_number: String,
        units: f64,
        open: f64,
    },
    #[error("could not deliver the webhook to {url}: {source}; is the receiver listening?")]
    Delivery {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}
