//! Where a request goes and who sends it: the provider from the path's
//! first segment, the attempt's token from wherever that provider's CLI
//! puts its key, the real key put back the same way, and errors in the
//! shape each provider's CLI reads.

use baton_core::gateway::{Credential, Provider};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

/// `/anthropic/v1/messages?x` → (Anthropic, `/v1/messages`, `x`).
pub fn split(path_and_query: &str) -> Option<(Provider, String, Option<String>)> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (path_and_query, None),
    };
    let rest = path.strip_prefix('/')?;
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let provider: Provider = first.parse().ok()?;
    // Only a plain path goes on: nothing that could climb out of the
    // provider's API on a server that decodes or normalises (`..`, any
    // escape, a backslash).
    let tail = format!("/{tail}");
    if tail.split('/').any(|s| s == ".." || s == ".") || tail.contains(['%', '\\']) {
        return None;
    }
    Some((provider, tail, query))
}

/// The token a CLI sent as its key: `x-api-key` or a bearer (Anthropic),
/// a bearer (OpenAI), `x-goog-api-key` or `?key=` (Gemini).
pub fn token(provider: Provider, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    let bearer = || {
        header(AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
    };
    let found = match provider {
        Provider::Anthropic => header("x-api-key").or_else(bearer),
        Provider::Openai => bearer(),
        Provider::Gemini => header("x-goog-api-key").or_else(|| query_key(query)),
    };
    found.filter(|t| !t.is_empty())
}

fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .map(str::to_string)
}

/// The query without a Gemini `key=` (the token must not travel on).
pub fn query_without_key(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|kv| !kv.starts_with("key=") && !kv.is_empty())
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Headers that belong to one hop, or that carry a key, or that would
/// make the answer unreadable to the usage scanner (compression): none
/// of them is forwarded as the CLI sent it.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "accept-encoding",
    "content-length",
];

/// The request's headers as they go upstream: the CLI's, less [`DROPPED`],
/// with the real `key` where the provider expects it.
pub fn upstream_headers(
    provider: Provider,
    from: &HeaderMap,
    credential: &Credential,
) -> HeaderMap {
    let key = &credential.key;
    let mut out = HeaderMap::new();
    for (name, value) in from {
        if !DROPPED.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    let (name, value) = match provider {
        Provider::Anthropic if credential.bearer => ("authorization", format!("Bearer {key}")),
        Provider::Anthropic => ("x-api-key", key.to_string()),
        Provider::Openai => ("authorization", format!("Bearer {key}")),
        Provider::Gemini => ("x-goog-api-key", key.to_string()),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        out.insert(HeaderName::from_static(name), v);
    }
    out
}

/// The answer's headers as they go back: less what belongs to one hop.
pub fn downstream_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        if !DROPPED.contains(&n) || n == "content-length" {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// An error as `provider`'s API words it, so that its CLI shows `message`.
pub fn error_body(provider: Provider, status: u16, message: &str) -> String {
    let v = match provider {
        Provider::Anthropic => serde_json::json!({
            "type": "error",
            "error": { "type": anthropic_type(status), "message": message },
        }),
        Provider::Openai => serde_json::json!({
            "error": { "message": message, "type": openai_type(status), "param": null, "code": null },
        }),
        Provider::Gemini => serde_json::json!({
            "error": { "code": status, "message": message, "status": gemini_status(status) },
        }),
    };
    v.to_string()
}

fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        502..=504 => "api_error",
        _ => "invalid_request_error",
    }
}

fn openai_type(status: u16) -> &'static str {
    match status {
        401 | 403 => "invalid_request_error",
        429 => "rate_limit_exceeded",
        502..=504 => "server_error",
        _ => "invalid_request_error",
    }
}

fn gemini_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        502..=504 => "UNAVAILABLE",
        _ => "INVALID_ARGUMENT",
    }
}

