//! The `pine` strategy kind's config: a block names a Pine Script file and
//! overrides its inputs,
//! `params = { script = "pine/ema_cross.pine", inputs = { fastLen = 9 } }`.
//! This module reads and compiles that script; the strategy that runs the
//! compiled program is the host's (`pine_host`).

use pine::{Compiled, Diagnostics, InputDecl, InputKind, InputValue, Severity};
use rust_decimal::Decimal;

use crate::params::{Bound, ParamKind, ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// The `kind` of a Pine Script block.
pub const PINE: &str = "pine";

/// The key of the script's path in a Pine block's `params`.
pub const SCRIPT: &str = "script";

/// The key of the input overrides in a Pine block's `params`.
pub const INPUTS: &str = "inputs";

/// The parameters the `pine` kind itself declares: `script` (a path) and `inputs` (a table).
pub fn kind_params() -> Vec<ParamSpec> {
    vec![ParamSpec::path(SCRIPT).required(), ParamSpec::table(INPUTS)]
}

/// Reads and compiles the script of a `kind = "pine"` block: `params.script` (relative paths were
/// already resolved against the config file's directory when the config was loaded) and
/// `params.inputs` (overrides by variable name or by title). Errors name the key
/// (`strategy[i].params.script`, `strategy[i].params.inputs.NAME`) and carry the script's
/// `file:line:col: message` for anything outside the subset.
pub fn compile_block(params: &Params<'_>) -> Result<Compiled, StrategyConfigError> {
    let path = script_path(params)?;
    let src = std::fs::read_to_string(path).map_err(|e| params.error(SCRIPT, format!("cannot read `{path}`: {e}")))?;
    // Compiled with its defaults first: the declarations the overrides are checked against, and a
    // refusal that is the script's own (named by `script`) rather than an override's.
    let defaults = pine::compile(&src, Some(path), &[]).map_err(|d| params.error(SCRIPT, errors(&d)))?;
    let overrides = overrides(params, defaults.program.inputs())?;
    if overrides.is_empty() {
        return Ok(defaults);
    }
    pine::compile(&src, Some(path), &overrides).map_err(|d| params.error(INPUTS, errors(&d)))
}

/// The parameters a Pine block declares beyond [`kind_params`]: its script's inputs (name, title,
/// type, default, `minval`/`maxval`), each written in `params.inputs`. Compiles the script.
pub fn input_params(params: &Params<'_>) -> Result<Vec<ParamSpec>, StrategyConfigError> {
    Ok(compile_block(params)?.program.inputs().iter().map(input_spec).collect())
}

/// One input as a parameter declaration.
pub fn input_spec(decl: &InputDecl) -> ParamSpec {
    let kind = match decl.kind {
        InputKind::Int => ParamKind::Integer,
        InputKind::Float => ParamKind::Number,
        InputKind::Bool => ParamKind::Bool,
        InputKind::String | InputKind::Source => ParamKind::Text,
    };
    let bound =
        |v: Option<f64>| v.and_then(|v| Decimal::try_from(v).ok()).map(|value| Bound { value, inclusive: true });
    let mut spec = ParamSpec::of_kind(&decl.name, kind)
        .in_table(INPUTS)
        .titled(decl.title.clone())
        .default_value(&toml_text(&decl.default));
    spec.min = bound(decl.min);
    spec.max = bound(decl.max);
    spec
}

/// An input value as TOML text (`9`, `2.5`, `true`, `"close"`).
fn toml_text(value: &InputValue) -> String {
    match value {
        InputValue::Int(i) => i.to_string(),
        // `{:?}` keeps a fraction (`2.0`), as a TOML float needs.
        InputValue::Float(f) => format!("{f:?}"),
        InputValue::Bool(b) => b.to_string(),
        InputValue::Str(s) => toml::Value::String(s.clone()).to_string(),
    }
}

/// `params.script`, which must be a string.
fn script_path<'a>(params: &Params<'a>) -> Result<&'a str, StrategyConfigError> {
    match params.get(SCRIPT) {
        None => Err(params.error(SCRIPT, "is required: the path of a .pine file")),
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s.as_str()),
        Some(toml::Value::String(_)) => Err(params.error(SCRIPT, "is empty: give the path of a .pine file")),
        Some(other) => Err(params.error(SCRIPT, format!("must be a path (a string), got {}", other.type_str()))),
    }
}

