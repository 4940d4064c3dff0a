use std::path::PathBuf;

/// Why a GPIO line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// Listing `/dev/gpiochip*` failed.
    #[error("cannot list the GPIO chips: {source}")]
    ListChips {
        /// gpiocdev's error.
        #[source]
        source: gpiocdev::Error,
    },
    /// No chip carries the label the board map names.
    #[error(
        "no GPIO chip labelled {label:?} (pin {pin}); chips present: {present}. \
         Is this the board the map is for?"
    )]
    FindChip {
        /// The header pin.
        pin: u32,
        /// The label looked for.
        label: String,
        /// The labels found, for the message.
        present: String,
    },
    /// The chip has fewer lines than the map's offset.
    #[error("pin {pin}: chip {label:?} has {lines} lines, so it has no line {line}")]
    LineOutOfRange {
        /// The header pin.
        pin: u32,
        /// The chip's label.
        label: String,
        /// The offset from the map.
        line: u32,
        /// The chip's line count.
        lines: u32,
    },
    /// Requesting the line failed, e.g. because another program holds it.
    #[error("cannot request pin {pin} ({chip} line {line}): {source}")]
    RequestLine {
        /// The header pin.
        pin: u32,
        /// The chip's device.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// gpiocdev's error.
        #[source]
        source: gpiocdev::Error,
    },
    /// The header pin is not in the board map.
    #[error("pin {pin} is not in the board map {board:?}")]
    UnknownPin {
        /// The header pin.
        pin: u32,
        /// The map's board name.
        board: String,
    },
}
