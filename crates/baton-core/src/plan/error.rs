use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One problem found in a plan, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The task or profile the problem belongs to, if any.
    pub subject: Option<String>,
    pub message: String,
}

/// Collects a plan's problems, each where it is, in file order.
pub(super) struct Checker<'s> {
    pub(super) source: &'s str,
    pub(super) diags: Vec<Diagnostic>,
    /// Where the plan's own text starts (after a user config's head, if any).
    pub(super) own_start: usize,
    /// The user config whose settings the head holds, if any.
    pub(super) user: Option<String>,
}

impl<'s> Checker<'s> {
    pub(super) fn new(source: &'s str) -> Checker<'s> {
        let (own_start, user) = match super::user::split(source) {
            Some((start, path)) => (start, Some(path)),
            None => (0, None),
        };
        Checker {
            source,
            diags: Vec::new(),
            own_start,
            user,
        }
    }

    /// Line and column (from 1) of `offset` in the plan as its author wrote
    /// it; None inside the user config's head, which has no line there.
    pub(super) fn place(&self, offset: usize) -> Option<(usize, usize)> {
        if offset < self.own_start {
            return None;
        }
        let (line, column) = line_col(self.source, offset);
        let head = self.source[..self.own_start].matches('\n').count();
        Some((line - head, column))
    }

    pub(super) fn at(
        &mut self,
        span: Option<Range<usize>>,
        subject: Option<String>,
        message: String,
    ) {
        let place = span.as_ref().and_then(|s| self.place(s.start));
        let in_head = span.is_some_and(|s| s.start < self.own_start);
        let subject = match (&self.user, in_head) {
            (Some(path), true) => Some(match subject {
                Some(s) => format!("from the user config {path}: {s}"),
                None => format!("from the user config {path}"),
            }),
            _ => subject,
        };
        self.diags.push(Diagnostic {
            line: place.map(|p| p.0),
            column: place.map(|p| p.1),
            subject,
            message,
        });
    }
}

/// Why a plan could not be loaded. Nothing has been created when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.path, .diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

impl PlanError {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PlanError::Invalid { diagnostics, .. } => diagnostics,
            PlanError::Read { .. } => &[],
        }
    }
}

fn render(path: &std::path::Path, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    let n = diags.len();
    if n > 1 {
        out.push_str(&format!("plan {} has {n} problems:\n", path.display()));
    }
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&path.display().to_string());
        if let (Some(l), Some(c)) = (d.line, d.column) {
            out.push_str(&format!(":{l}:{c}"));
        }
        out.push_str(": ");
        if let Some(s) = &d.subject {
            out.push_str(&format!("{s}: "));
        }
        out.push_str(&d.message);
    }
    out
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, "{l}:{c}: ")?;
        }
        if let Some(s) = &self.subject {
            write!(f, "{s}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Turns a byte offset into a 1-based line and column (in characters).
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = source[line_start..offset].chars().count() + 1;
    (line, column)
}
