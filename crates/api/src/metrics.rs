use std::fmt::Write;

use edgesort_daemon::{EstopState, LineState, Status};

/// The status in Prometheus' text exposition format (version 0.0.4).
///
/// Written here rather than through a metrics library: every value already
/// lives in [`Status`], taken under one lock, so a registry would only
/// mirror it.
pub fn prometheus_text(status: &Status) -> String {
    let mut text = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(text, "# HELP edgesort_{name} {help}");
        let _ = writeln!(text, "# TYPE edgesort_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(text, "edgesort_{name}{labels} {value}");
        }
    };
    let one = |value: f64| vec![(String::new(), value)];
    let labelled = |label: &str, pairs: Vec<(String, f64)>| -> Vec<(String, f64)> {
        pairs
            .into_iter()
            .map(|(key, value)| (format!("{{{label}=\"{}\"}}", escape(&key)), value))
            .collect()
    };

    metric(
        "up",
        "gauge",
        "1 when the line is running and healthy.",
        &one(f64::from(u8::from(status.healthy))),
    );
    let states = [
        LineState::Starting,
        LineState::Running,
        LineState::Degraded,
        LineState::Finished,
        LineState::Stopped,
    ];
    metric(
        "line_state",
        "gauge",
        "1 for the line's current state.",
        &labelled(
            "state",
            states
                .iter()
                .map(|state| {
                    let name = serde_json::to_value(state)
                        .ok()
                        .and_then(|value| value.as_str().map(str::to_string))
                        .unwrap_or_default();
                    (name, f64::from(u8::from(*state == status.state)))
                })
                .collect(),
        ),
    );
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &one(status.uptime_s),
    );
    let engine = &status.engine;
    let engine_labels = [
        ("backend", Some(engine.backend.as_str())),
        ("precision", Some(engine.precision.as_str())),
        ("engine_key", engine.engine_key.as_deref()),
        ("gpu", engine.gpu.as_deref()),
        ("fallback_check", engine.fallback_check.as_deref()),
    ]
    .iter()
    .map(|(label, value)| format!("{label}=\"{}\"", escape(value.unwrap_or(""))))
    .collect::<Vec<_>>()
    .join(",");
    metric(
        "engine_info",
        "gauge",
        "The detector in service: its backend, precision, TensorRT engine key and GPU, and the check that sent the line to the CPU.",
        &[(format!("{{{engine_labels}}}"), 1.0)],
    );
    metric(
        "frames_captured_total",
        "counter",
        "Frames from the camera.",
        &one(status.frames.captured as f64),
    );
    metric(
        "frames_processed_total",
        "counter",
        "Frames through the whole line.",
        &one(status.frames.processed as f64),
    );
    metric(
        "frames_dropped_total",
        "counter",
        "Frames lost, by cause.",
        &labelled(
            "cause",
            vec![
                ("pipeline".into(), status.drops.pipeline as f64),
                ("corrupt".into(), status.drops.corrupt as f64),
                ("driver".into(), status.drops.driver as f64),
            ],
        ),
    );
    metric(
        "camera_fps",
        "gauge",
        "Frames per second from the camera.",
        &one(status.fps.camera),
    );
    metric(
        "processed_fps",
        "gauge",
        "Frames per second through the detector.",
        &one(status.fps.processed),
    );
    metric(
        "parts_total",
        "counter",
        "Parts decided.",
        &one(status.counts.parts as f64),
    );
    metric(
        "parts_by_class_total",
        "counter",
        "Parts decided, by voted class.",
        &labelled(
            "class",
            status
                .counts
                .per_class
                .iter()
                .map(|(k, v)| (k.clone(), *v as f64))
                .collect(),
        ),
    );
    metric(
        "ejections_by_lane_total",
        "counter",
        "Pulses fired, by lane.",
        &labelled(
            "lane",
            status
                .counts
                .per_lane
                .iter()
                .map(|(k, v)| (k.clone(), *v as f64))
                .collect(),
        ),
    );
    metric(
        "pulses_not_fired_total",
        "counter",
        "Pulses not fired, by reason.",
        &labelled(
            "reason",
            status
                .counts
                .not_fired
                .iter()
                .map(|(k, v)| (k.clone(), *v as f64))
                .collect(),
        ),
    );
    let mut latency = Vec::new();
    for (stage, percentiles) in &status.latency_ms {
        for (quantile, value) in [
            ("0.5", percentiles.p50),
            ("0.99", percentiles.p99),
            ("1", percentiles.max),
        ] {
            latency.push((
                format!("{{stage=\"{}\",quantile=\"{quantile}\"}}", escape(stage)),
                value / 1e3,
            ));
        }
    }
    metric(
        "stage_latency_seconds",
        "gauge",
        "Per-stage time per frame over the recent frames.",
        &latency,
    );
    metric(
        "stage_restarts_total",
        "counter",
        "Restarts of each supervised stage.",
        &labelled(
            "stage",
            status
                .stages
                .iter()
                .map(|s| (s.name.clone(), s.restarts as f64))
                .collect(),
        ),
    );
    metric(
        "stage_up",
        "gauge",
        "1 while a stage runs (or has ended with its input).",
        &labelled(
            "stage",
            status
                .stages
                .iter()
                .map(|s| (s.name.clone(), f64::from(u8::from(s.state != "down"))))
                .collect(),
        ),
    );
    metric(
        "output_high",
        "gauge",
        "1 while an ejector output is driven high.",
        &labelled(
            "lane",
            status
                .gpio
                .outputs
                .iter()
                .map(|o| (o.lane.clone(), f64::from(u8::from(o.high))))
                .collect(),
        ),
    );
    metric(
        "output_activations_total",
        "counter",
        "Times an ejector output was driven from low to high (merged pulses count once).",
        &labelled(
            "lane",
            status
                .gpio
                .outputs
                .iter()
                .map(|o| (o.lane.clone(), o.activations as f64))
                .collect(),
        ),
    );
    let estop = &status.gpio.estop;
    metric(
        "estop_active",
        "gauge",
        "1 while the e-stop latch holds the outputs low (pressed, or released and awaiting reset).",
        &one(f64::from(u8::from(estop.state != EstopState::Clear))),
    );
    metric(
        "estop_state",
        "gauge",
        "1 for the e-stop latch's current state: clear, pressed or released_awaiting_reset.",
        &labelled(
            "state",
            [
                EstopState::Clear,
                EstopState::Pressed,
                EstopState::ReleasedAwaitingReset,
            ]
            .iter()
            .map(|state| {
                (
                    state.as_str().to_string(),
                    f64::from(u8::from(*state == estop.state)),
                )
            })
            .collect(),
        ),
    );
    metric(
        "estop_trips_total",
        "counter",
        "E-stop presses and input read errors since the daemon started.",
        &one(estop.trips as f64),
    );
    metric(
        "belt_speed_mm_per_second",
        "gauge",
        "Belt speed: the encoder's measurement, or the configured speed without one.",
        &one(status.belt.speed_mm_s),
    );
    metric(
        "encoder_edges_total",
        "counter",
        "Belt encoder edges since the daemon started.",
        &one(status.belt.encoder_edges as f64),
    );
    metric(
        "alarms",
        "gauge",
        "Active alarms, by kind.",
        &labelled(
            "kind",
            status
                .alarms
                .iter()
                .map(|a| (a.kind.clone(), 1.0))
                .collect(),
        ),
    );
    metric(
        "store_bytes",
        "gauge",
        "Event database size with its WAL.",
        &one(status.store.size_bytes as f64),
    );
    metric(
        "disk_free_bytes",
        "gauge",
        "Free space on the event database's disk.",
        &one(status.store.disk_free_bytes as f64),
    );
    text
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
