//! GPIO lines through the Linux GPIO character device, for the ejectors, the
//! e-stop and the belt encoder.
//!
//! In: a board map ([`BoardMap`]) and header pin numbers. Out: embedded-hal
//! output pins ([`CdevOutput`]) and inputs with kernel-timestamped edges
//! ([`CdevInput`], an [`EdgeInput`]) for `edgesort-actuate`.
//!
//! Steps: a pin becomes a chip label and line offset through the map; the
//! chip is found among `/dev/gpiochip*` by its label, never by number,
//! because numbers follow probe order; the line is requested through uAPI v2.
//!
//! Why gpiocdev and not linux-embedded-hal's `CdevPin`: `CdevPin` speaks the
//! character device's uAPI v1 (through `gpio-cdev`), which the kernel keeps
//! only for compatibility (`CONFIG_GPIO_CDEV_V1`). uAPI v2, which gpiocdev
//! speaks, gives per-line event clocks (we ask for `CLOCK_MONOTONIC`, the
//! clock frames and pulses use), kernel debounce, and sequence numbers that
//! reveal lost events. A line request is a file descriptor that any thread
//! may write, which lets the panic hook and the signal thread force outputs
//! low while the ejector thread owns them. The embedded-hal traits are
//! implemented here, over that shared request, in a few lines.
#![deny(missing_docs)]

mod error;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edgesort_actuate::{EdgeInput, ForceLow, InputEdge};
use edgesort_types::Timestamp;
use edgesort_types::board::{BoardMap, PinMapping};
use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
use gpiocdev::line::{EdgeDetection, EdgeKind, EventClock, Value, Values};
use gpiocdev::request::Request;

pub use error::GpioError;

/// The consumer name the kernel shows for our lines (`gpioinfo`).
const CONSUMER: &str = "edgesort";

/// A GPIO chip present on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipInfo {
    /// Its device, e.g. `/dev/gpiochip0`.
    pub path: PathBuf,
    /// Its label, e.g. `tegra234-gpio`.
    pub label: String,
    /// Its line count.
    pub lines: u32,
}

/// Every GPIO chip present, with its label.
pub fn chips() -> Result<Vec<ChipInfo>, GpioError> {
    let paths = gpiocdev::chip::chips().map_err(|source| GpioError::ListChips { source })?;
    Ok(paths
        .into_iter()
        .filter_map(|path| {
            let info = gpiocdev::chip::Chip::from_path(&path).ok()?.info().ok()?;
            Some(ChipInfo {
                path,
                label: info.label,
                lines: info.num_lines,
            })
        })
        .collect())
}

/// Where one header pin's line is on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedPin {
    /// The header pin.
    pub pin: u32,
    /// The chip's device.
    pub chip: PathBuf,
    /// The line offset.
    pub line: u32,
}

/// Finds `pin`'s chip by label among `chips`.
pub fn resolve(map: &BoardMap, pin: u32, chips: &[ChipInfo]) -> Result<ResolvedPin, GpioError> {
    let mapping = map.pin(pin).ok_or_else(|| GpioError::UnknownPin {
        pin,
        board: map.name.clone(),
    })?;
    resolve_mapping(mapping, chips)
}

fn resolve_mapping(mapping: &PinMapping, chips: &[ChipInfo]) -> Result<ResolvedPin, GpioError> {
    let chip = chips
        .iter()
        .find(|chip| chip.label == mapping.chip)
        .ok_or_else(|| GpioError::FindChip {
            pin: mapping.pin,
            label: mapping.chip.clone(),
            present: present_labels(chips),
        })?;
    if mapping.line >= chip.lines {
        return Err(GpioError::LineOutOfRange {
            pin: mapping.pin,
            label: chip.label.clone(),
            line: mapping.line,
            lines: chip.lines,
        });
    }
    Ok(ResolvedPin {
        pin: mapping.pin,
        chip: chip.path.clone(),
        line: mapping.line,
    })
}

fn present_labels(chips: &[ChipInfo]) -> String {
    if chips.is_empty() {
        return "none".into();
    }
    let labels: Vec<String> = chips
        .iter()
        .map(|chip| format!("{:?} ({})", chip.label, chip.path.display()))
        .collect();
    labels.join(", ")
}

/// What the kernel says of one mapped pin: the `gpioinfo`-style self-check.
#[derive(Clone, Debug)]
pub struct PinCheck {
    /// The map's entry.
    pub mapping: PinMapping,
    /// The line on this machine, or why it cannot be found.
    pub found: Result<LineState, String>,
}

