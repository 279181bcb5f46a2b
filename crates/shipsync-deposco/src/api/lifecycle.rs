//! Where a Deposco sales order is in its life, and what shipsync may still
//! ask of it. The only place on shipsync's side where Deposco's
//! `orderStatus` words and "what is still allowed" are spelled.
//!
//! Source: `shared/docs/orders-lifecycle.md` § "Deposco sales orders"
//! (Deposco's REST API 2.0 as published in its SDKs; not tried against a
//! live Deposco). In short:
//! - cancel (whole order, lines, part of a line) while New, Hold, Ready for
//!   Fulfillment, Wave Built or Back Ordered; Draft: the whole order only;
//!   Partially Released: only a line's back-ordered units;
//! - change the status (`New`, `Hold`, `Canceled`) from Draft, Ready for
//!   Fulfillment, Wave Built, Back Ordered (to any of the three), New (to
//!   Hold or Canceled) and Hold (to New or Canceled);
//! - update through create-or-update (address, ship via, added lines,
//!   raised quantities) while Draft, New, Hold, Ready for Fulfillment, Wave
//!   Built or Back Ordered; lowering a quantity is a cancellation;
//! - too late: Released and every later status.

/// `orderStatus` value for [`super::DeposcoClient::set_sales_order_status`]:
/// back to the floor.
pub const STATUS_NEW: &str = "New";
/// `orderStatus` value: held (not picked until set back to `New`).
pub const STATUS_HOLD: &str = "Hold";
/// `orderStatus` of a cancelled order (Deposco spells it with one "l").
pub const STATUS_CANCELED: &str = "Canceled";

/// Where a sales order is, as far as shipsync can still act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SalesOrderStage {
    /// `Draft`: can be updated or cancelled as a whole; lines cannot be
    /// cancelled one by one.
    Draft,
    /// `New`, `Hold`, `Ready for Fulfillment`, `Wave Built`, `Back Ordered`:
    /// can be updated, held, released back, and cancelled whole, by line or
    /// in part.
    Editable,
    /// `Partially Released`: only back-ordered units can be cancelled; no
    /// update, no status change.
    PartiallyReleased,
    /// `Released` and later (picking, packing, loading, shipping): nothing
    /// can be cancelled or changed through the API any more.
    TooLate,
    /// `Canceled`.
    Cancelled,
    /// A word this module does not know: treated as allowing nothing (fail
    /// closed) and shown to a person as it came.
    Unknown(String),
}

impl SalesOrderStage {
    /// The stage of Deposco's `orderStatus` word (compared without case and
    /// surrounding spaces; `Cancelled` with two "l" is read as cancelled too).
    pub fn of(order_status: &str) -> Self {
        let word = order_status.trim().to_ascii_lowercase();
        match word.as_str() {
            "draft" => Self::Draft,
            "new" | "hold" | "ready for fulfillment" | "wave built" | "back ordered" => {
                Self::Editable
            }
            "partially released" => Self::PartiallyReleased,
            "released" | "picking" | "pick complete" | "partially staged" | "staged"
            | "partially loaded" | "loaded" | "partially shipped" | "ship complete" => {
                Self::TooLate
            }
            "canceled" | "cancelled" => Self::Cancelled,
            _ => Self::Unknown(order_status.trim().to_owned()),
        }
    }

    /// The whole order can be cancelled (`POST …/cancellations` without lines).
    pub fn can_cancel_order(&self) -> bool {
        matches!(self, Self::Draft | Self::Editable)
    }

    /// Lines, or units of a line, can be cancelled. While
    /// [`Self::PartiallyReleased`] only back-ordered units can, which this
    /// answer does not cover: Deposco decides, a refusal is `Rejected`.
    pub fn can_cancel_lines(&self) -> bool {
        matches!(self, Self::Editable)
    }

    /// Create-or-update may change the header, add lines and raise
    /// quantities (never lower them: that is a cancellation).
    pub fn can_update(&self) -> bool {
        matches!(self, Self::Draft | Self::Editable)
    }

