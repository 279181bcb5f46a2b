//! The store write: fulfillments created for what the store lacks (one per
//! fulfillment order and carrier, recorded before they are sent), and
//! tracking corrections on those it has.

use std::collections::{BTreeMap, BTreeSet};

use shipsync_core::fulfillment::{self, FoLineItem, FoProblem, FulfillmentOrderView};
use shipsync_core::ledger::LineShare;
use shipsync_core::mappings::{Mappings, TRACKING_PLACEHOLDER};
use shipsync_core::states::FulfillmentState;
use shipsync_core::{ShipmentVersion, tracking};
use shipsync_db::DbError;
use shipsync_db::fulfillments::{self, StoreFulfillmentRow};
use shipsync_db::shipments::ShipmentRow;
use shipsync_db::unit::{Conn, Unit};
use shipsync_db::{activity, new_id, now_micros};
use shipsync_shopify::{FulfillmentRequest, ShopifyClient, ShopifyError, StoreOrder, Tracking};

use super::plan::Correction;
use crate::Engine;
use crate::error::{EngineError, retry};
use crate::stores::StoreSettings;

/// Where a shipment's fulfillments go: the store order, through which
/// connection and client, with the store's settings and the merchant's
/// carrier names.
pub(super) struct Target<'a> {
    pub connection_id: &'a str,
    pub order: &'a StoreOrder,
    pub client: &'a ShopifyClient,
    pub settings: &'a StoreSettings,
    /// The merchant's mappings: its carriers name the store's company and
    /// tracking URL for a warehouse carrier.
    pub carriers: &'a Mappings,
}

