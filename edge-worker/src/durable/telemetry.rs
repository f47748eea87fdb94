//! `Telemetry` Durable Object (one per environment): receives the worker's events, keeps the
//! rolling windows behind the alert rules and the alert book (deduplication, "resolved"), keeps
//! call outcomes for the admin statistics, and batches everything out by alarm: metrics and logs
//! to Datadog, alerts to Slack. An unreachable sink keeps its batch (bounded) for the next alarm;
//! nothing here is ever on a call's path.
//!
//! - `POST /record {events: [Stamped]}` → 200 `{recorded, notifications}`
//! - `GET /stats` → `shared::telemetry::call_stats` over the last 35 days
//! - `GET /alerts` → the alerts firing now

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::call_state::CallStatus;
use shared::telemetry::{
    call_stats, conditions, datadog_distributions, datadog_logs, datadog_series, AlertBook, Event,
    Notification, OutcomeRecord, Stamped, Windows,
};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use crate::config::Config;
use crate::telemetry::post_json;

const TABLES: [&str; 4] = [
    "telemetry_pending",
    "telemetry_slack",
    "telemetry_outcomes",
    "telemetry_state",
];
const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS telemetry_pending (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS telemetry_slack (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS telemetry_outcomes (
        at_unix INTEGER NOT NULL, status TEXT NOT NULL, duration INTEGER NOT NULL, pool_number TEXT)",
    "CREATE TABLE IF NOT EXISTS telemetry_state (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
];

/// Milliseconds between an event and the batch that carries it out.
const FLUSH_DELAY_MS: i64 = 2_000;
/// Events kept for Datadog while it is unreachable (the oldest go first).
const MAX_PENDING_EVENTS: i64 = 5_000;
/// Alerts kept for Slack while it is unreachable.
const MAX_PENDING_ALERTS: i64 = 100;
/// Events per Datadog request.
const BATCH: i64 = 500;
/// How long outcomes are kept for the statistics.
const STATS_DAYS: i64 = 35;
const SERVICE: &str = "clinician-calls";
/// `telemetry_state` row: the last queued event each Datadog intake has taken.
const DATADOG_SENT: &str = "datadog_sent";

/// One of Datadog's intakes.
#[derive(Debug, Clone, Copy)]
enum Intake {
    Series,
    Logs,
    Distributions,
}

impl Intake {
    fn name(self) -> &'static str {
        match self {
            Self::Series => "series",
            Self::Logs => "logs",
            Self::Distributions => "distributions",
        }
    }
}

/// The id of the last queued event each intake has taken (0: none yet).
#[derive(Debug, Default, Serialize, Deserialize)]
struct DatadogSent {
    series: i64,
    logs: i64,
    distributions: i64,
}

impl DatadogSent {
    fn through(&self, intake: Intake) -> i64 {
        match intake {
            Intake::Series => self.series,
            Intake::Logs => self.logs,
            Intake::Distributions => self.distributions,
        }
    }

    fn set(&mut self, intake: Intake, id: i64) {
        match intake {
            Intake::Series => self.series = id,
            Intake::Logs => self.logs = id,
            Intake::Distributions => self.distributions = id,
        }
    }

    /// The last event every intake has taken.
    fn everywhere(&self) -> i64 {
        self.series.min(self.logs).min(self.distributions)
    }
}

#[derive(Deserialize)]
struct RecordBody {
    events: Vec<Stamped>,
}

#[derive(Deserialize)]
struct Row {
    id: i64,
    body: String,
}

#[derive(Deserialize)]
struct StateRow {
    body: String,
}

#[derive(Deserialize)]
struct OutcomeRow {
    at_unix: i64,
    status: String,
    duration: i64,
    pool_number: Option<String>,
}

#[durable_object]
pub struct Telemetry {
    state: State,
    env: Env,
    schema: Result<()>,
}

impl Telemetry {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn load<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> Result<T> {
        let rows: Vec<StateRow> = self
            .sql()
            .exec(
                "SELECT body FROM telemetry_state WHERE name = ?",
                vec![name.into()],
            )?
            .to_array()?;
        Ok(rows
            .first()
            .and_then(|row| serde_json::from_str(&row.body).ok())
            .unwrap_or_default())
    }

    fn save(&self, name: &str, value: &impl serde::Serialize) -> Result<()> {
        let body =
            serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql().exec(
            "INSERT INTO telemetry_state (name, body) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET body = excluded.body",
            vec![name.into(), body.into()],
        )?;
        Ok(())
    }

