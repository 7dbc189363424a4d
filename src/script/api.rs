//! The primitives a strategy calls, registered as Rhai functions. Each blocks
//! on the tokio runtime and does its concurrent work there (in the engine).

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine as Rhai, EvalAltResult, FLOAT, INT, Map};
use tokio::runtime::Handle;

use super::env::ScriptEnv;
use super::helpers;
use crate::engine::{DeploymentResult, Engine, FailureBudget, PlanReport, VerifyResult, WaveOptions};
use crate::health::HealthStatus;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A primitive's refusal becomes a runtime error at the script's call site.
impl From<crate::engine::EngineError> for Box<EvalAltResult> {
    fn from(error: crate::engine::EngineError) -> Self {
        error.to_string().into()
    }
}

/// So is a call over the run's budget.
impl From<super::sandbox::BudgetError> for Box<EvalAltResult> {
    fn from(error: super::sandbox::BudgetError) -> Self {
        error.to_string().into()
    }
}

/// Names of the environments in `envs` (an array of environments, or one).
fn names(envs: &Dynamic, function: &str) -> RhaiResult<Vec<String>> {
    let items = envs.clone().into_array().unwrap_or_else(|_| vec![envs.clone()]);
    items
        .into_iter()
        .map(|item| {
            let type_name = item.type_name();
            item.try_cast::<ScriptEnv>()
                .map(|e| e.name)
                .ok_or_else(|| format!("{function}() takes environments (from `envs`), got {type_name}").into())
        })
        .collect()
}

fn optional(value: Option<impl Into<Dynamic>>) -> Dynamic {
    value.map(Into::into).unwrap_or(Dynamic::UNIT)
}

/// A deployment result as a Rhai map.
pub fn result_map(r: &DeploymentResult) -> Dynamic {
    let mut map = Map::new();
    map.insert("environment".into(), r.environment.clone().into());
    map.insert("status".into(), r.status.value().into());
    map.insert("migrations_applied".into(), (r.migrations_applied as INT).into());
    map.insert(
        "duration_seconds".into(),
        optional(r.duration_seconds.map(|d| d as FLOAT)),
    );
    map.insert("error".into(), optional(r.error.clone()));
    let passed_over: Array = r.passed_over.iter().cloned().map(Dynamic::from).collect();
    map.insert("passed_over".into(), passed_over.into());
    map.into()
}

fn health_map(h: &HealthStatus) -> Dynamic {
    let mut map = Map::new();
    map.insert("environment".into(), h.environment.clone().into());
    map.insert("is_healthy".into(), h.is_healthy.into());
    map.insert("can_connect".into(), h.can_connect.into());
    map.insert("authenticated".into(), h.authenticated.into());
    map.insert("migration_table_exists".into(), h.migration_table_exists.into());
    map.insert("error".into(), optional(h.error.clone()));
    map.insert(
        "server_version".into(),
        optional(h.server_version.as_ref().map(ToString::to_string)),
    );
    map.into()
}

fn plan_map(report: &PlanReport) -> Dynamic {
    let strings = |items: &[String]| items.iter().cloned().map(Dynamic::from).collect::<Array>();
    let mut map = Map::new();
    map.insert("environment".into(), report.environment.clone().into());
    let plan = report.plan.clone().unwrap_or_default();
    map.insert("pending".into(), strings(&plan.pending).into());
    let destructive: Array = plan
        .destructive
        .iter()
        .map(|d| {
            let mut entry = Map::new();
            entry.insert("migration".into(), d.migration.clone().into());
            entry.insert("file".into(), d.file.clone().into());
            entry.insert("line".into(), (d.line as INT).into());
            entry.insert("kind".into(), d.kind.clone().into());
            entry.insert("statement".into(), d.statement.clone().into());
            entry.into()
        })
        .collect();
    map.insert("destructive".into(), destructive.into());
    map.insert("irreversible".into(), strings(&plan.irreversible).into());
    map.insert("approval_required".into(), plan.approval_required.into());
    map.insert("blocked".into(), optional(report.blocked.clone()));
    map.insert("skipped".into(), optional(report.skipped.clone()));
    map.insert("error".into(), optional(report.error.clone()));
    map.insert("passed_over".into(), strings(&plan.passed_over).into());
    map.insert("row_migrations".into(), strings(&plan.row_migrations).into());
    map.insert(
        "server_version".into(),
        optional(report.server_version.as_ref().map(ToString::to_string)),
    );
    map.into()
}

