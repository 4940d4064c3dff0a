//! Fixed exposure, gain, white balance and focus from the configuration,
//! planned against the controls a camera really has.
//!
//! A moving belt needs a fixed, short exposure: auto-exposure lengthens it in a
//! dim hall and smears parts into motion blur. So each setting first switches
//! the matching automatic mode off, then writes the value, clamped to the
//! camera's range and snapped to its step. Whatever the camera lacks or refuses
//! is reported, never silently dropped.

use edgesort_types::config::CameraControls;

/// Standard V4L2 control IDs (linux/v4l2-controls.h).
pub mod id {
    /// `V4L2_CID_AUTO_WHITE_BALANCE`.
    pub const AUTO_WHITE_BALANCE: u32 = 0x0098_090c;
    /// `V4L2_CID_AUTOGAIN`.
    pub const AUTOGAIN: u32 = 0x0098_0912;
    /// `V4L2_CID_GAIN`.
    pub const GAIN: u32 = 0x0098_0913;
    /// `V4L2_CID_WHITE_BALANCE_TEMPERATURE`.
    pub const WHITE_BALANCE_TEMPERATURE: u32 = 0x0098_091a;
    /// `V4L2_CID_EXPOSURE_AUTO`, a menu.
    pub const EXPOSURE_AUTO: u32 = 0x009a_0901;
    /// `V4L2_CID_EXPOSURE_ABSOLUTE`, in units of 100 µs.
    pub const EXPOSURE_ABSOLUTE: u32 = 0x009a_0902;
    /// `V4L2_CID_FOCUS_ABSOLUTE`.
    pub const FOCUS_ABSOLUTE: u32 = 0x009a_090a;
    /// `V4L2_CID_FOCUS_AUTO`.
    pub const FOCUS_AUTO: u32 = 0x009a_090c;
    /// `V4L2_EXPOSURE_MANUAL`, the `EXPOSURE_AUTO` menu entry for a fixed exposure.
    pub const EXPOSURE_MANUAL: i64 = 1;
}

/// A control as the camera describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlInfo {
    /// V4L2 control ID.
    pub id: u32,
    /// The driver's name for it, e.g. `Exposure Time, Absolute`.
    pub name: String,
    /// Smallest value.
    pub minimum: i64,
    /// Largest value.
    pub maximum: i64,
    /// Granularity (0 or 1: any value).
    pub step: u64,
    /// The value after reset.
    pub default: i64,
    /// Menu entries (index), for menu controls.
    pub menu: Option<Vec<i64>>,
    /// Read-only, disabled or otherwise not writable now.
    pub writable: bool,
}

/// One control write, in the order they must happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlWrite {
    /// V4L2 control ID.
    pub id: u32,
    /// The value to write.
    pub value: i64,
    /// What it is, for messages: `exposure_us`, `exposure_us (auto off)`.
    pub purpose: String,
}

/// The writes to make and what could not be done as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlPlan {
    /// Writes in order: each automatic mode off, then its value.
    pub writes: Vec<ControlWrite>,
    /// One sentence per setting the camera lacks, refuses or had to change.
    pub notes: Vec<String>,
}

struct Setting {
    key: &'static str,
    value_id: u32,
    auto_id: u32,
    auto_off: i64,
}

const SETTINGS: [Setting; 4] = [
    Setting {
        key: "exposure_us",
        value_id: id::EXPOSURE_ABSOLUTE,
        auto_id: id::EXPOSURE_AUTO,
        auto_off: id::EXPOSURE_MANUAL,
    },
    Setting {
        key: "gain",
        value_id: id::GAIN,
        auto_id: id::AUTOGAIN,
        auto_off: 0,
    },
    Setting {
        key: "white_balance_k",
        value_id: id::WHITE_BALANCE_TEMPERATURE,
        auto_id: id::AUTO_WHITE_BALANCE,
        auto_off: 0,
    },
    Setting {
        key: "focus",
        value_id: id::FOCUS_ABSOLUTE,
        auto_id: id::FOCUS_AUTO,
        auto_off: 0,
    },
];

/// Each setting in the control's units, with the value as configured.
fn requested(controls: &CameraControls) -> [Option<(i64, String)>; 4] {
    let plain = |value: Option<i64>| value.map(|value| (value, value.to_string()));
    [
        // V4L2 counts exposure in 100 µs units.
        controls
            .exposure_us
            .map(|us| ((i64::from(us) + 50) / 100, format!("{us} µs"))),
        plain(controls.gain),
        plain(controls.white_balance_k),
        plain(controls.focus),
    ]
}

/// Plans the writes that apply `wanted` to a camera with `offered` controls.
pub fn plan_controls(wanted: &CameraControls, offered: &[ControlInfo]) -> ControlPlan {
    let find = |id: u32| offered.iter().find(|control| control.id == id);
    let mut plan = ControlPlan::default();
    for (setting, value) in SETTINGS.iter().zip(requested(wanted)) {
        let Some((value, as_configured)) = value else {
            continue;
        };
        let key = setting.key;
        let Some(control) = find(setting.value_id) else {
            plan.notes
                .push(format!("{key}: the camera has no such control"));
            continue;
        };
        if !control.writable {
            plan.notes.push(format!(
                "{key}: the camera's \"{}\" control is read-only or disabled",
                control.name
            ));
            continue;
        }
        match find(setting.auto_id) {
            Some(auto) if !auto.writable => plan.notes.push(format!(
                "{key}: the camera's \"{}\" cannot be switched off; the value may be \
                 overridden",
                auto.name
            )),
            Some(auto)
                if auto
                    .menu
                    .as_ref()
                    .is_some_and(|entries| !entries.contains(&setting.auto_off)) =>
            {
                plan.notes.push(format!(
                    "{key}: the camera's \"{}\" has no manual mode; the value may be overridden",
                    auto.name
                ));
            }
            Some(auto) => plan.writes.push(ControlWrite {
                id: auto.id,
                value: setting.auto_off,
                purpose: format!("{key} (auto off)"),
            }),
            None => {}
        }
        let settable = snap(value, control);
        if settable != value {
            plan.notes.push(format!(
                "{key}: {as_configured} is outside \"{}\" ({}..={}, step {}); set {}",
                control.name,
                shown(key, control.minimum),
                shown(key, control.maximum),
                control.step.max(1),
                shown(key, settable)
            ));
        }
        plan.writes.push(ControlWrite {
            id: control.id,
            value: settable,
            purpose: key.to_string(),
        });
    }
    plan
}

