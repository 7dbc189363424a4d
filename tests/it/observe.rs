//! Seeing a rollout from outside, through the real binary: Prometheus
//! metrics parsed with a Prometheus text-format parser and compared with the
//! deployment's own report, OTLP traces received by a local OTLP/HTTP
//! receiver, and the dashboard in headless Chromium (a finished 1,000-tenant
//! deployment, a running one changing without a reload, the token).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::browser::Browser;
use crate::common::runs::{finish_within, slow, spawn};
use crate::common::{migrations_dir, run_surql, stdout_json, strs, text, write_environments};

const ACCOUNTS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const ORDERS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS orders SCHEMALESS;\n-- migrate:down\nREMOVE TABLE orders;\n";
/// A password that must never reach a page, a metric or a span.
const SECRET: &str = "observe-secret-Zq81";

/// `n` tenants on the embedded engine (`tNNNN`), then `down` tenants on a
/// port nothing listens on (`downN`: they fail their health check).
fn fleet(dir: &std::path::Path, n: usize, down: usize, prefix: &str) {
    let mut environments: Vec<Value> = (0..n)
        .map(|i| json!({ "name": format!("t{i:04}"), "connection": { "db_url": "mem://", "db_ns": format!("{prefix}{i}"), "db": "main" } }))
        .collect();
    environments.extend((0..down).map(|i| {
        json!({ "name": format!("down{i}"), "connection": { "db_url": "ws://127.0.0.1:9", "db_ns": "x", "db": format!("y{i}"),
            "username": "root", "password": SECRET } })
    }));
    write_environments(dir, Value::Array(environments));
}

/// `deploy_args` (parallel, JSON) under deployment `id`, unreachable servers given up on within 2 s.
fn deploy(m: &std::path::Path, id: &str, extra: &[&str]) -> Vec<String> {
    let mut more: Vec<String> = ["--deployment-id", id, "--connect-timeout", "2"]
        .map(str::to_string)
        .to_vec();
    more.extend(extra.iter().map(|s| s.to_string()));
    common::runs::deploy_args(m.to_str().unwrap(), &more)
}

