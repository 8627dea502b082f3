//! The part of a dev container file (`.devcontainer/devcontainer.json`,
//! the Development Containers specification) baton runs agents by: the
//! image or its build, the commands after creation and at each start, the
//! container's environment and user, ports, and mounts. Every other key is
//! named in [`DevContainer::unsupported`], so `baton check` and `baton
//! doctor` can say what is not honoured instead of ignoring it silently.

use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DevContainer {
    pub image: Option<String>,
    pub build: Option<Build>,
    /// Run once in a new desk, as `[workspace] setup` (and cached with it).
    pub post_create: Vec<String>,
    /// Run in the container before each attempt's agent.
    pub post_start: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub remote_user: Option<String>,
    pub forward_ports: Vec<u16>,
    /// `source:target[:ro]` of bind mounts.
    pub mounts: Vec<String>,
    /// Keys of the file baton does not act on.
    pub unsupported: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Build {
    /// Relative to the dev container file's directory.
    pub dockerfile: String,
    pub context: String,
    pub args: BTreeMap<String, String>,
}

/// Keys that only tell an editor something: not an agent's concern.
const EDITOR_ONLY: &[&str] = &[
    "name",
    "$schema",
    "customizations",
    "settings",
    "extensions",
];

/// Reads a dev container file's text (JSON with comments and trailing
/// commas, as editors write it).
pub fn parse(text: &str) -> Result<DevContainer, String> {
    let clean = strip_comments(text);
    let v: Value = serde_json::from_str(&clean).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = v else {
        return Err("not a JSON object".into());
    };
    let mut d = DevContainer::default();
    for (key, value) in &map {
        match key.as_str() {
            "image" => d.image = Some(string(key, value)?),
            "build" => d.build = Some(build(value, &mut d.unsupported)?),
            "dockerComposeFile" => {
                return Err("dockerComposeFile: a compose project is not something baton runs; give \"image\" or \"build\" (and [[workspace.service]] for what compose starts beside it)".into())
            }
            "dockerFile" => {
                let mut b = d.build.take().unwrap_or_default();
                b.dockerfile = string(key, value)?;
                d.build = Some(b);
            }
            "context" => {
                let mut b = d.build.take().unwrap_or_default();
                b.context = string(key, value)?;
                d.build = Some(b);
            }
            "postCreateCommand" => d.post_create = commands(key, value)?,
            "postStartCommand" => d.post_start = commands(key, value)?,
            "containerEnv" | "remoteEnv" => {
                for (k, v) in object(key, value)? {
                    let v = string(k, v)?;
                    // `${containerEnv:PATH}` and the like: baton does not
                    // fill them in, and a literal would break the container.
                    if v.contains("${") {
                        d.unsupported.push(format!("{key}.{k} (a ${{...}} variable)"));
                    } else {
                        d.env.insert(k.clone(), v);
                    }
                }
            }
            "remoteUser" | "containerUser" => d.remote_user = Some(string(key, value)?),
            "forwardPorts" | "appPort" => d.forward_ports.extend(ports(key, value)?),
            "mounts" => d.mounts = mounts(value, &mut d.unsupported)?,
            k if EDITOR_ONLY.contains(&k) => {}
            other => d.unsupported.push(other.to_string()),
        }
    }
    if let Some(b) = &mut d.build {
        if b.dockerfile.is_empty() {
            return Err("build has no dockerfile".into());
        }
        if b.context.is_empty() {
            b.context = ".".into();
        }
    }
    if d.image.is_none() && d.build.is_none() {
        return Err("names no image: give \"image\" or \"build\": {\"dockerfile\": ...}".into());
    }
    Ok(d)
}

fn string(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{key}: expected a string, not {other}")),
    }
}

fn object<'a>(key: &str, v: &'a Value) -> Result<&'a serde_json::Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{key}: expected an object, not {v}"))
}

/// `build`; keys of it baton does not pass to the engine go in `unsupported`.
fn build(v: &Value, unsupported: &mut Vec<String>) -> Result<Build, String> {
    let mut b = Build::default();
    for (key, value) in object("build", v)? {
        match key.as_str() {
            "dockerfile" | "dockerFile" => b.dockerfile = string(key, value)?,
            "context" => b.context = string(key, value)?,
            "args" => {
                for (k, v) in object("build.args", value)? {
                    b.args.insert(k.clone(), string(k, v)?);
                }
            }
            other => unsupported.push(format!("build.{other}")),
        }
    }
    Ok(b)
}

/// A lifecycle command: a shell string, an argv array (quoted into one),
/// or an object of named commands (run one after another).
fn commands(key: &str, v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(words) => {
            let words: Result<Vec<String>, String> = words.iter().map(|w| string(key, w)).collect();
            Ok(vec![words?
                .iter()
                .map(|w| quote(w))
                .collect::<Vec<_>>()
                .join(" ")])
        }
        Value::Object(named) => {
            let mut all = Vec::new();
            for (name, c) in named {
                all.extend(commands(&format!("{key}.{name}"), c)?);
            }
            Ok(all)
        }
        Value::Null => Ok(Vec::new()),
        other => Err(format!("{key}: expected a command, not {other}")),
    }
}