    /// Re-evaluates the rules at `now_ms`; queues (or logs) what changed.
    fn evaluate(
        &self,
        config: &Config,
        windows: &mut Windows,
        now_ms: u64,
    ) -> Result<Vec<Notification>> {
        let rules = config.alert_rules();
        windows.prune(now_ms, rules.window_ms);
        let mut book: AlertBook = self.load("alerts")?;
        let notifications = book.step(&conditions(windows, &rules, now_ms), &rules, now_ms);
        self.save("alerts", &book)?;
        self.save("windows", windows)?;
        let environment = environment_name(config);
        for notification in &notifications {
            let (state, key) = match notification {
                Notification::Firing { key, .. } => ("firing", key),
                Notification::StillFiring { key, .. } => ("still-firing", key),
                Notification::Resolved { key, .. } => ("resolved", key),
            };
            crate::log::event("alert", &[("state", state), ("rule", key)]);
            if config.slack_webhook_url().is_some() {
                self.sql().exec(
                    "INSERT INTO telemetry_slack (body) VALUES (?)",
                    vec![notification.slack_body(&environment).to_string().into()],
                )?;
            }
        }
        self.sql().exec(
            "DELETE FROM telemetry_slack WHERE id NOT IN (SELECT id FROM telemetry_slack ORDER BY id DESC LIMIT ?)",
            vec![MAX_PENDING_ALERTS.into()],
        )?;
        Ok(notifications)
    }

    fn record(&self, events: Vec<Stamped>, now_ms: i64) -> Result<Response> {
        let config = Config::from_env(&self.env);
        let mut windows: Windows = self.load("windows")?;
        let to_datadog = config.datadog().is_some();
        for stamped in &events {
            windows.record(stamped);
            if let Event::CallOutcome {
                status,
                duration_seconds,
                pool_number,
                ..
            } = &stamped.event
            {
                self.sql().exec(
                    "INSERT INTO telemetry_outcomes (at_unix, status, duration, pool_number) VALUES (?, ?, ?, ?)",
                    vec![
                        i64::try_from(stamped.at_ms / 1_000).unwrap_or(0).into(),
                        status.as_str().into(),
                        i64::from(*duration_seconds).into(),
                        pool_number.clone().into(),
                    ],
                )?;
            }
            if to_datadog {
                let body = serde_json::to_string(stamped)
                    .map_err(|e| worker::Error::RustError(e.to_string()))?;
                self.sql().exec(
                    "INSERT INTO telemetry_pending (body) VALUES (?)",
                    vec![body.into()],
                )?;
            }
        }
        self.sql().exec(
            "DELETE FROM telemetry_pending WHERE id NOT IN (SELECT id FROM telemetry_pending ORDER BY id DESC LIMIT ?)",
            vec![MAX_PENDING_EVENTS.into()],
        )?;
        let notifications =
            self.evaluate(&config, &mut windows, u64::try_from(now_ms).unwrap_or(0))?;
        Response::from_json(&json!({"recorded": events.len(), "notifications": notifications}))
    }

    fn stats(&self, now_ms: i64) -> Result<Response> {
        let since = now_ms / 1_000 - STATS_DAYS * 86_400;
        self.sql().exec(
            "DELETE FROM telemetry_outcomes WHERE at_unix < ?",
            vec![since.into()],
        )?;
        let rows: Vec<OutcomeRow> = self
            .sql()
            .exec(
                "SELECT at_unix, status, duration, pool_number FROM telemetry_outcomes ORDER BY at_unix",
                None,
            )?
            .to_array()?;
        let records: Vec<OutcomeRecord> = rows
            .into_iter()
            .filter_map(|row| {
                Some(OutcomeRecord {
                    at_unix: row.at_unix,
                    status: CallStatus::parse(&row.status).ok()?,
                    duration_seconds: u32::try_from(row.duration).unwrap_or(0),
                    pool_number: row.pool_number,
                })
            })
            .collect();
        Response::from_json(&call_stats(&records))
    }

