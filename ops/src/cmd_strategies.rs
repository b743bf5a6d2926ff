//! `keel strategies`: the strategy kinds this binary knows, with the
//! parameters each declares (type, default, valid range), as text or JSON.

use serde_json::{json, Value};
use strategies::params::{Bound, ParamKind, ParamSpec};
use strategies::StrategyRegistry;

/// `keel strategies`.
#[derive(Debug, Clone, clap::Args)]
pub struct StrategiesArgs {
    /// Print the list as JSON: `[{"kind", "params": [{"name", "type", "required", "default", "min", "max"}]}]`.
    #[arg(long)]
    pub json: bool,
}

/// Prints the registry's kinds.
pub fn run(args: StrategiesArgs, registry: &StrategyRegistry) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(registry))?);
    } else {
        print!("{}", to_text(registry));
    }
    Ok(())
}

/// The type name used in both outputs.
fn type_name(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Integer => "integer",
        ParamKind::Decimal => "decimal",
        ParamKind::Number => "number",
        ParamKind::Duration => "duration",
        ParamKind::Path => "path",
        ParamKind::Table => "table",
        ParamKind::Bool => "bool",
        ParamKind::Text => "string",
    }
}

/// A default as a JSON value of its TOML type (`20` a number, `"1h"` a string).
fn default_json(spec: &ParamSpec) -> Value {
    let Some(text) = &spec.default else { return Value::Null };
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| Value::String(text.clone()))
}

/// A range end; the limit as an exact decimal string.
fn bound_json(bound: Option<Bound>) -> Value {
    bound.map_or(Value::Null, |b| json!({ "value": b.value.to_string(), "inclusive": b.inclusive }))
}

/// The `--json` list.
pub fn to_json(registry: &StrategyRegistry) -> Value {
    let kinds: Vec<Value> = registry
        .kinds()
        .iter()
        .map(|k| {
            let params: Vec<Value> = k
                .params
                .iter()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "type": type_name(p.kind),
                        "required": p.required,
                        "default": default_json(p),
                        "min": bound_json(p.min),
                        "max": bound_json(p.max),
                    })
                })
                .collect();
            json!({ "kind": k.name, "params": params })
        })
        .collect();
    Value::Array(kinds)
}

/// The text list: a line per kind, then a line per parameter.
pub fn to_text(registry: &StrategyRegistry) -> String {
    let mut out = String::new();
    for k in registry.kinds() {
        out.push_str(&k.name);
        out.push('\n');
        let width = k.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &k.params {
            let need = match &p.default {
                _ if p.required => "required".to_string(),
                Some(d) => format!("default {d}"),
                None => "optional".to_string(),
            };
            let range = p.range_text().unwrap_or_default();
            let line = format!("  {:width$}  {:8}  {need:14}  {range}", p.name, type_name(p.kind));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}
