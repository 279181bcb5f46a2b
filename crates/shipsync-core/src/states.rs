//! The closed sets of words the database stores and the API shows: states
//! of shipments, orders, runs, store fulfillments and events, and the other
//! columns that hold one of a few names (sources, channels, triggers, store
//! status, roles, kit policies).
//!
//! This is the mapping code: the one place such a word is written. Each
//! type reads (`FromStr`, `TryFrom<&str>`: an unknown word is an
//! [`UnknownState`]), writes (`as_str`, `Display`) and (de)serializes as the
//! same snake_case word that is stored, so that API answers stay what they
//! were.

use std::fmt;
use std::str::FromStr;

/// A stored or given word that is none of its type's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState {
    /// The type, e.g. `ShipmentStatus`.
    pub what: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.value)
    }
}

impl std::error::Error for UnknownState {}

/// The words of `values`, comma-separated, e.g. for "must be one of …".
pub fn listed<T: Copy + Into<&'static str>>(values: &[T]) -> String {
    values
        .iter()
        .map(|&v| v.into())
        .collect::<Vec<&str>>()
        .join(", ")
}

/// A closed set of words: the enum, `ALL`, `as_str`, `FromStr`,
/// `TryFrom<&str>`, `Display` and serde as the word.
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(UnknownState {
                        what: stringify!($name),
                        value: s.to_string(),
                    }),
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = UnknownState;

            fn try_from(s: &str) -> Result<Self, UnknownState> {
                s.parse()
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str {
                v.as_str()
            }
        }

        impl fmt::Display for $name {

            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

words! {
    /// Where a shipment stands with the store.
    ShipmentStatus {
        /// Received, not yet processed.
        New = "new",
        /// Waiting for something (the store, its order, a retry).
        Open = "open",
        /// Every package is in the store.
        Completed = "completed",
        /// shipsync gave up, or the shipment contradicts its order.
        Error = "error",
        /// Put aside by a person: no further processing.
        Archived = "archived",
    }
}

words! {
    /// Where a store order of the Sales Orders channel stands.
    OrderStatus {
        New = "new",
        /// Waiting for its hold period, a hold tag to go, a payment or a
        /// Shopify fulfillment hold (the reason is in its activity).
        Held = "held",
        /// Waiting to be sent to the warehouse.
        Queued = "queued",
        /// In the warehouse, nothing shipped yet.
        Open = "open",
        PartiallyShipped = "partially_shipped",
        Shipped = "shipped",
        /// Cancelled in the store; cancelled in the warehouse too when it
        /// had been sent.
        Cancelled = "cancelled",
        /// The store changed it after the warehouse could no longer follow
        /// (released or shipped): a person must act (`error` says what).
        NeedsAttention = "needs_attention",
        Error = "error",
        /// Every line fulfilled or cancelled in the store.
        Closed = "closed",
        Archived = "archived",
    }
}

impl OrderStatus {
    /// Shipped, cancelled, closed or archived: shipments no longer move it.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            OrderStatus::Shipped
                | OrderStatus::Cancelled
                | OrderStatus::Closed
                | OrderStatus::Archived
        )
    }
}

words! {
    /// Where a channel run stands.
    RunStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

impl RunStatus {
    /// Queued or running: at most one such run per channel.
    pub const ACTIVE: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Running];
}

words! {
    /// What started a run.
    RunTrigger {
        /// A slot of the channel's schedule.
        Schedule = "schedule",
        /// Run now, in the UI or the API.
        Manual = "manual",
        /// The command line.
        Cli = "cli",
    }
}

words! {
    /// A connection's channel.
    Channel {
        /// Shipments from the warehouse to the store.
        Shipments = "shipments",
        /// Store orders to the warehouse.
        SalesOrders = "sales_orders",
    }
}