    /// Sends one batch to Datadog's three intakes (series, logs, distributions). Each intake
    /// remembers the last event it took (`datadog_sent`), so that one refusing a batch is sent
    /// it again alone: the others, which add up what they receive (logs, distributions), never
    /// get an event twice. An event leaves the queue once every intake has it.
    async fn flush_datadog(&self, config: &Config) -> Result<()> {
        let Some((site, key)) = config.datadog() else {
            self.sql().exec("DELETE FROM telemetry_pending", None)?;
            self.save(DATADOG_SENT, &DatadogSent::default())?;
            return Ok(());
        };
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT id, body FROM telemetry_pending ORDER BY id LIMIT ?",
                vec![BATCH.into()],
            )?
            .to_array()?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(());
        };
        let mut sent: DatadogSent = self.load(DATADOG_SENT)?;
        let environment = environment_name(config);
        let headers = [("DD-API-KEY", key)];
        let unsent = |through: i64| -> Vec<Stamped> {
            rows.iter()
                .filter(|row| row.id > through)
                .filter_map(|row| serde_json::from_str(&row.body).ok())
                .collect()
        };
        let mut failed: Vec<&str> = Vec::new();
        for intake in [Intake::Series, Intake::Logs, Intake::Distributions] {
            let through = sent.through(intake);
            if through >= last {
                continue;
            }
            let events = unsent(through);
            let (url, body) = match intake {
                Intake::Series => (
                    site.series_url(),
                    Some(datadog_series(&events, &environment)),
                ),
                Intake::Logs => (
                    site.logs_url(),
                    Some(datadog_logs(&events, &environment, SERVICE)),
                ),
                Intake::Distributions => (
                    site.distribution_url(),
                    datadog_distributions(&events, &environment),
                ),
            };
            let taken = match body {
                Some(body) => post_json(&url, &headers, &body).await,
                None => true,
            };
            if taken {
                sent.set(intake, last);
            } else {
                failed.push(intake.name());
            }
        }
        self.save(DATADOG_SENT, &sent)?;
        self.sql().exec(
            "DELETE FROM telemetry_pending WHERE id <= ?",
            vec![sent.everywhere().into()],
        )?;
        if !failed.is_empty() {
            crate::log::event("datadog_unreachable", &[("intakes", &failed.join(","))]);
        }
        Ok(())
    }

    async fn flush_slack(&self, config: &Config) -> Result<()> {
        let Some(url) = config.slack_webhook_url() else {
            self.sql().exec("DELETE FROM telemetry_slack", None)?;
            return Ok(());
        };
        let rows: Vec<Row> = self
            .sql()
            .exec("SELECT id, body FROM telemetry_slack ORDER BY id", None)?
            .to_array()?;
        for row in rows {
            let body: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
            if post_json(url, &[], &body).await {
                self.sql().exec(
                    "DELETE FROM telemetry_slack WHERE id = ?",
                    vec![row.id.into()],
                )?;
            } else {
                crate::log::event("slack_unreachable", &[]);
                break;
            }
        }
        Ok(())
    }

    fn pending(&self) -> Result<i64> {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let rows: Vec<Count> = self
            .sql()
            .exec(
                "SELECT (SELECT COUNT(*) FROM telemetry_pending) + (SELECT COUNT(*) FROM telemetry_slack) AS n",
                None,
            )?
            .to_array()?;
        Ok(rows.first().map_or(0, |r| r.n))
    }

    /// Next alarm: soon when something waits to go out, periodically while an alert fires (so it
    /// can resolve when its window empties), otherwise none.
    async fn schedule(&self, config: &Config, just_recorded: bool) -> Result<()> {
        let storage = self.state.storage();
        let book: AlertBook = self.load("alerts")?;
        let windows: Windows = self.load("windows")?;
        let rules = config.alert_rules();
        let recheck_ms = i64::try_from(rules.window_ms / 4)
            .unwrap_or(30_000)
            .clamp(1_000, 30_000);
        let waiting = self.pending()? > 0;
        let delay = if just_recorded && waiting {
            Some(FLUSH_DELAY_MS)
        } else if waiting {
            Some(recheck_ms.max(FLUSH_DELAY_MS))
        } else if !book.active.is_empty() || !windows.outcomes.is_empty() {
            Some(recheck_ms)
        } else {
            None
        };
        if let Some(delay) = delay {
            let existing = storage.get_alarm().await?;
            let due = super::now_ms() + delay;
            if existing.is_none_or(|at| at > due) {
                storage.set_alarm(delay).await?;
            }
        }
        Ok(())
    }
}

fn environment_name(config: &Config) -> String {
    match &config.environment {
        crate::config::Setting::Present(environment) => format!("{environment:?}").to_lowercase(),
        _ => "unknown".to_owned(),
    }
}

impl DurableObject for Telemetry {
    fn new(state: State, env: Env) -> Self {
        let schema = super::create_schema(&state, &SCHEMA);
        Self { state, env, schema }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Err(error) = &self.schema {
            return Response::error(format!("schema: {error}"), 500);
        }
        let now_ms = super::now_ms();
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/record") => match req.json::<RecordBody>().await {
                Ok(body) => {
                    let response = self.record(body.events, now_ms)?;
                    self.schedule(&Config::from_env(&self.env), true).await?;
                    Ok(response)
                }
                Err(_) => Response::error("expected {\"events\": [...]}", 400),
            },
            (Method::Get, "/stats") => self.stats(now_ms),
            (Method::Get, "/alerts") => {
                let book: AlertBook = self.load("alerts")?;
                Response::from_json(&json!({"active": book.active}))
            }
            _ => super::answer_status(&self.state, "Telemetry", &TABLES, &req).await,
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let config = Config::from_env(&self.env);
        let mut windows: Windows = self.load("windows")?;
        self.evaluate(
            &config,
            &mut windows,
            u64::try_from(super::now_ms()).unwrap_or(0),
        )?;
        self.flush_datadog(&config).await?;
        self.flush_slack(&config).await?;
        self.schedule(&config, false).await?;
        Response::ok("telemetry flushed")
    }
}
