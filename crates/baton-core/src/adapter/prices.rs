//! USD per million tokens, for agents that report tokens but no cost.
//! Built in for common models; a plan's `[prices]` adds to and overrides it.
//! A model with no known price costs null (unknown), never a guessed zero.

use std::collections::BTreeMap;

/// USD per million tokens, in and out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// (model or prefix ending in '*', input, output), list prices at the time of writing.
const BUILT_IN: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5*", 5.0, 25.0),
    ("claude-opus-4*", 15.0, 75.0),
    ("claude-sonnet-4*", 3.0, 15.0),
    ("claude-3-7-sonnet*", 3.0, 15.0),
    ("claude-haiku-4*", 1.0, 5.0),
    ("claude-3-5-haiku*", 0.8, 4.0),
    ("gpt-5-mini*", 0.25, 2.0),
    ("gpt-5-nano*", 0.05, 0.4),
    ("gpt-5*", 1.25, 10.0),
    ("gpt-4.1-mini*", 0.4, 1.6),
    ("gpt-4.1*", 2.0, 8.0),
    ("gpt-4o-mini*", 0.15, 0.6),
    ("gpt-4o*", 2.5, 10.0),
    ("o3*", 2.0, 8.0),
    ("o4-mini*", 1.1, 4.4),
    ("gemini-2.5-pro*", 1.25, 10.0),
    ("gemini-2.5-flash-lite*", 0.1, 0.4),
    ("gemini-2.5-flash*", 0.3, 2.5),
];

#[derive(Debug, Clone, Default)]
pub struct Prices {
    /// The plan's entries first: they win over the built-in ones.
    plan: Vec<(String, Price)>,
    built_in: Vec<(String, Price)>,
}

/// An exact key first, then the longest matching prefix.
fn find(table: &[(String, Price)], model: &str) -> Option<Price> {
    if let Some((_, p)) = table.iter().find(|(k, _)| k == model) {
        return Some(*p);
    }
    let mut best: Option<(usize, Price)> = None;
    for (k, p) in table {
        if let Some(pre) = k.strip_suffix('*').filter(|pre| model.starts_with(pre)) {
            if best.is_none_or(|(len, _)| pre.len() > len) {
                best = Some((pre.len(), *p));
            }
        }
    }
    best.map(|(_, p)| p)
}

impl Prices {
    /// The built-in table with the plan's entries taking precedence.
    pub fn new(plan: &BTreeMap<String, Price>) -> Prices {
        Prices {
            plan: plan.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            built_in: BUILT_IN
                .iter()
                .map(|(k, i, o)| {
                    (
                        k.to_string(),
                        Price {
                            input: *i,
                            output: *o,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The price of a model: the plan's entries first, then the built-in ones.
    pub fn lookup(&self, model: &str) -> Option<Price> {
        // Providers prefix and suffix names ("openai/gpt-5", "claude-opus-4-8[1m]").
        let model = model.rsplit('/').next().unwrap_or(model);
        let model = model.split('[').next().unwrap_or(model);
        find(&self.plan, model).or_else(|| find(&self.built_in, model))
    }

    pub fn cost(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        self.lookup(model).map(|p| {
            (input_tokens as f64 * p.input + output_tokens as f64 * p.output) / 1_000_000.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_prices_override_and_prefixes_match() {
        let mut plan = BTreeMap::new();
        plan.insert(
            "mock-model".to_string(),
            Price {
                input: 3.0,
                output: 15.0,
            },
        );
        plan.insert(
            "gpt-5*".to_string(),
            Price {
                input: 1.0,
                output: 1.0,
            },
        );
        let p = Prices::new(&plan);
        assert_eq!(p.cost("mock-model", 1_000_000, 0), Some(3.0));
        assert_eq!(p.lookup("openai/gpt-5.5").map(|x| x.input), Some(1.0));
        assert_eq!(
            p.lookup("claude-opus-4-8[1m]").map(|x| x.output),
            Some(75.0)
        );
        assert_eq!(
            p.lookup("claude-opus-4-5-20251101").map(|x| x.output),
            Some(25.0)
        );
        assert_eq!(
            p.lookup("gemini-2.5-flash-lite").map(|x| x.input),
            Some(0.1)
        );
        assert_eq!(p.lookup("some-local-model"), None);
    }
}
