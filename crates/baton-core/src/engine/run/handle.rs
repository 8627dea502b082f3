//! A handle on an engine that runs in this process: requests go straight
//! to its loop over a channel and the answer comes back on a one-shot
//! channel; no store round trip, no polling. Other processes reach the
//! engine through the store instead ([`crate::control`]), and both end in the
//! same place.

use crate::engine::messages::{Answer, Request};
use crate::model::ControlKind;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct EngineHandle {
    run: String,
    tx: mpsc::UnboundedSender<Request>,
}

impl EngineHandle {
    pub(crate) fn new(run: &str, tx: mpsc::UnboundedSender<Request>) -> EngineHandle {
        EngineHandle {
            run: run.to_string(),
            tx,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Asks the engine for `kind` on `task`; the request is on its way when
    /// this returns, and the future gives the answer: None when the engine
    /// has stopped driving the run.
    pub fn request(
        &self,
        task: &str,
        kind: ControlKind,
        message: Option<String>,
    ) -> impl std::future::Future<Output = Option<Answer>> {
        let (answer, rx) = oneshot::channel();
        let req = Request {
            task: task.to_string(),
            kind,
            message,
            answer,
        };
        let sent = self.tx.send(req).is_ok();
        async move {
            if !sent {
                return None;
            }
            rx.await.ok()
        }
    }
}
