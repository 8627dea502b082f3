//! baton-core: the library behind the `baton` command. It never prints and
//! never reads the user's home on its own; the CLI and server decide that.

pub mod access;
pub mod adapter;
pub mod ask;
pub mod clean;
pub mod clock;
pub mod container;
pub mod control;
pub mod cron;
pub mod dag;
pub mod duration;
pub mod engine;
pub mod executor;
mod failpoint;
pub mod follow;
pub mod forge;
pub mod gateway;
pub mod git;
pub mod inbox;
pub mod init;
pub mod land;
pub mod lock;
pub mod logs;
pub mod memory;
pub mod model;
pub mod paths;
pub mod payload;
pub mod pick;
pub mod plan;
pub mod planner;
pub mod process;
pub mod report;
pub mod review;
pub mod sandbox;
pub mod secrets;
pub mod stats;
pub mod store;
pub mod template;
pub mod tracker;

pub use engine::{Engine, EngineError, EngineHandle, RunOptions};
pub use git::Repo;
pub use plan::{Plan, PlanError};
pub use report::Report;
