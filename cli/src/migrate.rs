//! `surql migrate …`: flags in, library calls, terminal output out.

use std::path::Path;
use std::time::Duration;

use super::args::{MigrateCommand, Target};
use super::render;
use surql::Error;
use surql::connection::{Client, ConnectionConfig, Db, Timeouts, connect, connect_read_only};
use surql::error::{EXIT_FAILURE, EXIT_SUCCESS};
use surql::migration::{
    self, AppliedMigration, ApplyContext, ApplyError, Migration, applied_migrations, discover_migrations, down_script,
    rollback_plan, script::StartClock, up_script,
};

pub async fn run(command: MigrateCommand) -> Result<i32, Error> {
    // One command, one client: its connections are signed in to once.
    let client = &Client::new();
    match command {
        MigrateCommand::Create { name, dir } => create(&dir.migrations_dir, &name),
        MigrateCommand::Up { steps, dry_run, target } => up(client, &target, steps, dry_run).await,
        MigrateCommand::Down { steps, dry_run, target } => down(client, &target, steps, dry_run).await,
        MigrateCommand::Status { target } => status(client, &target).await,
        MigrateCommand::Baseline {
            version,
            dry_run,
            target,
        } => baseline(client, &target, &version, dry_run).await,
        MigrateCommand::Adopt { dry_run, target } => adopt(client, &target, dry_run).await,
        MigrateCommand::Import { from, source, out } => import(&from, &source, &out),
        MigrateCommand::Validate { target } => validate(client, &target).await,
        MigrateCommand::Verify { target } => verify(client, &target).await,
        MigrateCommand::Unlock { yes, target } => {
            let connection = resolve_connection(client, &target).await?;
            let name = format!("{} ({}/{})", connection.display_url(), connection.db_ns, connection.db);
            let outcome = super::unlock::unlock(client, &name, &connection, timeouts(&target), yes).await?;
            Ok(if super::unlock::report(&name, &outcome) {
                EXIT_SUCCESS
            } else {
                EXIT_FAILURE
            })
        }
    }
}

