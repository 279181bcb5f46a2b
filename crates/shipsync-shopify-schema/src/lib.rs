//! Shopify's real Admin GraphQL schema, embedded in the binary.
//!
//! The schema ships as Shopify's introspection JSON (gzip). apollo-compiler
//! reads SDL, not introspection results, so [`sdl`] converts it once; the
//! parsed and validated schema is then cached for the life of the process.
//! The first call to [`schema`] or [`validate`] pays that cost (a few hundred
//! milliseconds in debug builds); later calls are free.

mod introspection;

use std::io::Read;
use std::sync::LazyLock;

use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};

/// The Shopify Admin API version of the embedded schema.
pub const API_VERSION: &str = "2026-10";

/// Introspection JSON as served by Shopify for [`API_VERSION`], gzipped.
/// Source: the `@shopify/dev-mcp` npm package (ISC licence).
static INTROSPECTION_GZ: &[u8] = include_bytes!("../shopify-admin-2026-10.introspection.json.gz");

static SCHEMA: LazyLock<Valid<Schema>> = LazyLock::new(|| {
    // The input is a constant compiled into this crate, so a failure here is a
    // build defect (a corrupt or replaced schema file), not a runtime condition:
    // the crate's own tests exercise this path.
    let sdl = sdl().unwrap_or_else(|e| panic!("embedded Shopify schema is unreadable: {e}"));
    Schema::parse_and_validate(sdl, "shopify-admin-2026-10.graphql")
        .unwrap_or_else(|e| panic!("embedded Shopify schema does not validate:\n{}", e.errors))
});

/// The schema, parsed and validated once.
pub fn schema() -> &'static Valid<Schema> {
    &SCHEMA
}

/// The embedded schema as SDL (descriptions omitted). Exposed for debugging
/// and for tools that want to diff schema versions.
pub fn sdl() -> Result<String, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(INTROSPECTION_GZ)
        .read_to_end(&mut json)
        .map_err(|e| format!("gunzip: {e}"))?;
    introspection::to_sdl(&json)
}

/// Validates an executable GraphQL document (query or mutation, with
/// variable definitions) against the real schema.
///
/// `Err` carries apollo-compiler's diagnostics as readable text, one per line
/// group, with source locations.
pub fn validate(document: &str) -> Result<Valid<ExecutableDocument>, String> {
    ExecutableDocument::parse_and_validate(schema(), document, "document.graphql")
        .map_err(|e| e.errors.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_the_types_shipsync_uses() {
        let s = schema();
        for ty in [
            "Order",
            "LineItem",
            "LineItemGroup",
            "FulfillmentOrder",
            "FulfillmentOrderLineItem",
            "Fulfillment",
            "FulfillmentInput",
            "FulfillmentTrackingInput",
        ] {
            assert!(s.types.contains_key(ty), "missing type {ty}");
        }
        assert!(s.directive_definitions.contains_key("idempotent"));
        assert!(s.directive_definitions.contains_key("oneOf"));
    }

    #[test]
    fn known_good_query_validates() {
        let q = "query($q:String){ orders(first:5, query:$q){ nodes{ id name } pageInfo { hasNextPage endCursor } } }";
        validate(q).unwrap();
    }

    #[test]
    fn known_good_mutation_validates() {
        let m = r#"
            mutation Ship($f: FulfillmentInput!) {
              fulfillmentCreate(fulfillment: $f, message: "shipped") {
                fulfillment { id status trackingInfo(first: 5) { company number url } }
                userErrors { field message }
              }
            }"#;
        validate(m).unwrap();
    }

    #[test]
    fn interface_and_fragments_validate() {
        let q = r#"
            query($id: ID!) {
              node(id: $id) { __typename ... on Order { id name lineItems(first: 10) { nodes { ...L } } } }
            }
            fragment L on LineItem { id sku quantity lineItemGroup { id title quantity variantSku } }"#;
        validate(q).unwrap();
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = validate("{ orders(first: 5) { nodes { id trackingNumber } } }").unwrap_err();
        assert!(err.contains("trackingNumber"), "{err}");
    }

    #[test]
    fn wrong_argument_type_is_rejected() {
        let err = validate(r#"{ orders(first: "five") { nodes { id } } }"#).unwrap_err();
        assert!(err.contains("first"), "{err}");
        let err = validate("query($n: String) { orders(first: $n) { nodes { id } } }").unwrap_err();
        assert!(err.contains("$n") || err.contains("String"), "{err}");
    }

    #[test]
    fn missing_required_argument_is_rejected() {
        assert!(validate("{ order { id } }").is_err());
    }
}
