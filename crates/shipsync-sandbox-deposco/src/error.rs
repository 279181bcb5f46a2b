/// Errors of the sandbox's Rust API (the HTTP side answers with Deposco's error bodies instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no shipment numbered {0:?} in the sandbox; add it with add_shipment first")]
    UnknownShipment(String),
    #[error("could not deliver the webhook to {url}: {source}; is the receiver listening?")]
    Delivery {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}
