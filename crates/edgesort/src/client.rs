//! The technician's commands that talk to a running `edgesortd` through
//! its local API: `status`, `events`, `config` and `estop`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use edgesort_tls::Fingerprint;
use edgesort_types::config::Config;
use serde_json::Value;

use crate::BUNDLED_CONFIG;

/// How long a call to the daemon may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the daemon is, how to prove who we are, and how to know it is
/// the daemon.
#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// The configuration the daemon runs with: its `api.bind`,
    /// `api.token_file` and `[api.tls]` say where to call, with which
    /// token, and over what.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// The daemon's address instead, e.g. `https://10.0.0.7:8080`.
    #[arg(long)]
    pub url: Option<String>,
    /// The API token instead of the token file (also `EDGESORT_TOKEN`).
    #[arg(long, env = "EDGESORT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The SHA-256 fingerprint of the daemon's certificate, as the daemon
    /// logs it at start and its status page shows it (also
    /// `EDGESORT_FINGERPRINT`). Needed over https unless the certificate
    /// file the configuration names can be read here.
    #[arg(long, env = "EDGESORT_FINGERPRINT")]
    pub fingerprint: Option<Fingerprint>,
}

/// A connection to the daemon's API.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Client {
    pub fn new(args: &ApiArgs) -> Result<Client> {
        let config = Config::load(&args.config)
            .with_context(|| format!("loading {}", args.config.display()))?;
        let base = match &args.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let mut bind = config.api.bind;
                if bind.ip().is_unspecified() {
                    bind.set_ip([127, 0, 0, 1].into());
                }
                let scheme = if config.api.tls.enabled {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{bind}")
            }
        };
        let token = match &args.token {
            Some(token) => token.clone(),
            None => std::fs::read_to_string(&config.api.token_file)
                .with_context(|| {
                    format!(
                        "reading the API token from {} (api.token_file); pass --token or set EDGESORT_TOKEN",
                        config.api.token_file.display()
                    )
                })?
                .trim()
                .to_string(),
        };
        let settings = ureq::Agent::config_builder()
            .timeout_global(Some(CALL_TIMEOUT))
            .http_status_as_error(false)
            .build();
        if !base.starts_with("https://") {
            return Ok(Client {
                agent: settings.into(),
                base,
                token,
            });
        }
        let pin = match args.fingerprint {
            Some(pin) => pin,
            None => {
                // On the box the certificate is there to pin; nowhere is
                // any certificate taken on trust.
                let cert = config.api.tls.certificate(&config.engine.data_dir);
                Fingerprint::of_pem_file(cert.cert()).with_context(|| {
                    format!(
                        "{base} speaks HTTPS and no certificate is pinned: pass --fingerprint (or \
                         set EDGESORT_FINGERPRINT) with the SHA-256 fingerprint that the daemon logs \
                         at start and its status page shows, since the certificate file cannot be \
                         read here"
                    )
                })?
            }
        };
        Ok(Client {
            agent: edgesort_tls::pinned_agent(settings, pin),
            base,
            token,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path`; the body as text.
    pub fn get_text(&self, path: &str) -> Result<(String, Option<String>)> {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("calling edgesortd at {}", self.base))?;
        let pending = response
            .headers()
            .get("x-edgesort-pending-restart")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let code = response.status();
        let body = response.body_mut().read_to_string()?;
        check(code.as_u16(), &body)?;
        Ok((body, pending))
    }

    pub fn get_json(&self, path: &str) -> Result<Value> {
        let (body, _) = self.get_text(path)?;
        serde_json::from_str(&body).context("the daemon's answer is not JSON")
    }

    /// PUTs `body` to `path`; the answer as JSON.
    pub fn put(&self, path: &str, body: &str) -> Result<Value> {
        let response = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send(body);
        self.answer(response)
    }

    /// POSTs an empty body to `path`; the answer as JSON.
    pub fn post(&self, path: &str) -> Result<Value> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_empty();
        self.answer(response)
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut response =
            response.with_context(|| format!("calling edgesortd at {}", self.base))?;
        let code = response.status();
        let body = response.body_mut().read_to_string()?;
        check(code.as_u16(), &body)?;
        serde_json::from_str(&body).context("the daemon's answer is not JSON")
    }
}

/// Turns an error answer into an error with the daemon's own message.
fn check(code: u16, body: &str) -> Result<()> {
    if (200..300).contains(&code) {
        return Ok(());
    }
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| value["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    match code {
        401 => bail!("the daemon refused the API token (401): {message}"),
        _ => bail!("the daemon answered {code}: {message}"),
    }
}

#[derive(clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Events after this id.
    #[arg(long, default_value_t = 0)]
    pub since: i64,
    /// Events per call.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Keep following new events, as `tail -f` does.
    #[arg(long)]
    pub tail: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn run_events_command(args: EventsArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let mut since = args.since;
    loop {
        let page = client.get_json(&format!("/events?since={since}&limit={}", args.limit))?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            if args.json {
                println!("{event}");
            } else {
                println!(
                    "#{:<7} part {:<6} {:<8} {:>5.2}  -> {:<12} {}",
                    event["id"],
                    event["part_id"],
                    event["class"].as_str().unwrap_or("?"),
                    event["confidence"].as_f64().unwrap_or(0.0),
                    event["lane"].as_str().unwrap_or("?"),
                    event["fire_outcome"].as_str().unwrap_or("-"),
                );
            }
        }
        since = page["next"].as_i64().unwrap_or(since);
        if !args.tail {
            return Ok(());
        }
        if events.len() < args.limit {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[derive(clap::Subcommand)]
pub enum EstopCommand {
    /// Re-arm the ejectors after an e-stop: refused while it is pressed or
    /// until it has been released for its debounce time. Audited. Run it on
    /// the box: the daemon refuses resets from other machines unless its
    /// configuration allows them (gpio.estop.remote_reset).
    Reset {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Where the e-stop latch stands.
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run_estop_command(command: EstopCommand) -> Result<()> {
    match command {
        EstopCommand::Reset { api } => {
            let answer = Client::new(&api)?.post("/estop/reset")?;
            match answer["result"].as_str() {
                Some("rearmed") => println!("e-stop reset: the ejectors are armed again"),
                Some("was_clear") => println!("the e-stop was not latched: nothing to reset"),
                _ => println!("{answer}"),
            }
        }
        EstopCommand::Status { api } => {
            let status = Client::new(&api)?.get_json("/status")?;
            let estop = &status["gpio"]["estop"];
            println!(
                "e-stop: {} (wired: {}, input fault: {}, trips: {})",
                estop["state"].as_str().unwrap_or("unknown"),
                estop["wired"],
                estop["input_fault"],
                estop["trips"]
            );
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration file the daemon runs from.
    Get {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change one key (`edgesort config set rules.confidence_floor 0.6`) or
    /// send a whole file (`--file new.toml`). The daemon validates, saves,
    /// audits and applies it live where safe, and says which.
    Set {
        #[command(flatten)]
        api: ApiArgs,
        /// A whole configuration file to send.
        #[arg(long, conflicts_with_all = ["key", "value"])]
        file: Option<PathBuf>,
        /// Dotted key, e.g. `rules.confidence_floor`.
        #[arg(required_unless_present = "file")]
        key: Option<String>,
        /// New value in TOML syntax: `0.6`, `true`, `"bolts"`.
        #[arg(required_unless_present = "file")]
        value: Option<String>,
    },
}

pub fn run_config_command(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Get { api } => {
            let client = Client::new(&api)?;
            let (text, pending) = client.get_text("/config")?;
            print!("{text}");
            if let Some(pending) = pending.filter(|pending| !pending.is_empty()) {
                eprintln!("saved but waiting for a restart: {pending}");
            }
            Ok(())
        }
        ConfigCommand::Set {
            api,
            file,
            key,
            value,
        } => {
            let client = Client::new(&api)?;
            let text = match (file, key, value) {
                (Some(file), _, _) => std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
                (None, Some(key), Some(value)) => {
                    let (current, _) = client.get_text("/config")?;
                    set_key(&current, &key, &value)?
                }
                _ => bail!("give a key and a value, or --file"),
            };
            let applied = client.put("/config", &text)?;
            let list = |field: &str| {
                applied[field]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|item| item.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .filter(|joined| !joined.is_empty())
                    .unwrap_or_else(|| "-".into())
            };
            println!("applied now:        {}", list("live"));
            println!("applied on restart: {}", list("on_restart"));
            Ok(())
        }
    }
}

/// `text` with the dotted `key` set to the TOML `value`, comments kept.
fn set_key(text: &str, key: &str, value: &str) -> Result<String> {
    let mut document: toml_edit::DocumentMut =
        text.parse().context("the daemon's configuration")?;
    let value: toml_edit::Value = value.parse().with_context(|| {
        format!("{value:?} is not a TOML value (strings need quotes: '\"bolts\"')")
    })?;
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        bail!("empty key");
    };
    let mut table = document.as_table_mut() as &mut dyn toml_edit::TableLike;
    for part in parts {
        table = table
            .get_mut(part)
            .and_then(|item| item.as_table_like_mut())
            .with_context(|| format!("{key}: the configuration has no section {part:?}"))?;
    }
    match table.get_mut(last) {
        Some(item) => {
            let decor = item.as_value().map(|old| old.decor().clone());
            *item = toml_edit::Item::Value(value);
            if let (Some(decor), Some(new)) = (decor, item.as_value_mut()) {
                *new.decor_mut() = decor;
            }
        }
        None => {
            table.insert(last, toml_edit::Item::Value(value));
        }
    }
    Ok(document.to_string())
}

/// The line's status from the daemon, for `edgesort status`.
pub fn print_line_status(api: &ApiArgs, json: bool) -> Result<()> {
    let client = Client::new(api)?;
    let status = client.get_json("/status")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!(
        "line:     {} ({})",
        status["state"].as_str().unwrap_or("?"),
        client.base()
    );
    match status["api"]["certificate_sha256"].as_str() {
        Some(served) => println!("api:      https, certificate SHA-256 {served}"),
        None => println!("api:      plain HTTP (loopback only)"),
    }
    println!(
        "frames:   {} captured, {} processed ({:.1} fps camera, {:.1} fps processed)",
        status["frames"]["captured"],
        status["frames"]["processed"],
        status["fps"]["camera"].as_f64().unwrap_or(0.0),
        status["fps"]["processed"].as_f64().unwrap_or(0.0)
    );
    println!(
        "dropped:  {} pipeline, {} corrupt, {} driver",
        status["drops"]["pipeline"], status["drops"]["corrupt"], status["drops"]["driver"]
    );
    println!(
        "parts:    {} decided, {} ejected",
        status["counts"]["parts"], status["counts"]["ejections"]
    );
    for (class, count) in status["counts"]["per_class"]
        .as_object()
        .into_iter()
        .flatten()
    {
        println!("  {class:<10} {count}");
    }
    if let Some(latency) = status["latency_ms"].as_object() {
        for (stage, values) in latency {
            println!(
                "latency:  {stage:<13} p50 {:>7.2} ms  p99 {:>7.2} ms",
                values["p50"].as_f64().unwrap_or(0.0),
                values["p99"].as_f64().unwrap_or(0.0)
            );
        }
    }
    println!(
        "camera:   {} ({})",
        status["camera"]["state"].as_str().unwrap_or("?"),
        status["camera"]["source"].as_str().unwrap_or("?")
    );
    println!(
        "engine:   {}",
        status["engine"]["backend"].as_str().unwrap_or("?")
    );
    println!(
        "e-stop:   {}",
        status["gpio"]["estop"]["state"].as_str().unwrap_or("?")
    );
    println!(
        "belt:     {:.0} mm/s{}",
        status["belt"]["speed_mm_s"].as_f64().unwrap_or(0.0),
        if status["belt"]["encoder"] == true {
            " (encoder)"
        } else {
            ""
        }
    );
    for alarm in status["alarms"].as_array().into_iter().flatten() {
        println!("ALARM:    {}", alarm["message"].as_str().unwrap_or("?"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_key_changes_one_value_and_keeps_the_comments() {
        let text = "# the rules\n[rules]\n# floor\nconfidence_floor = 0.5 # trusted\ndefault_lane = \"recirculate\"\n";
        let changed = set_key(text, "rules.confidence_floor", "0.6").unwrap();
        assert_eq!(
            changed,
            "# the rules\n[rules]\n# floor\nconfidence_floor = 0.6 # trusted\ndefault_lane = \"recirculate\"\n"
        );
        let error = set_key(text, "nosuch.key", "1").unwrap_err().to_string();
        assert!(error.contains("no section \"nosuch\""), "{error}");
        let error = set_key(text, "rules.default_lane", "bolts")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a TOML value"), "{error}");
    }
}
