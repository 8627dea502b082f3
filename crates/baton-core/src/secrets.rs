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

    /// The same, masking `more` too (keys baton read for itself).
    pub fn with_values<'a>(&self, more: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut values = self.values.clone();
        values.extend(
            more.into_iter()
                .filter(|v| v.len() >= MIN_LEN)
                .map(str::to_string),
        );
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

    /// Fingerprints of the secret values, salted with `salt`: enough for
    /// another process to find and mask them later, never the values.
    pub fn fingerprints(&self, salt: &str) -> Vec<Fingerprint> {
        self.values
            .iter()
            .map(|v| Fingerprint {
                len: v.len(),
                rolling: rolling_hash(v.as_bytes()),
                sha256: salted(salt, v.as_bytes()),
            })
            .collect()
    }
}

/// What is kept of a secret so that text read later (a diff from git) can be
/// masked by a process that never saw the value: its length, a rolling hash
/// to find candidates fast, and a salted SHA-256 to be sure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub len: usize,
    pub rolling: u64,
    pub sha256: String,
}

/// The base of the rolling hash (odd, so multiplication mod 2^64 loses nothing).
const BASE: u64 = 0x100_0000_01b3;

fn rolling_hash(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |h, b| h.wrapping_mul(BASE).wrapping_add(*b as u64))
}

fn salted(salt: &str, bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Masks in `text` every secret whose fingerprint (salted with `salt`) is in
/// `prints`: a window of each secret's length slides over the text, and a
/// window whose rolling hash matches is checked with its salted SHA-256.
pub fn mask_fingerprints(text: &str, salt: &str, prints: &[Fingerprint]) -> String {
    let bytes = text.as_bytes();
    let mut found: Vec<(usize, usize)> = Vec::new();
    let mut lens: Vec<usize> = prints.iter().map(|p| p.len).collect();
    lens.sort_unstable();
    lens.dedup();
    for len in lens.into_iter().filter(|l| *l > 0 && *l <= bytes.len()) {
        let wanted: Vec<&Fingerprint> = prints.iter().filter(|p| p.len == len).collect();
        let top = (1..len).fold(1u64, |p, _| p.wrapping_mul(BASE));
        let mut h = rolling_hash(&bytes[..len]);
        let mut start = 0;
        loop {
            let window = &bytes[start..start + len];
            let hit = wanted
                .iter()
                .any(|p| p.rolling == h && p.sha256 == salted(salt, window));
            if hit {
                found.push((start, start + len));
            }
            if start + len == bytes.len() {
                break;
            }
            h = h
                .wrapping_sub((bytes[start] as u64).wrapping_mul(top))
                .wrapping_mul(BASE)
                .wrapping_add(bytes[start + len] as u64);
            start += 1;
        }
    }
    if found.is_empty() {
        return text.to_string();
    }
    found.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (from, to) in found {
        if from < at {
            // Overlaps a secret masked already: mask on to the longer end.
            at = at.max(to);
            continue;
        }
        // A secret is whole characters, so its ends are character boundaries.
        out.push_str(&text[at..from]);
        out.push_str(MASK);
        at = to;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_find_secrets_without_knowing_them() {
        let r = Redactor::from_vars([
            ("API_TOKEN", "tok-123456789"),
            ("DB_PASSWORD", "hunter2hunter2"),
        ]);
        let prints = r.fingerprints("run-1");
        let json = serde_json::to_string(&prints).unwrap();
        assert!(!json.contains("tok-123456789") && !json.contains("hunter2"));
        let text = "+export TOKEN=tok-123456789\n+pw: hunter2hunter2 é tok-123456789";
        assert_eq!(
            mask_fingerprints(text, "run-1", &prints),
            "+export TOKEN=[REDACTED]\n+pw: [REDACTED] é [REDACTED]"
        );
        assert_eq!(
            mask_fingerprints(text, "run-2", &prints),
            text,
            "the salt matters"
        );
        assert_eq!(
            mask_fingerprints("tok-12345678", "run-1", &prints),
            "tok-12345678"
        );
        assert_eq!(mask_fingerprints("", "run-1", &prints), "");
    }

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
