use std::path::PathBuf;

use serde::Serialize;

/// Where the board describes itself; tests point these at fixtures.
#[derive(Clone, Debug)]
pub struct SystemFiles {
    /// L4T release line, e.g. `# R36 (release), REVISION: 4.0, ...`.
    pub nv_tegra_release: PathBuf,
    /// Board name from the device tree, NUL-terminated.
    pub device_tree_model: PathBuf,
    /// Memory totals.
    pub meminfo: PathBuf,
}

impl Default for SystemFiles {
    fn default() -> Self {
        SystemFiles {
            nv_tegra_release: PathBuf::from("/etc/nv_tegra_release"),
            device_tree_model: PathBuf::from("/proc/device-tree/model"),
            meminfo: PathBuf::from("/proc/meminfo"),
        }
    }
}

/// The GPU as the CUDA driver reports it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GpuInfo {
    /// Device name.
    pub name: String,
    /// Compute capability, e.g. `8.7`.
    pub compute_capability: String,
    /// Device memory (on Jetson, the memory shared with the CPU).
    pub memory_bytes: u64,
    /// CUDA driver API version, e.g. `13.0`.
    pub driver: String,
}

/// The TensorRT found at run time.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TensorRtInfo {
    /// Library version, e.g. `10.3.0`.
    pub version: String,
    /// The library file loaded.
    pub library: PathBuf,
}

/// System memory, from `/proc/meminfo`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Installed memory.
    pub total_bytes: u64,
    /// Memory available without swapping.
    pub available_bytes: u64,
}

/// What provisioning needs to know about the box.
#[derive(Clone, Debug, Serialize)]
pub struct BoxFacts {
    /// The board, from the device tree; `None` off Jetson.
    pub board: Option<String>,
    /// The L4T release (`R36.4.0`); `None` off Jetson.
    pub l4t: Option<String>,
    /// The GPU, or why none was found.
    pub gpu: Result<GpuInfo, String>,
    /// TensorRT, or why it cannot be used.
    pub tensorrt: Result<TensorRtInfo, String>,
    /// The TensorRT headers this binary's shim was compiled against.
    pub tensorrt_headers: Option<String>,
    /// Memory, if readable.
    pub memory: Option<MemoryInfo>,
    /// DLA cores the board has.
    pub dla_cores: u32,
}

impl BoxFacts {
    /// The GPU and TensorRT this binary builds engines with, or why it
    /// cannot: no GPU, no TensorRT, or a binary built without TensorRT's
    /// headers. The line then runs on the CPU backend.
    pub fn build_target(&self) -> Result<(&GpuInfo, &TensorRtInfo), String> {
        match (&self.gpu, &self.tensorrt, &self.tensorrt_headers) {
            (Err(gpu), _, _) => Err(format!("no GPU ({gpu})")),
            (_, Err(tensorrt), _) => Err(format!("TensorRT is absent ({tensorrt})")),
            (_, _, None) => {
                Err("this build has no TensorRT shim (built without TensorRT headers)".to_owned())
            }
            (Ok(gpu), Ok(tensorrt), Some(_)) => Ok((gpu, tensorrt)),
        }
    }
}

/// Probes the box: files, the CUDA driver, TensorRT. Never fails; each part
/// that is missing says why.
pub fn probe(files: &SystemFiles) -> BoxFacts {
    let board = std::fs::read(&files.device_tree_model)
        .ok()
        .map(|bytes| parse_device_tree_model(&bytes));
    let l4t = std::fs::read_to_string(&files.nv_tegra_release)
        .ok()
        .and_then(|text| parse_l4t_release(&text));
    let memory = std::fs::read_to_string(&files.meminfo)
        .ok()
        .and_then(|text| parse_meminfo(&text));
    let tensorrt = tensorrt_sys::probe()
        .map(|library| TensorRtInfo {
            version: library.version.to_string(),
            library: library.path,
        })
        .map_err(|error| error.to_string());
    let tensorrt_headers = tensorrt_sys::shim_headers().map(|v| v.to_string());
    let dla_cores = board.as_deref().map_or(0, dla_cores_of_board);
    BoxFacts {
        board,
        l4t,
        gpu: probe_gpu(),
        tensorrt,
        tensorrt_headers,
        memory,
        dla_cores,
    }
}

/// Asks the CUDA driver (loaded at run time) about GPU 0.
pub fn probe_gpu() -> Result<GpuInfo, String> {
    let device = edgesort_infer_cuda::probe_device(0).map_err(|error| error.to_string())?;
    Ok(GpuInfo {
        name: device.name,
        compute_capability: format!(
            "{}.{}",
            device.compute_capability.0, device.compute_capability.1
        ),
        memory_bytes: device.memory_bytes,
        driver: format!(
            "{}.{}",
            device.driver_version / 1000,
            device.driver_version % 1000 / 10
        ),
    })
}

