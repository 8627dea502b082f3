//! baton's integration tests: the real `baton` binary, the real git CLI in
//! temporary repositories, and the scriptable fake agent.

mod common;
mod test_ask;
mod test_check;
mod test_clean;
mod test_container;
mod test_control;
mod test_crash;
mod test_dist;
mod test_everyday;
mod test_follow;
mod test_gateway;
mod test_hooks;
mod test_init;
mod test_issue_to_merge;
#[cfg(feature = "kubernetes")]
mod test_kube;
mod test_land;
mod test_limits;
mod test_mcp;
mod test_notify;
mod test_patterns;
mod test_plan;
mod test_pod;
mod test_race;
mod test_real_agents;
mod test_real_limits;
mod test_resolve;
mod test_review;
mod test_run;
mod test_sandbox;
mod test_schedules;
mod test_serve;
mod test_serve_repos;
mod test_sources;
mod test_ssh;
mod test_stats;
mod test_usage;
mod test_user_config;
mod test_verify;
mod test_walls;
#[cfg(feature = "kubernetes")]
mod test_warm;
mod test_watch;
mod test_work_kept;
mod test_workspace;
