//! The Job of one attempt: labelled with run, task and attempt, one pod
//! that never restarts, the attempt's request in its environment and API
//! keys only through `env_from` Secrets.

use baton_core::executor::{PodAttempt, SPEC_ENV};
use baton_core::plan::Kubernetes;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, HostPathVolumeSource, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretEnvSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use std::collections::BTreeMap;

pub const RUN_LABEL: &str = "baton.dev/run";
pub const TASK_LABEL: &str = "baton.dev/task";
pub const ATTEMPT_LABEL: &str = "baton.dev/attempt";
/// How long the cluster keeps a finished Job that baton did not remove.
const TTL_AFTER_FINISHED: i32 = 600;

/// Words in a variable's name that mark it as a secret: such a variable is
/// never written into a Job (give it with `env_from`).
const SECRET_WORDS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"];

pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

pub fn labels(run: &str, task: &str, n: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RUN_LABEL.to_string(), label_value(run)),
        (TASK_LABEL.to_string(), label_value(task)),
        (ATTEMPT_LABEL.to_string(), n.to_string()),
    ])
}

/// The Job for `pod` on `cluster`; its deadline is the attempt's timeout
/// and the pod's grace.
pub fn job(pod: &PodAttempt, cluster: &Kubernetes) -> Job {
    let labels = labels(&pod.run, &pod.task, pod.attempt);
    let spec = serde_json::to_string(pod).unwrap_or_default();
    let resources = (!cluster.resources.is_empty()).then(|| {
        let q: BTreeMap<String, Quantity> = cluster
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect();
        ResourceRequirements {
            requests: Some(q.clone()),
            limits: Some(q),
            ..Default::default()
        }
    });
    let volumes: Vec<Volume> = cluster
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| Volume {
            name: format!("mount-{i}"),
            host_path: Some(HostPathVolumeSource {
                path: m.host.clone(),
                type_: None,
            }),
            ..Default::default()
        })
        .collect();
    let mounts: Vec<VolumeMount> = cluster
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| VolumeMount {
            name: format!("mount-{i}"),
            mount_path: m.pod.clone(),
            read_only: Some(!m.writable),
            ..Default::default()
        })
        .collect();
    let container = Container {
        name: "agent".into(),
        image: Some(cluster.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![cluster.baton.clone(), "__pod-attempt".into()]),
        env: Some(vec![EnvVar {
            name: SPEC_ENV.into(),
            value: Some(spec),
            ..Default::default()
        }]),
        env_from: Some(
            cluster
                .env_from
                .iter()
                .map(|s| EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: s.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        resources,
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let setup = pod.setup.len() as u64 * pod.setup_timeout_secs;
    let deadline = pod.timeout_secs + setup + cluster.grace.as_secs() + 60;
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&pod.run, &pod.task, pod.attempt)),
            namespace: Some(cluster.namespace.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline as i64),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".into()),
                    termination_grace_period_seconds: Some(cluster.grace.as_secs() as i64),
                    service_account_name: cluster.service_account.clone(),
                    automount_service_account_token: Some(false),
                    node_selector: (!cluster.node_selector.is_empty())
                        .then(|| cluster.node_selector.clone()),
                    host_network: cluster.host_network.then_some(true),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How long a warm pod's Job may live (it ends itself sooner when idle).
const WARM_DEADLINE: i64 = 12 * 3600;

/// A warm pod's Job for `run`: the Jobs' settings, waiting (`baton
/// __pod-wait`) at `url` (the warm door, with its token) for an attempt.
pub fn warm_job(cluster: &Kubernetes, run: &str, url: &str) -> Job {
    let mut j = job(&crate::doctor::probe_attempt(), cluster);
    let labels = BTreeMap::from([
        (RUN_LABEL.to_string(), label_value(run)),
        (crate::warm::WARM_LABEL.to_string(), "idle".to_string()),
    ]);
    j.metadata.name = None;
    j.metadata.generate_name = Some(crate::warm::JOB_PREFIX.into());
    j.metadata.labels = Some(labels.clone());
    if let Some(spec) = j.spec.as_mut() {
        spec.active_deadline_seconds = Some(WARM_DEADLINE);
        if let Some(meta) = spec.template.metadata.as_mut() {
            meta.labels = Some(labels);
        }
        if let Some(pod) = spec.template.spec.as_mut() {
            for c in &mut pod.containers {
                c.command = Some(vec![cluster.baton.clone(), "__pod-wait".into()]);
                let mut env = vec![(baton_core::executor::warm::URL_ENV, url)];
                if cluster.reuse {
                    env.push((baton_core::executor::warm::REUSE_ENV, "1"));
                }
                c.env = Some(
                    env.into_iter()
                        .map(|(name, value)| EnvVar {
                            name: name.into(),
                            value: Some(value.into()),
                            ..Default::default()
                        })
                        .collect(),
                );
            }
        }
    }
    j
}

/// A Job's name for attempt `n` of a task: DNS-1123, at most 63 bytes,
/// unique per run, task and attempt even when the names are cut.
pub fn job_name(run: &str, task: &str, n: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{run}\0{task}\0{n}").as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let clean: String = format!("{task}-{n}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let cut: String = clean.chars().take(40).collect();
    format!("baton-{}-{hash}", cut.trim_matches('-'))
}

/// A label's value: at most 63 of `[A-Za-z0-9._-]`, starting and ending
/// with a letter or digit.
pub fn label_value(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cluster() -> Kubernetes {
        Kubernetes {
            namespace: "agents".into(),
            image: "example/baton:1".into(),
            baton: "/usr/local/bin/baton".into(),
            resources: BTreeMap::from([("memory".into(), "2Gi".into())]),
            service_account: Some("baton".into()),
            node_selector: BTreeMap::new(),
            env_from: vec!["api-keys".into()],
            mounts: vec![baton_core::plan::Mount::parse("/opt/tools:/tools").unwrap()],
            host_network: false,
            grace: Duration::from_secs(30),
            git_listen: "127.0.0.1:0".into(),
            git_host: None,
            remote: None,
            kubeconfig: None,
            context: None,
            warm: 0,
            reuse: false,
        }
    }

    fn pod() -> PodAttempt {
        PodAttempt {
            run: "run-1".into(),
            task: "api".into(),
            attempt: 2,
            git_url: "http://127.0.0.1:1/git/t".into(),
            branch: "baton/run-1/api".into(),
            start: "abc".into(),
            keep_ref: "refs/baton/run-1/api/2".into(),
            worktree: "/w/api".into(),
            program: "claude".into(),
            args: vec![],
            env: vec![("BATON_TASK".into(), "api".into())],
            stdin_lines: vec![],
            live: None,
            files: vec![],
            dirs: vec![],
            gates: vec![],
            gate_env: vec![],
            setup: Vec::new(),
            setup_key: None,
            setup_timeout_secs: 60,
            timeout_secs: 600,
            message: "m".into(),
        }
    }

    #[test]
    fn a_job_is_labelled_runs_once_and_takes_keys_only_from_secrets() {
        let j = job(&pod(), &cluster());
        let meta = &j.metadata;
        assert_eq!(meta.labels.as_ref().unwrap()[ATTEMPT_LABEL], "2");
        assert_eq!(meta.labels.as_ref().unwrap()[TASK_LABEL], "api");
        let spec = j.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(600 + 30 + 60));
        let ps = spec.template.spec.as_ref().unwrap();
        assert_eq!(ps.restart_policy.as_deref(), Some("Never"));
        assert_eq!(ps.termination_grace_period_seconds, Some(30));
        let c = &ps.containers[0];
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.len(), 1, "only the attempt's request: {env:?}");
        let from = c.env_from.as_ref().unwrap();
        assert_eq!(from[0].secret_ref.as_ref().unwrap().name, "api-keys");
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/tools");
        assert_eq!(c.command.as_ref().unwrap()[1], "__pod-attempt");
    }

    #[test]
    fn secret_looking_names_are_caught() {
        for s in [
            "ANTHROPIC_API_KEY",
            "GH_TOKEN",
            "db_password",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(is_secret_name(s), "{s}");
        }
        for s in ["BATON_TASK", "HOME", "PATH", "ANTHROPIC_BASE_URL"] {
            assert!(!is_secret_name(s), "{s}");
        }
    }

    #[test]
    fn a_job_name_is_dns_safe_short_and_unique_per_attempt() {
        let long = "Add_a_very_long_task_name_that_goes_on_and_on_and_on_forever";
        let a = job_name("run-1", long, 1);
        let b = job_name("run-1", long, 2);
        let c = job_name("run-2", long, 1);
        assert!(a.len() <= 63, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(a != b && a != c && b != c);
        assert_eq!(a, job_name("run-1", long, 1));
    }

    #[test]
    fn label_values_keep_what_kubernetes_allows() {
        assert_eq!(label_value("run-20261203-1"), "run-20261203-1");
        assert_eq!(label_value("a/b c"), "a_b_c");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