fn verify_map(v: &VerifyResult) -> Dynamic {
    let mut map = Map::new();
    map.insert("environment".into(), v.environment.clone().into());
    map.insert("ok".into(), v.ok.into());
    map.insert("status".into(), if v.ok { "success" } else { "failed" }.into());
    map.insert("error".into(), optional(v.error.clone()));
    let failure = v.failure.as_ref();
    map.insert("migration".into(), optional(failure.map(|f| f.migration.clone())));
    map.insert("file".into(), optional(failure.map(|f| f.file.clone())));
    map.insert("line".into(), optional(failure.map(|f| f.line as INT)));
    map.insert("statement".into(), optional(failure.map(|f| f.statement.clone())));
    map.into()
}

/// The options `deploy(envs, #{ … })` accepts.
const WAVE_OPTIONS: [&str; 8] = [
    "label",
    "max_concurrent",
    "max_per_server",
    "max_failures",
    "max_failure_percent",
    "auto_rollback",
    "verify_health",
    "to_version",
];

/// A `deploy` call's options over the deployment's (`defaults`).
fn wave_options(options: &Map, defaults: WaveOptions) -> RhaiResult<WaveOptions> {
    let mut wave = defaults;
    let bad = |key: &str, wanted: &str, value: &Dynamic| -> Box<EvalAltResult> {
        format!("deploy(envs, #{{{key}: …}}): {key} must be {wanted}, got {value}").into()
    };
    if options.contains_key("max_failures") && options.contains_key("max_failure_percent") {
        return Err("deploy(envs, options): give max_failures or max_failure_percent, not both".into());
    }
    for (key, value) in options {
        match key.as_str() {
            "label" => wave.label = Some(value.to_string()),
            "max_concurrent" => match value.as_int() {
                Ok(n) if n >= 1 => wave.max_concurrent = n as usize,
                _ => return Err(bad(key, "an integer of at least 1", value)),
            },
            "max_per_server" => match value.as_int() {
                Ok(n) if n >= 1 => wave.max_per_server = Some(n as usize),
                _ => return Err(bad(key, "an integer of at least 1", value)),
            },
            "max_failures" => match value.as_int() {
                Ok(n) if n >= 1 => wave.max_failures = Some(FailureBudget::Count(n as usize)),
                _ => return Err(bad(key, "an integer of at least 1", value)),
            },
            "max_failure_percent" => {
                let percent = value
                    .as_float()
                    .ok()
                    .or_else(|| value.as_int().ok().map(|i| i as FLOAT));
                match percent {
                    Some(p) if p > 0.0 && p <= 100.0 => wave.max_failures = Some(FailureBudget::Percent(p)),
                    _ => return Err(bad(key, "a number above 0 and at most 100", value)),
                }
            }
            "auto_rollback" => wave.auto_rollback = value.as_bool().map_err(|_| bad(key, "true or false", value))?,
            "verify_health" => wave.verify_health = value.as_bool().map_err(|_| bad(key, "true or false", value))?,
            "to_version" if value.is_string() || value.is_int() => wave.to_version = Some(value.to_string()),
            "to_version" => return Err(bad(key, "a migration version (a string)", value)),
            other => {
                return Err(format!(
                    "deploy(envs, options): unknown option '{other}' (known: {})",
                    WAVE_OPTIONS.join(", ")
                )
                .into());
            }
        }
    }
    Ok(wave)
}

/// Script values as JSON for notifications (environments become their names).
fn dynamic_to_json(value: &Dynamic) -> RhaiResult<serde_json::Value> {
    use serde_json::Value;
    Ok(if value.is_unit() {
        Value::Null
    } else if let Ok(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Value::from(i)
    } else if let Ok(f) = value.as_float() {
        Value::from(f)
    } else if value.is_string() {
        Value::String(value.to_string())
    } else if let Some(env) = value.clone().try_cast::<ScriptEnv>() {
        Value::String(env.name)
    } else if let Ok(items) = value.clone().into_array() {
        Value::Array(items.iter().map(dynamic_to_json).collect::<RhaiResult<Vec<_>>>()?)
    } else if value.is_map() {
        let map = value.clone().cast::<Map>();
        let mut out = serde_json::Map::new();
        for (k, v) in map.iter() {
            out.insert(k.to_string(), dynamic_to_json(v)?);
        }
        Value::Object(out)
    } else {
        Value::String(value.to_string())
    })
}