/// A line's state as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineState {
    /// The chip's device.
    pub chip: PathBuf,
    /// The line's name in the device tree, if any.
    pub name: String,
    /// Who holds the line, if anyone.
    pub consumer: Option<String>,
    /// Whether it is configured as an output.
    pub output: bool,
}

/// Checks every pin of `map` against the running kernel.
pub fn check(map: &BoardMap) -> Result<Vec<PinCheck>, GpioError> {
    let chips = chips()?;
    Ok(map
        .pins
        .iter()
        .map(|mapping| PinCheck {
            mapping: mapping.clone(),
            found: resolve_mapping(mapping, &chips)
                .map_err(|error| error.to_string())
                .and_then(|resolved| {
                    let chip = gpiocdev::chip::Chip::from_path(&resolved.chip)
                        .map_err(|error| error.to_string())?;
                    let info = chip
                        .line_info(resolved.line)
                        .map_err(|error| error.to_string())?;
                    Ok(LineState {
                        chip: resolved.chip,
                        name: info.name,
                        consumer: info.used.then_some(info.consumer),
                        output: info.direction == gpiocdev::line::Direction::Output,
                    })
                }),
        })
        .collect())
}

/// An output line, driven low when requested. Clones share the request.
#[derive(Clone, Debug)]
pub struct CdevOutput {
    request: Arc<Request>,
    line: u32,
}

impl CdevOutput {
    /// Requests `pin`'s line as an output, low.
    pub fn request(pin: &ResolvedPin) -> Result<CdevOutput, GpioError> {
        let request = Request::builder()
            .on_chip(&pin.chip)
            .with_consumer(CONSUMER)
            .with_line(pin.line)
            .as_output(Value::Inactive)
            .request()
            .map_err(|source| request_error(pin, source))?;
        Ok(CdevOutput {
            request: Arc::new(request),
            line: pin.line,
        })
    }

    /// Requests several pins' lines as outputs, low, with one request per
    /// chip, and returns them in order with a [`ForceLow`] that drives all
    /// of them low in one call per chip (`GPIO_V2_LINE_SET_VALUES` over the
    /// whole request): the e-stop's path to the valves is one system call,
    /// not one per ejector.
    pub fn request_all(pins: &[ResolvedPin]) -> Result<(Vec<CdevOutput>, AllLow), GpioError> {
        let mut requests: Vec<(PathBuf, Arc<Request>, Values)> = Vec::new();
        for pin in pins {
            if requests.iter().any(|(chip, _, _)| *chip == pin.chip) {
                continue;
            }
            let lines: Vec<u32> = pins
                .iter()
                .filter(|other| other.chip == pin.chip)
                .map(|other| other.line)
                .collect();
            let request = Request::builder()
                .on_chip(&pin.chip)
                .with_consumer(CONSUMER)
                .with_lines(&lines)
                .as_output(Value::Inactive)
                .request()
                .map_err(|source| request_error(pin, source))?;
            let mut low = Values::default();
            for line in &lines {
                low.set(*line, Value::Inactive);
            }
            requests.push((pin.chip.clone(), Arc::new(request), low));
        }
        let outputs = pins
            .iter()
            .map(|pin| {
                let (_, request, _) = requests
                    .iter()
                    .find(|(chip, _, _)| *chip == pin.chip)
                    .expect("every chip was requested above");
                CdevOutput {
                    request: request.clone(),
                    line: pin.line,
                }
            })
            .collect();
        let all_low = AllLow {
            requests: requests
                .into_iter()
                .map(|(_, request, low)| (request, low))
                .collect(),
        };
        Ok((outputs, all_low))
    }

    fn set(&self, value: Value) -> Result<(), gpiocdev::Error> {
        self.request.set_value(self.line, value)
    }
}

/// Every output of [`CdevOutput::request_all`], driven low by one call per
/// chip.
#[derive(Debug)]
pub struct AllLow {
    requests: Vec<(Arc<Request>, Values)>,
}

impl ForceLow for AllLow {
    fn force_low(&self) {
        for (request, low) in &self.requests {
            if let Err(error) = request.set_values(low) {
                tracing::error!(%error, "cannot force the ejector outputs low");
            }
        }
    }
}

impl ErrorType for CdevOutput {
    type Error = GpioLineError;
}

impl OutputPin for CdevOutput {
    fn set_low(&mut self) -> Result<(), GpioLineError> {
        self.set(Value::Inactive).map_err(GpioLineError)
    }

    fn set_high(&mut self) -> Result<(), GpioLineError> {
        self.set(Value::Active).map_err(GpioLineError)
    }
}