/// One word for `sh -c`.
pub fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

fn ports(key: &str, v: &Value) -> Result<Vec<u16>, String> {
    let list = match v {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    let mut out = Vec::new();
    for p in list {
        // "db:5432" forwards another service's port: not the agent's container.
        let n = match &p {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n @ 1..=65535) => out.push(n as u16),
            _ => return Err(format!("{key}: {p} is not a port of this container")),
        }
    }
    Ok(out)
}

/// `"source=/a,target=/b,type=bind"` strings or objects, as `source:target`.
/// Bind mounts as `source:target:mode`; a volume, a tmpfs or a value with a
/// `${...}` variable goes in `unsupported` (the editor's, not lent).
fn mounts(v: &Value, unsupported: &mut Vec<String>) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else {
        return Err(format!("mounts: expected a list, not {v}"));
    };
    let mut out = Vec::new();
    for item in items {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        match item {
            Value::String(s) => {
                for part in s.split(',') {
                    let (k, v) = part.split_once('=').unwrap_or((part, "true"));
                    fields.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            Value::Object(o) => {
                for (k, v) in o {
                    fields.insert(k.clone(), string(k, v)?);
                }
            }
            other => return Err(format!("mounts: {other} is not a mount")),
        }
        let get = |k: &[&str]| k.iter().find_map(|k| fields.get(*k)).cloned();
        if get(&["type"]).is_some_and(|t| t != "bind") {
            unsupported.push(format!("mounts {item} (not a bind mount)"));
            continue;
        }
        let (Some(src), Some(dst)) = (
            get(&["source", "src"]),
            get(&["target", "dst", "destination"]),
        ) else {
            return Err(format!("mounts: {item} needs a source and a target"));
        };
        let ro = get(&["readonly", "ro"]).is_some_and(|v| v != "false");
        if src.contains("${") || dst.contains("${") {
            unsupported.push(format!("mounts {item} (a ${{...}} variable)"));
            continue;
        }
        out.push(format!("{src}:{dst}:{}", if ro { "ro" } else { "rw" }));
    }
    Ok(out)
}

/// JSON with comments (`//`, `/* */`) and trailing commas made plain JSON;
/// strings are left alone.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    drop_trailing_commas(&out)
}

fn drop_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut in_string = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if !matches!(next, Some('}') | Some(']')) {
                out.push(c);
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_editors_dev_container_file_is_read_with_its_comments() {
        let text = r#"{
  // The project's environment.
  "name": "app",
  "build": { "dockerfile": "Dockerfile", "context": "..", "args": { "V": 3 } },
  "postCreateCommand": "make deps", /* once */
  "postStartCommand": { "a": ["echo", "it's up"], "b": "true" },
  "containerEnv": { "APP_ENV": "test", "URL": "http://x//y" },
  "remoteUser": "dev",
  "forwardPorts": [8000, "3000"],
  "mounts": ["source=/opt/tools,target=/opt/tools,type=bind,readonly"],
  "features": { "ghcr.io/x/y:1": {} },
  "runArgs": ["--privileged"],
}"#;
        let d = parse(text).unwrap();
        let b = d.build.clone().unwrap();
        assert_eq!(
            (b.dockerfile.as_str(), b.context.as_str()),
            ("Dockerfile", "..")
        );
        assert_eq!(b.args["V"], "3");
        assert_eq!(d.post_create, ["make deps"]);
        assert_eq!(d.post_start, ["echo 'it'\\''s up'", "true"]);
        assert_eq!(d.env["URL"], "http://x//y");
        assert_eq!(d.remote_user.as_deref(), Some("dev"));
        assert_eq!(d.forward_ports, [8000, 3000]);
        assert_eq!(d.mounts, ["/opt/tools:/opt/tools:ro"]);
        assert_eq!(d.unsupported, ["features", "runArgs"]);
        let vars = r#"{"image": "a", "build": {"dockerfile": "D", "target": "dev"},
          "remoteEnv": {"PATH": "${containerEnv:PATH}:/x", "A": "b"},
          "mounts": ["source=${localEnv:HOME}/.x,target=/x,type=bind"]}"#;
        let d = parse(vars).unwrap();
        assert_eq!(d.env.keys().collect::<Vec<_>>(), ["A"]);
        assert!(d.mounts.is_empty());
        assert_eq!(d.unsupported.len(), 3, "{:?}", d.unsupported);
        assert_eq!(d.unsupported[0], "build.target");
        let volume = r#"{"image": "a", "mounts": ["source=v,target=/x,type=volume"]}"#;
        let d = parse(volume).unwrap();
        assert!(
            d.mounts.is_empty() && d.unsupported[0].contains("not a bind mount"),
            "{d:?}"
        );
    }

    #[test]
    fn a_file_baton_cannot_run_says_why() {
        for (text, want) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            ("{\"name\": \"x\"}", "names no image"),
            (
                "{\"image\": \"a\", \"forwardPorts\": [\"db:5432\"]}",
                "not a port",
            ),
            ("{\"dockerComposeFile\": \"x.yml\"}", "compose project"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
