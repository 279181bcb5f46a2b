//! The demo's order lifecycle (issue 14): with the store's order webhooks
//! on, a new order reaches Deposco without waiting for a pull; one is then
//! cancelled in the store and one edited there, and shipsync follows both
//! in Deposco while Deposco still allows it.

use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::Value;
use shipsync_sandbox_shopify::LineEdit;

use super::world::World;

/// How long each step may take before the demo reports it as not done.
const WAIT: Duration = Duration::from_secs(60);
/// The edited order's line, and its quantity before and after the edit.
const EDITED_SKU: &str = "TENT-2P";
const EDITED_FROM: u32 = 1;
const EDITED_TO: u32 = 3;

/// What became of an order changed in the store: in shipsync and in Deposco.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The store's order name (`#1021`).
    pub name: String,
    /// shipsync's status of the order (`cancelled`, `open`, …), or what
    /// stopped the demo from seeing one.
    pub status: String,
    /// Deposco's sales order number and status (`Canceled`, `New`, …),
    /// when it has one.
    pub deposco_number: Option<String>,
    pub deposco_status: Option<String>,
    /// Deposco's units per SKU, not cancelled.
    pub deposco_units: Vec<(String, f64)>,
    /// Whether shipsync and Deposco both show what the store wants now.
    pub ok: bool,
    /// The summary's line.
    pub line: String,
}

/// Places two orders (brought by their webhooks), cancels one in the store
/// and raises a quantity of the other, and waits until shipsync has applied
/// both in Deposco (or [`WAIT`] passed: then `ok` is false and the line
/// says what was seen).
pub(super) async fn follow_the_store(h: &mut World) -> Result<(Followed, Followed)> {
    h.wait_order_webhooks(WAIT).await?;
    eprintln!("order webhooks subscribed: new orders go to Deposco without waiting for a pull");
    let (cancel, _) = h.place_order(&[("LANTERN", 1)]);
    let (edit, _) = h.place_order(&[(EDITED_SKU, EDITED_FROM)]);
    let open = |o: &Value| o["status"] == "open";
    for name in [&cancel, &edit] {
        h.wait_order(name, "sent to Deposco through its webhook", WAIT, open)
            .await?;
    }
    eprintln!("{cancel} and {edit} reached Deposco through the store's order webhooks");

    h.shopify
        .sandbox
        .cancel_order(&cancel, "CUSTOMER")
        .map_err(|e| anyhow!("cancelling {cancel} in the store: {e}"))?;
    h.shopify
        .sandbox
        .edit_order(
            &edit,
            &[LineEdit::SetQuantity {
                line: EDITED_SKU.into(),
                quantity: EDITED_TO,
            }],
        )
        .map_err(|e| anyhow!("editing {edit} in the store: {e}"))?;
    eprintln!("cancelled {cancel} in the store; raised {edit}'s {EDITED_SKU} to {EDITED_TO}");

    let cancelled = follow(
        h,
        &cancel,
        "cancelled in shipsync and in Deposco",
        |o, so| o["status"] == "cancelled" && so.is_some_and(|so| so.status == "Canceled"),
    )
    .await?;
    let edited = follow(h, &edit, "the new quantity in Deposco", |o, so| {
        o["status"] == "open"
            && so.is_some_and(|so| units(so).contains(&(EDITED_SKU.into(), f64::from(EDITED_TO))))
    })
    .await?;
    Ok((
        with_line(cancelled, "cancelled by the customer"),
        with_line(
            edited,
            &format!("{EDITED_SKU} raised {EDITED_FROM} → {EDITED_TO}"),
        ),
    ))
}

/// Deposco's units per SKU of a sales order, not cancelled.
fn units(so: &shipsync_sandbox_deposco::SalesOrderRecord) -> Vec<(String, f64)> {
    so.lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity - l.canceled_quantity))
        .collect()
}

/// Waits until `done` holds for the order and its Deposco sales order;
/// either way, what both show at the end.
async fn follow(
    h: &World,
    name: &str,
    what: &str,
    done: impl Fn(&Value, Option<&shipsync_sandbox_deposco::SalesOrderRecord>) -> bool,
) -> Result<Followed> {
    let deposco = |o: &Value| {
        o["warehouse_order_number"]
            .as_str()
            .and_then(|n| h.deposco.sandbox.sales_order(n))
    };
    let waited = h
        .wait_order(name, what, WAIT, |o| done(o, deposco(o).as_ref()))
        .await;
    let order = match &waited {
        Ok(o) => Some(o.clone()),
        Err(_) => h.order_by_name(name).await?,
    };
    let so = order.as_ref().and_then(deposco);
    Ok(Followed {
        name: name.to_string(),
        status: order.as_ref().map_or_else(
            || "not in shipsync".to_string(),
            |o| o["status"].as_str().unwrap_or("?").to_string(),
        ),
        deposco_number: so.as_ref().map(|so| so.number.clone()),
        deposco_status: so.as_ref().map(|so| so.status.clone()),
        deposco_units: so.as_ref().map(units).unwrap_or_default(),
        ok: waited.is_ok(),
        line: String::new(),
    })
}

/// The summary's line, e.g. `#1021 cancelled by the customer → shipsync:
/// cancelled; Deposco 1021: Canceled`.
fn with_line(mut f: Followed, change: &str) -> Followed {
    let deposco = match (&f.deposco_number, &f.deposco_status) {
        (Some(number), Some(status)) => {
            let units: Vec<String> = f
                .deposco_units
                .iter()
                .filter(|(_, q)| *q > 0.0)
                .map(|(sku, q)| format!("{sku} × {q}"))
                .collect();
            if units.is_empty() {
                format!("Deposco {number}: {status}")
            } else {
                format!("Deposco {number}: {status}, {}", units.join(", "))
            }
        }
        _ => "not in Deposco".to_string(),
    };
    f.line = format!(
        "{} {change} → shipsync: {}; {deposco}{}",
        f.name,
        f.status,
        if f.ok {
            ""
        } else {
            " — NOT followed in time"
        }
    );
    f
}
