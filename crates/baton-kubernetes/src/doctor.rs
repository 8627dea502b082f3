//! `baton doctor` for a plan's cluster: reachable, the namespace there,
//! what baton may do in it, and the image (a pod that runs baton and git
//! from it).

use super::client;
use baton_core::plan::Kubernetes;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use kube::api::{Api, DeleteParams, LogParams, ObjectMeta, PostParams};
use std::time::{Duration, Instant};

/// What baton does on the cluster, as (verb, resource, subresource).
const NEEDS: &[(&str, &str, &str, &str)] = &[
    ("create", "batch", "jobs", ""),
    ("delete", "batch", "jobs", ""),
    ("list", "batch", "jobs", ""),
    ("list", "", "pods", ""),
    ("get", "", "pods", "log"),
];

/// One line per check, and whether it passed.
pub async fn check(cluster: &Kubernetes) -> Vec<(bool, String)> {
    let mut lines = Vec::new();
    let client = match client(cluster).await {
        Ok(c) => c,
        Err(e) => return vec![(false, format!("cannot reach the cluster: {e:#}"))],
    };
    match client.apiserver_version().await {
        Ok(v) => lines.push((
            true,
            format!("reachable: Kubernetes {}.{}", v.major, v.minor),
        )),
        Err(e) => {
            lines.push((false, format!("cannot reach the cluster: {e}")));
            return lines;
        }
    }
    let ns = &cluster.namespace;
    match Api::<Namespace>::all(client.clone()).get_opt(ns).await {
        Ok(Some(_)) => lines.push((true, format!("namespace {ns}: there"))),
        Ok(None) => lines.push((
            false,
            format!("namespace {ns}: missing (kubectl create namespace {ns})"),
        )),
        Err(e) => lines.push((false, format!("namespace {ns}: cannot read it: {e}"))),
    }
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for (verb, group, resource, sub) in NEEDS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.clone()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource: (!sub.is_empty()).then(|| sub.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = match reviews.create(&PostParams::default(), &review).await {
            Ok(r) => r.status.map(|s| s.allowed).unwrap_or(false),
            Err(_) => false,
        };
        if !allowed {
            let what = if sub.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}/{sub}")
            };
            missing.push(format!("{verb} {what}"));
        }
    }
    if missing.is_empty() {
        lines.push((
            true,
            "permissions: create, list and delete Jobs; read pods and their logs".into(),
        ));
    } else {
        lines.push((
            false,
            format!("permissions: may not {} in {ns}", missing.join(", ")),
        ));
    }
    lines.push(image(&client, cluster).await);
    lines
}

/// Runs baton and git from the image in a pod of its own.
async fn image(client: &kube::Client, cluster: &Kubernetes) -> (bool, String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &cluster.namespace);
    let name = format!("baton-doctor-{}", std::process::id());
    let script = format!("{} --version && git --version", cluster.baton);
    let mut probe = super::job::job(&probe_attempt(), cluster)
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    probe.containers = vec![Container {
        name: "agent".into(),
        image: Some(cluster.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), "-c".into(), script]),
        volume_mounts: probe
            .containers
            .first()
            .and_then(|c| c.volume_mounts.clone()),
        ..Default::default()
    }];
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            termination_grace_period_seconds: Some(0),
            ..probe
        }),
        ..Default::default()
    };
    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        return (
            false,
            format!("image {}: cannot start a pod: {e}", cluster.image),
        );
    }
    let since = Instant::now();
    let verdict = loop {
        let p = pods.get_opt(&name).await.ok().flatten();
        let status = p.as_ref().and_then(|p| p.status.clone());
        let phase = status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let waiting = status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone());
        if phase == "Succeeded" || phase == "Failed" {
            let log = pods
                .logs(&name, &LogParams::default())
                .await
                .unwrap_or_default();
            let said = log.lines().collect::<Vec<_>>().join("; ");
            break (
                phase == "Succeeded",
                format!("image {}: {said}", cluster.image),
            );
        }
        if let Some(w) = waiting.filter(|w| w.contains("Image") || w.contains("Err")) {
            break (
                false,
                format!("image {}: cannot start it: {w}", cluster.image),
            );
        }
        if since.elapsed() > Duration::from_secs(90) {
            break (
                false,
                format!("image {}: its pod did not run within 90 s", cluster.image),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = pods.delete(&name, &DeleteParams::default()).await;
    verdict
}

/// An attempt with nothing in it: the probe pod gets the Jobs' settings
/// (service account, node selector, mounts, network) from it.
pub(crate) fn probe_attempt() -> baton_core::executor::PodAttempt {
    baton_core::executor::PodAttempt {
        run: "doctor".into(),
        task: "doctor".into(),
        attempt: 0,
        git_url: String::new(),
        branch: String::new(),
        start: String::new(),
        keep_ref: String::new(),
        worktree: "/".into(),
        program: String::new(),
        args: Vec::new(),
        env: Vec::new(),
        stdin_lines: Vec::new(),
        live: None,
        files: Vec::new(),
        dirs: Vec::new(),
        gates: Vec::new(),
        gate_env: Vec::new(),
        setup: Vec::new(),
        setup_key: None,
        setup_timeout_secs: 60,
        timeout_secs: 60,
        message: String::new(),
    }
}
