//! `shipsync mappings export|import --merchant ID`: a merchant's mappings
//! as one TOML file, so that they can live in version control. The file is
//! the API's document (see `shipsync_core::mappings`) in TOML: a field left
//! out is empty (`null` in the API). An import is all or nothing, checked as
//! a PUT of the API is; export → import → export gives the same file.

use anyhow::{Context, Result, anyhow, bail};
use shipsync_core::mappings::Mappings;
use shipsync_engine::edit::EditError;

use crate::config::Settings;
use crate::server::command_engine;

/// Who an import is logged as in the merchant's activity.
const IMPORTED_BY: &str = "shipsync mappings import (command line)";

/// The document as the TOML file holds it.
pub fn to_toml(doc: &Mappings) -> Result<String> {
    toml::to_string(doc).context("cannot write the mappings as TOML")
}

/// A TOML file read as the API's JSON document (checked by the engine).
pub fn from_toml(text: &str) -> Result<serde_json::Value> {
    toml::from_str(text).map_err(|e| anyhow!("the file is not valid TOML: {e}"))
}

fn explain(merchant_id: &str, e: EditError) -> anyhow::Error {
    match e {
        EditError::NotFound(_) => anyhow!("no merchant {merchant_id}"),
        EditError::InvalidMapping { rule, message } => {
            anyhow!("{rule}: {message}; nothing was imported")
        }
        other => anyhow!("{other}"),
    }
}

/// Prints the merchant's mappings as TOML on stdout.
pub async fn export(settings: &Settings, merchant_id: &str) -> Result<()> {
    let (engine, db) = command_engine(settings).await?;
    let result = engine.mappings(merchant_id).await;
    db.close().await;
    let doc = result.map_err(|e| explain(merchant_id, e))?;
    print!("{}", to_toml(&doc)?);
    Ok(())
}

/// Replaces the merchant's mappings with the TOML file at `path`.
pub async fn import(settings: &Settings, merchant_id: &str, path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc =
        from_toml(&text).with_context(|| format!("{}: nothing was imported", path.display()))?;
    if !doc.is_object() {
        bail!("{}: not a mappings document", path.display());
    }
    let (engine, db) = command_engine(settings).await?;
    let result = engine.replace_mappings(merchant_id, doc, IMPORTED_BY).await;
    db.close().await;
    result.map_err(|e| explain(merchant_id, e))?;
    eprintln!(
        "shipsync: the mappings of {merchant_id} are now those of {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toml_file_reads_back_as_the_same_document() {
        let doc: Mappings = serde_json::from_value(serde_json::json!({
            "ship_methods": {"rules": [{"match": {"title": "Express", "code": null},
                                         "ship_via": "UPS Next Day Air", "carrier": "UPS", "service": null}],
                              "default": {"ship_via": "Ground"}},
            "sku_aliases": [{"store_sku": "TSHIRT-RED-M", "warehouse_item": "100234"}],
            "kit_recipes": [{"kit_sku": "KIT-1", "components": [{"sku": "A", "quantity": 2}], "source": "webhook"}],
            "carriers": [{"warehouse_carrier": "UPSN", "store_company": "UPS",
                          "tracking_url_template": "https://t.example/{tracking_number}"}]
        }))
        .unwrap();
        let text = to_toml(&doc).unwrap();
        let back = Mappings::from_json(from_toml(&text).unwrap()).unwrap();
        assert_eq!(back, doc, "{text}");
        assert_eq!(to_toml(&back).unwrap(), text);
        assert!(text.contains("[[ship_methods.rules]]"), "{text}");
    }
}