impl Engine {
    /// Creates store fulfillments for `todo` (what the store lacks), planned
    /// all first so that a problem sends nothing; `told` are the packages
    /// the store already has on this shipment's fulfillments. Returns the
    /// outcomes of the writes, to be saved with the run's end (one unit);
    /// when a write fails, those before it are saved first.
    pub(super) async fn send_new(
        &self,
        s: &ShipmentRow,
        version: &ShipmentVersion,
        todo: &[LineShare],
        told: &BTreeSet<String>,
        to: &Target<'_>,
    ) -> Result<Vec<Recorded>, EngineError> {
        let Target {
            connection_id,
            order,
            client,
            settings,
            carriers,
        } = *to;
        let db = self.db();
        let fos: Vec<FulfillmentOrderView> = order
            .fulfillment_orders
            .iter()
            .map(|fo| FulfillmentOrderView {
                id: fo.id.clone(),
                status: fo.status.clone(),
                location_id: fo.location_id.clone(),
                line_items: fo
                    .line_items
                    .iter()
                    .map(|li| FoLineItem {
                        id: li.id.clone(),
                        line_item_id: li.line_item_id.clone(),
                        remaining_quantity: li.remaining_quantity,
                    })
                    .collect(),
            })
            .collect();
        // One fulfillment per (fulfillment order, carrier).
        let mut by_carrier: BTreeMap<Option<String>, Vec<&LineShare>> = BTreeMap::new();
        for share in todo {
            by_carrier
                .entry(share.carrier.clone())
                .or_default()
                .push(share);
        }
        // Plan everything first, so that a problem sends nothing.
        let mut plan = Vec::new();
        let mut remaining_fos = fos.clone();
        for (carrier, shares) in &by_carrier {
            let mut needs: BTreeMap<String, u64> = BTreeMap::new();
            for sh in shares {
                *needs.entry(sh.store_line_id.clone()).or_default() += sh.quantity;
            }
            let needs: Vec<(String, u64)> = needs.into_iter().collect();
            let assignments = fulfillment::assign(&needs, &remaining_fos, settings.location_id.as_deref()).map_err(|p| match p {
                FoProblem::Waiting(m) => retry(format!("waiting for the store: {m}")),
                FoProblem::Impossible(m) => EngineError::Permanent(format!(
                    "the store cannot take these quantities: {m}; check the order in the store (was it fulfilled by hand?)"
                )),
            })?;
            for a in &assignments {
                for (item, q) in &a.items {
                    for fo in remaining_fos
                        .iter_mut()
                        .filter(|f| f.id == a.fulfillment_order_id)
                    {
                        for li in fo.line_items.iter_mut().filter(|li| &li.id == item) {
                            li.remaining_quantity = li.remaining_quantity.saturating_sub(*q);
                        }
                    }
                }
            }
            let mut keys: BTreeSet<&String> = shares
                .iter()
                .flat_map(|sh| sh.package_keys.iter())
                .collect();
            // A changed shipment: the new units came in packages the store
            // does not know yet; those already on an earlier fulfillment of
            // this shipment keep their number there. When every package is
            // known (a package that grew), they all stay.
            let new_keys: BTreeSet<&String> = keys
                .iter()
                .copied()
                .filter(|k| !told.contains(*k))
                .collect();
            if !new_keys.is_empty() {
                keys = new_keys;
            }
            let pkg_tracking: Vec<(String, String)> = version
                .packages
                .iter()
                .filter(|p| keys.contains(&p.key))
                .filter_map(|p| {
                    p.tracking_number
                        .clone()
                        .filter(|t| !t.trim().is_empty())
                        .map(|t| (p.key.clone(), t))
                })
                .collect();
            for a in assignments {
                plan.push((carrier.clone(), a, pkg_tracking.clone()));
            }
        }
        let mut outcomes = Vec::new();
        for (carrier, a, pkg_tracking) in plan {
            let tracking = self.tracking_for(version, carrier.as_deref(), &pkg_tracking, carriers);
            let now = now_micros();
            let row = StoreFulfillmentRow {
                id: new_id("ful"),
                shipment_id: s.id.clone(),
                connection_id: connection_id.to_string(),
                store_order_id: order.id.clone(),
                fulfillment_order_id: a.fulfillment_order_id.clone(),
                store_fulfillment_id: None,
                carrier: tracking.company.clone().or(carrier.clone()),
                lines: a.store_lines.iter().cloned().collect(),
                items: a.items.iter().cloned().collect(),
                tracking: pkg_tracking.clone(),
                state: FulfillmentState::Pending,
                created_at: now,
                updated_at: now,
            };
            let req = FulfillmentRequest {
                fulfillment_order_id: a.fulfillment_order_id.clone(),
                items: a.items.clone(),
                tracking,
                notify_customer: settings.notify_customer,
            };
            // Recorded just before the request goes out (after any wait
            // for the store's budget), with its send time: if we crash or
            // lose the answer, the next attempt looks in the store before
            // creating anything, for as long as the store may still show
            // it. So it is durable even inside a job's relaxed scope (a
            // durable unit): after a power loss it is still there to be
            // looked for.
            let record = async {
                let mut row = row.clone();
                row.created_at = now_micros();
                row.updated_at = row.created_at;
                let sent_at = row.created_at;
                db.durable_unit(Intent { row })
                    .await
                    .map_err(|e| e.to_string())?;
                // Not a guard: a job stopped mid-call (shutdown) leaves it set.
                self.mutation_started(sent_at);
                Ok(())
            };
            let created = client
                .fulfillment_create_recorded(&req, Some(Box::pin(record)))
                .await;
            self.mutation_over();
            match created {
                Ok(created) => {
                    let mut row = row;
                    row.store_fulfillment_id = Some(created.id.clone());
                    row.state = FulfillmentState::Done;
                    let units: u64 = a.items.iter().map(|(_, q)| q).sum();
                    let message = format!(
                        "Store fulfillment {} created: {} unit(s), tracking {}",
                        created.id,
                        units,
                        if req.tracking.numbers.is_empty() {
                            "none".into()
                        } else {
                            req.tracking.numbers.join(", ")
                        }
                    );
                    outcomes.push(Recorded {
                        row,
                        shipment_id: s.id.clone(),
                        kind: "notified",
                        message,
                    });
                }
                Err(e @ (ShopifyError::UnknownOutcome { .. } | ShopifyError::Transient { .. })) => {
                    // Maybe applied: keep the pending row; the retry checks the store first.
                    self.record_outcomes(outcomes).await?;
                    return Err(e.into());
                }
                Err(e) => {
                    self.record_outcomes(outcomes).await?;
                    fulfillments::delete(db.pool(), &row.id).await?;
                    return Err(e.into());
                }
            }
        }
        Ok(outcomes)
    }