/// The model a request asks for: its body's `model`, or a Gemini path's
/// `models/{model}:{method}`.
pub fn model_of(provider: Provider, path: &str, body: &[u8]) -> Option<String> {
    if provider == Provider::Gemini {
        let (_, last) = path.rsplit_once("/models/")?;
        return Some(last.split(':').next()?.to_string());
    }
    // Only the first bytes are looked at for a body too big to parse whole.
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("model")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_provider_is_the_first_segment_and_nothing_climbs_out() {
        let (p, path, q) = split("/anthropic/v1/messages?beta=true").unwrap();
        assert_eq!(
            (p, path.as_str(), q.as_deref()),
            (Provider::Anthropic, "/v1/messages", Some("beta=true"))
        );
        let (p, path, _) =
            split("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent").unwrap();
        assert_eq!(p, Provider::Gemini);
        assert!(path.ends_with(":streamGenerateContent"));
        for bad in [
            "/",
            "/v1/messages",
            "/mistral/v1/x",
            "/openai/../admin",
            "/openai/v1/%2F..%2fx",
            "/openai/v1/%2e%2e/x",
            "/openai/v1\\..\\x",
            "anthropic/v1",
        ] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn each_cli_sends_its_token_its_own_way_and_the_key_goes_back_that_way() {
        let h = headers(&[
            ("x-api-key", "tok-a"),
            ("accept-encoding", "gzip"),
            ("anthropic-version", "2023-06-01"),
        ]);
        assert_eq!(
            token(Provider::Anthropic, &h, None).as_deref(),
            Some("tok-a")
        );
        let cred = |key: &str, bearer| Credential {
            key: key.into(),
            bearer,
        };
        let up = upstream_headers(Provider::Anthropic, &h, &cred("real-key", false));
        assert_eq!(up.get("x-api-key").unwrap(), "real-key");
        assert_eq!(up.get("anthropic-version").unwrap(), "2023-06-01");
        assert!(
            up.get("accept-encoding").is_none(),
            "answers must come uncompressed"
        );

        let h = headers(&[("authorization", "Bearer tok-o")]);
        assert_eq!(token(Provider::Openai, &h, None).as_deref(), Some("tok-o"));
        assert_eq!(
            token(Provider::Anthropic, &h, None).as_deref(),
            Some("tok-o")
        );
        let up = upstream_headers(Provider::Openai, &h, &cred("sk-real", false));
        let as_bearer = upstream_headers(Provider::Anthropic, &h, &cred("tok-real", true));
        assert_eq!(as_bearer.get("authorization").unwrap(), "Bearer tok-real");
        assert!(as_bearer.get("x-api-key").is_none());
        assert_eq!(up.get("authorization").unwrap(), "Bearer sk-real");
        assert_eq!(up.len(), 1);

        let none = HeaderMap::new();
        assert_eq!(
            token(Provider::Gemini, &none, Some("alt=sse&key=tok-g")).as_deref(),
            Some("tok-g")
        );
        assert_eq!(
            query_without_key(Some("alt=sse&key=tok-g")).as_deref(),
            Some("alt=sse")
        );
        assert_eq!(query_without_key(Some("key=tok-g")), None);
        assert_eq!(token(Provider::Openai, &none, Some("key=x")), None);
        assert_eq!(
            token(
                Provider::Openai,
                &headers(&[("authorization", "Bearer ")]),
                None
            ),
            None
        );
    }

    #[test]
    fn errors_are_worded_as_each_provider_words_them() {
        let a: serde_json::Value =
            serde_json::from_str(&error_body(Provider::Anthropic, 403, "no")).unwrap();
        assert_eq!(a["error"]["type"], "permission_error");
        let g: serde_json::Value =
            serde_json::from_str(&error_body(Provider::Gemini, 401, "no")).unwrap();
        assert_eq!(g["error"]["status"], "UNAUTHENTICATED");
        let o: serde_json::Value =
            serde_json::from_str(&error_body(Provider::Openai, 403, "no")).unwrap();
        assert_eq!(o["error"]["message"], "no");
    }

    #[test]
    fn the_model_comes_from_the_body_or_a_gemini_path() {
        assert_eq!(
            model_of(
                Provider::Anthropic,
                "/v1/messages",
                br#"{"model":"claude-x","stream":true}"#
            )
            .as_deref(),
            Some("claude-x")
        );
        assert_eq!(
            model_of(
                Provider::Gemini,
                "/v1beta/models/gemini-2.5-flash:generateContent",
                b""
            )
            .as_deref(),
            Some("gemini-2.5-flash")
        );
        assert_eq!(
            model_of(Provider::Openai, "/v1/responses", b"not json"),
            None
        );
    }
}