words! {
    /// A store fulfillment shipsync created (or is creating).
    FulfillmentState {
        /// Sent or about to be: its outcome is not known yet.
        Pending = "pending",
        /// The store has it.
        Done = "done",
    }
}

words! {
    /// What the webhook endpoint decided about a delivery, and later what
    /// processing it found.
    EventOutcome {
        Accepted = "accepted",
        NeedsAttention = "needs_attention",
        Rejected = "rejected",
        TooLarge = "too_large",
        InvalidSignature = "invalid_signature",
    }
}

impl EventOutcome {
    /// Deliveries that count: a repeat of one of them is a repeat.
    pub const COUNTED: [EventOutcome; 2] = [EventOutcome::Accepted, EventOutcome::NeedsAttention];
    /// Deliveries refused at the door.
    pub const REFUSED: [EventOutcome; 3] = [
        EventOutcome::InvalidSignature,
        EventOutcome::TooLarge,
        EventOutcome::Rejected,
    ];
}

words! {
    /// How a shipment version reached shipsync.
    Source {
        /// Deposco's webhook.
        Webhook = "webhook",
        /// A pull of the Shipments channel.
        Poll = "poll",
    }
}

words! {
    /// Whether a connection's store accepts its credentials.
    StoreStatus {
        Ok = "ok",
        /// The store refused the credentials; a person must reconnect.
        ReconnectNeeded = "reconnect_needed",
    }
}

words! {
    /// What a user may do.
    Role {
        /// Everything, including users.
        Admin = "admin",
        /// Everything but users; optionally limited to some merchants.
        Staff = "staff",
        /// Only its own merchant's data.
        Merchant = "merchant",
    }
}

words! {
    /// How kit (bundle) lines count as shipped.
    #[derive(Default)]
    KitPolicy {
        /// A kit counts only when all its components have shipped.
        #[default]
        CompleteKits = "complete_kits",
        /// A kit counts as soon as any component ships (capped at ordered).
        FirstComponent = "first_component",
    }
}

words! {
    /// What can raise an alert (issue 16).
    AlertEvent {
        /// Shipments in `error`.
        ShipmentError = "shipment.error",
        /// Store orders in `error`.
        OrderError = "order.error",
        /// Store orders in `needs_attention`.
        OrderNeedsAttention = "order.needs_attention",
        /// A channel whose latest finished run failed.
        RunFailed = "run.failed",
        /// A channel whose schedule slot passed without a run.
        RunMissed = "run.missed",
        /// The store or the warehouse refused the credentials.
        CredentialsRefused = "credentials.refused",
        /// A merchant's webhooks stopped while the pull keeps finding shipments.
        WebhooksStopped = "webhooks.stopped",
        /// Ship-to-store time (p99) above the policy's threshold.
        LatencyHigh = "latency.high",
        /// Work given up after the last retry.
        RetriesExhausted = "retries.exhausted",
        /// The ingest queue was full (503s given).
        IngestSaturated = "ingest.saturated",
    }
}

words! {
    /// Where an alert stands.
    AlertStatus {
        Open = "open",
        /// Seen by a person; still in the condition.
        Acknowledged = "acknowledged",
        /// None of its subjects is in the condition any more.
        Closed = "closed",
    }
}

words! {
    /// Where a notification channel sends.
    NotificationKind {
        Email = "email",
        Webhook = "webhook",
    }
}

words! {
    /// How an SMTP connection is secured.
    SmtpTls {
        /// Plain text (a relay on a trusted network).
        None = "none",
        /// Plain, then upgraded (port 587); refused without it.
        Starttls = "starttls",
        /// TLS from the start (port 465).
        Tls = "tls",
    }
}

words! {
    /// The body of a webhook channel's messages.
    WebhookFormat {
        /// A Slack incoming webhook: `{"text": …}` in mrkdwn.
        Slack = "slack",
        /// shipsync's own JSON (`{"type": "alerts", …}`).
        Json = "json",
    }
}

