//! `keel strategies`: the strategy kinds this binary knows, with the
//! parameters each declares (type, default, valid range), as text or JSON;
//! with `--config`, also the parameters each configured block declares of its
//! own (a Pine block's script inputs: name, title, type, default, range, and
//! the value the config sets).

use std::path::PathBuf;

use keel_core::config::StrategyConfig;
use serde_json::{json, Value};
use strategies::params::{Bound, ParamKind, ParamSpec};
use strategies::StrategyRegistry;

/// `keel strategies`.
#[derive(Debug, Clone, clap::Args)]
pub struct StrategiesArgs {
    /// Print the list as JSON: `[{"kind", "params": [{"name", "type", "required", "default", "min", "max"}]}]`;
    /// with `--config`, `{"kinds": [that list], "strategies": [{"id", "kind", "inputs": [{"name", "title",
    /// "type", "default", "min", "max", "value"}]}]}`.
    #[arg(long)]
    pub json: bool,
    /// Also list the inputs of this config's Pine blocks.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Prints the registry's kinds, and with `--config` the configured blocks' own parameters.
pub fn run(args: StrategiesArgs, registry: &StrategyRegistry) -> anyhow::Result<()> {
    let blocks = match &args.config {
        Some(path) => {
            let (config, source) = crate::settings::load(Some(path), registry)?;
            Some(configured(&config.strategies, registry).map_err(|e| anyhow::anyhow!("{source}: {e}"))?)
        }
        None => None,
    };
    match (args.json, blocks) {
        (true, None) => println!("{}", serde_json::to_string_pretty(&to_json(registry))?),
        (true, Some(blocks)) => {
            let strategies: Vec<Value> = blocks.iter().map(Block::to_json).collect();
            let all = json!({ "kinds": to_json(registry), "strategies": strategies });
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        (false, blocks) => {
            print!("{}", to_text(registry));
            for b in blocks.iter().flatten() {
                print!("{}", b.to_text());
            }
        }
    }
    Ok(())
}

/// A configured block that declares parameters of its own, with them and the
/// values it sets.
#[derive(Debug, Clone)]
pub struct Block {
    /// The block's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its own parameters, each with the value the block writes (`None`: the default).
    pub params: Vec<(ParamSpec, Option<toml::Value>)>,
}

/// The blocks of `strategies` that declare parameters beyond their kind's,
/// in config order (a template once).
pub fn configured(
    strategies: &[StrategyConfig],
    registry: &StrategyRegistry,
) -> Result<Vec<Block>, strategies::StrategyConfigError> {
    let mut out = Vec::new();
    for (i, cfg) in strategies.iter().enumerate() {
        let own: Vec<ParamSpec> = registry.block_params(i, cfg)?.into_iter().filter(|p| p.table.is_some()).collect();
        if own.is_empty() {
            continue;
        }
        let params = own
            .into_iter()
            .map(|p| {
                let table = p.table.as_ref().and_then(|t| cfg.params.get(t)).and_then(toml::Value::as_table);
                let value = table.and_then(|t| t.iter().find(|(k, _)| p.answers_to(k))).map(|(_, v)| v.clone());
                (p, value)
            })
            .collect();
        out.push(Block { id: cfg.id.clone(), kind: cfg.kind.clone(), params });
    }
    Ok(out)
}

impl Block {
    fn to_json(&self) -> Value {
        let inputs: Vec<Value> = self
            .params
            .iter()
            .map(|(p, value)| {
                let mut v = param_json(p);
                v["title"] = p.title.clone().map_or(Value::Null, Value::String);
                v["value"] = value.as_ref().and_then(|v| serde_json::to_value(v).ok()).unwrap_or(Value::Null);
                v
            })
            .collect();
        json!({ "id": self.id, "kind": self.kind, "inputs": inputs })
    }

    /// `strategy ID (KIND) inputs:`, then a line per input as the kinds list
    /// shows parameters, with its title and the value the config sets.
    fn to_text(&self) -> String {
        let mut out = format!("strategy {} ({}) inputs:\n", self.id, self.kind);
        let width = self.params.iter().map(|(p, _)| p.name.len()).max().unwrap_or(0);
        for (p, value) in &self.params {
            let mut line = param_line(p, width);
            if let Some(title) = &p.title {
                line.push_str(&format!("  title {}", toml::Value::String(title.clone())));
            }
            if let Some(v) = value {
                line.push_str(&format!("  set to {v}"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
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

/// One parameter as JSON.
fn param_json(p: &ParamSpec) -> Value {
    json!({
        "name": p.name,
        "type": type_name(p.kind),
        "required": p.required,
        "default": default_json(p),
        "min": bound_json(p.min),
        "max": bound_json(p.max),
    })
}

/// One parameter as a line: name, type, required or default, range.
fn param_line(p: &ParamSpec, width: usize) -> String {
    let need = match &p.default {
        _ if p.required => "required".to_string(),
        Some(d) => format!("default {d}"),
        None => "optional".to_string(),
    };
    let range = p.range_text().unwrap_or_default();
    format!("  {:width$}  {:8}  {need:14}  {range}", p.name, type_name(p.kind))
}

/// The `--json` list.
pub fn to_json(registry: &StrategyRegistry) -> Value {
    let kinds: Vec<Value> = registry
        .kinds()
        .iter()
        .map(|k| {
            let params: Vec<Value> = k.params.iter().map(param_json).collect();
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
            out.push_str(param_line(p, width).trim_end());
            out.push('\n');
        }
    }
    out
}
