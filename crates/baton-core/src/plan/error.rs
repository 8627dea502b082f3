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
}

impl Checker<'_> {
    pub(super) fn at(
        &mut self,
        span: Option<Range<usize>>,
        subject: Option<String>,
        message: String,
    ) {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.source, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.diags.push(Diagnostic {
            line,
            column,
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
