//! What this binary plugs into the engine and the server, one line each:
//! remote executors and trackers. An executor's settings are the plan's
//! (`baton_core::plan::Remote`); its driver (how its attempts are followed
//! from here, swept at a run's end and checked by `baton doctor`) lives in a
//! crate of its own, with the client it needs. So does a tracker's client
//! (`[[source]]`, which `baton serve` takes work from).

use baton_core::executor::Driver;
use baton_core::forge::ForgeKind;
use baton_core::tracker::TrackerKind;

pub const TRACKERS: &[&TrackerKind] = &[&baton_github::KIND, &baton_core::tracker::command::KIND];

/// Where pull requests are opened and followed (`[land] follow`).
pub const FORGES: &[&ForgeKind] = &[&baton_github::FORGE];

pub const DRIVERS: &[&Driver] = &[
    #[cfg(feature = "kubernetes")]
    &baton_kubernetes::DRIVER,
    &baton_ssh::DRIVER,
];

/// The driver for `kind`, or why this binary has none.
pub fn driver(kind: &str) -> Result<&'static Driver, String> {
    baton_core::executor::driver(DRIVERS, kind).ok_or_else(|| {
        format!("this baton was built without the {kind} executor (cargo feature `{kind}`)")
    })
}
