//! Usage of one attempt, from the agent's own reports: tokens as it counts
//! them, cost as it states it or else from the price table; unknown stays None.

use crate::adapter::{Prices, UsageMode, UsageReport};
use std::sync::Arc;

pub(crate) struct Meter {
    pub input: u64,
    pub output: u64,
    agent_cost: Option<f64>,
    pub model: Option<String>,
    pub reported: bool,
    /// Tokens earlier attempts in the same agent session already counted.
    session_base: (u64, u64),
    prices: Arc<Prices>,
}

impl Meter {
    pub fn new(prices: Arc<Prices>, model: Option<String>, session_base: (u64, u64)) -> Meter {
        Meter {
            input: 0,
            output: 0,
            agent_cost: None,
            model,
            reported: false,
            session_base,
            prices,
        }
    }

    pub fn apply(&mut self, u: &UsageReport) {
        self.reported = true;
        match u.mode {
            UsageMode::Add => {
                self.input += u.input_tokens;
                self.output += u.output_tokens;
                if let Some(c) = u.cost_usd {
                    self.agent_cost = Some(self.agent_cost.unwrap_or(0.0) + c);
                }
            }
            UsageMode::Total => {
                self.input = u.input_tokens;
                self.output = u.output_tokens;
                if u.cost_usd.is_some() {
                    self.agent_cost = u.cost_usd;
                }
            }
            UsageMode::Session => {
                self.input = u.input_tokens.saturating_sub(self.session_base.0);
                self.output = u.output_tokens.saturating_sub(self.session_base.1);
            }
        }
        if let Some(m) = &u.model {
            self.model = Some(m.clone());
        }
    }

    pub fn cost(&self) -> Option<f64> {
        if !self.reported {
            return None;
        }
        self.agent_cost.or_else(|| {
            self.prices
                .cost(self.model.as_deref()?, self.input, self.output)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn report(i: u64, o: u64, cost: Option<f64>, mode: UsageMode) -> UsageReport {
        UsageReport {
            input_tokens: i,
            output_tokens: o,
            cost_usd: cost,
            model: None,
            mode,
        }
    }

    #[test]
    fn agent_cost_wins_then_prices_then_unknown() {
        let prices = Arc::new(Prices::new(&BTreeMap::new()));
        let mut m = Meter::new(prices.clone(), Some("gpt-5".into()), (0, 0));
        assert_eq!(m.cost(), None, "nothing reported is unknown, not zero");
        m.apply(&report(1_000_000, 0, None, UsageMode::Add));
        assert_eq!(m.cost(), Some(1.25));
        m.apply(&report(10, 5, Some(0.5), UsageMode::Total));
        assert_eq!((m.input, m.output, m.cost()), (10, 5, Some(0.5)));
        let mut unknown = Meter::new(prices, Some("local-llm".into()), (0, 0));
        unknown.apply(&report(100, 20, None, UsageMode::Add));
        assert_eq!(unknown.cost(), None);
    }

    #[test]
    fn session_totals_subtract_earlier_attempts() {
        let mut m = Meter::new(Arc::new(Prices::default()), None, (200, 40));
        m.apply(&report(400, 80, None, UsageMode::Session));
        assert_eq!((m.input, m.output), (200, 40));
    }
}