/// Registers the environment type, the primitives and the helpers.
pub fn register(rhai: &mut Rhai, engine: Arc<Engine>, handle: Handle, budget: Arc<super::sandbox::Budget>) {
    // Round trips as the deployment's probes noted them, in its client.
    let client = engine.client().clone();
    let (versions, version_handle) = (engine.clone(), handle.clone());
    let version_of = move |e: &mut ScriptEnv| version_handle.block_on(versions.server_version(&e.name)).ok().flatten();
    let major_of = version_of.clone();
    rhai.register_type_with_name::<ScriptEnv>("Environment")
        // Its server's SurrealDB version ("4.0.0-beta.1"), "" when it cannot
        // be learned; the major as a number, -1 then.
        .register_get("server_version", move |e: &mut ScriptEnv| {
            version_of(e).map(|v| v.to_string()).unwrap_or_default()
        })
        .register_get("server_major", move |e: &mut ScriptEnv| {
            major_of(e).map_or(-1, |v| v.major() as INT)
        })
        .register_get("name", |e: &mut ScriptEnv| e.name.clone())
        .register_get("priority", |e: &mut ScriptEnv| e.priority as INT)
        .register_get("tags", |e: &mut ScriptEnv| {
            e.tags.iter().cloned().map(Dynamic::from).collect::<Array>()
        })
        .register_get("require_approval", |e: &mut ScriptEnv| e.require_approval)
        .register_get("allow_destructive", |e: &mut ScriptEnv| e.allow_destructive)
        .register_get("host", |e: &mut ScriptEnv| e.host.clone())
        // The server's recent round trip in ms while a deployment watches it
        // (`--max-server-latency-ms`); -1 when not measured.
        .register_get("server_latency_ms", move |e: &mut ScriptEnv| {
            crate::connection::recent_round_trip_to(&client, &e.host).map_or(-1.0, |rtt| rtt.as_secs_f64() * 1000.0)
                as rhai::FLOAT
        })
        .register_get("namespace", |e: &mut ScriptEnv| e.namespace.clone())
        .register_get("database", |e: &mut ScriptEnv| e.database.clone())
        .register_get("window_open", |e: &mut ScriptEnv| {
            e.window.as_ref().is_none_or(|w| w.is_open(chrono::Utc::now()))
        })
        .register_get("window_opens", |e: &mut ScriptEnv| e.window_opens())
        .register_get("held", |e: &mut ScriptEnv| e.hold.clone().unwrap_or_default())
        .register_get("frozen", |e: &mut ScriptEnv| {
            crate::policy::active_freeze(&e.freezes, chrono::Utc::now())
                .map(|f| f.reason.clone())
                .unwrap_or_default()
        })
        .register_get("pin_version", |e: &mut ScriptEnv| {
            e.pin_version.clone().unwrap_or_default()
        })
        .register_fn("to_string", |e: &mut ScriptEnv| e.name.clone())
        // Interpolating an array of environments (`${canary}`) prints their names.
        .register_fn("to_debug", |e: &mut ScriptEnv| e.name.clone());

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("health", move |envs: Dynamic| -> RhaiResult<Array> {
        let names = names(&envs, "health")?;
        b.spend("health", names.len())?;
        let statuses = h.block_on(e.health(&names))?;
        Ok(statuses.iter().map(health_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("plan", move |envs: Dynamic| -> RhaiResult<Array> {
        let names = names(&envs, "plan")?;
        b.spend("plan", names.len())?;
        let reports = h.block_on(e.plan(&names))?;
        Ok(reports.iter().map(plan_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("deploy", move |envs: Dynamic| -> RhaiResult<Array> {
        let names = names(&envs, "deploy")?;
        b.spend("deploy", names.len())?;
        let results = h.block_on(e.deploy(&names, e.wave_defaults()))?;
        Ok(results.iter().map(result_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("deploy", move |envs: Dynamic, options: Map| -> RhaiResult<Array> {
        let names = names(&envs, "deploy")?;
        b.spend("deploy", names.len())?;
        let wave = wave_options(&options, e.wave_defaults())?;
        let results = h.block_on(e.deploy(&names, wave))?;
        Ok(results.iter().map(result_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("rollback", move |envs: Dynamic| -> RhaiResult<Array> {
        let names = names(&envs, "rollback")?;
        b.spend("rollback", names.len())?;
        let results = h.block_on(e.rollback(&names, "rolled back by the strategy"))?;
        Ok(results.iter().map(result_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("rollback", move |envs: Dynamic, reason: &str| -> RhaiResult<Array> {
        let names = names(&envs, "rollback")?;
        b.spend("rollback", names.len())?;
        let results = h.block_on(e.rollback(&names, reason))?;
        Ok(results.iter().map(result_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("approve", move |envs: Dynamic, label: &str| -> RhaiResult<Array> {
        let names = names(&envs, "approve")?;
        b.spend("approve", names.len())?;
        let approved = h.block_on(e.approve_group(&names, label, &e.wave_defaults()))?;
        Ok(e.environments()
            .iter()
            .filter(|env| approved.contains(&env.name))
            .map(|env| Dynamic::from(ScriptEnv::from(&**env)))
            .collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("gate", move |envs: Dynamic, label: &str| -> RhaiResult<Map> {
        let names = names(&envs, "gate")?;
        b.spend("gate", names.len())?;
        let (halt, _) = h.block_on(e.gate_wave(&names, label))?;
        let mut map = Map::new();
        map.insert("halted".into(), halt.is_some().into());
        map.insert("gate".into(), optional(halt.as_ref().map(|h| h.gate.clone())));
        map.insert("reason".into(), optional(halt.map(|h| h.to_string())));
        Ok(map)
    });

    let (e, b) = (engine.clone(), budget.clone());
    rhai.register_fn("skip", move |envs: Dynamic, reason: &str| -> RhaiResult<Array> {
        let names = names(&envs, "skip")?;
        b.spend("skip", names.len())?;
        Ok(e.skip(&names, reason)?.iter().map(result_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    rhai.register_fn("verify", move |envs: Dynamic| -> RhaiResult<Array> {
        let names = names(&envs, "verify")?;
        b.spend("verify", names.len())?;
        let results = h.block_on(e.verify(&names))?;
        Ok(results.iter().map(verify_map).collect())
    });

    let (e, h, b) = (engine.clone(), handle.clone(), budget.clone());
    let pause = move |seconds: FLOAT| -> RhaiResult<()> {
        if !(0.0..=86_400.0).contains(&seconds) {
            return Err(format!("pause(seconds): seconds must be between 0 and 86400, got {seconds}").into());
        }
        b.spend("pause", 0)?;
        b.pause(seconds)?;
        e.note_pause(seconds);
        if e.options().dry_run || e.options().simulation.is_some() {
            e.log(format!("would pause {seconds}s"));
            return Ok(());
        }
        e.log(format!("pausing {seconds}s"));
        // Sleep in slices so Ctrl-C ends the pause promptly.
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(seconds);
        while std::time::Instant::now() < deadline && !e.is_cancelled() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            h.block_on(tokio::time::sleep(left.min(Duration::from_millis(100))));
        }
        Ok(())
    };
    let pause_int = pause.clone();
    rhai.register_fn("pause", pause);
    rhai.register_fn("pause", move |seconds: INT| pause_int(seconds as FLOAT));

    let e = engine.clone();
    rhai.register_fn("log", move |message: Dynamic| e.log(message.to_string()));

    let e = engine.clone();
    rhai.register_fn("notify", move |event: &str, data: Dynamic| -> RhaiResult<()> {
        const RESERVED: [&str; 7] = [
            "deployment_started",
            "deployment_finished",
            "environment_finished",
            "rollback",
            "wave_started",
            "wave_finished",
            "gate_halted",
        ];
        if RESERVED.contains(&event) {
            return Err(format!("notify(event, data): '{event}' is surql's own event; name yours differently").into());
        }
        let data = dynamic_to_json(&data)?;
        e.log(format!("notify {event}: {data}"));
        e.notify(event, serde_json::json!({ "data": data }));
        Ok(())
    });

    let e = engine.clone();
    rhai.on_print(move |text| e.log(text));
    rhai.on_debug(|text, source, position| {
        tracing::debug!(target: "surql::script", "{}:{position}: {text}", source.unwrap_or("strategy"))
    });

    rhai.register_fn("chunks", helpers::chunks)
        .register_fn("split_percent", helpers::split_percent)
        .register_fn("split_percent", helpers::split_percent_int)
        .register_fn("by_tag", helpers::by_tag)
        .register_fn("any_failed", helpers::any_failed)
        .register_fn("all_succeeded", helpers::all_succeeded)
        .register_fn("first_unsuccessful", helpers::first_unsuccessful);

    let e = engine;
    rhai.on_progress(move |_operations| {
        // Ctrl-C stops the script between operations.
        e.is_cancelled().then(|| Dynamic::from("interrupted"))
    });
}