/// The results of a deploy's JSON report by status.
fn statuses(report: &Value) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for result in report["results"].as_array().unwrap() {
        *counts
            .entry(result["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

/// One sample's value: `name` with `labels` (besides deployment_id and strategy).
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name} {labels:?}"));
    match &found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
        other => panic!("{name}: unexpected {other:?}"),
    }
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// Reads the `http://ADDR` a surql process announced on stderr (`what on http://…`).
fn announced(child: &mut std::process::Child, what: &str) -> (String, std::thread::JoinHandle<String>) {
    let stderr = child.stderr.take().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    let needle = format!("{what} on http://");
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(after) = line.split(&needle).nth(1) {
                let address = after.split(['/', ' ']).next().unwrap_or_default().to_string();
                let _ = found.send(format!("http://{address}"));
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let address = address
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no '{what} on http://…' within 60 s"));
    (address, rest)
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    try_get(url, token).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A GET that may find the server gone (the deployment ended meanwhile).
fn try_get(url: &str, token: Option<&str>) -> Result<(u16, String), ureq::Error> {
    let mut request = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call()?;
    Ok((
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap_or_default(),
    ))
}

/// Scraped while it runs, the endpoint shows the deployment running with
/// environments running; at the end, the metrics file (parsed by a
/// Prometheus text-format parser) equals the deployment's own counts.
#[tokio::test]
async fn metrics_equal_the_deployments_counts() {
    const TENANTS: usize = 12;
    const DOWN: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path(), TENANTS, DOWN, "metrics");
    let m = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_slow.surql", &slow(400)),
        ("3_orders.surql", ORDERS),
    ]);
    let file = dir.path().join("surql.prom");
    let args = deploy(
        m.path(),
        "metrics-1",
        &[
            "--max-concurrent",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-file",
            file.to_str().unwrap(),
        ],
    );
    let mut child = spawn(&args, dir.path());
    let (address, stderr) = announced(&mut child, "metrics");
    let (mut saw_running, mut scrapes) = (false, 0);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        // The deployment may end between the check above and this scrape.
        if let Ok((200, body)) = try_get(&format!("{address}/metrics"), None) {
            let scrape = parse(&body);
            scrapes += 1;
            let running = sample(&scrape, "surql_environments", &[("state", "running")]);
            let phase = sample(&scrape, "surql_deployment_phase", &[("phase", "running")]);
            saw_running |= running > 0.0 && phase == 1.0;
            assert!(!body.contains("t0001"), "no per-tenant label by default:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let out = finish_within(child, Duration::from_secs(10), "the deployment");
    let report = stdout_json(&out);
    assert!(saw_running, "{scrapes} scrapes never saw an environment running");

    let counts = statuses(&report);
    let metrics = std::fs::read_to_string(&file).unwrap();
    let scrape = parse(&metrics);
    for sample in &scrape.samples {
        assert_eq!(
            sample.labels.get("deployment_id"),
            Some("metrics-1"),
            "{}",
            sample.metric
        );
        assert_eq!(sample.labels.get("strategy"), Some("parallel"), "{}", sample.metric);
    }
    let count = |status: &str| counts.get(status).copied().unwrap_or(0) as f64;
    assert_eq!(count("success"), TENANTS as f64, "{report}");
    assert_eq!(count("failed"), DOWN as f64, "{report}");
    assert_eq!(
        sample(&scrape, "surql_environments", &[("state", "success")]),
        count("success")
    );
    assert_eq!(
        sample(&scrape, "surql_environments", &[("state", "failed")]),
        count("failed")
    );
    assert_eq!(sample(&scrape, "surql_environments", &[("state", "running")]), 0.0);
    assert_eq!(sample(&scrape, "surql_environments", &[("state", "pending")]), 0.0);
    assert_eq!(
        sample(&scrape, "surql_environments_selected", &[]),
        (TENANTS + DOWN) as f64
    );
    assert_eq!(
        sample(&scrape, "surql_failures_total", &[("kind", "unhealthy")]),
        DOWN as f64
    );
    assert_eq!(sample(&scrape, "surql_deployment_phase", &[("phase", "finished")]), 1.0);
    let applied: u64 = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["migrations_applied"].as_u64().unwrap())
        .sum();
    assert_eq!(applied, (TENANTS * 3) as u64);
    assert_eq!(sample(&scrape, "surql_migrations_applied_total", &[]), applied as f64);
    assert_eq!(
        sample(&scrape, "surql_environment_duration_seconds_count", &[]),
        (TENANTS + DOWN) as f64
    );
    assert_eq!(
        sample(&scrape, "surql_migration_duration_seconds_count", &[]),
        applied as f64
    );
    assert_eq!(
        sample(&scrape, "surql_waves_started_total", &[]),
        sample(&scrape, "surql_waves_finished_total", &[])
    );
    assert!(sample(&scrape, "surql_waves_started_total", &[]) >= 1.0);
    assert!(!metrics.contains(SECRET) && !stderr.join().unwrap().contains(SECRET));
}

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    id: Vec<u8>,
    parent: Vec<u8>,
    attributes: HashMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    status: i32,
}

fn received_spans(requests: &[common::http::Recorded]) -> Vec<Span> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let mut spans = Vec::new();
    for request in requests.iter().filter(|r| r.path() == "/v1/traces") {
        let export = ExportTraceServiceRequest::decode(request.raw.as_slice()).unwrap();
        for span in export
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
        {
            let attributes = span
                .attributes
                .iter()
                .map(|kv| {
                    let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                        Some(Any::StringValue(s)) => s,
                        Some(Any::IntValue(i)) => i.to_string(),
                        Some(Any::BoolValue(b)) => b.to_string(),
                        Some(Any::DoubleValue(d)) => d.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), value)
                })
                .collect();
            spans.push(Span {
                name: span.name,
                id: span.span_id,
                parent: span.parent_span_id,
                attributes,
                status: span.status.map_or(0, |s| s.code),
            });
        }
    }
    spans
}