/// The error diagnostics of a refusal, one `file:line:col: message` per line (warnings before the
/// error are shown by `check-config`, not here).
fn errors(diags: &Diagnostics) -> String {
    let lines: Vec<String> = diags.0.iter().filter(|d| d.severity == Severity::Error).map(|d| d.to_string()).collect();
    lines.join("\n")
}

/// `params.inputs` as overrides, each checked against the input it names (by variable name or
/// title): its type, range and options, the error naming `inputs.KEY`.
fn overrides(params: &Params<'_>, decls: &[InputDecl]) -> Result<Vec<(String, InputValue)>, StrategyConfigError> {
    let table = match params.get(INPUTS) {
        None => return Ok(Vec::new()),
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            return Err(
                params.error(INPUTS, format!("must be a table such as {{ fastLen = 9 }}, got {}", other.type_str()))
            )
        }
    };
    let mut out: Vec<(String, InputValue)> = Vec::with_capacity(table.len());
    let mut set: Vec<&str> = Vec::with_capacity(table.len());
    for (key, value) in table {
        let fail = |reason: String| params.error(&format!("{INPUTS}.{key}"), reason);
        // A variable name wins over a title (as `ParamSpec::find`, which sweeps use).
        let by_name = decls.iter().find(|d| d.name == *key);
        let Some(decl) = by_name.or_else(|| decls.iter().find(|d| d.title.as_deref() == Some(key))) else {
            let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
            return Err(fail(format!(
                "the script has no input named or titled `{key}` (its inputs: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        };
        if set.contains(&decl.name.as_str()) {
            return Err(fail(format!("input `{}` is set twice (by its name and by its title)", decl.name)));
        }
        set.push(&decl.name);
        let v = input_value(decl, value).map_err(fail)?;
        out.push((decl.name.clone(), v));
    }
    Ok(out)
}

/// A TOML value as the input's type, inside its range and options.
fn input_value(decl: &InputDecl, value: &toml::Value) -> Result<InputValue, String> {
    let wrong = |want: &str| format!("input `{}` is {want}, got {}", decl.name, value.type_str());
    let v = match (decl.kind, value) {
        (InputKind::Int, toml::Value::Integer(i)) => InputValue::Int(*i),
        (InputKind::Int, toml::Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => InputValue::Int(*f as i64),
        (InputKind::Int, toml::Value::Float(f)) => return Err(format!("input `{}` is an integer, got {f}", decl.name)),
        (InputKind::Int, _) => return Err(wrong("an integer")),
        (InputKind::Float, toml::Value::Float(f)) if f.is_finite() => InputValue::Float(*f),
        (InputKind::Float, toml::Value::Integer(i)) => InputValue::Float(*i as f64),
        (InputKind::Float, _) => return Err(wrong("a finite number")),
        (InputKind::Bool, toml::Value::Boolean(b)) => InputValue::Bool(*b),
        (InputKind::Bool, _) => return Err(wrong("true or false")),
        (InputKind::String | InputKind::Source, toml::Value::String(s)) => InputValue::Str(s.clone()),
        (InputKind::String | InputKind::Source, _) => return Err(wrong("a string")),
    };
    let number = match v {
        InputValue::Int(i) => Some(i as f64),
        InputValue::Float(f) => Some(f),
        _ => None,
    };
    if let Some(n) = number {
        if decl.min.is_some_and(|m| n < m) || decl.max.is_some_and(|m| n > m) {
            return Err(format!("{}, got {n}", range_text(decl)));
        }
    }
    if !decl.options.is_empty() && !decl.options.contains(&v) {
        let options: Vec<String> = decl.options.iter().map(toml_text).collect();
        return Err(format!("must be one of {}, got {}", options.join(", "), toml_text(&v)));
    }
    Ok(v)
}

/// An input's range in words, as [`ParamSpec::range_text`] gives it.
fn range_text(decl: &InputDecl) -> String {
    let spec = input_spec(decl);
    format!("must be {}", spec.range_text().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT_TEXT: &str = "//@version=5
strategy(\"t\", overlay = true)
fastLen = input.int(9, \"Fast length\", minval = 1, maxval = 200)
k = input.float(1.5, \"Band width\", minval = 0.1)
useFilter = input.bool(true)
mode = input.string(\"a\", options = [\"a\", \"b\"])
src = input.source(close)
f = ta.ema(src, fastLen)
plot(f * k)
if useFilter and mode == \"a\" and ta.crossover(close, f)
    strategy.entry(\"L\", strategy.long)
";

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn block(script: &str, inputs: &str) -> toml::Table {
        let script = toml::Value::String(script.into());
        format!("script = {script}\ninputs = {{ {inputs} }}").parse().unwrap()
    }

    /// Overrides by name and by title reach the program, converted to the input's type; defaults
    /// stay where nothing is set.
    #[test]
    fn inputs_are_set_by_name_or_title() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "t.pine", SCRIPT_TEXT);
        let table = block(&path, "fastLen = 5, \"Band width\" = 2, useFilter = false, mode = \"b\", src = \"hl2\"");
        let compiled = compile_block(&Params::new(&table, "strategy[0].params")).unwrap();
        let values: Vec<(&str, &InputValue)> =
            compiled.program.inputs().iter().map(|i| (i.name.as_str(), &i.value)).collect();
        assert_eq!(
            values,
            [
                ("fastLen", &InputValue::Int(5)),
                ("k", &InputValue::Float(2.0)),
                ("useFilter", &InputValue::Bool(false)),
                ("mode", &InputValue::Str("b".into())),
                ("src", &InputValue::Str("hl2".into())),
            ]
        );
        let bare: toml::Table = format!("script = {}", toml::Value::String(path)).parse().unwrap();
        let compiled = compile_block(&Params::new(&bare, "p")).unwrap();
        assert_eq!(compiled.program.inputs()[0].value, InputValue::Int(9));
    }

    /// An input titled as another input's variable: the key is that variable (a name wins over
    /// a title), here and in sweeps.
    #[test]
    fn a_name_wins_over_a_title() {
        let dir = tempfile::tempdir().unwrap();
        let text = "//@version=5\nstrategy(\"x\")\na = input.int(1, \"b\")\nb = input.int(2, \"a\")\nplot(a + b)\n";
        let path = write(&dir, "t.pine", text);
        let compiled = compile_block(&Params::new(&block(&path, "a = 5"), "p")).unwrap();
        let values: Vec<(&str, &InputValue)> =
            compiled.program.inputs().iter().map(|i| (i.name.as_str(), &i.value)).collect();
        assert_eq!(values, [("a", &InputValue::Int(5)), ("b", &InputValue::Int(2))]);
        let specs: Vec<ParamSpec> = compiled.program.inputs().iter().map(input_spec).collect();
        assert_eq!(ParamSpec::find(&specs, "a").map(|p| p.name.as_str()), Some("a"));
        assert_eq!(ParamSpec::find(&specs, "b").map(|p| p.name.as_str()), Some("b"));
    }

    /// Each bad block is refused with the key it names and a reason saying what is wrong.
    #[test]
    fn bad_blocks_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(&dir, "t.pine", SCRIPT_TEXT);
        let bad = write(&dir, "bad.pine", "//@version=5\nstrategy(\"x\")\nx = str.tostring(close)\n");
        let missing = dir.path().join("none.pine").display().to_string();
        let q = |s: &str| toml::Value::String(s.into()).to_string();
        let cases: Vec<(String, &str, String)> = vec![
            (String::new(), "script", "is required".into()),
            ("script = 3".into(), "script", "must be a path (a string), got integer".into()),
            ("script = \" \"".into(), "script", "is empty".into()),
            (format!("script = {}", q(&missing)), "script", format!("cannot read `{missing}`")),
            (format!("script = {}", q(&bad)), "script", format!("{bad}:3:5: ")),
            (format!("script = {}\ninputs = 3", q(&good)), "inputs", "must be a table".into()),
            (
                format!("script = {}\ninputs = {{ slow = 3 }}", q(&good)),
                "inputs.slow",
                "no input named or titled `slow` (its inputs: fastLen, k, useFilter, mode, src)".into(),
            ),
            (
                format!("script = {}\ninputs = {{ fastLen = 0 }}", q(&good)),
                "inputs.fastLen",
                "must be between 1 and 200, got 0".into(),
            ),
            (
                format!("script = {}\ninputs = {{ \"Fast length\" = 201 }}", q(&good)),
                "inputs.Fast length",
                "must be between 1 and 200, got 201".into(),
            ),
            (
                format!("script = {}\ninputs = {{ fastLen = 2.5 }}", q(&good)),
                "inputs.fastLen",
                "is an integer, got 2.5".into(),
            ),
            (
                format!("script = {}\ninputs = {{ fastLen = \"5\" }}", q(&good)),
                "inputs.fastLen",
                "is an integer, got string".into(),
            ),
            (
                format!("script = {}\ninputs = {{ k = 0.05 }}", q(&good)),
                "inputs.k",
                "must be at least 0.1, got 0.05".into(),
            ),
            (
                format!("script = {}\ninputs = {{ k = true }}", q(&good)),
                "inputs.k",
                "is a finite number, got boolean".into(),
            ),
            (
                format!("script = {}\ninputs = {{ useFilter = 1 }}", q(&good)),
                "inputs.useFilter",
                "is true or false, got integer".into(),
            ),
            (
                format!("script = {}\ninputs = {{ mode = \"c\" }}", q(&good)),
                "inputs.mode",
                "must be one of \"a\", \"b\", got \"c\"".into(),
            ),
            (
                format!("script = {}\ninputs = {{ mode = 1 }}", q(&good)),
                "inputs.mode",
                "is a string, got integer".into(),
            ),
            (
                format!("script = {}\ninputs = {{ fastLen = 3, \"Fast length\" = 4 }}", q(&good)),
                "inputs.",
                "is set twice".into(),
            ),
            (
                format!("script = {}\ninputs = {{ src = \"close2\" }}", q(&good)),
                "inputs",
                "source 'close2' is not a bar series".into(),
            ),
        ];
        for (text, key, want) in cases {
            let table: toml::Table = text.parse().unwrap();
            let err = compile_block(&Params::new(&table, "strategy[4].params")).expect_err(&text);
            assert!(err.key.starts_with(&format!("strategy[4].params.{key}")), "{text}: {err}");
            assert!(err.reason.contains(&want), "{text}: {err}");
        }
    }

    /// A script outside the subset is refused with its `file:line:col: message`, warnings before
    /// the error left out of the reason.
    #[test]
    fn a_refusal_carries_the_scripts_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "r.pine",
            "//@version=5\nstrategy(\"x\")\nvarip n = 0\nplot(request.security(syminfo.tickerid, \"D\", close, lookahead = barmerge.lookahead_on))\n",
        );
        let table = block(&path, "");
        let err = compile_block(&Params::new(&table, "strategy[1].params")).unwrap_err();
        assert_eq!(err.key, "strategy[1].params.script");
        assert!(err.reason.starts_with(&format!("{path}:4:")), "{}", err.reason);
        assert!(!err.reason.contains("warning"), "{}", err.reason);
    }

    /// The inputs as parameter declarations: kind, default as TOML, range, title, and the table
    /// they are written in.
    #[test]
    fn inputs_are_declared_as_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "t.pine", SCRIPT_TEXT);
        let table = block(&path, "fastLen = 5");
        let specs = input_params(&Params::new(&table, "p")).unwrap();
        let shown: Vec<String> = specs
            .iter()
            .map(|s| {
                let (title, default) = (s.title.as_deref().unwrap_or("-"), s.default.as_deref().unwrap_or("-"));
                format!("{} {:?} {title} {default} {}", s.key(), s.kind, s.range_text().unwrap_or_default())
            })
            .collect();
        assert_eq!(
            shown,
            [
                "inputs.fastLen Integer Fast length 9 between 1 and 200",
                "inputs.k Number Band width 1.5 at least 0.1",
                "inputs.useFilter Bool - true ",
                "inputs.mode Text - \"a\" ",
                "inputs.src Text - \"close\" ",
            ]
        );
        assert!(specs[0].answers_to("Fast length") && specs[0].answers_to("fastLen") && !specs[0].answers_to("k"));
        assert_eq!(
            kind_params().iter().map(|p| (p.name.as_str(), p.kind, p.required)).collect::<Vec<_>>(),
            [("script", ParamKind::Path, true), ("inputs", ParamKind::Table, false)]
        );
    }
}