    /// Saves the outcomes of store writes on their own (one unit): a
    /// tracking correction's, or a run's when it stops before its end.
    pub(super) async fn record_outcomes(&self, outcomes: Vec<Recorded>) -> Result<(), EngineError> {
        if !outcomes.is_empty() {
            self.db().unit(Outcomes(outcomes)).await?;
        }
        Ok(())
    }

    /// The tracking a store fulfillment carries: the store's carrier name
    /// for the warehouse's (the merchant's carrier mappings first), the
    /// numbers, and URLs: the mapping's template when it has one, else the
    /// warehouse's URL when the store cannot build them itself.
    pub(crate) fn tracking_for(
        &self,
        version: &ShipmentVersion,
        carrier: Option<&str>,
        pkg_tracking: &[(String, String)],
        carriers: &Mappings,
    ) -> Tracking {
        let company = shipsync_deposco::carrier::store_carrier(
            carrier,
            version.service.as_deref(),
            &carriers.carrier_names(),
        );
        let numbers = tracking::numbers(pkg_tracking);
        let template = [carrier, version.service.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|t| carriers.carrier(t))
            .and_then(|c| c.tracking_url_template.as_deref());
        // Shopify builds the URL itself for carriers it knows.
        let urls = match (template, &company, &version.tracking_url) {
            (Some(t), _, _) => numbers
                .iter()
                .map(|n| t.replace(TRACKING_PLACEHOLDER, n))
                .collect(),
            (None, None, Some(base)) if !base.trim().is_empty() => {
                numbers.iter().map(|n| format!("{base}{n}")).collect()
            }
            _ => Vec::new(),
        };
        Tracking {
            company: company.or_else(|| carrier.map(str::to_string)),
            numbers,
            urls,
        }
    }

    /// Tracking corrections on fulfillments already made for this shipment.
    pub(super) async fn update_tracking(
        &self,
        s: &ShipmentRow,
        version: &ShipmentVersion,
        corrections: Vec<Correction>,
        to: &Target<'_>,
    ) -> Result<(), EngineError> {
        for c in corrections {
            let (mut r, fid, merged) = (c.row, c.fulfillment_id, c.tracking);
            let tracking = self.tracking_for(version, r.carrier.as_deref(), &merged, to.carriers);
            to.client
                .tracking_update(&fid, &tracking, to.settings.notify_customer)
                .await?;
            r.tracking = merged;
            self.record_outcomes(vec![Recorded {
                row: r,
                shipment_id: s.id.clone(),
                kind: "tracking",
                message: format!(
                    "Tracking of store fulfillment {fid} updated to {}",
                    tracking.numbers.join(", ")
                ),
            }])
            .await?;
        }
        Ok(())
    }
}

/// A store write's outcome: its fulfillment row, and a line of the
/// shipment's activity — saved in the unit of the run's end, or on their
/// own ([`Outcomes`]).
pub(crate) struct Recorded {
    row: StoreFulfillmentRow,
    shipment_id: String,
    kind: &'static str,
    message: String,
}

impl Recorded {
    /// Its statements in `c`.
    pub(crate) async fn run_in(&self, c: &mut impl Conn) -> Result<(), EngineError> {
        fulfillments::update(c.ex(), &self.row).await?;
        activity::add(c.ex(), &self.shipment_id, self.kind, &self.message).await?;
        Ok(())
    }
}

/// Several outcomes of store writes, in one unit.
struct Outcomes(Vec<Recorded>);

impl Unit for Outcomes {
    type Output = ();
    type Error = EngineError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<(), EngineError> {
        for r in &self.0 {
            r.run_in(c).await?;
        }
        Ok(())
    }
}

/// The intent of a store write, recorded durably just before it goes.
struct Intent {
    row: StoreFulfillmentRow,
}

impl Unit for Intent {
    type Output = ();
    type Error = DbError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<(), DbError> {
        fulfillments::insert(c.ex(), &self.row).await
    }
}