/// `NVIDIA Jetson AGX Orin Developer Kit\0` → the text before the NUL.
pub fn parse_device_tree_model(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

/// `# R36 (release), REVISION: 4.0, GCID: ...` → `R36.4.0`.
pub fn parse_l4t_release(text: &str) -> Option<String> {
    let line = text.lines().find(|line| line.starts_with("# R"))?;
    let release = line.trim_start_matches("# ").split_whitespace().next()?;
    let revision = line
        .split(',')
        .find_map(|part| part.trim().strip_prefix("REVISION:"))?
        .trim();
    Some(format!("{release}.{revision}"))
}

/// `MemTotal:` and `MemAvailable:` of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<MemoryInfo> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    Some(MemoryInfo {
        total_bytes: field("MemTotal:")?,
        available_bytes: field("MemAvailable:")?,
    })
}

/// DLA cores by module: AGX Orin and Orin NX 16GB have two, Orin NX 8GB
/// one, Orin Nano none.
pub fn dla_cores_of_board(board: &str) -> u32 {
    if board.contains("AGX Orin") {
        2
    } else if board.contains("Orin NX") {
        if board.contains("8GB") { 1 } else { 2 }
    } else {
        0
    }
}

/// The builder workspace for a box with `memory`: half of what is free,
/// at most 2 GiB (more buys the demo model nothing), since on Jetson the GPU
/// shares this memory with the running line.
pub fn workspace_for(memory: Option<MemoryInfo>) -> u64 {
    const CEILING: u64 = 2 << 30;
    const UNKNOWN: u64 = 512 << 20;
    memory.map_or(UNKNOWN, |memory| (memory.available_bytes / 2).min(CEILING))
}

/// A readable size.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_builds_only_with_gpu_tensorrt_and_the_shim() {
        let mut facts = BoxFacts {
            board: Some("NVIDIA Jetson Orin Nano Developer Kit".into()),
            l4t: Some("R36.4.0".into()),
            gpu: Ok(GpuInfo {
                name: "Orin".into(),
                compute_capability: "8.7".into(),
                memory_bytes: 8 << 30,
                driver: "12.6".into(),
            }),
            tensorrt: Ok(TensorRtInfo {
                version: "10.3.0".into(),
                library: "/usr/lib/aarch64-linux-gnu/libnvinfer.so.10".into(),
            }),
            tensorrt_headers: Some("10.3.0".into()),
            memory: None,
            dla_cores: 0,
        };
        assert!(facts.build_target().is_ok());
        facts.tensorrt_headers = None;
        assert_eq!(
            facts.build_target().unwrap_err(),
            "this build has no TensorRT shim (built without TensorRT headers)"
        );
        facts.tensorrt = Err("libnvinfer.so.10 not found".into());
        assert_eq!(
            facts.build_target().unwrap_err(),
            "TensorRT is absent (libnvinfer.so.10 not found)"
        );
        facts.gpu = Err("no CUDA driver".into());
        assert_eq!(facts.build_target().unwrap_err(), "no GPU (no CUDA driver)");
    }

    #[test]
    fn reads_the_jetson_files() {
        assert_eq!(
            parse_l4t_release(
                "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n"
            ),
            Some("R36.4.0".into())
        );
        assert_eq!(
            parse_l4t_release("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref\n"),
            Some("R35.3.1".into())
        );
        assert_eq!(parse_l4t_release("garbage"), None);
        assert_eq!(
            parse_device_tree_model(b"NVIDIA Jetson Orin Nano Developer Kit\0"),
            "NVIDIA Jetson Orin Nano Developer Kit"
        );
        let memory = parse_meminfo(
            "MemTotal:        7800000 kB\nMemFree: 1 kB\nMemAvailable:    4000000 kB\n",
        )
        .unwrap();
        assert_eq!(memory.available_bytes, 4_000_000 * 1024);
    }

    #[test]
    fn dla_only_where_the_module_has_it() {
        assert_eq!(
            dla_cores_of_board("NVIDIA Jetson AGX Orin Developer Kit"),
            2
        );
        assert_eq!(
            dla_cores_of_board("NVIDIA Jetson Orin NX Engineering Reference Developer Kit"),
            2
        );
        assert_eq!(dla_cores_of_board("NVIDIA Jetson Orin NX 8GB"), 1);
        assert_eq!(
            dla_cores_of_board("NVIDIA Jetson Orin Nano Developer Kit"),
            0
        );
    }

    #[test]
    fn workspace_leaves_room_for_the_line() {
        let nano = MemoryInfo {
            total_bytes: 8 << 30,
            available_bytes: 3 << 30,
        };
        assert_eq!(workspace_for(Some(nano)), 1536 << 20);
        let agx = MemoryInfo {
            total_bytes: 64 << 30,
            available_bytes: 50 << 30,
        };
        assert_eq!(workspace_for(Some(agx)), 2 << 30);
    }
}
