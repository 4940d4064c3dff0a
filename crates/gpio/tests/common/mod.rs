//! The gpio-sim chip of the VM that `scripts/gpio-sim/test.sh` boots: a
//! board map of its lines, its simulated pulls and output values.

// Each test file uses its own share of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgesort_types::board::BoardMap;

pub struct Sim {
    pub sysfs: PathBuf,
    pub map: BoardMap,
    /// The map's file, for a configuration to name.
    pub map_path: PathBuf,
}

impl Sim {
    /// A board map of the simulated chip: header pins 1..=8 on lines 0..=7.
    pub fn new() -> Sim {
        let label =
            std::env::var("GPIO_SIM_LABEL").expect("GPIO_SIM_LABEL: run in the gpio-sim VM");
        let sysfs =
            std::env::var("GPIO_SIM_SYSFS").expect("GPIO_SIM_SYSFS: run in the gpio-sim VM");
        let mut text = String::from("name = \"gpio-sim\"\n");
        for line in 0..8 {
            text += &format!(
                "[[pins]]\npin = {}\nchip = \"{label}\"\nline = {line}\n",
                line + 1
            );
        }
        let path = std::env::temp_dir().join("gpio-sim-map.toml");
        std::fs::write(&path, text).unwrap();
        Sim {
            sysfs: sysfs.into(),
            map: BoardMap::load(&path).unwrap(),
            map_path: path,
        }
    }

    fn line_file(&self, line: u32, name: &str) -> PathBuf {
        self.sysfs.join(format!("sim_gpio{line}")).join(name)
    }

    pub fn output_is_high(&self, line: u32) -> bool {
        read(&self.line_file(line, "value")) == "1"
    }

    pub fn pull(&self, line: u32, up: bool) {
        let pull = if up { "pull-up" } else { "pull-down" };
        std::fs::write(self.line_file(line, "pull"), pull).unwrap();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// Polls until `condition` holds; returns when, or panics after 5 s.
pub fn poll(condition: impl Fn() -> bool) -> Instant {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        if condition() {
            return Instant::now();
        }
        assert!(Instant::now() < give_up, "the line never changed");
        // The VM has one CPU: leave it to the threads under test.
        std::thread::sleep(Duration::from_micros(100));
    }
}
