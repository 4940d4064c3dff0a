//! Headless Chromium for the status page's tests: find the browser, take a
//! screenshot of a page or dump its DOM after its scripts ran, and read
//! pixels back from the screenshot.
//!
//! Each call starts a fresh browser with a throw-away profile and a virtual
//! time budget ([`PAGE_TIME_MS`]): the page's timers and fetch polls run as
//! fast as the server answers, so eight seconds of page time take about one
//! second of wall time, and the page has polled `/status` and
//! `/snapshot.jpg` about eight times when the screenshot or the DOM is taken.
//! Virtual time stands still while a fetch is pending, so a server that
//! never answers would hang the browser for ever: every call is killed, with
//! its whole process group, after [`HARD_TIMEOUT`].
//!
//! `scripts/setup-host.sh` installs Debian's `chromium`; `$CHROMIUM` names
//! another binary.

#![allow(dead_code)] // each test binary uses its own part of it

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Page time each call lets pass before the screenshot or the DOM dump.
pub const PAGE_TIME_MS: u32 = 8_000;

/// Wall time after which a call is killed and fails.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// The window [`dump_dom`] lays the page out in: the screenshot size the
/// tests use, so the DOM and the pixels describe the same layout.
pub const DOM_WINDOW: (u32, u32) = (1280, 900);

/// The colour of the 2 px border the status page draws around the live
/// snapshot, and nowhere else: `--frame` in `assets/status.html`.
pub const SNAPSHOT_BORDER: [u8; 3] = [0, 140, 255];

/// The browser: `$CHROMIUM`, else the first of the usual names on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}

/// Saves a `width` x `height` screenshot of `url` as a PNG at `out`, one
/// image pixel per CSS pixel.
pub fn screenshot(url: &str, out: &Path, width: u32, height: u32) -> io::Result<()> {
    let _ = std::fs::remove_file(out);
    run(
        url,
        (width, height),
        &format!("--screenshot={}", out.display()),
    )?;
    if !out.is_file() {
        return Err(io::Error::other(format!(
            "chromium wrote no screenshot of {url}"
        )));
    }
    Ok(())
}

/// The DOM of `url` after its scripts ran for [`PAGE_TIME_MS`] of page time,
/// laid out in a [`DOM_WINDOW`] window.
pub fn dump_dom(url: &str) -> io::Result<String> {
    run(url, DOM_WINDOW, "--dump-dom")
}

/// Runs one headless browser on `url` doing `action`; returns its stdout.
fn run(url: &str, (width, height): (u32, u32), action: &str) -> io::Result<String> {
    let browser = find_chromium().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no chromium (scripts/setup-host.sh installs it)",
        )
    })?;
    let profile = tempfile::tempdir()?;
    // Output goes to files, not pipes: a pipe held open by a stray child
    // process would block the read past the timeout.
    let stdout_path = profile.path().join("stdout");
    let stderr_path = profile.path().join("stderr");
    let mut command = Command::new(&browser);
    command
        .args([
            "--headless=new",
            // Chromium's sandbox refuses root and needs user namespaces,
            // which containers often lack.
            "--no-sandbox",
            "--disable-gpu",
            // /dev/shm is 64 MB in a default Docker container.
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--mute-audio",
            // The page over HTTPS is served with the daemon's self-signed
            // certificate, which a technician accepts by its fingerprint.
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--virtual-time-budget={PAGE_TIME_MS}"))
        .arg(action)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path)?)
        .stderr(File::create(&stderr_path)?);
    // Its own process group, so a timeout kills the renderers and the
    // zygote along with the browser.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > HARD_TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "chromium {action} {url}: no answer in {HARD_TIMEOUT:?}{}",
                    tail(&stderr_path)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        return Err(io::Error::other(format!(
            "chromium {action} {url}: {status}{}",
            tail(&stderr_path)
        )));
    }
    std::fs::read_to_string(&stdout_path)
}

/// The last lines of a browser's stderr, for an error message, without
/// the complaints about a missing D-Bus that every run prints.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains(":ERROR:dbus/"))
        .collect();
    let start = lines.len().saturating_sub(8);
    format!("\n{}", lines[start..].join("\n"))
}

/// A decoded PNG: 8-bit RGB pixels, row after row.
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Pixels {
    /// Reads `png`, panicking with its path if it cannot.
    pub fn load(png: &Path) -> Pixels {
        let file = File::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        let mut decoder = png::Decoder::new(BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        let mut buf = vec![
            0;
            reader
                .output_buffer_size()
                .expect("a PNG that fits in memory")
        ];
        let info = reader
            .next_frame(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        let samples = info.color_type.samples();
        let rgb = buf[..info.line_size * info.height as usize]
            .chunks_exact(info.line_size)
            .flat_map(|line| line[..info.width as usize * samples].chunks_exact(samples))
            .map(|px| {
                if samples < 3 {
                    [px[0]; 3]
                } else {
                    [px[0], px[1], px[2]]
                }
            })
            .collect();
        Pixels {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    /// The colour at (`x`, `y`).
    pub fn at(&self, x: u32, y: u32) -> [u8; 3] {
        self.rgb[(y * self.width + x) as usize]
    }

    /// The smallest box `(x, y, w, h)` holding every pixel of exactly
    /// `colour`, or `None` if there is none.
    pub fn bounding_box(&self, colour: [u8; 3]) -> Option<(u32, u32, u32, u32)> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.at(x, y) == colour {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        (x0 != u32::MAX).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    }

    /// How many distinct colours the `w` x `h` region at (`x`, `y`) holds,
    /// clipped to the image.
    pub fn colours(&self, x: u32, y: u32, w: u32, h: u32) -> usize {
        let mut seen = std::collections::HashSet::new();
        for row in y..(y.saturating_add(h)).min(self.height) {
            for col in x..(x.saturating_add(w)).min(self.width) {
                seen.insert(self.at(col, row));
            }
        }
        seen.len()
    }
}

/// How many distinct colours the `w` x `h` region at (`x`, `y`) of the PNG
/// `png` holds: 1 for a flat placeholder, thousands for a camera frame.
pub fn region_colours(png: &Path, x: u32, y: u32, w: u32, h: u32) -> usize {
    Pixels::load(png).colours(x, y, w, h)
}

/// Where the status page shows the live snapshot in the screenshot `png`:
/// the box inside its [`SNAPSHOT_BORDER`], or `None` when no snapshot is
/// shown (the page hides the image, border and all, until a frame arrives).
pub fn snapshot_box(png: &Path) -> Option<(u32, u32, u32, u32)> {
    let (x, y, w, h) = Pixels::load(png).bounding_box(SNAPSHOT_BORDER)?;
    (w > 4 && h > 4).then(|| (x + 2, y + 2, w - 4, h - 4))
}
