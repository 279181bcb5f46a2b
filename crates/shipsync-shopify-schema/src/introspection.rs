//! Introspection JSON → SDL.
//!
//! Only what validation needs is kept: types, fields, arguments with default
//! values, interfaces, union members, enum values, input fields, directives
//! and deprecations. Descriptions are dropped to keep the SDL (and parse
//! time) small.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize)]
struct Envelope {
    data: Option<Data>,
    #[serde(rename = "__schema")]
    schema: Option<SchemaJson>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "__schema")]
    schema: SchemaJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaJson {
    query_type: Option<Named>,
    mutation_type: Option<Named>,
    subscription_type: Option<Named>,
    types: Vec<TypeJson>,
    #[serde(default)]
    directives: Vec<DirectiveJson>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeJson {
    kind: String,
    name: String,
    #[serde(default)]
    is_one_of: Option<bool>,
    #[serde(default)]
    specified_by_url: Option<String>,
    fields: Option<Vec<FieldJson>>,
    input_fields: Option<Vec<InputValueJson>>,
    interfaces: Option<Vec<Named>>,
    enum_values: Option<Vec<EnumValueJson>>,
    possible_types: Option<Vec<Named>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldJson {
    name: String,
    #[serde(default)]
    args: Vec<InputValueJson>,
    #[serde(rename = "type")]
    ty: TypeRef,
    #[serde(default)]
    is_deprecated: bool,
    deprecation_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InputValueJson {
    name: String,
    #[serde(rename = "type")]
    ty: TypeRef,
    default_value: Option<String>,
    #[serde(default)]
    is_deprecated: bool,
    deprecation_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnumValueJson {
    name: String,
    #[serde(default)]
    is_deprecated: bool,
    deprecation_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectiveJson {
    name: String,
    #[serde(default)]
    is_repeatable: bool,
    locations: Vec<String>,
    #[serde(default)]
    args: Vec<InputValueJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeRef {
    kind: String,
    name: Option<String>,
    of_type: Option<Box<TypeRef>>,
}

/// Scalars and directives apollo-compiler defines itself; redefining them is
/// a validation error.
const BUILT_IN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];
const BUILT_IN_DIRECTIVES: [&str; 4] = ["skip", "include", "deprecated", "specifiedBy"];

pub(crate) fn to_sdl(json: &[u8]) -> Result<String, String> {
    let envelope: Envelope =
        serde_json::from_slice(json).map_err(|e| format!("introspection JSON: {e}"))?;
    let schema = match (envelope.data, envelope.schema) {
        (Some(data), _) => data.schema,
        (None, Some(schema)) => schema,
        (None, None) => return Err("introspection JSON has no __schema".into()),
    };

    let mut out = String::with_capacity(4 << 20);
    out.push_str("schema {\n");
    for (op, ty) in [
        ("query", &schema.query_type),
        ("mutation", &schema.mutation_type),
        ("subscription", &schema.subscription_type),
    ] {
        if let Some(ty) = ty {
            let _ = writeln!(out, "  {op}: {}", ty.name);
        }
    }
    out.push_str("}\n\n");

    for d in &schema.directives {
        if BUILT_IN_DIRECTIVES.contains(&d.name.as_str()) {
            continue;
        }
        let _ = write!(out, "directive @{}", d.name);
        write_args(&mut out, &d.args)?;
        if d.is_repeatable {
            out.push_str(" repeatable");
        }
        let _ = writeln!(out, " on {}\n", d.locations.join(" | "));
    }

    for t in &schema.types {
        // Introspection meta-types (`__Type` …) are built into every schema.
        if t.name.starts_with("__") || BUILT_IN_SCALARS.contains(&t.name.as_str()) {
            continue;
        }
        write_type(&mut out, t)?;
    }
    Ok(out)
}

fn write_type(out: &mut String, t: &TypeJson) -> Result<(), String> {
    match t.kind.as_str() {
        "SCALAR" => {
            let _ = write!(out, "scalar {}", t.name);
            if let Some(url) = &t.specified_by_url {
                let _ = write!(out, " @specifiedBy(url: {})", string_literal(url));
            }
            out.push_str("\n\n");
        }
        "OBJECT" | "INTERFACE" => {
            let keyword = if t.kind == "OBJECT" {
                "type"
            } else {
                "interface"
            };
            let _ = write!(out, "{keyword} {}", t.name);
            write_implements(out, t.interfaces.as_deref());
            out.push_str(" {\n");
            for f in t.fields.as_deref().unwrap_or_default() {
                let _ = write!(out, "  {}", f.name);
                write_args(out, &f.args)?;
                let _ = write!(out, ": {}", type_ref(&f.ty)?);
                write_deprecated(out, f.is_deprecated, f.deprecation_reason.as_deref());
                out.push('\n');
            }
            out.push_str("}\n\n");
        }
        "UNION" => {
            let members: Vec<&str> = t
                .possible_types
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            let _ = writeln!(out, "union {} = {}\n", t.name, members.join(" | "));
        }
        "ENUM" => {
            let _ = writeln!(out, "enum {} {{", t.name);
            for v in t.enum_values.as_deref().unwrap_or_default() {
                let _ = write!(out, "  {}", v.name);
                write_deprecated(out, v.is_deprecated, v.deprecation_reason.as_deref());
                out.push('\n');
            }
            out.push_str("}\n\n");
        }
        "INPUT_OBJECT" => {
            let _ = write!(out, "input {}", t.name);
            if t.is_one_of == Some(true) {
                out.push_str(" @oneOf");
            }
            out.push_str(" {\n");
            for f in t.input_fields.as_deref().unwrap_or_default() {
                out.push_str("  ");
                write_input_value(out, f)?;
                out.push('\n');
            }
            out.push_str("}\n\n");
        }
        other => return Err(format!("type {} has unknown kind {other}", t.name)),
    }
    Ok(())
}

fn write_implements(out: &mut String, interfaces: Option<&[Named]>) {
    let interfaces = interfaces.unwrap_or_default();
    if !interfaces.is_empty() {
        let names: Vec<&str> = interfaces.iter().map(|n| n.name.as_str()).collect();
        let _ = write!(out, " implements {}", names.join(" & "));
    }
}

fn write_args(out: &mut String, args: &[InputValueJson]) -> Result<(), String> {
    if args.is_empty() {
        return Ok(());
    }
    out.push('(');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_input_value(out, a)?;
    }
    out.push(')');
    Ok(())
}

fn write_input_value(out: &mut String, v: &InputValueJson) -> Result<(), String> {
    let _ = write!(out, "{}: {}", v.name, type_ref(&v.ty)?);
    // Introspection already renders default values as GraphQL literals.
    if let Some(default) = &v.default_value {
        let _ = write!(out, " = {default}");
    }
    write_deprecated(out, v.is_deprecated, v.deprecation_reason.as_deref());
    Ok(())
}

fn write_deprecated(out: &mut String, deprecated: bool, reason: Option<&str>) {
    if deprecated {
        match reason {
            Some(r) => {
                let _ = write!(out, " @deprecated(reason: {})", string_literal(r));
            }
            None => out.push_str(" @deprecated"),
        }
    }
}

/// JSON string escaping is a subset of GraphQL's string-literal syntax.
fn string_literal(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn type_ref(t: &TypeRef) -> Result<String, String> {
    match t.kind.as_str() {
        "NON_NULL" => Ok(format!("{}!", type_ref(inner(t)?)?)),
        "LIST" => Ok(format!("[{}]", type_ref(inner(t)?)?)),
        _ => t
            .name
            .clone()
            .ok_or_else(|| format!("named type reference of kind {} without a name", t.kind)),
    }
}

fn inner(t: &TypeRef) -> Result<&TypeRef, String> {
    t.of_type
        .as_deref()
        .ok_or_else(|| format!("{} type reference without ofType", t.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_a_small_schema() {
        let json = br#"{"__schema":{
          "queryType":{"name":"Q"},"mutationType":null,"subscriptionType":null,
          "directives":[{"name":"oneOf","isRepeatable":false,"locations":["INPUT_OBJECT"],"args":[]},
                        {"name":"skip","locations":["FIELD"],"args":[]}],
          "types":[
            {"kind":"OBJECT","name":"Q","fields":[{"name":"a","args":[{"name":"n","type":{"kind":"SCALAR","name":"Int"},"defaultValue":"5"}],
              "type":{"kind":"NON_NULL","ofType":{"kind":"LIST","ofType":{"kind":"INTERFACE","name":"I"}}},"isDeprecated":true,"deprecationReason":"use \"b\""}],
              "interfaces":[{"name":"I"}]},
            {"kind":"INTERFACE","name":"I","fields":[{"name":"a","args":[{"name":"n","type":{"kind":"SCALAR","name":"Int"},"defaultValue":"5"}],"type":{"kind":"NON_NULL","ofType":{"kind":"LIST","ofType":{"kind":"INTERFACE","name":"I"}}}}],"interfaces":[]},
            {"kind":"INPUT_OBJECT","name":"In","isOneOf":true,"inputFields":[{"name":"x","type":{"kind":"SCALAR","name":"String"},"defaultValue":null}]},
            {"kind":"SCALAR","name":"String"}
          ]}}"#;
        let sdl = to_sdl(json).unwrap();
        assert!(sdl.contains("directive @oneOf on INPUT_OBJECT"), "{sdl}");
        assert!(!sdl.contains("@skip"), "{sdl}");
        assert!(!sdl.contains("scalar String"), "{sdl}");
        assert!(
            sdl.contains(r#"a(n: Int = 5): [I]! @deprecated(reason: "use \"b\"")"#),
            "{sdl}"
        );
        assert!(sdl.contains("type Q implements I {"), "{sdl}");
        assert!(sdl.contains("input In @oneOf {"), "{sdl}");
    }
}
