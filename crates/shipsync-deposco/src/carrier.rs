//! Warehouse carrier codes → the store's (Shopify's) tracking company names.
//!
//! Shopify builds tracking links itself for the companies on its list, and
//! only when the name is spelled exactly as listed, so a known carrier is
//! sent by that name and an unknown one (`None`) makes the caller send the
//! tracking URL instead. Matching ignores case, spaces and punctuation
//! ("FEDEX_GROUND" = "FedEx Ground"), and takes the longest alias that the
//! text starts with at a word boundary, so a carrier followed by a service
//! ("USPS Ground Advantage") is the carrier, and "DHL eCommerce" is not
//! "DHL Express".

use std::collections::BTreeMap;

/// Store names (spelled as Shopify lists them) with the warehouse codes that
/// mean them, in compact form (lower case, letters and digits only). The
/// compact store name is always an alias too.
const CARRIERS: &[(&str, &[&str])] = &[
    ("UPS", &["upsn", "unitedparcelservice", "upsground", "upss"]),
    (
        "FedEx",
        &[
            "fdx",
            "fdxg",
            "fdxe",
            "fdxh",
            "fdeg",
            "fde",
            "federalexpress",
            "fedexsmartpost",
        ],
    ),
    (
        "USPS",
        &["unitedstatespostalservice", "usmail", "stamps", "stampscom"],
    ),
    (
        "DHL Express",
        &["dhl", "dhlworldwide", "dhlintl", "dhlinternational"],
    ),
    (
        "DHL eCommerce",
        &["dhlglobalmail", "dhlec", "dhlecom", "dhlsmartmail"],
    ),
    ("Canada Post", &["cpc", "canpost", "postescanada"]),
    (
        "Amazon",
        &[
            "amzl",
            "amazonlogistics",
            "amazonlogisticsus",
            "amazonshipping",
            "amzn",
        ],
    ),
    ("Amazon Logistics UK", &[]),
    ("OnTrac", &["ontracground"]),
    ("Lasership", &["lsr"]),
    ("Royal Mail", &["rmg"]),
    ("Australia Post", &["auspost", "apost"]),
    ("Purolator", &[]),
    ("Canpar", &[]),
    ("DPD", &[]),
    ("DPD UK", &[]),
    ("DPD Local", &[]),
    ("GLS", &[]),
    ("TNT", &[]),
    ("PostNL", &[]),
    ("Evri", &["hermes", "hermesuk"]),
    ("Sendle", &[]),
    ("StarTrack", &[]),
    ("New Zealand Post", &["nzpost"]),
    ("Deutsche Post", &[]),
    ("La Poste", &[]),
    ("Colissimo", &[]),
    ("Chronopost", &[]),
    ("Correos", &[]),
    ("Poste Italiane", &[]),
    ("Swiss Post", &[]),
    ("Asendia USA", &["asendia"]),
    ("Pitney Bowes", &["pitneybowesglobal", "pbi"]),
    ("Lone Star Overnight", &["lso"]),
    ("TForce Final Mile", &[]),
    ("United Delivery Service", &["uds"]),
    ("Estes", &[]),
    ("XPO Logistics", &["xpo"]),
    ("Whistl", &[]),
    ("Yamato (EN)", &[]),
    ("SF Express", &[]),
    ("YunExpress", &[]),
    ("China Post", &[]),
    ("4PX", &[]),
];

fn compact(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Lower-case words of letters and digits.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn by_alias(alias: &str) -> Option<&'static str> {
    CARRIERS
        .iter()
        .find(|(name, aliases)| compact(name) == alias || aliases.contains(&alias))
        .map(|(name, _)| *name)
}

/// The store name for one warehouse carrier text, from the table.
fn from_table(text: &str) -> Option<&'static str> {
    let words = words(text);
    (1..=words.len())
        .rev()
        .find_map(|k| words.get(..k).and_then(|w| by_alias(&w.concat())))
}

/// The store's spelling of a known carrier name (any case).
fn canonical(name: &str) -> Option<&'static str> {
    let c = compact(name);
    CARRIERS.iter().map(|(n, _)| *n).find(|n| compact(n) == c)
}

/// Whether the store knows `name` as a tracking company (case-insensitive).
pub fn is_known(name: &str) -> bool {
    !name.trim().is_empty() && canonical(name).is_some()
}

