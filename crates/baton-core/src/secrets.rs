//! Secret values (API keys, tokens) never reach logs, events, reports or
//! errors: every text baton writes goes through a [`Redactor`] built from the
//! environment the agents get.

const SECRET_WORDS: &[&str] = &[
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
];
const MIN_LEN: usize = 6;
pub const MASK: &str = "[REDACTED]";

#[derive(Debug, Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

/// Whether an environment variable's name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

impl Redactor {
    /// Collects the values of secret-named variables among `vars`.
    pub fn from_vars<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Redactor {
        let mut values: Vec<String> = vars
            .into_iter()
            .filter(|(k, v)| is_secret_name(k) && v.len() >= MIN_LEN)
            .map(|(_, v)| v.to_string())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_values_only() {
        let r = Redactor::from_vars([
            ("ANTHROPIC_API_KEY", "sk-ant-123456"),
            ("GITHUB_TOKEN", "ghp_abcdef"),
            ("PATH", "/usr/bin"),
            ("SHORT_KEY", "abc"),
        ]);
        let text = "key sk-ant-123456 and ghp_abcdef in /usr/bin with abc";
        assert_eq!(
            r.redact(text),
            "key [REDACTED] and [REDACTED] in /usr/bin with abc"
        );
    }
}
