use edgesort_daemon::Snapshot;
use embedded_graphics::mono_font::MonoTextStyleBuilder;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

/// JPEG quality of the snapshot: sharp enough to read the labels.
const QUALITY: u8 = 85;

/// One colour per lane, distinct on a grey belt; raw detections are white.
const LANE_COLOURS: [Rgb888; 8] = [
    Rgb888::new(230, 25, 75),
    Rgb888::new(60, 180, 75),
    Rgb888::new(255, 200, 25),
    Rgb888::new(0, 130, 200),
    Rgb888::new(245, 130, 48),
    Rgb888::new(145, 30, 180),
    Rgb888::new(70, 240, 240),
    Rgb888::new(240, 50, 230),
];

/// An RGB frame being drawn on.
struct Canvas<'a> {
    rgb: &'a mut [u8],
    width: u32,
    height: u32,
}

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, colour) in pixels {
            let (Ok(x), Ok(y)) = (u32::try_from(point.x), u32::try_from(point.y)) else {
                continue;
            };
            if x < self.width && y < self.height {
                let at = 3 * (y as usize * self.width as usize + x as usize);
                self.rgb[at..at + 3].copy_from_slice(&[colour.r(), colour.g(), colour.b()]);
            }
        }
        Ok(())
    }
}

/// The snapshot's frame as a JPEG, with raw detections in thin white and
/// tracks in their lane's colour, labelled with track id, class and lane.
pub fn snapshot_jpeg(snapshot: &Snapshot) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let frame = &snapshot.frame;
    let mut rgb = frame.rgb().into_owned();
    let mut canvas = Canvas {
        rgb: &mut rgb,
        width: frame.width,
        height: frame.height,
    };
    for detection in &snapshot.detections {
        outline(&mut canvas, detection, Rgb888::WHITE, 1);
    }
    for track in &snapshot.tracks {
        let colour = LANE_COLOURS[track.lane as usize % LANE_COLOURS.len()];
        outline(&mut canvas, track, colour, 2);
        let style = MonoTextStyleBuilder::new()
            .font(&FONT_6X10)
            .text_color(Rgb888::BLACK)
            .background_color(colour)
            .build();
        let corner = Point::new(
            track.bbox.x1.max(0.0) as i32,
            track.bbox.y1.max(10.0) as i32,
        );
        let _ =
            Text::with_baseline(&track.label, corner, style, Baseline::Bottom).draw(&mut canvas);
    }
    let mut jpeg = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut jpeg, QUALITY).encode(
        &rgb,
        frame.width as u16,
        frame.height as u16,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(jpeg)
}

fn outline(
    canvas: &mut Canvas<'_>,
    overlay: &edgesort_daemon::Overlay,
    colour: Rgb888,
    width: u32,
) {
    let bbox = overlay.bbox;
    let top_left = Point::new(bbox.x1.round() as i32, bbox.y1.round() as i32);
    let size = Size::new(
        (bbox.x2 - bbox.x1).round().max(1.0) as u32,
        (bbox.y2 - bbox.y1).round().max(1.0) as u32,
    );
    let _ = Rectangle::new(top_left, size)
        .into_styled(PrimitiveStyle::with_stroke(colour, width))
        .draw(canvas);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use edgesort_daemon::Overlay;
    use edgesort_types::{BoundingBox, Frame, Timestamp};

    use super::*;

    #[test]
    fn tracks_are_outlined_in_their_lane_colour_and_the_frame_is_a_jpeg() {
        let frame = Frame::from_rgb(7, Timestamp::ZERO, 64, 48, vec![114; 64 * 48 * 3]);
        let track = Overlay {
            bbox: BoundingBox {
                x1: 10.0,
                y1: 12.0,
                x2: 40.0,
                y2: 40.0,
            },
            label: "#3 bolt > bolts".into(),
            lane: 1,
        };
        let snapshot = Snapshot {
            frame: Arc::new(frame),
            detections: Vec::new(),
            tracks: vec![track.clone()],
        };
        let jpeg = snapshot_jpeg(&snapshot).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        let decoded = edgesort_capture_decode(&jpeg);
        // The box's left edge, below the label, in lane 1's green.
        let at = 3 * (30 * 64 + 10);
        let pixel = &decoded[at..at + 3];
        assert!(pixel[1] > 140 && pixel[0] < 110, "{pixel:?}");
        // Inside the box the belt is untouched.
        let at = 3 * (30 * 64 + 25);
        assert!(decoded[at..at + 3].iter().all(|&c| c.abs_diff(114) < 8));
        // The shared frame itself is not drawn on.
        assert!(snapshot.frame.rgb().iter().all(|&c| c == 114));
    }

    fn edgesort_capture_decode(jpeg: &[u8]) -> Vec<u8> {
        edgesort_capture::decode_jpeg_rgb(jpeg).unwrap().2
    }
}
