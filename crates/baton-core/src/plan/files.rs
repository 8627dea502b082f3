//! Declared `files`: globs of the paths a task expects to change. `*`
//! matches within one path segment, `**` across segments, `?` one
//! character. Two tasks whose globs could match a common path overlap.

use regex::Regex;

/// A task's declared files, compiled; stored as its globs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct FileSet {
    globs: Vec<String>,
    res: Vec<Regex>,
}

impl TryFrom<Vec<String>> for FileSet {
    type Error = String;
    fn try_from(globs: Vec<String>) -> Result<FileSet, String> {
        FileSet::new(&globs)
    }
}

impl From<FileSet> for Vec<String> {
    fn from(f: FileSet) -> Vec<String> {
        f.globs
    }
}

impl FileSet {
    pub fn new(globs: &[String]) -> Result<FileSet, String> {
        let res = globs
            .iter()
            .map(|g| Regex::new(&to_regex(g)).map_err(|e| format!("bad glob {g:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(FileSet {
            globs: globs.to_vec(),
            res,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    pub fn globs(&self) -> &[String] {
        &self.globs
    }

    /// Whether `path` is one the task declared.
    pub fn matches(&self, path: &str) -> bool {
        self.res.iter().any(|r| r.is_match(path))
    }

    /// Whether the two sets could both match one path: a conservative test
    /// (it may say yes for globs that only look alike, never no for ones
    /// that share a path), as a scheduler that holds tasks apart wants.
    pub fn overlaps(&self, other: &FileSet) -> bool {
        self.globs
            .iter()
            .any(|a| other.globs.iter().any(|b| globs_overlap(a, b, self, other)))
    }
}

fn globs_overlap(a: &str, b: &str, sa: &FileSet, sb: &FileSet) -> bool {
    let literal = |g: &str| !g.contains(['*', '?']);
    match (literal(a), literal(b)) {
        (true, true) => a == b,
        (true, false) => sb.matches(a),
        (false, true) => sa.matches(b),
        // Both wildcards: they can meet only where one's literal head
        // leads into the other's.
        (false, false) => {
            let (ha, hb) = (head(a), head(b));
            ha.starts_with(hb) || hb.starts_with(ha)
        }
    }
}

fn head(glob: &str) -> &str {
    let end = glob.find(['*', '?']).unwrap_or(glob.len());
    &glob[..end]
}

fn to_regex(glob: &str) -> String {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` also matches no directory at all.
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(g: &[&str]) -> FileSet {
        FileSet::new(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs_match_paths() {
        let s = set(&["src/api/**", "docs/*.md", "Cargo.toml"]);
        assert!(s.matches("src/api/handlers.rs") && s.matches("src/api/v1/x.rs"));
        assert!(s.matches("docs/guide.md") && !s.matches("docs/deep/guide.md"));
        assert!(s.matches("Cargo.toml") && !s.matches("src/main.rs"));
        assert!(set(&["**/*.rs"]).matches("main.rs") && set(&["**/*.rs"]).matches("a/b/c.rs"));
    }

    #[test]
    fn overlaps_are_found_and_disjoint_sets_are_not() {
        assert!(set(&["src/api/**"]).overlaps(&set(&["src/api/handlers.rs"])));
        assert!(set(&["src/**"]).overlaps(&set(&["src/api/*.rs"])));
        assert!(set(&["README.md"]).overlaps(&set(&["README.md"])));
        assert!(!set(&["src/api/**"]).overlaps(&set(&["src/ui/**"])));
        assert!(!set(&["docs/*.md"]).overlaps(&set(&["src/main.rs"])));
        assert!(!set(&["a.txt"]).overlaps(&set(&["b.txt"])));
        assert!(!set(&[]).overlaps(&set(&["src/**"])));
    }
}