/// A value in the configuration's units: exposure back in microseconds.
fn shown(key: &str, value: i64) -> String {
    if key == "exposure_us" {
        format!("{} µs", value * 100)
    } else {
        value.to_string()
    }
}

fn snap(value: i64, control: &ControlInfo) -> i64 {
    let clamped = value.clamp(control.minimum, control.maximum.max(control.minimum));
    let step = i64::try_from(control.step.max(1)).unwrap_or(i64::MAX);
    let steps = (clamped - control.minimum + step / 2) / step;
    (control.minimum + steps * step).min(control.maximum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer(id: u32, name: &str, minimum: i64, maximum: i64, step: u64) -> ControlInfo {
        ControlInfo {
            id,
            name: name.into(),
            minimum,
            maximum,
            step,
            default: minimum,
            menu: None,
            writable: true,
        }
    }

    fn uvc_camera() -> Vec<ControlInfo> {
        vec![
            ControlInfo {
                menu: Some(vec![1, 3]),
                ..integer(id::EXPOSURE_AUTO, "Auto Exposure", 0, 3, 1)
            },
            integer(id::EXPOSURE_ABSOLUTE, "Exposure Time, Absolute", 3, 2047, 1),
            integer(id::GAIN, "Gain", 0, 255, 1),
            integer(id::AUTO_WHITE_BALANCE, "White Balance, Automatic", 0, 1, 1),
            integer(
                id::WHITE_BALANCE_TEMPERATURE,
                "White Balance Temperature",
                2000,
                6500,
                10,
            ),
        ]
    }

    #[test]
    fn each_setting_switches_its_automatic_mode_off_before_the_value() {
        let wanted = CameraControls {
            exposure_us: Some(1000),
            gain: Some(32),
            white_balance_k: Some(4600),
            focus: None,
        };
        let plan = plan_controls(&wanted, &uvc_camera());
        let writes: Vec<_> = plan.writes.iter().map(|w| (w.id, w.value)).collect();
        assert_eq!(
            writes,
            [
                (id::EXPOSURE_AUTO, id::EXPOSURE_MANUAL),
                (id::EXPOSURE_ABSOLUTE, 10),
                (id::GAIN, 32),
                (id::AUTO_WHITE_BALANCE, 0),
                (id::WHITE_BALANCE_TEMPERATURE, 4600),
            ]
        );
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    }

    #[test]
    fn missing_controls_are_reported_by_name() {
        let wanted = CameraControls {
            focus: Some(120),
            gain: Some(4),
            ..CameraControls::default()
        };
        let plan = plan_controls(&wanted, &uvc_camera());
        assert_eq!(plan.notes, ["focus: the camera has no such control"]);
        assert_eq!(plan.writes.len(), 1);
        let plan = plan_controls(&wanted, &[]);
        assert_eq!(plan.writes, []);
        assert_eq!(plan.notes.len(), 2);
    }

    #[test]
    fn out_of_range_values_are_clamped_snapped_and_reported() {
        let wanted = CameraControls {
            exposure_us: Some(10),
            white_balance_k: Some(9999),
            ..CameraControls::default()
        };
        let plan = plan_controls(&wanted, &uvc_camera());
        assert_eq!(plan.writes[1].value, 3);
        assert_eq!(plan.writes[3].value, 6500);
        assert_eq!(
            plan.notes,
            [
                "exposure_us: 10 µs is outside \"Exposure Time, Absolute\" (300 µs..=204700 µs, \
                 step 1); set 300 µs",
                "white_balance_k: 9999 is outside \"White Balance Temperature\" \
                 (2000..=6500, step 10); set 6500"
            ]
        );
        let wanted = CameraControls {
            white_balance_k: Some(4604),
            ..CameraControls::default()
        };
        assert_eq!(plan_controls(&wanted, &uvc_camera()).writes[1].value, 4600);
    }

    #[test]
    fn a_camera_without_manual_exposure_or_with_a_locked_control_says_so() {
        let mut camera = uvc_camera();
        camera[0].menu = Some(vec![3]);
        camera[2].writable = false;
        let wanted = CameraControls {
            exposure_us: Some(500),
            gain: Some(1),
            ..CameraControls::default()
        };
        let plan = plan_controls(&wanted, &camera);
        assert_eq!(
            plan.notes,
            [
                "exposure_us: the camera's \"Auto Exposure\" has no manual mode; the value may \
                 be overridden",
                "gain: the camera's \"Gain\" control is read-only or disabled"
            ]
        );
        assert_eq!(
            plan.writes,
            [ControlWrite {
                id: id::EXPOSURE_ABSOLUTE,
                value: 5,
                purpose: "exposure_us".into()
            }]
        );
    }
}