/// Writes `<timestamp>_<name>.surql` with both sections.
fn create(dir: &Path, name: &str) -> Result<i32, Error> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(Error::Usage(format!(
            "'{name}' cannot be a migration name: use letters, digits, '_' and '-'"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create migrations directory '{}'", dir.display()), e))?;
    let mut stamp = chrono::Utc::now();
    let path = loop {
        let version = stamp.format("%Y%m%d%H%M%S").to_string();
        let taken = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{version}_")));
        if !taken {
            break dir.join(format!("{version}_{name}.surql"));
        }
        // Two files created in one second: the next second keeps versions unique.
        stamp += chrono::Duration::seconds(1);
    };
    let template = format!(
        "-- {name}\n-- Each section runs in one transaction together with its history row.\n\n-- migrate:up\n\n\n-- migrate:down\n\n"
    );
    std::fs::write(&path, template).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    println!("created {}", path.display());
    Ok(EXIT_SUCCESS)
}

/// The one database of `target`: from --config/--env, or from flags and SURQL_* variables.
async fn resolve_connection(client: &Client, target: &Target) -> Result<ConnectionConfig, Error> {
    if let Some(name) = &target.environment {
        let path = target.config.clone().unwrap_or_else(|| "environments.json".into());
        let (file, _) = surql::load_environments(client, &path, timeout(target)).await?;
        let registry = file.registry();
        let environment = registry.get(name).map_err(|source| Error::NotInConfig {
            config: path.clone(),
            source,
        })?;
        return Ok(environment.connection.clone());
    }
    let (Some(db_url), Some(ns), Some(db)) = (&target.db_url, &target.ns, &target.db) else {
        return Err(Error::Usage(
            "no database given: pass --db-url, --ns and --db (or SURQL_DB_URL, SURQL_NS, SURQL_DB), or --config FILE --env NAME"
                .into(),
        ));
    };
    if let Some(pass) = &target.pass {
        surql::redact::register_secret(pass);
    }
    surql::redact::register_url_secret(db_url);
    let mut connection = ConnectionConfig::new(db_url, ns, db);
    connection.username = target.user.clone();
    connection.password = target.pass.clone();
    if let Some(level) = target.auth_level {
        connection.auth_level = level;
    }
    connection.endpoint_kind()?;
    Ok(connection)
}

fn load_migrations(target: &Target) -> Result<Vec<Migration>, Error> {
    Ok(discover_migrations(&target.dir.migrations_dir)?)
}

fn timeout(target: &Target) -> Duration {
    target.connect_timeout.max(Duration::from_millis(100))
}

fn timeouts(target: &Target) -> Timeouts {
    Timeouts {
        connect: timeout(target),
        operation: target
            .operation_timeout
            .clamp(Duration::from_millis(100), Duration::from_secs(86_400)),
    }
}

async fn open(client: &Client, target: &Target, connection: &ConnectionConfig) -> Result<Db, Error> {
    Ok(connect(client, connection, timeouts(target)).await?)
}

/// History of a database without creating anything; empty when it was never initialised.
/// Another tool's history there (without surql's) stops it, saying what to do.
async fn read_history(
    client: &Client,
    target: &Target,
    connection: &ConnectionConfig,
) -> Result<Vec<AppliedMigration>, Error> {
    match connect_read_only(client, connection, timeouts(target)).await {
        Ok(Some(db)) => {
            let applied = applied_migrations(&db).await?;
            if applied.is_empty()
                && let Some(foreign) = migration::adopt::foreign_tables(&db).await?
            {
                return Err(Error::Usage(foreign));
            }
            Ok(applied)
        }
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn context(target: &Target) -> ApplyContext {
    let mut ctx = ApplyContext::new();
    if let Some(actor) = &target.actor {
        ctx.actor = actor.clone();
    }
    ctx.lock_ttl = target.lock_ttl.min(Duration::from_secs(86_400));
    ctx.order = migration::plan::OrderPolicy {
        allow_out_of_order: target.allow_out_of_order,
        allow_missing: target.allow_missing,
    };
    ctx
}

async fn up(client: &Client, target: &Target, steps: Option<usize>, dry_run: bool) -> Result<i32, Error> {
    let migrations = load_migrations(target)?;
    let connection = resolve_connection(client, target).await?;
    if dry_run {
        // Read-only: history is read if it exists; nothing is created.
        let applied = read_history(client, target, &connection).await?;
        let plan = migration::plan(&migrations, &applied);
        if let Some(refusal) = plan.refusal(context(target).order) {
            return Err(ApplyError::Refused(refusal).into());
        }
        let pending: Vec<&Migration> = plan.pending.into_iter().take(steps.unwrap_or(usize::MAX)).collect();
        println!(
            "-- dry run on {} ({}/{}): {} migration(s) would be applied; nothing was written",
            connection.display_url(),
            connection.db_ns,
            connection.db,
            pending.len()
        );
        for m in pending {
            println!(
                "\n-- {} ({})\n{}",
                m.id(),
                m.path.display(),
                up_script(m, StartClock::of(&connection))
            );
        }
        return Ok(EXIT_SUCCESS);
    }
    // Stops on another tool's history before anything is created.
    read_history(client, target, &connection).await?;
    let db = open(client, target, &connection).await?;
    let ctx = context(target);
    match migration::migrate_up(&db, &connection, &migrations, steps, &ctx).await {
        Ok(applied) => {
            for step in &applied {
                println!("applied {}_{} ({} ms)", step.version, step.name, step.duration_ms);
            }
            println!(
                "{} migration(s) applied to {} ({}/{}), deployment {}",
                applied.len(),
                connection.display_url(),
                connection.db_ns,
                connection.db,
                ctx.deployment_id
            );
            Ok(EXIT_SUCCESS)
        }
        Err(error) => {
            if let ApplyError::Failed { completed, .. } = &error {
                for step in completed {
                    println!("applied {}_{} ({} ms)", step.version, step.name, step.duration_ms);
                }
            }
            Err(error.into())
        }
    }
}

async fn down(client: &Client, target: &Target, steps: usize, dry_run: bool) -> Result<i32, Error> {
    let migrations = load_migrations(target)?;
    let connection = resolve_connection(client, target).await?;
    let applied = read_history(client, target, &connection).await?;
    if dry_run {
        let targets = rollback_plan(&migrations, &applied, steps)?;
        println!(
            "-- dry run on {} ({}/{}): {} migration(s) would be rolled back; nothing was written",
            connection.display_url(),
            connection.db_ns,
            connection.db,
            targets.len()
        );
        for m in targets {
            println!(
                "\n-- {} ({})\n{}",
                m.id(),
                m.path.display(),
                down_script(m).unwrap_or_default()
            );
        }
        return Ok(EXIT_SUCCESS);
    }
    if applied.is_empty() {
        println!(
            "nothing to roll back on {} ({}/{})",
            connection.display_url(),
            connection.db_ns,
            connection.db
        );
        return Ok(EXIT_SUCCESS);
    }
    let db = open(client, target, &connection).await?;
    let ctx = context(target);
    match migration::migrate_down(&db, &migrations, steps, &ctx).await {
        Ok(reverted) => {
            for step in &reverted {
                println!("rolled back {}_{} ({} ms)", step.version, step.name, step.duration_ms);
            }
            println!(
                "{} migration(s) rolled back on {} ({}/{})",
                reverted.len(),
                connection.display_url(),
                connection.db_ns,
                connection.db
            );
            Ok(EXIT_SUCCESS)
        }
        Err(error) => {
            if let ApplyError::Failed { completed, .. } = &error {
                for step in completed {
                    println!("rolled back {}_{} ({} ms)", step.version, step.name, step.duration_ms);
                }
            }
            Err(error.into())
        }
    }
}

async fn baseline(client: &Client, target: &Target, version: &str, dry_run: bool) -> Result<i32, Error> {
    let migrations = load_migrations(target)?;
    let connection = resolve_connection(client, target).await?;
    let recorded = if dry_run {
        let applied = read_history(client, target, &connection).await?;
        let plan = migration::baseline::baseline_plan(&migrations, &applied, version)?;
        println!("Dry run: nothing was written.");
        plan.into_iter().map(Migration::id).collect()
    } else {
        let db = open(client, target, &connection).await?;
        migration::baseline::baseline(&db, &connection, &migrations, version, &context(target)).await?
    };
    let verb = if dry_run { "would record" } else { "recorded" };
    if recorded.is_empty() {
        println!("nothing to record: every migration up to {version} is in the history");
    } else {
        println!(
            "{verb} {} migration(s) as baseline (nothing of them ran):",
            recorded.len()
        );
        for id in &recorded {
            println!("  {id}");
        }
    }
    Ok(EXIT_SUCCESS)
}

/// Converts another tool's files; exit 1 when any was skipped.
fn import(from: &str, source: &Path, out: &Path) -> Result<i32, Error> {
    let report = migration::import::import(from, source, out).map_err(|e| Error::Usage(e.to_string()))?;
    for (source, target) in &report.converted {
        println!("converted {} -> {}", source.display(), target.display());
    }
    for (source, why) in &report.skipped {
        eprintln!("skipped {}: {why}", source.display());
    }
    for (source, why) in &report.left_out {
        println!("left out {}: {why}", source.display());
    }
    let left_out = match report.left_out.len() {
        0 => String::new(),
        n => format!(" ({n} left out, as the tool itself does)"),
    };
    println!(
        "{} converted, {} skipped{left_out}",
        report.converted.len(),
        report.skipped.len()
    );
    Ok(if report.skipped.is_empty() {
        EXIT_SUCCESS
    } else {
        EXIT_FAILURE
    })
}

async fn adopt(client: &Client, target: &Target, dry_run: bool) -> Result<i32, Error> {
    use migration::adopt;
    let migrations = load_migrations(target)?;
    let connection = resolve_connection(client, target).await?;
    let rows = if dry_run {
        let foreign = match connect_read_only(client, &connection, timeouts(target)).await? {
            Some(db) => adopt::read_foreign(&db).await?,
            None => None,
        };
        let Some(foreign) = foreign else {
            println!("{}", adopt::NOTHING_TO_ADOPT);
            return Ok(EXIT_SUCCESS);
        };
        println!("Dry run: nothing was written.");
        adopt::adopt_plan(&migrations, &foreign)?
    } else {
        let db = open(client, target, &connection).await?;
        adopt::adopt(&db, &migrations, &context(target)).await?
    };
    let verb = if dry_run { "would adopt" } else { "adopted" };
    println!(
        "{verb} {} migration(s) from another tool's history (nothing of it is lost):",
        rows.len()
    );
    for row in &rows {
        println!(
            "  {} (was {}, applied {})",
            row.id(),
            row.original_version,
            row.applied_at
        );
    }
    Ok(EXIT_SUCCESS)
}

async fn status(client: &Client, target: &Target) -> Result<i32, Error> {
    let migrations = load_migrations(target)?;
    let connection = resolve_connection(client, target).await?;
    let applied = read_history(client, target, &connection).await?;
    let plan = migration::plan(&migrations, &applied);
    println!("{}", render::migration_table(&plan.rows));
    println!(
        "{} applied, {} pending, {} drifted or missing",
        plan.rows
            .iter()
            .filter(|r| matches!(
                r.state,
                migration::MigrationState::Applied | migration::MigrationState::Baseline
            ))
            .count(),
        plan.pending.len(),
        plan.drift.len()
    );
    Ok(EXIT_SUCCESS)
}

/// The database as the one environment of a registry, verified like any.
async fn verify(client: &Client, target: &Target) -> Result<i32, Error> {
    let migrations = load_migrations(target)?;
    let connection = resolve_connection(client, target).await?;
    let name = target.environment.clone().unwrap_or_else(|| "database".into());
    let mut registry = surql::EnvironmentRegistry::new();
    registry.register(surql::EnvironmentConfig::new(name.clone(), connection))?;
    let results = surql::MigrationCoordinator::new(registry)
        .with_client(client.clone())
        .verify_environments(&[name], migrations, timeout(target).max(Duration::from_secs(10)))
        .await?;
    let mut all_ok = true;
    for result in &results {
        all_ok &= result.ok;
        match &result.error {
            None => println!("verified: every migration applied with its checksum, every verify section holds"),
            Some(error) => eprintln!("error: {error}"),
        }
    }
    Ok(if all_ok { EXIT_SUCCESS } else { EXIT_FAILURE })
}

async fn validate(client: &Client, target: &Target) -> Result<i32, Error> {
    let migrations = load_migrations(target)?;
    println!(
        "{} migration file(s) in {} parse",
        migrations.len(),
        target.dir.migrations_dir.display()
    );
    let has_database = target.environment.is_some() || target.db_url.is_some();
    if !has_database {
        println!("no database given: checksums not compared (pass --db-url/--ns/--db or --config/--env)");
        return Ok(EXIT_SUCCESS);
    }
    let connection = resolve_connection(client, target).await?;
    let applied = read_history(client, target, &connection).await?;
    let plan = migration::plan(&migrations, &applied);
    if plan.drift.is_empty() {
        println!("checksums of {} applied migration(s) match", applied.len());
        Ok(EXIT_SUCCESS)
    } else {
        println!("{}", render::migration_table(&plan.drift));
        eprintln!("error: drift: {}", migration::plan::describe_drift(&plan.drift));
        Ok(EXIT_FAILURE)
    }
}