impl ForceLow for CdevOutput {
    fn force_low(&self) {
        if let Err(error) = self.set(Value::Inactive) {
            tracing::error!(line = self.line, %error, "cannot force an ejector output low");
        }
    }
}

/// An input line with edge events stamped by the kernel on `CLOCK_MONOTONIC`.
#[derive(Debug)]
pub struct CdevInput {
    request: Request,
    line: u32,
}

/// Which edges an input reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edges {
    /// Both, for an e-stop.
    Both,
    /// Rising only (inactive to active), for an encoder.
    Rising,
}

impl CdevInput {
    /// Requests `pin`'s line as an input; `active_low` inverts its logical level.
    pub fn request(
        pin: &ResolvedPin,
        active_low: bool,
        edges: Edges,
    ) -> Result<CdevInput, GpioError> {
        let mut builder = Request::builder();
        builder
            .on_chip(&pin.chip)
            .with_consumer(CONSUMER)
            .with_line(pin.line)
            .as_input()
            .with_edge_detection(match edges {
                Edges::Both => EdgeDetection::BothEdges,
                Edges::Rising => EdgeDetection::RisingEdge,
            })
            .with_event_clock(EventClock::Monotonic);
        if active_low {
            builder.as_active_low();
        }
        let request = builder
            .request()
            .map_err(|source| request_error(pin, source))?;
        Ok(CdevInput {
            request,
            line: pin.line,
        })
    }
}

impl ErrorType for CdevInput {
    type Error = GpioLineError;
}

impl InputPin for CdevInput {
    fn is_high(&mut self) -> Result<bool, GpioLineError> {
        Ok(self.request.value(self.line).map_err(GpioLineError)? == Value::Active)
    }

    fn is_low(&mut self) -> Result<bool, GpioLineError> {
        self.is_high().map(|high| !high)
    }
}

impl EdgeInput for CdevInput {
    fn wait_edge(&mut self, timeout: Duration) -> Result<Option<InputEdge>, GpioLineError> {
        if !self
            .request
            .wait_edge_event(timeout)
            .map_err(GpioLineError)?
        {
            return Ok(None);
        }
        let event = self.request.read_edge_event().map_err(GpioLineError)?;
        Ok(Some(InputEdge {
            at: Timestamp::from_nanos(event.timestamp_ns),
            active: event.kind == EdgeKind::Rising,
        }))
    }
}

/// A failed read or write of a requested line.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct GpioLineError(gpiocdev::Error);

impl embedded_hal::digital::Error for GpioLineError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

fn request_error(pin: &ResolvedPin, source: gpiocdev::Error) -> GpioError {
    GpioError::RequestLine {
        pin: pin.pin,
        chip: pin.chip.clone(),
        line: pin.line,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BoardMap {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../board/pins/agx-orin-devkit.toml");
        BoardMap::load(&path).unwrap()
    }

    fn chip(path: &str, label: &str, lines: u32) -> ChipInfo {
        ChipInfo {
            path: path.into(),
            label: label.into(),
            lines,
        }
    }

    #[test]
    fn pins_resolve_by_label_whatever_the_chip_numbers() {
        let chips = [
            chip("/dev/gpiochip1", "tegra234-gpio", 164),
            chip("/dev/gpiochip0", "tegra234-gpio-aon", 32),
        ];
        let pin29 = resolve(&map(), 29, &chips).unwrap();
        assert_eq!((pin29.chip, pin29.line), ("/dev/gpiochip0".into(), 1));
        let pin7 = resolve(&map(), 7, &chips).unwrap();
        assert_eq!((pin7.chip, pin7.line), ("/dev/gpiochip1".into(), 106));
    }

    #[test]
    fn a_missing_chip_names_what_is_there() {
        let chips = [chip("/dev/gpiochip0", "gpio-sim", 8)];
        let error = resolve(&map(), 29, &chips).unwrap_err().to_string();
        assert!(error.contains("\"tegra234-gpio-aon\" (pin 29)"), "{error}");
        assert!(error.contains("\"gpio-sim\" (/dev/gpiochip0)"), "{error}");
        let short = [chip("/dev/gpiochip3", "tegra234-gpio", 100)];
        let error = resolve(&map(), 7, &short).unwrap_err().to_string();
        assert!(
            error.contains("has 100 lines, so it has no line 106"),
            "{error}"
        );
        assert!(matches!(
            resolve(&map(), 8, &short),
            Err(GpioError::UnknownPin { pin: 8, .. })
        ));
    }
}