/// With OTEL_EXPORTER_OTLP_ENDPOINT set, a local OTLP/HTTP receiver gets
/// deployment → wave → environment → migration spans: one per environment
/// with its status, the failed one an error with its (redacted) error.
#[tokio::test]
async fn traces_reach_an_otlp_receiver() {
    const TENANTS: usize = 4;
    let receiver = common::http::Recorder::start(|_| (200, String::new()));
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path(), TENANTS, 1, "traces");
    let m = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_orders.surql", ORDERS)]);
    let args = deploy(m.path(), "traced-1", &[]);
    let out = common::surql_command(&strs(&args), dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one tenant is down: {}", text(&out));
    let spans = received_spans(&receiver.requests());
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.id.as_slice(), s)).collect();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();

    let deployment = named("deployment");
    assert_eq!(deployment.len(), 1, "{spans:#?}");
    assert_eq!(deployment[0].attributes["deployment_id"], "traced-1");
    assert_eq!(
        deployment[0].status, 2,
        "a failed environment fails the deployment span"
    );
    let environments = named("environment");
    assert_eq!(
        environments.len(),
        TENANTS + 1,
        "one span per environment: {environments:#?}"
    );
    for span in &environments {
        let name = &span.attributes["environment"];
        let wave = by_id[span.parent.as_slice()];
        assert_eq!(wave.name, "wave", "{name}'s parent");
        assert_eq!(by_id[wave.parent.as_slice()].name, "deployment", "the wave's parent");
        let migrations: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent == span.id && s.name == "migration")
            .collect();
        if name.starts_with("down") {
            assert_eq!(
                (span.status, span.attributes["status"].as_str()),
                (2, "failed"),
                "{span:?}"
            );
            assert!(span.attributes["error"].contains("unhealthy"), "{span:?}");
            assert!(migrations.is_empty());
        } else {
            assert_eq!(
                (span.status, span.attributes["status"].as_str()),
                (1, "success"),
                "{span:?}"
            );
            let applied: String = migrations
                .iter()
                .map(|m| m.attributes["migration"].clone())
                .collect::<Vec<_>>()
                .join(",");
            assert_eq!(applied, "1_accounts,2_orders", "{name}'s migration spans");
        }
    }
    let everything = format!("{spans:?}");
    assert!(!everything.contains(SECRET), "a secret reached a span");
}

/// The environments' states as the page shows them, by state.
const CELL_STATES: &str = "(() => { const c = {}; for (const e of document.querySelectorAll('#map .cell')) c[e.dataset.state] = (c[e.dataset.state] || 0) + 1; return c; })()";

fn dashboard(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut args = vec!["orchestrate", "dashboard", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = spawn(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), dir);
    let (address, _) = announced(&mut child, "dashboard");
    (child, address)
}

