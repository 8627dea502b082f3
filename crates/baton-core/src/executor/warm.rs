//! A warm pod, waiting (`baton __pod-wait`): a pod of the executor's image
//! kept running before any attempt needs it. It asks the run's warm door
//! (its URL, with a token of its own, in [`URL_ENV`]) for an assignment, a
//! long poll at a time; the attempt it is handed runs here as in a pod of
//! its own ([`super::pod::run`]). A pod whose warm door stops answering
//! (its baton is gone) ends by itself, so none outlives its run for long;
//! the run's end deletes the others.

use std::time::{Duration, Instant};

/// The variable that holds the warm door's URL for this pod.
pub const URL_ENV: &str = "BATON_WARM_URL";
/// How long a pod goes on when its door does not answer.
const AWAY_LIMIT: Duration = Duration::from_secs(3 * 60);

/// Waits for an attempt and runs it: the pod's exit status.
pub async fn wait() -> i32 {
    let url = std::env::var(URL_ENV).unwrap_or_default();
    let Some((authority, path)) = super::input::split(&url) else {
        eprintln!("baton: {URL_ENV} holds no warm door ({url:?})");
        return 125;
    };
    let mut answered = Instant::now();
    loop {
        match super::input::get(&authority, &path).await {
            Ok((200, body)) => match serde_json::from_str(&body) {
                Ok(spec) => return super::pod::run(spec).await,
                Err(e) => eprintln!("baton: the warm door's assignment holds no attempt: {e}"),
            },
            // Nothing yet: ask again.
            Ok((204, _)) => answered = Instant::now(),
            Ok((code, _)) => {
                // The door does not know this pod (its run ended): done.
                eprintln!("baton: the warm door answered {code}; this pod ends");
                return 0;
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
        if answered.elapsed() > AWAY_LIMIT {
            return 0;
        }
    }
}