/// The store carrier name for a warehouse shipment's `shipVendor` and
/// `shipVia`, or `None` when unknown (the caller then sends the tracking
/// URL). The merchant's `overrides` (warehouse text → store name, compared
/// ignoring case, spaces and punctuation) come first, for the vendor then
/// the service; an override to an empty name means "unknown" on purpose.
/// Then the built-in table, vendor first.
pub fn store_carrier(
    ship_vendor: Option<&str>,
    ship_via: Option<&str>,
    overrides: &BTreeMap<String, String>,
) -> Option<String> {
    let texts: Vec<&str> = [ship_vendor, ship_via]
        .into_iter()
        .flatten()
        .filter(|t| !compact(t).is_empty())
        .collect();
    for text in &texts {
        let key = compact(text);
        if let Some((_, to)) = overrides.iter().find(|(from, _)| compact(from) == key) {
            let to = to.trim();
            if to.is_empty() {
                return None;
            }
            return Some(canonical(to).map_or_else(|| to.to_string(), str::to_string));
        }
    }
    texts
        .iter()
        .find_map(|text| from_table(text))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(vendor: Option<&str>, via: Option<&str>) -> Option<String> {
        store_carrier(vendor, via, &BTreeMap::new())
    }

    #[test]
    fn table() {
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("UPS"), Some("UPS Ground"), Some("UPS")),
            (Some("ups"), None, Some("UPS")),
            (Some("UPSN"), None, Some("UPS")),
            (Some("UPS Mail Innovations"), None, Some("UPS")),
            (Some("FEDEX"), None, Some("FedEx")),
            (Some("FedEx Ground"), None, Some("FedEx")),
            (Some("FEDEX_GROUND"), None, Some("FedEx")),
            (Some("FDX"), None, Some("FedEx")),
            (Some("FDXG"), None, Some("FedEx")),
            (Some("USPS"), Some("USPS Ground Advantage"), Some("USPS")),
            (Some("USPS Ground Advantage"), None, Some("USPS")),
            (Some("usps-priority"), None, Some("USPS")),
            (Some("DHL"), None, Some("DHL Express")),
            (Some("DHLEXPRESS"), None, Some("DHL Express")),
            (Some("DHL Express Worldwide"), None, Some("DHL Express")),
            (Some("DHL eCommerce"), None, Some("DHL eCommerce")),
            (Some("DHL Global Mail"), None, Some("DHL eCommerce")),
            (Some("Canada Post"), None, Some("Canada Post")),
            (Some("CANADA_POST Expedited"), None, Some("Canada Post")),
            (Some("AMZL"), None, Some("Amazon")),
            (Some("Amazon Shipping"), None, Some("Amazon")),
            (Some("ONTRAC"), None, Some("OnTrac")),
            (Some("LaserShip"), None, Some("Lasership")),
            (Some("Royal Mail Tracked 48"), None, Some("Royal Mail")),
            (Some("AusPost"), None, Some("Australia Post")),
            (Some("australia post eparcel"), None, Some("Australia Post")),
            (Some("Purolator"), None, Some("Purolator")),
            // The service names the carrier when the vendor does not.
            (None, Some("FedEx Home Delivery"), Some("FedEx")),
            (Some("Best Way"), Some("UPS 2nd Day Air"), Some("UPS")),
            // The vendor wins over the service.
            (Some("USPS"), Some("UPS SurePost"), Some("USPS")),
            // Unknown.
            (Some("Acme Couriers"), None, None),
            (Some("UPSX"), None, None),
            (Some("   "), Some("--"), None),
            (None, None, None),
        ];
        for (vendor, via, want) in cases {
            assert_eq!(
                map(*vendor, *via).as_deref(),
                *want,
                "vendor {vendor:?}, via {via:?}"
            );
        }
    }

    #[test]
    fn overrides_come_first() {
        let overrides: BTreeMap<String, String> = [
            ("ACME".to_string(), "Acme Couriers".to_string()),
            ("UPS SurePost".to_string(), "usps".to_string()),
            ("LOCAL".to_string(), " ".to_string()),
            ("DHL".to_string(), "DHL eCommerce".to_string()),
        ]
        .into_iter()
        .collect();
        let ov = |vendor, via| store_carrier(vendor, via, &overrides);
        assert_eq!(ov(Some("acme"), None).as_deref(), Some("Acme Couriers"));
        assert_eq!(
            ov(Some("UPS"), Some("ups_surepost")).as_deref(),
            Some("USPS"),
            "an override on the service beats the table on the vendor; known names are respelled"
        );
        assert_eq!(
            ov(Some("Local"), Some("FedEx")),
            None,
            "empty override = unknown"
        );
        assert_eq!(ov(Some("dhl"), None).as_deref(), Some("DHL eCommerce"));
        assert_eq!(
            ov(Some("DHL Express"), None).as_deref(),
            Some("DHL Express"),
            "overrides match whole texts"
        );
    }

    #[test]
    fn known_names() {
        for name in [
            "UPS",
            "fedex",
            "DHL Express",
            "dhl express",
            "Canada Post",
            "Amazon",
            "Lasership",
            "OnTrac",
        ] {
            assert!(is_known(name), "{name}");
        }
        for name in ["", "DHL", "Acme", "FedEx Ground"] {
            assert!(!is_known(name), "{name}");
        }
        // Every table entry maps to itself.
        for (name, _) in CARRIERS {
            assert_eq!(map(Some(name), None).as_deref(), Some(*name));
        }
    }
}