/// Saves the page as `NAME.png` in `$SURQL_SCREENSHOTS` when set (the README's pictures).
async fn screenshot(browser: &mut Browser, name: &str) {
    use base64::Engine as _;
    if let Ok(dir) = std::env::var("SURQL_SCREENSHOTS") {
        let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// A finished 1,000-tenant deployment: the page shows 1,000 cells with the
/// right states and the failures with their errors; its API answers what
/// `show --output json` does.
#[tokio::test]
async fn the_dashboard_shows_a_finished_1000_tenant_deployment() {
    const TENANTS: usize = 995;
    const DOWN: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path(), TENANTS, DOWN, "dash");
    let m = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_orders.surql", ORDERS)]);
    let out = run_surql(
        &strs(&deploy(m.path(), "fleet-1000", &["--max-concurrent", "50"])),
        dir.path(),
    );
    let report = stdout_json(&out);
    assert_eq!(statuses(&report).get("success"), Some(&TENANTS), "{}", text(&out));

    let (mut server, address) = dashboard(dir.path(), &[]);
    let (status, api) = get(&format!("{address}/api/deployments/fleet-1000"), None);
    assert_eq!(status, 200, "{api}");
    let api: Value = serde_json::from_str(&api).unwrap();
    let shown = stdout_json(&run_surql(
        &["orchestrate", "show", "fleet-1000", "--output", "json"],
        dir.path(),
    ));
    assert_eq!(api["deployment"], shown["deployment"]);
    assert_eq!(api["environments"], shown["environments"]);

    let mut browser = Browser::start().await;
    browser.open(&format!("{address}/deployments/fleet-1000")).await;
    browser
        .wait_for(
            "document.querySelectorAll('#map .cell').length === 1000 && document.querySelector('#failures li')",
            Duration::from_secs(30),
        )
        .await;
    let states = browser.eval(CELL_STATES).await;
    assert_eq!(states, json!({ "success": TENANTS, "failed": DOWN }));
    assert_eq!(
        browser
            .eval("document.querySelector('#deployment-state').textContent.trim()")
            .await,
        "finished"
    );
    let failures = browser
        .eval("[...document.querySelectorAll('#failures li')].map(li => [li.dataset.env, li.textContent])")
        .await;
    let failures = failures.as_array().unwrap();
    assert_eq!(failures.len(), DOWN);
    for result in report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
    {
        let name = result["environment"].as_str().unwrap();
        let shown = failures
            .iter()
            .find(|f| f[0] == name)
            .unwrap_or_else(|| panic!("{name} not among the failures"));
        assert!(
            shown[1].as_str().unwrap().contains(result["error"].as_str().unwrap()),
            "{shown}"
        );
    }
    let page = browser.eval("document.documentElement.outerHTML").await;
    assert!(!page.as_str().unwrap().contains(SECRET), "a secret reached the page");
    screenshot(&mut browser, "dashboard-finished").await;
    server.kill().unwrap();
}

/// A running deployment's page changes state without a reload, the
/// deployment holding the embedded store (read through its socket).
#[tokio::test]
async fn the_dashboard_follows_a_running_deployment() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path(), 6, 0, "live");
    let m = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(1500))]);
    let (mut server, address) = dashboard(dir.path(), &[]);
    let deployment = spawn(&deploy(m.path(), "live-1", &["--max-concurrent", "2"]), dir.path());

    let mut browser = Browser::start().await;
    browser.open(&format!("{address}/deployments/live-1")).await;
    browser
        .wait_for(
            "document.querySelector('#deployment-state')?.textContent.trim() === 'running' && document.querySelector('#map .cell[data-state=running]')",
            Duration::from_secs(60),
        )
        .await;
    browser.eval("window.surqlNotReloaded = true").await;
    screenshot(&mut browser, "dashboard-running").await;
    let polls_then = browser
        .eval("Number(document.querySelector('#status').dataset.polls)")
        .await;
    browser
        .wait_for(
            "document.querySelector('#deployment-state').textContent.trim() === 'finished'",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        browser.eval("window.surqlNotReloaded === true").await,
        true,
        "the page reloaded"
    );
    browser
        .wait_for(
            "document.querySelectorAll('#map .cell[data-state=success]').length === 6",
            Duration::from_secs(10),
        )
        .await;
    let polls_now = browser
        .eval("Number(document.querySelector('#status').dataset.polls)")
        .await;
    assert!(polls_now.as_f64() > polls_then.as_f64(), "{polls_then} → {polls_now}");
    let out = finish_within(deployment, Duration::from_secs(30), "the deployment");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    server.kill().unwrap();
}

/// Beyond loopback the dashboard needs a token, and every request without it is refused.
#[tokio::test]
async fn beyond_loopback_every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path(), 1, 0, "token");
    let refused = run_surql(&["orchestrate", "dashboard", "--listen", "0.0.0.0:0"], dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("needs a token"), "{}", text(&refused));

    let token = "0123456789abcdef-dashboard-token";
    let mut args = vec!["orchestrate", "dashboard", "--listen", "0.0.0.0:0"];
    args.extend(["--token", token]);
    let mut child = spawn(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), dir.path());
    let (address, stderr) = announced(&mut child, "dashboard");
    let address = address.replace("0.0.0.0", "127.0.0.1");
    for path in ["/", "/deployments/x", "/api/deployments", "/api/deployments/x"] {
        assert_eq!(get(&format!("{address}{path}"), None).0, 401, "{path} without a token");
        assert_eq!(
            get(&format!("{address}{path}"), Some("wrong-token-0123456789")).0,
            401,
            "{path} with a wrong token"
        );
    }
    assert_eq!(get(&format!("{address}/api/deployments"), Some(token)).0, 200);
    assert_eq!(get(&format!("{address}/api/deployments?token={token}"), None).0, 200);

    let mut browser = Browser::start().await;
    browser.open(&format!("{address}/?token={token}")).await;
    browser
        .wait_for(
            "Number(document.querySelector('#status')?.dataset.polls) >= 1",
            Duration::from_secs(30),
        )
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!stderr.join().unwrap().contains(token), "the token was printed");
}
