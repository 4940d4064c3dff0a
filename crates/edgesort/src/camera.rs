//! `edgesort camera`: the V4L2 cameras the box sees, one frame saved for
//! focusing and positioning, and a timed stream that reports what the camera
//! really delivers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgesort_capture::negotiate::RateOffer;
use edgesort_capture::{
    CameraError, CameraSettings, CaptureFormat, LiveCamera, LiveOptions, OpenReport, V4l2Camera,
    decode_jpeg_rgb, describe_camera, fourcc_text, live_settings, raw_to_rgb, video_nodes,
};
use edgesort_types::config::Config;
use edgesort_types::{FrameLayout, write_atomically};

use crate::BUNDLED_CONFIG;

#[derive(clap::Subcommand)]
pub enum CameraCommand {
    /// Every V4L2 device with its formats, sizes, frame rates and controls.
    List {
        /// Only this device.
        #[arg(long)]
        device: Option<PathBuf>,
    },
    /// Save one frame as JPEG, in the configured mode and controls.
    Snap(SnapArgs),
    /// Stream for a while and report the frame rate, drops and reconnects.
    Stream(StreamArgs),
}

#[derive(clap::Args)]
pub struct CameraArgs {
    /// Configuration whose `[camera]` gives the mode and controls.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// The device, instead of the configuration's `camera.device`.
    #[arg(long)]
    pub device: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SnapArgs {
    #[command(flatten)]
    pub camera: CameraArgs,
    /// Where to write the JPEG.
    #[arg(long)]
    pub out: PathBuf,
    /// Frames to let pass first, while the sensor settles.
    #[arg(long, default_value_t = 5)]
    pub skip: u32,
}

#[derive(clap::Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub camera: CameraArgs,
    /// How long to stream.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

pub fn run_camera_command(command: CameraCommand) -> Result<()> {
    match command {
        CameraCommand::List { device } => list(device),
        CameraCommand::Snap(args) => snap(&args),
        CameraCommand::Stream(args) => stream(&args),
    }
}

fn settings(args: &CameraArgs) -> Result<(CameraSettings, LiveOptions)> {
    let config =
        Config::load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    let camera = config.camera;
    let Some(device) = args.device.clone().or(camera.device.clone()) else {
        bail!(
            "{} names no camera device; pass --device /dev/videoN (`edgesort camera list` shows them)",
            args.config.display()
        );
    };
    Ok(live_settings(&camera, device))
}

fn print_report(device: &Path, report: &OpenReport) {
    let mode = report.mode;
    let fps = mode
        .fps
        .map_or_else(|| "unknown rate".to_string(), |fps| format!("{fps:.2} fps"));
    println!(
        "{}: {} ({}), {} {}x{} at {fps}",
        device.display(),
        report.card,
        report.driver,
        mode.format,
        mode.width,
        mode.height
    );
    for deviation in &report.deviations {
        println!("  camera differs from the config: {deviation}");
    }
    for note in &report.control_notes {
        println!("  control not applied as configured: {note}");
    }
}

fn list(device: Option<PathBuf>) -> Result<()> {
    let scanned = device.is_none();
    let nodes = match device {
        Some(device) => vec![device],
        None => video_nodes(),
    };
    if nodes.is_empty() {
        println!("no V4L2 devices (/dev/video*) found");
    }
    for node in nodes {
        match describe_camera(&node) {
            Ok(description) => {
                println!(
                    "{}: {} (driver {}, bus {})",
                    node.display(),
                    description.card,
                    description.driver,
                    description.bus
                );
                for format in &description.formats {
                    let readable = CaptureFormat::from_fourcc(format.offer.fourcc).is_some();
                    println!(
                        "  {} ({}){}",
                        fourcc_text(format.offer.fourcc),
                        format.offer.description,
                        if readable {
                            ""
                        } else {
                            ": edgesort cannot read it"
                        }
                    );
                    for size in &format.sizes {
                        println!("    {}: {}", size.size, rates_text(&size.rates));
                    }
                }
                println!("  controls:");
                for control in &description.controls {
                    println!(
                        "    {:#010x} {}: {}..={} step {}, default {}{}",
                        control.id,
                        control.name,
                        control.minimum,
                        control.maximum,
                        control.step,
                        control.default,
                        if control.writable { "" } else { " (read-only)" }
                    );
                }
            }
            // A UVC camera also has a metadata node; say so and go on.
            Err(error @ CameraError::NotCapture { .. }) => println!("{error}"),
            // One unreadable node found by scanning must not hide the others.
            Err(error) if scanned => println!("{}: {error}", node.display()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn rates_text(rates: &[RateOffer]) -> String {
    if rates.is_empty() {
        return "rates not listed".into();
    }
    let texts: Vec<String> = rates
        .iter()
        .map(|rate| match rate {
            RateOffer::Discrete(interval) => format!("{:.2}", interval.fps()),
            RateOffer::Stepwise { min, max } => format!("{:.2}..={:.2}", max.fps(), min.fps()),
        })
        .collect();
    format!("{} fps", texts.join(", "))
}

fn snap(args: &SnapArgs) -> Result<()> {
    let (settings, _) = settings(&args.camera)?;
    let mut camera = V4l2Camera::open(&settings)?;
    print_report(&settings.device, camera.report());
    let mode = camera.mode();
    for _ in 0..args.skip {
        camera.next(Duration::from_secs(2))?;
    }
    let frame = camera.next(Duration::from_secs(2))?;
    let (jpeg, what) = match mode.format {
        // An MJPEG frame is already a JPEG: keep the camera's own bytes,
        // once they are known to decode.
        CaptureFormat::Mjpeg => {
            decode_jpeg_rgb(frame.bytes()).map_err(|reason| CameraError::CorruptFrame {
                device: settings.device.clone(),
                sequence: frame.sequence,
                reason,
            })?;
            (frame.bytes().to_vec(), "as the camera encoded it")
        }
        CaptureFormat::Raw(format) => {
            let layout = FrameLayout {
                format,
                width: mode.width,
                height: mode.height,
                stride: mode.stride,
            };
            let mut rgb = Vec::new();
            raw_to_rgb(&layout, frame.bytes(), &mut rgb).map_err(|reason| {
                CameraError::CorruptFrame {
                    device: settings.device.clone(),
                    sequence: frame.sequence,
                    reason,
                }
            })?;
            let mut jpeg = Vec::new();
            jpeg_encoder::Encoder::new(&mut jpeg, 95)
                .encode(
                    &rgb,
                    u16::try_from(mode.width)?,
                    u16::try_from(mode.height)?,
                    jpeg_encoder::ColorType::Rgb,
                )
                .context("encoding the frame as JPEG")?;
            (jpeg, "encoded at quality 95")
        }
    };
    write_atomically(&args.out, &jpeg)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "saved frame {} ({}x{} {}, {what}) to {}",
        frame.sequence,
        mode.width,
        mode.height,
        mode.format,
        args.out.display()
    );
    Ok(())
}

fn stream(args: &StreamArgs) -> Result<()> {
    let (settings, options) = settings(&args.camera)?;
    let device = settings.device.clone();
    let (camera, report) = LiveCamera::start(settings, options)?;
    print_report(&device, &report);
    let until = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.0));
    let mut first = None;
    let mut last = None;
    let mut taken = 0u64;
    while Instant::now() < until {
        if let Some(frame) = camera.next_frame(Duration::from_millis(100)) {
            first.get_or_insert((frame.sequence, frame.captured_at));
            last = Some((frame.sequence, frame.captured_at));
            taken += 1;
            camera.recycle(frame);
        }
    }
    let counters = camera.counters();
    match (first, last) {
        (Some((first_sequence, first_time)), Some((last_sequence, last_time)))
            if last_sequence > first_sequence =>
        {
            let span = last_time.saturating_since(first_time).as_secs_f64();
            println!(
                "camera rate {:.2} fps by driver timestamps over {span:.1} s; {taken} frames taken",
                (last_sequence - first_sequence) as f64 / span
            );
        }
        _ => println!("fewer than two frames arrived in {:.1} s", args.seconds),
    }
    println!(
        "frames {} | dropped by the driver {} | replaced before use {} | corrupt {} | \
         reconnects {} | stalls {} | without driver time {}",
        counters.frames,
        counters.driver_drops,
        counters.pipeline_drops,
        counters.corrupt,
        counters.reconnects,
        counters.stalls,
        counters.untimed
    );
    println!("health: {:?}", camera.health());
    Ok(())
}