    /// Nothing can be cancelled or changed any more: Released or later.
    pub fn is_too_late(&self) -> bool {
        matches!(self, Self::TooLate)
    }
}

/// Deposco allows `POST …/status?value=to` for an order now in `from`.
/// Unknown words allow nothing.
pub fn status_change_allowed(from: &str, to: &str) -> bool {
    let to = to.trim();
    if ![STATUS_NEW, STATUS_HOLD, STATUS_CANCELED].contains(&to) {
        return false;
    }
    match from.trim().to_ascii_lowercase().as_str() {
        "draft" | "ready for fulfillment" | "wave built" | "back ordered" => true,
        "new" => to != STATUS_NEW,
        "hold" => to != STATUS_HOLD,
        _ => false,
    }
}

/// The same status word, as Deposco compares them.
pub(crate) fn same_status(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
        || (SalesOrderStage::of(a) == SalesOrderStage::Cancelled
            && SalesOrderStage::of(b) == SalesOrderStage::Cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_has_its_stage() {
        use SalesOrderStage::*;
        let table: &[(&str, SalesOrderStage)] = &[
            ("Draft", Draft),
            ("New", Editable),
            ("Hold", Editable),
            ("Ready for Fulfillment", Editable),
            ("Wave Built", Editable),
            ("Back Ordered", Editable),
            ("Partially Released", PartiallyReleased),
            ("Released", TooLate),
            ("Picking", TooLate),
            ("Pick Complete", TooLate),
            ("Partially Staged", TooLate),
            ("Staged", TooLate),
            ("Partially Loaded", TooLate),
            ("Loaded", TooLate),
            ("Partially Shipped", TooLate),
            ("Ship Complete", TooLate),
            ("Canceled", Cancelled),
            ("Cancelled", Cancelled),
            (" wave built ", Editable),
            ("Shipped", Unknown("Shipped".into())),
            ("", Unknown(String::new())),
        ];
        for (word, stage) in table {
            assert_eq!(&SalesOrderStage::of(word), stage, "{word:?}");
        }
    }

    #[test]
    fn what_each_stage_allows() {
        use SalesOrderStage::*;
        // (stage, cancel order, cancel lines, update, too late)
        let table = [
            (Draft, true, false, true, false),
            (Editable, true, true, true, false),
            (PartiallyReleased, false, false, false, false),
            (TooLate, false, false, false, true),
            (Cancelled, false, false, false, false),
            (Unknown("Shipped".into()), false, false, false, false),
        ];
        for (stage, order, lines, update, late) in table {
            assert_eq!(stage.can_cancel_order(), order, "{stage:?}");
            assert_eq!(stage.can_cancel_lines(), lines, "{stage:?}");
            assert_eq!(stage.can_update(), update, "{stage:?}");
            assert_eq!(stage.is_too_late(), late, "{stage:?}");
        }
    }

    #[test]
    fn status_changes() {
        let table = [
            ("Draft", "New", true),
            ("Draft", "Hold", true),
            ("Draft", "Canceled", true),
            ("New", "Hold", true),
            ("New", "Canceled", true),
            ("New", "New", false),
            ("Hold", "New", true),
            ("Hold", "Canceled", true),
            ("Hold", "Hold", false),
            ("Ready for Fulfillment", "Hold", true),
            ("Wave Built", "New", true),
            ("Back Ordered", "Canceled", true),
            ("Partially Released", "Hold", false),
            ("Released", "New", false),
            ("Released", "Canceled", false),
            ("Ship Complete", "Hold", false),
            ("Canceled", "New", false),
            ("New", "Released", false),
            ("New", "Cancelled", false),
            ("Mystery", "Hold", false),
        ];
        for (from, to, allowed) in table {
            assert_eq!(status_change_allowed(from, to), allowed, "{from} → {to}");
        }
    }

    #[test]
    fn same_words() {
        assert!(same_status("Hold", "hold "));
        assert!(same_status("Canceled", "Cancelled"));
        assert!(!same_status("New", "Hold"));
        assert!(!same_status("Released", "Picking"));
    }
}