impl Role {
    /// The name the UI shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "Administrator",
            Self::Staff => "Staff",
            Self::Merchant => "Merchant",
        }
    }
}

words! {
    /// What an outbound event tells a merchant's systems (issue 16).
    EventType {
        /// A shipment reached the store: every package is there.
        ShipmentCompleted = "shipment.completed",
        /// shipsync gave up on a shipment (a person must look).
        ShipmentError = "shipment.error",
        /// An order was sent to the warehouse (or found there already).
        OrderSent = "order.sent",
        /// An order could not be sent to the warehouse.
        OrderError = "order.error",
        /// An order was cancelled in the store.
        OrderCancelled = "order.cancelled",
    }
}

words! {
    /// Where one delivery of an outbound event to one subscription stands.
    DeliveryState {
        /// Not answered with a 2xx yet; attempts go on.
        Pending = "pending",
        /// The subscriber answered a 2xx.
        Delivered = "delivered",
        /// Every retry failed (or the subscription was switched off).
        Failed = "failed",
    }
}

words! {
    /// How an event subscription's deliveries go.
    SubscriptionStatus {
        Active = "active",
        /// A delivery exhausted its retries; the next one that succeeds
        /// makes it `active` again.
        Failing = "failing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of `T` reads back from its word, its `Display` and its
    /// JSON; an unknown word is refused.
    fn round_trips<T>(all: &[T])
    where
        T: Copy
            + PartialEq
            + fmt::Debug
            + fmt::Display
            + FromStr<Err = UnknownState>
            + for<'a> TryFrom<&'a str, Error = UnknownState>
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let mut seen = std::collections::BTreeSet::new();
        for &v in all {
            let word = v.to_string();
            assert!(seen.insert(word.clone()), "{word} used twice");
            assert_eq!(word.parse::<T>(), Ok(v));
            assert_eq!(T::try_from(word.as_str()), Ok(v));
            let json = serde_json::to_string(&v).expect("serialize");
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<T>(&json).expect("deserialize"), v);
        }
        let bad = "no_such_word".parse::<T>().expect_err("unknown word");
        assert_eq!(bad.value, "no_such_word");
        assert!(serde_json::from_str::<T>("\"no_such_word\"").is_err());
        assert!(serde_json::from_str::<T>("3").is_err());
    }

    #[test]
    fn every_value_round_trips() {
        round_trips(ShipmentStatus::ALL);
        round_trips(OrderStatus::ALL);
        round_trips(EventType::ALL);
        round_trips(DeliveryState::ALL);
        round_trips(SubscriptionStatus::ALL);
        round_trips(RunStatus::ALL);
        round_trips(RunTrigger::ALL);
        round_trips(Channel::ALL);
        round_trips(FulfillmentState::ALL);
        round_trips(EventOutcome::ALL);
        round_trips(Source::ALL);
        round_trips(StoreStatus::ALL);
        round_trips(Role::ALL);
        round_trips(crate::ledger::KitPolicy::ALL);
        round_trips(AlertEvent::ALL);
        round_trips(AlertStatus::ALL);
        round_trips(NotificationKind::ALL);
        round_trips(SmtpTls::ALL);
        round_trips(WebhookFormat::ALL);
    }

    #[test]
    fn words_are_the_stored_ones() {
        assert_eq!(ShipmentStatus::Completed.as_str(), "completed");
        assert_eq!(OrderStatus::PartiallyShipped.as_str(), "partially_shipped");
        assert_eq!(EventOutcome::NeedsAttention.to_string(), "needs_attention");
        assert_eq!(StoreStatus::ReconnectNeeded.as_str(), "reconnect_needed");
        assert_eq!(Channel::SalesOrders.as_str(), "sales_orders");
        assert_eq!(
            "unknown ShipmentStatus \"x\"",
            "x".parse::<ShipmentStatus>().unwrap_err().to_string()
        );
    }
}
