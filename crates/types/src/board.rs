//! Board pin maps: which GPIO line sits behind each pin of the 40-pin header.
//!
//! Integrators wire ejectors to header pins, so the configuration names pins,
//! and a map per board (`board/pins/*.toml`) turns a pin into a GPIO chip
//! label and line offset. Chips are named by label because their numbers
//! change with probe order. The maps are data: a technician who finds a wrong
//! entry corrects the file, and `edgesort gpio list --check` compares it with
//! the running kernel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// One board's header.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardMap {
    /// The board, e.g. "Jetson Orin Nano Developer Kit".
    pub name: String,
    /// Entries of `/proc/device-tree/compatible` that identify the board.
    #[serde(default)]
    pub compatible: Vec<String>,
    /// The header pins that are GPIOs.
    pub pins: Vec<PinMapping>,
}

/// One header pin.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PinMapping {
    /// Physical pin number on the header.
    pub pin: u32,
    /// Label of the GPIO chip, as the character device reports it.
    pub chip: String,
    /// Line offset on that chip.
    pub line: u32,
    /// Signal name on the carrier's schematic.
    #[serde(default)]
    pub signal: String,
    /// SoC pad, e.g. "PQ.05".
    #[serde(default)]
    pub pad: String,
}

/// A chip label and line offset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineAddress {
    /// The chip's label.
    pub chip: String,
    /// The line's offset.
    pub line: u32,
}

impl std::fmt::Display for LineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.chip, self.line)
    }
}

impl PinMapping {
    /// Where the pin's line is.
    pub fn address(&self) -> LineAddress {
        LineAddress {
            chip: self.chip.clone(),
            line: self.line,
        }
    }
}

impl BoardMap {
    /// Reads and checks a map file.
    pub fn load(path: &Path) -> Result<BoardMap, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let map: BoardMap = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        map.validate(path)?;
        Ok(map)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            field: format!("{}: {field}", path.display()),
            reason,
        };
        if self.pins.is_empty() {
            return Err(invalid("pins".into(), "lists no pin".into()));
        }
        let mut pins = HashMap::new();
        let mut lines = HashMap::new();
        for (index, mapping) in self.pins.iter().enumerate() {
            if mapping.chip.is_empty() {
                return Err(invalid(format!("pins[{index}].chip"), "is empty".into()));
            }
            if let Some(earlier) = pins.insert(mapping.pin, index) {
                return Err(invalid(
                    format!("pins[{index}].pin"),
                    format!("pin {} is already mapped by pins[{earlier}]", mapping.pin),
                ));
            }
            if let Some(earlier) = lines.insert(mapping.address(), index) {
                return Err(invalid(
                    format!("pins[{index}].line"),
                    format!(
                        "{} is already pin {} (pins[{earlier}])",
                        mapping.address(),
                        self.pins[earlier].pin
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The mapping of header pin `pin`.
    pub fn pin(&self, pin: u32) -> Option<&PinMapping> {
        self.pins.iter().find(|mapping| mapping.pin == pin)
    }

    /// The header's GPIO pin numbers, for messages.
    pub fn pin_list(&self) -> String {
        let numbers: Vec<String> = self.pins.iter().map(|m| m.pin.to_string()).collect();
        numbers.join(", ")
    }

    /// Whether a device tree with these `compatible` entries is this board.
    pub fn matches(&self, compatible: &[String]) -> bool {
        self.compatible
            .iter()
            .any(|entry| compatible.contains(entry))
    }
}

/// The map files in `folder` (`*.toml`), sorted by name.
pub fn board_maps_in(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut maps: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    maps.sort();
    Ok(maps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled(name: &str) -> BoardMap {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../board/pins")
            .join(name);
        BoardMap::load(&path).unwrap()
    }

    fn line(map: &BoardMap, pin: u32) -> (&str, u32) {
        let mapping = map.pin(pin).unwrap();
        (mapping.chip.as_str(), mapping.line)
    }

    #[test]
    fn bundled_maps_hold_nvidias_pins() {
        for name in ["orin-nano-devkit.toml", "orin-nx-p3768.toml"] {
            let map = bundled(name);
            assert_eq!(line(&map, 7), ("tegra234-gpio", 144), "{name}");
            assert_eq!(line(&map, 29), ("tegra234-gpio", 105), "{name}");
            assert_eq!(line(&map, 31), ("tegra234-gpio", 106), "{name}");
            assert_eq!(line(&map, 33), ("tegra234-gpio", 43), "{name}");
        }
        let agx = bundled("agx-orin-devkit.toml");
        assert_eq!(line(&agx, 7), ("tegra234-gpio", 106));
        assert_eq!(line(&agx, 29), ("tegra234-gpio-aon", 1));
        assert_eq!(line(&agx, 31), ("tegra234-gpio-aon", 0));
        assert_eq!(line(&agx, 33), ("tegra234-gpio-aon", 2));
        assert!(agx.matches(&[
            "nvidia,p3737-0000+p3701-0005".into(),
            "nvidia,tegra234".into()
        ]));
        assert!(!agx.matches(&["nvidia,tegra234".into()]));
    }

    #[test]
    fn a_line_mapped_twice_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("bad.toml");
        std::fs::write(
            &path,
            "name = \"x\"\n[[pins]]\npin = 7\nchip = \"c\"\nline = 1\n\
             [[pins]]\npin = 11\nchip = \"c\"\nline = 1\n",
        )
        .unwrap();
        let error = BoardMap::load(&path).unwrap_err().to_string();
        assert!(error.contains("pins[1].line"), "{error}");
        assert!(error.contains("already pin 7"), "{error}");
    }
}
