//! The deployment files under `deploy/` against the code: no services needed.

use std::{path::Path, time::Duration};

use promsync::{
    broker::{rabbitmq::topology_definitions, Lane, Topology},
    config::Settings,
};
use serde_json::Value;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// The topology the code declares with the default settings (namespace and retry tiers):
/// what the deployment files are written for.
fn default_topology() -> (Topology, Vec<Duration>) {
    let settings = Settings::defaults().expect("the defaults are valid");
    (
        Topology::new(&settings.broker.namespace),
        settings.import.retry_delays,
    )
}

/// A section's entries in a canonical order, so the comparison ignores the file's order.
fn sorted(section: &Value) -> Vec<String> {
    let mut entries: Vec<String> = section
        .as_array()
        .expect("a definitions section is an array")
        .iter()
        .map(|entry| serde_json::to_string(entry).expect("serializable"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn the_rabbitmq_definitions_file_matches_the_topology_the_code_declares() {
    let (topology, delays) = default_topology();
    let expected = topology_definitions(&topology, &delays);
    let file: Value = serde_json::from_str(&repo_file("deploy/rabbitmq/definitions.json"))
        .expect("deploy/rabbitmq/definitions.json is JSON");
    for section in ["vhosts", "exchanges", "queues", "bindings"] {
        assert_eq!(
            sorted(&file[section]),
            sorted(&expected[section]),
            "section `{section}` of deploy/rabbitmq/definitions.json differs from the code's \
             topology; RabbitMQ would refuse the code's redeclaration. Expected:\n{}",
            serde_json::to_string_pretty(&expected[section]).unwrap()
        );
    }
    // Loading definitions on boot skips RabbitMQ's default user: the file brings one
    // that may use the vhost.
    let users = file["users"].as_array().expect("users");
    assert!(!users.is_empty(), "the definitions file defines no user");
    for user in users {
        let name = user["name"].as_str().expect("user name");
        assert!(
            file["permissions"]
                .as_array()
                .expect("permissions")
                .iter()
                .any(|p| p["user"] == name && p["vhost"] == "/"),
            "user {name} has no permissions on vhost /"
        );
    }
}

#[test]
fn the_definitions_cover_both_lanes_with_every_retry_tier() {
    let (topology, delays) = default_topology();
    let expected = topology_definitions(&topology, &delays);
    let queues: Vec<&str> = expected["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    for lane in Lane::ALL {
        assert!(queues.contains(&topology.work_queue(lane).as_str()));
        assert!(queues.contains(&topology.dead_queue(lane).as_str()));
        for delay in &delays {
            assert!(queues.contains(&topology.retry_queue(lane, *delay).as_str()));
        }
    }
    assert!(queues.contains(&topology.log_stream().as_str()));
    assert_eq!(queues.len(), 2 * (2 + delays.len()) + 1);
}

#[test]
fn the_keda_scalers_watch_the_queues_the_roles_consume() {
    let (topology, _) = default_topology();
    let keda = repo_file("deploy/k8s/keda.yaml");
    for lane in Lane::ALL {
        let line = format!("queueName: {}", topology.work_queue(lane));
        assert!(keda.contains(&line), "deploy/k8s/keda.yaml lacks `{line}`");
    }
}

#[test]
fn docker_compose_loads_the_definitions_file() {
    let conf = repo_file("deploy/rabbitmq/rabbitmq.conf");
    assert!(
        conf.lines()
            .any(|l| l.trim() == "load_definitions = /etc/rabbitmq/definitions.json"),
        "rabbitmq.conf does not load /etc/rabbitmq/definitions.json"
    );
    let compose = repo_file("deploy/docker-compose.yml");
    assert!(compose.contains("./rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro"));
    assert!(compose.contains("./rabbitmq/rabbitmq.conf:/etc/rabbitmq/rabbitmq.conf:ro"));
}

#[test]
fn promsyncs_rabbitmq_user_may_touch_only_its_own_names_and_has_no_committed_password() {
    let (topology, delays) = default_topology();
    let expected = topology_definitions(&topology, &delays);
    let file: Value = serde_json::from_str(&repo_file("deploy/rabbitmq/definitions.json"))
        .expect("deploy/rabbitmq/definitions.json is JSON");
    for user in file["users"].as_array().expect("users") {
        let name = user["name"].as_str().expect("user name");
        assert_eq!(
            user["tags"].as_array().map(Vec::len),
            Some(0),
            "user {name} has management tags: {}",
            user["tags"]
        );
        assert_eq!(
            user["password_hash"], "",
            "user {name} has a password hash committed; its password comes from a secret"
        );
    }
    let own = format!("^{}\\.", topology.namespace());
    for permission in file["permissions"].as_array().expect("permissions") {
        for right in ["configure", "write", "read"] {
            assert_eq!(
                permission[right].as_str(),
                Some(own.as_str()),
                "the `{right}` permission must be limited to promsync's own names"
            );
        }
    }
    // The limit must still cover everything the code declares.
    let prefix = format!("{}.", topology.namespace());
    for section in ["exchanges", "queues"] {
        for entry in expected[section].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            assert!(
                name.starts_with(&prefix),
                "{section}: {name} is outside {own}"
            );
        }
    }
}

#[test]
fn kubernetes_routes_only_the_public_paths_and_serves_metrics_apart() {
    let ingress = repo_file("deploy/k8s/serve-ingress.yaml");
    let paths: Vec<(&str, &str)> = ingress
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- path: "))
        .zip(
            ingress
                .lines()
                .map(str::trim)
                .filter_map(|l| l.strip_prefix("pathType: ")),
        )
        .collect();
    assert!(!paths.is_empty(), "no paths in serve-ingress.yaml");
    for (path, kind) in &paths {
        assert!(
            ["/webhooks/", "/api/", "/ui/"].contains(path) || (*path == "/" && *kind == "Exact"),
            "the ingress routes {path} ({kind}) publicly"
        );
    }
    let config = repo_file("deploy/k8s/configmap.yaml");
    assert!(
        config.contains("PROMSYNC_METRICS_LISTEN:"),
        "the ConfigMap does not move /metrics to its own listener"
    );
}
